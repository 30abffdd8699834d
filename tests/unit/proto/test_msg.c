/*
 * Messages: round trip of every type, truncation at every offset, every
 * field at its boundary values, and every way a payload can be malformed.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crc32c.h"
#include "msg_samples.h"

static uint8_t big_a[CS_PATH_MAX + 2]; /* 'a' bytes for strings at their limits */

/* Encodes m, checking the size query first; returns a malloc'd frame. */
static uint8_t *encode(const struct cs_msg *m, int *ret_n)
{
	int n = cs_msg_encode(NULL, 0, 1, m);
	uint8_t *buf;

	*ret_n = n;
	if (n < 0)
		return NULL;
	CHECK_EQ(cs_msg_payload_size(m), n - (int)CS_FRAME_HEADER_SIZE);
	buf = malloc((size_t)n);
	/* One byte short: nothing is sealed, the size comes back. */
	CHECK_EQ(cs_msg_encode(buf, (size_t)n - 1, 1, m), n);
	CHECK_EQ(cs_msg_encode(buf, (size_t)n, 1, m), n);
	return buf;
}

/* Encodes, decodes and compares; returns the frame size. */
static int round_trip(const struct cs_msg *m)
{
	struct cs_msg out;
	size_t need;
	int n;
	uint8_t *buf = encode(m, &n);

	CHECK(n > 0);
	if (!buf)
		return n;
	CHECK_EQ(cs_msg_parse(buf, (size_t)n, 0, &out, &need), n);
	CHECK(msg_same(m, &out));
	free(buf);
	return n;
}

static void test_round_trip_all(void)
{
	struct cs_msg m;

	for (size_t i = 0; i < N_TYPES; i++) {
		sample_msg(all_types[i], &m);
		round_trip(&m);
		CHECK(cs_msg_type_name(all_types[i]) != NULL);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(cs_msg_type_name(all_types[i]),
			             cs_msg_type_name(all_types[j])) != 0);
	}
	CHECK(cs_msg_type_name(0) == NULL);
	CHECK(cs_msg_type_name(0x0106) == NULL);
	CHECK(cs_msg_type_name(0xffff) == NULL);
}

/* Every prefix of every message's frame: truncated, never accepted. */
static void test_truncation_all(void)
{
	struct cs_msg m, out;

	for (size_t i = 0; i < N_TYPES; i++) {
		int n;
		uint8_t *buf;

		sample_msg(all_types[i], &m);
		buf = encode(&m, &n);
		for (size_t len = 0; len < (size_t)n; len++) {
			uint8_t *p = malloc(len ? len : 1); /* exact size: ASan sees overreads */
			size_t need = 0;

			memcpy(p, buf, len);
			CHECK_EQ(cs_msg_parse(p, len, 0, &out, &need), CS_PROTO_ETRUNC);
			CHECK_EQ(need, len < 20 ? 20 - len : (size_t)n - len);
			free(p);
		}
		free(buf);
	}
}

/*
 * Every proper prefix of a payload, sealed as a valid frame, is malformed
 * (the encoding is self-delimiting), and so is one trailing byte.
 */
static void test_short_payloads(void)
{
	struct cs_msg m, out;

	for (size_t i = 0; i < N_TYPES; i++) {
		int n;
		uint8_t *buf;

		sample_msg(all_types[i], &m);
		buf = encode(&m, &n);
		uint32_t plen = (uint32_t)n - CS_FRAME_HEADER_SIZE;
		for (uint32_t k = 0; k < plen; k++) {
			uint8_t *p = malloc(CS_FRAME_HEADER_SIZE + k);

			memcpy(p, buf, CS_FRAME_HEADER_SIZE + k);
			CHECK_EQ(cs_frame_seal(p, 1, all_types[i], 0, k),
			         (int)CS_FRAME_HEADER_SIZE + (int)k);
			CHECK_EQ(cs_msg_parse(p, CS_FRAME_HEADER_SIZE + k, 0, &out, NULL),
			         CS_PROTO_EMALFORMED);
			free(p);
		}
		uint8_t *p = malloc((size_t)n + 1);
		memcpy(p, buf, (size_t)n);
		p[n] = 0;
		cs_frame_seal(p, 1, all_types[i], 0, plen + 1);
		CHECK_EQ(cs_msg_parse(p, (size_t)n + 1, 0, &out, NULL), CS_PROTO_EMALFORMED);
		free(p);
		free(buf);
	}
}

