/* Leases, elections and switchover: the parts of the membership state
 * machine that talk to other voters. docs/cluster.md names the rules. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "membership_int.h"

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
	ms_broadcast(m, &msg);
}

void ms_on_lease_grant(struct cs_membership *m, int peer, const struct cs_msg_lease_grant *g)
{
	struct lease_req *lr = &m->ring[g->seq % LEASE_RING];

	if (!g->granted || g->term != m->term || lr->seq != g->seq || g->seq == 0)
		return;
	lr->granted |= 1ull << peer;
	count_grants(m, lr);
}

void ms_send_heartbeats(struct cs_membership *m)
{
	struct cs_msg msg = {.type = CS_MSG_HEARTBEAT};

	if (m->now < m->next_heartbeat)
		return;
	m->next_heartbeat = m->now + m->interval;
	msg.heartbeat = (struct cs_msg_heartbeat){
	    .term = m->term,
	    .durable_generation = m->durable,
	    .send_time_ns = m->now * 1000000ull,
	    .lease_ms = (uint32_t)cs_membership_lease_remaining(m, m->now),
	    .role = cs_member_role_wire(m->role),
	};
	ms_broadcast(m, &msg);
	if (m->role == CS_MROLE_PRIMARY)
		renew_lease(m);
}

void ms_check_suspects(struct cs_membership *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct mpeer *p = &m->peers[i];

		if ((int)i == m->self || !p->heard || p->suspected)
			continue;
		if (m->now - p->last_heard > m->timeout) {
			p->suspected = true;
			ms_note(m, CS_MNOTE_SUSPECTED, (int)i, NULL);
		}
	}
}

/* Rule 2: the primary stops before its lease ends, with one heartbeat
 * interval to spare (the daemon ticks several times per interval). */
void ms_check_lease(struct cs_membership *m, enum cs_mevent_kind ev)
{
	if (m->now + m->interval < m->lease_until)
		return;
	ms_note(m, CS_MNOTE_LEASE_LOST, -1, "lease not renewed by a majority of voters");
	/* Do not stand again before the others had their chance. */
	m->not_before = m->now + 2ull * m->timeout + m->drift;
	ms_change_role(m, CS_MROLE_FENCED, ev, "lease not renewed by a majority of voters");
}

/* ---- elections (rules 1, 3, 6) ---- */

static int other_voter(const struct cs_membership *m)
{
	return m->self == 0 ? 1 : 0;
}

void ms_check_votes(struct cs_membership *m, enum cs_mevent_kind ev)
{
	unsigned votes = 1;

	for (size_t i = 0; i < m->n; i++)
		votes += (int)i != m->self && m->peers[i].vote_granted;
	if (votes < m->majority)
		return;
	/* Every grant came after the request left: the lease runs from then. */
	m->lease_until = m->election_started + m->timeout;
	ms_change_role(m, CS_MROLE_PRIMARY, ev, "elected by a majority of voters");
}

static void start_election(struct cs_membership *m, enum cs_mevent_kind ev)
{
	bool fence = m->n == 2 && !ms_peer_live(m, other_voter(m));
	struct cs_msg msg = {.type = CS_MSG_VOTE_REQUEST};
	uint64_t term = m->term + 1;

	/* A fence stands in for a vote, so two fencing nodes could pick the
	 * same term: each takes only terms of its own parity (rule 6). */
	if (fence && term % 2 != (uint64_t)m->self)
		term++;
	if (ms_set_term(m, term, m->self) < 0) {
		m->not_before = m->now + m->timeout;
		return;
	}
	m->election_started = m->now;
	m->promise_until = 0;
	ms_change_role(m, CS_MROLE_CANDIDATE, ev,
	               fence ? "peer unreachable: running the fence hook" : "asking for votes");
	if (fence) {
		/* Rule 6: with two voters the hook stands in for the peer's vote. */
		m->fence_running = true;
		if (m->ops.fence_peer)
			m->ops.fence_peer(m->ctx, other_voter(m), m->term);
		return;
	}
	msg.vote_request =
	    (struct cs_msg_vote_request){.term = m->term,
	                                 .durable_generation = m->durable,
	                                 .candidate = cs_str_of(m->peers[m->self].name)};
	ms_broadcast(m, &msg);
	ms_check_votes(m, ev);
}

