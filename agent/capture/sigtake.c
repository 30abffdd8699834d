/*
 * The freeze signal in the hands of others (moved out of freeze.c, which
 * calls cs_sig_forward and cs_sig_to_main from its handler: loads, calls
 * and system calls only), and the SIGURG a restored Go program's threads
 * are given.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

/*
 * Other handlers of the freeze signal. The Go runtime installs its own for
 * every signal at start-up, and os/signal (Ignore, then Notify) installs it
 * again later. Before each freeze the agent finds that (cs_freeze_signal_ok),
 * counts it, says so once on stderr, and installs its own handler again. The
 * handler it replaced is kept: a signal the agent did not send (kill -62 from
 * another process, raise) is passed on to it, so a Go program that called
 * signal.Notify on the signal still receives those.
 *
 * The replaced handler is published through two slots and an index: the
 * agent thread fills the spare slot, then flips the index, so a handler on
 * another thread never reads a half-written one (unless it is preempted
 * across two takeovers, checkpoints apart).
 */
struct prev_handler {
	uintptr_t fn; /* sa_handler or sa_sigaction; SIG_DFL 0, SIG_IGN 1 */
	int flags;
};
static struct prev_handler prev_slot[2];
static _Atomic unsigned prev_idx;
static _Atomic uint64_t forwarded;
static struct cs_sig_report takes; /* written by the agent thread only */
static int take_reported;
static int go_runtime;        /* a handler found was the Go runtime's (SIGURG's) */
static uint64_t kicked_epoch; /* cs_agent.epoch of the last restore kicked */

static uintptr_t handler_of(const struct sigaction *sa)
{
	return sa->sa_flags & SA_SIGINFO ? (uintptr_t)sa->sa_sigaction : (uintptr_t)sa->sa_handler;
}

void cs_sig_keep_prev(const struct sigaction *sa)
{
	unsigned next = !atomic_load(&prev_idx);
	prev_slot[next].fn = handler_of(sa);
	prev_slot[next].flags = sa->sa_flags;
	atomic_store_explicit(&prev_idx, next, memory_order_release);
}

/* A signal the agent did not send goes to the handler it replaced, called
 * the way that handler asked for (SA_SIGINFO or not). SIG_IGN and SIG_DFL
 * have nothing to call: the signal is dropped (SIG_DFL would have ended the
 * process; the agent does not). Only loads and a call: async-signal-safe. */
void cs_sig_forward(int sig, siginfo_t *si, void *uc)
{
	/* Go keeps the handler it replaced (ours) and may call it back: for a
	 * signal it does not want, on a thread that is not Go's, it installs
	 * that handler and raises the signal again; around signal.Ignore it
	 * forwards for a moment. A signal that comes back here while this
	 * thread is still passing it on is dropped instead of bouncing. */
	static __thread int forwarding __attribute__((tls_model("initial-exec")));
	unsigned i = atomic_load_explicit(&prev_idx, memory_order_acquire);
	struct prev_handler p = prev_slot[i];
	if (p.fn == (uintptr_t)SIG_DFL || p.fn == (uintptr_t)SIG_IGN || forwarding)
		return;
	atomic_fetch_add(&forwarded, 1);
	forwarding = 1;
	if (p.flags & SA_SIGINFO)
		((void (*)(int, siginfo_t *, void *))p.fn)(sig, si, uc);
	else
		((void (*)(int))p.fn)(sig);
	forwarding = 0;
}

/*
 * A signal from others that landed on the agent's own thread (it blocks
 * every signal but this one) is not handled there: it goes to the main
 * thread, queued with the sender's pid and uid (as SI_QUEUE: only a thread
 * itself may be sent SI_USER). The agent thread is not Go's; Go's handler
 * would borrow an M on it (needm), possibly while the frozen threads hold
 * what that needs, and raise a signal it does not want straight back at it.
 * Returns 0 when queued.
 */
