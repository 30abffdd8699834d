/* checksyncd's event loop: links -> membership -> role changes, hooks,
 * journal, sd_notify. See daemon.h. */
#include "daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "control.h"
#include "daemon_int.h"
#include "hooks.h"
#include "journal.h"
#include "membership.h"
#include "metrics.h"
#include "peer.h"
#include "sdnotify.h"
#include "term.h"
#include "tls.h"

uint64_t cs_daemon_now_ms(void)
{
	struct timespec ts;

	/* BOOTTIME keeps counting through a suspend, so a lease cannot
	 * survive one on a frozen clock. */
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void handle(struct cs_daemon *d, struct cs_mevent ev)
{
	ev.now_ms = cs_daemon_now_ms();
	cs_membership_handle(d->m, &ev);
	cs_daemon_update_status(d);
}

/* ---- the membership machine's callbacks ---- */

static int op_persist(void *ctx, uint64_t term, int voted_for)
{
	struct cs_daemon *d = ctx;
	struct cs_term_state st = {.term = term};

	if (voted_for >= 0)
		snprintf(st.voted_for, sizeof(st.voted_for), "%s", d->cfg->peers[voted_for].name);
	return cs_term_store(d->cfg->state_dir, &st);
}

static void op_send(void *ctx, int peer, const struct cs_msg *m)
{
	struct cs_daemon *d = ctx;

	cs_links_send(d->links, peer, m); /* a down link drops it: heartbeats repeat */
}

static void send_control(struct cs_daemon *d, int peer, const char *command, const char *json)
{
	struct cs_msg m = {.type = CS_MSG_CONTROL_REQUEST};

	m.control_request.command = cs_str_of(command);
	m.control_request.json = cs_str_of(json);
	cs_links_send(d->links, peer, &m);
}

static void op_send_transfer(void *ctx, int peer, uint64_t term, int target)
{
	struct cs_daemon *d = ctx;
	char json[160];

	snprintf(json, sizeof(json), "{\"term\":%" PRIu64 ",\"target\":\"%s\"}", term,
	         d->cfg->peers[target].name);
	send_control(d, peer, CS_TRANSFER_COMMAND, json);
}

static void fence_done_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct fence_result *fr = arg;

	(void)fd, (void)what;
	fr->d->fence = NULL;
	handle(fr->d, (struct cs_mevent){.kind = CS_MEV_FENCE_DONE,
	                                 .peer = fr->peer,
	                                 .term = fr->term,
	                                 .ok = fr->status == 0});
	free(fr);
}

static void fence_finished(void *arg, int status, uint64_t took)
{
	struct fence_result *fr = arg;
	const char *peer = fr->d->cfg->peers[fr->peer].name;
	char why[96];

	if (status == -ECANCELED) { /* the daemon is stopping */
		fr->d->fence = NULL;
		free(fr);
		return;
	}
	if (status == 0) {
		cs_event(CS_EV_FENCE_HOOK_OK, .peer = peer, .term = fr->term, .hook = "fence",
		         CS_DURATION(took));
	} else {
		cs_event(CS_EV_FENCE_HOOK_FAILED, .peer = peer, .term = fr->term, .hook = "fence",
		         .reason = cs_hook_status_text(status, took, why, sizeof(why)),
		         CS_DURATION(took));
	}
	fr->status = status;
	/* Never re-enter the state machine from inside one of its calls. */
	event_base_once(fr->d->base, -1, EV_TIMEOUT, fence_done_deferred, fr, NULL);
}

static void op_fence_peer(void *ctx, int peer, uint64_t term)
{
	struct cs_daemon *d = ctx;
	struct fence_result *fr = calloc(1, sizeof(*fr));
	char t[24];
	const char *argv[] = {d->live->hooks.fence, d->cfg->peers[peer].name, t, NULL};

	if (!fr)
		return; /* the candidate times out and retries */
	*fr = (struct fence_result){.d = d, .peer = peer, .term = term};
	d->fence = fr;
	snprintf(t, sizeof(t), "%" PRIu64, term);
	if (!d->live->hooks.fence) {
		cs_event(CS_EV_FENCE_HOOK_FAILED, .peer = argv[1], .term = term, .hook = "fence",
		         .reason = "no fence hook configured (two voters need one to promote)");
		fr->status = -ENOENT;
		event_base_once(d->base, -1, EV_TIMEOUT, fence_done_deferred, fr, NULL);
		return;
	}
	if (cs_hook_run(d->hooks, "fence", argv, d->live->hooks.timeout_ms, false, fence_finished,
	                fr) < 0)
		fence_finished(fr, -ENOMEM, 0);
}

