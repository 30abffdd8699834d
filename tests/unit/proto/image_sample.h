/*
 * Sample checkpoint images for the image tests and the fuzz seed corpus:
 * every record type with every field set to a distinct value, written with
 * the real writer, and a checker that compares a parsed image field by
 * field with what went in. Header-only so each test stays one source.
 */
#ifndef CS_TEST_IMAGE_SAMPLE_H
#define CS_TEST_IMAGE_SAMPLE_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "image.h"

#define S_MAPS   6
#define S_THREADS 4
#define S_FDS    19
#define S_SIGS   CS_IMAGE_SIGNALS
#define S_RES    3
#define S_UNSUP  2
#define S_RUNS   3
#define S_EPOLL  300
#define S_PIPE   1000
#define S_FILE   3000
#define S_TIMERS 5
#define S_SIGQ   6
#define S_SECC   3

/* An image's contents. full = 0 is small (short strings, few records, one
 * page); full = 1 sets every field, maximum strings and a delta header. */
struct sample {
	int full;
	int aligned; /* the second page section is PAGES_ALIGNED */
	struct cs_image_header header;
	struct cs_image_process process;
	struct cs_image_mapping maps[S_MAPS];
	struct cs_image_thread threads[S_THREADS];
	struct cs_image_fd fds[S_FDS];
	struct cs_image_sigaction sigs[S_SIGS];
	struct cs_image_run res[S_RES];
	struct cs_image_unsupported unsup[S_UNSUP];
	int has_creds; /* the known-answer image has no CREDS */
	struct cs_image_creds creds;
	struct cs_image_run runs[S_RUNS]; /* page runs; runs[0] in the first PAGES section */
	struct cs_image_timer timers[S_TIMERS];
	struct cs_image_attrs attrs;
	struct cs_image_sigqueued sigq[S_SIGQ];
	struct cs_image_seccomp secc[S_SECC];
	uint8_t secc_prog[S_SECC][64];
	size_t n_maps, n_threads, n_fds, n_sigs, n_res, n_unsup, n_runs, n_timers, n_sigq, n_secc;
	uint8_t pipe_data[S_PIPE];
	uint8_t file_data[S_FILE];
	uint8_t filter[CS_IMAGE_FILTER_MAX];
	struct cs_image_epoll_entry epoll[S_EPOLL];
};

/* Output into memory; fail_at makes the write that would pass it fail. */
struct membuf {
	uint8_t *data;
	size_t len, cap;
	size_t fail_at;
};

static int __attribute__((unused)) mem_write(void *ctx, const void *buf, size_t len)
{
	struct membuf *m = ctx;

	if ((m->fail_at && m->len + len > m->fail_at) || m->cap - m->len < len)
		return -EIO;
	memcpy(m->data + m->len, buf, len);
	m->len += len;
	return 0;
}

static void fill_str(char *dst, size_t n, char first)
{
	size_t i;

	for (i = 0; i < n; i++)
		dst[i] = (char)(first + i % 26);
	dst[n] = '\0';
}

static void fill_bytes(uint8_t *dst, size_t n, uint8_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		dst[i] = (uint8_t)(seed + i * 7);
}

static uint8_t page_byte(uint64_t addr, size_t i)
{
	return (uint8_t)((addr >> 12) * 31 + i * 13 + 1);
}

static void sample_header(struct sample *s)
{
	struct cs_image_header *h = &s->header;

	h->arch = CS_ARCH_X86_64;
	h->page_size = CS_IMAGE_PAGE_SIZE;
	h->flags = s->full ? CS_IMAGE_F_DELTA : 0;
	h->tracking = s->full ? CS_TRACK_UFFD_WP : CS_TRACK_FULL;
	h->generation = s->full ? 0x0123456789abcdefull : 1;
	h->parent_generation = s->full ? 0x0123456789abcdeeull : 0;
	h->base_generation = s->full ? 0x0123456789abcd00ull : 1;
	h->xsave_features = 0x2e7;
	h->xsave_size = 2696;
	fill_str(h->kernel_release, s->full ? 64 : 6, 'a');
	h->exe_build_id_len = s->full ? CS_IMAGE_BUILD_ID_MAX : 4;
	fill_bytes(h->exe_build_id, h->exe_build_id_len, 0xde);
	h->clock_realtime_ns = 1764072000123456789ll;
	h->clock_monotonic_ns = -5; /* signed fields travel as two's complement */
	h->clock_boottime_ns = INT64_MAX;
}

