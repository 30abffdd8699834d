/*
 * checksync run: start a program with the agent loaded, in its own PID,
 * mount and time namespaces, and stay its parent until it exits.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../include/cs_agent_abi.h"
#include "tool.h"

struct run_opts {
	char dir[PATH_MAX];
	char agent[PATH_MAX];
	const char *interval_ms;
	const char *tracking;
	int no_compact;
	char **prog;
};

static int set_preload(const char *agent)
{
	const char *old = getenv("LD_PRELOAD");
	char buf[PATH_MAX * 2];
	if (old && *old)
		snprintf(buf, sizeof(buf), "%s:%s", agent, old);
	else
		snprintf(buf, sizeof(buf), "%s", agent);
	return setenv("LD_PRELOAD", buf, 1);
}

/* The program's side, as PID 2 of the new namespace. Inherited fds other
 * than stdio are closed: they could not be restored. */
static int start_program(void *arg)
{
	struct run_opts *o = arg;
	if (setenv(CS_ENV_DIR, o->dir, 1) < 0 || set_preload(o->agent) < 0)
		return -1;
	if (o->interval_ms)
		setenv(CS_ENV_INTERVAL_MS, o->interval_ms, 1);
	if (o->tracking)
		setenv(CS_ENV_TRACKING, o->tracking, 1);
	/* The agent then never takes a periodic base: the compactor folds the
	 * chain instead. Without it (or with --no-compact) the agent keeps
	 * taking bases itself. */
	if (o->no_compact)
		unsetenv(CS_ENV_COMPACTOR);
	else
		setenv(CS_ENV_COMPACTOR, "1", 1);
	close_range(3, ~0u, 0);
	execvp(o->prog[0], o->prog);
	cs_err("cannot execute %s: %s", o->prog[0], strerror(errno));
	return -1;
}

static int parse_run(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"interval-ms", required_argument, NULL, 'i'},
	    {"tracking", required_argument, NULL, 't'},
	    {"no-compact", no_argument, NULL, 'n'},
	    {0},
	};
	const char *dir = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'i':
			o->interval_ms = optarg;
			break;
		case 't':
			o->tracking = optarg;
			break;
		case 'n':
			o->no_compact = 1;
			break;
		default:
			return -1;
		}
	}
	if (!dir || optind >= argc) {
		cs_err("usage: checksync run --dir DIR [--interval-ms N] [--tracking uffd|hash] "
		       "[--no-compact] -- PROG [ARGS...]");
		return -1;
	}
	if (o->tracking && strcmp(o->tracking, "uffd") && strcmp(o->tracking, "hash")) {
		cs_err("--tracking must be uffd or hash, not '%s'", o->tracking);
		return -1;
	}
	if (o->interval_ms && strspn(o->interval_ms, "0123456789") != strlen(o->interval_ms)) {
		cs_err("--interval-ms needs a number of milliseconds, not '%s'", o->interval_ms);
		return -1;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		cs_err("creating %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!realpath(dir, o->dir)) {
		cs_err("%s: %s", dir, strerror(errno));
		return -1;
	}
	o->prog = argv + optind;
	return 0;
}

int cs_cmd_run(int argc, char **argv)
{
	struct run_opts o = {0};
	if (parse_run(argc, argv, &o) < 0)
		return 2;
	int r = cs_find_file("CHECKSYNC_AGENT", "../capture/libchecksync.so",
	                     CS_INSTALL_LIBDIR "/libchecksync.so", o.agent, sizeof(o.agent));
	if (r < 0) {
		cs_err(
		    "cannot find libchecksync.so (tried $CHECKSYNC_AGENT, the build tree, %s): %s",
		    CS_INSTALL_LIBDIR, strerror(-r));
		return 1;
	}
	struct cs_launch l = {.child = start_program, .arg = &o, .close_in_init = -1, .dir = o.dir};
	char msg[256];
	if (!o.no_compact) {
		if (cs_compact_policy_from_env(&l.compact, msg, sizeof(msg)) < 0) {
			cs_err("%s", msg);
			return 2;
		}
		l.compact_dir = o.dir;
	}
	pid_t init;
	if (cs_launch_start(&l, &init) < 0)
		return 1;
	pid_t host = cs_launch_child_host_pid(init);
	if (host > 0)
		cs_write_pid_file(o.dir, host);
	return cs_launch_wait(init);
}
