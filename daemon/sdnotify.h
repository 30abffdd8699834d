/* sd_notify(3) for checksyncd: READY, STATUS, STOPPING and the watchdog.
 * Thin wrappers over libsystemd; all of them are no-ops outside systemd
 * ($NOTIFY_SOCKET unset). */
#ifndef CS_SDNOTIFY_H
#define CS_SDNOTIFY_H

struct event_base;
struct cs_sdnotify;

/* If the service has WatchdogSec= (sd_watchdog_enabled), arms a libevent
 * timer on BASE that sends WATCHDOG=1 every half WATCHDOG_USEC. The pings
 * come from the daemon's own loop, so a stuck loop stops them. Returns 0 and
 * *out (free with cs_sdnotify_free, which disarms the timer), or a negative
 * errno. */
int cs_sdnotify_start(struct event_base *base, struct cs_sdnotify **out);
void cs_sdnotify_free(struct cs_sdnotify *n);

/* READY=1: listeners are up. */
void cs_sdnotify_ready(void);
/* STATUS=<formatted>, e.g. "primary, term 4, peers up 2/2". */
void cs_sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* STOPPING=1. */
void cs_sdnotify_stopping(void);
/* RELOADING=1 / READY=1 around a SIGHUP reload. */
void cs_sdnotify_reloading(void);

#endif
