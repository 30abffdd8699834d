/*
 * The agent's side of the supervisor channel (cs_agent_abi.h): a thread
 * whose mask blocks the freeze signal is held by the program's namespace
 * init with ptrace, given the signal unblocked, and let go, so the signal
 * parks it like any other thread.
 *
 * Called from the agent thread during a freeze: raw system calls and
 * memory of our own only (the parked threads may hold malloc's and stdio's
 * locks). The connection is made when first needed and kept; its number is
 * the agent's (cs_fd_is_agent), so the image never holds it.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"

/* A reply takes as long as the thread takes to reach its ptrace stop:
 * a scheduling delay, unless it sleeps uninterruptibly. */
#define REPLY_TIMEOUT_MS 1000

static int sup_connect(struct cs_agent *a, char *why)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	size_t n = cs_supervisor_name(a->cfg.dir, sun.sun_path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return cs_set_err(why, "no socket for the supervisor: ", cs_errname(errno), NULL),
		       -errno;
	if (connect(fd, (struct sockaddr *)&sun,
	            (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n))) {
		int e = errno;
		close(fd);
		cs_set_err(why,
		           "no supervisor (the program was not started by checksync run or "
		           "restore): connect: ",
		           cs_errname(e), NULL);
		return -e;
	}
	a->sup_fd = fd;
	return 0;
}

static void sup_drop(struct cs_agent *a)
{
	if (a->sup_fd >= 0)
		close(a->sup_fd);
	a->sup_fd = -1;
}

static size_t reply_len; /* bytes of the last reply */

/* "<verb> <tid>[ <signo>]" out, the reply into reply[cap]; 0 for "ok ...". */
static int sup_call(struct cs_agent *a, const char *verb, pid_t tid, int sig, char *reply,
                    size_t cap, char *why)
{
	char req[64], num[24];
	int r;
	if (a->sup_fd < 0 && (r = sup_connect(a, why)))
		return r;
	cs_strlcpy(req, verb, sizeof(req));
	cs_fmt_u64(num, (uint64_t)tid);
	cs_strlcat(req, " ", sizeof(req));
	cs_strlcat(req, num, sizeof(req));
	if (sig) {
		cs_fmt_u64(num, (uint64_t)sig);
		cs_strlcat(req, " ", sizeof(req));
		cs_strlcat(req, num, sizeof(req));
	}
	struct pollfd p = {.fd = a->sup_fd, .events = POLLIN};
	ssize_t n = -1;
	if (send(a->sup_fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req) &&
	    poll(&p, 1, REPLY_TIMEOUT_MS) == 1)
		n = recv(a->sup_fd, reply, cap - 1, MSG_DONTWAIT);
	if (n <= 0) {
		/* Closing lets the supervisor go of whatever it still holds. */
		sup_drop(a);
		cs_set_err(why, "the supervisor did not answer '", req, "'");
		return -ETIMEDOUT;
	}
	reply[n] = 0;
	reply_len = (size_t)n;
	if (!strncmp(reply, "ok ", 3))
		return 0;
	/* "error <tid> <errno> <sentence>" */
	const char *s = reply;
	uint64_t e = EIO;
	for (int field = 0; field < 2 && (s = strchr(s, ' ')); field++)
		s++;
	if (s && !cs_parse_u64(&s, &e, 10) && *s == ' ')
		s++;
	cs_set_err(why, "the supervisor could not ", verb, " it: ");
	cs_strlcat(why, s ? s : reply, CS_ERR_MAX);
	return e ? -(int)e : -EIO;
}

int cs_sup_ready(struct cs_agent *a, char *why)
{
	return a->sup_fd >= 0 ? 0 : sup_connect(a, why);
}

int cs_sup_stop(struct cs_agent *a, pid_t tid, int sig, uint64_t *ret_mask, char *why)
{
	char reply[256];
	int r = sup_call(a, "stop", tid, sig, reply, sizeof(reply), why);
	if (r)
		return r;
	const char *s = strchr(reply + 3, ' ');
	if (!s || (s++, cs_parse_u64(&s, ret_mask, 16))) {
		cs_set_err(why, "the supervisor answered '", reply, "'");
		return -EPROTO;
	}
	return 0;
}

/*
 * A program that dropped its privileges can no longer write into the
 * directory root made for it. The supervisor hands the directory over, to
 * the uid and gid the kernel shows for the program (not ones the agent
 * names); images written from then on are owned by that uid, which is how a
 * restore knows how far to believe the credentials in them (agent/tool/
 * creds.c). Called before a freeze.
 */
