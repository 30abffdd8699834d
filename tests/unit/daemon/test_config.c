/* Unit tests of daemon/config.c: the good example, defaults, and one broken
 * config per rule, each checked by the text of its message (file name,
 * JSON path, expectation and finding). Usage: test_config EXAMPLE_JSON */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;
static char dir[] = "/tmp/cs-test-config-XXXXXX";
static char file[256]; /* where each config under test is written */

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static void touch(const char *name, mode_t mode)
{
	char path[300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f || fputs("#!/bin/sh\nexit 0\n", f) < 0 || fclose(f) != 0 || chmod(path, mode) < 0) {
		perror(path);
		exit(1);
	}
}

/* The example, with the files pointing into our temp dir. */
static json_t *good(void)
{
	json_error_t e;
	json_t *j = json_pack_ex(
	    &e, 0,
	    "{s:s, s:s, s:s, s:[{s:s,s:s},{s:s,s:s},{s:s,s:s,s:b}], s:{s:s%,s:s%,s:s%},"
	    " s:{s:i,s:i}, s:s, s:s, s:{s:s%,s:s%}, s:{s:[s,s,s],s:s,s:{},s:s}, s:{s:i}}",
	    "node", "alpha", "cluster", "kv", "listen", "0.0.0.0:7400", "peers", "name", "alpha",
	    "address", "10.77.0.1:7400", "name", "beta", "address", "10.77.0.2:7400", "name",
	    "gamma", "address", "10.77.0.3:7400", "witness", 1, "tls", "ca", "", (size_t)0, "cert",
	    "", (size_t)0, "key", "", (size_t)0, "heartbeat", "interval_ms", 100, "timeout_ms",
	    1000, "state_dir", "/var/lib/checksync", "control_socket",
	    "/run/checksync/control.sock", "hooks", "notify", "", (size_t)0, "fence", "", (size_t)0,
	    "app", "exec", "/usr/bin/kvserver", "-listen", ":8080", "user", "kv", "env", "workdir",
	    "/", "checkpoint", "interval_ms", 100);
	char path[300];

	if (!j) {
		fprintf(stderr, "json_pack: %s\n", e.text);
		exit(1);
	}
	static const char *const files[][2] = {{"tls", "ca"},
	                                       {"tls", "cert"},
	                                       {"tls", "key"},
	                                       {"hooks", "notify"},
	                                       {"hooks", "fence"}};
	static const char *const names[] = {"ca.pem", "alpha.pem", "alpha.key", "notify.sh",
	                                    "fence.sh"};
	for (size_t i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		json_object_set_new(json_object_get(j, files[i][0]), files[i][1],
		                    json_string(path));
	}
	return j;
}

/* Sets (or with v NULL deletes) the value at a path like "peers[2].address". */
static void set(json_t *node, const char *path, json_t *v)
{
	while (*path) {
		bool index = *path == '[';
		size_t n = index ? strcspn(path, "]") - 1 : strcspn(path, ".[");
		char key[64];
		const char *rest = path + n + (index ? 2 : 0);

		snprintf(key, sizeof(key), "%.*s", (int)n, path + index);
		rest += *rest == '.';
		if (!*rest) {
			if (index && v)
				json_array_set_new(node, atoi(key), v);
			else if (index)
				json_array_remove(node, atoi(key));
			else if (v)
				json_object_set_new(node, key, v);
			else
				json_object_del(node, key);
			return;
		}
		node = index ? json_array_get(node, atoi(key)) : json_object_get(node, key);
		path = rest;
	}
}

static int load_json(json_t *j, struct cs_config **cfg, char *err, size_t len)
{
	if (json_dump_file(j, file, JSON_INDENT(2)) < 0) {
		perror(file);
		exit(1);
	}
	json_decref(j);
	return cs_config_load(file, 0, cfg, err, len);
}

/* Loads J (stolen) and checks that it fails with a message holding the file
 * name and every one of the NULL-terminated fragments. */
