/* The membership state machine. docs/cluster.md has the rules and the
 * argument for why two primaries never act in the same term; the comments
 * here point at the rule each piece of code implements. */
#include "membership_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_names[CS_MROLE__COUNT] = {
    [CS_MROLE_INIT] = "init",           [CS_MROLE_BACKUP] = "backup",
    [CS_MROLE_CANDIDATE] = "candidate", [CS_MROLE_PRIMARY] = "primary",
    [CS_MROLE_FENCED] = "fenced",       [CS_MROLE_WITNESS] = "witness",
};

static const char *const event_names[CS_MEV__COUNT] = {
    [CS_MEV_START] = "start",
    [CS_MEV_TICK] = "tick",
    [CS_MEV_PEER_UP] = "peer-up",
    [CS_MEV_PEER_DOWN] = "peer-down",
    [CS_MEV_HEARTBEAT] = "heartbeat",
    [CS_MEV_LEASE_RENEW] = "lease-renew",
    [CS_MEV_LEASE_GRANT] = "lease-grant",
    [CS_MEV_VOTE_REQUEST] = "vote-request",
    [CS_MEV_VOTE] = "vote",
    [CS_MEV_TRANSFER] = "transfer",
    [CS_MEV_FENCE_DONE] = "fence-done",
    [CS_MEV_SWITCHOVER] = "switchover",
    [CS_MEV_PREVOTE_REQUEST] = "prevote-request",
    [CS_MEV_PREVOTE] = "prevote",
};

static const char *const peer_state_names[] = {
    [CS_PEER_SELF] = "self",
    [CS_PEER_DOWN] = "down",
    [CS_PEER_UP] = "up",
    [CS_PEER_SUSPECTED] = "suspected",
};

const char *cs_member_role_name(enum cs_member_role role)
{
	return (unsigned)role < CS_MROLE__COUNT ? role_names[role] : "?";
}

const char *cs_mevent_name(enum cs_mevent_kind kind)
{
	return (unsigned)kind < CS_MEV__COUNT ? event_names[kind] : "?";
}

const char *cs_peer_state_name(enum cs_peer_state s)
{
	return (unsigned)s <= CS_PEER_SUSPECTED ? peer_state_names[s] : "?";
}

uint8_t cs_member_role_wire(enum cs_member_role role)
{
	switch (role) {
	case CS_MROLE_PRIMARY:
		return CS_ROLE_PRIMARY;
	case CS_MROLE_BACKUP:
		return CS_ROLE_BACKUP;
	case CS_MROLE_WITNESS:
		return CS_ROLE_WITNESS;
	default:
		return CS_ROLE_NONE;
	}
}

/* ---- small helpers ---- */

void ms_note(struct cs_membership *m, enum cs_mnote what, int peer, const char *detail)
{
	struct cs_mnote_info n = {.what = what, .peer = peer, .term = m->term, .detail = detail};

	if (m->ops.note)
		m->ops.note(m->ctx, &n);
}

void ms_blocked(struct cs_membership *m, const char *why)
{
	if (m->blocked == why)
		return;
	m->blocked = why;
	ms_note(m, CS_MNOTE_BLOCKED, -1, why);
}

bool ms_peer_live(const struct cs_membership *m, int i)
{
	const struct mpeer *p = &m->peers[i];

	return i == m->self || (p->link_up && p->heard && m->now - p->last_heard <= m->timeout);
}

unsigned ms_reachable(const struct cs_membership *m)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->n; i++)
		n += ms_peer_live(m, (int)i);
	return n;
}

bool ms_primary_alive(const struct cs_membership *m)
{
	return m->primary >= 0 && m->primary != m->self && ms_peer_live(m, m->primary);
}

/* Rule 3: a promise to one node blocks votes for every other. A primary's
 * own lease is a promise to itself. */
bool ms_lease_held(const struct cs_membership *m, int candidate)
{
	if (m->role == CS_MROLE_PRIMARY)
		return true;
	return m->now < m->promise_until && m->promise_to != candidate;
}

void ms_send_msg(struct cs_membership *m, int peer, const struct cs_msg *msg)
{
	if (peer != m->self && m->ops.send)
		m->ops.send(m->ctx, peer, msg);
}

void ms_broadcast(struct cs_membership *m, const struct cs_msg *msg)
{
	for (size_t i = 0; i < m->n; i++)
		ms_send_msg(m, (int)i, msg);
}

