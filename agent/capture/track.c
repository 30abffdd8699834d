/*
 * Dirty-page tracking with userfaultfd asynchronous write-protect and the
 * PAGEMAP_SCAN ioctl (Linux 6.7+), and the resident-page scans.
 *
 * Facts measured on this kernel (6.18) that shape the code:
 * - A page counts as PAGE_IS_WRITTEN when its PTE lacks the uffd-wp bit, so
 *   right after UFFDIO_REGISTER every present page of the VMA is "written":
 *   registering a new mapping and scanning it sends it whole, as it must.
 * - Holes (never-touched pages) of a registered VMA are reported WRITTEN as
 *   well, and a PM_SCAN_WP_MATCHING scan that matches them installs uffd-wp
 *   PTE markers there, allocating page tables for the whole range (2 MiB of
 *   PTEs per GiB) and making later scans report the holes as SWAPPED. The
 *   scan therefore asks for PRESENT|SWAPPED pages only (anyof mask): holes
 *   are never matched, never marked, and a first write into one still shows
 *   up as written because the new PTE has no uffd-wp bit.
 * - PM_SCAN_CHECK_WPASYNC fails with EPERM on a VMA that is not registered:
 *   a mapping that was unmapped and mapped again (or moved by mremap, which
 *   drops the registration) is detected by the kernel, not by bookkeeping.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "compat.h"

#define VEC_LEN 4096

static struct page_region *vec;

void cs_track_reset(void)
{
	vec = NULL;
}

int cs_runs_add(struct cs_runs *r, uint64_t addr, uint64_t npages)
{
	/* Adjacent runs merge. Overlap happens too: when the output vector
	 * fills, PAGEMAP_SCAN's walk_end can lie before the end of the last
	 * region it returned, and the next call returns those pages again. */
	if (r->n) {
		struct cs_run *last = &r->r[r->n - 1];
		uint64_t end = last->addr + last->npages * CS_PAGE;
		if (addr >= last->addr && addr <= end) {
			uint64_t new_end = addr + npages * CS_PAGE;
			if (new_end > end)
				last->npages = (new_end - last->addr) / CS_PAGE;
			return 0;
		}
	}
	if (r->n + 1 > r->cap) {
		int e = r->plain
		            ? cs_plain_grow((void **)&r->r, &r->cap, sizeof(*r->r), r->n + 1)
		            : cs_scratch_grow((void **)&r->r, &r->cap, sizeof(*r->r), r->n + 1);
		if (e)
			return e;
	}
	r->r[r->n].addr = addr;
	r->r[r->n].npages = npages;
	r->n++;
	return 0;
}

/* After a restore: the pagemap fd the restorer opened while it was still
 * root (cs_agent_restore_block), used once instead of opening our own. */
static int given_pagemap = -1;

void cs_track_give_pagemap(int fd)
{
	given_pagemap = fd;
}

int cs_track_open(struct cs_agent *a)
{
	a->uffd = -1;
	a->pagemap_fd =
	    given_pagemap >= 0 ? given_pagemap : open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	given_pagemap = -1;
	if (a->pagemap_fd < 0)
		return -errno;
	if (!vec) {
		vec = cs_scratch_alloc(VEC_LEN * sizeof(*vec), 0);
		if (!vec)
			return -ENOMEM;
	}
	/* PAGEMAP_SCAN exists? An empty range answers 0 or ENOTTY. */
	struct pm_scan_arg probe = {.size = sizeof(probe), .vec = (uint64_t)vec, .vec_len = 1};
	a->have_pagemap_scan = ioctl(a->pagemap_fd, PAGEMAP_SCAN, &probe) >= 0;
	if (a->cfg.mode == CS_MODE_HASH)
		return 0;
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -errno;
	struct uffdio_api api = {.api = UFFD_API,
	                         .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED};
	if (ioctl(fd, UFFDIO_API, &api) || !(api.features & UFFD_FEATURE_WP_ASYNC)) {
		int e = errno ? -errno : -EOPNOTSUPP;
		close(fd);
		return e;
	}
	if (!a->have_pagemap_scan) {
		close(fd);
		return -ENOTTY;
	}
	a->uffd = fd;
	return 0;
}

void cs_track_close(struct cs_agent *a)
{
	if (a->uffd >= 0)
		close(a->uffd);
	a->uffd = -1;
}

