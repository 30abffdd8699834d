/*
 * The Go heap's free pages left out of a chain of images (golive.c), against
 * a model: a memory of 256 pages whose bytes have versions, a kernel that
 * reports the pages written since the last scan (new resident pages
 * included), and random free sets. After every checkpoint the chain must
 * give, for every page in RESIDENT, the bytes the memory holds
 * (docs/image-format.md, "Chains", step 3), and nothing free may be in
 * RESIDENT or PAGES. No Go runtime is involved: the free sets are given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "golive.h"

#define NP    256
#define BASE  0x10000000ull
#define STEPS 400
#define GENS  (STEPS + 1)

static unsigned rnd_state = 12345;

static unsigned rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 8) & 0xffffff;
}

static void to_runs(const uint8_t *bits, struct cs_runs *r)
{
	r->n = 0;
	for (unsigned p = 0; p < NP; p++)
		if (bits[p] && cs_runs_add(r, BASE + (uint64_t)p * CS_PAGE, 1))
			abort();
}

static void from_runs(const struct cs_runs *r, uint8_t *bits)
{
	memset(bits, 0, NP);
	for (size_t i = 0; i < r->n; i++)
		for (uint64_t k = 0; k < r->r[i].npages; k++)
			bits[(r->r[i].addr - BASE) / CS_PAGE + k] = 1;
}

/* A random set: runs of random length, so run boundaries fall everywhere. */
static void random_set(uint8_t *bits, unsigned percent)
{
	for (unsigned p = 0; p < NP;) {
		unsigned len = 1 + rnd() % 9, on = rnd() % 100 < percent;
		for (unsigned k = 0; k < len && p < NP; k++, p++)
			bits[p] = (uint8_t)on;
	}
}

static uint32_t mem[NP];        /* version of each page's bytes */
static uint32_t held[GENS][NP]; /* image g holds version+1 of the page, 0: not held */
static uint8_t resident_of[GENS][NP];
static int parent_of[GENS];

static int check_chain(int g, int step)
{
	for (unsigned p = 0; p < NP; p++) {
		if (!resident_of[g][p])
			continue;
		int k = g;
		while (k && !held[k][p])
			k = parent_of[k];
		if (!k || held[k][p] != mem[p] + 1) {
			fprintf(stderr,
			        "step %d: page %u of generation %d: chain has %s, memory v%u\n",
			        step, p, g, k ? "stale bytes" : "no bytes", mem[p]);
			return 1;
		}
	}
	return 0;
}

/* One checkpoint of the model; returns nonzero on a broken invariant. */
static int step(int s, uint8_t *present, struct cs_capture *c, struct cs_runs *fr)
{
	uint8_t now[NP], written[NP], fb[NP], res[NP], snd[NP];
	int g = s + 1, base = s == 0 || rnd() % 25 == 0;
	random_set(now, 70);
	random_set(written, 20);
	random_set(fb, 30);
	for (unsigned p = 0; p < NP; p++) {
		written[p] = now[p] && (written[p] || !present[p]); /* new pages count as written */
		if (written[p])
			mem[p]++;
		present[p] = now[p];
		snd[p] = now[p] && (base || written[p]);
	}
	to_runs(now, &c->resident);
	to_runs(snd, &c->send);
	to_runs(fb, fr);
	c->is_base = base;
	if (cs_golive_leave_out(c, fr, 1))
		return 1;
	from_runs(&c->resident, res);
	from_runs(&c->send, snd);
	parent_of[g] = base ? 0 : g - 1;
	for (unsigned p = 0; p < NP; p++) {
		if ((res[p] || snd[p]) && fb[p]) {
			fprintf(stderr, "step %d: free page %u in RESIDENT or PAGES\n", s, p);
			return 1;
		}
		if (res[p] != (now[p] && !fb[p]) || (snd[p] && !res[p])) {
			fprintf(stderr, "step %d: page %u: RESIDENT %d, PAGES %d\n", s, p, res[p],
			        snd[p]);
			return 1;
		}
		resident_of[g][p] = res[p];
		held[g][p] = snd[p] ? mem[p] + 1 : 0;
	}
	return check_chain(g, s);
}

int main(void)
{
	static struct cs_capture c;
	struct cs_runs fr = {0};
	uint8_t present[NP] = {0};
	struct cs_golive_report rep;
	uint64_t readded = 0, left_out = 0;
	cs_golive_reset();
	for (int s = 0; s < STEPS; s++) {
		if (step(s, present, &c, &fr))
			return 1;
		cs_golive_report(&rep);
		readded += rep.readded_pages;
		left_out += rep.left_out_pages;
	}
	/* Without both the model would not test what it claims to. */
	if (!readded || !left_out) {
		fprintf(stderr, "vacuous: %llu pages left out, %llu sent whole again\n",
		        (unsigned long long)left_out, (unsigned long long)readded);
		return 1;
	}
	printf("ok: %d checkpoints, %llu resident pages left out, %llu sent whole again\n", STEPS,
	       (unsigned long long)left_out, (unsigned long long)readded);
	return 0;
}
