/* The checkpoint store of one host: state_dir/chain holds the chain the
 * app restores from (the engine's own format, DIR/gen-N.img), whether the
 * images were written there by the local agent (primary) or received from
 * the primary (backup).
 *
 * Receiving never damages the chain: an image is written as .tmp, checked
 * against the sender's size and SHA-256, and only then renamed into place
 * (after fsync with durability "disk"). A delta is accepted only when its
 * parent is in the chain. A base of another lineage (the chain of a primary
 * of another term) is received beside the chain, in state_dir/incoming,
 * and replaces it only once complete; the old chain is moved to
 * state_dir/stale (the newest keep_stale kept, for inspection).
 *
 * Generation numbers grow across terms (the data plane starts a new
 * primary's numbers at term << CS_STORE_TERM_SHIFT), so the newest
 * generation of any chain is comparable with any other's. */
#ifndef CS_STORE_H
#define CS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "msg.h"

#define CS_STORE_TERM_SHIFT 40

struct event_base;
struct cs_store;

/* One image file of a chain directory, for cs_chain_walk. */
struct cs_chain_entry {
	uint64_t generation;
	uint64_t bytes; /* its size (0 if it vanished meanwhile) */
	bool tmp;       /* gen-N.img.tmp: a writer's unfinished file */
	int dir_fd;     /* of the directory, for unlinkat */
	const char *name;
};
/* Calls fn for every image file (gen-N.img and gen-N.img.tmp) in dir, in
 * directory order, with its size if sizes (a stat per file); a directory
 * that cannot be read has none. */
void cs_chain_walk(const char *dir, bool sizes,
                   void (*fn)(void *arg, const struct cs_chain_entry *e), void *arg);

struct cs_store_params {
	const char *state_dir;
	const char *tool; /* the checksync binary, for compaction */
	bool fsync;       /* durability "disk": fsync before an image counts */
	unsigned keep_stale;
};

/* Creates the directories, removes unfinished .tmp files, reads the
 * chain's newest generation and lineage. Logs and returns a negative errno. */
int cs_store_open(struct event_base *base, const struct cs_store_params *p, struct cs_store **out);
void cs_store_free(struct cs_store *s);

const char *cs_store_chain_dir(const struct cs_store *s);
/* Newest complete generation in the chain, 0 if none. Rescans the
 * directory (the local agent writes into it on a primary). */
uint64_t cs_store_rescan(struct cs_store *s);
uint64_t cs_store_newest(const struct cs_store *s);
/* Bytes of the complete images in the chain. */
uint64_t cs_store_bytes(const struct cs_store *s);
/* The term of the primary whose images the chain holds (0: none). */
uint64_t cs_store_lineage(const struct cs_store *s);
int cs_store_set_lineage(struct cs_store *s, uint64_t term);

/* A transfer from the primary, one at a time. Each returns 0 or a negative
 * errno with a sentence in why: -EPROTO (out of sequence), -ENOENT (a delta
 * whose parent is not here: send a base), -EBADMSG (size or digest wrong),
 * -ENOSPC or another write error. On error the transfer is discarded and
 * the chain is as it was. */
int cs_store_begin(struct cs_store *s, uint64_t term, const struct cs_msg_ckpt_begin *b, char *why,
                   size_t cap);
int cs_store_pages(struct cs_store *s, const struct cs_msg_ckpt_pages *p, char *why, size_t cap);
/* On success the image is in the chain (*ret_durable: fsync'd). */
int cs_store_end(struct cs_store *s, const struct cs_msg_ckpt_end *e, bool *ret_durable, char *why,
                 size_t cap);
void cs_store_abort(struct cs_store *s);
bool cs_store_receiving(const struct cs_store *s);

/* Starts `checksync compact` on the chain when enough deltas piled up
 * since the newest full image (a backup's chain would grow without end). */
void cs_store_maybe_compact(struct cs_store *s);

json_t *cs_store_status(const struct cs_store *s);

#endif
