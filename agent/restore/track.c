/*
 * Dirty tracking armed by the restorer, before any thread runs.
 *
 * The loaded memory is exactly the generation restored, so if every write
 * from now on shows, the agent's next image can be a delta whose parent is
 * that generation instead of a base: the base is what paused a promoted
 * 3.4 GiB program for about 108 ms (docs/restore.md, section 9). This makes
 * the userfaultfd the agent's track.c would make, registers each mapping
 * the agent tracks for async write-protect and arms every live page with
 * the same PAGEMAP_SCAN the agent's scan_live uses (holes stay holes: a
 * first write into one makes a page without the uffd-wp bit, which shows
 * as written). A mapping that cannot be registered is left alone: the
 * agent's scan finds it unregistered and sends it whole. Anything else
 * that fails returns -1, and the agent takes a base as before.
 */
#include <linux/fcntl.h>

#include "../capture/compat.h"
#include "restorer.h"
#include "sys.h"

#define NR_ioctl       16
#define NR_userfaultfd 323

static struct page_region regions[256];

static int arm(int uffd, int pagemap_fd, const struct cs_plan_track *t)
{
	struct uffdio_register reg = {.range = {.start = t->start, .len = t->len},
	                              .mode = UFFDIO_REGISTER_MODE_WP};
	if (cs_sys3(NR_ioctl, uffd, UFFDIO_REGISTER, &reg) < 0)
		return 0; /* the agent sends it whole */
	/* not the zero page, and in a file mapping not the pages still the
	 * file's: both only become the program's through a write */
	uint64_t skip = t->file ? PAGE_IS_FILE | PAGE_IS_PFNZERO : PAGE_IS_PFNZERO;
	uint64_t end = t->start + t->len;
	/* A vector, though nothing in it is read: without one the kernel
	 * write-protects every PTE of the range whatever the categories, holes
	 * included, and the markers it leaves in holes read as SWAPPED, which
	 * the agent counts as live pages (found by cr-generations). */
	for (uint64_t at = t->start; at < end;) {
		struct pm_scan_arg a = {.size = sizeof(a),
		                        .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		                        .start = at,
		                        .end = end,
		                        .vec = (uint64_t)regions,
		                        .vec_len = sizeof(regions) / sizeof(regions[0]),
		                        .category_mask = skip,
		                        .category_inverted = skip,
		                        .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		                        .return_mask = PAGE_IS_PRESENT};
		if (cs_sys3(NR_ioctl, pagemap_fd, PAGEMAP_SCAN, &a) < 0 || a.walk_end <= at)
			return -1;
		at = a.walk_end;
	}
	return 0;
}

int32_t cs_restore_arm_tracking(int pagemap_fd)
{
	const struct cs_plan_track *t = at(plan->track_off);
	if (pagemap_fd < 0 || !plan->n_track)
		return -1;
	long uffd = cs_sys1(NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		return -1;
	struct uffdio_api api = {.api = UFFD_API,
	                         .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED};
	int ok = cs_sys3(NR_ioctl, uffd, UFFDIO_API, &api) == 0 &&
	         (api.features & UFFD_FEATURE_WP_ASYNC);
	for (uint32_t i = 0; ok && i < plan->n_track; i++)
		ok = arm((int)uffd, pagemap_fd, &t[i]) == 0;
	if (!ok) {
		cs_sys1(NR_close, uffd);
		return -1;
	}
	return (int32_t)uffd;
}
