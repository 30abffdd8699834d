/* Events and log messages: structured journal entries under systemd, one
 * readable line on stderr elsewhere. The event table below is the single
 * source of names, MESSAGE_IDs, priorities and message texts; the catalog
 * (systemd/checksync.catalog) repeats the ids and a unit test checks that
 * they agree. */
#include "journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

struct event_desc {
	const char *name;
	const char *id; /* MESSAGE_ID, 128 bits in hex */
	int priority;
	/* MESSAGE with {node} {peer} {role} {old_role} {term} {old_term}
	 * {generation} {duration_ms} {bytes} {address} {hook} {path} {reason}. A reason not
	 * named by the text is appended after ": ". */
	const char *text;
};

static const struct event_desc events[CS_EV__COUNT] = {
    [CS_EV_STARTED] = {"started", "a67084b15666421fad510087294ee168", LOG_NOTICE,
                       "checksyncd started on {node} as {role} in term {term}"},
    [CS_EV_STOPPING] = {"stopping", "9eb903ea9dc94b17be781be378e7a17f", LOG_NOTICE,
                        "checksyncd stopping on {node}"},
    [CS_EV_PEER_UP] = {"peer_up", "c5ea1c9bbede4339a710878d20c42879", LOG_INFO,
                       "peer {peer} is up"},
    [CS_EV_PEER_DOWN] = {"peer_down", "e43da8c8bce64ba0bc3a5b9167108d3f", LOG_WARNING,
                         "peer {peer} is down"},
    [CS_EV_PEER_SUSPECTED] = {"peer_suspected", "b9b7934bb0c442cc9f41ec79a6ed0f37", LOG_WARNING,
                              "peer {peer} suspected: no heartbeat for {duration_ms} ms"},
    [CS_EV_LEASE_LOST] = {"lease_lost", "f950ad6c86614ca782da74016ba6fb7b", LOG_WARNING,
                          "primary lease lost in term {term}"},
    [CS_EV_FENCED] = {"fenced", "3501c74d33854aca814c746bb7820f68", LOG_WARNING,
                      "{node} fenced itself in term {term}"},
    [CS_EV_PROMOTED] = {"promoted", "b1fb09894aea4fa4836aff9c791f56f0", LOG_NOTICE,
                        "{node} promoted to primary in term {term}"},
    [CS_EV_DEMOTED] = {"demoted", "001424f510e3430693a71940fd3b2c97", LOG_NOTICE,
                       "{node} demoted from {old_role} to {role} in term {term}"},
    [CS_EV_ROLE_CHANGED] = {"role_changed", "fc8e30d357984b3dabe12581a1f022e8", LOG_NOTICE,
                            "{node} role {old_role} -> {role} in term {term}"},
    [CS_EV_TERM_CHANGED] = {"term_changed", "093c7c235d6541fdbe8d1974ba80d338", LOG_NOTICE,
                            "term {old_term} -> {term}"},
    [CS_EV_TLS_REFUSED] = {"tls_refused", "dea201648cf94f129f6eda4b329f22f0", LOG_WARNING,
                           "refused peer connection from {address}"},
    [CS_EV_STALE_TERM_REFUSED] =
        {"stale_term_refused", "e0aef0e7c5d34dfeab57b9a372a2ac7f", LOG_INFO,
         "refused a message of old term {old_term} from {peer} (term is {term})"},
    [CS_EV_CONFIG_RELOADED] = {"config_reloaded", "0b404f23dcfe485ca6442e0be53ab952", LOG_NOTICE,
                               "configuration reloaded"},
    [CS_EV_CONFIG_RELOAD_PARTIAL] = {"config_reload_partial", "907bef1509004e3fa46ab4d107b8eb21",
                                     LOG_WARNING, "configuration reloaded in part"},
    [CS_EV_CONFIG_RELOAD_FAILED] = {"config_reload_failed", "ffc7af174fa044a68882c711f43d31cd",
                                    LOG_ERR, "configuration reload failed, old configuration kept"},
    [CS_EV_FENCE_HOOK_OK] = {"fence_hook_ok", "573279c45b0d466d877966f7f4ff1131", LOG_NOTICE,
                             "fence hook for {peer} succeeded in {duration_ms} ms"},
    [CS_EV_FENCE_HOOK_FAILED] = {"fence_hook_failed", "690d17773a534637aa5b66ddc035cc43", LOG_ERR,
                                 "fence hook for {peer} failed"},
    [CS_EV_NOTIFY_HOOK_OUTPUT] = {"notify_hook_output", "a11589f1dd5a4d919c5c3ddb1c90f8c9",
                                  LOG_INFO, "{hook} hook: {reason}"},
    [CS_EV_NOTIFY_HOOK_FAILED] = {"notify_hook_failed", "a4d88e199a614da7bcc7f2f7d7958f3f",
                                  LOG_WARNING, "notify hook failed"},
    [CS_EV_SWITCHOVER] = {"switchover", "640fdc534d1143ca8a931ca1b904dde3", LOG_NOTICE,
                          "switchover to {peer} started in term {term}"},
    [CS_EV_SWITCHOVER_DONE] = {"switchover_done", "e49c8734978f488c9d68e180d5c109a9", LOG_NOTICE,
                               "switchover to {peer} done, term {term}"},
    [CS_EV_PROMOTION_BLOCKED] = {"promotion_blocked", "a52a9b1f29384bafbeaea25ae6174017",
                                 LOG_WARNING, "promotion of {node} blocked in term {term}"},
    [CS_EV_PRIMARY_LOST] = {"primary_lost", "2fa353aa691c4bee8e72be72fe4defdd", LOG_WARNING,
                            "primary {peer} lost in term {term}"},
    [CS_EV_RESTORE_STARTED] = {"restore_started", "ea9fc052a608401e8d451d2e0402ccf2", LOG_NOTICE,
                               "restoring the app from generation {generation} ({path} path)"},
    [CS_EV_RESTORE_DONE] = {"restore_done", "016e5ba0e2454287bc609a44744062e8", LOG_NOTICE,
                            "app restored from generation {generation} ({path} path, {bytes} bytes "
                            "of images) in {duration_ms} ms"},
    [CS_EV_APP_SERVING] = {"app_serving", "9ae3fb346296460e9fbabd0bf1268afb", LOG_NOTICE,
                           "app serving on {node}"},
    [CS_EV_BACKUP_JOINED] =
        {"backup_joined", "d8a00cfe2c124ca891e9b074b7fe56f8", LOG_NOTICE,
         "backup {peer} joined: sending the chain from generation {generation}"},
    [CS_EV_BACKUP_LAGGING] = {"backup_lagging", "71e12cd733b74dc39880474009771527", LOG_WARNING,
                              "backup {peer} is lagging"},
    [CS_EV_BACKUP_CAUGHT_UP] = {"backup_caught_up", "037faa64fd2448edba1dcec8e0f4100c", LOG_NOTICE,
                                "backup {peer} caught up at generation {generation}"},
    [CS_EV_BACKUP_DEGRADED] = {"backup_degraded", "211f9b4a909c4c3bb7608190308ea867", LOG_ERR,
                               "backup {peer} degraded"},
    [CS_EV_CHECKPOINT_REFUSED] = {"checkpoint_refused", "62b476aab4f0402cab179b3fc040827c",
                                  LOG_WARNING,
                                  "checkpoint generation {generation} from {peer} refused"},
    [CS_EV_APP_CRASHED] = {"app_crashed", "93027e9bbeeb42adb29016c058a2aa5b", LOG_ERR,
                           "app crashed on {node}"},
    [CS_EV_APP_RESTORED_LOCALLY] = {"app_restored_locally", "91a26f433b5f45949f1b4fd035ea702c",
                                    LOG_NOTICE,
                                    "app restored locally from generation {generation}"},
    [CS_EV_RESTORE_NOT_READY] = {"restore_not_ready", "81b5972853e34883a91c1bc5235460bd",
                                 LOG_WARNING, "restore not ready on {node}"},
    [CS_EV_RESTORE_FAILED] = {"restore_failed", "1e5a6d65bc8242be814a539c2443c5d8", LOG_CRIT,
                              "restore failed on {node}"},
};

