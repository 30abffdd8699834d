/*
 * The writer child: a copy-on-write snapshot of the process made by a raw
 * clone during the freeze. It owns its memory (so it may mmap freely) but
 * must not take locks or call malloc: the parent's other threads may have
 * held them at the instant of the clone. It writes DIR/gen-N.img.tmp,
 * fsyncs it, renames it to gen-N.img and fsyncs DIR, then reports through a
 * MAP_SHARED page. A writer that dies leaves only a .tmp behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "dump.h"

/*
 * O_DIRECT for whole pages from a page-aligned buffer at a page-aligned file
 * offset: the device reads them from our memory, and the page cache takes no
 * copy. Copying a delta into fresh page-cache pages cost the program's core
 * more than anything else the agent does (3-6 us a page on a VM that gives
 * freed memory back to its host, against 0.24 us for O_DIRECT). Direct
 * pieces start and end on block boundaries and buffered ones never cover
 * their blocks, so the two never share a page of the file. A file system
 * that refuses O_DIRECT (EINVAL) gets buffered writes from then on.
 */
static int direct_ok(const struct out *o, const void *buf, size_t len)
{
	return !o->no_direct && !((uintptr_t)buf % CS_PAGE) && len && !(len % CS_PAGE) &&
	       !(o->pos % CS_PAGE);
}

static int set_direct(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT) < 0)
		return -errno;
	return 0;
}

static int write_piece(struct out *o, const uint8_t *p, size_t len)
{
	int direct = direct_ok(o, p, len), r = 0;
	if (direct && set_direct(o->fd, 1))
		direct = 0, o->no_direct = 1;
	while (len) {
		ssize_t w = write(o->fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EINVAL && direct) {
			o->no_direct = 1;
			direct = set_direct(o->fd, 0) ? -1 : 0;
			if (direct)
				return -EINVAL; /* stuck in O_DIRECT: nothing more can be written */
			continue;
		}
		if (w <= 0) {
			r = w < 0 ? -errno : -EIO;
			break;
		}
		p += w;
		len -= (size_t)w;
		o->pos += (uint64_t)w;
		if (direct)
			o->direct += (uint64_t)w;
		if (direct && (w % CS_PAGE) && !set_direct(o->fd, 0))
			direct = 0; /* a short write left the rest unaligned */
	}
	if (direct && set_direct(o->fd, 0) && !r)
		r = -EIO;
	return r;
}

static int flush_out(struct out *o)
{
	int r = write_piece(o, o->buf, o->len);
	if (!r)
		o->len = 0;
	return r;
}

static int out_write(void *ctx, const void *buf, size_t len)
{
	struct out *o = ctx;
	if (o->len + len <= OUT_BUF) {
		memcpy(o->buf + o->len, buf, len);
		o->len += len;
		return 0;
	}
	int r = flush_out(o);
	if (r)
		return r;
	if (len < OUT_DIRECT) {
		memcpy(o->buf, buf, len);
		o->len = len;
		return 0;
	}
	/* Large pieces (page runs, a copy-mode payload) go straight to the
	 * file: copying them into the buffer first costs more than the extra
	 * write(2). */
	return write_piece(o, buf, len);
}

/* "<what>: gen-N.img.tmp: <reason>". strerrordesc_np, not strerror: it
 * reads a constant table, with no locale and no lock (this is the writer
 * child of a process whose locks another thread may hold). */
static int dfail(struct dump *d, int r, const char *what)
{
	const char *reason = r < 0 ? strerrordesc_np(-r) : NULL;
	if (d->msg[0])
		return r;
	cs_set_err(d->msg, what, ": ", d->tmp_name);
	if (reason) {
		cs_strlcat(d->msg, ": ", CS_ERR_MAX);
		cs_strlcat(d->msg, reason, CS_ERR_MAX);
	}
	return r;
}

static int meta_section(struct dump *d, uint32_t type)
{
	return cs_image_write_section(&d->w, type, &d->meta);
}

static int put_header(struct dump *d)
{
	struct cs_image_header h;
	d->meta.len = 0;
	int r = cs_fill_header(d->a, d->c, &h);
	if (!r)
		r = cs_image_put_header(&d->meta, &h);
	return r ? r : meta_section(d, CS_SECT_HEADER);
}

static int put_process(struct dump *d)
{
	struct cs_image_process *p = (void *)(d->meta.data + META_CAP / 2);
	d->meta.len = 0;
	memset(p, 0, sizeof(*p));
	int r = cs_fill_process(d->a, p);
	if (!r)
		r = cs_image_put_process(&d->meta, p);
	return r ? r : meta_section(d, CS_SECT_PROCESS);
}

