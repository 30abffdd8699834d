/*
 * Record decoders of the checkpoint image (docs/image-format.md). Every
 * read is checked against the bytes left in the section, every count
 * against the bytes its records need before anything is allocated, and
 * every failure names the section, record and field.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "image_int.h"

#define TRY(expr)                                                                                  \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ < 0)                                                                       \
			return rc_;                                                                \
	} while (0)

#define PAGE_MASK ((uint64_t)CS_IMAGE_PAGE_SIZE - 1)

uint32_t cs_img_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t cs_img_le64(const uint8_t *p)
{
	return (uint64_t)cs_img_le32(p) | (uint64_t)cs_img_le32(p + 4) << 32;
}

int cs_rd_fail(struct cs_rd *r, int code, const char *fmt, ...)
{
	struct cs_image_error *e = r->err;
	const char *name = cs_image_section_name(r->section);
	unsigned long long off = r->sect_off;
	size_t n;
	va_list ap;

	e->code = code;
	e->section = r->section;
	e->offset = r->mark;
	if (name)
		n = (size_t)snprintf(e->msg, sizeof(e->msg), "%s section at offset %llu: ", name,
		                     off);
	else if (r->section)
		n = (size_t)snprintf(e->msg, sizeof(e->msg),
		                     "section type %u at offset %llu: ", r->section, off);
	else
		n = (size_t)snprintf(e->msg, sizeof(e->msg), "section at offset %llu: ", off);
	if (r->record >= 0 && n < sizeof(e->msg))
		n += (size_t)snprintf(e->msg + n, sizeof(e->msg) - n, "record %ld: ", r->record);
	if (n < sizeof(e->msg)) {
		va_start(ap, fmt);
		vsnprintf(e->msg + n, sizeof(e->msg) - n, fmt, ap);
		va_end(ap);
	}
	return code == CS_IMG_NO_MEMORY ? -ENOMEM : -EBADMSG;
}

int cs_img_no_memory(struct cs_rd *r)
{
	return cs_rd_fail(r, CS_IMG_NO_MEMORY, "out of memory");
}

/* Marks the field and checks that n bytes of it are present. */
int cs_rd_need(struct cs_rd *r, const char *what, size_t n)
{
	r->mark = r->base + r->pos;
	if (r->len - r->pos < n)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "%s (%zu bytes) runs past the end of the section (%zu left)",
		                  what, n, r->len - r->pos);
	return 0;
}

int cs_rd_u32(struct cs_rd *r, const char *what, uint32_t *v)
{
	TRY(cs_rd_need(r, what, 4));
	*v = cs_img_le32(r->p + r->pos);
	r->pos += 4;
	return 0;
}

int cs_rd_u64(struct cs_rd *r, const char *what, uint64_t *v)
{
	TRY(cs_rd_need(r, what, 8));
	*v = cs_img_le64(r->p + r->pos);
	r->pos += 8;
	return 0;
}

int cs_rd_i32(struct cs_rd *r, const char *what, int32_t *v)
{
	uint32_t u;

	TRY(cs_rd_u32(r, what, &u));
	*v = (int32_t)u;
	return 0;
}

int cs_rd_i64(struct cs_rd *r, const char *what, int64_t *v)
{
	uint64_t u;

	TRY(cs_rd_u64(r, what, &u));
	*v = (int64_t)u;
	return 0;
}

/* The u32 length of a variable part, checked against max and the bytes left. */
static int rd_len(struct cs_rd *r, const char *what, size_t max, uint32_t *ret)
{
	uint32_t n = 0;

	TRY(cs_rd_u32(r, what, &n));
	if (n > max)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "%s length %u exceeds %zu", what, n, max);
	if (n > r->len - r->pos)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "%s (%u bytes) runs past the end of the section (%zu left)", what,
		                  n, r->len - r->pos);
	*ret = n;
	return 0;
}

int cs_rd_str(struct cs_rd *r, const char *what, char *dst, size_t cap)
{
	uint32_t n = 0;

	TRY(rd_len(r, what, cap - 1, &n));
	if (memchr(r->p + r->pos, '\0', n))
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "%s contains a NUL byte", what);
	if (n > 0)
		memcpy(dst, r->p + r->pos, n);
	dst[n] = '\0';
	r->pos += n;
	return 0;
}

int cs_rd_blob(struct cs_rd *r, const char *what, uint8_t *dst, size_t max, uint32_t *ret_len)
{
	uint32_t n = 0;

	TRY(rd_len(r, what, max, &n));
	if (n > 0)
		memcpy(dst, r->p + r->pos, n);
	r->pos += n;
	*ret_len = n;
	return 0;
}

int cs_rd_count(struct cs_rd *r, const char *what, size_t min_rec, uint32_t max, uint32_t *ret)
{
	uint32_t n = 0;

	TRY(cs_rd_u32(r, what, &n));
	if (n > max)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "%s %u exceeds %u", what, n, max);
	if (n > (r->len - r->pos) / min_rec)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "%s %u needs at least %llu bytes, %zu left",
		                  what, n, (unsigned long long)n * min_rec, r->len - r->pos);
	*ret = n;
	return 0;
}

int cs_rd_done(struct cs_rd *r)
{
	r->record = -1;
	r->mark = r->base + r->pos;
	if (r->pos != r->len)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "%zu bytes after the last record",
		                  r->len - r->pos);
	return 0;
}

/* Reads the count and allocates n zeroed elements of size sz. */
static int rd_array(struct cs_rd *r, size_t min_rec, uint32_t max, size_t sz, void **ret,
                    size_t *ret_n)
{
	uint32_t n = 0;

	TRY(cs_rd_count(r, "count", min_rec, max, &n));
	*ret = calloc(n ? n : 1, sz);
	if (!*ret)
		return cs_img_no_memory(r);
	*ret_n = n;
	return 0;
}

/* ---- HEADER ------------------------------------------------------------- */

