/*
 * Checkpoint image: damaged and invalid images are refused with the right
 * code, section, offset and sentence. Truncation at every byte, a bit flip
 * in every byte, framing and ordering faults, and every semantic check of
 * the records at and just past its boundary.
 *
 * Each parse gets a heap copy of exactly the bytes under test, so the
 * sanitizer build catches any read past the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "image_sample.h"

#define MAXSECT 32

static uint8_t img_buf[1 << 19];

/* Parses a private heap copy of buf[0..len). */
static int parse_copy(const uint8_t *buf, size_t len, unsigned flags, struct cs_image_error *err)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct cs_image *img = NULL;
	int rc;

	memcpy(copy, buf, len);
	rc = cs_image_parse(copy, len, flags, &img, err);
	if (rc == 0 && !img)
		rc = 1; /* success must come with an image */
	if (rc != 0 && img)
		rc = 2; /* failure must not */
	cs_image_free(img);
	free(copy);
	return rc;
}

/* Expects a refusal with code and section, and a message containing want. */
#define EXPECT(buf, len, code, section, want) expect_(__LINE__, buf, len, code, section, want)

static void expect_(int line, const uint8_t *buf, size_t len, int code, uint32_t section,
		    const char *want)
{
	struct cs_image_error err;
	int rc = parse_copy(buf, len, 0, &err);

	if (code == CS_IMG_OK) {
		if (rc != 0) {
			fprintf(stderr, "line %d: refused: %s\n", line, err.msg);
			check_failures++;
		}
		return;
	}
	if (rc != -EBADMSG || err.code != code || err.section != section ||
	    !strstr(err.msg, want)) {
		fprintf(stderr, "line %d: rc %d, %s, section %u, \"%s\"; expected %s, section %u, "
				"\"%s\"\n",
			line, rc, cs_image_err_name(err.code), err.section, err.msg,
			cs_image_err_name(code), section, want);
		check_failures++;
	}
}

static void valid_header(struct cs_image_header *h)
{
	memset(h, 0, sizeof(*h));
	h->arch = CS_ARCH_X86_64;
	h->page_size = CS_IMAGE_PAGE_SIZE;
	h->generation = 1;
	h->base_generation = 1;
	strcpy(h->kernel_release, "6.18.0");
}

struct sec {
	uint32_t type;
	const uint8_t *data;
	size_t len;
};

/* HEADER from h, then the given sections, then END; returns the length. */
static size_t build(const struct cs_image_header *h, const struct sec *secs, size_t n)
{
	uint8_t hb[256];
	struct cs_buf b = {hb, 0, sizeof(hb)};
	struct membuf m = {img_buf, 0, sizeof(img_buf), 0};
	struct cs_image_writer w;
	size_t i;

	cs_image_writer_init(&w, mem_write, &m);
	CHECK_EQ(cs_image_put_header(&b, h), 0);
	CHECK_EQ(cs_image_write_section(&w, CS_SECT_HEADER, &b), 0);
	for (i = 0; i < n; i++) {
		CHECK_EQ(cs_image_section_begin(&w, secs[i].type, secs[i].len), 0);
		CHECK_EQ(cs_image_section_write(&w, secs[i].data, secs[i].len), 0);
		CHECK_EQ(cs_image_section_end(&w), 0);
	}
	CHECK_EQ(cs_image_write_end(&w), 0);
	return m.len;
}

static size_t build1(uint32_t type, const struct cs_buf *b)
{
	struct cs_image_header h;
	struct sec s = {type, b->data, b->len};

	valid_header(&h);
	return build(&h, &s, 1);
}

static size_t build_header(const struct cs_image_header *h)
{
	return build(h, NULL, 0);
}

static size_t section_off(const uint8_t *buf, size_t len, uint32_t type)
{
	struct sect_pos sp[MAXSECT];
	size_t n = list_sections(buf, len, sp, MAXSECT), i;

	for (i = 0; i < n; i++)
		if (sp[i].type == type)
			return sp[i].off;
	return 0;
}

/* Patches a u32 inside the payload of the first section of type, then fixes its CRC. */
static void patch32(uint8_t *buf, size_t len, uint32_t type, size_t payload_off, uint32_t v)
{
	struct sect_pos sp[MAXSECT];
	size_t n = list_sections(buf, len, sp, MAXSECT), i;

	for (i = 0; i < n; i++) {
		if (sp[i].type != type)
			continue;
		put_le32(buf + sp[i].off + 16 + payload_off, v);
		reseal(buf, sp[i].off, sp[i].payload_len);
		return;
	}
	CHECK(!"no such section");
}

/* ---- Truncation and bit flips -------------------------------------------- */

/* Every proper prefix of a valid image is TRUNCATED, never accepted. */
static void test_truncation(void)
{
	static struct sample s;
	struct membuf m = {img_buf, 0, sizeof(img_buf), 0};
	struct cs_image_error err;
	size_t len, cut, bad = 0;
	unsigned flags;

	sample_init(&s, 0);
	CHECK_EQ(sample_write(&s, &m), 0);
	len = m.len;
	CHECK(len > 4096 && len < 8192);
	/* metadata-only reads differ only from the first PAGES section on */
	for (flags = 0; flags <= CS_IMAGE_PARSE_SKIP_PAGE_CRC; flags++) {
		cut = flags ? section_off(img_buf, len, CS_SECT_PAGES) : 0;
		CHECK(!flags || cut > 0);
		for (; cut < len; cut++) {
			int rc = parse_copy(img_buf, cut, flags, &err);

			if (rc != -EBADMSG || err.code != CS_IMG_TRUNCATED) {
				if (bad++ < 5)
					fprintf(stderr, "cut at %zu: rc %d %s: %s\n", cut, rc,
						cs_image_err_name(err.code), err.msg);
			}
		}
		CHECK_EQ(parse_copy(img_buf, len, flags, &err), 0);
	}
	CHECK_EQ(bad, 0);
}

/* What a flip of one bit at byte i of a valid image must give. */
static void check_flip(uint8_t *buf, size_t len, size_t i, const struct sect_pos *sp, size_t n,
		       size_t *bad)
{
	struct cs_image_error err;
	size_t k, rel;
	int rc, ok;

	for (k = 0; k + 1 < n && sp[k + 1].off <= i; k++)
		;
	rel = i - sp[k].off;
	buf[i] ^= (uint8_t)(1u << (i % 8));
	rc = parse_copy(buf, len, 0, &err);
	buf[i] ^= (uint8_t)(1u << (i % 8));
	if (rel >= 8 && rel < 16) /* payload_len: the frame moves, any refusal will do */
		ok = rc == -EBADMSG;
	else if (k == 0 && rel >= 16 && rel < 24)
		ok = rc == -EBADMSG && err.code == CS_IMG_BAD_MAGIC;
	else if (k == 0 && rel >= 24 && rel < 28)
		ok = rc == -EBADMSG && err.code == CS_IMG_BAD_VERSION;
	else
		ok = rc == -EBADMSG && err.code == CS_IMG_BAD_CRC && err.offset == sp[k].off &&
		     (rel < 4 || err.section == sp[k].type) &&
		     strstr(err.msg, "CRC mismatch") != NULL;
	if (!ok && (*bad)++ < 5)
		fprintf(stderr, "flip at %zu (section %u at %zu): rc %d %s section %u offset %llu: %s\n",
			i, sp[k].type, sp[k].off, rc, cs_image_err_name(err.code), err.section,
			(unsigned long long)err.offset, err.msg);
}

