/*
 * Workload for restore_chain.py: every few milliseconds writes its sequence
 * number s into page s of a 64 MiB mapping (each page written once per lap,
 * like a log), checks that every page below s still holds its own number,
 * and prints "seq s" (or "BAD ..." for each page that lost its write).
 * A page written once and never again must reach an image through a delta:
 * nothing later sends it again.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NPAGES 16384u
#define WORDS_PER_PAGE 512u

static void say(const char *what, uint64_t a, uint64_t b)
{
	char line[96];
	int n = snprintf(line, sizeof(line), "%s %llu %llu\n", what, (unsigned long long)a,
			 (unsigned long long)b);
	if (write(1, line, (size_t)n) < 0)
		_exit(3);
}

int main(void)
{
	uint64_t *m = mmap(NULL, (size_t)NPAGES * 4096, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 2;
	static volatile uint64_t seq;
	say("ready", 0, 0);
	for (;;) {
		uint64_t s = ++seq;
		if (s >= NPAGES)
			s = seq = 1;
		m[s * WORDS_PER_PAGE] = s;
		for (uint64_t i = 1; i < s; i++)
			if (m[i * WORDS_PER_PAGE] != i)
				say("BAD", i, m[i * WORDS_PER_PAGE]);
		say("seq", s, 0);
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
}
