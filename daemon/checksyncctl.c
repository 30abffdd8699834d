/* checksyncctl: asks the local checksyncd over its control socket
 * (docs/control.md) and prints the answer for people or, with --json, for
 * programs. */
#include "certs.h"
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ANSWER_TIMEOUT_MS 60000 /* a switchover may wait for a fence hook */
#define ANSWER_MAX        (1024 * 1024)
#define CS_STR_(x)        #x
#define CS_STR(x)         CS_STR_(x)

struct opts {
	const char *socket;
	const char *config;
	const char *days;
	bool json;
	bool help;
};

static const struct opt_spec {
	const char *name;
	char letter;
	const char *arg; /* NULL: a flag */
	size_t off;      /* const char * or bool in struct opts */
	const char *help;
} opt_table[] = {
    {"socket", 's', "SOCKET", offsetof(struct opts, socket),
     "control socket (default: control_socket of the config, else " CS_CONFIG_DEFAULT_SOCKET ")"},
    {"config", 'c', "CONFIG", offsetof(struct opts, config),
     "configuration file (default " CS_CONFIG_DEFAULT_PATH ")"},
    {"json", 'j', NULL, offsetof(struct opts, json), "status: print the answer as one JSON object"},
    {"days", 'd', "DAYS", offsetof(struct opts, days),
     "certs: validity in days (CA " CS_STR(CS_CERTS_CA_DAYS) ", host " CS_STR(
         CS_CERTS_HOST_DAYS) ")"},
    {"help", 'h', NULL, offsetof(struct opts, help), "show this help"},
};
#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

static int cmd_status(int fd, const struct opts *o, int argc, char **argv);
static int cmd_checkpoint(int fd, const struct opts *o, int argc, char **argv);
static int cmd_switchover(int fd, const struct opts *o, int argc, char **argv);
static int cmd_certs(int fd, const struct opts *o, int argc, char **argv);

static const struct command {
	const char *name;
	const char *usage;
	int max_args;
	int (*run)(int fd, const struct opts *o, int argc, char **argv);
	bool local; /* needs no daemon: run is called with fd -1 */
} commands[] = {
    {"status", "status [--json]", 0, cmd_status, false},
    {"switchover", "switchover [NODE]", 1, cmd_switchover, false},
    {"checkpoint", "checkpoint (on the primary: take one now, wait until it is durable)", 0,
     cmd_checkpoint, false},
    {"certs",
     "certs init DIR [--days N]       (a cluster CA: DIR/ca.key, DIR/ca.pem)\n"
     "  certs issue DIR HOST [--days N] (DIR/HOST.key, DIR/HOST.pem, signed by DIR's CA)",
     3, cmd_certs, true},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	fprintf(out, "usage: checksyncctl [-s SOCKET] [-c CONFIG] COMMAND\n\ncommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %s\n", commands[i].usage);
	fprintf(out, "\noptions:\n");
	for (size_t i = 0; i < N_OPTS; i++)
		fprintf(out, "  -%c, --%s%s%-*s %s\n", opt_table[i].letter, opt_table[i].name,
		        opt_table[i].arg ? " " : "", (int)(16 - strlen(opt_table[i].name)),
		        opt_table[i].arg ? opt_table[i].arg : "", opt_table[i].help);
}

/* Builds getopt_long's tables from opt_table. Returns the index of the
 * first non-option argument, or -1 on a usage error. */
static int parse_options(int argc, char **argv, struct opts *o)
{
	struct option longopts[N_OPTS + 1] = {{0}};
	/* Permuting (no leading '+'): "status --json" has the option last. */
	char shortopts[2 * N_OPTS + 1] = "", *p = shortopts;
	int c;

	for (size_t i = 0; i < N_OPTS; i++) {
		longopts[i] = (struct option){opt_table[i].name,
		                              opt_table[i].arg ? required_argument : no_argument,
		                              NULL, opt_table[i].letter};
		*p++ = opt_table[i].letter;
		if (opt_table[i].arg)
			*p++ = ':';
	}
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		size_t i = 0;

		while (i < N_OPTS && opt_table[i].letter != c)
			i++;
		if (i == N_OPTS)
			return -1;
		if (opt_table[i].arg)
			*(const char **)((char *)o + opt_table[i].off) = optarg;
		else
			*(bool *)((char *)o + opt_table[i].off) = true;
	}
	return optind;
}

