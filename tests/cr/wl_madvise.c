/*
 * madvise: one anonymous mapping per piece of advice, each filled with its
 * own bytes: MADV_DONTFORK, MADV_WIPEONFORK, MADV_DONTDUMP, MADV_HUGEPAGE,
 * MADV_NOHUGEPAGE, MADV_MERGEABLE (when the kernel has KSM),
 * MADV_SEQUENTIAL, MADV_RANDOM, and one given two pieces of advice on its
 * second half only (the mapping splits).
 *
 * At verify each mapping's VmFlags in /proc/self/smaps must show its advice
 * again and its bytes must be intact (the pages of DONTFORK and WIPEONFORK
 * memory are not in a forked image writer's copy).
 *
 * --mlock 1 locks one more mapping, --mseal 1 seals one: both are refused
 * at checkpoint.
 *
 * --late MS gives the advice to whole mappings only MS ms after start, when
 * checkpoints have been taken already: such advice leaves the layout as it
 * was, so only the agent's madvise wrapper tells the writer that the
 * VmFlags it read before are stale (vmflags.c).
 */
#include "wl_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGES 16
#define LEN   (PAGES * 4096)

struct region {
	int advice;
	const char *flag; /* VmFlags name */
	unsigned char *p;
	size_t off; /* the advice covers [off, LEN) */
};

static struct region regions[] = {
    {MADV_DONTFORK, "dc", NULL, 0},       {MADV_WIPEONFORK, "wf", NULL, 0},
    {MADV_DONTDUMP, "dd", NULL, 0},       {MADV_HUGEPAGE, "hg", NULL, 0},
    {MADV_NOHUGEPAGE, "nh", NULL, 0},     {MADV_MERGEABLE, "mg", NULL, 0},
    {MADV_SEQUENTIAL, "sr", NULL, 0},     {MADV_RANDOM, "rr", NULL, 0},
    {MADV_DONTDUMP, "dd", NULL, LEN / 2},
};
#define N_REGIONS (sizeof(regions) / sizeof(regions[0]))

/* The VmFlags line of the VMA holding addr, or "" */
static void vmflags(const void *addr, char *out, size_t cap)
{
	char line[512];
	unsigned long lo, hi, a = (unsigned long)addr;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");
	out[0] = 0;
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' '))
			in = a >= lo && a < hi;
		else if (in && !strncmp(line, "VmFlags:", 8))
			snprintf(out, cap, "%s", line + 8);
	}
	if (f)
		fclose(f);
}

static int has_flag(const char *flags, const char *name)
{
	for (const char *p = flags; (p = strstr(p, name)); p += 2)
		if ((p == flags || p[-1] == ' ') && (p[2] == ' ' || p[2] == '\n' || !p[2]))
			return 1;
	return 0;
}

static void setup(uint64_t seed)
{
	for (size_t i = 0; i < N_REGIONS; i++) {
		struct region *r = &regions[i];
		/* A guard page after each: the kernel would merge neighbours
		 * into one mapping, which whole-mapping advice would cut. */
		r->p = mmap(NULL, LEN + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		            -1, 0);
		if (r->p == MAP_FAILED || mprotect(r->p + LEN, 4096, PROT_NONE))
			wl_die("mmap");
		uint64_t s = seed + i;
		wl_fill(r->p, LEN, &s);
	}
}

/* Advice to the mappings that it cuts in two (split 1), or to the others. */
static void advise(int split)
{
	for (size_t i = 0; i < N_REGIONS; i++) {
		struct region *r = &regions[i];
		if (!r->off != !split)
			continue;
		if (madvise(r->p + r->off, LEN - r->off, r->advice)) {
			if (r->advice != MADV_MERGEABLE)
				wl_die("madvise");
			r->advice = -1; /* no KSM in this kernel */
		}
	}
}

static void verify(uint64_t seed)
{
	static unsigned char want[LEN];
	char flags[512];
	for (size_t i = 0; i < N_REGIONS; i++) {
		struct region *r = &regions[i];
		uint64_t s = seed + i;
		wl_fill(want, LEN, &s);
		wl_expect(!memcmp(r->p, want, LEN), "mapping %zu (%s): bytes changed", i, r->flag);
		if (r->advice < 0)
			continue;
		vmflags(r->p + r->off, flags, sizeof(flags));
		wl_expect(has_flag(flags, r->flag), "mapping %zu: VmFlags '%s' lack %s", i, flags,
		          r->flag);
		if (r->off) {
			vmflags(r->p, flags, sizeof(flags));
			wl_expect(!has_flag(flags, r->flag), "mapping %zu: first half has %s: '%s'",
			          i, r->flag, flags);
		}
	}
}

static void refused_state(int argc, char **argv)
{
	if (wl_opt(argc, argv, "--mlock", 0)) {
		void *p =
		    mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED || mlock(p, LEN))
			wl_die("mlock");
	}
	if (wl_opt(argc, argv, "--mseal", 0)) {
		void *p = mmap(NULL, LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED || syscall(462 /* mseal */, p, LEN, 0))
			wl_die("mseal");
	}
}

int main(int argc, char **argv)
{
	uint64_t n = 0, seed = wl_opt(argc, argv, "--seed", 1);
	uint64_t late_ms = wl_opt(argc, argv, "--late", 0);
	wl_init("madvise");
	setup(seed);
	advise(1);
	if (!late_ms)
		advise(0);
	refused_state(argc, argv);
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		if (late_ms && (n + 1) * 20 >= late_ms && n * 20 < late_ms)
			advise(0);
		wl_progress(++n);
	}
	verify(seed);
	wl_finish(!wl_failures(), n, "%s", wl_first_failure());
}
