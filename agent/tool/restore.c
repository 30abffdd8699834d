/*
 * checksync restore: rebuild the process of a checkpoint in new PID, mount
 * and time namespaces. Every check runs before anything is created
 * (docs/restore.md lists the refusals); then the plan is written, the
 * namespaces made, and the process to restore (the image's own pid, via
 * clone3 set_tid in the init) recreates its fds and execs the restorer.
 * The restorer reports "ok" on a status pipe just before threads run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/cs_agent_abi.h"
#include "../restore/cs_plan.h"
#include "restore.h"
#include "tool.h"

static int64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* First generation number nobody used in DIR, counting unfinished .tmp
 * images too, so the restored agent never overwrites one. */
uint64_t cs_restore_next_generation(const char *dir)
{
	uint64_t max = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		uint64_t g;
		int tmp;
		if (cs_image_name_parse(e->d_name, &g, &tmp) == 0 && g > max)
			max = g;
	}
	if (d)
		closedir(d);
	return max + 1;
}

/* Reads [addr, addr + len) of the checkpointed memory from the chain. */
static int read_memory(const struct cs_restore *r, uint64_t addr, uint8_t *out, size_t len)
{
	struct cs_plan_copy *c;
	size_t n, got = 0;
	if (cs_plan_resolve_pages(r, 0, &c, &n) < 0) /* image i of the chain is "fd" i */
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		uint64_t s = c[i].addr > addr ? c[i].addr : addr;
		uint64_t e = c[i].addr + c[i].len < addr + len ? c[i].addr + c[i].len : addr + len;
		if (s >= e)
			continue;
		ssize_t k = pread(r->chain.imgs[c[i].fd].fd, out + (s - addr), e - s,
		                  (off_t)(c[i].file_off + (s - c[i].addr)));
		if (k == (ssize_t)(e - s))
			got += (size_t)k;
	}
	free(c);
	return got == len ? 0 : -ENODATA;
}

/*
 * Whether the agent in the image counts on a compactor: its process was
 * started with CHECKSYNC_COMPACTOR=1 (checksync run). Its configuration is
 * in its memory, so the answer is in the image: the environment block the
 * kernel laid out at exec (setenv later changes environ, not this block).
 */
int cs_restore_wants_compactor(const struct cs_restore *r)
{
	static const char want[] = CS_ENV_COMPACTOR "=1";
	uint64_t start = r->img->process.env_start, end = r->img->process.env_end;
	if (!start || end <= start || end - start > (1u << 20))
		return 0;
	size_t len = (size_t)(end - start);
	uint8_t *env = malloc(len + 1);
	int found = 0;
	if (env && read_memory(r, start, env, len) == 0) {
		env[len] = 0;
		for (size_t i = 0; i < len && !found; i += strlen((char *)env + i) + 1)
			found = !strcmp((char *)env + i, want);
	}
	free(env);
	return found;
}

/* A pid for the compactor that no thread of the image has: clone3 gives
 * the threads their saved tids after init has started the compactor. */
pid_t cs_restore_compactor_pid(const struct cs_image *img)
{
	pid_t hi = img->process.pid;
	for (size_t i = 0; i < img->n_threads; i++)
		if (img->threads[i].tid > hi)
			hi = img->threads[i].tid;
	return hi + 1;
}

static int highest_open_fd(void)
{
	int hi = 2;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name);
		if (fd > hi)
			hi = fd;
	}
	if (d)
		closedir(d);
	return hi;
}