/* The one place where the role changes; side effects live in the daemon's
 * role_changed callback (log "role A -> B (event E)", hooks, app). */
void ms_change_role(struct cs_membership *m, enum cs_member_role to, enum cs_mevent_kind ev,
                    const char *why)
{
	enum cs_member_role from = m->role;

	if (from == to)
		return;
	m->role = to;
	m->blocked = NULL;
	if (from == CS_MROLE_PRIMARY) {
		m->lease_until = 0;
		if (m->primary == m->self)
			m->primary = -1;
	}
	if (from == CS_MROLE_CANDIDATE)
		m->fence_running = false;
	if (to == CS_MROLE_PRIMARY) {
		m->primary = m->self;
		m->next_heartbeat = m->now; /* announce at once */
	}
	if (m->ops.role_changed)
		m->ops.role_changed(m->ctx, from, to, ev, why);
}

/* Rule 4: the term and vote are durable before anything depends on them. */
int ms_set_term(struct cs_membership *m, uint64_t term, int voted_for)
{
	uint64_t old = m->term;
	int r = m->ops.persist ? m->ops.persist(m->ctx, term, voted_for) : 0;

	if (r < 0) {
		struct cs_mnote_info n = {.what = CS_MNOTE_PERSIST_FAILED,
		                          .peer = -1,
		                          .term = term,
		                          .old_term = old,
		                          .err = r};
		if (m->ops.note)
			m->ops.note(m->ctx, &n);
		return r;
	}
	m->term = term;
	m->voted_for = voted_for;
	if (term != old) {
		struct cs_mnote_info n = {
		    .what = CS_MNOTE_TERM_CHANGED, .peer = -1, .term = term, .old_term = old};
		m->primary = -1;
		m->prevote_term = 0;
		for (size_t i = 0; i < m->n; i++) {
			m->peers[i].vote_granted = false;
			m->peers[i].fenced_by_hook = false;
		}
		if (m->ops.note)
			m->ops.note(m->ctx, &n);
	}
	return 0;
}

enum cs_member_role ms_follower_role(const struct cs_membership *m)
{
	return m->peers[m->self].witness ? CS_MROLE_WITNESS : CS_MROLE_BACKUP;
}

/* Rule 5: a newer term makes this node step down at once; it stops acting
 * before the new term is even written. */
static int adopt_newer_term(struct cs_membership *m, uint64_t term, enum cs_mevent_kind ev)
{
	if (m->role == CS_MROLE_PRIMARY || m->role == CS_MROLE_CANDIDATE ||
	    m->role == CS_MROLE_FENCED)
		ms_change_role(m, ms_follower_role(m), ev, "a newer term exists");
	return ms_set_term(m, term, -1);
}

/* ---- events every state handles alike ---- */

static void on_tick_common(struct cs_membership *m)
{
	ms_check_suspects(m);
	ms_send_heartbeats(m);
}

static int on_common(struct cs_membership *m, const struct cs_mevent *ev)
{
	switch (ev->kind) {
	case CS_MEV_TICK:
		on_tick_common(m);
		return 0;
	case CS_MEV_PEER_UP:
		m->peers[ev->peer].link_up = true;
		m->peers[ev->peer].heard = true;
		m->peers[ev->peer].last_heard = m->now;
		m->peers[ev->peer].suspected = false;
		return 0;
	case CS_MEV_PEER_DOWN:
		m->peers[ev->peer].link_up = false;
		return 0;
	case CS_MEV_HEARTBEAT:
		ms_on_heartbeat(m, ev->peer, &ev->msg->heartbeat, ev->kind);
		return 0;
	case CS_MEV_LEASE_RENEW:
		ms_on_lease_renew(m, ev->peer, &ev->msg->lease_renew, ev->kind);
		return 0;
	case CS_MEV_VOTE_REQUEST:
		ms_on_vote_request(m, ev->peer, &ev->msg->vote_request);
		return 0;
	case CS_MEV_TRANSFER:
		ms_on_transfer(m, ev);
		return 0;
	case CS_MEV_SWITCHOVER:
		return -EPERM;
	case CS_MEV_PREVOTE_REQUEST:
		ms_on_prevote_request(m, ev->peer, &ev->msg->prevote_request);
		return 0;
	case CS_MEV_START:
	case CS_MEV_PREVOTE:
	case CS_MEV_LEASE_GRANT:
	case CS_MEV_VOTE:
	case CS_MEV_FENCE_DONE:
	default:
		return 0; /* not for this state */
	}
}

