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

/* The split scan of anonymous mappings (cs_track_prescan, scan_anon): the
 * live pages before the freeze, and in it the written pages, the pages
 * that are not live, the ranges the split scan covered, and a spare. */
static struct cs_runs pre, wr, dead, anon, tmp;
static int pre_ok;
/* the pages the prescan saw written since the last scan: the size the
 * freeze's copy will have, near enough to reserve its buffer before */
static struct cs_runs pre_wr;
/* RESIDENT as the last complete scan of a delta left it (carried_ok), and
 * the pages it found written: the next prescan starts from them instead of
 * walking every live page again */
static struct cs_runs carried;
static int carried_ok;
static uint64_t carried_written;
static uint64_t prescan_walks; /* for the status reply */

void cs_track_reset(void)
{
	vec = NULL;
	memset(&pre, 0, sizeof(pre));
	memset(&wr, 0, sizeof(wr));
	memset(&dead, 0, sizeof(dead));
	memset(&anon, 0, sizeof(anon));
	memset(&tmp, 0, sizeof(tmp));
	memset(&pre_wr, 0, sizeof(pre_wr));
	memset(&carried, 0, sizeof(carried));
	pre_ok = carried_ok = 0;
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

/* And the userfaultfd it armed (agent/restore/track.c), set up as ours
 * would be: adopted, its registrations and write-protection are what the
 * next scan reads. */
static int given_uffd = -1;

void cs_track_give_uffd(int fd)
{
	given_uffd = fd;
}

static int adopt_uffd(struct cs_agent *a)
{
	int fd = given_uffd;
	given_uffd = -1;
	if (fd >= 0 && (a->cfg.mode == CS_MODE_HASH || !a->have_pagemap_scan)) {
		close(fd);
		fd = -1;
	}
	a->uffd = fd;
	return fd >= 0;
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
	if (adopt_uffd(a) || a->cfg.mode == CS_MODE_HASH)
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

/* What one PAGEMAP_SCAN pass asks for. */
struct scan_q {
	uint64_t flags, mask, inverted, anyof, ret;
	uint64_t drop; /* regions with one of these categories go to dropped */
};

/* Where the regions of a pass go: every one into out, and into written too
 * if the kernel says PAGE_IS_WRITTEN; one with a q->drop category into
 * dropped instead. Any of them may be NULL. */
struct scan_out {
	struct cs_runs *out, *written, *dropped;
};

static int emit(const struct scan_q *q, const struct scan_out *o, const struct page_region *pr)
{
	uint64_t np = (pr->end - pr->start) / CS_PAGE;
	int r = 0;
	if (pr->categories & q->drop)
		return o->dropped ? cs_runs_add(o->dropped, pr->start, np) : 0;
	if (o->out)
		r = cs_runs_add(o->out, pr->start, np);
	if (!r && o->written && (pr->categories & PAGE_IS_WRITTEN))
		r = cs_runs_add(o->written, pr->start, np);
	return r;
}

/* One PAGEMAP_SCAN pass over [start, end), repeated while the vector fills. */
static int scan_range(int pagemap_fd, uint64_t start, uint64_t end, const struct scan_q *q,
                      const struct scan_out *o)
{
	while (start < end) {
		struct pm_scan_arg arg = {
		    .size = sizeof(arg),
		    .flags = q->flags,
		    .start = start,
		    .end = end,
		    .vec = (uint64_t)vec,
		    .vec_len = VEC_LEN,
		    .category_mask = q->mask,
		    .category_inverted = q->inverted,
		    .category_anyof_mask = q->anyof,
		    .return_mask = q->ret,
		};
		long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++) {
			int r = emit(q, o, &vec[i]);
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

/*
 * One pass for both answers the freeze needs: every live page (RESIDENT)
 * and, among them, the ones written since the last scan, which the same
 * call write-protects again. The kernel write-protects only matched pages
 * that are PAGE_IS_WRITTEN (task_mmu.c: "if (~categories & PAGE_IS_WRITTEN)
 * continue"), so asking for all live pages re-arms exactly what the old
 * written-only scan did. Regions merge by PAGE_IS_WRITTEN alone (the return
 * mask), so the vector holds about two regions per written run. One walk
 * of the page tables instead of two: that walk is what grew with the heap.
 */
static int scan_live(int pagemap_fd, const struct cs_vma *v, struct cs_runs *resident,
                     struct cs_runs *written)
{
	uint64_t skip = not_live_mask(v);
	struct scan_q q = {.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
	                   .mask = skip,
	                   .inverted = skip,
	                   .anyof = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	                   .ret = PAGE_IS_WRITTEN};
	struct scan_out o = {.out = resident, .written = written};
	return scan_range(pagemap_fd, v->start, v->end, &q, &o);
}

/* A tracked mapping the kernel did not know as registered (new since the
 * last checkpoint, or moved or mapped again) is registered now and sent
 * whole; the scan after the registration only arms it. One that cannot be
 * registered is sent whole every time. */
static int scan_new(struct cs_agent *a, const struct cs_vma *v, struct cs_runs *resident,
                    struct cs_runs *send)
{
	struct uffdio_register reg = {.range = {.start = v->start, .len = v->end - v->start},
	                              .mode = UFFDIO_REGISTER_MODE_WP};
	size_t mark = resident->n;
	int r = ioctl(a->uffd, UFFDIO_REGISTER, &reg) ? cs_resident_scan(v, a->pagemap_fd, resident)
	                                              : scan_live(a->pagemap_fd, v, resident, NULL);
	/* all of its live pages; the first run may have merged into the
	 * previous mapping's last one, hence the clip */
	for (size_t i = mark ? mark - 1 : 0; !r && i < resident->n; i++) {
		uint64_t s = resident->r[i].addr > v->start ? resident->r[i].addr : v->start;
		uint64_t e = resident->r[i].addr + resident->r[i].npages * CS_PAGE;
		if (e > v->end)
			e = v->end;
		if (s < e)
			r = cs_runs_add(send, s, (e - s) / CS_PAGE);
	}
	return r;
}

/*
 * Before the freeze, with the threads running: the live pages of the
 * anonymous tracked mappings of the last capture (R0). Reporting every
 * live page is what makes a walk expensive (3.4 ms a GiB against 1 ms for
 * a walk that reports few pages), so the freeze only asks what changed
 * since (scan_anon), and cs_track_scan combines. After a delta R0 is what
 * its scan left (carry), and nothing is walked here.
 */
void cs_track_prescan(struct cs_agent *a, const struct cs_maps *maps)
{
	pre_ok = 0;
	pre.n = 0;
	/* no capture yet since a restore: the restorer registered every
	 * mapping, so none would look new and R0 would hold none of them */
	if (!a->have_pagemap_scan || !maps->n)
		return;
	if (carried_ok) {
		/* The last scan's RESIDENT was exact when it was taken, and
		 * the same argument holds from then as from a prescan: what
		 * became live since is written, what went is a hole or the
		 * zero page (docs/capture.md, "Dirty tracking"). */
		pre_ok = !cs_runs_append(&pre, &carried);
		return;
	}
	pre_wr.n = 0;
	prescan_walks++;
	/* the live pages, split where PAGE_IS_WRITTEN changes (nothing is
	 * write-protected here) */
	struct scan_q q = {.mask = PAGE_IS_PFNZERO,
	                   .inverted = PAGE_IS_PFNZERO,
	                   .anyof = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	                   .ret = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_WRITTEN};
	struct scan_out o = {.out = &pre, .written = &pre_wr};
	for (size_t i = 0; i < maps->n; i++) {
		const struct cs_vma *v = &maps->v[i];
		if ((v->flags & CS_MAP_TRACKED) && !(v->flags & (CS_MAP_FILE | CS_MAP_VSYSCALL)) &&
		    scan_range(a->pagemap_fd, v->start, v->end, &q, &o))
			return;
	}
	cs_runs_normalize(&pre);
	pre_ok = 1;
}

uint64_t cs_track_prescan_walks(void)
{
	return prescan_walks;
}

uint64_t cs_track_prescan_written(void)
{
	if (!pre_ok)
		return 0;
	return carried_ok ? carried_written : cs_runs_pages(&pre_wr);
}

/* After a complete scan: what the next prescan may start from. After a
 * base the next one walks (the copy buffer is sized by what it sees
 * written; a base's "written" is everything). */
static void carry(const struct cs_capture *c)
{
	carried.n = 0;
	carried_ok = !c->is_base && !cs_runs_append(&carried, &c->resident);
	carried_written = cs_runs_pages(&c->send);
}

/*
 * In the freeze, for an anonymous registered mapping, two walks that
 * report little: the pages written since the last scan (re-armed; a zero
 * page among them is not live, and is armed too, so a later write shows),
 * and the pages neither present nor swapped. With R0 from before the
 * freeze, RESIDENT is exactly (R0 + written) - not live: a page live now
 * is in R0 unless it became live after R0 was taken, and then its PTE is
 * new, without the uffd-wp bit, so it is written (a page keeps the bit
 * only while it stays, is swapped or migrates, and those were live in
 * R0 too); a page of R0 that is gone now is a hole or the zero page.
 */
static int scan_anon(int pagemap_fd, const struct cs_vma *v)
{
	struct scan_q qa = {.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
	                    .mask = PAGE_IS_WRITTEN,
	                    .anyof = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	                    .ret = PAGE_IS_WRITTEN | PAGE_IS_PFNZERO,
	                    .drop = PAGE_IS_PFNZERO};
	struct scan_out oa = {.out = &wr, .dropped = &dead};
	struct scan_q qb = {.mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	                    .inverted = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	                    .ret = PAGE_IS_PRESENT};
	struct scan_out ob = {.out = &dead};
	int r = scan_range(pagemap_fd, v->start, v->end, &qa, &oa);
	return r ? r : scan_range(pagemap_fd, v->start, v->end, &qb, &ob);
}

static uint64_t run_end(const struct cs_run *r)
{
	return r->addr + r->npages * CS_PAGE;
}

/* out += x & y (both sorted, disjoint). */
int cs_runs_and(const struct cs_runs *x, const struct cs_runs *y, struct cs_runs *out)
{
	int r = 0;
	for (size_t i = 0, j = 0; !r && i < x->n && j < y->n;) {
		uint64_t s = x->r[i].addr > y->r[j].addr ? x->r[i].addr : y->r[j].addr;
		uint64_t e =
		    run_end(&x->r[i]) < run_end(&y->r[j]) ? run_end(&x->r[i]) : run_end(&y->r[j]);
		if (s < e)
			r = cs_runs_add(out, s, (e - s) / CS_PAGE);
		if (run_end(&x->r[i]) < run_end(&y->r[j]))
			i++;
		else
			j++;
	}
	return r;
}

/* out += x - d (both sorted, disjoint). */
int cs_runs_sub(const struct cs_runs *x, const struct cs_runs *d, struct cs_runs *out)
{
	int r = 0;
	for (size_t i = 0, j = 0; !r && i < x->n; i++) {
		uint64_t s = x->r[i].addr, e = run_end(&x->r[i]);
		while (j < d->n && run_end(&d->r[j]) <= s)
			j++;
		for (size_t k = j; !r && k < d->n && d->r[k].addr < e; k++) {
			if (d->r[k].addr > s)
				r = cs_runs_add(out, s, (d->r[k].addr - s) / CS_PAGE);
			if (run_end(&d->r[k]) > s)
				s = run_end(&d->r[k]);
		}
		if (!r && s < e)
			r = cs_runs_add(out, s, (e - s) / CS_PAGE);
	}
	return r;
}

int cs_runs_append(struct cs_runs *to, const struct cs_runs *from)
{
	int r = 0;
	for (size_t i = 0; !r && i < from->n; i++)
		r = cs_runs_add(to, from->r[i].addr, from->r[i].npages);
	return r;
}

uint64_t cs_runs_pages(const struct cs_runs *r)
{
	uint64_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += r->r[i].npages;
	return n;
}

/* The split scan's share of RESIDENT and of the pages to send. */
static int combine_anon(struct cs_capture *c)
{
	cs_runs_normalize(&wr);
	cs_runs_normalize(&dead);
	tmp.n = 0;
	int r = cs_runs_and(&pre, &anon, &tmp);
	if (!r)
		r = cs_runs_append(&tmp, &wr);
	cs_runs_normalize(&tmp);
	if (!r)
		r = cs_runs_sub(&tmp, &dead, &c->resident);
	return r ? r : cs_runs_append(&c->send, &wr);
}

/*
 * During the freeze: RESIDENT, the pages written since the last scan
 * (write-protected again in the same call) and the pages to send: all live
 * pages for a base and for a mapping new since the last scan ("whole"),
 * else the written ones. Anonymous mappings take the split scan when the
 * prescan ran; file mappings (small, and only they need PAGE_IS_FILE) and
 * new ones one walk that reports every live page.
 */
int cs_track_scan(struct cs_agent *a, struct cs_capture *c)
{
	c->resident.n = 0;
	c->send.n = 0;
	carried_ok = 0; /* until this scan is complete */
	wr.n = dead.n = anon.n = 0;
	for (size_t i = 0; i < c->maps.n; i++) {
		struct cs_vma *v = &c->maps.v[i];
		v->whole = 0;
		if (!(v->flags & CS_MAP_TRACKED) || (v->flags & CS_MAP_VSYSCALL))
			continue;
		int split = pre_ok && !(v->flags & CS_MAP_FILE);
		int r = split ? scan_anon(a->pagemap_fd, v)
		              : scan_live(a->pagemap_fd, v, &c->resident, &c->send);
		if (r == -EPERM) {
			/* refused before anything was returned: the kernel checks
			 * CHECK_WPASYNC per VMA, and a cs_vma is one VMA */
			v->whole = 1;
			r = scan_new(a, v, &c->resident, &c->send);
		} else if (!r && split) {
			r = cs_runs_add(&anon, v->start, (v->end - v->start) / CS_PAGE);
		}
		if (r)
			return r;
	}
	int r = combine_anon(c);
	if (r)
		return r;
	cs_runs_normalize(&c->resident);
	if (c->is_base) {
		c->send.n = 0;
		r = cs_runs_append(&c->send, &c->resident);
		if (r)
			return r;
	}
	cs_runs_normalize(&c->send);
	carry(c);
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
	struct scan_q q = {.mask = skip,
	                   .inverted = skip,
	                   .anyof = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	                   .ret = PAGE_IS_PRESENT | PAGE_IS_SWAPPED};
	struct scan_out o = {.out = out};
	return scan_range(pagemap_fd, v->start, v->end, &q, &o);
}

/* Every live page of every tracked mapping, outside the uffd scan (hash
 * mode: the freeze counts them, a writer without PAGEMAP_SCAN lists them). */
int cs_resident_all(const struct cs_maps *maps, int pagemap_fd, struct cs_runs *one,
                    struct cs_runs *resident)
{
	resident->n = 0;
	for (size_t i = 0; i < maps->n; i++) {
		const struct cs_vma *v = &maps->v[i];
		if (!(v->flags & CS_MAP_TRACKED))
			continue;
		one->n = 0;
		int r = cs_resident_scan(v, pagemap_fd, one);
		for (size_t j = 0; !r && j < one->n; j++)
			r = cs_runs_add(resident, one->r[j].addr, one->r[j].npages);
		if (r)
			return r;
	}
	cs_runs_normalize(resident);
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
