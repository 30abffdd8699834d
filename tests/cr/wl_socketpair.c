/*
 * socketpair: unix socket pairs whose both ends the program holds (and a
 * connection it made to its own listener), with bytes queued in them.
 *
 *   st    stream pair: 50-150 bytes queued at end 0, 10-60 at end 1; a dup
 *         of end 1; an epoll set watching end 0 for EPOLLIN
 *   dg    datagram pair: three messages of different sizes queued at end 0
 *   sq    seqpacket pair: two messages queued at end 1, end 0 shut down
 *         for writing (end 1 reads them, then EOF)
 *   half  stream pair whose end 1 was closed after writing 20 bytes (end 0
 *         reads them, then EOF)
 *   self  a connection from the program to its own listener (abstract
 *         name), both ends held, 7 bytes queued at the accepted end
 *   --scm 1: an fd queued with SCM_RIGHTS in one more pair, which checksync
 *         refuses at checkpoint
 *
 * At verify every queue holds exactly its bytes and message boundaries,
 * shutdown and EOF are as left, and every pair still talks both ways.
 */
#include "wl_common.h"

#include <errno.h>
#include <linux/kcmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static int st[2], st1_dup, ep, dg[2], sq[2], half, self_c, self_a, lis;
static uint8_t st0_q[150], st1_q[60], dg_q[3][700];
static size_t st0_len, st1_len, dg_len[3];

static void put(int fd, const void *p, size_t n)
{
	if (send(fd, p, n, 0) != (ssize_t)n)
		wl_die("send");
}

static void pair(int type, int sv[2])
{
	if (socketpair(AF_UNIX, type, 0, sv))
		wl_die("socketpair");
}

static void setup_self(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "wl-socketpair-%d", (int)getpid());
	socklen_t len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1));
	lis = socket(AF_UNIX, SOCK_STREAM, 0);
	self_c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(lis, (struct sockaddr *)&sa, len) || listen(lis, 1) ||
	    connect(self_c, (struct sockaddr *)&sa, len) || (self_a = accept(lis, NULL, NULL)) < 0)
		wl_die("self connection");
	close(lis);
	put(self_c, "seven!!", 7);
}

static void setup(uint64_t seed, int scm)
{
	int h[2];
	pair(SOCK_STREAM, st);
	st0_len = 50 + wl_rand(&seed) % 101, st1_len = 10 + wl_rand(&seed) % 51;
	wl_fill(st0_q, st0_len, &seed), wl_fill(st1_q, st1_len, &seed);
	put(st[1], st0_q, st0_len), put(st[0], st1_q, st1_len);
	st1_dup = dup(st[1]);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 77};
	if ((ep = epoll_create1(0)) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, st[0], &ev))
		wl_die("epoll");
	pair(SOCK_DGRAM, dg);
	for (int i = 0; i < 3; i++) {
		dg_len[i] = 1 + wl_rand(&seed) % sizeof(dg_q[i]);
		wl_fill(dg_q[i], dg_len[i], &seed);
		put(dg[1], dg_q[i], dg_len[i]);
	}
	pair(SOCK_SEQPACKET, sq);
	put(sq[0], "first", 5), put(sq[0], "second!", 7);
	shutdown(sq[0], SHUT_WR);
	pair(SOCK_STREAM, h);
	put(h[1], "twenty bytes of data", 20);
	close(h[1]);
	half = h[0];
	setup_self();
	if (scm) {
		int s[2];
		char cb[CMSG_SPACE(sizeof(int))];
		struct iovec io = {"x", 1};
		struct msghdr mh = {.msg_iov = &io,
		                    .msg_iovlen = 1,
		                    .msg_control = cb,
		                    .msg_controllen = sizeof(cb)};
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		/* datagrams: a plain one is read into the image before the refusal
		 * (a stream would glue it to the one that carries the fd) */
		pair(SOCK_DGRAM, s);
		put(s[1], "plain", 5);
		c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &ep, sizeof(int));
		if (sendmsg(s[1], &mh, 0) != 1)
			wl_die("SCM_RIGHTS");
	}
}

/* Reads one message (or what a stream holds) without blocking. */
static ssize_t take(int fd, uint8_t *buf, size_t cap)
{
	return recv(fd, buf, cap, MSG_DONTWAIT);
}

static void expect_bytes(int fd, const void *want, size_t len, const char *name)
{
	uint8_t got[1024];
	size_t n = 0;
	ssize_t r;
	while (n < len && (r = take(fd, got + n, sizeof(got) - n)) > 0)
		n += (size_t)r;
	wl_expect(n == len && !memcmp(got, want, len), "%s: %zu bytes queued, want %zu%s", name, n,
	          len, n == len ? " (they differ)" : "");
}

static void expect_eof(int fd, const char *name)
{
	uint8_t b;
	ssize_t r = take(fd, &b, 1);
	wl_expect(r == 0, "%s: read %zd (%s), want EOF", name, r, r < 0 ? strerror(errno) : "data");
}

static void talks(int a, int b, const char *name)
{
	uint8_t got[4];
	wl_expect(send(a, "ping", 4, MSG_NOSIGNAL) == 4 && recv(b, got, 4, 0) == 4 &&
	              !memcmp(got, "ping", 4),
	          "%s: no longer connected: %s", name, strerror(errno));
}

static void verify(void)
{
	struct epoll_event ev = {0};
	uint8_t buf[1024];
	wl_expect(epoll_wait(ep, &ev, 1, 0) == 1 && ev.data.u64 == 77,
	          "st: epoll does not report end 0 readable");
	wl_expect(syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, st[1], st1_dup) == 0,
	          "st: the dup of end 1 is another description");
	expect_bytes(st[0], st0_q, st0_len, "st end 0");
	expect_bytes(st1_dup, st1_q, st1_len, "st end 1");
	talks(st[0], st[1], "st"), talks(st[1], st[0], "st");
	for (int i = 0; i < 3; i++) {
		ssize_t n = take(dg[0], buf, sizeof(buf));
		wl_expect(n == (ssize_t)dg_len[i] && !memcmp(buf, dg_q[i], dg_len[i]),
		          "dg: message %d is %zd bytes, want %zu", i, n, dg_len[i]);
	}
	talks(dg[1], dg[0], "dg");
	wl_expect(take(sq[1], buf, sizeof(buf)) == 5 && take(sq[1], buf, sizeof(buf)) == 7,
	          "sq: messages lost or merged");
	expect_eof(sq[1], "sq end 1");
	talks(sq[1], sq[0], "sq (the other way)");
	expect_bytes(half, "twenty bytes of data", 20, "half");
	expect_eof(half, "half");
	expect_bytes(self_a, "seven!!", 7, "self");
	talks(self_a, self_c, "self");
}

int main(int argc, char **argv)
{
	uint64_t n = 0, seed = wl_opt(argc, argv, "--seed", 1);
	wl_init("socketpair");
	setup(seed, (int)wl_opt(argc, argv, "--scm", 0));
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	verify();
	wl_finish(!wl_failures(), n, "st=%zu/%zu %s", st0_len, st1_len, wl_first_failure());
}
