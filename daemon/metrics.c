/* Prometheus text format (version 0.0.4) over libevent's evhttp. The
 * metrics are read from the status object by tables, so a field the status
 * gains is one line here. */
#include "metrics.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "app.h"
#include "membership.h"
#include "standby.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct cs_metrics {
	struct evhttp *http;
	cs_metrics_status_fn status;
	void *arg;
};

enum kind { GAUGE, COUNTER, HISTOGRAM };

static const char *const kind_names[] = {
    [GAUGE] = "gauge", [COUNTER] = "counter", [HISTOGRAM] = "histogram"};

/* One sample from a number or a boolean of the status: OBJ.KEY (OBJ NULL:
 * the top level). Absent or null fields give no sample. */
static const struct scalar {
	const char *obj, *key, *name;
	enum kind kind;
	double scale; /* milliseconds to seconds: 0.001 */
	const char *help;
} scalars[] = {
    {NULL, "term", "checksync_term", GAUGE, 1, "Highest term this node knows."},
    {NULL, "lease_remaining_ms", "checksync_lease_remaining_seconds", GAUGE, 0.001,
     "Time left on the primary's lease as this node knows it."},
    {"app", "up_ms", "checksync_app_uptime_seconds", GAUGE, 0.001,
     "Time since the app was last started or restored here."},
    {"counters", "checkpoints", "checksync_checkpoints_total", COUNTER, 1,
     "Checkpoints the app wrote into the chain while this node was primary."},
    {"counters", "checkpoint_bytes", "checksync_checkpoint_bytes_total", COUNTER, 1,
     "Bytes of those checkpoint images."},
    {"counters", "restores", "checksync_restores_total", COUNTER, 1,
     "Restores of the app from the chain started here (failovers and local restores)."},
    {"counters", "promotions", "checksync_promotions_total", COUNTER, 1,
     "Times this node became primary with an app to run."},
    {"store", "newest", "checksync_chain_generation", GAUGE, 1,
     "Newest complete generation in this node's chain."},
    {"store", "lineage_term", "checksync_chain_lineage_term", GAUGE, 1,
     "Term of the primary whose images the chain holds."},
    {"store", "received_images", "checksync_received_images_total", COUNTER, 1,
     "Checkpoint images received from a primary."},
    {"store", "received_bytes", "checksync_received_bytes_total", COUNTER, 1,
     "Bytes of checkpoint images received from a primary."},
    {"store", "compactions", "checksync_compactions_total", COUNTER, 1,
     "Compactions of the chain on this backup."},
    {"restore_ready", "ready", "checksync_restore_ready", GAUGE, 1,
     "1 when the last restore check of this backup's chain passed."},
    {NULL, "sync_waiting", "checksync_sync_waiting", GAUGE, 1,
     "Sync calls of the app waiting for the backups."},
    {"standby", "rss_bytes", "checksync_standby_rss_bytes", GAUGE, 1,
     "Resident memory of this backup's warm standby of the app (0: none)."},
    {"standby", "generation", "checksync_standby_generation", GAUGE, 1,
     "Generation the warm standby equals (0: none built)."},
    {"standby", "applied", "checksync_standby_applied_total", COUNTER, 1,
     "Generations applied to this backup's warm standbys."},
};

/* One sample per element of the array ARRAY, labelled LABEL=element.name:
 * element.KEY, or (EQUALS set) 1 when element.KEY is that string. */
static const struct per_item {
	const char *array, *label, *key, *equals, *name;
	enum kind kind;
	double scale;
	const char *help;
} per_items[] = {
    {"peers", "peer", "state", "up", "checksync_peer_up", GAUGE, 1,
     "1 when the link to the peer is up."},
    {"peers", "peer", "last_heartbeat_ms", NULL, "checksync_peer_heartbeat_age_seconds", GAUGE,
     0.001, "Time since the last heartbeat from the peer."},
    {"backups", "backup", "up", NULL, "checksync_backup_up", GAUGE, 1,
     "1 when the backup is up and served by this primary."},
    {"backups", "backup", "acked_generation", NULL, "checksync_backup_acked_generation", GAUGE, 1,
     "Newest generation the backup acknowledged."},
    {"backups", "backup", "lag_generations", NULL, "checksync_backup_lag_generations", GAUGE, 1,
     "Generations in the chain the backup has not acknowledged."},
    {"backups", "backup", "lag_bytes", NULL, "checksync_backup_lag_bytes", GAUGE, 1,
     "Bytes of the images the backup has not acknowledged."},
    {"backups", "backup", "sent_bytes", NULL, "checksync_backup_sent_bytes_total", COUNTER, 1,
     "Image bytes sent to the backup."},
    {"backups", "backup", "sessions", NULL, "checksync_backup_sessions_total", COUNTER, 1,
     "Sessions started with the backup (each begins with a full image)."},
    {"failovers", "path", "count", NULL, "checksync_failovers_total", COUNTER, 1,
     "Promotions of this node whose app served, by the path its restore took (standby, cold)."},
};

/* A label value in the text format: backslash, quote and newline escaped. */
static void put_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f), fputc(*s, f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void header(FILE *f, const char *name, enum kind kind, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind_names[kind]);
}

