/*
 * Multicast groups a datagram socket joined. The kernel lists them per
 * socket nowhere (not in fdinfo, sock_diag or a getsockopt); what it does
 * give: every group joined in the network namespace, per interface, in
 * /proc/net/igmp and /proc/net/igmp6, and, for one group and interface,
 * whether this socket joined it and with which source filter: getsockopt
 * MCAST_MSFILTER answers EADDRNOTAVAIL for a socket without that
 * membership. So each listed (group, interface) is asked of each
 * datagram socket, during the freeze, only for such sockets.
 *
 * An IPv4 membership without a source filter travels as a socket option
 * the restore sets again (IP_ADD_MEMBERSHIP with a struct ip_mreqn, which
 * fits an option's 16 bytes). IPv6 memberships and source filters are
 * refused by name.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "agent.h"

/* The socket's filter for group on ifindex: 1 joined (mode, sources), 0 not. */
static int joined(int fd, int level, int ifindex, const void *group, size_t glen,
                  struct group_filter *gf)
{
	socklen_t len = sizeof(*gf);
	memset(gf, 0, sizeof(*gf));
	gf->gf_interface = (uint32_t)ifindex;
	memcpy(&gf->gf_group, group, glen);
	gf->gf_numsrc = 0;
	return getsockopt(fd, level, MCAST_MSFILTER, gf, &len) == 0;
}

static void join_v4(struct cs_capture *c, struct cs_image_fd *f, int ifindex, uint32_t group)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = group};
	struct group_filter gf;
	if (!joined(f->fd, IPPROTO_IP, ifindex, &sin, sizeof(sin), &gf))
		return;
	if (gf.gf_fmode != MCAST_EXCLUDE || gf.gf_numsrc) {
		cs_fd_unsupported(c, f, "a multicast group joined with a source filter");
		return;
	}
	if (f->n_sockopts == CS_IMAGE_SOCKOPTS_MAX) {
		cs_fd_unsupported(c, f,
		                  "more socket options and multicast groups than an image "
		                  "holds");
		return;
	}
	struct ip_mreqn m = {.imr_multiaddr.s_addr = group, .imr_ifindex = ifindex};
	struct cs_image_sockopt *o = &f->sockopts[f->n_sockopts++];
	o->level = IPPROTO_IP;
	o->name = IP_ADD_MEMBERSHIP;
	o->len = sizeof(m);
	memcpy(o->val, &m, sizeof(m));
}

/* /proc/net/igmp: "Idx\tDevice : ..." lines, then "\t\t\t\tGROUP ..." lines
 * of that interface (GROUP: the address's bytes as a host-order hex). */
static void groups_v4(struct cs_capture *c, struct cs_image_fd *f, const char *p)
{
	uint64_t ifindex = 0, group;
	for (; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (*p >= '0' && *p <= '9') {
			cs_parse_u64(&p, &ifindex, 10);
			continue;
		}
		while (*p == '\t' || *p == ' ')
			p++;
		if (ifindex && !cs_parse_u64(&p, &group, 16) && *p == ' ' &&
		    f->type != CS_FD_UNSUPPORTED)
			join_v4(c, f, (int)ifindex, (uint32_t)group);
	}
}

/* /proc/net/igmp6: "IDX DEVICE GROUP(32 hex) USERS ..." per line. */
static void groups_v6(struct cs_capture *c, struct cs_image_fd *f, const char *p)
{
	for (; p && *p && f->type != CS_FD_UNSUPPORTED; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		uint64_t ifindex, half;
		struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
		struct group_filter gf;
		if (cs_parse_u64(&p, &ifindex, 10))
			continue;
		while (*p == ' ')
			p++;
		while (*p && *p != ' ') /* the device name */
			p++;
		while (*p == ' ')
			p++;
		for (int i = 0; i < 16; i++) {
			char byte[3] = {p[2 * i], p[2 * i + 1], 0};
			const char *b = byte;
			if (!byte[0] || !byte[1] || cs_parse_u64(&b, &half, 16))
				break;
			sin6.sin6_addr.s6_addr[i] = (uint8_t)half;
		}
		if (joined(f->fd, IPPROTO_IPV6, (int)ifindex, &sin6, sizeof(sin6), &gf))
			cs_fd_unsupported(c, f, "an IPv6 multicast group joined (not restored)");
	}
}

void cs_socket_multicast(struct cs_capture *c, struct cs_image_fd *f)
{
	char buf[16384];
	if (f->sock_type != SOCK_DGRAM || (f->family != AF_INET && f->family != AF_INET6))
		return;
	if (cs_read_file("/proc/net/igmp", buf, sizeof(buf)) > 0)
		groups_v4(c, f, buf);
	if (f->family == AF_INET6 && f->type != CS_FD_UNSUPPORTED &&
	    cs_read_file("/proc/net/igmp6", buf, sizeof(buf)) > 0)
		groups_v6(c, f, buf);
}
