/*
 * One checkpoint, from the agent thread: decide base or delta, freeze,
 * capture, thaw, wait for the writer child, then keep the chain state and
 * the directory tidy. A failure never touches the previous generations and
 * makes the next checkpoint a base (the dirty bits it consumed are gone).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "golive.h"

/*
 * A base when one is needed for correctness (no chain yet, after a restore
 * or a failure, hash mode without a table). Periodic bases only keep the
 * chain short; with a compactor (CHECKSYNC_COMPACTOR=1, checksync run) that
 * is its job, done outside the process: a base here forks a copy-on-write
 * writer for the whole resident set, and the application pays a fault for
 * every page it writes while that writer lives.
 */
static int need_base(const struct cs_agent *a)
{
	if (a->force_base || !a->last_generation || !a->chain_base ||
	    (a->mode == CS_MODE_HASH && !a->hash_n))
		return 1;
	return !a->cfg.compactor && (a->chain_deltas >= a->cfg.base_every ||
	                             (a->base_bytes && a->chain_delta_bytes > a->base_bytes));
}

static struct cs_runs one; /* a mapping's resident runs, during the freeze */

/* Hash mode keeps one entry per resident page; size both tables for every
 * resident page (counted now when PAGEMAP_SCAN makes that cheap; the
 * writer then reuses the list) or else every tracked page there could be.
 * Growing loses the old table: a base follows. */
static int hash_reserve(struct cs_agent *a, struct cs_capture *c)
{
	size_t pages = 0;
	c->resident.n = 0;
	if (a->have_pagemap_scan) {
		int r = cs_resident_all(&c->maps, a->pagemap_fd, &one, &c->resident);
		if (!r)
			r = cs_golive_filter(c, 0);
		if (r)
			return r;
		pages = cs_runs_pages(&c->resident);
	} else {
		for (size_t i = 0; i < c->maps.n; i++)
			if (c->maps.v[i].flags & CS_MAP_TRACKED)
				pages += (c->maps.v[i].end - c->maps.v[i].start) / CS_PAGE;
	}
	if (pages <= a->hash_cap)
		return 0;
	size_t cap = pages + pages / 2 + 1024;
	for (int i = 0; i < 2; i++) {
		cs_scratch_free(a->hash_tab[i], a->hash_cap * sizeof(struct cs_hash_ent));
		a->hash_tab[i] = cs_scratch_alloc(cap * sizeof(struct cs_hash_ent), 1);
	}
	a->hash_cap = cap;
	a->hash_n = 0;
	if (!a->hash_tab[0] || !a->hash_tab[1]) {
		a->hash_cap = 0;
		return -ENOMEM;
	}
	c->is_base = 1;
	c->parent = 0;
	c->base = c->generation;
	return 0;
}

static void unsupported_mappings(struct cs_capture *c)
{
	for (size_t i = 0; i < c->maps.n; i++) {
		const struct cs_vma *v = &c->maps.v[i];
		if (!(v->flags & CS_MAP_SHARED) || !(v->prot & PROT_WRITE) ||
		    (v->flags & (CS_MAP_AGENT | CS_MAP_SHMEM)))
			continue;
		char what[CS_ERR_MAX];
		cs_vma_name(what, sizeof(what), v);
		cs_strlcat(what, " shared writable ", sizeof(what));
		cs_strlcat(what, v->path_off ? cs_vma_path(&c->maps, v) : "(anonymous)",
		           sizeof(what));
		cs_unsup_add(c, what);
	}
}

#define WRITER_STACK (256u << 10)
static char *writer_stack;

/*
 * The writer waits until the agent has released the threads. A new task
 * often runs before its parent here (the parent is preempted on wake-up),
 * and a writer that starts at once keeps the whole process frozen while it
 * streams: 4-5 ms of a 1 GiB heap's pause under load was that. The word is
 * in the MAP_SHARED result, so a forked writer sees it too.
 */
