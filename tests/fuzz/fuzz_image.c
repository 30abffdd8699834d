/*
 * libFuzzer target for the checkpoint image parser. Beyond "no crash, no
 * read out of bounds, no leak", it checks what a successful parse promises:
 * page runs lie inside the buffer, a metadata-only parse agrees, and every
 * metadata section re-encodes from the decoded records to the very bytes it
 * was read from (the encoding is canonical, so a decoder that accepts more
 * than the encoder writes is caught). A failure must fill in the error.
 *
 * Most mutations break a CRC, which would stop the parser before the record
 * decoders; so each input is parsed twice: as it is, and with every CRC and
 * the END totals recomputed, which lets mutations reach the records.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

#define PUT_ALL(b, fn, arr, n)                                                                     \
	do {                                                                                       \
		size_t pos_, i_;                                                                   \
		if (cs_image_put_count((b), &pos_))                                                \
			abort();                                                                   \
		for (i_ = 0; i_ < (n); i_++)                                                       \
			if (fn((b), &(arr)[i_]))                                                   \
				abort();                                                           \
		cs_image_set_count((b), pos_, (uint32_t)(n));                                      \
	} while (0)

/* Re-encodes one section's payload from img; *run is the next page run. */
static void encode(struct cs_buf *b, uint32_t type, const struct cs_image *img, size_t *run,
		   uint64_t payload_len)
{
	uint64_t used = 0;

	switch (type) {
	case CS_SECT_HEADER:
		if (cs_image_put_header(b, &img->header))
			abort();
		break;
	case CS_SECT_PROCESS:
		if (cs_image_put_process(b, &img->process))
			abort();
		break;
	case CS_SECT_MAPPINGS:
		PUT_ALL(b, cs_image_put_mapping, img->mappings, img->n_mappings);
		break;
	case CS_SECT_THREADS:
		PUT_ALL(b, cs_image_put_thread, img->threads, img->n_threads);
		break;
	case CS_SECT_FDS:
		PUT_ALL(b, cs_image_put_fd, img->fds, img->n_fds);
		break;
	case CS_SECT_SIGNALS:
		PUT_ALL(b, cs_image_put_sigaction, img->sigactions, img->n_sigactions);
		break;
	case CS_SECT_RESIDENT:
		PUT_ALL(b, cs_image_put_run, img->resident, img->n_resident);
		break;
	case CS_SECT_UNSUPPORTED:
		PUT_ALL(b, cs_image_put_unsupported, img->unsupported, img->n_unsupported);
		break;
	case CS_SECT_CREDS:
		if (cs_image_put_creds(b, &img->creds))
			abort();
		break;
	case CS_SECT_TIMERS:
		PUT_ALL(b, cs_image_put_timer, img->timers, img->n_timers);
		break;
	case CS_SECT_SECCOMP:
		PUT_ALL(b, cs_image_put_seccomp, img->seccomp, img->n_seccomp);
		break;
	case CS_SECT_SIGQUEUE:
		PUT_ALL(b, cs_image_put_sigqueued, img->sigqueue, img->n_sigqueue);
		break;
	case CS_SECT_ATTRS:
		if (cs_image_put_attrs(b, &img->attrs))
			abort();
		break;
	case CS_SECT_PAGES:
		/* only the run heads; compare() skips the page bytes */
		while (used < payload_len) {
			const struct cs_image_page_run *r = &img->page_runs[(*run)++];

			if (*run > img->n_page_runs ||
			    cs_image_put_page_run_head(b, r->addr, r->npages))
				abort();
			used += CS_IMAGE_PAGE_RUN_HEAD + (uint64_t)r->npages * CS_IMAGE_PAGE_SIZE;
		}
		break;
	}
}

/* Walks the sections of an image that parsed and re-encodes each. */
static void check_canonical(const uint8_t *data, size_t size, const struct cs_image *img)
{
	struct cs_buf b = {malloc(size + 64), 0, size + 64};
	size_t off = 0, run = 0;

	while (off < size) {
		uint32_t type = le32(data + off);
		uint64_t len = le64(data + off + 8);
		const uint8_t *payload = data + off + 16;

		b.len = 0;
		encode(&b, type, img, &run, len);
		if (type == CS_SECT_PAGES) {
			/* heads interleave with pages: compare them one by one */
			size_t k, pos = 0;

			for (k = 0; pos < len; k += CS_IMAGE_PAGE_RUN_HEAD) {
				if (memcmp(payload + pos, b.data + k, CS_IMAGE_PAGE_RUN_HEAD) != 0)
					abort();
				pos += CS_IMAGE_PAGE_RUN_HEAD +
				       (size_t)le32(payload + pos + 8) * CS_IMAGE_PAGE_SIZE;
			}
		} else if (cs_image_section_name(type) && type != CS_SECT_END) {
			if (b.len != len || memcmp(b.data, payload, len) != 0)
				abort();
		}
		off += 16 + len + 4;
	}
	if (off != size || run != img->n_page_runs)
		abort();
	free(b.data);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* Recomputes the CRCs and END's totals of the sections that fit in d. */
static void fix_crcs(uint8_t *d, size_t size)
{
	size_t off = 0;
	uint32_t n = 0;

	while (size - off >= 20) {
		uint64_t len = le64(d + off + 8);

		if (len > size - off - 20)
			break;
		if (le32(d + off) == CS_SECT_END && len == 12) {
			put32(d + off + 16, n);
			put32(d + off + 20, (uint32_t)off);
			put32(d + off + 24, (uint32_t)((uint64_t)off >> 32));
		}
		put32(d + off + 16 + len, cs_crc32c(0, d + off, 16 + len));
		off += 20 + len;
		n++;
	}
}

static void one_input(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed = malloc(size ? size : 1);

	one_input(data, size);
	memcpy(fixed, data, size);
	fix_crcs(fixed, size);
	one_input(fixed, size);
	free(fixed);
	return 0;
}

static void one_input(const uint8_t *data, size_t size)
{
	struct cs_image_error err, err2;
	struct cs_image *img, *meta;
	size_t i;
	int rc = cs_image_parse(data, size, 0, &img, &err);
	int rc2 = cs_image_parse(data, size, CS_IMAGE_PARSE_SKIP_PAGE_CRC, &meta, &err2);

	if (rc != 0) {
		if (img || rc != -EBADMSG || !cs_image_err_name(err.code) || err.code == CS_IMG_OK ||
		    memchr(err.msg, '\0', sizeof(err.msg)) == NULL || err.msg[0] == '\0')
			abort();
		cs_image_free(meta);
		return;
	}
	if (rc2 != 0 || img->total_len != size || meta->n_page_runs != img->n_page_runs)
		abort();
	for (i = 0; i < img->n_page_runs; i++) {
		const struct cs_image_page_run *r = &img->page_runs[i];

		if (r->file_offset > size ||
		    (uint64_t)r->npages * CS_IMAGE_PAGE_SIZE > size - r->file_offset)
			abort();
	}
	check_canonical(data, size, img);
	cs_image_free(img);
	cs_image_free(meta);
}
