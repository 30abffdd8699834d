/*
 * The advice a program gave its mappings (madvise), from the "VmFlags" of
 * /proc/self/smaps, read by the image writer and never during the freeze:
 * smaps walks every page table of the process, which measured here 3 ms
 * for 100 MB resident and 50-80 ms for 1 GB (/proc/self/maps: 0.02-0.4 ms).
 * PROCMAP_QUERY (Linux 6.11) answers only r/w/x/shared, not these flags.
 *
 * A forked writer's own smaps is the process's at the frozen instant, as
 * fork copies every mapping with its flags, except those with
 * MADV_DONTFORK: a mapping the freeze saw that the writer lacks is one.
 * (mlock is not inherited either; a locked process is refused during the
 * freeze, from VmLck.) A copy-mode writer shares the running process's
 * memory, so what it reads is a little later than the instant; advice
 * given in between is advice the program gives again after a restore, as it
 * runs on from the instant.
 *
 * The pages of DONTFORK memory are not in a forked writer's copy, and those
 * of WIPEONFORK memory read as zeros there: when such a mapping has pages
 * to write, a forked writer fails its image and asks for copy mode (the
 * pages copied during the freeze, by the process itself).
 *
 * Reading smaps at every checkpoint cost the writer 20 ms per GiB resident
 * (6% of a core for a 300 MB heap at 10 checkpoints/s), so what one read
 * found is kept, in memory shared with the agent, and used again until
 * advice goes through libc (the wrapper below counts it) or the read is
 * ADVICE_MAX_AGE_NS old. What the wrapper does not see (a raw madvise system call: Go's runtime
 * gives MADV_HUGEPAGE/NOHUGEPAGE so; mseal, which glibc 2.36 does not
 * wrap) reaches the images at the next base or within ADVICE_MAX_AGE_NS.
 * A new layout does not make a new read either while the mappings it
 * changed had no advice but huge page hints (carried()).
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dump.h"

#define SEEN   0x80000000u /* a VMA covered the mapping */
#define SEALED 0x40000000u /* in the cache: the mapping is sealed (refused) */

#define ADVICE_MAX_AGE_NS 1000000000ll
#define ADVICE_CACHE_MAX  4096 /* mappings; more: smaps every time */

/* The advice the last smaps read found, per mapping of the layout it was
 * read for (MAP_SHARED: a forked writer fills it in for the agent). */
struct advice_cache {
	uint64_t layout; /* layout_hash() of the maps it was read for */
	uint64_t start[ADVICE_CACHE_MAX], end[ADVICE_CACHE_MAX]; /* those maps */
	uint64_t calls;                                          /* advice_calls then */
	int64_t read_ns;                                         /* CLOCK_MONOTONIC of the read */
	uint32_t n, valid;
	uint64_t reads, hits; /* writers that read smaps, that used this */
	uint32_t madv[ADVICE_CACHE_MAX];
};

static struct advice_cache *cache;
static uint64_t advice_calls; /* madvise calls through libc that set VmFlags */

static const struct {
	char name[3];
	uint32_t bit;
} advice[] = {
    {"dc", CS_MADV_DONTFORK},   {"wf", CS_MADV_WIPEONFORK}, {"dd", CS_MADV_DONTDUMP},
    {"hg", CS_MADV_HUGEPAGE},   {"nh", CS_MADV_NOHUGEPAGE}, {"mg", CS_MADV_MERGEABLE},
    {"sr", CS_MADV_SEQUENTIAL}, {"rr", CS_MADV_RANDOM},
};

struct walk {
	struct dump *d;
	uint32_t *madv;      /* per captured mapping */
	size_t next;         /* first mapping not below the current VMA */
	uint64_t start, end; /* the VMA whose lines are being read */
};

/* Mappings the restorer makes itself, or that the program cannot advise. */
static int skipped(const struct cs_vma *v)
{
	return v->flags &
	       (CS_MAP_AGENT | CS_MAP_VDSO | CS_MAP_VVAR | CS_MAP_VVAR_VCLOCK | CS_MAP_VSYSCALL);
}

static void describe(char *msg, const struct cs_vma *v, const char *what)
{
	cs_vma_name(msg, CS_ERR_MAX, v);
	cs_strlcat(msg, what, CS_ERR_MAX);
}

