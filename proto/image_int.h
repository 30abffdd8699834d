/*
 * Internal to the image code: the bounds-checked reader the parser
 * (image.c) and the record decoders (image_records.c) share.
 */
#ifndef CS_PROTO_IMAGE_INT_H
#define CS_PROTO_IMAGE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

#define CS_SECT_HEAD 16u   /* type, flags, payload_len */
#define CS_SECT_TRAILER 4u /* crc32c */
#define CS_IMAGE_ADDR_LIMIT (1ull << 47) /* page runs live below this */

/* Fixed sizes of records (docs/image-format.md); variable parts follow. */
#define CS_REC_HEADER_FIXED  88u
#define CS_REC_PROCESS_FIXED 388u
#define CS_REC_MAPPING_FIXED 64u
#define CS_REC_THREAD        72u
#define CS_REC_FD_FIXED      88u
#define CS_REC_SIGACTION     40u
#define CS_REC_RUN           16u
#define CS_REC_END           12u
#define CS_REC_CREDS_FIXED   92u
#define CS_REC_TIMER         48u
#define CS_REC_ATTRS         32u /* fixed part; the affinity mask follows */
#define CS_REC_SIGQUEUED     (8u + CS_IMAGE_SIGINFO)

/*
 * A cursor over one section's payload. Every getter checks the bytes left
 * before it reads, and on failure fills err with a sentence that names the
 * section, its offset, the record and the field.
 */
struct cs_rd {
	const uint8_t *p; /* the payload */
	size_t len, pos;
	uint64_t base;  /* image offset of p[0] */
	uint64_t mark;  /* image offset of the field read last */
	uint32_t section;
	uint64_t sect_off;
	long record; /* index of the record being decoded, -1 outside records */
	struct cs_image_error *err;
};

int cs_rd_fail(struct cs_rd *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int cs_rd_need(struct cs_rd *r, const char *what, size_t n); /* marks the field too */
int cs_rd_u32(struct cs_rd *r, const char *what, uint32_t *v);
int cs_rd_u64(struct cs_rd *r, const char *what, uint64_t *v);
int cs_rd_i32(struct cs_rd *r, const char *what, int32_t *v);
int cs_rd_i64(struct cs_rd *r, const char *what, int64_t *v);
/* u32 length + bytes into a char[cap]: at most cap - 1 bytes, no NUL inside. */
int cs_rd_str(struct cs_rd *r, const char *what, char *dst, size_t cap);
/* u32 length + bytes into dst[max]. */
int cs_rd_blob(struct cs_rd *r, const char *what, uint8_t *dst, size_t max, uint32_t *ret_len);
/* A record count, refused before allocation unless count * min_rec bytes are left. */
int cs_rd_count(struct cs_rd *r, const char *what, size_t min_rec, uint32_t max, uint32_t *ret);
int cs_rd_done(struct cs_rd *r); /* no bytes may follow the last record */

uint32_t cs_img_le32(const uint8_t *p);
uint8_t *cs_img_put32(uint8_t *p, uint32_t v); /* returns p + 4 */
uint8_t *cs_img_put64(uint8_t *p, uint64_t v); /* returns p + 8 */
uint64_t cs_img_le64(const uint8_t *p);

/* Section decoders: each fills its part of img from a whole payload. */
int cs_img_decode_header(struct cs_rd *r, struct cs_image_header *h);
int cs_img_decode_process(struct cs_rd *r, struct cs_image_process *p);
int cs_img_decode_mappings(struct cs_rd *r, struct cs_image *img);
int cs_img_decode_threads(struct cs_rd *r, struct cs_image *img);
int cs_img_decode_fds(struct cs_rd *r, struct cs_image *img);
int cs_img_decode_signals(struct cs_rd *r, struct cs_image *img);
int cs_img_decode_resident(struct cs_rd *r, struct cs_image *img);
int cs_img_decode_unsupported(struct cs_rd *r, struct cs_image *img);
int cs_img_decode_creds(struct cs_rd *r, struct cs_image_creds *c);
int cs_img_decode_timers(struct cs_rd *r, struct cs_image *img);
int cs_img_decode_attrs(struct cs_rd *r, struct cs_image *img);
int cs_img_decode_sigqueue(struct cs_rd *r, struct cs_image *img);
int cs_img_decode_seccomp(struct cs_rd *r, struct cs_image *img);
/* Page runs in one PAGES payload; *pages_end carries ordering across sections. */
int cs_img_decode_pages(struct cs_rd *r, struct cs_image *img, uint64_t *pages_end);
int cs_img_decode_aligned_pages(struct cs_rd *r, struct cs_image *img, uint64_t *pages_end);
/* Page run checks shared by RESIDENT and PAGES. */
int cs_img_check_run(struct cs_rd *r, uint64_t addr, uint32_t npages, uint64_t prev_end);
int cs_img_no_memory(struct cs_rd *r);

#endif
