/* The application under checksyncd. It is started by the engine's own tool,
 * `checksync run` (fresh) or `checksync restore` (from the chain), so it
 * gets the same PID, mount and time namespaces and the agent as anywhere
 * else; the tool stays its parent, and this module watches the tool
 * through a pidfd. Stopping is synchronous: when cs_app_stop returns,
 * every process of the app is gone (fencing depends on it). */
#ifndef CS_APP_H
#define CS_APP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct event_base;
struct cs_app;

enum cs_app_state {
	CS_APP_STOPPED,  /* nothing runs */
	CS_APP_STARTING, /* the tool runs; the agent has not answered yet */
	CS_APP_SERVING,  /* the agent answered: the program runs its own code */
};
const char *cs_app_state_name(enum cs_app_state s);

enum cs_app_start { CS_APP_FRESH, CS_APP_RESTORE };

struct cs_app_params {
	const char *tool;      /* the checksync binary */
	const char *chain_dir; /* its --dir */
	char *const *exec;     /* argv of the program, NULL-terminated */
	char *const *env;      /* "KEY=VALUE" added to the environment, NULL-terminated */
	const char *user;      /* NULL: the daemon's */
	const char *workdir;   /* NULL: / */
	unsigned interval_ms;
};

struct cs_app_ops {
	/* The tool exited by itself (wait status); the app is gone. */
	void (*exited)(void *ctx, int wstatus, enum cs_app_start how, uint64_t ran_ms);
	/* The agent answered its first status after a start. */
	void (*serving)(void *ctx, enum cs_app_start how, uint64_t took_ms);
};

int cs_app_new(struct event_base *base, const struct cs_app_params *p, const struct cs_app_ops *ops,
               void *ctx, struct cs_app **out);
void cs_app_free(struct cs_app *a); /* stops it first */

/* Starts the tool. generation_floor: the first generation number the
 * agent may use (the data plane keeps numbers increasing across terms).
 * Returns 0 or a negative errno (logged). */
int cs_app_start(struct cs_app *a, enum cs_app_start how, uint64_t generation_floor);
/* Takes over a tool that already runs the app: `checksync standby` after
 * it answered promoted (standby.c). pid must be the daemon's child; a owns
 * pidfd and keep_fd (the tool's control socket, open until the tool is
 * gone) from here on, and the app is STARTING as after cs_app_start of a
 * restore; started_ms (cs_monotonic_ms) is when the promotion began, for
 * the restore's duration. Returns 0, or -EBUSY when an app runs (keep_fd
 * is closed; the caller kills pid) or a negative errno (the tool killed). */
int cs_app_adopt(struct cs_app *a, pid_t pid, int pidfd, int keep_fd, uint64_t started_ms);
/* Kills every process of the app and waits until they are gone. */
void cs_app_stop(struct cs_app *a, const char *why);

enum cs_app_state cs_app_state(const struct cs_app *a);
/* The status object: state, tool and program pids, how it was started. */
json_t *cs_app_status(const struct cs_app *a);

/* Asks the agent for a checkpoint now; done runs once it is durable in the
 * chain (err 0, generation) or failed (negative errno, the agent's
 * sentence). Returns 0 or -ENOTCONN when the app is not serving. */
typedef void cs_app_checkpoint_fn(void *arg, int err, uint64_t generation, const char *msg);
int cs_app_checkpoint(struct cs_app *a, cs_app_checkpoint_fn *done, void *arg);

/* Asks the agent for its status, whose pause histogram then joins those
 * of the app's earlier processes. False when not asked: not serving, or a
 * request is still out. Call it when checkpoints appeared: the histogram
 * then misses only pauses of a process that died before it was asked. */
bool cs_app_poll_pauses(struct cs_app *a);
/* Every checkpoint pause reported so far (cs_hist_json's form, seconds). */
json_t *cs_app_pauses_json(const struct cs_app *a);

#endif