/* An UNSUPPORTED entry found by the writer: into this image, and to the
 * agent through the shared result (a forked writer's capture is its own). */
static void refuse(struct dump *d, const struct cs_vma *v, const char *what)
{
	char msg[CS_ERR_MAX];
	struct cs_child_result *res = d->a->result;
	describe(msg, v, what);
	cs_unsup_add(d->c, msg);
	if (res->unsup[0])
		cs_strlcat(res->unsup, "\n", sizeof(res->unsup));
	cs_strlcat(res->unsup, msg, sizeof(res->unsup));
}

/* "VmFlags: rd wr mr mw me ac dd" of the VMA [w->start, w->end). */
static void vmflags_line(struct walk *w, const char *p)
{
	const struct cs_maps *m = &w->d->c->maps;
	uint32_t bits = SEEN;
	int sealed = 0;
	for (; *p; p++) {
		if (p[0] < 'a' || p[0] > 'z' || p[1] < 'a' || p[1] > 'z')
			continue;
		for (size_t i = 0; i < sizeof(advice) / sizeof(advice[0]); i++)
			if (p[0] == advice[i].name[0] && p[1] == advice[i].name[1])
				bits |= advice[i].bit;
		sealed |= p[0] == 's' && p[1] == 'l';
		p++;
	}
	while (w->next < m->n && m->v[w->next].end <= w->start)
		w->next++;
	for (size_t k = w->next; k < m->n && m->v[k].start < w->end; k++) {
		if (w->madv[k] & SEEN || skipped(&m->v[k]))
			continue;
		w->madv[k] = bits | (sealed ? SEALED : 0);
	}
}

static void one_line(struct walk *w, const char *line)
{
	if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
		cs_parse_u64(&line, &w->start, 16);
		if (*line == '-')
			line++;
		cs_parse_u64(&line, &w->end, 16);
	} else if (!strncmp(line, "VmFlags:", 8)) {
		vmflags_line(w, line + 8);
	}
}

/* Streams /proc/self/smaps through buf[cap] line by line. */
static int walk_smaps(struct walk *w, char *buf, size_t cap)
{
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	size_t have = 0;
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + have, cap - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return n < 0 ? -errno : 0;
		}
		have += (size_t)n;
		buf[have] = 0;
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			one_line(w, line);
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == cap - 1) /* a line longer than the buffer: not smaps */
			have = 0;
	}
}

/* Pages of this mapping must go into the image, but a forked writer has
 * none of them (DONTFORK) or only zeros (WIPEONFORK). */
static int unreadable_here(const struct dump *d, const struct cs_vma *v, uint32_t madv)
{
	if (d->c->copy_mode || !(v->flags & CS_MAP_TRACKED) ||
	    !(madv & (CS_MADV_DONTFORK | CS_MADV_WIPEONFORK)))
		return 0;
	return d->a->mode == CS_MODE_HASH || cs_runs_overlap(&d->c->send, v->start, v->end);
}

/* What distinguishes one layout of mappings from another. */
static uint64_t layout_hash(const struct cs_maps *m)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t k = 0; k < m->n; k++) {
		const struct cs_vma *v = &m->v[k];
		uint64_t f[] = {v->start, v->end, (uint64_t)v->prot, (uint64_t)v->flags, v->pgoff,
		                v->dev,   v->ino};
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
			h = (h ^ f[i]) * 0x100000001b3ull;
	}
	return h;
}

/* The advice of every mapping from smaps, with the DONTFORK inference. */
static int read_smaps(struct dump *d, uint32_t *madv)
{
	const struct cs_maps *m = &d->c->maps;
	struct walk w = {.d = d, .madv = madv};
	memset(madv, 0, m->n * sizeof(*madv));
	int r = walk_smaps(&w, (char *)d->bounce, BOUNCE_PAGES * CS_PAGE);
	if (r) {
		cs_set_err(d->msg, "reading /proc/self/smaps failed", NULL, NULL);
		return r;
	}
	for (size_t k = 0; k < m->n; k++) {
		if (!(madv[k] & SEEN) && !d->c->copy_mode && !skipped(&m->v[k]))
			madv[k] = CS_MADV_DONTFORK; /* not inherited: only DONTFORK does that */
		madv[k] &= ~SEEN;
		if ((madv[k] & CS_MADV_HUGEPAGE) && (madv[k] & CS_MADV_NOHUGEPAGE))
			madv[k] &= ~CS_MADV_HUGEPAGE; /* cannot both be set; be safe */
	}
	return 0;
}

