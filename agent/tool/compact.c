/*
 * Compaction (compact.h): a chain in, one image for its newest generation
 * out, streamed a megabyte at a time (the chain's images are mapped
 * read-only for parsing, page bytes are copied with pread, so memory use
 * does not grow with the image). Either a full image (a fold: the whole
 * chain) or a merged delta (the deltas above an image P of the chain, read
 * and written alone: P and what is under it are not touched).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../restore/cs_plan.h"
#include "chain.h"
#include "compact.h"
#include "restore.h"
#include "tool.h"

#define IO_CHUNK      (1u << 20)
#define SYNC_EVERY    (32ull << 20) /* start writeback early: no huge fsync at the end */
#define MAX_RUN_PAGES (1u << 30)    /* a PAGES run head counts pages in a u32 */

/* Buffered output for the image writer. */
struct sink {
	int fd;
	uint8_t *buf;
	size_t len;
	uint64_t flushed, synced;
};

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int sink_flush(struct sink *s)
{
	int r = write_all(s->fd, s->buf, s->len);
	s->flushed += s->len;
	s->len = 0;
	if (!r && s->flushed - s->synced >= SYNC_EVERY) {
		sync_file_range(s->fd, (off64_t)s->synced, (off64_t)(s->flushed - s->synced),
		                SYNC_FILE_RANGE_WRITE);
		s->synced = s->flushed;
	}
	return r;
}

