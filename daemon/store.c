/* The checkpoint store: the chain directory, received images, stale chains
 * and compaction on backups. See store.h. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "image.h"
#include "journal.h"

#define WRITEBACK_EVERY   (8ull << 20) /* start writeback early: a short fsync at the end */
#define COMPACT_IMAGES    64           /* deltas since the newest full image */
#define COMPACT_MIN_BYTES (64ull << 20)

struct transfer {
	bool active;
	bool staged; /* into incoming/: a base of another lineage */
	int fd;
	uint64_t term, generation, total, received, since_writeback;
	uint8_t kind;
	EVP_MD_CTX *sha;
	char tmp[PATH_MAX + 48];
};

struct cs_store {
	struct event_base *base;
	struct cs_store_params p;
	char state[PATH_MAX], chain[PATH_MAX], incoming[PATH_MAX], stale[PATH_MAX];
	uint64_t newest, lineage;
	uint64_t deltas, delta_bytes, base_bytes; /* since the newest full image */
	uint64_t received_images, received_bytes;
	struct transfer t;
	pid_t compactor;
	int compactor_fd;
	struct event *compactor_ev;
	uint64_t compactions;
};

static int fail(char *why, size_t cap, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *why, size_t cap, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return -abs(err);
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = fd < 0 || fsync(fd) < 0 ? -errno : 0;

	if (fd >= 0)
		close(fd);
	return r;
}

void cs_chain_walk(const char *dir, bool sizes,
                   void (*fn)(void *arg, const struct cs_chain_entry *e), void *arg)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		struct cs_chain_entry e = {.dir_fd = dirfd(d), .name = de->d_name};
		struct stat st;
		int tmp;

		if (cs_image_name_parse(de->d_name, &e.generation, &tmp) < 0)
			continue;
		e.tmp = tmp;
		if (sizes && fstatat(e.dir_fd, de->d_name, &st, 0) == 0)
			e.bytes = (uint64_t)st.st_size;
		fn(arg, &e);
	}
	if (d)
		closedir(d);
}

struct scan {
	bool clean;
	uint64_t newest, bytes;
};

static void scan_one(void *arg, const struct cs_chain_entry *e)
{
	struct scan *sc = arg;

	if (e->tmp && sc->clean)
		unlinkat(e->dir_fd, e->name, 0);
	if (e->tmp)
		return;
	if (e->generation > sc->newest)
		sc->newest = e->generation;
	sc->bytes += e->bytes;
}

/* Newest complete generation in dir; removes .tmp files when clean. */
static uint64_t scan(const char *dir, bool clean)
{
	struct scan sc = {.clean = clean};

	cs_chain_walk(dir, false, scan_one, &sc);
	return sc.newest;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	rmdir(dir);
}

