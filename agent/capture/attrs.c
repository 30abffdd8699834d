/*
 * Per-process attributes, read in the parent during the freeze (a child
 * has its own, and not all of them are inherited): oom_score_adj, child
 * subreaper, transparent huge pages disabled, dumpable, membarrier
 * registrations, scheduling (nice, policy, CPU affinity). A restore sets
 * them again (docs/restore.md).
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9) /* Linux 6.3 */

static int32_t oom_score_adj(void)
{
	char buf[32];
	const char *p = buf;
	uint64_t v;
	if (cs_read_file("/proc/self/oom_score_adj", buf, sizeof(buf)) <= 0)
		return 0;
	int neg = *p == '-';
	p += neg;
	if (cs_parse_u64(&p, &v, 10) || v > 1000)
		return 0;
	return neg ? -(int32_t)v : (int32_t)v;
}

/* A restore chdirs to the saved path: a directory that was removed cannot
 * be entered again (the refusal used to come only at restore). */
static void cwd_check(struct cs_capture *c)
{
	char cwd[CS_IMAGE_PATH_MAX];
	ssize_t n = readlink("/proc/self/cwd", cwd, sizeof(cwd) - 1);
	cwd[n > 0 ? n : 0] = 0;
	size_t len = (size_t)(n > 0 ? n : 0);
	if (len > 10 && !strcmp(cwd + len - 10, " (deleted)")) {
		char what[CS_ERR_MAX];
		cs_strlcpy(what, "working directory: ", sizeof(what));
		cs_strlcat(what, cwd, sizeof(what));
		cs_strlcat(what, " was removed; a restore cannot enter it again", sizeof(what));
		cs_unsup_add(c, what);
	}
}

/* A thread's scheduling: nice, policy, priority, CPU affinity. */
struct sched_of {
	int32_t nice;
	uint32_t policy, priority, len;
	uint8_t mask[CS_IMAGE_AFFINITY_MAX];
};

static int sched_of(pid_t tid, struct sched_of *s)
{
	struct sched_param sp = {0};
	memset(s, 0, sizeof(*s));
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, (id_t)tid);
	int policy = sched_getscheduler(tid);
	long len = syscall(SYS_sched_getaffinity, tid, sizeof(s->mask), s->mask);
	if ((nice == -1 && errno) || policy < 0 || sched_getparam(tid, &sp) || len <= 0)
		return -1;
	s->nice = nice;
	s->policy = (uint32_t)policy;
	s->priority = (uint32_t)sp.sched_priority;
	s->len = (uint32_t)len;
	return 0;
}

/*
 * The restore sets one nice value, policy and affinity before its threads
 * exist, and they inherit it: every thread of the program must have the
 * main thread's. The agent's own thread is left out (it was made before
 * main() could change the main thread's, and it follows the restore's).
 */
static void scheduling(struct cs_capture *c, pid_t pid)
{
	struct sched_of main_s, t_s;
	struct cs_image_attrs *a = &c->attrs;
	if (sched_of(pid, &main_s)) {
		cs_unsup_add(c, "scheduling: the main thread's nice, policy or CPU affinity is "
		                "unreadable");
		return;
	}
	if ((main_s.policy & ~CS_SCHED_RESET_ON_FORK) == 6) /* SCHED_DEADLINE */
		cs_unsup_add(c, "scheduling: SCHED_DEADLINE is not restored");
	for (uint32_t i = 0; i < c->n_threads; i++) {
		const struct cs_thread_rec *t = &c->threads[i];
		if (t->tid == pid || (t->flags & CS_THREAD_AGENT) || sched_of(t->tid, &t_s))
			continue;
		if (memcmp(&t_s, &main_s, sizeof(t_s))) {
			char what[CS_ERR_MAX], num[24];
			cs_strlcpy(what, "scheduling: thread ", sizeof(what));
			cs_fmt_u64(num, (uint64_t)t->tid);
			cs_strlcat(what, num, sizeof(what));
			cs_strlcat(what,
			           " has another nice value, policy or CPU affinity than the "
			           "main thread: not restored",
			           sizeof(what));
			cs_unsup_add(c, what);
			break;
		}
	}
	a->nice = main_s.nice;
	a->sched_policy = main_s.policy;
	a->sched_priority = main_s.priority;
	a->affinity_len = main_s.len;
	memcpy(a->affinity, main_s.mask, main_s.len);
}

int cs_attrs_capture(struct cs_capture *c)
{
	cwd_check(c);
	struct cs_image_attrs *a = &c->attrs;
	int v = 0;
	memset(a, 0, sizeof(*a));
	a->oom_score_adj = oom_score_adj();
	if (prctl(PR_GET_CHILD_SUBREAPER, &v) == 0)
		a->child_subreaper = v != 0;
	a->thp_disable = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) > 0;
	int d = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	a->dumpable = d >= 0 && d <= 2 ? (uint32_t)d : 1;
	long m = syscall(SYS_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);
	if (m > 0 && ((uint64_t)m & ~(uint64_t)CS_MEMBARRIER_REGISTERED)) {
		cs_unsup_add(c, "membarrier: a registration this agent does not know");
		m = 0;
	}
	a->membarrier = m > 0 ? (uint32_t)m : 0;
	scheduling(c, getpid());
	return 0;
}
