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
#define CS_ENV_COMPACT_BUDGET     "CHECKSYNC_COMPACT_BUDGET" /* bytes; default 3 x full + 256 MiB */
#define CS_ENV_COMPACT_CPUS       "CHECKSYNC_COMPACT_CPUS"   /* e.g. "1" or "2-3,5" */

/* The background compactor's report in DIR (compact_loop.c). */
#define CS_COMPACT_STATUS "compactor.status"

/* When the background loop folds the chain into a full image: once the
 * deltas written since the newest full image exceed max(min_bytes, factor
 * x that image's size), or there are more than max_images of them (a quiet
 * program writes small deltas; a restore opens and checks every image of
 * the chain). Between folds it merges deltas (cs_compact_merge), which
 * never reads the full image. */
struct cs_compact_policy {
	double factor;
	uint64_t min_bytes;
	uint64_t max_images;
	uint64_t budget; /* bytes DIR may hold before the compactor is behind; 0: default */
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
	int merged;          /* cs_compact_merge wrote a delta */
	uint64_t read_bytes; /* cs_compact_merge: bytes of the deltas it read */
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

/*
 * Merges the deltas of generation's chain above parent (an image of that
 * chain: its newest full image, or a delta) into one delta of generation
 * whose parent is parent: generation's metadata, and for every live page
 * that one of those deltas holds, the newest bytes. Neither parent nor
 * anything under it is read or changed, so the cost is that of the deltas
 * alone. Written, checked and renamed over generation's image as a fold
 * is; then the merged deltas go. docs/restore.md, "Compaction", says why
 * the result is a valid delta under the image format as it stands. Never
 * waits for the lock (-EBUSY); -ESTALE when the chain does not pass
 * through parent; nothing was changed on any error.
 */
int cs_compact_merge(const char *dir, uint64_t generation, uint64_t parent,
                     struct cs_compact_result *res, char *msg, size_t cap);

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

/* Moves the calling process (the compactor) off the program's pinned CPUs
 * (CHECKSYNC_COMPACT_CPUS, else the CPUs the program was not pinned to). */
void cs_compact_set_cpus(void);

/* The background compactor: every second, compact when due. Never returns;
 * whoever started it kills it (checksync-init when the program exits). */
__attribute__((noreturn)) void cs_compact_loop(const char *dir, const struct cs_compact_policy *p);

#endif
