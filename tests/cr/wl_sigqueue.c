/*
 * sigqueue: signals pending at the checkpoint, blocked on purpose.
 *
 * Both threads block SIGUSR2 and SIGRTMIN+1. Before the first checkpoint
 * the process queues:
 *   on the process:      kill SIGUSR2 (SI_USER); sigqueue SIGRTMIN+1 with
 *                        the values 1, 2, 3 (SI_QUEUE, three instances)
 *   on the main thread:  pthread_sigqueue SIGRTMIN+1 value 50
 *   on the second thread: pthread_kill SIGUSR2 (SI_TKILL);
 *                        pthread_sigqueue SIGRTMIN+1 value 100
 *
 * At verify each thread first checks its mask still blocks both and
 * sigpending shows both, then unblocks them; SA_SIGINFO handlers (every
 * signal blocked while one runs, so they never nest) log what arrives.
 * The logs must be exactly, in order:
 *   main:   RTMIN+1/SI_QUEUE/50, USR2/SI_USER, RTMIN+1/SI_QUEUE/1, /2, /3
 *   second: USR2/SI_TKILL, RTMIN+1/SI_QUEUE/100
 * (a thread takes its own queue before the process's, lowest signal
 * first), each with this process's pid and uid as the sender.
 *
 * --timer 1 adds a periodic POSIX timer whose signal (SIGRTMIN+2) stays
 * blocked, so it is pending at every checkpoint: at verify it must still
 * be pending, and arrive (SI_TIMER, the timer's id and value) once
 * unblocked.
 */
#include "wl_common.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct got {
	int signo, code, value;
	pid_t pid;
	uid_t uid;
	pid_t tid;
};

static struct got log_[16];
static atomic_int n_log;
static atomic_int phase; /* 1: the second thread may unblock; 2: it has */
static sigset_t both;
static pthread_t second;

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	int i = atomic_fetch_add(&n_log, 1);
	if (i < 16)
		log_[i] = (struct got){sig,        si->si_code, si->si_value.sival_int,
		                       si->si_pid, si->si_uid,  (pid_t)syscall(SYS_gettid)};
}

static void check_still_pending(const char *who)
{
	sigset_t m, p;
	pthread_sigmask(SIG_BLOCK, NULL, &m);
	sigpending(&p);
	wl_expect(sigismember(&m, SIGUSR2) && sigismember(&m, SIGRTMIN + 1),
	          "%s: SIGUSR2 or SIGRTMIN+1 is no longer blocked", who);
	wl_expect(sigismember(&p, SIGUSR2) && sigismember(&p, SIGRTMIN + 1),
	          "%s: SIGUSR2 or SIGRTMIN+1 is no longer pending", who);
}

static void *second_main(void *arg)
{
	(void)arg;
	while (atomic_load(&phase) != 1)
		wl_sleep_ms(5);
	check_still_pending("second thread");
	pthread_sigmask(SIG_UNBLOCK, &both, NULL);
	atomic_store(&phase, 2);
	return NULL;
}

static void setup(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGRTMIN + 1, &sa, NULL);
	sigemptyset(&both);
	sigaddset(&both, SIGUSR2);
	sigaddset(&both, SIGRTMIN + 1);
	pthread_sigmask(SIG_BLOCK, &both, NULL); /* the second thread inherits it */
	if (pthread_create(&second, NULL, second_main, NULL))
		wl_die("pthread_create");
	union sigval v;
	kill(getpid(), SIGUSR2);
	for (int i = 1; i <= 3; i++) {
		v.sival_int = i;
		if (sigqueue(getpid(), SIGRTMIN + 1, v))
			wl_die("sigqueue");
	}
	v.sival_int = 50;
	pthread_sigqueue(pthread_self(), SIGRTMIN + 1, v);
	pthread_kill(second, SIGUSR2);
	v.sival_int = 100;
	pthread_sigqueue(second, SIGRTMIN + 1, v);
}

static void expect_log(int at, int signo, int code, int value, pid_t tid)
{
	const struct got *g = &log_[at];
	wl_expect(at < atomic_load(&n_log) && g->signo == signo && g->code == code &&
	              (code == SI_USER || code == SI_TKILL || g->value == value) && g->tid == tid &&
	              g->pid == getpid() && g->uid == getuid(),
	          "signal %d: got signo %d code %d value %d pid %d uid %d on %d, want signo %d "
	          "code %d value %d on %d",
	          at, g->signo, g->code, g->value, (int)g->pid, (int)g->uid, (int)g->tid, signo,
	          code, value, (int)tid);
}

static void verify(void)
{
	pid_t me = (pid_t)syscall(SYS_gettid);
	check_still_pending("main thread");
	pthread_sigmask(SIG_UNBLOCK, &both, NULL);
	int main_n = atomic_load(&n_log);
	atomic_store(&phase, 1);
	pthread_join(second, NULL);
	int r1 = SIGRTMIN + 1;
	wl_expect(main_n == 5 && atomic_load(&n_log) == 7,
	          "%d signals arrived on the main thread and %d on the second, want 5 and 2",
	          main_n, atomic_load(&n_log) - main_n);
	expect_log(0, r1, SI_QUEUE, 50, me);
	expect_log(1, SIGUSR2, SI_USER, 0, me);
	for (int i = 1; i <= 3; i++)
		expect_log(1 + i, r1, SI_QUEUE, i, me);
	pid_t other = log_[5].tid;
	wl_expect(other != me, "the second thread's signals arrived on the main thread");
	expect_log(5, SIGUSR2, SI_TKILL, 0, other);
	expect_log(6, r1, SI_QUEUE, 100, other);
}

/* A periodic timer whose blocked signal is pending from its first expiry. */
static timer_t timer_id;
static int timer_on;

static void pending_timer(void)
{
	sigset_t t;
	struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 2};
	struct itimerspec its = {{0, 10000000}, {0, 10000000}};
	timer_t id;
	ev.sigev_value.sival_int = 77;
	timer_on = 1;
	sigemptyset(&t);
	sigaddset(&t, SIGRTMIN + 2);
	pthread_sigmask(SIG_BLOCK, &t, NULL);
	if (timer_create(CLOCK_MONOTONIC, &ev, &id) || timer_settime(id, 0, &its, NULL))
		wl_die("timer");
	timer_id = id;
}

/* The timer's signal, still pending, taken with sigtimedwait. */
static void verify_timer(void)
{
	sigset_t t, p;
	siginfo_t si;
	struct timespec zero = {0, 0};
	sigemptyset(&t);
	sigaddset(&t, SIGRTMIN + 2);
	sigpending(&p);
	wl_expect(sigismember(&p, SIGRTMIN + 2), "the timer's signal is no longer pending");
	int got = sigtimedwait(&t, &si, &zero);
	wl_expect(got == SIGRTMIN + 2 && si.si_code == SI_TIMER && si.si_value.sival_int == 77 &&
	              si.si_timerid == (int)(intptr_t)timer_id,
	          "timer signal: got %d code %d value %d id %d", got, si.si_code,
	          si.si_value.sival_int, si.si_timerid);
}

int main(int argc, char **argv)
{
	uint64_t n = 0;
	wl_init("sigqueue");
	if (wl_opt(argc, argv, "--timer", 0))
		pending_timer();
	setup();
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	verify();
	if (timer_on)
		verify_timer();
	wl_finish(!wl_failures(), n, "%s", wl_first_failure());
}
