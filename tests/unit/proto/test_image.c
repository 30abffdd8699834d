/*
 * Checkpoint image: round trip of every record type, known-answer bytes,
 * the writer's contract (exact lengths, -ENOSPC leaves the buffer alone,
 * a failed write stays failed), names, and the fuzz seed corpus.
 *
 *   test_image                   run the tests
 *   test_image --check-corpus D  every file in D must parse
 *   test_image --write-corpus D  (re)write the seed corpus into D
 *   test_image --print-vectors   print the record vectors (to review, not to paste blindly)
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
 * the bytes were checked against an independent encoder written from that
 * spec (Python struct + bitwise CRC-32C). Change them only together with the
 * format version. */
static const char kat_hex[] =
	/* HEADER: type 1, flags 0, payload_len 106; "CSYNCIMG", version 3, arch 1,
	 * page_size 4096, flags 0, tracking 0, xsave_size 0x340, generation 1,
	 * parent 0, base 1, xsave_features 7, clocks, "6.18.0", build-id deadbeef, CRC */
	"01000000000000006a000000000000004353594e43494d470300000001000000"
	"0010000000000000000000004003000001000000000000000000000000000000"
	"0100000000000000070000000000000088776655443322111000000000000000"
	"200000000000000006000000362e31382e3004000000deadbeef94a7bffa"
	/* THREADS: payload_len 76: count 1, tid 42, flags MAIN, ucontext_addr,
	 * fs_base, gs_base, clear_child_tid, robust_list(+len), rseq addr/len/sig, CRC */
	"04000000000000004c00000000000000010000002a0000000100000000f00000"
	"fe7f000000010000007f00000000000000000000000000000000000000000000"
	"0000000000000000000000000000000000000000200000005330055356778525"
	/* RESIDENT: payload_len 20: count 1, addr 0x400000, npages 2, reserved, CRC */
	"0700000000000000140000000000000001000000000040000000000002000000"
	"00000000a8b2580f"
	/* END: payload_len 12: 3 sections, 262 bytes before END, CRC */
	"0f000000000000000c0000000000000003000000060100000000000035246c7f";

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

/* One record of every other type with distinct small values in every field
 * (field k holds k where it can), so a swapped or resized field changes the
 * bytes. image_spec_check.py encodes the same values from the document and
 * must produce these same bytes. */
static const struct {
	const char *name, *hex;
} record_kat[] = {
	{"process",
		"0100000002000000030000000400000005000000000000000600000000000000"
		"0700000000000000080000000000000009000000000000000a00000000000000"
		"0b000000000000000c000000000000000d000000000000000e00000000000000"
		"0f00000000000000100000000000000011000000000000001200000000000000"
		"1300000000000000140000000000000015000000000000001600000000000000"
		"1700000000000000180000000000000019000000000000001a00000000000000"
		"1b000000000000001c000000000000001d000000000000001e00000000000000"
		"1f00000000000000200000000000000021000000000000002200000000000000"
		"2300000000000000240000000000000025000000000000002600000000000000"
		"2700000000000000280000000000000029000000000000002a00000000000000"
		"2b000000000000002c000000000000002d000000000000002e00000000000000"
		"2f00000000000000300000000000000031000000000000003200000000000000"
		"3300000002000000a1a20100000063020000002f77020000002f78"},
	{"mapping",
		"0010000000000000003000000000000005000000091000000020000000000000"
		"060000000000000007000000000000000800000000000000f7ffffffffffffff"
		"03000000b1b2b3040000002f6c696225000000"},
	{"fd",
		"070000000a00000002000000010000000300000000000000fcffffff05000000"
		"060000000700000008000000090000000a000000000000000b00000000000000"
		"0c0000000d0000000e000000000000000f000000000000000100000065010000"
		"000a0000000000000000010000000300000019000000dd000000000000000500"
		"000001000000721000000002000000a001000000000000010000000600000009"
		"00000004000000010000000100000003000000020000000a00000000000000ff"
		"ffffffffffffff100000000000000002000000010000000800000006000000ff"
		"ff0000"},
	{"sigaction",
		"110000000000000000104000000000000000000400000000007f000000000000"
		"0000010000000000"},
	{"unsupported", "0d000000666420393a206e65746c696e6b"},
	{"creds",
		"0100000002000000030000000400000005000000060000000700000008000000"
		"09000000000000000a000000000000000b000000000000000c00000000000000"
		"0d000000000000000e0000000100000002000000000000000200000064000000"
		"65000000"},
	{"page_run_head", "00100000007f00000300000000000000"},
	{"timer",
		"0400000001000000020000000400000022000000050000000600000000000000"
		"07000000000000000800000000000000"},
	{"attrs", "9cffffff010000000000000002000000" "10000000"
		"fbffffff010000000500000002000000" "0f00"},
	{"seccomp", "04000000020000000800000006000000" "00000000"},
	{"sigqueued",
		"03000000230000002300000000000000ffffffff000000000700000008000000"
		"0900000000000000000000000000000000000000000000000000000000000000"
		"0000000000000000000000000000000000000000000000000000000000000000"
		"0000000000000000000000000000000000000000000000000000000000000000"
		"0000000000000000"},
};

