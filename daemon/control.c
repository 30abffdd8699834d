/* Control socket server: line-delimited JSON over a Unix stream socket,
 * driven by the daemon's libevent loop. Access is decided twice: by the
 * socket's mode and group (the file system), and by the peer's credentials
 * (SO_PEERCRED, SO_PEERGROUPS), so a wrong mode cannot open it up. */
#include "control.h"
#include "journal.h"

#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define LINE_MAX_BYTES (64 * 1024) /* a request is a few dozen bytes */
#define MAX_CLIENTS    64

struct cs_control {
	struct event_base *base;
	struct evconnlistener *listener;
	char *path;
	gid_t gid; /* group allowed besides root; 0 when none */
	char *group;
	cs_control_handler handler;
	void *arg;
	struct cs_control_client *clients;
	size_t n_clients;
};

/* A client lives while its connection is open or a reply is pending. */
struct cs_control_client {
	struct cs_control *ctl;  /* NULL once the server is closed */
	struct bufferevent *bev; /* NULL once the connection is gone */
	struct cs_control_client *next, *prev;
	uid_t uid;
	pid_t pid;
	bool deferred;    /* a reply is pending: further requests wait */
	bool close_after; /* close once the output is flushed */
};

struct cs_control_pending {
	struct cs_control_client *client;
};

static void client_process(struct cs_control_client *c);

static void client_unlink(struct cs_control_client *c)
{
	if (!c->ctl)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->ctl->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->ctl->n_clients--;
	c->ctl = NULL;
	c->next = c->prev = NULL;
}

/* Drops the connection; the struct stays while a reply is pending. */
static void client_close(struct cs_control_client *c)
{
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	client_unlink(c);
	if (!c->deferred)
		free(c);
}

static void client_send(struct cs_control_client *c, json_t *answer)
{
	char *text;

	if (!answer)
		answer = cs_control_error("internal error");
	if (!json_object_get(answer, "ok"))
		json_object_set_new(answer, "ok", json_true());
	text = json_dumps(answer, JSON_COMPACT);
	json_decref(answer);
	if (!text || !c->bev) {
		free(text);
		return;
	}
	bufferevent_write(c->bev, text, strlen(text));
	bufferevent_write(c->bev, "\n", 1);
	free(text);
}

json_t *cs_control_error(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", buf);
}

struct cs_control_pending *cs_control_defer(struct cs_control_client *c)
{
	struct cs_control_pending *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->client = c;
	c->deferred = true;
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ);
	return p;
}

void cs_control_reply(struct cs_control_pending *p, json_t *answer)
{
	struct cs_control_client *c;

	if (!p) {
		json_decref(answer);
		return;
	}
	c = p->client;
	free(p);
	c->deferred = false;
	if (!c->bev) { /* the client or the server went away meanwhile */
		json_decref(answer);
		free(c);
		return;
	}
	client_send(c, answer);
	bufferevent_enable(c->bev, EV_READ);
	client_process(c); /* requests that arrived while we waited */
}

unsigned cs_control_client_uid(const struct cs_control_client *c)
{
	return c->uid;
}

int cs_control_client_pid(const struct cs_control_client *c)
{
	return c->pid;
}

static json_t *handle_line(struct cs_control_client *c, const char *line)
{
	json_error_t jerr;
	json_t *req = json_loads(line, JSON_REJECT_DUPLICATES, &jerr), *answer;
	const char *cmd;

	if (!req)
		return cs_control_error("invalid JSON at column %d: %s", jerr.column, jerr.text);
	cmd = json_string_value(json_object_get(req, "cmd"));
	if (!json_is_object(req) || !cmd) {
		json_decref(req);
		return cs_control_error("expected an object with a \"cmd\" string");
	}
	answer = c->ctl->handler(c, cmd, req, c->ctl->arg);
	json_decref(req);
	if (!answer && !c->deferred)
		cs_log_err("control: no answer to command \"%s\"", cmd);
	return answer;
}

/* Answers every complete line in the input, stopping when a reply is
 * deferred (order of answers must follow order of requests). */
