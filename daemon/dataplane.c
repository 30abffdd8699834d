/* The data plane's glue: roles to app, chain, replication and Sync. See
 * dataplane.h; the backup's receiving side is in dataplane_recv.c. */
#include "dataplane.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <event2/event.h>

#include "app.h"
#include "clock.h"
#include "control.h"
#include "dataplane_int.h"
#include "journal.h"
#include "proc.h"
#include "ready.h"
#include "standby.h"

/* The first generation number the app may use in term: numbers grow
 * across terms, so any two chains compare by their newest generation. */
static uint64_t generation_floor(const struct cs_dataplane *dp, uint64_t term)
{
	uint64_t floor = term << CS_STORE_TERM_SHIFT, next = cs_store_newest(dp->store) + 1;

	return next > floor ? next : floor;
}

static void update_durable(struct cs_dataplane *dp)
{
	cs_daemon_set_durable(dp->d, cs_store_newest(dp->store));
}

/* ---- the app on the primary ---- */

/* A cold restore: `checksync restore` reads the chain from disk. */
static int start_cold(struct cs_dataplane *dp, uint64_t newest, const char *why)
{
	int r;

	dp->path = CS_PATH_COLD;
	cs_event(CS_EV_RESTORE_STARTED, .generation = newest, .reason = why,
	         .path = cs_failover_path_name(CS_PATH_COLD), .path_reason = dp->path_reason);
	r = cs_app_start(dp->app, CS_APP_RESTORE, generation_floor(dp, dp->term));
	if (r < 0)
		cs_event(CS_EV_RESTORE_FAILED, .generation = newest,
		         .reason = "the checksync tool could not be started");
	return r;
}

/* The promoted standby's answer: adopted as the app, or a cold restore at
 * once (the standby is gone by then: nothing of it is left). */
static void standby_promoted(void *arg, int err, const struct cs_standby_handover *h,
                             const char *why)
{
	struct cs_dataplane *dp = arg;
	int r = err;

	dp->promoting = false;
	if (!err) {
		if (h->generation)
			dp->start_generation = h->generation;
		r = cs_app_adopt(dp->app, h->pid, h->pidfd, h->control_fd, dp->start_ms);
		if (r == -EBUSY) { /* cannot be: nothing runs while promoting; never two apps */
			cs_proc_kill_tree(h->pid, 1);
			close(h->pidfd);
		}
		if (r == 0)
			return;
		why = "failed: the promoted standby could not be taken over as the app";
	}
	snprintf(dp->path_reason, sizeof(dp->path_reason), "%s", why);
	cs_log_warn("the standby did not take over (%s): restoring from the chain",
	            dp->path_reason);
	start_cold(dp, cs_store_rescan(dp->store), "the standby could not take over");
}

/* The standby path, when the standby can take it (standby.h decides);
 * false with the reason in dp->path_reason otherwise. */
static bool try_standby(struct cs_dataplane *dp, uint64_t newest, const char *why)
{
	struct cs_standby_view v;

	if (!dp->standby) {
		snprintf(dp->path_reason, sizeof(dp->path_reason), "off: no standby here");
		return false;
	}
	cs_standby_view(dp->standby, &v);
	v.chain_newest = newest;
	if (cs_failover_path(&v, dp->path_reason, sizeof(dp->path_reason)) == CS_PATH_COLD)
		return false;
	if (cs_standby_promote(dp->standby, generation_floor(dp, dp->term), standby_promoted, dp) <
	    0) {
		snprintf(dp->path_reason, sizeof(dp->path_reason),
		         "failed: promote could not be sent to the standby");
		return false;
	}
	dp->promoting = true;
	dp->path = CS_PATH_STANDBY;
	dp->path_reason[0] = '\0';
	cs_event(CS_EV_RESTORE_STARTED, .generation = newest, .reason = why,
	         .path = cs_failover_path_name(CS_PATH_STANDBY));
	return true;
}

