/*
 * checksync-restore: turns the process that execs it into the process of a
 * checkpoint image, following a plan the checksync tool wrote (cs_plan.h).
 *
 * Runs without libc, from its own fixed region, and owns nothing else:
 *   1. map the plan, park our [vvar]/[vvar_vclock]/[vdso] inside the region;
 *   2. unmap everything outside the region (the kernel's stack included);
 *   3. map every saved region at its address (MAP_FIXED_NOREPLACE, so any
 *      overlap fails loudly) and pread the live pages into place;
 *   4. move the parked vDSO pages to the saved addresses, restore
 *      sigactions, the mm fields and rlimits, fill in the agent's restore
 *      block, close the helper fds;
 *   5. create every other thread with its exact tid; each one, and then the
 *      main thread, leaves through the agent's trampolines, which
 *      rt_sigreturn into the saved frames. The last one unmaps this region.
 * The tool checked everything it could beforehand; a failure here is
 * reported on the status fd (or stderr) and ends the process.
 */
#include <linux/futex.h>
#include <linux/mman.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <asm/prctl.h>

#include "../include/cs_agent_abi.h"
#include "cs_plan.h"
#include "creds.h"
#include "restorer.h"
#include "sys.h"

#define PAGE            4096ull
#define TASK_TOP        0x7ffffffff000ull
#define AT_SYSINFO_EHDR 33

char cs_restorer_stack[1 << 18] __attribute__((aligned(64)));
__asm__(".globl cs_restorer_stack_top\n.set cs_restorer_stack_top, cs_restorer_stack + 262144");

void cs_restorer_main(uint64_t *sp);
void cs_thread_entry(const struct cs_plan_thread *t);

const struct cs_plan_header *plan;
int report_fd = 2;

static void put_str(char *buf, size_t *n, const char *s)
{
	while (*s && *n < 255)
		buf[(*n)++] = *s++;
}

static void put_hex(char *buf, size_t *n, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[17];
	int i = 16;
	tmp[i] = 0;
	do {
		tmp[--i] = digits[v & 15];
		v >>= 4;
	} while (v && i > 0);
	put_str(buf, n, "0x");
	put_str(buf, n, tmp + i);
}

