/*
 * Record codecs of the checkpoint image (docs/image-format.md): encoders
 * into a caller's buffer, and bounds-checked decoders.
 *
 * The encoders run in a copy-on-write child of a multi-threaded process
 * and in signal handlers: they never allocate, never touch errno and use
 * nothing from libc but memcpy. They compute a record's exact size first,
 * so a record that does not fit leaves the buffer as it was.
 */
#include <errno.h>
#include <string.h>

#include "image.h"
#include "image_int.h"

_Static_assert(CS_AGENT_ADDRS == 3, "agent_addr count is part of the format");
_Static_assert(CS_IMAGE_RLIMITS == 16, "rlimit count is part of the format");

/* ---- Encoding ----------------------------------------------------------- */

/* Length of a C string held in a char[cap]; cap if it has no NUL. */
static size_t field_strlen(const char *s, size_t cap)
{
	size_t n = 0;

	while (n < cap && s[n] != '\0')
		n++;
	return n;
}

uint8_t *cs_img_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
	return p + 4;
}

uint8_t *cs_img_put64(uint8_t *p, uint64_t v)
{
	cs_img_put32(p, (uint32_t)v);
	return cs_img_put32(p + 4, (uint32_t)(v >> 32));
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
	if (n > 0)
		memcpy(p, src, n);
	return p + n;
}

/* u32 length + bytes: strings (without NUL) and byte strings alike. */
static uint8_t *put_var(uint8_t *p, const void *src, size_t n)
{
	return put_bytes(cs_img_put32(p, (uint32_t)n), src, n);
}

/* Where the next n bytes go, or NULL if they do not fit. */
static uint8_t *reserve(const struct cs_buf *b, size_t n)
{
	if (b->len > b->cap || b->cap - b->len < n)
		return NULL;
	return b->data + b->len;
}

int cs_image_put_header(struct cs_buf *b, const struct cs_image_header *h)
{
	size_t kr = field_strlen(h->kernel_release, sizeof(h->kernel_release));
	size_t n;
	uint8_t *p;

	if (kr >= sizeof(h->kernel_release) || h->exe_build_id_len > CS_IMAGE_BUILD_ID_MAX)
		return -EINVAL;
	n = CS_REC_HEADER_FIXED + 4 + kr + 4 + h->exe_build_id_len;
	p = reserve(b, n);
	if (!p)
		return -ENOSPC;
	p = put_bytes(p, CS_IMAGE_MAGIC, 8);
	p = cs_img_put32(p, CS_IMAGE_FORMAT_VERSION);
	p = cs_img_put32(p, h->arch);
	p = cs_img_put32(p, h->page_size);
	p = cs_img_put32(p, h->flags);
	p = cs_img_put32(p, h->tracking);
	p = cs_img_put32(p, h->xsave_size);
	p = cs_img_put64(p, h->generation);
	p = cs_img_put64(p, h->parent_generation);
	p = cs_img_put64(p, h->base_generation);
	p = cs_img_put64(p, h->xsave_features);
	p = cs_img_put64(p, (uint64_t)h->clock_realtime_ns);
	p = cs_img_put64(p, (uint64_t)h->clock_monotonic_ns);
	p = cs_img_put64(p, (uint64_t)h->clock_boottime_ns);
	p = put_var(p, h->kernel_release, kr);
	put_var(p, h->exe_build_id, h->exe_build_id_len);
	b->len += n;
	return 0;
}

