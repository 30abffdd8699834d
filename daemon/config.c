/* checksync.json loader. The keys are described by tables (name, type,
 * required or default, where the value goes); one generic walker parses,
 * applies defaults and frees by those tables. Cross-key rules (node among
 * the peers, unique names, ...) run after the walk, in config_check.
 * docs/config.md documents every key; keep it in step with the tables. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MS_MAX        3600000u      /* an hour: anything longer is a typo */
#define FILE_SIZE_MAX (1024 * 1024) /* a config is a few hundred bytes */
#define STRING_MAX    4096

enum key_type {
	K_STRING,  /* any non-empty string */
	K_NAME,    /* peer or cluster name */
	K_ADDRESS, /* "host:port", split into host and port */
	K_PATH,    /* absolute path */
	K_FILE,    /* absolute path of a readable regular file */
	K_EXEC,    /* absolute path of an executable regular file */
	K_MS,      /* integer milliseconds, 1..MS_MAX or the key's min..max */
	K_COUNT,   /* integer, the key's min..max */
	K_MIB,     /* integer MiB, the key's min..max, stored in bytes (uint64_t) */
	K_ENUM,    /* one of the key's choices, stored as the enum value (its index) */
	K_BOOL,
	K_OBJECT, /* nested table */
	K_PEERS,  /* array of peer objects */
	K_ARGV,   /* non-empty array of strings, NULL-terminated */
	K_ENV,    /* object of strings, stored as NULL-terminated "K=V" */
};

struct key {
	const char *name;
	enum key_type type;
	bool required;
	size_t off;                 /* the field, relative to the struct of its table */
	size_t off_host;            /* K_ADDRESS: where the host goes */
	size_t off_port;            /* K_ADDRESS: where the port goes */
	size_t off_count;           /* K_PEERS, K_ARGV, K_ENV: where the count goes */
	const struct key *sub;      /* K_OBJECT, K_PEERS: table of the members */
	const char *def_str;        /* default of a string-like key */
	unsigned def_num;           /* default of a number or K_ENUM key (for K_MS, 0: none) */
	unsigned min, max;          /* range of a number; a K_MS key with max 0 has 1..MS_MAX */
	const char *const *choices; /* K_ENUM: names indexed by enum value, NULL-terminated */
};

/* K_ENUM fields are written as unsigned: every enum here must be one. */
_Static_assert(sizeof(enum cs_durability) == sizeof(unsigned) &&
                   sizeof(enum cs_sync_mode) == sizeof(unsigned) &&
                   sizeof(enum cs_on_exit) == sizeof(unsigned),
               "enums stored as unsigned");

static const char *const durability_names[] = {
    [CS_DURABILITY_DISK] = "disk",
    [CS_DURABILITY_MEMORY] = "memory",
    NULL,
};

static const char *const sync_mode_names[] = {
    [CS_SYNC_BACKUPS] = "backups",
    [CS_SYNC_LOCAL] = "local",
    NULL,
};

static const char *const on_exit_names[] = {
    [CS_ON_EXIT_RESTORE] = "restore",
    [CS_ON_EXIT_RESTART] = "restart",
    [CS_ON_EXIT_FAILOVER] = "failover",
    NULL,
};

#define OFF(type, field) offsetof(struct type, field)

static const struct key peer_keys[] = {
    {"name", K_NAME, true, OFF(cs_peer_config, name)},
    {"address", K_ADDRESS, true, OFF(cs_peer_config, address),
     .off_host = OFF(cs_peer_config, host), .off_port = OFF(cs_peer_config, port)},
    {"witness", K_BOOL, false, OFF(cs_peer_config, witness)},
    {NULL},
};

static const struct key tls_keys[] = {
    {"ca", K_FILE, true, OFF(cs_tls_config, ca)},
    {"cert", K_FILE, true, OFF(cs_tls_config, cert)},
    {"key", K_FILE, true, OFF(cs_tls_config, key)},
    {NULL},
};

static const struct key heartbeat_keys[] = {
    {"interval_ms", K_MS, false, OFF(cs_heartbeat_config, interval_ms), .def_num = 100},
    {"timeout_ms", K_MS, false, OFF(cs_heartbeat_config, timeout_ms), .def_num = 1000},
    {"drift_ms", K_MS, false, OFF(cs_heartbeat_config, drift_ms), .def_num = 100},
    {NULL},
};