static void fill_zero(uint16_t type, struct cs_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	if (type == CS_MSG_HELLO)
		m->hello.version_min = m->hello.version_max = 1;
	if (type == CS_MSG_VOTE || type == CS_MSG_PREVOTE)
		m->vote.reason = CS_VOTE_GRANTED, m->vote.granted = true;
}

static struct cs_str str_a(uint32_t len)
{
	return (struct cs_str){(const char *)big_a, len};
}

static struct cs_bytes bytes_a(uint32_t len)
{
	return (struct cs_bytes){big_a, len};
}

/* Every integer at its maximum, every string at its limit. */
static void fill_max(uint16_t type, struct cs_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	switch (type) {
	case CS_MSG_HELLO:
		m->hello = (struct cs_msg_hello){UINT16_MAX,
		                                 UINT16_MAX,
		                                 CS_ROLE_CLIENT,
		                                 UINT64_MAX,
		                                 str_a(CS_NAME_MAX),
		                                 str_a(CS_NAME_MAX),
		                                 bytes_a(CS_TOKEN_MAX),
		                                 str_a(CS_PATH_MAX),
		                                 CS_BUILD_IDS_MAX};
		for (int i = 0; i < CS_BUILD_IDS_MAX; i++)
			m->hello.build_ids[i] = bytes_a(CS_BUILD_ID_MAX);
		break;
	case CS_MSG_HEARTBEAT:
		m->heartbeat = (struct cs_msg_heartbeat){UINT64_MAX, UINT64_MAX, UINT64_MAX,
		                                         UINT64_MAX, UINT32_MAX, CS_ROLE_CLIENT};
		break;
	case CS_MSG_LEASE_RENEW:
		m->lease_renew = (struct cs_msg_lease_renew){UINT64_MAX, UINT64_MAX, UINT32_MAX};
		break;
	case CS_MSG_LEASE_GRANT:
		m->lease_grant = (struct cs_msg_lease_grant){UINT64_MAX, UINT64_MAX, UINT32_MAX, 1};
		break;
	case CS_MSG_VOTE_REQUEST:
		m->vote_request =
		    (struct cs_msg_vote_request){UINT64_MAX, UINT64_MAX, str_a(CS_NAME_MAX)};
		break;
	case CS_MSG_VOTE:
		m->vote = (struct cs_msg_vote){UINT64_MAX, UINT64_MAX, UINT32_MAX, false,
		                               CS_VOTE_REASON_COUNT_ - 1};
		break;
	case CS_MSG_PREVOTE_REQUEST:
		m->prevote_request =
		    (struct cs_msg_vote_request){UINT64_MAX, UINT64_MAX, str_a(CS_NAME_MAX)};
		break;
	case CS_MSG_PREVOTE:
		m->prevote =
		    (struct cs_msg_vote){UINT64_MAX, UINT64_MAX, UINT32_MAX, true, CS_VOTE_GRANTED};
		break;
	case CS_MSG_TRANSFER:
		m->transfer = (struct cs_msg_transfer){UINT64_MAX, str_a(CS_NAME_MAX)};
		break;
	case CS_MSG_CKPT_BEGIN:
		m->ckpt_begin = (struct cs_msg_ckpt_begin){UINT64_MAX, UINT64_MAX, UINT64_MAX,
		                                           UINT64_MAX, CS_CKPT_DELTA};
		break;
	case CS_MSG_CKPT_PAGES:
		/* The largest offset at which the chunk does not wrap. */
		m->ckpt_pages = (struct cs_msg_ckpt_pages){UINT64_MAX, UINT64_MAX - sizeof(big_a),
		                                           bytes_a(sizeof(big_a))};
		break;
	case CS_MSG_CKPT_END:
		m->ckpt_end.generation = m->ckpt_end.total_bytes = UINT64_MAX;
		memset(m->ckpt_end.sha256, 0xff, CS_DIGEST_SIZE);
		break;
	case CS_MSG_CKPT_ABORT:
		m->ckpt_abort =
		    (struct cs_msg_ckpt_abort){UINT64_MAX, UINT32_MAX, str_a(CS_ERROR_TEXT_MAX)};
		break;
	case CS_MSG_ACK:
		m->ack = (struct cs_msg_ack){UINT64_MAX, true};
		break;
	case CS_MSG_CONTROL_REQUEST:
		m->control_request = (struct cs_msg_control_request){
		    UINT32_MAX, str_a(CS_COMMAND_MAX), str_a(sizeof(big_a))};
		break;
	case CS_MSG_CONTROL_RESPONSE:
		m->control_response =
		    (struct cs_msg_control_response){UINT32_MAX, INT32_MIN, str_a(sizeof(big_a))};
		break;
	case CS_MSG_ERROR:
		m->error = (struct cs_msg_error){UINT32_MAX, str_a(CS_ERROR_TEXT_MAX)};
		break;
	}
}