static void expect_error(int line, json_t *j, ...)
{
	struct cs_config *cfg = (void *)1;
	char err[512] = "";
	const char *frag;
	va_list ap;
	int r = load_json(j, &cfg, err, sizeof(err));

	if (r != -EINVAL || cfg != NULL || strncmp(err, file, strlen(file)) != 0) {
		fprintf(
		    stderr,
		    "line %d: expected -EINVAL and a message starting with the file, got %d: %s\n",
		    line, r, err);
		failures++;
	}
	va_start(ap, j);
	while ((frag = va_arg(ap, const char *))) {
		if (!strstr(err, frag)) {
			fprintf(stderr, "line %d: message lacks \"%s\": %s\n", line, frag, err);
			failures++;
		}
	}
	va_end(ap);
	cs_config_free(cfg);
}
#define EXPECT_ERROR(j, ...) expect_error(__LINE__, (j), __VA_ARGS__, (const char *)NULL)

/* The data plane's keys, absent from good(): their defaults. */
static void check_data_plane_defaults(const struct cs_config *cfg)
{
	CHECK(cfg->checkpoint.durability == CS_DURABILITY_DISK);
	CHECK(cfg->checkpoint.sync == CS_SYNC_BACKUPS);
	CHECK(cfg->checkpoint.sync_timeout_ms == 5000);
	CHECK(cfg->checkpoint.max_buffer_bytes == 64ull * 1024 * 1024);
	CHECK(cfg->checkpoint.keep_stale_chains == 2);
	CHECK(cfg->checkpoint.standby);
	if (cfg->has_app) {
		CHECK(cfg->app.on_exit == CS_ON_EXIT_RESTORE);
		CHECK(cfg->app.max_restores_per_minute == 3);
	}
}

static void test_good(void)
{
	struct cs_config *cfg = NULL;
	char err[512] = "";
	int r = load_json(good(), &cfg, err, sizeof(err));

	if (r != 0) {
		fprintf(stderr, "good config failed: %s\n", err);
		failures++;
		return;
	}
	CHECK(strcmp(cfg->node, "alpha") == 0 && strcmp(cfg->cluster, "kv") == 0);
	CHECK(strcmp(cfg->listen_host, "0.0.0.0") == 0 && cfg->listen_port == 7400);
	CHECK(cfg->n_peers == 3 && strcmp(cfg->peers[1].name, "beta") == 0);
	CHECK(strcmp(cfg->peers[1].host, "10.77.0.2") == 0 && cfg->peers[1].port == 7400);
	CHECK(!cfg->peers[0].witness && !cfg->peers[1].witness && cfg->peers[2].witness);
	CHECK(strstr(cfg->tls.key, "/alpha.key") != NULL);
	CHECK(cfg->heartbeat.interval_ms == 100 && cfg->heartbeat.timeout_ms == 1000);
	CHECK(cfg->heartbeat.drift_ms == 100);
	CHECK(strcmp(cfg->state_dir, "/var/lib/checksync") == 0);
	CHECK(cfg->control_group == NULL);
	CHECK(cfg->has_app && cfg->app.n_exec == 3 && strcmp(cfg->app.exec[2], ":8080") == 0);
	CHECK(cfg->app.exec[3] == NULL && cfg->app.n_env == 0 && cfg->app.env[0] == NULL);
	CHECK(strcmp(cfg->app.user, "kv") == 0 && strcmp(cfg->app.workdir, "/") == 0);
	CHECK(cfg->checkpoint.interval_ms == 100 && cfg->hooks.timeout_ms == 10000);
	check_data_plane_defaults(cfg);
	CHECK(cs_config_self(cfg) == &cfg->peers[0]);
	CHECK(cs_config_peer(cfg, "gamma") == &cfg->peers[2] && !cs_config_peer(cfg, "delta"));
	CHECK(cs_config_voters(cfg) == 3 && cs_config_majority(cfg) == 2);
	CHECK(cs_config_preferred(cfg) == &cfg->peers[0]);
	cs_config_free(cfg);
}

