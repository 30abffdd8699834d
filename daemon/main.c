/* checksyncd: parse the command line, load the configuration, run the
 * daemon (daemon.c). It never forks: systemd (Type=notify) or the shell
 * keeps it in the foreground. */
#include <getopt.h>
#include <limits.h>
#include <unistd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dataplane.h"
#include "daemon.h"
#include "journal.h"
#include "tls.h"

struct opts {
	const char *config;
	const char *log_target;
	bool check_config;
	bool foreground;
	bool verbose;
	bool help;
	bool version;
};

static const struct opt_spec {
	const char *name;
	char letter;     /* 0: long option only */
	const char *arg; /* NULL: a flag */
	size_t off;      /* const char * or bool in struct opts */
	const char *help;
} opt_table[] = {
    {"config", 'c', "FILE", offsetof(struct opts, config),
     "configuration file (default " CS_CONFIG_DEFAULT_PATH ")"},
    {"check-config", 0, NULL, offsetof(struct opts, check_config),
     "validate the configuration, print \"FILE: ok\" or the error, and exit"},
    {"foreground", 'f', NULL, offsetof(struct opts, foreground),
     "log readable lines to stderr even under systemd (checksyncd never forks)"},
    {"log-target", 0, "auto|journal|stderr", offsetof(struct opts, log_target),
     "where events go (default auto: the journal if stderr is a journal stream)"},
    {"verbose", 'v', NULL, offsetof(struct opts, verbose), "log debug messages too"},
    {"version", 'V', NULL, offsetof(struct opts, version), "print the version and exit"},
    {"help", 'h', NULL, offsetof(struct opts, help), "show this help"},
};
#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

static void usage(FILE *out)
{
	fprintf(out, "usage: checksyncd [OPTIONS]\n\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt_spec *o = &opt_table[i];
		char left[64];

		snprintf(left, sizeof(left), "%s%c%s--%s%s%s", o->letter ? "-" : "",
		         o->letter ? o->letter : ' ', o->letter ? ", " : "  ", o->name,
		         o->arg ? " " : "", o->arg ? o->arg : "");
		fprintf(out, "  %-36s %s\n", left, o->help);
	}
}

static int parse(int argc, char **argv, struct opts *out)
{
	struct option longs[N_OPTS + 1] = {0};
	char shorts[2 * N_OPTS + 2] = ":";
	int c, idx;

	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt_spec *o = &opt_table[i];

		longs[i] = (struct option){o->name, o->arg ? required_argument : no_argument, NULL,
		                           o->letter ? o->letter : 256 + (int)i};
		if (o->letter) {
			char s[3] = {o->letter, o->arg ? ':' : '\0', '\0'};
			strcat(shorts, s);
		}
	}
	while ((c = getopt_long(argc, argv, shorts, longs, &idx)) != -1) {
		const struct opt_spec *o = NULL;

		for (size_t i = 0; i < N_OPTS && !o; i++)
			if (opt_table[i].letter ? c == opt_table[i].letter : c == 256 + (int)i)
				o = &opt_table[i];
		if (!o) {
			fprintf(stderr, "checksyncd: %s option %s\n",
			        c == ':' ? "missing argument for" : "unknown", argv[optind - 1]);
			return -1;
		}
		if (o->arg)
			*(const char **)((char *)out + o->off) = optarg;
		else
			*(bool *)((char *)out + o->off) = true;
	}
	if (optind < argc) {
		fprintf(stderr, "checksyncd: unexpected argument %s\n", argv[optind]);
		return -1;
	}
	return 0;
}

static int log_target(const struct opts *o, enum cs_log_target *out)
{
	static const struct {
		const char *name;
		enum cs_log_target target;
	} targets[] = {
	    {"auto", CS_LOG_AUTO}, {"journal", CS_LOG_JOURNAL}, {"stderr", CS_LOG_STDERR}};

	*out = o->foreground ? CS_LOG_STDERR : CS_LOG_AUTO;
	if (!o->log_target)
		return 0;
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
		if (strcmp(o->log_target, targets[i].name) == 0) {
			*out = targets[i].target;
			return 0;
		}
	fprintf(stderr, "checksyncd: --log-target: expected auto, journal or stderr, found %s\n",
	        o->log_target);
	return -1;
}

static void print_problem(void *arg, const char *problem)
{
	fprintf(stderr, "%s: %s\n", (const char *)arg, problem);
}

/* The file first, then what it points at: the certificates must be the
 * ones a peer will accept from this node, or every link fails later with
 * a less direct message. */
static int check_config(const char *path)
{
	struct cs_config *cfg;
	char err[1024];
	int problems;

	if (cs_config_load(path, 0, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	problems = cs_tls_check_files(cfg->tls.ca, cfg->tls.cert, cfg->tls.key, cfg->node,
	                              print_problem, (void *)path);
	cs_config_free(cfg);
	if (problems > 0)
		return 1;
	printf("%s: ok\n", path);
	return 0;
}

/* A witness stores no chain and runs no app. */
static bool witness_only(const struct cs_config *cfg)
{
	const struct cs_peer_config *self = cs_config_self(cfg);

	return self->witness;
}

/* The checksync tool that runs, restores and compacts the app: $CHECKSYNC_TOOL,
 * else the one beside this binary in a build tree, else the installed one. */
static const char *tool_path(void)
{
	static char path[PATH_MAX + 32];
	const char *env = getenv("CHECKSYNC_TOOL");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		*strrchr(self, '/') = '\0';
		snprintf(path, sizeof(path), "%s/../agent/tool/checksync", self);
		if (access(path, X_OK) == 0)
			return path;
	}
	return CS_TOOL_PATH;
}

int main(int argc, char **argv)
{
	struct opts o = {.config = CS_CONFIG_DEFAULT_PATH};
	enum cs_log_target target;
	struct cs_config *cfg;
	struct cs_daemon *d;
	struct cs_dataplane *dp = NULL;
	char err[1024];
	int r;

	if (parse(argc, argv, &o) < 0 || log_target(&o, &target) < 0) {
		usage(stderr);
		return 2;
	}
	if (o.help || o.version) {
		o.help ? usage(stdout) : (void)printf("checksyncd %s\n", CS_VERSION);
		return 0;
	}
	if (o.check_config)
		return check_config(o.config);
	cs_journal_init("checksyncd", target);
	if (o.verbose)
		cs_log_set_max_priority(LOG_DEBUG);
	if (cs_config_load(o.config, 0, &cfg, err, sizeof(err)) < 0) {
		cs_log_err("%s", err);
		return 1;
	}
	if (cs_daemon_new(o.config, cfg, &d) < 0)
		return 1;
	if (!witness_only(cfg) && cs_dataplane_new(d, cfg, tool_path(), &dp) < 0) {
		cs_daemon_free(d);
		return 1;
	}
	if (dp)
		cs_daemon_set_dataplane(d, &cs_dataplane_ops, dp);
	r = cs_daemon_run(d);
	/* The data plane goes first (it stops the app), while the event base
	 * its events belong to still exists; the daemon must not call it after. */
	cs_daemon_set_dataplane(d, &(const struct cs_dataplane_ops){0}, NULL);
	cs_dataplane_free(dp);
	cs_daemon_free(d);
	return r < 0 ? 1 : 0;
}
