/*
 * setuid: a program that starts as root and drops its privileges the way
 * daemons do (setgroups, setresgid, setresuid to 65534, no_new_privs), with
 * a second thread. The agent, started while the program was root, must go
 * on checkpointing it (the directory is handed over), and a restore must
 * give back exactly these credentials, on every thread, not root's.
 *
 * With --keep-cap it keeps CAP_NET_BIND_SERVICE across the uid change
 * (PR_SET_KEEPCAPS), effective, permitted, inheritable and ambient, as a
 * daemon that binds port 80 after dropping root does.
 *
 * Invariants at verify: on the main thread and on the worker, the real,
 * effective and saved uids and gids are 65534, the supplementary groups
 * are exactly {65534}, the capabilities are exactly those kept (none
 * without --keep-cap), no_new_privs is 1; the process is non-dumpable, as
 * the kernel made it at the uid change.
 */
#include "wl_common.h"

#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NOBODY 65534

static atomic_uint check_req, check_done;
static uint32_t kept; /* capability bits kept (CAP_NET_BIND_SERVICE or none) */
static char worker_fail[200];

/* "" when the calling thread's credentials are the dropped ones. */
static void creds_wrong(char *why, size_t cap)
{
	uid_t r, e, s;
	gid_t gr, ge, gs, groups[8];
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	why[0] = 0;
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	int n = getgroups(8, groups);
	if (r != NOBODY || e != NOBODY || s != NOBODY || gr != NOBODY || ge != NOBODY ||
	    gs != NOBODY)
		snprintf(why, cap, "uids %u/%u/%u gids %u/%u/%u", r, e, s, gr, ge, gs);
	else if (n != 1 || groups[0] != NOBODY)
		snprintf(why, cap, "%d supplementary groups, the first %u", n,
		         n > 0 ? groups[0] : 0);
	else if (syscall(SYS_capget, &h, d) || d[0].permitted != kept || d[0].effective != kept ||
	         d[0].inheritable != kept || d[1].permitted || d[1].effective)
		snprintf(why, cap,
		         "capabilities: permitted %08x effective %08x inheritable %08x, want %08x",
		         d[0].permitted, d[0].effective, d[0].inheritable, kept);
	else if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) !=
	         (kept != 0))
		snprintf(why, cap, "ambient CAP_NET_BIND_SERVICE %s", kept ? "not set" : "set");
	else if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		snprintf(why, cap, "no_new_privs is not set");
}

static void *worker(void *arg)
{
	unsigned seen = 0;
	(void)arg;
	for (;;) {
		if (atomic_load(&check_req) != seen) {
			seen = atomic_load(&check_req);
			creds_wrong(worker_fail, sizeof(worker_fail));
			atomic_fetch_add(&check_done, 1);
		}
		wl_sleep_ms(5);
	}
	return NULL;
}

/* The kept capability in this thread's permitted, effective, inheritable
 * and ambient sets (a thread created afterwards inherits them). */
static int keep_caps(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2] = {{kept, kept, kept}, {0, 0, 0}};
	return syscall(SYS_capset, &h, d) ||
	       prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0);
}

static void drop(void)
{
	gid_t g = NOBODY;
	if (setgroups(1, &g) || (kept && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)) ||
	    setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY) ||
	    (kept && keep_caps()) || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		perror("dropping privileges");
		_exit(2);
	}
}

int main(int argc, char **argv)
{
	pthread_t t;
	char why[200];
	kept = wl_opt(argc, argv, "--keep-cap", 0) ? 1u << CAP_NET_BIND_SERVICE : 0;
	drop();
	/* after the drop: a new thread inherits the creator's credentials */
	pthread_create(&t, NULL, worker, NULL);
	wl_init("setuid");
	uint64_t n = 0;
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	creds_wrong(why, sizeof(why));
	if (why[0])
		wl_finish(0, n, "main thread: %s", why);
	atomic_fetch_add(&check_req, 1);
	for (int i = 0; i < 400 && !atomic_load(&check_done); i++)
		wl_sleep_ms(5);
	if (!atomic_load(&check_done) || worker_fail[0])
		wl_finish(0, n, "worker thread: %s", check_done ? worker_fail : "no answer");
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		wl_finish(0, n, "dumpable is %d, not 0", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	wl_finish(1, n, "uid=%d gid=%d", NOBODY, NOBODY);
}
