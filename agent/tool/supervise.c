/*
 * The supervisor: the init of a program's PID namespace serves the agent
 * inside it (protocol in cs_agent_abi.h). A thread that blocks the agent's
 * freeze signal cannot be parked by it; init, the program's parent and
 * root, holds such a thread with ptrace (PTRACE_SEIZE + PTRACE_INTERRUPT,
 * as CRIU's compel does), opens its mask for the signal and lets it go on
 * request. A thread asleep in a system call, for hours if need be, is
 * woken into the stop; the call is restarted or reports EINTR exactly as
 * for any signal.
 *
 * Init reaps too, and a traced thread's stops reach waitpid(-1) as well
 * (since Linux 4.7 __WALL is implied for tracees): reap_and_forward hands
 * every stop it sees to cs_supervisor_stopped, and waits here ask for stops
 * only (waitid WSTOPPED), so the program's exit is never taken from it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/cs_agent_abi.h"
#include "tool.h"

/* How long a held thread may take to reach its stop: it must be scheduled,
 * or finish an uninterruptible sleep. */
#define STOP_TIMEOUT_MS 500

static void why_set(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void why_set(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

static void try_bind(struct cs_supervisor *s);

void cs_supervisor_init(struct cs_supervisor *s, const char *dir, pid_t main_pid)
{
	memset(s, 0, sizeof(*s));
	s->listen_fd = s->client_fd = -1;
	s->main_pid = main_pid;
	s->name_len = cs_supervisor_name(dir, s->name);
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	try_bind(s);
}

/* The name may still be held by the init of the process this one restores
 * (it exits once it has reaped its program): retried while unbound. */
static void try_bind(struct cs_supervisor *s)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	memcpy(sun.sun_path, s->name, s->name_len);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return;
	if (bind(fd, (struct sockaddr *)&sun,
	         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + s->name_len)) ||
	    listen(fd, 4)) {
		if (errno != EADDRINUSE && !s->bind_reported++)
			cs_err("init: cannot serve the agent (bind @%s): %s", s->name + 1,
			       strerror(errno));
		close(fd);
		return;
	}
	s->listen_fd = fd;
}

static struct cs_held *find_held(struct cs_supervisor *s, pid_t tid)
{
	for (size_t i = 0; i < s->n_held; i++)
		if (s->held[i].tid == tid)
			return &s->held[i];
	return NULL;
}

static void forget(struct cs_supervisor *s, struct cs_held *h)
{
	*h = s->held[--s->n_held];
}

static int detach(struct cs_supervisor *s, struct cs_held *h)
{
	int r = ptrace(PTRACE_DETACH, h->tid, NULL, (void *)(long)h->inject) ? -errno : 0;
	forget(s, h);
	return r;
}

/* What the reaper saw of a thread: a stop lets go of one left held when its
 * agent went away (or that stopped too late); an exit forgets it, so its
 * tid can be held again when the kernel gives it to another thread. */
void cs_supervisor_reaped(struct cs_supervisor *s, pid_t tid, int status)
{
	struct cs_held *h = s ? find_held(s, tid) : NULL;
	if (!h || (h->stopped && WIFSTOPPED(status)))
		return;
	if (!WIFSTOPPED(status)) {
		forget(s, h);
		return;
	}
	int st = status >> 8;
	h->inject = (st >> 8) == PTRACE_EVENT_STOP ? 0 : (st & 0xff);
	detach(s, h);
}

/* Waits for tid's ptrace stop (stops only: never the program's exit). */
static int await_stop(struct cs_held *h)
{
	for (int i = 0; i < STOP_TIMEOUT_MS * 10; i++) {
		siginfo_t si = {0};
		if (waitid(P_PID, (id_t)h->tid, &si, WSTOPPED | WNOHANG | __WALL) < 0)
			return -errno;
		if (si.si_pid == h->tid) {
			/* An event stop (PTRACE_EVENT_STOP << 8) is ours; any
			 * other is a signal on its way in, passed on at detach. */
			h->inject =
			    (si.si_status >> 8) == PTRACE_EVENT_STOP ? 0 : (si.si_status & 0xff);
			h->stopped = 1;
			return 0;
		}
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

/* What keeps ptrace from attaching, for the agent's message. */
static void seize_hint(pid_t tid, char *hint, size_t cap)
{
	char path[64], line[256];
	hint[0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		int tracer;
		if (sscanf(line, "TracerPid: %d", &tracer) == 1 && tracer)
			snprintf(hint, cap, " (already traced by pid %d)", tracer);
	}
	if (f)
		fclose(f);
	f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	int scope;
	if (!hint[0] && f && fscanf(f, "%d", &scope) == 1 && scope)
		snprintf(hint, cap, " (kernel.yama.ptrace_scope=%d)", scope);
	if (f)
		fclose(f);
}

static int is_program_thread(const struct cs_supervisor *s, pid_t tid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)s->main_pid, (int)tid);
	return tid > 0 && access(path, F_OK) == 0;
}