static int sink_write(void *ctx, const void *buf, size_t len)
{
	struct sink *s = ctx;
	const uint8_t *p = buf;
	while (len) {
		size_t n = len < IO_CHUNK - s->len ? len : IO_CHUNK - s->len;
		memcpy(s->buf + s->len, p, n);
		s->len += n;
		p += n;
		len -= n;
		if (s->len == IO_CHUNK) {
			int r = sink_flush(s);
			if (r)
				return r;
		}
	}
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* HEADER made a base's (parent 0) or a delta on parent (its base and
 * tracking kept: the chain under parent is K's), then every other metadata
 * section of K verbatim (unknown skippable ones included), in K's order. K
 * was parsed in full, so its framing is trusted here. */
static int write_metadata(struct cs_image_writer *w, const struct cs_loaded *k, uint64_t parent)
{
	struct cs_image_header h = k->img->header;
	uint8_t hb[512];
	struct cs_buf b = {.data = hb, .cap = sizeof(hb)};
	h.parent_generation = parent;
	if (!parent) {
		h.flags &= ~CS_IMAGE_F_DELTA;
		h.base_generation = h.generation;
		h.tracking = CS_TRACK_FULL;
	}
	int r = cs_image_put_header(&b, &h);
	if (!r)
		r = cs_image_write_section(w, CS_SECT_HEADER, &b);
	const uint8_t *m = k->map;
	for (uint64_t off = 0; !r && off + 16 <= k->len;) {
		uint32_t type = le32(m + off), flags = le32(m + off + 4);
		uint64_t len = le64(m + off + 8);
		if (type == CS_SECT_END)
			break;
		if (type != CS_SECT_HEADER && !cs_image_is_pages_section(type)) {
			r = cs_image_section_begin_flags(w, type, flags, len);
			if (!r)
				r = cs_image_section_write(w, m + off + 16, (size_t)len);
			if (!r)
				r = cs_image_section_end(w);
		}
		off += 16 + len + 4;
	}
	return r;
}

/* Page runs of the full image: the copies (sorted, disjoint) merged where
 * they touch, whichever image they come from, up to MAX_RUN_PAGES. Whether
 * copy i continues the run of `run` pages before it: */
static int joins(const struct cs_plan_copy *c, size_t i, uint64_t run)
{
	return i && c[i - 1].addr + c[i - 1].len == c[i].addr &&
	       run + c[i].len / CS_IMAGE_PAGE_SIZE <= MAX_RUN_PAGES;
}

/* The PAGES payload: run heads and page bytes. */
static uint64_t pages_payload(const struct cs_plan_copy *c, size_t n)
{
	uint64_t total = 0, run = 0;
	for (size_t i = 0; i < n; i++) {
		if (!joins(c, i, run)) {
			total += CS_IMAGE_PAGE_RUN_HEAD;
			run = 0;
		}
		run += c[i].len / CS_IMAGE_PAGE_SIZE;
		total += c[i].len;
	}
	return total;
}

static int copy_bytes(struct cs_image_writer *w, const struct cs_loaded *src,
                      const struct cs_plan_copy *c, uint8_t *buf)
{
	for (uint64_t done = 0; done < c->len;) {
		size_t n = c->len - done < IO_CHUNK ? (size_t)(c->len - done) : IO_CHUNK;
		ssize_t k = pread(src->fd, buf, n, (off_t)(c->file_off + done));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO; /* the file shrank under us */
		int r = cs_image_section_write(w, buf, (size_t)k);
		if (r)
			return r;
		done += (uint64_t)k;
	}
	return 0;
}

static int write_pages(struct cs_image_writer *w, const struct cs_chain *ch,
                       const struct cs_plan_copy *c, size_t n, uint8_t *buf)
{
	int r = cs_image_section_begin(w, CS_SECT_PAGES, pages_payload(c, n));
	uint64_t run = 0;
	for (size_t i = 0; !r && i < n; i++) {
		if (!joins(c, i, run)) {
			/* the run's length: every following copy that joins it */
			uint64_t pages = c[i].len / CS_IMAGE_PAGE_SIZE;
			for (size_t j = i + 1; j < n && joins(c, j, pages); j++)
				pages += c[j].len / CS_IMAGE_PAGE_SIZE;
			uint8_t hb[CS_IMAGE_PAGE_RUN_HEAD];
			struct cs_buf b = {.data = hb, .cap = sizeof(hb)};
			r = cs_image_put_page_run_head(&b, c[i].addr, (uint32_t)pages);
			if (!r)
				r = cs_image_section_write(w, hb, b.len);
			run = 0;
		}
		run += c[i].len / CS_IMAGE_PAGE_SIZE;
		if (!r)
			r = copy_bytes(w, &ch->imgs[c[i].fd], &c[i], buf);
	}
	return r ? r : cs_image_section_end(w);
}

/* Writes the image of ch->imgs[0] into fd: full, or a delta on parent. */
static int write_image(int fd, const struct cs_chain *ch, uint64_t parent,
                       const struct cs_plan_copy *c, size_t n, uint64_t *ret_bytes)
{
	struct sink s = {.fd = fd, .buf = malloc(IO_CHUNK)};
	uint8_t *buf = malloc(IO_CHUNK);
	struct cs_image_writer w;
	int r = -ENOMEM;
	if (s.buf && buf) {
		cs_image_writer_init(&w, sink_write, &s);
		r = write_metadata(&w, &ch->imgs[0], parent);
		if (!r)
			r = write_pages(&w, ch, c, n, buf);
		if (!r)
			r = cs_image_write_end(&w);
		if (!r)
			r = sink_flush(&s);
		*ret_bytes = w.offset;
	}
	free(s.buf);
	free(buf);
	return r;
}

/* The new file must parse as a full image (or a delta on parent) of the
 * same generation with the same live pages before it may replace K. Page CRCs are not read
 * back: they were computed over the very bytes handed to write(), and
 * reading them again would cost as much CPU as the copy itself; the
 * structure (runs, lengths, END totals) is what a bug here would break. */
static int check_written(const char *path, const struct cs_image *k, uint64_t parent, char *msg,
                         size_t cap)
{
	struct cs_loaded l;
	struct cs_chain_damage d = {0};
	int r = cs_loaded_open_flags(path, CS_IMAGE_PARSE_SKIP_PAGE_CRC, &l, &d);
	if (r < 0) {
		snprintf(msg, cap,
		         "the image just written does not read back: %s at offset %llu: %s", path,
		         (unsigned long long)d.offset, d.msg);
		return r;
	}
	const struct cs_image *img = l.img;
	if (!(img->header.flags & CS_IMAGE_F_DELTA) != !parent ||
	    img->header.parent_generation != parent ||
	    img->header.generation != k->header.generation || img->n_resident != k->n_resident) {
		snprintf(msg, cap, "the image just written (%s) is not a %s of generation %llu",
		         path, parent ? "delta" : "full image",
		         (unsigned long long)k->header.generation);
		r = -EIO;
	}
	cs_loaded_close(&l);
	return r;
}

/*
 * Deletes the images older than below, the base the compacted chain ended
 * at: the new chain and the one before stay, as when the agent prunes. A
 * .tmp that old is a dead writer's (a live writer writes a generation newer
 * than every complete image), so it goes too.
 */
static size_t prune(int dfd, uint64_t below)
{
	DIR *d = fdopendir(dup(dfd));
	size_t removed = 0;
	struct dirent *e;
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		int tmp;
		uint64_t g;
		if (cs_image_name_parse(e->d_name, &g, &tmp) == 0 && g < below &&
		    unlinkat(dfd, e->d_name, 0) == 0 && !tmp)
			removed++;
	}
	closedir(d);
	fsync(dfd);
	return removed;
}

