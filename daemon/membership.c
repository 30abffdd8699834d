/* The membership state machine. docs/cluster.md has the rules and the
 * argument for why two primaries never act in the same term; the comments
 * here point at the rule each piece of code implements. */
#include "membership.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEASE_RING 32 /* renewals in flight the primary remembers */

struct mpeer {
	char *name;
	bool witness;
	bool link_up;
	bool heard;           /* last_heard is valid */
	uint64_t last_heard;  /* any message, or the link coming up */
	bool suspected;       /* reported once per silence */
	bool vote_granted;    /* in the current election */
	bool prevote_granted; /* in the current pre-vote */
	bool fenced_by_hook;  /* two voters: the fence hook stands in for its grants */
	uint64_t stale_noted_term;
};

struct lease_req {
	uint64_t seq, sent_at, granted; /* granted: bit per peer */
};

struct cs_membership {
	struct cs_membership_ops ops;
	void *ctx;
	struct mpeer *peers;
	size_t n;
	int self;
	unsigned majority, rank;
	unsigned interval, timeout, drift;

	enum cs_member_role role;
	uint64_t term;
	int voted_for;
	int primary; /* the primary of term as far as we know, -1 */
	uint64_t now;

	/* Rule 3 (docs/cluster.md): no vote for anyone but promise_to before
	 * promise_until. */
	uint64_t promise_until;
	int promise_to;

	/* Primary: acts only before lease_until (rule 2). */
	uint64_t lease_until;
	uint64_t seq;
	struct lease_req ring[LEASE_RING];

	uint64_t prevote_term, prevote_started; /* prevote_term 0: none running */
	uint64_t election_started;
	uint64_t not_before; /* no candidacy before this */
	uint64_t next_heartbeat;
	bool fence_running;
	const char *blocked; /* the last BLOCKED note, not repeated */
};

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

static void note(struct cs_membership *m, enum cs_mnote what, int peer, const char *detail)
{
	struct cs_mnote_info n = {.what = what, .peer = peer, .term = m->term, .detail = detail};

	if (m->ops.note)
		m->ops.note(m->ctx, &n);
}

static void blocked(struct cs_membership *m, const char *why)
{
	if (m->blocked == why)
		return;
	m->blocked = why;
	note(m, CS_MNOTE_BLOCKED, -1, why);
}

static bool peer_live(const struct cs_membership *m, int i)
{
	const struct mpeer *p = &m->peers[i];

	return i == m->self || (p->link_up && p->heard && m->now - p->last_heard <= m->timeout);
}

static unsigned reachable(const struct cs_membership *m)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->n; i++)
		n += peer_live(m, (int)i);
	return n;
}

static bool primary_alive(const struct cs_membership *m)
{
	return m->primary >= 0 && m->primary != m->self && peer_live(m, m->primary);
}

/* Rule 3: a promise to one node blocks votes for every other. A primary's
 * own lease is a promise to itself. */
static bool lease_held(const struct cs_membership *m, int candidate)
{
	if (m->role == CS_MROLE_PRIMARY)
		return true;
	return m->now < m->promise_until && m->promise_to != candidate;
}

static void send_msg(struct cs_membership *m, int peer, const struct cs_msg *msg)
{
	if (peer != m->self && m->ops.send)
		m->ops.send(m->ctx, peer, msg);
}

static void broadcast(struct cs_membership *m, const struct cs_msg *msg)
{
	for (size_t i = 0; i < m->n; i++)
		send_msg(m, (int)i, msg);
}

/* The one place where the role changes; side effects live in the daemon's
 * role_changed callback (log "role A -> B (event E)", hooks, app). */
static void change_role(struct cs_membership *m, enum cs_member_role to, enum cs_mevent_kind ev,
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
static int set_term(struct cs_membership *m, uint64_t term, int voted_for)
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

static enum cs_member_role follower_role(const struct cs_membership *m)
{
	return m->peers[m->self].witness ? CS_MROLE_WITNESS : CS_MROLE_BACKUP;
}

/* Rule 5: a newer term makes this node step down at once; it stops acting
 * before the new term is even written. */
static int adopt_newer_term(struct cs_membership *m, uint64_t term, enum cs_mevent_kind ev)
{
	if (m->role == CS_MROLE_PRIMARY || m->role == CS_MROLE_CANDIDATE ||
	    m->role == CS_MROLE_FENCED)
		change_role(m, follower_role(m), ev, "a newer term exists");
	return set_term(m, term, -1);
}

/* ---- the primary's lease (rule 2) ---- */

static unsigned hook_fenced(const struct cs_membership *m)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->n; i++)
		n += m->peers[i].fenced_by_hook;
	return n;
}

