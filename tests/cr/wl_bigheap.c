/*
 * bigheap: a large anonymous heap (--mib, default 1024) filled with a
 * deterministic pattern, then a stream of random 8-byte writes to random
 * pages. A running checksum kept in a separate variable is updated with each
 * write; it weighs every word by its position, so a page that comes back
 * stale, zeroed or at the wrong address changes the recomputed sum.
 *
 * Invariant at verify: the checksum recomputed over the whole heap equals
 * the running one. Options: --mib N, --seed S, --writes-per-tick N (default
 * 64, one tick every 10 ms). Progress is the number of writes.
 *
 * With --discards-per-tick N (default 0) it also gives N random pages back
 * to the kernel each tick (MADV_DONTNEED: they read as zeros), and reads or
 * writes some of them again at once: the pages a checkpoint must list as
 * not live, as the zero page, or as written, however the discard falls
 * between its scans.
 *
 * On SIGUSR2 it instead writes exactly --burst distinct pages (default 1000)
 * once and prints "burst <n> done"; the harness uses that to check that a
 * delta image holds about the pages written, not the whole heap.
 */
#include "wl_common.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define WORDS_PER_PAGE (4096 / sizeof(uint64_t))

static uint64_t *heap;
static size_t n_words, n_pages;
static uint64_t running_sum, writes, rng;
static volatile sig_atomic_t burst_flag;

static uint64_t weigh(uint64_t word, size_t index)
{
	uint64_t z = word ^ (index * 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ull;
	return z ^ (z >> 32);
}

static void write_word(size_t index, uint64_t value)
{
	running_sum += weigh(value, index) - weigh(heap[index], index);
	heap[index] = value;
	writes++;
}

static void on_usr2(int sig)
{
	(void)sig;
	burst_flag = 1;
}

/* Discards one page (its words read 0 from now on); then, by chance,
 * reads it (the zero page is mapped) or writes one word of it. */
static void discard(size_t page)
{
	uint64_t *p = heap + page * WORDS_PER_PAGE;
	for (size_t i = 0; i < WORDS_PER_PAGE; i++)
		running_sum +=
		    weigh(0, page * WORDS_PER_PAGE + i) - weigh(p[i], page * WORDS_PER_PAGE + i);
	madvise(p, 4096, MADV_DONTNEED);
	switch (wl_rand(&rng) % 3) {
	case 0:
		break;
	case 1:
		if (*(volatile uint64_t *)p != 0)
			wl_finish(0, writes, "page %zu reads %016llx after MADV_DONTNEED", page,
			          (unsigned long long)p[0]);
		break;
	default:
		write_word(page * WORDS_PER_PAGE + wl_rand(&rng) % WORDS_PER_PAGE, wl_rand(&rng));
	}
}

/* Touches count distinct pages: a stride walk from a random start. */
static void burst(size_t count)
{
	size_t start = wl_rand(&rng) % n_pages, stride = 7919;
	if (count > n_pages)
		count = n_pages;
	for (size_t i = 0; i < count; i++) {
		size_t page = (start + i * stride) % n_pages;
		write_word(page * WORDS_PER_PAGE + wl_rand(&rng) % WORDS_PER_PAGE, wl_rand(&rng));
	}
	wl_say("burst %zu done", count);
}

static void fill(uint64_t seed)
{
	uint64_t s = seed;
	for (size_t i = 0; i < n_words; i++) {
		heap[i] = (i % WORDS_PER_PAGE == 0) ? wl_rand(&s)
		                                    : heap[i - 1] * 6364136223846793005ull + i;
		running_sum += weigh(heap[i], i);
	}
}

int main(int argc, char **argv)
{
	size_t mib = (size_t)wl_opt(argc, argv, "--mib", 1024);
	uint64_t seed = wl_opt(argc, argv, "--seed", 1);
	size_t per_tick = (size_t)wl_opt(argc, argv, "--writes-per-tick", 64);
	size_t burst_pages = (size_t)wl_opt(argc, argv, "--burst", 1000);
	size_t discards = (size_t)wl_opt(argc, argv, "--discards-per-tick", 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR2, &sa, NULL);
	n_words = mib * 1024 * 1024 / sizeof(uint64_t);
	n_pages = n_words / WORDS_PER_PAGE;
	heap = mmap(NULL, n_words * sizeof(uint64_t), PROT_READ | PROT_WRITE,
	            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (heap == MAP_FAILED) {
		wl_say("bigheap: cannot map %zu MiB", mib);
		return 2;
	}
	rng = seed ^ 0x5eed;
	fill(seed);
	wl_init("bigheap");
	wl_say("filled %zu MiB", mib);
	while (!wl_verify_requested()) {
		if (burst_flag) {
			burst_flag = 0;
			burst(burst_pages);
		}
		for (size_t i = 0; i < per_tick; i++)
			write_word(wl_rand(&rng) % n_words, wl_rand(&rng));
		for (size_t i = 0; i < discards; i++)
			discard(wl_rand(&rng) % n_pages);
		wl_progress(writes);
		wl_sleep_ms(10);
	}
	uint64_t sum = 0;
	for (size_t i = 0; i < n_words; i++)
		sum += weigh(heap[i], i);
	if (sum != running_sum)
		wl_finish(0, writes, "heap checksum %016llx != running checksum %016llx (%zu MiB)",
		          (unsigned long long)sum, (unsigned long long)running_sum, mib);
	wl_finish(1, writes, "checksum=%016llx mib=%zu", (unsigned long long)sum, mib);
}
