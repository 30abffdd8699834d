/*
 * sockets: each socket by its real type and state, with its options.
 *
 *   udp_srv   UDP bound to 127.0.0.1:<free>, SO_BROADCAST, SO_RCVBUF 96 KiB,
 *             IP_TOS 0x10, then SO_PRIORITY 3; a classic filter that cuts
 *             datagrams to 3 bytes, locked (SO_LOCK_FILTER)
 *   udp_cli   UDP connected to udp_srv (its port chosen by connect)
 *   lis       TCP listening on 127.0.0.1:<free>
 *   tcp_idle  TCP never connected, never bound: TCP_NODELAY, SO_KEEPALIVE,
 *             SO_LINGER {1, 5}, TCP_KEEPIDLE 77, SO_SNDBUF 64 KiB
 *   tcp_bound TCP bound to 127.0.0.1:<free>, never connected
 *   un_lis    unix stream listener on DIR/lis, file mode 0640
 *   un_idle   unix stream socket never connected
 *   un_dgram  unix datagram socket bound to DIR/dgram
 *   --ebpf 1: one more UDP socket with an eBPF filter (SO_ATTACH_BPF), which
 *             cannot be read back and which checksync refuses at checkpoint
 *
 * DIR is the directory of $CR_RESULT (the harness's work directory).
 * At verify each socket must still be of its type and state with its
 * options, and work as such: datagrams both ways between udp_cli and
 * udp_srv; tcp_idle connects to lis; tcp_bound keeps its port and can
 * listen; un_idle connects to un_lis; a datagram reaches un_dgram.
 */
#include "wl_common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static int udp_srv, udp_cli, lis, tcp_idle, tcp_bound, un_lis, un_idle, un_dgram;
static struct sockaddr_in srv_addr, cli_addr, lis_addr, bound_addr;
static struct sockaddr_un un_lis_addr, un_dgram_addr;

static int sock(int family, int type)
{
	int s = socket(family, type, 0);
	if (s < 0)
		wl_die("socket");
	return s;
}

static void set_int(int s, int level, int name, int v)
{
	if (setsockopt(s, level, name, &v, sizeof(v)))
		wl_die("setsockopt");
}

static int get_int(int s, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);
	getsockopt(s, level, name, &v, &len);
	return v;
}

static void local(int s, struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);
	if (getsockname(s, (struct sockaddr *)sa, &len))
		wl_die("getsockname");
}

static void bind_loopback(int s, struct sockaddr_in *sa)
{
	struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(s, (struct sockaddr *)&any, sizeof(any)))
		wl_die("bind");
	local(s, sa);
}

static void unix_addr(struct sockaddr_un *sa, const char *dir, const char *name)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", dir, name);
	unlink(sa->sun_path);
}

/* A UDP socket filters the datagram with its 8-byte header: 11 keeps 3
 * bytes of payload. */
static struct sock_filter cut_to_3[] = {BPF_STMT(BPF_RET | BPF_K, 8 + 3)};

static void attach_filter(int s)
{
	struct sock_fprog prog = {1, cut_to_3};
	int one = 1;
	if (setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) ||
	    setsockopt(s, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof(one)))
		wl_die("SO_ATTACH_FILTER");
}

/* A socket filter program that accepts everything, loaded with bpf(2). */
static void attach_ebpf(void)
{
	struct bpf_insn insns[2] = {{.code = BPF_ALU64 | BPF_MOV | BPF_K, .imm = -1},
	                            {.code = BPF_JMP | BPF_EXIT}};
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = (uintptr_t)insns;
	a.insn_cnt = 2;
	a.license = (uintptr_t) "GPL";
	int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof(a));
	int s = sock(AF_INET, SOCK_DGRAM);
	if (prog < 0 || setsockopt(s, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof(prog)))
		wl_die("SO_ATTACH_BPF");
}

