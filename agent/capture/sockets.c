/*
 * Sockets, captured in the parent during the freeze: family, type, state,
 * addresses and the options that differ from a fresh socket of the same
 * kind. What a restore recreates:
 *   listening            bound and listening again (queued connections are
 *                        the dead kernel's: their clients see a reset)
 *   datagram             bound again if bound, connected again if connected
 *   stream, never used   bound again if bound (TCP, unix stream/seqpacket)
 *   stream connection    a socket that reports a reset (it cannot move)
 * and what it refuses, at checkpoint, by fd: other families and protocols,
 * a TCP connect in progress, an eBPF socket filter (a classic one is kept).
 */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"

/* tcpi_state values (include/net/tcp_states.h) */
enum { TCP_STATE_SYN_SENT = 2, TCP_STATE_CLOSE = 7 };

#ifndef SO_GET_FILTER
#define SO_GET_FILTER 26
#endif

/* Options worth keeping, for the families they apply to (0: any). */
static const struct {
	int family, stream_only, level, name;
} options[] = {
    {0, 0, SOL_SOCKET, SO_REUSEADDR},
    {0, 0, SOL_SOCKET, SO_REUSEPORT},
    {0, 0, SOL_SOCKET, SO_KEEPALIVE},
    {0, 0, SOL_SOCKET, SO_LINGER},
    {0, 0, SOL_SOCKET, SO_PRIORITY},
    {0, 0, SOL_SOCKET, SO_BROADCAST},
    {0, 0, SOL_SOCKET, SO_RCVBUF},
    {0, 0, SOL_SOCKET, SO_SNDBUF},
    {0, 0, SOL_SOCKET, SO_RCVLOWAT},
    {0, 0, SOL_SOCKET, SO_OOBINLINE},
    {0, 0, SOL_SOCKET, SO_MARK},
    {0, 0, SOL_SOCKET, SO_BINDTODEVICE},
    {0, 0, SOL_SOCKET, SO_PASSCRED},
    {0, 0, SOL_SOCKET, SO_RCVTIMEO},
    {0, 0, SOL_SOCKET, SO_SNDTIMEO},
    {0, 0, SOL_SOCKET, SO_TIMESTAMP},
    {AF_INET, 0, IPPROTO_IP, IP_TOS},
    {AF_INET, 0, IPPROTO_IP, IP_TTL},
    {AF_INET, 0, IPPROTO_IP, IP_MULTICAST_TTL},
    {AF_INET, 0, IPPROTO_IP, IP_MULTICAST_LOOP},
    {AF_INET, 0, IPPROTO_IP, IP_FREEBIND},
    {AF_INET, 0, IPPROTO_IP, IP_PKTINFO},
    {AF_INET, 0, IPPROTO_IP, IP_MTU_DISCOVER},
    {AF_INET, 0, IPPROTO_IP, IP_RECVERR},
    {AF_INET6, 0, IPPROTO_IPV6, IPV6_V6ONLY},
    {AF_INET6, 0, IPPROTO_IPV6, IPV6_TCLASS},
    {AF_INET6, 0, IPPROTO_IPV6, IPV6_UNICAST_HOPS},
    {AF_INET6, 0, IPPROTO_IPV6, IPV6_MULTICAST_HOPS},
    {AF_INET6, 0, IPPROTO_IPV6, IPV6_RECVPKTINFO},
    {-1, 1, IPPROTO_TCP, TCP_NODELAY},
    {-1, 1, IPPROTO_TCP, TCP_KEEPIDLE},
    {-1, 1, IPPROTO_TCP, TCP_KEEPINTVL},
    {-1, 1, IPPROTO_TCP, TCP_KEEPCNT},
    {-1, 1, IPPROTO_TCP, TCP_USER_TIMEOUT},
    {-1, 1, IPPROTO_TCP, TCP_CORK},
    {-1, 1, IPPROTO_TCP, TCP_DEFER_ACCEPT},
    {-1, 1, IPPROTO_TCP, TCP_NOTSENT_LOWAT},
    {-1, 1, IPPROTO_TCP, TCP_FASTOPEN},
    {-1, 1, IPPROTO_TCP, TCP_CONGESTION},
};

