/* See histogram.h. */
#include "histogram.h"

#include <string.h>

/* From a millisecond to ten minutes: a Sync, a restore, a failover. */
const double cs_hist_seconds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                  1,     2.5,    5,     10,   30,    60,   120, 600};
const unsigned cs_hist_seconds_n = sizeof(cs_hist_seconds) / sizeof(cs_hist_seconds[0]);

/* A checkpoint's pause, from 50 us to a second: the agent's own bounds
 * (CS_AGENT_PAUSE_BOUNDS_US in cs_agent_abi.h), so its counts land whole. */
const double cs_hist_pause_seconds[] = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3, 5e-3,
                                        10e-3, 25e-3,  50e-3,  100e-3, 250e-3, 500e-3, 1};
const unsigned cs_hist_pause_seconds_n =
    sizeof(cs_hist_pause_seconds) / sizeof(cs_hist_pause_seconds[0]);

/* An image, from 4 KiB (a small delta) to 4 GiB (a large base), by fours. */
const double cs_hist_bytes[] = {4096,     16384,    65536,     262144,     1048576,   4194304,
                                16777216, 67108864, 268435456, 1073741824, 4294967296};
const unsigned cs_hist_bytes_n = sizeof(cs_hist_bytes) / sizeof(cs_hist_bytes[0]);

void cs_hist_init(struct cs_hist *h, const double *bounds, unsigned n)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->n = n < CS_HIST_MAX ? n : CS_HIST_MAX;
}

static unsigned bucket_of(const struct cs_hist *h, double v)
{
	unsigned i = 0;

	while (i < h->n && v > h->bounds[i])
		i++;
	return i;
}

void cs_hist_observe(struct cs_hist *h, double v)
{
	h->bucket[bucket_of(h, v)]++;
	h->count++;
	h->sum += v;
}

void cs_hist_add_bucket(struct cs_hist *h, double bound, uint64_t n)
{
	h->bucket[bucket_of(h, bound)] += n;
	h->count += n;
}

void cs_hist_merge(struct cs_hist *h, const struct cs_hist *o)
{
	for (unsigned i = 0; i <= h->n; i++)
		h->bucket[i] += o->bucket[i];
	h->count += o->count;
	h->sum += o->sum;
}

json_t *cs_hist_json(const struct cs_hist *h)
{
	json_t *le = json_array(), *cum = json_array();
	uint64_t below = 0;

	for (unsigned i = 0; i < h->n; i++) {
		below += h->bucket[i];
		json_array_append_new(le, json_real(h->bounds[i]));
		json_array_append_new(cum, json_integer((json_int_t)below));
	}
	return json_pack("{s:o, s:o, s:f, s:I}", "le", le, "cumulative", cum, "sum", h->sum,
	                 "count", (json_int_t)h->count);
}
