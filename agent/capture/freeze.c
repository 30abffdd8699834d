/*
 * Freezing every thread of the process from inside, with a dedicated
 * real-time signal.
 *
 * The agent thread sends the signal with tgkill to every other thread of
 * /proc/self/task, re-reading the list until no new thread shows up. Each
 * handler records what the restorer needs about its thread (the address of
 * its signal frame's ucontext, fs base, tid address, robust list, rseq) and
 * parks on a futex. Then the agent signals itself, so its own state is a
 * signal frame like every other thread's, and does the capture from inside
 * its handler. When that frame is resumed by a restorer, the agent returns
 * from tgkill in a new process and sees cs_restore_block.restored == 1.
 *
 * Everything reached from the handler saves errno, takes no lock and never
 * calls malloc or stdio: the parked threads may hold any of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "compat.h"

#define STRAGGLER_TIMEOUT_NS (2ull * 1000000000ull)

static _Atomic uint32_t release_seq; /* bumped to release parked threads */
static _Atomic uint32_t freeze_seq;  /* release_seq value of the current freeze */
static _Atomic int freeze_active;
static _Atomic uint32_t parked;      /* threads parked in this freeze */
static _Atomic uint32_t nrec;        /* records filled in */
static struct cs_thread_rec *recs;   /* scratch, CS_MAX_THREADS */
/* recs[i] is complete once ready[i] is 1: a slot is claimed (nrec) before
 * it is filled, and the agent must not capture a half-written record. */
static _Atomic uint32_t *ready;
static int32_t *signaled;            /* scratch: tids sent the signal this freeze */
static uint32_t n_signaled;
static uint64_t t_first_kill, t_released;
static int capture_rc;

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)uaddr, op | FUTEX_PRIVATE_FLAG, val, ts, NULL, 0);
}

static uint64_t now_ns(void)
{
	return (uint64_t)cs_clock_ns(CLOCK_MONOTONIC);
}

static void record_self(struct cs_thread_rec *t, pid_t tid, void *uc)
{
	unsigned long v = 0, len = 0;
	memset(t, 0, sizeof(*t));
	t->tid = tid;
	t->ucontext = (uint64_t)uc;
	if (syscall(SYS_arch_prctl, ARCH_GET_FS, &v) == 0)
		t->fs_base = v;
	v = 0;
	if (syscall(SYS_arch_prctl, ARCH_GET_GS, &v) == 0)
		t->gs_base = v;
	v = 0;
	if (syscall(SYS_prctl, PR_GET_TID_ADDRESS, &v, 0, 0, 0) == 0)
		t->clear_child_tid = v;
	v = 0;
	if (syscall(SYS_get_robust_list, 0, &v, &len) == 0) {
		t->robust_list = v;
		t->robust_len = len;
	}
	/* glibc 2.35+ registers an rseq area per thread at a fixed offset
	 * from the thread pointer; __rseq_size is 0 when it did not. */
	if (__rseq_size > 0 && t->fs_base) {
		t->rseq_addr = t->fs_base + (uint64_t)__rseq_offset;
		t->rseq_len = __rseq_size < 32 ? 32 : __rseq_size;
		t->rseq_sig = RSEQ_SIG;
	}
	if (tid == (pid_t)syscall(SYS_getpid))
		t->flags |= CS_THREAD_MAIN;
}

static void agent_in_handler(void *uc);
static void freeze_handler(int sig, siginfo_t *si, void *uc);

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
static int go_runtime;         /* a handler found was the Go runtime's (SIGURG's) */
static uint64_t kicked_epoch;  /* cs_agent.epoch of the last restore kicked */

static uintptr_t handler_of(const struct sigaction *sa)
{
	return sa->sa_flags & SA_SIGINFO ? (uintptr_t)sa->sa_sigaction : (uintptr_t)sa->sa_handler;
}

static int is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == freeze_handler;
}

static void set_prev(const struct sigaction *sa)
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
static void forward(int sig, siginfo_t *si, void *uc)
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
static int to_main_thread(int sig, const siginfo_t *si)
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

