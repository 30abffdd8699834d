/* The warm standby: `checksync standby` as a child, its control socket,
 * its restarts, and its promotion. See standby.h. */
#include "standby.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "histogram.h"
#include "journal.h"
#include "proc.h"

#define LINE_MAX_BYTES     4096  /* the tool's lines are a few dozen bytes */
#define POLL_MS            1000  /* status asked this often: rss and state for the status */
#define PROMOTE_TIMEOUT_MS 10000 /* applying what is pending takes far less */
#define EOF_WAIT_MS        1000  /* a tool that closed its socket exits well within */
#define BACKOFF_MIN_MS     1000
#define BACKOFF_MAX_MS     30000

struct cs_standby {
	struct event_base *base;
	struct cs_standby_params p;
	enum cs_standby_state state;
	char why[300]; /* OFF: why none runs; FAILED: what failed */
	pid_t pid;     /* the tool, 0 when none runs */
	int pidfd, control;
	struct bufferevent *bev;
	struct event *exit_ev, *poll_ev, *promote_ev, *eof_ev;
	dev_t chain_dev; /* identity of the chain the tool was started on */
	ino_t chain_ino;
	uint64_t build_ms;
	uint64_t generation, rss, applied, last_apply_ms, last_apply_cpu_ms;
	uint64_t applied_bytes, applied_cpu_ms; /* sums: the cost of applying, per MiB */
	uint64_t skipped;                       /* generations the tool could not apply */
	uint64_t chain_newest, pending_gen, pending_since;
	unsigned failures;    /* in a row, for the backoff; reset by ready */
	uint64_t retry_at;    /* cs_monotonic_ms before which no tool starts */
	uint64_t starts;      /* tools started since the daemon started */
	struct cs_hist apply; /* seconds per applied generation */
	cs_standby_promoted_fn *done;
	void *done_arg;
	uint64_t promote_ms;
};

