#include "msg.h"

#include <errno.h>
#include <string.h>

/*
 * Each message's layout is written once, as a list of fields, and the same
 * list both encodes and decodes (struct codec says which). So the encoder
 * and the decoder cannot disagree on order or sizes, and the encoder
 * refuses exactly what the decoder would refuse. The known-answer vectors
 * in tests/unit/proto pin the bytes against docs/protocol.md.
 */
struct codec {
	int decoding;
	int bad;           /* a bound or a limit was broken */
	uint8_t *out;      /* encoding: payload area; NULL when only sizing */
	size_t out_cap;    /* bytes writable at out */
	const uint8_t *in; /* decoding: the payload */
	size_t len;        /* decoding: payload length */
	size_t off;        /* bytes produced or consumed so far */
};

static void check(struct codec *c, int ok)
{
	if (!ok)
		c->bad = 1;
}

/*
 * Decoding: returns the n bytes at the cursor and advances, or NULL (and
 * marks the codec bad) when fewer than n remain. Never reads out of bounds.
 */
static const uint8_t *take(struct codec *c, size_t n)
{
	if (c->bad || c->len - c->off < n) {
		c->bad = 1;
		return NULL;
	}
	c->off += n;
	return c->in + c->off - n;
}

/* Encoding: writes n bytes if they fit; always counts them (for sizing). */
static uint8_t *put(struct codec *c, size_t n)
{
	uint8_t *p = NULL;

	if (c->out && c->out_cap >= c->off && c->out_cap - c->off >= n)
		p = c->out + c->off;
	c->off += n;
	return p;
}

static void f_u64(struct codec *c, uint64_t *v)
{
	if (c->decoding) {
		const uint8_t *p = take(c, 8);
		*v = p ? cs_get_le64(p) : 0;
	} else {
		uint8_t *p = put(c, 8);
		if (p)
			cs_put_le64(p, *v);
	}
}

static void f_u32(struct codec *c, uint32_t *v)
{
	if (c->decoding) {
		const uint8_t *p = take(c, 4);
		*v = p ? cs_get_le32(p) : 0;
	} else {
		uint8_t *p = put(c, 4);
		if (p)
			cs_put_le32(p, *v);
	}
}

static void f_i32(struct codec *c, int32_t *v)
{
	uint32_t u = (uint32_t)*v;

	f_u32(c, &u);
	*v = (int32_t)u;
}

static void f_u16(struct codec *c, uint16_t *v)
{
	if (c->decoding) {
		const uint8_t *p = take(c, 2);
		*v = p ? cs_get_le16(p) : 0;
	} else {
		uint8_t *p = put(c, 2);
		if (p)
			cs_put_le16(p, *v);
	}
}

/* A u8 that must be below limit (enums); a bool is an enum of 2. */
static void f_enum8(struct codec *c, uint8_t *v, unsigned limit)
{
	if (c->decoding) {
		const uint8_t *p = take(c, 1);
		*v = p ? *p : 0;
	} else {
		uint8_t *p = put(c, 1);
		if (p)
			*p = *v;
	}
	check(c, *v < limit);
}

static void f_bool(struct codec *c, bool *v)
{
	uint8_t u = *v ? 1 : 0;

	f_enum8(c, &u, 2);
	*v = u == 1;
}

static void f_raw(struct codec *c, uint8_t *v, size_t n)
{
	if (c->decoding) {
		const uint8_t *p = take(c, n);
		if (p)
			memcpy(v, p, n);
	} else {
		uint8_t *p = put(c, n);
		if (p)
			memcpy(p, v, n);
	}
}

/*
 * A length (u16 or u32 on the wire, by wide) then that many bytes, between
 * min and max. The length is checked against the limit and against the
 * bytes left before the bytes are looked at.
 */
static void f_blob(struct codec *c, const uint8_t **ptr, uint32_t *len, int wide, uint32_t min,
                   uint32_t max)
{
	if (wide) {
		f_u32(c, len);
	} else {
		uint16_t l16 = (uint16_t)*len;
		check(c, *len <= UINT16_MAX);
		f_u16(c, &l16);
		*len = l16;
	}
	check(c, *len >= min && *len <= max);
	if (!c->decoding)
		check(c, *ptr != NULL || *len == 0);
	if (c->bad) {
		*len = 0;
		*ptr = NULL;
		return;
	}
	if (c->decoding) {
		*ptr = take(c, *len);
		if (!*ptr)
			*len = 0;
		return;
	}
	uint8_t *p = put(c, *len);
	if (p && *len)
		memcpy(p, *ptr, *len);
}

static void f_bytes16(struct codec *c, struct cs_bytes *b, uint32_t min, uint32_t max)
{
	f_blob(c, &b->ptr, &b->len, 0, min, max);
}