static const struct key hooks_keys[] = {
    {"notify", K_EXEC, false, OFF(cs_hooks_config, notify)},
    {"fence", K_EXEC, false, OFF(cs_hooks_config, fence)},
    {"timeout_ms", K_MS, false, OFF(cs_hooks_config, timeout_ms), .def_num = 10000},
    {NULL},
};

static const struct key app_keys[] = {
    {"exec", K_ARGV, true, OFF(cs_app_config, exec), .off_count = OFF(cs_app_config, n_exec)},
    {"user", K_STRING, false, OFF(cs_app_config, user)},
    {"env", K_ENV, false, OFF(cs_app_config, env), .off_count = OFF(cs_app_config, n_env)},
    {"workdir", K_PATH, false, OFF(cs_app_config, workdir), .def_str = "/"},
    {"on_exit", K_ENUM, false, OFF(cs_app_config, on_exit), .def_num = CS_ON_EXIT_RESTORE,
     .choices = on_exit_names},
    {"max_restores_per_minute", K_COUNT, false, OFF(cs_app_config, max_restores_per_minute),
     .def_num = 3, .min = 1, .max = 1000},
    {NULL},
};

static const struct key checkpoint_keys[] = {
    {"interval_ms", K_MS, false, OFF(cs_checkpoint_config, interval_ms), .def_num = 100},
    {"durability", K_ENUM, false, OFF(cs_checkpoint_config, durability),
     .def_num = CS_DURABILITY_DISK, .choices = durability_names},
    {"sync", K_ENUM, false, OFF(cs_checkpoint_config, sync), .def_num = CS_SYNC_BACKUPS,
     .choices = sync_mode_names},
    {"sync_timeout_ms", K_MS, false, OFF(cs_checkpoint_config, sync_timeout_ms), .def_num = 5000,
     .min = 1, .max = 600000},
    {"max_buffer_mb", K_MIB, false, OFF(cs_checkpoint_config, max_buffer_bytes), .def_num = 64,
     .min = 1, .max = 65536},
    {"keep_stale_chains", K_COUNT, false, OFF(cs_checkpoint_config, keep_stale_chains),
     .def_num = 2, .min = 0, .max = 100},
    {"standby", K_BOOL, false, OFF(cs_checkpoint_config, standby), .def_num = 1},
    {NULL},
};

static const struct key metrics_keys[] = {
    {"listen", K_ADDRESS, false, OFF(cs_metrics_config, listen),
     .off_host = OFF(cs_metrics_config, listen_host),
     .off_port = OFF(cs_metrics_config, listen_port)},
    {NULL},
};

/* "listen" has a derived default (0.0.0.0 and this node's port), set in
 * config_check once the peers are known. */
static const struct key top_keys[] = {
    {"node", K_NAME, true, OFF(cs_config, node)},
    {"cluster", K_NAME, true, OFF(cs_config, cluster)},
    {"listen", K_ADDRESS, false, OFF(cs_config, listen), .off_host = OFF(cs_config, listen_host),
     .off_port = OFF(cs_config, listen_port)},
    {"peers", K_PEERS, true, OFF(cs_config, peers), .off_count = OFF(cs_config, n_peers),
     .sub = peer_keys},
    {"tls", K_OBJECT, true, OFF(cs_config, tls), .sub = tls_keys},
    {"heartbeat", K_OBJECT, false, OFF(cs_config, heartbeat), .sub = heartbeat_keys},
    {"state_dir", K_PATH, false, OFF(cs_config, state_dir), .def_str = CS_CONFIG_DEFAULT_STATE},
    {"control_socket", K_PATH, false, OFF(cs_config, control_socket),
     .def_str = CS_CONFIG_DEFAULT_SOCKET},
    {"control_group", K_STRING, false, OFF(cs_config, control_group)},
    {"hooks", K_OBJECT, false, OFF(cs_config, hooks), .sub = hooks_keys},
    {"app", K_OBJECT, false, OFF(cs_config, app), .sub = app_keys},
    {"checkpoint", K_OBJECT, false, OFF(cs_config, checkpoint), .sub = checkpoint_keys},
    {"metrics", K_OBJECT, false, OFF(cs_config, metrics), .sub = metrics_keys},
    {NULL},
};