static void damage_msg(const struct cs_chain_damage *d, uint64_t gen, int r, char *msg, size_t cap)
{
	if (r == -ENOENT && d->generation != gen)
		snprintf(msg, cap, "generation %llu needs generation %llu, which is missing (%s)",
		         (unsigned long long)gen, (unsigned long long)d->generation, d->path);
	else if (r == -ENOENT)
		snprintf(msg, cap, "generation %llu does not exist (%s)", (unsigned long long)gen,
		         d->path);
	else
		snprintf(msg, cap, "%s is damaged at offset %llu: %s", d->path,
		         (unsigned long long)d->offset, d->msg);
}

/* The full image carries the newest image's CREDS, so it gets that image's
 * owner too: a restore believes credentials only as far as the owner of
 * the file vouches for them (creds.c), and the compactor, running as root,
 * must not launder an image the program wrote after dropping privileges. */
static int same_owner(int fd, const struct cs_chain *ch, char *msg, size_t cap)
{
	struct stat st;
	if (fstat(ch->imgs[0].fd, &st) < 0 || fchown(fd, st.st_uid, st.st_gid) < 0) {
		snprintf(msg, cap, "giving the compacted image the owner of %s: %s",
		         ch->imgs[0].path, strerror(errno));
		return -errno;
	}
	return 0;
}

/* Writes, checks and renames; the chain (down to its full image, or to
 * parent for a merge) is loaded and intact. */
static int replace(int dfd, const char *dir, struct cs_chain *ch, uint64_t parent,
                   struct cs_compact_result *res, char *msg, size_t cap)
{
	struct cs_restore view = {.chain = *ch, .img = ch->imgs[0].img};
	struct cs_plan_copy *c = NULL;
	size_t n = 0;
	char final[64], tmp[72], path[PATH_MAX + 80];
	int r = cs_plan_resolve_some(&view, 0, parent != 0, &c, &n);
	if (r < 0) {
		snprintf(msg, cap, "the chain of %s lacks live pages (damaged)", ch->imgs[0].path);
		return r;
	}
	cs_image_filename(final, sizeof(final), res->generation);
	snprintf(tmp, sizeof(tmp), "%s.tmp", final);
	snprintf(path, sizeof(path), "%s/%s", dir, tmp);
	int fd = openat(dfd, tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		snprintf(msg, cap, "creating %s: %s", path, strerror(errno));
		free(c);
		return r;
	}
	r = same_owner(fd, ch, msg, cap);
	if (!r)
		r = write_image(fd, ch, parent, c, n, &res->bytes);
	free(c);
	if (r)
		snprintf(msg, cap, "writing %s: %s", path, strerror(-r));
	else if (fsync(fd) < 0)
		r = -errno, snprintf(msg, cap, "fsync of %s: %s", path, strerror(errno));
	close(fd);
	if (!r)
		r = check_written(path, ch->imgs[0].img, parent, msg, cap);
	if (!r && renameat(dfd, tmp, dfd, final) < 0)
		r = -errno, snprintf(msg, cap, "renaming %s: %s", path, strerror(errno));
	if (r) {
		unlinkat(dfd, tmp, 0);
		return r;
	}
	if (fsync(dfd) < 0) {
		snprintf(msg, cap, "fsync of %s: %s", dir, strerror(errno));
		return -EIO;
	}
	return 0;
}

static int newest_generation(const char *dir, uint64_t *ret, char *msg, size_t cap)
{
	uint64_t *gens;
	size_t n;
	int r = cs_dir_generations(dir, &gens, &n);
	if (r < 0) {
		snprintf(msg, cap, "cannot read %s: %s", dir, strerror(-r));
		return r;
	}
	*ret = n ? gens[n - 1] : 0;
	free(gens);
	if (!n) {
		snprintf(msg, cap, "%s holds no complete checkpoint (no gen-*.img)", dir);
		return -ENOENT;
	}
	return 0;
}

int cs_compact_prune(const char *dir, uint64_t below, size_t *ret_removed)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int r = flock(dfd, LOCK_EX | LOCK_NB) < 0 ? -EBUSY : 0;
	if (!r)
		*ret_removed = prune(dfd, below);
	close(dfd);
	return r;
}

/* Opens dir and takes the compaction lock (flock on the directory itself,
 * so a refusal leaves nothing behind): the fd, or -EBUSY without wait. */
static int lock_dir(const char *dir, int wait, char *msg, size_t cap)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		snprintf(msg, cap, "cannot open %s: %s", dir, strerror(errno));
		return -errno;
	}
	int r = 0;
	while (flock(dfd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0 && !r)
		if (errno != EINTR)
			r = -errno;
	if (r) {
		snprintf(msg, cap, "another compaction of %s is running", dir);
		close(dfd);
		return r == -EWOULDBLOCK ? -EBUSY : r;
	}
	return dfd;
}