const char *cs_standby_state_name(enum cs_standby_state s)
{
	static const char *const names[] = {"off",      "building",  "ready",
	                                    "applying", "promoting", "failed"};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

const char *cs_failover_path_name(enum cs_failover_path p)
{
	return p == CS_PATH_STANDBY ? "standby" : "cold";
}

enum cs_failover_path cs_failover_path(const struct cs_standby_view *v, char *why, size_t cap)
{
	const char *sentence = v->why && *v->why ? v->why : "no reason given";

	switch (v->state) {
	case CS_STANDBY_READY:
	case CS_STANDBY_APPLYING:
		break;
	case CS_STANDBY_OFF:
		snprintf(why, cap, "off: %s", sentence);
		return CS_PATH_COLD;
	case CS_STANDBY_BUILDING:
		snprintf(why, cap, "building: the standby is not ready yet");
		return CS_PATH_COLD;
	case CS_STANDBY_PROMOTING:
		snprintf(why, cap, "failed: a promotion of the standby is under way already");
		return CS_PATH_COLD;
	default:
		snprintf(why, cap, "failed: %s", sentence);
		return CS_PATH_COLD;
	}
	if (!v->same_chain) {
		snprintf(why, cap,
		         "behind: the chain was replaced by another lineage since the "
		         "standby was built");
		return CS_PATH_COLD;
	}
	if (v->generation < v->chain_newest && v->behind_ms > CS_STANDBY_BEHIND_MS) {
		snprintf(why, cap,
		         "behind: the standby holds generation %" PRIu64 ", the chain has held "
		         "a newer one (now %" PRIu64 ") for %" PRIu64 " ms",
		         v->generation, v->chain_newest, v->behind_ms);
		return CS_PATH_COLD;
	}
	snprintf(why, cap, "ready at generation %" PRIu64, v->generation);
	return CS_PATH_STANDBY;
}

static void set_state(struct cs_standby *s, enum cs_standby_state to, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Every change of state goes through here, logged with its reason. */
static void set_state(struct cs_standby *s, enum cs_standby_state to, const char *fmt, ...)
{
	va_list ap;
	char why[sizeof(s->why)];

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* Off stays off quietly whatever the reason: it changes with every
	 * role change. */
	if (s->state != to || (to != CS_STANDBY_OFF && strcmp(s->why, why) != 0))
		cs_log(to == CS_STANDBY_FAILED ? LOG_WARNING : LOG_INFO, "standby: %s -> %s (%s)",
		       cs_standby_state_name(s->state), cs_standby_state_name(to), why);
	s->state = to;
	memcpy(s->why, why, sizeof(why));
}

static bool chain_id(const char *dir, dev_t *dev, ino_t *ino)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return false;
	*dev = st.st_dev;
	*ino = st.st_ino;
	return true;
}

static bool same_chain(const struct cs_standby *s)
{
	dev_t dev;
	ino_t ino;

	return chain_id(s->p.chain_dir, &dev, &ino) && dev == s->chain_dev && ino == s->chain_ino;
}

/* ---- the tool's process ---- */

/* Forgets the tool without killing it (it is gone, or handed over). */
static void drop_tool(struct cs_standby *s)
{
	if (s->bev)
		bufferevent_free(s->bev);
	if (s->exit_ev)
		event_free(s->exit_ev);
	s->bev = NULL;
	s->exit_ev = NULL;
	evtimer_del(s->poll_ev);
	evtimer_del(s->promote_ev);
	evtimer_del(s->eof_ev);
	if (s->control >= 0)
		close(s->control);
	if (s->pidfd >= 0)
		close(s->pidfd);
	s->control = s->pidfd = -1;
	s->pid = 0;
	s->pending_gen = s->pending_since = 0;
}

static void kill_tool(struct cs_standby *s, const char *why)
{
	if (!s->pid)
		return;
	cs_proc_stop(s->pid, "standby", why);
	drop_tool(s);
}

/* A promotion waiting for its answer gets it now, once. */
static void answer_promote(struct cs_standby *s, int err, const struct cs_standby_handover *h,
                           const char *why)
{
	cs_standby_promoted_fn *done = s->done;

	s->done = NULL;
	if (done)
		done(s->done_arg, err, h, why);
}

/* The tool failed (why: the sentence): it is killed, a new one comes after
 * the backoff, and a promotion waiting learns it (prefix: "refused" when
 * the tool said error, "failed" otherwise). */
static void fail(struct cs_standby *s, const char *prefix, const char *why)
{
	unsigned shift = s->failures < 5 ? s->failures : 5;
	uint64_t backoff = (uint64_t)BACKOFF_MIN_MS << shift;
	bool promoting = s->state == CS_STANDBY_PROMOTING;
	char sentence[sizeof(s->why)];

	snprintf(sentence, sizeof(sentence), "%s", why);
	kill_tool(s, sentence);
	s->failures++;
	s->retry_at = cs_monotonic_ms() + (backoff < BACKOFF_MAX_MS ? backoff : BACKOFF_MAX_MS);
	set_state(s, CS_STANDBY_FAILED, "%s", sentence);
	if (promoting) {
		char msg[sizeof(s->why) + 16];

		snprintf(msg, sizeof(msg), "%s: %s", prefix, sentence);
		answer_promote(s, -EIO, NULL, msg);
	}
}

static void exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs_standby *s = arg;
	char why[128];
	int st = 0;

	(void)fd, (void)what;
	if (waitpid(s->pid, &st, WNOHANG) != s->pid)
		return;
	cs_proc_kill_tree(s->pid, 0); /* what it left in its namespace, if anything */
	if (WIFSIGNALED(st))
		snprintf(why, sizeof(why), "the standby tool was killed by signal %d",
		         WTERMSIG(st));
	else
		snprintf(why, sizeof(why), "the standby tool exited with status %d",
		         WEXITSTATUS(st));
	s->pid = 0; /* reaped: nothing to kill */
	drop_tool(s);
	fail(s, "failed", why);
}

/* ---- the control socket ---- */

/* One message per line and one line per packet: the tool may read a
 * SOCK_SEQPACKET message as one line. */