/* A flipped bit anywhere in a section is BAD_CRC naming that section and
 * its offset (except in the few bytes that are checked before the CRC). */
static void test_bit_flips(int full, size_t stride)
{
	static struct sample s;
	struct membuf m = {img_buf, 0, sizeof(img_buf), 0};
	struct sect_pos sp[MAXSECT];
	size_t n, i, bad = 0, seen = 0;

	sample_init(&s, full);
	CHECK_EQ(sample_write(&s, &m), 0);
	n = list_sections(img_buf, m.len, sp, MAXSECT);
	CHECK_EQ(n, full ? 16 : 15);
	for (i = 0; i < m.len; i += (i < 64 || i + 64 > m.len) ? 1 : stride, seen++)
		check_flip(img_buf, m.len, i, sp, n, &bad);
	CHECK_EQ(bad, 0);
	CHECK(seen > 1000);
}

/* With SKIP_PAGE_CRC, damaged page bytes go unnoticed; without, they do not. */
static void test_skip_page_crc(void)
{
	static struct sample s;
	struct membuf m = {img_buf, 0, sizeof(img_buf), 0};
	struct cs_image_error err;
	size_t pages = 0;

	sample_init(&s, 0);
	CHECK_EQ(sample_write(&s, &m), 0);
	pages = section_off(img_buf, m.len, CS_SECT_PAGES);
	CHECK(pages > 0);
	img_buf[pages + 16 + 16 + 100] ^= 0x40; /* inside the first page */
	CHECK_EQ(parse_copy(img_buf, m.len, CS_IMAGE_PARSE_SKIP_PAGE_CRC, &err), 0);
	CHECK_EQ(parse_copy(img_buf, m.len, 0, &err), -EBADMSG);
	CHECK_EQ(err.code, CS_IMG_BAD_CRC);
	CHECK_EQ(err.section, CS_SECT_PAGES);
	CHECK_EQ(err.offset, pages);
	/* a metadata section is still checked */
	img_buf[section_off(img_buf, m.len, CS_SECT_THREADS) + 20] ^= 1;
	CHECK_EQ(parse_copy(img_buf, m.len, CS_IMAGE_PARSE_SKIP_PAGE_CRC, &err), -EBADMSG);
	CHECK_EQ(err.code, CS_IMG_BAD_CRC);
	CHECK_EQ(err.section, CS_SECT_THREADS);
}

/* ---- Framing and order --------------------------------------------------- */