int cs_restore_prepare(struct cs_restore *r)
{
	const struct cs_image *img = r->img;
	/* A standby checks the program's fds (ports free) at promotion: until
	 * then the program it stands in for may hold them on this host. */
	if (cs_validate_unsupported(img) < 0 || cs_validate_abi(img) < 0 ||
	    (!r->step && cs_validate_fds(img) < 0) || cs_validate_files(r) < 0 ||
	    cs_validate_creds(r) < 0)
		return -1;
	r->next_generation = cs_restore_next_generation(r->dir);
	if (r->next_generation < r->min_next_generation)
		r->next_generation = r->min_next_generation;
	r->mono_offset_ns = img->header.clock_monotonic_ns - now_ns(CLOCK_MONOTONIC);
	r->boot_offset_ns = img->header.clock_boottime_ns - now_ns(CLOCK_BOOTTIME);
	r->away_ns = now_ns(CLOCK_REALTIME) - img->header.clock_realtime_ns;
	int p[2];
	r->plan_fd = memfd_create("checksync-plan", MFD_CLOEXEC);
	if (r->plan_fd < 0 || pipe2(p, O_CLOEXEC) < 0) {
		cs_err("creating the plan: %s", strerror(errno));
		return -1;
	}
	r->status_rd = p[0];
	r->status_wr = p[1];
	int hi = highest_open_fd();
	for (size_t i = 0; i < img->n_fds; i++)
		if (img->fds[i].fd > hi)
			hi = img->fds[i].fd;
	r->helper_base = hi + 8;
	return cs_plan_build(r) < 0 ? -1 : 0;
}

static int restore_child(void *arg)
{
	return cs_restore_exec(arg);
}