static int put_threads(struct dump *d)
{
	size_t pos;
	uint32_t n = 0;
	d->meta.len = 0;
	int r = cs_image_put_count(&d->meta, &pos);
	for (uint32_t i = 0; !r && i < d->c->n_threads && i < CS_MAX_THREADS; i++) {
		const struct cs_thread_rec *t = &d->c->threads[i];
		struct cs_image_thread it = {.tid = t->tid,
		                             .flags = t->flags,
		                             .ucontext_addr = t->ucontext,
		                             .fs_base = t->fs_base,
		                             .gs_base = t->gs_base,
		                             .clear_child_tid = t->clear_child_tid,
		                             .robust_list = t->robust_list,
		                             .robust_list_len = t->robust_len,
		                             .rseq_addr = t->rseq_addr,
		                             .rseq_len = t->rseq_len,
		                             .rseq_sig = t->rseq_sig};
		r = cs_image_put_thread(&d->meta, &it);
		n++;
	}
	if (r)
		return r;
	cs_image_set_count(&d->meta, pos, n);
	return meta_section(d, CS_SECT_THREADS);
}

static int put_fds(struct dump *d)
{
	size_t pos;
	d->meta.len = 0;
	int r = cs_image_put_count(&d->meta, &pos);
	for (uint32_t i = 0; !r && i < d->c->n_fds; i++)
		r = cs_image_put_fd(&d->meta, &d->c->fds[i]);
	if (r)
		return r;
	cs_image_set_count(&d->meta, pos, d->c->n_fds);
	return meta_section(d, CS_SECT_FDS);
}

static int put_timers(struct dump *d)
{
	size_t pos;
	d->meta.len = 0;
	int r = cs_image_put_count(&d->meta, &pos);
	for (uint32_t i = 0; !r && i < d->c->n_timers; i++)
		r = cs_image_put_timer(&d->meta, &d->c->timers[i]);
	if (r)
		return r;
	cs_image_set_count(&d->meta, pos, d->c->n_timers);
	return meta_section(d, CS_SECT_TIMERS);
}

static int put_attrs(struct dump *d)
{
	d->meta.len = 0;
	int r = cs_image_put_attrs(&d->meta, &d->c->attrs);
	return r ? r : meta_section(d, CS_SECT_ATTRS);
}

/* SIGQUEUE, only when a signal is pending: an image without it has none. */
static int put_sigqueue(struct dump *d)
{
	size_t pos;
	if (!d->c->n_sigq)
		return 0;
	d->meta.len = 0;
	int r = cs_image_put_count(&d->meta, &pos);
	for (uint32_t i = 0; !r && i < d->c->n_sigq; i++)
		r = cs_image_put_sigqueued(&d->meta, &d->c->sigq[i]);
	if (r)
		return r;
	cs_image_set_count(&d->meta, pos, d->c->n_sigq);
	return meta_section(d, CS_SECT_SIGQUEUE);
}

/* SECCOMP, only when a thread has filters. */
static int put_seccomp(struct dump *d)
{
	size_t pos;
	if (!d->c->n_filters)
		return 0;
	d->meta.len = 0;
	int r = cs_image_put_count(&d->meta, &pos);
	for (uint32_t i = 0; !r && i < d->c->n_filters; i++)
		r = cs_image_put_seccomp(&d->meta, &d->c->filters[i]);
	if (r)
		return r;
	cs_image_set_count(&d->meta, pos, d->c->n_filters);
	return meta_section(d, CS_SECT_SECCOMP);
}

/* The kernel's sigaction layout, which carries sa_restorer. */
struct ksigaction {
	uint64_t handler, flags, restorer, mask;
};

static int put_signals(struct dump *d)
{
	size_t pos;
	uint32_t n = 0;
	d->meta.len = 0;
	int r = cs_image_put_count(&d->meta, &pos);
	for (uint32_t sig = 1; !r && sig <= CS_IMAGE_SIGNALS; sig++) {
		struct ksigaction k;
		if (syscall(SYS_rt_sigaction, sig, NULL, &k, 8))
			continue;
		struct cs_image_sigaction s = {.signo = sig,
		                               .handler = k.handler,
		                               .flags = k.flags,
		                               .restorer = k.restorer,
		                               .mask = k.mask};
		r = cs_image_put_sigaction(&d->meta, &s);
		n++;
	}
	if (r)
		return r;
	cs_image_set_count(&d->meta, pos, n);
	return meta_section(d, CS_SECT_SIGNALS);
}

