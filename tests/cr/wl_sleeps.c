/*
 * sleeps: one thread each in poll, epoll_wait and select on a pipe nobody
 * writes to, nanosleep with a separate rem, usleep, and a ppoll made with
 * an inline syscall instruction (no libc: the kernel's time left is all the
 * agent knows), every call with a timeout of --ms (default 300)
 * milliseconds, over and over. The kernel
 * does not restart these calls after a signal handler ran, so every freeze
 * used to end them early with EINTR; the agent must continue each one to
 * its deadline, in the process that goes on after a checkpoint and in a
 * restored one.
 *
 * Each call is timed with CLOCK_MONOTONIC (which a restore keeps
 * continuous). Invariants at verify: no call returned EINTR, none returned
 * before its timeout was over, each waiting call returned 0 (timeout: the
 * pipe stays empty), each thread completed at least one call, and none
 * returned later than --max-late-ms (default 1000) after its deadline.
 * The inline ppoll also checks that the six registers a system call keeps
 * (rdi, rsi, rdx, r10, r8, r9) and a vector register (xmm8) hold its own
 * values afterwards: the agent continues an interrupted call in its own
 * code before it returns to the program.
 */
#include "wl_common.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { POLL, EPOLL, SELECT, NANOSLEEP, USLEEP, RAW_PPOLL, NKINDS };
static const char *const names[NKINDS] = {"poll",      "epoll_wait", "select",
                                          "nanosleep", "usleep",     "raw ppoll"};

struct tally {
	atomic_ullong calls, eintr, early, bad;
	atomic_llong min_ns, max_ns;
	atomic_llong bad_ret;
};
static struct tally tallies[NKINDS];
static int pipe_fds[2], epfd;
static unsigned timeout_ms;
static atomic_ullong regs_changed;

#define R9_MARK  0x5a5a5a5a5a5a5a5aull
#define XMM_MARK 0x1234567887654321ull

/* ppoll(p, 1, ts, NULL, 8) with r9 and xmm8 marked: returns the result
 * (-errno) and counts a call after which any of them changed. The number
 * is loaded right before the syscall instruction with "mov $nr, %eax", as
 * glibc's wrappers do: that is how the agent knows the call of a thread
 * that entered it after the agent's look (docs/capture.md). Code that
 * loads the number otherwise gets EINTR in that window (sleeps_cut). */
static long raw_ppoll(struct pollfd *p, struct timespec *ts)
{
	register long rdi __asm__("rdi") = (long)p;
	register long rsi __asm__("rsi") = 1;
	register long rdx __asm__("rdx") = (long)ts;
	register long r10 __asm__("r10") = 0;
	register long r8 __asm__("r8") = 8;
	register long r9 __asm__("r9") = (long)R9_MARK;
	long rax;
	uint64_t xmm = XMM_MARK;
	__asm__ volatile("movq %[x], %%xmm8\n\tmov %[nr], %%eax\n\tsyscall\n\tmovq %%xmm8, %[x]"
	                 : "=a"(rax), "+r"(rdi), "+r"(rsi), "+r"(rdx), "+r"(r10), "+r"(r8),
	                   "+r"(r9), [x] "+r"(xmm)
	                 : [nr] "i"(SYS_ppoll)
	                 : "rcx", "r11", "xmm8", "memory");
	if (rdi != (long)p || rsi != 1 || rdx != (long)ts || r10 != 0 || r8 != 8 ||
	    r9 != (long)R9_MARK || xmm != XMM_MARK)
		atomic_fetch_add(&regs_changed, 1);
	return rax;
}

