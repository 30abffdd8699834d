/* Replication from the primary's chain directory to every backup. See
 * replicate.h. */
#include "replicate.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "clock.h"
#include "histogram.h"
#include "image.h"
#include "journal.h"
#include "store.h"

#define CHUNK           (1u << 20) /* image bytes per CKPT_PAGES */
#define HEADER_PEEK     4096u      /* enough for the HEADER section */
#define RETRY_MS        300        /* after a refusal, before a new session */
#define LAG_GENERATIONS 20         /* unacknowledged generations that make a backup lagging */
#define TICK_MS         100

struct backup {
	bool backup, up, session, lagging, degraded;
	/* the image being sent */
	int fd;
	uint64_t gen, off, total;
	EVP_MD_CTX *sha;
	uint64_t first, last_sent, acked;
	uint64_t retry_at, sent_bytes, sessions;
	char error[200];
};

struct cs_repl {
	struct event_base *base;
	struct cs_repl_params p;
	struct cs_repl_ops ops;
	void *ctx;
	struct backup *b;
	uint64_t term; /* 0: not primary */
	int inotify_fd;
	struct event *inotify_ev, *tick;
	uint8_t *chunk;
	/* Fault injection for tests (CHECKSYNC_TEST_CORRUPT_IMAGES=N): the
	 * first N images sent have a byte flipped in transit, as a sender with
	 * bad memory would send them; backups must refuse each and the sender
	 * start over. Not a configuration key on purpose. */
	unsigned corrupt_left;
	/* New generations the app wrote while this node was primary (metrics),
	 * and their sizes by kind (full image or delta). */
	uint64_t counted, images, image_bytes;
	struct cs_hist size_base, size_delta;
};

/* ---- the chain directory ---- */

struct after {
	uint64_t after;
	uint64_t next, newest; /* the smallest newer than after; the newest */
	uint64_t count, bytes; /* newer than after */
};

static void after_one(void *arg, const struct cs_chain_entry *e)
{
	struct after *a = arg;

	if (e->tmp)
		return;
	if (e->generation > a->newest)
		a->newest = e->generation;
	if (e->generation <= a->after)
		return;
	if (!a->next || e->generation < a->next)
		a->next = e->generation;
	a->count++;
	a->bytes += e->bytes;
}

/* The smallest generation in the chain newer than after (0: none), and the
 * newest. */
static uint64_t next_after(const struct cs_repl *r, uint64_t after, uint64_t *ret_newest)
{
	struct after a = {.after = after};

	cs_chain_walk(r->p.chain_dir, false, after_one, &a);
	if (ret_newest)
		*ret_newest = a.newest;
	return a.next;
}

/* Generations in the chain newer than after, and (ret_bytes not NULL)
 * their bytes: a backup's lag, in one pass over the directory. */
static void lag_after(const struct cs_repl *r, uint64_t after, uint64_t *ret_gens,
                      uint64_t *ret_bytes)
{
	struct after a = {.after = after};

	cs_chain_walk(r->p.chain_dir, ret_bytes != NULL, after_one, &a);
	*ret_gens = a.count;
	if (ret_bytes)
		*ret_bytes = a.bytes;
}

static int open_image(const struct cs_repl *r, uint64_t gen, struct cs_image_header *h,
                      uint64_t *ret_size)
{
	char name[40], path[PATH_MAX + 48];
	uint8_t head[HEADER_PEEK];
	struct cs_image_error err;
	struct stat st;
	ssize_t n;
	int fd;

	cs_image_filename(name, sizeof(name), gen);
	snprintf(path, sizeof(path), "%s/%s", r->p.chain_dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, head, sizeof(head), 0);
	if (n < 0 || fstat(fd, &st) < 0 || cs_image_read_header(head, (size_t)n, h, &err) < 0 ||
	    h->generation != gen) {
		close(fd);
		return -EBADMSG;
	}
	*ret_size = (uint64_t)st.st_size;
	return fd;
}

