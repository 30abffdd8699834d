/* External hooks: the notify hook (`notify.sh <event> <role> <term> <node>`
 * on every role change) and the fence hook (`fence.sh <peer> <term>`).
 * Hooks run in the background, in their own process group, with stdin
 * from /dev/null; every line they print goes to the journal; one still
 * running after its timeout is killed with its whole group. Notify hooks
 * run one at a time, in order, so a script sees role changes in the order
 * they happened. */
#ifndef CS_HOOKS_H
#define CS_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct cs_hooks;

/* status: the exit code (0..255), 128+N for death by signal N, or a
 * negative errno (-ETIMEDOUT: killed at its timeout; -ENOENT etc.: could
 * not start). */
typedef void (*cs_hook_done)(void *arg, int status, uint64_t duration_ms);

int cs_hooks_new(struct event_base *base, struct cs_hooks **out);
/* Kills running hooks and forgets queued ones; their done callbacks get
 * -ECANCELED. */
void cs_hooks_free(struct cs_hooks *h);

/* Runs argv (argv[0] is the path; NULL-terminated) now, or (serial) after
 * the serial hooks queued before it. name is "notify" or "fence" (journal
 * field CHECKSYNC_HOOK). done may be NULL. Returns 0 or a negative errno. */
int cs_hook_run(struct cs_hooks *h, const char *name, const char *const *argv, unsigned timeout_ms,
                bool serial, cs_hook_done done, void *arg);
/* A done status as words: "exit status 3", "timed out after 5000 ms",
 * "cannot run: No such file or directory". Returns buf. */
const char *cs_hook_status_text(int status, uint64_t took, char *buf, size_t len);
/* Hooks started or queued and not finished yet. */
unsigned cs_hooks_pending(const struct cs_hooks *h);

#endif