int cs_sup_own(struct cs_agent *a, char *why)
{
	char reply[256];
	return sup_call(a, "own", 0, 0, reply, sizeof(reply), why);
}

int cs_sup_own_dir(struct cs_agent *a, char *why)
{
	struct stat st;
	uid_t euid = (uid_t)syscall(SYS_geteuid);
	if (euid == 0 || fstat(a->dir_fd, &st) || st.st_uid == euid)
		return 0;
	int r = cs_sup_own(a, why);
	if (r) {
		char msg[CS_ERR_MAX];
		cs_strlcpy(msg, "the program changed its uid and cannot write into DIR; ",
		           sizeof(msg));
		cs_strlcat(msg, why, sizeof(msg));
		cs_strlcpy(why, msg, CS_ERR_MAX);
	}
	return r;
}

int cs_sup_rseq(struct cs_agent *a, pid_t tid, uint64_t *ret_addr, uint32_t *ret_len,
                uint32_t *ret_sig, char *why)
{
	char reply[256];
	uint64_t len, sig;
	int r = sup_call(a, "rseq", tid, 1, reply, sizeof(reply), why);
	if (r)
		return r;
	const char *s = strchr(reply + 3, ' ');
	if (!s || (s++, cs_parse_u64(&s, ret_addr, 16)) || *s++ != ' ' ||
	    cs_parse_u64(&s, &len, 10) || *s++ != ' ' || cs_parse_u64(&s, &sig, 16) ||
	    len > UINT32_MAX || sig > UINT32_MAX) {
		cs_set_err(why, "the supervisor answered '", reply, "'");
		return -EPROTO;
	}
	*ret_len = (uint32_t)len;
	*ret_sig = (uint32_t)sig;
	return 0;
}

int cs_sup_cont(struct cs_agent *a, pid_t tid, char *why)
{
	char reply[256];
	return sup_call(a, "cont", tid, 0, reply, sizeof(reply), why);
}

/* The reply of "sigq": a few bytes of text, then the siginfos. Static: the
 * freeze path allocates nothing. */
static uint8_t sigq_reply[64 + CS_SECCOMP_REPLY_MAX + 1]; /* the larger of the two */

/* A reply "ok <tid> <n>\n" and its data: the data and n (at most max). */
static int counted_reply(const char *verb, uint64_t max, const uint8_t **ret_data,
                         uint32_t *ret_n, char *why)
{
	const char *s = strchr((const char *)sigq_reply + 3, ' ');
	uint64_t n;
	if (!s || (s++, cs_parse_u64(&s, &n, 10)) || *s != '\n' || n > max) {
		cs_set_err(why, "the supervisor's answer to ", verb, " is malformed");
		return -EPROTO;
	}
	*ret_data = (const uint8_t *)s + 1;
	*ret_n = (uint32_t)n;
	return 0;
}

int cs_sup_sigqueue(struct cs_agent *a, pid_t tid, int shared, const uint8_t **ret_infos,
                    uint32_t *ret_n, char *why)
{
	_Static_assert(CS_SIGINFO_SIZE == CS_IMAGE_SIGINFO, "one siginfo size");
	int r =
	    sup_call(a, "sigq", tid, shared ? 2 : 1, (char *)sigq_reply, sizeof(sigq_reply), why);
	if (!r)
		r = counted_reply("sigq", CS_SIGQ_MAX, ret_infos, ret_n, why);
	if (r)
		return r;
	if ((size_t)(*ret_infos - sigq_reply) + (size_t)*ret_n * CS_SIGINFO_SIZE != reply_len)
		return cs_set_err(why, "the supervisor's answer to sigq is cut short", NULL, NULL),
		       -EPROTO;
	return 0;
}

int cs_sup_seccomp(struct cs_agent *a, pid_t tid, const uint8_t **ret_data, size_t *ret_len,
                   uint32_t *ret_n, char *why)
{
	int r = sup_call(a, "seccomp", tid, 1, (char *)sigq_reply, sizeof(sigq_reply), why);
	if (!r)
		r = counted_reply("seccomp", CS_SECCOMP_FILTERS_MAX, ret_data, ret_n, why);
	if (!r)
		*ret_len = reply_len - (size_t)(*ret_data - sigq_reply);
	return r;
}