/* The newest full image of the chain (0: none): where a session starts. */
static uint64_t newest_base(const struct cs_repl *r)
{
	uint64_t newest = 0, g, size;
	struct cs_image_header h;
	int fd;

	next_after(r, UINT64_MAX - 1, &newest);
	for (g = newest; g > 0; g = h.parent_generation) {
		fd = open_image(r, g, &h, &size);
		if (fd < 0)
			return 0;
		close(fd);
		if (!(h.flags & CS_IMAGE_F_DELTA))
			return g;
	}
	return 0;
}

/*
 * The generation after last on the newest image's chain: 0 when last is
 * the newest; *gap when the chain does not pass through last (compacted
 * away, or last is off the chain: a refused checkpoint that a restore went
 * back past stays in the directory, and the restored agent's images go on
 * from the generation it restored). Images off the chain are never sent.
 */
static uint64_t next_on_chain(const struct cs_repl *r, uint64_t last, bool *gap)
{
	uint64_t newest = 0, g, child = 0, size;
	struct cs_image_header h;
	int fd;

	*gap = false;
	next_after(r, UINT64_MAX - 1, &newest);
	for (g = newest; g > last; g = h.parent_generation) {
		fd = open_image(r, g, &h, &size);
		if (fd < 0)
			break;
		close(fd);
		child = g;
		if (!(h.flags & CS_IMAGE_F_DELTA))
			break;
	}
	if (g == last)
		return child;
	*gap = true;
	return 0;
}

/* ---- one backup ---- */

static void close_file(struct backup *b)
{
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	EVP_MD_CTX_free(b->sha);
	b->sha = NULL;
	b->gen = 0;
}

static void end_session(struct cs_repl *r, int peer, uint64_t retry_ms)
{
	struct backup *b = &r->b[peer];

	if (b->gen) {
		struct cs_msg m = {.type = CS_MSG_CKPT_ABORT};

		m.ckpt_abort = (struct cs_msg_ckpt_abort){.generation = b->gen,
		                                          .code = CS_ERR_BUSY,
		                                          .text = cs_str_of("session restarts")};
		r->ops.send(r->ctx, peer, &m);
	}
	close_file(b);
	b->session = false;
	b->retry_at = cs_monotonic_ms() + retry_ms;
}

static int begin_image(struct cs_repl *r, int peer, uint64_t gen)
{
	struct backup *b = &r->b[peer];
	struct cs_image_header h;
	struct cs_msg m = {.type = CS_MSG_CKPT_BEGIN};
	uint64_t size;
	int fd = open_image(r, gen, &h, &size);

	if (fd < 0)
		return fd;
	if (b->session && (h.flags & CS_IMAGE_F_DELTA) && h.parent_generation != b->last_sent) {
		close(fd); /* a gap: what the backup needs was folded away */
		return -ENOENT;
	}
	b->fd = fd;
	b->gen = gen;
	b->off = 0;
	b->total = size;
	b->sha = EVP_MD_CTX_new();
	if (!b->sha || !EVP_DigestInit_ex(b->sha, EVP_sha256(), NULL)) {
		close_file(b);
		return -ENOMEM;
	}
	m.ckpt_begin = (struct cs_msg_ckpt_begin){
	    .term = r->term,
	    .generation = gen,
	    .parent_generation = (h.flags & CS_IMAGE_F_DELTA) ? h.parent_generation : 0,
	    .total_bytes = size,
	    .kind = (h.flags & CS_IMAGE_F_DELTA) ? CS_CKPT_DELTA : CS_CKPT_BASE};
	return r->ops.send(r->ctx, peer, &m);
}