static int record_kat_encode(size_t i, struct cs_buf *b)
{
	static struct cs_image_process p;
	static struct cs_image_mapping m;
	static struct cs_image_fd f;
	static const struct cs_image_epoll_entry ep = {3, 0x19, 0xdd, 5};
	struct cs_image_sigaction sa = {17, 0, 0x401000, 0x04000000, 0x7f00, 0x10000};
	struct cs_image_unsupported u = {"fd 9: netlink"};
	static struct cs_image_creds c = {{1, 2, 3, 4}, {5, 6, 7, 8}, 9, 10, 11, 12, 13, 14, 1, 2, 0,
					  2, {100, 101}};
	struct cs_image_timer tm = {CS_TIMER_POSIX, 1, 2, CS_TIMER_NOTIFY_THREAD_ID, 34, 5, 6, 7, 8};
	struct cs_image_attrs at = {-100, 1, 0, 2, 1u << 4, -5, 1, 5, 2, {0x0f, 0x00}};
	/* si_signo 35, si_errno 0, si_code SI_QUEUE, si_pid 7, si_uid 8, si_value 9 */
	static struct cs_image_sigqueued sq = {3, 35, {35, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff,
						       0xff, 0, 0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0, 9}};
	static const uint8_t ret_kill[8] = {6};
	struct cs_image_seccomp sc = {4, CS_SECCOMP_FLAG_LOG, 8, ret_kill};
	uint64_t *mm = &p.start_code;
	int k;

	memset(&p, 0, sizeof(p)), memset(&m, 0, sizeof(m)), memset(&f, 0, sizeof(f));
	p.pid = 1, p.ppid = 2, p.umask = 3, p.personality = 4;
	for (k = 0; k < 11; k++) /* start_code .. env_end are consecutive u64s */
		mm[k] = 5 + (uint64_t)k;
	for (k = 0; k < CS_IMAGE_RLIMITS; k++)
		p.rlimits[k].cur = 16 + 2 * (uint64_t)k, p.rlimits[k].max = 17 + 2 * (uint64_t)k;
	p.agent_addr[0] = 48, p.agent_addr[1] = 49, p.agent_addr[2] = 50;
	p.vdso_crc = 51;
	p.auxv_len = 2, p.auxv[0] = 0xa1, p.auxv[1] = 0xa2;
	strcpy(p.comm, "c"), strcpy(p.cwd, "/w"), strcpy(p.exe_path, "/x");
	m.start = 0x1000, m.end = 0x3000, m.prot = 5, m.flags = 0x1009, m.pgoff = 0x2000;
	m.dev = 6, m.ino = 7, m.file_size = 8, m.mtime_ns = -9;
	m.build_id_len = 3, m.build_id[0] = 0xb1, m.build_id[1] = 0xb2, m.build_id[2] = 0xb3;
	strcpy(m.path, "/lib");
	m.madvise = CS_MADV_DONTFORK | CS_MADV_DONTDUMP | CS_MADV_MERGEABLE;
	f.fd = 7, f.type = CS_FD_EPOLL, f.open_flags = 2, f.fd_flags = 1, f.offset = 3;
	f.family = -4, f.sock_type = 5, f.protocol = 6, f.backlog = 7, f.sock_options = 8;
	f.eventfd_flags = 9, f.pipe_id = 10, f.eventfd_count = 11, f.timer_clockid = 12;
	f.timer_flags = 13, f.timer_value_ns = 14, f.timer_interval_ns = 15;
	strcpy(f.path, "e"), f.local_len = 1, f.local_addr[0] = 0x0a;
	f.n_epoll = 1, f.epoll = &ep;
	strcpy(f.reason, "r");
	f.pipe_size = 16, f.share_fd = 2, f.file_mode = 0640, f.n_sockopts = 1;
	f.sockopts[0].level = 6, f.sockopts[0].name = 9, f.sockopts[0].len = 4;
	f.sockopts[0].val[0] = 1;
	f.n_locks = 1, f.locks[0].kind = CS_LOCK_OFD, f.locks[0].mode = CS_LOCK_WRITE;
	f.locks[0].start = 10, f.locks[0].end = CS_LOCK_EOF;
	f.peer_id = 16, f.shutdown = 2;
	f.filter_locked = 1, f.filter_len = 8, f.filter = (const uint8_t *)"\x06\0\0\0\xff\xff\0\0";
	switch (i) {
	case 0:
		return cs_image_put_process(b, &p);
	case 1:
		return cs_image_put_mapping(b, &m);
	case 2:
		return cs_image_put_fd(b, &f);
	case 3:
		return cs_image_put_sigaction(b, &sa);
	case 4:
		return cs_image_put_unsupported(b, &u);
	case 5:
		return cs_image_put_creds(b, &c);
	case 7:
		return cs_image_put_timer(b, &tm);
	case 8:
		return cs_image_put_attrs(b, &at);
	case 9:
		return cs_image_put_seccomp(b, &sc);
	case 10:
		return cs_image_put_sigqueued(b, &sq);
	default:
		return cs_image_put_page_run_head(b, 0x7f0000001000ull, 3);
	}
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	unsigned v;

	while (hex[0] && hex[1] && n < cap && sscanf(hex, "%2x", &v) == 1) {
		out[n++] = (uint8_t)v;
		hex += 2;
	}
	return n;
}

