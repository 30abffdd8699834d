/*
 * checksync standby: a warm standby of the program whose chain is DIR
 * (docs/restore.md, section 9; the daemon's interface in docs/dataplane.md).
 *
 * The process is rebuilt from the newest generation as a restore would,
 * except that the restorer stops once the memory is loaded: no thread
 * runs program code, no fd of the program exists. Every newer generation
 * that appears in DIR is then applied to it (only what changed since the
 * generation it holds: plan_step.c), one whole generation at a time. On
 * `promote`, a donor (a fork of this tool) makes the program's fds at
 * their numbers and a time namespace whose offsets continue the
 * checkpoint's clocks; the standby takes both and goes on as a restored
 * process. From then on this tool is what `checksync restore` is: the
 * program's parent, exiting with its status.
 *
 * Control: lines on --control-fd (or stdin/stdout), one event or command
 * each, fields key=value, a free sentence last as why=...
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../restore/cs_plan.h"
#include "restore.h"
#include "tool.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#define FDS_PER_MSG 250

struct standby {
	char dir[PATH_MAX], restorer[PATH_MAX];
	int ctl_in, ctl_out;   /* the daemon's commands and our events */
	int own_pidns;         /* our PID namespace: later children stay in it */
	int notify, sigfd;     /* inotify on DIR; SIGTERM/SIGINT before promotion */
	pid_t init, host_pid;  /* the namespace init; the standby (host pid) */
	int status_rd;         /* the restorer's reports: ready, applied, ok, error */
	int control;           /* our end of the restorer's control socket */
	struct cs_loaded held; /* the generation the standby holds */
	int wants_compactor;
	uint64_t applied, skipped;
	char cmd[512];
	size_t cmd_len;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void emit(const struct standby *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void emit(const struct standby *sb, const char *fmt, ...)
{
	char line[1400];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	for (int i = 0; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	line[n++] = '\n';
	if (write(sb->ctl_out, line, (size_t)n) < 0)
		return;
}

/* One line the restorer (or the donor) wrote: "ready", "applied", "ok" or
 * "error <sentence>"; -1 at EOF. */
static int read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t k = read(fd, buf + n, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
	return n ? 0 : -1;
}

/* The restorer's answer; its error sentence (or why there is none) in why. */
static int expect(int fd, const char *want, char *why, size_t cap)
{
	char line[1200];
	if (read_line(fd, line, sizeof(line)) < 0) {
		snprintf(why, cap, "the standby process died without a word");
		return -1;
	}
	if (!strcmp(line, want))
		return 0;
	snprintf(why, cap, "%s", !strncmp(line, "error ", 6) ? line + 6 : line);
	return -1;
}

static int to_own_pidns(const struct standby *sb)
{
	/* unshare(CLONE_NEWPID) in cs_launch_start left our children's PID
	 * namespace on the standby's; a donor there could take a pid that is
	 * a tid of the image, and a second unshare would fail. */
	return setns(sb->own_pidns, CLONE_NEWPID);
}

static void release(struct cs_restore *r)
{
	for (size_t i = 0; i < r->n_files; i++)
		close(r->files[i].fd);
	free(r->files);
	r->files = NULL;
	r->n_files = 0;
	if (r->exe_fd >= 0)
		close(r->exe_fd);
	if (r->plan_fd >= 0)
		close(r->plan_fd);
	r->exe_fd = r->plan_fd = -1;
}

/* The chain's newest image becomes the one held; the rest are closed. */
static void hold(struct standby *sb, struct cs_chain *c)
{
	cs_loaded_close(&sb->held);
	sb->held = c->imgs[0];
	for (size_t i = 1; i < c->n; i++)
		cs_loaded_close(&c->imgs[i]);
	free(c->imgs);
	c->imgs = NULL;
	c->n = 0;
}

static uint64_t rss_bytes(pid_t pid)
{
	char path[64];
	unsigned long long size = 0, resident = 0;
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	FILE *f = fopen(path, "re");
	if (f && fscanf(f, "%llu %llu", &size, &resident) != 2)
		resident = 0;
	if (f)
		fclose(f);
	return resident * 4096ull;
}

/* CPU time in ms of the standby process (schedstat: nanoseconds on a
 * CPU) and of this tool (its checks and plans), which an apply costs. */
static double cpu_ms(pid_t pid)
{
	struct timespec self;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &self);
	char path[64];
	unsigned long long ns = 0;
	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	FILE *f = fopen(path, "re");
	if (f && fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	if (f)
		fclose(f);
	return (double)ns / 1e6 + (double)self.tv_sec * 1e3 + (double)self.tv_nsec / 1e6;
}

static int restore_child(void *arg)
{
	return cs_restore_exec(arg);
}

static void stop_standby(struct standby *sb)
{
	if (sb->init > 0) {
		kill(sb->init, SIGKILL);
		waitpid(sb->init, NULL, 0);
	}
	if (sb->status_rd >= 0)
		close(sb->status_rd);
	if (sb->control >= 0)
		close(sb->control);
	sb->init = sb->host_pid = -1;
	sb->status_rd = sb->control = -1;
	cs_loaded_close(&sb->held);
}

/* The newest generation's chain. A compactor working in DIR replaces and
 * prunes images while it is read (a parent merged away between the listing
 * and its open: ENOENT); the chain it leaves is whole again a moment later. */
static int pick_chain(const struct standby *sb, struct cs_chain *c, char *msg, size_t cap)
{
	int r = -ENOENT;
	for (int tries = 0; tries < 40 && r == -ENOENT; tries++) {
		if (tries)
			usleep(50000);
		r = cs_chain_pick(sb->dir, 0, c, msg, cap);
	}
	return r;
}

/* The process of the newest generation, stopped before its threads. */
static int build(struct standby *sb)
{
	struct cs_restore r = {
	    .exe_fd = -1, .plan_fd = -1, .status_rd = -1, .status_wr = -1, .control_fd = -1};
	struct cs_plan_step step = {.mode = CS_PLAN_STANDBY};
	char msg[2048];
	uint64_t t0 = now_ms();
	int sp[2] = {-1, -1};
	snprintf(r.dir, sizeof(r.dir), "%s", sb->dir);
	snprintf(r.restorer, sizeof(r.restorer), "%s", sb->restorer);
	if (pick_chain(sb, &r.chain, msg, sizeof(msg)) < 0) {
		emit(sb, "error why=refusing to build a standby: %s", msg);
		return -1;
	}
	r.img = r.chain.imgs[0].img;
	r.step = &step;
	uint64_t gen = r.img->header.generation;
	const char *shm = cs_shmem_standby_refusal(r.img);
	if (shm) { /* shmem.c */
		emit(sb, "error why=refusing to build a standby: %s", shm);
		cs_chain_free(&r.chain);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 ||
	    (r.control_fd = sp[1], cs_restore_prepare(&r) < 0)) {
		emit(sb,
		     "error why=generation %llu cannot be restored here (the tool's stderr "
		     "says why)",
		     (unsigned long long)gen);
		goto fail;
	}
	sb->wants_compactor = cs_restore_wants_compactor(&r);
	struct cs_launch l = {
	    .pid = r.img->process.pid,
	    .child = restore_child,
	    .arg = &r,
	    .close_in_init = {r.status_wr, sp[1], sb->ctl_in > 2 ? sb->ctl_in : -1},
	    .dir = r.dir};
	if (to_own_pidns(sb) < 0 || cs_launch_start(&l, &sb->init) < 0) {
		emit(sb, "error why=cannot make the standby's namespaces: %s", strerror(errno));
		goto fail;
	}
	to_own_pidns(sb);
	close(r.status_wr);
	close(sp[1]);
	sb->status_rd = r.status_rd;
	sb->control = sp[0];
	sb->host_pid = cs_launch_child_host_pid(sb->init);
	if (expect(sb->status_rd, "ready", msg, sizeof(msg)) < 0) {
		emit(sb, "error why=building the standby of generation %llu failed: %s",
		     (unsigned long long)gen, msg);
		release(&r);
		cs_chain_free(&r.chain);
		return -1;
	}
	release(&r);
	hold(sb, &r.chain);
	emit(sb, "ready generation=%llu rss=%llu ms=%llu", (unsigned long long)gen,
	     (unsigned long long)rss_bytes(sb->host_pid), (unsigned long long)(now_ms() - t0));
	return 0;
fail:
	if (sp[0] >= 0)
		close(sp[0]), close(sp[1]);
	release(&r);
	cs_chain_free(&r.chain);
	return -1;
}

/* The plan and its fds: the memfd, the images, the mapped files, extra. */
static int send_plan(const struct standby *sb, const struct cs_restore *r, int extra)
{
	size_t n = 0, cap = 2 + r->chain.n + r->n_files;
	int *fds = calloc(cap, sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	fds[n++] = r->plan_fd;
	for (size_t i = 0; i < r->chain.n; i++)
		fds[n++] = r->chain.imgs[i].fd;
	for (size_t i = 0; i < r->n_files; i++)
		fds[n++] = r->files[i].fd;
	if (extra >= 0)
		fds[n++] = extra;
	int err = 0;
	for (size_t at = 0; at < n && !err; at += FDS_PER_MSG) {
		size_t k = n - at < FDS_PER_MSG ? n - at : FDS_PER_MSG;
		char byte = 'p';
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(FDS_PER_MSG * sizeof(int))];
		} cb;
		struct iovec iov = {&byte, 1};
		struct msghdr msg = {.msg_iov = &iov,
		                     .msg_iovlen = 1,
		                     .msg_control = cb.buf,
		                     .msg_controllen = CMSG_SPACE(k * sizeof(int))};
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(k * sizeof(int));
		memcpy(CMSG_DATA(c), fds + at, k * sizeof(int));
		if (sendmsg(sb->control, &msg, MSG_NOSIGNAL) < 0)
			err = -errno;
	}
	free(fds);
	return err;
}

static int rebuild(struct standby *sb, uint64_t gen, const char *why)
{
	emit(sb, "rebuilding generation=%llu why=%s", (unsigned long long)gen, why);
	stop_standby(sb);
	return build(sb);
}

static uint64_t page_bytes(const struct cs_chain *c)
{
	uint64_t b = 0;
	for (size_t i = 0; i < c->n; i++)
		for (size_t k = 0; k < c->imgs[i].img->n_page_runs; k++)
			b += (uint64_t)c->imgs[i].img->page_runs[k].npages * 4096ull;
	return b;
}

/* Checks generation g (loaded in r->chain) as a restore of it would. */
static int acceptable(struct standby *sb, struct cs_restore *r, uint64_t g)
{
	const struct cs_image *img = r->img;
	const char *shm = cs_shmem_standby_refusal(img);
	if (shm) { /* shmem.c */
		emit(sb, "skipped generation=%llu why=%s", (unsigned long long)g, shm);
		sb->skipped = g;
		return -1;
	}
	if (cs_validate_unsupported(img) == 0 && cs_validate_abi(img) == 0 &&
	    cs_validate_files(r) == 0 && cs_validate_creds(r) == 0)
		return 0;
	emit(sb,
	     "skipped generation=%llu why=it cannot be restored here (the tool's stderr "
	     "says why)",
	     (unsigned long long)g);
	sb->skipped = g;
	return -1;
}

/* The plan from the held generation to r's, sent and applied: 0, -ESTALE
 * (r->chain lacks pages of a new range), or another error (the standby is
 * gone, why says why). r's mapped files are released either way. */
static int step_to(struct standby *sb, struct cs_restore *r, char *why, size_t cap)
{
	struct cs_plan_step step = {.mode = CS_PLAN_APPLY,
	                            .held = sb->held.img,
	                            .n_fds_sent = (uint32_t)(1 + r->chain.n + r->n_files)};
	r->step = &step;
	r->plan_fd = memfd_create("checksync-step", MFD_CLOEXEC);
	int err = r->plan_fd < 0 ? -errno : cs_plan_build(r);
	if (!err)
		err = send_plan(sb, r, -1);
	release(r);
	r->step = NULL; /* step is ours */
	if (err && err != -ESTALE)
		snprintf(why, cap, "planning it: %s", strerror(-err));
	else if (!err && expect(sb->status_rd, "applied", why, cap) < 0)
		err = -EIO;
	return err;
}

/* Loads generation g's images newer than the held one (whole: every image
 * of its chain) and checks g. 1: not now (skipped, or a compactor replaced
 * an image under us: the next look sees). */
static int load(struct standby *sb, struct cs_restore *r, uint64_t g, int whole)
{
	struct cs_chain_damage dmg = {0};
	int e = whole ? cs_chain_load(sb->dir, g, &r->chain, &dmg)
	              : cs_chain_load_since(sb->dir, g, sb->held.generation, &r->chain, &dmg);
	if (e == -ENOENT)
		return 1;
	if (e < 0) {
		emit(sb, "skipped generation=%llu why=%s at offset %llu: %s", (unsigned long long)g,
		     dmg.path, (unsigned long long)dmg.offset, dmg.msg);
		sb->skipped = g;
		return 1;
	}
	r->img = r->chain.imgs[0].img;
	if (r->img->process.pid == sb->held.img->process.pid && acceptable(sb, r, g) < 0) {
		release(r);
		cs_chain_free(&r->chain);
		return 1;
	}
	return 0;
}

/* Generation g, stepped to from the held one. -1: the standby is gone. */
static int apply(struct standby *sb, uint64_t g)
{
	struct cs_restore r = {
	    .exe_fd = -1, .plan_fd = -1, .status_rd = -1, .status_wr = -1, .control_fd = -1};
	char why[1400];
	uint64_t t0 = now_ms();
	double cpu0 = cpu_ms(sb->host_pid);
	snprintf(r.dir, sizeof(r.dir), "%s", sb->dir);
	if (load(sb, &r, g, 0))
		return 0;
	if (r.img->process.pid != sb->held.img->process.pid) {
		snprintf(why, sizeof(why), "generation %llu is another process (pid %d, not %d)",
		         (unsigned long long)g, r.img->process.pid, sb->held.img->process.pid);
		cs_chain_free(&r.chain);
		return rebuild(sb, g, why);
	}
	uint64_t bytes = page_bytes(&r.chain);
	int err = step_to(sb, &r, why, sizeof(why));
	if (err == -ESTALE) {
		/* a new range holds pages older than the held generation (moved
		 * by mremap, or mapped anew because its advice changed) */
		cs_chain_free(&r.chain);
		if (load(sb, &r, g, 1))
			return 0;
		err = step_to(sb, &r, why, sizeof(why));
	}
	if (err) {
		emit(sb, "error why=applying generation %llu to the standby failed: %s",
		     (unsigned long long)g, err == -ESTALE ? "its chain lacks pages" : why);
		cs_chain_free(&r.chain);
		return -1;
	}
	hold(sb, &r.chain);
	sb->applied++;
	emit(sb, "applied generation=%llu bytes=%llu ms=%llu cpu_ms=%.1f", (unsigned long long)g,
	     (unsigned long long)bytes, (unsigned long long)(now_ms() - t0),
	     cpu_ms(sb->host_pid) - cpu0);
	return 0;
}

/* The newest generation in DIR, if newer than the held one (and not one
 * that was skipped). */
static uint64_t pending(const struct standby *sb)
{
	uint64_t *gens, g = 0;
	size_t n;
	if (cs_dir_generations(sb->dir, &gens, &n) < 0)
		return 0;
	if (n && gens[n - 1] > sb->held.generation && gens[n - 1] != sb->skipped)
		g = gens[n - 1];
	free(gens);
	return g;
}

/* Applies what waits; 1 when something could not be loaded yet (a
 * compactor was replacing an image), -1 when the standby is gone. */
static int catch_up(struct standby *sb)
{
	uint64_t g;
	while (sb->init > 0 && (g = pending(sb))) {
		uint64_t held = sb->held.generation, skipped = sb->skipped;
		if (apply(sb, g) < 0)
			return -1;
		if (sb->held.generation == held && sb->skipped == skipped)
			return 1;
	}
	return sb->init > 0 ? 0 : -1;
}

/* The donor: the program's fds at their numbers, the standby's attributes,
 * a time namespace for it (at helper_lo + 5); "ready", then it waits to be
 * killed. Never returns. */
static __attribute__((noreturn)) void donor(const struct cs_restore *r, int report, pid_t target,
                                            int helper_lo)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (cs_restore_donate(r, report, target, helper_lo) < 0)
		_exit(1);
	report = helper_lo + 4;
	int tfd = -1;
	if (unshare(CLONE_NEWTIME) < 0 ||
	    cs_write_time_offsets(r->img->header.clock_monotonic_ns - clock_ns(CLOCK_MONOTONIC),
	                          r->img->header.clock_boottime_ns - clock_ns(CLOCK_BOOTTIME)) <
	        0 ||
	    (tfd = open("/proc/self/ns/time_for_children", O_RDONLY)) < 0 ||
	    dup2(tfd, helper_lo + 5) < 0) {
		dprintf(report, "error the time namespace for the program: %s\n", strerror(errno));
		_exit(1);
	}
	if (write(report, "ready\n", 6) != 6)
		_exit(1);
	for (;;)
		pause();
}