/* Generations chain a delta to its parent and its base (docs: "Chains"). */
static int check_generations(struct cs_rd *r, const struct cs_image_header *h)
{
	unsigned long long g = h->generation, pg = h->parent_generation, bg = h->base_generation;

	if (g == 0)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "generation 0 is reserved (no parent)");
	if (!(h->flags & CS_IMAGE_F_DELTA)) {
		if (pg != 0 || bg != g)
			return cs_rd_fail(r, CS_IMG_BAD_RECORD,
			                  "base image %llu has parent_generation %llu and "
			                  "base_generation %llu (must be 0 and %llu)",
			                  g, pg, bg, g);
		return 0;
	}
	if (pg == 0 || g <= pg)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "delta image %llu has parent_generation %llu (must be 1..%llu)",
		                  g, pg, g - 1);
	if (bg == 0 || bg > pg)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "delta image %llu has base_generation %llu (must be 1..%llu)", g,
		                  bg, pg);
	return 0;
}

int cs_img_decode_header(struct cs_rd *r, struct cs_image_header *h)
{
	uint32_t version = 0;

	TRY(cs_rd_need(r, "magic", 8));
	if (memcmp(r->p + r->pos, CS_IMAGE_MAGIC, 8) != 0)
		return cs_rd_fail(r, CS_IMG_BAD_MAGIC, "bad magic: not a checksync image");
	r->pos += 8;
	TRY(cs_rd_u32(r, "version", &version));
	if (version != CS_IMAGE_FORMAT_VERSION)
		return cs_rd_fail(r, CS_IMG_BAD_VERSION, "format version %u, this reader knows %u",
		                  version, CS_IMAGE_FORMAT_VERSION);
	TRY(cs_rd_u32(r, "arch", &h->arch));
	if (h->arch != CS_ARCH_X86_64)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "arch %u is not x86_64 (%u)", h->arch,
		                  CS_ARCH_X86_64);
	TRY(cs_rd_u32(r, "page_size", &h->page_size));
	if (h->page_size != CS_IMAGE_PAGE_SIZE)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "page_size %u is not %u", h->page_size,
		                  CS_IMAGE_PAGE_SIZE);
	TRY(cs_rd_u32(r, "flags", &h->flags));
	if (h->flags & ~CS_IMAGE_F_DELTA)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "unknown flags 0x%x", h->flags);
	TRY(cs_rd_u32(r, "tracking", &h->tracking));
	if (h->tracking > CS_TRACK_HASH)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "unknown tracking %u", h->tracking);
	TRY(cs_rd_u32(r, "xsave_size", &h->xsave_size));
	TRY(cs_rd_u64(r, "generation", &h->generation));
	TRY(cs_rd_u64(r, "parent_generation", &h->parent_generation));
	TRY(cs_rd_u64(r, "base_generation", &h->base_generation));
	TRY(check_generations(r, h));
	TRY(cs_rd_u64(r, "xsave_features", &h->xsave_features));
	TRY(cs_rd_i64(r, "clock_realtime_ns", &h->clock_realtime_ns));
	TRY(cs_rd_i64(r, "clock_monotonic_ns", &h->clock_monotonic_ns));
	TRY(cs_rd_i64(r, "clock_boottime_ns", &h->clock_boottime_ns));
	TRY(cs_rd_str(r, "kernel_release", h->kernel_release, sizeof(h->kernel_release)));
	TRY(cs_rd_blob(r, "exe_build_id", h->exe_build_id, CS_IMAGE_BUILD_ID_MAX,
	               &h->exe_build_id_len));
	return cs_rd_done(r);
}

/* ---- PROCESS ------------------------------------------------------------ */

int cs_img_decode_process(struct cs_rd *r, struct cs_image_process *p)
{
	uint64_t *mm[] = {&p->start_code, &p->end_code,  &p->start_data,  &p->end_data,
	                  &p->start_brk,  &p->brk,       &p->start_stack, &p->arg_start,
	                  &p->arg_end,    &p->env_start, &p->env_end};
	size_t i;

	TRY(cs_rd_i32(r, "pid", &p->pid));
	TRY(cs_rd_i32(r, "ppid", &p->ppid));
	TRY(cs_rd_u32(r, "umask", &p->umask));
	TRY(cs_rd_u32(r, "personality", &p->personality));
	for (i = 0; i < sizeof(mm) / sizeof(mm[0]); i++)
		TRY(cs_rd_u64(r, "mm layout", mm[i]));
	for (i = 0; i < CS_IMAGE_RLIMITS; i++) {
		TRY(cs_rd_u64(r, "rlimit cur", &p->rlimits[i].cur));
		TRY(cs_rd_u64(r, "rlimit max", &p->rlimits[i].max));
	}
	for (i = 0; i < CS_AGENT_ADDRS; i++)
		TRY(cs_rd_u64(r, "agent_addr", &p->agent_addr[i]));
	TRY(cs_rd_u32(r, "vdso_crc", &p->vdso_crc));
	TRY(cs_rd_blob(r, "auxv", p->auxv, CS_IMAGE_AUXV_MAX, &p->auxv_len));
	TRY(cs_rd_str(r, "comm", p->comm, sizeof(p->comm)));
	TRY(cs_rd_str(r, "cwd", p->cwd, sizeof(p->cwd)));
	TRY(cs_rd_str(r, "exe_path", p->exe_path, sizeof(p->exe_path)));
	return cs_rd_done(r);
}

/* ---- MAPPINGS ----------------------------------------------------------- */

#define CS_MAP_ALL 0x3fffu