static int send_line(struct cs_standby *s, const char *line)
{
	if (send(s->control, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return cs_log_warn_errno(errno, "standby: cannot send \"%.*s\" to the tool",
		                         (int)strcspn(line, "\n"), line);
	return 0;
}

/* key=N of a line whose free text (why=...) was cut off. */
static bool field_u64(const char *fields, const char *key, uint64_t *out)
{
	size_t len = strlen(key);

	for (const char *p = strstr(fields, key); p; p = strstr(p + len, key))
		if ((p == fields || p[-1] == ' ') && p[len] == '=')
			return sscanf(p + len + 1, "%" SCNu64, out) == 1;
	return false;
}

static void on_ready(struct cs_standby *s, const char *f)
{
	field_u64(f, "generation", &s->generation);
	field_u64(f, "rss", &s->rss);
	field_u64(f, "ms", &s->build_ms);
	s->failures = 0;
	set_state(s, CS_STANDBY_READY, "built from generation %" PRIu64 " in %" PRIu64 " ms",
	          s->generation, s->build_ms);
}

static void on_applied(struct cs_standby *s, const char *f)
{
	uint64_t ms = 0, bytes = 0;

	field_u64(f, "generation", &s->generation);
	if (field_u64(f, "cpu_ms", &s->last_apply_cpu_ms))
		s->applied_cpu_ms += s->last_apply_cpu_ms;
	if (field_u64(f, "bytes", &bytes))
		s->applied_bytes += bytes;
	if (field_u64(f, "ms", &ms)) {
		s->last_apply_ms = ms;
		cs_hist_observe(&s->apply, (double)ms / 1000);
	}
	s->applied++;
	if (s->state == CS_STANDBY_APPLYING)
		set_state(s, CS_STANDBY_READY,
		          "built from generation %" PRIu64 " in %" PRIu64 " ms", s->generation,
		          s->build_ms);
}

/* The answer to status; it never overrides a promotion in progress. */
static void on_status(struct cs_standby *s, const char *f)
{
	static const char *const states[] = {[CS_STANDBY_BUILDING] = "state=building",
	                                     [CS_STANDBY_READY] = "state=ready",
	                                     [CS_STANDBY_APPLYING] = "state=applying"};

	field_u64(f, "generation", &s->generation);
	field_u64(f, "rss", &s->rss);
	if (s->state == CS_STANDBY_PROMOTING)
		return;
	for (unsigned i = CS_STANDBY_BUILDING; i <= CS_STANDBY_APPLYING; i++)
		if (strstr(f, states[i]) && s->state != i)
			set_state(s, i, "the tool says so (status)");
}

static void on_promoted(struct cs_standby *s, const char *f)
{
	struct cs_standby_handover h = {.pid = s->pid, .pidfd = s->pidfd, .control_fd = s->control};
	uint64_t pid = 0;

	if (s->state != CS_STANDBY_PROMOTING) {
		fail(s, "failed", "the standby tool said promoted, but no promotion was asked for");
		return;
	}
	field_u64(f, "generation", &h.generation);
	field_u64(f, "ms", &h.ms);
	field_u64(f, "pid", &pid);
	cs_log_notice("standby promoted: generation %" PRIu64 ", app pid %" PRIu64 ", %" PRIu64
	              " ms in the tool, %" PRIu64 " ms since promote was sent",
	              h.generation, pid, h.ms, cs_monotonic_ms() - s->promote_ms);
	/* The tool's process, pidfd and socket are the caller's now. */
	s->pidfd = s->control = -1;
	s->pid = 0;
	drop_tool(s);
	set_state(s, CS_STANDBY_OFF, "promoted: the standby became the app");
	answer_promote(s, 0, &h, "promoted");
}

/* A generation the tool cannot apply (its restore checks refuse it): the
 * standby stays on the one it holds, and falls behind if none follows. */
static void on_skipped(struct cs_standby *s, const char *f, const char *why)
{
	uint64_t g = 0;

	field_u64(f, "generation", &g);
	s->skipped++;
	cs_log_warn("standby: generation %" PRIu64 " skipped, it stays at %" PRIu64 ": %s", g,
	            s->generation, why);
}

static void handle_line(struct cs_standby *s, char *line)
{
	char *why = strstr(line, " why=");
	char sentence[sizeof(s->why)];

	snprintf(sentence, sizeof(sentence), "%s", why ? why + 5 : "no reason given");
	if (why)
		*why = '\0'; /* fields are looked for before the free text only */
	if (strncmp(line, "ready ", 6) == 0)
		on_ready(s, line);
	else if (strncmp(line, "applied ", 8) == 0)
		on_applied(s, line);
	else if (strncmp(line, "status ", 7) == 0)
		on_status(s, line);
	else if (strncmp(line, "promoted ", 9) == 0)
		on_promoted(s, line);
	else if (strncmp(line, "skipped ", 8) == 0)
		on_skipped(s, line, sentence);
	else if (strncmp(line, "rebuilding ", 11) == 0)
		set_state(s, CS_STANDBY_BUILDING, "rebuilding: %s", sentence);
	else if (strncmp(line, "error", 5) == 0 && (line[5] == ' ' || !line[5]))
		fail(s, "refused", sentence);
	else
		cs_log_debug("standby: ignoring \"%s\" from the tool", line);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct cs_standby *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;

	/* Each handler may end the tool (and free bev): stop reading then. */
	while (s->bev == bev && (line = evbuffer_readln(in, NULL, EVBUFFER_EOL_LF))) {
		handle_line(s, line);
		free(line);
	}
	if (s->bev == bev && evbuffer_get_length(in) > LINE_MAX_BYTES)
		fail(s, "failed", "the standby tool sent a line longer than 4096 bytes");
}

static void eof_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	fail(arg, "failed", "the standby tool closed its control socket but did not exit");
}

/* The socket closes when the tool exits, usually a moment before its exit
 * is seen: wait for the exit, whose status says more. */
static void control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct cs_standby *s = arg;
	struct timeval tv = {EOF_WAIT_MS / 1000, (EOF_WAIT_MS % 1000) * 1000};

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		bufferevent_disable(bev, EV_READ);
		evtimer_add(s->eof_ev, &tv);
	}
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs_standby *s = arg;
	struct timeval tv = {POLL_MS / 1000, (POLL_MS % 1000) * 1000};

	(void)fd, (void)what;
	if (!s->pid || s->state == CS_STANDBY_PROMOTING)
		return;
	send_line(s, "status\n");
	evtimer_add(s->poll_ev, &tv);
}