static void test_example(const char *path)
{
	struct cs_config *cfg = NULL;
	char err[512] = "";
	int r = cs_config_load(path, CS_CONFIG_NO_FS_CHECKS, &cfg, err, sizeof(err));

	if (r != 0)
		fprintf(stderr, "example %s: %s\n", path, err), failures++;
	else
		CHECK(cfg->n_peers == 3 && strcmp(cfg->app.exec[0], "/usr/bin/kvserver") == 0 &&
		      cfg->app.on_exit == CS_ON_EXIT_RESTORE &&
		      cfg->checkpoint.durability == CS_DURABILITY_DISK &&
		      cfg->checkpoint.sync == CS_SYNC_BACKUPS);
	cs_config_free(cfg);
}

static void test_defaults(void)
{
	json_t *j = good();
	struct cs_config *cfg = NULL;
	char err[512] = "";
	static const char *const optional[] = {"listen",         "heartbeat", "state_dir",
	                                       "control_socket", "app",       "checkpoint"};

	for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
		json_object_del(j, optional[i]);
	set(j, "hooks.notify", NULL);
	set(j, "peers[1].address", json_string("[fd00::2]:7401"));
	set(j, "peers[0].address", json_string("alpha.example.com:7402"));
	if (load_json(j, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "minimal config failed: %s\n", err);
		failures++;
		return;
	}
	CHECK(strcmp(cfg->listen, "0.0.0.0:7402") == 0 && cfg->listen_port == 7402);
	CHECK(strcmp(cfg->peers[1].host, "fd00::2") == 0 && cfg->peers[1].port == 7401);
	CHECK(strcmp(cfg->peers[0].host, "alpha.example.com") == 0);
	CHECK(cfg->heartbeat.interval_ms == 100 && cfg->heartbeat.timeout_ms == 1000 &&
	      cfg->heartbeat.drift_ms == 100);
	CHECK(strcmp(cfg->state_dir, CS_CONFIG_DEFAULT_STATE) == 0);
	CHECK(strcmp(cfg->control_socket, CS_CONFIG_DEFAULT_SOCKET) == 0);
	CHECK(!cfg->has_app && cfg->app.exec == NULL);
	CHECK(cfg->checkpoint.interval_ms == 100);
	check_data_plane_defaults(cfg);
	CHECK(cfg->hooks.notify == NULL && cfg->hooks.fence != NULL &&
	      cfg->hooks.timeout_ms == 10000);
	cs_config_free(cfg);
}

/* Every data-plane key set to a value other than its default, at the edges
 * of the ranges. */
static void test_data_plane(void)
{
	json_t *j = good();
	struct cs_config *cfg = NULL;
	char err[512] = "";

	set(j, "checkpoint.durability", json_string("memory"));
	set(j, "checkpoint.sync", json_string("local"));
	set(j, "checkpoint.sync_timeout_ms", json_integer(600000));
	set(j, "checkpoint.max_buffer_mb", json_integer(65536));
	set(j, "checkpoint.keep_stale_chains", json_integer(0));
	set(j, "checkpoint.standby", json_false());
	set(j, "app.on_exit", json_string("failover"));
	set(j, "app.max_restores_per_minute", json_integer(1));
	if (load_json(j, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "data plane config failed: %s\n", err);
		failures++;
		return;
	}
	CHECK(cfg->checkpoint.durability == CS_DURABILITY_MEMORY);
	CHECK(cfg->checkpoint.sync == CS_SYNC_LOCAL);
	CHECK(cfg->checkpoint.sync_timeout_ms == 600000);
	CHECK(cfg->checkpoint.max_buffer_bytes == 65536ull << 20);
	CHECK(cfg->checkpoint.keep_stale_chains == 0);
	CHECK(!cfg->checkpoint.standby);
	CHECK(cfg->app.on_exit == CS_ON_EXIT_FAILOVER);
	CHECK(cfg->app.max_restores_per_minute == 1);
	cs_config_free(cfg);

	j = good();
	set(j, "app.on_exit", json_string("restart"));
	set(j, "checkpoint.max_buffer_mb", json_integer(1));
	set(j, "checkpoint.keep_stale_chains", json_integer(100));
	set(j, "app.max_restores_per_minute", json_integer(1000));
	CHECK(load_json(j, &cfg, err, sizeof(err)) == 0);
	if (cfg) {
		CHECK(cfg->app.on_exit == CS_ON_EXIT_RESTART);
		CHECK(cfg->checkpoint.max_buffer_bytes == 1u << 20);
		CHECK(cfg->checkpoint.keep_stale_chains == 100);
		CHECK(cfg->app.max_restores_per_minute == 1000);
	}
	cs_config_free(cfg);
}