static int check_mapping(struct cs_rd *r, const struct cs_image_mapping *m, uint64_t prev_end)
{
	if (m->start >= m->end)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "start 0x%llx is not below end 0x%llx",
		                  (unsigned long long)m->start, (unsigned long long)m->end);
	if ((m->start | m->end | m->pgoff) & PAGE_MASK)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "start 0x%llx, end 0x%llx or pgoff 0x%llx not page aligned",
		                  (unsigned long long)m->start, (unsigned long long)m->end,
		                  (unsigned long long)m->pgoff);
	if (m->start < prev_end)
		return cs_rd_fail(
		    r, CS_IMG_BAD_RECORD,
		    "start 0x%llx is below the previous mapping's end 0x%llx (mappings "
		    "must be sorted and disjoint)",
		    (unsigned long long)m->start, (unsigned long long)prev_end);
	if (m->prot & ~7u)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "unknown prot bits 0x%x", m->prot);
	if (m->flags & ~CS_MAP_ALL)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "unknown flags 0x%x", m->flags);
	if ((m->flags & CS_MAP_SHMEM) && !(m->flags & CS_MAP_SHARED))
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "flags 0x%x: SHMEM without SHARED",
		                  m->flags);
	if ((m->madvise & ~CS_MADV_ALL) ||
	    (m->madvise & (CS_MADV_HUGEPAGE | CS_MADV_NOHUGEPAGE)) ==
	        (CS_MADV_HUGEPAGE | CS_MADV_NOHUGEPAGE) ||
	    (m->madvise & (CS_MADV_SEQUENTIAL | CS_MADV_RANDOM)) ==
	        (CS_MADV_SEQUENTIAL | CS_MADV_RANDOM))
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "madvise 0x%x has unknown bits or contradicts itself", m->madvise);
	return 0;
}

static int decode_mapping(struct cs_rd *r, struct cs_image_mapping *m)
{
	TRY(cs_rd_u64(r, "start", &m->start));
	TRY(cs_rd_u64(r, "end", &m->end));
	TRY(cs_rd_u32(r, "prot", &m->prot));
	TRY(cs_rd_u32(r, "flags", &m->flags));
	TRY(cs_rd_u64(r, "pgoff", &m->pgoff));
	TRY(cs_rd_u64(r, "dev", &m->dev));
	TRY(cs_rd_u64(r, "ino", &m->ino));
	TRY(cs_rd_u64(r, "file_size", &m->file_size));
	TRY(cs_rd_i64(r, "mtime_ns", &m->mtime_ns));
	TRY(cs_rd_blob(r, "build_id", m->build_id, CS_IMAGE_BUILD_ID_MAX, &m->build_id_len));
	TRY(cs_rd_str(r, "path", m->path, sizeof(m->path)));
	return cs_rd_u32(r, "madvise", &m->madvise);
}

int cs_img_decode_mappings(struct cs_rd *r, struct cs_image *img)
{
	uint64_t prev_end = 0;
	size_t i;

	TRY(rd_array(r, CS_REC_MAPPING_FIXED + 12, UINT32_MAX, sizeof(*img->mappings),
	             (void **)&img->mappings, &img->n_mappings));
	for (i = 0; i < img->n_mappings; i++) {
		r->record = (long)i;
		TRY(decode_mapping(r, &img->mappings[i]));
		TRY(check_mapping(r, &img->mappings[i], prev_end));
		prev_end = img->mappings[i].end;
	}
	return cs_rd_done(r);
}

/* ---- THREADS ------------------------------------------------------------ */

static int decode_thread(struct cs_rd *r, struct cs_image_thread *t)
{
	TRY(cs_rd_i32(r, "tid", &t->tid));
	TRY(cs_rd_u32(r, "flags", &t->flags));
	if (t->flags & ~(CS_THREAD_MAIN | CS_THREAD_AGENT))
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "unknown flags 0x%x", t->flags);
	TRY(cs_rd_u64(r, "ucontext_addr", &t->ucontext_addr));
	TRY(cs_rd_u64(r, "fs_base", &t->fs_base));
	TRY(cs_rd_u64(r, "gs_base", &t->gs_base));
	TRY(cs_rd_u64(r, "clear_child_tid", &t->clear_child_tid));
	TRY(cs_rd_u64(r, "robust_list", &t->robust_list));
	TRY(cs_rd_u64(r, "robust_list_len", &t->robust_list_len));
	TRY(cs_rd_u64(r, "rseq_addr", &t->rseq_addr));
	TRY(cs_rd_u32(r, "rseq_len", &t->rseq_len));
	return cs_rd_u32(r, "rseq_sig", &t->rseq_sig);
}

int cs_img_decode_threads(struct cs_rd *r, struct cs_image *img)
{
	size_t i;

	TRY(rd_array(r, CS_REC_THREAD, UINT32_MAX, sizeof(*img->threads), (void **)&img->threads,
	             &img->n_threads));
	for (i = 0; i < img->n_threads; i++) {
		r->record = (long)i;
		TRY(decode_thread(r, &img->threads[i]));
	}
	return cs_rd_done(r);
}

/* ---- FDS ---------------------------------------------------------------- */

static int decode_fd_fixed(struct cs_rd *r, struct cs_image_fd *f)
{
	TRY(cs_rd_i32(r, "fd", &f->fd));
	TRY(cs_rd_u32(r, "type", &f->type));
	TRY(cs_rd_u32(r, "open_flags", &f->open_flags));
	TRY(cs_rd_u32(r, "fd_flags", &f->fd_flags));
	TRY(cs_rd_u64(r, "offset", &f->offset));
	TRY(cs_rd_i32(r, "family", &f->family));
	TRY(cs_rd_i32(r, "sock_type", &f->sock_type));
	TRY(cs_rd_i32(r, "protocol", &f->protocol));
	TRY(cs_rd_i32(r, "backlog", &f->backlog));
	TRY(cs_rd_u32(r, "sock_options", &f->sock_options));
	TRY(cs_rd_u32(r, "eventfd_flags", &f->eventfd_flags));
	TRY(cs_rd_u64(r, "pipe_id", &f->pipe_id));
	TRY(cs_rd_u64(r, "eventfd_count", &f->eventfd_count));
	TRY(cs_rd_i32(r, "timer_clockid", &f->timer_clockid));
	TRY(cs_rd_u32(r, "timer_flags", &f->timer_flags));
	TRY(cs_rd_u64(r, "timer_value_ns", &f->timer_value_ns));
	return cs_rd_u64(r, "timer_interval_ns", &f->timer_interval_ns);
}

