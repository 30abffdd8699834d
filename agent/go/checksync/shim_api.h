/*
 * How the shim reaches the agent: a table of the agent's public functions,
 * filled by one of two files chosen by build tag.
 *   shim_dlsym.c  (default): looked up at run time with dlsym(RTLD_DEFAULT),
 *                 so the program talks to the agent `checksync run` preloaded.
 *   shim_static.c (-tags checksync_static): the program links libchecksync.a
 *                 and calls it directly; works in a fully static binary.
 */
#ifndef CS_GO_SHIM_API_H
#define CS_GO_SHIM_API_H

#include <stddef.h>
#include <stdint.h>

#include <checksync.h>

struct csgo_api {
	int (*enabled)(void);
	int (*sync)(uint64_t *);
	int (*checkpoint)(uint64_t *);
	int (*stats)(struct cs_stats *);
	/* NULL with an agent older than cs_stats_size: then stats() into a
	 * buffer with room to spare */
	int (*stats_size)(struct cs_stats *, size_t);
	int (*on_restore)(void (*)(const struct cs_restore_info *, void *), void *);
};

/* Fills api; returns 1 when every function (but stats_size) was found. */
int csgo_bind(struct csgo_api *api);

#endif