/* "ok" from the restorer, or its (or the child's) error sentence. */
static int await_status(struct cs_restore *r, pid_t init)
{
	char buf[1200];
	size_t n = 0;
	for (;;) {
		ssize_t k = read(r->status_rd, buf + n, sizeof(buf) - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
		if (n == sizeof(buf) - 1 || (n >= 3 && !memcmp(buf, "ok\n", 3)))
			break;
	}
	buf[n] = 0;
	if (n >= 3 && !memcmp(buf, "ok\n", 3))
		return 0;
	buf[strcspn(buf, "\n")] = 0;
	if (!strncmp(buf, "error ", 6))
		cs_err("restore of generation %llu failed: %s",
		       (unsigned long long)r->img->header.generation, buf + 6);
	else {
		/* init exits with the status of the process it created */
		int st = 0;
		waitpid(init, &st, 0);
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		cs_err("restore of generation %llu failed: the restorer died without a word "
		       "(status %d%s)",
		       (unsigned long long)r->img->header.generation, code,
		       code > 128 ? ", killed by a signal: 128 + signo" : "");
	}
	return -1;
}

static int parse_restore(int argc, char **argv, struct cs_restore *r, uint64_t *gen)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"generation", required_argument, NULL, 'g'},
	    {"detach", no_argument, NULL, 'D'},
	    {"next-generation", required_argument, NULL, 'n'},
	    {"check", no_argument, NULL, 'c'},
	    {0},
	};
	const char *dir = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'D':
			r->detach = 1;
			break;
		case 'c':
			r->check_only = 1;
			break;
		case 'g':
			if (cs_parse_arg_u64("--generation", optarg, "a generation number", 0,
			                     gen) < 0)
				return -1;
			break;
		case 'n':
			if (cs_parse_arg_u64("--next-generation", optarg, "a generation number", 0,
			                     &r->min_next_generation) < 0)
				return -1;
			break;
		default:
			return -1;
		}
	}
	if (!dir || optind != argc) {
		cs_err("usage: checksync restore --dir DIR [--generation G] [--next-generation N] "
		       "[--detach | --check]");
		return -1;
	}
	if (!realpath(dir, r->dir)) {
		cs_err("%s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int launch(struct cs_restore *r)
{
	struct cs_launch l = {
	    .monotonic_offset_ns = r->mono_offset_ns,
	    .boottime_offset_ns = r->boot_offset_ns,
	    .pid = r->img->process.pid,
	    .child = restore_child,
	    .arg = r,
	    .detach = r->detach,
	    .close_in_init = {r->status_wr, -1, -1},
	    .dir = r->dir,
	};
	char msg[256];
	if (cs_restore_wants_compactor(r)) {
		if (cs_compact_policy_from_env(&l.compact, msg, sizeof(msg)) < 0) {
			cs_err("%s", msg);
			return 2;
		}
		l.compact_dir = r->dir;
		l.compactor_pid = cs_restore_compactor_pid(r->img);
	}
	pid_t init;
	if (cs_launch_start(&l, &init) < 0)
		return 1;
	close(r->status_wr);
	/* agent.pid first: tools that watch DIR learn the new pid as soon as the
	 * process exists; a failed restore removes it again. */
	pid_t host = cs_launch_child_host_pid(init);
	if (host > 0)
		cs_write_pid_file(r->dir, host);
	if (await_status(r, init) < 0) {
		char path[PATH_MAX + 16];
		int st;
		snprintf(path, sizeof(path), "%s/agent.pid", r->dir);
		if (host > 0)
			unlink(path);
		waitpid(init, &st, 0);
		return 1;
	}
	if (r->detach) {
		printf("%d\n", (int)host);
		fflush(stdout);
		return 0;
	}
	return cs_launch_wait(init);
}

/* Whether DIR's image of generation g (alone, page checksums not read)
 * names nothing refused; an unreadable one does not qualify. */
static int image_restorable(const char *dir, uint64_t g)
{
	char path[PATH_MAX + 64];
	struct cs_loaded l;
	struct cs_chain_damage d;
	cs_image_path(dir, g, path, sizeof(path));
	if (cs_loaded_open_flags(path, CS_IMAGE_PARSE_SKIP_PAGE_CRC, &l, &d) < 0)
		return 0;
	int ok = cs_image_refusals(l.img) == 0;
	cs_loaded_close(&l);
	return ok;
}

/*
 * Without --generation, the newest generation a restore can make. A
 * checkpoint that refused state was written all the same (the chain goes
 * on through it) and failed the cs_sync calls that waited for it, so the
 * newest generation without refusals is the newest state the program was
 * told is safe. Loud, not silent: the refusals of the newest are printed.
 * With none, r->chain keeps the newest, which cs_restore_prepare refuses
 * by name.
 */
static void fall_back_past_refusals(struct cs_restore *r)
{
	const struct cs_image *newest = r->chain.imgs[0].img;
	uint64_t *gens, g = newest->header.generation;
	size_t n;
	char msg[2048];
	if (!cs_image_refusals(newest) || cs_dir_generations(r->dir, &gens, &n) < 0)
		return;
	for (size_t i = n; i-- > 0;) {
		struct cs_chain older;
		if (gens[i] >= g || !image_restorable(r->dir, gens[i]) ||
		    cs_chain_pick(r->dir, gens[i], &older, msg, sizeof(msg)) < 0)
			continue;
		char lead[64];
		cs_err("generation %llu holds what its checkpoint refused (below); restoring "
		       "generation %llu, the newest that can be restored (the checkpoints after it "
		       "were refused and failed the cs_sync calls that waited for them)",
		       (unsigned long long)g, (unsigned long long)gens[i]);
		snprintf(lead, sizeof(lead), "generation %llu: ", (unsigned long long)g);
		cs_print_refusals(newest, lead);
		cs_chain_free(&r->chain);
		r->chain = older;
		break;
	}
	free(gens);
}

int cs_cmd_restore(int argc, char **argv)
{
	struct cs_restore r = {
	    .exe_fd = -1, .plan_fd = -1, .status_rd = -1, .status_wr = -1, .control_fd = -1};
	uint64_t gen = 0;
	char msg[2048];
	if (parse_restore(argc, argv, &r, &gen) < 0)
		return 2;
	int e = cs_find_file("CHECKSYNC_RESTORER", "../restore/checksync-restore",
	                     CS_INSTALL_LIBEXECDIR "/checksync-restore", r.restorer,
	                     sizeof(r.restorer));
	if (e < 0) {
		cs_err("cannot find checksync-restore (tried $CHECKSYNC_RESTORER, the build tree, "
		       "%s): %s",
		       CS_INSTALL_LIBEXECDIR, strerror(-e));
		return 1;
	}
	if (cs_chain_pick(r.dir, gen, &r.chain, msg, sizeof(msg)) < 0) {
		cs_err("refusing to restore: %s", msg);
		return 1;
	}
	if (!gen)
		fall_back_past_refusals(&r);
	r.img = r.chain.imgs[0].img;
	if (cs_restore_prepare(&r) < 0)
		return 1;
	if (r.check_only) {
		/* Everything a restore checks before it changes anything passed:
		 * what checksyncd's restore_ready reports on a backup. */
		printf("ready: generation %llu of %s can be restored here\n",
		       (unsigned long long)r.img->header.generation, r.dir);
		return 0;
	}
	return launch(&r);
}