uint64_t ms_retry_delay(const struct cs_membership *m)
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
	struct cs_msg msg = {.type = CS_MSG_PREVOTE_REQUEST};

	m->prevote_term = m->term + 1;
	m->prevote_started = m->now;
	m->prevote_again_at = 0;
	for (size_t i = 0; i < m->n; i++)
		m->peers[i].prevote_granted = false;
	msg.prevote_request =
	    (struct cs_msg_vote_request){.term = m->prevote_term,
	                                 .durable_generation = m->durable,
	                                 .candidate = cs_str_of(m->peers[m->self].name)};
	ms_broadcast(m, &msg);
	if (prevotes(m) >= m->majority) {
		m->prevote_term = 0;
		start_election(m, ev);
	}
}

/*
 * A voter that heard the old primary's last renewal a little after this
 * node did still holds its promise for that little while, and says how
 * long (lease_remaining_ms, the same promise_until + drift this node
 * waited out). Asking again just after it runs out takes milliseconds;
 * the pre-vote timeout and its back-off took about 300 ms of every
 * failover. Only a short wait is taken at its word: a longer one means the
 * voter hears a primary this node does not, and the back-off applies.
 */
static void prevote_held(struct cs_membership *m, const struct cs_msg_vote *v)
{
	uint64_t at = m->now + v->lease_remaining_ms + 1;
	if (v->reason != CS_VOTE_LEASE_HELD || !v->lease_remaining_ms ||
	    v->lease_remaining_ms > 2ull * m->interval)
		return;
	if (at > m->prevote_again_at)
		m->prevote_again_at = at;
}

/* A PREVOTE carries the voter's own term: it granted only a term above
 * it, so a grant for our pre-vote has a term below prevote_term. */
void ms_on_prevote(struct cs_membership *m, int peer, const struct cs_msg_vote *v)
{
	if (m->prevote_term == 0 || v->term >= m->prevote_term)
		return;
	if (!v->granted) {
		prevote_held(m, v);
		return;
	}
	m->peers[peer].prevote_granted = true;
	if (prevotes(m) >= m->majority && m->term + 1 == m->prevote_term) {
		m->prevote_term = 0;
		start_election(m, CS_MEV_PREVOTE);
	}
}

/* Rule 8: a voter with a newer durable generation than the candidate's
 * refuses it; a witness holds none and never refuses for that. */
static bool candidate_behind(const struct cs_membership *m, uint64_t candidate_durable)
{
	return !m->peers[m->self].witness && m->durable > candidate_durable;
}

static uint8_t prevote_reason(struct cs_membership *m, int peer,
                              const struct cs_msg_vote_request *req)
{
	if (req->term <= m->term)
		return CS_VOTE_STALE_TERM;
	if (ms_lease_held(m, peer) || ms_primary_alive(m))
		return CS_VOTE_LEASE_HELD;
	if (candidate_behind(m, req->durable_generation))
		return CS_VOTE_BEHIND;
	return CS_VOTE_GRANTED;
}

/* The same tests as a real vote, but nothing changes here. */
void ms_on_prevote_request(struct cs_membership *m, int peer, const struct cs_msg_vote_request *req)
{
	struct cs_msg msg = {.type = CS_MSG_PREVOTE};
	uint8_t reason = prevote_reason(m, peer, req);
	uint64_t left = m->promise_until > m->now ? m->promise_until - m->now : 0;

	msg.prevote = (struct cs_msg_vote){.term = m->term,
	                                   .durable_generation = m->durable,
	                                   .granted = reason == CS_VOTE_GRANTED,
	                                   .reason = reason,
	                                   .lease_remaining_ms =
	                                       reason == CS_VOTE_LEASE_HELD ? (uint32_t)left : 0};
	ms_send_msg(m, peer, &msg);
}