/* ---- the states ---- */

static int fsm_init(struct cs_membership *m, const struct cs_mevent *ev)
{
	switch (ev->kind) {
	case CS_MEV_START:
		/* Listen for an existing primary for a timeout before standing;
		 * the preferred member (rank 0) stands first. */
		/* Promises are not persisted: after a restart this node may have
		 * promised a lease it no longer remembers, so it votes for no one
		 * until any such promise has run out (rule 3). */
		m->promise_until = m->now + m->timeout + m->drift;
		m->promise_to = -1;
		m->not_before = m->promise_until + m->interval +
		                (uint64_t)m->rank * (m->timeout + 2ull * m->interval);
		m->next_heartbeat = m->now;
		ms_change_role(m, ms_follower_role(m), ev->kind, "daemon started");
		return 0;
	default:
		return 0; /* nothing counts before the start */
	}
}

static int fsm_follower(struct cs_membership *m, const struct cs_mevent *ev)
{
	switch (ev->kind) {
	case CS_MEV_TICK:
		on_tick_common(m);
		ms_prevote_timeout(m);
		if (m->prevote_term == 0)
			ms_maybe_stand(m, ev->kind);
		return 0;
	case CS_MEV_PREVOTE:
		ms_on_prevote(m, ev->peer, &ev->msg->prevote);
		return 0;
	default:
		return on_common(m, ev);
	}
}

static int fsm_candidate(struct cs_membership *m, const struct cs_mevent *ev)
{
	switch (ev->kind) {
	case CS_MEV_TICK:
		on_tick_common(m);
		if (!m->fence_running && m->now - m->election_started > m->timeout) {
			m->not_before = m->now + ms_retry_delay(m);
			ms_change_role(m, ms_follower_role(m), ev->kind, "no majority in time");
		}
		return 0;
	case CS_MEV_VOTE:
		if (ev->msg->vote.term == m->term && ev->msg->vote.granted) {
			m->peers[ev->peer].vote_granted = true;
			ms_check_votes(m, ev->kind);
		}
		return 0;
	case CS_MEV_FENCE_DONE:
		ms_on_fence_done(m, ev);
		return 0;
	default:
		return on_common(m, ev);
	}
}

static int fsm_primary(struct cs_membership *m, const struct cs_mevent *ev)
{
	switch (ev->kind) {
	case CS_MEV_TICK:
		on_tick_common(m);
		ms_check_lease(m, ev->kind);
		return 0;
	case CS_MEV_LEASE_GRANT:
		ms_on_lease_grant(m, ev->peer, &ev->msg->lease_grant);
		return 0;
	case CS_MEV_SWITCHOVER:
		return ms_on_switchover(m, ev);
	default:
		return on_common(m, ev);
	}
}

static bool is_message(enum cs_mevent_kind k)
{
	return k == CS_MEV_HEARTBEAT || k == CS_MEV_LEASE_RENEW || k == CS_MEV_LEASE_GRANT ||
	       k == CS_MEV_VOTE_REQUEST || k == CS_MEV_VOTE;
}

/* Pre-votes are messages too, but of a hypothetical term: never checked
 * against ours nor adopted (rule 7). */
static bool is_prevote(enum cs_mevent_kind k)
{
	return k == CS_MEV_PREVOTE_REQUEST || k == CS_MEV_PREVOTE;
}

/* Rule 8: every message that carries the sender's durable generation
 * updates what we know of it, whatever its term (it is a fact about the
 * sender's disk, not about terms). The newest announcement wins, even a
 * lower one: a node that moved a stale chain aside holds less than before. */
static void learn_durable(struct cs_membership *m, const struct cs_mevent *ev)
{
	const struct cs_msg *msg = ev->msg;
	struct mpeer *p = &m->peers[ev->peer];

	switch (ev->kind) {
	case CS_MEV_HEARTBEAT:
		p->durable = msg->heartbeat.durable_generation;
		break;
	case CS_MEV_VOTE_REQUEST:
		p->durable = msg->vote_request.durable_generation;
		break;
	case CS_MEV_VOTE:
		p->durable = msg->vote.durable_generation;
		break;
	case CS_MEV_PREVOTE_REQUEST:
		p->durable = msg->prevote_request.durable_generation;
		break;
	case CS_MEV_PREVOTE:
		p->durable = msg->prevote.durable_generation;
		break;
	default:
		break;
	}
}