/* A number or a boolean, scaled; false for anything else. */
static bool value_of(const json_t *v, double scale, double *out)
{
	if (json_is_boolean(v))
		*out = json_is_true(v);
	else if (json_is_integer(v))
		*out = (double)json_integer_value(v) * scale;
	else if (json_is_real(v))
		*out = json_real_value(v) * scale;
	else
		return false;
	return true;
}

/* 15 digits: exact for every integer the status holds (generations and
 * byte counts are far below 10^15) and 0.82 for 820 ms, not 0.82000000000000006. */
static void put_value(FILE *f, double v)
{
	fprintf(f, " %.15g\n", v);
}

static void render_scalar(FILE *f, const json_t *status, const struct scalar *s)
{
	const json_t *obj = s->obj ? json_object_get(status, s->obj) : status;
	double v;

	if (!value_of(json_object_get(obj, s->key), s->scale, &v))
		return;
	header(f, s->name, s->kind, s->help);
	fputs(s->name, f);
	put_value(f, v);
}

/* Histograms of the status's "histograms" object (cs_hist_json's form:
 * le, cumulative, sum, count), in seconds or bytes already. With a label,
 * the object holds one histogram per label value. */
static const struct histogram {
	const char *key, *label, *name, *help;
} histograms[] = {
    {"checkpoint_pause_seconds", NULL, "checksync_checkpoint_pause_seconds",
     "Pauses of the app's successful checkpoints on this node, as its agent measured them."},
    {"checkpoint_size_bytes", "kind", "checksync_checkpoint_size_bytes",
     "Sizes of the images the app wrote while this node was primary, full (base) or delta."},
    {"sync_seconds", "result", "checksync_sync_duration_seconds",
     "Sync calls of the app, from the request to the answer (ok or error)."},
    {"restore_seconds", NULL, "checksync_restore_duration_seconds",
     "Restores from the chain that reached serving, from their start to the app's first "
     "answer."},
    {"failover_seconds", NULL, "checksync_failover_duration_seconds",
     "Promotions that restored the app here, from the promotion to the app's first answer."},
    {"standby_apply_seconds", NULL, "checksync_standby_apply_duration_seconds",
     "Generations applied to the warm standby, wall time of each apply as the tool measured it."},
};

/* NAME_SUFFIX{LABEL="VALUE",le="LE"}: LABEL and LE may be NULL. */
static void put_series(FILE *f, const char *name, const char *suffix, const char *label,
                       const char *value, const char *le)
{
	fprintf(f, "%s%s", name, suffix);
	if (!label && !le)
		return;
	fputc('{', f);
	if (label) {
		fprintf(f, "%s=\"", label);
		put_label(f, value);
		fprintf(f, "\"%s", le ? "," : "");
	}
	if (le)
		fprintf(f, "le=\"%s\"", le);
	fputc('}', f);
}

static void render_buckets(FILE *f, const char *name, const char *label, const char *value,
                           const json_t *h)
{
	const json_t *le = json_object_get(h, "le"), *cum = json_object_get(h, "cumulative");
	double b, c, count, sum;
	char bound[32];

	if (!value_of(json_object_get(h, "count"), 1, &count) ||
	    !value_of(json_object_get(h, "sum"), 1, &sum) ||
	    json_array_size(le) != json_array_size(cum))
		return;
	for (size_t i = 0; i < json_array_size(le); i++) {
		if (!value_of(json_array_get(le, i), 1, &b) ||
		    !value_of(json_array_get(cum, i), 1, &c))
			return;
		snprintf(bound, sizeof(bound), "%.15g", b);
		put_series(f, name, "_bucket", label, value, bound);
		put_value(f, c);
	}
	put_series(f, name, "_bucket", label, value, "+Inf");
	put_value(f, count);
	put_series(f, name, "_sum", label, value, NULL);
	put_value(f, sum);
	put_series(f, name, "_count", label, value, NULL);
	put_value(f, count);
}

static void render_histogram(FILE *f, const json_t *status, const struct histogram *h)
{
	const json_t *v = json_object_get(json_object_get(status, "histograms"), h->key), *one;
	const char *value;

	if (!json_is_object(v))
		return;
	header(f, h->name, HISTOGRAM, h->help);
	if (!h->label) {
		render_buckets(f, h->name, NULL, NULL, v);
		return;
	}
	json_object_foreach((json_t *)v, value, one)
	    render_buckets(f, h->name, h->label, value, one);
}

static void render_items(FILE *f, const json_t *status, const struct per_item *p)
{
	const json_t *a = json_object_get(status, p->array), *e;
	bool first = true;
	size_t i;
	double v;

	json_array_foreach(a, i, e)
	{
		const json_t *field = json_object_get(e, p->key);
		const char *name = json_string_value(json_object_get(e, "name"));

		if (p->equals && json_is_string(field))
			v = strcmp(json_string_value(field), p->equals) == 0;
		else if (p->equals || !value_of(field, p->scale, &v))
			continue;
		if (!name)
			continue;
		if (first)
			header(f, p->name, p->kind, p->help);
		first = false;
		fprintf(f, "%s{%s=\"", p->name, p->label);
		put_label(f, name);
		fputs("\"}", f);
		put_value(f, v);
	}
}

