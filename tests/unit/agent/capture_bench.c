/*
 * Pause figures for docs/capture.md (a benchmark, not a test): a heap of
 * H MiB, P per mille of its pages dirtied between checkpoints, N deltas.
 * Prints the median and worst pause (wall and agent CPU time) and whether
 * the delta was copied during the pause or written by a COW child.
 *
 *   CHECKSYNC_DIR=/tmp/x CHECKSYNC_INTERVAL_MS=0 [CHECKSYNC_WRITER=fork|copy]
 *       capture_bench H P N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "checksync.h"

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 4 || !cs_enabled()) {
		fprintf(stderr, "usage: CHECKSYNC_DIR=... capture_bench MiB permille count\n");
		return 2;
	}
	size_t mib = strtoul(argv[1], NULL, 10), pages = mib << 8;
	unsigned permille = (unsigned)atoi(argv[2]), n = (unsigned)atoi(argv[3]);
	uint8_t *heap = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(heap, 1, mib << 20);
	uint64_t g, *wall = calloc(n, 8), *cpu = calloc(n, 8), bytes = 0;
	struct cs_stats st;
	cs_checkpoint(&g);
	cs_stats(&st);
	printf("base: %zu MiB, pause %.2f ms (cpu %.2f ms), %.1f MiB\n", mib,
	       st.last_pause_ns / 1e6, st.last_pause_cpu_ns / 1e6, st.last_bytes / 1048576.0);
	unsigned copied = 0;
	srand(1);
	for (unsigned i = 0; i < n; i++) {
		for (size_t k = 0; k < pages * permille / 1000; k++)
			heap[((size_t)rand() % pages) * 4096]++;
		if (cs_checkpoint(&g))
			return 1;
		cs_stats(&st);
		wall[i] = st.last_pause_ns;
		cpu[i] = st.last_pause_cpu_ns;
		bytes += st.last_bytes;
		copied += (unsigned)st.last_copied;
	}
	qsort(wall, n, 8, cmp);
	qsort(cpu, n, 8, cmp);
	printf("%zu MiB, %.1f%% dirty: pause median %.2f ms max %.2f ms; cpu median %.2f ms "
	       "max %.2f ms; %.1f MiB per delta; copied %u/%u\n",
	       mib, permille / 10.0, wall[n / 2] / 1e6, wall[n - 1] / 1e6, cpu[n / 2] / 1e6,
	       cpu[n - 1] / 1e6, bytes / (double)n / 1048576.0, copied, n);
	return 0;
}