static void setup_inet(int ebpf)
{
	udp_srv = sock(AF_INET, SOCK_DGRAM);
	set_int(udp_srv, SOL_SOCKET, SO_BROADCAST, 1);
	set_int(udp_srv, SOL_SOCKET, SO_RCVBUF, 96 << 10);
	/* IP_TOS sets the priority too (to 6 for this TOS): a restore that
	 * sets them in the other order loses SO_PRIORITY */
	set_int(udp_srv, IPPROTO_IP, IP_TOS, 0x10);
	set_int(udp_srv, SOL_SOCKET, SO_PRIORITY, 3);
	bind_loopback(udp_srv, &srv_addr);
	attach_filter(udp_srv);
	if (ebpf)
		attach_ebpf();
	udp_cli = sock(AF_INET, SOCK_DGRAM);
	if (connect(udp_cli, (struct sockaddr *)&srv_addr, sizeof(srv_addr)))
		wl_die("connect udp");
	local(udp_cli, &cli_addr);
	lis = sock(AF_INET, SOCK_STREAM);
	bind_loopback(lis, &lis_addr);
	if (listen(lis, 8))
		wl_die("listen");
	tcp_idle = sock(AF_INET, SOCK_STREAM);
	struct linger lg = {1, 5};
	set_int(tcp_idle, IPPROTO_TCP, TCP_NODELAY, 1);
	set_int(tcp_idle, SOL_SOCKET, SO_KEEPALIVE, 1);
	set_int(tcp_idle, IPPROTO_TCP, TCP_KEEPIDLE, 77);
	set_int(tcp_idle, SOL_SOCKET, SO_SNDBUF, 64 << 10);
	if (setsockopt(tcp_idle, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)))
		wl_die("SO_LINGER");
	tcp_bound = sock(AF_INET, SOCK_STREAM);
	bind_loopback(tcp_bound, &bound_addr);
}

static void setup_unix(const char *dir)
{
	un_lis = sock(AF_UNIX, SOCK_STREAM);
	unix_addr(&un_lis_addr, dir, "lis");
	if (bind(un_lis, (struct sockaddr *)&un_lis_addr, sizeof(un_lis_addr)) ||
	    chmod(un_lis_addr.sun_path, 0640) || listen(un_lis, 4))
		wl_die("unix listener");
	un_idle = sock(AF_UNIX, SOCK_STREAM);
	un_dgram = sock(AF_UNIX, SOCK_DGRAM);
	unix_addr(&un_dgram_addr, dir, "dgram");
	if (bind(un_dgram, (struct sockaddr *)&un_dgram_addr, sizeof(un_dgram_addr)))
		wl_die("unix dgram");
}

static void check_udp(void)
{
	struct sockaddr_in peer, me;
	socklen_t len = sizeof(peer);
	char buf[32];
	wl_expect(get_int(udp_cli, SOL_SOCKET, SO_DOMAIN) == AF_INET &&
	              get_int(udp_cli, SOL_SOCKET, SO_TYPE) == SOCK_DGRAM,
	          "udp_cli: family %d type %d, want AF_INET SOCK_DGRAM",
	          get_int(udp_cli, SOL_SOCKET, SO_DOMAIN), get_int(udp_cli, SOL_SOCKET, SO_TYPE));
	wl_expect(getpeername(udp_cli, (struct sockaddr *)&peer, &len) == 0 &&
	              peer.sin_port == srv_addr.sin_port,
	          "udp_cli: not connected to udp_srv any more (%s)", strerror(errno));
	local(udp_cli, &me);
	wl_expect(me.sin_port == cli_addr.sin_port, "udp_cli: port %d, was %d", ntohs(me.sin_port),
	          ntohs(cli_addr.sin_port));
	local(udp_srv, &me);
	wl_expect(me.sin_port == srv_addr.sin_port, "udp_srv: port %d, was %d", ntohs(me.sin_port),
	          ntohs(srv_addr.sin_port));
	wl_expect(send(udp_cli, "ping", 4, 0) == 4, "udp_cli: send: %s", strerror(errno));
	ssize_t n =
	    recvfrom(udp_srv, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&peer, &len);
	if (n < 0) { /* loopback delivery is immediate, but give it a moment */
		wl_sleep_ms(100);
		n = recvfrom(udp_srv, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&peer,
		             &len);
	}
	wl_expect(n == 3 && peer.sin_port == cli_addr.sin_port,
	          "udp_srv: got %zd bytes from %d, want 3 (its filter cuts them)", n,
	          ntohs(peer.sin_port));
	socklen_t blocks = 0;
	getsockopt(udp_srv, SOL_SOCKET, SO_GET_FILTER, NULL, &blocks);
	wl_expect(blocks == 1 && get_int(udp_srv, SOL_SOCKET, SO_LOCK_FILTER) == 1,
	          "udp_srv: filter of %u instructions, locked %d", (unsigned)blocks,
	          get_int(udp_srv, SOL_SOCKET, SO_LOCK_FILTER));
	sendto(udp_srv, "pong", 4, 0, (struct sockaddr *)&cli_addr, sizeof(cli_addr));
	wl_sleep_ms(20);
	n = recv(udp_cli, buf, sizeof(buf), MSG_DONTWAIT);
	wl_expect(n == 4, "udp_cli: reply: %zd (%s)", n, n < 0 ? strerror(errno) : "");
	wl_expect(get_int(udp_srv, SOL_SOCKET, SO_BROADCAST) == 1, "udp_srv: SO_BROADCAST lost");
	wl_expect(get_int(udp_srv, SOL_SOCKET, SO_PRIORITY) == 3, "udp_srv: SO_PRIORITY %d",
	          get_int(udp_srv, SOL_SOCKET, SO_PRIORITY));
	wl_expect(get_int(udp_srv, SOL_SOCKET, SO_RCVBUF) == 2 * (96 << 10),
	          "udp_srv: SO_RCVBUF %d", get_int(udp_srv, SOL_SOCKET, SO_RCVBUF));
	wl_expect(get_int(udp_srv, IPPROTO_IP, IP_TOS) == 0x10, "udp_srv: IP_TOS %#x",
	          get_int(udp_srv, IPPROTO_IP, IP_TOS));
}