static void freeze_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	uint32_t seq = atomic_load(&freeze_seq);
	pid_t tid = (pid_t)syscall(SYS_gettid);
	/* The agent sends with tgkill from this process, only during a freeze. */
	if (si->si_code != SI_TKILL || si->si_pid != cs_agent.pid || !atomic_load(&freeze_active)) {
		if (tid != cs_agent.agent_tid || to_main_thread(sig, si))
			forward(sig, si, uc);
		errno = saved_errno;
		return;
	}
	if (tid == cs_agent.agent_tid) {
		agent_in_handler(uc);
		errno = saved_errno;
		return;
	}
	struct cs_thread_rec rec;
	record_self(&rec, tid, uc);
	uint32_t i = atomic_fetch_add(&nrec, 1);
	if (i < CS_MAX_THREADS) {
		recs[i] = rec;
		atomic_store_explicit(&ready[i], 1, memory_order_release);
	}
	atomic_fetch_add(&parked, 1);
	futex(&parked, FUTEX_WAKE, 1, NULL);
	while (atomic_load(&release_seq) == seq)
		futex(&release_seq, FUTEX_WAIT, seq, NULL);
	errno = saved_errno;
}

int cs_freeze_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = freeze_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	/* Nothing else runs on a parked thread: its state stays the frame. */
	sigfillset(&sa.sa_mask);
	if (!recs) {
		recs = cs_scratch_alloc(CS_MAX_THREADS * sizeof(*recs), 0);
		signaled = cs_scratch_alloc(CS_MAX_THREADS * sizeof(*signaled), 0);
		ready = cs_scratch_alloc(CS_MAX_THREADS * sizeof(*ready), 0);
		if (!recs || !signaled || !ready)
			return -ENOMEM;
	}
	struct sigaction old;
	if (sigaction(CS_FREEZE_SIGNAL, &sa, &old))
		return -errno;
	if (!is_ours(&old))
		set_prev(&old);
	return 0;
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
		snprintf(what, sizeof(what), "taken by handler %#lx, the Go runtime's (as for SIGURG)",
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

/* Calls fn for every thread of the process other than the agent's, from
 * /proc/self/task read with getdents64 (no malloc: other threads may be
 * parked holding its locks). Stops at fn's first nonzero answer and returns
 * it; 0 when every thread was seen, or -errno. */
static int for_each_thread(int (*fn)(pid_t tid, void *arg), void *arg)
{
	char buf[4096];
	int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	long n;
	int r = 0;
	while (!r && (n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; !r && off < n;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(buf + off);
			off += d->reclen;
			const char *p = d->name;
			uint64_t tid;
			if (!cs_parse_u64(&p, &tid, 10) && (pid_t)tid != cs_agent.agent_tid)
				r = fn((pid_t)tid, arg);
		}
	}
	if (!r && n < 0)
		r = -errno;
	close(fd);
	return r;
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
	for_each_thread(kick_one, NULL);
}

/* Go and others install handlers for every signal: check ours is still
 * there; if not, record who took it (cs_freeze_install puts ours back). */
int cs_freeze_signal_ok(void)
{
	struct sigaction cur;
	kick_after_restore();
	if (sigaction(CS_FREEZE_SIGNAL, NULL, &cur))
		return 0;
	if (is_ours(&cur))
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
	set_prev(&cur);
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

static int was_signaled(int32_t tid)
{
	for (uint32_t i = 0; i < n_signaled; i++)
		if (signaled[i] == tid)
			return 1;
	return 0;
}

static int has_record(int32_t tid)
{
	uint32_t n = atomic_load(&nrec);
	for (uint32_t i = 0; i < n && i < CS_MAX_THREADS; i++)
		if (atomic_load_explicit(&ready[i], memory_order_acquire) && recs[i].tid == tid)
			return 1;
	return 0;
}

struct signal_round {
	struct cs_agent *a;
	int sent;
};

static int signal_one(pid_t tid, void *arg)
{
	struct signal_round *sr = arg;
	if (was_signaled((int32_t)tid))
		return 0;
	if (n_signaled >= CS_MAX_THREADS - 1)
		return -E2BIG;
	if (!t_first_kill)
		t_first_kill = now_ns();
	if (syscall(SYS_tgkill, sr->a->pid, tid, CS_FREEZE_SIGNAL) == 0) {
		signaled[n_signaled++] = (int32_t)tid;
		sr->sent++;
	}
	return 0;
}

/* Sends the signal to every thread not signaled yet; returns how many. */
static int signal_new_threads(struct cs_agent *a)
{
	struct signal_round sr = {.a = a, .sent = 0};
	int r = for_each_thread(signal_one, &sr);
	return r < 0 ? r : sr.sent;
}

/* Waits until every signaled thread is parked or gone. */
static int wait_parked(struct cs_agent *a)
{
	uint64_t deadline = now_ns() + STRAGGLER_TIMEOUT_NS;
	for (;;) {
		uint32_t want = 0;
		for (uint32_t i = 0; i < n_signaled; i++) {
			if (has_record(signaled[i]))
				continue;
			if (syscall(SYS_tgkill, a->pid, signaled[i], 0) != 0) {
				signaled[i] = -1; /* exited before it could park */
				continue;
			}
			want++;
		}
		if (!want)
			return 0;
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		uint32_t p = atomic_load(&parked);
		struct timespec ts = {0, 1000000};
		futex(&parked, FUTEX_WAIT, p, &ts);
	}
}

static void release_all(void)
{
	atomic_store(&freeze_active, 0);
	atomic_fetch_add(&release_seq, 1);
	futex(&release_seq, FUTEX_WAKE, INT32_MAX, NULL);
	t_released = now_ns();
}

/* In the agent's own handler: everything else is parked. */
static void agent_in_handler(void *uc)
{
	struct cs_agent *a = &cs_agent;
	int64_t cpu0 = cs_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	a->phase_ns[0] = now_ns() - t_first_kill;
	uint32_t i = atomic_fetch_add(&nrec, 1);
	if (i < CS_MAX_THREADS) {
		record_self(&recs[i], a->agent_tid, uc);
		recs[i].flags |= CS_THREAD_AGENT;
	}
	a->cap.threads = recs;
	a->cap.n_threads = atomic_load(&nrec);
	capture_rc = cs_capture_frozen(a, &a->cap);
	release_all();
	a->last_pause_cpu_ns = (uint64_t)(cs_clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0);
}

/*
 * Freezes, captures (cs_capture_frozen starts the writer child) and thaws.
 * Returns 1 when this thread has just been resumed by a restorer, 0 after
 * a capture in this process, or a negative errno.
 */
int cs_freeze_and_capture(struct cs_agent *a, uint64_t *pause_ns)
{
	n_signaled = 0;
	for (uint32_t i = 0; i < CS_MAX_THREADS && i < atomic_load(&nrec); i++)
		atomic_store(&ready[i], 0);
	atomic_store(&nrec, 0);
	atomic_store(&parked, 0);
	t_first_kill = 0;
	capture_rc = -EINTR;
	atomic_store(&freeze_seq, atomic_load(&release_seq));
	atomic_store(&freeze_active, 1);
	int r;
	do {
		r = signal_new_threads(a);
		if (r >= 0) {
			int w = wait_parked(a);
			if (w)
				r = w;
		}
	} while (r > 0);
	if (r < 0) {
		release_all();
		*pause_ns = t_released - t_first_kill;
		return r;
	}
	if (!t_first_kill)
		t_first_kill = now_ns();
	syscall(SYS_tgkill, a->pid, a->agent_tid, CS_FREEZE_SIGNAL);
	/* A restored agent resumes here, in a new process. */
	if (__atomic_load_n(&cs_restore_block.restored, __ATOMIC_ACQUIRE))
		return 1;
	*pause_ns = t_released - t_first_kill;
	return capture_rc;
}

/* After a restore: the freeze state in memory is that of the capture. */
void cs_freeze_reset(void)
{
	recs = NULL; /* scratch from before the restore is gone */
	signaled = NULL;
	ready = NULL;
	atomic_store(&freeze_active, 0);
	atomic_fetch_add(&release_seq, 1);
	atomic_store(&nrec, 0);
	atomic_store(&parked, 0);
	n_signaled = 0;
}
