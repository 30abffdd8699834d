/*
 * Seccomp filters of every thread, at the frozen instant. A process cannot
 * read its own filters; the supervisor (root, the program's parent) reads
 * them with PTRACE_SECCOMP_GET_FILTER and PTRACE_SECCOMP_GET_METADATA from a
 * ptrace stop of the parked thread. That costs a stop per thread with
 * filters at every checkpoint, paid only by programs that have them.
 *
 * Whether a thread has filters comes from its status ("Seccomp:"), read in
 * the freeze for every thread once any look (freeze.c, before each freeze)
 * or the main thread's status showed one: filters are inherited and never
 * removed, so after the first one the check is exact. The restorer installs
 * each thread's filters last, right before the thread leaves for program
 * code (agent/restore/restorer.c).
 *
 * Runs in the agent's handler during the freeze: raw calls, scratch memory.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

#define CAP_SYS_ADMIN_BIT (1ull << 21)

static int seen; /* some thread had a filter (or strict mode) */

void cs_seccomp_note(int mode)
{
	if (mode)
		seen = 1;
}

static void refuse(struct cs_capture *c, pid_t tid, const char *why, const char *detail)
{
	char what[CS_ERR_MAX], num[24];
	cs_strlcpy(what, "seccomp filters of thread ", sizeof(what));
	cs_fmt_u64(num, (uint64_t)tid);
	cs_strlcat(what, num, sizeof(what));
	cs_strlcat(what, ": ", sizeof(what));
	cs_strlcat(what, why, sizeof(what));
	if (detail)
		cs_strlcat(what, detail, sizeof(what));
	cs_unsup_add(c, what);
}

/* The supervisor's filters of tid (u32 flags, u32 length, program each)
 * appended to c->filters and c->filter_pool. */
static int add_filters(struct cs_capture *c, pid_t tid, const uint8_t *p, size_t len, uint32_t n)
{
	if (cs_scratch_grow((void **)&c->filter_pool, &c->filter_pool_cap, 1,
	                    c->filter_pool_len + len))
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t head[2];
		if (len < 8)
			return -EPROTO;
		memcpy(head, p, sizeof(head));
		if (head[1] > len - 8 || c->n_filters >= CS_MAX_FILTERS)
			return -EPROTO;
		struct cs_image_seccomp *f = &c->filters[c->n_filters++];
		f->tid = tid;
		f->flags = head[0];
		f->len = head[1];
		/* an offset until the pool stops moving (cs_seccomp_capture) */
		f->prog = (const uint8_t *)(uintptr_t)c->filter_pool_len;
		memcpy(c->filter_pool + c->filter_pool_len, p + 8, head[1]);
		c->filter_pool_len += head[1];
		p += 8 + head[1];
		len -= 8 + head[1];
	}
	return 0;
}

static int one_thread(struct cs_agent *a, struct cs_capture *c, pid_t tid)
{
	char why[CS_ERR_MAX];
	const uint8_t *data;
	size_t len;
	uint32_t n;
	uint64_t mode = cs_status_field(tid, "\nSeccomp:", 10);
	if (mode == 0)
		return 0;
	seen = 1;
	if (mode == 1) {
		refuse(c, tid, "strict mode (SECCOMP_SET_MODE_STRICT): not restored", NULL);
		return 0;
	}
	if (cs_sup_seccomp(a, tid, &data, &len, &n, why)) {
		refuse(c, tid, "not captured: ", why);
		return 0;
	}
	return add_filters(c, tid, data, len, n);
}

/* Threads by ascending tid, as the image wants them. */
static void sort_by_tid(struct cs_capture *c)
{
	for (uint32_t i = 1; i < c->n_filters; i++) {
		struct cs_image_seccomp f = c->filters[i];
		uint32_t j = i;
		for (; j > 0 && c->filters[j - 1].tid > f.tid; j--)
			c->filters[j] = c->filters[j - 1];
		c->filters[j] = f;
	}
}

int cs_seccomp_capture(struct cs_agent *a, struct cs_capture *c)
{
	c->n_filters = 0;
	c->filter_pool_len = 0;
	if (!seen && !c->creds.seccomp)
		return 0;
	if (!c->filters &&
	    !(c->filters = cs_scratch_alloc(CS_MAX_FILTERS * sizeof(*c->filters), 0)))
		return -ENOMEM;
	int r = 0;
	for (uint32_t i = 0; !r && i < c->n_threads; i++)
		r = one_thread(a, c, c->threads[i].tid);
	if (r)
		return r;
	for (uint32_t i = 0; i < c->n_filters; i++)
		c->filters[i].prog = c->filter_pool + (uintptr_t)c->filters[i].prog;
	sort_by_tid(c);
	/* A restore installs them with the program's credentials, which must
	 * allow it, as they did when the program installed them. */
	if (c->n_filters && !c->creds.no_new_privs && !(c->creds.cap_eff & CAP_SYS_ADMIN_BIT))
		refuse(c, c->filters[0].tid,
		       "neither no_new_privs nor CAP_SYS_ADMIN: a restore could not install them "
		       "again",
		       NULL);
	return 0;
}