static struct {
	char ident[32];
	bool journal;
	int max_priority;
	char node[64];
	char role[32];
	uint64_t term;
	bool have_state;
} st = {.ident = "checksyncd", .max_priority = LOG_INFO};

const char *cs_event_name(enum cs_event_kind kind)
{
	return (unsigned)kind < CS_EV__COUNT ? events[kind].name : NULL;
}

const char *cs_event_message_id(enum cs_event_kind kind)
{
	return (unsigned)kind < CS_EV__COUNT ? events[kind].id : NULL;
}

int cs_event_from_name(const char *name)
{
	for (int k = 0; k < CS_EV__COUNT; k++)
		if (strcmp(events[k].name, name) == 0)
			return k;
	return -1;
}

/* systemd.exec(5): $JOURNAL_STREAM is "device:inode" of the stream stderr
 * was connected to; if stderr still is that stream, the journal is there
 * and structured entries are better than lines. */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &sb) < 0)
		return false;
	return sb.st_dev == (dev_t)dev && sb.st_ino == (ino_t)ino;
}

void cs_journal_init(const char *ident, enum cs_log_target target)
{
	snprintf(st.ident, sizeof(st.ident), "%s", ident ? ident : "checksyncd");
	st.journal = target == CS_LOG_JOURNAL || (target == CS_LOG_AUTO && stderr_is_journal());
}