static void sample_process(struct sample *s)
{
	struct cs_image_process *p = &s->process;
	size_t i;

	p->pid = 1;
	p->ppid = -1;
	p->umask = 022;
	p->personality = 0x0040000;
	p->start_code = 0x400000, p->end_code = 0x401000, p->start_data = 0x402000;
	p->end_data = 0x403000, p->start_brk = 0x404000, p->brk = 0x425000;
	p->start_stack = 0x7ffc00000000, p->arg_start = 0x7ffc00001000;
	p->arg_end = 0x7ffc00001100, p->env_start = 0x7ffc00001100, p->env_end = 0x7ffc00001f00;
	p->auxv_len = s->full ? CS_IMAGE_AUXV_MAX : 32;
	fill_bytes(p->auxv, p->auxv_len, 3);
	for (i = 0; i < CS_IMAGE_RLIMITS; i++) {
		p->rlimits[i].cur = 1000 + i;
		p->rlimits[i].max = i == 3 ? UINT64_MAX : 2000 + i;
	}
	for (i = 0; i < CS_AGENT_ADDRS; i++)
		p->agent_addr[i] = 0x7f0000001000ull + i * 0x40;
	p->vdso_crc = 0xfeedf00d;
	fill_str(p->comm, s->full ? 15 : 6, 'k');
	fill_str(p->cwd, s->full ? CS_IMAGE_PATH_MAX - 1 : 4, 'c');
	fill_str(p->exe_path, s->full ? CS_IMAGE_PATH_MAX - 1 : 12, 'e');
}

static void sample_maps(struct sample *s)
{
	size_t i;

	s->n_maps = s->full ? S_MAPS : 2;
	for (i = 0; i < s->n_maps; i++) {
		struct cs_image_mapping *m = &s->maps[i];

		m->start = 0x400000ull + i * 0x100000;
		m->end = m->start + 0x3000;
		m->prot = (uint32_t)(i % 8);
		m->flags = (i % 2 ? CS_MAP_FILE : CS_MAP_ANON | CS_MAP_TRACKED) | CS_MAP_PRIVATE;
		m->pgoff = i * 0x1000;
		m->dev = 0x803 + i, m->ino = 12345 + i, m->file_size = 99999 + i;
		m->mtime_ns = -1 - (int64_t)i;
		m->build_id_len = s->full ? CS_IMAGE_BUILD_ID_MAX : 20;
		fill_bytes(m->build_id, m->build_id_len, (uint8_t)i);
		fill_str(m->path, s->full && i == 0 ? CS_IMAGE_PATH_MAX - 1 : 9 + i, 'p');
		m->madvise = (uint32_t)(i * 0x25) & CS_MADV_ALL & ~(CS_MADV_NOHUGEPAGE | CS_MADV_RANDOM);
	}
	if (s->full) /* a shared memory object (memfd) */
		s->maps[2].flags = CS_MAP_SHARED | CS_MAP_FILE | CS_MAP_SHMEM;
	if (s->full) /* vsyscall is above 2^47 and still a mapping */
		s->maps[S_MAPS - 1].start = 0xffffffffff600000ull,
		s->maps[S_MAPS - 1].end = 0xffffffffff601000ull,
		s->maps[S_MAPS - 1].flags = CS_MAP_VSYSCALL;
}