static void test_boundaries(void)
{
	struct cs_msg m;

	for (size_t i = 0; i < N_TYPES; i++) {
		fill_zero(all_types[i], &m);
		round_trip(&m);
		fill_max(all_types[i], &m);
		round_trip(&m);
	}
	/* Both ends of the signed status. */
	fill_max(CS_MSG_CONTROL_RESPONSE, &m);
	m.control_response.status = INT32_MAX;
	round_trip(&m);
}

/* Changing one field of a valid message past its limit: the encoder refuses. */
static void test_encode_limits(void)
{
	struct cs_msg m;
	uint8_t buf[256];

#define REFUSE(type, mutation, expect)                                                             \
	do {                                                                                       \
		fill_max(type, &m);                                                                \
		mutation;                                                                          \
		CHECK_EQ(cs_msg_encode(NULL, 0, 1, &m), expect);                                   \
		CHECK_EQ(cs_msg_encode(buf, sizeof(buf), 1, &m), expect);                          \
		CHECK_EQ(cs_msg_payload_size(&m), expect);                                         \
	} while (0)
	REFUSE(CS_MSG_HELLO, m.hello.cluster.len++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, m.hello.node.len++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, m.hello.token.len++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, m.hello.exe_path.len++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, m.hello.exe_path.len = 70000, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, m.hello.n_build_ids++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, m.hello.n_build_ids = 65536 + 1, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, m.hello.build_ids[5].len++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, m.hello.build_ids[31].len = 0, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, m.hello.role = CS_ROLE_COUNT_, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, m.hello.version_min = 0, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, m.hello.version_max = 3, CS_PROTO_EINVAL); /* min > max */
	REFUSE(CS_MSG_HELLO, m.hello.node.ptr = NULL, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HELLO, (m.hello.node.ptr = "a\0b", m.hello.node.len = 3), CS_PROTO_EINVAL);
	REFUSE(CS_MSG_HEARTBEAT, m.heartbeat.role = 200, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_VOTE_REQUEST, m.vote_request.candidate.len++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_PREVOTE_REQUEST, m.prevote_request.candidate.len++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_PREVOTE, m.prevote.granted = false, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_TRANSFER, m.transfer.target.len++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_VOTE, m.vote.reason = CS_VOTE_REASON_COUNT_, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_VOTE, m.vote.granted = true, CS_PROTO_EINVAL); /* reason says refused */
	REFUSE(CS_MSG_CKPT_BEGIN, m.ckpt_begin.kind = 2, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_CKPT_PAGES, m.ckpt_pages.offset++, CS_PROTO_EINVAL); /* wraps */
	REFUSE(CS_MSG_CKPT_PAGES, m.ckpt_pages.data.ptr = NULL, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_CKPT_ABORT, m.ckpt_abort.text.len++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_CONTROL_REQUEST, m.control_request.command.len++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_ERROR, m.error.text.len++, CS_PROTO_EINVAL);
	REFUSE(CS_MSG_ERROR, m.type = 0x7f02, CS_PROTO_ETYPE);
#undef REFUSE
	/* ERROR and ABORT codes are open: any u32 goes. NULL with length 0 is fine. */
	fill_zero(CS_MSG_ERROR, &m);
	m.error.code = 12345;
	round_trip(&m);
	CHECK_EQ(cs_msg_encode(buf, sizeof(buf), 0, &m), CS_PROTO_EVERSION);
	CHECK_EQ(cs_msg_encode(buf, sizeof(buf), CS_PROTO_VERSION_MAX + 1, &m), CS_PROTO_EVERSION);
}