/* One PAGEMAP_SCAN pass over [start, end), repeated while the vector fills. */
static int scan_range(int pagemap_fd, uint64_t start, uint64_t end, uint64_t flags, uint64_t mask,
                      uint64_t inverted, uint64_t anyof, struct cs_runs *out)
{
	while (start < end) {
		struct pm_scan_arg arg = {
		    .size = sizeof(arg),
		    .flags = flags,
		    .start = start,
		    .end = end,
		    .vec = (uint64_t)vec,
		    .vec_len = VEC_LEN,
		    .category_mask = mask,
		    .category_inverted = inverted,
		    .category_anyof_mask = anyof,
		    .return_mask = mask | anyof,
		};
		long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++) {
			int r =
			    cs_runs_add(out, vec[i].start, (vec[i].end - vec[i].start) / CS_PAGE);
			if (r)
				return r;
		}
		if (arg.walk_end <= start)
			return -EIO;
		start = arg.walk_end;
	}
	return 0;
}

/*
 * The pages to exclude: the zero page always, pages still shared with the
 * file only in a file mapping. Asking for PAGE_IS_FILE makes the kernel
 * look up every present page's struct page (a cache miss each: 0.1 us per
 * page here, 8-14 ms per scan of a 300 MiB Go heap), and an anonymous
 * mapping holds no file pages, so only file mappings ask.
 */
static uint64_t not_live_mask(const struct cs_vma *v)
{
	return (v->flags & CS_MAP_FILE) ? PAGE_IS_FILE | PAGE_IS_PFNZERO : PAGE_IS_PFNZERO;
}

static int scan_written(int pagemap_fd, const struct cs_vma *v, struct cs_runs *out)
{
	uint64_t skip = not_live_mask(v);
	return scan_range(pagemap_fd, v->start, v->end, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
	                  PAGE_IS_WRITTEN | skip, skip, PAGE_IS_PRESENT | PAGE_IS_SWAPPED, out);
}

/*
 * During the freeze: for every tracked mapping, the pages written since the
 * last scan, write-protected again in the same call. A mapping that is not
 * registered yet (new since the last checkpoint) is registered and marked
 * whole: all its resident pages go into this image.
 */
int cs_track_scan(struct cs_agent *a, struct cs_capture *c)
{
	c->dirty.n = 0;
	for (size_t i = 0; i < c->maps.n; i++) {
		struct cs_vma *v = &c->maps.v[i];
		v->whole = 0;
		if (!(v->flags & CS_MAP_TRACKED))
			continue;
		size_t mark = c->dirty.n;
		int r = scan_written(a->pagemap_fd, v, &c->dirty);
		if (r == -EPERM) {
			c->dirty.n = mark;
			v->whole = 1;
			struct uffdio_register reg = {
			    .range = {.start = v->start, .len = v->end - v->start},
			    .mode = UFFDIO_REGISTER_MODE_WP};
			if (ioctl(a->uffd, UFFDIO_REGISTER, &reg))
				continue; /* untrackable: sent whole every time */
			r = scan_written(a->pagemap_fd, v, &c->dirty);
			c->dirty.n = mark; /* whole anyway; the scan only armed it */
		}
		if (r)
			return r;
	}
	cs_runs_normalize(&c->dirty);
	return 0;
}

/* Pages of the pagemap read path (kernels without PAGEMAP_SCAN). */
#define PM_PRESENT (1ull << 63)
#define PM_SWAP    (1ull << 62)
#define PM_FILE    (1ull << 61)

static int resident_pagemap(const struct cs_vma *v, int pagemap_fd, struct cs_runs *out)
{
	uint64_t ents[512];
	for (uint64_t addr = v->start; addr < v->end;) {
		uint64_t n = (v->end - addr) / CS_PAGE;
		if (n > 512)
			n = 512;
		ssize_t r = pread(pagemap_fd, ents, n * 8, (off_t)(addr / CS_PAGE * 8));
		if (r < 0)
			return -errno;
		if (r < 8)
			return -EIO;
		n = (uint64_t)r / 8;
		for (uint64_t i = 0; i < n; i++) {
			if ((ents[i] & (PM_PRESENT | PM_SWAP)) && !(ents[i] & PM_FILE)) {
				int e = cs_runs_add(out, addr + i * CS_PAGE, 1);
				if (e)
					return e;
			}
		}
		addr += n * CS_PAGE;
	}
	return 0;
}

/*
 * The live pages of a tracked mapping (PAGEMAP_SCAN where the kernel has
 * it, in both modes: reading 8 bytes of /proc/self/pagemap per page of a
 * sparse reservation, such as a sanitizer's shadow, takes minutes): present or swapped, anonymous
 * (a page still shared with the file is restored from the file), not the zero page. Runs in the
 * writer child, whose page tables are a copy of the parent's.
 */
