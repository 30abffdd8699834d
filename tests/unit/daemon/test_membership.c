/* The membership state machine in a simulated cluster: perfect clocks, a
 * message queue with latency, links that can be cut and nodes that can be
 * killed and restarted from their durable term. After every step the
 * safety rules are checked: at most one primary per term, ever, and at
 * most one live primary at any instant. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership.h"

#define MAXN     5
#define QMAX     8192
#define STEP     5 /* ms per simulation step */
#define LATENCY  3 /* ms per message */
#define INTERVAL 50
#define TIMEOUT  500
#define DRIFT    100

struct sim;

struct node {
	struct sim *s;
	int id;
	double rate; /* this node's clock runs at rate x real time */
	struct cs_membership *m;
	bool alive;
	uint64_t disk_term; /* what persist() made durable */
	int disk_vote;
	bool persist_fails;
	bool fence_pending;
	int fence_ok; /* result the fence hook will report */
	uint64_t fence_term, fence_at;
	int fence_calls;
	int blocked_notes;
	int candidacies;                 /* times it became a candidate */
	uint64_t fenced_at, promoted_at; /* last time it became fenced / primary */
};

enum qkind { Q_MSG, Q_TRANSFER };

struct qmsg {
	int from, to;
	uint64_t at;
	enum qkind kind;
	uint64_t term;
	int target;
	struct cs_msg msg;
};

struct sim {
	struct node n[MAXN];
	size_t count;
	struct cs_membership_peer peers[MAXN];
	uint64_t now;
	bool cut[MAXN][MAXN];
	uint64_t slow[MAXN][MAXN]; /* ms added to LATENCY from a to b */
	struct qmsg q[QMAX];
	size_t nq;
	int primary_of_term[1000]; /* -1: nobody yet */
	unsigned seed;
};

static bool connected(const struct sim *s, int a, int b)
{
	return s->n[a].alive && s->n[b].alive && !s->cut[a][b] && !s->cut[b][a];
}

static int op_persist(void *ctx, uint64_t term, int voted_for)
{
	struct node *n = ctx;

	if (n->persist_fails)
		return -EIO;
	assert(term >= n->disk_term); /* terms never go back on disk */
	n->disk_term = term;
	n->disk_vote = voted_for;
	return 0;
}

static void enqueue(struct node *n, int peer, struct qmsg q)
{
	struct sim *s = n->s;

	if (!connected(s, n->id, peer))
		return;
	assert(s->nq < QMAX);
	q.from = n->id;
	q.to = peer;
	q.at = s->now + LATENCY + s->slow[n->id][peer];
	s->q[s->nq++] = q;
}

static void op_send(void *ctx, int peer, const struct cs_msg *m)
{
	enqueue(ctx, peer, (struct qmsg){.kind = Q_MSG, .msg = *m});
}

static void op_transfer(void *ctx, int peer, uint64_t term, int target)
{
	enqueue(ctx, peer, (struct qmsg){.kind = Q_TRANSFER, .term = term, .target = target});
}

static void op_role(void *ctx, enum cs_member_role from, enum cs_member_role to,
                    enum cs_mevent_kind ev, const char *why)
{
	struct node *n = ctx;
	struct sim *s = n->s;
	uint64_t term = cs_membership_term(n->m);

	(void)from, (void)ev, (void)why;
	if (to == CS_MROLE_FENCED)
		n->fenced_at = s->now;
	if (to == CS_MROLE_CANDIDATE)
		n->candidacies++;
	if (to != CS_MROLE_PRIMARY)
		return;
	n->promoted_at = s->now;
	/* Rule: one primary per term, ever, and its term is durable. */
	assert(term < 1000);
	assert(n->disk_term == term);
	if (s->primary_of_term[term] != -1 && s->primary_of_term[term] != n->id) {
		fprintf(stderr, "two primaries in term %llu: %d and %d\n", (unsigned long long)term,
		        s->primary_of_term[term], n->id);
		abort();
	}
	s->primary_of_term[term] = n->id;
}

static void op_fence(void *ctx, int peer, uint64_t term)
{
	struct node *n = ctx;

	(void)peer;
	n->fence_pending = true;
	n->fence_term = term;
	n->fence_at = n->s->now + 50;
	n->fence_calls++;
}

