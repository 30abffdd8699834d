/*
 * Checkpoint image parser (docs/image-format.md): walks the sections,
 * checks their framing, order and CRCs, and hands each payload to its
 * record decoder (image_decode.c). The writer is in image_write.c.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "image.h"
#include "image_int.h"

/* Sections are impossible above this: pages are below 2^47, metadata far less. */
#define CS_SECT_PAYLOAD_LIMIT (1ull << 48)

static const char *const section_names[] = {
	[CS_SECT_HEADER] = "HEADER",
	[CS_SECT_PROCESS] = "PROCESS",
	[CS_SECT_MAPPINGS] = "MAPPINGS",
	[CS_SECT_THREADS] = "THREADS",
	[CS_SECT_FDS] = "FDS",
	[CS_SECT_SIGNALS] = "SIGNALS",
	[CS_SECT_RESIDENT] = "RESIDENT",
	[CS_SECT_PAGES] = "PAGES",
	[CS_SECT_UNSUPPORTED] = "UNSUPPORTED",
	[CS_SECT_CREDS] = "CREDS",
	[CS_SECT_TIMERS] = "TIMERS",
	[CS_SECT_ATTRS] = "ATTRS",
	[CS_SECT_SIGQUEUE] = "SIGQUEUE",
	[CS_SECT_SECCOMP] = "SECCOMP",
	[CS_SECT_END] = "END",
	[CS_SECT_PAGES_ALIGNED] = "PAGES_ALIGNED",
};

const char *cs_image_section_name(uint32_t type)
{
	if (type >= sizeof(section_names) / sizeof(section_names[0]))
		return NULL;
	return section_names[type];
}

static const char *const fd_type_names[] = {
    [CS_FD_REGULAR] = "REGULAR",
    [CS_FD_DIRECTORY] = "DIRECTORY",
    [CS_FD_CHARDEV] = "CHARDEV",
    [CS_FD_PIPE] = "PIPE",
    [CS_FD_SOCKET_LISTEN] = "SOCKET_LISTEN",
    [CS_FD_SOCKET_DGRAM] = "SOCKET_DGRAM",
    [CS_FD_SOCKET_CONNECTED] = "SOCKET_CONNECTED",
    [CS_FD_EVENTFD] = "EVENTFD",
    [CS_FD_TIMERFD] = "TIMERFD",
    [CS_FD_EPOLL] = "EPOLL",
    [CS_FD_AGENT] = "AGENT",
    [CS_FD_UNSUPPORTED] = "UNSUPPORTED",
    [CS_FD_SOCKET_STREAM] = "SOCKET_STREAM",
    [CS_FD_TMPFILE] = "TMPFILE",
    [CS_FD_FIFO] = "FIFO",
    [CS_FD_SIGNALFD] = "SIGNALFD",
    [CS_FD_SOCKETPAIR] = "SOCKETPAIR",
    [CS_FD_INOTIFY] = "INOTIFY",
    [CS_FD_MEMFD] = "MEMFD",
};

const char *cs_image_fd_type_name(uint32_t type)
{
	if (type >= sizeof(fd_type_names) / sizeof(fd_type_names[0]))
		return NULL;
	return fd_type_names[type];
}

static const char *const err_names[] = {
    [CS_IMG_OK] = "OK",
    [CS_IMG_TRUNCATED] = "TRUNCATED",
    [CS_IMG_BAD_MAGIC] = "BAD_MAGIC",
    [CS_IMG_BAD_VERSION] = "BAD_VERSION",
    [CS_IMG_BAD_CRC] = "BAD_CRC",
    [CS_IMG_BAD_SECTION] = "BAD_SECTION",
    [CS_IMG_BAD_RECORD] = "BAD_RECORD",
    [CS_IMG_NO_MEMORY] = "NO_MEMORY",
};

const char *cs_image_err_name(int code)
{
	if (code < 0 || (size_t)code >= sizeof(err_names) / sizeof(err_names[0]))
		return NULL;
	return err_names[code];
}

/* ---- Reading ------------------------------------------------------------ */

struct parse {
	const uint8_t *buf;
	size_t len;
	unsigned flags;
	struct cs_image *img;
	struct cs_image_error *err;
	uint32_t nsect;     /* sections before the current one */
	uint32_t seen;      /* bit per section type that may appear once */
	uint64_t pages_end; /* end of the last page run, across PAGES sections */
};

