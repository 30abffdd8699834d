/*
 * DIR/agent.sock: AF_UNIX SOCK_SEQPACKET, one ASCII request per packet,
 * one reply per request (cs_agent_abi.h has the protocol).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "golive.h"

/* sun_path holds 108 bytes; a longer DIR is reached through our fd of it. */
static int socket_path(const struct cs_agent *a, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	int n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", a->cfg.dir,
	                 CS_AGENT_SOCKET_NAME);
	if (n > 0 && (size_t)n < sizeof(sun->sun_path))
		return 0;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "/proc/self/fd/%d/%s", a->dir_fd,
	             CS_AGENT_SOCKET_NAME);
	return n > 0 && (size_t)n < sizeof(sun->sun_path) ? 0 : -ENAMETOOLONG;
}

int cs_control_open(struct cs_agent *a)
{
	struct sockaddr_un sun;
	int r = socket_path(a, &sun);
	if (r)
		return r;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlinkat(a->dir_fd, CS_AGENT_SOCKET_NAME, 0);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(fd, 8)) {
		r = -errno;
		close(fd);
		return r;
	}
	a->listen_fd = fd;
	return 0;
}

static void accept_client(struct cs_agent *a)
{
	int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) ||
	    (cred.uid != 0 && cred.uid != getuid())) {
		close(fd);
		return;
	}
	for (int i = 0; i < 8; i++) {
		if (a->client_fd[i] < 0) {
			a->client_fd[i] = fd;
			return;
		}
	}
	close(fd); /* too many clients */
}

static void drop_client(struct cs_agent *a, int fd)
{
	for (int i = 0; i < 8; i++)
		if (a->client_fd[i] == fd)
			a->client_fd[i] = -1;
	close(fd);
}

static const char *mode_name(const struct cs_agent *a)
{
	return a->mode == CS_MODE_HASH ? "hash" : "uffd";
}

static void error_reply(const struct cs_agent *a, int r, char *reply, size_t cap)
{
	if (r == -ENOTSUP)
		snprintf(reply, cap, "error generation %llu written, but %s",
		         (unsigned long long)a->last_generation, a->last_error);
	else
		snprintf(reply, cap, "error checkpoint failed: %s (%s)",
		         a->last_error[0] ? a->last_error : "unknown", strerror(-r));
	for (char *p = reply; *p; p++)
		if (*p == '\n')
			*p = ';';
}

/* The freeze signal: who took it and how often (freeze.c, docs/capture.md). */
static void status_signal(char *out, size_t cap)
{
	struct cs_sig_report r;
	uint64_t continued, cut;
	cs_freeze_sig_report(&r);
	cs_sleep_counts(&continued, &cut);
	snprintf(out, cap,
	         " signal=%d sig_takeovers=%llu sig_foreign=%#llx sig_first_takeover_ms=%lld "
	         "sig_last_takeover_ms=%lld sig_forwarded=%llu sleeps_continued=%llu "
	         "sleeps_cut=%llu",
	         r.signal, (unsigned long long)r.takeovers, (unsigned long long)r.foreign,
	         (long long)(r.first_ns / 1000000), (long long)(r.last_ns / 1000000),
	         (unsigned long long)r.forwarded, (unsigned long long)continued,
	         (unsigned long long)cut);
}

/* How often the writers read smaps for the mappings' advice (vmflags.c). */
static void status_advice(char *out, size_t cap)
{
	uint64_t reads, reused;
	cs_vmflags_counts(&reads, &reused);
	snprintf(out, cap, " smaps_reads=%llu smaps_reused=%llu", (unsigned long long)reads,
	         (unsigned long long)reused);
}

/* The pause histogram (cs_agent_abi.h): bound:count pairs, so a reader
 * built with other bounds still places every count. */
static void status_pauses(const struct cs_agent *a, char *out, size_t cap)
{
	static const uint64_t bounds_us[CS_AGENT_PAUSE_BUCKETS] = CS_AGENT_PAUSE_BOUNDS_US;
	size_t n = (size_t)snprintf(out, cap, " pause_count=%llu pause_sum_us=%llu pause_le_us=",
	                            (unsigned long long)a->pause_count,
	                            (unsigned long long)(a->pause_sum_ns / 1000));

	for (int i = 0; i < CS_AGENT_PAUSE_BUCKETS && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%llu:%llu", i ? "," : "",
		                      (unsigned long long)bounds_us[i],
		                      (unsigned long long)a->pause_le[i]);
}