static int start_app(struct cs_dataplane *dp, const char *why)
{
	uint64_t newest = cs_store_rescan(dp->store);
	int r;

	dp->start_ms = cs_monotonic_ms();
	dp->start_generation = newest;
	dp->start_bytes = newest ? cs_store_bytes(dp->store) : 0;
	if (newest) {
		dp->restores++;
		return try_standby(dp, newest, why) ? 0 : start_cold(dp, newest, why);
	}
	dp->path = -1; /* a fresh start restores nothing */
	r = cs_app_start(dp->app, CS_APP_FRESH, generation_floor(dp, dp->term));
	if (r < 0)
		cs_event(CS_EV_RESTORE_FAILED, .reason = "the checksync tool could not be started");
	return r;
}

static int sync_decide(void *ctx, uint64_t generation, char *why, size_t cap)
{
	struct cs_dataplane *dp = ctx;

	if (dp->cfg->checkpoint.sync == CS_SYNC_LOCAL)
		return 1;
	return cs_repl_acknowledged(dp->repl, generation, why, cap);
}

static void on_promote(void *arg, uint64_t term)
{
	struct cs_dataplane *dp = arg;
	char path[4200];

	if (!dp->app)
		return;
	dp->term = term;
	dp->promotions++;
	dp->promoted_ms = cs_monotonic_ms();
	dp->local_restore = dp->served_in_term = false;
	dp->announce = true;
	cs_store_rescan(dp->store);
	if (cs_store_set_lineage(dp->store, term) < 0) {
		cs_event(CS_EV_RESTORE_FAILED,
		         .reason =
		             "the chain's lineage file cannot be written (see the error above)");
		return;
	}
	snprintf(path, sizeof(path), "%s/sync.sock", cs_store_chain_dir(dp->store));
	if (cs_syncsrv_open(cs_daemon_base(dp->d), path, dp->cfg->checkpoint.sync_timeout_ms,
	                    sync_decide, dp, &dp->sync_latency, &dp->sync) < 0)
		dp->sync = NULL; /* logged; Sync then fails in the app with ENOTCONN */
	cs_repl_start(dp->repl, term);
	start_app(dp, "promoted to primary");
}

static void on_fence(void *arg, uint64_t term, const char *why)
{
	struct cs_dataplane *dp = arg;

	(void)term;
	if (!dp->app)
		return;
	cs_standby_stop(dp->standby, why); /* a promotion of it may be under way */
	dp->promoting = false;
	cs_app_stop(dp->app, why);
	evtimer_del(dp->retry);
	cs_repl_stop(dp->repl);
	cs_syncsrv_close(dp->sync, ESTALE, "this node is no longer the primary");
	dp->sync = NULL;
	dp->term = 0;
}