/* The largest CKPT_PAGES fills a frame to CS_FRAME_MAX exactly; one more byte does not fit. */
static void test_frame_max(void)
{
	uint8_t *buf = malloc(CS_FRAME_MAX);
	uint8_t *data = calloc(1, CS_FRAME_PAYLOAD_MAX);
	struct cs_msg m = {.type = CS_MSG_CKPT_PAGES}, out;
	uint32_t fixed = 8 + 8 + 4;

	m.ckpt_pages.data = (struct cs_bytes){data, CS_FRAME_PAYLOAD_MAX - fixed};
	CHECK_EQ(cs_msg_encode(buf, CS_FRAME_MAX, 1, &m), CS_FRAME_MAX);
	CHECK_EQ(cs_msg_parse(buf, CS_FRAME_MAX, 0, &out, NULL), CS_FRAME_MAX);
	CHECK_EQ(out.ckpt_pages.data.len, CS_FRAME_PAYLOAD_MAX - fixed);
	m.ckpt_pages.data.len++;
	CHECK_EQ(cs_msg_encode(buf, CS_FRAME_MAX, 1, &m), CS_PROTO_EOVERSIZE);
	m = (struct cs_msg){.type = CS_MSG_CONTROL_RESPONSE};
	m.control_response.json = (struct cs_str){(const char *)data, CS_FRAME_PAYLOAD_MAX};
	CHECK_EQ(cs_msg_encode(NULL, 0, 1, &m), CS_PROTO_EINVAL); /* NUL bytes in data */
	memset(data, 'x', CS_FRAME_PAYLOAD_MAX);
	CHECK_EQ(cs_msg_encode(NULL, 0, 1, &m), CS_PROTO_EOVERSIZE);
	m.control_response.json.len = CS_FRAME_PAYLOAD_MAX - 12;
	CHECK_EQ(cs_msg_encode(buf, CS_FRAME_MAX, 1, &m), CS_FRAME_MAX);
	CHECK_EQ(cs_msg_parse(buf, CS_FRAME_MAX, 0, &out, NULL), CS_FRAME_MAX);
	free(data);
	free(buf);
}

/*
 * Hand-made payloads: a length one past its limit, with the bytes present,
 * so the limit check (not the bounds check) is what refuses it.
 */
static int decode_payload(uint16_t type, const uint8_t *payload, uint32_t len)
{
	uint8_t *buf = malloc(CS_FRAME_HEADER_SIZE + len);
	struct cs_msg out;
	int r;

	memcpy(buf + CS_FRAME_HEADER_SIZE, payload, len);
	cs_frame_seal(buf, 1, type, 0, len);
	r = cs_msg_parse(buf, CS_FRAME_HEADER_SIZE + len, 0, &out, NULL);
	free(buf);
	return r < 0 ? r : 0;
}

/* Grows the string whose u16/u32 length is at len_off by one 'a' byte. */
static uint32_t grow_field(uint8_t *p, uint32_t plen, uint32_t len_off, int wide)
{
	uint32_t old = wide ? cs_get_le32(p + len_off) : cs_get_le16(p + len_off);
	uint32_t at = len_off + (wide ? 4 : 2) + old;

	memmove(p + at + 1, p + at, plen - at);
	p[at] = 'a';
	if (wide)
		cs_put_le32(p + len_off, old + 1);
	else
		cs_put_le16(p + len_off, (uint16_t)(old + 1));
	return plen + 1;
}

static void test_decode_limits(void)
{
	static const struct {
		uint16_t type;
		uint32_t len_off; /* offset of the length field in fill_max's payload */
		int wide;
	} fields[] = {
	    {CS_MSG_HELLO, 13, 0},                                /* cluster */
	    {CS_MSG_HELLO, 13 + 66, 0},                           /* node */
	    {CS_MSG_HELLO, 13 + 66 * 2, 0},                       /* token */
	    {CS_MSG_HELLO, 13 + 66 * 3, 0},                       /* exe_path */
	    {CS_MSG_HELLO, 13 + 66 * 3 + 4098 + 2, 0},            /* build_ids[0] */
	    {CS_MSG_HELLO, 13 + 66 * 3 + 4098 + 2 + 130 * 31, 0}, /* build_ids[31] */
	    {CS_MSG_VOTE_REQUEST, 16, 0},
	    {CS_MSG_PREVOTE_REQUEST, 16, 0},
	    {CS_MSG_TRANSFER, 8, 0},
	    {CS_MSG_CKPT_ABORT, 12, 0},
	    {CS_MSG_CONTROL_REQUEST, 4, 0},
	    {CS_MSG_ERROR, 4, 0},
	};
	struct cs_msg m;

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		int n;
		uint8_t *buf;

		fill_max(fields[i].type, &m);
		buf = encode(&m, &n);
		uint32_t plen = (uint32_t)n - CS_FRAME_HEADER_SIZE;
		uint8_t *p = malloc(plen + 1);
		memcpy(p, buf + CS_FRAME_HEADER_SIZE, plen);
		CHECK_EQ(decode_payload(fields[i].type, p, plen), 0);
		plen = grow_field(p, plen, fields[i].len_off, fields[i].wide);
		CHECK_EQ(decode_payload(fields[i].type, p, plen), CS_PROTO_EMALFORMED);
		free(p);
		free(buf);
	}
}