static void test_not_an_image(void)
{
	static const uint8_t elf[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
	struct cs_image_header h;
	size_t len;

	EXPECT(elf, 0, CS_IMG_TRUNCATED, CS_SECT_HEADER, "ends after 0 bytes");
	{
		struct cs_image_error err;
		struct cs_image *img;

		CHECK_EQ(cs_image_parse(NULL, 0, 0, &img, &err), -EBADMSG);
		CHECK_EQ(err.code, CS_IMG_TRUNCATED);
	}
	EXPECT(elf, sizeof(elf), CS_IMG_BAD_MAGIC, CS_SECT_HEADER, "not a checksync image");
	valid_header(&h);
	len = build_header(&h);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	EXPECT(img_buf, 20, CS_IMG_TRUNCATED, CS_SECT_HEADER, "ends after 20 bytes");
	img_buf[16 + 3] = 'x'; /* magic bytes are compared as far as they go */
	EXPECT(img_buf, 20, CS_IMG_BAD_MAGIC, CS_SECT_HEADER, "bad magic");
	len = build_header(&h);
	put_le32(img_buf + 24, 2); /* version 2 lacks pending signals: refused */
	EXPECT(img_buf, len, CS_IMG_BAD_VERSION, CS_SECT_HEADER, "format version 2, this reader knows 3");
	put_le32(img_buf + 24, 4);
	EXPECT(img_buf, len, CS_IMG_BAD_VERSION, CS_SECT_HEADER, "format version 4, this reader knows 3");
}

static void test_section_lengths(void)
{
	struct cs_image_header h;
	uint8_t rec[4] = {0};
	struct sec s = {CS_SECT_THREADS, rec, 4};
	char want[100];
	size_t len, off;

	valid_header(&h);
	len = build(&h, &s, 1);
	off = section_off(img_buf, len, CS_SECT_THREADS);
	put_le64(img_buf + off + 8, len); /* a length pointing beyond the file */
	snprintf(want, sizeof(want), "THREADS section at offset %zu: payload_len %zu runs past", off,
		 len);
	EXPECT(img_buf, len, CS_IMG_TRUNCATED, CS_SECT_THREADS, want);
	put_le64(img_buf + off + 8, (1ull << 48) + 1); /* no writer could have made it */
	EXPECT(img_buf, len, CS_IMG_BAD_SECTION, CS_SECT_THREADS, "impossible");
	put_le64(img_buf + off + 8, UINT64_MAX); /* overflow in the bounds check */
	EXPECT(img_buf, len, CS_IMG_BAD_SECTION, CS_SECT_THREADS, "impossible");
	/* one byte of the next section head missing */
	len = build(&h, &s, 1);
	off = section_off(img_buf, len, CS_SECT_END);
	EXPECT(img_buf, off + 15, CS_IMG_TRUNCATED, CS_SECT_END, "section head needs 16 bytes, 15 left");
}

static void test_section_order(void)
{
	struct cs_image_header h;
	uint8_t hb[256], zero[4] = {0};
	struct cs_buf b = {hb, 0, sizeof(hb)};
	struct sec dup[2] = {{CS_SECT_THREADS, zero, 4}, {CS_SECT_THREADS, zero, 4}};
	struct sec hdr[1] = {{CS_SECT_HEADER, hb, 0}};
	size_t len, off;

	valid_header(&h);
	CHECK_EQ(cs_image_put_header(&b, &h), 0);
	hdr[0].len = b.len;
	len = build(&h, hdr, 1);
	EXPECT(img_buf, len, CS_IMG_BAD_SECTION, CS_SECT_HEADER, "duplicate HEADER section");
	len = build(&h, dup, 2);
	EXPECT(img_buf, len, CS_IMG_BAD_SECTION, CS_SECT_THREADS, "duplicate THREADS section");
	dup[0].type = dup[1].type = CS_SECT_RESIDENT;
	len = build(&h, dup, 2);
	EXPECT(img_buf, len, CS_IMG_BAD_SECTION, CS_SECT_RESIDENT, "duplicate RESIDENT");
	dup[0].type = dup[1].type = CS_SECT_PAGES; /* PAGES may repeat (here: empty) */
	dup[0].len = dup[1].len = 0;
	len = build(&h, dup, 2);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	/* missing END */
	EXPECT(img_buf, len - 32, CS_IMG_TRUNCATED, 0, "the image ends after 3 sections without END");
	/* the first section is not HEADER */
	len = build_header(&h);
	put_le32(img_buf, CS_SECT_PROCESS);
	reseal(img_buf, 0, len - 32 - 20);
	EXPECT(img_buf, len, CS_IMG_BAD_SECTION, CS_SECT_PROCESS, "the first section must be HEADER");
	/* reserved section flags */
	len = build(&h, dup, 1);
	off = section_off(img_buf, len, CS_SECT_PAGES);
	put_le32(img_buf + off + 4, 0x4);
	reseal(img_buf, off, 0);
	EXPECT(img_buf, len, CS_IMG_BAD_SECTION, CS_SECT_PAGES, "reserved flag bits 0x4");
	/* known sections ignore SKIPPABLE; unknown ones need it */
	put_le32(img_buf + off + 4, CS_SECT_F_SKIPPABLE);
	reseal(img_buf, off, 0);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	put_le32(img_buf + off, 99);
	put_le32(img_buf + off + 4, 0);
	reseal(img_buf, off, 0);
	EXPECT(img_buf, len, CS_IMG_BAD_SECTION, 99, "unknown section type 99, not marked skippable");
}

static void test_end(void)
{
	struct cs_image_header h;
	size_t len, off;

	valid_header(&h);
	len = build_header(&h);
	off = len - 32;
	memcpy(img_buf + len, "x", 1);
	EXPECT(img_buf, len + 1, CS_IMG_BAD_SECTION, CS_SECT_END, "1 bytes follow END");
	patch32(img_buf, len, CS_SECT_END, 0, 2);
	EXPECT(img_buf, len, CS_IMG_BAD_SECTION, CS_SECT_END, "says 2 sections in");
	len = build_header(&h);
	patch32(img_buf, len, CS_SECT_END, 4, (uint32_t)off + 1);
	EXPECT(img_buf, len, CS_IMG_BAD_SECTION, CS_SECT_END, "the image has 1 in");
	/* END with a 13-byte payload */
	len = build_header(&h);
	put_le64(img_buf + off + 8, 13);
	memmove(img_buf + off + 16 + 13, img_buf + off + 16 + 12, 4);
	img_buf[off + 16 + 12] = 0;
	reseal(img_buf, off, 13);
	EXPECT(img_buf, len + 1, CS_IMG_BAD_SECTION, CS_SECT_END, "payload_len 13, not 12");
	/* END in the middle: what follows it is refused */
	len = build_header(&h);
	memcpy(img_buf + len, img_buf + off, 32);
	EXPECT(img_buf, len + 32, CS_IMG_BAD_SECTION, CS_SECT_END, "32 bytes follow END");
}

/* ---- Records: every check at its boundary -------------------------------- */

static void test_header_fields(void)
{
	struct cs_image_header h;

#define HDR(field, value, code, want)                                                              \
	do {                                                                                       \
		valid_header(&h);                                                                  \
		h.field = value;                                                                   \
		EXPECT(img_buf, build_header(&h), code, CS_SECT_HEADER, want);                     \
	} while (0)
	HDR(arch, 2, CS_IMG_BAD_RECORD, "arch 2 is not x86_64");
	HDR(page_size, 8192, CS_IMG_BAD_RECORD, "page_size 8192 is not 4096");
	HDR(flags, 2, CS_IMG_BAD_RECORD, "unknown flags 0x2");
	HDR(tracking, CS_TRACK_HASH, CS_IMG_OK, "");
	HDR(tracking, CS_TRACK_HASH + 1, CS_IMG_BAD_RECORD, "unknown tracking 3");
	HDR(generation, 0, CS_IMG_BAD_RECORD, "generation 0 is reserved");
	HDR(parent_generation, 5, CS_IMG_BAD_RECORD, "base image 1 has parent_generation 5");
	HDR(base_generation, 2, CS_IMG_BAD_RECORD, "base_generation 2 (must be 0 and 1)");
	HDR(exe_build_id_len, CS_IMAGE_BUILD_ID_MAX, CS_IMG_OK, "");
	HDR(clock_monotonic_ns, INT64_MIN, CS_IMG_OK, "");
#undef HDR
	/* deltas: generation > parent >= base >= 1 */
	valid_header(&h);
	h.flags = CS_IMAGE_F_DELTA;
	h.generation = UINT64_MAX, h.parent_generation = UINT64_MAX - 1, h.base_generation = 1;
	EXPECT(img_buf, build_header(&h), CS_IMG_OK, 0, "");
	h.base_generation = UINT64_MAX - 1;
	EXPECT(img_buf, build_header(&h), CS_IMG_OK, 0, "");
	h.base_generation = UINT64_MAX;
	EXPECT(img_buf, build_header(&h), CS_IMG_BAD_RECORD, CS_SECT_HEADER, "has base_generation");
	h.base_generation = 0;
	EXPECT(img_buf, build_header(&h), CS_IMG_BAD_RECORD, CS_SECT_HEADER, "has base_generation 0");
	h.base_generation = 1, h.parent_generation = UINT64_MAX;
	EXPECT(img_buf, build_header(&h), CS_IMG_BAD_RECORD, CS_SECT_HEADER, "has parent_generation");
	h.parent_generation = 0;
	EXPECT(img_buf, build_header(&h), CS_IMG_BAD_RECORD, CS_SECT_HEADER, "has parent_generation 0");
}

/* A string one byte longer than its field, made by patching its length. */
static void test_string_limits(void)
{
	struct cs_image_header h;
	struct cs_image_unsupported u;
	uint8_t rec[600];
	struct cs_buf b = {rec, 0, sizeof(rec)};
	size_t len, pos, off;
	char want[120];

	valid_header(&h);
	fill_str(h.kernel_release, 64, 'a');
	len = build_header(&h);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	patch32(img_buf, len, CS_SECT_HEADER, 88, 65);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_HEADER, "kernel_release length 65 exceeds 64");
	len = build_header(&h);
	patch32(img_buf, len, CS_SECT_HEADER, 88 + 4 + 64, CS_IMAGE_BUILD_ID_MAX + 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_HEADER, "exe_build_id length 33 exceeds 32");
	/* 255 is the most "what" holds; 256 is refused before its bytes are looked at */
	memset(&u, 0, sizeof(u));
	fill_str(u.what, 255, 'w');
	CHECK_EQ(cs_image_put_count(&b, &pos), 0);
	CHECK_EQ(cs_image_put_unsupported(&b, &u), 0);
	cs_image_set_count(&b, pos, 1);
	len = build1(CS_SECT_UNSUPPORTED, &b);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	patch32(img_buf, len, CS_SECT_UNSUPPORTED, 4, 256);
	off = section_off(img_buf, len, CS_SECT_UNSUPPORTED);
	snprintf(want, sizeof(want), "UNSUPPORTED section at offset %zu: record 0: what length 256 "
				     "exceeds 255", off);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_UNSUPPORTED, want);
	/* an embedded NUL would not survive a round trip */
	len = build1(CS_SECT_UNSUPPORTED, &b);
	img_buf[off + 16 + 8 + 10] = 0;
	reseal(img_buf, off, b.len);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_UNSUPPORTED, "what contains a NUL byte");
	/* a string shorter than claimed, and one claimed longer than its section */
	len = build1(CS_SECT_UNSUPPORTED, &b);
	patch32(img_buf, len, CS_SECT_UNSUPPORTED, 4, 252);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_UNSUPPORTED, "3 bytes after the last record");
	b.len = 4 + 4 + 100;
	put_le32(rec + 4, 100);
	len = build1(CS_SECT_UNSUPPORTED, &b);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	patch32(img_buf, len, CS_SECT_UNSUPPORTED, 4, 200);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_UNSUPPORTED,
	       "what (200 bytes) runs past the end of the section (100 left)");
}

