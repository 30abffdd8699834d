/* The application under checksyncd: the engine's tool as a child, watched
 * through a pidfd; requests to the agent over its control socket. See app.h. */
#include "app.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "histogram.h"
#include "journal.h"
#include "proc.h"

#define PROBE_MS        10   /* how often a starting app's agent is looked for */
#define REQUEST_TIMEOUT 60   /* s: a checkpoint of a large base takes a while */
#define REPLY_MAX       2048 /* CS_AGENT_REPLY_MAX */

struct cs_app {
	struct event_base *base;
	struct cs_app_params p;
	struct cs_app_ops ops;
	void *ctx;
	enum cs_app_state state;
	enum cs_app_start how;
	pid_t tool;  /* our child, 0 when stopped */
	int pidfd;   /* of tool */
	int keep_fd; /* the adopted tool's control socket, closed with it (-1: none) */
	struct event *exit_ev, *probe_ev;
	uint64_t started_ms;
	struct agent_req *reqs; /* requests to the agent still out */
	/* Checkpoint pauses as the agents reported them: of the processes
	 * gone, and of the one running now (the agent counts from its start or
	 * restore); a status request for them is out while polling. */
	struct cs_hist pauses_gone, pauses_now;
	bool polling;
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct agent_req {
	struct cs_app *a;
	struct agent_req *next;
	struct event *ev;
	int fd;
	void (*done)(struct agent_req *r, int err, const char *reply);
	cs_app_checkpoint_fn *user_done;
	void *user_arg;
};

const char *cs_app_state_name(enum cs_app_state s)
{
	static const char *const names[] = {"stopped", "starting", "serving"};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* ---- requests to the agent's control socket ---- */

static void req_free(struct agent_req *r)
{
	for (struct agent_req **p = &r->a->reqs; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	if (r->ev)
		event_free(r->ev);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

static void req_ready(evutil_socket_t fd, short what, void *arg)
{
	struct agent_req *r = arg;
	char reply[REPLY_MAX];
	ssize_t n = -1;

	if (what & EV_READ)
		n = recv(fd, reply, sizeof(reply) - 1, MSG_DONTWAIT);
	if (n < 0) {
		r->done(r, what & EV_TIMEOUT ? -ETIMEDOUT : -errno, NULL);
	} else {
		reply[n] = '\0';
		r->done(r, 0, reply);
	}
	req_free(r);
}

static int agent_request(struct cs_app *a, const char *what, unsigned timeout_s,
                         struct agent_req *r)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {timeout_s, 0};

	r->a = a;
	r->next = a->reqs;
	a->reqs = r;
	r->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (r->fd < 0)
		return -errno;
	memcpy(sa.sun_path, a->sock_path, sizeof(sa.sun_path));
	if (connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(r->fd, what, strlen(what), MSG_NOSIGNAL) < 0)
		return -errno;
	r->ev = event_new(a->base, r->fd, EV_READ, req_ready, r);
	if (!r->ev || event_add(r->ev, &tv) < 0)
		return -ENOMEM;
	return 0;
}

/* The agent listens on its socket once the program runs its own code: a
 * fresh agent from its constructor, a restored one as soon as its threads
 * are back. Its first answer may come much later (after a restore it
 * writes a full image first), so a connect is the signal, not a reply. */
static bool agent_listening(const struct cs_app *a)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	bool ok;

	memcpy(sa.sun_path, a->sock_path, sizeof(sa.sun_path));
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs_app *a = arg;
	struct timeval tv = {0, PROBE_MS * 1000};

	(void)fd, (void)what;
	if (a->state != CS_APP_STARTING)
		return;
	if (!agent_listening(a)) {
		evtimer_add(a->probe_ev, &tv);
		return;
	}
	a->state = CS_APP_SERVING;
	if (a->ops.serving)
		a->ops.serving(a->ctx, a->how, cs_monotonic_ms() - a->started_ms);
}

static void checkpoint_done(struct agent_req *r, int err, const char *reply)
{
	uint64_t gen = 0;

	if (!err && sscanf(reply, "ok %" SCNu64, &gen) == 1)
		r->user_done(r->user_arg, 0, gen, "");
	else if (!err)
		r->user_done(r->user_arg, -EIO, 0, reply);
	else
		r->user_done(r->user_arg, err, 0, strerror(-err));
}

int cs_app_checkpoint(struct cs_app *a, cs_app_checkpoint_fn *done, void *arg)
{
	struct agent_req *r;
	int e;

	if (a->state != CS_APP_SERVING)
		return -ENOTCONN;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->done = checkpoint_done;
	r->user_done = done;
	r->user_arg = arg;
	e = agent_request(a, "checkpoint", REQUEST_TIMEOUT, r);
	if (e < 0)
		req_free(r);
	return e;
}

/* The pause fields of the agent's status reply (cs_agent_abi.h):
 * "pause_count=N pause_sum_us=S pause_le_us=B1:C1,B2:C2,..." with
 * cumulative counts. Returns false when they are missing (an older agent). */
static bool parse_pauses(const char *reply, struct cs_hist *h)
{
	const char *c = strstr(reply, " pause_count="), *p = strstr(reply, " pause_le_us=");
	uint64_t count, sum_us, bound, below, prev = 0;
	int used;

	if (!c || !p ||
	    sscanf(c, " pause_count=%" SCNu64 " pause_sum_us=%" SCNu64, &count, &sum_us) != 2)
		return false;
	cs_hist_init(h, cs_hist_pause_seconds, cs_hist_pause_seconds_n);
	for (p += strlen(" pause_le_us=");
	     sscanf(p, "%" SCNu64 ":%" SCNu64 "%n", &bound, &below, &used) == 2 && below >= prev;
	     p += used + 1) {
		cs_hist_add_bucket(h, (double)bound * 1e-6, below - prev);
		prev = below;
		if (p[used] != ',')
			break;
	}
	if (count < prev)
		return false;
	cs_hist_add_bucket(h, HUGE_VAL, count - prev); /* above the last bound */
	h->sum = (double)sum_us * 1e-6;
	return true;
}

static void status_done(struct agent_req *r, int err, const char *reply)
{
	struct cs_hist h;

	r->a->polling = false;
	if (!err && strncmp(reply, "ok ", 3) == 0 && parse_pauses(reply, &h))
		r->a->pauses_now = h;
}

bool cs_app_poll_pauses(struct cs_app *a)
{
	struct agent_req *r;

	if (a->state != CS_APP_SERVING || a->polling || !(r = calloc(1, sizeof(*r))))
		return false;
	r->done = status_done;
	/* The agent answers between checkpoints: behind a large base, late. */
	if (agent_request(a, "status", REQUEST_TIMEOUT, r) < 0) {
		req_free(r);
		return false;
	}
	a->polling = true;
	return true;
}

json_t *cs_app_pauses_json(const struct cs_app *a)
{
	struct cs_hist all = a->pauses_gone;

	cs_hist_merge(&all, &a->pauses_now);
	return cs_hist_json(&all);
}

/* ---- the process tree ---- */

/* Requests still out end now: their app is gone. */
static void cancel_requests(struct cs_app *a)
{
	while (a->reqs) {
		struct agent_req *r = a->reqs;

		r->done(r, -ECANCELED, NULL);
		req_free(r);
	}
}

static void reset(struct cs_app *a)
{
	cancel_requests(a);
	a->polling = false;
	cs_hist_merge(&a->pauses_gone, &a->pauses_now);
	cs_hist_init(&a->pauses_now, cs_hist_pause_seconds, cs_hist_pause_seconds_n);
	if (a->exit_ev)
		event_free(a->exit_ev);
	a->exit_ev = NULL;
	if (a->pidfd >= 0)
		close(a->pidfd);
	if (a->keep_fd >= 0)
		close(a->keep_fd);
	a->pidfd = a->keep_fd = -1;
	a->tool = 0;
	a->state = CS_APP_STOPPED;
	evtimer_del(a->probe_ev);
}

void cs_app_stop(struct cs_app *a, const char *why)
{
	if (!a->tool)
		return;
	cs_proc_stop(a->tool, "app", why);
	reset(a);
}

static void exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs_app *a = arg;
	int st = 0;
	enum cs_app_start how = a->how;
	uint64_t ran = cs_monotonic_ms() - a->started_ms;

	(void)fd, (void)what;
	if (waitpid(a->tool, &st, WNOHANG) != a->tool)
		return;
	cs_proc_kill_tree(a->tool, 0); /* orphans left in the namespace, if any */
	reset(a);
	if (a->ops.exited)
		a->ops.exited(a->ctx, st, how, ran);
}

/* ---- start ---- */

/* argv for the tool; strings live in bufs. */
static size_t build_argv(const struct cs_app *a, enum cs_app_start how, uint64_t floor, char **argv,
                         size_t cap, char bufs[2][32])
{
	size_t n = 0;

	argv[n++] = (char *)a->p.tool;
	argv[n++] = how == CS_APP_FRESH ? "run" : "restore";
	argv[n++] = "--dir";
	argv[n++] = (char *)a->p.chain_dir;
	snprintf(bufs[0], 32, "%" PRIu64, floor);
	argv[n++] = how == CS_APP_FRESH ? "--first-generation" : "--next-generation";
	argv[n++] = bufs[0];
	if (how == CS_APP_FRESH) {
		snprintf(bufs[1], 32, "%u", a->p.interval_ms);
		argv[n++] = "--interval-ms";
		argv[n++] = bufs[1];
		if (a->p.user) {
			argv[n++] = "--user";
			argv[n++] = (char *)a->p.user;
		}
		if (a->p.workdir) {
			argv[n++] = "--workdir";
			argv[n++] = (char *)a->p.workdir;
		}
		argv[n++] = "--";
		for (char *const *e = a->p.exec; *e && n + 1 < cap; e++)
			argv[n++] = *e;
	}
	argv[n] = NULL;
	return n;
}

/* From here on the app is a's: its exit is watched, its agent looked for. */
static int watch(struct cs_app *a, pid_t pid, int pidfd, enum cs_app_start how, uint64_t started_ms)
{
	struct timeval now = {0, 0};

	a->tool = pid;
	a->pidfd = pidfd;
	a->how = how;
	a->started_ms = started_ms;
	a->state = CS_APP_STARTING;
	a->exit_ev = event_new(a->base, a->pidfd, EV_READ, exit_cb, a);
	if (!a->exit_ev || event_add(a->exit_ev, NULL) < 0) {
		cs_app_stop(a, "cannot watch it");
		return cs_log_err_errno(ENOMEM, "cannot watch the app's tool (pid %d)", (int)pid);
	}
	evtimer_add(a->probe_ev, &now);
	return 0;
}

int cs_app_start(struct cs_app *a, enum cs_app_start how, uint64_t generation_floor)
{
	char *argv[256], bufs[2][32];
	pid_t pid;
	int pidfd, r;

	if (a->tool)
		return -EBUSY;
	build_argv(a, how, generation_floor, argv, sizeof(argv) / sizeof(argv[0]), bufs);
	r = cs_proc_spawn(a->p.tool, argv, a->p.env, -1, &pid, &pidfd);
	if (r < 0)
		return cs_log_err_errno(r, "cannot start the app's tool %s", a->p.tool);
	r = watch(a, pid, pidfd, how, cs_monotonic_ms());
	if (r == 0)
		cs_log_info("app %s: %s %s --dir %s (tool pid %d, generations from %" PRIu64 ")",
		            how == CS_APP_FRESH ? "started" : "restoring", a->p.tool, argv[1],
		            a->p.chain_dir, (int)pid, generation_floor);
	return r;
}

int cs_app_adopt(struct cs_app *a, pid_t pid, int pidfd, int keep_fd, uint64_t started_ms)
{
	if (a->tool) {
		close(keep_fd);
		return -EBUSY; /* the caller still owns pid and pidfd: it kills them */
	}
	a->keep_fd = keep_fd;
	cs_log_info("app adopted: tool pid %d, promoted from the standby", (int)pid);
	return watch(a, pid, pidfd, CS_APP_RESTORE, started_ms);
}

/* ---- life ---- */

int cs_app_new(struct event_base *base, const struct cs_app_params *p, const struct cs_app_ops *ops,
               void *ctx, struct cs_app **out)
{
	struct cs_app *a = calloc(1, sizeof(*a));
	int n;

	if (!a)
		return -ENOMEM;
	a->base = base;
	a->p = *p;
	a->ops = *ops;
	a->ctx = ctx;
	a->pidfd = a->keep_fd = -1;
	cs_hist_init(&a->pauses_gone, cs_hist_pause_seconds, cs_hist_pause_seconds_n);
	cs_hist_init(&a->pauses_now, cs_hist_pause_seconds, cs_hist_pause_seconds_n);
	n = snprintf(a->sock_path, sizeof(a->sock_path), "%s/agent.sock", p->chain_dir);
	a->probe_ev = evtimer_new(base, probe_cb, a);
	if (n < 0 || (size_t)n >= sizeof(a->sock_path) || !a->probe_ev) {
		free(a);
		return n >= 0 ? -ENAMETOOLONG : -ENOMEM;
	}
	*out = a;
	return 0;
}

void cs_app_free(struct cs_app *a)
{
	if (!a)
		return;
	cs_app_stop(a, "daemon stopping");
	event_free(a->probe_ev);
	free(a);
}

enum cs_app_state cs_app_state(const struct cs_app *a)
{
	return a->state;
}

/* The program's host pid, as the agent writes it into the chain. */
static long program_pid(const struct cs_app *a)
{
	char path[sizeof(a->sock_path) + 16];
	long pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/agent.pid", a->p.chain_dir);
	if ((f = fopen(path, "re"))) {
		if (fscanf(f, "%ld", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

json_t *cs_app_status(const struct cs_app *a)
{
	return json_pack("{s:s, s:s, s:I, s:I, s:I}", "state", cs_app_state_name(a->state),
	                 "started", a->how == CS_APP_FRESH ? "fresh" : "restore", "tool_pid",
	                 (json_int_t)a->tool, "pid",
	                 (json_int_t)(a->state == CS_APP_SERVING ? program_pid(a) : 0), "up_ms",
	                 (json_int_t)(a->tool ? cs_monotonic_ms() - a->started_ms : 0));
}