/*
 * The advice of a mapping of a new layout, from the cached mappings it
 * overlaps (1), when none of them had advice beyond the huge page hints
 * and they agree on those: then the new mapping has what they had (a piece
 * split off by mprotect keeps it; merges and growth join only equal flags),
 * or, made over them by mmap, none at all, which this takes for the hint
 * they had until the next read (at most ADVICE_MAX_AGE_NS: a huge page
 * hint changes how memory is backed, never what a program sees). Other
 * advice there means a new read (0): a split piece keeps it, a new mapping
 * does not. A mapping that overlaps none is new, without advice, unless
 * mremap moved it there with its flags: mremap through libc counts as
 * advice (below); glibc's realloc moves big blocks with its own mremap,
 * which reaches the images within the age bound. Go's heap changes the
 * layout at most checkpoints and gives only huge page hints (smaps was
 * read at 76 of 121 under kvserver's load, 4.3% of its core).
 */
#define HUGE_HINTS (CS_MADV_HUGEPAGE | CS_MADV_NOHUGEPAGE)

static int carried(const struct cs_vma *v, uint32_t *madv)
{
	size_t lo = 0, hi = cache->n;
	int found = 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cache->end[mid] <= v->start)
			lo = mid + 1;
		else
			hi = mid;
	}
	*madv = 0;
	for (size_t i = lo; i < cache->n && cache->start[i] < v->end; i++) {
		if ((cache->madv[i] & ~HUGE_HINTS) || (found && cache->madv[i] != *madv))
			return 0;
		*madv = cache->madv[i];
		found = 1;
	}
	return 1;
}

/* The cached advice when it is still what smaps would say (see the top). */
static int from_cache(const struct dump *d, uint64_t layout, uint64_t calls, int64_t now,
                      uint32_t *madv)
{
	const struct cs_maps *m = &d->c->maps;
	if (!cache || !cache->valid || d->c->is_base || cache->calls != calls ||
	    now - cache->read_ns >= ADVICE_MAX_AGE_NS)
		return 0;
	if (cache->layout == layout && cache->n == m->n)
		memcpy(madv, cache->madv, m->n * sizeof(*madv));
	else
		for (size_t k = 0; k < m->n; k++) {
			madv[k] = 0;
			if (!skipped(&m->v[k]) && !carried(&m->v[k], &madv[k]))
				return 0;
		}
	__atomic_add_fetch(&cache->hits, 1, __ATOMIC_RELAXED);
	return 1;
}

static void to_cache(const struct dump *d, uint64_t layout, uint64_t calls, int64_t now,
                     const uint32_t *madv)
{
	const struct cs_maps *m = &d->c->maps;
	if (!cache)
		return;
	__atomic_add_fetch(&cache->reads, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&cache->valid, 0, __ATOMIC_RELEASE);
	if (m->n > ADVICE_CACHE_MAX)
		return;
	memcpy(cache->madv, madv, m->n * sizeof(*madv));
	for (size_t k = 0; k < m->n; k++)
		cache->start[k] = m->v[k].start, cache->end[k] = m->v[k].end;
	cache->n = (uint32_t)m->n;
	cache->layout = layout;
	cache->calls = calls;
	cache->read_ns = now;
	__atomic_store_n(&cache->valid, 1, __ATOMIC_RELEASE);
}

void cs_vmflags_prepare(void)
{
	if (!cache)
		cache = cs_scratch_alloc(sizeof(*cache), 1);
}

void cs_vmflags_counts(uint64_t *reads, uint64_t *hits)
{
	*reads = cache ? __atomic_load_n(&cache->reads, __ATOMIC_RELAXED) : 0;
	*hits = cache ? __atomic_load_n(&cache->hits, __ATOMIC_RELAXED) : 0;
}

void cs_vmflags_reset(void)
{
	cache = NULL; /* forgotten with every scratch region */
}