/* tid held in a ptrace stop (PTRACE_SEIZE + PTRACE_INTERRUPT) as *ret_h. */
static int seize_stopped(struct cs_supervisor *s, pid_t tid, struct cs_held **ret_h, char *why,
                         size_t cap)
{
	char hint[96];
	if (find_held(s, tid))
		return why_set(why, cap, "bad request"), -EINVAL;
	if (!is_program_thread(s, tid))
		return why_set(why, cap, "%d is not a thread of pid %d", (int)tid,
		               (int)s->main_pid),
		       -ESRCH;
	if (s->n_held >= CS_SUPERVISOR_MAX_HELD)
		return why_set(why, cap, "already holding %d threads", CS_SUPERVISOR_MAX_HELD),
		       -E2BIG;
	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0) {
		int e = errno;
		seize_hint(tid, hint, sizeof(hint));
		why_set(why, cap, "PTRACE_SEIZE: %s%s", strerror(e), hint);
		return -e;
	}
	struct cs_held *h = &s->held[s->n_held++];
	*h = (struct cs_held){.tid = tid};
	int r = ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) ? -errno : await_stop(h);
	if (r) {
		/* Still held: let go as soon as it stops (cs_supervisor_stopped). */
		why_set(why, cap, "the thread did not stop within %d ms: %s", STOP_TIMEOUT_MS,
		        strerror(-r));
		return r;
	}
	*ret_h = h;
	return 0;
}

static int stop_thread(struct cs_supervisor *s, pid_t tid, int sig, uint64_t *mask, char *why,
                       size_t cap)
{
	struct cs_held *h;
	if (sig < 1 || sig > 64)
		return why_set(why, cap, "bad request"), -EINVAL;
	int r = seize_stopped(s, tid, &h, why, cap);
	if (r)
		return r;
	uint64_t m, opened;
	if (ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(m), &m) < 0 ||
	    (opened = m & ~(1ull << (sig - 1)),
	     ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(opened), &opened) < 0)) {
		r = -errno;
		why_set(why, cap, "PTRACE_GETSIGMASK/SETSIGMASK: %s", strerror(-r));
		detach(s, h);
		return r;
	}
	*mask = m;
	return 0;
}

#ifndef PTRACE_PEEKSIGINFO_SHARED
#define PTRACE_PEEKSIGINFO_SHARED 1
#endif

/*
 * "sigq": the signals queued on tid (which 1) or on its process (which 2),
 * copied with PTRACE_PEEKSIGINFO, which reads a queue without taking
 * anything from it: the program keeps every signal exactly as it was. The
 * thread is parked in the agent's freeze handler with every signal blocked,
 * so the stop delivers none of them.
 */
static int peek_queue(struct cs_supervisor *s, pid_t tid, int which, uint8_t *out, size_t max,
                      size_t *ret_n, char *why, size_t cap)
{
	struct cs_held *h;
	if (which != 1 && which != 2)
		return why_set(why, cap, "bad request"), -EINVAL;
	int r = seize_stopped(s, tid, &h, why, cap);
	if (r)
		return r;
	size_t n = 0;
	for (;;) {
		struct {
			uint64_t off;
			uint32_t flags;
			int32_t nr;
		} args = {n, which == 2 ? PTRACE_PEEKSIGINFO_SHARED : 0, 1};
		long got = n < max
		               ? ptrace(PTRACE_PEEKSIGINFO, tid, &args, out + n * CS_SIGINFO_SIZE)
		               : (errno = E2BIG, -1L);
		if (got == 0)
			break;
		if (got < 0) {
			r = -errno;
			why_set(why, cap, "PTRACE_PEEKSIGINFO: %s (more than %zu signals?)",
			        strerror(-r), max);
			break;
		}
		n++;
	}
	int d = detach(s, h);
	if (!r && d)
		why_set(why, cap, "PTRACE_DETACH: %s", strerror(-d));
	*ret_n = n;
	return r ? r : d;
}