static const char *const expected_text[] = {
    [K_STRING] = "non-empty string",
    [K_NAME] = "name string (1-63 of A-Z a-z 0-9 . _ -)",
    [K_ADDRESS] = "\"host:port\" string",
    [K_PATH] = "absolute path string",
    [K_FILE] = "absolute path string of a readable file",
    [K_EXEC] = "absolute path string of an executable file",
    [K_MS] = "integer milliseconds",
    [K_COUNT] = "integer",
    [K_MIB] = "integer MiB",
    [K_ENUM] = "one of",
    [K_BOOL] = "true or false",
    [K_OBJECT] = "object",
    [K_PEERS] = "non-empty array of peer objects",
    [K_ARGV] = "non-empty array of strings",
    [K_ENV] = "object of strings",
};

/* The walk's state: where we are (for messages) and where errors go. */
struct ctx {
	const char *file;
	unsigned flags;
	char path[256];
	size_t plen;
	char *err;
	size_t errlen;
};

static int fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(c->err, c->errlen, "%s: %s: ", c->file, c->plen ? c->path : "top level");
	if (n >= 0 && (size_t)n < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static size_t push_key(struct ctx *c, const char *key)
{
	size_t old = c->plen;
	int n = snprintf(c->path + old, sizeof(c->path) - old, "%s%s", old ? "." : "", key);

	c->plen = n < 0 ? old : (size_t)n + old >= sizeof(c->path) ? sizeof(c->path) - 1 : old + n;
	return old;
}

static size_t push_index(struct ctx *c, size_t i)
{
	size_t old = c->plen;
	int n = snprintf(c->path + old, sizeof(c->path) - old, "[%zu]", i);

	c->plen = n < 0 ? old : (size_t)n + old >= sizeof(c->path) ? sizeof(c->path) - 1 : old + n;
	return old;
}

static void pop(struct ctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

/* "number 7400", "string \"abc\"", "object", ... for messages. */
static const char *describe(const json_t *v, char *buf, size_t len)
{
	char *s;

	switch (json_typeof(v)) {
	case JSON_STRING:
		s = json_dumps(v, JSON_ENCODE_ANY);
		if (s && strlen(s) > 60)
			snprintf(buf, len, "string %.56s...\"", s);
		else
			snprintf(buf, len, "string %s", s ? s : "?");
		free(s);
		return buf;
	case JSON_INTEGER:
		snprintf(buf, len, "number %" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	case JSON_REAL:
		snprintf(buf, len, "number %g", json_real_value(v));
		return buf;
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	case JSON_NULL:
		return "null";
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	}
	return "unknown";
}

static void key_range(const struct key *k, unsigned *ret_min, unsigned *ret_max)
{
	bool ms_default = k->type == K_MS && k->max == 0;

	*ret_min = ms_default ? 1 : k->min;
	*ret_max = ms_default ? MS_MAX : k->max;
}

/* What a key expects, for messages: the type's text, with the key's range
 * ("integer milliseconds (1-600000)") or choices (one of "disk", "memory"). */
static const char *expected(const struct key *k, char *buf, size_t len)
{
	unsigned min, max;
	size_t used;

	switch (k->type) {
	case K_MS:
	case K_COUNT:
	case K_MIB:
		key_range(k, &min, &max);
		snprintf(buf, len, "%s (%u-%u)", expected_text[k->type], min, max);
		return buf;
	case K_ENUM:
		used = (size_t)snprintf(buf, len, "%s", expected_text[k->type]);
		for (size_t i = 0; k->choices[i] && used < len; i++)
			used += (size_t)snprintf(buf + used, len - used, "%s \"%s\"", i ? "," : "",
			                         k->choices[i]);
		return buf;
	default:
		return expected_text[k->type];
	}
}

static int fail_type(struct ctx *c, const struct key *k, const json_t *v, const char *why)
{
	char buf[96], exp[96];

	return fail(c, "expected %s, found %s%s%s%s", expected(k, exp, sizeof(exp)),
	            describe(v, buf, sizeof(buf)), why ? " (" : "", why ? why : "", why ? ")" : "");
}

#define FIELD(base, off, type) ((type *)((char *)(base) + (off)))

bool cs_config_valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CS_CONFIG_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* A DNS host name: labels of letters, digits and '-', not at either end. */
static bool valid_hostname(const char *h)
{
	size_t n = strlen(h), label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = h[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		             (ch >= '0' && ch <= '9');

		if (ch == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			label = 0;
		} else if (alnum || (ch == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && h[n - 1] != '-';
}

/* Splits "host:port"; IPv6 literals in brackets. On error returns a short
 * reason for the message. */
static const char *split_address(const char *s, char **ret_host, uint16_t *ret_port)
{
	const char *colon, *hs = s, *he;
	unsigned char a[16];
	char host[256], *end;
	unsigned long port;

	if (s[0] == '[') {
		he = strchr(s, ']');
		if (!he || he[1] != ':')
			return "IPv6 address needs \"[addr]:port\"";
		hs = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return "no port";
		he = colon;
		if (memchr(s, ':', colon - s))
			return "IPv6 address needs brackets";
	}
	if ((size_t)(he - hs) >= sizeof(host) || he == hs)
		return "bad host";
	memcpy(host, hs, he - hs);
	host[he - hs] = '\0';
	if (s[0] == '['                                   ? inet_pton(AF_INET6, host, a) != 1
	    : strspn(host, "0123456789.") == strlen(host) ? inet_pton(AF_INET, host, a) != 1
	                                                  : !valid_hostname(host))
		return "bad host";
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end || errno || port == 0 || port > 65535)
		return "port must be 1-65535";
	*ret_host = strdup(host);
	*ret_port = (uint16_t)port;
	return *ret_host ? NULL : "out of memory";
}

/* Checks a path with open(2), as the daemon will use it, so permission and
 * existence problems show the real errno. */
static const char *check_file(const char *path, bool exec, char *buf, size_t len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		snprintf(buf, len, "cannot open it: %s", strerror(errno));
		return buf;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return "not a regular file";
	}
	close(fd);
	if (exec && access(path, X_OK) < 0) {
		snprintf(buf, len, "cannot execute it: %s", strerror(errno));
		return buf;
	}
	return NULL;
}

static int parse_object(struct ctx *c, const json_t *obj, const struct key *table, void *base);

static int parse_stringish(struct ctx *c, const struct key *k, const json_t *v, void *base)
{
	const char *s = json_string_value(v), *why = NULL;
	char buf[160];

	if (!s || !*s)
		return fail_type(c, k, v, NULL);
	if (strlen(s) > STRING_MAX)
		return fail_type(c, k, v, "too long");
	switch (k->type) {
	case K_NAME:
		if (!cs_config_valid_name(s))
			return fail_type(c, k, v, NULL);
		break;
	case K_ADDRESS:
		why = split_address(s, FIELD(base, k->off_host, char *),
		                    FIELD(base, k->off_port, uint16_t));
		if (why)
			return fail_type(c, k, v, why);
		break;
	case K_PATH:
	case K_FILE:
	case K_EXEC:
		if (s[0] != '/')
			return fail_type(c, k, v, "not absolute");
		if (k->type != K_PATH && !(c->flags & CS_CONFIG_NO_FS_CHECKS))
			why = check_file(s, k->type == K_EXEC, buf, sizeof(buf));
		if (why)
			return fail(c, "%s \"%s\": %s", k->type == K_EXEC ? "program" : "file", s,
			            why);
		break;
	default:
		break;
	}
	*FIELD(base, k->off, char *) = strdup(s);
	return *FIELD(base, k->off, char *) ? 0 : -ENOMEM;
}

static void set_number(const struct key *k, void *base, unsigned n)
{
	if (k->type == K_MIB)
		*FIELD(base, k->off, uint64_t) = (uint64_t)n << 20;
	else
		*FIELD(base, k->off, unsigned) = n;
}

/* K_MS, K_COUNT, K_MIB: an integer within the key's range. */
static int parse_number(struct ctx *c, const struct key *k, const json_t *v, void *base)
{
	unsigned min, max;
	json_int_t n;

	if (!json_is_integer(v))
		return fail_type(c, k, v, NULL);
	n = json_integer_value(v);
	key_range(k, &min, &max);
	if (n < (json_int_t)min || n > (json_int_t)max)
		return fail_type(c, k, v, NULL);
	set_number(k, base, (unsigned)n);
	return 0;
}

static int parse_enum(struct ctx *c, const struct key *k, const json_t *v, void *base)
{
	if (json_is_string(v)) {
		for (unsigned i = 0; k->choices[i]; i++) {
			if (strcmp(k->choices[i], json_string_value(v)) == 0) {
				*FIELD(base, k->off, unsigned) = i;
				return 0;
			}
		}
	}
	return fail_type(c, k, v, NULL);
}

/* Copies an array of strings (K_ARGV) or an object of strings (K_ENV, as
 * "KEY=VALUE") into a NULL-terminated vector. */
static int parse_vector(struct ctx *c, const struct key *k, const json_t *v, void *base)
{
	bool env = k->type == K_ENV;
	size_t n = env ? json_object_size(v) : json_array_size(v), i = 0, old;
	const char *key;
	json_t *item;
	char **vec, buf[96];
	int r = 0;

	if (env ? !json_is_object(v) : !json_is_array(v) || n == 0)
		return fail_type(c, k, v, NULL);
	vec = calloc(n + 1, sizeof(*vec));
	if (!vec)
		return -ENOMEM;
	*FIELD(base, k->off, char **) = vec;
	*FIELD(base, k->off_count, size_t) = n;
	for (void *it = env ? json_object_iter((json_t *)v) : NULL; i < n; i++) {
		item = env ? json_object_iter_value(it) : json_array_get(v, i);
		key = env ? json_object_iter_key(it) : NULL;
		old = env ? push_key(c, key) : push_index(c, i);
		if (!json_is_string(item) || (!env && !*json_string_value(item)))
			r = fail(c, "expected %s, found %s", env ? "string" : "non-empty string",
			         describe(item, buf, sizeof(buf)));
		else if (env && (!*key || strchr(key, '=')))
			r = fail(c, "expected an environment variable name, found \"%s\"", key);
		else if (!env && i == 0 && json_string_value(item)[0] != '/')
			r = fail(c, "expected absolute path string, found \"%s\"",
			         json_string_value(item));
		else if (asprintf(&vec[i], "%s%s%s", env ? key : "", env ? "=" : "",
		                  json_string_value(item)) < 0)
			vec[i] = NULL, r = -ENOMEM;
		pop(c, old);
		if (r < 0)
			return r;
		if (env)
			it = json_object_iter_next((json_t *)v, it);
	}
	return 0;
}

static int parse_peers(struct ctx *c, const struct key *k, const json_t *v, void *base)
{
	struct cs_peer_config *peers;
	size_t n = json_array_size(v), old;
	int r;

	if (!json_is_array(v) || n == 0)
		return fail_type(c, k, v, NULL);
	peers = calloc(n, sizeof(*peers));
	if (!peers)
		return -ENOMEM;
	*FIELD(base, k->off, struct cs_peer_config *) = peers;
	*FIELD(base, k->off_count, size_t) = n;
	for (size_t i = 0; i < n; i++) {
		old = push_index(c, i);
		r = parse_object(c, json_array_get(v, i), k->sub, &peers[i]);
		pop(c, old);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_value(struct ctx *c, const struct key *k, const json_t *v, void *base)
{
	switch (k->type) {
	case K_MS:
	case K_COUNT:
	case K_MIB:
		return parse_number(c, k, v, base);
	case K_ENUM:
		return parse_enum(c, k, v, base);
	case K_BOOL:
		if (!json_is_boolean(v))
			return fail_type(c, k, v, NULL);
		*FIELD(base, k->off, bool) = json_is_true(v);
		return 0;
	case K_OBJECT:
		return parse_object(c, v, k->sub, FIELD(base, k->off, void));
	case K_PEERS:
		return parse_peers(c, k, v, base);
	case K_ARGV:
	case K_ENV:
		return parse_vector(c, k, v, base);
	default:
		return parse_stringish(c, k, v, base);
	}
}

static bool has_required(const struct key *table)
{
	for (const struct key *k = table; k->name; k++)
		if (k->required)
			return true;
	return false;
}

/* The one place defaults are applied: a key that is absent gets the table's
 * default; an absent optional object gets its members' defaults, unless it
 * has required members (then it stays empty: "app" on a witness). */
static int apply_default(struct ctx *c, const struct key *k, void *base)
{
	char exp[96];

	if (k->required)
		return fail(c, "expected %s, found nothing (missing key)",
		            expected(k, exp, sizeof(exp)));
	if (k->type == K_OBJECT && !has_required(k->sub))
		return parse_object(c, NULL, k->sub, FIELD(base, k->off, void));
	if (k->type == K_MS || k->type == K_COUNT || k->type == K_MIB)
		set_number(k, base, k->def_num);
	if (k->type == K_ENUM)
		*FIELD(base, k->off, unsigned) = k->def_num;
	if (k->type == K_BOOL)
		*FIELD(base, k->off, bool) = k->def_num != 0;
	if (k->def_str) {
		*FIELD(base, k->off, char *) = strdup(k->def_str);
		if (!*FIELD(base, k->off, char *))
			return -ENOMEM;
	}
	return 0;
}

static int unknown_key(struct ctx *c, const struct key *table)
{
	char names[256] = "";
	size_t len = 0;

	for (const struct key *k = table; k->name; k++) {
		int n =
		    snprintf(names + len, sizeof(names) - len, "%s%s", len ? ", " : "", k->name);
		if (n < 0 || (size_t)n >= sizeof(names) - len)
			break;
		len += n;
	}
	return fail(c, "unknown key (expected one of: %s)", names);
}

/* OBJ NULL means "absent": only defaults are applied. */
static int parse_object(struct ctx *c, const json_t *obj, const struct key *table, void *base)
{
	const struct key *k;
	const char *name;
	json_t *v;
	size_t old;
	int r = 0;

	if (obj && !json_is_object(obj)) {
		char buf[96];
		return fail(c, "expected object, found %s", describe(obj, buf, sizeof(buf)));
	}
	/* Unknown keys first: a typo also makes the real key look missing, and
	 * the typo is the more useful message. */
	json_object_foreach((json_t *)obj, name, v)
	{
		for (k = table; k->name && strcmp(k->name, name); k++)
			;
		if (!k->name) {
			old = push_key(c, name);
			r = unknown_key(c, table);
			pop(c, old);
			return r;
		}
	}
	for (k = table; k->name && r == 0; k++) {
		v = obj ? json_object_get(obj, k->name) : NULL;
		old = push_key(c, k->name);
		r = v ? parse_value(c, k, v, base) : apply_default(c, k, base);
		pop(c, old);
	}
	return r;
}

static void free_object(const struct key *table, void *base)
{
	for (const struct key *k = table; k->name; k++) {
		void *field = FIELD(base, k->off, void);

		switch (k->type) {
		case K_MS:
		case K_COUNT:
		case K_MIB:
		case K_ENUM:
		case K_BOOL:
			break;
		case K_OBJECT:
			free_object(k->sub, field);
			break;
		case K_PEERS:
			for (size_t i = 0; i < *FIELD(base, k->off_count, size_t); i++)
				free_object(k->sub, &(*(struct cs_peer_config **)field)[i]);
			free(*(void **)field);
			break;
		case K_ARGV:
		case K_ENV:
			for (char **p = *(char ***)field; p && *p; p++)
				free(*p);
			free(*(void **)field);
			break;
		case K_ADDRESS:
			free(*FIELD(base, k->off_host, char *));
			/* fall through */
		default:
			free(*(char **)field);
		}
	}
}

void cs_config_free(struct cs_config *cfg)
{
	if (!cfg)
		return;
	free_object(top_keys, cfg);
	free(cfg->path);
	free(cfg);
}

static int fail_at(struct ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(struct ctx *c, const char *path, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->plen = strlen(c->path);
	return fail(c, "%s", msg);
}

static int check_peers(struct ctx *c, const struct cs_config *cfg)
{
	char path[64], names[256] = "";
	size_t len = 0, members = 0;

	for (size_t i = 0; i < cfg->n_peers; i++) {
		for (size_t j = 0; j < i; j++) {
			if (strcmp(cfg->peers[i].name, cfg->peers[j].name) == 0) {
				snprintf(path, sizeof(path), "peers[%zu].name", i);
				return fail_at(c, path,
				               "expected a unique name, found \"%s\" again (as in "
				               "peers[%zu].name)",
				               cfg->peers[i].name, j);
			}
		}
		members += !cfg->peers[i].witness;
		if (len < sizeof(names))
			len += snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "",
			                cfg->peers[i].name);
	}
	if (!cs_config_self(cfg))
		return fail_at(c, "node",
		               "expected the name of one of the peers (%s), found \"%s\"", names,
		               cfg->node);
	if (members == 0)
		return fail_at(
		    c, "peers",
		    "expected at least one peer that is not a witness, found only witnesses");
	return 0;
}

/* Rules that involve several keys, after every key parsed. */
static int config_check(struct ctx *c, struct cs_config *cfg)
{
	const struct cs_heartbeat_config *hb = &cfg->heartbeat;
	int r = check_peers(c, cfg);

	if (r < 0)
		return r;
	if (hb->interval_ms >= hb->timeout_ms)
		return fail_at(c, "heartbeat.interval_ms",
		               "expected less than heartbeat.timeout_ms (%u), found %u",
		               hb->timeout_ms, hb->interval_ms);
	if (cs_config_voters(cfg) == 2 && !cfg->hooks.fence)
		return fail_at(c, "hooks.fence",
		               "expected a fence hook, found none (a cluster of two voters cannot "
		               "fail over without one)");
	if (cfg->control_group && !(c->flags & CS_CONFIG_NO_FS_CHECKS) &&
	    !getgrnam(cfg->control_group))
		return fail_at(c, "control_group",
		               "expected an existing group, found \"%s\" (no such group)",
		               cfg->control_group);
	if (!cfg->listen) {
		/* Derived default: every address, this node's port. */
		const struct cs_peer_config *self = cs_config_self(cfg);

		cfg->listen_port = self->port;
		if (asprintf(&cfg->listen, "0.0.0.0:%u", self->port) < 0 ||
		    !(cfg->listen_host = strdup("0.0.0.0")))
			return -ENOMEM;
	}
	return 0;
}

int cs_config_parse(const char *buf, size_t len, const char *name, unsigned flags,
                    struct cs_config **out, char *err, size_t errlen)
{
	struct ctx c = {.file = name, .flags = flags, .err = err, .errlen = errlen};
	struct cs_config *cfg;
	json_error_t jerr;
	json_t *root;
	int r;

	*out = NULL;
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", name, jerr.line, jerr.column,
		         jerr.text);
		return -EINVAL;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(name))) {
		free(cfg);
		json_decref(root);
		snprintf(err, errlen, "%s: out of memory", name);
		return -ENOMEM;
	}
	r = parse_object(&c, root, top_keys, cfg);
	if (r == 0)
		r = config_check(&c, cfg);
	json_decref(root);
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "%s: out of memory", name);
		cs_config_free(cfg);
		return r;
	}
	cfg->has_app = cfg->app.exec != NULL;
	*out = cfg;
	return 0;
}

int cs_config_load(const char *path, unsigned flags, struct cs_config **out, char *err,
                   size_t errlen)
{
	char *buf;
	ssize_t n;
	size_t len = 0;
	int fd, r;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	buf = malloc(FILE_SIZE_MAX + 1);
	if (!buf) {
		close(fd);
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	while ((n = read(fd, buf + len, FILE_SIZE_MAX + 1 - len)) > 0 && len < FILE_SIZE_MAX + 1)
		len += n;
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-r));
	else if (len > FILE_SIZE_MAX)
		r = -EFBIG, snprintf(err, errlen, "%s: larger than %d bytes, not a config file",
		                     path, FILE_SIZE_MAX);
	else
		r = cs_config_parse(buf, len, path, flags, out, err, errlen);
	free(buf);
	return r;
}