static void op_note(void *ctx, const struct cs_mnote_info *n)
{
	struct cs_daemon *d = ctx;
	const char *peer = n->peer >= 0 ? d->cfg->peers[n->peer].name : NULL;

	switch (n->what) {
	case CS_MNOTE_TERM_CHANGED:
		cs_journal_set_state(cs_member_role_name(cs_membership_role(d->m)), n->term);
		cs_event(CS_EV_TERM_CHANGED, .term = n->term, .old_term = n->old_term);
		break;
	case CS_MNOTE_SUSPECTED:
		cs_event(CS_EV_PEER_SUSPECTED, .peer = peer,
		         CS_DURATION(d->live->heartbeat.timeout_ms));
		if (n->peer >= 0 && n->peer == cs_membership_primary(d->m))
			cs_event(CS_EV_PRIMARY_LOST, .peer = peer,
			         CS_DURATION(d->live->heartbeat.timeout_ms));
		break;
	case CS_MNOTE_LEASE_LOST:
		cs_event(CS_EV_LEASE_LOST, .reason = n->detail);
		break;
	case CS_MNOTE_STALE_TERM:
		cs_event(CS_EV_STALE_TERM_REFUSED, .peer = peer, .old_term = n->old_term,
		         .reason = n->detail);
		break;
	case CS_MNOTE_BLOCKED:
		cs_event(CS_EV_PROMOTION_BLOCKED, .peer = peer, .reason = n->detail);
		break;
	case CS_MNOTE_SWITCHOVER:
		cs_event(CS_EV_SWITCHOVER, .peer = peer);
		break;
	case CS_MNOTE_PERSIST_FAILED:
		cs_log_err_errno(n->err, "cannot write term %" PRIu64 " to %s/%s", n->term,
		                 d->cfg->state_dir, CS_TERM_FILE);
		break;
	default:
		break;
	}
}

static const struct cs_membership_ops membership_ops = {
    .persist = op_persist,
    .send = op_send,
    .role_changed = cs_daemon_role_changed,
    .fence_peer = op_fence_peer,
    .note = op_note,
    .send_transfer = op_send_transfer,
};

/* ---- peer links ---- */

static void link_up(void *ctx, int peer)
{
	struct cs_daemon *d = ctx;

	handle(d, (struct cs_mevent){.kind = CS_MEV_PEER_UP, .peer = peer});
	if (d->dp.on_peer)
		d->dp.on_peer(d->dp_arg, peer, true);
}

static void link_down(void *ctx, int peer)
{
	struct cs_daemon *d = ctx;

	handle(d, (struct cs_mevent){.kind = CS_MEV_PEER_DOWN, .peer = peer});
	if (d->dp.on_peer)
		d->dp.on_peer(d->dp_arg, peer, false);
}

static void link_writable(void *ctx, int peer)
{
	struct cs_daemon *d = ctx;

	if (d->dp.on_writable)
		d->dp.on_writable(d->dp_arg, peer);
}

static const struct {
	uint16_t type;
	enum cs_mevent_kind kind;
} message_events[] = {
    {CS_MSG_HEARTBEAT, CS_MEV_HEARTBEAT},
    {CS_MSG_LEASE_RENEW, CS_MEV_LEASE_RENEW},
    {CS_MSG_LEASE_GRANT, CS_MEV_LEASE_GRANT},
    {CS_MSG_VOTE_REQUEST, CS_MEV_VOTE_REQUEST},
    {CS_MSG_VOTE, CS_MEV_VOTE},
    {CS_MSG_PREVOTE_REQUEST, CS_MEV_PREVOTE_REQUEST},
    {CS_MSG_PREVOTE, CS_MEV_PREVOTE},
};

/* The cluster core's CONTROL messages (daemon_int.h); false if the
 * message is someone else's. */
