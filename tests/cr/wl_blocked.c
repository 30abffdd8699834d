/*
 * blocked: threads that block every signal and sleep in system calls for
 * hours, as jemalloc's background thread, Go's os/signal thread and glibc's
 * SIGEV_THREAD helper do. The agent's freeze signal cannot park them; the
 * supervisor must hold them with ptrace.
 *
 *   reader   blocks all, read() on a pipe nobody writes to before verify
 *   sleeper  blocks all, nanosleep(2 h) with req == rem, as sleep(3) does
 *   waiter   blocks all, sigwaitinfo({SIGUSR2}) for the whole run
 *
 * Invariants at verify: each thread's mask (SigBlk in its /proc status) is
 * what it set; the reader's read() returned only the byte written at
 * verify; the sleeper's nanosleep never returned (no early wake-up by the
 * freeze); the waiter's sigwaitinfo returned only the SIGUSR2 sent at
 * verify, never another signal; and the main thread's own nanosleeps
 * (--sleep-ms, default 20, with req == rem) never returned early.
 */
#include "wl_common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { READER, SLEEPER, WAITER, NTHREADS };
static const char *const names[NTHREADS] = {"reader", "sleeper", "waiter"};

static pid_t tids[NTHREADS];
static char masks[NTHREADS][32]; /* SigBlk as each thread saw it after setting it */
static atomic_int started, returned[NTHREADS], early_main;
static atomic_int got_byte = -1, got_signal = -1;
static int pipe_fds[2];

static int status_field(pid_t tid, const char *key, char *out, size_t cap)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	FILE *f = fopen(path, "re");
	int found = 0;
	while (f && !found && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key))) {
			const char *v = line + strlen(key) + strspn(line + strlen(key), " \t");
			size_t len = strcspn(v, "\n");
			len = len < cap - 1 ? len : cap - 1;
			memcpy(out, v, len);
			out[len] = 0;
			found = 1;
		}
	if (f)
		fclose(f);
	return found ? 0 : -1;
}

static void block_all(int who)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	tids[who] = gettid();
	status_field(tids[who], "SigBlk:", masks[who], sizeof(masks[who]));
	atomic_fetch_add(&started, 1);
}

static void *reader_main(void *arg)
{
	(void)arg;
	unsigned char c;
	block_all(READER);
	ssize_t n = read(pipe_fds[0], &c, 1);
	atomic_store(&got_byte, n == 1 ? c : -2);
	atomic_store(&returned[READER], 1);
	return NULL;
}

static void *sleeper_main(void *arg)
{
	(void)arg;
	struct timespec ts = {2 * 3600, 0};
	block_all(SLEEPER);
	nanosleep(&ts, &ts);
	atomic_store(&returned[SLEEPER], 1);
	return NULL;
}

static void *waiter_main(void *arg)
{
	(void)arg;
	sigset_t set;
	siginfo_t si;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	block_all(WAITER);
	int r = sigwaitinfo(&set, &si);
	atomic_store(&got_signal, r);
	atomic_store(&returned[WAITER], 1);
	return NULL;
}

/* Sleeps with req == rem; an early return (EINTR) is counted. */
static void main_sleep(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	if (nanosleep(&ts, &ts) && errno == EINTR && !wl_verify_requested())
		atomic_fetch_add(&early_main, 1);
}

/* While the waiter sits in sigwaitinfo the kernel shows its mask without
 * the signals it waits for. */
static void check_masks(uint64_t p)
{
	char now[32];
	for (int i = 0; i < NTHREADS; i++) {
		uint64_t want = strtoull(masks[i], NULL, 16);
		if (i == WAITER)
			want &= ~(1ull << (SIGUSR2 - 1));
		if (status_field(tids[i], "SigBlk:", now, sizeof(now)) ||
		    strtoull(now, NULL, 16) != want)
			wl_finish(0, p, "%s thread mask %s, want %016llx", names[i], now,
			          (unsigned long long)want);
	}
}

static void verify(uint64_t p)
{
	for (int i = 0; i < NTHREADS; i++)
		if (atomic_load(&returned[i]))
			wl_finish(0, p,
			          "%s thread's call returned before verify (byte %d signal %d)",
			          names[i], got_byte, got_signal);
	if (early_main)
		wl_finish(0, p, "main thread's nanosleep returned early %d times", early_main);
	check_masks(p);
	unsigned char c = 0x5a;
	if (write(pipe_fds[1], &c, 1) != 1 || pthread_kill(pthread_self(), 0))
		wl_finish(0, p, "cannot write to the reader's pipe");
	kill(getpid(), SIGUSR2);
	for (int i = 0; i < 400 && !(returned[READER] && returned[WAITER]); i++)
		wl_sleep_ms(5);
	if (got_byte != 0x5a || got_signal != SIGUSR2)
		wl_finish(0, p, "after verify: reader got %d (want 90), waiter got %d (want %d)",
		          got_byte, got_signal, SIGUSR2);
	wl_finish(1, p, "reader_tid=%d sleeper_tid=%d waiter_tid=%d mask=%s", (int)tids[READER],
	          (int)tids[SLEEPER], (int)tids[WAITER], masks[SLEEPER]);
}

int main(int argc, char **argv)
{
	static void *(*const mains[NTHREADS])(void *) = {reader_main, sleeper_main, waiter_main};
	unsigned sleep_ms = (unsigned)wl_opt(argc, argv, "--sleep-ms", 20);
	pthread_t t;
	if (pipe(pipe_fds))
		return 2;
	/* SIGUSR2 goes to the waiter only. */
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, NULL);
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&t, NULL, mains[i], NULL);
	while (atomic_load(&started) < NTHREADS)
		wl_sleep_ms(1);
	wl_init("blocked");
	wl_say("threads reader=%d sleeper=%d waiter=%d mask=%s", (int)tids[READER],
	       (int)tids[SLEEPER], (int)tids[WAITER], masks[SLEEPER]);
	uint64_t n = 0;
	while (!wl_verify_requested()) {
		main_sleep(sleep_ms);
		wl_progress(++n);
	}
	verify(n);
}