/*
 * "seccomp": the thread's seccomp filters, oldest first, each as u32 flags
 * (PTRACE_SECCOMP_GET_METADATA: LOG, SPEC_ALLOW), u32 length in bytes and
 * the classic BPF program (PTRACE_SECCOMP_GET_FILTER, which counts from the
 * newest: index 0). The thread is parked in the freeze handler.
 */
static int filter_at(pid_t tid, long idx, uint8_t *out, size_t room, size_t *used)
{
	struct {
		uint64_t filter_off, flags;
	} meta = {(uint64_t)idx, 0};
	long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)idx, NULL);
	if (n < 0)
		return -errno;
	size_t len = (size_t)n * 8;
	if (8 + len > room)
		return -E2BIG;
	if (ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)idx, out + 8) != n ||
	    ptrace(PTRACE_SECCOMP_GET_METADATA, tid, (void *)sizeof(meta), &meta) < 0)
		return -errno;
	uint32_t head[2] = {(uint32_t)meta.flags, (uint32_t)len};
	memcpy(out, head, sizeof(head));
	*used = 8 + len;
	return 0;
}

static int read_filters(struct cs_supervisor *s, pid_t tid, uint8_t *out, size_t cap,
                        size_t *ret_len, size_t *ret_n, char *why, size_t wcap)
{
	static uint8_t tmp[CS_SECCOMP_REPLY_MAX];
	struct cs_held *h;
	int r = seize_stopped(s, tid, &h, why, wcap);
	if (r)
		return r;
	size_t n = 0, off = 0, used = 0;
	/* Newest first into tmp, then reversed into out: oldest first. */
	size_t ends[CS_SECCOMP_FILTERS_MAX + 1];
	ends[0] = 0;
	while (n < CS_SECCOMP_FILTERS_MAX &&
	       (r = filter_at(tid, (long)n, tmp + off, sizeof(tmp) - off, &used)) == 0) {
		off += used;
		ends[++n] = off;
	}
	if (r == -ENOENT || r == -EINVAL) /* past the oldest, or no filter at all */
		r = 0;
	else if (!r)
		r = -E2BIG;
	if (r)
		why_set(why, wcap, "PTRACE_SECCOMP_GET_FILTER: %s", strerror(-r));
	int d = detach(s, h);
	for (size_t i = 0, at = 0; !r && i < n && off <= cap; i++) {
		size_t len = ends[n - i] - ends[n - i - 1];
		memcpy(out + at, tmp + ends[n - i - 1], len);
		at += len;
	}
	*ret_len = off;
	*ret_n = n;
	return r ? r : d;
}

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif

/* "rseq": the thread's rseq registration, which only ptrace shows (a
 * program may register an area glibc does not know of). */
static int read_rseq(struct cs_supervisor *s, pid_t tid, char *reply, size_t rcap, char *why,
                     size_t cap)
{
	struct {
		uint64_t addr;
		uint32_t len, sig, flags, pad;
	} conf = {0};
	struct cs_held *h;
	int r = seize_stopped(s, tid, &h, why, cap);
	if (r)
		return r;
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, (void *)sizeof(conf), &conf) < 0) {
		r = -errno;
		why_set(why, cap, "PTRACE_GET_RSEQ_CONFIGURATION: %s", strerror(-r));
	}
	int d = detach(s, h);
	if (!r && d)
		why_set(why, cap, "PTRACE_DETACH: %s", strerror(-d));
	snprintf(reply, rcap, "ok %d %llx %u %x", (int)tid, (unsigned long long)conf.addr, conf.len,
	         conf.sig);
	return r ? r : d;
}

static int cont_thread(struct cs_supervisor *s, pid_t tid, char *why, size_t cap)
{
	struct cs_held *h = find_held(s, tid);
	if (!h || !h->stopped)
		return why_set(why, cap, "thread %d is not held", (int)tid), -ESRCH;
	int r = detach(s, h);
	if (r)
		why_set(why, cap, "PTRACE_DETACH: %s", strerror(-r));
	return r;
}

/* The program's effective uid and gid, as the kernel shows them. */
static int program_ids(pid_t pid, uid_t *uid, gid_t *gid)
{
	char path[64], line[256];
	unsigned v[2];
	int found = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Uid: %*u %u", &v[0]) == 1)
			*uid = v[0], found |= 1;
		if (sscanf(line, "Gid: %*u %u", &v[1]) == 1)
			*gid = v[1], found |= 2;
	}
	if (f)
		fclose(f);
	return found == 3 ? 0 : -ESRCH;
}

