/*
 * cr-bench-heap: the process the checkpoint benchmark measures. It maps and
 * fills --mib MiB of anonymous memory, prints "ready", then a "tick <n>"
 * line every 5 ms (the driver times a restore until the first tick of the
 * restored process). On SIGUSR2 it writes one word into --permille of its
 * pages (distinct pages, a stride walk from a moving start) and prints
 * "dirtied <pages>"; on SIGTERM it exits.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t dirty_flag;

static void on_usr2(int sig)
{
	(void)sig;
	dirty_flag = 1;
}

static void say(const char *fmt, unsigned long long v)
{
	char line[128];
	int n = snprintf(line, sizeof(line), fmt, v);
	if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) < 0)
		exit(3);
}

static uint64_t opt(int argc, char **argv, const char *name, uint64_t def)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return strtoull(argv[i + 1], NULL, 0);
	return def;
}

int main(int argc, char **argv)
{
	size_t mib = (size_t)opt(argc, argv, "--mib", 64);
	size_t permille = (size_t)opt(argc, argv, "--permille", 10);
	size_t pages = mib * 256, start = 0, stride = 7919;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR2, &sa, NULL);
	uint64_t *heap = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (heap == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	for (size_t i = 0; i < pages * 512; i++)
		heap[i] = i * 0x9e3779b97f4a7c15ull;
	say("ready %llu\n", (unsigned long long)mib);
	for (unsigned long long tick = 1;; tick++) {
		if (dirty_flag) {
			size_t n = pages * permille / 1000;
			dirty_flag = 0;
			for (size_t i = 0; i < n; i++)
				heap[((start + i * stride) % pages) * 512 + (i % 512)] += tick;
			start += n;
			say("dirtied %llu\n", (unsigned long long)n);
		}
		say("tick %llu\n", tick);
		struct timespec ts = {0, 5 * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}