int cs_vmflags_read(struct dump *d, uint32_t *madv)
{
	const struct cs_maps *m = &d->c->maps;
	uint64_t layout = layout_hash(m), calls = __atomic_load_n(&advice_calls, __ATOMIC_RELAXED);
	int64_t now = cs_clock_ns(CLOCK_MONOTONIC);
	if (!from_cache(d, layout, calls, now, madv)) {
		int r = read_smaps(d, madv);
		if (r)
			return r;
		to_cache(d, layout, calls, now, madv);
	}
	for (size_t k = 0; k < m->n; k++) {
		if (madv[k] & SEALED)
			refuse(d, &m->v[k],
			       " is sealed (mseal), which a restore cannot undo: not restored");
		madv[k] &= ~SEALED;
		if (unreadable_here(d, &m->v[k], madv[k])) {
			d->a->result->need_copy = 1;
			describe(
			    d->msg, &m->v[k],
			    d->a->copy_always
			        ? " has MADV_DONTFORK or MADV_WIPEONFORK, and the image more "
			          "pages to write than a freeze copies (64 MiB): not captured"
			        : " has MADV_DONTFORK or MADV_WIPEONFORK and pages to write, "
			          "which a forked writer cannot read (copied during the freeze "
			          "from now on)");
			return -EAGAIN;
		}
	}
	return 0;
}

/* Advice that shows in VmFlags (the rest, MADV_DONTNEED and the like, is
 * what allocators give all the time, and changes no flag). */
static int sets_vmflags(int adv)
{
	switch (adv) {
	case MADV_NORMAL:
	case MADV_RANDOM:
	case MADV_SEQUENTIAL:
	case MADV_DONTFORK:
	case MADV_DOFORK:
	case MADV_WIPEONFORK:
	case MADV_KEEPONFORK:
	case MADV_DONTDUMP:
	case MADV_DODUMP:
	case MADV_HUGEPAGE:
	case MADV_NOHUGEPAGE:
	case MADV_MERGEABLE:
	case MADV_UNMERGEABLE:
		return 1;
	default:
		return 0;
	}
}

static void *(*next_mremap)(void *, size_t, size_t, int, ...);
static int (*next_madvise)(void *, size_t, int);
static int (*next_posix_madvise)(void *, size_t, int);

static int raw_madvise(void *addr, size_t len, int adv)
{
	return (int)syscall(SYS_madvise, addr, len, adv);
}

static void *raw_mremap(void *old, size_t old_len, size_t len, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	void *at = va_arg(ap, void *);
	va_end(ap);
	return (void *)syscall(SYS_mremap, old, old_len, len, flags, at);
}

/* POSIX_MADV_* equal MADV_* on Linux; posix_madvise returns the error. */
static int raw_posix_madvise(void *addr, size_t len, int adv)
{
	if (adv == POSIX_MADV_DONTNEED)
		return 0; /* glibc ignores it: it would discard data */
	return raw_madvise(addr, len, adv) ? errno : 0;
}

void cs_vmflags_init(void)
{
	(void)CS_WRAP_NEXT(madvise);
	(void)CS_WRAP_NEXT(posix_madvise);
	(void)CS_WRAP_NEXT(mremap);
}

/* A moved mapping keeps its advice at an address the cache does not hold
 * (carried()): counted as advice. */
void *mremap(void *old, size_t old_len, size_t len, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	void *at = va_arg(ap, void *); /* read only with MREMAP_FIXED or DONTUNMAP */
	va_end(ap);
	__atomic_add_fetch(&advice_calls, 1, __ATOMIC_RELAXED);
	return CS_WRAP_NEXT(mremap)(old, old_len, len, flags, at);
}

int madvise(void *addr, size_t len, int adv)
{
	if (sets_vmflags(adv))
		__atomic_add_fetch(&advice_calls, 1, __ATOMIC_RELAXED);
	return CS_WRAP_NEXT(madvise)(addr, len, adv);
}

int posix_madvise(void *addr, size_t len, int adv)
{
	if (sets_vmflags(adv))
		__atomic_add_fetch(&advice_calls, 1, __ATOMIC_RELAXED);
	return CS_WRAP_NEXT(posix_madvise)(addr, len, adv);
}
