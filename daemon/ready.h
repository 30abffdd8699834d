/* Restore readiness on a backup: every CS_READY_PERIOD_S the daemon runs
 * `checksync restore --check` on its chain (at nice 19), which performs
 * every check a restore makes before it changes anything (the chain's
 * CRCs, binaries and libraries by build-id, kernel ABI, ports, fds), so a
 * backup that could not take over says so before it is needed. */
#ifndef CS_READY_H
#define CS_READY_H

#include <stdbool.h>

#include <jansson.h>

#define CS_READY_PERIOD_S 15

struct event_base;
struct cs_ready;

/* changed runs when the answer changes (and the first time); reason is
 * the tool's sentence. */
typedef void cs_ready_changed_fn(void *ctx, bool ready, const char *reason);

int cs_ready_new(struct event_base *base, const char *tool, const char *chain_dir,
                 cs_ready_changed_fn *changed, void *ctx, struct cs_ready **out);
void cs_ready_free(struct cs_ready *r);
/* Checks run only while enabled (a backup that holds a chain). */
void cs_ready_enable(struct cs_ready *r, bool on);
json_t *cs_ready_status(const struct cs_ready *r);

#endif