/* A state as one gauge per possible value, 1 for the current one, so a
 * query never finds a series gone stale after a change. */
static void render_one_hot(FILE *f, const char *name, const char *label, const char *help,
                           const char *current, const char *(*names)(unsigned), unsigned n)
{
	header(f, name, GAUGE, help);
	for (unsigned i = 0; i < n; i++) {
		const char *s = names(i);

		fprintf(f, "%s{%s=\"", name, label);
		put_label(f, s);
		fprintf(f, "\"} %d\n", current && strcmp(current, s) == 0);
	}
}

static const char *role_name(unsigned i)
{
	return cs_member_role_name((enum cs_member_role)i);
}

static const char *app_state_name(unsigned i)
{
	return cs_app_state_name((enum cs_app_state)i);
}

static const char *standby_state_name(unsigned i)
{
	return cs_standby_state_name((enum cs_standby_state)i);
}

/* The name tables of app.c and standby.c answer "?" past the last state. */
static unsigned count_states(const char *(*names)(unsigned))
{
	unsigned n = 0;

	while (strcmp(names(n), "?") != 0)
		n++;
	return n;
}

static void render_info(FILE *f, const json_t *status)
{
	const char *node = json_string_value(json_object_get(status, "node"));
	const char *cluster = json_string_value(json_object_get(status, "cluster"));

	header(f, "checksync_info", GAUGE, "This node's name and its cluster's, always 1.");
	fputs("checksync_info{node=\"", f);
	put_label(f, node ? node : "");
	fputs("\",cluster=\"", f);
	put_label(f, cluster ? cluster : "");
	fputs("\"} 1\n", f);
}

char *cs_metrics_render(const json_t *status, size_t *ret_len)
{
	const json_t *app = json_object_get(status, "app");
	const json_t *standby = json_object_get(status, "standby");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	render_info(f, status);
	render_one_hot(f, "checksync_role", "role", "This node's role, 1 for the current one.",
	               json_string_value(json_object_get(status, "role")), role_name,
	               CS_MROLE__COUNT);
	if (json_is_object(app))
		render_one_hot(f, "checksync_app_state", "state",
		               "The app's state on this node, 1 for the current one.",
		               json_string_value(json_object_get(app, "state")), app_state_name,
		               count_states(app_state_name));
	if (json_is_object(standby))
		render_one_hot(f, "checksync_standby_state", "state",
		               "The warm standby on this node, 1 for the current state.",
		               json_string_value(json_object_get(standby, "state")),
		               standby_state_name, count_states(standby_state_name));
	for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++)
		render_scalar(f, status, &scalars[i]);
	for (size_t i = 0; i < sizeof(histograms) / sizeof(histograms[0]); i++)
		render_histogram(f, status, &histograms[i]);
	for (size_t i = 0; i < sizeof(per_items) / sizeof(per_items[0]); i++)
		render_items(f, status, &per_items[i]);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	if (ret_len)
		*ret_len = len;
	return buf;
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct cs_metrics *m = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *body = evhttp_request_get_output_buffer(req);
	json_t *status;
	char *text;
	size_t len;

	if (!path || strcmp(path, "/metrics") != 0) {
		evbuffer_add_printf(body, "checksyncd serves /metrics only\n");
		evhttp_send_reply(req, HTTP_NOTFOUND, "Not Found", NULL);
		return;
	}
	status = m->status(m->arg);
	text = status ? cs_metrics_render(status, &len) : NULL;
	json_decref(status);
	if (!text) {
		evhttp_send_error(req, HTTP_INTERNAL, "cannot render the metrics");
		return;
	}
	evbuffer_add(body, text, len);
	free(text);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", CONTENT_TYPE);
	evhttp_send_reply(req, HTTP_OK, "OK", NULL);
}

int cs_metrics_new(struct event_base *base, const char *host, uint16_t port,
                   cs_metrics_status_fn status, void *arg, struct cs_metrics **out, char *err,
                   size_t errlen)
{
	struct cs_metrics *m = calloc(1, sizeof(*m));
	int e;

	if (!m || !(m->http = evhttp_new(base))) {
		free(m);
		snprintf(err, errlen, "metrics: cannot create the HTTP server");
		return -ENOMEM;
	}
	m->status = status;
	m->arg = arg;
	/* Scrapers send small GETs; anything else is refused early. */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_timeout(m->http, 10);
	evhttp_set_gencb(m->http, handle, m);
	errno = 0;
	if (!evhttp_bind_socket_with_handle(m->http, host, port)) {
		e = errno ? errno : EADDRNOTAVAIL;
		snprintf(err, errlen, "metrics.listen %s:%u: cannot listen: %s", host, port,
		         strerror(e));
		cs_metrics_free(m);
		return -e;
	}
	*out = m;
	return 0;
}

void cs_metrics_free(struct cs_metrics *m)
{
	if (!m)
		return;
	evhttp_free(m->http);
	free(m);
}