/*
 * DIR/creds-ceiling: the program's credentials as the kernel shows them
 * when DIR is handed over (its status lines Uid, Gid, Groups, Cap*, and
 * NoNewPrivs and Seccomp_filters, which can only grow), in a
 * file of root's. The program owns DIR from then on and may delete the
 * file, but cannot write one root owns: a restore believes the credentials
 * in the program's images up to these (creds.c), so a program that kept a
 * capability when it changed its uid is restored with it.
 */
static int write_ceiling(int dfd, pid_t pid)
{
	static const char *const keys[] = {
	    "Uid:",    "Gid:",    "Groups:",    "CapInh:",         "CapPrm:", "CapEff:",
	    "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp_filters:"};
	char path[64], line[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *in = fopen(path, "re");
	unlinkat(dfd, CS_CEILING_FILE ".tmp", 0);
	int fd = openat(dfd, CS_CEILING_FILE ".tmp",
	                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	FILE *out = fd >= 0 ? fdopen(fd, "we") : NULL;
	int r = in && out ? 0 : -EIO;
	while (!r && fgets(line, sizeof(line), in))
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strncmp(line, keys[i], strlen(keys[i])))
				fputs(line, out);
	if (out && fclose(out))
		r = -EIO;
	else if (!out && fd >= 0)
		close(fd);
	if (in)
		fclose(in);
	if (!r && renameat(dfd, CS_CEILING_FILE ".tmp", dfd, CS_CEILING_FILE))
		r = -errno;
	return r;
}

/*
 * "own": the program dropped its privileges and cannot write into DIR any
 * more; DIR and the agent's files in it go to its effective uid and gid.
 * Images written before stay root's: a restore believes the credentials of
 * an image only as far as its owner, or the ceiling recorded here, vouches
 * for them (creds.c).
 */
/* One of the agent's files in DIR to uid:gid, only if it is what the agent
 * made: a regular file or socket of root's with one link, never what a
 * symlink or a hard link (protected_hardlinks=0) would point at. */
static void own_file(int dfd, const char *name, uid_t uid, gid_t gid)
{
	struct stat st;
	int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (!fstat(fd, &st) && (S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode)) && st.st_nlink == 1 &&
	    st.st_uid == 0)
		fchownat(fd, "", uid, gid, AT_EMPTY_PATH);
	close(fd);
}

/* Everything in DIR is done before DIR changes hands: until then the
 * program cannot swap any name in it. */
static int own_dir(struct cs_supervisor *s, char *why, size_t cap)
{
	static const char *const files[] = {"agent.lock", "agent.sock", "agent.pid"};
	uid_t uid = 0;
	gid_t gid = 0;
	if (program_ids(s->main_pid, &uid, &gid))
		return why_set(why, cap, "the program's credentials are unreadable"), -ESRCH;
	if (uid == 0)
		return 0;
	int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0 && write_ceiling(dfd, s->main_pid) < 0)
		cs_err("init: cannot record the program's credentials in %s/%s", s->dir,
		       CS_CEILING_FILE);
	for (size_t i = 0; dfd >= 0 && i < sizeof(files) / sizeof(files[0]); i++)
		own_file(dfd, files[i], uid, gid);
	if (dfd < 0 || fchown(dfd, uid, gid) < 0) {
		int e = errno;
		why_set(why, cap, "chown of %s to %u:%u: %s", s->dir, (unsigned)uid, (unsigned)gid,
			strerror(e));
		if (dfd >= 0)
			close(dfd);
		return -e;
	}
	close(dfd);
	cs_err("init: the program now runs as uid %u gid %u; %s is handed to it", (unsigned)uid,
	       (unsigned)gid, s->dir);
	return 0;
}

/* The agent is gone (or replaced): every stopped thread is let go. */
static void drop_client(struct cs_supervisor *s)
{
	close(s->client_fd);
	s->client_fd = -1;
	for (size_t i = 0; i < s->n_held;)
		if (s->held[i].stopped)
			detach(s, &s->held[i]);
		else
			i++;
}