static int is_inet(int family)
{
	return family == AF_INET || family == AF_INET6;
}

static int applies(int i, const struct cs_image_fd *f)
{
	if (options[i].family == -1) /* TCP */
		return is_inet(f->family) && f->sock_type == SOCK_STREAM;
	return !options[i].family || options[i].family == f->family;
}

static int get_opt(int fd, int i, uint8_t *val, socklen_t *len)
{
	*len = CS_IMAGE_SOCKOPT_LEN;
	memset(val, 0, CS_IMAGE_SOCKOPT_LEN);
	return getsockopt(fd, options[i].level, options[i].name, val, len);
}

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))
#define N_KINDS   8

/* The options of a new socket of one kind, read once (a new socket and
 * forty getsockopt calls per socket fd would lengthen every freeze). */
struct defaults {
	int family, type, protocol, valid;
	uint8_t len[N_OPTIONS]; /* 0xff: unreadable */
	uint8_t val[N_OPTIONS][CS_IMAGE_SOCKOPT_LEN];
};
static struct defaults kinds[N_KINDS];

/* After a restore: the defaults may be another host's (sysctls). */
void cs_sockets_reset(void)
{
	memset(kinds, 0, sizeof(kinds));
}

static const struct defaults *defaults_of(const struct cs_image_fd *f)
{
	struct defaults *d = NULL;
	for (int k = 0; k < N_KINDS && !d; k++)
		if (!kinds[k].valid ||
		    (kinds[k].family == f->family && kinds[k].type == f->sock_type &&
		     kinds[k].protocol == f->protocol))
			d = &kinds[k];
	if (!d)
		return NULL;
	if (d->valid)
		return d;
	int fresh = socket(f->family, f->sock_type | SOCK_CLOEXEC, f->protocol);
	if (fresh < 0)
		return NULL;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		socklen_t len;
		d->len[i] = get_opt(fresh, (int)i, d->val[i], &len) || len > CS_IMAGE_SOCKOPT_LEN
		                ? 0xff
		                : (uint8_t)len;
	}
	close(fresh);
	d->family = f->family, d->type = f->sock_type, d->protocol = f->protocol;
	d->valid = 1;
	return d;
}

/* Every option whose value differs from a new socket's (all of them if no
 * new socket can be made here). */
static void sock_options(struct cs_capture *c, struct cs_image_fd *f)
{
	const struct defaults *d = defaults_of(f);
	for (size_t i = 0; i < N_OPTIONS; i++) {
		uint8_t val[CS_IMAGE_SOCKOPT_LEN];
		socklen_t len;
		if (!applies((int)i, f) || get_opt(f->fd, (int)i, val, &len) ||
		    len > CS_IMAGE_SOCKOPT_LEN)
			continue;
		if (d && d->len[i] == len && !memcmp(val, d->val[i], len))
			continue;
		if (f->n_sockopts == CS_IMAGE_SOCKOPTS_MAX) {
			cs_fd_unsupported(c, f, "more socket options set than an image holds");
			break;
		}
		struct cs_image_sockopt *o = &f->sockopts[f->n_sockopts++];
		o->level = options[i].level;
		o->name = options[i].name;
		o->len = len;
		memcpy(o->val, val, len);
	}
}

static int sockopt_int(int fd, int level, int name)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return getsockopt(fd, level, name, &v, &len) ? -1 : v;
}

/* The classic filter attached, into the fd pool (filter holds its pool
 * offset until cs_fds_capture makes it a pointer). SO_GET_FILTER counts in
 * instructions of 8 bytes; an eBPF filter cannot be read back (EACCES). */
static void sock_filter(struct cs_capture *c, struct cs_image_fd *f)
{
	socklen_t n = 0;
	if (getsockopt(f->fd, SOL_SOCKET, SO_GET_FILTER, NULL, &n)) {
		cs_fd_unsupported(c, f,
		                  "an eBPF socket filter is attached (SO_ATTACH_BPF), which "
		                  "cannot be read back");
		return;
	}
	if (n == 0)
		return;
	if ((size_t)n * 8 > CS_IMAGE_FILTER_MAX || cs_fd_pool_reserve(c, (size_t)n * 8) ||
	    getsockopt(f->fd, SOL_SOCKET, SO_GET_FILTER, c->fd_pool + c->fd_pool_len, &n)) {
		cs_fd_unsupported(c, f, "its socket filter cannot be read");
		return;
	}
	f->filter = (const uint8_t *)(uintptr_t)c->fd_pool_len;
	f->filter_len = (uint32_t)n * 8;
	c->fd_pool_len += f->filter_len;
	f->filter_locked = sockopt_int(f->fd, SOL_SOCKET, SO_LOCK_FILTER) > 0;
}