static void test_known_answer(void)
{
	static struct sample s;
	uint8_t want[512], got[512];
	struct membuf m = {got, 0, sizeof(got), 0};
	struct cs_image_error err;
	struct cs_image *img;
	size_t n = unhex(kat_hex, want, sizeof(want));

	CHECK_EQ(n, 294);
	kat_contents(&s);
	CHECK_EQ(kat_write(&s, &m), 0);
	CHECK_EQ(m.len, n);
	CHECK(memcmp(got, want, n) == 0);
	CHECK_EQ(cs_image_parse(want, n, 0, &img, &err), 0);
	if (!img)
		return;
	CHECK_EQ(sample_diff(&s, img, want), 0);
	CHECK_EQ(img->total_len, 294);
	cs_image_free(img);
}

static void test_record_vectors(int print)
{
	uint8_t got[1024], want[1024];
	struct cs_buf b = {got, 0, sizeof(got)};
	size_t i, k, n;

	for (i = 0; i < sizeof(record_kat) / sizeof(record_kat[0]); i++) {
		b.len = 0;
		CHECK_EQ(record_kat_encode(i, &b), 0);
		if (print) {
			printf("%s ", record_kat[i].name);
			for (k = 0; k < b.len; k++)
				printf("%02x", got[k]);
			printf("\n");
			continue;
		}
		n = unhex(record_kat[i].hex, want, sizeof(want));
		if (n != b.len || memcmp(got, want, n) != 0) {
			fprintf(stderr, "%s record: bytes differ from the vector\n", record_kat[i].name);
			check_failures++;
		}
	}
}

/* Every record type with every field set survives writing and parsing. */
static void test_round_trip(int full, int aligned)
{
	static struct sample s;
	static uint8_t out[1 << 19];
	struct membuf m = {out, 0, sizeof(out), 0};
	struct cs_image_error err;
	struct cs_image *img = NULL;

	sample_init(&s, full);
	s.aligned = aligned;
	CHECK_EQ(sample_write(&s, &m), 0);
	CHECK_EQ(cs_image_parse(out, m.len, 0, &img, &err), 0);
	if (!img) {
		fprintf(stderr, "parse: %s\n", err.msg);
		return;
	}
	CHECK_EQ(sample_diff(&s, img, out), 0);
	CHECK_EQ(img->total_len, m.len);
	/* PAGES_ALIGNED puts the bytes of its runs on 4096-byte boundaries */
	for (size_t i = 1; aligned && i < img->n_page_runs; i++)
		CHECK_EQ(img->page_runs[i].file_offset % CS_IMAGE_PAGE_SIZE, 0);
	/* the comparison itself sees a difference in the last field of a record */
	img->threads[img->n_threads - 1].rseq_sig ^= 1;
	sample_quiet = 1;
	CHECK(sample_diff(&s, img, NULL) > 0);
	sample_quiet = 0;
	cs_image_free(img);

	/* Metadata only: the same records, page CRCs not computed. */
	CHECK_EQ(cs_image_parse(out, m.len, CS_IMAGE_PARSE_SKIP_PAGE_CRC, &img, &err), 0);
	if (img)
		CHECK_EQ(sample_diff(&s, img, out), 0);
	cs_image_free(img);
}

