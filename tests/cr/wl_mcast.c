/*
 * mcast: a UDP socket bound to port 0 joins 239.1.2.3 on lo and 239.4.5.6
 * on lo again (two groups, one socket), a second UDP socket joins none.
 *
 * At verify the first socket must still be in both groups (getsockopt
 * MCAST_MSFILTER answers for a membership, EADDRNOTAVAIL otherwise) and
 * receive a datagram sent to 239.1.2.3 on its port through lo; the second
 * must be in no group.
 *
 * --v6 1 also joins ff02::1:3 on lo with an IPv6 socket: refused.
 */
#include "wl_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int joined_sock, plain_sock, lo;

static void join(int s, const char *group)
{
	struct ip_mreqn m = {.imr_ifindex = lo};
	inet_pton(AF_INET, group, &m.imr_multiaddr);
	if (setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)))
		wl_die("IP_ADD_MEMBERSHIP");
}

static int member(int s, const char *group)
{
	struct group_filter gf;
	struct sockaddr_in *sin = (struct sockaddr_in *)&gf.gf_group;
	socklen_t len = sizeof(gf);
	memset(&gf, 0, sizeof(gf));
	gf.gf_interface = (uint32_t)lo;
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, group, &sin->sin_addr);
	return getsockopt(s, IPPROTO_IP, MCAST_MSFILTER, &gf, &len) == 0 ? 1 : -errno;
}

static void join_v6(void)
{
	int s = socket(AF_INET6, SOCK_DGRAM, 0);
	struct ipv6_mreq m = {.ipv6mr_interface = (unsigned)lo};
	inet_pton(AF_INET6, "ff02::1:3", &m.ipv6mr_multiaddr);
	if (s < 0 || setsockopt(s, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &m, sizeof(m)))
		wl_die("IPV6_ADD_MEMBERSHIP");
}

static void verify(void)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	char buf[16] = "";
	wl_expect(member(joined_sock, "239.1.2.3") == 1 && member(joined_sock, "239.4.5.6") == 1,
	          "groups lost: 239.1.2.3 %d, 239.4.5.6 %d", member(joined_sock, "239.1.2.3"),
	          member(joined_sock, "239.4.5.6"));
	wl_expect(member(plain_sock, "239.1.2.3") == -EADDRNOTAVAIL,
	          "the second socket is in 239.1.2.3 (%d)", member(plain_sock, "239.1.2.3"));
	getsockname(joined_sock, (struct sockaddr *)&a, &alen);
	int tx = socket(AF_INET, SOCK_DGRAM, 0);
	struct ip_mreqn via = {.imr_ifindex = lo};
	setsockopt(tx, IPPROTO_IP, IP_MULTICAST_IF, &via, sizeof(via));
	inet_pton(AF_INET, "239.1.2.3", &a.sin_addr);
	sendto(tx, "hello", 5, 0, (struct sockaddr *)&a, sizeof(a));
	struct pollfd p = {.fd = joined_sock, .events = POLLIN};
	wl_expect(poll(&p, 1, 2000) == 1 && recv(joined_sock, buf, sizeof(buf), 0) == 5 &&
	              !memcmp(buf, "hello", 5),
	          "no datagram to 239.1.2.3 arrived");
	close(tx);
}

int main(int argc, char **argv)
{
	uint64_t n = 0;
	struct sockaddr_in any = {.sin_family = AF_INET};
	wl_init("mcast");
	lo = (int)if_nametoindex("lo");
	joined_sock = socket(AF_INET, SOCK_DGRAM, 0);
	plain_sock = socket(AF_INET, SOCK_DGRAM, 0);
	if (joined_sock < 0 || plain_sock < 0 || !lo ||
	    bind(joined_sock, (struct sockaddr *)&any, sizeof(any)))
		wl_die("socket");
	join(joined_sock, "239.1.2.3");
	join(joined_sock, "239.4.5.6");
	if (wl_opt(argc, argv, "--v6", 0))
		join_v6();
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	verify();
	wl_finish(!wl_failures(), n, "%s", wl_first_failure());
}