/* Sends the next chunk of the current image; 1 once END went out. */
static int send_chunk(struct cs_repl *r, int peer)
{
	struct backup *b = &r->b[peer];
	uint64_t want = b->total - b->off < CHUNK ? b->total - b->off : CHUNK;
	struct cs_msg m = {.type = CS_MSG_CKPT_PAGES};
	ssize_t n = want ? pread(b->fd, r->chunk, want, (off_t)b->off) : 0;

	if (n < 0 || (uint64_t)n != want)
		return -EIO; /* the file changed under us (compacted): start over */
	if (n > 0) {
		EVP_DigestUpdate(b->sha, r->chunk, (size_t)n);
		if (b->off == 0 && r->corrupt_left > 0 && n > 64) {
			r->chunk[n / 2] ^= 0x40; /* after the digest: as bad memory would */
			r->corrupt_left--;
		}
		m.ckpt_pages = (struct cs_msg_ckpt_pages){
		    .generation = b->gen, .offset = b->off, .data = {r->chunk, (uint32_t)n}};
		if (r->ops.send(r->ctx, peer, &m) < 0)
			return -ENOTCONN;
		b->off += (uint64_t)n;
		b->sent_bytes += (uint64_t)n;
	}
	if (b->off < b->total)
		return 0;
	m = (struct cs_msg){.type = CS_MSG_CKPT_END};
	m.ckpt_end.generation = b->gen;
	m.ckpt_end.total_bytes = b->total;
	EVP_DigestFinal_ex(b->sha, m.ckpt_end.sha256, NULL);
	if (r->ops.send(r->ctx, peer, &m) < 0)
		return -ENOTCONN;
	b->last_sent = b->gen;
	close_file(b);
	return 1;
}

/* Chooses the next image for b: the newest full image at a session's
 * start, then each newer generation in order. 0: nothing to send. */
static int next_image(struct cs_repl *r, int peer)
{
	struct backup *b = &r->b[peer];
	uint64_t g;
	int e;

	if (!b->session) {
		if (cs_monotonic_ms() < b->retry_at || !(g = newest_base(r)))
			return 0;
		b->session = true;
		b->sessions++;
		b->first = g;
		b->last_sent = 0;
		cs_event(CS_EV_BACKUP_JOINED, .peer = r->p.names[peer], .generation = g);
	} else {
		bool gap;

		g = next_on_chain(r, b->last_sent, &gap);
		if (gap) {
			end_session(r, peer, 0); /* from the newest full image again */
			return 0;
		}
		if (!g)
			return 0;
	}
	e = begin_image(r, peer, g);
	if (e < 0) {
		end_session(r, peer, e == -ENOENT || e == -EBADMSG ? 0 : RETRY_MS);
		return 0;
	}
	return 1;
}

static void pump(struct cs_repl *r, int peer)
{
	struct backup *b = &r->b[peer];
	int e;

	while (r->term && b->backup && b->up &&
	       r->ops.queued(r->ctx, peer) < r->p.max_queue_bytes) {
		if (!b->gen && !next_image(r, peer))
			return;
		e = send_chunk(r, peer);
		if (e < 0) {
			end_session(r, peer, RETRY_MS);
			return;
		}
	}
}

static void pump_all(struct cs_repl *r)
{
	for (size_t i = 0; i < r->p.n_peers; i++)
		pump(r, (int)i);
}

/* ---- events ---- */

/* Counts the images renamed into the chain that are new generations (the
 * compactor renames a merged image over an existing one: not a checkpoint). */
static void count_images(struct cs_repl *r, const char *buf, ssize_t n)
{
	const struct inotify_event *ev;
	struct cs_image_header h;
	uint64_t g, size;
	int tmp, fd;

	for (const char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
		ev = (const struct inotify_event *)p;
		if (!r->term || !ev->len || cs_image_name_parse(ev->name, &g, &tmp) < 0 || tmp ||
		    g <= r->counted)
			continue;
		r->counted = g;
		r->images++;
		if ((fd = open_image(r, g, &h, &size)) < 0)
			continue; /* already compacted away: counted, size unknown */
		close(fd);
		r->image_bytes += size;
		cs_hist_observe(h.flags & CS_IMAGE_F_DELTA ? &r->size_delta : &r->size_base,
		                (double)size);
	}
}

static void inotify_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		count_images(arg, buf, n);
	pump_all(arg);
}

void cs_repl_checkpoints(const struct cs_repl *r, uint64_t *ret_images, uint64_t *ret_bytes)
{
	*ret_images = r->images;
	*ret_bytes = r->image_bytes;
}