static void op_note(void *ctx, const struct cs_mnote_info *info)
{
	struct node *n = ctx;

	if (info->what == CS_MNOTE_BLOCKED)
		n->blocked_notes++;
}

static const struct cs_membership_ops ops = {
    .persist = op_persist,
    .send = op_send,
    .role_changed = op_role,
    .fence_peer = op_fence,
    .note = op_note,
    .send_transfer = op_transfer,
};

static void feed(struct node *n, struct cs_mevent ev)
{
	ev.now_ms = (uint64_t)((double)n->s->now * n->rate);
	assert(cs_membership_handle(n->m, &ev) == 0 || ev.kind == CS_MEV_SWITCHOVER);
}

static void boot(struct sim *s, int i)
{
	struct node *n = &s->n[i];
	struct cs_membership_params p = {.peers = s->peers,
	                                 .n_peers = s->count,
	                                 .self = i,
	                                 .interval_ms = INTERVAL,
	                                 .timeout_ms = TIMEOUT,
	                                 .drift_ms = DRIFT,
	                                 .term = n->disk_term,
	                                 .voted_for = n->disk_vote};

	cs_membership_free(n->m);
	assert(cs_membership_new(&p, &ops, n, &n->m) == 0);
	n->alive = true;
	n->fence_pending = false;
	feed(n, (struct cs_mevent){.kind = CS_MEV_START, .peer = -1});
}

/* Link events on both ends for every pair whose connectivity changed. */
static void relink(struct sim *s, bool before[MAXN][MAXN])
{
	for (size_t a = 0; a < s->count; a++)
		for (size_t b = 0; b < s->count; b++) {
			bool now = a != b && connected(s, (int)a, (int)b);

			if (a == b || now == before[a][b] || !s->n[a].alive)
				continue;
			feed(&s->n[a],
			     (struct cs_mevent){.kind = now ? CS_MEV_PEER_UP : CS_MEV_PEER_DOWN,
			                        .peer = (int)b});
		}
}

static void snapshot(const struct sim *s, bool out[MAXN][MAXN])
{
	for (size_t a = 0; a < s->count; a++)
		for (size_t b = 0; b < s->count; b++)
			out[a][b] = a != b && connected(s, (int)a, (int)b);
}

static void set_cut(struct sim *s, int a, int b, bool cut)
{
	bool before[MAXN][MAXN];

	snapshot(s, before);
	s->cut[a][b] = s->cut[b][a] = cut;
	relink(s, before);
}

static void isolate(struct sim *s, int a, bool cut)
{
	for (size_t b = 0; b < s->count; b++)
		if ((int)b != a)
			set_cut(s, a, (int)b, cut);
}

static void set_alive(struct sim *s, int i, bool alive)
{
	bool before[MAXN][MAXN];

	snapshot(s, before);
	if (alive)
		boot(s, i);
	else
		s->n[i].alive = false;
	relink(s, before);
}

static struct cs_mevent message_event(const struct qmsg *q)
{
	static const struct {
		uint16_t type;
		enum cs_mevent_kind kind;
	} map[] = {
	    {CS_MSG_HEARTBEAT, CS_MEV_HEARTBEAT},
	    {CS_MSG_LEASE_RENEW, CS_MEV_LEASE_RENEW},
	    {CS_MSG_LEASE_GRANT, CS_MEV_LEASE_GRANT},
	    {CS_MSG_VOTE_REQUEST, CS_MEV_VOTE_REQUEST},
	    {CS_MSG_VOTE, CS_MEV_VOTE},
	    {CS_MSG_PREVOTE_REQUEST, CS_MEV_PREVOTE_REQUEST},
	    {CS_MSG_PREVOTE, CS_MEV_PREVOTE},
	};

	if (q->kind == Q_TRANSFER)
		return (struct cs_mevent){
		    .kind = CS_MEV_TRANSFER, .peer = q->from, .term = q->term, .target = q->target};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].type == q->msg.type)
			return (struct cs_mevent){
			    .kind = map[i].kind, .peer = q->from, .msg = &q->msg};
	abort();
}

