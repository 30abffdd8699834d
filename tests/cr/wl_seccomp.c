/*
 * seccomp: no_new_privs, then two stacked filters on the main thread:
 * the first makes getppid fail with EPERM, the second getpgrp with ENOTTY
 * (each allows everything else). A second thread is made afterwards and
 * inherits both.
 *
 * At verify both threads must still have both filters acting (getppid and
 * getpgrp fail with their errors, getpid works), /proc/self/status must
 * show Seccomp 2 with 2 filters and NoNewPrivs 1, and a thread made now
 * inherits them too.
 */
#include "wl_common.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* nr -> SECCOMP_RET_ERRNO | err, anything else allowed */
static void install(long nr, int err)
{
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		wl_die("seccomp");
}

static const char *acts(void)
{
	errno = 0;
	if (syscall(SYS_getppid) != -1 || errno != EPERM)
		return "getppid does not fail with EPERM";
	errno = 0;
	if (syscall(SYS_getpgrp) != -1 || errno != ENOTTY)
		return "getpgrp does not fail with ENOTTY";
	if (syscall(SYS_getpid) <= 0)
		return "getpid fails";
	return NULL;
}

static void *check_thread(void *arg)
{
	(void)arg;
	return (void *)acts();
}

static volatile int stop;
static void *idle_thread(void *arg)
{
	(void)arg;
	while (!stop)
		wl_sleep_ms(10);
	return (void *)acts();
}

static long status_value(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	if (f)
		fclose(f);
	return v;
}

int main(void)
{
	uint64_t n = 0;
	pthread_t idle, later;
	wl_init("seccomp");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		wl_die("no_new_privs");
	install(SYS_getppid, EPERM);
	install(SYS_getpgrp, ENOTTY);
	pthread_create(&idle, NULL, idle_thread, NULL);
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	const char *why = acts();
	wl_expect(!why, "main thread: %s", why);
	stop = 1;
	void *r = NULL;
	pthread_join(idle, &r);
	wl_expect(!r, "second thread: %s", (const char *)r);
	pthread_create(&later, NULL, check_thread, NULL);
	pthread_join(later, &r);
	wl_expect(!r, "a new thread: %s", (const char *)r);
	wl_expect(status_value("Seccomp:") == 2 && status_value("Seccomp_filters:") == 2 &&
	              status_value("NoNewPrivs:") == 1,
	          "status: Seccomp %ld, Seccomp_filters %ld, NoNewPrivs %ld",
	          status_value("Seccomp:"), status_value("Seccomp_filters:"),
	          status_value("NoNewPrivs:"));
	wl_finish(!wl_failures(), n, "%s", wl_first_failure());
}
