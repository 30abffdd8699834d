/*
 * Freezing every thread of the process from inside, with a dedicated
 * real-time signal.
 *
 * The agent thread sends the signal to every other thread of
 * /proc/self/task, re-reading the list until no new thread shows up. Each
 * handler records what the restorer needs about its thread (the address of
 * its signal frame's ucontext, fs base, tid address, robust list, rseq) and
 * parks on a futex. Then the agent signals itself, so its own state is a
 * signal frame like every other thread's, and does the capture from inside
 * its handler. When that frame is resumed by a restorer, the agent returns
 * from its signal in a new process and sees cs_restore_block.restored == 1.
 *
 * A thread whose mask blocks the signal (jemalloc's background thread, Go's
 * os/signal thread, glibc's SIGEV_THREAD helper) or that waits for it in
 * sigwaitinfo would never park, or would take it as its own. The agent
 * finds those in /proc before it sends anything and has the supervisor
 * (the namespace init, supervisor.c) stop each one with ptrace and open its
 * mask for the signal; the handler then writes the mask the thread had
 * back into its frame, so it resumes, and is restored, with its own mask.
 * A freeze that cannot complete is released at once and says which thread
 * stopped it.
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
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "agent.h"
#include "compat.h"

/* A thread that can run parks within this, or the freeze is given up. */
#define STRAGGLER_TIMEOUT_NS (50ull * 1000000ull)
/* How often threads that did not park yet are looked at in /proc. */
#define LOOK_EVERY_NS (2ull * 1000000ull)
/* Threads the supervisor may have to hold in one freeze. */
#define MAX_HELD   256
#define FREEZE_BIT (1ull << (CS_FREEZE_SIGNAL - 1))

static _Atomic uint32_t release_seq; /* bumped to release parked threads */
static _Atomic uint32_t freeze_seq;  /* release_seq value of the current freeze */
static _Atomic int freeze_active;
static _Atomic uint32_t parked;    /* threads parked in this freeze */
static _Atomic uint32_t nrec;      /* records filled in */
static struct cs_thread_rec *recs; /* scratch, CS_MAX_THREADS */
/* recs[i] is complete once ready[i] is 1: a slot is claimed (nrec) before
 * it is filled, and the agent must not capture a half-written record. */
static _Atomic uint32_t *ready;
static int32_t *signaled; /* scratch: tids sent the signal this freeze */
static uint32_t n_signaled;
static int32_t held[MAX_HELD]; /* tids the supervisor held this freeze */
static uint32_t n_held;
static uint64_t t_first_kill, t_released;
static int capture_rc;

/*
 * The agent's signals carry a token (SI_QUEUE, si_value): a random cookie
 * in the high half, the freeze's sequence number in the low half. A signal
 * of an earlier freeze that was given up before it arrived (it waited,
 * blocked, on a thread) is recognised as the agent's and dropped instead
 * of parking a thread nobody waits for, or reaching the program.
 */
static uint32_t cookie;
static _Atomic uint64_t freeze_token;

/*
 * The mask a held thread had, for the handler of the signal with the same
 * token to write into its frame (tid is published last). An entry whose
 * signal never arrives (the thread exited) is reused once its tid is gone.
 */
struct mask_fix {
	_Atomic int32_t tid;
	uint64_t token;
	uint64_t mask;
};
static struct mask_fix fixes[MAX_HELD];

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)uaddr, op | FUTEX_PRIVATE_FLAG, val, ts, NULL, 0);
}

static uint64_t now_ns(void)
{
	return (uint64_t)cs_clock_ns(CLOCK_MONOTONIC);
}

/*
 * What the kernel has registered as this thread's rseq area, asked by
 * registering an area again: 0 when none was (it is now, and is
 * unregistered at once), EBUSY when exactly that one is, EINVAL or EPERM
 * when another area, length or signature is. A thread the supervisor held
 * may be newborn, before glibc's start_thread registered it (it does so
 * with every signal blocked); registering it on restore would make the
 * thread's own registration fail, and glibc then aborts ("rseq
 * registration failed").
 */
