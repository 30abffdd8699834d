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
#include <sys/prctl.h>
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

/* Reaps every child, forwards signals to the main one; returns when it is
 * gone, with its status. */
static int reap_and_forward(pid_t main_pid, const sigset_t *set)
{
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(set, &si);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			kill(main_pid, sig);
			continue;
		}
		for (;;) {
			int st;
			pid_t p = waitpid(-1, &st, WNOHANG);
			if (p <= 0)
				break;
			if (p == main_pid)
				return status_code(st);
		}
	}
}

static pid_t spawn(const struct cs_launch *l)
{
	struct clone_args args = {.exit_signal = SIGCHLD};
	pid_t want = l->pid;
	if (want > 0) {
		args.set_tid = (uint64_t)(uintptr_t)&want;
		args.set_tid_size = 1;
	}
	long r = syscall(SYS_clone3, &args, sizeof(args));
	if (r == 0) {
		uncatch_signals();
		_exit(l->child(l->arg) ? 127 : 0);
	}
	return (pid_t)r;
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
	pid_t main_pid = spawn(l);
	if (main_pid < 0) {
		cs_err("init: clone3 of pid %d: %s", (int)l->pid, strerror(errno));
		_exit(126);
	}
	if (l->close_in_init >= 0)
		close(l->close_in_init);
	/* init has nothing else to hold open: stdio stays for messages only. */
	_exit(reap_and_forward(main_pid, &set));
}

static int write_time_offsets(int64_t mono, int64_t boot)
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
	int r = write_time_offsets(l->monotonic_offset_ns, l->boottime_offset_ns);
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
	return reap_and_forward(init, &set);
}