static void put_dec(char *buf, size_t *n, long v)
{
	char tmp[24];
	int i = 23;
	int neg = v < 0;
	unsigned long u = neg ? (unsigned long)-v : (unsigned long)v;
	tmp[i] = 0;
	do {
		tmp[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u && i > 1);
	if (neg)
		tmp[--i] = '-';
	put_str(buf, n, tmp + i);
}

/* "error <what> <addr>: errno <e>\n" on the status fd, then exit. */
__attribute__((noreturn)) void fail(const char *what, uint64_t addr, long err)
{
	char buf[256];
	size_t n = 0;
	put_str(buf, &n, "error checksync-restore: ");
	put_str(buf, &n, what);
	if (addr) {
		put_str(buf, &n, " at ");
		put_hex(buf, &n, addr);
	}
	if (err) {
		put_str(buf, &n, ": errno ");
		put_dec(buf, &n, -err);
	}
	put_str(buf, &n, "\n");
	cs_sys3(NR_write, report_fd, buf, n);
	for (;;)
		cs_sys1(NR_exit_group, 127);
}

void check(long r, const char *what, uint64_t addr)
{
	if (r < 0)
		fail(what, addr, r);
}

void map_plan(int fd)
{
	struct {
		uint64_t dev, ino, nlink;
		uint32_t mode, uid, gid, pad;
		uint64_t rdev;
		int64_t size, blksize, blocks;
		uint64_t times[6], unused[3];
	} st;
	long r = cs_sys2(NR_fstat, fd, &st);
	check(r, "fstat of the plan", 0);
	if ((uint64_t)st.size < sizeof(struct cs_plan_header) || (uint64_t)st.size > 0x10000000ull)
		fail("plan has a bad size", 0, 0);
	r = cs_sys6(NR_mmap, (long)CS_RESTORER_PLAN_ADDR, st.size, PROT_READ | PROT_WRITE,
	            MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
	check(r, "mapping the plan", CS_RESTORER_PLAN_ADDR);
	plan = (const struct cs_plan_header *)CS_RESTORER_PLAN_ADDR;
	if (plan->magic != CS_PLAN_MAGIC || plan->version != CS_PLAN_VERSION ||
	    plan->total_len != (uint64_t)st.size)
		fail("plan is not from this build of checksync", 0, 0);
	if (plan->mode == CS_PLAN_RESTORE || plan->mode == CS_PLAN_STANDBY)
		report_fd = plan->status_fd;
}

static uint64_t auxv_value(uint64_t *sp, uint64_t type)
{
	uint64_t argc = sp[0];
	uint64_t *p = sp + 1 + argc + 1;
	while (*p)
		p++;
	for (p++; p[0]; p += 2)
		if (p[0] == type)
			return p[1];
	return 0;
}

/* Our own vDSO pages sit next to where the image's libraries may go: move
 * them into the region, keeping their relative layout. */
static void park_specials(uint64_t vdso)
{
	for (int i = 0; i < CS_PLAN_SPECIALS; i++) {
		const struct cs_plan_special *s = &plan->specials[i];
		if (!s->len)
			continue;
		uint64_t from = vdso + (uint64_t)s->rel;
		uint64_t to = CS_RESTORER_PARK_ADDR + 0x100000 + (uint64_t)s->rel;
		long r =
		    cs_sys5(NR_mremap, from, s->len, s->len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		check(r, "parking the vDSO", from);
	}
}

static void unmap_outside_region(void)
{
	long r = cs_sys2(NR_munmap, 0, CS_RESTORER_BASE);
	check(r, "unmapping below the restorer", 0);
	uint64_t end = CS_RESTORER_BASE + CS_RESTORER_LEN;
	r = cs_sys2(NR_munmap, end, TASK_TOP - end);
	check(r, "unmapping above the restorer", end);
}

const void *at(uint64_t off)
{
	return (const char *)plan + off;
}

void create_maps(void)
{
	const struct cs_plan_map *m = at(plan->maps_off);
	for (uint32_t i = 0; i < plan->n_maps; i++, m++) {
		uint32_t prot = m->prot | (m->has_pages ? PROT_WRITE : 0);
		uint32_t flags = m->mmap_flags | MAP_FIXED_NOREPLACE;
		int fd = -1;
		if (m->kind == CS_PLAN_MAP_ANON)
			flags |= MAP_ANONYMOUS;
		else
			fd = m->fd;
		long r = cs_sys6(NR_mmap, m->start, m->len, prot, flags, fd,
		                 m->kind == CS_PLAN_MAP_ANON ? 0 : m->pgoff);
		check(r, "mapping a saved region", m->start);
		if ((uint64_t)r != m->start)
			fail("kernel placed a saved region elsewhere", m->start, 0);
	}
}

void copy_pages(void)
{
	const struct cs_plan_copy *c = at(plan->copies_off);
	for (uint32_t i = 0; i < plan->n_copies; i++, c++) {
		uint64_t done = 0;
		while (done < c->len) {
			uint64_t chunk = c->len - done;
			if (chunk > 0x40000000ull)
				chunk = 0x40000000ull;
			long r =
			    cs_sys4(NR_pread64, c->fd, c->addr + done, chunk, c->file_off + done);
			check(r, "reading pages from an image", c->addr + done);
			if (r == 0)
				fail("image ends before its pages", c->addr + done, 0);
			done += (uint64_t)r;
		}
	}
}

/* The advice the program gave each mapping (VmFlags at the checkpoint),
 * given again once its pages are in place: MADV_HUGEPAGE before would
 * only make the copy allocate huge pages early. */
void restore_advice(void)
{
	static const struct {
		uint32_t bit;
		int advice;
	} table[] = {
	    {CS_PLAN_MADV_DONTFORK, 10},   {CS_PLAN_MADV_WIPEONFORK, 18},
	    {CS_PLAN_MADV_DONTDUMP, 16},   {CS_PLAN_MADV_HUGEPAGE, 14},
	    {CS_PLAN_MADV_NOHUGEPAGE, 15}, {CS_PLAN_MADV_MERGEABLE, 12},
	    {CS_PLAN_MADV_SEQUENTIAL, 2},  {CS_PLAN_MADV_RANDOM, 1},
	};
	const struct cs_plan_map *m = at(plan->maps_off);
	for (uint32_t i = 0; i < plan->n_maps; i++, m++)
		for (uint32_t k = 0; m->advice && k < sizeof(table) / sizeof(table[0]); k++)
			if (m->advice & table[k].bit)
				check(cs_sys3(NR_madvise, m->start, m->len, table[k].advice),
				      "madvise of a saved region", m->start);
}

void final_protections(void)
{
	const struct cs_plan_map *m = at(plan->maps_off);
	for (uint32_t i = 0; i < plan->n_maps; i++, m++) {
		if (!m->has_pages || (m->prot & PROT_WRITE))
			continue;
		check(cs_sys3(NR_mprotect, m->start, m->len, m->prot), "setting protection",
		      m->start);
	}
}

/* The saved addresses are free now (nothing of the image overlaps them);
 * the relative layout is the kernel's, which the tool checked is the same. */
static void place_specials(void)
{
	for (int i = 0; i < CS_PLAN_SPECIALS; i++) {
		const struct cs_plan_special *s = &plan->specials[i];
		if (!s->len)
			continue;
		uint64_t from = CS_RESTORER_PARK_ADDR + 0x100000 + (uint64_t)s->rel;
		long r = cs_sys5(NR_mremap, from, s->len, s->len, MREMAP_MAYMOVE | MREMAP_FIXED,
		                 s->target);
		check(r, "moving the vDSO to its saved address", s->target);
	}
}

static void restore_sigactions(void)
{
	const struct cs_plan_sigaction *s = at(plan->sigactions_off);
	for (uint32_t i = 0; i < plan->n_sigactions; i++, s++) {
		struct {
			uint64_t handler, flags, restorer, mask;
		} ksa = {s->handler, s->flags, s->restorer, s->mask};
		if (s->signo == 9 || s->signo == 19)
			continue;
		check(cs_sys4(NR_rt_sigaction, s->signo, &ksa, 0, 8), "restoring a signal handler",
		      s->signo);
	}
}

/*
 * PR_SET_MM_EXE_FILE fails with EBUSY while any mapping still comes from the
 * current executable (ours). The legacy PR_SET_MM_EXE_FILE also needs
 * CAP_SYS_RESOURCE, which root in a container may lack; PR_SET_MM_MAP with
 * exe_fd needs only CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE. So the
 * file-backed part of our own image is replaced by an anonymous copy (one
 * mremap swaps identical bytes under the running code), and the exe file
 * is set together with the mm fields. The stack is in bss beyond _edata,
 * so it is not touched.
 */
extern char __executable_start[], _edata[];

__attribute__((noinline)) static void become_anonymous(void)
{
	uint64_t start = (uint64_t)__executable_start;
	uint64_t len = (((uint64_t)_edata + PAGE - 1) & ~(PAGE - 1)) - start;
	uint64_t tmp = CS_RESTORER_PARK_ADDR + 0x4000000;
	long r = cs_sys6(NR_mmap, (long)tmp, (long)len, PROT_READ | PROT_WRITE | PROT_EXEC,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	check(r, "mapping a copy of the restorer", tmp);
	memcpy((void *)tmp, (const void *)start, len);
	r = cs_sys5(NR_mremap, tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, start);
	check(r, "replacing the restorer by its copy", start);
}

static void restore_mm(void)
{
	struct prctl_mm_map map = {
	    .start_code = plan->start_code,
	    .end_code = plan->end_code,
	    .start_data = plan->start_data,
	    .end_data = plan->end_data,
	    .start_brk = plan->start_brk,
	    .brk = plan->brk,
	    .start_stack = plan->start_stack,
	    .arg_start = plan->arg_start,
	    .arg_end = plan->arg_end,
	    .env_start = plan->env_start,
	    .env_end = plan->env_end,
	    .auxv = (__u64 *)plan->auxv,
	    .auxv_size = plan->auxv_len,
	    .exe_fd = (uint32_t)plan->exe_fd,
	};
	become_anonymous();
	check(cs_sys5(NR_prctl, PR_SET_MM, PR_SET_MM_MAP, &map, sizeof(map), 0), "PR_SET_MM_MAP",
	      plan->start_code);
	check(cs_sys5(NR_prctl, PR_SET_NAME, plan->comm, 0, 0, 0), "PR_SET_NAME", 0);
}

static struct cs_agent_restore_block *fill_block(int32_t pending)
{
	struct cs_agent_restore_block *b = (void *)plan->block_addr;
	if (b->magic != CS_AGENT_BLOCK_MAGIC)
		fail("agent restore block has no magic", plan->block_addr, 0);
	b->restored = 1;
	b->restored_from_generation = plan->restored_from_generation;
	b->next_generation = plan->next_generation;
	b->away_ns = plan->away_ns;
	memcpy(b->dir, plan->dir, sizeof(b->dir));
	b->dir[sizeof(b->dir) - 1] = 0;
	b->main_left = 0;
	__atomic_store_n(&b->threads_pending, pending, __ATOMIC_SEQ_CST);
	return b;
}

static void restore_cloexec(void)
{
	const int32_t *fd = at(plan->cloexec_off);
	for (uint32_t i = 0; i < plan->n_cloexec; i++)
		check(cs_sys3(NR_fcntl, fd[i], 2 /* F_SETFD */, 1 /* FD_CLOEXEC */),
		      "setting FD_CLOEXEC", (uint64_t)fd[i]);
}

static void restore_rlimits(void)
{
	for (uint32_t i = 0; i < plan->n_rlimits; i++) {
		const struct cs_plan_rlimit *l = &plan->rlimits[i];
		uint64_t v[2] = {l->cur, l->max};
		check(cs_sys4(NR_prlimit64, 0, l->resource, v, 0), "restoring an rlimit",
		      l->resource);
	}
}

#define PR_TIMER_CREATE_RESTORE_IDS 77 /* Linux 6.17: timer_create takes the id it is given */
#define TIMER_KIND_POSIX            4
#define TIMER_NOTIFY_THREAD_ID      4 /* SIGEV_THREAD_ID */

struct ksigevent {
	uint64_t value;
	int32_t signo, notify, tid;
	int32_t pad[11];
};

static void ns_to(uint64_t ns, long *sec, long *frac, uint64_t unit)
{
	*sec = (long)(ns / 1000000000ull);
	*frac = (long)(ns % 1000000000ull / unit);
}

/* setitimer: kind 1..3 is ITIMER_REAL, VIRTUAL, PROF (0..2). A remaining
 * time below a microsecond still arms the timer. */
static void interval_timer(const struct cs_plan_timer *t)
{
	long v[4];
	uint64_t value = t->value_ns < 1000 ? 1000 : t->value_ns;
	ns_to(t->interval_ns, &v[0], &v[1], 1000);
	ns_to(value, &v[2], &v[3], 1000);
	check(cs_sys3(NR_setitimer, t->kind - 1, v, 0), "setitimer", t->kind - 1);
}

/*
 * A POSIX timer with the id the program holds. With exact ids the kernel
 * takes the id it is given; without (before Linux 6.17) ids come in
 * ascending order per process, so timers are created in id order and the
 * ids below each one are used up by timers deleted at once.
 */
static void posix_timer(const struct cs_plan_timer *t, int exact)
{
	struct ksigevent ev = {.value = t->sigval,
	                       .signo = (int32_t)t->signo,
	                       .notify = (int32_t)t->notify,
	                       .tid = t->notify_tid};
	int32_t id = t->id;
	for (;;) {
		check(cs_sys3(NR_timer_create, t->clockid, &ev, &id), "timer_create of POSIX timer",
		      (uint64_t)t->id);
		if (exact || id == t->id)
			break;
		if (id > t->id)
			fail("timer_create handed out an id past the saved one", (uint64_t)t->id,
			     0);
		cs_sys1(NR_timer_delete, id);
	}
	if (!t->value_ns && !t->interval_ns)
		return;
	long its[4];
	ns_to(t->interval_ns, &its[0], &its[1], 1);
	ns_to(t->value_ns ? t->value_ns : 1, &its[2], &its[3], 1);
	check(cs_sys4(NR_timer_settime, id, 0, its, 0), "timer_settime of POSIX timer",
	      (uint64_t)t->id);
}

/* A POSIX timer that signals a thread other than the main one waits until
 * that thread exists (after "ok"): the kernel checks the tid at
 * timer_create. */
static int deferred(const struct cs_plan_timer *t, int32_t main_tid)
{
	return t->kind == TIMER_KIND_POSIX && t->notify == TIMER_NOTIFY_THREAD_ID &&
	       t->notify_tid != main_tid;
}

/* Armed while every signal is blocked (the restorer's mask, which the
 * threads inherit): an expiry before the program runs stays pending until
 * rt_sigreturn restores each thread's own mask. Timers are created in id
 * order; without exact ids (before Linux 6.17) a deferred timer would get
 * the wrong id, so such an image fails here, before "ok". */
static void restore_timers(int32_t main_tid, int later)
{
	const struct cs_plan_timer *t = at(plan->timers_off);
	int posix = 0, exact;
	for (uint32_t i = 0; i < plan->n_timers; i++) {
		if (t[i].kind != TIMER_KIND_POSIX && !later)
			interval_timer(&t[i]);
		if (t[i].kind == TIMER_KIND_POSIX && deferred(&t[i], main_tid) == later)
			posix++;
		if (!later && deferred(&t[i], main_tid))
			posix++; /* needs the answer below before "ok" */
	}
	if (!posix)
		return;
	exact = cs_sys5(NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0;
	for (uint32_t i = 0; i < plan->n_timers; i++) {
		if (!exact && deferred(&t[i], main_tid))
			fail("a POSIX timer that signals another thread needs exact timer ids "
			     "(Linux 6.17)",
			     (uint64_t)t[i].id, 0);
		if (t[i].kind == TIMER_KIND_POSIX && deferred(&t[i], main_tid) == later)
			posix_timer(&t[i], exact);
	}
	if (exact)
		cs_sys5(NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
}

/* What the exec of the restorer reset: membarrier registrations (they
 * belong to the mm), THP disable, child subreaper, dumpable (last: the
 * restorer's own /proc files need not stay readable). */
static void restore_attrs(void)
{
	for (uint32_t bit = 1; bit && bit <= plan->membarrier; bit <<= 1)
		if (plan->membarrier & bit)
			check(cs_sys3(NR_membarrier, bit, 0, 0), "membarrier registration", bit);
	if (plan->thp_disable)
		check(cs_sys5(NR_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE", 0);
	if (plan->child_subreaper)
		check(cs_sys5(NR_prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0),
		      "PR_SET_CHILD_SUBREAPER", 0);
	if (plan->dumpable != 1)
		check(cs_sys5(NR_prctl, PR_SET_DUMPABLE, plan->dumpable, 0, 0, 0),
		      "PR_SET_DUMPABLE", plan->dumpable);
}

/*
 * Signals pending at the checkpoint, queued again with every signal blocked
 * (the restorer's mask): each stays pending until rt_sigreturn puts the
 * thread's own mask back, then is delivered, or stays pending if the
 * program blocks it. The kernel lets a thread queue any siginfo to itself
 * (si_code >= 0 and SI_TKILL only to itself), so each thread queues its
 * own and the main thread, whose tid is the process's, the shared ones.
 */
static void queue_signals(int32_t tid, int32_t tgid)
{
	const struct cs_plan_siginfo *q = at(plan->sigq_off);
	for (uint32_t i = 0; i < plan->n_sigq; i++) {
		if (q[i].tid != tid)
			continue;
		long r = tid ? cs_sys4(NR_rt_tgsigqueueinfo, tgid, tid, q[i].signo, q[i].info)
		             : cs_sys3(NR_rt_sigqueueinfo, tgid, q[i].signo, q[i].info);
		check(r, "queueing a pending signal again", q[i].signo);
	}
}

/*
 * The thread's seccomp filters, oldest first, installed last: after its
 * credentials (the program's no_new_privs or CAP_SYS_ADMIN allows it, as it
 * did when the program installed them), right before it leaves for program
 * code, so nothing the restorer still does can be forbidden by them and the
 * program never runs with fewer. A failure ends the process.
 */
static void install_filters(int32_t tid)
{
	const struct cs_plan_seccomp *f = at(plan->seccomp_off);
	for (uint32_t i = 0; i < plan->n_seccomp; i++) {
		if (f[i].tid != tid)
			continue;
		struct {
			uint16_t len;
			uint16_t pad[3];
			uint64_t filter;
		} prog = {(uint16_t)(f[i].len / 8), {0}, (uint64_t)at(f[i].prog_off)};
		check(cs_sys3(NR_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, f[i].flags, &prog),
		      "installing a seccomp filter", (uint64_t)tid);
	}
}

/* Per-thread kernel state that clone does not carry: robust list, rseq,
 * gs. fs and the tid address come with clone3 (or set_tid_address). */
static void thread_state(const struct cs_plan_thread *t)
{
	if (t->gs_base)
		check(cs_sys2(NR_arch_prctl, ARCH_SET_GS, t->gs_base), "ARCH_SET_GS", t->gs_base);
	if (t->robust_list)
		check(cs_sys2(NR_set_robust_list, t->robust_list, t->robust_len), "set_robust_list",
		      t->robust_list);
	if (t->rseq_addr)
		check(cs_sys4(NR_rseq, t->rseq_addr, t->rseq_len, 0, t->rseq_sig), "rseq",
		      t->rseq_addr);
}

/* The program's credentials on this thread; a failure ends the process
 * (it must not run with more privilege than it had). */
static void creds(void)
{
	const char *what = "";
	check(cs_restore_creds(&plan->creds, &what), what, 0);
}

void cs_thread_entry(const struct cs_plan_thread *t)
{
	thread_state(t);
	queue_signals(t->tid, (int32_t)cs_sys0(NR_getpid));
	creds();
	install_filters(t->tid);
	struct cs_agent_restore_block *b = (void *)plan->block_addr;
	cs_jump(t->ucontext, (uint64_t)&b->threads_pending, 0, 0, plan->trampoline, 0);
}

static void create_thread(const struct cs_plan_thread *t, uint32_t slot)
{
	struct clone_args args = {0};
	int32_t tid = t->tid;
	args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
	             CLONE_SYSVSEM | CLONE_SETTLS;
	if (t->clear_child_tid) {
		/* CLONE_CHILD_SETTID repairs the tid glibc caches there. */
		args.flags |= CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
		args.child_tid = t->clear_child_tid;
	}
	args.tls = t->fs_base;
	args.stack = CS_RESTORER_STACKS_ADDR + (uint64_t)slot * CS_RESTORER_THREAD_STACK;
	args.stack_size = CS_RESTORER_THREAD_STACK;
	args.set_tid = (uint64_t)&tid;
	args.set_tid_size = 1;
	long r = cs_clone3_thread(&args, sizeof(args), (void *)t);
	check(r, "clone3 of a thread with its saved tid", (uint64_t)tid);
}

static void wait_for_threads(struct cs_agent_restore_block *b)
{
	struct {
		long sec, nsec;
	} ts = {0, 1000000};
	for (;;) {
		int32_t v = __atomic_load_n(&b->threads_pending, __ATOMIC_SEQ_CST);
		if (v == 0)
			return;
		/* A timeout, not trust in the waker's private/shared flavour. */
		cs_sys4(NR_futex, &b->threads_pending, FUTEX_WAIT, v, &ts);
	}
}

/* Opened while still root: once the program's credentials are back the
 * process may be non-dumpable, and then the agent could not. */
static int32_t pagemap_fd = -1;
/* Armed as soon as memory is the generation's: every write the restorer
 * makes after that (the restore block, thread frames, the agent's
 * variables) shows as written, so the agent's first delta holds it. */
static int32_t uffd = -1;

static void arm_tracking(void)
{
	pagemap_fd = (int32_t)cs_sys3(NR_open, "/proc/self/pagemap", 02000000 /* O_CLOEXEC */, 0);
	uffd = cs_restore_arm_tracking(pagemap_fd);
}

static void threads_and_leave(void)
{
	const struct cs_plan_thread *t = at(plan->threads_off);
	const struct cs_plan_thread *main_thread = 0;
	int32_t others = (int32_t)plan->n_threads - 1;
	if (others > 0) {
		long r = cs_sys6(NR_mmap, (long)CS_RESTORER_STACKS_ADDR,
		                 (long)((uint64_t)(others + 1) * CS_RESTORER_THREAD_STACK),
		                 PROT_READ | PROT_WRITE,
		                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		check(r, "mapping thread stacks", CS_RESTORER_STACKS_ADDR);
	}
	struct cs_agent_restore_block *b = fill_block(others);
	int32_t main_tid = 0;
	for (uint32_t i = 0; i < plan->n_threads; i++)
		if (t[i].is_main)
			main_tid = t[i].tid;
	restore_cloexec();
	restore_rlimits();
	restore_timers(main_tid, 0);
	restore_attrs();
	/* The shared queue before any thread exists: none can take one early. */
	queue_signals(0, main_tid);
	queue_signals(main_tid, main_tid);
	/* From here on nothing may fail: threads start running app code. */
	cs_sys3(NR_write, plan->status_fd, "ok\n", 3);
	cs_sys3(NR_close_range, plan->helper_lo, plan->exe_fd, 0);
	report_fd = 2;
	b->pagemap_fd = pagemap_fd;
	b->uffd = uffd;
	uint32_t slot = 1;
	for (uint32_t i = 0; i < plan->n_threads; i++) {
		if (t[i].is_main)
			main_thread = &t[i];
		else
			create_thread(&t[i], slot++);
	}
	if (!main_thread)
		fail("plan has no main thread", 0, 0);
	restore_timers(main_tid, 1);
	thread_state(main_thread);
	cs_sys1(NR_set_tid_address, main_thread->clear_child_tid);
	check(cs_sys2(NR_arch_prctl, ARCH_SET_FS, main_thread->fs_base), "ARCH_SET_FS", 0);
	creds();
	/* A uid change made the mm non-dumpable: as it was at the checkpoint. */
	if (plan->creds.present)
		cs_sys2(NR_prctl, PR_SET_DUMPABLE, plan->creds.dumpable);
	install_filters(main_thread->tid);
	wait_for_threads(b);
	/* The exe file was set with the mm fields (restore_mm), so -1 here. */
	cs_jump(main_thread->ucontext, CS_RESTORER_BASE, CS_RESTORER_LEN, (uint64_t)-1,
	        plan->trampoline_last, (uint64_t)&b->main_left);
}

static int parse_fd(const char *s)
{
	int v = 0;
	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

void cs_restorer_main(uint64_t *sp)
{
	uint64_t all = ~0ull;
	cs_sys4(NR_rt_sigprocmask, 2 /* SIG_SETMASK */, &all, 0, 8);
	const char *const *argv = (const char *const *)(sp + 1);
	if (sp[0] != 2) {
		static const char usage[] =
		    "usage: checksync-restore PLAN-FD (run by checksync restore)\n";
		cs_sys3(NR_write, 2, usage, sizeof(usage) - 1);
		cs_sys1(NR_exit_group, 2);
	}
	int fd = parse_fd(argv[1]);
	if (fd < 0)
		fail("bad plan fd argument", 0, 0);
	map_plan(fd);
	if (plan->mode != CS_PLAN_RESTORE && plan->mode != CS_PLAN_STANDBY)
		fail("the first plan must be a restore or a standby", 0, 0);
	uint64_t vdso = auxv_value(sp, AT_SYSINFO_EHDR);
	if (!vdso && plan->specials[CS_PLAN_VDSO].len)
		fail("no AT_SYSINFO_EHDR", 0, 0);
	park_specials(vdso);
	unmap_outside_region();
	create_maps();
	copy_pages();
	restore_advice();
	final_protections();
	if (plan->mode == CS_PLAN_STANDBY)
		cs_standby_loop(); /* returns once promoted, with the last plan */
	arm_tracking();
	place_specials();
	restore_sigactions();
	restore_mm();
	threads_and_leave();
}
