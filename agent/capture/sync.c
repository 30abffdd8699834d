/*
 * cs_sync's second half: waiting for the daemon that runs the application
 * (DIR/sync.sock, protocol in cs_agent_abi.h) until the backups hold the
 * checkpoint the local half made durable.
 *
 * This runs on the application's thread that called cs_sync, with libc, but
 * that thread receives the freeze signal at every checkpoint (SA_RESTART
 * does not restart socket calls that have a timeout: they fail with EINTR)
 * and may be restored in the middle of a call. A restore recreates the
 * connected socket as one whose peer is gone, so every call below ends,
 * and the caller learns from -ECONNRESET that the connection died.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

/* The socket's address. sun_path holds 108 bytes; a longer DIR is reached
 * through an fd of it (*ret_dir_fd, closed by the caller once connected). */
static int sync_address(const char *dir, struct sockaddr_un *sun, int *ret_dir_fd)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	*ret_dir_fd = -1;
	int n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", dir, CS_SYNC_SOCKET_NAME);
	if (n > 0 && (size_t)n < sizeof(sun->sun_path))
		return 0;
	*ret_dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*ret_dir_fd < 0)
		return -errno;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "/proc/self/fd/%d/%s", *ret_dir_fd,
	             CS_SYNC_SOCKET_NAME);
	return n > 0 && (size_t)n < sizeof(sun->sun_path) ? 0 : -ENAMETOOLONG;
}

/* Sets a socket timeout (SO_RCVTIMEO or SO_SNDTIMEO) to what is left until
 * deadline; -ETIMEDOUT once it has passed. Set before every call, because
 * each EINTR would otherwise start a full timeout again. */
static int time_left(int fd, int opt, int64_t deadline_ns)
{
	int64_t left = deadline_ns - cs_clock_ns(CLOCK_MONOTONIC);
	if (left <= 0)
		return -ETIMEDOUT;
	struct timeval tv = {.tv_sec = left / 1000000000, .tv_usec = (left % 1000000000) / 1000};
	if (!tv.tv_sec && !tv.tv_usec)
		tv.tv_usec = 1; /* zero would mean "no timeout" */
	return setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)) ? -errno : 0;
}

/* Connect, retried across signals: an interrupted AF_UNIX connect has not
 * connected (it was waiting for room in the daemon's backlog). */
static int connect_daemon(int fd, const struct sockaddr_un *sun, int64_t deadline_ns)
{
	for (;;) {
		int r = time_left(fd, SO_SNDTIMEO, deadline_ns);
		if (r)
			return r == -ETIMEDOUT ? -ENOTCONN : r;
		if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ||
		    errno == EISCONN)
			return 0;
		if (errno != EINTR)
			return -ENOTCONN;
	}
}

static int send_request(int fd, uint64_t generation, int64_t deadline_ns)
{
	char req[40];
	int n = snprintf(req, sizeof(req), "wait %llu", (unsigned long long)generation);
	for (;;) {
		int r = time_left(fd, SO_SNDTIMEO, deadline_ns);
		if (r)
			return r;
		if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n)
			return 0;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -ECONNRESET;
	}
}

static int recv_reply(int fd, char *buf, size_t cap, int64_t deadline_ns)
{
	for (;;) {
		int r = time_left(fd, SO_RCVTIMEO, deadline_ns);
		if (r)
			return r;
		ssize_t n = recv(fd, buf, cap - 1, 0);
		if (n > 0) {
			buf[n] = 0;
			return 0;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -ETIMEDOUT;
		if (n == 0 || errno != EINTR)
			return -ECONNRESET; /* the daemon closed, or we were restored */
	}
}

/* "ok G2" with G2 >= generation -> 0; "error ERRNO sentence" -> -ERRNO. */
int cs_sync_parse_reply(const char *reply, uint64_t generation)
{
	char *end;
	if (!strncmp(reply, "ok ", 3)) {
		errno = 0;
		unsigned long long g = strtoull(reply + 3, &end, 10);
		if (errno || end == reply + 3 || (*end && *end != '\n') || g < generation)
			return -EPROTO;
		return 0;
	}
	if (!strncmp(reply, "error ", 6)) {
		long e = strtol(reply + 6, &end, 10);
		if (end == reply + 6 || e <= 0 || e >= 4096 ||
		    (*end && *end != ' ' && *end != '\n'))
			return -EPROTO;
		return (int)-e;
	}
	return -EPROTO;
}

int cs_sync_wait_daemon(const char *dir, uint64_t generation, uint32_t timeout_ms)
{
	char path[CS_IMAGE_PATH_MAX + sizeof(CS_SYNC_SOCKET_NAME) + 1];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, CS_SYNC_SOCKET_NAME);
	if (stat(path, &st) && errno == ENOENT)
		return 1; /* no daemon: the local image is all cs_sync promises */
	struct sockaddr_un sun;
	int dir_fd;
	int64_t deadline = cs_clock_ns(CLOCK_MONOTONIC) + (int64_t)timeout_ms * 1000000;
	int r = sync_address(dir, &sun, &dir_fd);
	int fd = r ? -1 : socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (!r && fd < 0)
		r = -errno;
	if (!r)
		r = connect_daemon(fd, &sun, deadline);
	if (dir_fd >= 0)
		close(dir_fd);
	char reply[CS_SYNC_REPLY_MAX];
	if (!r)
		r = send_request(fd, generation, deadline);
	if (!r)
		r = recv_reply(fd, reply, sizeof(reply), deadline);
	if (!r)
		r = cs_sync_parse_reply(reply, generation);
	if (fd >= 0)
		close(fd);
	return r;
}