static bool on_core_control(struct cs_daemon *d, int peer, const struct cs_msg *m)
{
	struct cs_mevent ev = {.peer = peer, .kind = CS_MEV_TRANSFER};
	struct cs_str body;
	json_t *j, *term;
	const char *target;

	if (m->type != CS_MSG_CONTROL_REQUEST ||
	    !cs_str_eq(m->control_request.command, CS_TRANSFER_COMMAND))
		return false;
	body = m->control_request.json;
	j = json_loadb(body.ptr ? body.ptr : "", body.len, 0, NULL);
	term = json_object_get(j, "term");
	target = json_string_value(json_object_get(j, "target"));
	ev.target = target ? cs_membership_peer_index(d->m, target, strlen(target)) : -1;
	if (!json_is_integer(term) || json_integer_value(term) < 0 || ev.target < 0) {
		cs_log_warn("malformed %s from %s ignored", cs_mevent_name(ev.kind),
		            d->cfg->peers[peer].name);
	} else {
		ev.term = (uint64_t)json_integer_value(term);
		handle(d, ev);
	}
	json_decref(j);
	return true;
}

static void link_message(void *ctx, int peer, const struct cs_msg *m)
{
	struct cs_daemon *d = ctx;

	for (size_t i = 0; i < sizeof(message_events) / sizeof(message_events[0]); i++)
		if (message_events[i].type == m->type) {
			handle(d, (struct cs_mevent){
			              .kind = message_events[i].kind, .peer = peer, .msg = m});
			return;
		}
	if (on_core_control(d, peer, m))
		return;
	if (d->dp.on_message)
		d->dp.on_message(d->dp_arg, peer, m);
	else
		cs_log_debug("ignoring %s from %s", cs_msg_type_name(m->type) ?: "?",
		             d->cfg->peers[peer].name);
}

static const struct cs_links_ops links_ops = {
    .up = link_up,
    .down = link_down,
    .message = link_message,
    .writable = link_writable,
};

/* ---- the loop ---- */

unsigned cs_daemon_tick_ms(const struct cs_config *cfg)
{
	/* Several ticks per heartbeat: the primary must see its lease end
	 * coming a whole interval ahead (docs/cluster.md). */
	unsigned t = cfg->heartbeat.interval_ms / 4;

	return t < 5 ? 5 : t > 50 ? 50 : t;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs_daemon *d = arg;

	(void)fd, (void)what;
	handle(d, (struct cs_mevent){.kind = CS_MEV_TICK, .peer = -1});
	cs_daemon_check_switchover(d);
	if (d->stop_deadline && !d->stop_hooks_deadline &&
	    ((cs_membership_primary(d->m) >= 0 && cs_membership_term(d->m) > d->stop_term) ||
	     cs_daemon_now_ms() > d->stop_deadline))
		d->stop_hooks_deadline = cs_daemon_now_ms() + d->live->hooks.timeout_ms;
	if (d->stop_hooks_deadline &&
	    (!cs_hooks_pending(d->hooks) || cs_daemon_now_ms() > d->stop_hooks_deadline))
		event_base_loopexit(d->base, NULL);
}

/* A primary asked to stop hands its role over first, so the cluster need
 * not wait for its lease to run out; it waits for the new primary at most
 * two timeouts, then for the notify hook of its own demotion (the one that
 * gives up the floating IP) at most hooks.timeout_ms: exiting would kill
 * it. A second signal stops at once. */
static void stop(struct cs_daemon *d, int sig)
{
	struct cs_mevent ev = {.kind = CS_MEV_SWITCHOVER, .peer = -1, .target = -1};

	if (d->stop_deadline) {
		event_base_loopexit(d->base, NULL);
		return;
	}
	cs_log_notice("%s received, stopping", strsignal(sig));
	ev.now_ms = cs_daemon_now_ms();
	d->stop_term = cs_membership_term(d->m);
	if (cs_membership_role(d->m) == CS_MROLE_PRIMARY && cs_membership_handle(d->m, &ev) == 0) {
		d->stop_deadline = ev.now_ms + 2ull * d->live->heartbeat.timeout_ms;
		cs_daemon_update_status(d);
		return;
	}
	event_base_loopexit(d->base, NULL);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct cs_daemon *d = arg;

	(void)what;
	if (sig == SIGHUP) {
		cs_daemon_reload(d);
		return;
	}
	stop(d, (int)sig);
}

