/* The Prometheus text of a status object: every metric of docs/metrics.md
 * from a status like the daemon's, one-hot states, escaped labels, and no
 * sample for what the status lacks. Links daemon/metrics.c alone; the two
 * name tables it reads come from stand-ins below. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "histogram.h"
#include "membership.h"
#include "metrics.h"
#include "standby.h"

#include "check.h"

/* Stand-ins for membership.c's, app.c's and standby.c's name tables. */
const char *cs_member_role_name(enum cs_member_role role)
{
	static const char *const names[] = {"init",    "backup", "candidate",
	                                    "primary", "fenced", "witness"};
	return (unsigned)role < sizeof(names) / sizeof(names[0]) ? names[role] : "?";
}

const char *cs_standby_state_name(enum cs_standby_state s)
{
	static const char *const names[] = {"off",      "building",  "ready",
	                                    "applying", "promoting", "failed"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

const char *cs_app_state_name(enum cs_app_state s)
{
	static const char *const names[] = {"stopped", "starting", "serving"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static const char primary_status[] =
    "{\"node\":\"alpha\",\"cluster\":\"kv\",\"role\":\"primary\",\"term\":5,"
    "\"primary\":\"alpha\",\"lease_remaining_ms\":820,"
    "\"peers\":[{\"name\":\"beta\",\"state\":\"up\",\"role\":\"backup\",\"witness\":false,"
    "\"last_heartbeat_ms\":12},{\"name\":\"gamma\",\"state\":\"down\",\"witness\":true,"
    "\"last_heartbeat_ms\":null}],"
    "\"app\":{\"state\":\"serving\",\"started\":\"restore\",\"tool_pid\":10,\"pid\":11,"
    "\"up_ms\":1500,\"generation\":5497558138885,\"restores\":1},"
    "\"counters\":{\"checkpoints\":42,\"checkpoint_bytes\":1048576,\"restores\":2,"
    "\"promotions\":3},"
    "\"histograms\":{\"restore_seconds\":{\"le\":[0.1,0.25],\"cumulative\":[1,2],"
    "\"sum\":0.13,\"count\":2},"
    "\"checkpoint_size_bytes\":{\"base\":{\"le\":[4096,16384],\"cumulative\":[0,1],"
    "\"sum\":9000,\"count\":1},\"delta\":{\"le\":[4096,16384],\"cumulative\":[40,41],"
    "\"sum\":1039576,\"count\":41}}},"
    "\"store\":{\"chain\":\"/var/lib/checksync/chain\",\"newest\":5497558138885,"
    "\"lineage_term\":5,\"received_images\":0,\"received_bytes\":0,\"deltas_since_base\":3,"
    "\"compacting\":false,\"compactions\":0},"
    "\"restore_ready\":null,"
    "\"backups\":[{\"name\":\"beta\",\"up\":true,\"state\":\"lagging\","
    "\"acked_generation\":5497558138860,\"lag_generations\":25,\"lag_bytes\":409600,"
    "\"sending_generation\":5497558138861,\"sent_bytes\":7000000,\"sessions\":2,"
    "\"last_error\":\"\"},"
    "{\"name\":\"we\\\"ird\\\\name\",\"up\":false,\"state\":\"down\",\"acked_generation\":0,"
    "\"lag_generations\":0,\"lag_bytes\":0,\"sending_generation\":0,\"sent_bytes\":0,"
    "\"sessions\":0,\"last_error\":\"\"}],"
    "\"durability\":\"disk\",\"sync\":\"backups\",\"sync_waiting\":1}";

static char *render(const char *status_text)
{
	json_error_t jerr;
	json_t *status = json_loads(status_text, 0, &jerr);
	char *text;
	size_t len;

	assert(status);
	text = cs_metrics_render(status, &len);
	assert(text && strlen(text) == len);
	json_decref(status);
	return text;
}

/* LINE is one whole line of TEXT. */
static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	return 0;
}

static void has_lines(const char *text, const char *const *lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		CHECK(has_line(text, lines[i]), "missing line: %s\n%s", lines[i], text);
}

static int count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_primary(void)
{
	char *t = render(primary_status);
	static const char *const want[] = {
	    "checksync_info{node=\"alpha\",cluster=\"kv\"} 1",
	    "# TYPE checksync_role gauge",
	    "checksync_role{role=\"primary\"} 1",
	    "checksync_role{role=\"backup\"} 0",
	    "checksync_role{role=\"witness\"} 0",
	    "checksync_app_state{state=\"serving\"} 1",
	    "checksync_app_state{state=\"stopped\"} 0",
	    "checksync_term 5",
	    "checksync_lease_remaining_seconds 0.82",
	    "checksync_app_uptime_seconds 1.5",
	    "# TYPE checksync_checkpoints_total counter",
	    "checksync_checkpoints_total 42",
	    "checksync_checkpoint_bytes_total 1048576",
	    "checksync_restores_total 2",
	    "checksync_promotions_total 3",
	    "# TYPE checksync_restore_duration_seconds histogram",
	    "checksync_restore_duration_seconds_bucket{le=\"0.1\"} 1",
	    "checksync_restore_duration_seconds_bucket{le=\"0.25\"} 2",
	    "checksync_restore_duration_seconds_bucket{le=\"+Inf\"} 2",
	    "checksync_restore_duration_seconds_sum 0.13",
	    "checksync_restore_duration_seconds_count 2",
	    "# TYPE checksync_checkpoint_size_bytes histogram",
	    "checksync_checkpoint_size_bytes_bucket{kind=\"base\",le=\"16384\"} 1",
	    "checksync_checkpoint_size_bytes_bucket{kind=\"delta\",le=\"4096\"} 40",
	    "checksync_checkpoint_size_bytes_bucket{kind=\"delta\",le=\"+Inf\"} 41",
	    "checksync_checkpoint_size_bytes_sum{kind=\"delta\"} 1039576",
	    "checksync_checkpoint_size_bytes_count{kind=\"base\"} 1",
	    "checksync_chain_generation 5497558138885",
	    "checksync_sync_waiting 1",
	    "checksync_peer_up{peer=\"beta\"} 1",
	    "checksync_peer_up{peer=\"gamma\"} 0",
	    "checksync_peer_heartbeat_age_seconds{peer=\"beta\"} 0.012",
	    "checksync_backup_up{backup=\"beta\"} 1",
	    "checksync_backup_acked_generation{backup=\"beta\"} 5497558138860",
	    "checksync_backup_lag_generations{backup=\"beta\"} 25",
	    "checksync_backup_lag_bytes{backup=\"beta\"} 409600",
	    "checksync_backup_sent_bytes_total{backup=\"beta\"} 7000000",
	    "checksync_backup_sessions_total{backup=\"beta\"} 2",
	    "checksync_backup_up{backup=\"we\\\"ird\\\\name\"} 0",
	};

	has_lines(t, want, sizeof(want) / sizeof(want[0]));
	/* A null heartbeat age and a null restore_ready are no sample. */
	CHECK(!strstr(t, "checksync_peer_heartbeat_age_seconds{peer=\"gamma\"}"), "%s", t);
	CHECK(!strstr(t, "checksync_restore_ready"), "%s", t);
	/* Histograms absent from the status are not declared. */
	CHECK(!strstr(t, "checksync_checkpoint_pause_seconds"), "%s", t);
	CHECK(count(t, "# TYPE checksync_checkpoint_size_bytes ") == 1, "%s", t);
	/* Each family is declared once, before its samples. */
	CHECK(count(t, "# TYPE checksync_backup_lag_bytes ") == 1, "%s", t);
	CHECK(strstr(t, "# TYPE checksync_backup_lag_bytes ") <
	          strstr(t, "checksync_backup_lag_bytes{"),
	      "%s", t);
	CHECK(count(t, "} 1\n") >= 3, "%s", t);
	free(t);
}

static void test_backup(void)
{
	char *t = render(
	    "{\"node\":\"beta\",\"cluster\":\"kv\",\"role\":\"backup\",\"term\":5,"
	    "\"lease_remaining_ms\":null,\"peers\":[],\"app\":null,"
	    "\"restore_ready\":{\"ready\":true,\"reason\":\"ok\"},\"backups\":[],"
	    "\"standby\":{\"state\":\"ready\",\"why\":\"built\",\"pid\":77,"
	    "\"generation\":5497558138885,\"rss_bytes\":320000000,\"applied\":12,"
	    "\"last_apply_ms\":4,\"last_apply_cpu_ms\":3,\"build_ms\":900,\"starts\":1},"
	    "\"failovers\":[{\"name\":\"standby\",\"count\":3},{\"name\":\"cold\",\"count\":1}],"
	    "\"histograms\":{\"standby_apply_seconds\":{\"le\":[0.005,0.01],"
	    "\"cumulative\":[11,12],\"sum\":0.05,\"count\":12}}}");
	static const char *const want[] = {
	    "# TYPE checksync_standby_state gauge",
	    "checksync_standby_state{state=\"ready\"} 1",
	    "checksync_standby_state{state=\"failed\"} 0",
	    "checksync_standby_rss_bytes 320000000",
	    "checksync_standby_generation 5497558138885",
	    "# TYPE checksync_standby_applied_total counter",
	    "checksync_standby_applied_total 12",
	    "# TYPE checksync_standby_apply_duration_seconds histogram",
	    "checksync_standby_apply_duration_seconds_bucket{le=\"0.005\"} 11",
	    "checksync_standby_apply_duration_seconds_count 12",
	    "# TYPE checksync_failovers_total counter",
	    "checksync_failovers_total{path=\"standby\"} 3",
	    "checksync_failovers_total{path=\"cold\"} 1",
	};

	has_lines(t, want, sizeof(want) / sizeof(want[0]));

	CHECK(has_line(t, "checksync_role{role=\"backup\"} 1"), "%s", t);
	CHECK(count(t, "checksync_role{") == 6 &&
	          count(t, "checksync_role{role=\"primary\"} 0") == 1,
	      "%s", t);
	CHECK(has_line(t, "checksync_restore_ready 1"), "%s", t);
	/* No app, no lease known, no backups: none of their families. */
	CHECK(!strstr(t, "checksync_app_state"), "%s", t);
	CHECK(!strstr(t, "checksync_lease_remaining_seconds"), "%s", t);
	CHECK(!strstr(t, "checksync_backup_"), "%s", t);
	free(t);
}

/* Observations land in the first bucket whose bound holds them; buckets of
 * another histogram land whole; the JSON is cumulative. */
static void test_histogram(void)
{
	static const double bounds[] = {1, 10, 100};
	static const double coarse[] = {10, 1000};
	struct cs_hist h, c;
	json_t *j;

	cs_hist_init(&h, bounds, 3);
	cs_hist_observe(&h, 1); /* on a bound: that bucket (le is "at most") */
	cs_hist_observe(&h, 5);
	cs_hist_observe(&h, 5000); /* above every bound: only +Inf */
	cs_hist_add_bucket(&h, 100, 2);
	CHECK(h.bucket[0] == 1 && h.bucket[1] == 1 && h.bucket[2] == 2 && h.bucket[3] == 1 &&
	          h.count == 5 && h.sum == 5006,
	      "buckets %llu %llu %llu %llu", (unsigned long long)h.bucket[0],
	      (unsigned long long)h.bucket[1], (unsigned long long)h.bucket[2],
	      (unsigned long long)h.bucket[3]);
	cs_hist_init(&c, coarse, 2);
	cs_hist_add_bucket(&c, 1, 3);   /* fits whole into le=10 */
	cs_hist_add_bucket(&c, 100, 4); /* into le=1000 */
	CHECK(c.bucket[0] == 3 && c.bucket[1] == 4 && c.bucket[2] == 0, "coarse");
	cs_hist_merge(&h, &h);
	j = cs_hist_json(&h);
	CHECK(json_integer_value(json_array_get(json_object_get(j, "cumulative"), 0)) == 2 &&
	          json_integer_value(json_array_get(json_object_get(j, "cumulative"), 2)) == 8 &&
	          json_integer_value(json_object_get(j, "count")) == 10 &&
	          json_real_value(json_object_get(j, "sum")) == 10012,
	      "json");
	json_decref(j);
}

int main(void)
{
	test_histogram();
	test_primary();
	test_backup();
	if (failures) {
		fprintf(stderr, "%d checks failed\n", failures);
		return 1;
	}
	printf("metrics: all checks passed\n");
	return 0;
}