static void wait_for_release(struct cs_child_result *res)
{
	while (!__atomic_load_n(&res->go, __ATOMIC_ACQUIRE))
		syscall(SYS_futex, &res->go, FUTEX_WAIT, 0, NULL, NULL, 0);
}

static void start_writer(struct cs_child_result *res)
{
	__atomic_store_n(&res->go, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &res->go, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static int writer_main(void *arg)
{
	struct cs_agent *a = arg;
	wait_for_release(a->result);
	syscall(SYS_exit_group, cs_dump_child(a, &a->cap) ? 1 : 0);
	return 1;
}

/*
 * uffd mode, during the freeze: RESIDENT and the pages to send, the written
 * ones re-armed (one page-table walk, track.c), then how to write them. A copy-on-write child costs
 * page-table copying for every resident page (and a COW fault for every
 * page the application writes while the child lives); copying the delta
 * costs a memcpy per sent page. Measured here: fork ~1 us per resident page,
 * memcpy 2-4 us per page, so a delta under a third of the resident set is
 * copied, up to CS_COPY_MAX bytes.
 */
static int select_uffd(struct cs_agent *a, struct cs_capture *c)
{
	uint64_t t0 = (uint64_t)cs_clock_ns(CLOCK_MONOTONIC);
	int r = cs_track_scan(a, c);
	a->phase_ns[5] = (uint64_t)cs_clock_ns(CLOCK_MONOTONIC) - t0;
	if (!r)
		r = cs_golive_filter(c, 1);
	/* shared memory goes whole into every image, copied already */
	if (!r && c->shm.n && !(r = cs_shmem_merge(c, &c->resident)))
		r = cs_shmem_merge(c, &c->send);
	if (r)
		return r;
	c->send_pages = cs_runs_pages(&c->send);
	c->resident_pages = cs_runs_pages(&c->resident);
	int unreadable = 0; /* memcpy would fault; a COW child can mprotect its copy */
	for (size_t i = 0; i < c->maps.n; i++)
		if ((c->maps.v[i].flags & CS_MAP_TRACKED) && !(c->maps.v[i].prot & PROT_READ))
			unreadable |=
			    cs_runs_overlap(&c->send, c->maps.v[i].start, c->maps.v[i].end);
	/* Pages of DONTFORK or WIPEONFORK memory are not in a forked writer's
	 * copy (vmflags.c): once a writer met some, they are copied here. */
	if (a->copy_always && c->send_pages * CS_PAGE <= CS_COPY_MAX && !unreadable) {
		c->copy_mode = 1;
		return 0;
	}
	switch (unreadable ? CS_WRITER_FORK : a->cfg.writer) {
	case CS_WRITER_FORK:
		c->copy_mode = 0;
		break;
	case CS_WRITER_COPY:
		c->copy_mode = !c->is_base;
		break;
	default:
		c->copy_mode = !c->is_base && c->send_pages * 3 <= c->resident_pages &&
		               c->send_pages * CS_PAGE <= CS_COPY_MAX;
	}
	return 0;
}

/* The copy buffer stays mapped between checkpoints: its pages are then
 * already faulted in, which is most of the cost on a virtual machine.
 * populate: fault in the first populate bytes now. */
static int copy_grow(struct cs_capture *c, size_t need, size_t populate)
{
	if (need <= c->copy_cap)
		return 0;
	size_t cap = need * 2 > (4u << 20) ? need * 2 : (4u << 20);
	cs_scratch_free(c->copy, c->copy_cap);
	c->copy_cap = 0;
	c->copy = cs_scratch_alloc(cap, 0);
	if (!c->copy)
		return -ENOMEM;
	/* A forked writer never needs it, and without this every page of
	 * it would take a copy-on-write fault at the next copy. */
	syscall(SYS_madvise, c->copy, cap, MADV_DONTFORK); /* not the wrapper: ours */
	if (populate)
		syscall(SYS_madvise, c->copy, populate, MADV_POPULATE_WRITE);
	c->copy_cap = cap;
	return 0;
}

/*
 * Before the freeze, with the program running: a copy buffer for the pages
 * the prescan saw written (or, when none ran, the last delta wrote), and a
 * quarter more for those written until the freeze, faulted in now. Grown
 * in the freeze instead, its first-touch faults were in the pause: the
 * first delta of a 1 GiB heap with 1% of it written paused 7.5 ms, the
 * next ones 2.6 ms.
 */
static void copy_reserve(struct cs_agent *a, struct cs_capture *c)
{
	uint64_t pages = cs_track_prescan_written();
	size_t need = (size_t)(pages + pages / 4) * CS_PAGE + (64u << 10);
	if (c->is_base || !pages || a->cfg.writer == CS_WRITER_FORK || need > CS_COPY_MAX)
		return;
	copy_grow(c, need, need); /* failing here, the freeze tries again */
}

static int copy_pages(struct cs_capture *c)
{
	size_t need = (size_t)c->send_pages * CS_PAGE;
	if (copy_grow(c, need, 0))
		return -ENOMEM;
	uint8_t *to = c->copy;
	/* Summed as copied: read again later by the writer, the buffer came
	 * from memory at a third of the CRC's speed (a quarter of the
	 * writer's time went there); summed on the way, the CRC hides in the
	 * copy's cache misses. */
	uint32_t crc = 0;
	for (size_t i = 0; i < c->send.n; i++) {
		uint64_t addr = c->send.r[i].addr, left = c->send.r[i].npages;
		while (left) {
			uint32_t k = left > CS_RUN_MAX_PAGES ? CS_RUN_MAX_PAGES : (uint32_t)left;
			crc = cs_shmem_copy_summed(c, to, addr, k, crc);
			to += (size_t)k * CS_PAGE;
			addr += (uint64_t)k * CS_PAGE;
			left -= k;
		}
	}
	c->copy_len = need;
	c->copy_crc = crc;
	return cs_dump_keep_buffers();
}

/* mlock is not inherited by the forked writer, which reads the advice
 * (vmflags.c), and is not restored: refused, by VmLck of the status the
 * freeze read anyway. */
static void locked_memory(struct cs_capture *c, const char *status)
{
	const char *p = strstr(status, "VmLck:");
	uint64_t kb = 0;
	if (!p)
		return;
	for (p += 6; *p == ' ' || *p == '\t'; p++)
		;
	if (cs_parse_u64(&p, &kb, 10) || !kb)
		return;
	char what[CS_ERR_MAX], num[24];
	cs_fmt_u64(num, kb);
	cs_strlcpy(what, "memory locked with mlock (VmLck ", sizeof(what));
	cs_strlcat(what, num, sizeof(what));
	cs_strlcat(what, " kB): not restored", sizeof(what));
	cs_unsup_add(c, what);
}

/*
 * Inside the agent's signal handler, every other thread parked: take what
 * must be consistent with the frozen instant (mappings, dirty pages, file
 * descriptions, clocks) and start the writer child, which owns a
 * copy-on-write snapshot of memory.
 */
int cs_capture_frozen(struct cs_agent *a, struct cs_capture *c)
{
	c->clocks[0] = cs_clock_ns(CLOCK_REALTIME);
	c->clocks[1] = cs_clock_ns(CLOCK_MONOTONIC);
	c->clocks[2] = cs_clock_ns(CLOCK_BOOTTIME);
	c->ppid = (pid_t)syscall(SYS_getppid);
	char status[8192];
	int cr = cs_creds_capture(&c->creds, status, sizeof(status));
	if (cr)
		return cs_set_err(c->errmsg, "reading the credentials (/proc/self/status) failed",
		                  NULL, NULL),
		       cr;
	/* A restore without the filters would run the program with more
	 * privilege than it had: strict mode is refused, filters captured. */
	if (c->creds.seccomp == 1)
		cs_unsup_add(c, "seccomp strict mode");
	int sr = cs_seccomp_capture(a, c);
	if (sr)
		return cs_set_err(c->errmsg, "seccomp filter capture failed", NULL, NULL), sr;
	/* /proc/self/comm is the main thread's; the writer's would be ours. */
	if (cs_read_file("/proc/self/comm", c->comm, sizeof(c->comm)) > 0)
		c->comm[strcspn(c->comm, "\n")] = 0;
	uint64_t t0 = (uint64_t)cs_clock_ns(CLOCK_MONOTONIC), t1, t2, t3;
	cs_scratch_mark_mapped();
	int r = cs_maps_read(&c->maps);
	if (r)
		return cs_set_err(c->errmsg, "reading /proc/self/maps failed", NULL, NULL), r;
	unsupported_mappings(c);
	r = cs_shmem_capture(c);
	if (r)
		return cs_set_err(c->errmsg, "copying shared memory failed", NULL, NULL), r;
	t1 = (uint64_t)cs_clock_ns(CLOCK_MONOTONIC);
	c->brk = (uint64_t)syscall(SYS_brk, 0);
	if (a->mode == CS_MODE_UFFD)
		r = select_uffd(a, c);
	else
		r = hash_reserve(a, c);
	if (r)
		return cs_set_err(c->errmsg, "dirty page scan failed", NULL, NULL), r;
	t2 = (uint64_t)cs_clock_ns(CLOCK_MONOTONIC);
	r = cs_fds_capture(a, c);
	if (r)
		return cs_set_err(c->errmsg, "fd capture failed", NULL, NULL), r;
	r = cs_timers_capture(c);
	if (r)
		return cs_set_err(c->errmsg, "timer capture failed", NULL, NULL), r;
	cs_attrs_capture(c);
	locked_memory(c, status);
	/* Room for what the writer may refuse (vmflags.c): it must not
	 * allocate in a copy of a process whose malloc may be locked. */
	if (cs_scratch_grow((void **)&c->unsup, &c->unsup_cap, 1, c->unsup_len + 4 * CS_ERR_MAX))
		return cs_set_err(c->errmsg, "no memory for refusals", NULL, NULL), -ENOMEM;
	r = cs_sigqueue_capture(a, c);
	if (r)
		return cs_set_err(c->errmsg, "pending signal capture failed", NULL, NULL), r;
	cs_rseq_capture(a, c);
	t3 = (uint64_t)cs_clock_ns(CLOCK_MONOTONIC);
	memset(a->result, 0, sizeof(*a->result));
	cs_vmflags_prepare();
	if (!writer_stack && !(writer_stack = cs_scratch_alloc(WRITER_STACK, 0)))
		return cs_set_err(c->errmsg, "no memory for the writer's stack", NULL, NULL),
		       -ENOMEM;
	/* clone(2), not fork(): no atfork handlers, no malloc locks taken. Its
	 * own stack, in agent memory, so it never writes to a page it copies
	 * into the image. Exit signal 0 makes it a "clone child" that only
	 * __WCLONE waits see: the application's own wait() never reaps it. */
	uint64_t t4 = (uint64_t)cs_clock_ns(CLOCK_MONOTONIC);
	if (c->copy_mode && (r = copy_pages(c)))
		return cs_set_err(c->errmsg, "no memory to copy the delta", NULL, NULL), r;
	a->phase_ns[6] = (uint64_t)cs_clock_ns(CLOCK_MONOTONIC) - t4;
	int pid = clone(writer_main, writer_stack + WRITER_STACK, c->copy_mode ? CLONE_VM : 0, a);
	if (pid < 0)
		return cs_set_err(c->errmsg, "clone of the writer failed", NULL, NULL), -errno;
	a->child_pid = (pid_t)pid;
	a->phase_ns[1] = t1 - t0;
	a->phase_ns[2] = t2 - t1;
	a->phase_ns[3] = t3 - t2;
	a->phase_ns[4] = (uint64_t)cs_clock_ns(CLOCK_MONOTONIC) - t3;
	return 0;
}

static int wait_child(pid_t pid, int *status_ok)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | __WCLONE) < 0)
		if (errno != EINTR)
			return -errno;
	*status_ok = si.si_code == CLD_EXITED && si.si_status == 0;
	return 0;
}

