/* The sync socket's server. See syncsrv.h. */
#include "syncsrv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "journal.h"

struct waiter {
	struct cs_syncsrv *s;
	struct event *ev;
	int fd;
	uint64_t generation; /* 0 until the request arrived */
	uint64_t deadline_ms;
	uint64_t asked_ns; /* when it arrived, for the latency histogram */
	struct waiter *next;
};

struct cs_syncsrv {
	struct event_base *base;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;
	struct event *accept_ev, *timer;
	unsigned timeout_ms;
	cs_sync_decide_fn *decide;
	void *ctx;
	struct cs_sync_latency *latency;
	struct waiter *waiters;
	unsigned n;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static void drop(struct waiter *w)
{
	struct cs_syncsrv *s = w->s;

	for (struct waiter **p = &s->waiters; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	s->n--;
	event_free(w->ev);
	close(w->fd);
	free(w);
}

static void answer(struct waiter *w, int r, const char *why)
{
	char reply[300];
	int n = r > 0 ? snprintf(reply, sizeof(reply), "ok %" PRIu64, w->generation)
	              : snprintf(reply, sizeof(reply), "error %d %s", -r, why);

	if (send(w->fd, reply, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		cs_log_debug("sync waiter for generation %" PRIu64 " left early", w->generation);
	if (w->generation && w->s->latency)
		cs_hist_observe(r > 0 ? &w->s->latency->ok : &w->s->latency->failed,
		                (double)(now_ns() - w->asked_ns) * 1e-9);
	drop(w);
}

static void decide_one(struct waiter *w, uint64_t now)
{
	char why[200] = "";
	int r;

	if (!w->generation)
		return;
	r = w->s->decide(w->s->ctx, w->generation, why, sizeof(why));
	if (r == 0 && now >= w->deadline_ms) {
		r = -ETIMEDOUT;
		snprintf(why, sizeof(why),
		         "generation %" PRIu64 " not acknowledged by every backup within %u ms",
		         w->generation, w->s->timeout_ms);
	}
	if (r != 0)
		answer(w, r, why);
}

void cs_syncsrv_kick(struct cs_syncsrv *s)
{
	uint64_t now = cs_monotonic_ms();
	struct waiter *w, *next;

	for (w = s->waiters; w; w = next) {
		next = w->next;
		decide_one(w, now);
	}
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	cs_syncsrv_kick(arg);
}

static void request_cb(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;
	char buf[64];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	unsigned long long g;

	(void)what;
	if (n <= 0 || w->generation) { /* gone, or a second request: not the protocol */
		drop(w);
		return;
	}
	buf[n] = '\0';
	if (sscanf(buf, "wait %llu", &g) != 1 || g == 0) {
		answer(w, -EINVAL, "expected \"wait GENERATION\"");
		return;
	}
	w->generation = g;
	w->asked_ns = now_ns();
	w->deadline_ms = cs_monotonic_ms() + w->s->timeout_ms;
	decide_one(w, cs_monotonic_ms());
}

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs_syncsrv *s = arg;
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct waiter *w;

	(void)what;
	if (c < 0)
		return;
	if (!(w = calloc(1, sizeof(*w))) ||
	    !(w->ev = event_new(s->base, c, EV_READ | EV_PERSIST, request_cb, w))) {
		free(w);
		close(c);
		return;
	}
	w->s = s;
	w->fd = c;
	w->next = s->waiters;
	s->waiters = w;
	s->n++;
	event_add(w->ev, NULL);
}

int cs_syncsrv_open(struct event_base *base, const char *path, unsigned timeout_ms,
                    cs_sync_decide_fn *decide, void *ctx, struct cs_sync_latency *latency,
                    struct cs_syncsrv **out)
{
	struct cs_syncsrv *s = calloc(1, sizeof(*s));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tick = {0, 50 * 1000};

	if (!s)
		return -ENOMEM;
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) >= (int)sizeof(sa.sun_path)) {
		free(s);
		return cs_log_err_errno(ENAMETOOLONG, "sync socket %s", path);
	}
	memcpy(s->path, sa.sun_path, sizeof(s->path));
	s->base = base;
	s->timeout_ms = timeout_ms;
	s->decide = decide;
	s->ctx = ctx;
	s->latency = latency;
	unlink(path);
	s->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0666) < 0 || listen(s->listen_fd, 64) < 0) {
		int e = errno;

		if (s->listen_fd >= 0)
			close(s->listen_fd);
		free(s);
		return cs_log_err_errno(e, "cannot listen on the sync socket %s", path);
	}
	s->accept_ev = event_new(base, s->listen_fd, EV_READ | EV_PERSIST, accept_cb, s);
	s->timer = event_new(base, -1, EV_PERSIST, timer_cb, s);
	event_add(s->accept_ev, NULL);
	event_add(s->timer, &tick);
	*out = s;
	return 0;
}

void cs_syncsrv_close(struct cs_syncsrv *s, int err, const char *why)
{
	if (!s)
		return;
	while (s->waiters) {
		if (s->waiters->generation)
			answer(s->waiters, -err, why);
		else
			drop(s->waiters);
	}
	event_free(s->accept_ev);
	event_free(s->timer);
	close(s->listen_fd);
	unlink(s->path);
	free(s);
}

unsigned cs_syncsrv_waiting(const struct cs_syncsrv *s)
{
	return s ? s->n : 0;
}