static void describe_exit(int st, char *buf, size_t cap)
{
	if (WIFSIGNALED(st))
		snprintf(buf, cap, "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, cap, "exit status %d", WEXITSTATUS(st));
}

/* Local restores within the last minute, this one included. */
static unsigned count_restore(struct cs_dataplane *dp)
{
	uint64_t now = cs_monotonic_ms();
	unsigned n = 0;

	dp->restore_times[dp->restore_next++ % CS_DP_RESTORE_RING] = now;
	for (unsigned i = 0; i < CS_DP_RESTORE_RING; i++)
		if (dp->restore_times[i] && now - dp->restore_times[i] < 60000)
			n++;
	return n;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs_dataplane *dp = arg;

	(void)fd, (void)what;
	if (dp->term && !dp->promoting && cs_app_state(dp->app) == CS_APP_STOPPED)
		start_app(dp, "retrying after repeated failures");
}

/* Too many failures in a minute. If the app served in this term, the host
 * may be the problem: hand the role to a backup. If it never did, a
 * failover would only move the same failure around the cluster (a broken
 * binary or config fails everywhere), so wait and try again here. */
static void too_many_failures(struct cs_dataplane *dp)
{
	struct timeval later = {CS_DP_RETRY_S, 0};
	char why[200];

	snprintf(why, sizeof(why),
	         "the app stopped more than %u times within a minute (app.max_restores_per_minute)",
	         dp->cfg->app.max_restores_per_minute);
	if (dp->served_in_term && cs_daemon_step_down(dp->d, why) == 0)
		return;
	cs_event(CS_EV_RESTORE_FAILED, .reason = why);
	cs_log_err("the app never served in this term, or no backup can take over: trying again "
	           "in %d s",
	           CS_DP_RETRY_S);
	evtimer_add(dp->retry, &later);
}

static void app_exited(void *ctx, int st, enum cs_app_start how, uint64_t ran_ms)
{
	struct cs_dataplane *dp = ctx;
	enum cs_on_exit policy = dp->cfg->app.on_exit;
	char what[64], why[200];

	if (!dp->term)
		return;
	describe_exit(st, what, sizeof(what));
	snprintf(why, sizeof(why), "%s after %" PRIu64 " ms%s", what, ran_ms,
	         how == CS_APP_RESTORE && !dp->served ? " (the restore itself failed)" : "");
	cs_event(CS_EV_APP_CRASHED, .reason = why);
	dp->served = false;
	if (count_restore(dp) > dp->cfg->app.max_restores_per_minute) {
		too_many_failures(dp);
		return;
	}
	if (policy == CS_ON_EXIT_FAILOVER &&
	    cs_daemon_step_down(dp->d, "app.on_exit is failover") == 0)
		return;
	if (policy == CS_ON_EXIT_RESTART) {
		cs_log_warn("app.on_exit is restart: starting a fresh copy of the app");
		cs_app_start(dp->app, CS_APP_FRESH, generation_floor(dp, dp->term));
		return;
	}
	dp->local_restore = true;
	start_app(dp, policy == CS_ON_EXIT_FAILOVER ? "no backup to fail over to"
	                                            : "app.on_exit is restore");
}

static void app_serving(void *ctx, enum cs_app_start how, uint64_t took_ms)
{
	struct cs_dataplane *dp = ctx;

	dp->served = dp->served_in_term = true;
	if (how == CS_APP_RESTORE) {
		cs_hist_observe(&dp->restore_seconds, (double)took_ms / 1000);
		if (dp->promoted_ms) {
			cs_hist_observe(&dp->failover_seconds,
			                (double)(cs_monotonic_ms() - dp->promoted_ms) / 1000);
			if (dp->path >= 0)
				dp->failovers[dp->path]++;
		}
		cs_event(CS_EV_RESTORE_DONE, .generation = dp->start_generation,
		         .bytes = dp->start_bytes, CS_DURATION(took_ms),
		         .path = dp->path >= 0 ? cs_failover_path_name(dp->path) : NULL,
		         .path_reason = dp->path_reason);
		if (dp->local_restore)
			cs_event(CS_EV_APP_RESTORED_LOCALLY, .generation = dp->start_generation);
	}
	dp->promoted_ms = 0; /* a fresh start after a promotion is no failover */
	cs_event(CS_EV_APP_SERVING, CS_DURATION(cs_monotonic_ms() - dp->start_ms));
	if (dp->announce) /* the first start of this term: now clients may come */
		cs_daemon_notify(dp->d, "app_serving");
	dp->local_restore = dp->announce = false;
}

/* ---- peers ---- */

static int repl_send(void *ctx, int peer, const struct cs_msg *m)
{
	return cs_daemon_send(((struct cs_dataplane *)ctx)->d, peer, m);
}

static size_t repl_queued(void *ctx, int peer)
{
	return cs_daemon_queued(((struct cs_dataplane *)ctx)->d, peer);
}

static void repl_changed(void *ctx)
{
	struct cs_dataplane *dp = ctx;

	if (dp->sync)
		cs_syncsrv_kick(dp->sync);
}

static void on_peer(void *arg, int peer, bool up)
{
	struct cs_dataplane *dp = arg;

	cs_repl_peer(dp->repl, peer, up);
	if (!up)
		cs_dp_recv_peer_down(dp, peer);
}

static void on_writable(void *arg, int peer)
{
	cs_repl_writable(((struct cs_dataplane *)arg)->repl, peer);
}

static void on_message(void *arg, int peer, const struct cs_msg *m)
{
	struct cs_dataplane *dp = arg;
	char text[CS_ERROR_TEXT_MAX + 1];

	switch (m->type) {
	case CS_MSG_ACK:
		cs_repl_ack(dp->repl, peer, &m->ack);
		break;
	case CS_MSG_ERROR:
		cs_str_copy(text, sizeof(text), m->error.text);
		cs_log_warn("%s refused: %s", dp->cfg->peers[peer].name, text);
		cs_repl_refused(dp->repl, peer, m->error.code, text);
		break;
	default:
		cs_dp_recv_message(dp, peer, m);
	}
}

static bool notify_later(void *arg)
{
	return ((struct cs_dataplane *)arg)->app != NULL;
}

/* ---- status and control ---- */

/* Counters for the metrics endpoint: they only grow while the daemon runs. */
static json_t *counters(const struct cs_dataplane *dp)
{
	uint64_t images, bytes;

	cs_repl_checkpoints(dp->repl, &images, &bytes);
	return json_pack("{s:I, s:I, s:I, s:I}", "checkpoints", (json_int_t)images,
	                 "checkpoint_bytes", (json_int_t)bytes, "restores",
	                 (json_int_t)dp->restores, "promotions", (json_int_t)dp->promotions);
}

/* Promotions whose app served, by the path the restore took: one entry
 * per path, so the metric has a series for each from the start. */
static json_t *failovers(const struct cs_dataplane *dp)
{
	return json_pack("[{s:s, s:I}, {s:s, s:I}]", "name", cs_failover_path_name(CS_PATH_STANDBY),
	                 "count", (json_int_t)dp->failovers[CS_PATH_STANDBY], "name",
	                 cs_failover_path_name(CS_PATH_COLD), "count",
	                 (json_int_t)dp->failovers[CS_PATH_COLD]);
}

/* The distributions behind the metrics' histograms (cs_hist_json). */
static json_t *histograms(const struct cs_dataplane *dp)
{
	json_t *h = json_pack("{s:o, s:{s:o, s:o}, s:o, s:o}", "checkpoint_size_bytes",
	                      cs_repl_sizes_json(dp->repl), "sync_seconds", "ok",
	                      cs_hist_json(&dp->sync_latency.ok), "error",
	                      cs_hist_json(&dp->sync_latency.failed), "restore_seconds",
	                      cs_hist_json(&dp->restore_seconds), "failover_seconds",
	                      cs_hist_json(&dp->failover_seconds));

	if (dp->app)
		json_object_set_new(h, "checkpoint_pause_seconds", cs_app_pauses_json(dp->app));
	if (dp->standby)
		json_object_set_new(h, "standby_apply_seconds", cs_standby_apply_json(dp->standby));
	return h;
}

static json_t *status(void *arg)
{
	struct cs_dataplane *dp = arg;
	json_t *app = dp->app ? cs_app_status(dp->app) : json_null();

	if (dp->app) {
		json_object_set_new(app, "generation",
		                    json_integer((json_int_t)cs_store_newest(dp->store)));
		json_object_set_new(app, "restores", json_integer((json_int_t)dp->restore_next));
		json_object_set_new(app, "path",
		                    dp->path >= 0 ? json_string(cs_failover_path_name(dp->path))
		                                  : json_null());
		json_object_set_new(app, "path_reason", json_string(dp->path_reason));
	}
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:s, s:I}", "app", app,
	                 "standby", dp->standby ? cs_standby_status(dp->standby) : json_null(),
	                 "failovers", failovers(dp), "counters", counters(dp), "histograms",
	                 histograms(dp), "store", cs_store_status(dp->store), "restore_ready",
	                 dp->ready ? cs_ready_status(dp->ready) : json_null(), "backups",
	                 dp->term ? cs_repl_status(dp->repl) : json_array(), "durability",
	                 cs_durability_name(dp->cfg->checkpoint.durability), "sync",
	                 cs_sync_mode_name(dp->cfg->checkpoint.sync), "sync_waiting",
	                 (json_int_t)cs_syncsrv_waiting(dp->sync));
}

