/* The sync socket: where the app's agent waits, in cs_sync(), until the
 * generation it just made durable locally is acknowledged as
 * checkpoint.sync requires (agent/include/cs_agent_abi.h has the
 * protocol: "wait G" -> "ok G" | "error ERRNO SENTENCE"). The server
 * holds the waiters; whoever knows the acknowledgements decides. */
#ifndef CS_SYNCSRV_H
#define CS_SYNCSRV_H

#include <stddef.h>
#include <stdint.h>

#include "histogram.h"

struct event_base;
struct cs_syncsrv;

/* 1: generation is acknowledged; 0: not yet; a negative errno: it cannot
 * be (why filled in, e.g. -EHOSTUNREACH "no backup is up"). */
typedef int cs_sync_decide_fn(void *ctx, uint64_t generation, char *why, size_t cap);

/* Seconds from a waiter's request to its answer, by answer ("ok" or an
 * error). The caller owns it, so it outlives one term's server. */
struct cs_sync_latency {
	struct cs_hist ok, failed;
};

/* Listens on path (a SOCK_SEQPACKET unix socket, mode 0666: the agent
 * runs as the app's user; a waiter learns nothing but acknowledgements).
 * Waiters that are not decided within timeout_ms get ETIMEDOUT. Each
 * answer is observed in latency (NULL: not measured). */
int cs_syncsrv_open(struct event_base *base, const char *path, unsigned timeout_ms,
                    cs_sync_decide_fn *decide, void *ctx, struct cs_sync_latency *latency,
                    struct cs_syncsrv **out);
/* Asks decide again for every waiter (after an ACK or a link change). */
void cs_syncsrv_kick(struct cs_syncsrv *s);
/* Answers every waiter with -err and why, removes the socket file. */
void cs_syncsrv_close(struct cs_syncsrv *s, int err, const char *why);
unsigned cs_syncsrv_waiting(const struct cs_syncsrv *s);

#endif
