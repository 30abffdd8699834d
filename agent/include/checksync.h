/*
 * libchecksync: the public API for programs that run under checksync.
 *
 * The agent starts by itself when the environment names a checkpoint
 * directory (CHECKSYNC_DIR, set by `checksync run`), whether the library is
 * preloaded (LD_PRELOAD=libchecksync.so) or linked in (libchecksync.a, or
 * -lchecksync). Without CHECKSYNC_DIR nothing starts and every call below
 * returns -ENOTCONN, cheaply.
 *
 * All functions are thread-safe, return 0 or a negative errno, never log,
 * never write to stderr and never exit.
 */
#ifndef CHECKSYNC_H
#define CHECKSYNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the agent runs in this process, 0 otherwise. */
int cs_enabled(void);

/* Takes a checkpoint now and returns once it is durable in the directory
 * (never waits for a daemon's backups, unlike cs_sync).
 * -ENOTSUP means the image was written but something could not be captured
 * (cs_stats().last_error names it). */
int cs_checkpoint(uint64_t *ret_generation);

/* Returns once a checkpoint taken after this call is durable. Concurrent
 * callers may share one checkpoint. Under `checksync run` durable means in
 * the directory. Under checksyncd (DIR/sync.sock exists) it means held by
 * the backups as the daemon's checkpoint.sync requires, and the call can
 * fail after the local checkpoint: -EHOSTUNREACH (no backup is up),
 * -ESTALE (this process is no longer the primary's), -ETIMEDOUT (the
 * backups, or the daemon, did not answer in time), -ENOTCONN or
 * -ECONNRESET (the daemon does not answer). Then the caller's write is not
 * durable: do not acknowledge it. *ret_generation is the local checkpoint
 * either way. Protocol: cs_agent_abi.h. */
int cs_sync(uint64_t *ret_generation);

struct cs_restore_info {
	uint64_t restored_from_generation;
	int64_t away_ns; /* how long the process was not running, as the time namespace hides it */
};

/* cb runs on the agent's thread right after this process was restored from
 * a checkpoint, before the agent takes its first checkpoint there. At most
 * 8 callbacks. */
int cs_on_restore(void (*cb)(const struct cs_restore_info *info, void *arg), void *arg);

enum cs_tracking { CS_TRACKING_NONE = 0, CS_TRACKING_UFFD = 1, CS_TRACKING_HASH = 2 };

struct cs_stats {
	uint64_t generation;  /* last durable generation, 0 if none */
	uint64_t checkpoints; /* taken successfully */
	uint64_t failures;
	uint64_t bytes_total; /* image bytes written */
	uint64_t last_bytes;
	uint64_t last_pages;    /* pages in the last image */
	uint64_t last_pause_ns; /* first freeze signal sent to all threads released */
	uint64_t max_pause_ns;
	uint64_t last_pause_cpu_ns; /* the agent's CPU time in that pause (no scheduling delays) */
	int last_copied;        /* 1: the last delta was copied during the pause, 0: COW child */
	uint64_t restored_from; /* generation this process was restored from, 0 if none */
	int tracking;           /* enum cs_tracking */
	char last_error[256];
	/* The freeze signal (freeze_signal, 62 with glibc) found taken by
	 * another handler (Go's runtime and os/signal do that) and taken back:
	 * how often, the handler found last (its address; 0 = SIG_DFL,
	 * 1 = SIG_IGN), when the first and the last were found (CLOCK_REALTIME
	 * ns, 0 if never), and how many signals the agent did not send itself
	 * it passed on to that handler. */
	uint64_t sig_takeovers;
	uint64_t sig_foreign_handler;
	int64_t sig_first_takeover_ns;
	int64_t sig_last_takeover_ns;
	uint64_t sig_forwarded;
	int freeze_signal;
	/* The Go heap's free pages (docs/go.md, "Free memory of the Go heap"):
	 * go_heap 1 = left out of the images, 2 = only counted
	 * (CHECKSYNC_GOLIVE=measure), 0 = captured page by page, go_heap_why
	 * says why. go_version is the runtime's (runtime.buildVersion), "" if
	 * none was found. Pages are 4 KiB; the go_*_last fields are of the last
	 * checkpoint: pages free in the Go heap, resident pages left out of
	 * RESIDENT, pages left out of PAGES, pages sent whole because they left
	 * the free set since the parent. The totals count every checkpoint
	 * taken: pages left out of PAGES and pages put in; go_skipped counts
	 * checkpoints taken page by page because a thread held the heap lock. */
	int go_heap;
	char go_version[32];
	char go_heap_why[128];
	uint64_t go_free_pages_last;
	uint64_t go_left_out_pages_last;
	uint64_t go_left_out_sent_last;
	uint64_t go_readded_pages_last;
	uint64_t go_left_out_sent_total;
	uint64_t go_sent_total;
	uint64_t go_skipped;
	/* Sleeps and waits with a timeout that a freeze interrupted: continued
	 * until their deadline, and left to return EINTR early because their
	 * deadline was unknown (a raw system call, or one libc makes
	 * internally; docs/capture.md, "Sleeps do not end early"). */
	uint64_t sleeps_continued;
	uint64_t sleeps_cut;
};

/* Fills *out (sizeof(struct cs_stats) bytes of the header the agent was
 * built with). Fields are only ever appended to struct cs_stats. */
int cs_stats(struct cs_stats *out);

/* The same, writing at most size bytes: the prefix of struct cs_stats a
 * caller built against an older (smaller) header knows. Fields beyond the
 * agent's own struct are zeroed. */
int cs_stats_size(struct cs_stats *out, size_t size);

#ifdef __cplusplus
}
#endif

#endif
