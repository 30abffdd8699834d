/*
 * itimers: interval timers (setitimer) and POSIX timers (timer_create).
 *
 *   ITIMER_REAL     20 ms period, SIGALRM counted
 *   ITIMER_VIRTUAL  one-shot, 1000 s of user CPU time away
 *   ITIMER_PROF     500 s away, 250 ms period
 *   POSIX           ids 0-5 used and deleted, then (ids 6-9):
 *                   id 0 CLOCK_MONOTONIC, SIGRTMIN+1 with a sigval, 30 ms period;
 *                   id 2 CLOCK_REALTIME, SIGEV_NONE, one-shot 100 s away;
 *                   id 4 CLOCK_BOOTTIME, disarmed; id 5 CLOCK_MONOTONIC,
 *                   SIGEV_THREAD_ID to the main thread, 40 ms period.
 *   --thread-timer 1: one more timer signalling a second thread, which
 *                   checksync refuses at checkpoint.
 *   --cpu-clock-timer 1: one more timer on the CPU clock of a second
 *                   thread, which checksync refuses at checkpoint.
 *
 * At verify: each timer is where it was (the ids still valid, the deleted
 * ones still invalid, clocks, intervals, remaining times within bounds,
 * no signal with a wrong sigval or timer id), and the periodic ones keep
 * firing: counted over 400 ms at verify.
 */
#include "wl_common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SIGVAL  0x5eed0000abcdull
#define NTIMERS 6

static int ids[NTIMERS];
static atomic_ulong alarms, rt_ticks, tid_ticks, bad_info;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (si->si_code != SI_TIMER)
		bad_info++;
	else if (sig == SIGRTMIN + 1 && si->si_value.sival_ptr == (void *)SIGVAL &&
	         si->si_timerid == ids[0])
		rt_ticks++;
	else if (sig == SIGRTMIN + 2 && si->si_timerid == ids[5] && syscall(SYS_gettid) == getpid())
		tid_ticks++;
	else
		bad_info++;
}

static void handler(int sig, void (*fn)(int), void (*act)(int, siginfo_t *, void *))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	if (act) {
		sa.sa_sigaction = act;
		sa.sa_flags = SA_SIGINFO | SA_RESTART;
	} else {
		sa.sa_handler = fn;
		sa.sa_flags = SA_RESTART;
	}
	sigaction(sig, &sa, NULL);
}

/* Raw timer_create: glibc would hide SIGEV_THREAD_ID's kernel id. */
static int create(clockid_t clock, int notify, int signo, uint64_t val, pid_t tid)
{
	struct sigevent ev;
	int id = -1;
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = notify;
	ev.sigev_signo = signo;
	ev.sigev_value.sival_ptr = (void *)val;
	ev._sigev_un._tid = tid;
	if (syscall(SYS_timer_create, clock, &ev, &id))
		exit(2);
	return id;
}

static void arm(int id, uint64_t value_ms, uint64_t interval_ms)
{
	struct itimerspec its = {
	    {(time_t)(interval_ms / 1000), (long)(interval_ms % 1000) * 1000000},
	    {(time_t)(value_ms / 1000), (long)(value_ms % 1000) * 1000000}};
	if (syscall(SYS_timer_settime, id, 0, &its, NULL))
		exit(2);
}