/* Rule 8, on the candidate's side: while a reachable backup holds a newer
 * durable generation than ours, it should be the one to stand (the voters
 * that are not witnesses would refuse us anyway). Once it is suspected, we
 * may. */
static int better_backup(const struct cs_membership *m)
{
	for (size_t i = 0; i < m->n; i++)
		if ((int)i != m->self && !m->peers[i].witness && ms_peer_live(m, (int)i) &&
		    m->peers[i].durable > m->durable)
			return (int)i;
	return -1;
}

void ms_prevote_timeout(struct cs_membership *m)
{
	if (m->prevote_term != 0 && m->prevote_again_at && m->now >= m->prevote_again_at &&
	    m->term + 1 == m->prevote_term) {
		start_prevote(m, CS_MEV_TICK);
		return;
	}
	if (m->prevote_term == 0 || m->now - m->prevote_started <= 2ull * m->interval)
		return;
	m->prevote_term = 0;
	m->not_before = m->now + 2ull * m->interval * (m->rank + 1);
	ms_blocked(m, "no majority would vote for this node (pre-vote)");
}

/*
 * The rank that staggers candidacies after a lease ends: voters listed
 * before this one that are live now. Ranks keep two backups from
 * splitting the votes; a voter that is gone (most often the primary just
 * lost, rank 0 in most clusters) stands for nothing, and counting it made
 * the second member wait two more heartbeat intervals in every failover.
 */
static unsigned live_rank(const struct cs_membership *m)
{
	unsigned rank = 0;
	for (int i = 0; i < m->self; i++)
		rank += !m->peers[i].witness && ms_peer_live(m, i);
	return rank;
}

void ms_maybe_stand(struct cs_membership *m, enum cs_mevent_kind ev)
{
	if (m->peers[m->self].witness || ms_primary_alive(m) || m->now < m->not_before)
		return;
	if (m->now < m->promise_until + 2ull * m->interval * live_rank(m)) {
		ms_blocked(m, "waiting for the primary's lease to expire");
		return;
	}
	if (m->n != 2 && ms_reachable(m) < m->majority) {
		ms_blocked(m, "no majority of voters reachable");
		return;
	}
	if (better_backup(m) >= 0) {
		ms_blocked(m, "a reachable backup holds a newer durable generation");
		return;
	}
	if (m->n == 2 && !ms_peer_live(m, other_voter(m)))
		start_election(m, ev); /* the fence hook decides, no one to ask */
	else
		start_prevote(m, ev);
}

void ms_on_fence_done(struct cs_membership *m, const struct cs_mevent *ev)
{
	if (!m->fence_running || ev->term != m->term)
		return;
	m->fence_running = false;
	if (!ev->ok) {
		m->not_before = m->now + m->timeout;
		ms_note(m, CS_MNOTE_BLOCKED, ev->peer, "fence hook failed: not promoting");
		ms_change_role(m, ms_follower_role(m), ev->kind, "fence hook failed");
		return;
	}
	m->peers[other_voter(m)].fenced_by_hook = true;
	m->lease_until = m->now + m->timeout;
	ms_change_role(m, CS_MROLE_PRIMARY, ev->kind, "peer fenced by the fence hook");
}

void ms_reply_vote(struct cs_membership *m, int peer, bool granted, uint8_t reason)
{
	struct cs_msg msg = {.type = CS_MSG_VOTE};
	uint64_t left = m->promise_until > m->now ? m->promise_until - m->now : 0;

	msg.vote = (struct cs_msg_vote){.term = m->term,
	                                .durable_generation = m->durable,
	                                .granted = granted,
	                                .reason = reason,
	                                .lease_remaining_ms = granted ? 0 : (uint32_t)left};
	ms_send_msg(m, peer, &msg);
}

