#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

/* Offsets of the header fields (docs/protocol.md, "Frame header"). */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 4,
	OFF_TYPE = 6,
	OFF_FLAGS = 8,
	OFF_LEN = 12,
	OFF_CRC = 16,
};

/* No flag is defined in version 1. */
#define FLAGS_KNOWN 0u

static const struct {
	int err;
	const char *name, *text;
} errors[] = {
    {CS_PROTO_OK, "OK", "success"},
    {CS_PROTO_ETRUNC, "ETRUNC", "truncated frame (more bytes needed)"},
    {CS_PROTO_EMAGIC, "EMAGIC", "bad frame magic (not a checksync peer)"},
    {CS_PROTO_EVERSION, "EVERSION", "unsupported or unnegotiated protocol version"},
    {CS_PROTO_EFLAGS, "EFLAGS", "unknown frame flags"},
    {CS_PROTO_EOVERSIZE, "EOVERSIZE", "frame larger than the maximum frame size"},
    {CS_PROTO_ECRC, "ECRC", "frame checksum mismatch"},
    {CS_PROTO_ETYPE, "ETYPE", "unknown message type"},
    {CS_PROTO_EMALFORMED, "EMALFORMED", "malformed message payload"},
    {CS_PROTO_EINVAL, "EINVAL", "message field out of range"},
    {CS_PROTO_ENOMEM, "ENOMEM", "out of memory"},
};

const char *cs_proto_err_name(int err)
{
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (errors[i].err == err)
			return errors[i].name;
	return NULL;
}

const char *cs_proto_strerror(int err)
{
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (errors[i].err == err)
			return errors[i].text;
	return "unknown error";
}

static int version_ok(uint16_t v, uint16_t accept_version)
{
	if (accept_version != 0)
		return v == accept_version;
	return v >= CS_PROTO_VERSION_MIN && v <= CS_PROTO_VERSION_MAX;
}

/*
 * The header is checked in this order so that garbage is refused as soon
 * as the 20 header bytes are in, without waiting for a payload whose length
 * came from that garbage. The type is left to the message layer, after the
 * CRC, so that a corrupted type reads as a CRC error.
 */
int cs_frame_peek(const void *buf, size_t len, uint16_t accept_version)
{
	const uint8_t *p = buf;

	if (len < CS_FRAME_HEADER_SIZE)
		return CS_PROTO_ETRUNC;
	if (cs_get_le32(p + OFF_MAGIC) != CS_FRAME_MAGIC)
		return CS_PROTO_EMAGIC;
	if (!version_ok(cs_get_le16(p + OFF_VERSION), accept_version))
		return CS_PROTO_EVERSION;
	if (cs_get_le32(p + OFF_FLAGS) & ~FLAGS_KNOWN)
		return CS_PROTO_EFLAGS;
	if (cs_get_le32(p + OFF_LEN) > CS_FRAME_PAYLOAD_MAX)
		return CS_PROTO_EOVERSIZE;
	return (int)(CS_FRAME_HEADER_SIZE + cs_get_le32(p + OFF_LEN));
}

static uint32_t frame_crc(const uint8_t *frame, uint32_t payload_len)
{
	uint32_t crc = cs_crc32c(0, frame, OFF_CRC);

	return cs_crc32c(crc, frame + CS_FRAME_HEADER_SIZE, payload_len);
}

int cs_frame_parse(const void *buf, size_t len, uint16_t accept_version, struct cs_frame *out,
                   size_t *ret_need)
{
	const uint8_t *p = buf;
	int total = cs_frame_peek(buf, len, accept_version);

	if (total == CS_PROTO_ETRUNC) {
		if (ret_need)
			*ret_need = CS_FRAME_HEADER_SIZE - len;
		return total;
	}
	if (total < 0)
		return total;
	if (len < (size_t)total) {
		if (ret_need)
			*ret_need = (size_t)total - len;
		return CS_PROTO_ETRUNC;
	}
	uint32_t payload_len = (uint32_t)total - CS_FRAME_HEADER_SIZE;
	if (frame_crc(p, payload_len) != cs_get_le32(p + OFF_CRC))
		return CS_PROTO_ECRC;
	out->version = cs_get_le16(p + OFF_VERSION);
	out->type = cs_get_le16(p + OFF_TYPE);
	out->flags = cs_get_le32(p + OFF_FLAGS);
	out->payload_len = payload_len;
	out->payload = p + CS_FRAME_HEADER_SIZE;
	return total;
}