static void f_bytes32(struct codec *c, struct cs_bytes *b)
{
	f_blob(c, &b->ptr, &b->len, 1, 0, CS_FRAME_PAYLOAD_MAX);
}

/* Strings are blobs without NUL bytes, so they print safely with %.*s. */
static void f_text(struct codec *c, struct cs_str *s, int wide, uint32_t max)
{
	const uint8_t *p = (const uint8_t *)s->ptr;

	f_blob(c, &p, &s->len, wide, 0, max);
	s->ptr = (const char *)p;
	if (!c->bad && s->len)
		check(c, memchr(s->ptr, 0, s->len) == NULL);
}

static void f_str16(struct codec *c, struct cs_str *s, uint32_t max)
{
	f_text(c, s, 0, max);
}

static void f_str32(struct codec *c, struct cs_str *s)
{
	f_text(c, s, 1, CS_FRAME_PAYLOAD_MAX);
}

struct cs_str cs_str_of(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	/* A longer string cannot be sent anyway: make it fail the encoder's
	 * limits rather than wrap. */
	return (struct cs_str){.ptr = s, .len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n};
}

bool cs_str_eq(struct cs_str a, const char *s)
{
	size_t n = strlen(s);

	return n == a.len && (n == 0 || memcmp(a.ptr, s, n) == 0);
}

int cs_str_copy(char *dst, size_t cap, struct cs_str a)
{
	if (cap == 0)
		return -ENAMETOOLONG;
	if (a.len >= cap) {
		dst[0] = 0;
		return -ENAMETOOLONG;
	}
	if (a.len)
		memcpy(dst, a.ptr, a.len);
	dst[a.len] = 0;
	return 0;
}

static const char *const role_names[CS_ROLE_COUNT_] = {
    [CS_ROLE_NONE] = "none",       [CS_ROLE_PRIMARY] = "primary", [CS_ROLE_BACKUP] = "backup",
    [CS_ROLE_WITNESS] = "witness", [CS_ROLE_AGENT] = "agent",     [CS_ROLE_CLIENT] = "client",
};

const char *cs_role_name(unsigned role)
{
	return role < CS_ROLE_COUNT_ ? role_names[role] : NULL;
}

static const char *const vote_reason_names[CS_VOTE_REASON_COUNT_] = {
    [CS_VOTE_GRANTED] = "granted",
    [CS_VOTE_STALE_TERM] = "stale-term",
    [CS_VOTE_ALREADY_VOTED] = "already-voted",
    [CS_VOTE_LEASE_HELD] = "lease-held",
    [CS_VOTE_BEHIND] = "behind",
    [CS_VOTE_NOT_VOTER] = "not-voter",
};

const char *cs_vote_reason_name(unsigned reason)
{
	return reason < CS_VOTE_REASON_COUNT_ ? vote_reason_names[reason] : NULL;
}

static const char *const error_code_names[CS_ERR_CODE_COUNT_] = {
    [CS_ERR_PROTOCOL] = "protocol",
    [CS_ERR_VERSION] = "version",
    [CS_ERR_AUTH] = "auth",
    [CS_ERR_CLUSTER] = "cluster",
    [CS_ERR_STALE_TERM] = "stale-term",
    [CS_ERR_APP_MISMATCH] = "app-mismatch",
    [CS_ERR_BUSY] = "busy",
    [CS_ERR_INTERNAL] = "internal",
    [CS_ERR_UNEXPECTED] = "unexpected",
    [CS_ERR_BAD_CHECKPOINT] = "bad-checkpoint",
};

const char *cs_error_code_name(uint32_t code)
{
	return code < CS_ERR_CODE_COUNT_ ? error_code_names[code] : NULL;
}

static void hello_fields(struct codec *c, struct cs_msg *m)
{
	struct cs_msg_hello *h = &m->hello;
	uint16_t n = (uint16_t)h->n_build_ids;

	f_u64(c, &h->term);
	f_u16(c, &h->version_min);
	f_u16(c, &h->version_max);
	check(c, h->version_min >= 1 && h->version_min <= h->version_max);
	f_enum8(c, &h->role, CS_ROLE_COUNT_);
	f_str16(c, &h->cluster, CS_NAME_MAX);
	f_str16(c, &h->node, CS_NAME_MAX);
	f_bytes16(c, &h->token, 0, CS_TOKEN_MAX);
	f_str16(c, &h->exe_path, CS_PATH_MAX);
	check(c, h->n_build_ids <= CS_BUILD_IDS_MAX);
	f_u16(c, &n);
	check(c, n <= CS_BUILD_IDS_MAX);
	if (c->bad)
		return;
	h->n_build_ids = n;
	for (unsigned i = 0; i < n; i++)
		f_bytes16(c, &h->build_ids[i], 1, CS_BUILD_ID_MAX);
}

