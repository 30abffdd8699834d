/*
 * The streaming section writer of the checkpoint image
 * (docs/image-format.md) and the image file name.
 *
 * This runs in a copy-on-write child of a multi-threaded process, where
 * malloc may be locked forever, and in signal handlers: no allocation, no
 * stdio, no errno; only cs_crc32c(_combine), memcpy/memset and the output
 * callback.
 * The unit test proto-image-writer-symbols checks that with nm.
 */
#include <errno.h>
#include <string.h>

#include "crc32c.h"
#include "image.h"
#include "image_int.h"

int cs_image_filename(char *buf, size_t cap, uint64_t generation)
{
	static const char prefix[] = "gen-", suffix[] = ".img";
	const size_t len = 4 + 20 + 4;
	int i;

	/* By hand rather than snprintf: the agent names files in its child. */
	if (cap < len + 1)
		return -ENOSPC;
	memcpy(buf, prefix, 4);
	for (i = 23; i >= 4; i--) {
		buf[i] = (char)('0' + generation % 10);
		generation /= 10;
	}
	memcpy(buf + 24, suffix, 5);
	return (int)len;
}

int cs_image_name_parse(const char *name, uint64_t *ret_generation, int *ret_is_tmp)
{
	static const char prefix[] = "gen-", img[] = ".img", tmp[] = ".tmp";
	uint64_t g = 0;
	int i;

	/* By hand, like cs_image_filename: no libc in this file. */
	for (i = 0; i < 4; i++)
		if (name[i] != prefix[i])
			return -EINVAL;
	for (i = 4; i < 24; i++) {
		unsigned d = (unsigned)(unsigned char)name[i] - '0';
		if (d > 9 || g > (UINT64_MAX - d) / 10)
			return -EINVAL; /* not a digit, or more than 64 bits */
		g = g * 10 + d;
	}
	for (i = 0; i < 4; i++)
		if (name[24 + i] != img[i])
			return -EINVAL;
	if (name[28] == 0)
		*ret_is_tmp = 0;
	else {
		for (i = 0; i < 4; i++)
			if (name[28 + i] != tmp[i])
				return -EINVAL;
		if (name[32] != 0)
			return -EINVAL;
		*ret_is_tmp = 1;
	}
	if (!g)
		return -EINVAL;
	*ret_generation = g;
	return 0;
}

/* ---- Writing ------------------------------------------------------------ */

/* w->open: 1 inside a section, 0 between sections, -errno once broken (a
 * failed write or a misuse leaves the output unusable, so it stays broken). */
static int emit(struct cs_image_writer *w, const void *buf, size_t len)
{
	int rc = w->write(w->ctx, buf, len);

	if (rc < 0) {
		w->open = rc;
		return rc;
	}
	w->offset += len;
	return 0;
}

static int broken(struct cs_image_writer *w, int rc)
{
	w->open = rc;
	return rc;
}

void cs_image_writer_init(struct cs_image_writer *w, cs_image_write_fn write, void *ctx)
{
	memset(w, 0, sizeof(*w));
	w->write = write;
	w->ctx = ctx;
}

int cs_image_section_begin_flags(struct cs_image_writer *w, uint32_t type, uint32_t flags,
				 uint64_t payload_len)
{
	uint8_t head[CS_SECT_HEAD];
	int rc;

	if (w->open < 0)
		return w->open;
	if (w->open)
		return broken(w, -EPROTO);
	cs_img_put64(cs_img_put32(cs_img_put32(head, type), flags), payload_len);
	w->crc = cs_crc32c(0, head, sizeof(head));
	rc = emit(w, head, sizeof(head));
	if (rc < 0)
		return rc;
	w->type = type;
	w->remaining = payload_len;
	w->open = 1;
	return 0;
}

int cs_image_section_begin(struct cs_image_writer *w, uint32_t type, uint64_t payload_len)
{
	return cs_image_section_begin_flags(w, type, 0, payload_len);
}

static int section_put(struct cs_image_writer *w, const void *buf, size_t len, const uint32_t *crc)
{
	if (w->open < 0)
		return w->open;
	if (!w->open || len > w->remaining)
		return broken(w, -EPROTO);
	if (len == 0)
		return 0;
	w->crc = crc ? cs_crc32c_combine(w->crc, *crc, len) : cs_crc32c(w->crc, buf, len);
	w->remaining -= len;
	return emit(w, buf, len);
}

int cs_image_section_write(struct cs_image_writer *w, const void *buf, size_t len)
{
	return section_put(w, buf, len, NULL);
}

int cs_image_section_write_summed(struct cs_image_writer *w, const void *buf, size_t len,
                                  uint32_t crc)
{
	return section_put(w, buf, len, &crc);
}

int cs_image_section_end(struct cs_image_writer *w)
{
	uint8_t crc[CS_SECT_TRAILER];
	int rc;

	if (w->open < 0)
		return w->open;
	if (!w->open || w->remaining != 0)
		return broken(w, -EPROTO);
	cs_img_put32(crc, w->crc);
	rc = emit(w, crc, sizeof(crc));
	if (rc < 0)
		return rc;
	w->sections++;
	w->open = 0;
	return 0;
}

int cs_image_write_end(struct cs_image_writer *w)
{
	uint8_t payload[CS_REC_END];
	int rc;

	if (w->open)
		return w->open < 0 ? w->open : broken(w, -EPROTO);
	cs_img_put64(cs_img_put32(payload, w->sections), w->offset);
	rc = cs_image_section_begin(w, CS_SECT_END, sizeof(payload));
	if (rc == 0)
		rc = cs_image_section_write(w, payload, sizeof(payload));
	if (rc == 0)
		rc = cs_image_section_end(w);
	return rc;
}

int cs_image_write_section(struct cs_image_writer *w, uint32_t type, const struct cs_buf *b)
{
	int rc = cs_image_section_begin(w, type, b->len);

	if (rc == 0)
		rc = cs_image_section_write(w, b->data, b->len);
	if (rc == 0)
		rc = cs_image_section_end(w);
	return rc;
}