static void sample_threads(struct sample *s)
{
	size_t i;

	s->n_threads = s->full ? S_THREADS : 2;
	for (i = 0; i < s->n_threads; i++) {
		struct cs_image_thread *t = &s->threads[i];

		t->tid = (int32_t)(100 + i);
		t->flags = i == 0 ? CS_THREAD_MAIN : i == 1 ? CS_THREAD_AGENT : 0;
		t->ucontext_addr = 0x7ffd00000000ull + i * 0x10000;
		t->fs_base = 0x7f0000100000ull + i, t->gs_base = i;
		t->clear_child_tid = 0x7f0000200000ull + i;
		t->robust_list = 0x7f0000300000ull + i, t->robust_list_len = 24;
		t->rseq_addr = 0x7f0000400000ull + i, t->rseq_len = 32, t->rseq_sig = 0x53053053;
	}
}

static void sample_fd(struct sample *s, struct cs_image_fd *f, size_t i)
{
	f->fd = (int32_t)(i * 3);
	f->type = (uint32_t)(i % 19 + 1);
	f->open_flags = 02 | (uint32_t)i << 12;
	f->fd_flags = i % 2;
	f->offset = 0x100000000ull + i;
	fill_str(f->path, s->full && i == 1 ? CS_IMAGE_PATH_MAX - 1 : 5 + i, 'f');
	f->family = 1, f->sock_type = 5, f->protocol = -7, f->backlog = 4096;
	f->local_len = s->full ? CS_IMAGE_ADDR_MAX : 16;
	f->remote_len = s->full ? CS_IMAGE_ADDR_MAX - 1 : 0;
	fill_bytes(f->local_addr, f->local_len, 0x10);
	fill_bytes(f->remote_addr, f->remote_len, 0x20);
	f->sock_options = 3;
	f->pipe_id = 0xabcdef00 + i;
	f->eventfd_count = UINT64_MAX - i, f->eventfd_flags = 1;
	f->timer_clockid = 1, f->timer_flags = 1;
	f->timer_value_ns = 1500000000ull, f->timer_interval_ns = 250000000ull;
	if (f->type == CS_FD_PIPE || f->type == CS_FD_FIFO || f->type == CS_FD_SOCKETPAIR) {
		f->pipe_data_len = s->full ? S_PIPE : 5;
		f->pipe_data = s->pipe_data;
	}
	if (f->type == CS_FD_EPOLL) {
		f->n_epoll = s->full ? S_EPOLL : 2;
		f->epoll = s->epoll;
	}
	fill_str(f->reason, s->full && i == 11 ? 255 : i % 4, 'r');
	f->pipe_size = 65536 << (i % 3);
	f->share_fd = i >= 2 && i % 2 ? (int32_t)(i - 2) * 3 : -1;
	f->file_mode = 0600 + (uint32_t)i;
	if (f->type == CS_FD_TMPFILE || f->type == CS_FD_MEMFD) {
		f->file_data_len = s->full ? S_FILE : 7;
		f->file_data = s->file_data;
	}
	if (f->type == CS_FD_INOTIFY) { /* two watches: wd 1 and 4 */
		static const uint8_t w[] = {1, 0, 0, 0, 0x00, 1, 0, 0, 9, 8, 7, 6, 5, 4, 3, 2,
					    4, 0, 0, 0, '/', 't', 'm', 'p',
					    4, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
					    1, 0, 0, 0, '/'};
		f->file_data_len = sizeof(w);
		f->file_data = w;
	}
	f->n_sockopts = s->full && i == 5 ? CS_IMAGE_SOCKOPTS_MAX : (uint32_t)(i % 3);
	for (uint32_t k = 0; k < f->n_sockopts; k++) {
		f->sockopts[k].level = 1 + (int32_t)k, f->sockopts[k].name = -(int32_t)k;
		f->sockopts[k].len = k % (CS_IMAGE_SOCKOPT_LEN + 1);
		fill_bytes(f->sockopts[k].val, f->sockopts[k].len, (uint8_t)k);
	}
	f->peer_id = 0x1234567800000000ull + i, f->shutdown = (uint32_t)(i % 4);
	f->filter_locked = i % 2;
	f->filter_len = s->full && i == 7 ? CS_IMAGE_FILTER_MAX : (uint32_t)(i % 3) * 8;
	f->filter = f->filter_len ? s->filter : NULL;
	f->n_locks = s->full && i == 6 ? CS_IMAGE_LOCKS_MAX : (uint32_t)(i % 2);
	for (uint32_t k = 0; k < f->n_locks; k++) {
		f->locks[k].kind = k % 4 + 1, f->locks[k].mode = k % 2 + 1;
		f->locks[k].start = k * 100, f->locks[k].end = k % 3 ? k * 100 + 99 : CS_LOCK_EOF;
	}
}