static uint64_t message_term(const struct cs_mevent *ev)
{
	switch (ev->kind) {
	case CS_MEV_HEARTBEAT:
		return ev->msg->heartbeat.term;
	case CS_MEV_LEASE_RENEW:
		return ev->msg->lease_renew.term;
	case CS_MEV_LEASE_GRANT:
		return ev->msg->lease_grant.term;
	case CS_MEV_VOTE_REQUEST:
		return ev->msg->vote_request.term;
	case CS_MEV_VOTE:
		return ev->msg->vote.term;
	default:
		return ev->term;
	}
}

/* Rule 5 for every message: older terms are refused, a newer one is adopted
 * (stepping down) before the message is looked at. Returns true when the
 * message should be handled. */
static bool check_term(struct cs_membership *m, const struct cs_mevent *ev)
{
	uint64_t t = message_term(ev);
	struct mpeer *p = &m->peers[ev->peer];

	if (t < m->term) {
		if (p->stale_noted_term != m->term) {
			struct cs_mnote_info n = {.what = CS_MNOTE_STALE_TERM,
			                          .peer = ev->peer,
			                          .term = m->term,
			                          .old_term = t,
			                          .detail = cs_mevent_name(ev->kind)};

			p->stale_noted_term = m->term;
			if (m->ops.note)
				m->ops.note(m->ctx, &n);
		}
		if (ev->kind == CS_MEV_VOTE_REQUEST)
			ms_reply_vote(m, ev->peer, false, CS_VOTE_STALE_TERM);
		return false;
	}
	if (t == m->term)
		return true;
	/* A vote request must not depose a lease still in force (rule 3):
	 * refuse it without adopting its term. */
	if (ev->kind == CS_MEV_VOTE_REQUEST && ms_lease_held(m, ev->peer)) {
		ms_reply_vote(m, ev->peer, false, CS_VOTE_LEASE_HELD);
		return false;
	}
	return adopt_newer_term(m, t, ev->kind) == 0;
}

static bool valid_event(const struct cs_membership *m, const struct cs_mevent *ev)
{
	bool needs_peer =
	    ev->kind != CS_MEV_START && ev->kind != CS_MEV_TICK && ev->kind != CS_MEV_SWITCHOVER;

	if ((unsigned)ev->kind >= CS_MEV__COUNT)
		return false;
	if (needs_peer && (ev->peer < 0 || (size_t)ev->peer >= m->n || ev->peer == m->self))
		return false;
	return !(is_message(ev->kind) || is_prevote(ev->kind)) || ev->msg;
}

static void ms_mark_heard(struct cs_membership *m, int peer)
{
	m->peers[peer].heard = true;
	m->peers[peer].last_heard = m->now;
	m->peers[peer].suspected = false;
}

int cs_membership_handle(struct cs_membership *m, const struct cs_mevent *ev)
{
	if (!valid_event(m, ev))
		return -EINVAL;
	if (ev->now_ms > m->now)
		m->now = ev->now_ms; /* time never goes back */
	if (is_message(ev->kind) || is_prevote(ev->kind))
		learn_durable(m, ev);
	if (is_prevote(ev->kind))
		ms_mark_heard(m, ev->peer); /* a hypothetical term: never adopted */
	if (is_message(ev->kind) || ev->kind == CS_MEV_TRANSFER) {
		struct mpeer *p = &m->peers[ev->peer];

		ms_mark_heard(m, ev->peer);
		if (m->role == CS_MROLE_INIT || !check_term(m, ev))
			return 0;
		if (message_term(ev) == m->term)
			p->fenced_by_hook = false; /* it is back, in our term */
	}
	switch (m->role) {
	case CS_MROLE_INIT:
		return fsm_init(m, ev);
	case CS_MROLE_BACKUP:
	case CS_MROLE_WITNESS:
	case CS_MROLE_FENCED:
		/* A fenced node acts as a backup that runs no app; it may stand
		 * again, and then only in a new term. */
		return fsm_follower(m, ev);
	case CS_MROLE_CANDIDATE:
		return fsm_candidate(m, ev);
	case CS_MROLE_PRIMARY:
		return fsm_primary(m, ev);
	default:
		return -EINVAL;
	}
}

