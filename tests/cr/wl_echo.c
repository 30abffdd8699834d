/*
 * echo: a TCP echo server on epoll, listening on 127.0.0.1:<--port>. A
 * timerfd in the same epoll set drives the progress ticks, so a restore that
 * loses epoll registrations stops progress or stops accepting.
 *
 * Connections alive at the checkpoint come back as sockets that report a
 * reset; the server closes them and carries on. Counters: connections
 * accepted, bytes received, bytes echoed, and per-connection bytes.
 *
 * Invariants at verify: bytes echoed == bytes received, and the bytes of
 * open connections plus those of closed ones add up to the total. The verify
 * line reports accepted= and bytes= so the harness can check them against
 * what its clients sent before the checkpoint and after the restore.
 */
#include "wl_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define MAX_FD 1024

static uint64_t conn_bytes[MAX_FD];
static uint64_t closed_bytes, total_in, total_out, accepted, resets, ticks;

static int listen_on(unsigned port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 64) < 0) {
		wl_say("echo: cannot listen on 127.0.0.1:%u: %s", port, strerror(errno));
		exit(2);
	}
	return s;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, 1000);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		total_out += (uint64_t)n;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void drop(int ep, int fd, int was_reset)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	closed_bytes += conn_bytes[fd];
	wl_say("drop fd=%d bytes=%llu reset=%d", fd, (unsigned long long)conn_bytes[fd], was_reset);
	conn_bytes[fd] = 0;
	resets += was_reset;
}

static void serve(int ep, int fd)
{
	char buf[4096];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			drop(ep, fd, n < 0);
			return;
		}
		total_in += (uint64_t)n;
		conn_bytes[fd] += (uint64_t)n;
		if (send_all(fd, buf, (size_t)n) < 0) {
			drop(ep, fd, 1);
			return;
		}
	}
}

static void accept_all(int ep, int ls)
{
	for (;;) {
		int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0)
			return;
		if (c >= MAX_FD) {
			close(c);
			continue;
		}
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
		epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
		conn_bytes[c] = 0;
		accepted++;
	}
}

static void verify(void)
{
	uint64_t open_bytes = 0;
	for (int i = 0; i < MAX_FD; i++)
		open_bytes += conn_bytes[i];
	if (total_in != total_out)
		wl_finish(0, ticks, "bytes received %llu != bytes echoed %llu",
			  (unsigned long long)total_in, (unsigned long long)total_out);
	if (open_bytes + closed_bytes != total_in)
		wl_finish(0, ticks, "per-connection bytes %llu + closed %llu != total %llu",
			  (unsigned long long)open_bytes, (unsigned long long)closed_bytes,
			  (unsigned long long)total_in);
	wl_finish(1, ticks, "accepted=%llu bytes=%llu resets=%llu", (unsigned long long)accepted,
		  (unsigned long long)total_in, (unsigned long long)resets);
}

int main(int argc, char **argv)
{
	unsigned port = (unsigned)wl_opt(argc, argv, "--port", 0);
	if (port == 0 || port > 65535) {
		wl_say("usage: wl-echo --port PORT");
		return 2;
	}
	int ls = listen_on(port);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int tf = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = {{0, 20 * 1000000L}, {0, 20 * 1000000L}};
	timerfd_settime(tf, 0, &its, NULL);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	ev.data.fd = tf;
	epoll_ctl(ep, EPOLL_CTL_ADD, tf, &ev);
	wl_init("echo");
	while (!wl_verify_requested()) {
		struct epoll_event evs[32];
		int n = epoll_wait(ep, evs, 32, 200);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			uint64_t exp;
			if (fd == ls)
				accept_all(ep, ls);
			else if (fd == tf && read(tf, &exp, sizeof(exp)) == sizeof(exp))
				ticks += exp;
			else if (fd != tf)
				serve(ep, fd);
		}
		wl_progress(ticks);
	}
	verify();
}