const struct cs_peer_config *cs_config_peer(const struct cs_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_peers; i++)
		if (strcmp(cfg->peers[i].name, name) == 0)
			return &cfg->peers[i];
	return NULL;
}

const struct cs_peer_config *cs_config_self(const struct cs_config *cfg)
{
	return cs_config_peer(cfg, cfg->node);
}

size_t cs_config_voters(const struct cs_config *cfg)
{
	return cfg->n_peers;
}

size_t cs_config_majority(const struct cs_config *cfg)
{
	return cs_config_voters(cfg) / 2 + 1;
}

const struct cs_peer_config *cs_config_preferred(const struct cs_config *cfg)
{
	for (size_t i = 0; i < cfg->n_peers; i++)
		if (!cfg->peers[i].witness)
			return &cfg->peers[i];
	return NULL;
}

/* NAMES is one of the K_ENUM choice tables. */
static const char *choice_name(const char *const *names, size_t n_names, unsigned value)
{
	return value < n_names ? names[value] : NULL;
}

#define CHOICE_NAME(names, value) choice_name(names, sizeof(names) / sizeof(names[0]) - 1, value)

const char *cs_durability_name(enum cs_durability durability)
{
	return CHOICE_NAME(durability_names, durability);
}

const char *cs_sync_mode_name(enum cs_sync_mode sync)
{
	return CHOICE_NAME(sync_mode_names, sync);
}

