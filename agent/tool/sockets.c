/*
 * Sockets recreated in the process being restored (fds.c places them):
 * listening sockets bound and listening again, datagram sockets bound and
 * connected again, stream sockets that were never connected bound again if
 * they were bound; each with the options it had (those that differ from a
 * new socket's) set before bind, which is where SO_REUSEADDR, SO_REUSEPORT
 * and IPV6_V6ONLY matter. A unix socket's file gets its mode back.
 */
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "restore.h"
#include "tool.h"

/* The kernel doubles SO_RCVBUF and SO_SNDBUF on the way in and reports the
 * doubled value: set half of what was read. */
static void unread(const struct cs_image_sockopt *o, uint8_t *val)
{
	memcpy(val, o->val, o->len);
	if (o->level == SOL_SOCKET && (o->name == SO_RCVBUF || o->name == SO_SNDBUF) &&
	    o->len == sizeof(int)) {
		int v;
		memcpy(&v, val, sizeof(v));
		v /= 2;
		memcpy(val, &v, sizeof(v));
	}
}

static int is_priority(const struct cs_image_sockopt *o)
{
	return o->level == SOL_SOCKET && o->name == SO_PRIORITY;
}

/* SO_PRIORITY goes last: IP_TOS and IPV6_TCLASS set the priority too. */
static int set_options(int s, const struct cs_image_fd *f)
{
	for (uint32_t k = 0; k < 2 * f->n_sockopts; k++) {
		const struct cs_image_sockopt *o = &f->sockopts[k % f->n_sockopts];
		if (is_priority(o) != (k >= f->n_sockopts))
			continue;
		uint8_t cur[CS_IMAGE_SOCKOPT_LEN] = {0}, val[CS_IMAGE_SOCKOPT_LEN];
		socklen_t len = sizeof(cur);
		if (getsockopt(s, o->level, o->name, cur, &len) == 0 && len == o->len &&
		    !memcmp(cur, o->val, len))
			continue;
		unread(o, val);
		if (setsockopt(s, o->level, o->name, val, o->len) < 0)
			return cs_restore_fail("fd %d: socket option %d/%d: %s", f->fd, o->level,
			                       o->name, strerror(errno));
	}
	return 0;
}

/* The classic filter, then SO_LOCK_FILTER if the program had locked it. */
static int set_filter(int s, const struct cs_image_fd *f)
{
	struct sock_fprog prog = {.len = (unsigned short)(f->filter_len / 8),
	                          .filter = (struct sock_filter *)(uintptr_t)f->filter};
	int one = 1;
	if (f->filter_len && setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
		return cs_restore_fail("fd %d: attaching its socket filter again: %s", f->fd,
		                       strerror(errno));
	if (f->filter_locked && setsockopt(s, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof(one)) < 0)
		return cs_restore_fail("fd %d: SO_LOCK_FILTER: %s", f->fd, strerror(errno));
	return 0;
}

static int is_bound(const struct cs_image_fd *f)
{
	if (f->local_len <= sizeof(sa_family_t))
		return 0;
	if (f->family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)f->local_addr)->sin_port != 0;
	if (f->family == AF_INET6)
		return ((const struct sockaddr_in6 *)(const void *)f->local_addr)->sin6_port != 0;
	return 1; /* AF_UNIX: a path or an abstract name */
}

/* bind, after the stale file of a unix socket is gone (the tool checked that
 * nobody listens there), and the file's mode as it was. */
static int bind_again(int s, const struct cs_image_fd *f)
{
	const struct sockaddr_un *su = (const void *)f->local_addr;
	int path = f->family == AF_UNIX && su->sun_path[0] && f->local_len < sizeof(*su);
	char name[sizeof(su->sun_path) + 1] = "";
	if (path) {
		memcpy(name, su->sun_path, f->local_len - offsetof(struct sockaddr_un, sun_path));
		unlink(name);
	}
	if (bind(s, (const struct sockaddr *)f->local_addr, f->local_len) < 0)
		return cs_restore_fail("fd %d: binding again: %s", f->fd, strerror(errno));
	if (path && f->file_mode && chmod(name, f->file_mode) < 0)
		return cs_restore_fail("fd %d: mode %o of %s: %s", f->fd, f->file_mode, name,
		                       strerror(errno));
	return 0;
}

/* Checks that can only run now say so: the peer of a connected datagram
 * socket is someone else's. */
static int connect_again(int s, const struct cs_image_fd *f)
{
	if (connect(s, (const struct sockaddr *)f->remote_addr, f->remote_len) == 0)
		return 0;
	return cs_restore_fail("fd %d: connecting the datagram socket to its peer again (a check "
	                       "only a restore can make): %s",
	                       f->fd, strerror(errno));
}

