/*
 * The background compactor that checksync-init runs next to the program
 * (ns.c), its policy, and `checksync compact`.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "chain.h"
#include "compact.h"
#include "tool.h"

/* A count from the environment into *out (unchanged when unset); -EINVAL
 * with a sentence naming what it counts for anything else. */
static int env_count(const char *name, const char *what, uint64_t *out, char *msg, size_t cap)
{
	const char *v = getenv(name);
	char *end;
	if (!v || !*v)
		return 0;
	*out = strtoull(v, &end, 10);
	if (*end || *v == '-') {
		snprintf(msg, cap, "%s must be a number of %s, not '%s'", name, what, v);
		return -EINVAL;
	}
	return 0;
}

int cs_compact_policy_from_env(struct cs_compact_policy *p, char *msg, size_t cap)
{
	const char *f = getenv(CS_ENV_COMPACT_FACTOR);
	char *end;
	p->factor = 2.0;
	p->min_bytes = 64ull << 20;
	p->max_images = 512;
	p->budget = 0;
	if (f && *f) {
		p->factor = strtod(f, &end);
		if (*end || !(p->factor >= 0)) {
			snprintf(msg, cap, "%s must be a number >= 0, not '%s'",
			         CS_ENV_COMPACT_FACTOR, f);
			return -EINVAL;
		}
	}
	int r = env_count(CS_ENV_COMPACT_MAX_IMAGES, "images", &p->max_images, msg, cap);
	if (!r)
		r = env_count(CS_ENV_COMPACT_MIN_BYTES, "bytes", &p->min_bytes, msg, cap);
	return r ? r : env_count(CS_ENV_COMPACT_BUDGET, "bytes", &p->budget, msg, cap);
}

int cs_compact_due(const char *dir, const struct cs_compact_policy *p,
                   struct cs_compact_backlog *out)
{
	uint64_t *gens, deltas = 0, full_size = 0;
	size_t n, n_deltas = 0;
	int r = cs_dir_generations(dir, &gens, &n), found = 0;
	if (r < 0)
		return r;
	for (size_t i = n; i-- > 0 && !found;) {
		int is_full;
		uint64_t size, parent;
		if (cs_image_peek(dir, gens[i], &is_full, &parent, &size, NULL) < 0)
			continue; /* pruned meanwhile, or damaged: compaction will say */
		if (is_full)
			found = 1, full_size = size;
		else
			deltas += size, n_deltas++;
	}
	out->newest = n ? gens[n - 1] : 0;
	free(gens);
	out->delta_bytes = deltas;
	out->limit = (uint64_t)(p->factor * (double)full_size);
	if (out->limit < p->min_bytes)
		out->limit = p->min_bytes;
	return found && (deltas > out->limit || n_deltas > p->max_images);
}

/*
 * The chain of the newest generation, from image headers only (a hint for
 * the policy, no CRC: compaction reads everything it uses): its deltas
 * oldest first down to its full image, their sizes and ages, and the bytes
 * DIR holds in all.
 */
#define MAX_TRACKED 4096

struct chain_view {
	uint64_t full, full_bytes; /* newest full image of the chain, 0: none */
	uint64_t gen[MAX_TRACKED]; /* deltas above it, oldest first */
	uint64_t size[MAX_TRACKED];
	time_t mtime[MAX_TRACKED];
	size_t n;
	uint64_t delta_bytes, dir_bytes;
};

static void reverse(struct chain_view *v)
{
	for (size_t i = 0, j = v->n - 1; v->n && i < j; i++, j--) {
		uint64_t g = v->gen[i], s = v->size[i];
		time_t t = v->mtime[i];
		v->gen[i] = v->gen[j], v->size[i] = v->size[j], v->mtime[i] = v->mtime[j];
		v->gen[j] = g, v->size[j] = s, v->mtime[j] = t;
	}
}

static int view_chain(const char *dir, struct chain_view *v)
{
	uint64_t *gens, parent, size;
	size_t n;
	int full, r = cs_dir_generations(dir, &gens, &n);
	if (r < 0)
		return r;
	v->n = 0;
	v->full = v->full_bytes = v->delta_bytes = v->dir_bytes = 0;
	for (size_t i = 0; i < n; i++)
		if (cs_image_peek(dir, gens[i], &full, &parent, &size, NULL) == 0)
			v->dir_bytes += size;
	/* newest first down the parents, then turned around */
	for (uint64_t g = n ? gens[n - 1] : 0; g && v->n < MAX_TRACKED; g = parent) {
		if (cs_image_peek(dir, g, &full, &parent, &size, &v->mtime[v->n]) < 0)
			break; /* replaced or damaged meanwhile: the next tick sees */
		if (full) {
			v->full = g;
			v->full_bytes = size;
			break;
		}
		v->gen[v->n] = g;
		v->size[v->n++] = size;
		v->delta_bytes += size;
	}
	free(gens);
	if (!v->full)
		v->n = 0;
	reverse(v);
	return 0;
}