int cs_sig_to_main(int sig, const siginfo_t *si)
{
	siginfo_t q;
	memset(&q, 0, sizeof(q));
	q.si_signo = sig;
	q.si_code = SI_QUEUE;
	q.si_pid = si->si_pid;
	q.si_uid = si->si_uid;
	q.si_value = si->si_value;
	return (int)syscall(SYS_rt_tgsigqueueinfo, cs_agent.pid, cs_agent.pid, sig, &q);
}

/* One line on stderr, the first time only: what took the signal, that the
 * agent took it back, and what that means for the program. */
static void report_takeover(const struct sigaction *cur)
{
	char what[96], line[512];
	struct sigaction urg;
	uintptr_t fn = handler_of(cur);
	if (fn == (uintptr_t)SIG_IGN)
		snprintf(what, sizeof(what), "set to SIG_IGN");
	else if (fn == (uintptr_t)SIG_DFL)
		snprintf(what, sizeof(what), "reset to SIG_DFL");
	else if (!sigaction(SIGURG, NULL, &urg) && handler_of(&urg) == fn)
		snprintf(what, sizeof(what),
		         "taken by handler %#lx, the Go runtime's (as for SIGURG)",
		         (unsigned long)fn);
	else
		snprintf(what, sizeof(what), "taken by handler %#lx", (unsigned long)fn);
	snprintf(line, sizeof(line),
	         "checksync: signal %d (the agent's freeze signal) was %s; the agent "
	         "installed its own again. The program never sees the agent's freeze "
	         "signals (os/signal.Notify on %d will not see them); signal %d sent by "
	         "others is passed on to the handler found.\n",
	         CS_FREEZE_SIGNAL, what, CS_FREEZE_SIGNAL, CS_FREEZE_SIGNAL);
	if (write(STDERR_FILENO, line, strlen(line)) < 0) {
		/* nothing to do: stderr may be closed */
	}
}

static int kick_one(pid_t tid, void *arg)
{
	(void)arg;
	syscall(SYS_tgkill, cs_agent.pid, tid, SIGURG);
	return 0;
}

/*
 * Signals pending on a thread at capture are not in the image. Go marks an
 * M's preemption signal pending (m.signalPending) when it sends SIGURG and
 * sends no other until the handler clears the mark; a SIGURG that reached a
 * thread parked in the freeze (all signals blocked) is lost by the restore,
 * and then no goroutine on that M can be preempted asynchronously again: a
 * stop-the-world waits forever on a tight loop (seen with gostress). After
 * a restore, before its first freeze, the agent sends every thread of a Go
 * program one SIGURG: Go's handler takes a spurious one as an acknowledged
 * preemption request, which clears the mark.
 */
static void kick_after_restore(void)
{
	if (kicked_epoch == cs_agent.epoch)
		return;
	kicked_epoch = cs_agent.epoch;
	if (!go_runtime || !cs_agent.epoch)
		return;
	cs_for_each_thread(kick_one, NULL);
}

/* Go and others install handlers for every signal: check ours is still
 * there; if not, record who took it (cs_freeze_install puts ours back). */
int cs_freeze_signal_ok(void)
{
	struct sigaction cur;
	kick_after_restore();
	if (sigaction(CS_FREEZE_SIGNAL, NULL, &cur))
		return 0;
	if (cs_freeze_is_ours(&cur))
		return 1;
	struct sigaction urg;
	if (handler_of(&cur) > (uintptr_t)SIG_IGN && !sigaction(SIGURG, NULL, &urg) &&
	    handler_of(&urg) == handler_of(&cur))
		go_runtime = 1;
	int64_t now = cs_clock_ns(CLOCK_REALTIME);
	takes.takeovers++;
	takes.foreign = handler_of(&cur);
	takes.last_ns = now;
	if (!takes.first_ns)
		takes.first_ns = now;
	cs_sig_keep_prev(&cur);
	if (!take_reported) {
		take_reported = 1;
		report_takeover(&cur);
	}
	return 0;
}

void cs_freeze_sig_report(struct cs_sig_report *out)
{
	*out = takes;
	out->signal = CS_FREEZE_SIGNAL;
	out->forwarded = atomic_load(&forwarded);
}