static void test_names(void)
{
	CHECK(strcmp(cs_durability_name(CS_DURABILITY_DISK), "disk") == 0);
	CHECK(strcmp(cs_durability_name(CS_DURABILITY_MEMORY), "memory") == 0);
	CHECK(cs_durability_name((enum cs_durability)2) == NULL);
	CHECK(strcmp(cs_sync_mode_name(CS_SYNC_BACKUPS), "backups") == 0);
	CHECK(strcmp(cs_sync_mode_name(CS_SYNC_LOCAL), "local") == 0);
	CHECK(cs_sync_mode_name((enum cs_sync_mode)2) == NULL);
	CHECK(strcmp(cs_on_exit_name(CS_ON_EXIT_RESTORE), "restore") == 0);
	CHECK(strcmp(cs_on_exit_name(CS_ON_EXIT_RESTART), "restart") == 0);
	CHECK(strcmp(cs_on_exit_name(CS_ON_EXIT_FAILOVER), "failover") == 0);
	CHECK(cs_on_exit_name((enum cs_on_exit)3) == NULL);
	CHECK(cs_on_exit_name((enum cs_on_exit) - 1) == NULL);
}

static void test_syntax_and_file(void)
{
	struct cs_config *cfg = NULL;
	char err[512] = "", expect[300];
	FILE *f = fopen(file, "w");

	fputs("{\n  \"node\": \"alpha\",\n  oops\n}\n", f);
	fclose(f);
	CHECK(cs_config_load(file, 0, &cfg, err, sizeof(err)) == -EINVAL && !cfg);
	snprintf(expect, sizeof(expect), "%s:3:", file);
	CHECK(strstr(err, expect) && strstr(err, "invalid JSON"));

	f = fopen(file, "w");
	fputs("{\"node\": \"alpha\", \"node\": \"beta\"}", f);
	fclose(f);
	CHECK(cs_config_load(file, 0, &cfg, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "duplicate"));

	snprintf(expect, sizeof(expect), "%s/absent.json", dir);
	CHECK(cs_config_load(expect, 0, &cfg, err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, expect) && strstr(err, "No such file or directory"));

	f = fopen(file, "w");
	fputs("[1, 2]", f);
	fclose(f);
	CHECK(cs_config_load(file, 0, &cfg, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "top level: expected object, found array"));
}

static json_t *with(const char *path, json_t *v)
{
	json_t *j = good();

	set(j, path, v);
	return j;
}

/* Values for the table of test_diff_data_plane (a json_t cannot be a
 * static initializer). */
static json_t *json_memory(void)
{
	return json_string("memory");
}

static json_t *json_local(void)
{
	return json_string("local");
}

static json_t *json_failover(void)
{
	return json_string("failover");
}

static json_t *json_7(void)
{
	return json_integer(7);
}

