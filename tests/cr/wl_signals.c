/*
 * signals: SA_SIGINFO handlers on alternate stacks, per-thread masks.
 *
 *   main thread   altstack A0, blocks SIGHUP, handles SIGUSR2
 *   hup thread    altstack A1, blocks SIGUSR2, handles SIGHUP
 *   masked thread no altstack, blocks SIGUSR2, SIGHUP and SIGWINCH
 *
 * So a SIGUSR2 sent to the process can only run on the main thread and a
 * SIGHUP only on the hup thread; each handler checks it runs on its thread's
 * alternate stack (by address and by SS_ONSTACK) and that si_signo/si_code
 * are those of a kill(2). Each handled signal prints "sig <NAME> <count>".
 *
 * Invariants at verify: no handler ran on the wrong thread or off its
 * altstack, each sigaction (handler, flags, mask) is as installed, SIGWINCH
 * is still ignored, and every thread's mask and altstack are as set (each
 * thread checks its own, on request, after the restore).
 */
#include "wl_common.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALT_SIZE (64 * 1024)

static char alt0[ALT_SIZE], alt1[ALT_SIZE];
static pid_t main_tid, hup_tid;
static atomic_ullong n_usr2, n_hup, bad_handler;
static atomic_uint check_req, check_done;
static atomic_uint check_fail;
static char fail_what[160];
static uint64_t loops;

static int on_stack(const char *base, const void *addr)
{
	stack_t ss;
	sigaltstack(NULL, &ss);
	return (const char *)addr >= base && (const char *)addr < base + ALT_SIZE &&
	       (ss.ss_flags & SS_ONSTACK) && ss.ss_sp == base;
}

static void handler(int sig, siginfo_t *si, void *uc)
{
	int local;
	(void)uc;
	int ok = si->si_signo == sig && si->si_code == SI_USER;
	if (sig == SIGUSR2) {
		ok = ok && gettid() == main_tid && on_stack(alt0, &local);
		atomic_fetch_add(&n_usr2, 1);
	} else {
		ok = ok && gettid() == hup_tid && on_stack(alt1, &local);
		atomic_fetch_add(&n_hup, 1);
	}
	if (!ok)
		atomic_fetch_add(&bad_handler, 1);
}

static void set_altstack(char *base)
{
	stack_t ss = {.ss_sp = base, .ss_size = ALT_SIZE, .ss_flags = 0};
	sigaltstack(&ss, NULL);
}

static sigset_t mask_of(int a, int b, int c)
{
	sigset_t s;
	sigemptyset(&s);
	for (int i = 0; i < 3; i++) {
		int sig = i == 0 ? a : i == 1 ? b : c;
		if (sig)
			sigaddset(&s, sig);
	}
	return s;
}

/* A thread answers a check request by comparing its own mask and altstack. */
static void self_check(const char *who, sigset_t want, const char *alt)
{
	sigset_t cur;
	stack_t ss;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	sigaltstack(NULL, &ss);
	int ok = 1;
	for (int s = 1; s < 32; s++)
		if (s != SIGUSR1 && sigismember(&cur, s) != sigismember(&want, s))
			ok = 0;
	if (alt ? (ss.ss_sp != alt || ss.ss_size != ALT_SIZE || (ss.ss_flags & SS_DISABLE))
		: !(ss.ss_flags & SS_DISABLE))
		ok = 0;
	if (!ok && atomic_fetch_add(&check_fail, 1) == 0)
		strncpy(fail_what, who, sizeof(fail_what) - 1);
}

static void *hup_main(void *arg)
{
	(void)arg;
	unsigned seen = 0;
	hup_tid = gettid();
	set_altstack(alt1);
	sigset_t m = mask_of(SIGUSR2, 0, 0);
	pthread_sigmask(SIG_SETMASK, &m, NULL);
	for (;;) {
		if (atomic_load(&check_req) != seen) {
			seen = atomic_load(&check_req);
			self_check("hup thread mask/altstack", m, alt1);
			atomic_fetch_add(&check_done, 1);
		}
		wl_sleep_ms(5);
	}
	return NULL;
}

static void *masked_main(void *arg)
{
	(void)arg;
	unsigned seen = 0;
	sigset_t m = mask_of(SIGUSR2, SIGHUP, SIGWINCH);
	pthread_sigmask(SIG_SETMASK, &m, NULL);
	for (;;) {
		if (atomic_load(&check_req) != seen) {
			seen = atomic_load(&check_req);
			self_check("masked thread mask/altstack", m, NULL);
			atomic_fetch_add(&check_done, 1);
		}
		wl_sleep_ms(5);
	}
	return NULL;
}

static void install(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaction(sig, &sa, NULL);
}

static const char *action_wrong(int sig)
{
	struct sigaction sa;
	sigaction(sig, NULL, &sa);
	if (sa.sa_sigaction != handler)
		return "handler";
	if ((sa.sa_flags & (SA_SIGINFO | SA_ONSTACK | SA_RESTART)) !=
	    (SA_SIGINFO | SA_ONSTACK | SA_RESTART))
		return "flags";
	if (!sigismember(&sa.sa_mask, SIGINT))
		return "sa_mask";
	return NULL;
}

static void verify(void)
{
	struct sigaction sa;
	const char *w;
	uint64_t p = loops;
	if ((w = action_wrong(SIGUSR2)) || (w = action_wrong(SIGHUP)))
		wl_finish(0, p, "sigaction %s changed", w);
	sigaction(SIGWINCH, NULL, &sa);
	if (sa.sa_handler != SIG_IGN)
		wl_finish(0, p, "SIGWINCH no longer ignored");
	atomic_store(&check_done, 0);
	atomic_fetch_add(&check_req, 1);
	self_check("main thread mask/altstack", mask_of(SIGHUP, 0, 0), alt0);
	for (int i = 0; i < 400 && atomic_load(&check_done) < 2; i++)
		wl_sleep_ms(5);
	if (atomic_load(&check_done) < 2)
		wl_finish(0, p, "threads did not answer the mask check");
	if (check_fail)
		wl_finish(0, p, "%s differs from what the thread set", fail_what);
	if (bad_handler)
		wl_finish(0, p, "%llu handler runs on the wrong thread, off the altstack or with a bad siginfo",
			  (unsigned long long)bad_handler);
	wl_finish(1, p, "usr2=%llu hup=%llu", (unsigned long long)n_usr2,
		  (unsigned long long)n_hup);
}

int main(void)
{
	pthread_t t1, t2;
	main_tid = gettid();
	set_altstack(alt0);
	install(SIGUSR2);
	install(SIGHUP);
	signal(SIGWINCH, SIG_IGN);
	sigset_t m = mask_of(SIGHUP, 0, 0);
	pthread_sigmask(SIG_SETMASK, &m, NULL);
	pthread_create(&t1, NULL, hup_main, NULL);
	pthread_create(&t2, NULL, masked_main, NULL);
	wl_init("signals");
	uint64_t last_usr2 = 0, last_hup = 0;
	while (!wl_verify_requested()) {
		if (n_usr2 != last_usr2)
			wl_say("sig USR2 %llu", (unsigned long long)(last_usr2 = n_usr2));
		if (n_hup != last_hup)
			wl_say("sig HUP %llu", (unsigned long long)(last_hup = n_hup));
		wl_progress(++loops);
		wl_sleep_ms(10);
	}
	verify();
}
