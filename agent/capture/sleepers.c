/*
 * Sleeps that a freeze must not cut short. The kernel restarts most
 * interrupted system calls after a handler with SA_RESTART, but not
 * nanosleep and clock_nanosleep, poll, select, epoll_wait, sigtimedwait and
 * pause (signal(7)): they return EINTR, and a program that sleeps in them
 * would see the freeze (sleep(3) returning early, an event loop waking
 * without an event). Before it sends anything the agent notes, per thread,
 * the call it sleeps in (/proc/self/task/T/syscall) when issuing that call
 * again is exactly what the program asked for: an absolute sleep, a
 * relative one whose remaining time the kernel writes back into the
 * request (req == rem, as sleep(3) and glibc's nanosleep callers do), a
 * wait without timeout. The handler then turns the EINTR at that very
 * instruction back into the call: rax = the call's number, rip on the
 * syscall instruction again. The arguments are still in their registers,
 * so whether the call may be issued again is decided on them.
 *
 * A call with a finite timeout cannot simply be issued again: the time
 * already slept would be slept twice. The handler continues it until its
 * deadline instead (cs_sleep_resume, sleepwrap.c): the frame resumes in the
 * agent, which makes the call again with the time left and returns to the
 * program with its registers and the call's result (0 when the deadline
 * passed during the freeze). The deadline is now plus the time left that
 * the kernel wrote back (ppoll, pselect6 and select into their timeout, a
 * relative nanosleep or clock_nanosleep into a separate rem), or the one a
 * wrapper of the libc function noted when the program called it (poll,
 * epoll_wait and a sleep without rem). CLOCK_MONOTONIC goes on across a
 * restore (the time namespace hides the time away), so the deadline holds
 * in a restored process too. A call whose deadline is not known (a raw
 * system call, one libc makes internally) returns EINTR as before and is
 * counted (cs_sleep_counts).
 */
#include <errno.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>

#include "agent.h"

struct sleeper {
	_Atomic int32_t tid;
	int32_t nr;
	uint64_t pc;
};

static struct sleeper *notes; /* scratch, CS_MAX_THREADS */
static _Atomic uint32_t n_notes;
static _Atomic uint64_t n_continued, n_cut;

void cs_sleep_counts(uint64_t *ret_continued, uint64_t *ret_cut)
{
	*ret_continued = atomic_load(&n_continued);
	*ret_cut = atomic_load(&n_cut);
}

int cs_sleep_init(void)
{
	if (!notes)
		notes = cs_scratch_alloc(CS_MAX_THREADS * sizeof(*notes), 0);
	return notes ? 0 : -ENOMEM;
}

void cs_sleep_clear(void)
{
	atomic_store(&n_notes, 0);
}

/* After a restore the scratch array is gone; the next install makes one. */
void cs_sleep_reset(void)
{
	atomic_store(&n_notes, 0);
	notes = NULL;
}

static int restartable(const struct cs_thread_look *t)
{
	const uint64_t *a = t->args;
	switch (t->sysno) {
	case SYS_nanosleep:
		return a[0] == a[1];
	case SYS_clock_nanosleep:
		return (a[1] & TIMER_ABSTIME) || (a[2] == a[3]);
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
		return (int)a[3] < 0;
	case SYS_poll:
		return (int)a[2] < 0;
	case SYS_ppoll:
	case SYS_rt_sigtimedwait:
		return a[2] == 0;
	case SYS_select:
	case SYS_pselect6:
		return a[4] == 0;
	case SYS_pause:
		return 1;
	default:
		return 0;
	}
}

void cs_sleep_note(pid_t tid, const struct cs_thread_look *t)
{
	if (!notes || !t->pc)
		return;
	uint32_t i = atomic_load(&n_notes);
	if (i >= CS_MAX_THREADS)
		return;
	atomic_store(&notes[i].tid, 0);
	notes[i].nr = (int32_t)t->sysno;
	notes[i].pc = t->pc;
	atomic_store_explicit(&notes[i].tid, tid, memory_order_release);
	atomic_store(&n_notes, i + 1);
}

/*
 * The call interrupted at pc when the agent did not see the thread enter
 * it (it went to sleep between the look and the signal): the number from
 * the instruction before, "mov $nr, %eax" (b8 nr32) as glibc's wrappers
 * have it; -1 when the code says otherwise. Read with process_vm_readv:
 * pc - 7 may lie in an unmapped page before the code.
 */
static long decode_nr(uint64_t pc)
{
	uint8_t code[7];
	struct iovec local = {code, sizeof(code)}, remote = {(void *)(uintptr_t)(pc - 7), 7};
	if (syscall(SYS_process_vm_readv, cs_agent.pid, &local, 1, &remote, 1, 0) != 7 ||
	    code[0] != 0xb8 || code[5] != 0x0f || code[6] != 0x05)
		return -1;
	return (long)((uint32_t)code[1] | (uint32_t)code[2] << 8 | (uint32_t)code[3] << 16 |
	              (uint32_t)code[4] << 24);
}