/* "seccomp <tid> 1": "ok <tid> <n>\n" and the filters, or the error. */
static void answer_seccomp(struct cs_supervisor *s, int tid)
{
	static uint8_t reply[64 + CS_SECCOMP_REPLY_MAX];
	char why[256] = "";
	size_t n = 0, len = 0;
	int r = read_filters(s, tid, reply + 64, CS_SECCOMP_REPLY_MAX, &len, &n, why, sizeof(why));
	if (r) {
		len = (size_t)snprintf((char *)reply, 320, "error %d %d %s", tid, -r, why);
	} else {
		int head = snprintf((char *)reply, 64, "ok %d %zu\n", tid, n);
		memmove(reply + head, reply + 64, len);
		len += (size_t)head;
	}
	if (send(s->client_fd, reply, len, MSG_NOSIGNAL) < 0)
		drop_client(s);
}

/* "sigq <tid> <which>": "ok <tid> <n>\n" and the n siginfos, or the error. */
static void answer_sigq(struct cs_supervisor *s, int tid, int which)
{
	static uint8_t reply[64 + CS_SIGQ_MAX * CS_SIGINFO_SIZE];
	char why[256] = "";
	size_t n = 0, len;
	int r = peek_queue(s, tid, which, reply + 64, CS_SIGQ_MAX, &n, why, sizeof(why));
	if (r) {
		len = (size_t)snprintf((char *)reply, 320, "error %d %d %s", tid, -r, why);
		if (!s->error_reported++)
			cs_err("init: the agent asked for the signals queued on %d; %s (said once)",
			       tid, why);
	} else {
		int head = snprintf((char *)reply, 64, "ok %d %zu\n", tid, n);
		memmove(reply + head, reply + 64, n * CS_SIGINFO_SIZE);
		len = (size_t)head + n * CS_SIGINFO_SIZE;
	}
	if (send(s->client_fd, reply, len, MSG_NOSIGNAL) < 0)
		drop_client(s);
}

static void answer(struct cs_supervisor *s)
{
	char req[64], reply[320], why[256] = "";
	int tid = 0, sig = 0, r;
	uint64_t mask = 0;
	ssize_t n = recv(s->client_fd, req, sizeof(req) - 1, MSG_DONTWAIT);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			drop_client(s);
		return;
	}
	req[n] = 0;
	if (sscanf(req, "sigq %d %d", &tid, &sig) == 2)
		return answer_sigq(s, tid, sig);
	if (sscanf(req, "seccomp %d %d", &tid, &sig) == 2)
		return answer_seccomp(s, tid);
	if (sscanf(req, "stop %d %d", &tid, &sig) == 2)
		r = stop_thread(s, tid, sig, &mask, why, sizeof(why));
	else if (sscanf(req, "rseq %d %d", &tid, &sig) == 2)
		r = read_rseq(s, tid, reply, sizeof(reply), why, sizeof(why));
	else if (sscanf(req, "cont %d", &tid) == 1)
		r = cont_thread(s, tid, why, sizeof(why));
	else if (!strcmp(req, "own 0"))
		r = own_dir(s, why, sizeof(why));
	else
		r = -EINVAL, why_set(why, sizeof(why), "unknown request");
	if (!r && !strncmp(req, "stop", 4))
		snprintf(reply, sizeof(reply), "ok %d %llx", tid, (unsigned long long)mask);
	else if (!r && !strncmp(req, "rseq", 4))
		; /* read_rseq wrote it */
	else if (!r)
		snprintf(reply, sizeof(reply), "ok %d", tid);
	else
		snprintf(reply, sizeof(reply), "error %d %d %s", tid, -r, why);
	if (r && !s->error_reported++)
		cs_err("init: the agent asked to %s; %s (said once)", req, why);
	if (send(s->client_fd, reply, strlen(reply), MSG_NOSIGNAL) < 0)
		drop_client(s);
}

/* Only the program itself: SO_PEERCRED's pid, in init's namespace. */
static void accept_client(struct cs_supervisor *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.pid != s->main_pid) {
		close(fd);
		return;
	}
	if (s->client_fd >= 0)
		drop_client(s);
	s->client_fd = fd;
}

size_t cs_supervisor_pollfds(struct cs_supervisor *s, struct pollfd *p, int *timeout_ms)
{
	size_t n = 0;
	if (s->listen_fd < 0)
		try_bind(s);
	if (s->listen_fd < 0 && s->bind_tries++ < 500)
		*timeout_ms = 10;
	if (s->listen_fd >= 0)
		p[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
	if (s->client_fd >= 0)
		p[n++] = (struct pollfd){.fd = s->client_fd, .events = POLLIN};
	return n;
}

void cs_supervisor_serve(struct cs_supervisor *s, const struct pollfd *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (p[i].fd == s->listen_fd)
			accept_client(s);
		else if (p[i].fd == s->client_fd)
			answer(s);
	}
}