/* ---- life ---- */

static int watch_tool(struct cs_standby *s)
{
	struct timeval now = {0, 0};

	s->bev = bufferevent_socket_new(s->base, s->control, 0); /* s->control is closed by us */
	s->exit_ev = event_new(s->base, s->pidfd, EV_READ, exit_cb, s);
	if (!s->bev || !s->exit_ev || event_add(s->exit_ev, NULL) < 0)
		return -ENOMEM;
	bufferevent_setcb(s->bev, read_cb, NULL, control_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, LINE_MAX_BYTES * 2);
	if (bufferevent_enable(s->bev, EV_READ) < 0)
		return -ENOMEM;
	evtimer_add(s->poll_ev, &now);
	return 0;
}

static void start_tool(struct cs_standby *s)
{
	char *argv[] = {(char *)s->p.tool, "standby", "--dir", (char *)s->p.chain_dir,
	                "--control-fd",    "3",       NULL};
	char why[200];
	int sv[2], r;

	if (!chain_id(s->p.chain_dir, &s->chain_dev, &s->chain_ino) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(why, sizeof(why), "cannot start the standby tool: %s", strerror(errno));
		fail(s, "failed", why);
		return;
	}
	r = cs_proc_spawn(s->p.tool, argv, s->p.env, sv[1], &s->pid, &s->pidfd);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		s->pid = 0;
		snprintf(why, sizeof(why), "cannot start the standby tool %s: %s", s->p.tool,
		         strerror(-r));
		fail(s, "failed", why);
		return;
	}
	s->control = sv[0];
	evutil_make_socket_nonblocking(s->control); /* ours only: the tool's end blocks */
	s->starts++;
	s->generation = s->rss = 0;
	set_state(s, CS_STANDBY_BUILDING, "tool pid %d started on %s", (int)s->pid, s->p.chain_dir);
	if (watch_tool(s) < 0)
		fail(s, "failed", "the standby tool cannot be watched (out of memory)");
}

/* How long the chain has held a generation the standby has not reached. */
static void track_lag(struct cs_standby *s, uint64_t newest)
{
	s->chain_newest = newest;
	if (!s->pid || s->generation >= newest) {
		s->pending_gen = s->pending_since = 0;
		return;
	}
	if (s->pending_gen && s->generation >= s->pending_gen)
		s->pending_gen = 0;
	if (!s->pending_gen) {
		s->pending_gen = newest;
		s->pending_since = cs_monotonic_ms();
	}
}

