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
 * Holes (SEEK_DATA on the object, when /proc/self/map_files opens it),
 * all-zero pages and pages past the object's end are left out: a restore
 * makes them zero (or past the end) again.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent.h"
#include "crc32c.h"

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

/* The next extent of the object's data in [*off, end), file offsets, in
 * whole pages: its length, *off moved to its start; 0 when none is left.
 * SEEK_DATA skips holes (pages never written; swapped pages are data), so
 * a sparse region is neither copied whole nor filled in by reading it.
 * Without an fd, all of the range. */
static uint64_t next_data(int fd, uint64_t *off, uint64_t end)
{
	if (fd < 0)
		return end - *off;
	off_t d = lseek(fd, (off_t)*off, SEEK_DATA);
	if (d < 0 || (uint64_t)d >= end)
		return 0;
	off_t h = lseek(fd, d, SEEK_HOLE);
	uint64_t e = h < 0 || (uint64_t)h > end ? end : (uint64_t)h;
	*off = (uint64_t)d & ~(uint64_t)(CS_PAGE - 1);
	e = (e + CS_PAGE - 1) & ~(uint64_t)(CS_PAGE - 1);
	return (e > end ? end : e) - *off;
}

static uint64_t data_bytes(int fd, const struct cs_vma *v)
{
	uint64_t n = 0, off = v->pgoff, end = v->pgoff + (v->end - v->start), k;
	while ((k = next_data(fd, &off, end))) {
		n += k;
		off += k;
	}
	return n;
}

/* Whether an fd of the process other than ours holds the object v maps
 * (getdents64 on /proc/self/fd: no allocation in the freeze). */
static int held_as_fd(const struct cs_vma *v, int ours)
{
	char buf[4096];
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC), held = 0;
	long n;
	while (dfd >= 0 && !held && (n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0)
		for (long off = 0; off < n && !held;) {
			unsigned short reclen;
			struct stat st;
			memcpy(&reclen, buf + off + 16, sizeof(reclen));
			const char *name = buf + off + 19;
			int fd = name[0] >= '0' && name[0] <= '9' ? atoi(name) : -1;
			held = fd >= 0 && fd != dfd && fd != ours && !fstat(fd, &st) &&
			       st.st_ino == v->ino && st.st_dev == v->dev;
			off += reclen;
		}
	if (dfd >= 0)
		close(dfd);
	return held;
}

/* Whether v's pages go into the image (*total: bytes so far), or why not. */
static const char *refusal(const struct cs_vma *v, uint64_t dev, int fd, uint64_t size,
                           uint64_t *total)
{
	if (dev && v->dev != dev)
		return " (hugetlbfs memory, MFD_HUGETLB): not restored";
	/* a memfd's seals come back with an fd of it (fds.c, MEMFD), not with
	 * a mapping alone; without CAP_CHECKPOINT_RESTORE fd is -1 and seals
	 * cannot be read (docs/compatibility.md). F_SEAL_SEAL alone is what
	 * MAP_SHARED anonymous memory and memfds without MFD_ALLOW_SEALING
	 * have. */
	int seals = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
	if (seals > 0 && (seals & ~F_SEAL_SEAL) && !held_as_fd(v, fd))
		return " (a sealed memfd that no fd holds: its seals would not come back): not "
		       "restored";
	if (!(v->prot & PROT_READ) && fd < 0)
		return " (not readable: its pages cannot be copied): not restored";
	if (*total + size > CS_SHMEM_MAX)
		return " (shared memory above the 64 MiB an image holds, copied whole at each "
		       "checkpoint): not restored";
	*total += size;
	return NULL;
}