static void deliver(struct sim *s)
{
	size_t keep = 0;

	for (size_t i = 0; i < s->nq; i++) {
		struct qmsg q = s->q[i];

		if (q.at > s->now) {
			s->q[keep++] = q;
			continue;
		}
		if (!connected(s, q.from, q.to))
			continue;
		/* feed() may enqueue: q is a copy, and the queue grows at its end */
		feed(&s->n[q.to], message_event(&q));
	}
	/* Messages queued by feed() went to the end and were kept by the loop. */
	s->nq = keep;
}

static void check_instant(const struct sim *s)
{
	int primaries = 0;

	for (size_t i = 0; i < s->count; i++)
		primaries += s->n[i].alive && cs_membership_role(s->n[i].m) == CS_MROLE_PRIMARY;
	if (primaries > 1) {
		fprintf(stderr, "t=%llu: %d live primaries\n", (unsigned long long)s->now,
		        primaries);
		abort();
	}
}

static void step(struct sim *s)
{
	s->now += STEP;
	for (size_t i = 0; i < s->count; i++) {
		struct node *n = &s->n[i];

		if (!n->alive)
			continue;
		feed(n, (struct cs_mevent){.kind = CS_MEV_TICK, .peer = -1});
		if (n->fence_pending && s->now >= n->fence_at) {
			n->fence_pending = false;
			/* A fence hook that succeeds has made sure the peer is down. */
			if (n->fence_ok && s->n[n->id == 0 ? 1 : 0].alive)
				set_alive(s, n->id == 0 ? 1 : 0, false);
			feed(n, (struct cs_mevent){.kind = CS_MEV_FENCE_DONE,
			                           .peer = n->id == 0 ? 1 : 0,
			                           .term = n->fence_term,
			                           .ok = n->fence_ok});
		}
	}
	check_instant(s);
	deliver(s);
	check_instant(s);
}

static void sim_init(struct sim *s, const char *const *names, const bool *witness, size_t count)
{
	memset(s, 0, sizeof(*s));
	s->count = count;
	s->now = 1000;
	for (size_t i = 0; i < count; i++) {
		s->peers[i] = (struct cs_membership_peer){.name = names[i], .witness = witness[i]};
		s->n[i] = (struct node){
		    .s = s, .id = (int)i, .disk_vote = -1, .fence_ok = 1, .rate = 1.0};
	}
	for (size_t t = 0; t < 1000; t++)
		s->primary_of_term[t] = -1;
	for (size_t i = 0; i < count; i++)
		set_alive(s, (int)i, true);
}

static void sim_free(struct sim *s)
{
	for (size_t i = 0; i < s->count; i++)
		cs_membership_free(s->n[i].m);
}

static void run(struct sim *s, uint64_t ms)
{
	for (uint64_t end = s->now + ms; s->now < end;)
		step(s);
}

/* Runs until node i is primary; returns the time it took, or aborts. */
static uint64_t run_until_primary(struct sim *s, int i, uint64_t limit)
{
	uint64_t start = s->now;

	while (cs_membership_role(s->n[i].m) != CS_MROLE_PRIMARY) {
		if (s->now - start > limit) {
			fprintf(stderr, "node %d not primary after %llu ms (role %s)\n", i,
			        (unsigned long long)limit,
			        cs_member_role_name(cs_membership_role(s->n[i].m)));
			abort();
		}
		step(s);
	}
	return s->now - start;
}

static enum cs_member_role role(const struct sim *s, int i)
{
	return cs_membership_role(s->n[i].m);
}

static const char *const abc[] = {"alpha", "beta", "gamma"};
static const bool abc_witness[] = {false, false, true};

static void test_converges_to_preferred(void)
{
	struct sim s;

	sim_init(&s, abc, abc_witness, 3);
	run_until_primary(&s, 0, 3 * TIMEOUT);
	run(&s, 2000);
	assert(role(&s, 0) == CS_MROLE_PRIMARY);
	assert(role(&s, 1) == CS_MROLE_BACKUP);
	assert(role(&s, 2) == CS_MROLE_WITNESS);
	assert(cs_membership_term(s.n[0].m) == 1);
	assert(cs_membership_primary(s.n[1].m) == 0 && cs_membership_primary(s.n[2].m) == 0);
	assert(cs_membership_lease_remaining(s.n[0].m, s.now) > TIMEOUT - 2 * INTERVAL);
	sim_free(&s);
}

