/*
 * What the kernel says about one thread of this process, before and while
 * it is frozen: its state, signal mask and pending signals
 * (/proc/self/task/T/status), and the system call it sleeps in
 * (/proc/self/task/T/syscall). Read from the agent thread during a freeze:
 * no stdio, no malloc.
 */
#include <errno.h>
#include <string.h>

#include "agent.h"

static void task_path(char *out, size_t cap, pid_t tid, const char *leaf)
{
	char num[24];
	cs_strlcpy(out, "/proc/self/task/", cap);
	cs_fmt_u64(num, (uint64_t)tid);
	cs_strlcat(out, num, cap);
	cs_strlcat(out, leaf, cap);
}

uint64_t cs_status_field(pid_t tid, const char *key, int base)
{
	char path[64], buf[4096];
	uint64_t v = 0;
	if (tid)
		task_path(path, sizeof(path), tid, "/status");
	else
		cs_strlcpy(path, "/proc/self/status", sizeof(path));
	if (cs_read_file(path, buf, sizeof(buf)) <= 0)
		return 0;
	const char *p = strstr(buf, key);
	if (!p)
		return 0;
	for (p += strlen(key); *p == ' ' || *p == '\t'; p++)
		;
	return cs_parse_u64(&p, &v, base) ? 0 : v;
}

/* The hex value after "\n<key>:\t" in a status text. */
static int status_hex(const char *text, const char *key, uint64_t *out)
{
	const char *p = strstr(text, key);
	if (!p)
		return -ENOENT;
	p += strlen(key);
	while (*p == ' ' || *p == '\t')
		p++;
	return cs_parse_u64(&p, out, 16);
}

/* "N 0xA0 0xA1 ... 0xSP 0xPC", "running", or "-1 0xSP 0xPC" (not in a
 * call); the file needs the process to be dumpable or its owner root. */
static void read_syscall(pid_t tid, struct cs_thread_look *t)
{
	char path[64], buf[256];
	const char *p = buf;
	uint64_t v;
	t->sysno = -1;
	task_path(path, sizeof(path), tid, "/syscall");
	if (cs_read_file(path, buf, sizeof(buf)) <= 0 || cs_parse_u64(&p, &v, 10))
		return;
	uint64_t vals[8]; /* six arguments, sp, pc */
	int i;
	for (i = 0; i < 8 && *p == ' '; i++) {
		p++;
		if (p[0] == '0' && p[1] == 'x')
			p += 2;
		if (cs_parse_u64(&p, &vals[i], 16))
			break;
	}
	if (i < 8)
		return;
	t->sysno = (long)v;
	memcpy(t->args, vals, sizeof(t->args));
	t->pc = vals[7];
}

int cs_thread_look(pid_t tid, struct cs_thread_look *t)
{
	char path[64], buf[2048];
	memset(t, 0, sizeof(*t));
	t->sysno = -1;
	task_path(path, sizeof(path), tid, "/status");
	ssize_t n = cs_read_file(path, buf, sizeof(buf));
	if (n <= 0)
		return n < 0 ? (int)n : -ESRCH;
	const char *st = strstr(buf, "\nState:");
	t->state = st ? st[sizeof("\nState:") - 1 + 1] : '?';
	if (status_hex(buf, "\nSigBlk:", &t->blocked) || status_hex(buf, "\nSigPnd:", &t->pending))
		return -EINVAL;
	const char *sc = strstr(buf, "\nSeccomp:");
	uint64_t mode = 0;
	if (sc) {
		for (sc += 9; *sc == ' ' || *sc == '\t'; sc++)
			;
		cs_parse_u64(&sc, &mode, 10);
	}
	t->seccomp = (int)mode;
	if (t->state == 'S')
		read_syscall(tid, t);
	task_path(path, sizeof(path), tid, "/comm");
	if (cs_read_file(path, t->comm, sizeof(t->comm)) > 0)
		t->comm[strcspn(t->comm, "\n")] = 0;
	return 0;
}

/* "thread <tid> (<comm>) " for messages. */
void cs_thread_describe(char *out, pid_t tid, const struct cs_thread_look *t)
{
	char num[24];
	cs_strlcat(out, "thread ", CS_ERR_MAX);
	cs_fmt_u64(num, (uint64_t)tid);
	cs_strlcat(out, num, CS_ERR_MAX);
	cs_strlcat(out, " (", CS_ERR_MAX);
	cs_strlcat(out, t->comm, CS_ERR_MAX);
	cs_strlcat(out, ", state ", CS_ERR_MAX);
	num[0] = t->state;
	num[1] = 0;
	cs_strlcat(out, num, CS_ERR_MAX);
	cs_strlcat(out, ", SigBlk ", CS_ERR_MAX);
	cs_fmt_hex(num, t->blocked);
	cs_strlcat(out, num, CS_ERR_MAX);
	cs_strlcat(out, ") ", CS_ERR_MAX);
}