static int page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	for (size_t i = 0; i < CS_PAGE / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

/* len bytes of the mapping from byte off on, into at: pread from the
 * object, else process_vm_readv (not a copy: a page past the end of a
 * memfd is a SIGBUS to read, here the end of a short read). */
static size_t read_extent(int fd, const struct cs_vma *v, uint64_t off, uint8_t *at, size_t len)
{
	if (fd < 0) {
		struct iovec local = {.iov_base = at, .iov_len = len};
		struct iovec remote = {.iov_base = (void *)(v->start + off), .iov_len = len};
		ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
		return got > 0 ? (size_t)got & ~(size_t)(CS_PAGE - 1) : 0;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t r = pread(fd, at + got, len - got, (off_t)(v->pgoff + off + got));
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	memset(at + got, 0, len - got); /* past the end: zeros, as the mapping reads */
	return len;
}

/* The non-zero pages of [off, off + len) of v into the snapshot. */
static int keep_pages(struct cs_capture *c, const struct cs_vma *v, uint64_t off, size_t len)
{
	uint8_t *at = c->shm_data + c->shm_len;
	size_t kept = 0;
	for (size_t p = 0; p < len; p += CS_PAGE) {
		if (page_is_zero(at + p))
			continue;
		int r = cs_runs_add(&c->shm, v->start + off + p, 1);
		if (r)
			return r;
		if (kept != p)
			cs_copy(at + kept, at + p, CS_PAGE);
		kept += CS_PAGE;
	}
	c->shm_len += kept;
	return 0;
}

static int copy_mapping(struct cs_capture *c, const struct cs_vma *v, int fd)
{
	uint64_t off = v->pgoff, end = v->pgoff + (v->end - v->start), k;
	int r = 0;
	while (!r && (k = next_data(fd, &off, end))) {
		size_t got =
		    read_extent(fd, v, off - v->pgoff, c->shm_data + c->shm_len, (size_t)k);
		r = keep_pages(c, v, off - v->pgoff, got);
		off += k;
		if (got < k)
			break; /* the object ends here */
	}
	return r;
}

int cs_shmem_capture(struct cs_capture *c)
{
	uint64_t total = 0, dev = shmem_dev(&c->maps);
	int r = 0;
	c->shm.n = 0;
	c->shm_len = 0;
	for (size_t i = 0; !r && i < c->maps.n; i++) {
		const struct cs_vma *v = &c->maps.v[i];
		if (!(v->flags & CS_MAP_SHMEM))
			continue;
		int fd = cs_vma_open(v); /* -1 without CAP_CHECKPOINT_RESTORE */
		uint64_t size = data_bytes(fd, v);
		const char *why = refusal(v, dev, fd, size, &total);
		if (why)
			refuse(c, v, why);
		else if (!(r = cs_scratch_grow((void **)&c->shm_data, &c->shm_cap, 1,
		                               c->shm_len + (size_t)size)))
			r = copy_mapping(c, v, fd);
		if (fd >= 0)
			close(fd);
	}
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

/* Where the page at addr is read from: the freeze's copy for a shared
 * memory page, else addr; *avail pages from there (<= want) are in it. */
static const void *source(const struct cs_capture *c, uint64_t addr, uint32_t want, uint32_t *avail)
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

/* With crc: copied by cs_crc32c_copy, which sums on the way, and *crc
 * extended over the bytes; without: by cs_copy. */
static void shmem_copy(const struct cs_capture *c, uint8_t *dst, uint64_t addr, uint32_t npages,
                       uint32_t *crc)
{
	while (npages) {
		uint32_t k;
		const void *src = source(c, addr, npages, &k);
		if (crc)
			*crc = cs_crc32c_copy(*crc, dst, src, (size_t)k * CS_PAGE);
		else
			cs_copy(dst, src, (size_t)k * CS_PAGE);
		dst += (size_t)k * CS_PAGE;
		addr += (uint64_t)k * CS_PAGE;
		npages -= k;
	}
}

void cs_shmem_copy(const struct cs_capture *c, uint8_t *dst, uint64_t addr, uint32_t npages)
{
	shmem_copy(c, dst, addr, npages, NULL);
}

uint32_t cs_shmem_copy_summed(const struct cs_capture *c, uint8_t *dst, uint64_t addr,
                              uint32_t npages, uint32_t crc)
{
	shmem_copy(c, dst, addr, npages, &crc);
	return crc;
}