static void test_process_limits(void)
{
	static struct sample s;
	static uint8_t rec[1 << 14];
	struct cs_buf b = {rec, 0, sizeof(rec)};
	size_t len;

	sample_init(&s, 1);
	CHECK_EQ(cs_image_put_process(&b, &s.process), 0);
	len = build1(CS_SECT_PROCESS, &b);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	patch32(img_buf, len, CS_SECT_PROCESS, 388, CS_IMAGE_AUXV_MAX + 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PROCESS, "auxv length 1025 exceeds 1024");
	/* trailing bytes after a single-record section */
	rec[b.len++] = 0;
	len = build1(CS_SECT_PROCESS, &b);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PROCESS, "1 bytes after the last record");
	/* one byte short */
	b.len -= 2;
	len = build1(CS_SECT_PROCESS, &b);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PROCESS, "exe_path (4095 bytes) runs past");
}

static size_t build_maps(const struct cs_image_mapping *m, size_t n)
{
	static uint8_t rec[1 << 16];
	struct cs_buf b = {rec, 0, sizeof(rec)};
	size_t pos, i;

	CHECK_EQ(cs_image_put_count(&b, &pos), 0);
	for (i = 0; i < n; i++)
		CHECK_EQ(cs_image_put_mapping(&b, &m[i]), 0);
	cs_image_set_count(&b, pos, (uint32_t)n);
	return build1(CS_SECT_MAPPINGS, &b);
}

static void test_mappings(void)
{
	struct cs_image_mapping m[2];

#define MAPS(a0, a1, b0, b1, code, want)                                                           \
	do {                                                                                       \
		memset(m, 0, sizeof(m));                                                           \
		m[0].start = a0, m[0].end = a1, m[1].start = b0, m[1].end = b1;                   \
		EXPECT(img_buf, build_maps(m, 2), code, CS_SECT_MAPPINGS, want);                  \
	} while (0)
	MAPS(0x1000, 0x2000, 0x2000, 0x3000, CS_IMG_OK, ""); /* adjacent */
	MAPS(0, 0x1000, 0xffffffffff600000ull, 0xfffffffffffff000ull, CS_IMG_OK, "");
	MAPS(0x1000, 0x2000, 0x1000, 0x3000, CS_IMG_BAD_RECORD,
	     "record 1: start 0x1000 is below the previous mapping's end 0x2000");
	MAPS(0x1000, 0x3000, 0x2000, 0x4000, CS_IMG_BAD_RECORD, "below the previous mapping's end");
	MAPS(0x5000, 0x6000, 0x1000, 0x2000, CS_IMG_BAD_RECORD, "must be sorted");
	MAPS(0x1000, 0x1000, 0x2000, 0x3000, CS_IMG_BAD_RECORD,
	     "record 0: start 0x1000 is not below end 0x1000");
	MAPS(0x2000, 0x1000, 0x2000, 0x3000, CS_IMG_BAD_RECORD, "is not below end");
	MAPS(0x1001, 0x2000, 0x2000, 0x3000, CS_IMG_BAD_RECORD, "not page aligned");
	MAPS(0x1000, 0x2fff, 0x3000, 0x4000, CS_IMG_BAD_RECORD, "not page aligned");
#undef MAPS
	memset(m, 0, sizeof(m));
	m[0].end = m[1].end = 0x1000;
	m[0].pgoff = 0x800;
	EXPECT(img_buf, build_maps(m, 1), CS_IMG_BAD_RECORD, CS_SECT_MAPPINGS, "pgoff 0x800");
	m[0].pgoff = 0, m[0].prot = 7, m[0].flags = 0x3fff;
	EXPECT(img_buf, build_maps(m, 1), CS_IMG_OK, 0, "");
	m[0].prot = 8;
	EXPECT(img_buf, build_maps(m, 1), CS_IMG_BAD_RECORD, CS_SECT_MAPPINGS, "unknown prot bits 0x8");
	m[0].prot = 0, m[0].flags = 0x4000;
	EXPECT(img_buf, build_maps(m, 1), CS_IMG_BAD_RECORD, CS_SECT_MAPPINGS, "unknown flags 0x4000");
	m[0].flags = CS_MAP_SHMEM | CS_MAP_PRIVATE;
	EXPECT(img_buf, build_maps(m, 1), CS_IMG_BAD_RECORD, CS_SECT_MAPPINGS,
	       "flags 0x2001: SHMEM without SHARED");
	m[0].flags = 0, m[0].madvise = CS_MADV_ALL & ~(CS_MADV_NOHUGEPAGE | CS_MADV_RANDOM);
	EXPECT(img_buf, build_maps(m, 1), CS_IMG_OK, 0, "");
	m[0].madvise = CS_MADV_HUGEPAGE | CS_MADV_NOHUGEPAGE;
	EXPECT(img_buf, build_maps(m, 1), CS_IMG_BAD_RECORD, CS_SECT_MAPPINGS,
	       "madvise 0x18 has unknown bits or contradicts itself");
	m[0].madvise = CS_MADV_SEQUENTIAL | CS_MADV_RANDOM;
	EXPECT(img_buf, build_maps(m, 1), CS_IMG_BAD_RECORD, CS_SECT_MAPPINGS,
	       "madvise 0xc0 has unknown bits or contradicts itself");
	m[0].madvise = 0x100;
	EXPECT(img_buf, build_maps(m, 1), CS_IMG_BAD_RECORD, CS_SECT_MAPPINGS,
	       "madvise 0x100 has unknown bits");
}

/* The sentence and the offset name the section, the record and the field. */
static void test_error_message(void)
{
	struct cs_image_thread t[3];
	uint8_t rec[512];
	struct cs_buf b = {rec, 0, sizeof(rec)};
	struct cs_image_error err;
	char want[200];
	size_t pos, i, len, off;

	memset(t, 0, sizeof(t));
	t[2].flags = 4;
	CHECK_EQ(cs_image_put_count(&b, &pos), 0);
	for (i = 0; i < 3; i++)
		CHECK_EQ(cs_image_put_thread(&b, &t[i]), 0);
	cs_image_set_count(&b, pos, 3);
	len = build1(CS_SECT_THREADS, &b);
	off = section_off(img_buf, len, CS_SECT_THREADS);
	CHECK_EQ(parse_copy(img_buf, len, 0, &err), -EBADMSG);
	snprintf(want, sizeof(want), "THREADS section at offset %zu: record 2: unknown flags 0x4", off);
	CHECK(strcmp(err.msg, want) == 0);
	CHECK_EQ(err.code, CS_IMG_BAD_RECORD);
	CHECK_EQ(err.section, CS_SECT_THREADS);
	CHECK_EQ(err.offset, off + 16 + 4 + 2 * 72 + 4); /* the flags field of record 2 */
	/* a count larger than the bytes present is refused before allocating */
	patch32(img_buf, len, CS_SECT_THREADS, 0, UINT32_MAX);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_THREADS,
	       "count 4294967295 needs at least 309237645240 bytes, 216 left");
	patch32(img_buf, len, CS_SECT_THREADS, 0, 4);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_THREADS, "count 4 needs at least 288 bytes");
	patch32(img_buf, len, CS_SECT_THREADS, 0, 2);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_THREADS, "72 bytes after the last record");
	/* a section too short for its count */
	b.len = 2;
	len = build1(CS_SECT_THREADS, &b);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_THREADS, "count (4 bytes) runs past the end");
}

static size_t build_fds(const struct cs_image_fd *f, size_t n)
{
	static uint8_t rec[1 << 16];
	struct cs_buf b = {rec, 0, sizeof(rec)};
	size_t pos, i;

	CHECK_EQ(cs_image_put_count(&b, &pos), 0);
	for (i = 0; i < n; i++)
		CHECK_EQ(cs_image_put_fd(&b, &f[i]), 0);
	cs_image_set_count(&b, pos, (uint32_t)n);
	return build1(CS_SECT_FDS, &b);
}