static void sample_fds(struct sample *s)
{
	size_t i;

	fill_bytes(s->pipe_data, S_PIPE, 0x55);
	fill_bytes(s->file_data, S_FILE, 0x66);
	fill_bytes(s->filter, CS_IMAGE_FILTER_MAX, 0x77);
	for (i = 0; i < S_EPOLL; i++) {
		s->epoll[i].tfd = (int32_t)i - 1;
		s->epoll[i].events = 0x80000001u + (uint32_t)i;
		s->epoll[i].data = 0xdeadbeef00000000ull + i;
		s->epoll[i].src_fd = (int32_t)(i % 7);
	}
	s->n_fds = s->full ? S_FDS : 4;
	for (i = 0; i < s->n_fds; i++)
		sample_fd(s, &s->fds[i], i);
}

static void sample_timers(struct sample *s)
{
	size_t i;

	s->n_timers = s->full ? S_TIMERS : 1;
	for (i = 0; i < s->n_timers; i++) {
		struct cs_image_timer *t = &s->timers[i];

		t->kind = i < 3 ? (uint32_t)i + 1 : CS_TIMER_POSIX;
		t->value_ns = 1000000000ull + i, t->interval_ns = 20000000ull * i;
		if (t->kind != CS_TIMER_POSIX)
			continue;
		t->id = (int32_t)(i * 7), t->clockid = (int32_t)i - 3;
		t->notify = i % 2 ? CS_TIMER_NOTIFY_THREAD_ID : CS_TIMER_NOTIFY_SIGNAL;
		t->signo = 34 + (uint32_t)i, t->notify_tid = 100 + (int32_t)i;
		t->sigval = 0xfeedface00000000ull + i;
	}
}

/* Pending signals: the process's queue, then two threads' (a standard
 * signal and real-time instances with their values). */
static void sample_sigqueue(struct sample *s)
{
	static const int32_t tids[S_SIGQ] = {0, 0, 0, 7, 7, 9};
	static const uint32_t signos[S_SIGQ] = {10, 35, 35, 10, 35, 64};
	size_t i;

	s->n_sigq = s->full ? S_SIGQ : 1;
	for (i = 0; i < s->n_sigq; i++) {
		struct cs_image_sigqueued *q = &s->sigq[i];

		q->tid = tids[i], q->signo = signos[i];
		fill_bytes(q->info, CS_IMAGE_SIGINFO, (uint8_t)(0x40 + i));
		memcpy(q->info, &q->signo, 4); /* si_signo; the host is little-endian too */
	}
}

/* Seccomp filters: two stacked on one thread, one on another. */
static void sample_seccomp(struct sample *s)
{
	static const int32_t tids[S_SECC] = {7, 7, 9};
	size_t i;

	s->n_secc = s->full ? S_SECC : 1;
	for (i = 0; i < s->n_secc; i++) {
		s->secc[i].tid = tids[i];
		s->secc[i].flags = i == 1 ? CS_SECCOMP_FLAG_LOG : 0;
		s->secc[i].len = 8 * (uint32_t)(i + 1);
		fill_bytes(s->secc_prog[i], s->secc[i].len, (uint8_t)(0x60 + i));
		s->secc[i].prog = s->secc_prog[i];
	}
}

