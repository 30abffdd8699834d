//go:build !checksync_static

/* The default: find the preloaded agent's API at run time (docs/go.md). */
#include <dlfcn.h>

#include "shim_api.h"

int csgo_bind(struct csgo_api *api)
{
	/* RTLD_DEFAULT searches the executable and everything loaded with it,
	 * LD_PRELOAD first among the libraries. */
	api->enabled = (int (*)(void))dlsym(RTLD_DEFAULT, "cs_enabled");
	api->sync = (int (*)(uint64_t *))dlsym(RTLD_DEFAULT, "cs_sync");
	api->checkpoint = (int (*)(uint64_t *))dlsym(RTLD_DEFAULT, "cs_checkpoint");
	api->stats = (int (*)(struct cs_stats *))dlsym(RTLD_DEFAULT, "cs_stats");
	api->stats_size = (int (*)(struct cs_stats *, size_t))dlsym(RTLD_DEFAULT, "cs_stats_size");
	api->on_restore = (int (*)(void (*)(const struct cs_restore_info *, void *), void *))dlsym(
		RTLD_DEFAULT, "cs_on_restore");
	return api->enabled && api->sync && api->checkpoint && api->stats && api->on_restore;
}