/* A TCP socket without a peer: never connected (nothing sent, closed), a
 * connect in progress, or a connection that is over. */
static void tcp_unconnected(struct cs_capture *c, struct cs_image_fd *f)
{
	struct tcp_info ti;
	socklen_t tl = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(f->fd, IPPROTO_TCP, TCP_INFO, &ti, &tl)) {
		cs_fd_unsupported(c, f, "TCP_INFO unreadable");
		return;
	}
	if (ti.tcpi_state == TCP_STATE_SYN_SENT)
		cs_fd_unsupported(c, f, "TCP connect in progress");
	else if (ti.tcpi_state == TCP_STATE_CLOSE && ti.tcpi_segs_out == 0)
		f->type = CS_FD_SOCKET_STREAM;
	else
		f->type = CS_FD_SOCKET_CONNECTED; /* its connection is over: reset */
}

/* The mode of a bound unix socket's file: bind creates it after umask. */
static void unix_file_mode(struct cs_image_fd *f)
{
	const struct sockaddr_un *su = (const void *)f->local_addr;
	struct stat st;
	if (f->local_len > sizeof(sa_family_t) && su->sun_path[0] && f->local_len < sizeof(*su) &&
	    stat(su->sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		f->file_mode = st.st_mode & 07777;
}

static int kind_ok(const struct cs_image_fd *f)
{
	if (f->family == AF_UNIX)
		return f->sock_type == SOCK_STREAM || f->sock_type == SOCK_DGRAM ||
		       f->sock_type == SOCK_SEQPACKET;
	if (!is_inet(f->family))
		return 0;
	return (f->sock_type == SOCK_STREAM && f->protocol == IPPROTO_TCP) ||
	       (f->sock_type == SOCK_DGRAM && f->protocol == IPPROTO_UDP);
}

/* One sock_diag socket for all the queries of a capture (opened after the
 * fds were listed, closed by cs_sockets_done). */
static int diag_fd = -1;

void cs_sockets_done(void)
{
	if (diag_fd >= 0)
		close(diag_fd);
	diag_fd = -1;
}

/* The peer's inode and the shutdown state of the unix socket with inode
 * ino, from sock_diag: nothing else names the other end of a socketpair. */
static int unix_peer(uint64_t ino, uint64_t *peer, uint32_t *shut)
{
	struct {
		struct nlmsghdr h;
		struct unix_diag_req r;
	} req = {.h = {.nlmsg_len = sizeof(req),
	               .nlmsg_type = SOCK_DIAG_BY_FAMILY,
	               .nlmsg_flags = NLM_F_REQUEST},
	         .r = {.sdiag_family = AF_UNIX,
	               .udiag_states = ~0u,
	               .udiag_ino = (uint32_t)ino,
	               .udiag_show = UDIAG_SHOW_PEER,
	               .udiag_cookie = {~0u, ~0u}}};
	uint32_t buf[2048];
	if (diag_fd < 0)
		diag_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	int nl = diag_fd;
	ssize_t n =
	    nl < 0 || send(nl, &req, sizeof(req), 0) < 0 ? -1 : recv(nl, buf, sizeof(buf), 0);
	const struct nlmsghdr *h = (const void *)buf;
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct unix_diag_msg)) || !NLMSG_OK(h, (size_t)n) ||
	    h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
		return -1;
	int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(struct unix_diag_msg)));
	const struct rtattr *a =
	    (const void *)((const char *)NLMSG_DATA(h) + sizeof(struct unix_diag_msg));
	*peer = 0;
	*shut = 0;
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == UNIX_DIAG_PEER)
			*peer = *(const uint32_t *)RTA_DATA(a);
		else if (a->rta_type == UNIX_DIAG_SHUTDOWN)
			*shut = *(const uint8_t *)RTA_DATA(a);
	}
	return 0;
}