static void client_process(struct cs_control_client *c)
{
	struct evbuffer *in;
	json_t *answer;
	size_t len;
	char *line;

	while (c->bev && c->ctl && !c->deferred && !c->close_after) {
		in = bufferevent_get_input(c->bev);
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
		if (!line) {
			if (evbuffer_get_length(in) > LINE_MAX_BYTES) {
				client_send(c, cs_control_error("request longer than %d bytes",
				                                LINE_MAX_BYTES));
				c->close_after = true;
				bufferevent_disable(c->bev, EV_READ);
			}
			return;
		}
		answer = len ? handle_line(c, line) : NULL;
		free(line);
		if (len && !c->deferred)
			client_send(c, answer);
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	client_process(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct cs_control_client *c = arg;

	if (c->close_after && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_close(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		client_close(arg);
}

static bool in_group(int fd, gid_t primary, gid_t want)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (primary == want)
		return true;
	/* The peer's supplementary groups as the kernel saw them at connect(). */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == want)
			return true;
	return false;
}

/* NULL when the peer may talk to us, else why not. */
static const char *refusal(struct cs_control *ctl, int fd, struct ucred *cred, char *buf,
                           size_t len)
{
	socklen_t clen = sizeof(*cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &clen) < 0)
		return "cannot read peer credentials";
	if (cred->uid == 0 || cred->uid == geteuid())
		return NULL;
	if (ctl->group && in_group(fd, cred->gid, ctl->gid))
		return NULL;
	snprintf(buf, len, "permission denied: uid %u is not root%s%s", (unsigned)cred->uid,
	         ctl->group ? " and not in group " : "", ctl->group ? ctl->group : "");
	return buf;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	struct cs_control *ctl = arg;
	struct cs_control_client *c;
	struct ucred cred = {0};
	const char *why;
	char buf[160];

	(void)l, (void)sa, (void)salen;
	c = calloc(1, sizeof(*c));
	if (!c || ctl->n_clients >= MAX_CLIENTS) {
		cs_log_warn("control: refusing a connection: %s",
		            c ? "too many clients" : "out of memory");
		free(c);
		close(fd);
		return;
	}
	c->bev = bufferevent_socket_new(ctl->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		free(c);
		close(fd);
		return;
	}
	c->ctl = ctl;
	c->next = ctl->clients;
	if (c->next)
		c->next->prev = c;
	ctl->clients = c;
	ctl->n_clients++;
	why = refusal(ctl, fd, &cred, buf, sizeof(buf));
	c->uid = cred.uid;
	c->pid = cred.pid;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(c->bev, EV_READ);
	if (why) {
		cs_log_warn("control: refused pid %d uid %u: %s", (int)cred.pid, (unsigned)cred.uid,
		            why);
		client_send(c, cs_control_error("%s", why));
		c->close_after = true;
		bufferevent_disable(c->bev, EV_READ);
	}
}

static int lookup_group(const char *group, gid_t *ret_gid)
{
	struct group *g;

	*ret_gid = 0;
	if (!group)
		return 0;
	errno = 0;
	g = getgrnam(group);
	if (!g)
		return errno ? -errno : -ENOENT;
	*ret_gid = g->gr_gid;
	return 0;
}

/* Creates the socket's directory (0750, group GID) if it is missing. */
static int make_parent(const char *path, gid_t gid)
{
	char *copy = strdup(path), *dir;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	dir = dirname(copy);
	if (mkdir(dir, 0750) == 0) {
		if (chown(dir, (uid_t)-1, gid) < 0)
			r = cs_log_err_errno(errno, "control: cannot give %s to gid %u", dir,
			                     (unsigned)gid);
	} else if (errno != EEXIST) {
		r = cs_log_err_errno(errno, "control: cannot create %s", dir);
	}
	free(copy);
	return r;
}

/* A socket file left by a daemon that died is replaced; a live one is not. */
static int clear_stale(const char *path, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0
		                       : cs_log_err_errno(errno, "control: cannot stat %s", path);
	if (!S_ISSOCK(st.st_mode))
		return cs_log_err_errno(EEXIST, "control: %s exists and is not a socket", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (r == 0)
		return cs_log_err_errno(
		    EADDRINUSE, "control: %s is in use (another checksyncd running?)", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return cs_log_err_errno(errno, "control: cannot remove stale %s", path);
	return 0;
}

static int bind_socket(const char *path, gid_t gid)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	mode_t old_mask;
	int fd, r;

	if (strlen(path) >= sizeof(sun.sun_path))
		return cs_log_err_errno(ENAMETOOLONG, "control: socket path %s", path);
	strcpy(sun.sun_path, path);
	r = make_parent(path, gid);
	if (r == 0)
		r = clear_stale(path, &sun);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return cs_log_err_errno(errno, "control: socket");
	/* The umask makes the file 0660 from its first instant. */
	old_mask = umask(0117);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old_mask);
	if (r < 0 || chmod(path, 0660) < 0 || chown(path, (uid_t)-1, gid) < 0 ||
	    listen(fd, 16) < 0) {
		r = cs_log_err_errno(errno, "control: cannot set up %s", path);
		close(fd);
		return r;
	}
	return fd;
}

int cs_control_open(struct event_base *base, const char *path, const char *group,
                    cs_control_handler handler, void *arg, struct cs_control **out)
{
	struct cs_control *ctl = calloc(1, sizeof(*ctl));
	int fd, r;

	*out = NULL;
	if (!ctl || !(ctl->path = strdup(path)) || (group && !(ctl->group = strdup(group)))) {
		r = cs_log_err_errno(ENOMEM, "control");
		goto fail;
	}
	r = lookup_group(group, &ctl->gid);
	if (r < 0) {
		cs_log_err_errno(r, "control: group %s", group);
		goto fail;
	}
	ctl->base = base;
	ctl->handler = handler;
	ctl->arg = arg;
	fd = bind_socket(path, ctl->gid);
	if (fd < 0) {
		r = fd;
		goto fail;
	}
	ctl->listener = evconnlistener_new(base, accept_cb, ctl, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!ctl->listener) {
		close(fd);
		unlink(path);
		r = cs_log_err_errno(ENOMEM, "control: listener on %s", path);
		goto fail;
	}
	*out = ctl;
	return 0;
fail:
	if (ctl) {
		free(ctl->path);
		free(ctl->group);
		free(ctl);
	}
	return r;
}

int cs_control_set_group(struct cs_control *ctl, const char *group)
{
	char *copy = group ? strdup(group) : NULL;
	gid_t gid;
	int r;

	if (group && !copy)
		return -ENOMEM;
	r = lookup_group(group, &gid);
	if (r == 0 && chown(ctl->path, (uid_t)-1, gid) < 0)
		r = -errno;
	if (r < 0) {
		free(copy);
		return cs_log_err_errno(r, "control: cannot give %s to group %s", ctl->path,
		                        group ? group : "root");
	}
	free(ctl->group);
	ctl->group = copy;
	ctl->gid = gid;
	return 0;
}

void cs_control_close(struct cs_control *ctl)
{
	if (!ctl)
		return;
	while (ctl->clients)
		client_close(ctl->clients);
	evconnlistener_free(ctl->listener);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl->group);
	free(ctl);
}