static int load_term(struct cs_daemon *d, uint64_t *term, int *voted_for)
{
	struct cs_term_state st;
	int r;

	if (mkdir(d->cfg->state_dir, 0700) < 0 && errno != EEXIST)
		return cs_log_err_errno(errno, "cannot create state directory %s",
		                        d->cfg->state_dir);
	r = cs_term_load(d->cfg->state_dir, &st);
	if (r < 0)
		return cs_log_err_errno(r, "cannot read %s/%s", d->cfg->state_dir, CS_TERM_FILE);
	*term = st.term;
	*voted_for = -1;
	for (size_t i = 0; st.voted_for[0] && i < d->cfg->n_peers; i++)
		if (strcmp(d->cfg->peers[i].name, st.voted_for) == 0)
			*voted_for = (int)i;
	return 0;
}

static int new_membership(struct cs_daemon *d)
{
	const struct cs_config *c = d->cfg;
	struct cs_membership_peer peers[64];
	struct cs_membership_params p = {.peers = peers,
	                                 .n_peers = c->n_peers,
	                                 .self = -1,
	                                 .interval_ms = c->heartbeat.interval_ms,
	                                 .timeout_ms = c->heartbeat.timeout_ms,
	                                 .drift_ms = c->heartbeat.drift_ms};
	int r;

	if (c->n_peers > 64)
		return cs_log_err_errno(EINVAL, "at most 64 peers are supported");
	for (size_t i = 0; i < c->n_peers; i++) {
		peers[i] = (struct cs_membership_peer){c->peers[i].name, c->peers[i].witness};
		if (strcmp(c->peers[i].name, c->node) == 0)
			p.self = (int)i;
	}
	r = load_term(d, &p.term, &p.voted_for);
	if (r < 0)
		return r;
	r = cs_membership_new(&p, &membership_ops, d, &d->m);
	if (r < 0)
		return cs_log_err_errno(r, "cannot set up membership");
	cs_journal_set_state("init", p.term);
	return 0;
}

static int new_events(struct cs_daemon *d)
{
	d->base = event_base_new();
	if (!d->base)
		return cs_log_err_errno(ENOMEM, "cannot create the event loop");
	d->tick = event_new(d->base, -1, EV_PERSIST, tick_cb, d);
	d->sigterm = evsignal_new(d->base, SIGTERM, signal_cb, d);
	d->sigint = evsignal_new(d->base, SIGINT, signal_cb, d);
	d->sighup = evsignal_new(d->base, SIGHUP, signal_cb, d);
	if (!d->tick || !d->sigterm || !d->sigint || !d->sighup)
		return cs_log_err_errno(ENOMEM, "cannot create events");
	event_add(d->sigterm, NULL);
	event_add(d->sigint, NULL);
	event_add(d->sighup, NULL);
	return 0;
}

int cs_daemon_new(const char *config_path, struct cs_config *cfg, struct cs_daemon **out)
{
	struct cs_daemon *d = calloc(1, sizeof(*d));
	char err[512];
	int r;

	if (!d) {
		cs_config_free(cfg);
		return -ENOMEM;
	}
	d->cfg = d->live = cfg;
	d->switchover_target = -1;
	d->config_path = strdup(config_path);
	cs_journal_set_node(cfg->node);
	signal(SIGPIPE, SIG_IGN);
	r = new_events(d);
	if (r == 0 && (r = cs_tls_new(cfg->tls.ca, cfg->tls.cert, cfg->tls.key, &d->tls, err,
	                              sizeof(err))) < 0)
		cs_log_err("%s", err);
	if (r == 0)
		r = new_membership(d);
	if (r == 0 && (r = cs_hooks_new(d->base, &d->hooks)) < 0)
		cs_log_err_errno(r, "cannot set up hooks");
	if (r == 0 && (r = cs_links_new(d->base, cfg, d->tls, &links_ops, d, &d->links)) < 0)
		cs_log_err_errno(r, "cannot set up peer links");
	if (r < 0) {
		cs_daemon_free(d);
		return r;
	}
	*out = d;
	return 0;
}

void cs_daemon_set_dataplane(struct cs_daemon *d, const struct cs_dataplane_ops *ops, void *arg)
{
	d->dp = *ops;
	d->dp_arg = arg;
}

