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
 * Poll and epoll_wait with a finite timeout are left alone: the time
 * already slept is unknown here, and waking early is what a program
 * handles anyway; a late one it may not.
 */
#include <errno.h>
#include <stdatomic.h>
#include <sys/syscall.h>
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

/* In the handler: a restartable call interrupted right here (EINTR at the
 * instruction after a syscall) is issued again; its arguments are still
 * in their registers. */
void cs_sleep_rewind(pid_t tid, void *uc)
{
	greg_t *g = ((ucontext_t *)uc)->uc_mcontext.gregs;
	if (g[REG_RAX] != -EINTR)
		return;
	struct cs_thread_look t = {
	    .sysno = noted_nr(tid, (uint64_t)g[REG_RIP]),
	    .args = {(uint64_t)g[REG_RDI], (uint64_t)g[REG_RSI], (uint64_t)g[REG_RDX],
	             (uint64_t)g[REG_R10], (uint64_t)g[REG_R8], (uint64_t)g[REG_R9]},
	};
	if (t.sysno < 0 || !restartable(&t))
		return;
	g[REG_RAX] = t.sysno;
	g[REG_RIP] -= 2; /* syscall is 0f 05 */
}