int cs_image_put_process(struct cs_buf *b, const struct cs_image_process *pr)
{
	size_t comm = field_strlen(pr->comm, sizeof(pr->comm));
	size_t cwd = field_strlen(pr->cwd, sizeof(pr->cwd));
	size_t exe = field_strlen(pr->exe_path, sizeof(pr->exe_path));
	const uint64_t mm[] = {pr->start_code, pr->end_code,  pr->start_data,  pr->end_data,
	                       pr->start_brk,  pr->brk,       pr->start_stack, pr->arg_start,
	                       pr->arg_end,    pr->env_start, pr->env_end};
	size_t n, i;
	uint8_t *p;

	if (comm >= sizeof(pr->comm) || cwd >= sizeof(pr->cwd) || exe >= sizeof(pr->exe_path) ||
	    pr->auxv_len > CS_IMAGE_AUXV_MAX)
		return -EINVAL;
	n = CS_REC_PROCESS_FIXED + 4 + pr->auxv_len + 4 + comm + 4 + cwd + 4 + exe;
	p = reserve(b, n);
	if (!p)
		return -ENOSPC;
	p = cs_img_put32(p, (uint32_t)pr->pid);
	p = cs_img_put32(p, (uint32_t)pr->ppid);
	p = cs_img_put32(p, pr->umask);
	p = cs_img_put32(p, pr->personality);
	for (i = 0; i < sizeof(mm) / sizeof(mm[0]); i++)
		p = cs_img_put64(p, mm[i]);
	for (i = 0; i < CS_IMAGE_RLIMITS; i++) {
		p = cs_img_put64(p, pr->rlimits[i].cur);
		p = cs_img_put64(p, pr->rlimits[i].max);
	}
	for (i = 0; i < CS_AGENT_ADDRS; i++)
		p = cs_img_put64(p, pr->agent_addr[i]);
	p = cs_img_put32(p, pr->vdso_crc);
	p = put_var(p, pr->auxv, pr->auxv_len);
	p = put_var(p, pr->comm, comm);
	p = put_var(p, pr->cwd, cwd);
	put_var(p, pr->exe_path, exe);
	b->len += n;
	return 0;
}

int cs_image_put_count(struct cs_buf *b, size_t *ret_pos)
{
	uint8_t *p = reserve(b, 4);

	if (!p)
		return -ENOSPC;
	cs_img_put32(p, 0);
	*ret_pos = b->len;
	b->len += 4;
	return 0;
}

void cs_image_set_count(struct cs_buf *b, size_t pos, uint32_t count)
{
	if (pos <= b->len && b->len - pos >= 4)
		cs_img_put32(b->data + pos, count);
}

int cs_image_put_mapping(struct cs_buf *b, const struct cs_image_mapping *m)
{
	size_t path = field_strlen(m->path, sizeof(m->path));
	size_t n;
	uint8_t *p;

	if (path >= sizeof(m->path) || m->build_id_len > CS_IMAGE_BUILD_ID_MAX)
		return -EINVAL;
	n = CS_REC_MAPPING_FIXED + 4 + m->build_id_len + 4 + path + 4;
	p = reserve(b, n);
	if (!p)
		return -ENOSPC;
	p = cs_img_put64(p, m->start);
	p = cs_img_put64(p, m->end);
	p = cs_img_put32(p, m->prot);
	p = cs_img_put32(p, m->flags);
	p = cs_img_put64(p, m->pgoff);
	p = cs_img_put64(p, m->dev);
	p = cs_img_put64(p, m->ino);
	p = cs_img_put64(p, m->file_size);
	p = cs_img_put64(p, (uint64_t)m->mtime_ns);
	p = put_var(p, m->build_id, m->build_id_len);
	p = put_var(p, m->path, path);
	cs_img_put32(p, m->madvise);
	b->len += n;
	return 0;
}

int cs_image_put_thread(struct cs_buf *b, const struct cs_image_thread *t)
{
	uint8_t *p = reserve(b, CS_REC_THREAD);

	if (!p)
		return -ENOSPC;
	p = cs_img_put32(p, (uint32_t)t->tid);
	p = cs_img_put32(p, t->flags);
	p = cs_img_put64(p, t->ucontext_addr);
	p = cs_img_put64(p, t->fs_base);
	p = cs_img_put64(p, t->gs_base);
	p = cs_img_put64(p, t->clear_child_tid);
	p = cs_img_put64(p, t->robust_list);
	p = cs_img_put64(p, t->robust_list_len);
	p = cs_img_put64(p, t->rseq_addr);
	p = cs_img_put32(p, t->rseq_len);
	cs_img_put32(p, t->rseq_sig);
	b->len += CS_REC_THREAD;
	return 0;
}