/* Opt-in: a configured endpoint that cannot listen stops the start, as a
 * taken peer port does, rather than leave the operator's scrapes failing. */
static int open_metrics(struct cs_daemon *d)
{
	const struct cs_metrics_config *mc = &d->cfg->metrics;
	char err[512];
	int r;

	if (!mc->listen)
		return 0;
	r = cs_metrics_new(d->base, mc->listen_host, mc->listen_port, cs_daemon_status_json, d,
	                   &d->metrics, err, sizeof(err));
	if (r < 0)
		cs_log_err("%s", err);
	else
		cs_log_info("metrics on http://%s/metrics", mc->listen);
	return r;
}

int cs_daemon_run(struct cs_daemon *d)
{
	unsigned t = cs_daemon_tick_ms(d->live);
	struct timeval tv = {0, (long)t * 1000};
	int r;

	r = cs_links_listen(d->links);
	if (r == 0)
		r = cs_control_open(d->base, d->cfg->control_socket, d->cfg->control_group,
		                    cs_daemon_control, d, &d->control);
	if (r == 0)
		r = open_metrics(d);
	if (r < 0)
		return r;
	if (cs_sdnotify_start(d->base, &d->sdnotify) < 0)
		cs_log_warn("watchdog not armed");
	handle(d, (struct cs_mevent){.kind = CS_MEV_START, .peer = -1});
	cs_links_start(d->links);
	evtimer_add(d->tick, &tv);
	cs_event(CS_EV_STARTED, .address = d->cfg->listen);
	cs_sdnotify_ready();
	r = event_base_dispatch(d->base);
	cs_sdnotify_stopping();
	cs_event(CS_EV_STOPPING);
	return r < 0 ? -EIO : 0;
}

void cs_daemon_free(struct cs_daemon *d)
{
	if (!d)
		return;
	if (d->m && cs_membership_role(d->m) == CS_MROLE_PRIMARY && d->dp.on_fence)
		d->dp.on_fence(d->dp_arg, cs_membership_term(d->m), "daemon stopping");
	if (d->control)
		cs_control_close(d->control);
	cs_sdnotify_free(d->sdnotify);
	cs_metrics_free(d->metrics);
	cs_links_free(d->links);
	cs_hooks_free(d->hooks);
	free(d->fence); /* a result still waiting for the loop */
	cs_membership_free(d->m);
	cs_tls_free(d->tls);
	struct event *evs[] = {d->tick, d->sigterm, d->sigint, d->sighup};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	if (d->base)
		event_base_free(d->base);
	if (d->live != d->cfg)
		cs_config_free(d->live);
	cs_config_free(d->cfg);
	free(d->config_path);
	free(d);
}

int cs_daemon_send(struct cs_daemon *d, int peer, const struct cs_msg *m)
{
	return cs_links_send(d->links, peer, m);
}

size_t cs_daemon_queued(const struct cs_daemon *d, int peer)
{
	return cs_links_queued(d->links, peer);
}

bool cs_daemon_peer_up(const struct cs_daemon *d, int peer)
{
	return cs_links_is_up(d->links, peer);
}

struct event_base *cs_daemon_base(const struct cs_daemon *d)
{
	return d->base;
}

enum cs_member_role cs_daemon_role(const struct cs_daemon *d)
{
	return cs_membership_role(d->m);
}

uint64_t cs_daemon_term(const struct cs_daemon *d)
{
	return cs_membership_term(d->m);
}

int cs_daemon_primary(const struct cs_daemon *d)
{
	return cs_membership_primary(d->m);
}

void cs_daemon_set_durable(struct cs_daemon *d, uint64_t generation)
{
	d->durable = generation;
	cs_membership_set_durable(d->m, generation);
}

int cs_daemon_step_down(struct cs_daemon *d, const char *why)
{
	int r;

	if (cs_membership_role(d->m) != CS_MROLE_PRIMARY)
		return -EPERM;
	cs_log_warn("stepping down as primary: %s", why);
	r = cs_membership_handle(d->m, &(struct cs_mevent){.kind = CS_MEV_SWITCHOVER,
	                                                   .now_ms = cs_daemon_now_ms(),
	                                                   .peer = -1,
	                                                   .target = -1});
	cs_daemon_update_status(d);
	return r < 0 ? -EHOSTUNREACH : 0;
}
