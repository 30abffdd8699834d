/*
 * What a page costs on this machine, for the capture design's arithmetic:
 * a plain write to a mapped page, a 4 KiB copy, a first-touch fault, an
 * asynchronous userfaultfd write-protect fault (what every page the
 * application writes between two checkpoints pays once), the
 * write-protecting PAGEMAP_SCAN per written page, and a copy-on-write
 * fault while a forked child shares the page. Figures are printed in
 * microseconds and as ratios to the 4 KiB copy measured in the same run,
 * medians of several rounds. Not a test: it asserts nothing.
 *
 *   fault_cost [MiB] [pages-per-round] [rounds]
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../agent/capture/compat.h"

#define PAGE 4096u
#define MAX_ROUNDS 32

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

struct arena {
	uint8_t *p;
	size_t pages;
	size_t *pick; /* the pages one round touches, in random order */
	size_t n;
};

static void pick_pages(struct arena *a, unsigned seed)
{
	srand(seed);
	for (size_t i = 0; i < a->n; i++)
		a->pick[i] = (size_t)rand() % a->pages;
}

static double write_each(struct arena *a, size_t off)
{
	double t = now_us();
	for (size_t i = 0; i < a->n; i++)
		a->p[a->pick[i] * PAGE + off]++;
	return (now_us() - t) / (double)a->n;
}

static int uffd_register(struct arena *a, int *ret_pagemap)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	struct uffdio_api api = {.api = UFFD_API,
				 .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED};
	struct uffdio_register reg = {.range = {(uint64_t)(uintptr_t)a->p, a->pages * PAGE},
				      .mode = UFFDIO_REGISTER_MODE_WP};
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg))
		return -1;
	*ret_pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	return *ret_pagemap < 0 ? -1 : fd;
}

/* Write-protects every written page of the arena; returns us per page. */
static double wp_scan(struct arena *a, int pagemap, size_t written)
{
	static struct page_region vec[4096];
	uint64_t start = (uint64_t)(uintptr_t)a->p, end = start + a->pages * PAGE;
	double t = now_us();
	while (start < end) {
		struct pm_scan_arg arg = {.size = sizeof(arg),
					  .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
					  .start = start, .end = end,
					  .vec = (uint64_t)(uintptr_t)vec, .vec_len = 4096,
					  .category_mask = PAGE_IS_WRITTEN,
					  .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
					  .return_mask = PAGE_IS_WRITTEN};
		if (ioctl(pagemap, PAGEMAP_SCAN, &arg) < 0 || arg.walk_end <= start)
			return -1;
		start = arg.walk_end;
	}
	return (now_us() - t) / (double)(written ? written : 1);
}

static double copy_4k(struct arena *a, uint8_t *dst)
{
	double t = now_us();
	for (size_t i = 0; i < a->n; i++)
		memcpy(dst + i * PAGE, a->p + a->pick[i] * PAGE, PAGE);
	return (now_us() - t) / (double)a->n;
}

/* A write to each picked page while a forked child keeps the arena shared. */
static double cow_round(struct arena *a)
{
	int go[2];
	if (pipe(go))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(go[1]);
		(void)!read(go[0], &c, 1);
		_exit(0);
	}
	close(go[0]);
	double us = pid < 0 ? -1 : write_each(a, 24);
	close(go[1]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return us;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	struct arena a = {.pages = mib * 256, .n = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000};
	int rounds = argc > 3 ? atoi(argv[3]) : 7, pagemap = -1;
	if (rounds < 1 || rounds > MAX_ROUNDS || a.n == 0 || a.n > a.pages)
		return fprintf(stderr, "usage: fault_cost [MiB] [pages-per-round <= MiB*256] [rounds 1..%d]\n", MAX_ROUNDS), 2;
	a.p = mmap(NULL, a.pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *dst = mmap(NULL, a.n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	a.pick = calloc(a.n, sizeof(*a.pick));
	if (a.p == MAP_FAILED || dst == MAP_FAILED || !a.pick)
		return perror("fault_cost: memory"), 1;
	madvise(a.p, a.pages * PAGE, MADV_NOHUGEPAGE);
	/* The copy target must not become copy-on-write in the fork round. */
	madvise(dst, a.n * PAGE, MADV_DONTFORK);
	double first = 0, v[6][MAX_ROUNDS];
	{
		double t = now_us();
		memset(a.p, 1, a.pages * PAGE);
		first = (now_us() - t) / (double)a.pages;
	}
	int uffd = uffd_register(&a, &pagemap);
	if (uffd < 0 || wp_scan(&a, pagemap, 0) < 0)
		return fprintf(stderr, "fault_cost: userfaultfd async write-protect or PAGEMAP_SCAN unavailable\n"), 1;
	for (int r = 0; r < rounds; r++) {
		pick_pages(&a, (unsigned)r + 1);
		v[0][r] = write_each(&a, 8);  /* uffd-wp fault on each page */
		v[1][r] = write_each(&a, 16); /* the same pages again: plain writes */
		v[2][r] = copy_4k(&a, dst);
		v[3][r] = wp_scan(&a, pagemap, a.n);
		v[4][r] = cow_round(&a);
		madvise(a.p, a.pages * PAGE, MADV_DONTNEED);
		v[5][r] = write_each(&a, 32); /* zero-fill faults */
		memset(a.p, 1, a.pages * PAGE);
		wp_scan(&a, pagemap, a.n);
	}
	double copy = median(v[2], rounds);
	static const char *const name[] = {
		"uffd-wp async fault", "plain write", "4 KiB copy",
		"write-protect scan, per written page", "copy-on-write fault (forked child)",
		"first-touch fault after MADV_DONTNEED"};
	printf("fault_cost: %zu MiB arena, %zu random pages per round, %d rounds (medians)\n", mib,
	       a.n, rounds);
	printf("  %-40s %9s %12s\n", "what", "us/page", "x 4KiB copy");
	for (int i = 0; i < 6; i++) {
		double m = median(v[i], rounds);
		printf("  %-40s %9.3f %12.1f\n", name[i], m, m / copy);
	}
	printf("  %-40s %9.3f %12.1f\n", "first touch of a new mapping", first, first / copy);
	return 0;
}