static int put_creds(struct dump *d)
{
	d->meta.len = 0;
	int r = cs_image_put_creds(&d->meta, &d->c->creds);
	return r ? r : meta_section(d, CS_SECT_CREDS);
}

static int put_unsupported(struct dump *d)
{
	size_t pos;
	uint32_t n = 0;
	d->meta.len = 0;
	int r = cs_image_put_count(&d->meta, &pos);
	const char *p = d->c->unsup, *end = d->c->unsup + d->c->unsup_len;
	while (!r && p && p < end) {
		struct cs_image_unsupported u;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len >= sizeof(u.what))
			len = sizeof(u.what) - 1;
		memcpy(u.what, p, len);
		u.what[len] = 0;
		r = cs_image_put_unsupported(&d->meta, &u);
		n++;
		p = nl ? nl + 1 : end;
	}
	if (r)
		return r;
	cs_image_set_count(&d->meta, pos, n);
	return meta_section(d, CS_SECT_UNSUPPORTED);
}

static int put_resident(struct dump *d)
{
	size_t pos;
	uint32_t n = 0;
	d->meta.len = 0;
	int r = cs_image_put_count(&d->meta, &pos);
	for (size_t i = 0; !r && i < d->resident.n; i++) {
		uint64_t addr = d->resident.r[i].addr, left = d->resident.r[i].npages;
		while (!r && left) {
			uint32_t k = left > (1u << 30) ? (1u << 30) : (uint32_t)left;
			struct cs_image_run run = {.addr = addr, .npages = k};
			r = cs_image_put_run(&d->meta, &run);
			addr += (uint64_t)k * CS_PAGE;
			left -= k;
			n++;
		}
	}
	if (r)
		return r;
	cs_image_set_count(&d->meta, pos, n);
	return meta_section(d, CS_SECT_RESIDENT);
}

/*
 * Page bytes go through a bounce buffer: the CRC and the file must see the
 * same bytes even if one of these pages is written while we copy it (the
 * writer's errno lives in the agent thread's TLS, a tracked page).
 */
static int write_bounced(struct dump *d, uint64_t addr, uint32_t npages)
{
	while (npages) {
		uint32_t k = npages > BOUNCE_PAGES ? BOUNCE_PAGES : npages;
		cs_shmem_copy(d->c, d->bounce, addr, k);
		int r = cs_image_section_write(&d->w, d->bounce, (size_t)k * CS_PAGE);
		if (r)
			return r;
		addr += (uint64_t)k * CS_PAGE;
		npages -= k;
	}
	return 0;
}

/* Run heads of the send list: a run longer than a head counts is split. */
static uint32_t count_heads(const struct cs_runs *send, uint64_t *pages)
{
	uint64_t heads = 0;
	*pages = 0;
	for (size_t i = 0; i < send->n; i++) {
		heads += (send->r[i].npages + CS_RUN_MAX_PAGES - 1) / CS_RUN_MAX_PAGES;
		*pages += send->r[i].npages;
	}
	return (uint32_t)heads;
}

/* PAGES_ALIGNED's head: count, data_off, the run heads, zero padding. */
static int put_run_heads(struct dump *d, uint32_t count, uint32_t data_off)
{
	static const uint8_t zeros[CS_PAGE];
	uint8_t head[CS_IMAGE_PAGE_RUN_HEAD];
	struct cs_buf hb = {.data = head, .cap = sizeof(head)};
	int r = cs_image_put_aligned_pages_head(&hb, count, data_off);
	if (!r)
		r = cs_image_section_write(&d->w, head, hb.len);
	for (size_t i = 0; !r && i < d->send.n; i++) {
		uint64_t addr = d->send.r[i].addr, left = d->send.r[i].npages;
		while (!r && left) {
			uint32_t k = left > CS_RUN_MAX_PAGES ? CS_RUN_MAX_PAGES : (uint32_t)left;
			hb.len = 0;
			r = cs_image_put_page_run_head(&hb, addr, k);
			if (!r)
				r = cs_image_section_write(&d->w, head, hb.len);
			addr += (uint64_t)k * CS_PAGE;
			left -= k;
		}
	}
	uint64_t heads_end = 8 + (uint64_t)count * CS_IMAGE_PAGE_RUN_HEAD;
	return r ? r : cs_image_section_write(&d->w, zeros, data_off - heads_end);
}

/* PAGES_ALIGNED: one section, its page bytes from a 4096-byte boundary of
 * the file (out_write then hands them to O_DIRECT). A copy-mode writer has
 * them in the copy the agent made during the freeze; otherwise each run's
 * bytes are read from the snapshot (this copy-on-write child's memory). */