int cs_frame_seal(void *buf, uint16_t version, uint16_t type, uint32_t flags, uint32_t payload_len)
{
	uint8_t *p = buf;

	if (!version_ok(version, 0))
		return CS_PROTO_EVERSION;
	if (flags & ~FLAGS_KNOWN)
		return CS_PROTO_EFLAGS;
	if (payload_len > CS_FRAME_PAYLOAD_MAX)
		return CS_PROTO_EOVERSIZE;
	cs_put_le32(p + OFF_MAGIC, CS_FRAME_MAGIC);
	cs_put_le16(p + OFF_VERSION, version);
	cs_put_le16(p + OFF_TYPE, type);
	cs_put_le32(p + OFF_FLAGS, flags);
	cs_put_le32(p + OFF_LEN, payload_len);
	cs_put_le32(p + OFF_CRC, frame_crc(p, payload_len));
	return (int)(CS_FRAME_HEADER_SIZE + payload_len);
}

int cs_frame_encode(void *buf, size_t cap, uint16_t version, uint16_t type, uint32_t flags,
                    const void *payload, size_t payload_len)
{
	if (payload_len > CS_FRAME_PAYLOAD_MAX)
		return CS_PROTO_EOVERSIZE;
	size_t total = CS_FRAME_HEADER_SIZE + payload_len;
	if (cap < total) {
		/* Still report a bad version or flags now, not on the retry. */
		uint8_t scratch[CS_FRAME_HEADER_SIZE];
		int r = cs_frame_seal(scratch, version, type, flags, 0);
		return r < 0 ? r : (int)total;
	}
	if (payload_len)
		memmove((uint8_t *)buf + CS_FRAME_HEADER_SIZE, payload, payload_len);
	return cs_frame_seal(buf, version, type, flags, (uint32_t)payload_len);
}

/* A buffer that held a big frame is given back rather than kept per peer. */
#define DECODER_KEEP_MAX (1u << 20)

struct cs_frame_decoder {
	uint8_t *buf;
	size_t cap;
	size_t have;  /* bytes of the current frame in buf */
	size_t total; /* size of the current frame; 0 until its header is in */
	uint16_t version;
	int err;      /* sticky: framing is lost after any error */
	int returned; /* the frame in buf was handed out; drop it on the next push */
};

struct cs_frame_decoder *cs_frame_decoder_new(void)
{
	struct cs_frame_decoder *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->buf = malloc(CS_FRAME_HEADER_SIZE);
	if (!d->buf) {
		free(d);
		return NULL;
	}
	d->cap = CS_FRAME_HEADER_SIZE;
	return d;
}

void cs_frame_decoder_free(struct cs_frame_decoder *d)
{
	if (!d)
		return;
	free(d->buf);
	free(d);
}

void cs_frame_decoder_set_version(struct cs_frame_decoder *d, uint16_t v)
{
	d->version = v;
}

size_t cs_frame_decoder_need(const struct cs_frame_decoder *d)
{
	if (d->returned)
		return CS_FRAME_HEADER_SIZE;
	return (d->total ? d->total : CS_FRAME_HEADER_SIZE) - d->have;
}

static void decoder_reset(struct cs_frame_decoder *d)
{
	if (d->cap > DECODER_KEEP_MAX) {
		uint8_t *small = realloc(d->buf, CS_FRAME_HEADER_SIZE);
		if (small) {
			d->buf = small;
			d->cap = CS_FRAME_HEADER_SIZE;
		}
	}
	d->have = 0;
	d->total = 0;
	d->returned = 0;
}

/* Called once the header is in: validates it and makes room for the frame. */
static int decoder_start_frame(struct cs_frame_decoder *d)
{
	int total = cs_frame_peek(d->buf, d->have, d->version);

	if (total < 0)
		return total;
	if ((size_t)total > d->cap) {
		/* total is bounded by CS_FRAME_MAX: the header was checked. */
		uint8_t *nb = realloc(d->buf, (size_t)total);
		if (!nb)
			return CS_PROTO_ENOMEM;
		d->buf = nb;
		d->cap = (size_t)total;
	}
	d->total = (size_t)total;
	return 0;
}

int cs_frame_decoder_push(struct cs_frame_decoder *d, const void *data, size_t len,
                          size_t *ret_used, struct cs_frame *out)
{
	const uint8_t *src = data;
	size_t used = 0;
	int r;

	*ret_used = 0;
	if (d->err)
		return d->err;
	if (d->returned)
		decoder_reset(d);
	for (;;) {
		size_t goal = d->total ? d->total : CS_FRAME_HEADER_SIZE;
		size_t n = goal - d->have;

		if (n > len - used)
			n = len - used;
		if (n)
			memcpy(d->buf + d->have, src + used, n);
		d->have += n;
		used += n;
		*ret_used = used;
		if (d->have < goal)
			return 0;
		if (d->total)
			break;
		r = decoder_start_frame(d);
		if (r < 0)
			return d->err = r;
	}
	r = cs_frame_parse(d->buf, d->have, d->version, out, NULL);
	if (r < 0)
		return d->err = r;
	d->returned = 1;
	return 1;
}