const char *cs_on_exit_name(enum cs_on_exit on_exit)
{
	return CHOICE_NAME(on_exit_names, on_exit);
}

static bool str_equal(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool object_equal(const struct key *table, const void *a, const void *b);

static bool field_equal(const struct key *k, const void *a, const void *b)
{
	const void *fa = FIELD(a, k->off, void), *fb = FIELD(b, k->off, void);
	size_t n;

	switch (k->type) {
	case K_MS:
	case K_COUNT:
	case K_ENUM:
		return *(const unsigned *)fa == *(const unsigned *)fb;
	case K_MIB:
		return *(const uint64_t *)fa == *(const uint64_t *)fb;
	case K_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	case K_OBJECT:
		return object_equal(k->sub, fa, fb);
	case K_PEERS:
	case K_ARGV:
	case K_ENV:
		n = *FIELD(a, k->off_count, size_t);
		if (n != *FIELD(b, k->off_count, size_t))
			return false;
		for (size_t i = 0; i < n; i++) {
			if (k->type == K_PEERS
			        ? !object_equal(k->sub, &(*(struct cs_peer_config *const *)fa)[i],
			                        &(*(struct cs_peer_config *const *)fb)[i])
			        : !str_equal((*(char **const *)fa)[i], (*(char **const *)fb)[i]))
				return false;
		}
		return true;
	default:
		return str_equal(*(char *const *)fa, *(char *const *)fb);
	}
}

static bool object_equal(const struct key *table, const void *a, const void *b)
{
	for (const struct key *k = table; k->name; k++)
		if (!field_equal(k, a, b))
			return false;
	return true;
}

static const struct {
	const char *key;
	enum cs_config_change change;
} change_of_key[] = {
    {"tls", CS_CHANGE_TLS},
    {"hooks", CS_CHANGE_HOOKS},
    {"heartbeat", CS_CHANGE_HEARTBEAT},
    {"control_group", CS_CHANGE_CONTROL_GROUP},
    {"node", CS_CHANGE_NODE},
    {"cluster", CS_CHANGE_CLUSTER},
    {"listen", CS_CHANGE_LISTEN},
    {"peers", CS_CHANGE_PEERS},
    {"state_dir", CS_CHANGE_STATE_DIR},
    {"control_socket", CS_CHANGE_CONTROL_SOCKET},
    {"app", CS_CHANGE_APP},
    {"checkpoint", CS_CHANGE_CHECKPOINT},
    {"metrics", CS_CHANGE_METRICS},
};

#define N_CHANGES (sizeof(change_of_key) / sizeof(change_of_key[0]))

unsigned cs_config_diff(const struct cs_config *old, const struct cs_config *new_cfg)
{
	unsigned changes = 0;

	for (size_t i = 0; i < N_CHANGES; i++) {
		const struct key *k = top_keys;

		while (k->name && strcmp(k->name, change_of_key[i].key))
			k++;
		if (k->name && !field_equal(k, old, new_cfg))
			changes |= change_of_key[i].change;
	}
	return changes;
}

const char *cs_config_change_name(enum cs_config_change change)
{
	for (size_t i = 0; i < N_CHANGES; i++)
		if (change_of_key[i].change == change)
			return change_of_key[i].key;
	return NULL;
}

char *cs_config_changes_format(unsigned changes, char *buf, size_t len)
{
	size_t used = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < N_CHANGES && used < len; i++) {
		if (changes & change_of_key[i].change) {
			int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
			                 change_of_key[i].key);
			if (n < 0)
				break;
			used += (size_t)n;
		}
	}
	if (!changes)
		snprintf(buf, len, "none");
	return buf;
}