int cs_compact(const char *dir, uint64_t generation, int wait, struct cs_compact_result *res,
               char *msg, size_t cap)
{
	memset(res, 0, sizeof(*res));
	msg[0] = 0;
	int dfd = lock_dir(dir, wait, msg, cap), r = 0;
	if (dfd < 0)
		return dfd;
	if (!generation)
		r = newest_generation(dir, &generation, msg, cap);
	struct cs_chain ch = {0};
	struct cs_chain_damage d = {0};
	if (!r && (r = cs_chain_load(dir, generation, &ch, &d)) < 0)
		damage_msg(&d, generation, r, msg, cap);
	res->generation = generation;
	if (!r && ch.n == 1) {
		res->already_full = 1;
		res->bytes = ch.imgs[0].len;
	} else if (!r) {
		res->folded = ch.n;
		res->old_base = ch.imgs[ch.n - 1].generation;
		r = replace(dfd, dir, &ch, 0, res, msg, cap);
		if (!r)
			res->removed = prune(dfd, res->old_base);
	}
	cs_chain_free(&ch);
	close(dfd); /* releases the lock */
	return r;
}

/* Whether g is one of ch's images from..., newest first. */
static int among(const struct cs_chain *ch, size_t from, uint64_t g)
{
	for (size_t i = from; i < ch->n; i++)
		if (ch->imgs[i].generation == g)
			return 1;
	return 0;
}

/*
 * Whether a delta in DIR off the merged chain names one of its deltas as
 * parent. A restored agent goes on from the generation it restored, which
 * can lie under a newer image that is not on its chain (a refused
 * checkpoint the restore went back past): a merge up to that newer image
 * must not take the restored chain's images away.
 */
static int needed_elsewhere(const char *dir, const struct cs_chain *ch)
{
	uint64_t *gens, parent, size;
	size_t n;
	int full, hit = 0;
	if (cs_dir_generations(dir, &gens, &n) < 0)
		return 1; /* cannot tell: keep them */
	for (size_t i = 0; i < n && !hit; i++)
		hit = !among(ch, 0, gens[i]) &&
		      cs_image_peek(dir, gens[i], &full, &parent, &size, NULL) == 0 && !full &&
		      among(ch, 1, parent); /* imgs[0] stays: the merged image */
	free(gens);
	return hit;
}

/* After a merge: the deltas it replaced, between parent and the merged
 * generation (imgs[0], renamed over already), go, unless another chain
 * goes through them. */
static size_t drop_merged(int dfd, const char *dir, const struct cs_chain *ch)
{
	size_t removed = 0;
	if (needed_elsewhere(dir, ch))
		return 0;
	for (size_t i = 1; i < ch->n; i++) {
		char name[64];
		cs_image_filename(name, sizeof(name), ch->imgs[i].generation);
		if (unlinkat(dfd, name, 0) == 0)
			removed++;
	}
	fsync(dfd);
	return removed;
}

int cs_compact_merge(const char *dir, uint64_t generation, uint64_t parent,
                     struct cs_compact_result *res, char *msg, size_t cap)
{
	memset(res, 0, sizeof(*res));
	msg[0] = 0;
	int dfd = lock_dir(dir, 0, msg, cap);
	if (dfd < 0)
		return dfd;
	char name[64];
	struct cs_chain ch = {0};
	struct cs_chain_damage d = {0};
	cs_image_filename(name, sizeof(name), parent);
	int r = faccessat(dfd, name, F_OK, 0) < 0 ? -errno : 0;
	if (r)
		snprintf(msg, cap, "generation %llu, the merge's parent, is gone: %s",
		         (unsigned long long)parent, strerror(-r));
	else if ((r = cs_chain_load_until(dir, generation, parent, &ch, &d)) == -ESTALE)
		snprintf(msg, cap, "%s", d.msg);
	else if (r < 0)
		damage_msg(&d, generation, r, msg, cap);
	res->generation = generation;
	res->old_base = parent;
	if (!r && ch.n >= 2) {
		res->merged = 1;
		res->folded = ch.n;
		for (size_t i = 0; i < ch.n; i++)
			res->read_bytes += ch.imgs[i].len;
		r = replace(dfd, dir, &ch, parent, res, msg, cap);
		if (!r)
			res->removed = drop_merged(dfd, dir, &ch);
	}
	cs_chain_free(&ch);
	close(dfd);
	return r;
}