static void test_broken(void)
{
	char missing[300], notexec[300];
	json_t *j;

	snprintf(missing, sizeof(missing), "%s/missing.key", dir);
	snprintf(notexec, sizeof(notexec), "%s/plain.txt", dir);
	EXPECT_ERROR(with("peers[2].address", json_integer(7400)),
	             ": peers[2].address: expected \"host:port\" string, found number 7400");
	EXPECT_ERROR(with("tls.cert", NULL), ": tls.cert: expected", "found nothing (missing key)");
	EXPECT_ERROR(with("node", NULL), ": node: expected name string", "missing key");
	EXPECT_ERROR(with("heartbeat.interval_ms", json_string("100")),
	             ": heartbeat.interval_ms: expected integer milliseconds",
	             "found string \"100\"");
	EXPECT_ERROR(with("heartbeat.timeout_ms", json_real(1.5)), "heartbeat.timeout_ms",
	             "found number 1.5");
	EXPECT_ERROR(with("heartbeat.timeout_ms", json_integer(0)), "heartbeat.timeout_ms",
	             "found number 0");
	EXPECT_ERROR(with("peers[2].witness", json_string("yes")),
	             ": peers[2].witness: expected true or false, found string \"yes\"");
	EXPECT_ERROR(with("heartbeat.intervl_ms", json_integer(5)),
	             ": heartbeat.intervl_ms: unknown key", "interval_ms, timeout_ms");
	EXPECT_ERROR(with("peers[1].adress", json_string("x:1")), ": peers[1].adress: unknown key");
	EXPECT_ERROR(with("colour", json_true()), ": colour: unknown key");
	EXPECT_ERROR(
	    with("node", json_string("delta")),
	    ": node: expected the name of one of the peers (alpha, beta, gamma), found \"delta\"");
	EXPECT_ERROR(with("peers[1].name", json_string("alpha")),
	             ": peers[1].name: expected a unique name, found \"alpha\" again");
	EXPECT_ERROR(with("peers[1].name", json_string("be ta")),
	             ": peers[1].name: expected name string", "found string \"be ta\"");
	EXPECT_ERROR(with("peers[1].address", json_string("10.77.0.2")),
	             ": peers[1].address: expected", "found string \"10.77.0.2\" (no port)");
	EXPECT_ERROR(with("peers[1].address", json_string("10.77.0.300:7400")), "peers[1].address",
	             "(bad host)");
	EXPECT_ERROR(with("peers[1].address", json_string("fd00::2:7400")), "peers[1].address",
	             "IPv6 address needs brackets");
	EXPECT_ERROR(with("peers[1].address", json_string("beta:70000")), "peers[1].address",
	             "port must be 1-65535");
	EXPECT_ERROR(with("peers[1].address", json_string("-beta:7400")), "peers[1].address",
	             "(bad host)");
	EXPECT_ERROR(with("listen", json_string("[::1]7400")), ": listen: expected", "[addr]:port");
	EXPECT_ERROR(with("tls.key", json_string(missing)), ": tls.key: file \"", missing,
	             "cannot open it: No such file or directory");
	EXPECT_ERROR(with("tls.ca", json_string(dir)), ": tls.ca: file", "not a regular file");
	EXPECT_ERROR(with("tls.ca", json_string("ca.pem")), ": tls.ca: expected", "(not absolute)");
	EXPECT_ERROR(with("hooks.fence", json_string(notexec)), ": hooks.fence: program",
	             "cannot execute it");
	EXPECT_ERROR(
	    with("heartbeat.interval_ms", json_integer(1000)),
	    ": heartbeat.interval_ms: expected less than heartbeat.timeout_ms (1000), found 1000");
	EXPECT_ERROR(with("state_dir", json_string("var/lib")),
	             ": state_dir: expected absolute path", "(not absolute)");
	EXPECT_ERROR(with("peers", json_array()), ": peers: expected non-empty array",
	             "found array");
	EXPECT_ERROR(with("peers[1]", json_string("beta")),
	             ": peers[1]: expected object, found string");
	EXPECT_ERROR(with("app.exec", json_pack("[s]", "kvserver")),
	             ": app.exec[0]: expected absolute path");
	EXPECT_ERROR(with("app.exec", json_pack("[s,i]", "/bin/kv", 3)),
	             ": app.exec[1]: expected non-empty string", "found number 3");
	EXPECT_ERROR(with("app.env", json_pack("{s:i}", "PORT", 80)),
	             ": app.env.PORT: expected string");
	EXPECT_ERROR(with("app.env", json_pack("[]")), ": app.env: expected object of strings");
	EXPECT_ERROR(with("checkpoint.durability", json_string("ssd")),
	             ": checkpoint.durability: expected one of \"disk\", \"memory\", found "
	             "string \"ssd\"");
	EXPECT_ERROR(with("checkpoint.standby", json_string("off")),
	             ": checkpoint.standby: expected true or false, found string \"off\"");
	EXPECT_ERROR(with("checkpoint.standby", json_integer(0)),
	             ": checkpoint.standby: expected true or false, found number 0");
	EXPECT_ERROR(with("checkpoint.durability", json_integer(1)),
	             ": checkpoint.durability:", "found number 1");
	EXPECT_ERROR(with("checkpoint.sync", json_string("Backups")),
	             ": checkpoint.sync: expected one of \"backups\", \"local\", found string "
	             "\"Backups\"");
	EXPECT_ERROR(
	    with("checkpoint.sync_timeout_ms", json_integer(0)),
	    ": checkpoint.sync_timeout_ms: expected integer milliseconds (1-600000), found "
	    "number 0");
	EXPECT_ERROR(with("checkpoint.sync_timeout_ms", json_integer(600001)),
	             ": checkpoint.sync_timeout_ms:", "found number 600001");
	EXPECT_ERROR(with("checkpoint.max_buffer_mb", json_integer(0)),
	             ": checkpoint.max_buffer_mb: expected integer MiB (1-65536), found number 0");
	EXPECT_ERROR(with("checkpoint.max_buffer_mb", json_integer(65537)),
	             ": checkpoint.max_buffer_mb:", "found number 65537");
	EXPECT_ERROR(with("checkpoint.max_buffer_mb", json_real(1.5)),
	             ": checkpoint.max_buffer_mb:", "found number 1.5");
	EXPECT_ERROR(with("checkpoint.keep_stale_chains", json_integer(-1)),
	             ": checkpoint.keep_stale_chains: expected integer (0-100), found number -1");
	EXPECT_ERROR(with("checkpoint.keep_stale_chains", json_integer(101)),
	             ": checkpoint.keep_stale_chains:", "found number 101");
	EXPECT_ERROR(with("checkpoint.max_buffer_bytes", json_integer(1)),
	             ": checkpoint.max_buffer_bytes: unknown key",
	             "max_buffer_mb, keep_stale_chains");
	EXPECT_ERROR(with("app.on_exit", json_string("reboot")),
	             ": app.on_exit: expected one of \"restore\", \"restart\", \"failover\", "
	             "found string \"reboot\"");
	EXPECT_ERROR(with("app.max_restores_per_minute", json_integer(0)),
	             ": app.max_restores_per_minute: expected integer (1-1000), found number 0");
	EXPECT_ERROR(with("app.max_restores_per_minute", json_string("3")),
	             ": app.max_restores_per_minute:", "found string \"3\"");
	EXPECT_ERROR(with("control_group", json_string("no-such-group-cs")),
	             ": control_group:", "(no such group)");

	j = good();
	set(j, "peers[0].witness", json_true());
	set(j, "peers[1].witness", json_true());
	EXPECT_ERROR(j, ": peers: expected at least one peer that is not a witness");

	j = good();
	set(j, "peers[2]", NULL);
	set(j, "hooks.fence", NULL);
	EXPECT_ERROR(j, ": hooks.fence: expected a fence hook, found none");
}