/* One byte of a valid payload changed: an enum, a bool, a count, a NUL. */
static void test_decode_values(void)
{
	static const struct {
		uint16_t type;
		uint32_t off;
		uint8_t value;
		int expect;
	} cases[] = {
	    {CS_MSG_HELLO, 12, CS_ROLE_COUNT_, CS_PROTO_EMALFORMED}, /* role */
	    {CS_MSG_HELLO, 12, CS_ROLE_COUNT_ - 1, 0},
	    {CS_MSG_HELLO, 8, 0, CS_PROTO_EMALFORMED},        /* version_min 0 */
	    {CS_MSG_HELLO, 8, 2, CS_PROTO_EMALFORMED},        /* min 2 > max 1 */
	    {CS_MSG_HELLO, 15, 0, CS_PROTO_EMALFORMED},       /* NUL in cluster */
	    {CS_MSG_HELLO, 39, 33, CS_PROTO_EMALFORMED},      /* build-id count */
	    {CS_MSG_HELLO, 41, 0, CS_PROTO_EMALFORMED},       /* build-id length 0 */
	    {CS_MSG_HEARTBEAT, 36, 6, CS_PROTO_EMALFORMED},   /* role */
	    {CS_MSG_LEASE_GRANT, 20, 2, CS_PROTO_EMALFORMED}, /* bool */
	    {CS_MSG_LEASE_GRANT, 20, 0, 0},
	    {CS_MSG_VOTE, 20, 1, CS_PROTO_EMALFORMED},     /* granted, reason 3 */
	    {CS_MSG_VOTE, 21, 0, CS_PROTO_EMALFORMED},     /* reason 0, refused */
	    {CS_MSG_PREVOTE, 20, 0, CS_PROTO_EMALFORMED},  /* refused, reason 0 */
	    {CS_MSG_PREVOTE, 21, 1, CS_PROTO_EMALFORMED},  /* granted, reason 1 */
	    {CS_MSG_TRANSFER, 10, 0, CS_PROTO_EMALFORMED}, /* NUL in target */
	    {CS_MSG_VOTE, 21, CS_VOTE_REASON_COUNT_, CS_PROTO_EMALFORMED},
	    {CS_MSG_CKPT_BEGIN, 32, 2, CS_PROTO_EMALFORMED}, /* kind */
	    {CS_MSG_CKPT_BEGIN, 32, 0, 0},
	    {CS_MSG_CKPT_PAGES, 8, 0xff, CS_PROTO_EMALFORMED},        /* offset + len wraps */
	    {CS_MSG_ACK, 8, 0xff, CS_PROTO_EMALFORMED},               /* bool */
	    {CS_MSG_CONTROL_REQUEST, 6, 0, CS_PROTO_EMALFORMED},      /* NUL in command */
	    {CS_MSG_CONTROL_REQUEST, 15, 0xff, CS_PROTO_EMALFORMED},  /* json len 2^32-1 */
	    {CS_MSG_CONTROL_RESPONSE, 10, 0xff, CS_PROTO_EMALFORMED}, /* json len */
	    {CS_MSG_ERROR, 5, 0xff, CS_PROTO_EMALFORMED},             /* text len 65280+ */
	    {CS_MSG_ERROR, 6, 0, CS_PROTO_EMALFORMED},                /* NUL in text */
	};
	struct cs_msg m;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n;
		uint8_t *buf;

		sample_msg(cases[i].type, &m);
		if (cases[i].type == CS_MSG_CKPT_PAGES)
			m.ckpt_pages.offset = UINT64_MAX - 0xff;
		buf = encode(&m, &n);
		CHECK((uint32_t)n > CS_FRAME_HEADER_SIZE + cases[i].off);
		buf[CS_FRAME_HEADER_SIZE + cases[i].off] = cases[i].value;
		int r = decode_payload(cases[i].type, buf + CS_FRAME_HEADER_SIZE,
		                       (uint32_t)n - CS_FRAME_HEADER_SIZE);
		if (r != cases[i].expect)
			fprintf(stderr, "case %zu (type 0x%04x off %u)\n", i, cases[i].type,
			        cases[i].off);
		CHECK_EQ(r, cases[i].expect);
		free(buf);
	}
	/* Unknown types, valid frames. */
	uint8_t f[CS_FRAME_HEADER_SIZE];
	struct cs_msg out;
	const uint16_t unknown[] = {0, 0x0100, 0x0106, 0x0209, 0x0300, 0x0306, 0x7f00, 0xffff};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		cs_frame_seal(f, 1, unknown[i], 0, 0);
		CHECK_EQ(cs_msg_parse(f, sizeof(f), 0, &out, NULL), CS_PROTO_ETYPE);
	}
}

