/*
 * Signals pending at the frozen instant: the process's shared queue and
 * each thread's own, every siginfo as the kernel holds it (a standard
 * signal once, each instance of a real-time one in queue order).
 *
 * Reading a siginfo from inside the process means dequeuing it, and a
 * thread can dequeue only its own queue; a dequeued POSIX timer signal
 * even re-arms its timer. So nothing is taken: the supervisor (the
 * program's parent, root) reads each queue with PTRACE_PEEKSIGINFO and the
 * program keeps its signals untouched. That costs a ptrace stop per queue,
 * paid only when a signal is pending: each parked thread recorded
 * rt_sigpending in the handler, which is 0 almost always.
 *
 * Runs in the agent's handler during the freeze: raw calls, scratch memory.
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

#define SIGQ_TOTAL 4096 /* pending signals an image holds from this agent */
#define FREEZE_BIT (1ull << (CS_FREEZE_SIGNAL - 1))

/* "signals pending on thread T" / "on the process" + ": " + why */
static void refuse(struct cs_capture *c, int32_t tid, const char *why, const char *detail)
{
	char what[CS_ERR_MAX], num[24];
	cs_strlcpy(what, "pending signals ", sizeof(what));
	if (tid) {
		cs_fmt_u64(num, (uint64_t)tid);
		cs_strlcat(what, "of thread ", sizeof(what));
		cs_strlcat(what, num, sizeof(what));
	} else {
		cs_strlcat(what, "of the process", sizeof(what));
	}
	cs_strlcat(what, ": ", sizeof(what));
	cs_strlcat(what, why, sizeof(what));
	if (detail)
		cs_strlcat(what, detail, sizeof(what));
	cs_unsup_add(c, what);
}

static int32_t le32(const uint8_t *p)
{
	int32_t v;
	memcpy(&v, p, sizeof(v)); /* x86_64: the kernel's siginfo is little-endian */
	return v;
}

/* One queue (tid 0: the shared one, read through the thread via) into
 * c->sigq; a queue that cannot be read is refused by name. */
static int read_queue(struct cs_agent *a, struct cs_capture *c, pid_t via, int32_t tid)
{
	const uint8_t *got;
	char why[CS_ERR_MAX];
	uint32_t n = 0;
	int r = cs_sup_sigqueue(a, via, tid == 0, &got, &n, why);
	if (r) {
		refuse(c, tid, "not captured: ", why);
		return 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *si = got + (size_t)i * CS_IMAGE_SIGINFO;
		uint32_t signo = (uint32_t)le32(si);
		if (signo == (uint32_t)CS_FREEZE_SIGNAL || signo == 0 || signo > CS_IMAGE_SIGNALS)
			continue; /* the agent's own */
		if (c->n_sigq >= SIGQ_TOTAL) {
			refuse(c, tid, "more than the agent can capture", NULL);
			return 0;
		}
		struct cs_image_sigqueued *q = &c->sigq[c->n_sigq++];
		q->tid = tid;
		q->signo = signo;
		memcpy(q->info, si, CS_IMAGE_SIGINFO);
	}
	return 0;
}

/* The image wants queues by ascending tid (0 first), each in its order. */
static void sort_by_tid(struct cs_capture *c)
{
	for (uint32_t i = 1; i < c->n_sigq; i++) {
		struct cs_image_sigqueued q = c->sigq[i];
		uint32_t j = i;
		for (; j > 0 && c->sigq[j - 1].tid > q.tid; j--)
			c->sigq[j] = c->sigq[j - 1];
		c->sigq[j] = q;
	}
}

int cs_sigqueue_capture(struct cs_agent *a, struct cs_capture *c)
{
	uint64_t any = 0;
	pid_t via = 0;
	c->n_sigq = 0;
	for (uint32_t i = 0; i < c->n_threads; i++) {
		any |= c->threads[i].pending;
		if (!(c->threads[i].flags & CS_THREAD_AGENT) && !via)
			via = c->threads[i].tid;
	}
	if (!(any & ~FREEZE_BIT))
		return 0;
	if (!c->sigq && !(c->sigq = cs_scratch_alloc(SIGQ_TOTAL * sizeof(*c->sigq), 0)))
		return -ENOMEM;
	int r = 0;
	if (via && (cs_status_field(0, "\nShdPnd:", 16) & ~FREEZE_BIT))
		r = read_queue(a, c, via, 0);
	for (uint32_t i = 0; !r && i < c->n_threads; i++) {
		const struct cs_thread_rec *t = &c->threads[i];
		if (!(t->pending & ~FREEZE_BIT) ||
		    !(cs_status_field(t->tid, "\nSigPnd:", 16) & ~FREEZE_BIT))
			continue;
		if (t->flags & CS_THREAD_AGENT)
			refuse(c, t->tid, "a signal sent to the agent's own thread", NULL);
		else
			r = read_queue(a, c, t->tid, t->tid);
	}
	sort_by_tid(c);
	return r;
}