static long rseq_probe(uint64_t addr, uint32_t len, uint32_t sig)
{
	long r = syscall(SYS_rseq, addr, len, 0, sig);
	if (r == 0) {
		syscall(SYS_rseq, addr, len, RSEQ_FLAG_UNREGISTER, sig);
		return 0;
	}
	return -errno;
}

/* glibc 2.35+ registers an area per thread at a fixed offset from the
 * thread pointer (__rseq_size 0: it did not, as with the tunable
 * glibc.pthread.rseq=0). An area the program registered itself, or a
 * signature of its own, cannot be read from here: the agent asks the
 * supervisor (cs_rseq_capture). Without glibc's, a probe with an area of
 * our own tells whether there is one. */
static void record_rseq(struct cs_thread_rec *t)
{
	struct rseq probe __attribute__((aligned(32)));
	long r;
	if (__rseq_size > 0 && t->fs_base) {
		t->rseq_addr = t->fs_base + (uint64_t)__rseq_offset;
		t->rseq_len = __rseq_size < 32 ? 32 : __rseq_size;
		t->rseq_sig = RSEQ_SIG;
		r = rseq_probe(t->rseq_addr, t->rseq_len, t->rseq_sig);
	} else {
		r = rseq_probe((uint64_t)&probe, 32, RSEQ_SIG);
	}
	if (r != -EBUSY)
		t->rseq_addr = t->rseq_len = t->rseq_sig = 0;
	t->rseq_ask = r == -EINVAL || r == -EPERM;
}

void cs_rseq_capture(struct cs_agent *a, struct cs_capture *c)
{
	char why[CS_ERR_MAX], what[CS_ERR_MAX], num[24];
	for (uint32_t i = 0; i < c->n_threads; i++) {
		struct cs_thread_rec *t = &c->threads[i];
		if (!t->rseq_ask ||
		    !cs_sup_rseq(a, t->tid, &t->rseq_addr, &t->rseq_len, &t->rseq_sig, why))
			continue;
		cs_strlcpy(what, "rseq area of thread ", sizeof(what));
		cs_fmt_u64(num, (uint64_t)t->tid);
		cs_strlcat(what, num, sizeof(what));
		cs_strlcat(what, " (registered by the program): not captured: ", sizeof(what));
		cs_strlcat(what, why, sizeof(what));
		cs_unsup_add(c, what);
	}
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
	record_rseq(t);
	if (tid == (pid_t)syscall(SYS_getpid))
		t->flags |= CS_THREAD_MAIN;
	/* Every signal is blocked in this handler, so this is all that is
	 * pending for the thread, its own queue and the shared one: one system
	 * call, and almost always 0 (sigqueue.c looks closer otherwise). */
	syscall(SYS_rt_sigpending, &t->pending, sizeof(t->pending));
}

static void agent_in_handler(void *uc);
static void freeze_handler(int sig, siginfo_t *si, void *uc);

int cs_freeze_is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == freeze_handler;
}

static int from_agent(const siginfo_t *si)
{
	return si->si_code == SI_QUEUE && si->si_pid == cs_agent.pid &&
	       ((uint64_t)(uintptr_t)si->si_value.sival_ptr >> 32) == cookie;
}

/* The mask the supervisor found on this thread goes back into the frame
 * (the kernel wrote the opened one): sigreturn, now or after a restore,
 * reinstates it. The kernel's sigset is the first 8 bytes of glibc's. */
static void put_mask_back(pid_t tid, uint64_t token, void *uc)
{
	for (uint32_t i = 0; i < MAX_HELD; i++) {
		if (atomic_load_explicit(&fixes[i].tid, memory_order_acquire) != tid ||
		    fixes[i].token != token)
			continue;
		memcpy(&((ucontext_t *)uc)->uc_sigmask, &fixes[i].mask, sizeof(uint64_t));
		atomic_store(&fixes[i].tid, 0);
		return;
	}
}