int cs_resident_scan(const struct cs_vma *v, int pagemap_fd, struct cs_runs *out)
{
	if (v->flags & CS_MAP_VSYSCALL)
		return 0;
	if (!cs_agent.have_pagemap_scan)
		return resident_pagemap(v, pagemap_fd, out);
	uint64_t skip = not_live_mask(v);
	return scan_range(pagemap_fd, v->start, v->end, 0, skip, skip,
	                  PAGE_IS_PRESENT | PAGE_IS_SWAPPED, out);
}

/* Adds the part of run [addr, addr + np pages) that dirty covers, walking
 * dirty from *di (both are sorted). */
static int add_intersection(const struct cs_runs *dirty, struct cs_runs *send, uint64_t addr,
                            uint64_t np, size_t *di)
{
	uint64_t end = addr + np * CS_PAGE;
	while (*di < dirty->n && dirty->r[*di].addr + dirty->r[*di].npages * CS_PAGE <= addr)
		(*di)++;
	for (size_t j = *di; j < dirty->n && dirty->r[j].addr < end; j++) {
		uint64_t s = dirty->r[j].addr > addr ? dirty->r[j].addr : addr;
		uint64_t e = dirty->r[j].addr + dirty->r[j].npages * CS_PAGE;
		if (e > end)
			e = end;
		if (s < e) {
			int r = cs_runs_add(send, s, (e - s) / CS_PAGE);
			if (r)
				return r;
		}
	}
	return 0;
}

/*
 * RESIDENT and the pages to send: all resident pages for a base or a mapping
 * new since the last scan ("whole"), else the resident pages the dirty scan
 * found written. send may be NULL (hash mode chooses by content).
 */
int cs_select_pages(const struct cs_maps *maps, const struct cs_runs *dirty, int is_base,
                    int pagemap_fd, struct cs_runs *one, struct cs_runs *resident,
                    struct cs_runs *send)
{
	size_t di = 0;
	resident->n = 0;
	if (send)
		send->n = 0;
	for (size_t i = 0; i < maps->n; i++) {
		const struct cs_vma *v = &maps->v[i];
		if (!(v->flags & CS_MAP_TRACKED))
			continue;
		one->n = 0;
		int r = cs_resident_scan(v, pagemap_fd, one);
		for (size_t j = 0; !r && j < one->n; j++) {
			const struct cs_run *run = &one->r[j];
			r = cs_runs_add(resident, run->addr, run->npages);
			if (r || !send)
				continue;
			if (is_base || v->whole || !dirty)
				r = cs_runs_add(send, run->addr, run->npages);
			else
				r = add_intersection(dirty, send, run->addr, run->npages, &di);
		}
		if (r)
			return r;
	}
	cs_runs_normalize(resident);
	if (send)
		cs_runs_normalize(send);
	return 0;
}

int cs_runs_overlap(const struct cs_runs *r, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->r[i].addr < end && r->r[i].addr + r->r[i].npages * CS_PAGE > start)
			return 1;
	return 0;
}

static void sift(struct cs_run *a, size_t i, size_t n)
{
	for (;;) {
		size_t m = i, l = 2 * i + 1, r = l + 1;
		if (l < n && a[l].addr > a[m].addr)
			m = l;
		if (r < n && a[r].addr > a[m].addr)
			m = r;
		if (m == i)
			return;
		struct cs_run t = a[i];
		a[i] = a[m];
		a[m] = t;
		i = m;
	}
}

/*
 * Makes a run list sorted and disjoint, as the image format requires. The
 * scans produce it in order almost always; the exception seen (a sanitizer
 * build's allocator growing a mapping that is then registered and merged
 * by the kernel) is repaired here rather than trusted. Heap sort: in place,
 * no allocation, usable during the freeze.
 */
void cs_runs_normalize(struct cs_runs *r)
{
	size_t i, n = r->n;
	for (i = 1; i < n && r->r[i].addr >= r->r[i - 1].addr + r->r[i - 1].npages * CS_PAGE; i++)
		;
	if (i >= n)
		return;
	for (i = n / 2; i-- > 0;)
		sift(r->r, i, n);
	for (i = n; i-- > 1;) {
		struct cs_run t = r->r[0];
		r->r[0] = r->r[i];
		r->r[i] = t;
		sift(r->r, 0, i);
	}
	size_t k = 0;
	for (i = 1; i < n; i++) {
		uint64_t end = r->r[k].addr + r->r[k].npages * CS_PAGE;
		uint64_t e2 = r->r[i].addr + r->r[i].npages * CS_PAGE;
		if (r->r[i].addr <= end) {
			if (e2 > end)
				r->r[k].npages = (e2 - r->r[k].addr) / CS_PAGE;
		} else {
			r->r[++k] = r->r[i];
		}
	}
	r->n = k + 1;
}