static void test_diff(void)
{
	struct cs_config *a = NULL, *b = NULL, *c = NULL;
	char err[512], buf[128];
	json_t *j;

	CHECK(load_json(good(), &a, err, sizeof(err)) == 0);
	CHECK(load_json(good(), &b, err, sizeof(err)) == 0);
	j = good();
	set(j, "heartbeat.timeout_ms", json_integer(2000));
	set(j, "peers[1].address", json_string("10.77.0.9:7400"));
	set(j, "hooks.notify", NULL);
	CHECK(load_json(j, &c, err, sizeof(err)) == 0);
	if (a && b && c) {
		unsigned d = cs_config_diff(a, c);

		CHECK(cs_config_diff(a, b) == 0);
		CHECK(d == (CS_CHANGE_HEARTBEAT | CS_CHANGE_PEERS | CS_CHANGE_HOOKS));
		CHECK((d & ~CS_CHANGES_LIVE) == CS_CHANGE_PEERS);
		CHECK(strcmp(cs_config_changes_format(d, buf, sizeof(buf)),
		             "hooks, heartbeat, peers") == 0);
		CHECK(strcmp(cs_config_changes_format(0, buf, sizeof(buf)), "none") == 0);
		CHECK(strcmp(cs_config_change_name(CS_CHANGE_LISTEN), "listen") == 0);
	}
	cs_config_free(a);
	cs_config_free(b);
	cs_config_free(c);
}