/* The version-2 tail: share_fd, file_mode, file_data, socket options. */
static void test_fd_tail(struct cs_image_fd *f)
{
	/* fixed, 5 empty variable parts, n_epoll 0, reason "": the tail starts here */
	const size_t tail = 4 + 88 + 5 * 4 + 4;
	size_t len;

	memset(f, 0, 2 * sizeof(*f));
	f[0].fd = 3, f[0].type = CS_FD_REGULAR, f[0].share_fd = -1;
	f[1].fd = 5, f[1].type = CS_FD_REGULAR, f[1].share_fd = 3;
	EXPECT(img_buf, build_fds(f, 2), CS_IMG_OK, 0, "");
	f[1].share_fd = 4;
	EXPECT(img_buf, build_fds(f, 2), CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "record 1: fd 5: share_fd 4 is neither -1 nor an fd before it");
	f[1].share_fd = 5;
	EXPECT(img_buf, build_fds(f, 2), CS_IMG_BAD_RECORD, CS_SECT_FDS, "share_fd 5 is neither");
	f[0].share_fd = -2;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS, "share_fd -2 is neither");
	f[0].share_fd = -1, f[0].file_mode = 010600;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "fd 3: file_mode 010600 has bits above 07777");
	f[0].file_mode = 0600, f[0].file_data = (const uint8_t *)"xyz", f[0].file_data_len = 3;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "fd 3 is REGULAR but carries file data");
	f[0].type = CS_FD_INOTIFY; /* "xyz" is no list of watches */
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "fd 3: a watch runs past its data");
	static const uint8_t twice[] = {2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, '/',
					2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, '/'};
	f[0].file_data = twice, f[0].file_data_len = sizeof(twice);
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "fd 3: watch 2 (after 2) is out of order or has a bad path");
	f[0].file_data_len = 21;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_OK, 0, "");
	f[0].file_data = (const uint8_t *)"xyz", f[0].file_data_len = 3;
	f[0].type = CS_FD_TMPFILE;
	len = build_fds(f, 1);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	patch32(img_buf, len, CS_SECT_FDS, tail + 12, CS_IMAGE_FILE_DATA_MAX + 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_FDS, "file_data length 8388609 exceeds");
	f[0].file_data_len = 0, f[0].n_sockopts = 1, f[0].sockopts[0].len = 4;
	len = build_fds(f, 1);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	patch32(img_buf, len, CS_SECT_FDS, tail + 16, CS_IMAGE_SOCKOPTS_MAX + 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_FDS, "n_sockopts 33 exceeds 32");
	patch32(img_buf, len, CS_SECT_FDS, tail + 16, 1);
	patch32(img_buf, len, CS_SECT_FDS, tail + 28, CS_IMAGE_SOCKOPT_LEN + 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_FDS, "sockopt value length 17 exceeds 16");
	f[0].n_sockopts = 0, f[0].n_locks = 1;
	f[0].locks[0] = (struct cs_image_lock){CS_LOCK_FLOCK, CS_LOCK_WRITE, 0, CS_LOCK_EOF};
	len = build_fds(f, 1);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	patch32(img_buf, len, CS_SECT_FDS, tail + 20, CS_IMAGE_LOCKS_MAX + 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_FDS, "n_locks 65 exceeds 64");
	patch32(img_buf, len, CS_SECT_FDS, tail + 20, 1);
	patch32(img_buf, len, CS_SECT_FDS, tail + 24, 5);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "fd 3: lock 0: kind 5, mode 2 or range 0-18446744073709551615 is invalid");
	f[0].locks[0] = (struct cs_image_lock){CS_LOCK_POSIX, CS_LOCK_READ, 20, 10};
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS, "range 20-10 is invalid");
	f[0].n_locks = 0, f[0].shutdown = 4;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS, "fd 3: shutdown 4 is above 3");
	f[0].shutdown = 0, f[0].filter = (const uint8_t *)"0123456789ab", f[0].filter_len = 12;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "a filter of 12 bytes is not whole instructions");
	f[0].filter_len = 8, f[0].filter_locked = 2;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "fd 3: filter_locked 2 is not 0 or 1");
}

static void test_fds(void)
{
	struct cs_image_epoll_entry ep[2] = {{1, 2, 3, 1}, {4, 5, 6, 9}};
	static struct cs_image_fd f[2];
	size_t len;

	memset(f, 0, sizeof(f));
	f[0].fd = 0, f[0].type = CS_FD_REGULAR, f[0].share_fd = -1;
	f[1].fd = INT32_MAX, f[1].type = CS_FD_UNSUPPORTED, f[1].share_fd = -1;
	EXPECT(img_buf, build_fds(f, 2), CS_IMG_OK, 0, "");
	f[1].fd = 0;
	EXPECT(img_buf, build_fds(f, 2), CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "record 1: fd 0 is negative or not above the previous fd 0");
	f[0].fd = -1;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS, "fd -1 is negative");
	f[0].fd = 3, f[0].type = 0;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS, "fd 3: unknown type 0");
	f[0].type = CS_FD_MEMFD + 1;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS, "unknown type 20");
	f[0].type = CS_FD_REGULAR, f[0].pipe_data = (const uint8_t *)"abc", f[0].pipe_data_len = 3;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "fd 3 is REGULAR but carries pipe data");
	f[0].type = CS_FD_PIPE;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_OK, 0, "");
	f[0].epoll = ep, f[0].n_epoll = 2;
	EXPECT(img_buf, build_fds(f, 1), CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "fd 3 is PIPE but carries epoll entries");
	f[0].type = CS_FD_EPOLL, f[0].pipe_data_len = 0;
	len = build_fds(f, 1);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	/* fixed 88 bytes, path, local and remote (4 each), pipe_data_len, n_epoll */
	patch32(img_buf, len, CS_SECT_FDS, 4 + 88 + 12 + 4, CS_IMAGE_EPOLL_MAX + 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_FDS, "n_epoll 65537 exceeds 65536");
	patch32(img_buf, len, CS_SECT_FDS, 4 + 88 + 12 + 4, 2);
	patch32(img_buf, len, CS_SECT_FDS, 4 + 88 + 12 + 4 + 4 + 16, (uint32_t)-3);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_FDS, "epoll entry 0: src_fd -3 is negative");
	patch32(img_buf, len, CS_SECT_FDS, 4 + 88 + 12 + 4, CS_IMAGE_EPOLL_MAX);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_FDS,
	       "n_epoll 65536 needs at least 1310720 bytes, 88 left");
	patch32(img_buf, len, CS_SECT_FDS, 4 + 88 + 12, CS_IMAGE_PIPE_DATA_MAX + 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_FDS, "pipe_data length 1048577 exceeds");
	patch32(img_buf, len, CS_SECT_FDS, 4 + 88 + 4, CS_IMAGE_ADDR_MAX + 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_FDS, "local_addr length 129 exceeds 128");
	patch32(img_buf, len, CS_SECT_FDS, 4 + 88, CS_IMAGE_PATH_MAX);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_FDS, "path length 4096 exceeds 4095");
	test_fd_tail(f);
}

