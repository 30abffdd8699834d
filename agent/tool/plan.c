/*
 * From a checked chain of images to the restorer's plan (cs_plan.h):
 * mappings to create, page copies (which image file holds the newest bytes
 * of each live page), threads, signal handlers, mm fields, the agent's
 * restore block.
 *
 * Which bytes are live: the RESIDENT runs of the newest image. Their data
 * is in the newest image of the chain whose PAGES hold them; a live page
 * that no image holds means a damaged chain, and the restore is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../restore/cs_plan.h"
#include "plan_int.h"
#include "restore.h"
#include "tool.h"

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

int cs_cmp_copy(const void *a, const void *b)
{
	const struct cs_plan_copy *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Sorted, merged spans. */
size_t cs_spans_normalize(struct span *s, size_t n)
{
	size_t out = 0;
	if (n > 1) /* s may be NULL when n is 0 */
		qsort(s, n, sizeof(*s), cmp_span);
	for (size_t i = 0; i < n; i++) {
		if (out && s[i].start <= s[out - 1].end) {
			if (s[i].end > s[out - 1].end)
				s[out - 1].end = s[i].end;
		} else {
			s[out++] = s[i];
		}
	}
	return out;
}

static int add_copy(struct copy_list *cl, uint64_t addr, uint64_t len, uint64_t off, int fd)
{
	if (cl->n && cl->v[cl->n - 1].fd == fd &&
	    cl->v[cl->n - 1].addr + cl->v[cl->n - 1].len == addr &&
	    cl->v[cl->n - 1].file_off + cl->v[cl->n - 1].len == off) {
		cl->v[cl->n - 1].len += len;
		return 0;
	}
	if (cl->n == cl->cap) {
		size_t cap = cl->cap ? cl->cap * 2 : 256;
		struct cs_plan_copy *nv = realloc(cl->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		cl->v = nv;
		cl->cap = cap;
	}
	cl->v[cl->n++] = (struct cs_plan_copy){.addr = addr, .len = len, .file_off = off, .fd = fd};
	return 0;
}

/*
 * One image's turn: every still-needed byte that this image's page runs
 * hold becomes a copy from it and is no longer needed. need is sorted and
 * merged; the remainder is written back into need.
 */
static int cmp_page_run(const void *a, const void *b)
{
	const struct cs_image_page_run *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

int cs_take_from_image(const struct cs_image *img, int fd, struct span **needp, size_t *n_need,
                       struct copy_list *cl)
{
	struct span *need = *needp;
	size_t nr = img->n_page_runs;
	struct cs_image_page_run *pr = malloc((nr + 1) * sizeof(*pr));
	struct span *left = malloc((*n_need + nr + 1) * sizeof(*left));
	if (!pr || !left) {
		free(pr);
		free(left);
		return -ENOMEM;
	}
	if (nr)
		memcpy(pr, img->page_runs, nr * sizeof(*pr));
	qsort(pr, nr, sizeof(*pr), cmp_page_run);
	size_t nl = 0, r = 0;
	int err = 0;
	for (size_t i = 0; i < *n_need && !err; i++) {
		uint64_t cur = need[i].start, end = need[i].end;
		while (r < nr && pr[r].addr + (uint64_t)pr[r].npages * PAGE <= cur)
			r++;
		for (size_t k = r; k < nr && pr[k].addr < end && !err; k++) {
			uint64_t rs = pr[k].addr, re = rs + (uint64_t)pr[k].npages * PAGE;
			if (re <= cur)
				continue;
			if (rs > cur)
				left[nl++] = (struct span){cur, rs};
			uint64_t s = rs > cur ? rs : cur, e = re < end ? re : end;
			err = add_copy(cl, s, e - s, pr[k].file_offset + (s - rs), fd);
			cur = e;
		}
		if (cur < end)
			left[nl++] = (struct span){cur, end};
	}
	/* what is left can be more spans than before: a run splits a span */
	free(need);
	*needp = left;
	*n_need = nl;
	free(pr);
	return err;
}

/* partial: the chain stops above its full image on purpose (a merge of
 * deltas, compact.c), so live pages none of its images hold are fine. */
static int plan_copies(const struct cs_restore *r, int image_fd_base, int partial,
                       struct copy_list *cl)
{
	const struct cs_image *img = r->img;
	struct span *need = malloc((img->n_resident + 1) * sizeof(*need));
	if (!need)
		return -ENOMEM;
	for (size_t i = 0; i < img->n_resident; i++)
		need[i] =
		    (struct span){img->resident[i].addr,
		                  img->resident[i].addr + (uint64_t)img->resident[i].npages * PAGE};
	size_t n = cs_spans_normalize(need, img->n_resident);
	int err = 0;
	for (size_t i = 0; i < r->chain.n && n && !err; i++) {
		/* copies from one image are contiguous in cl; sort them by address afterwards */
		err =
		    cs_take_from_image(r->chain.imgs[i].img, image_fd_base + (int)i, &need, &n, cl);
	}
	if (!err && n && !partial) {
		cs_err("refusing: the chain of generation %llu is damaged: live page %#llx has its "
		       "data "
		       "in no image of the chain (%s and its ancestors)",
		       (unsigned long long)img->header.generation,
		       (unsigned long long)need[0].start, r->chain.imgs[0].path);
		err = -EBADMSG;
	}
	free(need);
	if (!err)
		qsort(cl->v, cl->n, sizeof(*cl->v), cs_cmp_copy);
	return err;
}

int cs_plan_resolve_pages(const struct cs_restore *r, int image_fd_base, struct cs_plan_copy **ret,
                          size_t *ret_n)
{
	return cs_plan_resolve_some(r, image_fd_base, 0, ret, ret_n);
}

int cs_plan_resolve_some(const struct cs_restore *r, int image_fd_base, int partial,
                         struct cs_plan_copy **ret, size_t *ret_n)
{
	struct copy_list cl = {0};
	int err = plan_copies(r, image_fd_base, partial, &cl);
	if (err) {
		free(cl.v);
		return err;
	}
	*ret = cl.v;
	*ret_n = cl.n;
	return 0;
}

static int cmp_map(const void *a, const void *b)
{
	const struct cs_plan_map *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

static const uint32_t special_flag[CS_PLAN_SPECIALS] = {CS_MAP_VVAR, CS_MAP_VVAR_VCLOCK,
                                                        CS_MAP_VDSO};

/* One saved mapping: a plan map, a vDSO target, or nothing (vsyscall). */
int cs_plan_mapping(const struct cs_restore *r, const struct cs_image_mapping *m,
                    struct cs_plan_header *h, struct cs_plan_map *out, int file_fd_base)
{
	for (int k = 0; k < CS_PLAN_SPECIALS; k++)
		if (m->flags & special_flag[k]) {
			h->specials[k].target = m->start;
			return 0;
		}
	if (m->flags & CS_MAP_VSYSCALL)
		return 0;
	memset(out, 0, sizeof(*out));
	out->start = m->start;
	out->len = m->end - m->start;
	out->prot = m->prot;
	out->advice = m->madvise;
	out->mmap_flags = (m->flags & CS_MAP_SHARED) ? MAP_SHARED : MAP_PRIVATE;
	if (m->flags & (CS_MAP_GROWSDOWN | CS_MAP_STACK))
		out->mmap_flags |= MAP_GROWSDOWN;
	if (!m->prot)
		out->mmap_flags |= MAP_NORESERVE;
	out->fd = -1;
	if (m->flags & CS_MAP_SHMEM) {
		int i = cs_restore_shmem_fd(r, m);
		if (i < 0)
			return -EINVAL;
		out->kind = CS_PLAN_MAP_SHMEM; /* its pages are loaded through it */
		out->fd = file_fd_base + i;
		out->pgoff = m->pgoff;
		return 1;
	}
	if (cs_mapping_is_file(m)) {
		int i = cs_restore_file_fd(r, m->path);
		if (i < 0)
			return -EINVAL;
		out->kind = CS_PLAN_MAP_FILE;
		out->fd = file_fd_base + i;
		out->pgoff = m->pgoff;
	}
	return 1;
}

/* Marks the maps that receive pages; refuses copies outside created maps. */
int cs_mark_maps(struct cs_plan_map *maps, size_t n, const struct copy_list *cl)
{
	size_t k = 0;
	for (size_t i = 0; i < cl->n; i++) {
		uint64_t cur = cl->v[i].addr, end = cur + cl->v[i].len;
		while (k < n && maps[k].start + maps[k].len <= cur)
			k++;
		for (size_t j = k; cur < end; j++) {
			if (j >= n || maps[j].start > cur ||
			    (maps[j].kind == CS_PLAN_MAP_FILE &&
			     (maps[j].mmap_flags & MAP_SHARED))) {
				cs_err("refusing: the image has page data at %#llx, outside any "
				       "mapping "
				       "it can restore (damaged image?)",
				       (unsigned long long)cur);
				return -EBADMSG;
			}
			maps[j].has_pages = 1;
			cur = maps[j].start + maps[j].len;
		}
	}
	return 0;
}

static void plan_process(const struct cs_restore *r, struct cs_plan_header *h)
{
	const struct cs_image_process *p = &r->img->process;
	h->start_code = p->start_code, h->end_code = p->end_code;
	h->start_data = p->start_data, h->end_data = p->end_data;
	h->start_brk = p->start_brk, h->brk = p->brk, h->start_stack = p->start_stack;
	h->arg_start = p->arg_start, h->arg_end = p->arg_end;
	h->env_start = p->env_start, h->env_end = p->env_end;
	h->auxv_len = p->auxv_len <= CS_PLAN_AUXV_MAX ? p->auxv_len : 0;
	memcpy(h->auxv, p->auxv, h->auxv_len);
	for (int i = 0; i < CS_IMAGE_RLIMITS && i < CS_PLAN_RLIMITS && i < RLIM_NLIMITS; i++) {
		if (!p->rlimits[i].cur && !p->rlimits[i].max)
			continue; /* not captured */
		h->rlimits[h->n_rlimits++] = (struct cs_plan_rlimit){
		    .resource = (uint32_t)i, .cur = p->rlimits[i].cur, .max = p->rlimits[i].max};
	}
	memcpy(h->comm, p->comm, sizeof(h->comm));
	h->comm[15] = 0;
	h->block_addr = p->agent_addr[CS_AGENT_BLOCK];
	h->trampoline = p->agent_addr[CS_AGENT_TRAMPOLINE];
	h->trampoline_last = p->agent_addr[CS_AGENT_TRAMPOLINE_LAST];
	h->restored_from_generation = r->img->header.generation;
	h->next_generation = r->next_generation;
	h->away_ns = r->away_ns;
	/* r->dir is realpath's answer: absolute, and it fits (PATH_MAX). */
	snprintf(h->dir, sizeof(h->dir), "%s", r->dir);
	cs_plan_creds(r, &h->creds);
}

static int plan_threads(const struct cs_restore *r, struct cs_plan_thread *t)
{
	int mains = 0;
	for (size_t i = 0; i < r->img->n_threads; i++) {
		const struct cs_image_thread *s = &r->img->threads[i];
		t[i] = (struct cs_plan_thread){.tid = s->tid,
		                               .is_main = s->tid == r->img->process.pid,
		                               .ucontext = s->ucontext_addr,
		                               .fs_base = s->fs_base,
		                               .gs_base = s->gs_base,
		                               .clear_child_tid = s->clear_child_tid,
		                               .robust_list = s->robust_list,
		                               .robust_len = s->robust_list_len,
		                               .rseq_addr = s->rseq_addr,
		                               .rseq_len = s->rseq_len,
		                               .rseq_sig = s->rseq_sig};
		mains += t[i].is_main;
		/* Every glibc or Go thread has a TLS base: fs 0 means the agent did
		 * not finish recording this thread, and resuming it would fault on
		 * its first %fs access. */
		if (!s->fs_base) {
			cs_err(
			    "refusing: thread %d of generation %llu was captured without its TLS "
			    "base (fs 0): the image is incomplete; restore an older generation "
			    "with --generation",
			    s->tid, (unsigned long long)r->img->header.generation);
			return -EINVAL;
		}
	}
	if (mains != 1) {
		cs_err("refusing: the image has no thread whose tid is the process id %d (the main "
		       "thread exited?)",
		       r->img->process.pid);
		return -EINVAL;
	}
	return 0;
}

int cs_buf_add(struct plan_buf *b, const void *data, size_t len, uint64_t *ret_off)
{
	size_t at = (b->len + 15) & ~(size_t)15;
	if (at + len > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap < at + len)
			cap *= 2;
		uint8_t *nd = realloc(b->data, cap);
		if (!nd)
			return -ENOMEM;
		memset(nd + b->cap, 0, cap - b->cap);
		b->data = nd;
		b->cap = cap;
	}
	if (len)
		memcpy(b->data + at, data, len);
	b->len = at + len;
	if (ret_off)
		*ret_off = at;
	return 0;
}

static int image_has_thread(const struct cs_image *img, int32_t tid)
{
	for (size_t i = 0; i < img->n_threads; i++)
		if (img->threads[i].tid == tid)
			return 1;
	return 0;
}

/* Timers in the image's order: interval timers, then POSIX timers by id. */
static int plan_timers(const struct cs_image *img, struct plan_buf *b, struct cs_plan_header *h)
{
	struct cs_plan_timer *t = calloc(img->n_timers + 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < img->n_timers; i++) {
		const struct cs_image_timer *s = &img->timers[i];
		if (s->notify == CS_TIMER_NOTIFY_THREAD_ID &&
		    !image_has_thread(img, s->notify_tid)) {
			cs_err(
			    "refusing: POSIX timer %d signals thread %d, which the image does not "
			    "hold",
			    s->id, s->notify_tid);
			free(t);
			return -EINVAL;
		}
		t[i] = (struct cs_plan_timer){.kind = s->kind,
		                              .id = s->id,
		                              .clockid = s->clockid,
		                              .notify = s->notify,
		                              .signo = s->signo,
		                              .notify_tid = s->notify_tid,
		                              .sigval = s->sigval,
		                              .value_ns = s->value_ns,
		                              .interval_ns = s->interval_ns};
	}
	h->n_timers = (uint32_t)img->n_timers;
	int err = cs_buf_add(b, t, img->n_timers * sizeof(*t), &h->timers_off);
	free(t);
	return err;
}

/* Pending signals as the image has them; each is queued again by the
 * thread that held it (the process's by the main thread), which the
 * kernel lets queue any siginfo to itself: an image can give the program
 * no signal it could not have sent itself. */
static int plan_sigqueue(const struct cs_image *img, struct plan_buf *b, struct cs_plan_header *h)
{
	struct cs_plan_siginfo *q = calloc(img->n_sigqueue + 1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	for (size_t i = 0; i < img->n_sigqueue; i++) {
		const struct cs_image_sigqueued *s = &img->sigqueue[i];
		if (s->tid && !image_has_thread(img, s->tid)) {
			cs_err("refusing: signal %u is pending on thread %d, which the image does "
			       "not hold",
			       s->signo, s->tid);
			free(q);
			return -EINVAL;
		}
		q[i].tid = s->tid;
		q[i].signo = s->signo;
		memcpy(q[i].info, s->info, sizeof(q[i].info));
	}
	h->n_sigq = (uint32_t)img->n_sigqueue;
	int err = cs_buf_add(b, q, img->n_sigqueue * sizeof(*q), &h->sigq_off);
	free(q);
	return err;
}

/* Seccomp filters; their programs follow the records in the plan. */
static int plan_seccomp(const struct cs_image *img, struct plan_buf *b, struct cs_plan_header *h)
{
	struct cs_plan_seccomp *f = calloc(img->n_seccomp + 1, sizeof(*f));
	int err = f ? 0 : -ENOMEM;
	for (size_t i = 0; !err && i < img->n_seccomp; i++) {
		const struct cs_image_seccomp *s = &img->seccomp[i];
		if (!image_has_thread(img, s->tid)) {
			cs_err("refusing: a seccomp filter of thread %d, which the image does not "
			       "hold",
			       s->tid);
			err = -EINVAL;
			break;
		}
		f[i] = (struct cs_plan_seccomp){.tid = s->tid, .flags = s->flags, .len = s->len};
		err = cs_buf_add(b, s->prog, s->len, &f[i].prog_off);
	}
	h->n_seccomp = (uint32_t)img->n_seccomp;
	if (!err)
		err = cs_buf_add(b, f, img->n_seccomp * sizeof(*f), &h->seccomp_off);
	free(f);
	return err;
}

int cs_restore_helper_count(const struct cs_restore *r)
{
	/* status, plan, images, files; the exe fd comes right after */
	return 2 + (int)r->chain.n + (int)r->n_files;
}

static int plan_maps(const struct cs_restore *r, struct cs_plan_header *h, struct cs_plan_map **ret,
                     size_t *ret_n)
{
	const struct cs_image *img = r->img;
	struct cs_plan_map *maps = calloc(img->n_mappings + 1, sizeof(*maps));
	size_t n = 0;
	if (!maps)
		return -ENOMEM;
	int file_base = r->helper_base + 2 + (int)r->chain.n;
	for (size_t i = 0; i < img->n_mappings; i++) {
		int k = cs_plan_mapping(r, &img->mappings[i], h, &maps[n], file_base);
		if (k < 0) {
			free(maps);
			return k;
		}
		n += (size_t)k;
	}
	qsort(maps, n, sizeof(*maps), cmp_map);
	*ret = maps;
	*ret_n = n;
	return 0;
}

static int write_plan(int fd, const struct plan_buf *b)
{
	size_t done = 0;
	while (done < b->len) {
		ssize_t w = pwrite(fd, b->data + done, b->len - done, (off_t)done);
		if (w <= 0)
			return -errno;
		done += (size_t)w;
	}
	return 0;
}

/* POSIX record locks, which the promoted process takes itself. */
static int plan_locks(const struct cs_image *img, struct plan_buf *b, struct cs_plan_header *h)
{
	size_t n = 0;
	for (size_t i = 0; i < img->n_fds; i++)
		n += img->fds[i].n_locks;
	struct cs_plan_lock *l = calloc(n + 1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < img->n_fds; i++)
		for (uint32_t k = 0; img->fds[i].fd > 2 && k < img->fds[i].n_locks; k++) {
			const struct cs_image_lock *s = &img->fds[i].locks[k];
			if (s->kind != CS_LOCK_POSIX)
				continue;
			l[n++] = (struct cs_plan_lock){
			    .fd = img->fds[i].fd,
			    .type = s->mode == CS_LOCK_WRITE ? F_WRLCK : F_RDLCK,
			    .whence = SEEK_SET,
			    .start = (int64_t)s->start,
			    .len = s->end == CS_LOCK_EOF ? 0 : (int64_t)(s->end - s->start + 1)};
		}
	h->n_locks = (uint32_t)n;
	int err = cs_buf_add(b, l, n * sizeof(*l), &h->locks_off);
	free(l);
	return err;
}

/* PROMOTE: the program's fds to take from the donor, and what else of the
 * process the tool's child sets before the exec of a cold restore. */
static int plan_promote(const struct cs_restore *r, struct plan_buf *b, struct cs_plan_header *h)
{
	const struct cs_image *img = r->img;
	int32_t *take = calloc(img->n_fds + 1, sizeof(*take));
	if (!take)
		return -ENOMEM;
	for (size_t i = 0; i < img->n_fds; i++)
		if (img->fds[i].fd > 2 && img->fds[i].type != CS_FD_AGENT)
			take[h->n_take++] = img->fds[i].fd;
	int err = cs_buf_add(b, take, h->n_take * sizeof(*take), &h->take_off);
	free(take);
	if (!err)
		err = plan_locks(img, b, h);
	h->helper_lo = r->step->helper_lo;
	h->helper_hi = h->helper_lo + 1;
	h->exe_fd = h->helper_lo + 2;
	h->donor_timens = r->step->donor_timens;
	h->donor_pidfd = (int32_t)r->step->n_fds_sent - 1;
	h->umask = img->process.umask;
	h->personality = img->process.personality;
	snprintf(h->cwd, sizeof(h->cwd), "%s", img->process.cwd);
	return err;
}

static int plan_standby(const struct cs_restore *r, struct plan_buf *b, struct cs_plan_header *h)
{
	h->mode = r->step->mode;
	h->generation = r->img->header.generation;
	h->n_fds_sent = r->step->n_fds_sent;
	if (h->mode == CS_PLAN_STANDBY)
		h->control_fd = h->exe_fd + 1;
	return h->mode == CS_PLAN_PROMOTE ? plan_promote(r, b, h) : 0;
}

/* The mappings the agent tracks, for the restorer to arm (track.c there). */
static int plan_track(const struct cs_image *img, struct plan_buf *b, struct cs_plan_header *h)
{
	struct cs_plan_track *t = calloc(img->n_mappings + 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < img->n_mappings; i++) {
		const struct cs_image_mapping *m = &img->mappings[i];
		if ((m->flags & CS_MAP_TRACKED) && !(m->flags & CS_MAP_VSYSCALL))
			t[h->n_track++] =
			    (struct cs_plan_track){.start = m->start,
			                           .len = m->end - m->start,
			                           .file = !!(m->flags & CS_MAP_FILE)};
	}
	int err = cs_buf_add(b, t, h->n_track * sizeof(*t), &h->track_off);
	free(t);
	return err;
}

int cs_plan_build(struct cs_restore *r)
{
	struct cs_plan_header h = {.magic = CS_PLAN_MAGIC, .version = CS_PLAN_VERSION};
	struct copy_list cl = {0};
	struct cs_plan_map *maps = NULL;
	struct cs_plan_thread *threads = calloc(r->img->n_threads + 1, sizeof(*threads));
	struct plan_buf b = {0};
	size_t n_maps = 0;
	struct cs_special_now now;
	int err = threads ? 0 : -ENOMEM;
	int stepping = r->step && r->step->mode != CS_PLAN_STANDBY;
	if (!err && !stepping)
		err = plan_maps(r, &h, &maps, &n_maps);
	if (!err && !stepping)
		err = plan_copies(r, r->helper_base + 2, 0, &cl);
	if (!err && !stepping)
		err = cs_mark_maps(maps, n_maps, &cl);
	if (!err)
		err = plan_threads(r, threads);
	if (!err)
		err = cs_specials_now(&now);
	if (err)
		goto out;
	for (int k = 0; k < CS_PLAN_SPECIALS; k++) {
		h.specials[k].len = now.len[k];
		h.specials[k].rel = (int64_t)(now.start[k] - now.start[CS_PLAN_VDSO]);
	}
	plan_process(r, &h);
	h.status_fd = r->helper_base;
	h.helper_lo = r->helper_base;
	h.helper_hi = r->helper_base + cs_restore_helper_count(r) - 1;
	h.exe_fd = h.helper_hi + 1;
	h.n_maps = (uint32_t)n_maps;
	h.n_copies = (uint32_t)cl.n;
	h.n_threads = (uint32_t)r->img->n_threads;
	h.n_sigactions = (uint32_t)r->img->n_sigactions;
	h.dumpable = 1; /* what the exec left */
	if (r->img->has_attrs) {
		h.child_subreaper = r->img->attrs.child_subreaper;
		h.thp_disable = r->img->attrs.thp_disable;
		h.dumpable = r->img->attrs.dumpable;
		h.membarrier = r->img->attrs.membarrier;
	}
	err = cs_buf_add(&b, &h, sizeof(h), NULL);
	if (!err && stepping)
		err = cs_plan_step_memory(r, &h, &b);
	if (!err && !stepping)
		err = cs_buf_add(&b, maps, n_maps * sizeof(*maps), &h.maps_off);
	if (!err && !stepping)
		err = cs_buf_add(&b, cl.v, cl.n * sizeof(*cl.v), &h.copies_off);
	if (!err)
		err = cs_buf_add(&b, threads, h.n_threads * sizeof(*threads), &h.threads_off);
	struct cs_plan_sigaction *sa = calloc(h.n_sigactions + 1, sizeof(*sa));
	for (size_t i = 0; sa && i < h.n_sigactions; i++) {
		const struct cs_image_sigaction *s = &r->img->sigactions[i];
		sa[i] = (struct cs_plan_sigaction){.signo = s->signo,
		                                   .handler = s->handler,
		                                   .flags = s->flags,
		                                   .restorer = s->restorer,
		                                   .mask = s->mask};
	}
	if (!err)
		err = sa ? cs_buf_add(&b, sa, h.n_sigactions * sizeof(*sa), &h.sigactions_off)
		         : -ENOMEM;
	free(sa);
	int32_t *cx = calloc(r->img->n_fds + 1, sizeof(*cx));
	for (size_t i = 0; cx && i < r->img->n_fds; i++) {
		const struct cs_image_fd *f = &r->img->fds[i];
		if (f->fd > 2 && f->type != CS_FD_AGENT && (f->fd_flags & FD_CLOEXEC))
			cx[h.n_cloexec++] = f->fd;
	}
	if (!err)
		err = cx ? cs_buf_add(&b, cx, h.n_cloexec * sizeof(*cx), &h.cloexec_off) : -ENOMEM;
	free(cx);
	if (!err)
		err = plan_timers(r->img, &b, &h);
	if (!err)
		err = plan_sigqueue(r->img, &b, &h);
	if (!err)
		err = plan_seccomp(r->img, &b, &h);
	if (!err)
		err = plan_track(r->img, &b, &h);
	if (!err && r->step)
		err = plan_standby(r, &b, &h);
	if (err)
		goto out;
	h.total_len = b.len;
	memcpy(b.data, &h, sizeof(h));
	err = write_plan(r->plan_fd, &b);
out:
	if (err == -ENOMEM)
		cs_err("out of memory while planning the restore");
	free(b.data);
	free(cl.v);
	free(maps);
	free(threads);
	return err;
}
