/*
 * Scratch memory: anonymous mappings made with mmap, never malloc, so the
 * freeze path can grow them while other threads hold malloc's locks. Each
 * live region is remembered so /proc/self/maps parsing marks it
 * CS_MAP_AGENT: the restorer recreates it empty instead of copying it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "agent.h"

struct region {
	_Atomic uint64_t start, end;
	_Atomic int shared;
	/* Live when /proc/self/maps was last read during a freeze, so in that
	 * image's MAPPINGS and recreated (empty) by a restore from it. */
	_Atomic int in_maps;
};

static struct region regions[CS_MAX_AGENT_REGIONS * 4];

static void remember(uint64_t start, uint64_t end, int shared)
{
	for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
		uint64_t zero = 0;
		if (atomic_compare_exchange_strong(&regions[i].start, &zero, start)) {
			atomic_store(&regions[i].in_maps, 0);
			atomic_store(&regions[i].shared, shared);
			atomic_store(&regions[i].end, end);
			return;
		}
	}
	/* Table full: the region is then captured like application memory,
	 * which wastes bytes but stays correct. */
}

static void forget(uint64_t start)
{
	for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
		if (atomic_load(&regions[i].start) == start) {
			atomic_store(&regions[i].end, 0);
			atomic_store(&regions[i].start, 0);
			return;
		}
	}
}

static size_t round_up(size_t len)
{
	return (len + CS_PAGE - 1) & ~(size_t)(CS_PAGE - 1);
}

void *cs_scratch_alloc(size_t len, int shared)
{
	len = round_up(len);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	remember((uint64_t)p, (uint64_t)p + len, shared);
	return p;
}

void cs_scratch_free(void *p, size_t len)
{
	if (!p)
		return;
	forget((uint64_t)p);
	munmap(p, round_up(len));
}

/* True when [start, end) lies inside one of our regions: the kernel may
 * merge adjacent anonymous mappings, so also accept a VMA that is covered
 * by several of ours. */
int cs_scratch_is_agent(uint64_t start, uint64_t end)
{
	uint64_t pos = start;
	for (int pass = 0; pass < CS_MAX_AGENT_REGIONS * 4 && pos < end; pass++) {
		int advanced = 0;
		for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
			uint64_t s = atomic_load(&regions[i].start), e = atomic_load(&regions[i].end);
			if (s && s <= pos && pos < e) {
				pos = e;
				advanced = 1;
			}
		}
		if (!advanced)
			return 0;
	}
	return pos >= end;
}

/* Grows *p (an array of elem-sized items with *cap slots) to hold need
 * items, keeping its contents. Private scratch only. */
int cs_scratch_grow(void **p, size_t *cap, size_t elem, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 256;
	while (ncap < need)
		ncap *= 2;
	void *np = cs_scratch_alloc(ncap * elem, 0);
	if (!np)
		return -ENOMEM;
	if (*p) {
		memcpy(np, *p, *cap * elem);
		cs_scratch_free(*p, *cap * elem);
	}
	*p = np;
	*cap = ncap;
	return 0;
}

/* During a freeze, just before /proc/self/maps is read: every region live
 * now is in this image's MAPPINGS. */
void cs_scratch_mark_mapped(void)
{
	for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++)
		if (atomic_load(&regions[i].start))
			atomic_store(&regions[i].in_maps, 1);
}

/*
 * After a restore: drop every region the table lists, and unmap those the
 * image's MAPPINGS had (the restorer recreated them empty). A region
 * allocated during the freeze after /proc/self/maps was read (the writer's
 * stack, a grown run list or copy buffer) is in the table but was never
 * recreated: its range is a hole in this process, and the other threads,
 * running since the restorer let them go, may already have mapped their own
 * memory there. Unmapping it would pull memory from under them (SIGSEGV), so
 * it is only forgotten. A region allocated during the maps read itself may
 * have been recreated and is then left to the application, empty.
 */
void cs_scratch_forget_all(void)
{
	for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
		uint64_t s = atomic_load(&regions[i].start), e = atomic_load(&regions[i].end);
		if (s && e > s && atomic_load(&regions[i].in_maps))
			munmap((void *)s, e - s);
		atomic_store(&regions[i].in_maps, 0);
		atomic_store(&regions[i].start, 0);
		atomic_store(&regions[i].end, 0);
	}
}

/* Like cs_scratch_grow for the writer child: its memory is its own and the
 * agent's region table (in the image) must not change. */
int cs_plain_grow(void **p, size_t *cap, size_t elem, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 4096;
	while (ncap < need)
		ncap *= 2;
	void *np = mmap(NULL, round_up(ncap * elem), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (np == MAP_FAILED)
		return -ENOMEM;
	if (*p) {
		memcpy(np, *p, *cap * elem);
		munmap(*p, round_up(*cap * elem));
	}
	*p = np;
	*cap = ncap;
	return 0;
}