/* The limits of the variable parts round-trip exactly at their maximum. */
static void test_max_variable_parts(void)
{
	static struct sample s;
	static struct cs_image_epoll_entry ep[CS_IMAGE_EPOLL_MAX];
	size_t cap = CS_IMAGE_PIPE_DATA_MAX + sizeof(ep) + (1 << 16);
	uint8_t *data = malloc(cap), *pipe = malloc(CS_IMAGE_PIPE_DATA_MAX), *out = malloc(cap);
	struct cs_buf b = {data, 0, cap};
	struct membuf m = {out, 0, cap, 0};
	struct cs_image_writer w;
	struct cs_image_error err;
	struct cs_image *img = NULL;
	struct cs_image_fd fds[2];
	size_t pos, i;

	sample_init(&s, 1);
	memset(fds, 0, sizeof(fds));
	fill_bytes(pipe, CS_IMAGE_PIPE_DATA_MAX, 9);
	for (i = 0; i < CS_IMAGE_EPOLL_MAX; i++)
		ep[i].tfd = (int32_t)i, ep[i].events = 1, ep[i].data = i * 3, ep[i].src_fd = (int32_t)i;
	fds[0].fd = 3, fds[0].type = CS_FD_PIPE, fds[0].share_fd = fds[1].share_fd = -1;
	fds[0].pipe_data_len = CS_IMAGE_PIPE_DATA_MAX, fds[0].pipe_data = pipe;
	fds[1].fd = 4, fds[1].type = CS_FD_EPOLL;
	fds[1].n_epoll = CS_IMAGE_EPOLL_MAX, fds[1].epoll = ep;
	cs_image_writer_init(&w, mem_write, &m);
	CHECK_EQ(cs_image_put_header(&b, &s.header), 0);
	CHECK_EQ(cs_image_write_section(&w, CS_SECT_HEADER, &b), 0);
	b.len = 0;
	CHECK_EQ(cs_image_put_count(&b, &pos), 0);
	CHECK_EQ(cs_image_put_fd(&b, &fds[0]), 0);
	CHECK_EQ(cs_image_put_fd(&b, &fds[1]), 0);
	cs_image_set_count(&b, pos, 2);
	CHECK_EQ(cs_image_write_section(&w, CS_SECT_FDS, &b), 0);
	CHECK_EQ(cs_image_write_end(&w), 0);
	CHECK_EQ(cs_image_parse(out, m.len, 0, &img, &err), 0);
	if (img) {
		CHECK_EQ(img->n_fds, 2);
		CHECK_EQ(img->fds[0].pipe_data_len, CS_IMAGE_PIPE_DATA_MAX);
		CHECK(memcmp(img->fds[0].pipe_data, pipe, CS_IMAGE_PIPE_DATA_MAX) == 0);
		CHECK_EQ(img->fds[1].n_epoll, CS_IMAGE_EPOLL_MAX);
		CHECK(memcmp(img->fds[1].epoll, ep, sizeof(ep)) == 0);
	}
	cs_image_free(img);
	free(data), free(pipe), free(out);
}

/* ---- Encoders: -ENOSPC and -EINVAL leave the buffer unchanged ------------ */

typedef int (*put_fn)(struct cs_buf *b, const void *rec);

static int put_header(struct cs_buf *b, const void *r) { return cs_image_put_header(b, r); }
static int put_process(struct cs_buf *b, const void *r) { return cs_image_put_process(b, r); }
static int put_mapping(struct cs_buf *b, const void *r) { return cs_image_put_mapping(b, r); }
static int put_thread(struct cs_buf *b, const void *r) { return cs_image_put_thread(b, r); }
static int put_fd(struct cs_buf *b, const void *r) { return cs_image_put_fd(b, r); }
static int put_sig(struct cs_buf *b, const void *r) { return cs_image_put_sigaction(b, r); }
static int put_run(struct cs_buf *b, const void *r) { return cs_image_put_run(b, r); }
static int put_unsup(struct cs_buf *b, const void *r) { return cs_image_put_unsupported(b, r); }

static int put_head(struct cs_buf *b, const void *r)
{
	const struct cs_image_run *run = r;

	return cs_image_put_page_run_head(b, run->addr, run->npages);
}

static int put_count(struct cs_buf *b, const void *r)
{
	size_t pos;

	(void)r;
	return cs_image_put_count(b, &pos);
}

