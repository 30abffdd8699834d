/* Hook processes: spawn, capture output line by line, time out, reap. */
#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "journal.h"

extern char **environ;

struct job {
	struct cs_hooks *h;
	char name[16];
	char **argv;
	unsigned timeout_ms;
	bool serial, timed_out;
	cs_hook_done done;
	void *arg;
	pid_t pid; /* 0 while queued */
	int out_fd;
	struct event *out_ev, *timer;
	char line[512];
	size_t line_len;
	uint64_t started_ms;
	struct job *next;
};

struct cs_hooks {
	struct event_base *base;
	struct event *sigchld;
	struct job *jobs; /* running and queued, in submission order */
};

static void emit_line(struct job *j)
{
	j->line[j->line_len] = '\0';
	if (j->line_len > 0)
		cs_event(CS_EV_NOTIFY_HOOK_OUTPUT, .hook = j->name, .reason = j->line);
	j->line_len = 0;
}

/* Reads what the hook wrote; returns false at end of file. */
static bool drain_output(struct job *j)
{
	char buf[1024];
	ssize_t n;

	while ((n = read(j->out_fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' || j->line_len == sizeof(j->line) - 1)
				emit_line(j);
			if (buf[i] != '\n')
				j->line[j->line_len++] = buf[i];
		}
	}
	return !(n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR));
}

static void close_output(struct job *j)
{
	if (j->out_fd < 0)
		return;
	emit_line(j);
	event_free(j->out_ev);
	j->out_ev = NULL;
	close(j->out_fd);
	j->out_fd = -1;
}

static void output_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	(void)fd, (void)what;
	if (!drain_output(j))
		close_output(j);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	(void)fd, (void)what;
	j->timed_out = true;
	kill(-j->pid, SIGKILL); /* the whole group: scripts fork */
}

static void job_free(struct job *j)
{
	close_output(j);
	if (j->timer)
		event_free(j->timer);
	for (char **a = j->argv; a && *a; a++)
		free(*a);
	free(j->argv);
	free(j);
}

static int spawn(struct job *j)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int p[2], r;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	                                    POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	r = -posix_spawn(&j->pid, j->argv[0], &fa, &attr, j->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		j->pid = 0;
		return r;
	}
	j->out_fd = p[0];
	return 0;
}

static void finish(struct job *j, int status);

static void start(struct job *j)
{
	struct timeval tv = {j->timeout_ms / 1000, (j->timeout_ms % 1000) * 1000};
	int r;

	j->started_ms = cs_monotonic_ms();
	r = spawn(j);
	if (r < 0) {
		cs_log_warn_errno(r, "%s hook %s cannot start", j->name, j->argv[0]);
		finish(j, r);
		return;
	}
	j->out_ev = event_new(j->h->base, j->out_fd, EV_READ | EV_PERSIST, output_cb, j);
	j->timer = evtimer_new(j->h->base, timeout_cb, j);
	if (j->out_ev)
		event_add(j->out_ev, NULL);
	if (j->timer && j->timeout_ms)
		evtimer_add(j->timer, &tv);
}

/* The next queued serial job may run when no serial job runs. */
static void start_queued(struct cs_hooks *h)
{
	for (struct job *j = h->jobs; j; j = j->next) {
		if (j->serial && j->pid)
			return;
		if (j->serial && !j->pid) {
			start(j);
			return;
		}
	}
}

static void finish(struct job *j, int status)
{
	struct cs_hooks *h = j->h;
	uint64_t took = cs_monotonic_ms() - j->started_ms;

	for (struct job **p = &h->jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	if (j->out_fd >= 0)
		drain_output(j);
	if (j->done)
		j->done(j->arg, status, took);
	job_free(j);
	start_queued(h);
}

static int wait_status(int st, bool timed_out)
{
	if (timed_out)
		return -ETIMEDOUT;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

static void sigchld_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs_hooks *h = arg;
	struct job *j, *next;

	(void)fd, (void)what;
	/* Only our own children: others (the app) are reaped elsewhere. */
	for (j = h->jobs; j; j = next) {
		int st;

		next = j->next;
		if (j->pid > 0 && waitpid(j->pid, &st, WNOHANG) == j->pid) {
			j->pid = -1; /* reaped */
			finish(j, wait_status(st, j->timed_out));
			next = h->jobs; /* finish may have started another */
		}
	}
}

int cs_hook_run(struct cs_hooks *h, const char *name, const char *const *argv, unsigned timeout_ms,
                bool serial, cs_hook_done done, void *arg)
{
	struct job *j = calloc(1, sizeof(*j)), **tail;
	size_t n = 0;

	if (!j)
		return -ENOMEM;
	j->out_fd = -1;
	while (argv[n])
		n++;
	j->argv = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; j->argv && i < n; i++)
		if (!(j->argv[i] = strdup(argv[i])))
			break;
	if (!j->argv || (n && !j->argv[n - 1])) {
		job_free(j);
		return -ENOMEM;
	}
	*j = (struct job){.h = h,
	                  .argv = j->argv,
	                  .timeout_ms = timeout_ms,
	                  .serial = serial,
	                  .done = done,
	                  .arg = arg,
	                  .out_fd = -1};
	snprintf(j->name, sizeof(j->name), "%s", name);
	for (tail = &h->jobs; *tail; tail = &(*tail)->next)
		;
	*tail = j;
	if (serial)
		start_queued(h);
	else
		start(j);
	return 0;
}

const char *cs_hook_status_text(int status, uint64_t took, char *buf, size_t len)
{
	if (status == -ETIMEDOUT)
		snprintf(buf, len, "timed out after %llu ms", (unsigned long long)took);
	else if (status < 0)
		snprintf(buf, len, "cannot run: %s", strerror(-status));
	else
		snprintf(buf, len, "exit status %d", status);
	return buf;
}

unsigned cs_hooks_pending(const struct cs_hooks *h)
{
	unsigned n = 0;

	for (const struct job *j = h->jobs; j; j = j->next)
		n++;
	return n;
}

int cs_hooks_new(struct event_base *base, struct cs_hooks **out)
{
	struct cs_hooks *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->base = base;
	h->sigchld = evsignal_new(base, SIGCHLD, sigchld_cb, h);
	if (!h->sigchld || event_add(h->sigchld, NULL) < 0) {
		cs_hooks_free(h);
		return -ENOMEM;
	}
	*out = h;
	return 0;
}

void cs_hooks_free(struct cs_hooks *h)
{
	if (!h)
		return;
	while (h->jobs) {
		struct job *j = h->jobs;

		h->jobs = j->next;
		if (j->pid > 0) {
			kill(-j->pid, SIGKILL);
			waitpid(j->pid, NULL, 0);
		}
		if (j->done)
			j->done(j->arg, -ECANCELED, 0);
		job_free(j);
	}
	if (h->sigchld)
		event_free(h->sigchld);
	free(h);
}
