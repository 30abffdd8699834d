/* Prometheus-style histograms kept by the daemon: fixed upper bounds, a
 * count per bucket, the sum and the count of the observations. They are
 * shown in the status object (cs_hist_json) and rendered from there by the
 * metrics endpoint, like every other metric. */
#ifndef CS_HISTOGRAM_H
#define CS_HISTOGRAM_H

#include <stdint.h>

#include <jansson.h>

#define CS_HIST_MAX 20 /* finite bounds at most */

struct cs_hist {
	const double *bounds; /* ascending upper bounds, in the unit observed */
	unsigned n;
	uint64_t bucket[CS_HIST_MAX + 1]; /* per bucket, not cumulative; [n]: above the last */
	uint64_t count;
	double sum;
};

/* Bounds in seconds for durations and in bytes for image sizes. */
extern const double cs_hist_seconds[], cs_hist_pause_seconds[], cs_hist_bytes[];
extern const unsigned cs_hist_seconds_n, cs_hist_pause_seconds_n, cs_hist_bytes_n;

void cs_hist_init(struct cs_hist *h, const double *bounds, unsigned n);
void cs_hist_observe(struct cs_hist *h, double v);
/* Adds n observations that lie at or below bound (and above the bound
 * before it in their source's list); the caller adds their sum. A bucket of
 * another histogram lands in the first bucket of h that holds it whole, so
 * equal bounds copy exactly. */
void cs_hist_add_bucket(struct cs_hist *h, double bound, uint64_t n);
/* h += o; both have the same bounds. */
void cs_hist_merge(struct cs_hist *h, const struct cs_hist *o);

/* {"le": [bounds], "cumulative": [counts at or below each bound], "sum": S,
 * "count": N}: the count is the +Inf bucket. */
json_t *cs_hist_json(const struct cs_hist *h);

#endif
