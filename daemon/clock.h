/* The daemon's monotonic clock in milliseconds, for timeouts and
 * durations that need not survive a suspend (leases use
 * cs_daemon_now_ms, on CLOCK_BOOTTIME). Inline, so modules that unit
 * tests link alone (hooks.c) need nothing else. */
#ifndef CS_CLOCK_H
#define CS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t cs_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