/* The Go heap's free pages (golive.c); go_heap_why is a sentence, so the
 * last field before the failures. */
static void status_golive(char *out, size_t cap)
{
	static const char *const names[] = {"off", "on", "measure"};
	struct cs_golive_report g;
	cs_golive_report(&g);
	snprintf(out, cap,
	         " go_heap=%s go_version=%s go_free_pages=%llu go_left_out_pages=%llu "
	         "go_left_out_sent=%llu go_readded=%llu go_left_out_sent_total=%llu "
	         "go_sent_total=%llu go_skipped=%llu go_heap_why=%s",
	         names[g.state], g.version[0] ? g.version : "-", (unsigned long long)g.free_pages,
	         (unsigned long long)g.left_out_pages, (unsigned long long)g.left_out_sent,
	         (unsigned long long)g.readded_pages, (unsigned long long)g.left_out_sent_total,
	         (unsigned long long)g.sent_total, (unsigned long long)g.skipped,
	         g.why[0] ? g.why : "-");
}

/* Last, since the sentence has spaces: why the last checkpoint failed
 * (which thread, which mask for a freeze), on one line. */
static void status_failures(const struct cs_agent *a, char *out, size_t cap)
{
	snprintf(out, cap, " failures=%llu failed_in_row=%u last_error=%s",
	         (unsigned long long)a->failures, a->failed_in_row, a->last_error);
	for (char *p = out; *p; p++)
		if (*p == '\n')
			*p = ';';
}

void cs_control_serve(struct cs_agent *a, int fd)
{
	char req[64], reply[CS_AGENT_REPLY_MAX];
	if (fd == a->listen_fd) {
		accept_client(a);
		return;
	}
	ssize_t n = recv(fd, req, sizeof(req) - 1, MSG_DONTWAIT);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			drop_client(a, fd);
		return;
	}
	req[n] = 0;
	req[strcspn(req, "\r\n")] = 0;
	if (!strcmp(req, "checkpoint")) {
		uint64_t gen;
		int restored;
		int r = cs_agent_run_checkpoint(&gen, &restored);
		if (restored)
			return; /* the requester was in the process we came from */
		if (r == 0)
			snprintf(reply, sizeof(reply), "ok %llu", (unsigned long long)gen);
		else
			error_reply(a, r, reply, sizeof(reply));
	} else if (!strcmp(req, "status")) {
		snprintf(
		    reply, sizeof(reply),
		    "ok generation=%llu tracking=%s checkpoints=%llu last_pause_us=%llu "
		    "bytes=%llu direct_bytes=%llu stop_us=%llu maps_us=%llu scan_us=%llu "
		    "fds_us=%llu "
		    "clone_us=%llu writer=%s wpscan_us=%llu send_pages=%llu pause_cpu_us=%llu "
		    "copy_us=%llu prescans=%llu",
		    (unsigned long long)a->last_generation, mode_name(a),
		    (unsigned long long)a->checkpoints,
		    (unsigned long long)(a->last_pause_ns / 1000),
		    (unsigned long long)a->bytes_total, (unsigned long long)a->direct_bytes_total,
		    (unsigned long long)a->phase_ns[0] / 1000,
		    (unsigned long long)a->phase_ns[1] / 1000,
		    (unsigned long long)a->phase_ns[2] / 1000,
		    (unsigned long long)a->phase_ns[3] / 1000,
		    (unsigned long long)a->phase_ns[4] / 1000, a->last_copy_mode ? "copy" : "fork",
		    (unsigned long long)a->phase_ns[5] / 1000,
		    (unsigned long long)a->cap.send_pages,
		    (unsigned long long)a->last_pause_cpu_ns / 1000,
		    (unsigned long long)a->phase_ns[6] / 1000,
		    (unsigned long long)cs_track_prescan_walks());
		status_pauses(a, reply + strlen(reply), sizeof(reply) - strlen(reply));
		status_signal(reply + strlen(reply), sizeof(reply) - strlen(reply));
		status_advice(reply + strlen(reply), sizeof(reply) - strlen(reply));
		status_golive(reply + strlen(reply), sizeof(reply) - strlen(reply));
		status_failures(a, reply + strlen(reply), sizeof(reply) - strlen(reply));
	} else {
		snprintf(reply, sizeof(reply), "error unknown request");
	}
	if (send(fd, reply, strlen(reply), MSG_NOSIGNAL) < 0)
		drop_client(a, fd);
}
