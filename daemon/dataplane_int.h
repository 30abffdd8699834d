/* Internals shared by dataplane.c (roles, app, Sync, status) and
 * dataplane_recv.c (a backup receiving the primary's images). */
#ifndef CS_DATAPLANE_INT_H
#define CS_DATAPLANE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "daemon.h"
#include "replicate.h"
#include "store.h"
#include "syncsrv.h"

#define CS_DP_RESTORE_RING 64
#define CS_DP_QUEUE_MAX    (4u << 20) /* image bytes queued per backup link, at most */
#define CS_DP_RETRY_S      30         /* after too many failures of an app that never served */

struct cs_app;
struct cs_ready;
struct cs_standby;
struct event;

struct cs_dataplane {
	struct cs_daemon *d;
	const struct cs_config *cfg;
	bool *is_backup;
	char **names;
	struct cs_store *store;
	struct cs_repl *repl;
	struct cs_app *app; /* NULL without an "app" in the config */
	struct cs_syncsrv *sync;
	struct cs_ready *ready;     /* restore readiness, on a backup with an app */
	struct cs_standby *standby; /* the warm standby, on a backup with an app */
	struct event *tick, *retry;
	uint64_t term;             /* the term this node is primary of, 0 if not */
	uint64_t start_ms;         /* the app's last start */
	uint64_t start_generation; /* what it was restored from (0: fresh) */
	uint64_t start_bytes;      /* the chain's bytes then */
	bool local_restore;        /* that start follows a crash on this primary */
	bool served;               /* the app answered since its last start */
	bool served_in_term;       /* ... at least once in this term */
	bool announce;             /* run the notify hook when it serves */
	bool promoting;            /* the standby was asked to promote; no answer yet */
	int path;                  /* enum cs_failover_path of the last restore, -1: none */
	char path_reason[400];     /* why it went cold ("" for the standby path) */
	uint64_t restore_times[CS_DP_RESTORE_RING];
	unsigned restore_next;
	/* For the metrics: restores from the chain started, promotions with an
	 * app to run; durations of the restores that served (start to first
	 * answer) and of failovers (promotion to the restored app's first
	 * answer); Sync latencies; checkpoints seen when the agent's pauses
	 * were last asked for. */
	uint64_t restores, promotions;
	uint64_t failovers[2]; /* promotions that served, by enum cs_failover_path */
	struct cs_hist restore_seconds, failover_seconds;
	struct cs_sync_latency sync_latency;
	uint64_t promoted_ms; /* 0: no failover in progress */
	uint64_t pauses_asked_at;
	int recv_peer; /* who the transfer in progress comes from, -1 none */
};

void cs_dp_recv_message(struct cs_dataplane *dp, int peer, const struct cs_msg *m);
void cs_dp_recv_peer_down(struct cs_dataplane *dp, int peer);

#endif