static uint8_t *put_fd_fixed(uint8_t *p, const struct cs_image_fd *f)
{
	p = cs_img_put32(p, (uint32_t)f->fd);
	p = cs_img_put32(p, f->type);
	p = cs_img_put32(p, f->open_flags);
	p = cs_img_put32(p, f->fd_flags);
	p = cs_img_put64(p, f->offset);
	p = cs_img_put32(p, (uint32_t)f->family);
	p = cs_img_put32(p, (uint32_t)f->sock_type);
	p = cs_img_put32(p, (uint32_t)f->protocol);
	p = cs_img_put32(p, (uint32_t)f->backlog);
	p = cs_img_put32(p, f->sock_options);
	p = cs_img_put32(p, f->eventfd_flags);
	p = cs_img_put64(p, f->pipe_id);
	p = cs_img_put64(p, f->eventfd_count);
	p = cs_img_put32(p, (uint32_t)f->timer_clockid);
	p = cs_img_put32(p, f->timer_flags);
	p = cs_img_put64(p, f->timer_value_ns);
	return cs_img_put64(p, f->timer_interval_ns);
}

/* The version-2 tail of an fd record: pipe size, shared description,
 * unlinked file content, socket options. */
static size_t fd_tail_len(const struct cs_image_fd *f)
{
	size_t n = 4 + 4 + 4 + 4 + f->file_data_len + 4;
	uint32_t i;

	for (i = 0; i < f->n_sockopts; i++)
		n += 8 + 4 + f->sockopts[i].len;
	return n + 4 + (size_t)f->n_locks * 24 + 8 + 4 + 4 + 4 + f->filter_len;
}

static int fd_tail_ok(const struct cs_image_fd *f)
{
	uint32_t i;

	if (f->file_data_len > CS_IMAGE_FILE_DATA_MAX || (f->file_data_len > 0 && !f->file_data) ||
	    f->n_sockopts > CS_IMAGE_SOCKOPTS_MAX || f->n_locks > CS_IMAGE_LOCKS_MAX ||
	    f->filter_len > CS_IMAGE_FILTER_MAX || (f->filter_len > 0 && !f->filter))
		return 0;
	for (i = 0; i < f->n_sockopts; i++)
		if (f->sockopts[i].len > CS_IMAGE_SOCKOPT_LEN)
			return 0;
	return 1;
}

static uint8_t *put_fd_tail(uint8_t *p, const struct cs_image_fd *f)
{
	uint32_t i;

	p = cs_img_put32(p, f->pipe_size);
	p = cs_img_put32(p, (uint32_t)f->share_fd);
	p = cs_img_put32(p, f->file_mode);
	p = put_var(p, f->file_data, f->file_data_len);
	p = cs_img_put32(p, f->n_sockopts);
	for (i = 0; i < f->n_sockopts; i++) {
		p = cs_img_put32(p, (uint32_t)f->sockopts[i].level);
		p = cs_img_put32(p, (uint32_t)f->sockopts[i].name);
		p = put_var(p, f->sockopts[i].val, f->sockopts[i].len);
	}
	p = cs_img_put32(p, f->n_locks);
	for (i = 0; i < f->n_locks; i++) {
		p = cs_img_put32(p, f->locks[i].kind);
		p = cs_img_put32(p, f->locks[i].mode);
		p = cs_img_put64(p, f->locks[i].start);
		p = cs_img_put64(p, f->locks[i].end);
	}
	p = cs_img_put64(p, f->peer_id);
	p = cs_img_put32(p, f->shutdown);
	p = cs_img_put32(p, f->filter_locked);
	return put_var(p, f->filter, f->filter_len);
}

