/*
 * Inside the planner: plan.c (a whole generation, for a restore or the
 * first plan of a standby) and plan_step.c (the changes from the
 * generation a standby holds to the next one) share these.
 */
#ifndef CS_TOOL_PLAN_INT_H
#define CS_TOOL_PLAN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "../restore/cs_plan.h"
#include "restore.h"

#define PAGE 4096ull

struct span {
	uint64_t start, end;
};

struct copy_list {
	struct cs_plan_copy *v;
	size_t n, cap;
};

struct plan_buf {
	uint8_t *data;
	size_t len, cap;
};

/* Sorts and merges spans in place; returns how many are left. */
size_t cs_spans_normalize(struct span *s, size_t n);
/* Every byte of *needp that img's page runs hold becomes a copy from image
 * fd; what no run holds stays in *needp (sorted, merged). */
int cs_take_from_image(const struct cs_image *img, int fd, struct span **needp, size_t *n_need,
                       struct copy_list *cl);
int cs_cmp_copy(const void *a, const void *b);
/* A saved mapping as a plan map (1), a vDSO target noted in h, or nothing
 * (0); -EINVAL when its file was not opened. */
int cs_plan_mapping(const struct cs_restore *r, const struct cs_image_mapping *m,
                    struct cs_plan_header *h, struct cs_plan_map *out, int file_fd_base);
/* has_pages on the maps copies go to; -EBADMSG for a copy outside them. */
int cs_mark_maps(struct cs_plan_map *maps, size_t n, const struct copy_list *cl);
int cs_buf_add(struct plan_buf *b, const void *data, size_t len, uint64_t *ret_off);

/* plan_step.c: the memory part of an APPLY or PROMOTE plan, added to b
 * with its offsets in h. -ESTALE: this step cannot be applied (a new
 * range's pages are not all in the images since the held generation), the
 * standby must be built again. */
int cs_plan_step_memory(const struct cs_restore *r, struct cs_plan_header *h, struct plan_buf *b);

#endif
