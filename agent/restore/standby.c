/*
 * The warm standby's side of the restorer (docs/restore.md, section 9).
 *
 * After a STANDBY plan the process holds generation G's memory and no
 * thread runs program code (this one is the only thread, in the restorer,
 * every signal blocked). The tool then sends one plan per newer generation
 * over the control socket, each with the fds it names (SCM_RIGHTS): the
 * changes from the generation the process holds to the next one (ranges
 * to unmap, new mappings, kept ranges that get pages or a new protection,
 * page copies, pages to drop). Each is applied completely before the next
 * is read, so between two plans the memory equals one whole generation.
 *
 * The last plan (PROMOTE) also names the program's fds, which a donor
 * process made at their numbers: they are taken with pidfd_getfd, so no
 * socket is bound and nothing is opened before promotion. Then the time
 * namespace the donor made with offsets of the moment (setns: allowed for
 * a single-threaded process), cwd, umask, personality, POSIX locks (they
 * belong to the process that takes them); restorer.c goes on from there.
 */
#include <linux/mman.h>

#include "restorer.h"
#include "sys.h"

#define MAX_SENT         1024 /* fds with one plan: images and mapped files */
#define PER_MSG          250  /* the kernel's SCM_MAX_FD is 253 */
#define SOL_SOCKET       1
#define SCM_RIGHTS       1
#define MSG_CMSG_CLOEXEC 0x40000000
#define F_SETLK          6
#define F_DUPFD_CLOEXEC  1030
#define CLONE_NEWTIME    0x80

/* The kernel's layouts for recvmsg (no libc headers here). */
struct k_iovec {
	void *base;
	uint64_t len;
};
struct k_msghdr {
	void *name;
	int32_t namelen, pad;
	struct k_iovec *iov;
	uint64_t iovlen;
	void *control;
	uint64_t controllen;
	int32_t flags, pad2;
};
struct k_cmsghdr {
	uint64_t len;
	int32_t level, type;
};

static int32_t sent[MAX_SENT];
static uint32_t n_sent;
static int32_t status_fd, control_fd, exe_fd;

/* One message's fds appended to sent[]; 0 when the tool closed the socket. */
static long receive_fds(void)
{
	char byte;
	uint64_t cbuf[(sizeof(struct k_cmsghdr) + PER_MSG * 4 + 7) / 8 + 1];
	struct k_iovec iov = {&byte, 1};
	struct k_msghdr msg = {
	    .iov = &iov, .iovlen = 1, .control = cbuf, .controllen = sizeof(cbuf)};
	long r = cs_sys3(NR_recvmsg, control_fd, &msg, MSG_CMSG_CLOEXEC);
	if (r <= 0)
		return r;
	const struct k_cmsghdr *c = (const void *)cbuf;
	if (msg.controllen < sizeof(*c) || c->level != SOL_SOCKET || c->type != SCM_RIGHTS)
		fail("a plan message came without its fds", 0, 0);
	uint32_t n = (uint32_t)((c->len - sizeof(*c)) / 4);
	const int32_t *fds = (const int32_t *)(c + 1);
	for (uint32_t i = 0; i < n; i++) {
		if (n_sent == MAX_SENT)
			fail("a plan came with too many fds", n_sent, 0);
		sent[n_sent++] = fds[i];
	}
	return 1;
}

static void close_sent(void)
{
	for (uint32_t i = 0; i < n_sent; i++)
		cs_sys1(NR_close, sent[i]);
	n_sent = 0;
}

static int32_t sent_fd(int32_t index)
{
	if (index < 0 || (uint32_t)index >= n_sent)
		fail("a plan names an fd that did not come with it", (uint64_t)index, 0);
	return sent[index];
}

/* Plan fields that name fds by their index among those sent become the
 * numbers they got here (the plan is a private mapping: writable). */