static void sample_rest(struct sample *s)
{
	size_t i;

	s->attrs.oom_score_adj = s->full ? -1000 : 500;
	s->attrs.child_subreaper = 1, s->attrs.thp_disable = s->full;
	s->attrs.dumpable = s->full ? 2 : 0;
	s->attrs.membarrier = s->full ? CS_MEMBARRIER_REGISTERED : 1u << 4;
	s->attrs.nice = s->full ? -20 : 19;
	s->attrs.sched_policy = s->full ? 2 | CS_SCHED_RESET_ON_FORK : 0;
	s->attrs.sched_priority = s->full ? 99 : 0;
	s->attrs.affinity_len = s->full ? CS_IMAGE_AFFINITY_MAX : 8;
	fill_bytes(s->attrs.affinity, s->attrs.affinity_len, 0x11);

	s->n_sigs = s->full ? S_SIGS : 2;
	for (i = 0; i < s->n_sigs; i++) {
		s->sigs[i].signo = s->full ? (uint32_t)i + 1 : (uint32_t)(i * 13 + 2);
		s->sigs[i].handler = 0x401000 + i, s->sigs[i].flags = 0x14000000;
		s->sigs[i].restorer = 0x7f0000500000ull, s->sigs[i].mask = UINT64_MAX >> i;
	}
	s->n_res = s->full ? S_RES : 1;
	for (i = 0; i < s->n_res; i++)
		s->res[i].addr = 0x400000ull + i * 0x100000, s->res[i].npages = (uint32_t)i + 3;
	s->creds = (struct cs_image_creds){{65534, 65534, 65534, 65534}, {65534, 65534, 65534, 65534}};
	s->has_creds = 1;
	s->creds.n_groups = s->full ? CS_IMAGE_GROUPS_MAX : 1;
	for (i = 0; i < s->creds.n_groups; i++)
		s->creds.groups[i] = 65534 - (uint32_t)i;
	if (s->full)
		s->creds.cap_inh = 1, s->creds.cap_prm = 2, s->creds.cap_eff = 3,
		s->creds.cap_bnd = UINT64_MAX, s->creds.cap_amb = 4, s->creds.securebits = 0x2f,
		s->creds.no_new_privs = 1, s->creds.dumpable = 2, s->creds.seccomp = 2;
	s->n_unsup = s->full ? S_UNSUP : 1;
	for (i = 0; i < s->n_unsup; i++)
		fill_str(s->unsup[i].what, s->full && i == 1 ? 255 : 20, 'u');
	/* runs[0] goes in the first PAGES section, the rest in the second */
	s->n_runs = s->full ? S_RUNS : 1;
	for (i = 0; i < s->n_runs; i++)
		s->runs[i].addr = 0x400000ull + i * 0x100000, s->runs[i].npages = (uint32_t)i + 1;
	if (s->full) /* a run that ends exactly at 2^47 */
		s->runs[S_RUNS - 1].addr = (1ull << 47) - 3 * CS_IMAGE_PAGE_SIZE,
		s->runs[S_RUNS - 1].npages = 3;
}

static void __attribute__((unused)) sample_init(struct sample *s, int full)
{
	memset(s, 0, sizeof(*s));
	s->full = full;
	sample_header(s);
	sample_process(s);
	sample_maps(s);
	sample_threads(s);
	sample_fds(s);
	sample_timers(s);
	sample_sigqueue(s);
	sample_seccomp(s);
	sample_rest(s);
}

#define TRYW(expr)                                                                                 \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ < 0)                                                                       \
			return rc_;                                                                \
	} while (0)

/* The bytes of one run's pages, each made by page_byte. */
static int write_run_bytes(struct cs_image_writer *w, const struct cs_image_run *run)
{
	uint8_t page[CS_IMAGE_PAGE_SIZE];

	for (size_t p = 0; p < run->npages; p++) {
		uint64_t addr = run->addr + p * CS_IMAGE_PAGE_SIZE;

		for (size_t k = 0; k < sizeof(page); k++)
			page[k] = page_byte(addr, k);
		TRYW(cs_image_section_write(w, page, sizeof(page)));
	}
	return 0;
}