/*
 * Which deltas to merge (size-tiered, as log-structured stores do): the
 * newest ones, and each older one no larger than all newer ones together.
 * A byte is then merged again only when at least as many new bytes have
 * come on top of it, so the work per delta byte stays small (a few reads
 * and writes) however long the program runs, and a big old merge is not
 * rewritten for every small new delta. Returns the index of the oldest
 * delta of the run; 0 with *onto = the full image when it reaches down.
 */
#define MERGE_MIN_IMAGES 4
#define MERGE_MIN_BYTES  (16ull << 20)
/* Deltas younger than this stay as written: checksyncd replicates each
 * generation as it appears, and a backup that has not got one of the
 * deltas a merge replaces starts over from the newest full image. */
#define MERGE_MIN_AGE_S 2

static int merge_run(const struct chain_view *v, int behind, uint64_t *onto, size_t *ret_top)
{
	time_t now = time(NULL);
	size_t top = v->n;
	while (top > 0 && !behind && now - v->mtime[top - 1] < MERGE_MIN_AGE_S)
		top--;
	if (top < 2)
		return -1;
	size_t i = top - 1;
	*ret_top = i;
	uint64_t acc = v->size[i];
	while (i > 0 && (behind || v->size[i - 1] <= acc))
		acc += v->size[--i];
	size_t len = top - i;
	if (len < 2 || (len < MERGE_MIN_IMAGES && acc < MERGE_MIN_BYTES && !behind))
		return -1;
	*onto = i ? v->gen[i - 1] : v->full;
	return (int)i;
}

/* The budget for everything in DIR: CHECKSYNC_COMPACT_BUDGET, else three
 * times the full image plus 256 MiB (a fold's new full image, the chain it
 * folded, and the deltas written meanwhile). */
static uint64_t budget(const struct cs_compact_policy *p, const struct chain_view *v)
{
	return p->budget ? p->budget : 3 * v->full_bytes + (256ull << 20);
}

/*
 * The compactor's scheduling class, per thread (the class of the thread
 * that compacts). On CPUs of its own (the program was pinned elsewhere,
 * cs_compact_set_cpus) it runs at nice 19: it takes nothing from the
 * program there. On CPUs it shares with the program SCHED_IDLE (ns.c says
 * why: no wake-up latency for the program). Either way an idle-class or
 * nice-19 compactor next to a busy process gets 0.1-1.5% of a core, while
 * kvserver writes ~45 MiB of deltas a second: so while DIR holds more
 * than the budget it steps up once (nice 0 on its own CPUs, nice 19 on
 * shared ones) until it is back under. A watcher thread decides, once a
 * second, so that a step that started starved is sped up mid-way.
 */
static int own_cpus;
static pid_t worker_tid;
static _Atomic uint64_t budget_now; /* 0 until the loop has seen a full image */
static _Atomic int behind_now;

static void set_class(pid_t tid, int behind)
{
	struct sched_param sp = {0};
	int idle = !own_cpus && !behind;
	sched_setscheduler(tid, idle ? SCHED_IDLE : SCHED_OTHER, &sp);
	if (!idle)
		setpriority(PRIO_PROCESS, (id_t)tid, own_cpus && behind ? 0 : 19);
}