/* One call of this kind; returns what it returned (-1 with errno). */
static int one_call(int kind)
{
	struct pollfd p = {.fd = pipe_fds[0], .events = POLLIN};
	struct epoll_event ev;
	struct timeval tv = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000};
	struct timespec req = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000}, rem;
	fd_set rd;
	switch (kind) {
	case POLL:
		return poll(&p, 1, (int)timeout_ms);
	case EPOLL:
		return epoll_wait(epfd, &ev, 1, (int)timeout_ms);
	case SELECT:
		FD_ZERO(&rd);
		FD_SET(pipe_fds[0], &rd);
		return select(pipe_fds[0] + 1, &rd, NULL, NULL, &tv);
	case NANOSLEEP:
		return nanosleep(&req, &rem);
	case USLEEP:
		return usleep(timeout_ms * 1000);
	default: {
		long r = raw_ppoll(&p, &req);
		if (r < 0) {
			errno = (int)-r;
			return -1;
		}
		return (int)r;
	}
	}
}

static void *sleeper_main(void *arg)
{
	int kind = (int)(intptr_t)arg;
	struct tally *t = &tallies[kind];
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL); /* verify's signal is the main thread's */
	for (;;) {
		int64_t t0 = wl_now_ns(CLOCK_MONOTONIC);
		int r = one_call(kind);
		int e = errno;
		int64_t took = wl_now_ns(CLOCK_MONOTONIC) - t0;
		if (r < 0 && e == EINTR)
			atomic_fetch_add(&t->eintr, 1);
		else if (r != 0 && atomic_fetch_add(&t->bad, 1) == 0)
			atomic_store(&t->bad_ret, r < 0 ? -e : r);
		if (took < (int64_t)timeout_ms * 1000000)
			atomic_fetch_add(&t->early, 1);
		if (!atomic_load(&t->calls) || took < atomic_load(&t->min_ns))
			atomic_store(&t->min_ns, took);
		if (took > atomic_load(&t->max_ns))
			atomic_store(&t->max_ns, took);
		atomic_fetch_add(&t->calls, 1);
	}
	return NULL;
}

static void verify(uint64_t p, int64_t max_late_ns)
{
	for (int k = 0; k < NKINDS; k++) {
		struct tally *t = &tallies[k];
		wl_expect(t->calls > 0, "%s: no call completed", names[k]);
		wl_expect(!t->eintr, "%s: %llu of %llu calls returned EINTR", names[k], t->eintr,
		          t->calls);
		wl_expect(!t->early, "%s: %llu of %llu calls returned early (shortest %lld us)",
		          names[k], t->early, t->calls, (long long)t->min_ns / 1000);
		wl_expect(!t->bad, "%s: %llu calls returned %lld, not 0", names[k], t->bad,
		          (long long)t->bad_ret);
		wl_expect(t->max_ns - (int64_t)timeout_ms * 1000000 <= max_late_ns,
		          "%s: a call took %lld us for %u ms", names[k],
		          (long long)t->max_ns / 1000, timeout_ms);
		wl_say("%s calls=%llu shortest_us=%lld longest_us=%lld", names[k], t->calls,
		       (long long)t->min_ns / 1000, (long long)t->max_ns / 1000);
	}
	wl_expect(!regs_changed, "raw ppoll: registers changed across %llu calls", regs_changed);
	wl_finish(!wl_failures(), p, "%s", wl_failures() ? wl_first_failure() : "");
}

int main(int argc, char **argv)
{
	timeout_ms = (unsigned)wl_opt(argc, argv, "--ms", 300);
	int64_t max_late_ns = (int64_t)wl_opt(argc, argv, "--max-late-ms", 1000) * 1000000;
	struct epoll_event ev = {.events = EPOLLIN};
	pthread_t th;
	if (pipe(pipe_fds) || (epfd = epoll_create1(0)) < 0 ||
	    epoll_ctl(epfd, EPOLL_CTL_ADD, pipe_fds[0], &ev))
		wl_die("pipe/epoll");
	wl_init("sleeps");
	for (int k = 0; k < NKINDS; k++)
		if (pthread_create(&th, NULL, sleeper_main, (void *)(intptr_t)k))
			wl_die("pthread_create");
	uint64_t n = 0;
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	verify(n, max_late_ns);
}