/* One PAGES section holding runs [from, to). */
static int write_pages(struct cs_image_writer *w, const struct sample *s, size_t from, size_t to)
{
	uint8_t head[CS_IMAGE_PAGE_RUN_HEAD];
	struct cs_buf b = {head, 0, sizeof(head)};
	uint64_t len = 0;
	size_t i;

	for (i = from; i < to; i++)
		len += CS_IMAGE_PAGE_RUN_HEAD + (uint64_t)s->runs[i].npages * CS_IMAGE_PAGE_SIZE;
	TRYW(cs_image_section_begin(w, CS_SECT_PAGES, len));
	for (i = from; i < to; i++) {
		b.len = 0;
		TRYW(cs_image_put_page_run_head(&b, s->runs[i].addr, s->runs[i].npages));
		TRYW(cs_image_section_write(w, head, b.len));
		TRYW(write_run_bytes(w, &s->runs[i]));
	}
	return cs_image_section_end(w);
}

/* One PAGES_ALIGNED section holding runs [from, to): heads, zero padding,
 * then the bytes of every run from a 4096-byte boundary of the image. */
static int write_aligned_pages(struct cs_image_writer *w, const struct sample *s, size_t from,
			       size_t to)
{
	static const uint8_t zeros[CS_IMAGE_PAGE_SIZE];
	uint8_t head[CS_IMAGE_PAGE_RUN_HEAD];
	struct cs_buf b = {head, 0, sizeof(head)};
	uint32_t count = (uint32_t)(to - from);
	uint32_t data_off = cs_image_aligned_data_off(w->offset, count);
	uint64_t len = data_off;
	size_t i;

	for (i = from; i < to; i++)
		len += (uint64_t)s->runs[i].npages * CS_IMAGE_PAGE_SIZE;
	TRYW(cs_image_section_begin(w, CS_SECT_PAGES_ALIGNED, len));
	TRYW(cs_image_put_aligned_pages_head(&b, count, data_off));
	TRYW(cs_image_section_write(w, head, b.len));
	for (i = from; i < to; i++) {
		b.len = 0;
		TRYW(cs_image_put_page_run_head(&b, s->runs[i].addr, s->runs[i].npages));
		TRYW(cs_image_section_write(w, head, b.len));
	}
	TRYW(cs_image_section_write(w, zeros, data_off - 8 - count * CS_IMAGE_PAGE_RUN_HEAD));
	for (i = from; i < to; i++)
		TRYW(write_run_bytes(w, &s->runs[i]));
	return cs_image_section_end(w);
}

/* Encodes n records of one type into b as count + records. */
#define PUT_ALL(b, fn, arr, n)                                                                     \
	do {                                                                                       \
		size_t pos_, i_;                                                                   \
		(b)->len = 0;                                                                      \
		TRYW(cs_image_put_count((b), &pos_));                                              \
		for (i_ = 0; i_ < (n); i_++)                                                       \
			TRYW(fn((b), &(arr)[i_]));                                                 \
		cs_image_set_count((b), pos_, (uint32_t)(n));                                      \
	} while (0)