static size_t build_sigs(const struct cs_image_sigaction *s, size_t n)
{
	static uint8_t rec[1 << 14];
	struct cs_buf b = {rec, 0, sizeof(rec)};
	size_t pos, i;

	CHECK_EQ(cs_image_put_count(&b, &pos), 0);
	for (i = 0; i < n; i++)
		CHECK_EQ(cs_image_put_sigaction(&b, &s[i]), 0);
	cs_image_set_count(&b, pos, (uint32_t)n);
	return build1(CS_SECT_SIGNALS, &b);
}

static void test_signals(void)
{
	static struct cs_image_sigaction s[CS_IMAGE_SIGNALS + 1];
	size_t i, len;

	memset(s, 0, sizeof(s));
	for (i = 0; i <= CS_IMAGE_SIGNALS; i++)
		s[i].signo = (uint32_t)i + 1;
	EXPECT(img_buf, build_sigs(s, CS_IMAGE_SIGNALS), CS_IMG_OK, 0, "");
	/* 65 records: the count is refused */
	s[CS_IMAGE_SIGNALS].signo = CS_IMAGE_SIGNALS;
	EXPECT(img_buf, build_sigs(s, CS_IMAGE_SIGNALS + 1), CS_IMG_BAD_RECORD, CS_SECT_SIGNALS,
	       "count 65 exceeds 64");
	s[0].signo = 0;
	EXPECT(img_buf, build_sigs(s, 1), CS_IMG_BAD_RECORD, CS_SECT_SIGNALS,
	       "signo 0 is outside 1..64");
	s[0].signo = CS_IMAGE_SIGNALS + 1;
	EXPECT(img_buf, build_sigs(s, 1), CS_IMG_BAD_RECORD, CS_SECT_SIGNALS, "signo 65 is outside");
	s[0].signo = 9, s[1].signo = 9;
	EXPECT(img_buf, build_sigs(s, 2), CS_IMG_BAD_RECORD, CS_SECT_SIGNALS,
	       "record 1: signo 9 is outside 1..64 or not above the previous 9");
	s[0].reserved = 7; /* the encoder writes reserved as 0 */
	len = build_sigs(s, 1);
	EXPECT(img_buf, len, CS_IMG_OK, 0, "");
	patch32(img_buf, len, CS_SECT_SIGNALS, 8, 7);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_SIGNALS, "reserved is 0x7, not 0");
}

static size_t build_timers(const struct cs_image_timer *t, size_t n)
{
	static uint8_t rec[1 << 12];
	struct cs_buf b = {rec, 0, sizeof(rec)};
	size_t pos, i;

	CHECK_EQ(cs_image_put_count(&b, &pos), 0);
	for (i = 0; i < n; i++)
		CHECK_EQ(cs_image_put_timer(&b, &t[i]), 0);
	cs_image_set_count(&b, pos, (uint32_t)n);
	return build1(CS_SECT_TIMERS, &b);
}

/* Kinds 1..4, POSIX fields only on POSIX timers, sorted by (kind, id). */
static void test_timers(void)
{
	struct cs_image_timer t[3];

	memset(t, 0, sizeof(t));
	t[0].kind = CS_TIMER_REAL, t[1].kind = CS_TIMER_POSIX, t[2].kind = CS_TIMER_POSIX;
	t[1].id = 0, t[2].id = 7, t[2].notify = CS_TIMER_NOTIFY_THREAD_ID, t[2].signo = 64;
	EXPECT(img_buf, build_timers(t, 3), CS_IMG_OK, 0, "");
	t[2].id = 0;
	EXPECT(img_buf, build_timers(t, 3), CS_IMG_BAD_RECORD, CS_SECT_TIMERS,
	       "record 2: kind 4 id 0 is not above the previous kind 4 id 0");
	t[2].id = -1;
	EXPECT(img_buf, build_timers(t, 3), CS_IMG_BAD_RECORD, CS_SECT_TIMERS,
	       "timer id -1 is negative");
	t[2].id = 7, t[2].signo = 65;
	EXPECT(img_buf, build_timers(t, 3), CS_IMG_BAD_RECORD, CS_SECT_TIMERS, "signo 65 is above 64");
	t[2].signo = 1, t[2].notify = 2; /* SIGEV_THREAD: glibc's, never in an image */
	EXPECT(img_buf, build_timers(t, 3), CS_IMG_BAD_RECORD, CS_SECT_TIMERS, "unknown notify 2");
	t[0].kind = 5;
	EXPECT(img_buf, build_timers(t, 1), CS_IMG_BAD_RECORD, CS_SECT_TIMERS, "unknown kind 5");
	t[0].kind = CS_TIMER_PROF, t[0].signo = 14;
	EXPECT(img_buf, build_timers(t, 1), CS_IMG_BAD_RECORD, CS_SECT_TIMERS,
	       "an interval timer (kind 3) has POSIX fields set");
}

static size_t build_sigqueue(struct cs_image_sigqueued *q, size_t n)
{
	static uint8_t rec[1 << 12];
	struct cs_buf b = {rec, 0, sizeof(rec)};
	size_t pos, i;

	CHECK_EQ(cs_image_put_count(&b, &pos), 0);
	for (i = 0; i < n; i++)
		CHECK_EQ(cs_image_put_sigqueued(&b, &q[i]), 0);
	cs_image_set_count(&b, pos, (uint32_t)n);
	return build1(CS_SECT_SIGQUEUE, &b);
}

static void sigq_set(struct cs_image_sigqueued *q, int32_t tid, uint32_t signo)
{
	memset(q, 0, sizeof(*q));
	q->tid = tid, q->signo = signo;
	put_le32(q->info, signo);
}

/* Queues by tid, signo 1..64 and the siginfo's own, a standard signal once
 * per queue (real-time ones any number of times). */
static void test_sigqueue(void)
{
	struct cs_image_sigqueued q[4];

	sigq_set(&q[0], 0, 10), sigq_set(&q[1], 0, 35), sigq_set(&q[2], 0, 35);
	sigq_set(&q[3], 4, 10);
	EXPECT(img_buf, build_sigqueue(q, 4), CS_IMG_OK, 0, "");
	sigq_set(&q[2], 0, 10);
	EXPECT(img_buf, build_sigqueue(q, 4), CS_IMG_BAD_RECORD, CS_SECT_SIGQUEUE,
	       "record 2: standard signal 10 is queued twice for tid 0");
	sigq_set(&q[2], 5, 35);
	EXPECT(img_buf, build_sigqueue(q, 4), CS_IMG_BAD_RECORD, CS_SECT_SIGQUEUE,
	       "record 3: tid 4 is negative or below the previous 5");
	sigq_set(&q[2], 0, 65);
	EXPECT(img_buf, build_sigqueue(q, 3), CS_IMG_BAD_RECORD, CS_SECT_SIGQUEUE,
	       "signo 65 is outside 1..64 or differs from si_signo 65");
	sigq_set(&q[2], 0, 36);
	q[2].signo = 37;
	EXPECT(img_buf, build_sigqueue(q, 3), CS_IMG_BAD_RECORD, CS_SECT_SIGQUEUE,
	       "signo 37 is outside 1..64 or differs from si_signo 36");
	sigq_set(&q[0], -1, 10);
	EXPECT(img_buf, build_sigqueue(q, 1), CS_IMG_BAD_RECORD, CS_SECT_SIGQUEUE,
	       "tid -1 is negative");
}