static void tmp_name(char *buf, size_t cap, uint64_t gen)
{
	cs_image_filename(buf, cap, gen);
	cs_strlcat(buf, ".tmp", cap);
}

/* Deletes images older than generation keep_from (never .tmp of a live writer:
 * there is none when this runs). */
static void prune(struct cs_agent *a, uint64_t keep_from)
{
	DIR *d = opendir(a->cfg.dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t g;
		int tmp;
		if (cs_image_name_parse(e->d_name, &g, &tmp) < 0)
			continue;
		if (g < keep_from || tmp)
			unlinkat(a->dir_fd, e->d_name, 0);
	}
	closedir(d);
}

static void chain_advance(struct cs_agent *a, const struct cs_capture *c, uint64_t bytes)
{
	a->last_generation = c->generation;
	if (c->is_base) {
		uint64_t old = a->chain_base;
		a->prev_base = old;
		a->chain_base = c->generation;
		a->chain_deltas = 0;
		a->chain_delta_bytes = 0;
		a->base_bytes = bytes;
		/* Keep the previous chain and this one. With a compactor the
		 * directory is its to prune: it may be writing a .tmp of an
		 * older generation right now. */
		if (old && !a->cfg.compactor)
			prune(a, old);
	} else {
		a->chain_deltas++;
		a->chain_delta_bytes += bytes;
	}
	if (a->mode == CS_MODE_HASH) {
		a->hash_cur ^= 1;
		a->hash_n = a->result->hash_entries;
	}
	a->force_base = 0;
}