static void test_first_member_is_preferred_even_after_a_witness(void)
{
	static const char *const names[] = {"wit", "beta", "alpha"};
	static const bool witness[] = {true, false, false};
	struct sim s;

	sim_init(&s, names, witness, 3);
	run_until_primary(&s, 1, 3 * TIMEOUT);
	run(&s, 2000);
	assert(role(&s, 0) == CS_MROLE_WITNESS && role(&s, 1) == CS_MROLE_PRIMARY);
	assert(role(&s, 2) == CS_MROLE_BACKUP);
	sim_free(&s);
}

static void test_killed_primary_is_replaced_after_its_lease(void)
{
	struct sim s;
	uint64_t took;

	sim_init(&s, abc, abc_witness, 3);
	run_until_primary(&s, 0, 3 * TIMEOUT);
	run(&s, 1000);
	set_alive(&s, 0, false);
	took = run_until_primary(&s, 1, 4 * TIMEOUT);
	/* Not before the lease (timeout) plus the drift margin ran out, and
	 * soon after: the dead primary (rank 0) does not stagger beta. */
	assert(took >= TIMEOUT + DRIFT - 2 * INTERVAL);
	assert(took <= TIMEOUT + DRIFT + 4 * LATENCY + 4 * STEP);
	assert(cs_membership_term(s.n[1].m) == 2);
	/* The old primary restarts from its durable term and follows. */
	set_alive(&s, 0, true);
	run(&s, 2000);
	assert(role(&s, 0) == CS_MROLE_BACKUP && role(&s, 1) == CS_MROLE_PRIMARY);
	sim_free(&s);
}

/* The witness hears the primary's renewals 20 ms after the backup does,
 * so it still holds its promise when the backup first asks: the backup asks
 * again as soon as that promise runs out (the voter says when), not after
 * the pre-vote timeout and its back-off (2 + 2 intervals). */
static void test_backup_asks_a_slow_witness_again_when_its_promise_ends(void)
{
	struct sim s;
	uint64_t took;

	sim_init(&s, abc, abc_witness, 3);
	s.slow[0][2] = 20;
	run_until_primary(&s, 0, 3 * TIMEOUT);
	run(&s, 1000);
	set_alive(&s, 0, false);
	took = run_until_primary(&s, 1, 4 * TIMEOUT);
	/* The backup's own promise: last renewal (up to an interval before the
	 * kill) + timeout + drift; then the witness's 20 ms, message latency
	 * and a few steps of ticks. */
	assert(took >= TIMEOUT + DRIFT - INTERVAL);
	assert(took <= TIMEOUT + DRIFT + 20 + 4 * LATENCY + 4 * STEP);
	assert(cs_membership_term(s.n[1].m) == 2);
	sim_free(&s);
}

static void test_cut_primary_fences_before_backup_promotes(void)
{
	struct sim s;

	sim_init(&s, abc, abc_witness, 3);
	run_until_primary(&s, 0, 3 * TIMEOUT);
	run(&s, 1000);
	isolate(&s, 0, true);
	run_until_primary(&s, 1, 4 * TIMEOUT);
	assert(role(&s, 0) == CS_MROLE_FENCED);
	assert(s.n[0].fenced_at > 0 && s.n[0].fenced_at + DRIFT <= s.n[1].promoted_at);
	/* Cut off, it never stands: no majority reachable. */
	run(&s, 3000);
	assert(role(&s, 0) == CS_MROLE_FENCED && cs_membership_term(s.n[0].m) == 1);
	isolate(&s, 0, false);
	run(&s, 2000);
	assert(role(&s, 0) == CS_MROLE_BACKUP && role(&s, 1) == CS_MROLE_PRIMARY);
	assert(cs_membership_term(s.n[0].m) == cs_membership_term(s.n[1].m));
	sim_free(&s);
}

static void test_witness_never_promotes(void)
{
	struct sim s;

	sim_init(&s, abc, abc_witness, 3);
	run_until_primary(&s, 0, 3 * TIMEOUT);
	set_alive(&s, 0, false);
	set_alive(&s, 1, false);
	run(&s, 5000);
	assert(role(&s, 2) == CS_MROLE_WITNESS);
	sim_free(&s);
}