static void check_tcp(void)
{
	struct sockaddr_in sa;
	struct linger lg = {0, 0};
	socklen_t len = sizeof(lg);
	getsockopt(tcp_idle, SOL_SOCKET, SO_LINGER, &lg, &len);
	wl_expect(lg.l_onoff == 1 && lg.l_linger == 5, "tcp_idle: SO_LINGER {%d, %d}", lg.l_onoff,
	          lg.l_linger);
	wl_expect(get_int(tcp_idle, IPPROTO_TCP, TCP_NODELAY) == 1, "tcp_idle: TCP_NODELAY lost");
	wl_expect(get_int(tcp_idle, SOL_SOCKET, SO_KEEPALIVE) == 1, "tcp_idle: SO_KEEPALIVE lost");
	wl_expect(get_int(tcp_idle, IPPROTO_TCP, TCP_KEEPIDLE) == 77, "tcp_idle: TCP_KEEPIDLE %d",
	          get_int(tcp_idle, IPPROTO_TCP, TCP_KEEPIDLE));
	wl_expect(get_int(tcp_idle, SOL_SOCKET, SO_SNDBUF) == 2 * (64 << 10),
	          "tcp_idle: SO_SNDBUF %d", get_int(tcp_idle, SOL_SOCKET, SO_SNDBUF));
	len = sizeof(sa);
	wl_expect(getpeername(tcp_idle, (struct sockaddr *)&sa, &len) < 0 && errno == ENOTCONN,
	          "tcp_idle: getpeername: %s, want ENOTCONN", strerror(errno));
	wl_expect(connect(tcp_idle, (struct sockaddr *)&lis_addr, sizeof(lis_addr)) == 0,
	          "tcp_idle: connect to the listener: %s", strerror(errno));
	int a = accept(lis, NULL, NULL);
	wl_expect(a >= 0, "lis: accept: %s", strerror(errno));
	local(tcp_bound, &sa);
	wl_expect(sa.sin_port == bound_addr.sin_port, "tcp_bound: port %d, was %d",
	          ntohs(sa.sin_port), ntohs(bound_addr.sin_port));
	wl_expect(listen(tcp_bound, 1) == 0, "tcp_bound: listen: %s", strerror(errno));
}

static void check_unix(void)
{
	struct stat st = {0};
	wl_expect(stat(un_lis_addr.sun_path, &st) == 0 && (st.st_mode & 07777) == 0640,
	          "un_lis: file mode %o, want 640", st.st_mode & 07777);
	wl_expect(connect(un_idle, (struct sockaddr *)&un_lis_addr, sizeof(un_lis_addr)) == 0,
	          "un_idle: connect to un_lis: %s", strerror(errno));
	wl_expect(accept(un_lis, NULL, NULL) >= 0, "un_lis: accept: %s", strerror(errno));
	int s = sock(AF_UNIX, SOCK_DGRAM);
	char buf[8];
	wl_expect(sendto(s, "dg", 2, 0, (struct sockaddr *)&un_dgram_addr, sizeof(un_dgram_addr)) ==
	              2,
	          "un_dgram: sendto: %s", strerror(errno));
	wl_expect(recv(un_dgram, buf, sizeof(buf), MSG_DONTWAIT) == 2, "un_dgram: recv: %s",
	          strerror(errno));
	unlink(un_lis_addr.sun_path);
	unlink(un_dgram_addr.sun_path);
}

int main(int argc, char **argv)
{
	uint64_t n = 0;
	wl_init("sockets");
	setup_inet((int)wl_opt(argc, argv, "--ebpf", 0));
	setup_unix(wl_work_dir());
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	check_udp();
	check_tcp();
	check_unix();
	wl_finish(!wl_failures(), n, "udp=%d tcp=%d %s", ntohs(srv_addr.sin_port),
	          ntohs(lis_addr.sin_port), wl_first_failure());
}