static void prepare(struct cs_agent *a, struct cs_capture *c)
{
	c->is_base = need_base(a);
	c->generation = a->next_generation;
	c->parent = c->is_base ? 0 : a->last_generation;
	c->base = c->is_base ? c->generation : a->chain_base;
	c->err = 0;
	c->errmsg[0] = 0;
	c->n_fds = 0;
	c->n_timers = 0;
	c->fd_pool_len = 0;
	c->unsup_len = 0;
	c->dir_fd = a->dir_fd;
	c->copy_mode = 0;
	a->child_pid = -1;
}

static int fail(struct cs_agent *a, int r, const char *why)
{
	char name[64];
	a->force_base = 1;
	a->failures++;
	a->failed_in_row++;
	cs_strlcpy(a->last_error, why, sizeof(a->last_error));
	tmp_name(name, sizeof(name), a->cap.generation);
	unlinkat(a->dir_fd, name, 0);
	return r;
}

/* Takes one checkpoint; returns 0 (or -ENOTSUP when something was not
 * captured, image still written), CS_RESTORED in a restored process, or a
 * negative errno. */
int cs_take_checkpoint(struct cs_agent *a, uint64_t *ret_generation)
{
	struct cs_capture *c = &a->cap;
	if (!a->active)
		return -ENOTCONN;
	if (!cs_freeze_signal_ok() && cs_freeze_install())
		return -EIO;
	prepare(a, c);
	int own = cs_sup_own_dir(a, c->errmsg);
	if (own)
		return fail(a, own, c->errmsg);
	if (a->mode == CS_MODE_UFFD) { /* before the freeze: track.c says why */
		cs_track_prescan(a, &c->maps);
		copy_reserve(a, c);
	}
	if (a->cfg.test_prescan_delay_us) /* cr-discard: pages change in between */
		usleep(a->cfg.test_prescan_delay_us);
	uint64_t pause = 0;
	int r = cs_freeze_and_capture(a, &pause);
	if (r == 1)
		return 1;
	a->last_pause_ns = pause;
	if (pause > a->max_pause_ns)
		a->max_pause_ns = pause;
	a->next_generation = c->generation + 1;
	if (r < 0) {
		if (a->child_pid > 0) {
			int ok;
			kill(a->child_pid, SIGKILL);
			wait_child(a->child_pid, &ok);
		}
		return fail(a, r, c->errmsg[0] ? c->errmsg : "freeze failed");
	}
	int ok = 0;
	start_writer(a->result);
	r = wait_child(a->child_pid, &ok);
	if (a->result->need_copy && !a->copy_always) {
		/* Taken again at once, its pages copied during the freeze. */
		a->copy_always = 1;
		fail(a, -EAGAIN, a->result->msg);
		return cs_take_checkpoint(a, ret_generation);
	}
	if (r || !ok || !a->result->done || a->result->err)
		return fail(a, a->result->err ? a->result->err : -EIO,
		            a->result->msg[0] ? a->result->msg : "the image writer died");
	/* A forked writer's refusals are in its own copy of the capture. */
	if (!c->copy_mode && a->result->unsup[0])
		cs_unsup_add(c, a->result->unsup);
	chain_advance(a, c, a->result->bytes);
	a->checkpoints++;
	cs_agent_count_pause(a, pause);
	a->failed_in_row = 0;
	a->bytes_total += a->result->bytes;
	a->direct_bytes_total += a->result->direct_bytes;
	a->last_bytes = a->result->bytes;
	a->last_pages = a->result->pages;
	a->last_copy_mode = c->copy_mode;
	*ret_generation = c->generation;
	if (c->unsup_len) {
		cs_strlcpy(a->last_error, "unsupported: ", sizeof(a->last_error));
		cs_strlcat(a->last_error, c->unsup, sizeof(a->last_error));
		return -ENOTSUP;
	}
	a->last_error[0] = 0;
	return 0;
}