/* The socket: -s, else the config's control_socket, else the default. A
 * config named with -c must load; the default one may be absent. */
static const char *socket_path(const struct opts *o, struct cs_config **cfg)
{
	char err[512];
	int r;

	if (o->socket)
		return o->socket;
	r = cs_config_load(o->config ? o->config : CS_CONFIG_DEFAULT_PATH, CS_CONFIG_NO_FS_CHECKS,
	                   cfg, err, sizeof(err));
	if (r == 0)
		return (*cfg)->control_socket;
	if (o->config) {
		fprintf(stderr, "checksyncctl: %s\n", err);
		return NULL;
	}
	if (r != -ENOENT && r != -EACCES)
		fprintf(stderr, "checksyncctl: warning: %s (using %s)\n", err,
		        CS_CONFIG_DEFAULT_SOCKET);
	return CS_CONFIG_DEFAULT_SOCKET;
}

static int connect_socket(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, e;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "checksyncctl: socket path too long: %s\n", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	e = errno;
	if (fd >= 0)
		close(fd);
	if (e == ENOENT || e == ECONNREFUSED)
		fprintf(stderr, "checksyncctl: checksyncd not running? %s at %s\n",
		        e == ENOENT ? "no socket" : "nobody listening", path);
	else if (e == EACCES || e == EPERM)
		fprintf(stderr,
		        "checksyncctl: permission denied on %s (run as root or as a member of the "
		        "control group)\n",
		        path);
	else
		fprintf(stderr, "checksyncctl: cannot connect to %s: %s\n", path, strerror(e));
	return -1;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one line (the answer) with a timeout. */
static char *read_line(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);

	while (buf) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, ANSWER_TIMEOUT_MS) == 0) {
			fprintf(stderr, "checksyncctl: no answer from checksyncd within %d s\n",
			        ANSWER_TIMEOUT_MS / 1000);
			break;
		}
		if (len + 1 >= cap) {
			char *bigger = cap < ANSWER_MAX ? realloc(buf, cap *= 2) : NULL;
			if (!bigger)
				break;
			buf = bigger;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "checksyncctl: checksyncd closed the connection%s%s\n",
			        n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
			break;
		}
		len += (size_t)n;
		buf[len] = '\0';
		if (memchr(buf, '\n', len))
			return buf;
	}
	free(buf);
	return NULL;
}

/* Sends REQ (stolen) and returns the answer if it says ok, else prints the
 * daemon's error and returns NULL. */
static json_t *request(int fd, json_t *req)
{
	char *text = json_dumps(req, JSON_COMPACT), *line;
	json_error_t jerr;
	json_t *answer;
	int r;

	json_decref(req);
	if (!text)
		return NULL;
	r = send_all(fd, text, strlen(text));
	if (r == 0)
		r = send_all(fd, "\n", 1);
	free(text);
	/* A daemon that refuses us answers and closes at once, maybe before
	 * our request is out: its answer is still worth reading. */
	line = r == 0 || r == -EPIPE || r == -ECONNRESET ? read_line(fd) : NULL;
	if (!line) {
		if (r < 0)
			fprintf(stderr, "checksyncctl: cannot send the request: %s\n",
			        strerror(-r));
		return NULL;
	}
	answer = json_loads(line, JSON_DISABLE_EOF_CHECK, &jerr);
	free(line);
	if (!json_is_object(answer)) {
		fprintf(stderr, "checksyncctl: unreadable answer from checksyncd: %s\n",
		        answer ? "not an object" : jerr.text);
	} else if (!json_is_true(json_object_get(answer, "ok"))) {
		const char *e = json_string_value(json_object_get(answer, "error"));
		fprintf(stderr, "checksyncctl: checksyncd: %s\n", e ? e : "request failed");
	} else {
		return answer;
	}
	json_decref(answer);
	return NULL;
}

static const char *str_or(json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : dflt;
}

/* "12 ms ago", "3.4 s ago", or "never" for a null. */
static const char *ago(json_t *ms, char *buf, size_t len)
{
	json_int_t v;

	if (!json_is_integer(ms))
		return "never";
	v = json_integer_value(ms);
	if (v < 10000)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT " ms ago", v);
	else
		snprintf(buf, len, "%.1f s ago", (double)v / 1000);
	return buf;
}

