/*
 * timers: a timerfd with a 20 ms period (main thread), a nanosleep loop and
 * an absolute clock_nanosleep loop (two more threads), all on
 * CLOCK_MONOTONIC, with CLOCK_BOOTTIME read alongside. Each records the
 * largest gap between consecutive readings, whether time ever went
 * backwards, and the largest burst of timerfd expirations in one read.
 *
 * The harness keeps the process away for seconds between the kill and the
 * restore; the time namespace must absorb that, so at verify every gap must
 * stay under --max-gap-ms (default 1000) of program-visible time, no clock
 * went backwards, and no timerfd read returned more expirations than that
 * gap allows (no burst of missed ticks after restore). A hang shows up as
 * progress (the tick count) not moving.
 */
#include "wl_common.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define PERIOD_MS 20

struct clock_watch {
	int64_t last_mono, last_boot;
	int64_t max_gap_ns;
	uint64_t backwards;
};

static struct clock_watch w_timerfd, w_sleep, w_abs;
static uint64_t ticks, max_burst, sleeps, abs_wakes;
static int64_t max_abs_late_ns;

static void watch(struct clock_watch *w)
{
	int64_t m = wl_now_ns(CLOCK_MONOTONIC), b = wl_now_ns(CLOCK_BOOTTIME);
	if (w->last_mono != 0) {
		if (m < w->last_mono || b < w->last_boot)
			w->backwards++;
		if (m - w->last_mono > w->max_gap_ns)
			w->max_gap_ns = m - w->last_mono;
		if (b - w->last_boot > w->max_gap_ns)
			w->max_gap_ns = b - w->last_boot;
	}
	w->last_mono = m;
	w->last_boot = b;
}

static void *sleeper_main(void *arg)
{
	(void)arg;
	for (;;) {
		wl_sleep_ms(30);
		watch(&w_sleep);
		sleeps++;
	}
	return NULL;
}

static void *abs_main(void *arg)
{
	(void)arg;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		next.tv_nsec += 50 * 1000000L;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		int64_t late = wl_now_ns(CLOCK_MONOTONIC) -
			       ((int64_t)next.tv_sec * 1000000000LL + next.tv_nsec);
		if (late > max_abs_late_ns)
			max_abs_late_ns = late;
		watch(&w_abs);
		abs_wakes++;
	}
	return NULL;
}

static void check(const char *what, const struct clock_watch *w, int64_t max_gap_ns)
{
	if (w->backwards)
		wl_finish(0, ticks, "%s: a clock went backwards %llu times", what,
			  (unsigned long long)w->backwards);
	if (w->max_gap_ns > max_gap_ns)
		wl_finish(0, ticks, "%s: gap of %lld ms between readings (limit %lld ms)", what,
			  (long long)(w->max_gap_ns / 1000000), (long long)(max_gap_ns / 1000000));
}

static void verify(int64_t max_gap_ns)
{
	check("timerfd", &w_timerfd, max_gap_ns);
	check("nanosleep", &w_sleep, max_gap_ns);
	check("clock_nanosleep", &w_abs, max_gap_ns);
	if ((int64_t)max_burst * PERIOD_MS * 1000000LL > max_gap_ns + PERIOD_MS * 1000000LL)
		wl_finish(0, ticks, "timerfd burst of %llu expirations in one read",
			  (unsigned long long)max_burst);
	if (max_abs_late_ns > max_gap_ns)
		wl_finish(0, ticks, "absolute sleep woke %lld ms late",
			  (long long)(max_abs_late_ns / 1000000));
	wl_finish(1, ticks, "max_gap_ms=%lld/%lld/%lld max_burst=%llu sleeps=%llu abs_wakes=%llu",
		  (long long)(w_timerfd.max_gap_ns / 1000000),
		  (long long)(w_sleep.max_gap_ns / 1000000), (long long)(w_abs.max_gap_ns / 1000000),
		  (unsigned long long)max_burst, (unsigned long long)sleeps,
		  (unsigned long long)abs_wakes);
}

int main(int argc, char **argv)
{
	int64_t max_gap_ns = (int64_t)wl_opt(argc, argv, "--max-gap-ms", 1000) * 1000000LL;
	pthread_t t1, t2;
	int tf = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	struct itimerspec its = {{0, PERIOD_MS * 1000000L}, {0, PERIOD_MS * 1000000L}};
	timerfd_settime(tf, 0, &its, NULL);
	wl_init("timers");
	pthread_create(&t1, NULL, sleeper_main, NULL);
	pthread_create(&t2, NULL, abs_main, NULL);
	while (!wl_verify_requested()) {
		uint64_t exp;
		ssize_t n = read(tf, &exp, sizeof(exp));
		if (n != sizeof(exp))
			continue; /* EINTR from a signal */
		ticks += exp;
		if (exp > max_burst)
			max_burst = exp;
		watch(&w_timerfd);
		wl_progress(ticks);
	}
	verify(max_gap_ns);
}
