/*
 * The background compactor that checksync-init runs next to the program
 * (ns.c), its policy, and `checksync compact`.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chain.h"
#include "compact.h"
#include "tool.h"

int cs_compact_policy_from_env(struct cs_compact_policy *p, char *msg, size_t cap)
{
	const char *f = getenv(CS_ENV_COMPACT_FACTOR), *m = getenv(CS_ENV_COMPACT_MIN_BYTES);
	char *end;
	p->factor = 1.0;
	p->min_bytes = 64ull << 20;
	p->max_images = 512;
	if (f && *f) {
		p->factor = strtod(f, &end);
		if (*end || !(p->factor >= 0)) {
			snprintf(msg, cap, "%s must be a number >= 0, not '%s'",
			         CS_ENV_COMPACT_FACTOR, f);
			return -EINVAL;
		}
	}
	const char *k = getenv(CS_ENV_COMPACT_MAX_IMAGES);
	if (k && *k) {
		p->max_images = strtoull(k, &end, 10);
		if (*end || *k == '-') {
			snprintf(msg, cap, "%s must be a number of images, not '%s'",
			         CS_ENV_COMPACT_MAX_IMAGES, k);
			return -EINVAL;
		}
	}
	if (m && *m) {
		p->min_bytes = strtoull(m, &end, 10);
		if (*end || *m == '-') {
			snprintf(msg, cap, "%s must be a number of bytes, not '%s'",
			         CS_ENV_COMPACT_MIN_BYTES, m);
			return -EINVAL;
		}
	}
	return 0;
}

/* From the first bytes of an image: whether it is a full image, its
 * parent, its size. Only a hint for the policy (no CRC): compaction itself
 * reads everything. */
static int peek(const char *dir, uint64_t gen, int *is_full, uint64_t *parent, uint64_t *size)
{
	char name[64], path[PATH_MAX + 64];
	uint8_t h[64];
	struct stat st;
	cs_image_filename(name, sizeof(name), gen);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = pread(fd, h, sizeof(h), 0);
	int r = n == (ssize_t)sizeof(h) && fstat(fd, &st) == 0 ? 0 : -EIO;
	close(fd);
	/* HEADER's head (16 bytes), then magic; flags at payload offset 20 */
	if (r || h[0] != CS_SECT_HEADER || memcmp(h + 16, CS_IMAGE_MAGIC, 8))
		return -EIO;
	*is_full = !(h[36] & CS_IMAGE_F_DELTA);
	*parent = 0;
	for (int i = 7; i >= 0; i--) /* HEADER payload offset 40, little-endian */
		*parent = *parent << 8 | h[56 + i];
	*size = (uint64_t)st.st_size;
	return 0;
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
		if (peek(dir, gens[i], &is_full, &parent, &size) < 0)
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
 * SCHED_IDLE normally (ns.c says why). But under a program that keeps both
 * cores busy, an idle-class compactor gets a fraction of a percent of a
 * core while deltas keep coming: the directory would grow without bound.
 * So once the backlog is BACKLOG_ESCALATE times the threshold it competes
 * as an ordinary nice-19 process until it has caught up. Slower compaction
 * costs disk and restore time; it never costs the program's memory.
 */
#define BACKLOG_ESCALATE 4

static void set_class(const struct cs_compact_backlog *b, int *escalated)
{
	int want = b->delta_bytes / BACKLOG_ESCALATE > b->limit;
	if (want == *escalated)
		return;
	struct sched_param sp = {0};
	if (sched_setscheduler(0, want ? SCHED_OTHER : SCHED_IDLE, &sp) == 0) {
		setpriority(PRIO_PROCESS, 0, 19);
		*escalated = want;
	}
}

static void report(const struct cs_compact_result *res)
{
	cs_err("compacted generation %llu into a full image of %llu bytes (a chain of %zu images "
	       "down to generation %llu); removed %zu older images",
	       (unsigned long long)res->generation, (unsigned long long)res->bytes, res->folded,
	       (unsigned long long)res->old_base, res->removed);
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
		if (peek(dir, gens[i], &full, &parent, &size) == 0 && full)
			p = gens[i], g = i ? gens[i - 1] : 0;
	}
	free(gens);
	if (!p || p == done_for)
		return done_for;
	for (int steps = 0; g && steps < 100000; steps++) {
		int full;
		uint64_t parent, size;
		if (peek(dir, g, &full, &parent, &size) < 0)
			return p; /* a broken older chain: leave it to an operator */
		if (full)
			break;
		g = parent;
	}
	if (g && cs_compact_prune(dir, g, &removed) == -EBUSY)
		return done_for; /* a compaction runs: try again later */
	return p;
}

/*
 * A failure (a damaged chain, a full disk) is said once and retried with a
 * growing delay, up to 5 minutes: the next generation has the same chain
 * and would fail the same way every second.
 */
void cs_compact_loop(const char *dir, const struct cs_compact_policy *p)
{
	unsigned delay = 1, failures = 0;
	int escalated = 0;
	uint64_t pruned_for = 0;
	/* The first pass at once: a restored program may be killed again
	 * within a second, and what the one before left must still go. */
	for (int first = 1;; first = 0) {
		if (!first)
			sleep(delay);
		struct cs_compact_backlog b;
		if (cs_compact_due(dir, p, &b) <= 0) {
			if (!failures)
				delay = 1;
			pruned_for = prune_old_chains(dir, pruned_for);
			continue;
		}
		set_class(&b, &escalated);
		struct cs_compact_result res;
		char msg[1024];
		uint64_t gen = b.newest;
		int r = cs_compact(dir, gen, 0, &res, msg, sizeof(msg));
		if (r == -EBUSY) /* `checksync compact` is at it */
			continue;
		if (r == 0) {
			report(&res);
			failures = 0;
			delay = 1;
			continue;
		}
		if (!failures++)
			cs_err(
			    "compaction of generation %llu failed: %s (retrying, quietly, with a "
			    "growing delay)",
			    (unsigned long long)gen, msg);
		delay = delay >= 150 ? 300 : delay * 2;
	}
}

int cs_cmd_compact(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"generation", required_argument, NULL, 'g'},
	    {0},
	};
	const char *dir = NULL;
	uint64_t gen = 0;
	char *end, msg[2048], real[PATH_MAX];
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'g':
			gen = strtoull(optarg, &end, 10);
			if (*end || !gen) {
				cs_err("--generation needs a generation number, not '%s'", optarg);
				return 2;
			}
			break;
		default:
			return 2;
		}
	}
	if (!dir && optind < argc)
		dir = argv[optind++];
	if (!dir || optind != argc) {
		cs_err("usage: checksync compact DIR [--generation G]");
		return 2;
	}
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