static int check_fd(struct cs_rd *r, const struct cs_image_fd *f, int32_t prev_fd)
{
	if (f->fd < 0 || f->fd <= prev_fd)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "fd %d is negative or not above the previous fd %d (fds must be "
		                  "sorted and unique)",
		                  f->fd, prev_fd);
	if (!cs_image_fd_type_name(f->type))
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "fd %d: unknown type %u", f->fd, f->type);
	return 0;
}

/* Pending pipe bytes; only the read end of a pipe has any. */
static int decode_pipe_data(struct cs_rd *r, struct cs_image_fd *f)
{
	uint8_t *data;

	TRY(rd_len(r, "pipe_data", CS_IMAGE_PIPE_DATA_MAX, &f->pipe_data_len));
	if (f->pipe_data_len == 0)
		return 0;
	if (f->type != CS_FD_PIPE && f->type != CS_FD_FIFO && f->type != CS_FD_SOCKETPAIR)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "fd %d is %s but carries pipe data", f->fd,
		                  cs_image_fd_type_name(f->type));
	data = malloc(f->pipe_data_len);
	if (!data)
		return cs_img_no_memory(r);
	memcpy(data, r->p + r->pos, f->pipe_data_len);
	f->pipe_data = data;
	r->pos += f->pipe_data_len;
	return 0;
}

static int decode_epoll(struct cs_rd *r, struct cs_image_fd *f)
{
	struct cs_image_epoll_entry *e;
	uint32_t i;

	TRY(cs_rd_count(r, "n_epoll", 20, CS_IMAGE_EPOLL_MAX, &f->n_epoll));
	if (f->n_epoll == 0)
		return 0;
	if (f->type != CS_FD_EPOLL)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "fd %d is %s but carries epoll entries",
		                  f->fd, cs_image_fd_type_name(f->type));
	e = calloc(f->n_epoll, sizeof(*e));
	if (!e)
		return cs_img_no_memory(r);
	f->epoll = e;
	for (i = 0; i < f->n_epoll; i++) {
		TRY(cs_rd_i32(r, "epoll tfd", &e[i].tfd));
		TRY(cs_rd_u32(r, "epoll events", &e[i].events));
		TRY(cs_rd_u64(r, "epoll data", &e[i].data));
		TRY(cs_rd_i32(r, "epoll src_fd", &e[i].src_fd));
		if (e[i].src_fd < 0)
			return cs_rd_fail(r, CS_IMG_BAD_RECORD,
			                  "epoll entry %u: src_fd %d is negative", i, e[i].src_fd);
	}
	return 0;
}

/* An INOTIFY fd's watches: wd (ascending, from 1), mask, inode, path. */
static int check_watches(struct cs_rd *r, const struct cs_image_fd *f)
{
	const uint8_t *p = f->file_data, *end = p + f->file_data_len;
	int32_t prev = 0;

	while (p < end) {
		uint32_t len;
		int32_t wd;

		if ((size_t)(end - p) < CS_IMAGE_WATCH_FIXED + 4)
			return cs_rd_fail(r, CS_IMG_BAD_RECORD, "fd %d: a watch runs past its data",
			                  f->fd);
		wd = (int32_t)cs_img_le32(p);
		len = cs_img_le32(p + CS_IMAGE_WATCH_FIXED);
		p += CS_IMAGE_WATCH_FIXED + 4;
		if (wd <= prev || len >= CS_IMAGE_PATH_MAX || len == 0 || len > (size_t)(end - p) ||
		    memchr(p, 0, len))
			return cs_rd_fail(
			    r, CS_IMG_BAD_RECORD,
			    "fd %d: watch %d (after %d) is out of order or has a bad path", f->fd,
			    wd, prev);
		prev = wd;
		p += len;
	}
	return 0;
}

/* Content of an unlinked file; only a TMPFILE fd has any. */
static int decode_file_data(struct cs_rd *r, struct cs_image_fd *f)
{
	uint8_t *data;

	TRY(rd_len(r, "file_data", CS_IMAGE_FILE_DATA_MAX, &f->file_data_len));
	if (f->file_data_len == 0)
		return 0;
	if (f->type != CS_FD_TMPFILE && f->type != CS_FD_INOTIFY && f->type != CS_FD_MEMFD)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "fd %d is %s but carries file data", f->fd,
		                  cs_image_fd_type_name(f->type));
	data = malloc(f->file_data_len);
	if (!data)
		return cs_img_no_memory(r);
	memcpy(data, r->p + r->pos, f->file_data_len);
	f->file_data = data;
	r->pos += f->file_data_len;
	return f->type == CS_FD_INOTIFY ? check_watches(r, f) : 0;
}

static int decode_sockopts(struct cs_rd *r, struct cs_image_fd *f)
{
	uint32_t i;

	TRY(cs_rd_count(r, "n_sockopts", 12, CS_IMAGE_SOCKOPTS_MAX, &f->n_sockopts));
	for (i = 0; i < f->n_sockopts; i++) {
		struct cs_image_sockopt *o = &f->sockopts[i];

		TRY(cs_rd_i32(r, "sockopt level", &o->level));
		TRY(cs_rd_i32(r, "sockopt name", &o->name));
		TRY(cs_rd_blob(r, "sockopt value", o->val, CS_IMAGE_SOCKOPT_LEN, &o->len));
	}
	return 0;
}

