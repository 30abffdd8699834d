/*
 * Timers of the process, captured in the parent during the freeze (the
 * writer child, a separate process, has none of them): the three interval
 * timers of setitimer and the POSIX timers of timer_create, listed by
 * /proc/self/timers and read with timer_gettime. Remaining times are
 * relative, so they survive the clock shift of a restore.
 *
 * A POSIX timer that signals a thread other than the main one (its own
 * SIGEV_THREAD_ID, or glibc's SIGEV_THREAD, whose helper thread gets the
 * signal) keeps its tid: the restorer creates it once that thread exists.
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

static char *list_buf; /* /proc/self/timers */
static size_t list_cap;

void cs_timers_reset(void)
{
	list_buf = NULL;
	list_cap = 0;
}

static uint64_t tv_ns(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000000000ull + (uint64_t)tv->tv_usec * 1000ull;
}

static uint64_t ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

static void interval_timers(struct cs_capture *c)
{
	static const int which[3] = {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF};
	for (int k = 0; k < 3; k++) {
		struct itimerval v;
		/* A periodic ITIMER_REAL that expired is re-armed only when its
		 * SIGALRM is dequeued: until then (a freeze is such a time) it
		 * reads 0 left and its interval. It is armed all the same. */
		if (syscall(SYS_getitimer, which[k], &v) ||
		    (!v.it_value.tv_sec && !v.it_value.tv_usec && !v.it_interval.tv_sec &&
		     !v.it_interval.tv_usec))
			continue;
		struct cs_image_timer *t = &c->timers[c->n_timers++];
		memset(t, 0, sizeof(*t));
		t->kind = CS_TIMER_REAL + (uint32_t)k;
		t->value_ns = tv_ns(&v.it_value);
		t->interval_ns = tv_ns(&v.it_interval);
	}
}

static void refuse(struct cs_capture *c, int32_t id, const char *why, int64_t n, const char *end)
{
	char what[CS_ERR_MAX], num[24];
	cs_strlcpy(what, "POSIX timer ", sizeof(what));
	cs_fmt_u64(num, (uint64_t)id);
	cs_strlcat(what, num, sizeof(what));
	cs_strlcat(what, ": ", sizeof(what));
	cs_strlcat(what, why, sizeof(what));
	if (n < 0)
		cs_strlcat(what, "-", sizeof(what));
	cs_fmt_u64(num, (uint64_t)(n < 0 ? -n : n));
	cs_strlcat(what, num, sizeof(what));
	cs_strlcat(what, end, sizeof(what));
	cs_unsup_add(c, what);
}

static const char *after(const char *p, const char *name)
{
	p = strstr(p, name);
	return p ? p + strlen(name) : NULL;
}

/* Clocks a timer can be created on again in the restored process. */
static int clock_ok(uint64_t clock)
{
	return clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC ||
	       clock == CLOCK_PROCESS_CPUTIME_ID || clock == CLOCK_BOOTTIME ||
	       clock == CLOCK_REALTIME_ALARM || clock == CLOCK_BOOTTIME_ALARM || clock == CLOCK_TAI;
}

/* One "ID: ..." block: "signal: 10/00007f..", "notify: signal/pid.42"
 * (SIGEV_THREAD_ID shows as signal/tid.N, SIGEV_NONE as none/pid.N),
 * "ClockID: 1". */
static int posix_timer(struct cs_capture *c, const char *blk)
{
	uint64_t id, signo, sigval, tid, clock;
	int neg;
	const char *p = blk, *s = after(blk, "signal:"), *n = after(blk, "notify:"),
	           *k = after(blk, "ClockID:");
	if (cs_parse_u64(&p, &id, 10) || !s || !n || !k)
		return -EINVAL;
	while (*s == ' ')
		s++;
	while (*k == ' ')
		k++;
	if ((neg = *k == '-')) /* a CPU clock of some thread or process */
		k++;
	if (cs_parse_u64(&s, &signo, 10) || *s++ != '/' || cs_parse_u64(&s, &sigval, 16) ||
	    cs_parse_u64(&k, &clock, 10))
		return -EINVAL;
	while (*n == ' ')
		n++;
	int none = !strncmp(n, "none/", 5), thread = strstr(n, "/tid.") && strstr(n, "/tid.") < k;
	const char *t = strchr(n, '.');
	if (!t++ || cs_parse_u64(&t, &tid, 10))
		return -EINVAL;
	/* A timer that signals another thread (SIGEV_THREAD_ID; glibc's
	 * SIGEV_THREAD signals its helper thread) is kept with that tid: a
	 * restore gives every thread its tid back and creates such timers
	 * once the threads exist. */
	if (neg || !clock_ok(clock)) {
		refuse(c, (int32_t)id, "runs on clock ", neg ? -(int64_t)clock : (int64_t)clock,
		       ", which cannot be recreated: not restored");
		return 0;
	}
	struct {
		struct timespec interval, value;
	} its;
	if (syscall(SYS_timer_gettime, (int)id, &its))
		return -errno;
	struct cs_image_timer *r = &c->timers[c->n_timers++];
	memset(r, 0, sizeof(*r));
	r->kind = CS_TIMER_POSIX;
	r->id = (int32_t)id;
	r->clockid = (int32_t)clock;
	r->notify = none     ? CS_TIMER_NOTIFY_NONE
	            : thread ? CS_TIMER_NOTIFY_THREAD_ID
	                     : CS_TIMER_NOTIFY_SIGNAL;
	r->signo = (uint32_t)signo;
	r->notify_tid = thread ? (int32_t)tid : 0;
	r->sigval = sigval;
	r->value_ns = ts_ns(&its.value);
	r->interval_ns = ts_ns(&its.interval);
	return 0;
}

/* The kernel lists timers newest first; the image wants ascending ids. */
static void sort_posix(struct cs_capture *c, uint32_t first)
{
	for (uint32_t i = first + 1; i < c->n_timers; i++) {
		struct cs_image_timer t = c->timers[i];
		uint32_t j = i;
		for (; j > first && c->timers[j - 1].id > t.id; j--)
			c->timers[j] = c->timers[j - 1];
		c->timers[j] = t;
	}
}

int cs_timers_capture(struct cs_capture *c)
{
	if (!c->timers && !(c->timers = cs_scratch_alloc(CS_MAX_TIMERS * sizeof(*c->timers), 0)))
		return -ENOMEM;
	if (cs_scratch_grow((void **)&list_buf, &list_cap, 1, 1u << 20))
		return -ENOMEM;
	c->n_timers = 0;
	interval_timers(c);
	ssize_t len = cs_read_file("/proc/self/timers", list_buf, list_cap);
	if (len < 0)
		return (int)len;
	uint32_t first = c->n_timers;
	/* each timer's block starts with a line "ID: <id>" ("ClockID: " ends it) */
	for (const char *p = list_buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, "ID: ", 4))
			continue;
		p += 4;
		if (c->n_timers >= CS_MAX_TIMERS) {
			cs_unsup_add(c, "POSIX timers: more than the agent can capture");
			return 0;
		}
		int r = posix_timer(c, p);
		if (r)
			return r;
	}
	sort_posix(c, first);
	return 0;
}
