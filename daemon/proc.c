/* Children running the engine's tool: spawn and kill. See proc.h. */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "journal.h"

#define STOP_WAIT_MS 5000 /* a SIGKILLed process tree is gone well before */
#define MAX_TREE     256

static void child_exec(const char *path, char *const *argv, char *const *env, int pass_fd)
{
	sigset_t none;

	/* The tool dies with the daemon: a host whose daemon is gone must not
	 * keep serving while another host promotes. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (char *const *e = env; e && *e; e++)
		putenv(*e);
	setpgid(0, 0);
	/* dup2 clears close-on-exec on the copy; fd 3 already being the one
	 * passed keeps its flag, so clear it by hand. */
	if (pass_fd == 3)
		fcntl(3, F_SETFD, 0);
	else if (pass_fd >= 0 && dup2(pass_fd, 3) < 0)
		_exit(127);
	close_range(pass_fd >= 0 ? 4 : 3, ~0u, 0);
	execv(path, argv);
	fprintf(stderr, "checksyncd: cannot execute %s: %s\n", path, strerror(errno));
	_exit(127);
}

int cs_proc_spawn(const char *path, char *const *argv, char *const *env, int pass_fd,
                  pid_t *ret_pid, int *ret_pidfd)
{
	pid_t pid = fork();
	int pidfd, e;

	if (pid < 0)
		return -errno;
	if (pid == 0)
		child_exec(path, argv, env, pass_fd);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		e = errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -e;
	}
	*ret_pid = pid;
	*ret_pidfd = pidfd;
	return 0;
}

/* Appends pid's children (every thread's) to out, recursively. */
static void collect_tree(pid_t pid, pid_t *out, size_t *n)
{
	char path[64];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (!(d = opendir(path)))
		return;
	while ((e = readdir(d)) && *n < MAX_TREE) {
		char file[400];
		FILE *f;
		int child;

		if (e->d_name[0] == '.')
			continue;
		snprintf(file, sizeof(file), "%s/%s/children", path, e->d_name);
		if (!(f = fopen(file, "re")))
			continue;
		while (*n < MAX_TREE && fscanf(f, "%d", &child) == 1) {
			out[(*n)++] = child;
			collect_tree(child, out, n);
		}
		fclose(f);
	}
	closedir(d);
}

static void wait_gone(const pid_t *pids, size_t n)
{
	uint64_t deadline = cs_monotonic_ms() + STOP_WAIT_MS;

	for (size_t i = 0; i < n; i++) {
		int fd = (int)syscall(SYS_pidfd_open, pids[i], 0);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = cs_monotonic_ms();

		if (fd < 0)
			continue; /* gone already */
		if (now < deadline && poll(&p, 1, (int)(deadline - now)) == 0)
			cs_log_err("process %d still exists %d ms after SIGKILL", (int)pids[i],
			           STOP_WAIT_MS);
		close(fd);
	}
}

size_t cs_proc_kill_tree(pid_t root, int kill_root)
{
	pid_t tree[MAX_TREE];
	size_t n = 0;

	if (root <= 0)
		return 0; /* kill(0) and kill(-1) would hit the daemon itself */
	collect_tree(root, tree, &n);
	for (size_t i = 0; i < n; i++)
		kill(tree[i], SIGKILL);
	if (kill_root) {
		kill(root, SIGKILL);
		waitpid(root, NULL, 0);
	}
	wait_gone(tree, n);
	return n;
}

void cs_proc_stop(pid_t pid, const char *what, const char *why)
{
	size_t n = cs_proc_kill_tree(pid, 1);

	cs_log_notice("%s stopped (%s): tool pid %d and %zu processes killed", what, why, (int)pid,
	              n);
}