int cs_restore_socket(const struct cs_image_fd *f)
{
	int s = socket(f->family, f->sock_type | SOCK_CLOEXEC, f->protocol);
	if (s < 0)
		return cs_restore_place(s, f->fd, "socket");
	cs_sock_options(s, f->sock_options);
	int err = set_options(s, f);
	if (!err)
		err = set_filter(s, f);
	if (!err && is_bound(f))
		err = bind_again(s, f);
	if (!err && f->type == CS_FD_SOCKET_LISTEN &&
	    listen(s, f->backlog > 0 ? f->backlog : 128) < 0)
		err = cs_restore_fail("fd %d: listen: %s", f->fd, strerror(errno));
	if (!err && f->type == CS_FD_SOCKET_DGRAM && f->remote_len > sizeof(sa_family_t))
		err = connect_again(s, f);
	if (err) {
		close(s);
		return err;
	}
	return cs_restore_place(s, f->fd, "socket");
}

/* The bytes queued for one end, sent from the other: messages one by one
 * (u32 length + bytes each) or the stream as it is. */
static int refill(int from, const struct cs_image_fd *f)
{
	const uint8_t *p = f->pipe_data, *end = p + f->pipe_data_len;
	while (p < end) {
		uint32_t len = (uint32_t)(end - p);
		if (f->sock_type != SOCK_STREAM) {
			memcpy(&len, p, 4);
			p += 4;
			if (len > (size_t)(end - p))
				return cs_restore_fail("fd %d: queued message runs past its data",
				                       f->fd);
		}
		ssize_t n = send(from, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 || (f->sock_type != SOCK_STREAM && (uint32_t)n != len))
			return cs_restore_fail("fd %d: refilling its queue: %s", f->fd,
			                       n < 0 ? strerror(errno) : "short send");
		p += n;
	}
	return 0;
}

/* The records of one end: its first fd that is not a duplicate. */
static const struct cs_image_fd *end_of(const struct cs_image *img, uint64_t ino)
{
	for (size_t i = 0; ino && i < img->n_fds; i++)
		if (img->fds[i].type == CS_FD_SOCKETPAIR && img->fds[i].pipe_id == ino &&
		    img->fds[i].share_fd < 0)
			return &img->fds[i];
	return NULL;
}

static int pair_state(const int sv[2], const struct cs_image_fd *e[2])
{
	for (int k = 0; k < 2; k++) {
		if (!e[k])
			continue;
		int err = set_options(sv[k], e[k]);
		if (!err)
			err = refill(sv[1 - k], e[k]);
		if (err)
			return err;
	}
	/* filters after the refill: the queued bytes passed them already */
	for (int k = 0; k < 2; k++)
		if (e[k] && set_filter(sv[k], e[k]))
			return -1;
	for (int k = 0; k < 2; k++) {
		if (e[k] && (e[k]->shutdown & 2) && shutdown(sv[k], SHUT_WR) < 0)
			return cs_restore_fail("fd %d: shutdown: %s", e[k]->fd, strerror(errno));
		if (e[k] && (e[k]->shutdown & 1) && !(e[1 - k] && (e[1 - k]->shutdown & 2)))
			shutdown(sv[k], SHUT_RD);
	}
	return 0;
}

/*
 * Both ends of a socketpair (or of a connection the process made to
 * itself), found by inode: a new socketpair, each receive queue refilled
 * from the other end, then the shutdown state. An end whose peer was gone
 * gets its queue and then its peer closed (EOF after the bytes).
 */
int cs_restore_socketpair(const struct cs_image *img, size_t first, char *done)
{
	const struct cs_image_fd *f = &img->fds[first];
	const struct cs_image_fd *e[2] = {end_of(img, f->pipe_id), end_of(img, f->peer_id)};
	int sv[2];
	if (!e[0] || socketpair(AF_UNIX, f->sock_type | SOCK_CLOEXEC, 0, sv) < 0 ||
	    cs_restore_above_scratch(&sv[0]) < 0 || cs_restore_above_scratch(&sv[1]) < 0)
		return cs_restore_fail("fd %d: socketpair: %s", f->fd,
		                       e[0] ? strerror(errno) : "no record of its end");
	int err = pair_state(sv, e);
	for (size_t i = first; i < img->n_fds && !err; i++) {
		const struct cs_image_fd *g = &img->fds[i];
		int k = g->pipe_id == f->pipe_id ? 0 : 1;
		if (g->type != CS_FD_SOCKETPAIR || g->fd <= 2 ||
		    (g->pipe_id != f->pipe_id && (!f->peer_id || g->pipe_id != f->peer_id)))
			continue;
		done[i] = 1;
		err = cs_restore_place(g->share_fd >= 0 ? dup(g->share_fd) : dup(sv[k]), g->fd,
		                       "socketpair");
		if (!err)
			err = cs_restore_finish(g);
	}
	close(sv[0]);
	close(sv[1]);
	return err;
}
