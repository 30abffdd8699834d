/*
 * Per-process attributes, read in the parent during the freeze (a child
 * has its own, and not all of them are inherited): oom_score_adj, child
 * subreaper, transparent huge pages disabled, dumpable, membarrier
 * registrations. A restore sets them again (docs/restore.md).
 */
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
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
	return 0;
}