/* A unix socket with a peer that is not a named datagram socket: a
 * socketpair end if its peer is in the process too (fds.c checks), or gone. */
static void unix_connected(struct cs_image_fd *f)
{
	struct stat st;
	f->type = CS_FD_SOCKET_CONNECTED;
	if (fstat(f->fd, &st) || unix_peer(st.st_ino, &f->peer_id, &f->shutdown))
		return;
	f->type = CS_FD_SOCKETPAIR;
	f->pipe_id = st.st_ino;
}

static void sock_state(struct cs_capture *c, struct cs_image_fd *f, int connected)
{
	if (sockopt_int(f->fd, SOL_SOCKET, SO_ACCEPTCONN) > 0) {
		f->type = CS_FD_SOCKET_LISTEN;
		f->backlog = 128;
		struct tcp_info ti; /* for a listener, tcpi_sacked is sk_max_ack_backlog */
		socklen_t tl = sizeof(ti);
		if (is_inet(f->family) && getsockopt(f->fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0)
			f->backlog = (int32_t)ti.tcpi_sacked;
	} else if (f->sock_type == SOCK_DGRAM) {
		/* a unix datagram socket connected to an unnamed peer (a
		 * socketpair) cannot be connected again by address */
		int unnamed = f->family == AF_UNIX && f->remote_len <= sizeof(sa_family_t);
		f->type = CS_FD_SOCKET_DGRAM;
		if (!connected)
			f->remote_len = 0;
		else if (unnamed)
			unix_connected(f);
	} else if (connected && f->family == AF_UNIX) {
		unix_connected(f);
	} else if (connected) {
		f->type = CS_FD_SOCKET_CONNECTED;
	} else if (f->family == AF_UNIX) {
		f->type = CS_FD_SOCKET_STREAM;
	} else {
		tcp_unconnected(c, f);
	}
}

void cs_socket_capture(struct cs_capture *c, struct cs_image_fd *f)
{
	socklen_t len = CS_IMAGE_ADDR_MAX;
	f->family = sockopt_int(f->fd, SOL_SOCKET, SO_DOMAIN);
	f->sock_type = sockopt_int(f->fd, SOL_SOCKET, SO_TYPE);
	f->protocol = sockopt_int(f->fd, SOL_SOCKET, SO_PROTOCOL);
	if (!kind_ok(f)) {
		cs_fd_unsupported(c, f,
		                  f->family == AF_NETLINK  ? "netlink socket"
		                  : f->family == AF_PACKET ? "packet socket"
		                  : is_inet(f->family)     ? "socket type or protocol other than "
		                                             "TCP and UDP"
		                                           : "socket family");
		return;
	}
	if (getsockname(f->fd, (struct sockaddr *)f->local_addr, &len) == 0)
		f->local_len = len < CS_IMAGE_ADDR_MAX ? len : CS_IMAGE_ADDR_MAX;
	len = CS_IMAGE_ADDR_MAX;
	int connected = getpeername(f->fd, (struct sockaddr *)f->remote_addr, &len) == 0;
	if (connected)
		f->remote_len = len < CS_IMAGE_ADDR_MAX ? len : CS_IMAGE_ADDR_MAX;
	/* The options a port check needs before it binds (CS_SOCK_*); the
	 * others travel in sockopts. */
	f->sock_options =
	    (sockopt_int(f->fd, SOL_SOCKET, SO_REUSEADDR) > 0 ? CS_SOCK_REUSEADDR : 0) |
	    (sockopt_int(f->fd, SOL_SOCKET, SO_REUSEPORT) > 0 ? CS_SOCK_REUSEPORT : 0) |
	    (f->family == AF_INET6 && sockopt_int(f->fd, IPPROTO_IPV6, IPV6_V6ONLY) > 0
	         ? CS_SOCK_V6ONLY
	         : 0);
	sock_state(c, f, connected);
	if (f->type == CS_FD_UNSUPPORTED || f->type == CS_FD_SOCKET_CONNECTED)
		return;
	sock_filter(c, f);
	if (f->family == AF_UNIX)
		unix_file_mode(f);
	sock_options(c, f);
	cs_socket_multicast(c, f);
}

/*
 * An empty peek of a seqpacket queue is an empty message or the end. It is
 * the end when the receiving side is shut down now and nothing is queued
 * past the bytes peeked: the peer may have closed after sock_diag was asked
 * (a daemon closing a sync connection it has answered while the agent
 * peeks), so f->shutdown can be stale. Empty messages left before such an
 * end read as the end does (0, then 0 again): nothing a reader could see
 * is lost by taking them as it.
 */
static int seqpacket_ended(struct cs_image_fd *f, size_t peeked)
{
	struct pollfd p = {.fd = f->fd, .events = POLLRDHUP};
	int inq = -1;
	if (f->sock_type != SOCK_SEQPACKET || poll(&p, 1, 0) != 1 || !(p.revents & POLLRDHUP) ||
	    ioctl(f->fd, SIOCINQ, &inq) || inq < 0 || (size_t)inq != peeked)
		return 0;
	f->shutdown |= 1;
	return 1;
}

/* Puts msg into the pool: a whole message (datagram, seqpacket) with its
 * length first, or stream bytes as they are. 0, or the reason it cannot.
 * *peeked counts the bytes of the messages, without their lengths. */
static const char *peek_once(struct cs_capture *c, struct cs_image_fd *f, int framed,
                             size_t *peeked, int *done)
{
	const size_t chunk = 256u << 10;
	if (cs_fd_pool_reserve(c, chunk + 4))
		return "no memory for its queued bytes";
	uint8_t *at = c->fd_pool + c->fd_pool_len + (framed ? 4 : 0);
	struct iovec io = {at, chunk};
	struct msghdr mh = {.msg_iov = &io, .msg_iovlen = 1}; /* no control: fds stay queued */
	ssize_t n = recvmsg(f->fd, &mh, MSG_PEEK | MSG_DONTWAIT | (framed ? MSG_TRUNC : 0));
	/* 0 is the end of a stream, or of a queue whose receiving side is shut
	 * down; otherwise an empty message, which a peek offset cannot pass */
	*done = n < 0 || (n == 0 && (!framed || (f->shutdown & 1) || seqpacket_ended(f, *peeked)));
	if (*done)
		return n < 0 && errno != EAGAIN ? "its queue is unreadable" : NULL;
	if (mh.msg_flags & MSG_CTRUNC)
		return "queued messages carry SCM_RIGHTS or credentials";
	if ((size_t)n > chunk || (framed && n == 0))
		return "a queued message larger than 256 KiB, or empty";
	if (f->pipe_data_len + (size_t)n + 4 > CS_IMAGE_PIPE_DATA_MAX)
		return "more than 1 MiB queued";
	if (framed) {
		uint32_t len = (uint32_t)n;
		memcpy(at - 4, &len, 4);
	}
	size_t used = (size_t)n + (framed ? 4 : 0);
	c->fd_pool_len += used;
	f->pipe_data_len += (uint32_t)used;
	*peeked += (size_t)n;
	return NULL;
}

/* The receive queue of a socketpair end, read with MSG_PEEK from peek
 * offset 0 (SO_PEEK_OFF walks it without consuming; the program's own
 * offset is put back). */
void cs_socket_queue(struct cs_capture *c, struct cs_image_fd *f)
{
	int old = -1, zero = 0, done = 0;
	size_t peeked = 0;
	socklen_t len = sizeof(old);
	const char *why = NULL;
	getsockopt(f->fd, SOL_SOCKET, SO_PEEK_OFF, &old, &len);
	if (setsockopt(f->fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)))
		why = "its queue cannot be peeked";
	f->pipe_data = (const uint8_t *)(uintptr_t)c->fd_pool_len; /* an offset until the end */
	while (!why && !done)
		why = peek_once(c, f, f->sock_type != SOCK_STREAM, &peeked, &done);
	setsockopt(f->fd, SOL_SOCKET, SO_PEEK_OFF, &old, sizeof(old));
	if (why)
		cs_fd_unsupported(c, f, why);
}
