/*
 * The C side of the Go package. By default it finds libchecksync's public
 * API at run time with dlsym(RTLD_DEFAULT), so a Go program carries no agent
 * of its own and talks to the one `checksync run` preloaded (or none); with
 * -tags checksync_static it links libchecksync.a instead (shim_api.h).
 * Plain C types only, so cgo needs no knowledge of the agent's structs.
 */
#ifndef CS_GO_SHIM_H
#define CS_GO_SHIM_H

#include <stdint.h>

struct csgo_stats {
	uint64_t generation;
	uint64_t checkpoints;
	uint64_t failures;
	uint64_t bytes_total;
	uint64_t last_bytes;
	uint64_t last_pages;
	uint64_t last_pause_ns;
	uint64_t max_pause_ns;
	uint64_t last_pause_cpu_ns;
	int last_copied;
	uint64_t restored_from;
	int tracking;
	char last_error[256];
	uint64_t sig_takeovers;
	uint64_t sig_foreign_handler;
	int64_t sig_first_takeover_ns;
	int64_t sig_last_takeover_ns;
	uint64_t sig_forwarded;
	int freeze_signal;
};

struct csgo_restore {
	uint64_t seq; /* restores seen so far; 0 = none */
	uint64_t generation;
	int64_t away_ns;
};

/* 1 when the agent's API was found in the process, 0 otherwise. */
int csgo_resolve(void);
int csgo_enabled(void);
int csgo_sync(uint64_t *ret_generation);
int csgo_checkpoint(uint64_t *ret_generation);
int csgo_stats(struct csgo_stats *out);
/* Registers the agent callback; returns the read end of a pipe that gets a
 * byte after each restore (then read the details with csgo_last_restore). */
int csgo_restore_pipe(void);
void csgo_last_restore(struct csgo_restore *out);

#endif
