/*
 * Pages of the Go heap that belong to no span are left out of the capture
 * (docs/go.md, "Free memory of the Go heap", has the argument why that is
 * sound and why a page leaving the free set is sent whole).
 *
 * The runtime's page allocator (mheap_.pages, a pageAlloc) keeps one bit per
 * 8 KiB Go page, set while the page belongs to a span of any kind (heap,
 * stack, other manual spans), in per-chunk bitmaps (pallocData, 512 pages
 * per 4 MiB chunk) reached through a two-level array indexed by chunkIndex.
 * The agent finds mheap_ and the version string through the executable's
 * symbol table, understands only the layout it was checked against, and
 * reads the bitmaps during the freeze with process_vm_readv, so a wrong
 * pointer is an error, never a fault in someone else's process.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent.h"
#include "golive.h"

/*
 * Go 1.19 on linux/amd64: the offsets from mheap.go, mpagealloc.go,
 * mpagealloc_64bit.go, mranges.go and lock_futex.go, checked against the
 * DWARF of a go1.19.8 binary (runtime.mheap, runtime.pageAlloc,
 * runtime.addrRanges). The symbol's size guards the rest: a build with
 * another layout (GOEXPERIMENT=staticlockranking, another release) differs.
 */
#define GO119_MHEAP_SIZE 92672u
#define GO119_LOCK_KEY   0u     /* mheap.lock.key: 0 while nobody holds it */
#define GO119_CHUNKS     136u   /* mheap.pages (16) + pageAlloc.chunks (120) */
#define GO119_START      65680u /* pages.start, pages.end: chunk indices */
#define GO119_INUSE      65696u /* pages.inUse.ranges: pointer, len, cap */

#define GO_PAGE         8192u
#define GO_CHUNK_SHIFT  22 /* pallocChunkBytes: 512 pages */
#define GO_CHUNK        (1ull << GO_CHUNK_SHIFT)
#define GO_L2_BITS      13 /* pallocChunksL2Bits = 48 - 22 - 13 */
#define GO_L1_ENTRIES   (1u << 13)
#define GO_PALLOC_DATA  128u                  /* pallocBits, then the scavenged bits */
#define GO_ARENA_OFFSET 0xffff800000000000ull /* arenaBaseOffset on amd64 */
#define GO_ADDR_LIMIT   (1ull << 47)
#define GO_MAX_RANGES   65536u

static struct {
	int state; /* enum cs_golive_state */
	uint64_t mheap;
	struct cs_runs free[2]; /* the free pages at this capture and at the parent's */
	int cur;
	struct cs_runs tmp;
	struct cs_golive_report rep;
} g;

static int read_mem(uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {buf, len}, remote = {(void *)addr, len};
	long n = syscall(SYS_process_vm_readv, syscall(SYS_getpid), &local, 1UL, &remote, 1UL, 0UL);
	return n == (long)len ? 0 : -EFAULT;
}

static void turn_off(const char *why)
{
	g.state = CS_GOLIVE_OFF;
	cs_strlcpy(g.rep.why, why, sizeof(g.rep.why));
}

/* go1.19 or go1.19.N: a suffix (" X:experiment") may change the layout. */
static int version_known(const char *v)
{
	if (strncmp(v, "go1.19", 6))
		return 0;
	if (!v[6])
		return 1;
	if (v[6] != '.' || !v[7])
		return 0;
	for (const char *p = v + 7; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

/* The load bias of a position-independent executable: where the kernel put
 * its program headers against where the file says they are. */
static int load_bias(const uint8_t *f, size_t size, uint64_t *bias)
{
	const Elf64_Ehdr *eh = (const void *)f;
	*bias = 0;
	if (eh->e_type != ET_DYN)
		return 0;
	if (eh->e_phoff > size || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff)
		return -1;
	const Elf64_Phdr *ph = (const void *)(f + eh->e_phoff);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_PHDR) {
			*bias = getauxval(AT_PHDR) - ph[i].p_vaddr;
			return 0;
		}
	}
	return -1;
}

struct go_syms {
	uint64_t mheap, mheap_size, version;
};

static const char *scan_symtab(const uint8_t *f, size_t size, struct go_syms *s)
{
	const Elf64_Ehdr *eh = (const void *)f;
	if (eh->e_shoff > size || (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > size - eh->e_shoff)
		return "the executable's section headers are out of bounds";
	const Elf64_Shdr *sh = (const void *)(f + eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum)
			continue;
		const Elf64_Shdr *st = &sh[sh[i].sh_link];
		if (sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset ||
		    st->sh_offset > size || st->sh_size > size - st->sh_offset)
			return "the executable's symbol table is out of bounds";
		const Elf64_Sym *sym = (const void *)(f + sh[i].sh_offset);
		const char *str = (const char *)(f + st->sh_offset);
		for (size_t k = 0; k < sh[i].sh_size / sizeof(*sym); k++) {
			if (sym[k].st_name >= st->sh_size)
				continue;
			const char *name = str + sym[k].st_name;
			size_t left = st->sh_size - sym[k].st_name;
			if (!strncmp(name, "runtime.mheap_", left) && left > 14) {
				s->mheap = sym[k].st_value;
				s->mheap_size = sym[k].st_size;
			} else if (left > 20 && !strncmp(name, "runtime.buildVersion", left)) {
				s->version = sym[k].st_value;
			}
		}
		if (!s->version)
			return "not a Go program (no runtime.buildVersion)";
		if (!s->mheap)
			return "no runtime.mheap_ in the symbol table";
		return NULL;
	}
	return "no symbol table in /proc/self/exe (stripped): the Go runtime cannot be found";
}