static void count_grants(struct cs_membership *m, const struct lease_req *lr)
{
	unsigned votes = 1 + (unsigned)__builtin_popcountll(lr->granted) + hook_fenced(m);
	uint64_t until = lr->sent_at + m->timeout;

	/* Counted from when the request left: every grant was given later,
	 * so every voter's promise outlasts this (rule 2). */
	if (votes >= m->majority && until > m->lease_until)
		m->lease_until = until;
}

static void renew_lease(struct cs_membership *m)
{
	struct lease_req *lr = &m->ring[++m->seq % LEASE_RING];
	struct cs_msg msg = {.type = CS_MSG_LEASE_RENEW};

	*lr = (struct lease_req){.seq = m->seq, .sent_at = m->now};
	count_grants(m, lr); /* one voter, or two with the peer fenced */
	msg.lease_renew =
	    (struct cs_msg_lease_renew){.term = m->term, .seq = m->seq, .duration_ms = m->timeout};
	broadcast(m, &msg);
}

static void on_lease_grant(struct cs_membership *m, int peer, const struct cs_msg_lease_grant *g)
{
	struct lease_req *lr = &m->ring[g->seq % LEASE_RING];

	if (!g->granted || g->term != m->term || lr->seq != g->seq || g->seq == 0)
		return;
	lr->granted |= 1ull << peer;
	count_grants(m, lr);
}

static void send_heartbeats(struct cs_membership *m)
{
	struct cs_msg msg = {.type = CS_MSG_HEARTBEAT};

	if (m->now < m->next_heartbeat)
		return;
	m->next_heartbeat = m->now + m->interval;
	msg.heartbeat = (struct cs_msg_heartbeat){
	    .term = m->term,
	    .send_time_ns = m->now * 1000000ull,
	    .lease_ms = (uint32_t)cs_membership_lease_remaining(m, m->now),
	    .role = cs_member_role_wire(m->role),
	};
	broadcast(m, &msg);
	if (m->role == CS_MROLE_PRIMARY)
		renew_lease(m);
}

static void check_suspects(struct cs_membership *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct mpeer *p = &m->peers[i];

		if ((int)i == m->self || !p->heard || p->suspected)
			continue;
		if (m->now - p->last_heard > m->timeout) {
			p->suspected = true;
			note(m, CS_MNOTE_SUSPECTED, (int)i, NULL);
		}
	}
}

/* Rule 2: the primary stops before its lease ends, with one heartbeat
 * interval to spare (the daemon ticks several times per interval). */
static void check_lease(struct cs_membership *m, enum cs_mevent_kind ev)
{
	if (m->now + m->interval < m->lease_until)
		return;
	note(m, CS_MNOTE_LEASE_LOST, -1, "lease not renewed by a majority of voters");
	/* Do not stand again before the others had their chance. */
	m->not_before = m->now + 2ull * m->timeout + m->drift;
	change_role(m, CS_MROLE_FENCED, ev, "lease not renewed by a majority of voters");
}

/* ---- elections (rules 1, 3, 6) ---- */

static int other_voter(const struct cs_membership *m)
{
	return m->self == 0 ? 1 : 0;
}

static void check_votes(struct cs_membership *m, enum cs_mevent_kind ev)
{
	unsigned votes = 1;

	for (size_t i = 0; i < m->n; i++)
		votes += (int)i != m->self && m->peers[i].vote_granted;
	if (votes < m->majority)
		return;
	/* Every grant came after the request left: the lease runs from then. */
	m->lease_until = m->election_started + m->timeout;
	change_role(m, CS_MROLE_PRIMARY, ev, "elected by a majority of voters");
}

