/*
 * Start-up, the agent thread and the public API (checksync.h).
 *
 * Nothing happens unless CHECKSYNC_DIR is set: the constructor returns at
 * once and every API call answers -ENOTCONN. Otherwise the constructor
 * reads the configuration, opens the directory and the tracking fds, and
 * starts one thread that takes checkpoints on a timer, on a control-socket
 * request or on an API call.
 */
#include <dirent.h>
#include <linux/futex.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "golive.h"
#include "checksync.h"

struct cs_agent cs_agent;
/* This object's own cs_agent, whatever the dynamic linker binds the global
 * name to (see "Two copies" below). */
extern struct cs_agent cs_agent_here __attribute__((alias("cs_agent"), visibility("hidden")));
struct cs_agent_restore_block cs_restore_block = {
    .magic = CS_AGENT_BLOCK_MAGIC, .pagemap_fd = -1, .uffd = -1};

#define MAX_CALLBACKS  8
#define BACKOFF_MAX_MS 30000u

static pthread_mutex_t api_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t api_cv = PTHREAD_COND_INITIALIZER;
static uint64_t api_req, api_done, api_gen;
static int api_rc;
static struct {
	void (*cb)(const struct cs_restore_info *, void *);
	void *arg;
} callbacks[MAX_CALLBACKS];

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	uint64_t v;
	if (!s || cs_parse_u64(&s, &v, 10) || *s)
		return dflt;
	return v;
}

static uint32_t env_u32(const char *name, uint32_t dflt)
{
	uint64_t v = env_u64(name, dflt);
	return v > UINT32_MAX ? dflt : (uint32_t)v;
}

static int read_config(struct cs_config *cfg, const char *dir)
{
	if (cs_strlcpy(cfg->dir, dir, sizeof(cfg->dir)) >= sizeof(cfg->dir))
		return -ENAMETOOLONG;
	cfg->interval_ms = env_u32(CS_ENV_INTERVAL_MS, 100);
	cfg->first_generation = env_u64(CS_ENV_FIRST_GENERATION, 1);
	cfg->base_every = env_u32(CS_ENV_BASE_EVERY, 50);
	cfg->sync_timeout_ms = env_u32(CS_ENV_SYNC_TIMEOUT_MS, CS_SYNC_TIMEOUT_MS);
	if (!cfg->base_every)
		cfg->base_every = 1;
	const char *t = getenv(CS_ENV_TRACKING);
	cfg->mode = t && !strcmp(t, "hash") ? CS_MODE_HASH : CS_MODE_UFFD;
	const char *k = getenv(CS_ENV_COMPACTOR);
	cfg->compactor = k && !strcmp(k, "1");
	/* fault injection for tests: time between the prescan and the freeze */
	cfg->test_prescan_delay_us = env_u32("CHECKSYNC_TEST_PRESCAN_DELAY_US", 0);
	const char *dio = getenv("CHECKSYNC_DIRECT_IO");
	cfg->buffered = dio && !strcmp(dio, "0");
	const char *w = getenv("CHECKSYNC_WRITER");
	cfg->writer = !w                   ? CS_WRITER_AUTO
	              : !strcmp(w, "fork") ? CS_WRITER_FORK
	              : !strcmp(w, "copy") ? CS_WRITER_COPY
	                                   : CS_WRITER_AUTO;
	return 0;
}

/* The highest generation already in DIR; stale .tmp files go. */
static uint64_t scan_dir(struct cs_agent *a)
{
	uint64_t max = 0;
	DIR *d = opendir(a->cfg.dir);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t g;
		int tmp;
		if (cs_image_name_parse(e->d_name, &g, &tmp) < 0)
			continue;
		if (tmp)
			unlinkat(a->dir_fd, e->d_name, 0);
		else if (g > max)
			max = g;
	}
	closedir(d);
	return max;
}

/* One agent per directory: a second process that inherited CHECKSYNC_DIR
 * (a child that exec'd) stays inactive. */
