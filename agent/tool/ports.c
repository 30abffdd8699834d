/*
 * fds that must be possible to recreate: listening and bound sockets need
 * their address free (checked before any memory is loaded: a restore that
 * fails after loading a large heap wastes the time and leaves nothing
 * usable), regular files and directories must still exist.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "restore.h"
#include "tool.h"

#include "fmt.h"

static int unix_path_in_use(const struct sockaddr_un *sa)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int in_use = 0;
	if (s >= 0 && connect(s, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		in_use = 1;
	if (s >= 0 && errno == EPROTOTYPE)
		in_use = 1;
	if (s >= 0)
		close(s);
	return in_use;
}

/* 0 if the address could be bound now, -errno otherwise. */
static int try_bind(const struct cs_image_fd *f)
{
	const struct sockaddr *sa = (const struct sockaddr *)f->local_addr;
	if (f->family == AF_UNIX) {
		const struct sockaddr_un *su = (const void *)f->local_addr;
		if (f->local_len <= sizeof(sa_family_t))
			return 0; /* unbound */
		if (su->sun_path[0])
			return unix_path_in_use(su) ? -EADDRINUSE : 0;
	}
	int s = socket(f->family, f->sock_type | SOCK_CLOEXEC, f->protocol);
	if (s < 0)
		return -errno;
	int r = 0;
	cs_sock_options(s, f->sock_options);
	if (bind(s, sa, f->local_len) < 0)
		r = -errno;
	close(s);
	return r;
}

/* The options a listening socket had (CS_SOCK_*), before it is bound:
 * without IPV6_V6ONLY a [::] socket takes the IPv4 port too, and a program
 * that listens on both (redis does) would find its own port taken. */
void cs_sock_options(int s, uint32_t opts)
{
	int one = 1;
	if (opts & CS_SOCK_REUSEADDR)
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (opts & CS_SOCK_REUSEPORT)
		setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (opts & CS_SOCK_V6ONLY)
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
}

static int check_path(const struct cs_image_fd *f)
{
	struct stat st;
	if (f->type != CS_FD_REGULAR && f->type != CS_FD_DIRECTORY && f->type != CS_FD_CHARDEV &&
	    f->type != CS_FD_FIFO)
		return 0;
	if (f->fd <= 2)
		return 0; /* stdio comes from the restoring tool */
	if (f->type == CS_FD_FIFO && stat(f->path, &st) == 0 && !S_ISFIFO(st.st_mode)) {
		cs_err("refusing: fd %d was the named FIFO %s, which is not a FIFO now", f->fd,
		       f->path);
		return -1;
	}
	if (access(f->path, F_OK) == 0)
		return 0;
	cs_err("refusing: fd %d was %s, which no longer exists: %s", f->fd, f->path,
	       strerror(errno));
	return -1;
}

int cs_validate_fds(const struct cs_image *img)
{
	int bad = 0;
	for (size_t i = 0; i < img->n_fds; i++) {
		const struct cs_image_fd *f = &img->fds[i];
		if (check_path(f) < 0)
			bad = 1;
		if (f->type != CS_FD_SOCKET_LISTEN && f->type != CS_FD_SOCKET_DGRAM &&
		    f->type != CS_FD_SOCKET_STREAM)
			continue;
		int r = try_bind(f);
		if (r < 0) {
			char addr[256];
			cs_sockaddr_text(f, addr, sizeof(addr));
			cs_err("refusing: fd %d %s %s, which is %s now", f->fd,
			       f->type == CS_FD_SOCKET_LISTEN ? "listened on" : "was bound to",
			       addr, r == -EADDRINUSE ? "already in use" : strerror(-r));
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}