static const char *find_runtime(struct go_syms *s)
{
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		if (fd >= 0)
			close(fd);
		return "/proc/self/exe cannot be read";
	}
	size_t size = (size_t)st.st_size;
	uint8_t *f = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (f == MAP_FAILED)
		return "/proc/self/exe cannot be mapped";
	const Elf64_Ehdr *eh = (const void *)f;
	const char *why = NULL;
	uint64_t bias = 0;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64)
		why = "/proc/self/exe is not a 64-bit ELF file";
	else if (eh->e_machine != EM_X86_64)
		why = "not amd64: only the amd64 layout of the page allocator was checked";
	else if (!(why = scan_symtab(f, size, s)) && load_bias(f, size, &bias))
		why = "a position-independent executable without PT_PHDR";
	munmap(f, size);
	if (!why) {
		s->mheap += bias;
		s->version += bias;
	}
	return why;
}

void cs_golive_init(void)
{
	const char *env = getenv("CHECKSYNC_GOLIVE");
	struct go_syms s = {0, 0, 0};
	memset(&g, 0, sizeof(g));
	if (env && !strcmp(env, "off"))
		return turn_off("CHECKSYNC_GOLIVE=off");
	const char *why = find_runtime(&s);
	if (why)
		return turn_off(why);
	uint64_t str[2];
	char v[sizeof(g.rep.version)];
	if (read_mem(s.version, str, sizeof(str)) || str[1] >= sizeof(v) ||
	    read_mem(str[0], v, str[1]))
		return turn_off("runtime.buildVersion cannot be read");
	v[str[1]] = 0;
	cs_strlcpy(g.rep.version, v, sizeof(g.rep.version));
	if (!version_known(v))
		return turn_off("this Go version's page allocator was not checked (go1.19.x is)");
	if (s.mheap_size != GO119_MHEAP_SIZE)
		return turn_off("runtime.mheap_ has another size than go1.19's (another layout)");
	g.mheap = s.mheap;
	g.state = env && !strcmp(env, "measure") ? CS_GOLIVE_MEASURE : CS_GOLIVE_ON;
}

/* The free Go pages of one chunk, from its allocation bitmap. */
static int chunk_free(uint64_t base, struct cs_runs *out)
{
	uint64_t ci = (base - GO_ARENA_OFFSET) >> GO_CHUNK_SHIFT, l2, bits[8];
	if ((ci >> GO_L2_BITS) >= GO_L1_ENTRIES)
		return -EPROTO;
	if (read_mem(g.mheap + GO119_CHUNKS + 8 * (ci >> GO_L2_BITS), &l2, sizeof(l2)) || !l2)
		return -EPROTO; /* grow fills it under the heap lock, which is free */
	l2 += GO_PALLOC_DATA * (ci & ((1u << GO_L2_BITS) - 1));
	if (read_mem(l2, bits, sizeof(bits)))
		return -EPROTO;
	for (unsigned i = 0; i < 512; i++) {
		if (bits[i / 64] & (1ull << (i % 64)))
			continue;
		int r = cs_runs_add(out, base + (uint64_t)i * GO_PAGE, GO_PAGE / CS_PAGE);
		if (r)
			return r;
	}
	return 0;
}

/*
 * The pages free in the page allocator, sorted. -EBUSY when a thread holds
 * the heap lock: it may be halfway through a bitmap or the inUse slice (all
 * page allocator changes are made under that lock, and a frozen thread's
 * stores are all visible). -EPROTO when what is read does not fit the
 * layout.
 */