int cs_image_put_fd(struct cs_buf *b, const struct cs_image_fd *f)
{
	size_t path = field_strlen(f->path, sizeof(f->path));
	size_t reason = field_strlen(f->reason, sizeof(f->reason));
	size_t n, i;
	uint8_t *p;

	if (path >= sizeof(f->path) || reason >= sizeof(f->reason) ||
	    f->local_len > CS_IMAGE_ADDR_MAX || f->remote_len > CS_IMAGE_ADDR_MAX ||
	    f->pipe_data_len > CS_IMAGE_PIPE_DATA_MAX || f->n_epoll > CS_IMAGE_EPOLL_MAX ||
	    (f->pipe_data_len > 0 && !f->pipe_data) || (f->n_epoll > 0 && !f->epoll) ||
	    !fd_tail_ok(f))
		return -EINVAL;
	n = CS_REC_FD_FIXED + 4 + path + 4 + f->local_len + 4 + f->remote_len + 4 +
	    f->pipe_data_len + 4 + (size_t)f->n_epoll * 20 + 4 + reason + fd_tail_len(f);
	p = reserve(b, n);
	if (!p)
		return -ENOSPC;
	p = put_fd_fixed(p, f);
	p = put_var(p, f->path, path);
	p = put_var(p, f->local_addr, f->local_len);
	p = put_var(p, f->remote_addr, f->remote_len);
	p = put_var(p, f->pipe_data, f->pipe_data_len);
	p = cs_img_put32(p, f->n_epoll);
	for (i = 0; i < f->n_epoll; i++) {
		p = cs_img_put32(p, (uint32_t)f->epoll[i].tfd);
		p = cs_img_put32(p, f->epoll[i].events);
		p = cs_img_put64(p, f->epoll[i].data);
		p = cs_img_put32(p, (uint32_t)f->epoll[i].src_fd);
	}
	p = put_var(p, f->reason, reason);
	put_fd_tail(p, f);
	b->len += n;
	return 0;
}

int cs_image_put_sigaction(struct cs_buf *b, const struct cs_image_sigaction *s)
{
	uint8_t *p = reserve(b, CS_REC_SIGACTION);

	if (!p)
		return -ENOSPC;
	p = cs_img_put32(p, s->signo);
	p = cs_img_put32(p, 0); /* reserved: always written as zero */
	p = cs_img_put64(p, s->handler);
	p = cs_img_put64(p, s->flags);
	p = cs_img_put64(p, s->restorer);
	cs_img_put64(p, s->mask);
	b->len += CS_REC_SIGACTION;
	return 0;
}

/* RESIDENT runs and PAGES run heads share one 16-byte layout. */
static int put_run16(struct cs_buf *b, uint64_t addr, uint32_t npages)
{
	uint8_t *p = reserve(b, CS_REC_RUN);

	if (!p)
		return -ENOSPC;
	p = cs_img_put64(p, addr);
	p = cs_img_put32(p, npages);
	cs_img_put32(p, 0);
	b->len += CS_REC_RUN;
	return 0;
}

int cs_image_put_run(struct cs_buf *b, const struct cs_image_run *r)
{
	return put_run16(b, r->addr, r->npages);
}

int cs_image_put_page_run_head(struct cs_buf *b, uint64_t addr, uint32_t npages)
{
	return put_run16(b, addr, npages);
}

uint32_t cs_image_aligned_data_off(uint64_t section_off, uint32_t count)
{
	uint64_t payload_off = section_off + CS_SECT_HEAD;
	uint64_t heads_end = payload_off + 8 + (uint64_t)count * CS_IMAGE_PAGE_RUN_HEAD;
	uint64_t data = (heads_end + CS_IMAGE_PAGE_SIZE - 1) & ~(uint64_t)(CS_IMAGE_PAGE_SIZE - 1);

	return (uint32_t)(data - payload_off);
}

int cs_image_put_aligned_pages_head(struct cs_buf *b, uint32_t count, uint32_t data_off)
{
	uint8_t *p = reserve(b, 8);

	if (!p)
		return -ENOSPC;
	cs_img_put32(cs_img_put32(p, count), data_off);
	b->len += 8;
	return 0;
}

int cs_image_put_unsupported(struct cs_buf *b, const struct cs_image_unsupported *u)
{
	size_t what = field_strlen(u->what, sizeof(u->what));
	uint8_t *p;

	if (what >= sizeof(u->what))
		return -EINVAL;
	p = reserve(b, 4 + what);
	if (!p)
		return -ENOSPC;
	put_var(p, u->what, what);
	b->len += 4 + what;
	return 0;
}

