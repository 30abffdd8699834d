/* A control socket server with canned answers, for test_control.py:
 *   control_server SOCKET GROUP|-
 * prints "ready" once listening, serves until SIGTERM. switchover to
 * "slow" answers 100 ms later (deferred reply); to "zeta" fails. */
#include "control.h"
#include "journal.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <event2/event.h>

struct slow {
	struct event *timer;
	struct cs_control_pending *pending;
};

static json_t *status(void)
{
	return json_pack(
	    "{s:s, s:s, s:s, s:I, s:s, s:I, s:[{s:s,s:s,s:s,s:b,s:I}, {s:s,s:s,s:s,s:b,s:n}]}",
	    "node", "alpha", "cluster", "kv", "role", "primary", "term", (json_int_t)5, "primary",
	    "alpha", "lease_remaining_ms", (json_int_t)820, "peers", "name", "beta", "state", "up",
	    "role", "backup", "witness", 0, "last_heartbeat_ms", (json_int_t)12, "name", "gamma",
	    "state", "down", "role", "witness", "witness", 1, "last_heartbeat_ms");
}

static void slow_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slow *s = arg;

	(void)fd, (void)what;
	cs_control_reply(s->pending,
	                 json_pack("{s:s, s:I}", "primary", "slow", "term", (json_int_t)8));
	s->pending = NULL;
}

static json_t *handler(struct cs_control_client *client, const char *cmd, json_t *req, void *arg)
{
	const char *target = json_string_value(json_object_get(req, "target"));
	struct slow *s = arg;

	if (strcmp(cmd, "status") == 0)
		return status();
	if (strcmp(cmd, "switchover") != 0)
		return cs_control_error("unknown command \"%s\"", cmd);
	if (target && strcmp(target, "zeta") == 0)
		return cs_control_error("no such peer: %s", target);
	if (target && strcmp(target, "slow") == 0) {
		struct timeval tv = {0, 100000};

		s->pending = cs_control_defer(client);
		event_add(s->timer, &tv);
		return NULL;
	}
	return json_pack("{s:s, s:I}", "primary", target ? target : "beta", "term", (json_int_t)7);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
	struct event_base *base = event_base_new();
	struct cs_control *ctl;
	struct slow s = {0};
	struct event *term;

	if (argc != 3 || !base)
		return 2;
	cs_journal_init("control_server", CS_LOG_STDERR);
	s.timer = evtimer_new(base, slow_cb, &s);
	term = evsignal_new(base, SIGTERM, stop_cb, base);
	event_add(term, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (cs_control_open(base, argv[1], strcmp(argv[2], "-") ? argv[2] : NULL, handler, &s,
	                    &ctl) < 0)
		return 1;
	printf("ready\n");
	fflush(stdout);
	event_base_dispatch(base);
	cs_control_close(ctl);
	cs_control_reply(s.pending, json_object()); /* frees a reply still pending */
	event_free(s.timer);
	event_free(term);
	event_base_free(base);
	return 0;
}
