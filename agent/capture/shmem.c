/*
 * Shared memory objects the process maps: memfds, MAP_SHARED anonymous
 * memory and MAP_SHARED of /dev/zero (both shmem inodes). A write reaches
 * such an object through any of its mappings and through write(2) on an
 * fd of it; write-protect tracking (uffd-wp) marks the page tables of one
 * mapping and sees neither of the other two. So their pages are copied in
 * full at every checkpoint, during the freeze: a forked writer shares
 * these pages with the running program instead of holding a copy-on-write
 * snapshot of them, and reads them from this copy. Bounded by
 * CS_SHMEM_MAX for all of them together; above it, and for a mapping the
 * process cannot read, the checkpoint refuses the mapping by name.
 * All-zero pages and pages past the object's end are left out: a restore
 * makes them zero (or past the end) again.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent.h"

static void refuse(struct cs_capture *c, const struct cs_vma *v, const char *why)
{
	char what[CS_ERR_MAX];
	cs_vma_name(what, sizeof(what), v);
	cs_strlcat(what, " shared ", sizeof(what));
	cs_strlcat(what, cs_vma_path(&c->maps, v), sizeof(what));
	cs_strlcat(what, why, sizeof(what));
	cs_unsup_add(c, what);
}

/* The device of the kernel's shmem mount, from the agent's own shared
 * scratch memory (the result page is MAP_SHARED | MAP_ANONYMOUS); 0 if
 * none is found. A memfd made with MFD_HUGETLB is on hugetlbfs instead. */
static uint64_t shmem_dev(const struct cs_maps *m)
{
	for (size_t i = 0; i < m->n; i++)
		if ((m->v[i].flags & CS_MAP_AGENT) && (m->v[i].flags & CS_MAP_SHARED) &&
		    !strcmp(cs_vma_path(m, &m->v[i]), "/dev/zero (deleted)"))
			return m->v[i].dev;
	return 0;
}

/* Whether v's pages go into the image; refusals only when told to. */
static int accepted(struct cs_capture *c, const struct cs_vma *v, uint64_t dev, uint64_t *total,
                    int tell)
{
	uint64_t len = v->end - v->start;
	if (dev && v->dev != dev) {
		if (tell)
			refuse(c, v, " (hugetlbfs memory, MFD_HUGETLB): not restored");
		return 0;
	}
	if (!(v->prot & PROT_READ)) {
		if (tell)
			refuse(c, v, " (not readable: its pages cannot be copied): not restored");
		return 0;
	}
	if (*total + len > CS_SHMEM_MAX) {
		if (tell)
			refuse(c, v,
			       " (shared memory above the 64 MiB an image holds, copied whole "
			       "at each checkpoint): not restored");
		return 0;
	}
	*total += len;
	return 1;
}

static int page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	for (size_t i = 0; i < CS_PAGE / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

/* One mapping into the snapshot. process_vm_readv, not a copy: a page past
 * the end of a memfd is a SIGBUS to read, here the end of a short read. */
static int copy_mapping(struct cs_capture *c, const struct cs_vma *v)
{
	uint8_t *at = c->shm_data + c->shm_len;
	size_t len = (size_t)(v->end - v->start);
	struct iovec local = {.iov_base = at, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)v->start, .iov_len = len};
	ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	if (got < 0)
		got = 0; /* nothing readable: the object ends before the mapping */
	size_t kept = 0;
	for (size_t off = 0; off + CS_PAGE <= (size_t)got; off += CS_PAGE) {
		if (page_is_zero(at + off))
			continue;
		int r = cs_runs_add(&c->shm, v->start + off, 1);
		if (r)
			return r;
		if (kept != off)
			cs_copy(at + kept, at + off, CS_PAGE);
		kept += CS_PAGE;
	}
	c->shm_len += kept;
	return 0;
}

int cs_shmem_capture(struct cs_capture *c)
{
	uint64_t total = 0, again = 0, dev = shmem_dev(&c->maps);
	c->shm.n = 0;
	c->shm_len = 0;
	for (size_t i = 0; i < c->maps.n; i++)
		if (c->maps.v[i].flags & CS_MAP_SHMEM)
			accepted(c, &c->maps.v[i], dev, &total, 1);
	if (!total)
		return 0;
	int r = cs_scratch_grow((void **)&c->shm_data, &c->shm_cap, 1, (size_t)total);
	for (size_t i = 0; !r && i < c->maps.n; i++)
		if ((c->maps.v[i].flags & CS_MAP_SHMEM) &&
		    accepted(c, &c->maps.v[i], dev, &again, 0))
			r = copy_mapping(c, &c->maps.v[i]);
	return r;
}

int cs_shmem_merge(const struct cs_capture *c, struct cs_runs *runs)
{
	for (size_t i = 0; i < c->shm.n; i++) {
		int r = cs_runs_add(runs, c->shm.r[i].addr, c->shm.r[i].npages);
		if (r)
			return r;
	}
	cs_runs_normalize(runs);
	return 0;
}

const void *cs_shmem_source(const struct cs_capture *c, uint64_t addr, uint32_t want,
                            uint32_t *avail)
{
	uint64_t off = 0;
	for (size_t i = 0; i < c->shm.n; i++) {
		const struct cs_run *s = &c->shm.r[i];
		uint64_t end = s->addr + s->npages * CS_PAGE, k;
		if (addr < s->addr) {
			k = (s->addr - addr) / CS_PAGE;
			*avail = k < want ? (uint32_t)k : want;
			return (const void *)addr;
		}
		if (addr < end) {
			k = (end - addr) / CS_PAGE;
			*avail = k < want ? (uint32_t)k : want;
			return c->shm_data + off + (addr - s->addr);
		}
		off += s->npages * CS_PAGE;
	}
	*avail = want;
	return (const void *)addr;
}