static void freeze_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	uint32_t seq = atomic_load(&freeze_seq);
	pid_t tid = (pid_t)syscall(SYS_gettid);
	if (!from_agent(si)) {
		if (tid != cs_agent.agent_tid || cs_sig_to_main(sig, si))
			cs_sig_forward(sig, si, uc);
		errno = saved_errno;
		return;
	}
	uint64_t token = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
	if ((uint32_t)token & CS_FOLLOW_TOKEN) {
		if (tid == cs_agent.agent_tid)
			cs_follow_run(); /* not a freeze: a capability change to follow */
		errno = saved_errno;
		return;
	}
	put_mask_back(tid, token, uc);
	cs_sleep_rewind(tid, uc);
	if (token != atomic_load(&freeze_token) || !atomic_load(&freeze_active)) {
		errno = saved_errno; /* a freeze given up before this thread could park */
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
		if (!recs || !signaled || !ready || cs_sleep_init())
			return -ENOMEM;
	}
	while (!cookie &&
	       syscall(SYS_getrandom, &cookie, sizeof(cookie), 0) != (long)sizeof(cookie))
		cookie = (uint32_t)cs_clock_ns(CLOCK_MONOTONIC);
	struct sigaction old;
	if (sigaction(CS_FREEZE_SIGNAL, &sa, &old))
		return -errno;
	if (!cs_freeze_is_ours(&old))
		cs_sig_keep_prev(&old);
	return 0;
}

/* Calls fn for every thread of the process other than the agent's, from
 * /proc/self/task read with getdents64 (no malloc: other threads may be
 * parked holding its locks). Stops at fn's first nonzero answer and returns
 * it; 0 when every thread was seen, or -errno. */
int cs_for_each_thread(int (*fn)(pid_t tid, void *arg), void *arg)
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

static int in_list(const int32_t *list, uint32_t n, int32_t tid)
{
	for (uint32_t i = 0; i < n; i++)
		if (list[i] == tid)
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

/* The agent's signal to tid, SI_QUEUE from this process with a token; 0 or
 * -errno (ESRCH: gone). */
static int queue_token(pid_t tid, uint64_t token)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	si.si_signo = CS_FREEZE_SIGNAL;
	si.si_code = SI_QUEUE;
	si.si_pid = cs_agent.pid;
	si.si_uid = (uid_t)syscall(SYS_getuid);
	si.si_value.sival_ptr = (void *)(uintptr_t)token;
	if (syscall(SYS_rt_tgsigqueueinfo, cs_agent.pid, tid, CS_FREEZE_SIGNAL, &si))
		return -errno;
	return 0;
}

/* The freeze signal with this freeze's token. */
static int send_freeze(pid_t tid)
{
	if (!t_first_kill)
		t_first_kill = now_ns();
	return queue_token(tid, atomic_load(&freeze_token));
}

/* A request to the agent's thread (follow.c), not a freeze. */
int cs_freeze_ask_agent(void)
{
	return queue_token(cs_agent.agent_tid, ((uint64_t)cookie << 32) | CS_FOLLOW_TOKEN);
}

/* tid's own entry (held again in this freeze: the mask found last is its
 * own), else a free one or one of a thread that is gone, for tid's mask. */
static int add_fix(pid_t tid, uint64_t mask)
{
	uint32_t slot = MAX_HELD;
	for (uint32_t i = 0; i < MAX_HELD; i++) {
		int32_t t = atomic_load(&fixes[i].tid);
		if (t == tid) {
			slot = i;
			break;
		}
		if (slot == MAX_HELD && (!t || syscall(SYS_tgkill, cs_agent.pid, t, 0) != 0))
			slot = i;
	}
	if (slot == MAX_HELD)
		return -E2BIG;
	atomic_store(&fixes[slot].tid, 0);
	fixes[slot].token = atomic_load(&freeze_token);
	fixes[slot].mask = mask;
	atomic_store_explicit(&fixes[slot].tid, tid, memory_order_release);
	return 0;
}

