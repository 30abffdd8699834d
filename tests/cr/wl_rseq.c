/*
 * rseq: threads that registered their own rseq area.
 *
 * Run with GLIBC_TUNABLES=glibc.pthread.rseq=0, so glibc registers none
 * (the workload refuses to run otherwise). The main thread and a second
 * thread each register an area of their own with the raw system call, each
 * with its own signature and the main thread's with a length above 32. At
 * verify each thread checks that the kernel holds exactly its registration:
 * registering the same area, length and signature again must answer
 * EBUSY (EINVAL: another area or length; EPERM: another signature; 0: none
 * was registered), and the kernel must keep the area's cpu_id current.
 */
#include "wl_common.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

struct area {
	struct rseq rs;
	uint8_t more[32]; /* the main thread registers 64 bytes */
} __attribute__((aligned(64)));

static struct area main_area, thread_area;
static const uint32_t main_sig = 0x0badc0de, thread_sig = 0x5eed5eed;
static volatile int thread_go, thread_done;
static char thread_why[200];

static int register_area(struct area *a, uint32_t len, uint32_t sig)
{
	a->rs.cpu_id = (uint32_t)RSEQ_CPU_ID_UNINITIALIZED;
	return (int)syscall(SYS_rseq, &a->rs, len, 0, sig);
}

/* "" when the kernel holds exactly this registration, else why not. */
static void check_area(struct area *a, uint32_t len, uint32_t sig, char *why, size_t cap)
{
	long r = syscall(SYS_rseq, &a->rs, len, 0, sig);
	int e = errno;
	why[0] = 0;
	if (r == 0) {
		snprintf(why, cap, "no rseq area was registered");
		syscall(SYS_rseq, &a->rs, len, RSEQ_FLAG_UNREGISTER, sig);
	} else if (e != EBUSY) {
		snprintf(why, cap, "another rseq registration (%s)",
		         e == EPERM    ? "signature"
		         : e == EINVAL ? "area or length"
		                       : strerror(e));
	} else if ((int32_t)a->rs.cpu_id < 0) {
		snprintf(why, cap, "the kernel does not update the area (cpu_id %d)",
		         (int)a->rs.cpu_id);
	}
}

static void *second(void *arg)
{
	(void)arg;
	if (register_area(&thread_area, 32, thread_sig))
		wl_die("rseq (second thread)");
	while (!thread_go)
		wl_sleep_ms(10);
	check_area(&thread_area, 32, thread_sig, thread_why, sizeof(thread_why));
	thread_done = 1;
	return NULL;
}

int main(int argc, char **argv)
{
	uint64_t n = 0;
	pthread_t t;
	(void)argc;
	(void)argv;
	wl_init("rseq");
	if (__rseq_size != 0) {
		fprintf(stderr,
		        "glibc registered rseq: run with GLIBC_TUNABLES=glibc.pthread.rseq=0\n");
		return 2;
	}
	if (register_area(&main_area, sizeof(main_area), main_sig))
		wl_die("rseq");
	if (pthread_create(&t, NULL, second, NULL))
		wl_die("pthread_create");
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	char why[200];
	check_area(&main_area, sizeof(main_area), main_sig, why, sizeof(why));
	wl_expect(!why[0], "main thread: %s", why);
	thread_go = 1;
	pthread_join(t, NULL);
	wl_expect(thread_done && !thread_why[0], "second thread: %s", thread_why);
	wl_finish(!wl_failures(), n, "%s", wl_first_failure());
}