struct sect {
	uint32_t type, flags;
	uint64_t off, payload_len;
};

/* A reader over the section at s; its payload may be read only once
 * read_section has checked payload_len. */
static struct cs_rd sect_rd(const struct parse *ps, const struct sect *s)
{
	int head = ps->len - s->off >= CS_SECT_HEAD; /* else p stays inside the buffer */
	struct cs_rd r = {
	    .p = ps->buf + s->off + (head ? CS_SECT_HEAD : 0),
	    .len = head ? s->payload_len : 0,
	    .base = s->off + CS_SECT_HEAD,
	    .mark = s->off,
	    .section = s->type,
	    .sect_off = s->off,
	    .record = -1,
	    .err = ps->err,
	};
	return r;
}

/* The first 28 bytes never change between versions: HEADER's section head,
 * the magic and the format version. They are checked before any CRC so a
 * file that is not an image, or is a newer one, says so. */
static int check_prologue(struct parse *ps)
{
	struct sect s = {.type = CS_SECT_HEADER};
	struct cs_rd r = sect_rd(ps, &s);
	size_t have = ps->len > CS_SECT_HEAD ? ps->len - CS_SECT_HEAD : 0;
	uint32_t version;

	if (have > 8)
		have = 8;
	r.mark = CS_SECT_HEAD;
	if (have > 0 && memcmp(ps->buf + CS_SECT_HEAD, CS_IMAGE_MAGIC, have) != 0)
		return cs_rd_fail(&r, CS_IMG_BAD_MAGIC, "bad magic: not a checksync image");
	r.mark = 0;
	if (ps->len < CS_SECT_HEAD + 12)
		return cs_rd_fail(&r, CS_IMG_TRUNCATED, "the image ends after %zu bytes", ps->len);
	version = cs_img_le32(ps->buf + CS_SECT_HEAD + 8);
	r.mark = CS_SECT_HEAD + 8;
	if (version != CS_IMAGE_FORMAT_VERSION)
		return cs_rd_fail(&r, CS_IMG_BAD_VERSION, "format version %u, this reader knows %u",
		                  version, CS_IMAGE_FORMAT_VERSION);
	return 0;
}

/* Reads the section head at s->off and checks its extent and CRC. */
static int read_section(struct parse *ps, struct sect *s)
{
	size_t left = ps->len - s->off;
	const uint8_t *p = ps->buf + s->off;
	struct cs_rd r;
	uint32_t crc, stored;

	s->type = left >= 4 ? cs_img_le32(p) : 0;
	r = sect_rd(ps, s);
	if (left < CS_SECT_HEAD)
		return cs_rd_fail(&r, CS_IMG_TRUNCATED, "section head needs %u bytes, %zu left",
		                  CS_SECT_HEAD, left);
	s->flags = cs_img_le32(p + 4);
	s->payload_len = cs_img_le64(p + 8);
	r.len = 0; /* not known to be present yet */
	if (s->payload_len > CS_SECT_PAYLOAD_LIMIT)
		return cs_rd_fail(&r, CS_IMG_BAD_SECTION, "payload_len %llu is impossible (> 2^48)",
		                  (unsigned long long)s->payload_len);
	if (s->payload_len + CS_SECT_TRAILER > left - CS_SECT_HEAD)
		return cs_rd_fail(
		    &r, CS_IMG_TRUNCATED,
		    "payload_len %llu runs past the end of the image (%zu bytes left)",
		    (unsigned long long)s->payload_len, left - CS_SECT_HEAD);
	if (cs_image_is_pages_section(s->type) && (ps->flags & CS_IMAGE_PARSE_SKIP_PAGE_CRC))
		return 0;
	crc = cs_crc32c(0, p, CS_SECT_HEAD + s->payload_len);
	stored = cs_img_le32(p + CS_SECT_HEAD + s->payload_len);
	if (crc != stored)
		return cs_rd_fail(&r, CS_IMG_BAD_CRC,
		                  "CRC mismatch (stored 0x%08x, computed 0x%08x)", stored, crc);
	return 0;
}