/* Every capacity below a record's size fails with -ENOSPC and touches nothing. */
static void check_enospc(const char *what, put_fn put, const void *rec)
{
	static uint8_t big[1 << 16], small[1 << 16];
	struct cs_buf b = {big, 3, sizeof(big)};
	size_t need, cap, i;
	int bad = 0;

	CHECK_EQ(put(&b, rec), 0);
	need = b.len - 3;
	CHECK(need > 0 && need < sizeof(small) - 3);
	memset(small, 0xa5, sizeof(small));
	for (cap = 3; cap < need + 3 && !bad; cap++) {
		struct cs_buf s = {small, 3, cap};

		if (put(&s, rec) != -ENOSPC || s.len != 3 || s.cap != cap)
			bad = 1;
		/* the whole record would end at need + 3: nothing up to there changed */
		for (i = 0; i < need + 3 && !bad; i++)
			bad = small[i] != 0xa5;
	}
	if (bad)
		fprintf(stderr, "%s: a buffer of %zu bytes was changed or accepted\n", what, cap - 1);
	CHECK(!bad);
	/* exactly enough room works and writes the same bytes */
	{
		struct cs_buf s = {small, 3, need + 3};

		CHECK_EQ(put(&s, rec), 0);
		CHECK_EQ(s.len, need + 3);
		CHECK(memcmp(small + 3, big + 3, need) == 0);
	}
}

static void test_enospc(void)
{
	static struct sample s;
	struct cs_image_run head = {0x1000, 7};
	size_t i;

	sample_init(&s, 1);
	check_enospc("header", put_header, &s.header);
	check_enospc("process", put_process, &s.process);
	check_enospc("mapping", put_mapping, &s.maps[0]);
	check_enospc("thread", put_thread, &s.threads[0]);
	for (i = 0; i < s.n_fds; i++)
		check_enospc("fd", put_fd, &s.fds[i]);
	check_enospc("sigaction", put_sig, &s.sigs[0]);
	check_enospc("run", put_run, &s.res[0]);
	check_enospc("unsupported", put_unsup, &s.unsup[1]);
	check_enospc("page run head", put_head, &head);
	check_enospc("count", put_count, NULL);
}

static void check_einval(const char *what, put_fn put, const void *rec)
{
	uint8_t buf[1 << 14];
	struct cs_buf b = {buf, 0, sizeof(buf)};
	int rc = put(&b, rec);

	if (rc != -EINVAL || b.len != 0)
		fprintf(stderr, "%s: put returned %d, len %zu, expected -EINVAL\n", what, rc, b.len);
	CHECK(rc == -EINVAL && b.len == 0);
}

static void test_einval(void)
{
	static struct sample s, t;

	sample_init(&s, 1);
	t = s, memset(t.header.kernel_release, 'x', sizeof(t.header.kernel_release));
	check_einval("kernel_release without NUL", put_header, &t.header);
	t = s, t.header.exe_build_id_len = CS_IMAGE_BUILD_ID_MAX + 1;
	check_einval("exe_build_id_len", put_header, &t.header);
	t = s, memset(t.process.comm, 'x', sizeof(t.process.comm));
	check_einval("comm without NUL", put_process, &t.process);
	t = s, t.process.auxv_len = CS_IMAGE_AUXV_MAX + 1;
	check_einval("auxv_len", put_process, &t.process);
	t = s, memset(t.maps[0].path, 'x', sizeof(t.maps[0].path));
	check_einval("mapping path without NUL", put_mapping, &t.maps[0]);
	t = s, t.maps[0].build_id_len = CS_IMAGE_BUILD_ID_MAX + 1;
	check_einval("mapping build_id_len", put_mapping, &t.maps[0]);
	t = s, t.fds[0].local_len = CS_IMAGE_ADDR_MAX + 1;
	check_einval("local_len", put_fd, &t.fds[0]);
	t = s, t.fds[0].remote_len = CS_IMAGE_ADDR_MAX + 1;
	check_einval("remote_len", put_fd, &t.fds[0]);
	t = s, t.fds[3].pipe_data_len = CS_IMAGE_PIPE_DATA_MAX + 1;
	check_einval("pipe_data_len", put_fd, &t.fds[3]);
	t = s, t.fds[3].pipe_data = NULL;
	check_einval("pipe_data NULL", put_fd, &t.fds[3]);
	t = s, t.fds[9].n_epoll = CS_IMAGE_EPOLL_MAX + 1;
	check_einval("n_epoll", put_fd, &t.fds[9]);
	t = s, memset(t.fds[0].reason, 'x', sizeof(t.fds[0].reason));
	check_einval("reason without NUL", put_fd, &t.fds[0]);
	t = s, memset(t.unsup[0].what, 'x', sizeof(t.unsup[0].what));
	check_einval("what without NUL", put_unsup, &t.unsup[0]);
}