static void test_restarted_voter_keeps_its_promise(void)
{
	struct sim s;

	/* alpha and beta cannot see each other; gamma holds alpha's lease. */
	sim_init(&s, abc, abc_witness, 3);
	run_until_primary(&s, 0, 3 * TIMEOUT);
	run(&s, 500);
	set_cut(&s, 0, 1, true);
	run(&s, 2000);
	assert(role(&s, 0) == CS_MROLE_PRIMARY && role(&s, 1) != CS_MROLE_PRIMARY);
	/* gamma restarts and forgets its promise: it must not vote for beta
	 * while alpha's lease may still run (check_instant would abort). */
	set_alive(&s, 2, false);
	set_alive(&s, 2, true);
	run(&s, 3000);
	assert(role(&s, 0) == CS_MROLE_PRIMARY && role(&s, 1) != CS_MROLE_PRIMARY);
	sim_free(&s);
}

static void test_half_cut_backup_does_not_depose_the_primary(void)
{
	struct sim s;
	uint64_t term;

	sim_init(&s, abc, abc_witness, 3);
	run_until_primary(&s, 0, 3 * TIMEOUT);
	run(&s, 500);
	term = cs_membership_term(s.n[0].m);
	/* beta sees gamma but not alpha: the pre-vote fails, terms stay put. */
	set_cut(&s, 0, 1, true);
	run(&s, 5000);
	assert(role(&s, 0) == CS_MROLE_PRIMARY);
	assert(cs_membership_term(s.n[0].m) == term && cs_membership_term(s.n[1].m) == term);
	set_cut(&s, 0, 1, false);
	run(&s, 1000);
	assert(role(&s, 0) == CS_MROLE_PRIMARY && role(&s, 1) == CS_MROLE_BACKUP);
	assert(cs_membership_primary(s.n[1].m) == 0);
	sim_free(&s);
}

static const char *const ab[] = {"alpha", "beta"};
static const bool ab_witness[] = {false, false};

static void test_two_voters_wait_for_the_fence_hook(void)
{
	struct sim s;

	sim_init(&s, ab, ab_witness, 2);
	run_until_primary(&s, 0, 3 * TIMEOUT);
	run(&s, 500);
	assert(s.n[0].fence_calls == 0 && s.n[1].fence_calls == 0);
	s.n[1].fence_ok = 0;
	set_alive(&s, 0, false);
	run(&s, 5000);
	/* The hook ran (more than once: it is retried) and failed every time. */
	assert(s.n[1].fence_calls >= 2);
	assert(role(&s, 1) != CS_MROLE_PRIMARY);
	assert(s.n[1].blocked_notes > 0);
	s.n[1].fence_ok = 1;
	run_until_primary(&s, 1, 4 * TIMEOUT);
	/* Alone, it keeps its lease: the fenced peer stands in for a grant. */
	run(&s, 3000);
	assert(role(&s, 1) == CS_MROLE_PRIMARY);
	set_alive(&s, 0, true);
	run(&s, 2000);
	assert(role(&s, 0) == CS_MROLE_BACKUP && role(&s, 1) == CS_MROLE_PRIMARY);
	sim_free(&s);
}

static void test_switchover_hands_over_in_a_new_term(void)
{
	struct sim s;
	struct cs_mevent ev = {.kind = CS_MEV_SWITCHOVER, .peer = -1, .target = 2};
	uint64_t term;

	sim_init(&s, abc, abc_witness, 3);
	run_until_primary(&s, 0, 3 * TIMEOUT);
	run(&s, 500);
	term = cs_membership_term(s.n[0].m);
	ev.now_ms = s.now;
	assert(cs_membership_handle(s.n[1].m, &ev) == -EPERM);        /* not the primary */
	assert(cs_membership_handle(s.n[0].m, &ev) == -EHOSTUNREACH); /* a witness */
	ev.target = 1;
	assert(cs_membership_handle(s.n[0].m, &ev) == 0);
	assert(role(&s, 0) == CS_MROLE_BACKUP);
	/* Clean: no waiting for the lease to run out. */
	assert(run_until_primary(&s, 1, TIMEOUT) < TIMEOUT);
	assert(cs_membership_term(s.n[1].m) == term + 1);
	run(&s, 2000);
	assert(role(&s, 0) == CS_MROLE_BACKUP && role(&s, 1) == CS_MROLE_PRIMARY);
	sim_free(&s);
}