static int decode_locks(struct cs_rd *r, struct cs_image_fd *f)
{
	uint32_t i;

	TRY(cs_rd_count(r, "n_locks", 24, CS_IMAGE_LOCKS_MAX, &f->n_locks));
	for (i = 0; i < f->n_locks; i++) {
		struct cs_image_lock *l = &f->locks[i];

		TRY(cs_rd_u32(r, "lock kind", &l->kind));
		TRY(cs_rd_u32(r, "lock mode", &l->mode));
		TRY(cs_rd_u64(r, "lock start", &l->start));
		TRY(cs_rd_u64(r, "lock end", &l->end));
		if (l->kind < CS_LOCK_POSIX || l->kind > CS_LOCK_LEASE ||
		    (l->mode != CS_LOCK_READ && l->mode != CS_LOCK_WRITE) || l->start > l->end)
			return cs_rd_fail(r, CS_IMG_BAD_RECORD,
			                  "fd %d: lock %u: kind %u, mode %u or range %llu-%llu is "
			                  "invalid",
			                  f->fd, i, l->kind, l->mode, (unsigned long long)l->start,
			                  (unsigned long long)l->end);
	}
	return 0;
}

/* A classic socket filter: whole instructions of 8 bytes. */
static int decode_filter(struct cs_rd *r, struct cs_image_fd *f)
{
	uint8_t *data;

	TRY(cs_rd_u32(r, "filter_locked", &f->filter_locked));
	TRY(rd_len(r, "filter", CS_IMAGE_FILTER_MAX, &f->filter_len));
	if (f->filter_locked > 1 || f->filter_len % 8)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "fd %d: filter_locked %u is not 0 or 1, or a filter of %u bytes "
		                  "is not whole instructions",
		                  f->fd, f->filter_locked, f->filter_len);
	if (f->filter_len == 0)
		return 0;
	data = malloc(f->filter_len);
	if (!data)
		return cs_img_no_memory(r);
	memcpy(data, r->p + r->pos, f->filter_len);
	f->filter = data;
	r->pos += f->filter_len;
	return 0;
}

/* Whether fd is one of the n records already decoded (sorted by fd). */
static int have_fd(const struct cs_image_fd *fds, size_t n, int32_t fd)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (fds[mid].fd == fd)
			return 1;
		if (fds[mid].fd < fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* The version-2 tail; earlier records are fds[0, i). */
static int decode_fd_tail(struct cs_rd *r, struct cs_image_fd *fds, size_t i)
{
	struct cs_image_fd *f = &fds[i];

	TRY(cs_rd_u32(r, "pipe_size", &f->pipe_size));
	TRY(cs_rd_i32(r, "share_fd", &f->share_fd));
	if (f->share_fd != -1 && !(f->share_fd >= 0 && have_fd(fds, i, f->share_fd)))
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "fd %d: share_fd %d is neither -1 nor an fd before it", f->fd,
		                  f->share_fd);
	TRY(cs_rd_u32(r, "file_mode", &f->file_mode));
	if (f->file_mode & ~07777u)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "fd %d: file_mode 0%o has bits above 07777",
		                  f->fd, f->file_mode);
	TRY(decode_file_data(r, f));
	TRY(decode_sockopts(r, f));
	TRY(decode_locks(r, f));
	TRY(cs_rd_u64(r, "peer_id", &f->peer_id));
	TRY(cs_rd_u32(r, "shutdown", &f->shutdown));
	if (f->shutdown > 3)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "fd %d: shutdown %u is above 3", f->fd,
		                  f->shutdown);
	return decode_filter(r, f);
}

static int decode_fd(struct cs_rd *r, struct cs_image_fd *fds, size_t i, int32_t prev_fd)
{
	struct cs_image_fd *f = &fds[i];

	TRY(decode_fd_fixed(r, f));
	TRY(check_fd(r, f, prev_fd));
	TRY(cs_rd_str(r, "path", f->path, sizeof(f->path)));
	TRY(cs_rd_blob(r, "local_addr", f->local_addr, CS_IMAGE_ADDR_MAX, &f->local_len));
	TRY(cs_rd_blob(r, "remote_addr", f->remote_addr, CS_IMAGE_ADDR_MAX, &f->remote_len));
	TRY(decode_pipe_data(r, f));
	TRY(decode_epoll(r, f));
	TRY(cs_rd_str(r, "reason", f->reason, sizeof(f->reason)));
	return decode_fd_tail(r, fds, i);
}

int cs_img_decode_fds(struct cs_rd *r, struct cs_image *img)
{
	int32_t prev_fd = -1;
	size_t i;

	/* n_fds is set before decoding so cs_image_free releases partial records. */
	TRY(rd_array(r, CS_REC_FD_FIXED + 68, UINT32_MAX, sizeof(*img->fds), (void **)&img->fds,
	             &img->n_fds));
	for (i = 0; i < img->n_fds; i++) {
		r->record = (long)i;
		TRY(decode_fd(r, img->fds, i, prev_fd));
		prev_fd = img->fds[i].fd;
	}
	return cs_rd_done(r);
}

/* ---- SIGNALS ------------------------------------------------------------ */

static int decode_sigaction(struct cs_rd *r, struct cs_image_sigaction *s, uint32_t prev)
{
	TRY(cs_rd_u32(r, "signo", &s->signo));
	if (s->signo == 0 || s->signo > CS_IMAGE_SIGNALS || s->signo <= prev)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "signo %u is outside 1..%u or not above the previous %u",
		                  s->signo, CS_IMAGE_SIGNALS, prev);
	TRY(cs_rd_u32(r, "reserved", &s->reserved));
	if (s->reserved != 0)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "reserved is 0x%x, not 0", s->reserved);
	TRY(cs_rd_u64(r, "handler", &s->handler));
	TRY(cs_rd_u64(r, "flags", &s->flags));
	TRY(cs_rd_u64(r, "restorer", &s->restorer));
	return cs_rd_u64(r, "mask", &s->mask);
}

int cs_img_decode_signals(struct cs_rd *r, struct cs_image *img)
{
	uint32_t prev = 0;
	size_t i;

	TRY(rd_array(r, CS_REC_SIGACTION, CS_IMAGE_SIGNALS, sizeof(*img->sigactions),
	             (void **)&img->sigactions, &img->n_sigactions));
	for (i = 0; i < img->n_sigactions; i++) {
		r->record = (long)i;
		TRY(decode_sigaction(r, &img->sigactions[i], prev));
		prev = img->sigactions[i].signo;
	}
	return cs_rd_done(r);
}