static int put_pages(struct dump *d, uint64_t *pages)
{
	uint32_t count = count_heads(&d->send, pages);
	uint32_t data_off = cs_image_aligned_data_off(d->w.offset, count);
	int r = cs_image_section_begin(&d->w, CS_SECT_PAGES_ALIGNED, data_off + *pages * CS_PAGE);
	if (!r)
		r = put_run_heads(d, count, data_off);
	if (!r && d->c->copy_mode) {
		if (d->c->copy_len != *pages * CS_PAGE)
			return -EIO;
		r = cs_image_section_write_summed(&d->w, d->c->copy, d->c->copy_len,
		                                  d->c->copy_crc);
		return r ? r : cs_image_section_end(&d->w);
	}
	for (size_t i = 0; !r && i < d->send.n; i++)
		for (uint64_t addr = d->send.r[i].addr, left = d->send.r[i].npages; !r && left;) {
			uint32_t k = left > CS_RUN_MAX_PAGES ? CS_RUN_MAX_PAGES : (uint32_t)left;
			r = write_bounced(d, addr, k);
			addr += (uint64_t)k * CS_PAGE;
			left -= k;
		}
	return r ? r : cs_image_section_end(&d->w);
}

/* Live pages may sit in memory the program made unreadable (PROT_NONE
 * after writing, guard schemes of GCs). The writer reads its own copy of
 * the address space, so it may open those mappings up for reading. */
static void make_readable(struct dump *d)
{
	const struct cs_maps *m = &d->c->maps;
	if (d->c->copy_mode)
		return;
	for (size_t i = 0; i < m->n; i++)
		if ((m->v[i].flags & CS_MAP_TRACKED) && !(m->v[i].prot & PROT_READ) &&
		    !(m->v[i].flags & CS_MAP_VSYSCALL))
			mprotect((void *)m->v[i].start, m->v[i].end - m->v[i].start,
			         m->v[i].prot | PROT_READ);
}

static int write_image(struct dump *d)
{
	int r;
	uint64_t pages = 0;
	if ((r = put_header(d)))
		return dfail(d, r, "writing HEADER failed");
	if ((r = put_process(d)))
		return dfail(d, r, "writing PROCESS failed");
	if ((r = cs_dump_mappings(d)))
		return dfail(d, r, "writing MAPPINGS failed");
	if ((r = put_threads(d)))
		return dfail(d, r, "writing THREADS failed");
	if ((r = put_fds(d)))
		return dfail(d, r, "writing FDS failed");
	if ((r = put_signals(d)))
		return dfail(d, r, "writing SIGNALS failed");
	if ((r = put_creds(d)))
		return dfail(d, r, "writing CREDS failed");
	if ((r = put_timers(d)))
		return dfail(d, r, "writing TIMERS failed");
	if ((r = put_attrs(d)))
		return dfail(d, r, "writing ATTRS failed");
	if ((r = put_sigqueue(d)))
		return dfail(d, r, "writing SIGQUEUE failed");
	if ((r = put_seccomp(d)))
		return dfail(d, r, "writing SECCOMP failed");
	make_readable(d);
	if ((r = cs_dump_select_pages(d)))
		return dfail(d, r, "scanning resident pages failed");
	if ((r = put_resident(d)))
		return dfail(d, r, "writing RESIDENT failed");
	if ((r = put_pages(d, &pages)))
		return dfail(d, r, "writing PAGES failed");
	if ((r = put_unsupported(d)))
		return dfail(d, r, "writing UNSUPPORTED failed");
	if ((r = cs_image_write_end(&d->w)) || (r = flush_out(&d->out)))
		return dfail(d, r, "writing END failed");
	d->a->result->pages = pages;
	return 0;
}

static int commit(struct dump *d, const char *tmp, const char *final)
{
	if (fsync(d->out.fd))
		return dfail(d, -errno, "fsync of the image failed");
	if (close(d->out.fd))
		return dfail(d, -errno, "close of the image failed");
	if (renameat(d->c->dir_fd, tmp, d->c->dir_fd, final))
		return dfail(d, -errno, "rename of the image failed");
	if (fsync(d->c->dir_fd))
		return dfail(d, -errno, "fsync of the directory failed");
	return 0;
}

/*
 * Buffers of copy-mode writers. Such a writer shares the agent's memory, so
 * buffers it mapped for itself would be first-touched (a fault of 14 us a
 * page on the VM we measure on) and unmapped (a TLB flush) at every
 * checkpoint; these stay mapped and warm. MADV_DONTFORK keeps a forked
 * writer from copying their page tables: it maps its own.
 */