static void test_unwritable_term_sends_no_vote(void)
{
	struct sim s;

	sim_init(&s, abc, abc_witness, 3);
	s.n[1].persist_fails = true;
	s.n[2].persist_fails = true;
	run(&s, 3000);
	/* Voters that cannot make their vote durable never grant it. */
	assert(role(&s, 0) != CS_MROLE_PRIMARY);
	assert(cs_membership_term(s.n[1].m) == 0 && cs_membership_term(s.n[2].m) == 0);
	s.n[1].persist_fails = false;
	s.n[2].persist_fails = false;
	run_until_primary(&s, 0, 4 * TIMEOUT);
	sim_free(&s);
}

static void test_stale_and_newer_terms(void)
{
	struct sim s;
	struct cs_msg hb = {.type = CS_MSG_HEARTBEAT};

	sim_init(&s, abc, abc_witness, 3);
	run_until_primary(&s, 0, 3 * TIMEOUT);
	run(&s, 200);
	assert(cs_membership_primary(s.n[1].m) == 0);
	/* An old primary's heartbeat changes nothing. */
	hb.heartbeat = (struct cs_msg_heartbeat){.term = 0, .role = CS_ROLE_PRIMARY};
	feed(&s.n[1], (struct cs_mevent){.kind = CS_MEV_HEARTBEAT, .peer = 2, .msg = &hb});
	assert(cs_membership_primary(s.n[1].m) == 0);
	/* A newer term makes the primary step down at once. */
	hb.heartbeat = (struct cs_msg_heartbeat){.term = 7, .role = CS_ROLE_BACKUP};
	feed(&s.n[0], (struct cs_mevent){.kind = CS_MEV_HEARTBEAT, .peer = 1, .msg = &hb});
	assert(role(&s, 0) == CS_MROLE_BACKUP && cs_membership_term(s.n[0].m) == 7);
	assert(s.n[0].disk_term == 7);
	sim_free(&s);
}

/* ---- rule 8: durable generations (docs/cluster.md) ---- */

/* One node driven by hand, its messages captured: for the exact answers. */
struct probe {
	struct cs_membership *m;
	uint64_t term;
	int vote, persists;
	struct cs_msg last; /* the last message sent */
	int last_to;
};

static int probe_persist(void *ctx, uint64_t term, int voted_for)
{
	struct probe *p = ctx;

	p->term = term;
	p->vote = voted_for;
	p->persists++;
	return 0;
}

static void probe_send(void *ctx, int peer, const struct cs_msg *m)
{
	struct probe *p = ctx;

	p->last = *m;
	p->last_to = peer;
}

static const struct cs_membership_ops probe_ops = {.persist = probe_persist, .send = probe_send};

/* alpha, beta (members) and gamma (witness); self is beta or gamma. Its
 * restart quarantine is long over at t = 10 s, and no tick makes it stand. */
static void probe_new(struct probe *p, int self, uint64_t durable)
{
	struct cs_membership_params prm = {.peers = NULL,
	                                   .n_peers = 3,
	                                   .self = self,
	                                   .interval_ms = INTERVAL,
	                                   .timeout_ms = TIMEOUT,
	                                   .drift_ms = DRIFT,
	                                   .voted_for = -1};
	static struct cs_membership_peer peers[3];

	for (int i = 0; i < 3; i++)
		peers[i] = (struct cs_membership_peer){.name = abc[i], .witness = abc_witness[i]};
	prm.peers = peers;
	memset(p, 0, sizeof(*p));
	p->vote = -1;
	assert(cs_membership_new(&prm, &probe_ops, p, &p->m) == 0);
	assert(cs_membership_handle(p->m, &(struct cs_mevent){.kind = CS_MEV_START, .peer = -1}) ==
	       0);
	cs_membership_set_durable(p->m, durable);
}

/* alpha asks p (with a vote request, or a pre-vote request if pre) for
 * term, announcing durable; returns p's answer. */