static void *other_thread(void *arg)
{
	*(pid_t *)arg = (pid_t)syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

/* A second thread, for the timers checksync refuses. */
static pid_t second_thread(pthread_t *th)
{
	static volatile pid_t tid;
	pthread_create(th, NULL, other_thread, (void *)&tid);
	while (!tid)
		wl_sleep_ms(1);
	return tid;
}

static void setup(int thread_timer, int cpu_clock_timer)
{
	handler(SIGALRM, on_alarm, NULL);
	handler(SIGRTMIN + 1, NULL, on_rt);
	handler(SIGRTMIN + 2, NULL, on_rt);
	struct itimerval real = {{0, 20000}, {0, 20000}}, virt = {{0, 0}, {1000, 0}},
	                 prof = {{0, 250000}, {500, 0}};
	if (setitimer(ITIMER_REAL, &real, NULL) || setitimer(ITIMER_VIRTUAL, &virt, NULL) ||
	    setitimer(ITIMER_PROF, &prof, NULL))
		exit(2);
	for (int i = 0; i < NTIMERS; i++)
		ids[i] = create(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, 0);
	syscall(SYS_timer_delete, ids[0]);
	syscall(SYS_timer_delete, ids[2]);
	syscall(SYS_timer_delete, ids[4]);
	syscall(SYS_timer_delete, ids[5]);
	/* the kernel hands out ids in order: slots 0 2 4 5 get 6 7 8 9, and
	 * slots 1 and 3 (ids 1 and 3) are deleted below: the program holds ids
	 * with gaps below them */
	ids[0] = create(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 1, SIGVAL, 0);
	ids[2] = create(CLOCK_REALTIME, SIGEV_NONE, 0, 0, 0);
	ids[4] = create(CLOCK_BOOTTIME, SIGEV_SIGNAL, SIGRTMIN + 1, 0, 0);
	ids[5] = create(CLOCK_MONOTONIC, SIGEV_THREAD_ID, SIGRTMIN + 2, 0, getpid());
	arm(ids[0], 30, 30);
	arm(ids[2], 100000, 0);
	arm(ids[5], 40, 40);
	syscall(SYS_timer_delete, ids[1]);
	syscall(SYS_timer_delete, ids[3]);
	static pthread_t th;
	if (thread_timer)
		create(CLOCK_MONOTONIC, SIGEV_THREAD_ID, SIGRTMIN + 2, 0, second_thread(&th));
	if (cpu_clock_timer) {
		clockid_t cpu;
		second_thread(&th);
		if (pthread_getcpuclockid(th, &cpu))
			exit(2);
		create(cpu, SIGEV_NONE, 0, 0, 0);
	}
}

static void check_posix(void)
{
	struct itimerspec its;
	for (int i = 0; i < NTIMERS; i++) {
		long r = syscall(SYS_timer_gettime, ids[i], &its);
		int deleted = i == 1 || i == 3;
		wl_expect(deleted ? r < 0 && errno == EINVAL : r == 0,
		          "timer %d (slot %d): timer_gettime %ld (%s), want %s", ids[i], i, r,
		          r ? strerror(errno) : "ok", deleted ? "EINVAL (deleted)" : "success");
	}
	syscall(SYS_timer_gettime, ids[0], &its);
	wl_expect(its.it_interval.tv_nsec == 30000000, "timer %d: interval %ld ns, want 30 ms",
	          ids[0], its.it_interval.tv_nsec);
	syscall(SYS_timer_gettime, ids[2], &its);
	wl_expect(its.it_value.tv_sec > 0 && its.it_value.tv_sec <= 100 && !its.it_interval.tv_sec,
	          "timer %d: %ld s left, want 0-100", ids[2], (long)its.it_value.tv_sec);
	syscall(SYS_timer_gettime, ids[4], &its);
	wl_expect(!its.it_value.tv_sec && !its.it_value.tv_nsec, "timer %d became armed", ids[4]);
}

static void check_itimers(void)
{
	struct itimerval v;
	getitimer(ITIMER_REAL, &v);
	wl_expect(v.it_interval.tv_usec == 20000, "ITIMER_REAL interval %ld us, want 20000",
	          (long)v.it_interval.tv_usec);
	getitimer(ITIMER_VIRTUAL, &v);
	wl_expect(v.it_value.tv_sec > 900 && v.it_value.tv_sec <= 1000 && !v.it_interval.tv_usec,
	          "ITIMER_VIRTUAL %ld s left, want 900-1000", (long)v.it_value.tv_sec);
	getitimer(ITIMER_PROF, &v);
	wl_expect(v.it_value.tv_sec > 400 && v.it_value.tv_sec <= 500 &&
	              v.it_interval.tv_usec == 250000,
	          "ITIMER_PROF %ld s left, interval %ld us", (long)v.it_value.tv_sec,
	          (long)v.it_interval.tv_usec);
}

/* The periodic timers fire now, after whatever happened before. */
static void check_firing(void)
{
	unsigned long a = alarms, r = rt_ticks, t = tid_ticks;
	wl_sleep_ms(400);
	a = alarms - a, r = rt_ticks - r, t = tid_ticks - t;
	wl_expect(a >= 5, "ITIMER_REAL: %lu SIGALRM in 400 ms, want about 20", a);
	wl_expect(r >= 4, "POSIX timer %d: %lu signals in 400 ms, want about 13", ids[0], r);
	wl_expect(t >= 3, "POSIX timer %d: %lu signals in 400 ms, want about 10", ids[5], t);
	wl_expect(!bad_info, "%lu timer signals with a wrong code, sigval, id or thread",
	          (unsigned long)bad_info);
	int fresh = create(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, 0);
	for (int i = 0; i < NTIMERS; i++)
		wl_expect(fresh != ids[i], "a new timer got id %d, which the program holds", fresh);
}

int main(int argc, char **argv)
{
	uint64_t n = 0;
	wl_init("itimers");
	setup((int)wl_opt(argc, argv, "--thread-timer", 0),
	      (int)wl_opt(argc, argv, "--cpu-clock-timer", 0));
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	check_itimers();
	check_posix();
	check_firing();
	wl_finish(!wl_failures(), n, "alarms=%lu rt=%lu tid=%lu ids=%d,%d,%d,%d %s",
	          (unsigned long)alarms, (unsigned long)rt_ticks, (unsigned long)tid_ticks, ids[0],
	          ids[2], ids[4], ids[5], wl_first_failure());
}
