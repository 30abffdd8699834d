/*
 * checksync run: start a program with the agent loaded, in its own PID,
 * mount and time namespaces, and stay its parent until it exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../include/cs_agent_abi.h"
#include "tool.h"

#define RUN_USAGE                                                                                  \
	"usage: checksync run --dir DIR [--interval-ms N] [--tracking uffd|hash] [--no-compact] "  \
	"[--user NAME] [--workdir DIR] [--first-generation N] -- PROG [ARGS...]"

/* --user, resolved by the tool before any namespace exists. */
struct run_user {
	const char *name; /* NULL: the program keeps the tool's credentials */
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* supplementary groups, as initgroups(3) would set them */
	int n_groups;
};

struct run_opts {
	char dir[PATH_MAX];
	char agent[PATH_MAX];
	const char *interval_ms;
	const char *tracking;
	const char *workdir;
	const char *first_generation;
	struct run_user user;
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

/* Drops to --user's credentials: groups first, then the gid, the uid last
 * (after setuid nothing else may change). The group list was read in the
 * tool: no NSS lookup runs in this raw clone3 child. The agent needs no
 * privilege (its userfaultfd is UFFD_USER_MODE_ONLY, the rest is its own
 * /proc/self), and since real and effective ids match at exec, the kernel
 * makes the program dumpable again, so /proc/self stays its own. */
static int become_user(const struct run_user *u)
{
	if (setgroups((size_t)u->n_groups, u->groups) < 0 || setgid(u->gid) < 0 ||
	    setuid(u->uid) < 0) {
		cs_err("cannot become user %s (uid %u, gid %u): %s", u->name, (unsigned)u->uid,
		       (unsigned)u->gid, strerror(errno));
		return -1;
	}
	return 0;
}

/* The program's side, as PID 2 of the new namespaces (made by now):
 * environment, credentials, working directory, exec. Inherited fds other
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
	if (o->first_generation)
		setenv(CS_ENV_FIRST_GENERATION, o->first_generation, 1);
	/* The agent then never takes a periodic base: the compactor folds the
	 * chain instead. Without it (or with --no-compact) the agent keeps
	 * taking bases itself. */
	if (o->no_compact)
		unsetenv(CS_ENV_COMPACTOR);
	else
		setenv(CS_ENV_COMPACTOR, "1", 1);
	if (o->user.name && become_user(&o->user) < 0)
		return -1;
	/* After the credentials change, so the user must be allowed there. */
	if (o->workdir && chdir(o->workdir) < 0) {
		cs_err("cannot enter the working directory %s: %s", o->workdir, strerror(errno));
		return -1;
	}
	close_range(3, ~0u, 0);
	execvp(o->prog[0], o->prog);
	cs_err("cannot execute %s: %s", o->prog[0], strerror(errno));
	return -1;
}

/* Reads --user's ids and groups (NSS, so here in the tool, not in the child). */
static int resolve_user(struct run_user *u)
{
	errno = 0;
	struct passwd *pw = getpwnam(u->name);
	if (!pw) {
		cs_err("--user %s: %s", u->name, errno ? strerror(errno) : "no such user");
		return -1;
	}
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	int n = 16;
	for (;;) {
		gid_t *g = realloc(u->groups, (size_t)n * sizeof(*g));
		if (!g) {
			cs_err("--user %s: out of memory", u->name);
			return -1;
		}
		u->groups = g;
		int want = n;
		if (getgrouplist(u->name, u->gid, g, &want) >= 0) {
			u->n_groups = want;
			return 0;
		}
		if (want <= n) { /* no growth requested: a lookup error */
			cs_err("--user %s: cannot read its groups", u->name);
			return -1;
		}
		n = want;
	}
}

static int check_options(struct run_opts *o)
{
	struct stat st;
	uint64_t n;
	if (o->tracking && strcmp(o->tracking, "uffd") && strcmp(o->tracking, "hash")) {
		cs_err("--tracking must be uffd or hash, not '%s'", o->tracking);
		return -1;
	}
	if (o->interval_ms && cs_parse_arg_u64("--interval-ms", o->interval_ms,
					       "a number of milliseconds", 1, &n) < 0)
		return -1;
	if (o->first_generation && cs_parse_arg_u64("--first-generation", o->first_generation,
						     "a generation number", 0, &n) < 0)
		return -1;
	if (o->workdir && stat(o->workdir, &st) < 0) {
		cs_err("--workdir %s: %s", o->workdir, strerror(errno));
		return -1;
	}
	if (o->workdir && !S_ISDIR(st.st_mode)) {
		cs_err("--workdir %s: not a directory", o->workdir);
		return -1;
	}
	return o->user.name ? resolve_user(&o->user) : 0;
}

/* The agent runs as --user and must create its lock, socket and images in
 * DIR: DIR becomes the user's, and so does a lock file left by an earlier
 * run (the agent opens it for writing). */
static int give_dir(const struct run_opts *o)
{
	uid_t uid = o->user.uid;
	gid_t gid = o->user.gid;
	int dfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = dfd < 0 || fchown(dfd, uid, gid) < 0 ? -1 : 0;
	if (r == 0 && fchownat(dfd, "agent.lock", uid, gid, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno != ENOENT)
		r = -1;
	if (r < 0)
		cs_err("giving %s to user %s: %s", o->dir, o->user.name, strerror(errno));
	if (dfd >= 0)
		close(dfd);
	return r;
}

static int parse_run(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
		{"dir", required_argument, NULL, 'd'},
		{"interval-ms", required_argument, NULL, 'i'},
		{"tracking", required_argument, NULL, 't'},
		{"no-compact", no_argument, NULL, 'n'},
		{"user", required_argument, NULL, 'u'},
		{"workdir", required_argument, NULL, 'w'},
		{"first-generation", required_argument, NULL, 'f'},
		{0},
	};
	const char *dir = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'i': o->interval_ms = optarg; break;
		case 't': o->tracking = optarg; break;
		case 'n': o->no_compact = 1; break;
		case 'u': o->user.name = optarg; break;
		case 'w': o->workdir = optarg; break;
		case 'f': o->first_generation = optarg; break;
		default: return -1;
		}
	}
	if (!dir || optind >= argc) {
		cs_err(RUN_USAGE);
		return -1;
	}
	if (check_options(o) < 0)
		return -1;
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
	if (o.user.name && give_dir(&o) < 0)
		return 1;
	int r = cs_find_file("CHECKSYNC_AGENT", "../capture/libchecksync.so",
	                     CS_INSTALL_LIBDIR "/libchecksync.so", o.agent, sizeof(o.agent));
	if (r < 0) {
		cs_err(
		    "cannot find libchecksync.so (tried $CHECKSYNC_AGENT, the build tree, %s): %s",
		    CS_INSTALL_LIBDIR, strerror(-r));
		return 1;
	}
	struct cs_launch l = {.child = start_program, .arg = &o, .close_in_init = {-1, -1, -1}, .dir = o.dir};
	char msg[256];
	if (!o.no_compact) {
		if (cs_compact_policy_from_env(&l.compact, msg, sizeof(msg)) < 0) {
			cs_err("%s", msg);
			return 2;
		}
		l.compact_dir = o.dir;
	}
	pid_t init;
	r = cs_launch_start(&l, &init);
	free(o.user.groups); /* init has its own copy */
	if (r < 0)
		return 1;
	pid_t host = cs_launch_child_host_pid(init);
	if (host > 0)
		cs_write_pid_file(o.dir, host);
	return cs_launch_wait(init);
}
