/* Frame layer: header checks, distinct errors, truncation, stream decoder. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crc32c.h"
#include "frame.h"

static const uint8_t payload[] = "the payload of a test frame";

static int make_frame(uint8_t *buf, size_t cap, uint16_t type, size_t plen)
{
	return cs_frame_encode(buf, cap, 1, type, 0, payload, plen);
}

static void test_round_trip(void)
{
	uint8_t buf[128];
	struct cs_frame f;
	size_t need = 99;
	int n = make_frame(buf, sizeof(buf), 0x0301, sizeof(payload));

	CHECK_EQ(n, CS_FRAME_HEADER_SIZE + sizeof(payload));
	CHECK_EQ(cs_frame_peek(buf, (size_t)n, 0), n);
	CHECK_EQ(cs_frame_parse(buf, (size_t)n, 0, &f, &need), n);
	CHECK_EQ(f.version, 1);
	CHECK_EQ(f.type, 0x0301);
	CHECK_EQ(f.flags, 0);
	CHECK_EQ(f.payload_len, sizeof(payload));
	CHECK(f.payload == buf + CS_FRAME_HEADER_SIZE);
	CHECK(memcmp(f.payload, payload, sizeof(payload)) == 0);
	/* Trailing bytes of the next frame do not matter. */
	CHECK_EQ(cs_frame_parse(buf, sizeof(buf), 0, &f, &need), n);
	/* accept_version: exactly the negotiated one. */
	CHECK_EQ(cs_frame_parse(buf, (size_t)n, 1, &f, &need), n);

	/* Empty payload. */
	n = make_frame(buf, sizeof(buf), 7, 0);
	CHECK_EQ(n, CS_FRAME_HEADER_SIZE);
	CHECK_EQ(cs_frame_parse(buf, (size_t)n, 0, &f, NULL), n);
	CHECK_EQ(f.payload_len, 0);
}

/* The header bytes by hand, as docs/protocol.md gives them. */
static void test_layout(void)
{
	uint8_t buf[64];
	const uint8_t p[3] = {0xaa, 0xbb, 0xcc};
	const uint8_t want[16] = {'C', 'S', 'Y', 'N', 1, 0, 0x02, 0x01, 0, 0, 0, 0, 3, 0, 0, 0};
	int n = cs_frame_encode(buf, sizeof(buf), 1, 0x0102, 0, p, sizeof(p));

	CHECK_EQ(n, 23);
	CHECK(memcmp(buf, want, sizeof(want)) == 0);
	uint32_t crc = cs_crc32c(cs_crc32c(0, buf, 16), p, sizeof(p));
	CHECK_EQ(cs_get_le32(buf + 16), crc);
	CHECK(memcmp(buf + 20, p, 3) == 0);
	/* The checksum of the standard check string, to pin the CRC variant. */
	CHECK_EQ(cs_crc32c(0, "123456789", 9), 0xe3069283u);
}

/* Long buffers take the three-stream path (rounds of 24 KiB joined by
 * multiplication): it must agree with the same bytes fed a byte at a time,
 * at every length around a round and from unaligned starts. */