/* errmsg = "freeze: <thread description> <what><detail>" */
static int freeze_err(struct cs_agent *a, int r, pid_t tid, const struct cs_thread_look *t,
                      const char *what, const char *detail)
{
	char *m = a->cap.errmsg;
	cs_strlcpy(m, "freeze: ", CS_ERR_MAX);
	cs_thread_describe(m, tid, t);
	cs_strlcat(m, what, CS_ERR_MAX);
	if (detail)
		cs_strlcat(m, detail, CS_ERR_MAX);
	return r;
}

/*
 * Has the supervisor stop tid and open its mask for the freeze signal,
 * sends the signal unless it is pending already, and lets the thread go:
 * it then parks like the others. The handler puts the old mask back.
 */
static int hold_thread(struct cs_agent *a, pid_t tid, int send, const struct cs_thread_look *t)
{
	char why[CS_ERR_MAX];
	uint64_t mask;
	if (n_held >= MAX_HELD || n_signaled >= CS_MAX_THREADS - 1)
		return freeze_err(a, -E2BIG, tid, t, "blocks signal 62: too many such threads",
		                  NULL);
	if (!t_first_kill)
		t_first_kill = now_ns();
	int r = cs_sup_stop(a, tid, CS_FREEZE_SIGNAL, &mask, why);
	if (r == -ESRCH && syscall(SYS_tgkill, a->pid, tid, 0) != 0)
		return 0; /* exited meanwhile; a thread that is there must park */
	if (r)
		return freeze_err(a, r, tid, t, "blocks the freeze signal and ", why);
	held[n_held++] = tid;
	r = add_fix(tid, mask);
	if (!r && send && !(r = send_freeze(tid)))
		signaled[n_signaled++] = tid;
	if (r == -ESRCH)
		r = 0;
	int c = cs_sup_cont(a, tid, why);
	if (r)
		return freeze_err(a, r, tid, t, "blocks the freeze signal: no room for its mask",
		                  NULL);
	return c ? freeze_err(a, c, tid, t, "was stopped by the supervisor and ", why) : 0;
}

/* Blocks the signal, or waits for it in sigwaitinfo (which would take it
 * as the program's): either way the signal alone cannot park it. */
static int needs_holding(const struct cs_thread_look *t)
{
	uint64_t set = 0;
	if (t->state == 'Z' || t->state == 'X')
		return 0; /* exiting: nothing to hold, it leaves the list */
	if (t->blocked & FREEZE_BIT)
		return 1;
	if (t->sysno != SYS_rt_sigtimedwait)
		return 0;
	struct iovec local = {&set, sizeof(set)},
	             remote = {(void *)(uintptr_t)t->args[0], sizeof(set)};
	return syscall(SYS_process_vm_readv, cs_agent.pid, &local, 1, &remote, 1, 0) ==
	           (long)sizeof(set) &&
	       (set & FREEZE_BIT);
}

static int32_t to_hold[MAX_HELD]; /* found by look_one before anything was sent */
static uint32_t n_to_hold;

/* Before the first signal: the threads the signal alone will not park.
 * Looking costs ~15 us a thread, so it is done while everything runs. */
static int look_one(pid_t tid, void *arg)
{
	struct cs_thread_look t;
	(void)arg;
	if (cs_thread_look(tid, &t))
		return 0;
	cs_sleep_note(tid, &t);
	cs_seccomp_note(t.seccomp);
	if (!needs_holding(&t))
		return 0;
	if (n_to_hold >= MAX_HELD)
		return freeze_err(&cs_agent, -E2BIG, tid, &t,
		                  "blocks signal 62: too many such threads", NULL);
	to_hold[n_to_hold++] = tid;
	return 0;
}

/* A thread pthread_create has just made runs with every signal blocked
 * until it has set its own mask. Without a supervisor, look at such
 * threads again for a few milliseconds (before anything is sent) and keep
 * only those that still need holding. Returns 1 once none is left. */