static void start_election(struct cs_membership *m, enum cs_mevent_kind ev)
{
	bool fence = m->n == 2 && !peer_live(m, other_voter(m));
	struct cs_msg msg = {.type = CS_MSG_VOTE_REQUEST};
	uint64_t term = m->term + 1;

	/* A fence stands in for a vote, so two fencing nodes could pick the
	 * same term: each takes only terms of its own parity (rule 6). */
	if (fence && term % 2 != (uint64_t)m->self)
		term++;
	if (set_term(m, term, m->self) < 0) {
		m->not_before = m->now + m->timeout;
		return;
	}
	m->election_started = m->now;
	m->promise_until = 0;
	change_role(m, CS_MROLE_CANDIDATE, ev,
	            fence ? "peer unreachable: running the fence hook" : "asking for votes");
	if (fence) {
		/* Rule 6: with two voters the hook stands in for the peer's vote. */
		m->fence_running = true;
		if (m->ops.fence_peer)
			m->ops.fence_peer(m->ctx, other_voter(m), m->term);
		return;
	}
	msg.vote_request = (struct cs_msg_vote_request){
	    .term = m->term, .candidate = cs_str_of(m->peers[m->self].name)};
	broadcast(m, &msg);
	check_votes(m, ev);
}

static uint64_t retry_delay(const struct cs_membership *m)
{
	return m->timeout / 2 + 2ull * m->interval * (m->rank + 1);
}

/* Rule 7: a node raises its term only after a majority said it would
 * vote for it. Otherwise a node that cannot see the primary (but sees a
 * majority) would keep raising terms and depose a healthy primary. */
static unsigned prevotes(const struct cs_membership *m)
{
	unsigned n = 1;

	for (size_t i = 0; i < m->n; i++)
		n += (int)i != m->self && m->peers[i].prevote_granted;
	return n;
}

static void start_prevote(struct cs_membership *m, enum cs_mevent_kind ev)
{
	m->prevote_term = m->term + 1;
	m->prevote_started = m->now;
	for (size_t i = 0; i < m->n; i++) {
		m->peers[i].prevote_granted = false;
		if ((int)i != m->self && m->ops.send_prevote)
			m->ops.send_prevote(m->ctx, (int)i, m->prevote_term);
	}
	if (prevotes(m) >= m->majority) {
		m->prevote_term = 0;
		start_election(m, ev);
	}
}

static void on_prevote(struct cs_membership *m, const struct cs_mevent *ev)
{
	if (m->prevote_term == 0 || ev->term != m->prevote_term || !ev->ok)
		return;
	m->peers[ev->peer].prevote_granted = true;
	if (prevotes(m) >= m->majority && m->term + 1 == m->prevote_term) {
		m->prevote_term = 0;
		start_election(m, ev->kind);
	}
}

/* The same tests as a real vote, but nothing changes here. */
static void on_prevote_request(struct cs_membership *m, const struct cs_mevent *ev)
{
	bool grant = ev->term > m->term && !lease_held(m, ev->peer) && !primary_alive(m);

	if (m->ops.reply_prevote)
		m->ops.reply_prevote(m->ctx, ev->peer, ev->term, grant);
}

static void prevote_timeout(struct cs_membership *m)
{
	if (m->prevote_term == 0 || m->now - m->prevote_started <= 2ull * m->interval)
		return;
	m->prevote_term = 0;
	m->not_before = m->now + 2ull * m->interval * (m->rank + 1);
	blocked(m, "no majority would vote for this node (pre-vote)");
}

static void maybe_stand(struct cs_membership *m, enum cs_mevent_kind ev)
{
	if (m->peers[m->self].witness || primary_alive(m) || m->now < m->not_before)
		return;
	if (m->now < m->promise_until + 2ull * m->interval * m->rank) {
		blocked(m, "waiting for the primary's lease to expire");
		return;
	}
	if (m->n != 2 && reachable(m) < m->majority) {
		blocked(m, "no majority of voters reachable");
		return;
	}
	if (m->n == 2 && !peer_live(m, other_voter(m)))
		start_election(m, ev); /* the fence hook decides, no one to ask */
	else
		start_prevote(m, ev);
}

static void on_fence_done(struct cs_membership *m, const struct cs_mevent *ev)
{
	if (!m->fence_running || ev->term != m->term)
		return;
	m->fence_running = false;
	if (!ev->ok) {
		m->not_before = m->now + m->timeout;
		note(m, CS_MNOTE_BLOCKED, ev->peer, "fence hook failed: not promoting");
		change_role(m, follower_role(m), ev->kind, "fence hook failed");
		return;
	}
	m->peers[other_voter(m)].fenced_by_hook = true;
	m->lease_until = m->now + m->timeout;
	change_role(m, CS_MROLE_PRIMARY, ev->kind, "peer fenced by the fence hook");
}

