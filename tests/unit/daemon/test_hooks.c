/* Hooks: exit status, output into the log, timeout kills the whole process
 * group, a missing program, and serial hooks running in order. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <unistd.h>

#include <event2/event.h>

#include "hooks.h"
#include "journal.h"

struct result {
	int status;
	uint64_t took;
	int done;
};

static int finished;

static void done(void *arg, int status, uint64_t took)
{
	struct result *r = arg;

	r->status = status;
	r->took = took;
	r->done++;
	finished++;
}

static void run_until(struct event_base *base, int want)
{
	for (int i = 0; finished < want && i < 2000; i++) {
		struct timeval tv = {0, 10000};

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	assert(finished >= want);
}

static char *slurp(const char *path)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	assert(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Dead: no such process, or a zombie waiting for init to reap it. */
static bool gone(int pid)
{
	char path[64], stat[256];
	FILE *f;

	for (int i = 0; i < 100; i++) {
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		f = fopen(path, "r");
		if (!f)
			return true;
		stat[0] = '\0';
		if (!fgets(stat, sizeof(stat), f))
			stat[0] = '\0';
		fclose(f);
		if (strstr(stat, ") Z ") || strstr(stat, ") X "))
			return true;
		usleep(20000);
	}
	return false;
}

int main(void)
{
	char dir[] = "/tmp/cs-hooks-XXXXXX", log[256], order[256], script[512];
	struct event_base *base = event_base_new();
	struct cs_hooks *h;
	struct result exit3 = {0}, slow = {0}, missing = {0}, first = {0}, second = {0};

	assert(mkdtemp(dir));
	snprintf(log, sizeof(log), "%s/log", dir);
	snprintf(order, sizeof(order), "%s/order", dir);
	/* The log goes to stderr lines; catch them in a file. */
	assert(freopen(log, "w", stderr));
	setvbuf(stderr, NULL, _IONBF, 0);
	cs_journal_init("test", CS_LOG_STDERR);
	assert(cs_hooks_new(base, &h) == 0);

	const char *a1[] = {"/bin/sh", "-c", "echo out-line; echo err-line >&2; exit 3", NULL};
	assert(cs_hook_run(h, "notify", a1, 5000, false, done, &exit3) == 0);
	/* The background child is in the hook's process group: killed too. */
	snprintf(script, sizeof(script), "sleep 30 & echo $! > %s/bg; wait", dir);
	const char *a2[] = {"/bin/sh", "-c", script, NULL};
	assert(cs_hook_run(h, "fence", a2, 200, false, done, &slow) == 0);
	const char *a3[] = {"/nonexistent/hook", NULL};
	assert(cs_hook_run(h, "notify", a3, 1000, false, done, &missing) == 0);
	snprintf(script, sizeof(script), "sleep 0.3; echo first >> %s", order);
	const char *a4[] = {"/bin/sh", "-c", script, NULL};
	assert(cs_hook_run(h, "notify", a4, 5000, true, done, &first) == 0);
	char script2[512];
	snprintf(script2, sizeof(script2), "echo second >> %s", order);
	const char *a5[] = {"/bin/sh", "-c", script2, NULL};
	assert(cs_hook_run(h, "notify", a5, 5000, true, done, &second) == 0);
	run_until(base, 5);

	assert(exit3.done == 1 && exit3.status == 3);
	assert(slow.done == 1 && slow.status == -ETIMEDOUT && slow.took < 5000);
	assert(missing.done == 1 && missing.status == -ENOENT);
	assert(first.status == 0 && second.status == 0);
	assert(strcmp(slurp(order), "first\nsecond\n") == 0);
	assert(cs_hooks_pending(h) == 0);
	char bgpath[300];
	snprintf(bgpath, sizeof(bgpath), "%s/bg", dir);
	int bg = atoi(slurp(bgpath));
	assert(bg > 0 && gone(bg));
	char *out = slurp(log);
	assert(strstr(out, "out-line") && strstr(out, "err-line"));
	cs_hooks_free(h);
	event_base_free(base);
	unlink(log), unlink(order), unlink(bgpath), rmdir(dir);
	printf("hooks: all tests passed\n");
	return 0;
}
