/*
 * What runs on the program's own threads so that a freeze never ends a
 * sleep early (docs/capture.md, "Sleeps do not end early").
 *
 * The kernel does not say when an interrupted poll or epoll_wait began: its
 * restart block, which holds the end time, is dropped when a handler runs.
 * So libchecksync exports the libc functions whose time left the kernel
 * does not write back anywhere (poll, epoll_wait, epoll_pwait,
 * epoll_pwait2, and nanosleep, clock_nanosleep and usleep without a `rem`).
 * Each notes the call's deadline in the thread's slot, calls libc's own
 * function (the next definition: libc, or the preloaded agent when the
 * program links the agent too) and clears the note: a CLOCK_MONOTONIC
 * reading, two stores, measured in docs/capture.md. Calls with no timeout,
 * or a zero one, and every call while the agent is inactive, pass straight
 * through. Calls libc makes internally, and raw system calls (Go's), bypass
 * the wrappers.
 *
 * cs_sleep_resume_c is where the freeze handler sends a thread whose call it
 * interrupted (sleep_resume.S saved the program's registers): it makes the
 * call again with the time left until the deadline, as often as freezes
 * interrupt it, and returns what that call returned.
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

__thread struct cs_sleep_slot cs_sleep_slot __attribute__((tls_model("initial-exec")));

static int (*next_poll)(struct pollfd *, nfds_t, int);
static int (*next___poll_chk)(struct pollfd *, nfds_t, int, size_t);
static int (*next_epoll_wait)(int, struct epoll_event *, int, int);
static int (*next_epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
static int (*next_epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *,
                                const sigset_t *);
static int (*next_nanosleep)(const struct timespec *, struct timespec *);
static int (*next_clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
static int (*next_usleep)(useconds_t);

/* Without a next definition (a static program: no ld.so, libc's own
 * functions are the ones the agent's replace) the calls are made directly. */
static int raw_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	return (int)syscall(SYS_poll, fds, nfds, timeout);
}

static int raw___poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen)
{
	(void)fdslen;
	return raw_poll(fds, nfds, timeout);
}

static int raw_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	return (int)syscall(SYS_epoll_wait, epfd, ev, max, timeout);
}

static int raw_epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
                           const sigset_t *mask)
{
	return (int)syscall(SYS_epoll_pwait, epfd, ev, max, timeout, mask, _NSIG / 8);
}

static int raw_epoll_pwait2(int epfd, struct epoll_event *ev, int max,
                            const struct timespec *timeout, const sigset_t *mask)
{
	return (int)syscall(SYS_epoll_pwait2, epfd, ev, max, timeout, mask, _NSIG / 8);
}

static int raw_nanosleep(const struct timespec *req, struct timespec *rem)
{
	return (int)syscall(SYS_nanosleep, req, rem);
}

/* clock_nanosleep answers an error number and leaves errno alone. */
static int raw_clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                               struct timespec *rem)
{
	int saved = errno;
	int r = syscall(SYS_clock_nanosleep, clock, flags, req, rem) ? errno : 0;
	errno = saved;
	return r;
}

static int raw_usleep(useconds_t us)
{
	struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
	return raw_nanosleep(&ts, NULL);
}

/* dlsym is not async-signal-safe: start() resolves them all while the
 * process has one thread; a wrapper called earlier (another library's
 * constructor) resolves its own. */
void *cs_wrap_next(void **slot, const char *name, void *raw)
{
	void *p = dlsym(RTLD_NEXT, name);
	__atomic_store_n(slot, p ? p : raw, __ATOMIC_RELAXED);
	return p ? p : raw;
}

#define NEXT(fn) CS_WRAP_NEXT(fn)

void cs_sleepwrap_init(void)
{
	(void)NEXT(poll);
	(void)NEXT(__poll_chk);
	(void)NEXT(epoll_wait);
	(void)NEXT(epoll_pwait);
	(void)NEXT(epoll_pwait2);
	(void)NEXT(nanosleep);
	(void)NEXT(clock_nanosleep);
	(void)NEXT(usleep);
}

struct armed {
	long nr;
	int64_t deadline;
};

