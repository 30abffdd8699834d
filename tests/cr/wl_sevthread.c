/*
 * sevthread: a POSIX timer that notifies with SIGEV_THREAD every 5 ms.
 * glibc runs such timers through a helper thread that blocks every signal
 * and waits in sigwaitinfo, and starts a new thread per expiry: the freeze
 * meets a thread the signal cannot park and threads born all the time.
 *
 * Invariants at verify: the helper thread is still there, waiting in
 * sigwaitinfo with the mask it had at start; the callbacks ran (ticks > 0)
 * and never on the main thread; and the timer still ticks (a restore
 * recreates it, signalling the helper thread by its tid, once that thread
 * exists again).
 */
#include "wl_common.h"

#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_ullong ticks, on_main;
static pid_t main_tid, helper_tid;
static uint64_t helper_mask;

static void tick(union sigval v)
{
	(void)v;
	atomic_fetch_add(&ticks, 1);
	if (gettid() == main_tid)
		atomic_fetch_add(&on_main, 1);
}

/* The thread's call number (from /proc/self/task/T/syscall, -1 if none)
 * and its SigBlk. */
static long thread_state(pid_t tid, uint64_t *mask)
{
	char path[64], buf[512];
	long nr = -1;
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	FILE *f = fopen(path, "re");
	if (f && fgets(buf, sizeof(buf), f))
		nr = strtol(buf, NULL, 10);
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "re");
	while (f && fgets(buf, sizeof(buf), f))
		if (!strncmp(buf, "SigBlk:", 7))
			*mask = strtoull(buf + 7, NULL, 16);
	if (f)
		fclose(f);
	return nr;
}

/* The helper: the thread waiting in rt_sigtimedwait. */
static pid_t find_helper(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	pid_t found = 0;
	while (d && !found && (e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);
		uint64_t mask = 0;
		if (tid > 0 && tid != main_tid && thread_state(tid, &mask) == SYS_rt_sigtimedwait) {
			found = tid;
			helper_mask = mask;
		}
	}
	if (d)
		closedir(d);
	return found;
}

static void verify(uint64_t p)
{
	uint64_t mask = 0;
	long nr = -1;
	/* The timer ticks every 5 ms: the helper leaves its wait for each
	 * expiry, and while it waits the kernel shows its mask with the waited
	 * signal open. Look until it is caught waiting, as at start. */
	for (int i = 0; i < 200 && (nr != SYS_rt_sigtimedwait || mask != helper_mask); i++) {
		nr = thread_state(helper_tid, &mask);
		if (nr != SYS_rt_sigtimedwait || mask != helper_mask)
			wl_sleep_ms(1);
	}
	if (nr != SYS_rt_sigtimedwait || mask != helper_mask)
		wl_finish(0, p, "helper thread %d: call %ld mask %016llx; at start %d %016llx",
		          (int)helper_tid, nr, (unsigned long long)mask, SYS_rt_sigtimedwait,
		          (unsigned long long)helper_mask);
	uint64_t before = ticks;
	for (int i = 0; i < 100 && ticks == before; i++)
		wl_sleep_ms(10);
	if (ticks == before)
		wl_finish(0, p, "the timer stopped: %llu ticks, none in the last second",
		          (unsigned long long)before);
	if (!ticks || on_main)
		wl_finish(0, p, "ticks %llu, on the main thread %llu", (unsigned long long)ticks,
		          (unsigned long long)on_main);
	wl_finish(1, p, "ticks=%llu helper=%d mask=%016llx", (unsigned long long)ticks,
	          (int)helper_tid, (unsigned long long)helper_mask);
}

int main(void)
{
	timer_t t;
	struct sigevent sev = {.sigev_notify = SIGEV_THREAD, .sigev_notify_function = tick};
	struct itimerspec its = {{0, 5000000}, {0, 5000000}};
	main_tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) || timer_settime(t, 0, &its, NULL)) {
		perror("timer_create");
		return 2;
	}
	for (int i = 0; i < 200 && !(helper_tid = find_helper()); i++)
		wl_sleep_ms(5);
	if (!helper_tid) {
		fprintf(stderr, "no SIGEV_THREAD helper thread found\n");
		return 2;
	}
	wl_init("sevthread");
	wl_say("helper %d mask %016llx", (int)helper_tid, (unsigned long long)helper_mask);
	uint64_t n = 0;
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	verify(n);
}
