/*
 * sync: calls cs_sync() on request and says what it returned, for the sync
 * scenario, whose fake daemon (DIR/sync.sock) answers as the test wants.
 *
 * Each SIGUSR2 asks for one cs_sync() on the main thread; the answer is the
 * line "sync <n> rc=<r> gen=<g>" (n counts the calls, r is cs_sync's return,
 * 0 or -errno). The agent is the one `checksync run` preloads, found with
 * dlsym like the Go package does. A call in progress when the process is
 * checkpointed is in the image: the restored process finishes it.
 *
 * Invariant at verify: every requested call was answered.
 */
#include "wl_common.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static atomic_uint requested;

static void on_usr2(int sig)
{
	(void)sig;
	atomic_fetch_add(&requested, 1);
}

int main(void)
{
	/* Before "ready": the harness may ask as soon as it reads that line. */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGUSR2, &sa, NULL) < 0) {
		perror("sigaction SIGUSR2");
		return 1;
	}
	wl_init("sync");
	int (*sync_fn)(uint64_t *) = (int (*)(uint64_t *))dlsym(RTLD_DEFAULT, "cs_sync");
	if (!sync_fn)
		wl_finish(0, 0, "no cs_sync in the process (not run by checksync?)");
	uint64_t progress = 0;
	unsigned answered = 0;
	while (!wl_verify_requested()) {
		if (answered < atomic_load(&requested)) {
			uint64_t gen = 0;
			int rc = sync_fn(&gen);
			answered++;
			wl_say("sync %u rc=%d gen=%llu", answered, rc, (unsigned long long)gen);
		}
		wl_progress(++progress);
		wl_sleep_ms(5);
	}
	unsigned want = atomic_load(&requested);
	wl_finish(answered == want, progress, "answered=%u requested=%u", answered, want);
}