/* ---- RESIDENT and page runs --------------------------------------------- */

int cs_img_check_run(struct cs_rd *r, uint64_t addr, uint32_t npages, uint64_t prev_end)
{
	if (npages == 0)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "run at 0x%llx has npages 0",
		                  (unsigned long long)addr);
	if (addr & PAGE_MASK)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "run address 0x%llx is not page aligned",
		                  (unsigned long long)addr);
	if (addr >= CS_IMAGE_ADDR_LIMIT ||
	    npages > (CS_IMAGE_ADDR_LIMIT - addr) / CS_IMAGE_PAGE_SIZE)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "run 0x%llx + %u pages is not below 2^47",
		                  (unsigned long long)addr, npages);
	if (addr < prev_end)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "run 0x%llx is below the previous run's end 0x%llx (runs must be "
		                  "sorted and disjoint)",
		                  (unsigned long long)addr, (unsigned long long)prev_end);
	return 0;
}

int cs_img_decode_resident(struct cs_rd *r, struct cs_image *img)
{
	uint64_t prev_end = 0;
	uint32_t reserved;
	size_t i;

	TRY(rd_array(r, CS_REC_RUN, UINT32_MAX, sizeof(*img->resident), (void **)&img->resident,
	             &img->n_resident));
	for (i = 0; i < img->n_resident; i++) {
		struct cs_image_run *run = &img->resident[i];

		r->record = (long)i;
		TRY(cs_rd_u64(r, "addr", &run->addr));
		TRY(cs_rd_u32(r, "npages", &run->npages));
		TRY(cs_img_check_run(r, run->addr, run->npages, prev_end));
		TRY(cs_rd_u32(r, "reserved", &reserved));
		if (reserved != 0)
			return cs_rd_fail(r, CS_IMG_BAD_RECORD, "reserved is 0x%x, not 0",
			                  reserved);
		prev_end = run->addr + (uint64_t)run->npages * CS_IMAGE_PAGE_SIZE;
	}
	return cs_rd_done(r);
}

/* ---- UNSUPPORTED -------------------------------------------------------- */

int cs_img_decode_unsupported(struct cs_rd *r, struct cs_image *img)
{
	size_t i;

	TRY(rd_array(r, 4, UINT32_MAX, sizeof(*img->unsupported), (void **)&img->unsupported,
	             &img->n_unsupported));
	for (i = 0; i < img->n_unsupported; i++) {
		r->record = (long)i;
		TRY(cs_rd_str(r, "what", img->unsupported[i].what,
		              sizeof(img->unsupported[i].what)));
	}
	return cs_rd_done(r);
}

/* ---- CREDS -------------------------------------------------------------- */

int cs_img_decode_creds(struct cs_rd *r, struct cs_image_creds *c)
{
	uint64_t *caps[] = {&c->cap_inh, &c->cap_prm, &c->cap_eff, &c->cap_bnd, &c->cap_amb};
	uint32_t *words[] = {&c->securebits, &c->no_new_privs, &c->dumpable, &c->seccomp};
	size_t i;

	for (i = 0; i < 4; i++)
		TRY(cs_rd_u32(r, "uid", &c->uid[i]));
	for (i = 0; i < 4; i++)
		TRY(cs_rd_u32(r, "gid", &c->gid[i]));
	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		TRY(cs_rd_u64(r, "capability set", caps[i]));
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		TRY(cs_rd_u32(r, "prctl state", words[i]));
	if (c->no_new_privs > 1 || c->dumpable > 2 || c->seccomp > 2)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "no_new_privs %u, dumpable %u or seccomp %u "
		                  "out of range",
		                  c->no_new_privs, c->dumpable, c->seccomp);
	TRY(cs_rd_u32(r, "n_groups", &c->n_groups));
	if (c->n_groups > CS_IMAGE_GROUPS_MAX)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "%u supplementary groups (at most %u)",
		                  c->n_groups, CS_IMAGE_GROUPS_MAX);
	for (i = 0; i < c->n_groups; i++)
		TRY(cs_rd_u32(r, "group", &c->groups[i]));
	return cs_rd_done(r);
}

/* ---- TIMERS ------------------------------------------------------------- */

static int check_timer(struct cs_rd *r, const struct cs_image_timer *t,
                       const struct cs_image_timer *prev)
{
	if (t->kind < CS_TIMER_REAL || t->kind > CS_TIMER_POSIX)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "unknown kind %u", t->kind);
	if (t->kind != CS_TIMER_POSIX &&
	    (t->id || t->clockid || t->notify || t->signo || t->notify_tid || t->sigval))
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "an interval timer (kind %u) has POSIX fields set", t->kind);
	if (t->kind == CS_TIMER_POSIX && t->id < 0)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "timer id %d is negative", t->id);
	if (prev && (t->kind < prev->kind || (t->kind == prev->kind && t->id <= prev->id)))
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "kind %u id %d is not above the previous kind %u id %d (timers "
		                  "must be sorted and unique)",
		                  t->kind, t->id, prev->kind, prev->id);
	if (t->notify != CS_TIMER_NOTIFY_SIGNAL && t->notify != CS_TIMER_NOTIFY_NONE &&
	    t->notify != CS_TIMER_NOTIFY_THREAD_ID)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "unknown notify %u", t->notify);
	if (t->signo > CS_IMAGE_SIGNALS)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "signo %u is above %u", t->signo,
		                  CS_IMAGE_SIGNALS);
	return 0;
}