/* The metadata sections, HEADER first. */
static int write_metadata(struct cs_image_writer *w, const struct sample *s, struct cs_buf *b)
{
	b->len = 0;
	TRYW(cs_image_put_header(b, &s->header));
	TRYW(cs_image_write_section(w, CS_SECT_HEADER, b));
	b->len = 0;
	TRYW(cs_image_put_process(b, &s->process));
	TRYW(cs_image_write_section(w, CS_SECT_PROCESS, b));
	PUT_ALL(b, cs_image_put_mapping, s->maps, s->n_maps);
	TRYW(cs_image_write_section(w, CS_SECT_MAPPINGS, b));
	PUT_ALL(b, cs_image_put_thread, s->threads, s->n_threads);
	TRYW(cs_image_write_section(w, CS_SECT_THREADS, b));
	PUT_ALL(b, cs_image_put_fd, s->fds, s->n_fds);
	TRYW(cs_image_write_section(w, CS_SECT_FDS, b));
	PUT_ALL(b, cs_image_put_sigaction, s->sigs, s->n_sigs);
	TRYW(cs_image_write_section(w, CS_SECT_SIGNALS, b));
	b->len = 0;
	TRYW(cs_image_put_creds(b, &s->creds));
	TRYW(cs_image_write_section(w, CS_SECT_CREDS, b));
	PUT_ALL(b, cs_image_put_run, s->res, s->n_res);
	TRYW(cs_image_write_section(w, CS_SECT_RESIDENT, b));
	PUT_ALL(b, cs_image_put_unsupported, s->unsup, s->n_unsup);
	TRYW(cs_image_write_section(w, CS_SECT_UNSUPPORTED, b));
	PUT_ALL(b, cs_image_put_timer, s->timers, s->n_timers);
	TRYW(cs_image_write_section(w, CS_SECT_TIMERS, b));
	b->len = 0;
	TRYW(cs_image_put_attrs(b, &s->attrs));
	TRYW(cs_image_write_section(w, CS_SECT_ATTRS, b));
	PUT_ALL(b, cs_image_put_sigqueued, s->sigq, s->n_sigq);
	TRYW(cs_image_write_section(w, CS_SECT_SIGQUEUE, b));
	PUT_ALL(b, cs_image_put_seccomp, s->secc, s->n_secc);
	return cs_image_write_section(w, CS_SECT_SECCOMP, b);
}

/* Writes the whole image into m; returns 0 or a negative errno. */
static int __attribute__((unused)) sample_write(const struct sample *s, struct membuf *m)
{
	static uint8_t scratch[1 << 18];
	struct cs_buf b = {scratch, 0, sizeof(scratch)};
	struct cs_image_writer w;

	cs_image_writer_init(&w, mem_write, m);
	TRYW(write_metadata(&w, s, &b));
	TRYW(write_pages(&w, s, 0, 1));
	if (s->n_runs > 1 && s->aligned)
		TRYW(write_aligned_pages(&w, s, 1, s->n_runs));
	else if (s->n_runs > 1)
		TRYW(write_pages(&w, s, 1, s->n_runs));
	return cs_image_write_end(&w);
}

static int sample_quiet; /* set while a test expects differences */

