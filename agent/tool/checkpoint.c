/* checksync checkpoint: ask the agent for a checkpoint, wait until durable. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../include/cs_agent_abi.h"
#include "tool.h"

static int connect_agent(const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, CS_AGENT_SOCKET_NAME) >=
	    sizeof(sa.sun_path)) {
		cs_err("%s: path too long for a Unix socket", dir);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		cs_err("no agent is running for %s (connect %s: %s)", dir, sa.sun_path,
		       strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int cs_cmd_checkpoint(int argc, char **argv)
{
	static const struct option longopts[] = {{"dir", required_argument, NULL, 'd'}, {0}};
	const char *dir = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c != 'd')
			return 2;
		dir = optarg;
	}
	if (!dir || optind != argc) {
		cs_err("usage: checksync checkpoint --dir DIR");
		return 2;
	}
	int fd = connect_agent(dir);
	if (fd < 0)
		return 1;
	static const char req[] = "checkpoint";
	char reply[CS_AGENT_REPLY_MAX + 1];
	ssize_t n = -1;
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(req) - 1)
		n = recv(fd, reply, CS_AGENT_REPLY_MAX, 0);
	close(fd);
	if (n <= 0) {
		cs_err("the agent for %s closed the connection without an answer%s%s", dir,
		       n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
		return 1;
	}
	reply[n] = 0;
	unsigned long long gen;
	if (sscanf(reply, "ok %llu", &gen) == 1) {
		printf("%llu\n", gen);
		return 0;
	}
	cs_err("checkpoint of %s failed: %s", dir, strncmp(reply, "error ", 6) ? reply : reply + 6);
	return 1;
}
