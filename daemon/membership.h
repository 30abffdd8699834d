/* The membership state machine: roles, terms, votes, the primary's lease.
 *
 * No sockets, no clocks, no files: events come in with the current time
 * (milliseconds of a monotonic clock), and everything the machine wants
 * done goes out through the callbacks in struct cs_membership_ops (persist
 * the term, send a message, run the fence hook, report a role change). The
 * daemon drives it from libevent; the unit tests drive it by hand.
 * docs/cluster.md explains the rules and why they are safe. */
#ifndef CS_MEMBERSHIP_H
#define CS_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

/* The roles of this node. On the wire only primary, backup and witness
 * exist (cs_member_role_wire); the others travel as CS_ROLE_NONE. */
enum cs_member_role {
	CS_MROLE_INIT,      /* before the start event */
	CS_MROLE_BACKUP,    /* member that follows a primary and may promote */
	CS_MROLE_CANDIDATE, /* member asking for votes (or fencing its peer) in a new term */
	CS_MROLE_PRIMARY,   /* member that holds the lease of its term */
	CS_MROLE_FENCED,    /* former primary that lost its lease: stopped, waits */
	CS_MROLE_WITNESS,   /* votes, runs no app, never promotes */
	CS_MROLE__COUNT
};
const char *cs_member_role_name(enum cs_member_role role);
uint8_t cs_member_role_wire(enum cs_member_role role);

enum cs_mevent_kind {
	CS_MEV_START,           /* the daemon is up */
	CS_MEV_TICK,            /* time passed (the daemon ticks every few ms) */
	CS_MEV_PEER_UP,         /* authenticated link to .peer is established */
	CS_MEV_PEER_DOWN,       /* link to .peer closed */
	CS_MEV_HEARTBEAT,       /* .msg is a HEARTBEAT from .peer */
	CS_MEV_LEASE_RENEW,     /* .msg is a LEASE_RENEW from .peer */
	CS_MEV_LEASE_GRANT,     /* .msg is a LEASE_GRANT from .peer */
	CS_MEV_VOTE_REQUEST,    /* .msg is a VOTE_REQUEST from .peer */
	CS_MEV_VOTE,            /* .msg is a VOTE from .peer */
	CS_MEV_TRANSFER,        /* .peer (the primary of .term) hands the role to .target */
	CS_MEV_FENCE_DONE,      /* the fence hook for .peer in .term finished, .ok */
	CS_MEV_SWITCHOVER,      /* operator: hand the primary role to .target (-1: any) */
	CS_MEV_PREVOTE_REQUEST, /* .msg is a PREVOTE_REQUEST: would you vote for me? */
	CS_MEV_PREVOTE,         /* .msg is a PREVOTE: the answer to ours */
	CS_MEV__COUNT
};
const char *cs_mevent_name(enum cs_mevent_kind kind);

struct cs_mevent {
	enum cs_mevent_kind kind;
	uint64_t now_ms;
	int peer;                 /* index into the peer list, -1 if none */
	const struct cs_msg *msg; /* the message events */
	uint64_t term;            /* TRANSFER, FENCE_DONE */
	int target;               /* TRANSFER, SWITCHOVER */
	bool ok;                  /* FENCE_DONE */
};

/* Notes: things worth a journal event that are not role changes. */
enum cs_mnote {
	CS_MNOTE_TERM_CHANGED,   /* term moved from .old to .term */
	CS_MNOTE_SUSPECTED,      /* no heartbeat from .peer for timeout_ms */
	CS_MNOTE_LEASE_LOST,     /* primary could not renew its lease in time */
	CS_MNOTE_STALE_TERM,     /* a message of an older term from .peer was refused */
	CS_MNOTE_BLOCKED,        /* a promotion waits or was refused (.detail) */
	CS_MNOTE_PERSIST_FAILED, /* the term could not be written: nothing was sent */
	CS_MNOTE_SWITCHOVER,     /* handing the primary role to .peer */
	CS_MNOTE__COUNT
};

struct cs_mnote_info {
	enum cs_mnote what;
	int peer; /* -1 if none */
	uint64_t term, old_term;
	const char *detail; /* NULL or a sentence */
	int err;            /* PERSIST_FAILED: negative errno */
};