/* HEADER first, END last, metadata at most once, unknown types only if skippable. */
static int check_order(struct parse *ps, const struct sect *s, int *skip)
{
	struct cs_rd r = sect_rd(ps, s);
	uint32_t bit;

	*skip = 0;
	if (s->flags & ~CS_SECT_F_SKIPPABLE)
		return cs_rd_fail(&r, CS_IMG_BAD_SECTION, "reserved flag bits 0x%x are set",
		                  s->flags & ~CS_SECT_F_SKIPPABLE);
	if (ps->nsect == 0 && s->type != CS_SECT_HEADER)
		return cs_rd_fail(&r, CS_IMG_BAD_SECTION, "the first section must be HEADER");
	if (!cs_image_section_name(s->type)) {
		if (!(s->flags & CS_SECT_F_SKIPPABLE))
			return cs_rd_fail(&r, CS_IMG_BAD_SECTION,
			                  "unknown section type %u, not marked skippable", s->type);
		*skip = 1;
		return 0;
	}
	if (cs_image_is_pages_section(s->type) || s->type == CS_SECT_END)
		return 0;
	bit = 1u << s->type;
	if (ps->seen & bit)
		return cs_rd_fail(&r, CS_IMG_BAD_SECTION, "duplicate %s section",
		                  cs_image_section_name(s->type));
	ps->seen |= bit;
	return 0;
}

static int check_end(struct parse *ps, const struct sect *s)
{
	struct cs_rd r = sect_rd(ps, s);
	uint64_t total, after;
	uint32_t count;

	if (s->payload_len != CS_REC_END)
		return cs_rd_fail(&r, CS_IMG_BAD_SECTION, "payload_len %llu, not %u",
		                  (unsigned long long)s->payload_len, CS_REC_END);
	count = cs_img_le32(r.p);
	total = cs_img_le64(r.p + 4);
	if (count != ps->nsect || total != s->off)
		return cs_rd_fail(&r, CS_IMG_BAD_SECTION,
		                  "says %u sections in %llu bytes, the image has %u in %llu", count,
		                  (unsigned long long)total, ps->nsect, (unsigned long long)s->off);
	after = ps->len - (s->off + CS_SECT_HEAD + CS_REC_END + CS_SECT_TRAILER);
	if (after != 0)
		return cs_rd_fail(&r, CS_IMG_BAD_SECTION, "%llu bytes follow END",
		                  (unsigned long long)after);
	ps->img->total_len = ps->len;
	return 0;
}

static int decode_section(struct parse *ps, const struct sect *s)
{
	struct cs_rd r = sect_rd(ps, s);
	struct cs_image *img = ps->img;

	switch (s->type) {
	case CS_SECT_HEADER:
		return cs_img_decode_header(&r, &img->header);
	case CS_SECT_PROCESS:
		return cs_img_decode_process(&r, &img->process);
	case CS_SECT_MAPPINGS:
		return cs_img_decode_mappings(&r, img);
	case CS_SECT_THREADS:
		return cs_img_decode_threads(&r, img);
	case CS_SECT_FDS:
		return cs_img_decode_fds(&r, img);
	case CS_SECT_SIGNALS:
		return cs_img_decode_signals(&r, img);
	case CS_SECT_RESIDENT:
		return cs_img_decode_resident(&r, img);
	case CS_SECT_PAGES:
		return cs_img_decode_pages(&r, img, &ps->pages_end);
	case CS_SECT_PAGES_ALIGNED:
		return cs_img_decode_aligned_pages(&r, img, &ps->pages_end);
	case CS_SECT_UNSUPPORTED:
		return cs_img_decode_unsupported(&r, img);
	case CS_SECT_CREDS:
		img->has_creds = 1;
		return cs_img_decode_creds(&r, &img->creds);
	case CS_SECT_TIMERS:
		return cs_img_decode_timers(&r, img);
	case CS_SECT_ATTRS:
		return cs_img_decode_attrs(&r, img);
	case CS_SECT_SIGQUEUE:
		return cs_img_decode_sigqueue(&r, img);
	case CS_SECT_SECCOMP:
		return cs_img_decode_seccomp(&r, img);
	case CS_SECT_END:
		return check_end(ps, s);
	default:
		return 0; /* a skippable section of a later writer */
	}
}