bool cs_journal_is_journal(void)
{
	return st.journal;
}

void cs_log_set_max_priority(int priority)
{
	st.max_priority = priority;
}

void cs_journal_set_node(const char *node)
{
	snprintf(st.node, sizeof(st.node), "%s", node ? node : "");
}

void cs_journal_set_state(const char *role, uint64_t term)
{
	snprintf(st.role, sizeof(st.role), "%s", role ? role : "");
	st.term = term;
	st.have_state = true;
}

/* One field of an entry: CHECKSYNC_<key> in the journal, key=value on stderr. */
struct field {
	const char *key;
	const char *value;
};

#define MAX_FIELDS 16

struct entry {
	int priority;
	const char *message_id; /* NULL for plain messages */
	const char *message;
	int err;    /* ERRNO=, 0 if none */
	bool plain; /* not an event: fields go to the journal only */
	struct field f[MAX_FIELDS];
	size_t n;
	char numbers[6][24]; /* storage for numeric fields */
	size_t n_numbers;
};

static void add_field(struct entry *e, const char *key, const char *value)
{
	if (value && *value && e->n < MAX_FIELDS)
		e->f[e->n++] = (struct field){key, value};
}

static void add_number(struct entry *e, const char *key, bool present, uint64_t value)
{
	if (!present || e->n_numbers >= 5)
		return;
	snprintf(e->numbers[e->n_numbers], sizeof(e->numbers[0]), "%" PRIu64, value);
	add_field(e, key, e->numbers[e->n_numbers++]);
}

static const char *field_value(const struct entry *e, const char *key, size_t len)
{
	for (size_t i = 0; i < e->n; i++)
		if (strlen(e->f[i].key) == len && strncasecmp(e->f[i].key, key, len) == 0)
			return e->f[i].value;
	return NULL;
}

/* Expands the {placeholders} of TEXT from the entry's fields. */
static void expand(const struct entry *e, const char *text, char *buf, size_t len)
{
	size_t used = 0;
	bool reason_used = false;

	buf[0] = '\0';
	for (const char *p = text; *p && used + 1 < len;) {
		const char *end = *p == '{' ? strchr(p, '}') : NULL, *v;
		size_t klen;
		int n;

		if (!end) {
			buf[used++] = *p++;
			buf[used] = '\0';
			continue;
		}
		klen = end - p - 1;
		v = field_value(e, p + 1, klen);
		reason_used |= klen == 6 && !strncmp(p + 1, "reason", 6);
		n = snprintf(buf + used, len - used, "%s", v ? v : "?");
		used = n < 0 ? used : used + n >= len ? len - 1 : used + n;
		p = end + 1;
	}
	if (!reason_used && field_value(e, "reason", 6))
		snprintf(buf + used, len - used, ": %s", field_value(e, "reason", 6));
}

/* Returns false when journald did not take the entry. */
static bool write_journal(const struct entry *e)
{
	struct iovec iov[MAX_FIELDS + 8];
	char *owned[MAX_FIELDS + 8];
	size_t n = 0;
	int r;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		if (asprintf(&owned[n], __VA_ARGS__) >= 0) {                                       \
			iov[n] = (struct iovec){owned[n], strlen(owned[n])};                       \
			n++;                                                                       \
		}                                                                                  \
	} while (0)
	ADD("MESSAGE=%s", e->message);
	ADD("PRIORITY=%d", e->priority);
	ADD("SYSLOG_IDENTIFIER=%s", st.ident);
	if (e->message_id)
		ADD("MESSAGE_ID=%s", e->message_id);
	if (e->err)
		ADD("ERRNO=%d", e->err);
	for (size_t i = 0; i < e->n; i++) {
		char key[32];
		size_t k;

		for (k = 0; e->f[i].key[k] && k + 1 < sizeof(key); k++)
			key[k] = (char)(e->f[i].key[k] >= 'a' && e->f[i].key[k] <= 'z'
			                    ? e->f[i].key[k] - 32
			                    : e->f[i].key[k]);
		key[k] = '\0';
		ADD("CHECKSYNC_%s=%s", key, e->f[i].value);
	}
