/*
 * checksync: run a program checkpointably, checkpoint it, restore it,
 * inspect its images. No cluster needed (checksyncd uses the same pieces).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
} commands[] = {
	{"run", cs_cmd_run,
	 "run --dir DIR [--interval-ms N] [--tracking uffd|hash] [--no-compact] [--user NAME]\n"
	 "                [--workdir DIR] [--first-generation N] -- PROG [ARGS...]"},
	{"checkpoint", cs_cmd_checkpoint, "checkpoint --dir DIR"},
	{"restore", cs_cmd_restore,
	 "restore --dir DIR [--generation G] [--next-generation N] [--detach | --check]"},
	{"standby", cs_cmd_standby, "standby --dir DIR [--control-fd N]"},
	{"inspect", cs_cmd_inspect, "inspect DIR|IMAGE [--json]"},
	{"compact", cs_cmd_compact, "compact DIR [--generation G] [--onto P]"},
};

void cs_err(const char *fmt, ...)
{
	va_list ap;
	char buf[1024];
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "checksync: %s\n", buf);
}

int cs_parse_arg_u64(const char *opt, const char *s, const char *what, int zero_ok,
		     uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end || errno || (!zero_ok && v == 0)) {
		cs_err("%s needs %s, not '%s'", opt, what, s);
		return -1;
	}
	*out = v;
	return 0;
}

int cs_find_file(const char *env, const char *build_rel, const char *installed, char *out,
		 size_t cap)
{
	const char *e = getenv(env);
	if (!out || !cap)
		return -EINVAL;
	if (e && *e) {
		snprintf(out, cap, "%s", e);
		return access(out, R_OK) == 0 ? 0 : -errno;
	}
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		snprintf(out, cap, "%s/%s", dirname(self), build_rel);
		if (access(out, R_OK) == 0)
			return 0;
	}
	snprintf(out, cap, "%s", installed);
	return access(out, R_OK) == 0 ? 0 : -errno;
}

int cs_write_pid_file(const char *dir, pid_t pid)
{
	char path[4096], tmp[4200], text[32];
	snprintf(path, sizeof(path), "%s/agent.pid", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int len = snprintf(text, sizeof(text), "%d\n", (int)pid);
	int r = write(fd, text, (size_t)len) == len ? 0 : -EIO;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	return r;
}

static int usage(FILE *f)
{
	fprintf(f, "usage:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  checksync %s\n", commands[i].usage);
	return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
		return usage(stdout);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		int rc = commands[i].fn(argc - 1, argv + 1);
		/* After unshare(CLONE_NEWPID) this process can no longer fork once
		 * the namespace's init is gone, and exit-time handlers that need to
		 * (LeakSanitizer's stop-the-world) would fail: leave directly. */
		fflush(NULL);
		_exit(rc);
	}
	cs_err("unknown command '%s'", argv[1]);
	return usage(stderr);
}
