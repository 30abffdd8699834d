/* What the daemon does about role changes, and what it tells the outside:
 * journal events, the notify hook, sd_notify STATUS, the control socket
 * (status, switchover) and SIGHUP reloads. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "daemon_int.h"
#include "hooks.h"
#include "journal.h"
#include "peer.h"
#include "sdnotify.h"
#include "tls.h"

/* The notify hook's first argument and the journal event of a change. */
static enum cs_event_kind change_event(enum cs_member_role from, enum cs_member_role to)
{
	if (to == CS_MROLE_PRIMARY)
		return CS_EV_PROMOTED;
	if (to == CS_MROLE_FENCED)
		return CS_EV_FENCED;
	if (from == CS_MROLE_PRIMARY)
		return CS_EV_DEMOTED;
	return CS_EV_ROLE_CHANGED;
}

static void notify_finished(void *arg, int status, uint64_t took)
{
	char why[64];

	(void)arg;
	if (status == 0 || status == -ECANCELED)
		return;
	cs_event(CS_EV_NOTIFY_HOOK_FAILED, .hook = "notify",
	         .reason = cs_hook_status_text(status, took, why, sizeof(why)), CS_DURATION(took));
}

static void run_notify(struct cs_daemon *d, const char *event, const char *role, uint64_t term)
{
	char t[24];
	const char *argv[] = {d->live->hooks.notify, event, role, t, d->cfg->node, NULL};

	if (!d->live->hooks.notify)
		return;
	snprintf(t, sizeof(t), "%" PRIu64, term);
	if (cs_hook_run(d->hooks, "notify", argv, d->live->hooks.timeout_ms, true, notify_finished,
	                NULL) < 0)
		cs_log_warn("cannot queue the notify hook");
}

/* The one place where a role change has effects: the data plane first
 * (stopping the app is what fencing means), then the journal and hooks. */
void cs_daemon_role_changed(void *ctx, enum cs_member_role from, enum cs_member_role to,
                            enum cs_mevent_kind ev, const char *why)
{
	struct cs_daemon *d = ctx;
	uint64_t term = cs_membership_term(d->m);
	enum cs_event_kind kind = change_event(from, to);
	char line[256];

	if (from == CS_MROLE_PRIMARY && d->dp.on_fence)
		d->dp.on_fence(d->dp_arg, term, why);
	if (to == CS_MROLE_PRIMARY && d->dp.on_promote)
		d->dp.on_promote(d->dp_arg, term);
	snprintf(line, sizeof(line), "role %s -> %s (event %s: %s)", cs_member_role_name(from),
	         cs_member_role_name(to), cs_mevent_name(ev), why);
	cs_journal_set_state(cs_member_role_name(to), term);
	cs_event(kind, .old_role = cs_member_role_name(from), .reason = line);
	if (kind != CS_EV_PROMOTED || !d->dp.notify_later || !d->dp.notify_later(d->dp_arg))
		run_notify(d, cs_event_name(kind), cs_member_role_name(to), term);
	cs_daemon_update_status(d);
}

void cs_daemon_notify(struct cs_daemon *d, const char *event)
{
	run_notify(d, event, cs_member_role_name(cs_membership_role(d->m)),
	           cs_membership_term(d->m));
}

void cs_daemon_update_status(struct cs_daemon *d)
{
	size_t up = cs_links_up_count(d->links), others = d->cfg->n_peers - 1;
	int p = cs_membership_primary(d->m);
	char s[sizeof(d->status)];

	snprintf(s, sizeof(s), "%s, term %" PRIu64 ", primary %s, peers up %zu/%zu",
	         cs_member_role_name(cs_membership_role(d->m)), cs_membership_term(d->m),
	         p >= 0 ? d->cfg->peers[p].name : "none", up, others);
	if (strcmp(s, d->status) == 0)
		return;
	memcpy(d->status, s, sizeof(s));
	cs_sdnotify_status("%s", s);
}

/* ---- control socket ---- */