static void test_stream(void)
{
	uint8_t stream[4096];
	size_t total = 0, used;
	struct cs_msg m, out;
	struct cs_frame f;
	struct cs_frame_decoder *d = cs_frame_decoder_new();
	size_t got = 0;

	for (size_t i = 0; i < N_TYPES; i++) {
		sample_msg(all_types[i], &m);
		total += (size_t)cs_msg_encode(stream + total, sizeof(stream) - total, 1, &m);
	}
	for (size_t pos = 0; pos < total; pos++) { /* one byte at a time */
		int r = cs_frame_decoder_push(d, stream + pos, 1, &used, &f);
		CHECK(r >= 0 && used == 1);
		if (r == 1) {
			CHECK_EQ(cs_msg_decode(&f, &out), 0);
			sample_msg(all_types[got++], &m);
			CHECK(msg_same(&m, &out));
		}
	}
	CHECK_EQ(got, N_TYPES);
	cs_frame_decoder_free(d);
}

static void test_helpers(void)
{
	char small[4];
	struct cs_str s = cs_str_of("abc");

	CHECK_EQ(s.len, 3);
	CHECK(cs_str_eq(s, "abc"));
	CHECK(!cs_str_eq(s, "ab"));
	CHECK(!cs_str_eq(s, "abcd"));
	CHECK(cs_str_eq(cs_str_of(NULL), ""));
	CHECK_EQ(cs_str_copy(small, sizeof(small), s), 0);
	CHECK(strcmp(small, "abc") == 0);
	CHECK_EQ(cs_str_copy(small, sizeof(small), cs_str_of("abcd")), -ENAMETOOLONG);
	CHECK_EQ(small[0], 0);
	CHECK_EQ(cs_str_copy(small, 0, s), -ENAMETOOLONG);

	CHECK_EQ(cs_proto_negotiate(1, 1, 1, 1), 1);
	CHECK_EQ(cs_proto_negotiate(1, 3, 2, 5), 3);
	CHECK_EQ(cs_proto_negotiate(2, 5, 1, 3), 3);
	CHECK_EQ(cs_proto_negotiate(1, 1, 2, 3), CS_PROTO_EVERSION);
	CHECK_EQ(cs_proto_negotiate(0, 0, 0, 0), CS_PROTO_EVERSION);

	for (unsigned r = 0; r < CS_ROLE_COUNT_; r++)
		CHECK(cs_role_name(r) != NULL);
	CHECK(cs_role_name(CS_ROLE_COUNT_) == NULL);
	for (unsigned r = 0; r < CS_VOTE_REASON_COUNT_; r++)
		CHECK(cs_vote_reason_name(r) != NULL);
	CHECK(cs_vote_reason_name(CS_VOTE_REASON_COUNT_) == NULL);
	CHECK(cs_error_code_name(0) == NULL);
	for (unsigned c = 1; c < CS_ERR_CODE_COUNT_; c++)
		CHECK(cs_error_code_name(c) != NULL);
	CHECK(cs_error_code_name(CS_ERR_CODE_COUNT_) == NULL);
}

int main(void)
{
	memset(big_a, 'a', sizeof(big_a));
	test_round_trip_all();
	test_truncation_all();
	test_short_payloads();
	test_boundaries();
	test_encode_limits();
	test_frame_max();
	test_decode_limits();
	test_decode_values();
	test_stream();
	test_helpers();
	return check_report("test_msg");
}