static struct {
	uint8_t *out, *meta, *bounce;
} kept;

static uint8_t *keep_one(size_t len)
{
	uint8_t *p = cs_scratch_alloc(len, 0);
	if (p)
		syscall(SYS_madvise, p, len, MADV_DONTFORK); /* not the wrapper: ours */
	return p;
}

int cs_dump_keep_buffers(void)
{
	if (!kept.out)
		kept.out = keep_one(OUT_BUF);
	if (!kept.meta)
		kept.meta = keep_one(META_CAP);
	if (!kept.bounce)
		kept.bounce = keep_one(BOUNCE_PAGES * CS_PAGE);
	return kept.out && kept.meta && kept.bounce ? 0 : -ENOMEM;
}

void cs_dump_reset(void)
{
	memset(&kept, 0, sizeof(kept));
}

static void *map_own(size_t len, int flags)
{
	void *p =
	    mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static int get_buffers(struct dump *d)
{
	d->own_buffers = !d->c->copy_mode || !kept.out || !kept.meta || !kept.bounce;
	if (d->own_buffers) {
		d->out.buf = map_own(OUT_BUF, 0);
		d->meta.data = map_own(META_CAP, MAP_NORESERVE);
		d->bounce = map_own(BOUNCE_PAGES * CS_PAGE, 0);
	} else {
		d->out.buf = kept.out;
		d->meta.data = kept.meta;
		d->bounce = kept.bounce;
	}
	return d->out.buf && d->meta.data && d->bounce ? 0 : -ENOMEM;
}

static int dump(struct dump *d)
{
	char final[64], *tmp = d->tmp_name;
	cs_image_filename(final, sizeof(final), d->c->generation);
	cs_strlcpy(tmp, final, sizeof(d->tmp_name));
	cs_strlcat(tmp, ".tmp", sizeof(d->tmp_name));
	if (get_buffers(d))
		return dfail(d, -ENOMEM, "writer out of memory");
	d->meta.cap = META_CAP / 2;
	d->pagemap_fd = -1; /* opened only if pages.c needs our own */
	d->out.no_direct = d->a->cfg.buffered;
	d->out.fd = openat(d->c->dir_fd, tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (d->out.fd < 0)
		return dfail(d, -errno, "creating the image file failed");
	cs_image_writer_init(&d->w, out_write, &d->out);
	int r = write_image(d);
	if (!r)
		r = commit(d, tmp, final);
	if (r)
		unlinkat(d->c->dir_fd, tmp, 0);
	d->a->result->bytes = d->w.offset;
	d->a->result->direct_bytes = d->out.direct;
	d->a->result->hash_entries = d->hash_entries;
	return r;
}

/* A copy-mode writer shares the address space with the application: give
 * back what it mapped. */
static void unmap_all(struct dump *d)
{
	if (d->own_buffers) {
		if (d->out.buf)
			munmap(d->out.buf, OUT_BUF);
		if (d->meta.data)
			munmap(d->meta.data, META_CAP);
		if (d->bounce)
			munmap(d->bounce, BOUNCE_PAGES * CS_PAGE);
	}
	if (d->pagemap_fd > 0)
		close(d->pagemap_fd);
}

int cs_dump_child(struct cs_agent *a, struct cs_capture *c)
{
	/* The writer must not outlive the agent: a restore may already be
	 * using this directory's next generation number. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (syscall(SYS_getppid) != a->pid)
		return -ESRCH;
	/* Our copies of the agent's fds would keep its lock (flock belongs to
	 * the open file description) and its socket alive if the process died
	 * first: a restore must be able to take them over at once. */
	int mine[] = {a->lock_fd, a->listen_fd, a->wake_fd, a->uffd, a->pagemap_fd};
	for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
		if (mine[i] >= 0)
			close(mine[i]);
	for (size_t i = 0; i < sizeof(a->client_fd) / sizeof(a->client_fd[0]); i++)
		if (a->client_fd[i] >= 0)
			close(a->client_fd[i]);
	struct dump d;
	memset(&d, 0, sizeof(d));
	d.resident.plain = 1;
	d.send.plain = 1;
	d.a = a;
	d.c = c;
	d.msg = a->result->msg;
	int r = dump(&d);
	unmap_all(&d);
	a->result->err = r;
	__atomic_store_n(&a->result->done, 1, __ATOMIC_RELEASE);
	return r;
}