static void heartbeat_fields(struct codec *c, struct cs_msg *m)
{
	struct cs_msg_heartbeat *h = &m->heartbeat;

	f_u64(c, &h->term);
	f_u64(c, &h->durable_generation);
	f_u64(c, &h->send_time_ns);
	f_u64(c, &h->echo_time_ns);
	f_u32(c, &h->lease_ms);
	f_enum8(c, &h->role, CS_ROLE_COUNT_);
}

static void lease_renew_fields(struct codec *c, struct cs_msg *m)
{
	struct cs_msg_lease_renew *l = &m->lease_renew;

	f_u64(c, &l->term);
	f_u64(c, &l->seq);
	f_u32(c, &l->duration_ms);
}

static void lease_grant_fields(struct codec *c, struct cs_msg *m)
{
	struct cs_msg_lease_grant *l = &m->lease_grant;

	f_u64(c, &l->term);
	f_u64(c, &l->seq);
	f_u32(c, &l->duration_ms);
	f_bool(c, &l->granted);
}

static void vote_request_body(struct codec *c, struct cs_msg_vote_request *v)
{
	f_u64(c, &v->term);
	f_u64(c, &v->durable_generation);
	f_str16(c, &v->candidate, CS_NAME_MAX);
}

static void vote_request_fields(struct codec *c, struct cs_msg *m)
{
	vote_request_body(c, &m->vote_request);
}

static void prevote_request_fields(struct codec *c, struct cs_msg *m)
{
	vote_request_body(c, &m->prevote_request);
}

static void vote_body(struct codec *c, struct cs_msg_vote *v)
{
	f_u64(c, &v->term);
	f_u64(c, &v->durable_generation);
	f_u32(c, &v->lease_remaining_ms);
	f_bool(c, &v->granted);
	f_enum8(c, &v->reason, CS_VOTE_REASON_COUNT_);
	check(c, v->granted == (v->reason == CS_VOTE_GRANTED));
}

static void vote_fields(struct codec *c, struct cs_msg *m)
{
	vote_body(c, &m->vote);
}

static void prevote_fields(struct codec *c, struct cs_msg *m)
{
	vote_body(c, &m->prevote);
}

static void transfer_fields(struct codec *c, struct cs_msg *m)
{
	f_u64(c, &m->transfer.term);
	f_str16(c, &m->transfer.target, CS_NAME_MAX);
}

static void ckpt_begin_fields(struct codec *c, struct cs_msg *m)
{
	struct cs_msg_ckpt_begin *b = &m->ckpt_begin;

	f_u64(c, &b->term);
	f_u64(c, &b->generation);
	f_u64(c, &b->parent_generation);
	f_u64(c, &b->total_bytes);
	f_enum8(c, &b->kind, 2);
}

static void ckpt_pages_fields(struct codec *c, struct cs_msg *m)
{
	struct cs_msg_ckpt_pages *p = &m->ckpt_pages;

	f_u64(c, &p->generation);
	f_u64(c, &p->offset);
	f_bytes32(c, &p->data);
	check(c, p->offset <= UINT64_MAX - p->data.len);
}

static void ckpt_end_fields(struct codec *c, struct cs_msg *m)
{
	struct cs_msg_ckpt_end *e = &m->ckpt_end;

	f_u64(c, &e->generation);
	f_u64(c, &e->total_bytes);
	f_raw(c, e->sha256, sizeof(e->sha256));
}

static void ckpt_abort_fields(struct codec *c, struct cs_msg *m)
{
	struct cs_msg_ckpt_abort *a = &m->ckpt_abort;

	f_u64(c, &a->generation);
	f_u32(c, &a->code);
	f_str16(c, &a->text, CS_ERROR_TEXT_MAX);
}

static void ack_fields(struct codec *c, struct cs_msg *m)
{
	f_u64(c, &m->ack.generation);
	f_bool(c, &m->ack.durable);
}

static void control_request_fields(struct codec *c, struct cs_msg *m)
{
	struct cs_msg_control_request *r = &m->control_request;

	f_u32(c, &r->request_id);
	f_str16(c, &r->command, CS_COMMAND_MAX);
	f_str32(c, &r->json);
}

static void control_response_fields(struct codec *c, struct cs_msg *m)
{
	struct cs_msg_control_response *r = &m->control_response;

	f_u32(c, &r->request_id);
	f_i32(c, &r->status);
	f_str32(c, &r->json);
}

static void error_fields(struct codec *c, struct cs_msg *m)
{
	f_u32(c, &m->error.code);
	f_str16(c, &m->error.text, CS_ERROR_TEXT_MAX);
}