static void translate_fds(void)
{
	struct cs_plan_header *h = (struct cs_plan_header *)plan;
	struct cs_plan_map *m = (struct cs_plan_map *)at(h->maps_off);
	struct cs_plan_copy *c = (struct cs_plan_copy *)at(h->copies_off);
	for (uint32_t i = 0; i < h->n_maps; i++)
		if (m[i].kind == CS_PLAN_MAP_FILE)
			m[i].fd = sent_fd(m[i].fd);
	for (uint32_t i = 0; i < h->n_copies; i++)
		c[i].fd = sent_fd(c[i].fd);
	h->status_fd = status_fd;
	h->control_fd = control_fd;
}

/* The next plan with all its fds; the previous plan is unmapped first. */
static void next_plan(void)
{
	long r = receive_fds();
	if (r == 0) /* the tool is gone: so is the standby, quietly */
		cs_sys1(NR_exit_group, 0);
	check(r, "receiving a plan", 0);
	check(cs_sys2(NR_munmap, (long)CS_RESTORER_PLAN_ADDR, plan->total_len),
	      "unmapping the previous plan", CS_RESTORER_PLAN_ADDR);
	map_plan(sent_fd(0));
	if (plan->mode != CS_PLAN_APPLY && plan->mode != CS_PLAN_PROMOTE)
		fail("a standby got a plan that is neither apply nor promote", plan->mode, 0);
	while (n_sent < plan->n_fds_sent) {
		r = receive_fds();
		if (r <= 0)
			fail("the plan's fds did not all arrive", n_sent, r);
	}
	translate_fds();
}

static void protect_kept(int for_copy)
{
	const struct cs_plan_range *k = at(plan->keeps_off);
	for (uint32_t i = 0; i < plan->n_keeps; i++) {
		/* held's protection is still on: a range that becomes writable
		 * in this generation may not be yet */
		if (for_copy && !k[i].has_pages)
			continue;
		uint32_t prot = k[i].prot | (for_copy ? PROT_WRITE : 0);
		check(cs_sys3(NR_mprotect, k[i].start, k[i].len, prot), "protecting a kept range",
		      k[i].start);
	}
}

/* One generation's changes, all of them: the memory then equals it. */
static void apply_changes(void)
{
	const struct cs_plan_range *u = at(plan->unmaps_off);
	const struct cs_plan_range *d = at(plan->drops_off);
	for (uint32_t i = 0; i < plan->n_unmaps; i++)
		check(cs_sys2(NR_munmap, u[i].start, u[i].len), "unmapping a range", u[i].start);
	protect_kept(1);
	create_maps();
	copy_pages();
	/* a page no longer resident: zero again (anonymous) or the file's */
	for (uint32_t i = 0; i < plan->n_drops; i++)
		check(cs_sys3(NR_madvise, d[i].start, d[i].len, 4 /* MADV_DONTNEED */),
		      "dropping pages", d[i].start);
	restore_advice();
	final_protections();
	protect_kept(0);
}

/* Our own fds go where the plan says (status at helper_lo, control next,
 * the exe file at exe_fd), above every fd of the program: first all to
 * scratch numbers above those, then each to its place. */
static void move_own_fds(void)
{
	struct cs_plan_header *h = (struct cs_plan_header *)plan;
	int32_t *own[3] = {&status_fd, &control_fd, &exe_fd};
	int32_t want[3] = {h->helper_lo, h->helper_lo + 1, h->exe_fd};
	for (int i = 0; i < 3; i++) {
		long t = cs_sys3(NR_fcntl, *own[i], F_DUPFD_CLOEXEC, h->exe_fd + 1);
		check(t, "moving a helper fd", (uint64_t)*own[i]);
		cs_sys1(NR_close, *own[i]);
		*own[i] = (int32_t)t;
	}
	for (int i = 0; i < 3; i++) {
		check(cs_sys3(NR_dup3, *own[i], want[i], 02000000 /* O_CLOEXEC */),
		      "placing a helper fd", (uint64_t)want[i]);
		cs_sys1(NR_close, *own[i]);
		*own[i] = want[i];
	}
	h->status_fd = status_fd;
	report_fd = status_fd;
}