static void reply_vote(struct cs_membership *m, int peer, bool granted, uint8_t reason)
{
	struct cs_msg msg = {.type = CS_MSG_VOTE};
	uint64_t left = m->promise_until > m->now ? m->promise_until - m->now : 0;

	msg.vote = (struct cs_msg_vote){.term = m->term,
	                                .granted = granted,
	                                .reason = reason,
	                                .lease_remaining_ms = granted ? 0 : (uint32_t)left};
	send_msg(m, peer, &msg);
}

/* Rules 1 and 3: one vote per term, durable before it is sent, and none
 * while a promise to another node runs. */
static void on_vote_request(struct cs_membership *m, int peer)
{
	if (m->role == CS_MROLE_CANDIDATE || m->role == CS_MROLE_PRIMARY ||
	    (m->voted_for >= 0 && m->voted_for != peer)) {
		reply_vote(m, peer, false, CS_VOTE_ALREADY_VOTED);
		return;
	}
	if (lease_held(m, peer)) {
		reply_vote(m, peer, false, CS_VOTE_LEASE_HELD);
		return;
	}
	if (m->voted_for != peer && set_term(m, m->term, peer) < 0)
		return;
	m->promise_until = m->now + m->timeout + m->drift;
	m->promise_to = peer;
	reply_vote(m, peer, true, CS_VOTE_GRANTED);
}

/* ---- following a primary ---- */

static void on_heartbeat(struct cs_membership *m, int peer, const struct cs_msg_heartbeat *hb,
                         enum cs_mevent_kind ev)
{
	if (hb->role == CS_ROLE_PRIMARY) {
		if (m->role == CS_MROLE_PRIMARY) {
			/* Cannot happen (rule 1); say so loudly rather than guess. */
			note(m, CS_MNOTE_BLOCKED, peer, "another node claims primary in this term");
			return;
		}
		if (m->role == CS_MROLE_CANDIDATE)
			change_role(m, follower_role(m), ev, "another node won this term");
		m->primary = peer;
	} else if (m->primary == peer) {
		m->primary = -1; /* it stepped down or fenced itself */
	}
}

static void on_lease_renew(struct cs_membership *m, int peer, const struct cs_msg_lease_renew *lr,
                           enum cs_mevent_kind ev)
{
	struct cs_msg msg = {.type = CS_MSG_LEASE_GRANT};
	bool grant;

	if (m->role == CS_MROLE_CANDIDATE)
		change_role(m, follower_role(m), ev, "another node won this term");
	/* Renewing the lease of the primary of this term elects no one, so
	 * the restart quarantine (promise_to -1) does not block it. */
	grant = m->role != CS_MROLE_PRIMARY && m->role != CS_MROLE_FENCED &&
	        (m->voted_for < 0 || m->voted_for == peer) &&
	        !(m->now < m->promise_until && m->promise_to >= 0 && m->promise_to != peer);
	if (grant) {
		m->primary = peer;
		m->promise_until = m->now + lr->duration_ms + m->drift;
		m->promise_to = peer;
	}
	msg.lease_grant = (struct cs_msg_lease_grant){
	    .term = m->term, .seq = lr->seq, .duration_ms = lr->duration_ms, .granted = grant};
	send_msg(m, peer, &msg);
}

/* Switchover, on the old primary: stop acting first, then tell everyone. */
static int pick_target(const struct cs_membership *m, int want)
{
	if (want >= 0)
		return want != m->self && (size_t)want < m->n && !m->peers[want].witness &&
		               peer_live(m, want)
		           ? want
		           : -1;
	for (size_t i = 0; i < m->n; i++)
		if ((int)i != m->self && !m->peers[i].witness && peer_live(m, (int)i))
			return (int)i;
	return -1;
}

static int on_switchover(struct cs_membership *m, const struct cs_mevent *ev)
{
	int target = pick_target(m, ev->target);

	if (target < 0)
		return -EHOSTUNREACH;
	note(m, CS_MNOTE_SWITCHOVER, target, NULL);
	change_role(m, CS_MROLE_BACKUP, ev->kind, "switchover requested");
	m->promise_until = 0;
	m->not_before = m->now + 2ull * m->timeout;
	for (size_t i = 0; i < m->n; i++)
		if ((int)i != m->self && m->ops.send_transfer)
			m->ops.send_transfer(m->ctx, (int)i, m->term, target);
	return 0;
}