static size_t build_seccomp(const struct cs_image_seccomp *f, size_t n)
{
	static uint8_t rec[1 << 12];
	struct cs_buf b = {rec, 0, sizeof(rec)};
	size_t pos, i;

	CHECK_EQ(cs_image_put_count(&b, &pos), 0);
	for (i = 0; i < n; i++)
		CHECK_EQ(cs_image_put_seccomp(&b, &f[i]), 0);
	cs_image_set_count(&b, pos, (uint32_t)n);
	return build1(CS_SECT_SECCOMP, &b);
}

/* Threads by tid (> 0), known flags, whole instructions. */
static void test_seccomp(void)
{
	static const uint8_t prog[16] = {6};
	struct cs_image_seccomp f[2] = {{5, 0, 8, prog}, {5, CS_SECCOMP_FLAG_LOG, 16, prog}};

	EXPECT(img_buf, build_seccomp(f, 2), CS_IMG_OK, 0, "");
	f[1].tid = 4;
	EXPECT(img_buf, build_seccomp(f, 2), CS_IMG_BAD_RECORD, CS_SECT_SECCOMP,
	       "record 1: tid 4 (after 5), flags 0x2 or a program of 16 bytes is invalid");
	f[1].tid = 6, f[1].flags = 1; /* TSYNC is how, not what: never in an image */
	EXPECT(img_buf, build_seccomp(f, 2), CS_IMG_BAD_RECORD, CS_SECT_SECCOMP, "flags 0x1");
	f[1].flags = 0, f[1].len = 12;
	EXPECT(img_buf, build_seccomp(f, 2), CS_IMG_BAD_RECORD, CS_SECT_SECCOMP,
	       "a program of 12 bytes is invalid");
	f[0].len = 0;
	EXPECT(img_buf, build_seccomp(f, 1), CS_IMG_BAD_RECORD, CS_SECT_SECCOMP,
	       "a program of 0 bytes is invalid");
}

static size_t build_attrs(const struct cs_image_attrs *a)
{
	uint8_t rec[64];
	struct cs_buf b = {rec, 0, sizeof(rec)};

	CHECK_EQ(cs_image_put_attrs(&b, a), 0);
	return build1(CS_SECT_ATTRS, &b);
}

static void test_attrs(void)
{
	struct cs_image_attrs a = {-1000, 1, 1, 2, 1u << 8, 0, 0, 0, 0, {0}};

	EXPECT(img_buf, build_attrs(&a), CS_IMG_OK, 0, "");
	a.oom_score_adj = 1001;
	EXPECT(img_buf, build_attrs(&a), CS_IMG_BAD_RECORD, CS_SECT_ATTRS,
	       "oom_score_adj 1001 is outside -1000..1000");
	a.oom_score_adj = 0, a.thp_disable = 2;
	EXPECT(img_buf, build_attrs(&a), CS_IMG_BAD_RECORD, CS_SECT_ATTRS,
	       "child_subreaper 1 or thp_disable 2 is not 0 or 1");
	a.thp_disable = 0, a.dumpable = 3;
	EXPECT(img_buf, build_attrs(&a), CS_IMG_BAD_RECORD, CS_SECT_ATTRS, "dumpable 3 is above 2");
	a.dumpable = 1, a.membarrier = 1u << 5;
	EXPECT(img_buf, build_attrs(&a), CS_IMG_BAD_RECORD, CS_SECT_ATTRS,
	       "unknown membarrier registrations 0x20");
	a.membarrier = 0, a.nice = 20;
	EXPECT(img_buf, build_attrs(&a), CS_IMG_BAD_RECORD, CS_SECT_ATTRS,
	       "nice 20, sched_policy 0x0 or sched_priority 0 is out of range");
	a.nice = 0, a.sched_policy = 4; /* SCHED_ISO: never granted by Linux */
	EXPECT(img_buf, build_attrs(&a), CS_IMG_BAD_RECORD, CS_SECT_ATTRS, "sched_policy 0x4");
	a.sched_policy = 6; /* SCHED_DEADLINE: refused at checkpoint */
	EXPECT(img_buf, build_attrs(&a), CS_IMG_BAD_RECORD, CS_SECT_ATTRS, "sched_policy 0x6");
	a.sched_policy = 1 | CS_SCHED_RESET_ON_FORK, a.sched_priority = 100;
	EXPECT(img_buf, build_attrs(&a), CS_IMG_BAD_RECORD, CS_SECT_ATTRS, "sched_priority 100");
}

static size_t build_resident(const struct cs_image_run *r, size_t n)
{
	uint8_t rec[256];
	struct cs_buf b = {rec, 0, sizeof(rec)};
	size_t pos, i;

	CHECK_EQ(cs_image_put_count(&b, &pos), 0);
	for (i = 0; i < n; i++)
		CHECK_EQ(cs_image_put_run(&b, &r[i]), 0);
	cs_image_set_count(&b, pos, (uint32_t)n);
	return build1(CS_SECT_RESIDENT, &b);
}

/* Page runs: inside [0, 2^47), aligned, npages > 0, sorted and disjoint. */
static void test_runs(void)
{
	const uint64_t top = 1ull << 47;
	struct cs_image_run r[2];
	size_t len;

#define RUNS(n, a0, n0, a1, n1, code, want)                                                        \
	do {                                                                                       \
		r[0].addr = a0, r[0].npages = n0, r[1].addr = a1, r[1].npages = n1;               \
		EXPECT(img_buf, build_resident(r, n), code, CS_SECT_RESIDENT, want);              \
	} while (0)
	RUNS(2, 0, 1, 0x1000, 1, CS_IMG_OK, "");
	RUNS(1, top - 0x1000, 1, 0, 0, CS_IMG_OK, "");
	RUNS(1, 0, (uint32_t)(UINT32_MAX), 0, 0, CS_IMG_OK, ""); /* 16 TiB, still below 2^47 */
	RUNS(1, top - 0x1000, 2, 0, 0, CS_IMG_BAD_RECORD, "+ 2 pages is not below 2^47");
	RUNS(1, top, 1, 0, 0, CS_IMG_BAD_RECORD, "run 0x800000000000 + 1 pages is not below 2^47");
	RUNS(1, UINT64_MAX & ~0xfffull, UINT32_MAX, 0, 0, CS_IMG_BAD_RECORD, "is not below 2^47");
	RUNS(1, 0x1000, 0, 0, 0, CS_IMG_BAD_RECORD, "run at 0x1000 has npages 0");
	RUNS(1, 0x1800, 1, 0, 0, CS_IMG_BAD_RECORD, "run address 0x1800 is not page aligned");
	RUNS(2, 0x1000, 2, 0x2000, 1, CS_IMG_BAD_RECORD,
	     "record 1: run 0x2000 is below the previous run's end 0x3000");
	RUNS(2, 0x5000, 1, 0x1000, 1, CS_IMG_BAD_RECORD, "runs must be sorted and disjoint");
#undef RUNS
	r[0].addr = 0, r[0].npages = 1;
	len = build_resident(r, 1);
	patch32(img_buf, len, CS_SECT_RESIDENT, 4 + 12, 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_RESIDENT, "reserved is 0x1, not 0");
}

/* A PAGES payload: run heads (addr, npages) each followed by npages pages. */
static size_t pages_payload(uint8_t *out, const uint64_t *addr, const uint32_t *np, size_t n)
{
	struct cs_buf b = {out, 0, 1 << 16};
	size_t i;

	for (i = 0; i < n; i++) {
		CHECK_EQ(cs_image_put_page_run_head(&b, addr[i], np[i]), 0);
		memset(out + b.len, (int)i + 1, (size_t)np[i] * CS_IMAGE_PAGE_SIZE);
		b.len += (size_t)np[i] * CS_IMAGE_PAGE_SIZE;
	}
	return b.len;
}

