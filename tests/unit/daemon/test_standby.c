/* The warm standby's daemon side against a stand-in tool
 * (fake_standby_tool.py, which speaks the control protocol): the path a
 * failover takes (cs_failover_path), a standby built and promoted and its
 * tool handed over, a promote refused or a tool that dies or stays silent
 * (the promotion learns it, nothing is left), a tool that fails at once
 * (failed, no restart before the backoff), a standby no longer wanted, one
 * kept but not started (KEEP), and a chain replaced under a running one. Usage: test_standby TOOL
 */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "proc.h"
#include "standby.h"

#include "check.h"

static struct event_base *base;
static const char *tool;
static char chain[] = "/tmp/test-standby-XXXXXX";

struct answer {
	bool done;
	int err;
	struct cs_standby_handover h;
	char why[400];
};

static void promoted(void *arg, int err, const struct cs_standby_handover *h, const char *why)
{
	struct answer *a = arg;

	a->done = true;
	a->err = err;
	if (h)
		a->h = *h;
	snprintf(a->why, sizeof(a->why), "%s", why);
}

/* Runs the loop until cond holds; a generous bound only against a hang,
 * never a statement about speed. */
static bool run_until(bool (*cond)(void *), void *arg)
{
	uint64_t deadline = cs_monotonic_ms() + 30000;

	while (!cond(arg) && cs_monotonic_ms() < deadline) {
		struct timeval tv = {0, 10000};

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return cond(arg);
}

static enum cs_standby_state state_of(struct cs_standby *s)
{
	struct cs_standby_view v;

	cs_standby_view(s, &v);
	return v.state;
}

static bool is_ready(void *arg)
{
	return state_of(arg) == CS_STANDBY_READY;
}

static bool is_failed(void *arg)
{
	return state_of(arg) == CS_STANDBY_FAILED;
}

static bool applied_one(void *arg)
{
	struct cs_standby_view v;

	cs_standby_view(arg, &v);
	return v.generation == 6;
}

static bool answered(void *arg)
{
	return ((struct answer *)arg)->done;
}

static int pid_of(struct cs_standby *s)
{
	json_t *j = cs_standby_status(s);
	int pid = (int)json_integer_value(json_object_get(j, "pid"));

	json_decref(j);
	return pid;
}

static bool gone(int pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d", pid);
	return access(path, F_OK) != 0;
}

static struct cs_standby *new_standby(const char *mode)
{
	static char env[64];
	static char *envv[2] = {env, NULL};
	struct cs_standby_params p = {.tool = tool, .chain_dir = chain, .env = envv};
	struct cs_standby *s;

	snprintf(env, sizeof(env), "FAKE_STANDBY=%s", mode);
	assert(cs_standby_new(base, &p, &s) == 0);
	return s;
}

static void test_paths(void)
{
	struct cs_standby_view v = {
	    .state = CS_STANDBY_READY, .generation = 7, .chain_newest = 7, .same_chain = true};
	char why[300];

	CHECK(cs_failover_path(&v, why, sizeof(why)) == CS_PATH_STANDBY, "%s", why);
	v.state = CS_STANDBY_APPLYING;
	v.chain_newest = 9;
	v.behind_ms = CS_STANDBY_BEHIND_MS; /* a generation pending, not for too long */
	CHECK(cs_failover_path(&v, why, sizeof(why)) == CS_PATH_STANDBY, "%s", why);
	v.behind_ms = CS_STANDBY_BEHIND_MS + 1;
	CHECK(cs_failover_path(&v, why, sizeof(why)) == CS_PATH_COLD &&
	          !strncmp(why, "behind: ", 8),
	      "%s", why);
	v.behind_ms = 0;
	v.same_chain = false;
	CHECK(cs_failover_path(&v, why, sizeof(why)) == CS_PATH_COLD &&
	          strstr(why, "behind: the chain was replaced"),
	      "%s", why);
	v = (struct cs_standby_view){.state = CS_STANDBY_OFF, .why = "checkpoint.standby is false"};
	CHECK(cs_failover_path(&v, why, sizeof(why)) == CS_PATH_COLD &&
	          !strcmp(why, "off: checkpoint.standby is false"),
	      "%s", why);
	v.state = CS_STANDBY_BUILDING;
	CHECK(cs_failover_path(&v, why, sizeof(why)) == CS_PATH_COLD &&
	          !strncmp(why, "building: ", 10),
	      "%s", why);
	v = (struct cs_standby_view){.state = CS_STANDBY_FAILED, .why = "exit status 3"};
	CHECK(cs_failover_path(&v, why, sizeof(why)) == CS_PATH_COLD &&
	          !strcmp(why, "failed: exit status 3"),
	      "%s", why);
}

/* Built, status answered, promoted: the tool and its app are the caller's,
 * alive, and the standby holds nothing any more. */
static void test_promote(void)
{
	struct cs_standby *s = new_standby("applied");
	struct cs_standby_view v;
	struct answer a = {0};
	json_t *j;
	int pid;

	cs_standby_want(s, CS_STANDBY_RUN, 6, "");
	CHECK(run_until(is_ready, s), "never ready");
	CHECK(run_until(applied_one, s), "the applied generation never counted");
	cs_standby_want(s, CS_STANDBY_RUN, 6, "");
	cs_standby_view(s, &v);
	CHECK(v.generation >= 5 && v.same_chain, "generation %llu",
	      (unsigned long long)v.generation);
	pid = pid_of(s);
	CHECK(cs_standby_promote(s, 42, promoted, &a) == 0, "promote not sent");
	CHECK(run_until(answered, &a), "no answer to promote");
	CHECK(a.err == 0 && a.h.pid == pid && a.h.pidfd >= 0 && a.h.control_fd >= 0 &&
	          a.h.generation == 6,
	      "err %d pid %d/%d gen %llu why %s", a.err, a.h.pid, pid,
	      (unsigned long long)a.h.generation, a.why);
	CHECK(!gone(pid), "the promoted tool died");
	j = cs_standby_status(s);
	CHECK(!strcmp(json_string_value(json_object_get(j, "state")), "off") &&
	          json_integer_value(json_object_get(j, "pid")) == 0 &&
	          json_integer_value(json_object_get(j, "applied")) == 1 &&
	          json_integer_value(json_object_get(j, "last_apply_ms")) == 7,
	      "%s", json_dumps(j, 0));
	json_decref(j);
	cs_standby_free(s); /* kills nothing: the tool is not the standby's any more */
	CHECK(!gone(pid), "freeing the standby killed the promoted tool");
	if (a.err == 0) {
		cs_proc_kill_tree(a.h.pid, 1);
		close(a.h.pidfd);
		close(a.h.control_fd);
	}
	CHECK(gone(pid), "the promoted tool survived its kill");
}

/* A promotion that does not work: the answer says why, nothing is left. */
static void test_promote_fails(const char *mode, const char *why)
{
	struct cs_standby *s = new_standby(mode);
	struct answer a = {0};
	int pid;

	cs_standby_want(s, CS_STANDBY_RUN, 5, "");
	CHECK(run_until(is_ready, s), "%s: never ready", mode);
	pid = pid_of(s);
	CHECK(cs_standby_promote(s, 42, promoted, &a) == 0, "%s: promote not sent", mode);
	CHECK(run_until(answered, &a), "%s: no answer", mode);
	CHECK(a.err < 0 && !strncmp(a.why, why, strlen(why)), "%s: err %d why %s", mode, a.err,
	      a.why);
	CHECK(state_of(s) == CS_STANDBY_FAILED && pid_of(s) == 0 && gone(pid), "%s: tool left",
	      mode);
	CHECK(cs_standby_promote(s, 42, promoted, &a) == -EAGAIN, "%s: promoted a failed one",
	      mode);
	cs_standby_free(s);
}

/* A tool that fails at once is failed with its exit status, and is not
 * started again before the backoff. */
static void test_crash(void)
{
	struct cs_standby *s = new_standby("crash");
	json_t *j;

	cs_standby_want(s, CS_STANDBY_RUN, 5, "");
	CHECK(run_until(is_failed, s), "never failed");
	cs_standby_want(s, CS_STANDBY_RUN, 5, "");
	j = cs_standby_status(s);
	CHECK(strstr(json_string_value(json_object_get(j, "why")), "exited with status 3") &&
	          json_integer_value(json_object_get(j, "starts")) == 1 &&
	          json_integer_value(json_object_get(j, "pid")) == 0,
	      "%s", json_dumps(j, 0));
	json_decref(j);
	cs_standby_want(s, CS_STANDBY_NONE, 5, "checkpoint.standby is false");
	CHECK(state_of(s) == CS_STANDBY_OFF, "not off");
	cs_standby_free(s);
}

/* Not wanted: killed at once. A chain moved aside: the tool on it killed
 * and a new one started on the new chain. */
static void test_unwanted_and_replaced(void)
{
	struct cs_standby *s = new_standby("ok");
	char aside[sizeof(chain) + 8];
	int pid;

	cs_standby_want(s, CS_STANDBY_RUN, 5, "");
	CHECK(run_until(is_ready, s), "never ready");
	pid = pid_of(s);
	cs_standby_want(s, CS_STANDBY_NONE, 5, "this node is not a backup");
	CHECK(gone(pid) && state_of(s) == CS_STANDBY_OFF, "still there after want false");
	cs_standby_want(s, CS_STANDBY_KEEP, 5, "the chain is of term 2, not 3");
	CHECK(pid_of(s) == 0 && state_of(s) == CS_STANDBY_OFF, "KEEP started a standby");
	cs_standby_want(s, CS_STANDBY_RUN, 5, "");
	CHECK(run_until(is_ready, s), "never ready again");
	pid = pid_of(s);
	cs_standby_want(s, CS_STANDBY_KEEP, 5, "an election is under way");
	CHECK(pid_of(s) == pid && state_of(s) == CS_STANDBY_READY, "KEEP did not keep it");
	snprintf(aside, sizeof(aside), "%s.aside", chain);
	assert(rename(chain, aside) == 0 && mkdir(chain, 0700) == 0);
	cs_standby_want(s, CS_STANDBY_RUN, 5, "");
	CHECK(gone(pid) && pid_of(s) != pid && pid_of(s) != 0, "the old chain's tool lives on");
	CHECK(run_until(is_ready, s), "never ready on the new chain");
	cs_standby_free(s);
	CHECK(gone(pid), "left behind");
}

/* The chain directories go even when an assert ends the test. */
static void remove_chain(void)
{
	char aside[sizeof(chain) + 8];

	snprintf(aside, sizeof(aside), "%s.aside", chain);
	rmdir(aside);
	rmdir(chain);
}

int main(int argc, char **argv)
{
	assert(argc == 2);
	tool = argv[1];
	signal(SIGPIPE, SIG_IGN);
	assert(mkdtemp(chain));
	atexit(remove_chain);
	base = event_base_new();
	test_paths();
	test_promote();
	test_promote_fails("refuse", "refused: the image's vDSO differs");
	test_promote_fails("die", "failed: the standby tool was killed by signal 9");
	test_promote_fails("silent", "failed: the standby tool did not answer promote");
	test_crash();
	test_unwanted_and_replaced();
	event_base_free(base);
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	else
		printf("standby: all checks passed\n");
	return failures ? 1 : 0;
}