/* The primary of our term gave its lease up: its promise is void. */
static void on_transfer(struct cs_membership *m, const struct cs_mevent *ev)
{
	if (ev->term != m->term || (m->primary != ev->peer && m->primary != -1))
		return;
	if (m->promise_to == ev->peer)
		m->promise_until = 0;
	m->primary = -1;
	if (ev->target == m->self && m->role == CS_MROLE_BACKUP) {
		start_election(m, ev->kind);
		return;
	}
	/* Leave the target a clear field. */
	m->not_before = m->now + m->timeout;
}

/* ---- events every state handles alike ---- */

static void on_tick_common(struct cs_membership *m)
{
	check_suspects(m);
	send_heartbeats(m);
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
		on_heartbeat(m, ev->peer, &ev->msg->heartbeat, ev->kind);
		return 0;
	case CS_MEV_LEASE_RENEW:
		on_lease_renew(m, ev->peer, &ev->msg->lease_renew, ev->kind);
		return 0;
	case CS_MEV_VOTE_REQUEST:
		on_vote_request(m, ev->peer);
		return 0;
	case CS_MEV_TRANSFER:
		on_transfer(m, ev);
		return 0;
	case CS_MEV_SWITCHOVER:
		return -EPERM;
	case CS_MEV_PREVOTE_REQUEST:
		on_prevote_request(m, ev);
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
		change_role(m, follower_role(m), ev->kind, "daemon started");
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
		prevote_timeout(m);
		if (m->prevote_term == 0)
			maybe_stand(m, ev->kind);
		return 0;
	case CS_MEV_PREVOTE:
		on_prevote(m, ev);
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
			m->not_before = m->now + retry_delay(m);
			change_role(m, follower_role(m), ev->kind, "no majority in time");
		}
		return 0;
	case CS_MEV_VOTE:
		if (ev->msg->vote.term == m->term && ev->msg->vote.granted) {
			m->peers[ev->peer].vote_granted = true;
			check_votes(m, ev->kind);
		}
		return 0;
	case CS_MEV_FENCE_DONE:
		on_fence_done(m, ev);
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
		check_lease(m, ev->kind);
		return 0;
	case CS_MEV_LEASE_GRANT:
		on_lease_grant(m, ev->peer, &ev->msg->lease_grant);
		return 0;
	case CS_MEV_SWITCHOVER:
		return on_switchover(m, ev);
	default:
		return on_common(m, ev);
	}
}

static int fsm_fenced(struct cs_membership *m, const struct cs_mevent *ev)
{
	switch (ev->kind) {
	case CS_MEV_TICK:
		/* A fenced node may stand again, but only in a new term. */
		on_tick_common(m);
		prevote_timeout(m);
		if (m->prevote_term == 0)
			maybe_stand(m, ev->kind);
		return 0;
	case CS_MEV_PREVOTE:
		on_prevote(m, ev);
		return 0;
	default:
		return on_common(m, ev);
	}
}

static bool is_message(enum cs_mevent_kind k)
{
	return k == CS_MEV_HEARTBEAT || k == CS_MEV_LEASE_RENEW || k == CS_MEV_LEASE_GRANT ||
	       k == CS_MEV_VOTE_REQUEST || k == CS_MEV_VOTE;
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
			reply_vote(m, ev->peer, false, CS_VOTE_STALE_TERM);
		return false;
	}
	if (t == m->term)
		return true;
	/* A vote request must not depose a lease still in force (rule 3):
	 * refuse it without adopting its term. */
	if (ev->kind == CS_MEV_VOTE_REQUEST && lease_held(m, ev->peer)) {
		reply_vote(m, ev->peer, false, CS_VOTE_LEASE_HELD);
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
	return !is_message(ev->kind) || ev->msg;
}

static void mark_heard(struct cs_membership *m, int peer)
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
	if (ev->kind == CS_MEV_PREVOTE_REQUEST || ev->kind == CS_MEV_PREVOTE)
		mark_heard(m, ev->peer); /* a hypothetical term: never adopted */
	if (is_message(ev->kind) || ev->kind == CS_MEV_TRANSFER) {
		struct mpeer *p = &m->peers[ev->peer];

		mark_heard(m, ev->peer);
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
		return fsm_follower(m, ev);
	case CS_MROLE_CANDIDATE:
		return fsm_candidate(m, ev);
	case CS_MROLE_PRIMARY:
		return fsm_primary(m, ev);
	case CS_MROLE_FENCED:
		return fsm_fenced(m, ev);
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