static long noted_nr(pid_t tid, uint64_t pc)
{
	uint32_t n = atomic_load(&n_notes);
	for (uint32_t i = 0; i < n && i < CS_MAX_THREADS; i++)
		if (atomic_load_explicit(&notes[i].tid, memory_order_acquire) == tid &&
		    notes[i].pc == pc)
			return notes[i].nr;
	return decode_nr(pc);
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/*
 * The deadline of a call with a finite timeout, from the time left the
 * kernel wrote back or from the wrapper's note; 0 when neither is known.
 * The pointers are the thread's own (the kernel has just written there).
 */
static int64_t deadline_of(const struct cs_thread_look *t, const struct cs_sleep_slot *s,
                           int *clock)
{
	const uint64_t *a = t->args;
	int64_t now = cs_clock_ns(CLOCK_MONOTONIC),
	        noted = s->wait_nr == t->sysno ? s->wait_deadline : 0;
	*clock = CLOCK_MONOTONIC;
	switch (t->sysno) {
	case SYS_ppoll:
		return now + ts_ns((const struct timespec *)(uintptr_t)a[2]);
	case SYS_pselect6:
		return now + ts_ns((const struct timespec *)(uintptr_t)a[4]);
	case SYS_select: {
		const struct timeval *tv = (const struct timeval *)(uintptr_t)a[4];
		return now + (int64_t)tv->tv_sec * 1000000000 + tv->tv_usec * 1000;
	}
	case SYS_nanosleep:
		return a[1] ? now + ts_ns((const struct timespec *)(uintptr_t)a[1]) : noted;
	case SYS_clock_nanosleep:
		if (a[0] == CLOCK_BOOTTIME && a[3]) {
			*clock = CLOCK_BOOTTIME;
			return cs_clock_ns(CLOCK_BOOTTIME) +
			       ts_ns((const struct timespec *)(uintptr_t)a[3]);
		}
		if (a[0] != CLOCK_REALTIME && a[0] != CLOCK_MONOTONIC)
			return 0; /* CPU-time clocks: not a matter of waiting */
		return a[3] ? now + ts_ns((const struct timespec *)(uintptr_t)a[3]) : noted;
	default: /* poll, epoll_wait, epoll_pwait, epoll_pwait2 */
		return noted;
	}
}

/* Calls the kernel does not restart after a handler, with a timeout. */
static int timed(long nr)
{
	switch (nr) {
	case SYS_poll:
	case SYS_ppoll:
	case SYS_select:
	case SYS_pselect6:
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case SYS_epoll_pwait2:
	case SYS_nanosleep:
	case SYS_clock_nanosleep:
	case SYS_rt_sigtimedwait:
		return 1;
	default:
		return 0;
	}
}

/* The frame resumes in cs_sleep_resume, which continues the call until
 * its deadline and returns to the program at pc. */
static void continue_call(greg_t *g, const struct cs_thread_look *t, int clock, int64_t deadline)
{
	struct cs_sleep_slot *s = &cs_sleep_slot;
	s->clock = clock;
	s->deadline = deadline;
	for (int i = 0; i < 6; i++)
		s->args[i] = t->args[i];
	s->pc = (uint64_t)g[REG_RIP];
	s->again = 0;
	s->nr = t->sysno;
	g[REG_RIP] = (greg_t)(uintptr_t)cs_sleep_resume;
	atomic_fetch_add(&n_continued, 1);
}

/* In the handler: a call interrupted right here (EINTR at the instruction
 * after a syscall) is issued again when that is what the program asked
 * for, or continued until its deadline when that is known. A continued
 * call the freeze interrupted again goes on in cs_sleep_resume_c. */
void cs_sleep_rewind(pid_t tid, void *uc)
{
	greg_t *g = ((ucontext_t *)uc)->uc_mcontext.gregs;
	if (g[REG_RAX] != -EINTR)
		return;
	if ((uint64_t)g[REG_RIP] == (uint64_t)(uintptr_t)cs_sleep_syscall_end) {
		if (cs_sleep_slot.nr) {
			cs_sleep_slot.again = 1;
			atomic_fetch_add(&n_continued, 1);
		}
		return;
	}
	struct cs_thread_look t = {
	    .sysno = noted_nr(tid, (uint64_t)g[REG_RIP]),
	    .args = {(uint64_t)g[REG_RDI], (uint64_t)g[REG_RSI], (uint64_t)g[REG_RDX],
	             (uint64_t)g[REG_R10], (uint64_t)g[REG_R8], (uint64_t)g[REG_R9]},
	};
	if (t.sysno < 0)
		return;
	if (restartable(&t)) {
		g[REG_RAX] = t.sysno;
		g[REG_RIP] -= 2; /* syscall is 0f 05 */
		return;
	}
	int clock;
	int64_t deadline = timed(t.sysno) ? deadline_of(&t, &cs_sleep_slot, &clock) : 0;
	if (deadline > 0)
		continue_call(g, &t, clock, deadline);
	else if (timed(t.sysno))
		atomic_fetch_add(&n_cut, 1);
}
