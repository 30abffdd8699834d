/*
 * The C side of the Go package: it finds libchecksync's public API at run
 * time with dlsym(RTLD_DEFAULT), so a Go program carries no agent of its own
 * and always talks to the one agent that `checksync run` preloaded (or none).
 * Plain C types only, so cgo needs no knowledge of the agent's structs.
 */
#ifndef CS_GO_SHIM_H
#define CS_GO_SHIM_H

#include <stdint.h>

struct csgo_stats {
	uint64_t generation;
	uint64_t checkpoints;
	uint64_t bytes_total;
	uint64_t bytes_last;
	int64_t last_pause_ns;
	int64_t max_pause_ns;
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