static void test_crc_long(void)
{
	static uint8_t buf[3 * 24576 + 64];
	uint32_t seed = 12345;

	for (size_t i = 0; i < sizeof(buf); i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
	const size_t lens[] = {24575, 24576, 24577, 24576 + 7, 49152, 49160, 3 * 24576 + 13};
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
		for (size_t start = 0; start < 3; start++) {
			uint32_t bytewise = 0x1234567u;
			for (size_t i = 0; i < lens[k]; i++)
				bytewise = cs_crc32c(bytewise, buf + start + i, 1);
			CHECK_EQ(cs_crc32c(0x1234567u, buf + start, lens[k]), bytewise);
		}
}

/* Joining two CRCs (cs_crc32c_combine) gives the CRC of the bytes in a row,
 * at every split of a buffer longer than a round, empty halves included. */
static void test_crc_combine(void)
{
	static uint8_t buf[30000];
	uint32_t seed = 777;

	for (size_t i = 0; i < sizeof(buf); i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
	uint32_t whole = cs_crc32c(0, buf, sizeof(buf));
	for (size_t cut = 0; cut <= sizeof(buf); cut += cut < 70 ? 1 : 997) {
		uint32_t a = cs_crc32c(0, buf, cut), b = cs_crc32c(0, buf + cut, sizeof(buf) - cut);
		CHECK_EQ(cs_crc32c_combine(a, b, sizeof(buf) - cut), whole);
	}
	CHECK_EQ(cs_crc32c_combine(whole, 0, 0), whole);
	CHECK(cs_crc32c_combine(whole, 0, 1) != whole);
}

/* A copy summed on the way (cs_crc32c_copy) holds the same bytes and gives
 * the same CRC as cs_crc32c over them, at lengths around a round of the
 * three streams and not multiples of 8. */
static void test_crc_copy(void)
{
	static uint8_t src[3 * 24576 + 64], dst[sizeof(src)];
	uint32_t seed = 4242;

	for (size_t i = 0; i < sizeof(src); i++) {
		seed = seed * 1103515245u + 12345u;
		src[i] = (uint8_t)(seed >> 16);
	}
	const size_t lens[] = {0, 8, 4096, 24568, 24576, 24584, 49152 + 4096, 3 * 24576 + 8, 13, 4101};
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
		for (size_t start = 0; start < 16; start += 8) {
			memset(dst, 0, sizeof(dst));
			uint32_t got = cs_crc32c_copy(0x5a5a5a5au, dst, src + start, lens[k]);
			CHECK_EQ(got, cs_crc32c(0x5a5a5a5au, src + start, lens[k]));
			CHECK(memcmp(dst, src + start, lens[k]) == 0);
			CHECK_EQ(dst[lens[k]], 0);
		}
}

static void test_encode_too_small(void)
{
	uint8_t buf[64];

	memset(buf, 0x5a, sizeof(buf));
	CHECK_EQ(make_frame(buf, 10, 1, 10), CS_FRAME_HEADER_SIZE + 10);
	CHECK_EQ(make_frame(buf, 29, 1, 10), CS_FRAME_HEADER_SIZE + 10);
	for (size_t i = 0; i < sizeof(buf); i++)
		CHECK_EQ(buf[i], 0x5a);
	CHECK_EQ(make_frame(NULL, 0, 1, 10), CS_FRAME_HEADER_SIZE + 10);
	CHECK_EQ(cs_frame_encode(buf, sizeof(buf), 0, 1, 0, payload, 1), CS_PROTO_EVERSION);
	CHECK_EQ(cs_frame_encode(buf, sizeof(buf), 2, 1, 0, payload, 1), CS_PROTO_EVERSION);
	CHECK_EQ(cs_frame_encode(NULL, 0, 2, 1, 0, payload, 1), CS_PROTO_EVERSION);
	CHECK_EQ(cs_frame_encode(buf, sizeof(buf), 1, 1, 1, payload, 1), CS_PROTO_EFLAGS);
	CHECK_EQ(cs_frame_encode(NULL, 0, 1, 1, 0, payload, CS_FRAME_PAYLOAD_MAX + 1),
	         CS_PROTO_EOVERSIZE);
	CHECK_EQ(cs_frame_encode(NULL, 0, 1, 1, 0, payload, CS_FRAME_PAYLOAD_MAX), CS_FRAME_MAX);
	/* seal checks the length before it writes anything. */
	CHECK_EQ(cs_frame_seal(buf, 1, 1, 0, CS_FRAME_PAYLOAD_MAX + 1), CS_PROTO_EOVERSIZE);
	CHECK_EQ(cs_frame_seal(buf, 1, 1, 4, 0), CS_PROTO_EFLAGS);
	CHECK_EQ(cs_frame_seal(buf, 9, 1, 0, 0), CS_PROTO_EVERSION);
}

/* Rewrites a header field and reseals the CRC so only that field is wrong. */
static void reseal(uint8_t *buf, size_t len)
{
	uint32_t crc = cs_crc32c(cs_crc32c(0, buf, 16), buf + 20, len - 20);

	cs_put_le32(buf + 16, crc);
}

static void test_errors(void)
{
	uint8_t good[64], buf[64];
	struct cs_frame f;
	size_t need;
	int n = make_frame(good, sizeof(good), 0x0201, 10);

#define BAD(mutation, expect)                                                                      \
	do {                                                                                       \
		memcpy(buf, good, sizeof(buf));                                                    \
		mutation;                                                                          \
		CHECK_EQ(cs_frame_parse(buf, (size_t)n, 0, &f, &need), expect);                    \
	} while (0)
	BAD(buf[0] ^= 1, CS_PROTO_EMAGIC);
	BAD(buf[3] = 'X', CS_PROTO_EMAGIC);
	BAD((cs_put_le16(buf + 4, 2), reseal(buf, (size_t)n)), CS_PROTO_EVERSION);
	BAD((cs_put_le16(buf + 4, 0), reseal(buf, (size_t)n)), CS_PROTO_EVERSION);
	BAD((cs_put_le16(buf + 4, 0xffff), reseal(buf, (size_t)n)), CS_PROTO_EVERSION);
	BAD((cs_put_le32(buf + 8, 0x80000000u), reseal(buf, (size_t)n)), CS_PROTO_EFLAGS);
	BAD(cs_put_le32(buf + 12, CS_FRAME_PAYLOAD_MAX + 1), CS_PROTO_EOVERSIZE);
	BAD(cs_put_le32(buf + 12, 0xffffffffu), CS_PROTO_EOVERSIZE);
	BAD(buf[25] ^= 0x40, CS_PROTO_ECRC);          /* payload bit */
	BAD(buf[6] ^= 0x01, CS_PROTO_ECRC);           /* type bit */
	BAD(buf[16] ^= 0x80, CS_PROTO_ECRC);          /* CRC bit */
	BAD(buf[n - 1] ^= 0x01, CS_PROTO_ECRC);       /* last byte */
	BAD(cs_put_le32(buf + 12, 9), CS_PROTO_ECRC); /* shorter length: CRC no longer matches */
#undef BAD
	/* Largest allowed length: valid header, needs the whole payload. */
	memcpy(buf, good, sizeof(buf));
	cs_put_le32(buf + 12, CS_FRAME_PAYLOAD_MAX);
	CHECK_EQ(cs_frame_peek(buf, 20, 0), CS_FRAME_MAX);
	CHECK_EQ(cs_frame_parse(buf, (size_t)n, 0, &f, &need), CS_PROTO_ETRUNC);
	CHECK_EQ(need, CS_FRAME_MAX - (size_t)n);
	/* A frame of another version than the negotiated one. */
	CHECK_EQ(cs_frame_parse(good, (size_t)n, 2, &f, &need), CS_PROTO_EVERSION);

	/* Every error is distinct and named. */
	const int all[] = {CS_PROTO_ETRUNC, CS_PROTO_EMAGIC,     CS_PROTO_EVERSION,
	                   CS_PROTO_EFLAGS, CS_PROTO_EOVERSIZE,  CS_PROTO_ECRC,
	                   CS_PROTO_ETYPE,  CS_PROTO_EMALFORMED, CS_PROTO_EINVAL,
	                   CS_PROTO_ENOMEM};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		CHECK(all[i] < 0);
		CHECK(cs_proto_err_name(all[i]) != NULL);
		CHECK(strcmp(cs_proto_strerror(all[i]), "unknown error") != 0);
		for (size_t j = 0; j < i; j++)
			CHECK(all[i] != all[j]);
	}
	CHECK(cs_proto_err_name(-12345) == NULL);
	CHECK(strcmp(cs_proto_strerror(-12345), "unknown error") == 0);
}

/* Every proper prefix of a valid frame is "truncated", with the exact need. */
static void test_truncation(void)
{
	uint8_t good[64];
	struct cs_frame f;
	int n = make_frame(good, sizeof(good), 0x0401, sizeof(payload));

	for (size_t len = 0; len < (size_t)n; len++) {
		/* A heap copy of exactly len bytes, so ASan sees any overread. */
		uint8_t *p = malloc(len ? len : 1);
		size_t need = 0;

		memcpy(p, good, len);
		CHECK_EQ(cs_frame_parse(p, len, 0, &f, &need), CS_PROTO_ETRUNC);
		CHECK_EQ(need, len < 20 ? 20 - len : (size_t)n - len);
		CHECK_EQ(cs_frame_peek(p, len, 0), len < 20 ? CS_PROTO_ETRUNC : n);
		free(p);
	}
}

static void test_decoder(void)
{
	uint8_t stream[512];
	size_t total = 0, sizes[8];
	struct cs_frame_decoder *d = cs_frame_decoder_new();
	struct cs_frame f;

	CHECK(d != NULL);
	for (int i = 0; i < 8; i++) {
		int n = make_frame(stream + total, sizeof(stream) - total, (uint16_t)(0x100 + i),
		                   (size_t)i * 3);
		sizes[i] = (size_t)n;
		total += (size_t)n;
	}
	/* Feed in chunks of every size from 1 to the whole stream. */
	for (size_t chunk = 1; chunk <= total; chunk++) {
		size_t pos = 0;
		int got = 0;

		while (pos < total) {
			size_t len = total - pos < chunk ? total - pos : chunk;
			size_t used;
			int r = cs_frame_decoder_push(d, stream + pos, len, &used, &f);

			CHECK(r >= 0);
			CHECK(used <= len);
			if (r < 0)
				break;
			pos += used;
			if (r == 1) {
				CHECK_EQ(f.type, 0x100 + got);
				CHECK_EQ(f.payload_len, (size_t)got * 3);
				CHECK(memcmp(f.payload, payload, f.payload_len) == 0);
				got++;
			} else {
				CHECK_EQ(used, len);
			}
		}
		CHECK_EQ(got, 8);
		CHECK_EQ(cs_frame_decoder_need(d), CS_FRAME_HEADER_SIZE);
	}
	/* need() counts down through a frame. */
	size_t used;
	CHECK_EQ(cs_frame_decoder_push(d, stream, 5, &used, &f), 0);
	CHECK_EQ(cs_frame_decoder_need(d), 15);
	CHECK_EQ(cs_frame_decoder_push(d, stream + 5, 15, &used, &f), 1); /* frame 0: no payload */
	CHECK_EQ(cs_frame_decoder_push(d, stream + 20, 22, &used, &f), 0);
	CHECK_EQ(cs_frame_decoder_need(d), sizes[1] - 22);
	cs_frame_decoder_free(d);

	/* Errors are sticky; a negotiated version is enforced. */
	d = cs_frame_decoder_new();
	cs_frame_decoder_set_version(d, 2);
	CHECK_EQ(cs_frame_decoder_push(d, stream, total, &used, &f), CS_PROTO_EVERSION);
	CHECK_EQ(used, CS_FRAME_HEADER_SIZE);
	CHECK_EQ(cs_frame_decoder_push(d, stream, total, &used, &f), CS_PROTO_EVERSION);
	CHECK_EQ(used, 0);
	cs_frame_decoder_free(d);

	d = cs_frame_decoder_new();
	stream[sizes[0] + 21] ^= 1;
	CHECK_EQ(cs_frame_decoder_push(d, stream, total, &used, &f), 1);
	CHECK_EQ(cs_frame_decoder_push(d, stream + used, total - used, &used, &f), CS_PROTO_ECRC);
	cs_frame_decoder_free(d);
	cs_frame_decoder_free(NULL);
}

/* A frame of the maximum size goes through the stream decoder. */
static void test_decoder_max(void)
{
	uint8_t *big = malloc(CS_FRAME_MAX);
	struct cs_frame_decoder *d = cs_frame_decoder_new();
	struct cs_frame f;
	size_t used, pos = 0;
	int r = 0;

	memset(big + CS_FRAME_HEADER_SIZE, 0xab, CS_FRAME_PAYLOAD_MAX);
	CHECK_EQ(cs_frame_seal(big, 1, 0x0302, 0, CS_FRAME_PAYLOAD_MAX), CS_FRAME_MAX);
	while (pos < CS_FRAME_MAX && r == 0) {
		size_t len = CS_FRAME_MAX - pos < 65536 ? CS_FRAME_MAX - pos : 65536;
		r = cs_frame_decoder_push(d, big + pos, len, &used, &f);
		pos += used;
	}
	CHECK_EQ(r, 1);
	CHECK_EQ(pos, CS_FRAME_MAX);
	CHECK_EQ(f.payload_len, CS_FRAME_PAYLOAD_MAX);
	CHECK_EQ(f.payload[CS_FRAME_PAYLOAD_MAX - 1], 0xab);
	/* One byte over: refused from the header alone. */
	cs_put_le32(big + 12, CS_FRAME_PAYLOAD_MAX + 1);
	CHECK_EQ(cs_frame_decoder_push(d, big, CS_FRAME_HEADER_SIZE, &used, &f),
	         CS_PROTO_EOVERSIZE);
	cs_frame_decoder_free(d);
	free(big);
}

int main(void)
{
	test_round_trip();
	test_layout();
	test_crc_long();
	test_crc_combine();
	test_crc_copy();
	test_encode_too_small();
	test_errors();
	test_truncation();
	test_decoder();
	test_decoder_max();
	return check_report("test_frame");
}