static void checkpoint_done(void *arg, int err, uint64_t generation, const char *msg)
{
	struct cs_control_pending *p = arg;

	if (err)
		cs_control_reply(p, cs_control_error("checkpoint failed: %s", msg));
	else
		cs_control_reply(
		    p, json_pack("{s:b, s:I}", "ok", 1, "generation", (json_int_t)generation));
}

static json_t *control(void *arg, struct cs_control_client *client, const char *cmd, json_t *req)
{
	struct cs_dataplane *dp = arg;
	struct cs_control_pending *p;

	(void)req;
	if (strcmp(cmd, "checkpoint") != 0)
		return cs_control_error(
		    "unknown command %s (known: status, switchover, checkpoint)", cmd);
	if (!dp->app || cs_app_state(dp->app) != CS_APP_SERVING)
		return cs_control_error("no app is serving on this node (%s)",
		                        dp->app ? cs_app_state_name(cs_app_state(dp->app))
		                                : "no app configured");
	p = cs_control_defer(client);
	if (cs_app_checkpoint(dp->app, checkpoint_done, p) < 0)
		cs_control_reply(p, cs_control_error("cannot reach the app's agent"));
	return NULL;
}

const struct cs_dataplane_ops cs_dataplane_ops = {
    .on_promote = on_promote,
    .on_fence = on_fence,
    .on_peer = on_peer,
    .on_writable = on_writable,
    .on_message = on_message,
    .notify_later = notify_later,
    .status = status,
    .control = control,
};