static int still_blocking(void)
{
	struct cs_thread_look t;
	for (int round = 0; round < 10 && n_to_hold; round++) {
		struct timespec ms = {0, 2000000};
		uint32_t keep = 0;
		syscall(SYS_nanosleep, &ms, NULL);
		for (uint32_t i = 0; i < n_to_hold; i++)
			if (cs_thread_look(to_hold[i], &t) == 0 && needs_holding(&t))
				to_hold[keep++] = to_hold[i];
		n_to_hold = keep;
	}
	return n_to_hold == 0;
}

/* Without a supervisor a thread that needs one fails the freeze before
 * anything was sent: the program is not stopped at all. */
static int supervisor_ready(struct cs_agent *a)
{
	char why[CS_ERR_MAX];
	struct cs_thread_look t;
	int r = cs_sup_ready(a, why);
	if (r && still_blocking())
		return 0; /* only threads that were being born: the signal parks them */
	if (r && cs_thread_look(to_hold[0], &t) == 0)
		freeze_err(a, r, to_hold[0], &t, "blocks the freeze signal and there is ", why);
	return r;
}

struct signal_round {
	struct cs_agent *a;
	int sent;
	int first; /* every thread was looked at just before */
};

/* A new thread: the signal, or the supervisor first when it would not
 * park on the signal alone. */
static int signal_one(pid_t tid, void *arg)
{
	struct signal_round *sr = arg;
	struct cs_thread_look t;
	if (in_list(signaled, n_signaled, tid) || in_list(held, n_held, tid))
		return 0;
	if (n_signaled >= CS_MAX_THREADS - 1)
		return -E2BIG;
	int hold = in_list(to_hold, n_to_hold, tid);
	if (hold || !sr->first) {
		if (cs_thread_look(tid, &t) == 0 && (hold || needs_holding(&t))) {
			sr->sent++;
			return hold_thread(sr->a, tid, 1, &t);
		}
	}
	if (send_freeze(tid) == 0) {
		signaled[n_signaled++] = (int32_t)tid;
		sr->sent++;
	}
	return 0;
}

/* Sends the signal to every thread not signaled yet; returns how many. */
static int signal_new_threads(struct cs_agent *a, int first)
{
	struct signal_round sr = {.a = a, .sent = 0, .first = first};
	int r = cs_for_each_thread(signal_one, &sr);
	return r < 0 ? r : sr.sent;
}

/*
 * A thread signaled but not parked yet: one that blocked the signal after
 * it was looked at goes to the supervisor (its signal is pending); one that
 * is stopped (job control, a debugger) or did not run for
 * STRAGGLER_TIMEOUT_NS ends the freeze.
 */
static int look_at_straggler(struct cs_agent *a, pid_t tid, uint64_t waited)
{
	struct cs_thread_look t;
	if (cs_thread_look(tid, &t))
		return 0; /* gone */
	if (needs_holding(&t) && !in_list(held, n_held, tid))
		return hold_thread(a, tid, 0, &t);
	if (t.state == 'T' || t.state == 't')
		return freeze_err(a, -EBUSY, tid, &t, "is stopped (job control or a tracer)", NULL);
	if (waited > STRAGGLER_TIMEOUT_NS)
		return freeze_err(a, -ETIMEDOUT, tid, &t, "did not park within 50 ms", NULL);
	return 0;
}

/*
 * The handler checked before the freeze may be replaced while the signals
 * are on their way: Go's os/signal installs its own (Notify) or SIG_IGN
 * (Ignore) from a running thread at any time. A signal that found Go's
 * handler went to Go; one that found SIG_IGN was discarded, and setting
 * SIG_IGN also discards every instance already pending (POSIX), on every
 * thread. Either way those threads never park: a program that called
 * signal.Ignore, Notify and Reset on signal 62 made a freeze fail after
 * 50 ms now and then. Found while waiting: the agent's handler goes back
 * and the threads not parked yet get their signal again (same token: one
 * that arrives twice parks once; the second finds the freeze over and
 * returns).
 */
