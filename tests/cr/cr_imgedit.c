/*
 * cr-imgedit IMAGE FIELD: rewrites one kernel-ABI field of a checkpoint
 * image in place and fixes the section CRC, so the image stays well formed
 * and only the field differs. The refusal tests use it to fake an image
 * taken on another kernel build.
 *
 *   kernel_release  HEADER: the last character of uname -r changes
 *   xsave_features  HEADER: XCR0 gains bit 62 (no CPU has it)
 *   xsave_size      HEADER: the FPU frame size grows by 64
 *   vdso_crc        PROCESS: the CRC of the [vdso] bytes changes
 *   drop_seccomp    SECCOMP: becomes a skippable section of an unknown
 *                   type, so a reader ignores the filters (a forged image)
 *
 * The field is located by encoding the decoded record with the proto
 * encoders and finding those bytes in the section payload, so this helper
 * does not repeat the record layout; the edited record must encode to the
 * same length.
 */
#include "crc32c.h"
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECT_HEAD 16u

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Finds the section of the given type; returns its offset or -1. */
static long find_section(const uint8_t *buf, size_t len, uint32_t type)
{
	size_t off = 0;
	while (off + SECT_HEAD + 4 <= len) {
		uint64_t plen = get64(buf + off + 8);
		if (plen > len - off - SECT_HEAD - 4)
			return -1;
		if (get32(buf + off) == type)
			return (long)off;
		off += SECT_HEAD + plen + 4;
	}
	return -1;
}

static int encode(uint32_t type, const struct cs_image *img, const char *field,
		  struct cs_buf *b)
{
	if (type == CS_SECT_HEADER) {
		struct cs_image_header h = img->header;
		size_t n = strlen(h.kernel_release);
		if (field && strcmp(field, "kernel_release") == 0 && n > 0)
			h.kernel_release[n - 1] = h.kernel_release[n - 1] == 'X' ? 'Y' : 'X';
		if (field && strcmp(field, "xsave_features") == 0)
			h.xsave_features |= 1ull << 62;
		if (field && strcmp(field, "xsave_size") == 0)
			h.xsave_size += 64;
		return cs_image_put_header(b, &h);
	}
	static struct cs_image_process p;
	p = img->process;
	if (field)
		p.vdso_crc ^= 0x5a5a5a5au;
	return cs_image_put_process(b, &p);
}

/* The SECCOMP section turned into one a reader skips: the image keeps
 * its CRCs and END, and carries no filters. */
static int drop_seccomp(uint8_t *buf, size_t len)
{
	long off = find_section(buf, len, CS_SECT_SECCOMP);
	if (off < 0)
		return -ENOENT;
	uint64_t plen = get64(buf + off + 8);
	put32(buf + off, 0x7fff);
	put32(buf + off + 4, CS_SECT_F_SKIPPABLE);
	put32(buf + off + SECT_HEAD + plen, cs_crc32c(0, buf + off, SECT_HEAD + plen));
	return 0;
}

static int edit(uint8_t *buf, size_t len, const struct cs_image *img, const char *field)
{
	if (strcmp(field, "drop_seccomp") == 0)
		return drop_seccomp(buf, len);
	uint32_t type = strcmp(field, "vdso_crc") == 0 ? CS_SECT_PROCESS : CS_SECT_HEADER;
	static uint8_t a[64 * 1024], b[64 * 1024];
	struct cs_buf orig = {a, 0, sizeof(a)}, mod = {b, 0, sizeof(b)};
	long off = find_section(buf, len, type);
	if (off < 0 || encode(type, img, NULL, &orig) < 0 || encode(type, img, field, &mod) < 0)
		return -EINVAL;
	if (orig.len != mod.len || memcmp(orig.data, mod.data, orig.len) == 0)
		return -EPROTO;
	uint64_t plen = get64(buf + off + 8);
	uint8_t *payload = buf + off + SECT_HEAD;
	uint8_t *at = memmem(payload, plen, orig.data, orig.len);
	if (!at)
		return -ENOENT;
	memcpy(at, mod.data, mod.len);
	put32(payload + plen, cs_crc32c(0, buf + off, SECT_HEAD + plen));
	return 0;
}

int main(int argc, char **argv)
{
	struct cs_image *img = NULL;
	struct cs_image_error err;
	struct stat st;
	if (argc != 3) {
		fprintf(stderr, "usage: cr-imgedit IMAGE "
		                "kernel_release|xsave_features|xsave_size|vdso_crc|drop_seccomp\n");
		return 2;
	}
	int fd = open(argv[1], O_RDWR);
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(argv[1]);
		return 1;
	}
	uint8_t *buf = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (cs_image_parse(buf, (size_t)st.st_size, CS_IMAGE_PARSE_SKIP_PAGE_CRC, &img, &err) < 0) {
		fprintf(stderr, "%s: %s\n", argv[1], err.msg);
		return 1;
	}
	int r = edit(buf, (size_t)st.st_size, img, argv[2]);
	cs_image_free(img);
	if (r < 0) {
		fprintf(stderr, "%s: cannot edit %s: %s\n", argv[1], argv[2], strerror(-r));
		return 1;
	}
	if (msync(buf, (size_t)st.st_size, MS_SYNC) < 0 || fsync(fd) < 0) {
		perror("msync");
		return 1;
	}
	return 0;
}