/* ---- Writer ------------------------------------------------------------- */

static void test_writer_misuse(void)
{
	uint8_t out[4096];
	struct membuf m = {out, 0, sizeof(out), 0};
	struct cs_image_writer w;

	cs_image_writer_init(&w, mem_write, &m);
	CHECK_EQ(cs_image_section_end(&w), -EPROTO); /* no section open */
	cs_image_writer_init(&w, mem_write, &m);
	CHECK_EQ(cs_image_section_begin(&w, CS_SECT_THREADS, 8), 0);
	CHECK_EQ(cs_image_section_write(&w, "abcd", 4), 0);
	CHECK_EQ(cs_image_section_end(&w), -EPROTO); /* 4 bytes short */
	CHECK_EQ(cs_image_section_write(&w, "abcd", 4), -EPROTO); /* stays broken */
	CHECK_EQ(cs_image_write_end(&w), -EPROTO);

	m.len = 0;
	cs_image_writer_init(&w, mem_write, &m);
	CHECK_EQ(cs_image_section_begin(&w, CS_SECT_THREADS, 3), 0);
	CHECK_EQ(cs_image_section_write(&w, "abcd", 4), -EPROTO); /* past payload_len */
	CHECK_EQ(m.len, 16); /* nothing of the refused write went out */

	cs_image_writer_init(&w, mem_write, &m);
	CHECK_EQ(cs_image_section_begin(&w, CS_SECT_THREADS, 3), 0);
	CHECK_EQ(cs_image_section_begin(&w, CS_SECT_FDS, 3), -EPROTO); /* nested */
	cs_image_writer_init(&w, mem_write, &m);
	CHECK_EQ(cs_image_section_begin(&w, CS_SECT_THREADS, 3), 0);
	CHECK_EQ(cs_image_write_end(&w), -EPROTO); /* END inside a section */
}

/* A write that fails at any byte fails the image: the error comes back,
 * every later call returns it, and what was written never parses. */
static void test_writer_io_error(void)
{
	static struct sample s;
	static uint8_t out[1 << 16];
	struct membuf m = {out, 0, sizeof(out), 0};
	struct cs_image_error err;
	struct cs_image *img;
	size_t full, at;

	sample_init(&s, 0);
	CHECK_EQ(sample_write(&s, &m), 0);
	full = m.len;
	for (at = 1; at < full; at += at < 64 ? 1 : 61) {
		struct membuf f = {out, 0, sizeof(out), at};

		CHECK_EQ(sample_write(&s, &f), -EIO);
		CHECK(cs_image_parse(out, f.len, 0, &img, &err) < 0);
		CHECK(img == NULL);
	}
}

static void test_writer_counters(void)
{
	static struct sample s;
	static uint8_t out[1 << 16];
	uint8_t buf[256];
	struct cs_buf b = {buf, 0, sizeof(buf)};
	struct membuf m = {out, 0, sizeof(out), 0};
	struct cs_image_writer w;

	sample_init(&s, 0);
	cs_image_writer_init(&w, mem_write, &m);
	CHECK_EQ(cs_image_put_header(&b, &s.header), 0);
	CHECK_EQ(cs_image_write_section(&w, CS_SECT_HEADER, &b), 0);
	CHECK_EQ(w.sections, 1);
	CHECK_EQ(w.offset, 16 + b.len + 4);
	CHECK_EQ(w.offset, m.len);
	CHECK_EQ(cs_image_write_end(&w), 0);
	CHECK_EQ(w.sections, 2);
	CHECK_EQ(w.offset, m.len);
	CHECK_EQ(m.len, 16 + b.len + 4 + 32);
}