static void test_pages(void)
{
	static uint8_t p1[1 << 16], p2[1 << 16];
	uint64_t a[2] = {0x2000, 0x4000};
	uint32_t np[2] = {2, 1};
	struct cs_image_header h;
	struct sec s[2] = {{CS_SECT_PAGES, p1, 0}, {CS_SECT_PAGES, p2, 0}};
	struct cs_image_error err;
	struct cs_image *img;
	size_t len, off;

	valid_header(&h);
	s[0].len = pages_payload(p1, a, np, 2);
	s[1].len = pages_payload(p2, (uint64_t[]){0x5000}, (uint32_t[]){1}, 1);
	len = build(&h, s, 2);
	CHECK_EQ(cs_image_parse(img_buf, len, 0, &img, &err), 0);
	if (img) {
		CHECK_EQ(img->n_page_runs, 3);
		CHECK_EQ(img->page_runs[1].addr, 0x4000);
		off = section_off(img_buf, len, CS_SECT_PAGES);
		CHECK_EQ(img->page_runs[1].file_offset, off + 16 + 16 + 2 * 4096 + 16);
		CHECK_EQ(img_buf[img->page_runs[1].file_offset], 2);
		CHECK_EQ(img_buf[img->page_runs[2].file_offset + 4095], 1);
		cs_image_free(img);
	}
	/* order holds across PAGES sections */
	s[1].len = pages_payload(p2, (uint64_t[]){0x4000}, (uint32_t[]){1}, 1);
	len = build(&h, s, 2);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES,
	       "record 0: run 0x4000 is below the previous run's end 0x5000");
	/* a run's pages past the section's end */
	s[0].len -= 1;
	len = build(&h, s, 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES,
	       "record 1: page data (4096 bytes) runs past the end of the section (4095 left)");
	/* a partial run head */
	s[0].len = 10;
	len = build(&h, s, 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES, "record 0: npages (4 bytes) runs past");
	s[0].len = pages_payload(p1, a, np, 1);
	len = build(&h, s, 1);
	patch32(img_buf, len, CS_SECT_PAGES, 12, 9);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES, "reserved is 0x9, not 0");
	patch32(img_buf, len, CS_SECT_PAGES, 12, 0);
	patch32(img_buf, len, CS_SECT_PAGES, 8, 0);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES, "has npages 0");
}

/* A PAGES_ALIGNED payload: count, data_off, run heads, pad zeros, then the
 * pages of every run (run i's bytes are i + 1). */
static size_t aligned_payload(uint8_t *out, uint32_t data_off, const uint64_t *addr,
                              const uint32_t *np, uint32_t n)
{
	struct cs_buf b = {out, 0, 1 << 16};
	size_t i, len;

	CHECK_EQ(cs_image_put_aligned_pages_head(&b, n, data_off), 0);
	for (i = 0; i < n; i++)
		CHECK_EQ(cs_image_put_page_run_head(&b, addr[i], np[i]), 0);
	memset(out + b.len, 0, data_off - b.len);
	for (i = 0, len = data_off; i < n; i++) {
		memset(out + len, (int)i + 1, (size_t)np[i] * CS_IMAGE_PAGE_SIZE);
		len += (size_t)np[i] * CS_IMAGE_PAGE_SIZE;
	}
	return len;
}

static void test_aligned_pages(void)
{
	static uint8_t p1[1 << 16], p2[1 << 16];
	uint64_t a[2] = {0x2000, 0x4000};
	uint32_t np[2] = {2, 1};
	struct cs_image_header h;
	struct sec s[2] = {{CS_SECT_PAGES_ALIGNED, p1, 0}, {CS_SECT_PAGES, p2, 0}};
	struct cs_image_error err;
	struct cs_image *img;
	size_t len, off;

	valid_header(&h);
	s[0].len = aligned_payload(p1, 140, a, np, 2);
	len = build(&h, s, 1);
	CHECK_EQ(cs_image_parse(img_buf, len, 0, &img, &err), 0);
	if (img) {
		off = section_off(img_buf, len, CS_SECT_PAGES_ALIGNED) + 16;
		CHECK_EQ(img->n_page_runs, 2);
		CHECK_EQ(img->page_runs[0].file_offset, off + 140);
		CHECK_EQ(img->page_runs[1].file_offset, off + 140 + 2 * 4096);
		CHECK_EQ(img_buf[img->page_runs[1].file_offset], 2);
		cs_image_free(img);
	}
	/* the writer's data_off lands the bytes on a 4096-byte boundary */
	CHECK_EQ(cs_image_aligned_data_off(4096 - 16, 2), 4096);
	CHECK_EQ(cs_image_aligned_data_off(100, 2), 4096 - 116);
	s[0].len = aligned_payload(p1, 40, a, np, 2); /* data right after the heads */
	len = build(&h, s, 1);
	CHECK_EQ(cs_image_parse(img_buf, len, 0, &img, &err), 0);
	cs_image_free(img);
	s[0].len = aligned_payload(p1, 140, a, np, 2);
	len = build(&h, s, 1);
	patch32(img_buf, len, CS_SECT_PAGES_ALIGNED, 4, 39);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES_ALIGNED,
	       "data_off 39: 2 run heads end at 40");
	patch32(img_buf, len, CS_SECT_PAGES_ALIGNED, 4, 40 + 4096);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES_ALIGNED,
	       "the padding after them must be under 4096 bytes");
	patch32(img_buf, len, CS_SECT_PAGES_ALIGNED, 4, 140);
	patch32(img_buf, len, CS_SECT_PAGES_ALIGNED, 100, 7);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES_ALIGNED,
	       "padding byte at 100 is 0x07, not 0");
	/* bytes after the last run's data, and data cut short */
	s[0].len += 4096;
	len = build(&h, s, 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES_ALIGNED,
	       "4096 bytes follow the last run's data");
	s[0].len -= 4097;
	len = build(&h, s, 1);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES_ALIGNED,
	       "record 1: page data (4096 bytes at 8332) runs past the end of the section (12427 "
	       "bytes)");
	/* more heads than the payload holds */
	s[0].len = aligned_payload(p1, 140, a, np, 2);
	len = build(&h, s, 1);
	patch32(img_buf, len, CS_SECT_PAGES_ALIGNED, 0, 1000);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES_ALIGNED,
	       "data_off 140: 1000 run heads");
	/* order holds across PAGES_ALIGNED and PAGES */
	s[1].len = pages_payload(p2, (uint64_t[]){0x3000}, (uint32_t[]){1}, 1);
	len = build(&h, s, 2);
	EXPECT(img_buf, len, CS_IMG_BAD_RECORD, CS_SECT_PAGES,
	       "record 0: run 0x3000 is below the previous run's end 0x5000");
}

int main(void)
{
	test_truncation();
	test_bit_flips(0, 1);
	test_bit_flips(1, 61);
	test_skip_page_crc();
	test_not_an_image();
	test_section_lengths();
	test_section_order();
	test_end();
	test_header_fields();
	test_string_limits();
	test_process_limits();
	test_mappings();
	test_error_message();
	test_fds();
	test_timers();
	test_sigqueue();
	test_seccomp();
	test_attrs();
	test_signals();
	test_runs();
	test_pages();
	test_aligned_pages();
	return check_report("image damage");
}