static int decode_timer(struct cs_rd *r, struct cs_image_timer *t)
{
	TRY(cs_rd_u32(r, "kind", &t->kind));
	TRY(cs_rd_i32(r, "id", &t->id));
	TRY(cs_rd_i32(r, "clockid", &t->clockid));
	TRY(cs_rd_u32(r, "notify", &t->notify));
	TRY(cs_rd_u32(r, "signo", &t->signo));
	TRY(cs_rd_i32(r, "notify_tid", &t->notify_tid));
	TRY(cs_rd_u64(r, "sigval", &t->sigval));
	TRY(cs_rd_u64(r, "value_ns", &t->value_ns));
	return cs_rd_u64(r, "interval_ns", &t->interval_ns);
}

int cs_img_decode_timers(struct cs_rd *r, struct cs_image *img)
{
	size_t i;

	TRY(rd_array(r, CS_REC_TIMER, CS_IMAGE_TIMERS_MAX, sizeof(*img->timers),
	             (void **)&img->timers, &img->n_timers));
	for (i = 0; i < img->n_timers; i++) {
		r->record = (long)i;
		TRY(decode_timer(r, &img->timers[i]));
		TRY(check_timer(r, &img->timers[i], i ? &img->timers[i - 1] : NULL));
	}
	return cs_rd_done(r);
}

/* ---- ATTRS -------------------------------------------------------------- */

int cs_img_decode_attrs(struct cs_rd *r, struct cs_image *img)
{
	struct cs_image_attrs *a = &img->attrs;

	TRY(cs_rd_i32(r, "oom_score_adj", &a->oom_score_adj));
	if (a->oom_score_adj < -1000 || a->oom_score_adj > 1000)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "oom_score_adj %d is outside -1000..1000",
		                  a->oom_score_adj);
	TRY(cs_rd_u32(r, "child_subreaper", &a->child_subreaper));
	TRY(cs_rd_u32(r, "thp_disable", &a->thp_disable));
	if (a->child_subreaper > 1 || a->thp_disable > 1)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "child_subreaper %u or thp_disable %u is not 0 or 1",
		                  a->child_subreaper, a->thp_disable);
	TRY(cs_rd_u32(r, "dumpable", &a->dumpable));
	if (a->dumpable > 2)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "dumpable %u is above 2", a->dumpable);
	TRY(cs_rd_u32(r, "membarrier", &a->membarrier));
	if (a->membarrier & ~CS_MEMBARRIER_REGISTERED)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "unknown membarrier registrations 0x%x",
		                  a->membarrier & ~CS_MEMBARRIER_REGISTERED);
	TRY(cs_rd_i32(r, "nice", &a->nice));
	TRY(cs_rd_u32(r, "sched_policy", &a->sched_policy));
	TRY(cs_rd_u32(r, "sched_priority", &a->sched_priority));
	if (a->nice < -20 || a->nice > 19 || (a->sched_policy & ~CS_SCHED_RESET_ON_FORK) > 5 ||
	    (a->sched_policy & ~CS_SCHED_RESET_ON_FORK) == 4 || a->sched_priority > 99)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "nice %d, sched_policy 0x%x or sched_priority %u is out of range",
		                  a->nice, a->sched_policy, a->sched_priority);
	TRY(cs_rd_blob(r, "affinity", a->affinity, CS_IMAGE_AFFINITY_MAX, &a->affinity_len));
	img->has_attrs = 1;
	return cs_rd_done(r);
}

/* ---- SIGQUEUE ----------------------------------------------------------- */

/* Queues sorted by tid; a standard signal (below 32) is pending at most
 * once per queue, as the kernel keeps it. */
static int check_sigqueued(struct cs_rd *r, const struct cs_image_sigqueued *q,
                           const struct cs_image_sigqueued *all, size_t i)
{
	const struct cs_image_sigqueued *prev = i ? &all[i - 1] : NULL;

	if (q->tid < 0 || (prev && q->tid < prev->tid))
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "tid %d is negative or below the previous %d (queues must be "
		                  "sorted by tid)",
		                  q->tid, prev ? prev->tid : 0);
	if (q->signo == 0 || q->signo > CS_IMAGE_SIGNALS || cs_img_le32(q->info) != q->signo)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "signo %u is outside 1..%u or differs from si_signo %u", q->signo,
		                  CS_IMAGE_SIGNALS, cs_img_le32(q->info));
	for (size_t k = i; q->signo < 32 && k-- > 0 && all[k].tid == q->tid;)
		if (all[k].signo == q->signo)
			return cs_rd_fail(r, CS_IMG_BAD_RECORD,
			                  "standard signal %u is queued twice for tid %d", q->signo,
			                  q->tid);
	return 0;
}

int cs_img_decode_sigqueue(struct cs_rd *r, struct cs_image *img)
{
	size_t i;

	TRY(rd_array(r, CS_REC_SIGQUEUED, CS_IMAGE_SIGQUEUE_MAX, sizeof(*img->sigqueue),
	             (void **)&img->sigqueue, &img->n_sigqueue));
	for (i = 0; i < img->n_sigqueue; i++) {
		struct cs_image_sigqueued *q = &img->sigqueue[i];

		r->record = (long)i;
		TRY(cs_rd_i32(r, "tid", &q->tid));
		TRY(cs_rd_u32(r, "signo", &q->signo));
		TRY(cs_rd_need(r, "siginfo", CS_IMAGE_SIGINFO));
		memcpy(q->info, r->p + r->pos, CS_IMAGE_SIGINFO);
		r->pos += CS_IMAGE_SIGINFO;
		TRY(check_sigqueued(r, q, img->sigqueue, i));
	}
	return cs_rd_done(r);
}

/* ---- SECCOMP ------------------------------------------------------------ */

