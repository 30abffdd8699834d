/*
 * Compaction: fold a chain into one full image, so the agent never has to
 * take a new base of a running process (docs/restore.md, "Compaction").
 *
 * Compacting generation K writes a full image for K itself: K's own
 * metadata, a header that makes it a base, and for every live page the
 * bytes of the newest image of K's chain that holds it. It is written as
 * gen-K.img.tmp, fsync'd and renamed over gen-K.img: the delta it replaces
 * and the full image describe the same instant, so a reader sees either,
 * and both restore the same process. Deltas taken after K keep naming their
 * old base; their chain now ends at K (chain.c accepts that).
 */
#ifndef CS_TOOL_COMPACT_H
#define CS_TOOL_COMPACT_H

#include <stddef.h>
#include <stdint.h>

/* Environment of the tool (checksync run/restore) that tunes the loop. */
#define CS_ENV_COMPACT_FACTOR     "CHECKSYNC_COMPACT_FACTOR"     /* default 1 */
#define CS_ENV_COMPACT_MIN_BYTES  "CHECKSYNC_COMPACT_MIN_BYTES"  /* default 64 MiB */
#define CS_ENV_COMPACT_MAX_IMAGES "CHECKSYNC_COMPACT_MAX_IMAGES" /* default 512 */

/* When the background loop compacts: once the deltas written since the
 * newest full image exceed max(min_bytes, factor x that image's size), or
 * there are more than max_images of them (a quiet program writes small
 * deltas; a restore opens and checks every image of the chain). */
struct cs_compact_policy {
	double factor;
	uint64_t min_bytes;
	uint64_t max_images;
};
/* Defaults overridden by the environment; -EINVAL with a sentence in msg
 * for a value that is not a number. */
int cs_compact_policy_from_env(struct cs_compact_policy *p, char *msg, size_t cap);

struct cs_compact_result {
	uint64_t generation; /* the image that is full now */
	uint64_t old_base;   /* where its chain ended before: older images went */
	uint64_t bytes;      /* size of the full image */
	size_t folded;       /* images of the chain that were read */
	size_t removed;      /* older images deleted */
	int already_full;    /* nothing to do: generation was a full image */
};

/*
 * Compacts generation `generation` of dir (0: the newest). Only one
 * compaction runs per directory (flock on the directory itself, so a
 * refusal leaves no file behind): wait says whether to wait for another
 * one to finish or to return -EBUSY. On a damaged chain returns -EBADMSG
 * (or -ENOENT for a missing link) having changed nothing; msg then names
 * the file, the offset and the reason.
 */
int cs_compact(const char *dir, uint64_t generation, int wait, struct cs_compact_result *res,
               char *msg, size_t cap);

/* Deletes the images (and dead .tmp files) older than generation below,
 * unless a compaction runs (-EBUSY). */
int cs_compact_prune(const char *dir, uint64_t below, size_t *ret_removed);

/* What the directory holds, from image headers only. */
struct cs_compact_backlog {
	uint64_t newest;      /* newest generation, 0: none */
	uint64_t delta_bytes; /* images newer than the newest full image */
	uint64_t limit;       /* the policy's threshold for them */
};
/* 1 when the policy says compact the newest generation now, 0 if not,
 * negative errno if dir cannot be read. */
int cs_compact_due(const char *dir, const struct cs_compact_policy *p,
                   struct cs_compact_backlog *out);

/* The background compactor: every second, compact when due. Never returns;
 * whoever started it kills it (checksync-init when the program exits). */
__attribute__((noreturn)) void cs_compact_loop(const char *dir, const struct cs_compact_policy *p);

#endif
