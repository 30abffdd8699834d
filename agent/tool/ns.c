/*
 * PID, mount and time namespaces for a checkpointable program.
 *
 * Order matters: the tool unshares PID and time namespaces for its
 * children, writes the time offsets while no process is in the new time
 * namespace yet (the kernel refuses them afterwards), then forks the init.
 * The tool itself stays in the host mount namespace so it can still read
 * the host /proc (for the program's host pid); the init takes a private
 * mount namespace and mounts a /proc of the new PID namespace, without
 * which /proc/self/task would list host tids to the agent.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>

#include "tool.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

static void nothing(int sig)
{
	(void)sig;
}

/* Blocks the forwarded signals and SIGCHLD; installs a real handler too,
 * because PID 1 of a namespace never receives a signal whose disposition
 * is SIG_DFL. */
static void catch_signals(sigset_t *set)
{
	struct sigaction sa = {.sa_handler = nothing};
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaddset(set, forwarded[i]);
	sigprocmask(SIG_BLOCK, set, NULL);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(set, s))
			sigaction(s, &sa, NULL);
}

static void uncatch_signals(void)
{
	sigset_t none;
	struct sigaction sa = {.sa_handler = SIG_DFL};
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaction(forwarded[i], &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 1;
}

/* Reaps what has exited; returns the main child's status once it is gone,
 * -1 before. A ptrace stop (a thread the supervisor holds) is no exit. */
static int reap(pid_t main_pid, pid_t *compactor, struct cs_supervisor *sup)
{
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p <= 0)
			return -1;
		cs_supervisor_reaped(sup, p, st);
		if (WIFSTOPPED(st))
			continue;
		if (p == *compactor) {
			cs_err("init: the compactor exited (status %d); no more compaction",
			       status_code(st));
			*compactor = -1;
		}
		if (p != main_pid)
			continue;
		if (*compactor > 0) {
			kill(*compactor, SIGKILL);
			waitpid(*compactor, NULL, 0);
		}
		return status_code(st);
	}
}

/* Reaps every child, forwards signals to the main one, serves the agent
 * when sup is set (init); returns when the main child is gone, with its
 * status. The compactor, if any, goes with it: killed and reaped before
 * init exits, so nothing writes into DIR once `checksync run` or `restore`
 * has returned (an interrupted compaction leaves only a .tmp, which no
 * reader reads). */