/* Rules 1 and 3: one vote per term, durable before it is sent, and none
 * while a promise to another node runs. Rule 8: none for a candidate that
 * holds an older durable generation than this voter. */
void ms_on_vote_request(struct cs_membership *m, int peer, const struct cs_msg_vote_request *req)
{
	if (m->role == CS_MROLE_CANDIDATE || m->role == CS_MROLE_PRIMARY ||
	    (m->voted_for >= 0 && m->voted_for != peer)) {
		ms_reply_vote(m, peer, false, CS_VOTE_ALREADY_VOTED);
		return;
	}
	if (ms_lease_held(m, peer)) {
		ms_reply_vote(m, peer, false, CS_VOTE_LEASE_HELD);
		return;
	}
	if (candidate_behind(m, req->durable_generation)) {
		ms_reply_vote(m, peer, false, CS_VOTE_BEHIND);
		return;
	}
	if (m->voted_for != peer && ms_set_term(m, m->term, peer) < 0)
		return;
	m->promise_until = m->now + m->timeout + m->drift;
	m->promise_to = peer;
	ms_reply_vote(m, peer, true, CS_VOTE_GRANTED);
}

/* ---- following a primary ---- */

void ms_on_heartbeat(struct cs_membership *m, int peer, const struct cs_msg_heartbeat *hb,
                     enum cs_mevent_kind ev)
{
	if (hb->role == CS_ROLE_PRIMARY) {
		if (m->role == CS_MROLE_PRIMARY) {
			/* Cannot happen (rule 1); say so loudly rather than guess. */
			ms_note(m, CS_MNOTE_BLOCKED, peer,
			        "another node claims primary in this term");
			return;
		}
		if (m->role == CS_MROLE_CANDIDATE)
			ms_change_role(m, ms_follower_role(m), ev, "another node won this term");
		m->primary = peer;
	} else if (m->primary == peer) {
		m->primary = -1; /* it stepped down or fenced itself */
	}
}

void ms_on_lease_renew(struct cs_membership *m, int peer, const struct cs_msg_lease_renew *lr,
                       enum cs_mevent_kind ev)
{
	struct cs_msg msg = {.type = CS_MSG_LEASE_GRANT};
	bool grant;

	if (m->role == CS_MROLE_CANDIDATE)
		ms_change_role(m, ms_follower_role(m), ev, "another node won this term");
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
	ms_send_msg(m, peer, &msg);
}

/* Switchover, on the old primary: stop acting first, then tell everyone. */
static int pick_target(const struct cs_membership *m, int want)
{
	if (want >= 0)
		return want != m->self && (size_t)want < m->n && !m->peers[want].witness &&
		               ms_peer_live(m, want)
		           ? want
		           : -1;
	for (size_t i = 0; i < m->n; i++)
		if ((int)i != m->self && !m->peers[i].witness && ms_peer_live(m, (int)i))
			return (int)i;
	return -1;
}

int ms_on_switchover(struct cs_membership *m, const struct cs_mevent *ev)
{
	int target = pick_target(m, ev->target);

	if (target < 0)
		return -EHOSTUNREACH;
	ms_note(m, CS_MNOTE_SWITCHOVER, target, NULL);
	ms_change_role(m, CS_MROLE_BACKUP, ev->kind, "switchover requested");
	m->promise_until = 0;
	m->not_before = m->now + 2ull * m->timeout;
	for (size_t i = 0; i < m->n; i++)
		if ((int)i != m->self && m->ops.send_transfer)
			m->ops.send_transfer(m->ctx, (int)i, m->term, target);
	return 0;
}

/* The primary of our term gave its lease up: its promise is void. */
void ms_on_transfer(struct cs_membership *m, const struct cs_mevent *ev)
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
