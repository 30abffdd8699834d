/*
 * In the writer child: the MAPPINGS section (with file identities) and the
 * choice of pages. RESIDENT lists every live tracked page; PAGES carries
 * the bytes of every page for a base, of the pages written since the parent
 * for a uffd delta (plus whole new mappings), or of the pages whose hash
 * changed for a hash delta.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "dump.h"

struct idcache {
	uint64_t dev, ino;
	uint8_t id[CS_IMAGE_BUILD_ID_MAX];
	uint32_t len;
	int valid;
};

static int open_mapped_file(const struct cs_maps *maps, const struct cs_vma *v)
{
	int fd = cs_vma_open(v);
	if (fd >= 0)
		return fd;
	/* map_files needs CAP_CHECKPOINT_RESTORE; the path is the fallback,
	 * checked against the mapping's device and inode below. */
	return open(cs_vma_path(maps, v), O_RDONLY | O_CLOEXEC);
}

static void file_identity(const struct cs_maps *maps, const struct cs_vma *v,
                          struct cs_image_mapping *m, struct idcache *ic)
{
	int fd = open_mapped_file(maps, v);
	struct stat st;
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_dev == v->dev && st.st_ino == v->ino) {
		m->file_size = (uint64_t)st.st_size;
		m->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		if (!ic->valid || ic->dev != v->dev || ic->ino != v->ino) {
			ic->len = 0;
			cs_build_id(fd, ic->id, &ic->len);
			ic->dev = v->dev;
			ic->ino = v->ino;
			ic->valid = 1;
		}
		memcpy(m->build_id, ic->id, ic->len);
		m->build_id_len = ic->len;
	}
	close(fd);
}

int cs_dump_mappings(struct dump *d)
{
	const struct cs_maps *maps = &d->c->maps;
	struct cs_image_mapping *m = (void *)(d->meta.data + META_CAP / 2);
	uint32_t *madv = (uint32_t *)(m + 1); /* the rest of meta's second half */
	struct idcache ic = {.valid = 0};
	size_t pos;
	if (maps->n * sizeof(*madv) + sizeof(*m) > META_CAP / 2)
		return -E2BIG;
	int r = cs_vmflags_read(d, madv);
	if (r)
		return r;
	d->meta.len = 0;
	r = cs_image_put_count(&d->meta, &pos);
	for (size_t i = 0; !r && i < maps->n; i++) {
		const struct cs_vma *v = &maps->v[i];
		memset(m, 0, sizeof(*m));
		m->start = v->start;
		m->end = v->end;
		m->prot = v->prot;
		m->flags = v->flags;
		m->pgoff = v->pgoff;
		m->dev = v->dev;
		m->ino = v->ino;
		cs_strlcpy(m->path, cs_vma_path(maps, v), sizeof(m->path));
		if (v->flags & CS_MAP_FILE)
			file_identity(maps, v, m, &ic);
		m->madvise = madv[i];
		r = cs_image_put_mapping(&d->meta, m);
	}
	if (r)
		return r;
	cs_image_set_count(&d->meta, pos, (uint32_t)maps->n);
	return cs_image_write_section(&d->w, CS_SECT_MAPPINGS, &d->meta);
}

/* A 64-bit hash of one page, four independent lanes for speed. */
static uint64_t page_hash(const uint64_t *w)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h[4] = {1, 2, 3, 4};
	for (size_t i = 0; i < CS_PAGE / 8; i += 4) {
		for (int l = 0; l < 4; l++) {
			h[l] = (h[l] ^ w[i + (size_t)l]) * k;
			h[l] = (h[l] << 31) | (h[l] >> 33);
		}
	}
	uint64_t x = h[0] ^ (h[1] * 3) ^ (h[2] * 5) ^ (h[3] * 7);
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

/* Hash mode: compare every resident page with the parent's table (both
 * sorted by address), send the changed ones, and fill the spare table. */
static int select_by_hash(struct dump *d, int is_base)
{
	struct cs_agent *a = d->a;
	const struct cs_hash_ent *old = a->hash_tab[a->hash_cur];
	struct cs_hash_ent *neu = a->hash_tab[a->hash_cur ^ 1];
	uint64_t n_old = is_base ? 0 : a->hash_n, oi = 0, k = 0;
	for (size_t i = 0; i < d->resident.n; i++) {
		for (uint64_t p = 0; p < d->resident.r[i].npages; p++) {
			uint64_t addr = d->resident.r[i].addr + p * CS_PAGE;
			uint64_t h = page_hash((const uint64_t *)addr);
			while (oi < n_old && old[oi].addr < addr)
				oi++;
			int same = oi < n_old && old[oi].addr == addr && old[oi].hash == h;
			if (k >= a->hash_cap)
				return -ENOSPC;
			neu[k].addr = addr;
			neu[k].hash = h;
			k++;
			if (!same) {
				int r = cs_runs_add(&d->send, addr, 1);
				if (r)
					return r;
			}
		}
	}
	d->hash_entries = k;
	return 0;
}

/*
 * The parent's pagemap fd reads the parent's page tables: a forked writer
 * opens its own. A program that dropped its privileges is non-dumpable and
 * its /proc/self/pagemap belongs to root; the writer then makes its own mm
 * dumpable (a forked writer's mm is its own, the program's stays as it is).
 */
static int own_pagemap(struct dump *d)
{
	if (d->c->copy_mode) {
		d->pagemap_fd = fcntl(d->a->pagemap_fd, F_DUPFD_CLOEXEC, 0); /* same mm */
		return d->pagemap_fd < 0 ? -errno : 0;
	}
	d->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (d->pagemap_fd < 0 && errno == EACCES && !prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		d->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	return d->pagemap_fd < 0 ? -errno : 0;
}

/* Hash mode: shared memory goes whole into every image, from the freeze's
 * copy (not hashed: the hash table holds tracked pages only). The runs are
 * the writer's own copies, not the parent's arrays. */
static int hash_add_shmem(struct dump *d)
{
	struct cs_runs res = {.plain = 1}, send = {.plain = 1};
	if (!d->c->shm.n)
		return 0;
	int r = cs_runs_append(&res, &d->resident);
	if (!r)
		r = cs_runs_append(&send, &d->send);
	if (!r)
		r = cs_shmem_merge(d->c, &res);
	if (!r)
		r = cs_shmem_merge(d->c, &send);
	if (r)
		return r;
	d->resident = res;
	d->send = send;
	return 0;
}

int cs_dump_select_pages(struct dump *d)
{
	if (d->a->mode != CS_MODE_HASH) {
		/* uffd mode: the parent chose during the freeze */
		d->resident = d->c->resident;
		d->send = d->c->send;
		return 0;
	}
	struct cs_runs one = {.plain = 1};
	int r = 0;
	if (d->a->have_pagemap_scan) /* the parent listed them at the freeze */
		d->resident = d->c->resident;
	else if ((r = own_pagemap(d)) == 0)
		r = cs_resident_all(&d->c->maps, d->pagemap_fd, &one, &d->resident);
	if (!r)
		r = select_by_hash(d, d->c->is_base);
	return r ? r : hash_add_shmem(d);
}