/* ---- life ---- */

/* After new checkpoints, the agent's pauses of them (app.h). */
static void ask_pauses(struct cs_dataplane *dp)
{
	uint64_t images, bytes;

	cs_repl_checkpoints(dp->repl, &images, &bytes);
	if (dp->app && images != dp->pauses_asked_at && cs_app_poll_pauses(dp->app))
		dp->pauses_asked_at = images;
}

/* A standby runs on a backup whose chain holds a generation of its
 * primary's term, unless the config turns it off. One that runs is kept
 * while an election is under way (it is about to be needed) or while no
 * primary is known; none is started on a chain about to be replaced. */
static void tick_standby(struct cs_dataplane *dp)
{
	enum cs_member_role role = cs_daemon_role(dp->d);
	uint64_t newest = cs_store_newest(dp->store), lineage = cs_store_lineage(dp->store);
	enum cs_standby_wish wish = CS_STANDBY_NONE;
	char why[160];

	if (!dp->standby)
		return;
	if (!dp->cfg->checkpoint.standby)
		snprintf(why, sizeof(why), "checkpoint.standby is false");
	else if (dp->term || (role != CS_MROLE_BACKUP && role != CS_MROLE_CANDIDATE))
		snprintf(why, sizeof(why), "this node is not a backup");
	else if (!newest)
		snprintf(why, sizeof(why), "the chain holds no generation yet");
	else if (role == CS_MROLE_CANDIDATE) {
		wish = CS_STANDBY_KEEP;
		snprintf(why, sizeof(why), "an election is under way");
	} else if (cs_daemon_primary(dp->d) < 0) {
		wish = CS_STANDBY_KEEP; /* a restarted backup: its chain may be old */
		snprintf(why, sizeof(why), "no primary known yet");
	} else if (lineage != cs_daemon_term(dp->d)) {
		wish = CS_STANDBY_KEEP;
		snprintf(why, sizeof(why),
		         "the chain is of term %" PRIu64 ", not %" PRIu64
		         ": waiting for the primary's images",
		         lineage, cs_daemon_term(dp->d));
	} else {
		wish = CS_STANDBY_RUN;
		why[0] = '\0';
	}
	cs_standby_want(dp->standby, wish, newest, why);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs_dataplane *dp = arg;

	(void)fd, (void)what;
	if (dp->term)
		cs_store_rescan(dp->store);
	ask_pauses(dp);
	update_durable(dp);
	tick_standby(dp);
	if (dp->ready)
		cs_ready_enable(dp->ready, !dp->term && cs_store_newest(dp->store) > 0);
}

/* What may wait in a backup's link queue: checkpoint.max_buffer_mb, but
 * never more than CS_DP_QUEUE_MAX, because heartbeats and lease renewals
 * wait behind it on the same link. Images stay in files until sent. */
static uint64_t queue_bound(const struct cs_config *c)
{
	return c->checkpoint.max_buffer_bytes < CS_DP_QUEUE_MAX ? c->checkpoint.max_buffer_bytes
	                                                        : CS_DP_QUEUE_MAX;
}

static void ready_changed(void *ctx, bool ready, const char *reason)
{
	(void)ctx;
	if (!ready)
		cs_event(CS_EV_RESTORE_NOT_READY, .reason = reason);
	else
		cs_log_info("restore ready: %s", reason);
}

