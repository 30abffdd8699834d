/*
 * The Go heap's free memory (docs/go.md, "Free memory of the Go heap"): pages
 * of a Go program's heap that belong to no span are left out of RESIDENT and
 * PAGES. Found from the runtime's page allocator, read while every thread is
 * frozen, for layouts verified against the runtime's source only; anything
 * else is captured page by page.
 */
#ifndef CS_CAPTURE_GOLIVE_H
#define CS_CAPTURE_GOLIVE_H

#include <stdint.h>

struct cs_capture;

/* Agent thread, before the first freeze: reads CHECKSYNC_GOLIVE and finds
 * the Go runtime in /proc/self/exe (symbols, version). Never fails: what it
 * could not find is the reason the heap is captured page by page. */
void cs_golive_init(void);

/* During the freeze, after c->resident and (with_send: uffd mode; hash mode
 * chooses by content in the writer) c->send were chosen page by page:
 * leaves out the pages free in the Go heap, and sends whole the pages that
 * the parent image left out and are live now. Negative errno (no memory)
 * fails the checkpoint; a page allocator that cannot be read leaves both as
 * they were. */
int cs_golive_filter(struct cs_capture *c, int with_send);

/* The same with a free set given (sorted page runs) instead of read from
 * the runtime: the unit test's way in. */
struct cs_runs;
int cs_golive_leave_out(struct cs_capture *c, const struct cs_runs *free_now, int with_send);

/* After a restore: the scratch memory of the free sets is gone, and the
 * restored process holds none of the pages the image left out. */
void cs_golive_reset(void);

enum cs_golive_state { CS_GOLIVE_OFF = 0, CS_GOLIVE_ON = 1, CS_GOLIVE_MEASURE = 2 };

struct cs_golive_report {
	int state;               /* enum cs_golive_state */
	char version[32];        /* runtime.buildVersion, "" if none was found */
	char why[128];           /* why OFF (or what was last skipped) */
	uint64_t free_pages;     /* last checkpoint: 4 KiB pages free in the Go heap */
	uint64_t left_out_pages; /* last checkpoint: resident pages left out of RESIDENT */
	uint64_t left_out_sent;  /* last checkpoint: of them, pages left out of PAGES */
	uint64_t readded_pages;  /* last checkpoint: pages sent because they left the free set */
	uint64_t left_out_sent_total; /* every checkpoint: pages left out of PAGES */
	uint64_t sent_total;          /* every checkpoint: pages in PAGES */
	uint64_t skipped;             /* checkpoints taken page by page: heap lock held */
};

void cs_golive_report(struct cs_golive_report *out);

#endif
