/* sd_notify for checksyncd. The watchdog is fed from the daemon's libevent
 * loop, so it only says "alive" while that loop really turns. */
#include "sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <event2/event.h>
#include <systemd/sd-daemon.h>

struct cs_sdnotify {
	struct event *watchdog;
};

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sd_notify(0, "WATCHDOG=1");
}

int cs_sdnotify_start(struct event_base *base, struct cs_sdnotify **out)
{
	struct cs_sdnotify *n = calloc(1, sizeof(*n));
	uint64_t usec = 0;
	int r;

	if (!n)
		return -ENOMEM;
	/* 0 unless this process is the one WatchdogSec= watches. */
	r = sd_watchdog_enabled(0, &usec);
	if (r > 0 && usec > 0) {
		struct timeval tv = {.tv_sec = usec / 2 / 1000000, .tv_usec = usec / 2 % 1000000};

		n->watchdog = event_new(base, -1, EV_PERSIST, watchdog_cb, n);
		if (!n->watchdog || event_add(n->watchdog, &tv) < 0) {
			cs_sdnotify_free(n);
			return -ENOMEM;
		}
		sd_notify(0, "WATCHDOG=1");
	}
	*out = n;
	return 0;
}

void cs_sdnotify_free(struct cs_sdnotify *n)
{
	if (!n)
		return;
	if (n->watchdog)
		event_free(n->watchdog);
	free(n);
}

void cs_sdnotify_ready(void)
{
	sd_notify(0, "READY=1");
}

void cs_sdnotify_status(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", buf);
}

void cs_sdnotify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void cs_sdnotify_reloading(void)
{
	sd_notify(0, "RELOADING=1");
}
