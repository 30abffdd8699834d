/* Internals of the membership state machine, shared by membership.c
 * (states, terms, roles) and membership_vote.c (leases, elections,
 * following a primary, switchover). Nothing outside those two includes it. */
#ifndef CS_MEMBERSHIP_INT_H
#define CS_MEMBERSHIP_INT_H

#include "membership.h"

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
	uint64_t durable; /* the newest durable generation it announced */
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
	uint64_t durable; /* this node's newest durable generation (rule 8) */
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
	/* a voter refused the pre-vote only until its promise to the old
	 * primary runs out: the pre-vote is asked again then (0: none) */
	uint64_t prevote_again_at;
	uint64_t election_started;
	uint64_t not_before; /* no candidacy before this */
	uint64_t next_heartbeat;
	bool fence_running;
	const char *blocked; /* the last BLOCKED note, not repeated */
};

/* membership.c */
void ms_note(struct cs_membership *m, enum cs_mnote what, int peer, const char *detail);
void ms_blocked(struct cs_membership *m, const char *why);
bool ms_peer_live(const struct cs_membership *m, int i);
unsigned ms_reachable(const struct cs_membership *m);
bool ms_primary_alive(const struct cs_membership *m);
bool ms_lease_held(const struct cs_membership *m, int candidate);
void ms_send_msg(struct cs_membership *m, int peer, const struct cs_msg *msg);
void ms_broadcast(struct cs_membership *m, const struct cs_msg *msg);
void ms_change_role(struct cs_membership *m, enum cs_member_role to, enum cs_mevent_kind ev,
                    const char *why);
int ms_set_term(struct cs_membership *m, uint64_t term, int voted_for);
enum cs_member_role ms_follower_role(const struct cs_membership *m);

/* membership_vote.c */
void ms_send_heartbeats(struct cs_membership *m);
void ms_check_suspects(struct cs_membership *m);
void ms_check_lease(struct cs_membership *m, enum cs_mevent_kind ev);
void ms_maybe_stand(struct cs_membership *m, enum cs_mevent_kind ev);
void ms_prevote_timeout(struct cs_membership *m);
void ms_on_prevote(struct cs_membership *m, int peer, const struct cs_msg_vote *v);
void ms_on_prevote_request(struct cs_membership *m, int peer,
                           const struct cs_msg_vote_request *req);
void ms_on_fence_done(struct cs_membership *m, const struct cs_mevent *ev);
void ms_on_vote_request(struct cs_membership *m, int peer, const struct cs_msg_vote_request *req);
void ms_reply_vote(struct cs_membership *m, int peer, bool granted, uint8_t reason);
void ms_on_heartbeat(struct cs_membership *m, int peer, const struct cs_msg_heartbeat *hb,
                     enum cs_mevent_kind ev);
void ms_on_lease_renew(struct cs_membership *m, int peer, const struct cs_msg_lease_renew *lr,
                       enum cs_mevent_kind ev);
void ms_on_lease_grant(struct cs_membership *m, int peer, const struct cs_msg_lease_grant *g);
int ms_on_switchover(struct cs_membership *m, const struct cs_mevent *ev);
void ms_on_transfer(struct cs_membership *m, const struct cs_mevent *ev);
void ms_check_votes(struct cs_membership *m, enum cs_mevent_kind ev);
uint64_t ms_retry_delay(const struct cs_membership *m);

#endif
