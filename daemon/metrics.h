/* The opt-in Prometheus endpoint (metrics.listen): GET /metrics answers the
 * daemon's status (the control socket's status object, docs/control.md) in
 * the Prometheus text format, rendered at each scrape, so the two never
 * disagree. Plain HTTP: bind it to localhost or a trusted network. */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct event_base;
struct cs_metrics;

/* The status object at the time of a scrape (a new reference), or NULL. */
typedef json_t *(*cs_metrics_status_fn)(void *arg);

/* Listens on host:port. On failure returns a negative errno and writes a
 * sentence naming the address into err. */
int cs_metrics_new(struct event_base *base, const char *host, uint16_t port,
                   cs_metrics_status_fn status, void *arg, struct cs_metrics **out, char *err,
                   size_t errlen);
void cs_metrics_free(struct cs_metrics *m);

/* The text format of STATUS (docs/metrics.md lists every metric), as a
 * malloc'd NUL-terminated string; NULL when out of memory. */
char *cs_metrics_render(const json_t *status, size_t *ret_len);

#endif