/* The program's fds, made by the donor at their numbers. */
static void take_fds(int32_t pidfd)
{
	const int32_t *n = at(plan->take_off);
	for (uint32_t i = 0; i < plan->n_take; i++) {
		long t = cs_sys3(NR_pidfd_getfd, pidfd, n[i], 0);
		check(t, "taking a program fd from the donor", (uint64_t)n[i]);
		if (t != n[i]) {
			check(cs_sys3(NR_dup3, t, n[i], 0), "placing a program fd", (uint64_t)n[i]);
			cs_sys1(NR_close, t);
		} else { /* pidfd_getfd's copy is close-on-exec; the restorer sets
			  * FD_CLOEXEC where the program had it */
			cs_sys3(NR_fcntl, t, 2 /* F_SETFD */, 0);
		}
	}
	const struct cs_plan_lock *l = at(plan->locks_off);
	for (uint32_t i = 0; i < plan->n_locks; i++) {
		struct {
			int16_t type, whence;
			int32_t pad;
			int64_t start, len;
			int32_t pid, pad2;
		} fl = {l[i].type, l[i].whence, 0, l[i].start, l[i].len, 0, 0};
		check(cs_sys3(NR_fcntl, l[i].fd, F_SETLK, &fl),
		      "taking a POSIX lock again (another process may hold it now)",
		      (uint64_t)l[i].fd);
	}
}

/* Clocks continue from the checkpoint's readings: the donor made a time
 * namespace with offsets of the moment of promotion. */
static void enter_time_namespace(int32_t pidfd)
{
	long t = cs_sys3(NR_pidfd_getfd, pidfd, plan->donor_timens, 0);
	check(t, "taking the time namespace from the donor", 0);
	check(cs_sys2(NR_setns, t, CLONE_NEWTIME), "entering the time namespace", 0);
	cs_sys1(NR_close, t);
}

/*
 * The donor still holds every file it made: a program that closes an fd
 * would find it still open (a listening socket still listening, an epoll
 * registration still there, since both last until the file's last
 * reference goes) and a capture in that moment records it. So the program
 * runs only once the tool has seen the donor exit: "taken", then one byte
 * on the control socket.
 */
static void wait_donor_gone(void)
{
	char go;
	cs_sys3(NR_write, status_fd, "taken\n", 6);
	long r = cs_sys3(NR_read, control_fd, &go, 1);
	if (r != 1)
		fail("the tool did not confirm the donor is gone", 0, r);
}

static void promote(void)
{
	int32_t pidfd = (int32_t)cs_sys3(NR_fcntl, sent_fd(plan->donor_pidfd), F_DUPFD_CLOEXEC,
	                                 plan->exe_fd + 8);
	check(pidfd, "keeping the donor's pidfd", 0);
	close_sent();
	move_own_fds();
	take_fds(pidfd);
	enter_time_namespace(pidfd);
	cs_sys1(NR_close, pidfd);
	check(cs_sys1(NR_chdir, plan->cwd), "chdir to the program's working directory", 0);
	cs_sys1(NR_umask, plan->umask);
	check(cs_sys1(NR_personality, plan->personality), "personality", plan->personality);
	wait_donor_gone();
}

void cs_standby_loop(void)
{
	status_fd = plan->status_fd;
	control_fd = plan->control_fd;
	exe_fd = plan->exe_fd;
	/* The images and mapped files of the first plan are not needed any
	 * more: each later plan brings its own. */
	cs_sys3(NR_close_range, plan->helper_lo + 1, plan->exe_fd - 1, 0);
	cs_sys3(NR_write, status_fd, "ready\n", 6);
	for (;;) {
		next_plan();
		apply_changes();
		if (plan->mode == CS_PLAN_PROMOTE)
			break;
		close_sent();
		cs_sys3(NR_write, status_fd, "applied\n", 8);
	}
	promote();
}