static struct cs_msg_vote probe_ask(struct probe *p, bool pre, uint64_t term, uint64_t durable)
{
	struct cs_msg req = {.type = pre ? CS_MSG_PREVOTE_REQUEST : CS_MSG_VOTE_REQUEST};
	struct cs_msg_vote_request r = {
	    .term = term, .durable_generation = durable, .candidate = cs_str_of("alpha")};

	if (pre)
		req.prevote_request = r;
	else
		req.vote_request = r;
	p->last.type = 0;
	assert(cs_membership_handle(p->m, &(struct cs_mevent){.kind = pre ? CS_MEV_PREVOTE_REQUEST
	                                                                  : CS_MEV_VOTE_REQUEST,
	                                                      .now_ms = 10000,
	                                                      .peer = 0,
	                                                      .msg = &req}) == 0);
	assert(p->last_to == 0 && p->last.type == (pre ? CS_MSG_PREVOTE : CS_MSG_VOTE));
	return pre ? p->last.prevote : p->last.vote;
}

static void test_voter_refuses_a_candidate_behind_it(void)
{
	struct probe p;
	struct cs_msg_vote v;

	probe_new(&p, 1, 7);
	/* Pre-vote first: refused, and nothing changes on the voter. */
	v = probe_ask(&p, true, 1, 3);
	assert(!v.granted && v.reason == CS_VOTE_BEHIND && v.durable_generation == 7);
	assert(v.term == 0 && p.persists == 0 && cs_membership_term(p.m) == 0);
	assert(cs_membership_peer_durable(p.m, 0) == 3);
	v = probe_ask(&p, true, 1, 7);
	assert(v.granted && v.reason == CS_VOTE_GRANTED && p.persists == 0);
	/* The vote: the term is adopted, the vote is not given. */
	v = probe_ask(&p, false, 1, 3);
	assert(!v.granted && v.reason == CS_VOTE_BEHIND && v.durable_generation == 7);
	assert(cs_membership_term(p.m) == 1 && p.term == 1 && p.vote == -1);
	/* The same candidate, caught up (equal is enough), gets it. */
	v = probe_ask(&p, false, 1, 7);
	assert(v.granted && p.vote == 0 && cs_membership_peer_durable(p.m, 0) == 7);
	cs_membership_free(p.m);
}

static void test_witness_never_refuses_for_durability(void)
{
	struct probe p;
	struct cs_msg_vote v;

	probe_new(&p, 2, 7); /* a witness holds no generation: ignored */
	assert(cs_membership_peer_durable(p.m, 2) == 0);
	v = probe_ask(&p, true, 1, 0);
	assert(v.granted && v.durable_generation == 0);
	v = probe_ask(&p, false, 1, 0);
	assert(v.granted && p.vote == 0);
	cs_membership_free(p.m);
}

static void test_durable_generations_are_announced(void)
{
	struct sim s;

	sim_init(&s, abc, abc_witness, 3);
	run_until_primary(&s, 0, 3 * TIMEOUT);
	cs_membership_set_durable(s.n[0].m, 42);
	cs_membership_set_durable(s.n[1].m, 17);
	cs_membership_set_durable(s.n[2].m, 99); /* a witness: ignored */
	run(&s, 2 * INTERVAL);
	assert(cs_membership_peer_durable(s.n[1].m, 0) == 42);
	assert(cs_membership_peer_durable(s.n[2].m, 0) == 42);
	assert(cs_membership_peer_durable(s.n[0].m, 1) == 17);
	assert(cs_membership_peer_durable(s.n[0].m, 2) == 0);
	assert(cs_membership_peer_durable(s.n[0].m, 0) == 42); /* self */
	/* The newest announcement wins, even a lower one (a chain set aside). */
	cs_membership_set_durable(s.n[1].m, 0);
	run(&s, 2 * INTERVAL);
	assert(cs_membership_peer_durable(s.n[0].m, 1) == 0);
	sim_free(&s);
}

/* Three members and two witnesses: when the primary dies, the backup with
 * the newest durable generation is promoted and the other never stands
 * while it is reachable; once it is gone too, the other may. */