struct cs_membership_ops {
	/* Make (term, voted_for) durable. voted_for is a peer index or -1.
	 * Returns 0 or a negative errno; on failure the machine keeps its
	 * old term and vote and sends nothing that depends on them. */
	int (*persist)(void *ctx, uint64_t term, int voted_for);
	/* Queue m for peer (never self). Dropped if the link is down. */
	void (*send)(void *ctx, int peer, const struct cs_msg *m);
	/* The role changed; the machine's state is already the new one.
	 * Leaving primary must stop the app before this returns (fencing). */
	void (*role_changed)(void *ctx, enum cs_member_role from, enum cs_member_role to,
	                     enum cs_mevent_kind ev, const char *why);
	/* Two voters only: run the fence hook against peer for term; the
	 * result comes back as CS_MEV_FENCE_DONE. */
	void (*fence_peer)(void *ctx, int peer, uint64_t term);
	void (*note)(void *ctx, const struct cs_mnote_info *n);
	/* Switchover only: send the peers the hand-over (the daemon encodes
	 * it as a CONTROL_REQUEST). */
	void (*send_transfer)(void *ctx, int peer, uint64_t term, int target);
	/* Pre-votes (docs/cluster.md) go through send as PREVOTE_REQUEST and
	 * PREVOTE messages; nothing is persisted for either. */
};

struct cs_membership_peer {
	const char *name;
	bool witness;
};

struct cs_membership_params {
	const struct cs_membership_peer *peers; /* every voter, self included, config order */
	size_t n_peers;                         /* 1..64 */
	int self;                               /* index of this node */
	unsigned interval_ms;                   /* heartbeat period */
	unsigned timeout_ms; /* silence before a peer is suspected; lease length */
	unsigned drift_ms;   /* clock-drift margin */
	uint64_t term;       /* durable term and vote at start */
	int voted_for;       /* -1: none */
};

struct cs_membership;

int cs_membership_new(const struct cs_membership_params *p, const struct cs_membership_ops *ops,
                      void *ctx, struct cs_membership **out);
void cs_membership_free(struct cs_membership *m);

/* The state machine. Returns 0, or -EINVAL for a malformed event, or
 * (SWITCHOVER) -EPERM when this node is not the primary / -EHOSTUNREACH
 * when no suitable target is up. */
int cs_membership_handle(struct cs_membership *m, const struct cs_mevent *ev);

/* The data plane's newest durable generation on this node (0: none); it
 * calls this whenever that changes. Announced in heartbeats, votes and
 * vote requests: a voter whose own is newer refuses a candidate, and a
 * backup does not stand while a reachable backup holds a newer one
 * (docs/cluster.md, rule 8). A witness has none: it keeps 0. */
void cs_membership_set_durable(struct cs_membership *m, uint64_t generation);
/* The last durable generation peer announced (0 if unknown); self: ours. */
uint64_t cs_membership_peer_durable(const struct cs_membership *m, int peer);

/* Heartbeat timing can change on SIGHUP. */
void cs_membership_set_timing(struct cs_membership *m, unsigned interval_ms, unsigned timeout_ms,
                              unsigned drift_ms);

/* Read-only views for status, tests and the journal. */
enum cs_member_role cs_membership_role(const struct cs_membership *m);
uint64_t cs_membership_term(const struct cs_membership *m);
int cs_membership_primary(const struct cs_membership *m); /* peer index, -1 unknown */
size_t cs_membership_n_peers(const struct cs_membership *m);
const char *cs_membership_peer_name(const struct cs_membership *m, int peer);
/* Primary: its lease left. Others: how long they still honour the
 * primary's lease (no vote for anyone else before that). 0 if none. */
uint64_t cs_membership_lease_remaining(const struct cs_membership *m, uint64_t now_ms);

enum cs_peer_state { CS_PEER_SELF, CS_PEER_DOWN, CS_PEER_UP, CS_PEER_SUSPECTED };
const char *cs_peer_state_name(enum cs_peer_state s);
enum cs_peer_state cs_membership_peer_state(const struct cs_membership *m, int peer,
                                            uint64_t now_ms);
/* Milliseconds since the last message of peer, -1 if never. */
int64_t cs_membership_peer_silence(const struct cs_membership *m, int peer, uint64_t now_ms);
int cs_membership_peer_index(const struct cs_membership *m, const char *name, size_t len);

#endif