/* ---- construction and views ---- */

static unsigned member_rank(const struct cs_membership_params *p)
{
	unsigned rank = 0;

	for (int i = 0; i < p->self; i++)
		rank += !p->peers[i].witness;
	return rank;
}

int cs_membership_new(const struct cs_membership_params *p, const struct cs_membership_ops *ops,
                      void *ctx, struct cs_membership **out)
{
	struct cs_membership *m;

	if (p->n_peers < 1 || p->n_peers > 64 || p->self < 0 || (size_t)p->self >= p->n_peers ||
	    p->interval_ms == 0 || p->timeout_ms <= p->interval_ms)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->peers = calloc(p->n_peers, sizeof(*m->peers));
	if (!m->peers) {
		free(m);
		return -ENOMEM;
	}
	m->n = p->n_peers;
	for (size_t i = 0; i < m->n; i++) {
		m->peers[i].name = strdup(p->peers[i].name);
		m->peers[i].witness = p->peers[i].witness;
		if (!m->peers[i].name) {
			cs_membership_free(m);
			return -ENOMEM;
		}
	}
	m->ops = *ops;
	m->ctx = ctx;
	m->self = p->self;
	m->majority = (unsigned)m->n / 2 + 1;
	m->rank = member_rank(p);
	cs_membership_set_timing(m, p->interval_ms, p->timeout_ms, p->drift_ms);
	m->term = p->term;
	m->voted_for = p->voted_for;
	m->primary = -1;
	m->promise_to = -1;
	m->role = CS_MROLE_INIT;
	*out = m;
	return 0;
}

void cs_membership_free(struct cs_membership *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->peers[i].name);
	free(m->peers);
	free(m);
}

void cs_membership_set_timing(struct cs_membership *m, unsigned interval_ms, unsigned timeout_ms,
                              unsigned drift_ms)
{
	m->interval = interval_ms;
	m->timeout = timeout_ms;
	m->drift = drift_ms;
}

void cs_membership_set_durable(struct cs_membership *m, uint64_t generation)
{
	if (!m->peers[m->self].witness)
		m->durable = generation;
}

uint64_t cs_membership_peer_durable(const struct cs_membership *m, int peer)
{
	if (peer == m->self)
		return m->durable;
	return peer >= 0 && (size_t)peer < m->n ? m->peers[peer].durable : 0;
}

enum cs_member_role cs_membership_role(const struct cs_membership *m)
{
	return m->role;
}

uint64_t cs_membership_term(const struct cs_membership *m)
{
	return m->term;
}

int cs_membership_primary(const struct cs_membership *m)
{
	return m->primary;
}

size_t cs_membership_n_peers(const struct cs_membership *m)
{
	return m->n;
}

const char *cs_membership_peer_name(const struct cs_membership *m, int peer)
{
	return peer >= 0 && (size_t)peer < m->n ? m->peers[peer].name : NULL;
}

uint64_t cs_membership_lease_remaining(const struct cs_membership *m, uint64_t now_ms)
{
	uint64_t until = m->role == CS_MROLE_PRIMARY ? m->lease_until : m->promise_until;

	return until > now_ms ? until - now_ms : 0;
}

enum cs_peer_state cs_membership_peer_state(const struct cs_membership *m, int peer,
                                            uint64_t now_ms)
{
	const struct mpeer *p = &m->peers[peer];

	if (peer == m->self)
		return CS_PEER_SELF;
	if (!p->link_up)
		return CS_PEER_DOWN;
	if (!p->heard || now_ms - p->last_heard > m->timeout)
		return CS_PEER_SUSPECTED;
	return CS_PEER_UP;
}

int64_t cs_membership_peer_silence(const struct cs_membership *m, int peer, uint64_t now_ms)
{
	const struct mpeer *p = &m->peers[peer];

	if (!p->heard)
		return -1;
	return now_ms > p->last_heard ? (int64_t)(now_ms - p->last_heard) : 0;
}

int cs_membership_peer_index(const struct cs_membership *m, const char *name, size_t len)
{
	for (size_t i = 0; i < m->n; i++)
		if (strlen(m->peers[i].name) == len && memcmp(m->peers[i].name, name, len) == 0)
			return (int)i;
	return -1;
}