/* Number of differences between a parsed image and the sample. */
static int __attribute__((unused)) sample_diff(const struct sample *s, const struct cs_image *img,
					       const uint8_t *buf)
{
	int bad = 0;
	size_t i, k;

#define DIFF(cond)                                                                                 \
	do {                                                                                       \
		if (cond) {                                                                        \
			if (!sample_quiet)                                                         \
				fprintf(stderr, "%s:%d: differs: %s\n", __FILE__, __LINE__, #cond); \
			bad++;                                                                     \
		}                                                                                  \
	} while (0)
	DIFF(memcmp(&img->header, &s->header, sizeof(s->header)) != 0);
	DIFF(memcmp(&img->process, &s->process, sizeof(s->process)) != 0);
	DIFF(img->has_creds != s->has_creds ||
	     (s->has_creds && memcmp(&img->creds, &s->creds, sizeof(s->creds)) != 0));
	DIFF(img->n_mappings != s->n_maps || img->n_threads != s->n_threads);
	DIFF(img->n_fds != s->n_fds || img->n_sigactions != s->n_sigs);
	DIFF(img->n_resident != s->n_res || img->n_unsupported != s->n_unsup);
	DIFF(img->n_page_runs != s->n_runs || img->n_timers != s->n_timers);
	DIFF(img->n_sigqueue != s->n_sigq || img->n_seccomp != s->n_secc);
	if (bad)
		return bad;
	/* (an absent section leaves its array NULL, so empty ones are not compared) */
	DIFF(s->n_maps && memcmp(img->mappings, s->maps, s->n_maps * sizeof(s->maps[0])));
	DIFF(s->n_threads && memcmp(img->threads, s->threads, s->n_threads * sizeof(s->threads[0])));
	DIFF(s->n_sigs && memcmp(img->sigactions, s->sigs, s->n_sigs * sizeof(s->sigs[0])));
	DIFF(s->n_res && memcmp(img->resident, s->res, s->n_res * sizeof(s->res[0])));
	DIFF(s->n_unsup && memcmp(img->unsupported, s->unsup, s->n_unsup * sizeof(s->unsup[0])));
	DIFF(s->n_timers && memcmp(img->timers, s->timers, s->n_timers * sizeof(s->timers[0])));
	DIFF(memcmp(&img->attrs, &s->attrs, sizeof(s->attrs)) != 0);
	DIFF(s->n_sigq && memcmp(img->sigqueue, s->sigq, s->n_sigq * sizeof(s->sigq[0])));
	for (i = 0; i < s->n_secc && i < img->n_seccomp; i++)
		DIFF(img->seccomp[i].tid != s->secc[i].tid ||
		     img->seccomp[i].flags != s->secc[i].flags ||
		     img->seccomp[i].len != s->secc[i].len ||
		     memcmp(img->seccomp[i].prog, s->secc[i].prog, s->secc[i].len) != 0);
	for (i = 0; i < s->n_fds; i++) {
		struct cs_image_fd a = img->fds[i], e = s->fds[i];

		DIFF(a.pipe_data_len != e.pipe_data_len || a.n_epoll != e.n_epoll);
		if (a.pipe_data_len == e.pipe_data_len && a.pipe_data_len)
			DIFF(memcmp(a.pipe_data, e.pipe_data, a.pipe_data_len) != 0);
		if (a.n_epoll == e.n_epoll && a.n_epoll)
			DIFF(memcmp(a.epoll, e.epoll, a.n_epoll * sizeof(*a.epoll)) != 0);
		DIFF(a.file_data_len != e.file_data_len);
		if (a.file_data_len == e.file_data_len && a.file_data_len)
			DIFF(memcmp(a.file_data, e.file_data, a.file_data_len) != 0);
		a.pipe_data = e.pipe_data = NULL;
		a.epoll = e.epoll = NULL;
		a.file_data = e.file_data = NULL;
		DIFF(a.filter_len != e.filter_len);
		if (a.filter_len == e.filter_len && a.filter_len)
			DIFF(memcmp(a.filter, e.filter, a.filter_len) != 0);
		a.filter = e.filter = NULL;
		DIFF(memcmp(&a, &e, sizeof(a)) != 0);
	}
	for (i = 0; i < s->n_runs; i++) {
		const struct cs_image_page_run *r = &img->page_runs[i];

		DIFF(r->addr != s->runs[i].addr || r->npages != s->runs[i].npages);
		for (k = 0; buf && k < (size_t)r->npages * CS_IMAGE_PAGE_SIZE; k += 997)
			DIFF(buf[r->file_offset + k] !=
			     page_byte(r->addr + k / CS_IMAGE_PAGE_SIZE * CS_IMAGE_PAGE_SIZE,
				       k % CS_IMAGE_PAGE_SIZE));
	}
#undef DIFF
	return bad;
}

/* The sections of a valid image, as the tests walk them. */
struct sect_pos {
	uint32_t type;
	size_t off, payload_len;
};

static size_t __attribute__((unused)) list_sections(const uint8_t *buf, size_t len,
						    struct sect_pos *out, size_t max)
{
	size_t off = 0, n = 0;
	uint64_t plen;

	while (off + 16 <= len && n < max) {
		plen = (uint64_t)buf[off + 8] | (uint64_t)buf[off + 9] << 8 |
		       (uint64_t)buf[off + 10] << 16 | (uint64_t)buf[off + 11] << 24;
		out[n].type = (uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8;
		out[n].off = off;
		out[n].payload_len = plen;
		n++;
		off += 16 + plen + 4;
	}
	return n;
}

static void __attribute__((unused)) put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static void __attribute__((unused)) put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Recomputes the CRC of the section at off after a test patched it. */
static void __attribute__((unused)) reseal(uint8_t *buf, size_t off, size_t payload_len)
{
	put_le32(buf + off + 16 + payload_len, cs_crc32c(0, buf + off, 16 + payload_len));
}

#endif