static uint64_t dir_total(const char *dir)
{
	uint64_t *gens, total = 0;
	size_t n;
	char path[PATH_MAX + 64];
	struct stat st;
	if (cs_dir_generations(dir, &gens, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		cs_image_path(dir, gens[i], path, sizeof(path));
		if (stat(path, &st) == 0)
			total += (uint64_t)st.st_size;
	}
	free(gens);
	return total;
}

static void *watch_budget(void *arg)
{
	const char *dir = arg;
	for (;;) {
		sleep(1);
		uint64_t b = atomic_load(&budget_now), bytes = b ? dir_total(dir) : 0;
		int behind = b && bytes > b;
		if (behind == atomic_load(&behind_now))
			continue;
		cs_err(behind
		           ? "compaction is behind: %s holds %llu bytes, over its budget of %llu; "
		             "merging everything onto the full image, at a higher priority"
		           : "compaction caught up: %s holds %llu bytes, budget %llu",
		       dir, (unsigned long long)bytes, (unsigned long long)b);
		atomic_store(&behind_now, behind);
		set_class(worker_tid, behind);
	}
	return NULL;
}

static void report(const struct cs_compact_result *res)
{
	if (res->merged)
		cs_err("merged %zu deltas up to generation %llu into one delta of %llu bytes on "
		       "generation %llu (%llu bytes read)",
		       res->folded, (unsigned long long)res->generation,
		       (unsigned long long)res->bytes, (unsigned long long)res->old_base,
		       (unsigned long long)res->read_bytes);
	else
		cs_err("compacted generation %llu into a full image of %llu bytes (a chain of %zu "
		       "images down to generation %llu); removed %zu older images",
		       (unsigned long long)res->generation, (unsigned long long)res->bytes,
		       res->folded, (unsigned long long)res->old_base, res->removed);
}

/*
 * Without a compaction the directory still has to be pruned: a program
 * that is restored again and again takes a base each time (an image of its
 * whole memory) and may never live long enough for a compaction, and the
 * agent leaves pruning to us. So when the newest full image P is new, the
 * chain of the generation just below P is followed down to its full image
 * E, and everything older than E goes: P's chain and the one before stay,
 * as when the agent pruned after each base. Returns P.
 */
static uint64_t prune_old_chains(const char *dir, uint64_t done_for)
{
	uint64_t *gens, p = 0, g = 0;
	size_t n, removed = 0;
	if (cs_dir_generations(dir, &gens, &n) < 0)
		return done_for;
	for (size_t i = n; i-- > 0 && !p;) {
		int full;
		uint64_t parent, size;
		if (cs_image_peek(dir, gens[i], &full, &parent, &size, NULL) == 0 && full)
			p = gens[i], g = i ? gens[i - 1] : 0;
	}
	free(gens);
	if (!p || p == done_for)
		return done_for;
	for (int steps = 0; g && steps < 100000; steps++) {
		int full;
		uint64_t parent, size;
		if (cs_image_peek(dir, g, &full, &parent, &size, NULL) < 0)
			return p; /* a broken older chain: leave it to an operator */
		if (full)
			break;
		g = parent;
	}
	if (g && cs_compact_prune(dir, g, &removed) == -EBUSY)
		return done_for; /* a compaction runs: try again later */
	return p;
}

/* "1", "0-1,3": the CPUs of a list; 0 on a malformed one. */
static int parse_cpus(const char *s, cpu_set_t *out)
{
	CPU_ZERO(out);
	while (*s) {
		char *end;
		unsigned long a = strtoul(s, &end, 10), b = a;
		if (end == s)
			return 0;
		if (*end == '-') {
			s = end + 1;
			b = strtoul(s, &end, 10);
			if (end == s || b < a)
				return 0;
		}
		for (unsigned long c = a; c <= b && c < CPU_SETSIZE; c++)
			CPU_SET(c, out);
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return 0;
	}
	return CPU_COUNT(out);
}

/*
 * The compactor must not share the program's pinned core: `taskset -c 0
 * checksync run ...` pins init and, through it, the compactor to core 0,
 * where SCHED_IDLE gets nothing while the program is busy and its backlog
 * grows without bound. So it runs on CHECKSYNC_COMPACT_CPUS when that is
 * set, else on every CPU the program was not pinned to; an unpinned
 * program leaves it on all of them (SCHED_IDLE keeps it out of the way).
 * A set the kernel refuses (a cpuset without those CPUs) leaves it as is.
 */
void cs_compact_set_cpus(void)
{
	cpu_set_t inherited, want, both;
	const char *env = getenv(CS_ENV_COMPACT_CPUS);
	long n = sysconf(_SC_NPROCESSORS_CONF);
	if (sched_getaffinity(0, sizeof(inherited), &inherited) < 0)
		return;
	CPU_ZERO(&want);
	if (env && *env) {
		if (!parse_cpus(env, &want)) {
			cs_err("%s='%s' is not a CPU list; the compactor keeps the program's CPUs",
			       CS_ENV_COMPACT_CPUS, env);
			return;
		}
	} else {
		for (long c = 0; c < n && c < CPU_SETSIZE; c++)
			if (!CPU_ISSET(c, &inherited))
				CPU_SET(c, &want);
		if (!CPU_COUNT(&want))
			return;
	}
	CPU_AND(&both, &want, &inherited);
	own_cpus = sched_setaffinity(0, sizeof(want), &want) == 0 && !CPU_COUNT(&both);
}

static int newest_generation_of(const char *dir, uint64_t *ret)
{
	uint64_t *gens;
	size_t n;
	int r = cs_dir_generations(dir, &gens, &n);
	if (r < 0)
		return r;
	*ret = n ? gens[n - 1] : 0;
	free(gens);
	return n ? 0 : -ENOENT;
}

/* What the compactor has done, for DIR/compactor.status. */
struct loop_stats {
	uint64_t merges, folds, read_bytes, written_bytes, dropped;
	int behind;
};

/*
 * DIR/compactor.status, one line of key=value, replaced (rename) after
 * every tick that did something and whenever the state changes: what an
 * operator, a benchmark or a test reads to see whether compaction keeps
 * up. cpu_ms is this process's CPU time; state is "behind" while DIR holds
 * more than the budget.
 */
static void write_status(const char *dir, const struct chain_view *v,
                         const struct cs_compact_policy *p, const struct loop_stats *st)
{
	char tmp[PATH_MAX], final[PATH_MAX], line[512];
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	uint64_t cpu_ms = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	                  (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
	int n =
	    snprintf(line, sizeof(line),
	             "state=%s dir_bytes=%llu budget=%llu full=%llu full_bytes=%llu deltas=%zu "
	             "delta_bytes=%llu merges=%llu folds=%llu read_bytes=%llu "
	             "written_bytes=%llu dropped=%llu cpu_ms=%llu\n",
	             st->behind ? "behind" : "ok", (unsigned long long)v->dir_bytes,
	             (unsigned long long)budget(p, v), (unsigned long long)v->full,
	             (unsigned long long)v->full_bytes, v->n, (unsigned long long)v->delta_bytes,
	             (unsigned long long)st->merges, (unsigned long long)st->folds,
	             (unsigned long long)st->read_bytes, (unsigned long long)st->written_bytes,
	             (unsigned long long)st->dropped, (unsigned long long)cpu_ms);
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, CS_COMPACT_STATUS);
	snprintf(final, sizeof(final), "%s/%s", dir, CS_COMPACT_STATUS);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	int ok = write(fd, line, (size_t)n) == n;
	close(fd);
	if (!ok || rename(tmp, final) < 0)
		unlink(tmp);
}

/* One step: a fold when the policy says so or DIR is over its budget,
 * else a merge when one is due; 0 when there was nothing to do. */
static int step(const char *dir, const struct cs_compact_policy *p, const struct chain_view *v,
                const struct loop_stats *st, struct cs_compact_result *res, char *msg, size_t cap)
{
	struct cs_compact_backlog b;
	uint64_t onto = 0;
	size_t top = 0;
	if (cs_compact_due(dir, p, &b) > 0 || (st->behind && v->n))
		return cs_compact(dir, b.newest, 0, res, msg, cap) == 0 ? 1 : -1;
	if (merge_run(v, st->behind, &onto, &top) < 0)
		return 0;
	int r = cs_compact_merge(dir, v->gen[top], onto, res, msg, cap);
	return r == 0 ? 1 : r == -EBUSY || r == -ESTALE ? 0 : -1;
}

/*
 * After a fold the chain it ended at stays (K and its deltas: the chain
 * before the new one, as when the agent pruned after a base), so a bad
 * full image would still leave something to restore. Over the budget that
 * doubles what DIR holds, so it goes at once.
 */
static void drop_previous_chain(const char *dir, const struct cs_compact_result *res,
                                struct loop_stats *st)
{
	size_t removed = 0;
	if (st->behind && !res->merged && cs_compact_prune(dir, res->generation, &removed) == 0)
		st->dropped += removed;
}

/*
 * A failure (a damaged chain, a full disk) is said once and retried with a
 * growing delay, up to 5 minutes: the next generation has the same chain
 * and would fail the same way every second.
 */
void cs_compact_loop(const char *dir, const struct cs_compact_policy *p)
{
	unsigned delay = 1, failures = 0;
	uint64_t pruned_for = 0;
	struct loop_stats st = {0};
	static struct chain_view v;
	pthread_t watcher;
	worker_tid = (pid_t)syscall(SYS_gettid);
	set_class(worker_tid, 0);
	if (pthread_create(&watcher, NULL, watch_budget, (void *)dir) != 0)
		cs_err("no watcher thread for the compactor's budget; it stays at low priority");
	/* The first pass at once: a restored program may be killed again
	 * within a second, and what the one before left must still go. */
	for (int first = 1;; first = 0) {
		if (!first)
			sleep(delay);
		if (view_chain(dir, &v) < 0)
			continue;
		atomic_store(&budget_now, v.full ? budget(p, &v) : 0);
		st.behind = atomic_load(&behind_now);
		struct cs_compact_result res;
		char msg[1024];
		int r = step(dir, p, &v, &st, &res, msg, sizeof(msg));
		if (r >= 0 && !failures)
			delay = 1;
		if (r == 0) {
			pruned_for = prune_old_chains(dir, pruned_for);
			write_status(dir, &v, p, &st);
			continue;
		}
		if (r > 0) {
			report(&res);
			st.merges += res.merged;
			st.folds += !res.merged;
			st.read_bytes += res.read_bytes;
			st.written_bytes += res.bytes;
			drop_previous_chain(dir, &res, &st);
			failures = 0;
			delay = 1;
			view_chain(dir, &v);
			write_status(dir, &v, p, &st);
			continue;
		}
		if (!failures++)
			cs_err(
			    "compaction in %s failed: %s (retrying, quietly, with a growing delay)",
			    dir, msg);
		delay = delay >= 150 ? 300 : delay * 2;
	}
}

/* A generation number given as option name's argument; -EINVAL said. */
static int generation_arg(const char *name, const char *arg, uint64_t *out)
{
	char *end;
	*out = strtoull(arg, &end, 10);
	if (*end || !*out || *arg == '-') {
		cs_err("%s needs a generation number, not '%s'", name, arg);
		return -EINVAL;
	}
	return 0;
}

/* checksync compact DIR --onto P: the deltas above P merged into one. */
static int cmd_merge(const char *dir, uint64_t gen, uint64_t onto)
{
	char msg[2048];
	struct cs_compact_result res;
	int r = gen ? 0 : newest_generation_of(dir, &gen);
	if (!r)
		r = cs_compact_merge(dir, gen, onto, &res, msg, sizeof(msg));
	else
		snprintf(msg, sizeof(msg), "%s holds no complete checkpoint", dir);
	if (r < 0) {
		cs_err("refusing to merge: %s", msg);
		return 1;
	}
	if (!res.merged)
		printf("generation %llu has no deltas to merge above generation %llu\n",
		       (unsigned long long)gen, (unsigned long long)onto);
	else
		printf("generation %llu is one delta on generation %llu now: %llu bytes from %zu "
		       "deltas (%llu bytes)\n",
		       (unsigned long long)gen, (unsigned long long)onto,
		       (unsigned long long)res.bytes, res.folded,
		       (unsigned long long)res.read_bytes);
	return 0;
}

int cs_cmd_compact(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"generation", required_argument, NULL, 'g'},
	    {"onto", required_argument, NULL, 'o'},
	    {0},
	};
	const char *dir = NULL;
	uint64_t gen = 0, onto = 0;
	char msg[2048], real[PATH_MAX];
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'g':
		case 'o':
			if (generation_arg(c == 'g' ? "--generation" : "--onto", optarg,
			                   c == 'g' ? &gen : &onto))
				return 2;
			break;
		default:
			return 2;
		}
	}
	if (!dir && optind < argc)
		dir = argv[optind++];
	if (!dir || optind != argc) {
		cs_err("usage: checksync compact DIR [--generation G] [--onto P]");
		return 2;
	}
	if (onto)
		return cmd_merge(dir, gen, onto);
	if (!realpath(dir, real)) {
		cs_err("%s: %s", dir, strerror(errno));
		return 1;
	}
	struct cs_compact_result res;
	int r = cs_compact(real, gen, 1, &res, msg, sizeof(msg));
	if (r < 0) {
		cs_err("refusing to compact: %s%s", msg,
		       r == -EBADMSG || r == -ENOENT ? "; nothing was changed" : "");
		return 1;
	}
	if (res.already_full)
		printf("generation %llu is already a full image (%llu bytes)\n",
		       (unsigned long long)res.generation, (unsigned long long)res.bytes);
	else
		printf("generation %llu is a full image now: %llu bytes from a chain of %zu images "
		       "down "
		       "to generation %llu; removed %zu older images\n",
		       (unsigned long long)res.generation, (unsigned long long)res.bytes,
		       res.folded, (unsigned long long)res.old_base, res.removed);
	return 0;
}