static void print_peers(json_t *peers)
{
	int w = 4; /* "PEER" */
	size_t i;
	json_t *p;
	char buf[32];

	json_array_foreach(peers, i, p)
	{
		int n = (int)strlen(str_or(p, "name", "?"));
		w = n > w ? n : w;
	}
	printf("\n%-*s  %-8s  %-10s  %s\n", w, "PEER", "ROLE", "STATE", "LAST HEARTBEAT");
	json_array_foreach(peers, i, p)
	{
		const char *role = json_is_true(json_object_get(p, "witness"))
		                       ? "witness"
		                       : str_or(p, "role", "-");
		printf("%-*s  %-8s  %-10s  %s\n", w, str_or(p, "name", "?"), role,
		       str_or(p, "state", "?"),
		       ago(json_object_get(p, "last_heartbeat_ms"), buf, sizeof(buf)));
	}
}

static json_int_t int_of(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void print_app(json_t *app, json_t *store)
{
	if (json_is_object(app))
		printf("\napp:      %s, pid %" JSON_INTEGER_FORMAT
		       ", generation %" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT
		       " local restores\n",
		       str_or(app, "state", "?"), int_of(app, "pid"), int_of(app, "generation"),
		       int_of(app, "restores"));
	if (json_is_object(store))
		printf("chain:    %s, newest generation %" JSON_INTEGER_FORMAT
		       " (term %" JSON_INTEGER_FORMAT ")\n",
		       str_or(store, "chain", "?"), int_of(store, "newest"),
		       int_of(store, "lineage_term"));
}

static void print_ready(json_t *r)
{
	if (json_is_object(r))
		printf("restore:  %s (%s)\n",
		       json_is_true(json_object_get(r, "ready")) ? "ready" : "NOT READY",
		       str_or(r, "reason", "?"));
}

/* The warm standby of a backup: its state and, when one is built, what it
 * holds and costs; off and failed say why. */
static void print_standby(json_t *sb, json_t *app)
{
	const char *state = str_or(sb, "state", "?");

	if (json_is_object(sb) && (!strcmp(state, "off") || !strcmp(state, "failed")))
		printf("standby:  %s (%s)\n", state, str_or(sb, "why", "?"));
	else if (json_is_object(sb))
		printf("standby:  %s, generation %" JSON_INTEGER_FORMAT
		       ", rss %" JSON_INTEGER_FORMAT " bytes, %" JSON_INTEGER_FORMAT
		       " generations applied, last apply %" JSON_INTEGER_FORMAT " ms\n",
		       state, int_of(sb, "generation"), int_of(sb, "rss_bytes"),
		       int_of(sb, "applied"), int_of(sb, "last_apply_ms"));
	if (json_is_string(json_object_get(app, "path")))
		printf("restored: %s path%s%s\n", str_or(app, "path", "?"),
		       *str_or(app, "path_reason", "") ? ", " : "", str_or(app, "path_reason", ""));
}

static void print_backups(json_t *backups)
{
	size_t i;
	json_t *b;

	if (!json_is_array(backups) || json_array_size(backups) == 0)
		return;
	printf("\n%-10s  %-10s  %-16s  %s\n", "BACKUP", "STATE", "ACKED", "LAG");
	json_array_foreach(backups, i, b)
	{
		printf("%-10s  %-10s  %-16" JSON_INTEGER_FORMAT "  %" JSON_INTEGER_FORMAT
		       " generations, %" JSON_INTEGER_FORMAT " bytes\n",
		       str_or(b, "name", "?"), str_or(b, "state", "?"),
		       int_of(b, "acked_generation"), int_of(b, "lag_generations"),
		       int_of(b, "lag_bytes"));
	}
}

static void print_status(json_t *a)
{
	json_t *lease = json_object_get(a, "lease_remaining_ms");

	printf("node:     %s", str_or(a, "node", "?"));
	if (json_object_get(a, "cluster"))
		printf(" (cluster %s)", str_or(a, "cluster", "?"));
	printf("\nrole:     %s\n", str_or(a, "role", "?"));
	printf("term:     %" JSON_INTEGER_FORMAT "\n",
	       json_integer_value(json_object_get(a, "term")));
	printf("primary:  %s\n", str_or(a, "primary", "none"));
	if (json_is_integer(lease))
		printf("lease:    %" JSON_INTEGER_FORMAT " ms remaining\n",
		       json_integer_value(lease));
	else
		printf("lease:    -\n");
	print_peers(json_object_get(a, "peers"));
	print_app(json_object_get(a, "app"), json_object_get(a, "store"));
	print_ready(json_object_get(a, "restore_ready"));
	print_standby(json_object_get(a, "standby"), json_object_get(a, "app"));
	print_backups(json_object_get(a, "backups"));
}

/* Shows a command's answer: the JSON object with --json, else through
 * print. Returns the exit status. */
static int show_answer(json_t *a, const struct opts *o, void (*print)(json_t *a))
{
	if (!a)
		return 1;
	json_object_del(a, "ok");
	if (o->json)
		json_dumpf(a, stdout, JSON_INDENT(2)), putchar('\n');
	else
		print(a);
	json_decref(a);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_status(int fd, const struct opts *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	return show_answer(request(fd, json_pack("{s:s}", "cmd", "status")), o, print_status);
}

static void print_switchover(json_t *a)
{
	if (json_object_get(a, "primary"))
		printf("switchover done: primary is %s (term %" JSON_INTEGER_FORMAT ")\n",
		       str_or(a, "primary", "?"), json_integer_value(json_object_get(a, "term")));
	else
		printf("switchover done\n");
}

static int cmd_switchover(int fd, const struct opts *o, int argc, char **argv)
{
	json_t *req = json_pack("{s:s}", "cmd", "switchover");

	if (argc > 0)
		json_object_set_new(req, "target", json_string(argv[0]));
	return show_answer(request(fd, req), o, print_switchover);
}

static void print_checkpoint(json_t *a)
{
	printf("checkpoint generation %" JSON_INTEGER_FORMAT " is durable\n",
	       int_of(a, "generation"));
}

static int cmd_checkpoint(int fd, const struct opts *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	return show_answer(request(fd, json_pack("{s:s}", "cmd", "checkpoint")), o,
	                   print_checkpoint);
}

static int parse_days(const char *s, unsigned dflt, unsigned *out)
{
	char *end;
	unsigned long v;

	*out = dflt;
	if (!s)
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v == 0 || v > 36500) {
		fprintf(stderr, "checksyncctl: --days: expected 1-36500, found %s\n", s);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* certs init DIR | certs issue DIR HOST: files for mutual TLS, no daemon. */
static int cmd_certs(int fd, const struct opts *o, int argc, char **argv)
{
	bool init = argc == 2 && strcmp(argv[0], "init") == 0;
	bool issue = argc == 3 && strcmp(argv[0], "issue") == 0;
	char err[PATH_MAX + 256];
	unsigned days;
	int r;

	(void)fd;
	if (!init && !issue) {
		usage(stderr);
		return 2;
	}
	if (issue && !cs_config_valid_name(argv[2])) {
		fprintf(stderr, "checksyncctl: %s is not a node name (1-%d of A-Z a-z 0-9 . _ -)\n",
		        argv[2], CS_CONFIG_NAME_MAX);
		return 2;
	}
	if (parse_days(o->days, init ? CS_CERTS_CA_DAYS : CS_CERTS_HOST_DAYS, &days) < 0)
		return 2;
	r = init ? cs_certs_init(argv[1], days, err, sizeof(err))
	         : cs_certs_issue(argv[1], argv[2], days, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "checksyncctl: %s\n", err);
		return 1;
	}
	if (init)
		printf("%s/ca.pem: CA certificate, %s/ca.key: CA key (keep it off the hosts)\n",
		       argv[1], argv[1]);
	else
		printf("%s/%s.pem, %s/%s.key: certificate and key of %s\n", argv[1], argv[2],
		       argv[1], argv[2], argv[2]);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct cs_config *cfg = NULL;
	const struct command *cmd = NULL;
	const char *path;
	int first = parse_options(argc, argv, &o), fd, r;

	if (o.help) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; first > 0 && first < argc && i < N_COMMANDS; i++)
		if (strcmp(argv[first], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd || argc - first - 1 > cmd->max_args) {
		if (first > 0 && first < argc && !cmd)
			fprintf(stderr, "checksyncctl: unknown command \"%s\"\n", argv[first]);
		usage(stderr);
		return 2;
	}
	if (cmd->local)
		return cmd->run(-1, &o, argc - first - 1, argv + first + 1);
	path = socket_path(&o, &cfg);
	fd = path ? connect_socket(path) : -1;
	r = fd < 0 ? 1 : cmd->run(fd, &o, argc - first - 1, argv + first + 1);
	if (fd >= 0)
		close(fd);
	cs_config_free(cfg);
	return r;
}