static int open_dir(struct cs_agent *a)
{
	char why[CS_ERR_MAX];
	mkdir(a->cfg.dir, 0700);
	a->dir_fd = open(a->cfg.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* A program started without root's rights: the supervisor hands DIR
	 * (made by root) to it, as to one that dropped them later. */
	if (a->dir_fd < 0 && errno == EACCES && geteuid() && !cs_sup_own(a, why))
		a->dir_fd = open(a->cfg.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (a->dir_fd < 0)
		return -errno;
	a->lock_fd = openat(a->dir_fd, "agent.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (a->lock_fd < 0)
		return -errno;
	/* After a restore the dead process's writer may hold the lock for a
	 * moment longer (it dies of PR_SET_PDEATHSIG): wait for it. */
	for (int i = 0; flock(a->lock_fd, LOCK_EX | LOCK_NB); i++) {
		if (errno != EWOULDBLOCK || !a->restored_from || i >= 300)
			return -errno;
		poll(NULL, 0, 10);
	}
	return 0;
}

/* fds the agent needs; shared by start-up and restore. */
static int open_fds(struct cs_agent *a)
{
	int r = open_dir(a);
	if (r)
		return r;
	a->mode = a->cfg.mode;
	if (cs_track_open(a)) {
		cs_track_close(a);
		a->mode = CS_MODE_HASH; /* kernel without async WP or PAGEMAP_SCAN */
	}
	if (a->pagemap_fd < 0)
		return -errno;
	a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->wake_fd < 0)
		return -errno;
	if (pipe2(a->tee_pipe, O_CLOEXEC | O_NONBLOCK) == 0)
		fcntl(a->tee_pipe[0], F_SETPIPE_SZ, CS_IMAGE_PIPE_DATA_MAX);
	return cs_control_open(a);
}

static void reset_fds(struct cs_agent *a)
{
	a->uffd = a->pagemap_fd = a->lock_fd = a->listen_fd = a->wake_fd = a->dir_fd = -1;
	a->sup_fd = -1;
	a->tee_pipe[0] = a->tee_pipe[1] = -1;
	for (size_t i = 0; i < sizeof(a->client_fd) / sizeof(a->client_fd[0]); i++)
		a->client_fd[i] = -1;
}

/* Runs a checkpoint for whoever asked and wakes API callers waiting for it.
 * Returns CS_RESTORED-style 1 through *restored when the process was
 * restored in between (fds from before are then meaningless). */
static int run_checkpoint(struct cs_agent *a, uint64_t *gen, int *restored)
{
	pthread_mutex_lock(&api_mu);
	uint64_t serving = api_req;
	pthread_mutex_unlock(&api_mu);
	*gen = 0;
	*restored = 0;
	int r = cs_take_checkpoint(a, gen);
	if (r == 1) {
		*restored = 1;
		cs_after_restore(a, serving);
		r = cs_take_checkpoint(a, gen);
	}
	pthread_mutex_lock(&api_mu);
	if (api_done < serving)
		api_done = serving;
	api_rc = r;
	api_gen = *gen;
	pthread_cond_broadcast(&api_cv);
	pthread_mutex_unlock(&api_mu);
	return r;
}

int cs_agent_run_checkpoint(uint64_t *gen, int *restored)
{
	return run_checkpoint(&cs_agent, gen, restored);
}

static uint64_t mono_ms(void)
{
	return (uint64_t)cs_clock_ns(CLOCK_MONOTONIC) / 1000000;
}

/* The interval, doubled for each periodic checkpoint that failed in a row
 * (a thread that cannot be frozen stays so for a while), up to 30 s.
 * Requests are served at once whatever the backoff. */
static uint64_t backoff_ms(const struct cs_agent *a)
{
	uint64_t ms = a->cfg.interval_ms;
	for (uint32_t i = 0; i < a->failed_in_row && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = a->cfg.interval_ms > BACKOFF_MAX_MS ? a->cfg.interval_ms : BACKOFF_MAX_MS;
	return ms;
}

static void *agent_main(void *arg)
{
	struct cs_agent *a = arg;
	sigset_t set;
	sigfillset(&set);
	sigdelset(&set, CS_FREEZE_SIGNAL);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
	__atomic_store_n(&a->agent_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	syscall(SYS_futex, &a->agent_tid, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	cs_golive_init();
	uint64_t next = mono_ms() + a->cfg.interval_ms;
	for (;;) {
		struct pollfd p[2 + 8];
		int n = 0, timeout = -1;
		if (a->cfg.interval_ms) {
			uint64_t now = mono_ms();
			timeout = now >= next ? 0 : (int)(next - now);
		}
		p[n++] = (struct pollfd){.fd = a->wake_fd, .events = POLLIN};
		p[n++] = (struct pollfd){.fd = a->listen_fd, .events = POLLIN};
		for (int i = 0; i < 8; i++)
			if (a->client_fd[i] >= 0)
				p[n++] = (struct pollfd){.fd = a->client_fd[i], .events = POLLIN};
		int r = poll(p, (nfds_t)n, timeout);
		if (r < 0 && errno != EINTR)
			timeout = 10, poll(NULL, 0, timeout);
		uint64_t gen;
		int restored;
		if (r > 0 && (p[0].revents & POLLIN)) {
			uint64_t v;
			if (read(a->wake_fd, &v, sizeof(v)) == sizeof(v))
				run_checkpoint(a, &gen, &restored);
		}
		uint64_t epoch = a->epoch;
		for (int i = 1; r > 0 && i < n && epoch == a->epoch; i++)
			if (p[i].revents)
				cs_control_serve(a, p[i].fd);
		if (a->cfg.interval_ms && mono_ms() >= next) {
			/* The interval runs from one checkpoint's start to the
			 * next: "every 100 ms" means ten a second while a
			 * checkpoint takes less than that, and back to back
			 * (never a backlog) when it takes longer. */
			uint64_t started = mono_ms();
			run_checkpoint(a, &gen, &restored);
			next = started + backoff_ms(a);
		}
	}
	return NULL;
}

static int start_thread(struct cs_agent *a)
{
	pthread_t t;
	pthread_attr_t attr;
	sigset_t all, old;
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* The agent thread never runs the application's signal handlers. */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&t, &attr, agent_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	/* The program's first capability change (follow.c) must find the
	 * agent's thread: a launcher such as setpriv makes it at once. */
	for (int i = 0; !r && i < 1000 && !__atomic_load_n(&a->agent_tid, __ATOMIC_ACQUIRE); i++) {
		struct timespec ms = {0, 1000000};
		syscall(SYS_futex, &a->agent_tid, FUTEX_WAIT_PRIVATE, 0, &ms, NULL, 0);
	}
	return -r;
}

static int start(const char *dir)
{
	struct cs_agent *a = &cs_agent;
	reset_fds(a);
	int r = read_config(&a->cfg, dir);
	if (r)
		return r;
	a->pid = getpid();
	cs_sleepwrap_init();
	cs_follow_init();
	cs_vmflags_init();
	cs_auxv_keep();
	a->result = cs_scratch_alloc(sizeof(*a->result), 1);
	if (!a->result)
		return -ENOMEM;
	if ((r = cs_freeze_install()) || (r = open_fds(a)))
		return r;
	a->wake_ok = 1;
	/* Never below the number asked for: numbers the directory does not
	 * show may already be taken elsewhere (a backup's copy of the chain). */
	a->next_generation = scan_dir(a) + 1;
	if (a->next_generation < a->cfg.first_generation)
		a->next_generation = a->cfg.first_generation;
	a->active = 1;
	r = start_thread(a);
	if (r)
		a->active = 0;
	return r;
}

/*
 * Two copies of the agent in one process: a program that links
 * libchecksync.a (the Go package's checksync_static tag) and is dynamically
 * linked still gets libchecksync.so from `checksync run` by LD_PRELOAD. Two
 * active agents would fight over the freeze signal and the directory, so the
 * first constructor to run (the preloaded one: ld.so runs the executable's
 * constructors last) becomes the agent and publishes a table of its API in
 * CS_ENV_ACTIVE ("pid:address:cookie"); a later copy finds it, starts
 * nothing, installs no handler, and forwards every cs_* call to it, so the
 * program reaches the active agent whichever copy it calls. The pid and a
 * random cookie, checked through a read that cannot fault, reject the value
 * a program inherited or kept across execve.
 *
 * That holds when the program keeps the linked copy's symbols to itself.
 * When it exports them (Go's external linker passes -rdynamic), they
 * interpose the preloaded library's own: its code would run on the
 * program's data. The preloaded copy sees that (its cs_agent is not its
 * own) and stands down before touching anything; the program's copy, whose
 * constructor runs next, is then the only agent.
 */
#define CS_ENV_ACTIVE "CHECKSYNC_ACTIVE_AGENT"
#define PEER_MAGIC    0x3152454550534328ull /* "(CSPEER1" */

struct cs_agent_peer {
	uint64_t magic;
	uint64_t cookie; /* nonzero once published */
	uint64_t size;   /* sizeof(struct cs_agent_peer) of the publisher */
	int (*enabled)(void);
	int (*sync)(uint64_t *);
	int (*checkpoint)(uint64_t *);
	int (*stats_size)(struct cs_stats *, size_t);
	int (*on_restore)(void (*)(const struct cs_restore_info *, void *), void *);
};

static struct cs_agent_peer self_peer = {
    .magic = PEER_MAGIC,
    .size = sizeof(struct cs_agent_peer),
    .enabled = cs_enabled,
    .sync = cs_sync,
    .checkpoint = cs_checkpoint,
    .stats_size = cs_stats_size,
    .on_restore = cs_on_restore,
};
/* Non-NULL: another copy in this process is the agent; calls go there. */
static const struct cs_agent_peer *peer;

static void publish_self(void)
{
	char val[80];
	uint64_t c = 0;
	if (syscall(SYS_getrandom, &c, sizeof(c), 0) != (long)sizeof(c) || !c)
		c = (uint64_t)cs_clock_ns(CLOCK_MONOTONIC) ^ ((uint64_t)getpid() << 32) ^ 1;
	self_peer.cookie = c;
	snprintf(val, sizeof(val), "%d:%lx:%llx", (int)getpid(), (unsigned long)&self_peer,
	         (unsigned long long)c);
	setenv(CS_ENV_ACTIVE, val, 1); /* constructors run before any other thread */
}

/* Copies n bytes from an address that may not be mapped: through a pipe,
 * whose write fails with EFAULT where a load would crash. */
static int read_safely(void *dst, const void *src, size_t n)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	ssize_t w = write(fds[1], src, n);
	ssize_t r = w == (ssize_t)n ? read(fds[0], dst, n) : -1;
	close(fds[0]);
	close(fds[1]);
	return r == (ssize_t)n ? 0 : -EFAULT;
}

/* The active copy's table, or NULL when there is none (or only a stale
 * value from before an execve). */
static const struct cs_agent_peer *find_active_copy(void)
{
	const char *v = getenv(CS_ENV_ACTIVE);
	unsigned long addr;
	unsigned long long cookie;
	int pid;
	static struct cs_agent_peer p;
	if (!v || sscanf(v, "%d:%lx:%llx", &pid, &addr, &cookie) != 3 || pid != getpid() ||
	    addr == (unsigned long)&self_peer)
		return NULL;
	if (read_safely(&p, (const void *)addr, sizeof(p)) || p.magic != PEER_MAGIC ||
	    p.cookie != cookie || !cookie)
		return NULL;
	/* Its table naming our own functions would make every call recurse. */
	if (p.enabled == cs_enabled || p.sync == cs_sync)
		return NULL;
	return (const struct cs_agent_peer *)addr;
}

/* A copy we cannot talk to: stay inactive and say so, once. */
static void refuse_copy(const struct cs_agent_peer *p)
{
	char line[256];
	int n = snprintf(line, sizeof(line),
	                 "checksync: another copy of the agent is active in this process with an "
	                 "incompatible interface (%llu bytes, this copy knows %zu); this copy "
	                 "stays inactive (its calls answer -ENOTCONN)\n",
	                 (unsigned long long)p->size, sizeof(*p));
	cs_strlcpy(cs_agent.last_error, "another, incompatible copy of the agent is active",
	           sizeof(cs_agent.last_error));
	if (n > 0 && write(STDERR_FILENO, line, strlen(line)) < 0) {
		/* stderr closed: last_error still says it */
	}
}

__attribute__((constructor)) static void cs_agent_ctor(void)
{
	const char *dir = getenv(CS_ENV_DIR);
	if (!dir || !*dir || &cs_agent != &cs_agent_here)
		return;
	const struct cs_agent_peer *p = find_active_copy();
	if (p) {
		if (p->size >= sizeof(*p))
			peer = p;
		else
			refuse_copy(p);
		return;
	}
	int r = start(dir);
	if (r)
		cs_strlcpy(cs_agent.last_error, strerror(-r), sizeof(cs_agent.last_error));
	else
		publish_self();
}

/* The restored agent's fds are numbers of the old process. API callers must
 * not write to wake_fd until open_fds has made a new one: until
 * cs_after_restore clears the restore flag they see it set, then wake_ok
 * stays 0 until the new fds exist. Requests made meanwhile are woken here. */
/* The restored process goes on in the directory it was restored from (the
 * chain may have been copied to another directory or host), not in the one
 * its memory remembers. cs_sync reads cfg.dir from callers' threads, hence
 * under the API mutex. An empty dir (a restorer that wrote none) keeps it. */
static void adopt_dir(struct cs_agent *a, const struct cs_agent_restore_block *b)
{
	if (b->dir[0] == '/' && strlen(b->dir) < sizeof(a->cfg.dir))
		cs_strlcpy(a->cfg.dir, b->dir, sizeof(a->cfg.dir));
}

static void wake_block(struct cs_agent *a, const struct cs_agent_restore_block *b)
{
	pthread_mutex_lock(&api_mu);
	a->wake_ok = 0;
	/* read once: a later image must not name this process's fds */
	cs_restore_block.uffd = cs_restore_block.pagemap_fd = -1;
	__atomic_store_n(&cs_restore_block.restored, 0, __ATOMIC_RELEASE);
	adopt_dir(a, b);
	pthread_mutex_unlock(&api_mu);
}

/* Requests up to serving are answered by the checkpoint that follows the
 * restore (run_checkpoint); only later ones need the agent woken (a
 * caller that was inside cs_checkpoint() at the capture got an extra image
 * 16 ms after the base otherwise). */
static int reopen_fds(struct cs_agent *a, uint64_t serving)
{
	pthread_mutex_lock(&api_mu);
	reset_fds(a); /* the restorer recreates no agent fd: their numbers are free */
	int r = open_fds(a);
	a->wake_ok = !r;
	uint64_t one = 1;
	if (!r && api_req > serving && write(a->wake_fd, &one, sizeof(one)) < 0) {
		/* cannot fail on a new eventfd; the timer wakes the agent anyway */
	}
	pthread_mutex_unlock(&api_mu);
	return r;
}

/* The main thread may still run restorer code (it leaves last): a freeze
 * now would stop it there, mask opened by the supervisor, and capture the
 * restorer's region. cs_trampoline_last sets main_left once it is gone. */
static void wait_main_left(void)
{
	for (int i = 0;
	     i < 10000 && !__atomic_load_n(&cs_restore_block.main_left, __ATOMIC_ACQUIRE); i++) {
		struct timespec ts = {0, 1000000};
		syscall(SYS_futex, &cs_restore_block.main_left, FUTEX_WAIT_PRIVATE, 0, &ts, NULL,
		        0);
	}
}

void cs_agent_count_pause(struct cs_agent *a, uint64_t pause_ns)
{
	static const uint64_t bounds_us[CS_AGENT_PAUSE_BUCKETS] = CS_AGENT_PAUSE_BOUNDS_US;

	for (int i = 0; i < CS_AGENT_PAUSE_BUCKETS; i++)
		a->pause_le[i] += pause_ns <= bounds_us[i] * 1000;
	a->pause_count++;
	a->pause_sum_ns += pause_ns;
}

void cs_after_restore(struct cs_agent *a, uint64_t serving)
{
	wait_main_left();
	struct cs_agent_restore_block b = cs_restore_block;
	/* epoch first, the flag after: cs_sync reads them in the other order */
	__atomic_add_fetch(&a->epoch, 1, __ATOMIC_RELEASE);
	wake_block(a, &b);
	a->pid = getpid();
	a->agent_tid = (pid_t)syscall(SYS_gettid);
	cs_capture_reset(a);
	cs_freeze_install();
	a->hash_n = 0;
	a->restored_from = b.restored_from_generation;
	a->next_generation = b.next_generation ? b.next_generation : a->cap.generation + 1;
	a->last_generation = b.restored_from_generation;
	a->chain_base = a->cap.base; /* the snapshot's capture is the restored image */
	/* The pauses in memory are the old process's: the daemon that started
	 * this one has counted them already. */
	memset(a->pause_le, 0, sizeof(a->pause_le));
	a->pause_count = a->pause_sum_ns = 0;
	cs_track_give_pagemap(b.pagemap_fd);
	cs_track_give_uffd(b.uffd);
	int r = reopen_fds(a, serving);
	/* With the restorer's tracking adopted the memory is the restored
	 * generation's plus writes that show: the chain goes on with a delta
	 * on it. Without, a base. */
	a->force_base = r || b.uffd < 0 || a->uffd != b.uffd;
	if (r) {
		a->active = 0;
		cs_strlcpy(a->last_error, "after restore: ", sizeof(a->last_error));
		cs_strlcat(a->last_error, strerror(-r), sizeof(a->last_error));
	}
	struct cs_restore_info info = {.restored_from_generation = b.restored_from_generation,
	                               .away_ns = b.away_ns};
	for (int i = 0; i < MAX_CALLBACKS; i++)
		if (callbacks[i].cb)
			callbacks[i].cb(&info, callbacks[i].arg);
}

/* ---- public API ---------------------------------------------------------- */

int cs_enabled(void)
{
	if (peer)
		return peer->enabled();
	return cs_agent.active;
}

static int request(uint64_t *ret_generation)
{
	struct cs_agent *a = &cs_agent;
	if (!a->active)
		return -ENOTCONN;
	if ((pid_t)syscall(SYS_gettid) == a->agent_tid)
		return -EDEADLK; /* from an on-restore callback */
	pthread_mutex_lock(&api_mu);
	uint64_t mine = ++api_req;
	uint64_t one = 1;
	if (a->wake_ok && !__atomic_load_n(&cs_restore_block.restored, __ATOMIC_ACQUIRE) &&
	    write(a->wake_fd, &one, sizeof(one)) < 0) {
		/* eventfd full cannot happen; the agent wakes on the timer anyway */
	}
	while (api_done < mine)
		pthread_cond_wait(&api_cv, &api_mu);
	int r = api_rc;
	if (ret_generation)
		*ret_generation = api_gen;
	pthread_mutex_unlock(&api_mu);
	return r;
}

int cs_checkpoint(uint64_t *ret_generation)
{
	if (peer)
		return peer->checkpoint(ret_generation);
	return request(ret_generation);
}

/* The directory callers' threads may read: a restore may change it. */
static void current_dir(char *out, size_t cap)
{
	pthread_mutex_lock(&api_mu);
	cs_strlcpy(out, cs_agent.cfg.dir, cap);
	pthread_mutex_unlock(&api_mu);
}

/* The process was restored after the caller read epoch: the restorer sets
 * the flag before any thread runs, the agent bumps epoch before it clears
 * the flag, so one of the two shows it whenever this thread looks. */
static int restored_since(uint64_t epoch)
{
	return __atomic_load_n(&cs_restore_block.restored, __ATOMIC_ACQUIRE) ||
	       epoch != __atomic_load_n(&cs_agent.epoch, __ATOMIC_ACQUIRE);
}

/*
 * A local checkpoint, then, when a daemon runs us, the daemon's word that
 * its backups hold it (sync.c). A restore while we wait kills the
 * connection; the process that runs on is then the restored one, maybe
 * under another daemon in another directory, and its state was captured
 * inside this call, after the caller's write: a new checkpoint from here,
 * acknowledged by that daemon, answers the call.
 */
int cs_sync(uint64_t *ret_generation)
{
	char dir[sizeof(cs_agent.cfg.dir)];
	if (peer)
		return peer->sync(ret_generation);
	for (int attempt = 0;; attempt++) {
		uint64_t epoch = __atomic_load_n(&cs_agent.epoch, __ATOMIC_ACQUIRE);
		uint64_t gen = 0;
		int r = request(&gen);
		if (ret_generation)
			*ret_generation = gen;
		if (r && r != -ENOTSUP)
			return r; /* -ENOTSUP: written all the same, so it is replicated */
		current_dir(dir, sizeof(dir));
		int d = cs_sync_wait_daemon(dir, gen, cs_agent.cfg.sync_timeout_ms);
		if (d == -ECONNRESET && attempt < 3 && restored_since(epoch))
			continue;
		return d < 0 ? d : r;
	}
}

int cs_on_restore(void (*cb)(const struct cs_restore_info *, void *), void *arg)
{
	if (!cb)
		return -EINVAL;
	if (peer)
		return peer->on_restore(cb, arg);
	pthread_mutex_lock(&api_mu);
	for (int i = 0; i < MAX_CALLBACKS; i++) {
		if (!callbacks[i].cb) {
			callbacks[i].cb = cb;
			callbacks[i].arg = arg;
			pthread_mutex_unlock(&api_mu);
			return 0;
		}
	}
	pthread_mutex_unlock(&api_mu);
	return -ENOSPC;
}

static void fill_go_stats(struct cs_stats *out)
{
	struct cs_golive_report g;
	cs_golive_report(&g);
	out->go_heap = g.state;
	cs_strlcpy(out->go_version, g.version, sizeof(out->go_version));
	cs_strlcpy(out->go_heap_why, g.why, sizeof(out->go_heap_why));
	out->go_free_pages_last = g.free_pages;
	out->go_left_out_pages_last = g.left_out_pages;
	out->go_left_out_sent_last = g.left_out_sent;
	out->go_readded_pages_last = g.readded_pages;
	out->go_left_out_sent_total = g.left_out_sent_total;
	out->go_sent_total = g.sent_total;
	out->go_skipped = g.skipped;
}

static int fill_stats(struct cs_stats *out)
{
	const struct cs_agent *a = &cs_agent;
	struct cs_sig_report sig;
	memset(out, 0, sizeof(*out));
	if (!a->active && !a->last_error[0])
		return -ENOTCONN;
	out->generation = a->last_generation;
	out->checkpoints = a->checkpoints;
	out->failures = a->failures;
	out->bytes_total = a->bytes_total;
	out->last_bytes = a->last_bytes;
	out->last_pages = a->last_pages;
	out->last_pause_ns = a->last_pause_ns;
	out->max_pause_ns = a->max_pause_ns;
	out->last_pause_cpu_ns = a->last_pause_cpu_ns;
	out->last_copied = a->last_copy_mode;
	/* The program's threads run before the agent's has taken the restore
	 * in (cs_after_restore): the restorer's block says it already. */
	out->restored_from = a->restored_from ? a->restored_from
	                     : __atomic_load_n(&cs_restore_block.restored, __ATOMIC_ACQUIRE)
	                         ? cs_restore_block.restored_from_generation
	                         : 0;
	out->tracking = a->active ? (a->mode == CS_MODE_HASH ? CS_TRACKING_HASH : CS_TRACKING_UFFD)
	                          : CS_TRACKING_NONE;
	cs_strlcpy(out->last_error, a->last_error, sizeof(out->last_error));
	cs_freeze_sig_report(&sig);
	out->freeze_signal = sig.signal;
	out->sig_takeovers = sig.takeovers;
	out->sig_foreign_handler = sig.foreign;
	out->sig_first_takeover_ns = sig.first_ns;
	out->sig_last_takeover_ns = sig.last_ns;
	out->sig_forwarded = sig.forwarded;
	fill_go_stats(out);
	cs_sleep_counts(&out->sleeps_continued, &out->sleeps_cut);
	return a->active ? 0 : -ENOTCONN;
}

int cs_stats_size(struct cs_stats *out, size_t size)
{
	struct cs_stats s;
	if (peer)
		return peer->stats_size(out, size);
	int r = fill_stats(&s);
	if (size > sizeof(s)) {
		memset((char *)out + sizeof(s), 0, size - sizeof(s));
		size = sizeof(s);
	}
	memcpy(out, &s, size);
	return r;
}

int cs_stats(struct cs_stats *out)
{
	return cs_stats_size(out, sizeof(*out));
}