static void forget_held(int32_t tid)
{
	for (uint32_t i = 0; i < n_held; i++)
		if (held[i] == tid)
			held[i] = held[--n_held];
}

static void retake_signal(void)
{
	if (cs_freeze_signal_ok() || cs_freeze_install())
		return;
	for (uint32_t i = 0; i < n_signaled; i++) {
		if (signaled[i] < 0 || has_record(signaled[i]))
			continue;
		/* A held thread took Go's handler with its mask opened, and may
		 * have blocked the signal again since: the next look holds it
		 * again if so, and the signal sent now is pending for it. */
		forget_held(signaled[i]);
		send_freeze(signaled[i]);
	}
}

/* Waits until every signaled thread is parked or gone. */
static int wait_parked(struct cs_agent *a)
{
	uint64_t start = now_ns(), look_at = start + LOOK_EVERY_NS;
	for (;;) {
		uint32_t want = 0;
		uint64_t now = now_ns();
		int look = now >= look_at;
		for (uint32_t i = 0; i < n_signaled; i++) {
			if (signaled[i] < 0 || has_record(signaled[i]))
				continue;
			if (syscall(SYS_tgkill, a->pid, signaled[i], 0) != 0) {
				signaled[i] = -1; /* exited before it could park */
				continue;
			}
			int r = look ? look_at_straggler(a, signaled[i], now - start) : 0;
			if (r)
				return r;
			want++;
		}
		if (!want)
			return 0;
		if (look) {
			retake_signal();
			look_at = now + LOOK_EVERY_NS;
		}
		uint32_t p = atomic_load(&parked);
		struct timespec ts = {0, 1000000};
		futex(&parked, FUTEX_WAIT, p, &ts);
	}
}

/* The pause ends with the wake: a woken thread often runs at once, before
 * this one returns from futex(), and its work is the program's again. */
static void release_all(void)
{
	atomic_store(&freeze_active, 0);
	atomic_fetch_add(&release_seq, 1);
	t_released = now_ns();
	futex(&release_seq, FUTEX_WAKE, INT32_MAX, NULL);
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
	n_held = 0;
	for (uint32_t i = 0; i < CS_MAX_THREADS && i < atomic_load(&nrec); i++)
		atomic_store(&ready[i], 0);
	atomic_store(&nrec, 0);
	atomic_store(&parked, 0);
	t_first_kill = 0;
	capture_rc = -EINTR;
	atomic_store(&freeze_seq, atomic_load(&release_seq));
	atomic_store(&freeze_token,
	             ((uint64_t)cookie << 32) | (atomic_load(&freeze_seq) & ~CS_FOLLOW_TOKEN));
	atomic_store(&freeze_active, 1);
	n_to_hold = 0;
	cs_sleep_clear();
	int r = cs_for_each_thread(look_one, NULL), first = 1;
	if (!r && n_to_hold)
		r = supervisor_ready(a);
	while (r >= 0) {
		r = signal_new_threads(a, first);
		first = 0;
		if (r >= 0) {
			int w = wait_parked(a);
			if (w)
				r = w;
		}
		if (r == 0)
			break;
	}
	if (r < 0) {
		release_all();
		*pause_ns = t_first_kill ? t_released - t_first_kill : 0;
		return r;
	}
	retake_signal(); /* the agent's own signal must reach its own handler */
	send_freeze(a->agent_tid);
	/* A restored agent resumes here, in a new process. */
	if (__atomic_load_n(&cs_restore_block.restored, __ATOMIC_ACQUIRE))
		return 1;
	if (atomic_load(&freeze_active)) {
		release_all(); /* the signal missed the handler: never leave threads parked */
		cs_strlcpy(a->cap.errmsg,
		           "freeze: the agent's own signal did not reach its handler", CS_ERR_MAX);
	}
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
	n_held = 0;
	for (uint32_t i = 0; i < MAX_HELD; i++)
		atomic_store(&fixes[i].tid, 0);
	cs_sleep_reset();
}