int cs_image_put_creds(struct cs_buf *b, const struct cs_image_creds *c)
{
	const uint64_t caps[] = {c->cap_inh, c->cap_prm, c->cap_eff, c->cap_bnd, c->cap_amb};
	const uint32_t words[] = {c->securebits, c->no_new_privs, c->dumpable, c->seccomp};
	size_t n, i;
	uint8_t *p;

	if (c->n_groups > CS_IMAGE_GROUPS_MAX)
		return -EINVAL;
	n = CS_REC_CREDS_FIXED + 4 * (size_t)c->n_groups;
	p = reserve(b, n);
	if (!p)
		return -ENOSPC;
	for (i = 0; i < 4; i++)
		p = cs_img_put32(p, c->uid[i]);
	for (i = 0; i < 4; i++)
		p = cs_img_put32(p, c->gid[i]);
	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		p = cs_img_put64(p, caps[i]);
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		p = cs_img_put32(p, words[i]);
	p = cs_img_put32(p, c->n_groups);
	for (i = 0; i < c->n_groups; i++)
		p = cs_img_put32(p, c->groups[i]);
	b->len += n;
	return 0;
}

int cs_image_put_timer(struct cs_buf *b, const struct cs_image_timer *t)
{
	uint8_t *p = reserve(b, CS_REC_TIMER);

	if (!p)
		return -ENOSPC;
	p = cs_img_put32(p, t->kind);
	p = cs_img_put32(p, (uint32_t)t->id);
	p = cs_img_put32(p, (uint32_t)t->clockid);
	p = cs_img_put32(p, t->notify);
	p = cs_img_put32(p, t->signo);
	p = cs_img_put32(p, (uint32_t)t->notify_tid);
	p = cs_img_put64(p, t->sigval);
	p = cs_img_put64(p, t->value_ns);
	cs_img_put64(p, t->interval_ns);
	b->len += CS_REC_TIMER;
	return 0;
}

int cs_image_put_attrs(struct cs_buf *b, const struct cs_image_attrs *a)
{
	size_t n = CS_REC_ATTRS + 4 + a->affinity_len;
	uint8_t *p;

	if (a->affinity_len > CS_IMAGE_AFFINITY_MAX)
		return -EINVAL;
	p = reserve(b, n);
	if (!p)
		return -ENOSPC;
	p = cs_img_put32(p, (uint32_t)a->oom_score_adj);
	p = cs_img_put32(p, a->child_subreaper);
	p = cs_img_put32(p, a->thp_disable);
	p = cs_img_put32(p, a->dumpable);
	p = cs_img_put32(p, a->membarrier);
	p = cs_img_put32(p, (uint32_t)a->nice);
	p = cs_img_put32(p, a->sched_policy);
	p = cs_img_put32(p, a->sched_priority);
	put_var(p, a->affinity, a->affinity_len);
	b->len += n;
	return 0;
}

int cs_image_put_sigqueued(struct cs_buf *b, const struct cs_image_sigqueued *q)
{
	uint8_t *p = reserve(b, CS_REC_SIGQUEUED);

	if (!p)
		return -ENOSPC;
	p = cs_img_put32(p, (uint32_t)q->tid);
	p = cs_img_put32(p, q->signo);
	put_bytes(p, q->info, CS_IMAGE_SIGINFO);
	b->len += CS_REC_SIGQUEUED;
	return 0;
}

int cs_image_put_seccomp(struct cs_buf *b, const struct cs_image_seccomp *f)
{
	size_t n = 8 + 4 + (size_t)f->len;
	uint8_t *p;

	if (f->len > CS_IMAGE_FILTER_MAX || (f->len > 0 && !f->prog))
		return -EINVAL;
	p = reserve(b, n);
	if (!p)
		return -ENOSPC;
	p = cs_img_put32(p, (uint32_t)f->tid);
	p = cs_img_put32(p, f->flags);
	put_var(p, f->prog, f->len);
	b->len += n;
	return 0;
}