static json_t *core_status_json(struct cs_daemon *d)
{
	uint64_t now = cs_daemon_now_ms();
	int p = cs_membership_primary(d->m);
	json_t *peers = json_array();

	for (size_t i = 0; i < d->cfg->n_peers; i++) {
		int64_t silence = cs_membership_peer_silence(d->m, (int)i, now);

		if (strcmp(d->cfg->peers[i].name, d->cfg->node) == 0)
			continue;
		json_array_append_new(
		    peers,
		    json_pack(
		        "{s:s, s:s, s:s, s:o, s:b}", "name", d->cfg->peers[i].name, "role",
		        d->cfg->peers[i].witness ? "witness"
		        : p == (int)i            ? "primary"
		                                 : "backup",
		        "state", cs_peer_state_name(cs_membership_peer_state(d->m, (int)i, now)),
		        "last_heartbeat_ms", silence < 0 ? json_null() : json_integer(silence),
		        "witness", d->cfg->peers[i].witness));
	}
	return json_pack("{s:s, s:s, s:s, s:I, s:o, s:I, s:o}", "node", d->cfg->node, "cluster",
	                 d->cfg->cluster, "role", cs_member_role_name(cs_membership_role(d->m)),
	                 "term", (json_int_t)cs_membership_term(d->m), "primary",
	                 p >= 0 ? json_string(d->cfg->peers[p].name) : json_null(),
	                 "lease_remaining_ms", (json_int_t)cs_membership_lease_remaining(d->m, now),
	                 "peers", peers);
}

json_t *cs_daemon_status_json(void *arg)
{
	struct cs_daemon *d = arg;
	json_t *s = core_status_json(d), *dp;

	if (d->dp.status && (dp = d->dp.status(d->dp_arg))) {
		json_object_update(s, dp);
		json_decref(dp);
	}
	return s;
}

static json_t *switchover(struct cs_daemon *d, struct cs_control_client *client, json_t *req)
{
	const char *target = json_string_value(json_object_get(req, "target"));
	int t = -1, p = cs_membership_primary(d->m), r;

	if (target && (t = cs_membership_peer_index(d->m, target, strlen(target))) < 0)
		return cs_control_error("%s is not a peer of this cluster", target);
	if (d->switchover)
		return cs_control_error("a switchover is already running");
	if (cs_membership_role(d->m) != CS_MROLE_PRIMARY)
		return cs_control_error("this node is not the primary (the primary is %s); run "
		                        "the switchover there",
		                        p >= 0 ? d->cfg->peers[p].name : "unknown");
	d->switchover_term = cs_membership_term(d->m);
	r = cs_membership_handle(d->m, &(struct cs_mevent){.kind = CS_MEV_SWITCHOVER,
	                                                   .now_ms = cs_daemon_now_ms(),
	                                                   .peer = -1,
	                                                   .target = t});
	if (r < 0)
		return cs_control_error("no %s backup is up to take over",
		                        target ? target : "suitable");
	d->switchover_target = t;
	d->switchover_deadline = cs_daemon_now_ms() + 4ull * d->live->heartbeat.timeout_ms;
	d->switchover = cs_control_defer(client);
	return NULL;
}

/* Answers a pending switchover once a new primary shows up, or gives up. */
void cs_daemon_check_switchover(struct cs_daemon *d)
{
	int p = cs_membership_primary(d->m);
	uint64_t term = cs_membership_term(d->m);

	if (!d->switchover)
		return;
	if (p >= 0 && term > d->switchover_term) {
		cs_event(CS_EV_SWITCHOVER_DONE, .peer = d->cfg->peers[p].name, .term = term);
		cs_control_reply(d->switchover,
		                 json_pack("{s:b, s:s, s:I}", "ok", 1, "primary",
		                           d->cfg->peers[p].name, "term", (json_int_t)term));
	} else if (cs_daemon_now_ms() > d->switchover_deadline) {
		cs_control_reply(
		    d->switchover,
		    cs_control_error("no new primary after the hand-over (term %" PRIu64
		                     "); the cluster elects one by itself",
		                     term));
	} else {
		return;
	}
	d->switchover = NULL;
}