static int reap_and_forward(pid_t main_pid, pid_t compactor, const sigset_t *set,
                            struct cs_supervisor *sup)
{
	int sfd = signalfd(-1, set, SFD_CLOEXEC);
	if (sfd < 0) {
		cs_err("signalfd: %s", strerror(errno));
		return 1;
	}
	for (;;) {
		struct pollfd p[3] = {{.fd = sfd, .events = POLLIN}};
		int timeout = -1;
		size_t n = sup ? cs_supervisor_pollfds(sup, p + 1, &timeout) : 0;
		if (poll(p, 1 + n, timeout) < 0 && errno != EINTR)
			continue;
		if (sup)
			cs_supervisor_serve(sup, p + 1, n);
		struct signalfd_siginfo si;
		if (!(p[0].revents & POLLIN) || read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		if (si.ssi_signo != SIGCHLD) {
			kill(main_pid, (int)si.ssi_signo);
			continue;
		}
		int code = reap(main_pid, &compactor, sup);
		if (code >= 0) {
			close(sfd);
			return code;
		}
	}
}

static pid_t clone_pid(pid_t want)
{
	struct clone_args args = {.exit_signal = SIGCHLD};
	if (want > 0) {
		args.set_tid = (uint64_t)(uintptr_t)&want;
		args.set_tid_size = 1;
	}
	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

static pid_t spawn(const struct cs_launch *l)
{
	pid_t r = clone_pid(l->pid);
	if (r == 0) {
		uncatch_signals();
		_exit(l->child(l->arg) ? 127 : 0);
	}
	return r;
}

/*
 * The compactor: a child of init, so it lives exactly as long as the
 * program (init kills it when the program is gone, and the kernel kills
 * the whole namespace when init dies). Terminal and forwarded signals are
 * ignored: they are the program's to act on, and the compactor must keep
 * going while the program does.
 *
 * SCHED_IDLE rather than nice 19: both keep it off the program's cores
 * when they are busy (weight 3 against nice 19's 15, next to a program's
 * 1024), but only SCHED_IDLE also lets every waking thread of the program
 * preempt it at once, so it adds no wake-up latency to requests. It still
 * gets that small share under full load, so compaction never stops
 * entirely, and when the backlog grows large anyway it steps up to an
 * ordinary nice-19 process until it has caught up (compact_loop.c). Its
 * I/O is best-effort at the lowest level, not the idle class, for the same
 * reason: the idle class can starve it forever. It does not keep the
 * program's CPU pinning (cs_compact_set_cpus says why).
 */
/* The compactor's watcher thread (compact_loop.c) takes the lowest free
 * pid after the namespace's cursor, which the pids given with set_tid do
 * not move: it took tid 3, which a restore was about to give to a thread
 * of the program (clone3: EEXIST). The compactor's pid is above every tid
 * of the image, so the cursor goes there. */
static void pid_cursor_past_self(void)
{
	char num[16];
	int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
	int n = snprintf(num, sizeof(num), "%d", (int)getpid());
	if (fd < 0 || write(fd, num, (size_t)n) != n)
		cs_err("compactor: cannot move the pid cursor past %s (%s): a restore may find a "
		       "thread's tid taken",
		       num, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static pid_t spawn_compactor(const struct cs_launch *l, int init_is_parent)
{
	pid_t r = clone_pid(l->compactor_pid);
	if (r != 0)
		return r;
	struct sched_param sp = {0};
	uncatch_signals();
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		signal(forwarded[i], SIG_IGN);
	if (init_is_parent)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_NAME, "checksync-cmpct");
	close_range(3, ~0u,
	            0); /* e.g. a restore's image fds: pruned files keep their space while open */
	sched_setscheduler(0, SCHED_IDLE, &sp);
	cs_compact_set_cpus();
	/* IOPRIO_WHO_PROCESS 1, IOPRIO_CLASS_BE 2 << 13, level 7 */
	syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 7);
	pid_cursor_past_self();
	cs_compact_loop(l->compact_dir, &l->compact);
}

static __attribute__((noreturn)) void run_init(const struct cs_launch *l)
{
	sigset_t set;
	if (!l->detach)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		cs_err("init: mount namespace with its own /proc: %s", strerror(errno));
		_exit(126);
	}
	prctl(PR_SET_NAME, "checksync-init");
	catch_signals(&set);
	/* Listening before the program exists: its agent may need the
	 * supervisor in its constructor (a program started without root's
	 * rights cannot open DIR until it is handed over). */
	static struct cs_supervisor sup;
	if (l->dir)
		cs_supervisor_init(&sup, l->dir, 0);
	pid_t main_pid = spawn(l);
	if (main_pid < 0) {
		cs_err("init: clone3 of pid %d: %s", (int)l->pid, strerror(errno));
		_exit(126);
	}
	for (size_t i = 0; i < sizeof(l->close_in_init) / sizeof(l->close_in_init[0]); i++)
		if (l->close_in_init[i] >= 0)
			close(l->close_in_init[i]);
	pid_t compactor = -1;
	if (l->compact_dir && (compactor = spawn_compactor(l, 1)) < 0)
		cs_err("init: cannot start the compactor (pid %d): %s", (int)l->compactor_pid,
		       strerror(errno));
	/* init has nothing else to hold open: stdio stays for messages only. */
	sup.main_pid = main_pid;
	_exit(reap_and_forward(main_pid, compactor, &set, l->dir ? &sup : NULL));
}

int cs_write_time_offsets(int64_t mono, int64_t boot)
{
	char buf[128];
	int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* seconds may be negative, nanoseconds are always in [0, 1e9) */
	int64_t ms = mono / 1000000000, mn = mono % 1000000000;
	int64_t bs = boot / 1000000000, bn = boot % 1000000000;
	if (mn < 0)
		mn += 1000000000, ms--;
	if (bn < 0)
		bn += 1000000000, bs--;
	int n = snprintf(buf, sizeof(buf), "monotonic %lld %lld\nboottime %lld %lld\n",
	                 (long long)ms, (long long)mn, (long long)bs, (long long)bn);
	int r = write(fd, buf, (size_t)n) == n ? 0 : -errno;
	close(fd);
	return r;
}

int cs_launch_start(const struct cs_launch *l, pid_t *ret_init)
{
	if (unshare(CLONE_NEWPID | CLONE_NEWTIME) < 0) {
		cs_err("unshare(CLONE_NEWPID|CLONE_NEWTIME): %s (run as root)", strerror(errno));
		return -errno;
	}
	int r = cs_write_time_offsets(l->monotonic_offset_ns, l->boottime_offset_ns);
	if (r < 0) {
		cs_err("writing /proc/self/timens_offsets: %s", strerror(-r));
		return r;
	}
	/* Before the fork: a SIGCHLD arriving before the tool waits must stay
	 * pending, not be discarded. */
	sigset_t set;
	catch_signals(&set);
	pid_t init = fork();
	if (init < 0) {
		cs_err("fork of the namespace init: %s", strerror(errno));
		return -errno;
	}
	if (init == 0)
		run_init(l);
	*ret_init = init;
	return 0;
}

pid_t cs_launch_child_host_pid(pid_t init)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)init, (int)init);
	for (int tries = 0; tries < 2000; tries++) {
		FILE *f = fopen(path, "re");
		int pid = 0;
		if (!f)
			return -errno;
		int n = fscanf(f, "%d", &pid);
		fclose(f);
		if (n == 1 && pid > 0)
			return pid;
		usleep(1000);
	}
	return -ESRCH;
}

int cs_launch_wait(pid_t init)
{
	sigset_t set;
	catch_signals(&set);
	return reap_and_forward(init, -1, &set, NULL);
}

/*
 * The compactor of a program that was a warm standby until now: started
 * into init's PID namespace from outside (setns, then a fork there), so it
 * gets its pid above every tid there as at a start. Its first parent
 * exits at once; init adopts it, and the kernel ends it with the
 * namespace when the program and init are gone.
 */
int cs_launch_compactor_late(pid_t init, const struct cs_launch *l)
{
	pid_t mid = fork();
	if (mid < 0)
		return -errno;
	if (mid == 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)init);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWPID) < 0)
			_exit(1);
		_exit(spawn_compactor(l, 0) < 0 ? 1 : 0);
	}
	int st = 0;
	while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -ECHILD;
}
