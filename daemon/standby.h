/* The warm standby of a backup (issue 13): one `checksync standby --dir
 * CHAIN --control-fd 3` child that keeps the app rebuilt from the newest
 * generation of the chain, frozen, and applies each newer generation as it
 * arrives. The daemon talks to it over a socketpair, one line per message
 * (docs/dataplane.md, "Warm standby"). On promotion the tool applies what
 * is pending and lets the app run; the data plane then hands the tool to
 * app.c (cs_app_adopt), so the promoted app is supervised exactly like a
 * restored one.
 *
 * Which path a failover takes is decided by cs_failover_path, a pure
 * function of what the standby reported, so it is unit-tested alone. */
#ifndef CS_STANDBY_H
#define CS_STANDBY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct event_base;
struct cs_standby;

enum cs_standby_state {
	CS_STANDBY_OFF,       /* none runs here (why says why) */
	CS_STANDBY_BUILDING,  /* the tool runs and rebuilds the app */
	CS_STANDBY_READY,     /* it equals one complete generation */
	CS_STANDBY_APPLYING,  /* it applies a newer generation */
	CS_STANDBY_PROMOTING, /* promote was sent; the answer is awaited */
	CS_STANDBY_FAILED,    /* the tool failed; restarted after a backoff */
};
const char *cs_standby_state_name(enum cs_standby_state s);

/* A standby is not promoted when it lags the chain by more than this: a
 * generation that has waited that long points to a stuck tool, and a cold
 * restore's duration is known. */
#define CS_STANDBY_BEHIND_MS 5000

/* What a failover decision looks at. */
struct cs_standby_view {
	enum cs_standby_state state;
	const char *why;     /* the sentence of OFF (why not) and FAILED (what failed) */
	uint64_t generation; /* what the standby holds */
	uint64_t chain_newest;
	uint64_t behind_ms; /* how long the chain has held a generation it lacks */
	bool same_chain;    /* the chain it was built from is still the chain */
};

enum cs_failover_path { CS_PATH_STANDBY, CS_PATH_COLD };
const char *cs_failover_path_name(enum cs_failover_path p);
/* The path a restore takes now; for COLD the reason, "off: ...",
 * "building: ...", "behind: ...", "failed: ..." in why. */
enum cs_failover_path cs_failover_path(const struct cs_standby_view *v, char *why, size_t cap);

struct cs_standby_params {
	const char *tool;      /* the checksync binary */
	const char *chain_dir; /* its --dir */
	char *const *env;      /* the app's "KEY=VALUE" additions, NULL-terminated */
};

int cs_standby_new(struct event_base *base, const struct cs_standby_params *p,
                   struct cs_standby **out);
void cs_standby_free(struct cs_standby *s); /* kills the tool first */

/* What the data plane wants on this node now. */
enum cs_standby_wish {
	CS_STANDBY_NONE, /* no standby: the tool is killed */
	/* Keep the one that runs, start none: the chain is of another term
	 * than the primary's and is about to be replaced (a node rejoining
	 * with its old chain would build a standby only to kill it), or an
	 * election is under way (the standby is needed in a moment). */
	CS_STANDBY_KEEP,
	CS_STANDBY_RUN, /* one runs: started at once, or after the backoff */
};

/* Called on every tick of the data plane. why: the sentence shown while
 * no standby runs. A chain replaced by another lineage (store.c moved it
 * aside) kills the tool, and RUN starts a new one on the new chain.
 * chain_newest: the chain's newest generation. */
void cs_standby_want(struct cs_standby *s, enum cs_standby_wish wish, uint64_t chain_newest,
                     const char *why);
/* Kills the tool (synchronously: nothing of it is left when it returns). */
void cs_standby_stop(struct cs_standby *s, const char *why);

/* The decision's input, now. */
void cs_standby_view(struct cs_standby *s, struct cs_standby_view *out);

/* The promoted tool, handed over: the caller owns pid (the daemon's
 * child), pidfd and control_fd from here on. */
struct cs_standby_handover {
	pid_t pid;
	int pidfd, control_fd;
	uint64_t generation; /* the generation the app resumed from */
	uint64_t ms;         /* the tool's own time for the promotion */
};
/* err 0: h is the promoted tool. Otherwise the standby is gone (killed if
 * it still ran) and why says what happened ("refused: SENTENCE" when the
 * tool answered error, "failed: ..." when it died or did not answer). */
typedef void cs_standby_promoted_fn(void *arg, int err, const struct cs_standby_handover *h,
                                    const char *why);
/* Sends promote next_generation=N. done runs exactly once, later, unless
 * cs_standby_stop or cs_standby_free come first. Returns 0, or -EAGAIN
 * when no standby is ready or applying (done never runs). */
int cs_standby_promote(struct cs_standby *s, uint64_t next_generation, cs_standby_promoted_fn *done,
                       void *arg);

/* {state, why, generation, rss_bytes, applied, last_apply_ms, pid, ...} */
json_t *cs_standby_status(const struct cs_standby *s);
/* Durations of the applies the tool reported (cs_hist_json's form). */
json_t *cs_standby_apply_json(const struct cs_standby *s);

#endif