/* A later writer's section marked skippable is skipped; unmarked, refused. */
static void test_skippable(void)
{
	static struct sample s;
	static uint8_t out[1 << 12];
	uint8_t buf[256];
	struct cs_buf b = {buf, 0, sizeof(buf)};
	struct membuf m = {out, 0, sizeof(out), 0};
	struct cs_image_writer w;
	struct cs_image_error err;
	struct cs_image *img;
	uint32_t flags;

	sample_init(&s, 0);
	for (flags = 0; flags <= CS_SECT_F_SKIPPABLE; flags++) {
		m.len = 0;
		b.len = 0;
		cs_image_writer_init(&w, mem_write, &m);
		CHECK_EQ(cs_image_put_header(&b, &s.header), 0);
		CHECK_EQ(cs_image_write_section(&w, CS_SECT_HEADER, &b), 0);
		CHECK_EQ(cs_image_section_begin_flags(&w, 99, flags, 5), 0);
		CHECK_EQ(cs_image_section_write(&w, "later", 5), 0);
		CHECK_EQ(cs_image_section_end(&w), 0);
		CHECK_EQ(cs_image_write_end(&w), 0);
		if (flags) {
			CHECK_EQ(cs_image_parse(out, m.len, 0, &img, &err), 0);
			cs_image_free(img);
		} else {
			CHECK_EQ(cs_image_parse(out, m.len, 0, &img, &err), -EBADMSG);
			CHECK_EQ(err.code, CS_IMG_BAD_SECTION);
			CHECK_EQ(err.section, 99);
		}
	}
}

/* The lookups a restorer resolves chains with. */
static void test_lookups(void)
{
	static struct sample s;
	static uint8_t out[1 << 19];
	struct membuf m = {out, 0, sizeof(out), 0};
	const struct cs_image_page_run *r;
	struct cs_image_error err;
	struct cs_image *img = NULL;
	const uint64_t top = 1ull << 47;

	sample_init(&s, 1); /* runs: 0x400000 +1, 0x500000 +2, 2^47 - 3 pages +3 */
	CHECK_EQ(sample_write(&s, &m), 0);
	CHECK_EQ(cs_image_parse(out, m.len, 0, &img, &err), 0);
	if (!img)
		return;
	CHECK(cs_image_find_page(img, 0) == NULL);
	CHECK(cs_image_find_page(img, 0x3ff000) == NULL);
	r = cs_image_find_page(img, 0x400000);
	CHECK(r && r->addr == 0x400000);
	CHECK(cs_image_find_page(img, 0x401000) == NULL);
	r = cs_image_find_page(img, 0x501000);
	CHECK(r && r->addr == 0x500000 && out[r->file_offset + 0x1000 + 5] ==
					      page_byte(0x501000, 5));
	CHECK(cs_image_find_page(img, 0x502000) == NULL);
	r = cs_image_find_page(img, top - 0x1000);
	CHECK(r && r->npages == 3);
	CHECK(cs_image_find_page(img, top) == NULL);
	CHECK(cs_image_find_page(img, UINT64_MAX) == NULL);
	/* RESIDENT: 0x400000 +3, 0x500000 +4, 0x600000 +5 */
	CHECK(!cs_image_page_resident(img, 0x3ff000));
	CHECK(cs_image_page_resident(img, 0x400000));
	CHECK(cs_image_page_resident(img, 0x402000));
	CHECK(!cs_image_page_resident(img, 0x403000));
	CHECK(cs_image_page_resident(img, 0x604000));
	CHECK(!cs_image_page_resident(img, 0x605000));
	cs_image_free(img);
	/* an image without runs */
	img = calloc(1, sizeof(*img));
	CHECK(cs_image_find_page(img, 0) == NULL && !cs_image_page_resident(img, 0));
	cs_image_free(img);
}

static void test_names(void)
{
	char name[64];

	CHECK(strcmp(cs_image_section_name(CS_SECT_PAGES), "PAGES") == 0);
	CHECK(strcmp(cs_image_section_name(CS_SECT_END), "END") == 0);
	CHECK(strcmp(cs_image_section_name(CS_SECT_CREDS), "CREDS") == 0);
	CHECK(strcmp(cs_image_section_name(CS_SECT_ATTRS), "ATTRS") == 0);
	CHECK(strcmp(cs_image_section_name(CS_SECT_SIGQUEUE), "SIGQUEUE") == 0);
	CHECK(strcmp(cs_image_section_name(CS_SECT_SECCOMP), "SECCOMP") == 0);
	CHECK(cs_image_section_name(0) == NULL && cs_image_section_name(17) == NULL &&
	      cs_image_section_name(99) == NULL);
	CHECK(cs_image_section_name(UINT32_MAX) == NULL);
	CHECK(strcmp(cs_image_fd_type_name(CS_FD_EPOLL), "EPOLL") == 0);
	CHECK(strcmp(cs_image_fd_type_name(CS_FD_MEMFD), "MEMFD") == 0);
	CHECK(cs_image_fd_type_name(0) == NULL && cs_image_fd_type_name(20) == NULL);
	CHECK(strcmp(cs_image_err_name(CS_IMG_BAD_CRC), "BAD_CRC") == 0);
	CHECK(cs_image_err_name(-1) == NULL && cs_image_err_name(CS_IMG_NO_MEMORY + 1) == NULL);
	CHECK_EQ(cs_image_filename(name, sizeof(name), 42), 28);
	CHECK(strcmp(name, "gen-00000000000000000042.img") == 0);
	CHECK_EQ(cs_image_filename(name, sizeof(name), UINT64_MAX), 28);
	CHECK(strcmp(name, "gen-18446744073709551615.img") == 0);
	CHECK_EQ(cs_image_filename(name, 28, 1), -ENOSPC);
	CHECK_EQ(cs_image_filename(name, 29, 1), 28);
}