static int decode_seccomp(struct cs_rd *r, struct cs_image_seccomp *f, int32_t prev_tid)
{
	uint8_t *prog;

	TRY(cs_rd_i32(r, "tid", &f->tid));
	TRY(cs_rd_u32(r, "flags", &f->flags));
	TRY(rd_len(r, "program", CS_IMAGE_FILTER_MAX, &f->len));
	if (f->tid <= 0 || f->tid < prev_tid ||
	    (f->flags & ~(CS_SECCOMP_FLAG_LOG | CS_SECCOMP_FLAG_SPEC_ALLOW)) || f->len == 0 ||
	    f->len % 8)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "tid %d (after %d), flags 0x%x or a program of %u bytes is "
		                  "invalid",
		                  f->tid, prev_tid, f->flags, f->len);
	prog = malloc(f->len);
	if (!prog)
		return cs_img_no_memory(r);
	memcpy(prog, r->p + r->pos, f->len);
	f->prog = prog;
	r->pos += f->len;
	return 0;
}

int cs_img_decode_seccomp(struct cs_rd *r, struct cs_image *img)
{
	size_t i;

	TRY(rd_array(r, 12, CS_IMAGE_SECCOMP_MAX, sizeof(*img->seccomp), (void **)&img->seccomp,
	             &img->n_seccomp));
	for (i = 0; i < img->n_seccomp; i++) {
		r->record = (long)i;
		TRY(decode_seccomp(r, &img->seccomp[i], i ? img->seccomp[i - 1].tid : 1));
	}
	return cs_rd_done(r);
}

/* ---- PAGES -------------------------------------------------------------- */

/* Appends to img->page_runs, doubling the array at each power of two. */
static int add_page_run(struct cs_rd *r, struct cs_image *img, const struct cs_image_page_run *pr)
{
	size_t n = img->n_page_runs;

	if ((n & (n - 1)) == 0) {
		struct cs_image_page_run *a;

		a = realloc(img->page_runs, (n ? 2 * n : 1) * sizeof(*a));
		if (!a)
			return cs_img_no_memory(r);
		img->page_runs = a;
	}
	img->page_runs[n] = *pr;
	img->n_page_runs = n + 1;
	return 0;
}

/* A page run's 16-byte head, in order after the runs before it. */
static int read_run_head(struct cs_rd *r, struct cs_image_page_run *pr, uint64_t pages_end)
{
	uint32_t reserved;

	TRY(cs_rd_u64(r, "addr", &pr->addr));
	TRY(cs_rd_u32(r, "npages", &pr->npages));
	TRY(cs_img_check_run(r, pr->addr, pr->npages, pages_end));
	TRY(cs_rd_u32(r, "reserved", &reserved));
	if (reserved != 0)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "reserved is 0x%x, not 0", reserved);
	return 0;
}

int cs_img_decode_pages(struct cs_rd *r, struct cs_image *img, uint64_t *pages_end)
{
	struct cs_image_page_run pr;
	uint64_t bytes;

	for (r->record = 0; r->pos < r->len; r->record++) {
		TRY(read_run_head(r, &pr, *pages_end));
		bytes = (uint64_t)pr.npages * CS_IMAGE_PAGE_SIZE;
		TRY(cs_rd_need(r, "page data", bytes));
		pr.file_offset = r->base + r->pos;
		TRY(add_page_run(r, img, &pr));
		r->pos += bytes;
		*pages_end = pr.addr + bytes;
	}
	r->record = -1;
	return 0;
}

/*
 * PAGES_ALIGNED: count, data_off, the run heads, zero padding, then every
 * run's bytes back to back from payload offset data_off, which the writer
 * chose so the bytes start on a 4096-byte boundary of its file (they can
 * then be written with O_DIRECT). The reader needs no alignment: offsets
 * are taken from data_off, and the padding is bounded and must be zero.
 */
static int aligned_pages_head(struct cs_rd *r, uint32_t *count, uint32_t *data_off)
{
	uint64_t heads_end;

	TRY(cs_rd_u32(r, "count", count));
	TRY(cs_rd_u32(r, "data_off", data_off));
	heads_end = 8 + (uint64_t)*count * CS_IMAGE_PAGE_RUN_HEAD;
	if (*data_off < heads_end || *data_off - heads_end >= CS_IMAGE_PAGE_SIZE)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "data_off %u: %u run heads end at %llu, and the padding after "
		                  "them must be under %u bytes",
		                  *data_off, *count, (unsigned long long)heads_end,
		                  CS_IMAGE_PAGE_SIZE);
	if (*data_off > r->len)
		return cs_rd_fail(r, CS_IMG_BAD_RECORD,
		                  "data_off %u runs past the end of the section (%zu bytes)",
		                  *data_off, r->len);
	for (size_t i = (size_t)heads_end; i < *data_off; i++)
		if (r->p[i]) {
			r->mark = r->base + i;
			return cs_rd_fail(r, CS_IMG_BAD_RECORD,
			                  "padding byte at %zu is 0x%02x, not 0", i, r->p[i]);
		}
	return 0;
}

int cs_img_decode_aligned_pages(struct cs_rd *r, struct cs_image *img, uint64_t *pages_end)
{
	struct cs_image_page_run pr;
	uint32_t count, data_off;
	uint64_t data;

	TRY(aligned_pages_head(r, &count, &data_off));
	data = data_off;
	for (r->record = 0; r->record < (long)count; r->record++) {
		TRY(read_run_head(r, &pr, *pages_end));
		uint64_t bytes = (uint64_t)pr.npages * CS_IMAGE_PAGE_SIZE;
		if (bytes > r->len - data)
			return cs_rd_fail(r, CS_IMG_BAD_RECORD,
			                  "page data (%llu bytes at %llu) runs past the end of the "
			                  "section (%zu bytes)",
			                  (unsigned long long)bytes, (unsigned long long)data,
			                  r->len);
		pr.file_offset = r->base + data;
		TRY(add_page_run(r, img, &pr));
		data += bytes;
		*pages_end = pr.addr + bytes;
	}
	r->record = -1;
	if (data != r->len) {
		r->mark = r->base + data;
		return cs_rd_fail(r, CS_IMG_BAD_RECORD, "%llu bytes follow the last run's data",
		                  (unsigned long long)(r->len - data));
	}
	return 0;
}