static int read_free(struct cs_runs *out)
{
	uint64_t key, se[2], hdr[3], prev = 0;
	if (read_mem(g.mheap + GO119_LOCK_KEY, &key, sizeof(key)) ||
	    read_mem(g.mheap + GO119_START, se, sizeof(se)) ||
	    read_mem(g.mheap + GO119_INUSE, hdr, sizeof(hdr)))
		return -EPROTO;
	if (key)
		return -EBUSY;
	if (hdr[1] > hdr[2] || hdr[1] > GO_MAX_RANGES || se[0] > se[1])
		return -EPROTO;
	for (uint64_t i = 0; i < hdr[1]; i++) {
		uint64_t rg[2];
		if (read_mem(hdr[0] + 16 * i, rg, sizeof(rg)))
			return -EPROTO;
		if (rg[0] >= rg[1] || rg[0] < prev || rg[1] > GO_ADDR_LIMIT ||
		    (rg[0] | rg[1]) % GO_CHUNK ||
		    ((rg[0] - GO_ARENA_OFFSET) >> GO_CHUNK_SHIFT) < se[0] ||
		    ((rg[1] - 1 - GO_ARENA_OFFSET) >> GO_CHUNK_SHIFT) >= se[1])
			return -EPROTO;
		prev = rg[1];
		for (uint64_t c = rg[0]; c < rg[1]; c += GO_CHUNK) {
			int r = chunk_free(c, out);
			if (r)
				return r;
		}
	}
	return 0;
}

/* a = a outside b; *removed counts what went. */
static int subtract(struct cs_runs *a, const struct cs_runs *b, uint64_t *removed)
{
	uint64_t before = cs_runs_pages(a);
	g.tmp.n = 0;
	int r = cs_runs_sub(a, b, &g.tmp);
	if (r)
		return r;
	struct cs_runs t = *a;
	*a = g.tmp;
	g.tmp = t;
	*removed = before - cs_runs_pages(a);
	return 0;
}

/* send += the resident pages the parent image left out: their bytes are in
 * no image of the chain, or stale in an older one. */
static int readd(struct cs_capture *c, const struct cs_runs *prev)
{
	uint64_t before = cs_runs_pages(&c->send);
	g.tmp.n = 0;
	int r = cs_runs_and(&c->resident, prev, &g.tmp);
	if (!r)
		r = cs_runs_append(&c->send, &g.tmp);
	if (r)
		return r;
	cs_runs_normalize(&c->send);
	g.rep.readded_pages = cs_runs_pages(&c->send) - before;
	return 0;
}

static void count_only(const struct cs_capture *c, const struct cs_runs *now, int with_send)
{
	g.tmp.n = 0;
	cs_runs_and(&c->resident, now, &g.tmp);
	g.rep.left_out_pages = cs_runs_pages(&g.tmp);
	if (with_send) {
		g.tmp.n = 0;
		cs_runs_and(&c->send, now, &g.tmp);
		g.rep.left_out_sent = cs_runs_pages(&g.tmp);
	}
}

static int apply(struct cs_capture *c, struct cs_runs *now, const struct cs_runs *prev,
                 int with_send, int is_base)
{
	if (g.state == CS_GOLIVE_MEASURE) {
		count_only(c, now, with_send);
		now->n = 0; /* nothing was left out of this image */
		return 0;
	}
	int r = subtract(&c->resident, now, &g.rep.left_out_pages);
	if (!r && with_send)
		r = subtract(&c->send, now, &g.rep.left_out_sent);
	if (!r && with_send && !is_base && prev->n)
		r = readd(c, prev);
	return r;
}

/* The free set read for this capture is g.free[g.cur]: take it out, put
 * the parent's back, and make it the parent's for the next capture. */
static int leave_out(struct cs_capture *c, int with_send)
{
	struct cs_runs *now = &g.free[g.cur], *prev = &g.free[g.cur ^ 1];
	int r;
	g.rep.free_pages = cs_runs_pages(now);
	g.rep.left_out_pages = g.rep.left_out_sent = g.rep.readded_pages = 0;
	if ((now->n || prev->n) && (r = apply(c, now, prev, with_send, c->is_base)))
		return r;
	g.cur ^= 1;
	g.rep.left_out_sent_total += g.rep.left_out_sent;
	if (with_send)
		g.rep.sent_total += cs_runs_pages(&c->send);
	return 0;
}

int cs_golive_filter(struct cs_capture *c, int with_send)
{
	int r = 0;
	struct cs_runs *now = &g.free[g.cur];
	now->n = 0;
	if (g.state != CS_GOLIVE_OFF)
		r = read_free(now);
	if (r == -EBUSY) {
		g.rep.skipped++;
		now->n = 0;
		r = 0;
	} else if (r && r != -ENOMEM) {
		turn_off("the page allocator read back inconsistent (another layout?)");
		now->n = 0;
		r = 0;
	}
	return r ? r : leave_out(c, with_send);
}

int cs_golive_leave_out(struct cs_capture *c, const struct cs_runs *free_now, int with_send)
{
	struct cs_runs *now = &g.free[g.cur];
	now->n = 0;
	for (size_t i = 0; i < free_now->n; i++) {
		int r = cs_runs_add(now, free_now->r[i].addr, free_now->r[i].npages);
		if (r)
			return r;
	}
	return leave_out(c, with_send);
}

void cs_golive_reset(void)
{
	memset(g.free, 0, sizeof(g.free));
	memset(&g.tmp, 0, sizeof(g.tmp));
}

void cs_golive_report(struct cs_golive_report *out)
{
	*out = g.rep;
	out->state = g.state;
}