static int parse_sections(struct parse *ps)
{
	struct sect s = {0};
	int rc, skip;

	rc = check_prologue(ps);
	for (; rc == 0; ps->nsect++) {
		if (s.off == ps->len) {
			struct cs_rd r = sect_rd(ps, &s);

			r.section = 0;
			return cs_rd_fail(&r, CS_IMG_TRUNCATED,
			                  "the image ends after %u sections without END",
			                  ps->nsect);
		}
		rc = read_section(ps, &s);
		if (rc == 0)
			rc = check_order(ps, &s, &skip);
		if (rc == 0 && !skip)
			rc = decode_section(ps, &s);
		if (rc == 0 && s.type == CS_SECT_END)
			return 0;
		s.off += CS_SECT_HEAD + s.payload_len + CS_SECT_TRAILER;
	}
	return rc;
}

int cs_image_parse(const void *buf, size_t len, unsigned parse_flags, struct cs_image **out,
                   struct cs_image_error *err)
{
	static const uint8_t empty[1];
	struct parse ps = {
	    .buf = buf ? buf : empty, .len = buf ? len : 0, .flags = parse_flags, .err = err};
	int rc;

	memset(err, 0, sizeof(*err));
	*out = NULL;
	ps.img = calloc(1, sizeof(*ps.img));
	if (!ps.img) {
		err->code = CS_IMG_NO_MEMORY;
		strcpy(err->msg, "out of memory");
		return -ENOMEM;
	}
	rc = parse_sections(&ps);
	if (rc < 0) {
		cs_image_free(ps.img);
		return rc;
	}
	*out = ps.img;
	return 0;
}

int cs_image_read_header(const void *buf, size_t len, struct cs_image_header *out,
			 struct cs_image_error *err)
{
	static const uint8_t empty[1];
	struct cs_image img = {0};
	struct parse ps = {.buf = buf ? buf : empty, .len = buf ? len : 0, .err = err, .img = &img};
	struct sect s = {0};
	struct cs_rd r;
	int rc;

	memset(err, 0, sizeof(*err));
	rc = check_prologue(&ps);
	if (rc == 0)
		rc = read_section(&ps, &s);
	if (rc == 0 && s.type != CS_SECT_HEADER) {
		r = sect_rd(&ps, &s);
		rc = cs_rd_fail(&r, CS_IMG_BAD_SECTION, "the first section must be HEADER");
	}
	if (rc == 0) {
		r = sect_rd(&ps, &s);
		rc = cs_img_decode_header(&r, out);
	}
	return rc;
}

void cs_image_free(struct cs_image *img)
{
	size_t i;

	if (!img)
		return;
	for (i = 0; i < img->n_fds; i++) {
		free((void *)img->fds[i].pipe_data);
		free((void *)img->fds[i].epoll);
		free((void *)img->fds[i].file_data);
		free((void *)img->fds[i].filter);
	}
	free(img->fds);
	free(img->mappings);
	free(img->threads);
	free(img->sigactions);
	free(img->resident);
	free(img->page_runs);
	free(img->unsupported);
	free(img->timers);
	free(img->sigqueue);
	for (size_t k = 0; img->seccomp && k < img->n_seccomp; k++)
		free((void *)img->seccomp[k].prog);
	free(img->seccomp);
	free(img);
}

_Static_assert(offsetof(struct cs_image_run, addr) == 0, "run lookups read addr at 0");
_Static_assert(offsetof(struct cs_image_page_run, addr) == 0, "run lookups read addr at 0");

/* Index of the last run starting at or below addr in runs sorted by addr
 * (element size sz, addr at offset 0 of each), or n if there is none. */
static size_t last_at_or_below(const void *runs, size_t n, size_t sz, uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t a;

		memcpy(&a, (const char *)runs + mid * sz, sizeof(a));
		if (a <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? n : lo - 1;
}

static int run_holds(uint64_t start, uint32_t npages, uint64_t addr)
{
	return addr - start < (uint64_t)npages * CS_IMAGE_PAGE_SIZE;
}

const struct cs_image_page_run *cs_image_find_page(const struct cs_image *img, uint64_t addr)
{
	size_t i =
	    last_at_or_below(img->page_runs, img->n_page_runs, sizeof(*img->page_runs), addr);

	if (i == img->n_page_runs ||
	    !run_holds(img->page_runs[i].addr, img->page_runs[i].npages, addr))
		return NULL;
	return &img->page_runs[i];
}

int cs_image_page_resident(const struct cs_image *img, uint64_t addr)
{
	size_t i = last_at_or_below(img->resident, img->n_resident, sizeof(*img->resident), addr);

	return i != img->n_resident &&
	       run_holds(img->resident[i].addr, img->resident[i].npages, addr);
}
