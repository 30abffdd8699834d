/* Restore readiness checks on a backup. See ready.h. */
#include "ready.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "journal.h"

struct cs_ready {
	struct event_base *base;
	char *tool, *chain;
	cs_ready_changed_fn *changed;
	void *ctx;
	bool enabled, known, ready;
	char reason[512];
	pid_t pid;
	int out_fd; /* the check's stdout and stderr */
	char out[2048];
	size_t out_len;
	struct event *timer, *out_ev;
};

static void start_check(struct cs_ready *r);

static void arm(struct cs_ready *r, int seconds)
{
	struct timeval tv = {seconds, 0};

	evtimer_add(r->timer, &tv);
}

/* The last non-empty line of the tool's output, without the "checksync: ". */
static void last_line(const char *out, char *dst, size_t cap)
{
	char buf[2048];
	char *line = NULL, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", out);
	for (char *t = strtok_r(buf, "\n", &save); t; t = strtok_r(NULL, "\n", &save))
		line = t;
	if (line && strncmp(line, "checksync: ", 11) == 0)
		line += 11;
	snprintf(dst, cap, "%s", line ? line : "no output");
}

static void finish(struct cs_ready *r)
{
	int st = 0;
	bool ready;
	char reason[sizeof(r->reason)];

	waitpid(r->pid, &st, 0);
	r->pid = 0;
	event_free(r->out_ev);
	r->out_ev = NULL;
	close(r->out_fd);
	r->out[r->out_len] = '\0';
	last_line(r->out, reason, sizeof(reason));
	ready = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!r->known || ready != r->ready || strcmp(reason, r->reason) != 0) {
		bool report = !r->known || ready != r->ready;

		r->known = true;
		r->ready = ready;
		memcpy(r->reason, reason, sizeof(reason));
		if (report)
			r->changed(r->ctx, ready, reason);
	}
	if (r->enabled)
		arm(r, CS_READY_PERIOD_S);
}

static void out_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs_ready *r = arg;
	char buf[512];
	ssize_t n = read(fd, buf, sizeof(buf));

	(void)what;
	if (n > 0) {
		size_t room = sizeof(r->out) - 1 - r->out_len;

		if ((size_t)n > room) { /* keep the end: the reason is last */
			memmove(r->out, r->out + (size_t)n - room, r->out_len - ((size_t)n - room));
			r->out_len -= (size_t)n - room;
		}
		memcpy(r->out + r->out_len, buf, (size_t)n);
		r->out_len += (size_t)n;
		return;
	}
	if (n < 0 && errno == EINTR)
		return;
	finish(r); /* EOF: the check exited (or closed its output) */
}

static void start_check(struct cs_ready *r)
{
	int p[2];

	if (r->pid || !r->enabled || pipe2(p, O_CLOEXEC) < 0)
		return;
	r->pid = fork();
	if (r->pid < 0) {
		r->pid = 0;
		close(p[0]);
		close(p[1]);
		arm(r, CS_READY_PERIOD_S);
		return;
	}
	if (r->pid == 0) {
		setpriority(PRIO_PROCESS, 0, 19);
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		execl(r->tool, r->tool, "restore", "--dir", r->chain, "--check", (char *)NULL);
		fprintf(stderr, "cannot execute %s: %s\n", r->tool, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	r->out_fd = p[0];
	r->out_len = 0;
	r->out_ev = event_new(r->base, p[0], EV_READ | EV_PERSIST, out_cb, r);
	event_add(r->out_ev, NULL);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	start_check(arg);
}

int cs_ready_new(struct event_base *base, const char *tool, const char *chain_dir,
                 cs_ready_changed_fn *changed, void *ctx, struct cs_ready **out)
{
	struct cs_ready *r = calloc(1, sizeof(*r));

	if (!r || !(r->tool = strdup(tool)) || !(r->chain = strdup(chain_dir)) ||
	    !(r->timer = evtimer_new(base, timer_cb, r))) {
		if (r) {
			free(r->tool);
			free(r->chain);
		}
		free(r);
		return -ENOMEM;
	}
	r->base = base;
	r->changed = changed;
	r->ctx = ctx;
	r->out_fd = -1;
	*out = r;
	return 0;
}

static void stop_check(struct cs_ready *r)
{
	if (!r->pid)
		return;
	kill(r->pid, SIGKILL);
	waitpid(r->pid, NULL, 0);
	r->pid = 0;
	event_free(r->out_ev);
	r->out_ev = NULL;
	close(r->out_fd);
}

void cs_ready_enable(struct cs_ready *r, bool on)
{
	if (on == r->enabled)
		return;
	r->enabled = on;
	if (on) {
		arm(r, 2); /* soon, not at once: the first images are arriving */
	} else {
		evtimer_del(r->timer);
		stop_check(r);
		r->known = false;
	}
}

void cs_ready_free(struct cs_ready *r)
{
	if (!r)
		return;
	stop_check(r);
	event_free(r->timer);
	free(r->tool);
	free(r->chain);
	free(r);
}

json_t *cs_ready_status(const struct cs_ready *r)
{
	if (!r->enabled || !r->known)
		return json_null();
	return json_pack("{s:b, s:s}", "ready", r->ready, "reason", r->reason);
}