void cs_standby_want(struct cs_standby *s, enum cs_standby_wish wish, uint64_t chain_newest,
                     const char *why)
{
	if (s->state == CS_STANDBY_PROMOTING)
		return; /* the promotion decides */
	if (wish == CS_STANDBY_NONE) {
		kill_tool(s, why);
		s->failures = 0;
		s->retry_at = 0;
		set_state(s, CS_STANDBY_OFF, "%s", why);
		return;
	}
	if (s->pid && !same_chain(s)) {
		kill_tool(s, "the chain was replaced by another lineage");
		set_state(s, CS_STANDBY_OFF, "the chain was replaced by another lineage");
	}
	if (!s->pid && wish == CS_STANDBY_RUN && cs_monotonic_ms() >= s->retry_at)
		start_tool(s);
	else if (!s->pid && s->state == CS_STANDBY_OFF)
		set_state(s, CS_STANDBY_OFF, "%s", why);
	track_lag(s, chain_newest);
}

void cs_standby_stop(struct cs_standby *s, const char *why)
{
	s->done = NULL; /* the caller knows */
	kill_tool(s, why);
	set_state(s, CS_STANDBY_OFF, "%s", why);
}

void cs_standby_view(struct cs_standby *s, struct cs_standby_view *v)
{
	*v = (struct cs_standby_view){.state = s->state,
	                              .why = s->why,
	                              .generation = s->generation,
	                              .chain_newest = s->chain_newest,
	                              .same_chain = s->pid && same_chain(s)};
	if (s->pending_gen && s->generation < s->pending_gen)
		v->behind_ms = cs_monotonic_ms() - s->pending_since;
}

static void promote_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	fail(arg, "failed", "the standby tool did not answer promote within 10000 ms");
}

int cs_standby_promote(struct cs_standby *s, uint64_t next_generation, cs_standby_promoted_fn *done,
                       void *arg)
{
	struct timeval tv = {PROMOTE_TIMEOUT_MS / 1000, 0};
	char line[64];

	if (!s->pid || (s->state != CS_STANDBY_READY && s->state != CS_STANDBY_APPLYING))
		return -EAGAIN;
	snprintf(line, sizeof(line), "promote next_generation=%" PRIu64 "\n", next_generation);
	if (send_line(s, line) < 0) {
		fail(s, "failed", "promote could not be sent to the standby tool");
		return -EAGAIN;
	}
	s->done = done;
	s->done_arg = arg;
	s->promote_ms = cs_monotonic_ms();
	evtimer_add(s->promote_ev, &tv);
	set_state(s, CS_STANDBY_PROMOTING, "promote next_generation=%" PRIu64 " sent",
	          next_generation);
	return 0;
}

json_t *cs_standby_status(const struct cs_standby *s)
{
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	                 "state", cs_standby_state_name(s->state), "why", s->why, "pid",
	                 (json_int_t)s->pid, "generation", (json_int_t)s->generation, "rss_bytes",
	                 (json_int_t)s->rss, "applied", (json_int_t)s->applied, "last_apply_ms",
	                 (json_int_t)s->last_apply_ms, "last_apply_cpu_ms",
	                 (json_int_t)s->last_apply_cpu_ms, "applied_bytes",
	                 (json_int_t)s->applied_bytes, "applied_cpu_ms",
	                 (json_int_t)s->applied_cpu_ms, "build_ms", (json_int_t)s->build_ms,
	                 "starts", (json_int_t)s->starts, "skipped", (json_int_t)s->skipped);
}

json_t *cs_standby_apply_json(const struct cs_standby *s)
{
	return cs_hist_json(&s->apply);
}

int cs_standby_new(struct event_base *base, const struct cs_standby_params *p,
                   struct cs_standby **out)
{
	struct cs_standby *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->base = base;
	s->p = *p;
	s->pidfd = s->control = -1;
	snprintf(s->why, sizeof(s->why), "the daemon has just started");
	cs_hist_init(&s->apply, cs_hist_seconds, cs_hist_seconds_n);
	s->poll_ev = evtimer_new(base, poll_cb, s);
	s->promote_ev = evtimer_new(base, promote_timeout_cb, s);
	s->eof_ev = evtimer_new(base, eof_cb, s);
	if (!s->poll_ev || !s->promote_ev || !s->eof_ev) {
		cs_standby_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void cs_standby_free(struct cs_standby *s)
{
	if (!s)
		return;
	s->done = NULL;
	kill_tool(s, "daemon stopping");
	if (s->poll_ev)
		event_free(s->poll_ev);
	if (s->promote_ev)
		event_free(s->promote_ev);
	if (s->eof_ev)
		event_free(s->eof_ev);
	free(s);
}
