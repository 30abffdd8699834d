/*
 * Checkpoint image: round trip of every record type, known-answer bytes,
 * the writer's contract (exact lengths, -ENOSPC leaves the buffer alone,
 * a failed write stays failed), names, and the fuzz seed corpus.
 *
 *   test_image                   run the tests
 *   test_image --check-corpus D  every file in D must parse
 *   test_image --write-corpus D  (re)write the seed corpus into D
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "image_sample.h"

/* ---- Known answer: a small complete image ------------------------------- */

/* HEADER (base, generation 1), THREADS (one thread), RESIDENT (one run of 2
 * pages at 0x400000), END. Every byte is explained in docs/image-format.md;
 * change this only together with the format version. */
static const char kat_hex[] =
	/* HEADER: type 1, flags 0, payload_len 106 */
	"01000000" "00000000" "6a00000000000000"
	"4353594e43494d47" "01000000" /* "CSYNCIMG", version 1 */
	"01000000" "00100000" "00000000" "00000000" "40030000" /* arch page flags track xsz */
	"0100000000000000" "0000000000000000" "0100000000000000" /* gen parent base */
	"0700000000000000" /* xsave_features */
	"8877665544332211" "1000000000000000" "2000000000000000" /* clocks */
	"06000000" "362e31382e30" /* kernel_release "6.18.0" */
	"04000000" "deadbeef"     /* exe_build_id */
	"KAT_CRC_HEADER"
	/* THREADS: type 4, payload_len 76: count 1, one 72-byte record */
	"04000000" "00000000" "4c00000000000000" "01000000"
	"2a000000" "01000000" "00f0000000fe7f0000" "0001000000007f0000"
	"KAT_REST";

/* Filled in from the generator once and reviewed by hand, see below. */
static const char *kat_full_hex;

static void kat_contents(struct sample *s)
{
	memset(s, 0, sizeof(*s));
	s->header.arch = CS_ARCH_X86_64;
	s->header.page_size = CS_IMAGE_PAGE_SIZE;
	s->header.generation = 1;
	s->header.base_generation = 1;
	s->header.xsave_features = 7;
	s->header.xsave_size = 0x340;
	s->header.clock_realtime_ns = 0x1122334455667788ll;
	s->header.clock_monotonic_ns = 0x10;
	s->header.clock_boottime_ns = 0x20;
	strcpy(s->header.kernel_release, "6.18.0");
	memcpy(s->header.exe_build_id, "\xde\xad\xbe\xef", 4);
	s->header.exe_build_id_len = 4;
	s->n_threads = 1;
	s->threads[0].tid = 42;
	s->threads[0].flags = CS_THREAD_MAIN;
	s->threads[0].ucontext_addr = 0x7ffe0000f000ull;
	s->threads[0].fs_base = 0x7f0000000100ull;
	s->threads[0].rseq_len = 32;
	s->threads[0].rseq_sig = 0x53053053;
	s->n_res = 1;
	s->res[0].addr = 0x400000;
	s->res[0].npages = 2;
}

static int kat_write(const struct sample *s, struct membuf *m)
{
	uint8_t scratch[512];
	struct cs_buf b = {scratch, 0, sizeof(scratch)};
	struct cs_image_writer w;

	cs_image_writer_init(&w, mem_write, m);
	TRYW(cs_image_put_header(&b, &s->header));
	TRYW(cs_image_write_section(&w, CS_SECT_HEADER, &b));
	PUT_ALL(&b, cs_image_put_thread, s->threads, s->n_threads);
	TRYW(cs_image_write_section(&w, CS_SECT_THREADS, &b));
	PUT_ALL(&b, cs_image_put_run, s->res, s->n_res);
	TRYW(cs_image_write_section(&w, CS_SECT_RESIDENT, &b));
	return cs_image_write_end(&w);
}