json_t *cs_repl_sizes_json(const struct cs_repl *r)
{
	return json_pack("{s:o, s:o}", "base", cs_hist_json(&r->size_base), "delta",
	                 cs_hist_json(&r->size_delta));
}

/* Lagging and caught-up are judged here, against the chain as it is. */
static void judge(struct cs_repl *r, int peer)
{
	struct backup *b = &r->b[peer];
	uint64_t behind;

	if (!b->up || !b->backup)
		return;
	lag_after(r, b->acked, &behind, NULL);
	if (behind >= LAG_GENERATIONS && !b->lagging) {
		b->lagging = true;
		cs_event(CS_EV_BACKUP_LAGGING, .peer = r->p.names[peer], .generation = b->acked,
		         .reason = "20 or more generations not acknowledged");
	} else if (behind == 0 && b->lagging) {
		b->lagging = false;
		cs_event(CS_EV_BACKUP_CAUGHT_UP, .peer = r->p.names[peer], .generation = b->acked);
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs_repl *r = arg;

	(void)fd, (void)what;
	for (size_t i = 0; i < r->p.n_peers; i++)
		judge(r, (int)i);
	pump_all(r);
}

void cs_repl_peer(struct cs_repl *r, int peer, bool up)
{
	struct backup *b = &r->b[peer];

	if (!b->backup)
		return;
	close_file(b);
	b->up = up;
	b->session = b->lagging = b->degraded = false;
	b->acked = 0;
	b->retry_at = 0;
	if (up)
		pump(r, peer);
	r->ops.changed(r->ctx);
}

void cs_repl_writable(struct cs_repl *r, int peer)
{
	pump(r, peer);
}

void cs_repl_ack(struct cs_repl *r, int peer, const struct cs_msg_ack *a)
{
	struct backup *b = &r->b[peer];

	if (!b->backup || !b->session || a->generation < b->first)
		return; /* of an earlier session */
	if (a->generation > b->acked)
		b->acked = a->generation;
	if (b->degraded || b->error[0]) {
		if (b->degraded)
			cs_log_notice("backup %s stores checkpoints again", r->p.names[peer]);
		b->degraded = false;
		b->error[0] = '\0';
	}
	r->ops.changed(r->ctx);
}

void cs_repl_refused(struct cs_repl *r, int peer, uint32_t code, const char *text)
{
	struct backup *b = &r->b[peer];

	if (!b->backup || !b->session)
		return; /* already starting over: later refusals are of the old session */
	snprintf(b->error, sizeof(b->error), "%s", text);
	if (code == CS_ERR_INTERNAL) {
		/* It cannot store (disk full): Sync stops waiting for it, and a
		 * new session every 2 s finds out when it can again. */
		if (!b->degraded)
			cs_event(CS_EV_BACKUP_DEGRADED, .peer = r->p.names[peer], .reason = text);
		b->degraded = true;
		end_session(r, peer, 2000);
	} else {
		end_session(r, peer, RETRY_MS);
	}
	r->ops.changed(r->ctx);
}

int cs_repl_acknowledged(const struct cs_repl *r, uint64_t generation, char *why, size_t cap)
{
	size_t up = 0, behind = 0;

	for (size_t i = 0; i < r->p.n_peers; i++) {
		const struct backup *b = &r->b[i];

		if (!b->backup || !b->up || b->degraded)
			continue;
		up++;
		if (b->acked < generation)
			behind++;
	}
	if (up == 0) {
		snprintf(why, cap, "no backup is up to acknowledge generation %" PRIu64,
		         generation);
		return -EHOSTUNREACH;
	}
	return behind == 0;
}

/* ---- life ---- */

int cs_repl_start(struct cs_repl *r, uint64_t term)
{
	struct timeval tick = {0, TICK_MS * 1000};
	uint64_t newest;

	r->term = term;
	/* What the chain holds already was counted before, or is not ours. */
	next_after(r, UINT64_MAX - 1, &newest);
	r->counted = newest > r->counted ? newest : r->counted;
	r->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (r->inotify_fd < 0 || inotify_add_watch(r->inotify_fd, r->p.chain_dir, IN_MOVED_TO) < 0)
		return cs_log_err_errno(errno, "cannot watch %s", r->p.chain_dir);
	r->inotify_ev = event_new(r->base, r->inotify_fd, EV_READ | EV_PERSIST, inotify_cb, r);
	event_add(r->inotify_ev, NULL);
	event_add(r->tick, &tick);
	for (size_t i = 0; i < r->p.n_peers; i++)
		cs_repl_peer(r, (int)i, r->b[i].up);
	return 0;
}

void cs_repl_stop(struct cs_repl *r)
{
	if (!r->term)
		return;
	r->term = 0;
	for (size_t i = 0; i < r->p.n_peers; i++) {
		close_file(&r->b[i]);
		r->b[i].session = false;
	}
	if (r->inotify_ev)
		event_free(r->inotify_ev);
	r->inotify_ev = NULL;
	if (r->inotify_fd >= 0)
		close(r->inotify_fd);
	r->inotify_fd = -1;
	event_del(r->tick);
}

int cs_repl_new(struct event_base *base, const struct cs_repl_params *p,
                const struct cs_repl_ops *ops, void *ctx, struct cs_repl **out)
{
	struct cs_repl *r = calloc(1, sizeof(*r));

	if (!r || !(r->b = calloc(p->n_peers, sizeof(*r->b))) || !(r->chunk = malloc(CHUNK))) {
		if (r)
			free(r->b);
		free(r);
		return -ENOMEM;
	}
	r->base = base;
	r->p = *p;
	r->ops = *ops;
	r->ctx = ctx;
	r->inotify_fd = -1;
	cs_hist_init(&r->size_base, cs_hist_bytes, cs_hist_bytes_n);
	cs_hist_init(&r->size_delta, cs_hist_bytes, cs_hist_bytes_n);
	r->corrupt_left =
	    (unsigned)strtoul(getenv("CHECKSYNC_TEST_CORRUPT_IMAGES") ?: "0", NULL, 10);
	if (r->corrupt_left)
		cs_log_warn(
		    "CHECKSYNC_TEST_CORRUPT_IMAGES: the first %u images sent are damaged on "
		    "purpose",
		    r->corrupt_left);
	r->tick = event_new(base, -1, EV_PERSIST, tick_cb, r);
	for (size_t i = 0; i < p->n_peers; i++) {
		r->b[i].backup = p->is_backup[i];
		r->b[i].fd = -1;
	}
	*out = r;
	return 0;
}

void cs_repl_free(struct cs_repl *r)
{
	if (!r)
		return;
	cs_repl_stop(r);
	event_free(r->tick);
	free(r->chunk);
	free(r->b);
	free(r);
}

static const char *state_name(const struct backup *b, uint64_t behind)
{
	if (!b->up)
		return "down";
	if (b->degraded)
		return "degraded";
	if (behind >= LAG_GENERATIONS)
		return "lagging";
	if (behind > 0)
		return "streaming";
	return b->session ? "caught-up" : "idle";
}

json_t *cs_repl_status(const struct cs_repl *r)
{
	json_t *a = json_array();

	for (size_t i = 0; i < r->p.n_peers; i++) {
		const struct backup *b = &r->b[i];
		uint64_t behind = 0, bytes = 0;

		if (!b->backup)
			continue;
		if (r->term)
			lag_after(r, b->acked, &behind, &bytes);
		json_array_append_new(
		    a, json_pack("{s:s, s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "name",
		                 r->p.names[i], "up", b->up, "state", state_name(b, behind),
		                 "acked_generation", (json_int_t)b->acked, "lag_generations",
		                 (json_int_t)behind, "lag_bytes", (json_int_t)bytes,
		                 "sending_generation", (json_int_t)b->gen, "sent_bytes",
		                 (json_int_t)b->sent_bytes, "sessions", (json_int_t)b->sessions,
		                 "last_error", b->error));
	}
	return a;
}
