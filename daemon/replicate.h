/* Replication, the primary's side: every image that appears in the chain
 * directory goes to every backup over its peer link as CKPT_BEGIN, PAGES
 * and END (docs/protocol.md), read from the file as the link drains, so
 * the primary never holds more than a bounded queue per backup in memory
 * and heartbeats on the same link never wait long.
 *
 * Each backup is served in sessions. A session starts when the link comes
 * up (or after the backup refused something) with the newest full image of
 * the chain, then follows every newer generation in order. A backup that
 * fell behind further than the chain reaches (the compactor folded and
 * removed the deltas it missed) simply starts a new session: the deltas it
 * missed are replaced by a full image. */
#ifndef CS_REPLICATE_H
#define CS_REPLICATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "msg.h"

struct event_base;
struct cs_repl;

struct cs_repl_ops {
	int (*send)(void *ctx, int peer, const struct cs_msg *m);
	size_t (*queued)(void *ctx, int peer);
	/* An acknowledgement moved or a backup's state changed: sync waiters
	 * may be decided now. */
	void (*changed)(void *ctx);
};

struct cs_repl_params {
	const char *chain_dir;
	size_t n_peers;
	const bool *is_backup; /* per peer: a non-witness other than this node */
	const char *const *names;
	uint64_t max_queue_bytes; /* per backup, in the link's queue */
};

int cs_repl_new(struct event_base *base, const struct cs_repl_params *p,
                const struct cs_repl_ops *ops, void *ctx, struct cs_repl **out);
void cs_repl_free(struct cs_repl *r);

/* This node became primary of term (start watching the chain and serving
 * backups) or stopped being primary (stop sending). */
int cs_repl_start(struct cs_repl *r, uint64_t term);
void cs_repl_stop(struct cs_repl *r);

void cs_repl_peer(struct cs_repl *r, int peer, bool up);
void cs_repl_writable(struct cs_repl *r, int peer);
void cs_repl_ack(struct cs_repl *r, int peer, const struct cs_msg_ack *a);
/* The backup refused a transfer (an ERROR it sent): start over later. */
void cs_repl_refused(struct cs_repl *r, int peer, uint32_t code, const char *text);

/* Sync: 1 when every backup that is up has acknowledged generation, 0 when
 * one has not yet, -EHOSTUNREACH (why filled) when none is up. */
int cs_repl_acknowledged(const struct cs_repl *r, uint64_t generation, char *why, size_t cap);

json_t *cs_repl_status(const struct cs_repl *r);
/* Checkpoints the app wrote into the chain while this node was primary,
 * counted as they appear (new generations only), and their bytes. */
void cs_repl_checkpoints(const struct cs_repl *r, uint64_t *ret_images, uint64_t *ret_bytes);
/* The sizes of those images as histograms (bytes): {"base": H, "delta": H}. */
json_t *cs_repl_sizes_json(const struct cs_repl *r);

#endif