static int highest_fd(const struct cs_image *img)
{
	int hi = 2;
	for (size_t i = 0; i < img->n_fds; i++)
		if (img->fds[i].fd > hi)
			hi = img->fds[i].fd;
	return hi;
}

static pid_t start_donor(const struct standby *sb, const struct cs_restore *r, int helper_lo,
                         char *why, size_t cap)
{
	int rep[2];
	if (pipe2(rep, O_CLOEXEC) < 0) {
		snprintf(why, cap, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t d = fork();
	if (d == 0)
		donor(r, rep[1], sb->host_pid, helper_lo);
	close(rep[1]);
	if (d < 0)
		snprintf(why, cap, "fork of the donor: %s", strerror(errno));
	else if (expect(rep[0], "ready", why, cap) < 0) {
		kill(d, SIGKILL);
		waitpid(d, NULL, 0);
		d = -1;
	}
	close(rep[0]);
	return d;
}

static void end_donor(pid_t d)
{
	kill(d, SIGKILL);
	waitpid(d, NULL, 0);
}

/* The program's side of a restore, then its threads. 0: it runs. */
static int promote_held(struct standby *sb, uint64_t next_gen, char *why, size_t cap)
{
	const struct cs_image *img = sb->held.img;
	struct cs_restore r = {.exe_fd = -1,
	                       .plan_fd = -1,
	                       .status_rd = -1,
	                       .status_wr = -1,
	                       .control_fd = -1,
	                       .img = img};
	snprintf(r.dir, sizeof(r.dir), "%s", sb->dir);
	r.next_generation = cs_restore_next_generation(sb->dir);
	if (r.next_generation < next_gen)
		r.next_generation = next_gen;
	r.away_ns = clock_ns(CLOCK_REALTIME) - img->header.clock_realtime_ns;
	if (cs_validate_fds(img) < 0) {
		snprintf(why, cap,
		         "the program's fds cannot be made here (the tool's stderr "
		         "says why)");
		return -1;
	}
	int helper_lo = highest_fd(img) + 8;
	pid_t d = start_donor(sb, &r, helper_lo, why, cap);
	if (d < 0)
		return -1;
	int pidfd = (int)syscall(SYS_pidfd_open, d, 0);
	struct cs_plan_step step = {.mode = CS_PLAN_PROMOTE,
	                            .held = img,
	                            .helper_lo = helper_lo,
	                            .donor_timens = helper_lo + 5,
	                            .n_fds_sent = 2};
	r.step = &step;
	r.plan_fd = memfd_create("checksync-promote", MFD_CLOEXEC);
	int err = pidfd < 0 || r.plan_fd < 0 ? -errno : cs_plan_build(&r);
	if (!err)
		err = send_plan(sb, &r, pidfd);
	if (err)
		snprintf(why, cap, "the promotion's plan: %s", strerror(-err));
	else if (expect(sb->status_rd, "taken", why, cap) < 0)
		err = -1;
	if (pidfd >= 0)
		close(pidfd);
	release(&r);
	/* the program runs only once the donor's copies of its files are gone
	 * (agent/restore/standby.c, wait_donor_gone) */
	end_donor(d);
	if (!err && write(sb->control, "g", 1) != 1) {
		snprintf(why, cap, "telling the standby the donor is gone: %s", strerror(errno));
		err = -1;
	}
	if (!err && expect(sb->status_rd, "ok", why, cap) < 0)
		err = -1;
	return err ? -1 : 0;
}

static void start_compactor(const struct standby *sb)
{
	struct cs_launch l = {.compact_dir = sb->dir,
	                      .compactor_pid = cs_restore_compactor_pid(sb->held.img)};
	char msg[256];
	if (cs_compact_policy_from_env(&l.compact, msg, sizeof(msg)) < 0) {
		cs_err("%s", msg);
		return;
	}
	if (cs_launch_compactor_late(sb->init, &l) < 0)
		cs_err("the promoted program's compactor did not start: no compaction of %s",
		       sb->dir);
}

/* -1: promotion failed (the standby is gone); else the program's status. */
static int promote(struct standby *sb, uint64_t next_gen)
{
	char why[1400];
	uint64_t t0 = now_ms();
	int r;
	/* the newest generation, even while a compactor replaces images */
	for (int tries = 0; (r = catch_up(sb)) == 1 && tries < 50; tries++)
		usleep(20000);
	if (r < 0)
		return -1;
	if (promote_held(sb, next_gen, why, sizeof(why)) < 0) {
		emit(sb, "error why=promoting generation %llu failed: %s",
		     (unsigned long long)sb->held.generation, why);
		stop_standby(sb);
		return -1;
	}
	cs_write_pid_file(sb->dir, sb->host_pid);
	if (sb->wants_compactor)
		start_compactor(sb);
	emit(sb, "promoted generation=%llu pid=%d ms=%llu", (unsigned long long)sb->held.generation,
	     (int)sb->host_pid, (unsigned long long)(now_ms() - t0));
	close(sb->control);
	sb->control = -1;
	int st = cs_launch_wait(sb->init);
	sb->init = -1; /* reaped */
	return st;
}

/* One command line; 1 when the tool is done (*code set). */
static int command(struct standby *sb, const char *line, int *code)
{
	unsigned long long next = 0;
	if (!strcmp(line, "status")) {
		emit(sb, "status state=ready generation=%llu rss=%llu applied=%llu",
		     (unsigned long long)sb->held.generation,
		     (unsigned long long)rss_bytes(sb->host_pid), (unsigned long long)sb->applied);
		return 0;
	}
	if (!strcmp(line, "promote") || sscanf(line, "promote next_generation=%llu", &next) == 1) {
		int st = promote(sb, next);
		*code = st < 0 ? 1 : st;
		return 1;
	}
	emit(sb, "ignored why=unknown command: %.200s", line);
	return 0;
}

/* Commands that arrived; 1 when the tool is done. */
static int read_commands(struct standby *sb, int *code)
{
	ssize_t k = read(sb->ctl_in, sb->cmd + sb->cmd_len, sizeof(sb->cmd) - 1 - sb->cmd_len);
	if (k <= 0) { /* the daemon is gone: so is the standby */
		*code = 0;
		return 1;
	}
	sb->cmd_len += (size_t)k;
	char *nl;
	while ((nl = memchr(sb->cmd, '\n', sb->cmd_len))) {
		*nl = 0;
		int done = command(sb, sb->cmd, code);
		size_t used = (size_t)(nl - sb->cmd) + 1;
		memmove(sb->cmd, nl + 1, sb->cmd_len - used);
		sb->cmd_len -= used;
		if (done)
			return 1;
	}
	if (sb->cmd_len == sizeof(sb->cmd) - 1)
		sb->cmd_len = 0; /* a line this long is no command */
	return 0;
}

static int loop(struct standby *sb)
{
	for (;;) {
		struct pollfd p[4] = {{.fd = sb->ctl_in, .events = POLLIN},
		                      {.fd = sb->notify, .events = POLLIN},
		                      {.fd = sb->status_rd, .events = POLLIN},
		                      {.fd = sb->sigfd, .events = POLLIN}};
		int code = 0;
		if (poll(p, 4, 500) < 0 && errno != EINTR)
			return 1;
		if (p[3].revents)
			return 0; /* SIGTERM or SIGINT: the standby goes with us */
		if (p[2].revents) {
			char why[1200];
			expect(sb->status_rd, "", why, sizeof(why));
			emit(sb, "error why=the standby process ended: %s", why);
			return 1;
		}
		if (p[1].revents) {
			char buf[4096];
			if (read(sb->notify, buf, sizeof(buf)) < 0 && errno != EAGAIN)
				return 1;
		}
		if (p[0].revents && read_commands(sb, &code))
			return code;
		if (catch_up(sb) < 0)
			return 1;
	}
}

static int parse(int argc, char **argv, struct standby *sb)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"control-fd", required_argument, NULL, 'c'},
	    {0},
	};
	const char *dir = NULL;
	uint64_t fd;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'd')
			dir = optarg;
		else if (c == 'c' &&
		         cs_parse_arg_u64("--control-fd", optarg, "an fd number", 0, &fd) == 0)
			sb->ctl_in = sb->ctl_out = (int)fd;
		else
			return -1;
	}
	if (!dir || optind != argc) {
		cs_err("usage: checksync standby --dir DIR [--control-fd N]");
		return -1;
	}
	if (!realpath(dir, sb->dir)) {
		cs_err("%s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int watch(struct standby *sb)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sb->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	sb->notify = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	sb->own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (sb->sigfd < 0 || sb->notify < 0 || sb->own_pidns < 0 ||
	    inotify_add_watch(sb->notify, sb->dir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		cs_err("standby: watching %s: %s", sb->dir, strerror(errno));
		return -1;
	}
	return 0;
}

int cs_cmd_standby(int argc, char **argv)
{
	struct standby sb = {
	    .ctl_in = 0, .ctl_out = 1, .init = -1, .host_pid = -1, .status_rd = -1, .control = -1};
	sb.held.fd = -1;
	if (parse(argc, argv, &sb) < 0)
		return 2;
	int e = cs_find_file("CHECKSYNC_RESTORER", "../restore/checksync-restore",
	                     CS_INSTALL_LIBEXECDIR "/checksync-restore", sb.restorer,
	                     sizeof(sb.restorer));
	if (e < 0) {
		cs_err("cannot find checksync-restore: %s", strerror(-e));
		return 1;
	}
	if (watch(&sb) < 0 || build(&sb) < 0)
		return 1;
	int code = loop(&sb);
	stop_standby(&sb);
	return code;
}
