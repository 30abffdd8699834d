/* Runs daemon/sdnotify.c on a libevent loop until SIGTERM, for
 * test_sdnotify.py: READY and STATUS at start, the watchdog meanwhile,
 * STOPPING at the end. */
#include "sdnotify.h"

#include <signal.h>
#include <stdio.h>
#include <event2/event.h>

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	event_base_loopbreak(arg);
}

int main(void)
{
	struct event_base *base = event_base_new();
	struct cs_sdnotify *n = NULL;
	struct event *term;
	int r;

	if (!base)
		return 1;
	term = evsignal_new(base, SIGTERM, stop_cb, base);
	event_add(term, NULL);
	r = cs_sdnotify_start(base, &n);
	if (r < 0)
		return 1;
	cs_sdnotify_ready();
	cs_sdnotify_status("backup, term %d, peers up %d/%d", 3, 1, 2);
	event_base_dispatch(base);
	cs_sdnotify_stopping();
	cs_sdnotify_free(n);
	event_free(term);
	event_base_free(base);
	return 0;
}