#undef ADD
	r = sd_journal_sendv(iov, (int)n);
	for (size_t i = 0; i < n; i++)
		free(owned[i]);
	return r >= 0;
}

/* Control characters would break the one-line format (hook output). */
static void put_clean(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

static void write_line(const struct entry *e)
{
	static const char *const level[] = {
	    [LOG_EMERG] = "emergency: ", [LOG_ALERT] = "alert: ",     [LOG_CRIT] = "critical: ",
	    [LOG_ERR] = "error: ",       [LOG_WARNING] = "warning: ",
	};
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	flockfile(stderr);
	fprintf(stderr, "%02d:%02d:%02d.%03ld %s: %s", tm.tm_hour, tm.tm_min, tm.tm_sec,
	        ts.tv_nsec / 1000000, st.ident,
	        e->priority >= 0 && e->priority <= LOG_WARNING && level[e->priority]
	            ? level[e->priority]
	            : "");
	put_clean(stderr, e->message);
	if (e->n && !e->plain)
		fputs(" [", stderr);
	for (size_t i = 0; i < e->n && !e->plain; i++) {
		bool quote = strpbrk(e->f[i].value, " \t\"=") != NULL;

		fprintf(stderr, "%s%s=%s", i ? " " : "", e->f[i].key, quote ? "\"" : "");
		put_clean(stderr, e->f[i].value);
		fputs(quote ? "\"" : "", stderr);
	}
	fputs(e->n && !e->plain ? "]\n" : "\n", stderr);
	funlockfile(stderr);
}

static void write_entry(const struct entry *e)
{
	if (e->priority > st.max_priority)
		return;
	/* An entry journald refused (restarting, gone) still reaches stderr,
	 * which systemd also collects. */
	if (!st.journal || !write_journal(e))
		write_line(e);
}

void cs_event_emit(enum cs_event_kind kind, const struct cs_event_fields *f)
{
	const struct event_desc *d;
	struct entry e = {0};
	char message[1024];
	bool has_term = f->term || st.have_state;

	if ((unsigned)kind >= CS_EV__COUNT)
		return;
	d = &events[kind];
	add_field(&e, "event", d->name);
	add_field(&e, "node", st.node);
	add_field(&e, "peer", f->peer);
	add_field(&e, "role", f->role ? f->role : st.have_state ? st.role : NULL);
	add_field(&e, "old_role", f->old_role);
	add_number(&e, "term", has_term, f->term ? f->term : st.term);
	add_number(&e, "old_term", f->old_term, f->old_term);
	add_number(&e, "generation", f->generation, f->generation);
	add_number(&e, "duration_ms", f->has_duration, f->duration_ms);
	add_number(&e, "bytes", f->bytes, f->bytes);
	add_field(&e, "address", f->address);
	add_field(&e, "hook", f->hook);
	add_field(&e, "path", f->path);
	add_field(&e, "path_reason", f->path_reason);
	add_field(&e, "reason", f->reason);
	expand(&e, d->text, message, sizeof(message));
	e.priority = d->priority;
	e.message_id = d->id;
	e.message = message;
	write_entry(&e);
}

static void log_v(int priority, int err, const char *fmt, va_list ap)
{
	struct entry e = {.priority = priority, .err = err, .plain = true};
	char message[1024];
	size_t n;

	vsnprintf(message, sizeof(message), fmt, ap);
	n = strlen(message);
	if (err)
		snprintf(message + n, sizeof(message) - n, ": %s", strerror(err));
	add_field(&e, "node", st.node);
	e.message = message;
	write_entry(&e);
}

void cs_log(int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_v(priority, 0, fmt, ap);
	va_end(ap);
}

int cs_log_errno(int priority, int err, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	err = err < 0 ? -err : err;
	va_start(ap, fmt);
	log_v(priority, err, fmt, ap);
	va_end(ap);
	errno = saved;
	return -err;
}
