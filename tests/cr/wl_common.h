/*
 * Shared plumbing of the checkpoint/restore workload programs (zdtm style).
 *
 * Every workload speaks the same line protocol on stdout, one write(2) per
 * line so a line is never split by a checkpoint:
 *
 *   ready <name> token=<hex> pid=<pid>      once, at start (never after a restore)
 *   progress <n> token=<hex>                about every 100 ms, n never decreases
 *   verify ok progress=<n> token=<hex> ...  on SIGUSR1 when every invariant holds (exit 0)
 *   verify FAIL <why> progress=<n> ...      when one does not (exit 1)
 *
 * The token is random per start and lives in memory, so a restored process
 * that prints the token of the original run (and no second "ready") has
 * continued from the checkpoint, not from zero. If CR_RESULT names a file,
 * the verify line is also written there (for restores whose stdout the
 * harness does not hold).
 */
#ifndef CR_WL_COMMON_H
#define CR_WL_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Sets up stdout, the token and the SIGUSR1 verify request; prints "ready". */
void wl_init(const char *name);

/* True once SIGUSR1 has asked for a verify. */
int wl_verify_requested(void);

/* Prints "progress <n>" if the last one is older than 100 ms. */
void wl_progress(uint64_t n);

/* Prints one line (a newline is appended) with a single write(2). */
void wl_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the verify line, writes CR_RESULT, exits 0 if ok else 1. */
void wl_finish(int ok, uint64_t progress, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

/* Records a failed check (the first one's text is kept) unless ok. */
void wl_expect(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks recorded as failed so far, and the first one's text ("" if none). */
int wl_failures(void);
const char *wl_first_failure(void);

/* perror(what) and exit 2: the workload could not even build its state. */
void wl_die(const char *what) __attribute__((noreturn));

/* n pseudo-random bytes from wl_rand(seed). */
void wl_fill(uint8_t *p, size_t n, uint64_t *seed);

/* A directory the workload may create files in: the one of $CR_RESULT
 * (the harness's work directory, removed after the test), else /tmp. */
const char *wl_work_dir(void);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t wl_now_ns(int clockid);

/* Sleeps ms milliseconds, resuming after signals. */
void wl_sleep_ms(unsigned ms);

/* splitmix64: deterministic pseudo-random numbers from a state word. */
uint64_t wl_rand(uint64_t *state);

/* Parses "--name value" style numeric options; returns def when absent. */
uint64_t wl_opt(int argc, char **argv, const char *name, uint64_t def);

#endif
