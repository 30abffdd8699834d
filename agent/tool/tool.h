/* The checksync tool: subcommands and what they share. */
#ifndef CS_TOOL_H
#define CS_TOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "compact.h"

/* Subcommands: each takes argv after the subcommand name and returns the
 * process exit status. */
int cs_cmd_run(int argc, char **argv);
int cs_cmd_checkpoint(int argc, char **argv);
int cs_cmd_restore(int argc, char **argv);
int cs_cmd_standby(int argc, char **argv);
int cs_cmd_inspect(int argc, char **argv);
int cs_cmd_compact(int argc, char **argv);

/* Messages: "checksync: ..." on stderr. */
void cs_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A decimal option value: digits only, no overflow, 0 only when zero_ok.
 * Otherwise says "OPT needs WHAT, not 'S'" and returns -1. */
int cs_parse_arg_u64(const char *opt, const char *s, const char *what, int zero_ok,
		     uint64_t *out);

/*
 * The namespaces a program runs in (ns.c): new PID and time namespaces
 * (time offsets written before anyone enters), and an init that is PID 1
 * there, mounts its own /proc in its own mount namespace, reaps, forwards
 * SIGTERM/SIGINT/SIGHUP/SIGQUIT, and exits with the program's status
 * (128 + signal when it was killed).
 */
struct cs_launch {
	int64_t monotonic_offset_ns, boottime_offset_ns;
	pid_t pid;               /* the program's pid inside, 0: the next free */
	int (*child)(void *arg); /* the program's side; returns only on failure */
	void *arg;
	int detach;        /* the tool will not wait: init outlives it */
	int close_in_init[3]; /* fds init must not keep open (-1: none) */
	/* A background compactor of this directory next to the program (NULL:
	 * none), with its pid inside (0: the next free one). */
	const char *compact_dir;
	struct cs_compact_policy compact;
	pid_t compactor_pid;
	const char *dir; /* the checkpoint directory: init serves the agent (supervise.c) */
};
int cs_launch_start(const struct cs_launch *l, pid_t *ret_init);
/* Offsets (ns) of CLOCK_MONOTONIC and CLOCK_BOOTTIME for the time namespace
 * unshared for our children, before any process is in it; 0 or -errno. */
int cs_write_time_offsets(int64_t mono, int64_t boot);
/* Host pid of init's first child (from /proc/<init>/task/<init>/children). */
pid_t cs_launch_child_host_pid(pid_t init);
/* A compactor (l->compact_dir, compact, compactor_pid) started into the
 * PID namespace of init after the program (a promoted standby). */
int cs_launch_compactor_late(pid_t init, const struct cs_launch *l);
/* Waits for init, forwarding signals; returns the exit status to use. */
int cs_launch_wait(pid_t init);

/*
 * The supervisor (supervise.c): init holds threads of its program that
 * block the agent's freeze signal, with ptrace, for the agent (protocol in
 * cs_agent_abi.h).
 */
#define CS_SUPERVISOR_MAX_HELD 256
/* DIR/creds-ceiling: what the program held when DIR was handed to it */
#define CS_CEILING_FILE "creds-ceiling"
struct cs_held {
	pid_t tid;
	int stopped; /* its ptrace stop was seen */
	int inject;  /* a signal its stop took on its way in, passed on at detach */
};
struct cs_supervisor {
	int listen_fd, client_fd;
	pid_t main_pid;
	char name[64];
	size_t name_len;
	struct cs_held held[CS_SUPERVISOR_MAX_HELD];
	size_t n_held;
	int bind_tries, bind_reported, error_reported;
	char dir[4096]; /* handed to the program when it drops its privileges */
};
struct pollfd;
/* Binds the socket at once (retried in cs_supervisor_pollfds if taken);
 * main_pid may be set later, before the first poll. */
void cs_supervisor_init(struct cs_supervisor *s, const char *dir, pid_t main_pid);
/* The fds to poll (at most 2); lowers *timeout_ms while the name is not bound yet. */
size_t cs_supervisor_pollfds(struct cs_supervisor *s, struct pollfd *p, int *timeout_ms);
void cs_supervisor_serve(struct cs_supervisor *s, const struct pollfd *p, size_t n);
/* A stop or exit waitpid reported (status as waitpid gives it). */
void cs_supervisor_reaped(struct cs_supervisor *s, pid_t tid, int status);

/* Finds a file that ships with the tool: $env, then relative to the tool's
 * own directory in the build tree, then the installed path. */
int cs_find_file(const char *env, const char *build_rel, const char *installed, char *out,
                 size_t cap);
int cs_write_pid_file(const char *dir, pid_t pid);

#endif