json_t *cs_daemon_control(struct cs_control_client *client, const char *cmd, json_t *req, void *arg)
{
	struct cs_daemon *d = arg;

	if (strcmp(cmd, "status") == 0)
		return cs_daemon_status_json(d);
	if (strcmp(cmd, "switchover") == 0)
		return switchover(d, client, req);
	if (d->dp.control)
		return d->dp.control(d->dp_arg, client, cmd, req);
	return cs_control_error("unknown command %s (known: status, switchover)", cmd);
}

/* ---- SIGHUP ---- */

static void apply_timing(struct cs_daemon *d, const struct cs_config *n)
{
	unsigned t = cs_daemon_tick_ms(n);
	struct timeval tv = {0, (long)t * 1000};

	cs_membership_set_timing(d->m, n->heartbeat.interval_ms, n->heartbeat.timeout_ms,
	                         n->heartbeat.drift_ms);
	cs_links_set_timeout(d->links, n->heartbeat.timeout_ms);
	evtimer_del(d->tick);
	evtimer_add(d->tick, &tv);
}

/* Re-reads the certificates (always: they may be renewed in place).
 * Returns false, with the reason in err, when the old ones stay. */
static bool reload_tls(struct cs_daemon *d, const struct cs_config *n, char *err, size_t len)
{
	struct cs_tls *tls;

	if (cs_tls_new(n->tls.ca, n->tls.cert, n->tls.key, &tls, err, len) < 0)
		return false;
	cs_links_set_tls(d->links, tls); /* live connections keep their context */
	cs_tls_free(d->tls);
	d->tls = tls;
	return true;
}

static void report_reload(unsigned applied, unsigned restart, bool tls_ok, const char *tls_err)
{
	char a[160], r[160], reason[640];

	cs_config_changes_format(applied, a, sizeof(a));
	cs_config_changes_format(restart, r, sizeof(r));
	if (restart == 0 && tls_ok) {
		snprintf(reason, sizeof(reason), "applied: %s; certificates re-read", a);
		cs_event(CS_EV_CONFIG_RELOADED, .reason = reason);
		return;
	}
	snprintf(reason, sizeof(reason), "applied: %s; not applied, needs a restart: %s%s%s", a,
	         restart ? r : "none",
	         tls_ok ? "" : "; certificates not reloaded: ", tls_ok ? "" : tls_err);
	cs_event(CS_EV_CONFIG_RELOAD_PARTIAL, .reason = reason);
}

void cs_daemon_reload(struct cs_daemon *d)
{
	struct cs_config *n;
	char err[512], tls_err[512] = "";
	unsigned live, restart;
	bool tls_ok;

	cs_sdnotify_reloading();
	if (cs_config_load(d->config_path, 0, &n, err, sizeof(err)) < 0) {
		cs_event(CS_EV_CONFIG_RELOAD_FAILED, .reason = err);
		cs_sdnotify_ready();
		return;
	}
	/* Live keys against what runs now; the rest against the start. */
	live = cs_config_diff(d->live, n) & CS_CHANGES_LIVE;
	restart = cs_config_diff(d->cfg, n) & ~CS_CHANGES_LIVE;
	tls_ok = reload_tls(d, n, tls_err, sizeof(tls_err));
	if (!tls_ok)
		live &= ~CS_CHANGE_TLS;
	if (live & CS_CHANGE_HEARTBEAT)
		apply_timing(d, n);
	if ((live & CS_CHANGE_CONTROL_GROUP) && d->control &&
	    cs_control_set_group(d->control, n->control_group) < 0)
		live &= ~CS_CHANGE_CONTROL_GROUP;
	if (d->live != d->cfg)
		cs_config_free(d->live);
	d->live = n;
	report_reload(live, restart, tls_ok, tls_err);
	cs_sdnotify_ready();
}
