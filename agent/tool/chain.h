/*
 * Which image files make up generation G, and whether they are intact.
 *
 * A generation is restorable when its own image and every ancestor down to
 * its base parse cleanly (every section's CRC, END present). Images are
 * mapped read-only and stay mapped while the chain is in use: the parsed
 * page runs are offsets into them.
 */
#ifndef CS_TOOL_CHAIN_H
#define CS_TOOL_CHAIN_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

struct cs_loaded {
	uint64_t generation;
	char path[PATH_MAX];
	int fd;
	const void *map;
	size_t len;
	struct cs_image *img;
};

/* Newest first: imgs[0] is the generation asked for, imgs[n-1] its base. */
struct cs_chain {
	struct cs_loaded *imgs;
	size_t n;
};

/* Where a chain is damaged, for the message. */
struct cs_chain_damage {
	char path[PATH_MAX];
	uint64_t generation;
	uint64_t offset;
	char msg[512];
};

/* Generations of DIR/gen-*.img (renamed, so complete by the writer's
 * protocol; *.tmp is ignored), ascending. */
int cs_dir_generations(const char *dir, uint64_t **ret_gens, size_t *ret_n);
/* DIR/gen-<20 digits>.img of generation gen into path[cap]. */
void cs_image_path(const char *dir, uint64_t gen, char *path, size_t cap);
/* From the first bytes of DIR's image of gen: whether it is a full image,
 * its parent, its size and mtime (ret_mtime may be NULL). A hint (no CRC):
 * whoever uses an image reads all of it. */
int cs_image_peek(const char *dir, uint64_t gen, int *is_full, uint64_t *parent, uint64_t *size,
                  time_t *ret_mtime);

int cs_loaded_open(const char *path, struct cs_loaded *out, struct cs_chain_damage *dmg);
/* The same with cs_image_parse flags (CS_IMAGE_PARSE_SKIP_PAGE_CRC). */
int cs_loaded_open_flags(const char *path, unsigned parse_flags, struct cs_loaded *out,
                         struct cs_chain_damage *dmg);
void cs_loaded_close(struct cs_loaded *l);

int cs_chain_load(const char *dir, uint64_t generation, struct cs_chain *out,
                  struct cs_chain_damage *dmg);
void cs_chain_free(struct cs_chain *c);
/* The images of generation's chain newer than stop (stop itself, which must
 * be on the chain, is not opened): the deltas a merge reads. -ESTALE when
 * the chain does not pass through stop. */
int cs_chain_load_until(const char *dir, uint64_t generation, uint64_t stop, struct cs_chain *out,
                        struct cs_chain_damage *dmg);

/* The images of generation's chain newer than since, newest first: after
 * a full image or a delta whose parent is since or older, none is needed
 * to go from since to generation (a standby's step). */
int cs_chain_load_since(const char *dir, uint64_t generation, uint64_t since, struct cs_chain *out,
                        struct cs_chain_damage *dmg);

/*
 * The chain to restore: generation `want`, or the newest one when want is
 * 0. On damage returns -EBADMSG and writes a full sentence into msg: the
 * damaged file, the offset, and the newest older generation whose chain is
 * intact (the one that would restore instead).
 */
int cs_chain_pick(const char *dir, uint64_t want, struct cs_chain *out, char *msg, size_t cap);

#endif