/*
 * After a restore: every scratch pointer refers to memory allocated before
 * (perhaps after the scan that made the image, so the image may not even
 * record it). Drop them all and start with fresh allocations.
 */
void cs_capture_reset(struct cs_agent *a)
{
	struct cs_capture *c = &a->cap;
	cs_scratch_forget_all();
	cs_maps_reset();
	cs_track_reset();
	cs_fds_reset();
	cs_sockets_reset();
	cs_timers_reset();
	cs_freeze_reset();
	cs_dump_reset();
	cs_golive_reset();
	cs_vmflags_reset();
	writer_stack = NULL;
	memset(&one, 0, sizeof(one));
	memset(&c->maps, 0, sizeof(c->maps));
	memset(&c->resident, 0, sizeof(c->resident));
	memset(&c->send, 0, sizeof(c->send));
	c->threads = NULL;
	c->fds = NULL;
	c->timers = NULL;
	c->n_timers = 0;
	c->sigq = NULL;
	c->n_sigq = 0;
	c->filters = NULL;
	c->n_filters = 0;
	c->filter_pool = NULL;
	c->filter_pool_len = c->filter_pool_cap = 0;
	c->fd_pool = NULL;
	c->fd_pool_cap = 0;
	c->unsup = NULL;
	c->unsup_cap = c->unsup_len = 0;
	c->copy = NULL;
	c->copy_cap = 0;
	memset(&c->shm, 0, sizeof(c->shm));
	c->shm_data = NULL;
	c->shm_len = c->shm_cap = 0;
	a->hash_tab[0] = a->hash_tab[1] = NULL;
	a->hash_cap = 0;
	a->hash_n = 0;
	a->result = cs_scratch_alloc(sizeof(*a->result), 1);
}
