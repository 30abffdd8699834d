/*
 * What the agent's libc wrappers (agent/capture/sleepwrap.c) add to a call:
 * poll and epoll_wait with a 1 s timeout on a pipe that is always readable
 * (so they return at once and only the call's own cost is timed), libc's
 * own poll past any wrapper (dlsym in libc.so.6) the same way, poll
 * with timeout 0 (passed straight through), and clock_gettime (what a
 * wrapper adds, mostly). Prints the fastest round's ns per call for each
 * (the least disturbed by others' load; the spread is large on a shared
 * machine); run it with and without the agent preloaded, interleaved
 * (tests/bench/sleep_cost.sh). Asserts nothing.
 *
 *   sleep_cost [calls-per-round] [rounds]
 */
#include <dlfcn.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 64

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int fds[2], ep;
/* libc's own poll, past any wrapper: the same call in the same process. */
static int (*libc_poll)(struct pollfd *, nfds_t, int);

static void poll_1s(void)
{
	struct pollfd p = {.fd = fds[0], .events = POLLIN};
	if (poll(&p, 1, 1000) != 1)
		abort();
}

static void libc_poll_1s(void)
{
	struct pollfd p = {.fd = fds[0], .events = POLLIN};
	if (libc_poll(&p, 1, 1000) != 1)
		abort();
}

static void poll_0(void)
{
	struct pollfd p = {.fd = fds[0], .events = POLLIN};
	if (poll(&p, 1, 0) != 1)
		abort();
}

static void epoll_1s(void)
{
	struct epoll_event ev;
	if (epoll_wait(ep, &ev, 1, 1000) != 1)
		abort();
}

static void clock_read(void)
{
	if (now_ns() < 0)
		abort();
}

static double fastest_ns(void (*call)(void), long n, int rounds)
{
	double per[MAX_ROUNDS];
	for (int r = 0; r < rounds; r++) {
		int64_t t0 = now_ns();
		for (long i = 0; i < n; i++)
			call();
		per[r] = (double)(now_ns() - t0) / (double)n;
	}
	qsort(per, (size_t)rounds, sizeof(per[0]), cmp);
	return per[0];
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	int rounds = argc > 2 ? atoi(argv[2]) : 15;
	struct epoll_event ev = {.events = EPOLLIN};
	if (rounds < 1 || rounds > MAX_ROUNDS || n < 1 || pipe(fds) || write(fds[1], "x", 1) != 1 ||
	    (ep = epoll_create1(0)) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev))
		return 2;
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	if (!libc || !(libc_poll = (int (*)(struct pollfd *, nfds_t, int))dlsym(libc, "poll")))
		return 2;
	printf("poll_1s_ns=%.1f libc_poll_1s_ns=%.1f epoll_wait_1s_ns=%.1f poll_0_ns=%.1f "
	       "clock_gettime_ns=%.1f\n",
	       fastest_ns(poll_1s, n, rounds), fastest_ns(libc_poll_1s, n, rounds),
	       fastest_ns(epoll_1s, n, rounds), fastest_ns(poll_0, n, rounds),
	       fastest_ns(clock_read, n, rounds));
	return 0;
}
