/*
 * attrs: per-process attributes a restore must set again.
 *
 *   oom_score_adj 500 (raised: no privilege needed), child subreaper,
 *   transparent huge pages disabled, a membarrier PRIVATE_EXPEDITED
 *   registration, dumpable 0, nice 5, SCHED_BATCH, CPU affinity {0}.
 *
 * At verify each must read back as set, and the membarrier registration
 * must work (a private expedited barrier fails with EPERM without it).
 *
 * --thread-nice 1: one more thread, with nice 10, which checksync refuses
 * at checkpoint (a restore gives every thread the main thread's).
 * --rmcwd 1: the working directory is a directory in $CR_RESULT's that the
 * program removed, which checksync refuses at checkpoint.
 * --pty 1: a pseudo-terminal pair (master and slave held open above fd 2),
 * which checksync refuses at checkpoint.
 * --pty-at N: the same pair opened once progress reaches N (checkpoints
 * before it can be restored, those after are refused).
 */
#include "wl_common.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MB_PRIVATE_EXPEDITED          (1 << 3)
#define MB_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#define MB_GET_REGISTRATIONS          (1 << 9)

static int oom_score_adj(void)
{
	char buf[32] = "";
	int fd = open("/proc/self/oom_score_adj", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0)
		return -9999;
	close(fd);
	return atoi(buf);
}

static void setup_sched(void)
{
	struct sched_param sp = {0};
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	if (sched_setscheduler(0, SCHED_BATCH, &sp) || setpriority(PRIO_PROCESS, 0, 5) ||
	    sched_setaffinity(0, sizeof(one), &one))
		wl_die("scheduling");
}

static void *nice_thread(void *arg)
{
	(void)arg;
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	for (;;)
		pause();
	return NULL;
}

static void setup(void)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY);
	if (fd < 0 || write(fd, "500", 3) != 3 || prctl(PR_SET_CHILD_SUBREAPER, 1) ||
	    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) ||
	    syscall(SYS_membarrier, MB_REGISTER_PRIVATE_EXPEDITED, 0, 0) ||
	    prctl(PR_SET_DUMPABLE, 0))
		exit(2);
	close(fd);
}

static void verify(void)
{
	int sub = -1;
	prctl(PR_GET_CHILD_SUBREAPER, &sub);
	wl_expect(oom_score_adj() == 500, "oom_score_adj %d, want 500", oom_score_adj());
	wl_expect(sub == 1, "child subreaper %d, want 1", sub);
	wl_expect(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "THP disable lost");
	wl_expect(prctl(PR_GET_DUMPABLE) == 0, "dumpable %d, want 0", prctl(PR_GET_DUMPABLE));
	long regs = syscall(SYS_membarrier, MB_GET_REGISTRATIONS, 0, 0);
	wl_expect(regs == MB_REGISTER_PRIVATE_EXPEDITED, "membarrier registrations %#lx, want %#x",
	          regs, MB_REGISTER_PRIVATE_EXPEDITED);
	wl_expect(syscall(SYS_membarrier, MB_PRIVATE_EXPEDITED, 0, 0) == 0,
	          "membarrier PRIVATE_EXPEDITED fails: the registration is gone");
	cpu_set_t set;
	CPU_ZERO(&set);
	sched_getaffinity(0, sizeof(set), &set);
	wl_expect(getpriority(PRIO_PROCESS, 0) == 5, "nice %d, want 5",
	          getpriority(PRIO_PROCESS, 0));
	wl_expect(sched_getscheduler(0) == SCHED_BATCH, "policy %d, want SCHED_BATCH",
	          sched_getscheduler(0));
	wl_expect(CPU_COUNT(&set) == 1 && CPU_ISSET(0, &set), "CPU affinity: %d CPUs, want {0}",
	          CPU_COUNT(&set));
}

/* chdir into a new directory of the work directory, then remove it */
static void remove_cwd(void)
{
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s/cwd", wl_work_dir());
	if (mkdir(dir, 0700) || chdir(dir) || rmdir(dir))
		exit(2);
}

static void open_pty(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m) || open(ptsname(m), O_RDWR | O_NOCTTY) < 0)
		exit(2);
}

int main(int argc, char **argv)
{
	uint64_t n = 0;
	wl_init("attrs");
	setup();
	setup_sched();
	if (wl_opt(argc, argv, "--thread-nice", 0)) {
		pthread_t th;
		pthread_create(&th, NULL, nice_thread, NULL);
		wl_sleep_ms(50);
	}
	if (wl_opt(argc, argv, "--rmcwd", 0))
		remove_cwd();
	if (wl_opt(argc, argv, "--pty", 0))
		open_pty();
	uint64_t pty_at = wl_opt(argc, argv, "--pty-at", 0);
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
		if (n == pty_at)
			open_pty();
	}
	verify();
	wl_finish(!wl_failures(), n, "%s", wl_first_failure());
}