/* Notes that this thread is about to sleep in system call nr for timeout_ns
 * at most. The previous note comes back with disarm: a signal handler of the
 * program may sleep inside a wrapped call. The handler reads the note on
 * this thread only, so compiler fences order it. */
static struct armed arm(long nr, int64_t timeout_ns)
{
	struct cs_sleep_slot *s = &cs_sleep_slot;
	struct armed prev = {s->wait_nr, s->wait_deadline};
	s->wait_nr = 0;
	atomic_signal_fence(memory_order_seq_cst);
	s->wait_deadline = cs_clock_ns(CLOCK_MONOTONIC) + timeout_ns;
	atomic_signal_fence(memory_order_seq_cst);
	s->wait_nr = nr;
	return prev;
}

static void disarm(struct armed prev)
{
	struct cs_sleep_slot *s = &cs_sleep_slot;
	s->wait_nr = 0;
	atomic_signal_fence(memory_order_seq_cst);
	s->wait_deadline = prev.deadline;
	atomic_signal_fence(memory_order_seq_cst);
	s->wait_nr = prev.nr;
}

static int active(void)
{
	return __atomic_load_n(&cs_agent.active, __ATOMIC_RELAXED);
}

/* A relative timespec worth noting (a valid, finite, nonzero one). */
static int64_t rel_ns(const struct timespec *ts)
{
	if (!ts || ts->tv_sec < 0 || ts->tv_sec > (1l << 32) || ts->tv_nsec < 0 ||
	    ts->tv_nsec >= 1000000000)
		return 0;
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* Runs call with the note armed when the agent is active and the call has
 * a timeout to keep. */
#define WRAPPED(nr, timeout_ns, call)                                                              \
	do {                                                                                       \
		int64_t t_ = (timeout_ns);                                                         \
		if (t_ <= 0 || !active())                                                          \
			return call;                                                               \
		struct armed prev_ = arm(nr, t_);                                                  \
		int r_ = call;                                                                     \
		disarm(prev_);                                                                     \
		return r_;                                                                         \
	} while (0)

int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	WRAPPED(SYS_poll, timeout * 1000000ll, NEXT(poll)(fds, nfds, timeout));
}

/* What poll becomes under _FORTIFY_SOURCE when the array's size is known. */
int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen);
int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen)
{
	WRAPPED(SYS_poll, timeout * 1000000ll, NEXT(__poll_chk)(fds, nfds, timeout, fdslen));
}

int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	WRAPPED(SYS_epoll_wait, timeout * 1000000ll, NEXT(epoll_wait)(epfd, ev, max, timeout));
}

int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
	WRAPPED(SYS_epoll_pwait, timeout * 1000000ll,
	        NEXT(epoll_pwait)(epfd, ev, max, timeout, mask));
}

int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *timeout,
                 const sigset_t *mask)
{
	WRAPPED(SYS_epoll_pwait2, rel_ns(timeout),
	        NEXT(epoll_pwait2)(epfd, ev, max, timeout, mask));
}

/* With a rem the kernel writes the time left there (sleepers.c reads it):
 * only sleeps without one need a note. glibc makes nanosleep and usleep
 * clock_nanosleep(CLOCK_REALTIME, 0, ...), which the kernel times on
 * CLOCK_MONOTONIC (a relative timer ignores clock changes). */
int nanosleep(const struct timespec *req, struct timespec *rem)
{
	WRAPPED(SYS_clock_nanosleep, rem ? 0 : rel_ns(req), NEXT(nanosleep)(req, rem));
}

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req, struct timespec *rem)
{
	int plain = (clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC) && !flags && !rem;
	WRAPPED(SYS_clock_nanosleep, plain ? rel_ns(req) : 0,
	        NEXT(clock_nanosleep)(clock, flags, req, rem));
}

int usleep(useconds_t us)
{
	WRAPPED(SYS_clock_nanosleep, (int64_t)us * 1000, NEXT(usleep)(us));
}

/*
 * The continued call, on the program's thread, after the freeze handler
 * returned. Nothing here may touch a vector register (the program's
 * compiler may keep values in them across its system call), hence
 * general-regs-only and system calls for the clock.
 */
#define GENERAL __attribute__((target("general-regs-only")))