static int open_parts(struct cs_dataplane *dp, const char *tool)
{
	const struct cs_config *c = dp->cfg;
	struct cs_store_params sp = {.state_dir = c->state_dir,
	                             .tool = tool,
	                             .fsync = c->checkpoint.durability == CS_DURABILITY_DISK,
	                             .keep_stale = c->checkpoint.keep_stale_chains};
	struct cs_repl_params rp = {.n_peers = c->n_peers,
	                            .is_backup = dp->is_backup,
	                            .names = (const char *const *)dp->names,
	                            .max_queue_bytes = queue_bound(c)};
	struct cs_repl_ops ro = {.send = repl_send, .queued = repl_queued, .changed = repl_changed};
	struct cs_app_ops ao = {.exited = app_exited, .serving = app_serving};
	int r = cs_store_open(cs_daemon_base(dp->d), &sp, &dp->store);

	if (r < 0)
		return r;
	rp.chain_dir = cs_store_chain_dir(dp->store);
	if ((r = cs_repl_new(cs_daemon_base(dp->d), &rp, &ro, dp, &dp->repl)) < 0)
		return r;
	if (c->has_app) {
		struct cs_app_params ap = {.tool = tool,
		                           .chain_dir = cs_store_chain_dir(dp->store),
		                           .exec = c->app.exec,
		                           .env = c->app.env,
		                           .user = c->app.user,
		                           .workdir = c->app.workdir,
		                           .interval_ms = c->checkpoint.interval_ms};
		r = cs_app_new(cs_daemon_base(dp->d), &ap, &ao, dp, &dp->app);
		struct cs_standby_params sbp = {
		    .tool = tool, .chain_dir = cs_store_chain_dir(dp->store), .env = c->app.env};

		if (r == 0)
			r = cs_ready_new(cs_daemon_base(dp->d), tool, cs_store_chain_dir(dp->store),
			                 ready_changed, dp, &dp->ready);
		if (r == 0)
			r = cs_standby_new(cs_daemon_base(dp->d), &sbp, &dp->standby);
	}
	return r;
}

int cs_dataplane_new(struct cs_daemon *d, const struct cs_config *cfg, const char *tool,
                     struct cs_dataplane **out)
{
	struct cs_dataplane *dp = calloc(1, sizeof(*dp));
	const char *self = cfg->node;
	struct timeval tick = {0, 100 * 1000};
	int r;

	if (!dp || !(dp->is_backup = calloc(cfg->n_peers, sizeof(bool))) ||
	    !(dp->names = calloc(cfg->n_peers, sizeof(char *)))) {
		cs_dataplane_free(dp);
		return -ENOMEM;
	}
	dp->d = d;
	dp->cfg = cfg;
	dp->recv_peer = -1;
	dp->path = -1;
	cs_hist_init(&dp->restore_seconds, cs_hist_seconds, cs_hist_seconds_n);
	cs_hist_init(&dp->failover_seconds, cs_hist_seconds, cs_hist_seconds_n);
	cs_hist_init(&dp->sync_latency.ok, cs_hist_seconds, cs_hist_seconds_n);
	cs_hist_init(&dp->sync_latency.failed, cs_hist_seconds, cs_hist_seconds_n);
	for (size_t i = 0; i < cfg->n_peers; i++) {
		dp->names[i] = cfg->peers[i].name;
		dp->is_backup[i] = !cfg->peers[i].witness && strcmp(cfg->peers[i].name, self) != 0;
	}
	r = open_parts(dp, tool);
	if (r < 0) {
		cs_dataplane_free(dp);
		return r;
	}
	dp->tick = event_new(cs_daemon_base(d), -1, EV_PERSIST, tick_cb, dp);
	dp->retry = evtimer_new(cs_daemon_base(d), retry_cb, dp);
	event_add(dp->tick, &tick);
	update_durable(dp);
	*out = dp;
	return 0;
}

void cs_dataplane_free(struct cs_dataplane *dp)
{
	if (!dp)
		return;
	if (dp->tick)
		event_free(dp->tick);
	if (dp->retry)
		event_free(dp->retry);
	cs_ready_free(dp->ready);
	cs_standby_free(dp->standby);
	cs_app_free(dp->app);
	cs_syncsrv_close(dp->sync, ESTALE, "the daemon is stopping");
	cs_repl_free(dp->repl);
	cs_store_free(dp->store);
	free(dp->is_backup);
	free(dp->names);
	free(dp);
}
