#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chain.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int cs_dir_generations(const char *dir, uint64_t **ret_gens, size_t *ret_n)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	uint64_t *gens = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t g;
		int tmp;
		if (cs_image_name_parse(e->d_name, &g, &tmp) < 0 || tmp)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *ng = realloc(gens, cap * sizeof(*gens));
			if (!ng) {
				free(gens);
				closedir(d);
				return -ENOMEM;
			}
			gens = ng;
		}
		gens[n++] = g;
	}
	closedir(d);
	if (n) /* gens is NULL for an empty directory */
		qsort(gens, n, sizeof(*gens), cmp_u64);
	*ret_gens = gens;
	*ret_n = n;
	return 0;
}

int cs_loaded_open(const char *path, struct cs_loaded *out, struct cs_chain_damage *dmg)
{
	return cs_loaded_open_flags(path, 0, out, dmg);
}

int cs_loaded_open_flags(const char *path, unsigned parse_flags, struct cs_loaded *out,
                         struct cs_chain_damage *dmg)
{
	struct stat st;
	static const char empty[1];
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	snprintf(out->path, sizeof(out->path), "%s", path);
	snprintf(dmg->path, sizeof(dmg->path), "%s", path);
	dmg->offset = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(dmg->msg, sizeof(dmg->msg), "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	out->fd = fd;
	out->len = (size_t)st.st_size;
	out->map = empty;
	if (out->len) {
		void *m = mmap(NULL, out->len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			snprintf(dmg->msg, sizeof(dmg->msg), "cannot map: %s", strerror(errno));
			cs_loaded_close(out);
			return -errno;
		}
		out->map = m;
	}
	struct cs_image_error err = {0};
	int r = cs_image_parse(out->map, out->len, parse_flags, &out->img, &err);
	if (r < 0) {
		dmg->offset = err.offset;
		snprintf(dmg->msg, sizeof(dmg->msg), "%s (%s)", err.msg,
		         cs_image_err_name(err.code));
		cs_loaded_close(out);
		return r;
	}
	out->generation = out->img->header.generation;
	/* Checked: drop the pages from our address space (they stay in the page
	 * cache). Page bytes are read later with pread from fd, so a chain of
	 * several images never sits mapped in the tool's memory all at once. */
	if (out->len)
		madvise((void *)out->map, out->len, MADV_DONTNEED);
	return 0;
}

void cs_loaded_close(struct cs_loaded *l)
{
	if (l->img)
		cs_image_free(l->img);
	if (l->map && l->len)
		munmap((void *)l->map, l->len);
	if (l->fd >= 0)
		close(l->fd);
	l->img = NULL;
	l->map = NULL;
	l->fd = -1;
}

void cs_chain_free(struct cs_chain *c)
{
	for (size_t i = 0; i < c->n; i++)
		cs_loaded_close(&c->imgs[i]);
	free(c->imgs);
	c->imgs = NULL;
	c->n = 0;
}

/*
 * Whether l may be the parent of child (a delta) in one chain. Deltas of a
 * chain all name the base the agent started it on. A full image ends the
 * chain: that base itself, or a later generation of the same chain that
 * compaction made full (compact.c). Either way its generation is at least
 * the child's base (and is the child's parent, checked by the caller); a
 * full image older than the base is another chain's.
 */
static int same_chain(const struct cs_image_header *h, const struct cs_image_header *child)
{
	if (h->flags & CS_IMAGE_F_DELTA)
		return h->base_generation == child->base_generation;
	return h->generation >= child->base_generation;
}

static int check_link(const struct cs_loaded *l, uint64_t want, const struct cs_loaded *child,
                      struct cs_chain_damage *dmg)
{
	const struct cs_image_header *h = &l->img->header;
	const char *why = NULL;
	if (h->generation != want)
		why = "its header names another generation";
	else if (child && !same_chain(h, &child->img->header))
		why = "it belongs to another base";
	else if (!(h->flags & CS_IMAGE_F_DELTA) && h->base_generation != h->generation)
		why = "a base image that is not its own base";
	else if ((h->flags & CS_IMAGE_F_DELTA) && h->parent_generation >= h->generation)
		why = "its parent is not older";
	if (!why)
		return 0;
	snprintf(dmg->path, sizeof(dmg->path), "%s", l->path);
	dmg->offset = 0;
	snprintf(dmg->msg, sizeof(dmg->msg), "inconsistent chain: %s", why);
	return -EBADMSG;
}

void cs_image_path(const char *dir, uint64_t gen, char *path, size_t cap)
{
	char name[64];
	cs_image_filename(name, sizeof(name), gen);
	snprintf(path, cap, "%s/%s", dir, name);
}

/* Generation g's image appended to out, checked as the parent of the one
 * before it. */
static int load_link(const char *dir, uint64_t g, struct cs_chain *out, struct cs_chain_damage *dmg)
{
	char path[PATH_MAX];
	cs_image_path(dir, g, path, sizeof(path));
	struct cs_loaded *ni = realloc(out->imgs, (out->n + 1) * sizeof(*ni));
	if (!ni)
		return -ENOMEM;
	out->imgs = ni;
	dmg->generation = g;
	int r = cs_loaded_open(path, &out->imgs[out->n], dmg);
	if (r < 0)
		return r;
	out->n++;
	return check_link(&out->imgs[out->n - 1], g, out->n > 1 ? &out->imgs[out->n - 2] : NULL,
	                  dmg);
}

int cs_chain_load(const char *dir, uint64_t generation, struct cs_chain *out,
                  struct cs_chain_damage *dmg)
{
	return cs_chain_load_until(dir, generation, 0, out, dmg);
}

int cs_chain_load_until(const char *dir, uint64_t generation, uint64_t stop, struct cs_chain *out,
                        struct cs_chain_damage *dmg)
{
	memset(out, 0, sizeof(*out));
	uint64_t g = generation;
	for (;;) {
		if (stop && g == stop && out->n)
			return 0;
		int r = load_link(dir, g, out, dmg);
		if (r < 0) {
			cs_chain_free(out);
			return r;
		}
		const struct cs_image_header *h = &out->imgs[out->n - 1].img->header;
		if (!(h->flags & CS_IMAGE_F_DELTA) || (stop && h->parent_generation < stop)) {
			if (!stop)
				return 0;
			snprintf(
			    dmg->msg, sizeof(dmg->msg),
			    "the chain of generation %llu does not pass through generation %llu",
			    (unsigned long long)generation, (unsigned long long)stop);
			cs_chain_free(out);
			return -ESTALE;
		}
		g = h->parent_generation;
	}
}

static uint64_t intact_before(const char *dir, const uint64_t *gens, size_t n, uint64_t below)
{
	for (size_t i = n; i-- > 0;) {
		if (gens[i] >= below)
			continue;
		struct cs_chain c;
		struct cs_chain_damage d;
		if (cs_chain_load(dir, gens[i], &c, &d) == 0) {
			cs_chain_free(&c);
			return gens[i];
		}
	}
	return 0;
}

int cs_chain_pick(const char *dir, uint64_t want, struct cs_chain *out, char *msg, size_t cap)
{
	uint64_t *gens;
	size_t n;
	int r = cs_dir_generations(dir, &gens, &n);
	if (r < 0) {
		snprintf(msg, cap, "cannot read %s: %s", dir, strerror(-r));
		return r;
	}
	if (!n) {
		snprintf(msg, cap, "%s holds no complete checkpoint (no gen-*.img)", dir);
		free(gens);
		return -ENOENT;
	}
	uint64_t g = want ? want : gens[n - 1];
	struct cs_chain_damage d = {0};
	r = cs_chain_load(dir, g, out, &d);
	if (r < 0) {
		uint64_t alt = intact_before(dir, gens, n, g);
		char instead[128];
		if (alt)
			snprintf(instead, sizeof(instead),
			         "generation %llu would restore instead (--generation %llu)",
			         (unsigned long long)alt, (unsigned long long)alt);
		else
			snprintf(instead, sizeof(instead), "no older generation is intact either");
		if (r == -ENOENT && d.generation != g)
			snprintf(msg, cap,
			         "generation %llu needs generation %llu, which is missing (%s); %s",
			         (unsigned long long)g, (unsigned long long)d.generation, d.path,
			         instead);
		else if (r == -ENOENT)
			snprintf(msg, cap, "generation %llu does not exist in %s",
			         (unsigned long long)g, dir);
		else
			snprintf(msg, cap, "%s is damaged at offset %llu: %s; %s", d.path,
			         (unsigned long long)d.offset, d.msg, instead);
	}
	free(gens);
	return r;
}

/*
 * The images of generation's chain newer than since (a standby's step):
 * loading stops after a full image or a delta whose parent is since or
 * older. Each is checked in full and linked as cs_chain_load links them.
 */
int cs_chain_load_since(const char *dir, uint64_t generation, uint64_t since, struct cs_chain *out,
                        struct cs_chain_damage *dmg)
{
	memset(out, 0, sizeof(*out));
	for (uint64_t g = generation; g > since;) {
		int r = load_link(dir, g, out, dmg);
		if (r < 0) {
			cs_chain_free(out);
			return r;
		}
		const struct cs_image_header *h = &out->imgs[out->n - 1].img->header;
		if (!(h->flags & CS_IMAGE_F_DELTA))
			break;
		g = h->parent_generation;
	}
	return 0;
}

int cs_image_peek(const char *dir, uint64_t gen, int *is_full, uint64_t *parent, uint64_t *size,
                  time_t *ret_mtime)
{
	char path[PATH_MAX + 64];
	uint8_t h[64];
	struct stat st;
	cs_image_path(dir, gen, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = pread(fd, h, sizeof(h), 0);
	int r = n == (ssize_t)sizeof(h) && fstat(fd, &st) == 0 ? 0 : -EIO;
	close(fd);
	/* HEADER's head (16 bytes), then magic; flags at payload offset 20 */
	if (r || h[0] != CS_SECT_HEADER || memcmp(h + 16, CS_IMAGE_MAGIC, 8))
		return -EIO;
	*is_full = !(h[36] & CS_IMAGE_F_DELTA);
	*parent = 0;
	for (int i = 7; i >= 0; i--) /* HEADER payload offset 40, little-endian */
		*parent = *parent << 8 | h[56 + i];
	*size = (uint64_t)st.st_size;
	if (ret_mtime)
		*ret_mtime = st.st_mtime;
	return 0;
}