/* Each data-plane key alone changes its object's bit, which needs a restart. */
static void test_diff_data_plane(void)
{
	static const struct {
		const char *path;
		json_t *(*value)(void);
		unsigned change;
	} cases[] = {
	    {"checkpoint.durability", json_memory, CS_CHANGE_CHECKPOINT},
	    {"checkpoint.sync", json_local, CS_CHANGE_CHECKPOINT},
	    {"checkpoint.sync_timeout_ms", json_7, CS_CHANGE_CHECKPOINT},
	    {"checkpoint.max_buffer_mb", json_7, CS_CHANGE_CHECKPOINT},
	    {"checkpoint.keep_stale_chains", json_7, CS_CHANGE_CHECKPOINT},
	    {"app.on_exit", json_failover, CS_CHANGE_APP},
	    {"app.max_restores_per_minute", json_7, CS_CHANGE_APP},
	};
	struct cs_config *a = NULL, *b;
	char err[512];

	CHECK(load_json(good(), &a, err, sizeof(err)) == 0);
	for (size_t i = 0; a && i < sizeof(cases) / sizeof(cases[0]); i++) {
		b = NULL;
		CHECK(load_json(with(cases[i].path, cases[i].value()), &b, err, sizeof(err)) == 0);
		if (!b)
			continue;
		if (cs_config_diff(a, b) != cases[i].change ||
		    (cases[i].change & CS_CHANGES_LIVE)) {
			fprintf(stderr, "diff of %s: %#x\n", cases[i].path, cs_config_diff(a, b));
			failures++;
		}
		cs_config_free(b);
	}
	cs_config_free(a);
}

int main(int argc, char **argv)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(file, sizeof(file), "%s/checksync.json", dir);
	touch("ca.pem", 0644);
	touch("alpha.pem", 0644);
	touch("alpha.key", 0600);
	touch("notify.sh", 0755);
	touch("fence.sh", 0755);
	touch("plain.txt", 0644);
	test_good();
	test_defaults();
	test_syntax_and_file();
	test_broken();
	test_diff();
	test_data_plane();
	test_diff_data_plane();
	test_names();
	if (argc > 1)
		test_example(argv[1]);
	/* Clean up our own files only. */
	static const char *const names[] = {"ca.pem",   "alpha.pem", "alpha.key",     "notify.sh",
	                                    "fence.sh", "plain.txt", "checksync.json"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char p[300];
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
	printf("%s (%d failures)\n", failures ? "FAIL" : "ok", failures);
	return failures ? 1 : 0;
}