static void test_most_durable_backup_is_promoted(void)
{
	static const char *const names[] = {"alpha", "beta", "delta", "w1", "w2"};
	static const bool witness[] = {false, false, false, true, true};
	struct sim s;

	sim_init(&s, names, witness, 5);
	run_until_primary(&s, 0, 3 * TIMEOUT);
	cs_membership_set_durable(s.n[0].m, 10);
	cs_membership_set_durable(s.n[1].m, 5);
	cs_membership_set_durable(s.n[2].m, 8);
	run(&s, 500);
	s.n[1].candidacies = s.n[2].candidacies = 0;
	set_alive(&s, 0, false);
	/* beta ranks before delta: without rule 8 it would stand first. */
	run_until_primary(&s, 2, 6 * TIMEOUT);
	assert(s.n[1].candidacies == 0 && role(&s, 1) == CS_MROLE_BACKUP);
	run(&s, 1000);
	assert(role(&s, 2) == CS_MROLE_PRIMARY && s.n[1].candidacies == 0);
	set_alive(&s, 2, false);
	run_until_primary(&s, 1, 6 * TIMEOUT);
	sim_free(&s);
}

/* Random cuts, kills and restarts; the invariants are checked every step.
 * With durables, members also hold random durable generations (rule 8). */
static void test_random_faults(size_t count, unsigned seed, int rounds, double skew, bool durables)
{
	static const char *const names[] = {"n0", "n1", "n2", "n3", "n4"};
	static const bool witness[] = {false, false, true, false, true};
	struct sim s;
	int primaries = 0;

	sim_init(&s, names, witness, count);
	/* Clocks that run fast or slow by up to skew: the drift margin
	 * (DRIFT per TIMEOUT) must cover it. */
	for (size_t i = 0; i < count; i++)
		s.n[i].rate = 1.0 + skew * (i % 3 == 0 ? 1 : i % 3 == 1 ? -1 : 0);
	srand(seed);
	for (int r = 0; r < rounds; r++) {
		int a = rand() % (int)count, b = rand() % (int)count;

		switch (rand() % 4) {
		case 0:
			if (a != b)
				set_cut(&s, a, b, !s.cut[a][b]);
			break;
		case 1:
			set_alive(&s, a, !s.n[a].alive);
			break;
		default:
			break;
		}
		if (durables)
			for (size_t i = 0; i < count; i++)
				if (s.n[i].alive)
					cs_membership_set_durable(s.n[i].m, (uint64_t)(rand() % 4));
		run(&s, (uint64_t)(rand() % 2000));
		/* Heal everything now and then: the cluster must recover. */
		if (r % 10 == 9) {
			for (size_t i = 0; i < count; i++) {
				isolate(&s, (int)i, false);
				if (!s.n[i].alive)
					set_alive(&s, (int)i, true);
			}
			run(&s, 6000);
			for (size_t i = 0; i < count; i++)
				primaries += s.n[i].alive && role(&s, (int)i) == CS_MROLE_PRIMARY;
		}
	}
	assert(primaries == rounds / 10); /* exactly one after every heal */
	sim_free(&s);
}

int main(void)
{
	test_converges_to_preferred();
	test_first_member_is_preferred_even_after_a_witness();
	test_killed_primary_is_replaced_after_its_lease();
	test_backup_asks_a_slow_witness_again_when_its_promise_ends();
	test_cut_primary_fences_before_backup_promotes();
	test_witness_never_promotes();
	test_restarted_voter_keeps_its_promise();
	test_half_cut_backup_does_not_depose_the_primary();
	test_two_voters_wait_for_the_fence_hook();
	test_switchover_hands_over_in_a_new_term();
	test_unwritable_term_sends_no_vote();
	test_stale_and_newer_terms();
	test_voter_refuses_a_candidate_behind_it();
	test_witness_never_refuses_for_durability();
	test_durable_generations_are_announced();
	test_most_durable_backup_is_promoted();
	test_random_faults(3, 1, 60, 0, false);
	test_random_faults(5, 2, 60, 0, false);
	/* 4% fast against 4% slow: 8% of a 500 ms lease is 40 ms < DRIFT. */
	test_random_faults(3, 3, 60, 0.04, false);
	test_random_faults(5, 4, 60, 0.04, false);
	test_random_faults(3, 5, 60, 0.04, true);
	test_random_faults(5, 6, 60, 0.04, true);
	printf("membership: all tests passed\n");
	return 0;
}