static const struct msg_desc {
	uint16_t type;
	const char *name;
	void (*fields)(struct codec *c, struct cs_msg *m);
} descs[] = {
    {CS_MSG_HELLO, "HELLO", hello_fields},
    {CS_MSG_HEARTBEAT, "HEARTBEAT", heartbeat_fields},
    {CS_MSG_LEASE_RENEW, "LEASE_RENEW", lease_renew_fields},
    {CS_MSG_LEASE_GRANT, "LEASE_GRANT", lease_grant_fields},
    {CS_MSG_VOTE_REQUEST, "VOTE_REQUEST", vote_request_fields},
    {CS_MSG_VOTE, "VOTE", vote_fields},
    {CS_MSG_PREVOTE_REQUEST, "PREVOTE_REQUEST", prevote_request_fields},
    {CS_MSG_PREVOTE, "PREVOTE", prevote_fields},
    {CS_MSG_TRANSFER, "TRANSFER", transfer_fields},
    {CS_MSG_CKPT_BEGIN, "CKPT_BEGIN", ckpt_begin_fields},
    {CS_MSG_CKPT_PAGES, "CKPT_PAGES", ckpt_pages_fields},
    {CS_MSG_CKPT_END, "CKPT_END", ckpt_end_fields},
    {CS_MSG_CKPT_ABORT, "CKPT_ABORT", ckpt_abort_fields},
    {CS_MSG_ACK, "ACK", ack_fields},
    {CS_MSG_CONTROL_REQUEST, "CONTROL_REQUEST", control_request_fields},
    {CS_MSG_CONTROL_RESPONSE, "CONTROL_RESPONSE", control_response_fields},
    {CS_MSG_ERROR, "ERROR", error_fields},
};

static const struct msg_desc *desc_of(uint16_t type)
{
	for (size_t i = 0; i < sizeof(descs) / sizeof(descs[0]); i++)
		if (descs[i].type == type)
			return &descs[i];
	return NULL;
}

const char *cs_msg_type_name(uint16_t type)
{
	const struct msg_desc *d = desc_of(type);

	return d ? d->name : NULL;
}

/* Runs the encoder over m with room for cap payload bytes at out. */
static int encode_payload(uint8_t *out, size_t cap, const struct cs_msg *m)
{
	const struct msg_desc *d = desc_of(m->type);
	struct codec c = {.out = out, .out_cap = cap};
	struct cs_msg copy;

	if (!d)
		return CS_PROTO_ETYPE;
	/* The field functions serve both directions, so they take a mutable
	 * message, and they clear a view they refuse: give them a copy. */
	copy = *m;
	d->fields(&c, &copy);
	if (c.bad)
		return CS_PROTO_EINVAL;
	if (c.off > CS_FRAME_PAYLOAD_MAX)
		return CS_PROTO_EOVERSIZE;
	return (int)c.off;
}

int cs_msg_payload_size(const struct cs_msg *m)
{
	return encode_payload(NULL, 0, m);
}

int cs_msg_encode(void *buf, size_t cap, uint16_t version, const struct cs_msg *m)
{
	uint8_t *payload =
	    cap > CS_FRAME_HEADER_SIZE ? (uint8_t *)buf + CS_FRAME_HEADER_SIZE : NULL;
	int n;

	if (version < CS_PROTO_VERSION_MIN || version > CS_PROTO_VERSION_MAX)
		return CS_PROTO_EVERSION;
	n = encode_payload(payload, payload ? cap - CS_FRAME_HEADER_SIZE : 0, m);
	if (n < 0)
		return n;
	if (cap < CS_FRAME_HEADER_SIZE + (size_t)n)
		return (int)CS_FRAME_HEADER_SIZE + n;
	return cs_frame_seal(buf, version, m->type, 0, (uint32_t)n);
}

int cs_msg_decode(const struct cs_frame *f, struct cs_msg *out)
{
	const struct msg_desc *d = desc_of(f->type);
	struct codec c = {.decoding = 1, .in = f->payload, .len = f->payload_len};

	if (!d)
		return CS_PROTO_ETYPE;
	memset(out, 0, sizeof(*out));
	out->type = f->type;
	d->fields(&c, out);
	if (c.bad || c.off != c.len)
		return CS_PROTO_EMALFORMED;
	return 0;
}

int cs_msg_parse(const void *buf, size_t len, uint16_t accept_version, struct cs_msg *out,
                 size_t *ret_need)
{
	struct cs_frame f;
	int total = cs_frame_parse(buf, len, accept_version, &f, ret_need);
	int r;

	if (total < 0)
		return total;
	r = cs_msg_decode(&f, out);
	return r < 0 ? r : total;
}

int cs_proto_negotiate(uint16_t a_min, uint16_t a_max, uint16_t b_min, uint16_t b_max)
{
	uint16_t lo = a_min > b_min ? a_min : b_min;
	uint16_t hi = a_max < b_max ? a_max : b_max;

	if (lo == 0 || lo > hi)
		return CS_PROTO_EVERSION;
	return hi;
}