GENERAL static int64_t clock_now(int clock)
{
	struct timespec ts = {0, 0};
	const uint64_t a[7] = {SYS_clock_gettime, (uint64_t)clock, (uint64_t)(uintptr_t)&ts};
	cs_sleep_syscall(a);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

GENERAL static int64_t time_left(const struct cs_sleep_slot *s)
{
	int64_t left = s->deadline - clock_now(s->clock);
	return left > 0 ? left : 0;
}

GENERAL static void ns_to_ts(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
}

/* The call to make for the one in the slot, with ts as its timeout: ppoll,
 * pselect6 and epoll_pwait2 take nanoseconds (poll and epoll_wait only
 * milliseconds), a sleep goes to the deadline itself. */
GENERAL static void build_call(const struct cs_sleep_slot *s, struct timespec *ts, uint64_t a[7])
{
	const uint64_t *g = s->args;
	uint64_t t = (uint64_t)(uintptr_t)ts;
	ns_to_ts(time_left(s), ts);
	switch (s->nr) {
	case SYS_poll:
	case SYS_ppoll:
		a[0] = SYS_ppoll, a[1] = g[0], a[2] = g[1], a[3] = t;
		a[4] = s->nr == SYS_poll ? 0 : g[3], a[5] = s->nr == SYS_poll ? 8 : g[4];
		break;
	case SYS_select:
	case SYS_pselect6:
		a[0] = SYS_pselect6, a[1] = g[0], a[2] = g[1], a[3] = g[2], a[4] = g[3], a[5] = t;
		a[6] = s->nr == SYS_select ? 0 : g[5];
		break;
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case SYS_epoll_pwait2:
		a[0] = SYS_epoll_pwait2, a[1] = g[0], a[2] = g[1], a[3] = g[2], a[4] = t;
		a[5] = s->nr == SYS_epoll_wait ? 0 : g[4],
		a[6] = s->nr == SYS_epoll_wait ? 8 : g[5];
		break;
	default: /* nanosleep, clock_nanosleep: absolute, on the deadline's clock */
		ns_to_ts(s->deadline, ts);
		a[0] = SYS_clock_nanosleep, a[1] = (uint64_t)s->clock, a[2] = TIMER_ABSTIME;
		a[3] = t, a[4] = 0;
		break;
	}
}

/* What the kernel would have written back: the time left into the timeout
 * of ppoll, pselect6 and select (on every return), into the rem of an
 * interrupted sleep. */
GENERAL static void write_back(const struct cs_sleep_slot *s, long ret)
{
	const uint64_t *g = s->args;
	int64_t left = time_left(s);
	if (s->nr == SYS_ppoll || s->nr == SYS_pselect6)
		ns_to_ts(left, (struct timespec *)(uintptr_t)g[s->nr == SYS_ppoll ? 2 : 4]);
	else if (s->nr == SYS_select) {
		struct timeval *tv = (struct timeval *)(uintptr_t)g[4];
		tv->tv_sec = left / 1000000000;
		tv->tv_usec = left % 1000000000 / 1000;
	} else if (ret == -EINTR && (s->nr == SYS_nanosleep || s->nr == SYS_clock_nanosleep)) {
		uint64_t rem = g[s->nr == SYS_nanosleep ? 1 : 3];
		if (rem)
			ns_to_ts(left, (struct timespec *)(uintptr_t)rem);
	}
}

/* The call is worked from a copy: a handler of the program that runs while
 * it waits (its own signal) may continue a call of its own through the
 * slot. The slot's nr stays set while the call is made, so that a freeze
 * that interrupts it asks for it to go on (again). */
GENERAL long cs_sleep_resume_c(struct cs_resume_regs *r)
{
	struct cs_sleep_slot *s = &cs_sleep_slot;
	struct cs_sleep_slot call = *s;
	struct timespec ts;
	long ret;
	r->pc = call.pc;
	do {
		uint64_t a[7] = {0};
		s->again = 0;
		build_call(&call, &ts, a);
		ret = cs_sleep_syscall(a);
	} while (ret == -EINTR && s->again);
	write_back(&call, ret);
	s->nr = 0;
	return ret;
}