/* ---- Seed corpus --------------------------------------------------------- */

static int write_file(const char *dir, const char *name, const uint8_t *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		return 1;
	}
	return 0;
}

static int write_corpus(const char *dir)
{
	static struct sample s;
	static uint8_t out[1 << 19];
	struct membuf m = {out, 0, sizeof(out), 0};
	int bad = 0;

	m.len = unhex(kat_hex, out, sizeof(out));
	bad |= write_file(dir, "kat.img", out, m.len);
	sample_init(&s, 0);
	m.len = 0;
	bad |= sample_write(&s, &m) != 0 || write_file(dir, "small.img", out, m.len);
	/* every record type with all fields set, trimmed to stay under the
	 * runner's -max_len of 16 KiB: short paths, fewer entries, one page */
	sample_init(&s, 1);
	s.process.cwd[40] = s.process.exe_path[40] = s.maps[0].path[40] = s.fds[1].path[40] = 0;
	s.fds[3].pipe_data_len = 100, s.fds[9].n_epoll = 20, s.n_sigs = 16;
	s.n_runs = 1;
	m.len = 0;
	bad |= sample_write(&s, &m) != 0 || write_file(dir, "full.img", out, m.len);
	/* page bytes in a PAGES_ALIGNED section: two runs of one page */
	sample_init(&s, 0);
	s.aligned = 1, s.n_runs = 2;
	s.runs[1].addr = 0x500000ull, s.runs[1].npages = 1;
	m.len = 0;
	bad |= sample_write(&s, &m) != 0 || write_file(dir, "aligned.img", out, m.len);
	/* a later writer's skippable section between the metadata and END */
	m.len = unhex(kat_hex, out, sizeof(out)) - 32;
	{
		struct cs_image_writer w;

		cs_image_writer_init(&w, mem_write, &m);
		w.offset = m.len, w.sections = 3;
		bad |= cs_image_section_begin_flags(&w, 99, CS_SECT_F_SKIPPABLE, 3) != 0 ||
		       cs_image_section_write(&w, "new", 3) != 0 || cs_image_section_end(&w) != 0 ||
		       cs_image_write_end(&w) != 0 || write_file(dir, "skippable.img", out, m.len);
	}
	return bad;
}

static int check_corpus(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (!d) {
		perror(dir);
		return 1;
	}
	while ((de = readdir(d))) {
		char path[4096];
		struct cs_image_error err;
		struct cs_image *img;
		struct stat st;
		void *map;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = open(path, O_RDONLY);
		CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0);
		if (fd < 0)
			continue;
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		CHECK(map != MAP_FAILED);
		if (map != MAP_FAILED && cs_image_parse(map, (size_t)st.st_size, 0, &img, &err) != 0) {
			fprintf(stderr, "%s: %s: %s\n", path, cs_image_err_name(err.code), err.msg);
			check_failures++;
		}
		cs_image_free(map != MAP_FAILED ? img : NULL);
		if (map != MAP_FAILED)
			munmap(map, (size_t)st.st_size);
		close(fd);
		n++;
	}
	closedir(d);
	CHECK(n >= 3);
	printf("%d seed images parsed\n", n);
	return check_report("image corpus");
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
		return write_corpus(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--check-corpus") == 0)
		return check_corpus(argv[2]);
	if (argc == 2 && strcmp(argv[1], "--print-vectors") == 0) {
		test_record_vectors(1);
		return 0;
	}
	test_known_answer();
	test_record_vectors(0);
	test_round_trip(0, 0);
	test_round_trip(1, 0);
	test_round_trip(1, 1);
	test_max_variable_parts();
	test_enospc();
	test_einval();
	test_writer_misuse();
	test_writer_io_error();
	test_writer_counters();
	test_skippable();
	test_lookups();
	test_names();
	return check_report("image");
}
