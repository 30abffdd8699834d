//go:build checksync_static

/*
 * -tags checksync_static: the program links libchecksync.a (gobuild -L) and
 * calls the agent directly, so it needs neither ld.so nor dlsym and works in
 * a fully static binary. Referencing cs_enabled pulls in agent.c, whose
 * constructor starts the agent when CHECKSYNC_DIR is set. When a preloaded
 * copy of the agent is active as well, this copy forwards every call to it
 * (agent.c, "Two copies"), so these calls reach the active agent either way.
 */
#include "shim_api.h"

int csgo_bind(struct csgo_api *api)
{
	api->enabled = cs_enabled;
	api->sync = cs_sync;
	api->checkpoint = cs_checkpoint;
	api->stats = cs_stats;
	api->stats_size = cs_stats_size;
	api->on_restore = cs_on_restore;
	return 1;
}