static uint64_t read_lineage(const char *chain)
{
	char path[PATH_MAX];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/lineage", chain);
	if ((f = fopen(path, "re"))) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static int write_lineage(const char *chain, uint64_t term)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	FILE *f;
	int r = 0;

	snprintf(path, sizeof(path), "%s/lineage", chain);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	if (!(f = fopen(tmp, "we")))
		return -errno;
	if (fprintf(f, "%" PRIu64 "\n", term) < 0 || fflush(f) || fsync(fileno(f)))
		r = -errno;
	if (fclose(f) && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	return r ? r : fsync_dir(chain);
}

int cs_store_set_lineage(struct cs_store *s, uint64_t term)
{
	int r;

	if (s->lineage == term)
		return 0;
	r = write_lineage(s->chain, term);
	if (r < 0)
		return cs_log_err_errno(r, "cannot record the lineage of %s", s->chain);
	s->lineage = term;
	return 0;
}

int cs_store_open(struct event_base *base, const struct cs_store_params *p, struct cs_store **out)
{
	struct cs_store *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->base = base;
	s->p = *p;
	s->t.fd = s->compactor_fd = -1;
	snprintf(s->state, sizeof(s->state), "%s", p->state_dir);
	snprintf(s->chain, sizeof(s->chain), "%s/chain", p->state_dir);
	snprintf(s->incoming, sizeof(s->incoming), "%s/incoming", p->state_dir);
	snprintf(s->stale, sizeof(s->stale), "%s/stale", p->state_dir);
	remove_tree(s->incoming); /* a base of a new lineage that never completed */
	if ((mkdir(s->chain, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(s->stale, 0700) < 0 && errno != EEXIST)) {
		int e = errno;

		free(s);
		return cs_log_err_errno(e, "cannot create the chain directories under %s",
		                        p->state_dir);
	}
	s->newest = scan(s->chain, true);
	s->lineage = read_lineage(s->chain);
	*out = s;
	return 0;
}

static void stop_compactor(struct cs_store *s)
{
	if (!s->compactor)
		return;
	kill(s->compactor, SIGKILL);
	waitpid(s->compactor, NULL, 0);
	event_free(s->compactor_ev);
	close(s->compactor_fd);
	s->compactor = 0;
	s->compactor_fd = -1;
}

void cs_store_free(struct cs_store *s)
{
	if (!s)
		return;
	cs_store_abort(s);
	stop_compactor(s);
	free(s);
}

const char *cs_store_chain_dir(const struct cs_store *s)
{
	return s->chain;
}

uint64_t cs_store_rescan(struct cs_store *s)
{
	s->newest = scan(s->chain, false);
	return s->newest;
}

uint64_t cs_store_bytes(const struct cs_store *s)
{
	struct scan sc = {.clean = false};

	cs_chain_walk(s->chain, true, scan_one, &sc);
	return sc.bytes;
}

uint64_t cs_store_newest(const struct cs_store *s)
{
	return s->newest;
}

uint64_t cs_store_lineage(const struct cs_store *s)
{
	return s->lineage;
}

bool cs_store_receiving(const struct cs_store *s)
{
	return s->t.active;
}

/* ---- receiving ---- */

void cs_store_abort(struct cs_store *s)
{
	struct transfer *t = &s->t;

	if (!t->active)
		return;
	close(t->fd);
	unlink(t->tmp);
	EVP_MD_CTX_free(t->sha);
	memset(t, 0, sizeof(*t));
	t->fd = -1;
}

static bool parent_here(const struct cs_store *s, uint64_t parent)
{
	char path[PATH_MAX + 48], name[40];

	cs_image_filename(name, sizeof(name), parent);
	snprintf(path, sizeof(path), "%s/%s", s->chain, name);
	return access(path, F_OK) == 0;
}

int cs_store_begin(struct cs_store *s, uint64_t term, const struct cs_msg_ckpt_begin *b, char *why,
                   size_t cap)
{
	struct transfer *t = &s->t;
	bool base = b->kind == CS_CKPT_BASE;
	char name[40];

	cs_store_abort(s);
	if (!base && (s->lineage != term || !parent_here(s, b->parent_generation)))
		return fail(why, cap, ENOENT,
		            "delta %" PRIu64 " needs generation %" PRIu64 " of term %" PRIu64
		            ", which this chain does not hold",
		            b->generation, b->parent_generation, term);
	t->staged = base && s->lineage != term;
	if (t->staged && mkdir(s->incoming, 0700) < 0 && errno != EEXIST)
		return fail(why, cap, errno, "cannot create %s: %s", s->incoming, strerror(errno));
	cs_image_filename(name, sizeof(name), b->generation);
	snprintf(t->tmp, sizeof(t->tmp), "%s/%s.tmp", t->staged ? s->incoming : s->chain, name);
	t->fd = open(t->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (t->fd < 0)
		return fail(why, cap, errno, "cannot create %s: %s", t->tmp, strerror(errno));
	t->sha = EVP_MD_CTX_new();
	if (!t->sha || !EVP_DigestInit_ex(t->sha, EVP_sha256(), NULL)) {
		close(t->fd);
		unlink(t->tmp);
		EVP_MD_CTX_free(t->sha);
		t->fd = -1;
		return fail(why, cap, ENOMEM, "cannot start a SHA-256 digest");
	}
	t->active = true;
	t->term = term;
	t->generation = b->generation;
	t->total = b->total_bytes;
	t->kind = b->kind;
	t->received = t->since_writeback = 0;
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int cs_store_pages(struct cs_store *s, const struct cs_msg_ckpt_pages *p, char *why, size_t cap)
{
	struct transfer *t = &s->t;
	int r;

	if (!t->active || p->generation != t->generation || p->offset != t->received ||
	    p->data.len > t->total - t->received) {
		r = fail(why, cap, EPROTO,
		         "pages of generation %" PRIu64 " at offset %" PRIu64
		         " (%u bytes) do not continue the transfer",
		         p->generation, p->offset, p->data.len);
		cs_store_abort(s);
		return r;
	}
	r = write_all(t->fd, p->data.ptr, p->data.len);
	if (r < 0) {
		r = fail(why, cap, r, "cannot write %s: %s", t->tmp, strerror(-r));
		cs_store_abort(s);
		return r;
	}
	EVP_DigestUpdate(t->sha, p->data.ptr, p->data.len);
	t->received += p->data.len;
	t->since_writeback += p->data.len;
	if (t->since_writeback >= WRITEBACK_EVERY) {
		sync_file_range(t->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		t->since_writeback = 0;
	}
	return 0;
}

/* Moves the chain aside and puts the completed base of a new lineage in
 * its place; keeps the newest keep_stale old chains. */
static int swap_in(struct cs_store *s, char *why, size_t cap);

static void account(struct cs_store *s, uint64_t bytes)
{
	s->received_images++;
	s->received_bytes += bytes;
	if (s->t.kind == CS_CKPT_BASE) {
		s->deltas = s->delta_bytes = 0;
		s->base_bytes = bytes;
	} else {
		s->deltas++;
		s->delta_bytes += bytes;
	}
}

static int finish_file(struct cs_store *s, const struct cs_msg_ckpt_end *e, char *final,
                       size_t fcap, char *why, size_t cap)
{
	struct transfer *t = &s->t;
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	char name[40];

	if (e->generation != t->generation || e->total_bytes != t->total || t->received != t->total)
		return fail(why, cap, EBADMSG,
		            "generation %" PRIu64 " ended at %" PRIu64 " of %" PRIu64 " bytes",
		            t->generation, t->received, t->total);
	EVP_DigestFinal_ex(t->sha, digest, &dlen);
	if (dlen != CS_DIGEST_SIZE || memcmp(digest, e->sha256, CS_DIGEST_SIZE) != 0)
		return fail(why, cap, EBADMSG,
		            "generation %" PRIu64 ": SHA-256 of the %" PRIu64
		            " bytes received differs from the sender's",
		            t->generation, t->received);
	if (s->p.fsync && fsync(t->fd) < 0)
		return fail(why, cap, errno, "cannot fsync %s: %s", t->tmp, strerror(errno));
	if (!s->p.fsync)
		sync_file_range(t->fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* written behind */
	cs_image_filename(name, sizeof(name), t->generation);
	snprintf(final, fcap, "%s/%s", t->staged ? s->incoming : s->chain, name);
	if (rename(t->tmp, final) < 0)
		return fail(why, cap, errno, "cannot rename %s: %s", t->tmp, strerror(errno));
	if (s->p.fsync && fsync_dir(t->staged ? s->incoming : s->chain) < 0)
		return fail(why, cap, errno, "cannot fsync the directory of %s", final);
	return 0;
}

int cs_store_end(struct cs_store *s, const struct cs_msg_ckpt_end *e, bool *ret_durable, char *why,
                 size_t cap)
{
	struct transfer *t = &s->t;
	char final[PATH_MAX + 48];
	int r;

	if (!t->active)
		return fail(why, cap, EPROTO, "end of generation %" PRIu64 " without a transfer",
		            e->generation);
	r = finish_file(s, e, final, sizeof(final), why, cap);
	if (r == 0 && t->staged)
		r = swap_in(s, why, cap);
	if (r < 0) {
		if (!t->staged)
			unlink(final); /* a renamed file stays only if the whole step worked */
		cs_store_abort(s);
		return r;
	}
	account(s, t->total);
	if (t->generation > s->newest || t->staged)
		s->newest = t->generation;
	close(t->fd);
	EVP_MD_CTX_free(t->sha);
	t->fd = -1;
	t->sha = NULL;
	t->active = false;
	*ret_durable = s->p.fsync;
	return 0;
}

/* ---- stale chains ---- */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes all but the newest keep_stale entries of state/stale (their names
 * start with a zero-padded time, so they sort by age). */
static void prune_stale(struct cs_store *s)
{
	DIR *d = opendir(s->stale);
	struct dirent *e;
	char *names[256];
	size_t n = 0;

	while (d && (e = readdir(d)) && n < 256)
		if (e->d_name[0] != '.')
			names[n++] = strdup(e->d_name);
	if (d)
		closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_names);
	for (size_t i = 0; i < n; i++) {
		if (names[i] && i + s->p.keep_stale < n) {
			char path[PATH_MAX + 300];

			snprintf(path, sizeof(path), "%s/%s", s->stale, names[i]);
			remove_tree(path);
		}
		free(names[i]);
	}
}

static int swap_in(struct cs_store *s, char *why, size_t cap)
{
	char aside[PATH_MAX + 64];
	int r;

	stop_compactor(s); /* it works on the chain by path */
	r = write_lineage(s->incoming, s->t.term);
	if (r < 0)
		return fail(why, cap, r, "cannot record the lineage in %s", s->incoming);
	snprintf(aside, sizeof(aside), "%s/%010lld-term-%" PRIu64, s->stale, (long long)time(NULL),
	         s->lineage);
	if (rename(s->chain, aside) < 0)
		return fail(why, cap, errno, "cannot move %s aside: %s", s->chain, strerror(errno));
	if (rename(s->incoming, s->chain) < 0) {
		r = -errno;
		rename(aside, s->chain);
		return fail(why, cap, r, "cannot move %s into place: %s", s->incoming,
		            strerror(-r));
	}
	fsync_dir(s->state);
	cs_log_notice("chain of term %" PRIu64 " moved to %s; the chain is now term %" PRIu64
	              "'s from generation %" PRIu64,
	              s->lineage, aside, s->t.term, s->t.generation);
	s->lineage = s->t.term;
	prune_stale(s);
	return 0;
}

/* ---- compaction ---- */

static void compactor_done(evutil_socket_t fd, short what, void *arg)
{
	struct cs_store *s = arg;
	int st = 0;

	(void)fd, (void)what;
	if (waitpid(s->compactor, &st, WNOHANG) != s->compactor)
		return;
	event_free(s->compactor_ev);
	close(s->compactor_fd);
	s->compactor = 0;
	s->compactor_fd = -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		s->compactions++;
		s->deltas = s->delta_bytes = 0;
	} else {
		cs_log_warn("compaction of %s failed (status 0x%x); the chain keeps its deltas",
		            s->chain, st);
	}
}

void cs_store_maybe_compact(struct cs_store *s)
{
	uint64_t limit = s->base_bytes > COMPACT_MIN_BYTES ? s->base_bytes : COMPACT_MIN_BYTES;
	pid_t pid;

	if (s->compactor || !s->p.tool || (s->deltas < COMPACT_IMAGES && s->delta_bytes < limit))
		return;
	pid = fork();
	if (pid < 0)
		return;
	if (pid == 0) {
		setpriority(PRIO_PROCESS, 0, 19);
		close_range(3, ~0u, 0);
		execl(s->p.tool, s->p.tool, "compact", s->chain, (char *)NULL);
		_exit(127);
	}
	s->compactor = pid;
	s->compactor_fd = (int)syscall(SYS_pidfd_open, pid, 0);
	s->compactor_ev = event_new(s->base, s->compactor_fd, EV_READ, compactor_done, s);
	if (s->compactor_fd < 0 || !s->compactor_ev || event_add(s->compactor_ev, NULL) < 0)
		stop_compactor(s);
}

json_t *cs_store_status(const struct cs_store *s)
{
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:I}", "chain", s->chain, "newest",
	                 (json_int_t)s->newest, "lineage_term", (json_int_t)s->lineage,
	                 "received_images", (json_int_t)s->received_images, "received_bytes",
	                 (json_int_t)s->received_bytes, "deltas_since_base", (json_int_t)s->deltas,
	                 "compacting", s->compactor != 0, "compactions",
	                 (json_int_t)s->compactions);
}
