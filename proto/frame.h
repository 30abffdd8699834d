/*
 * Frames: the unit of the checksync wire protocol (docs/protocol.md).
 *
 * Every message travels in one frame:
 *
 *     offset size field
 *          0    4 magic        the bytes "CSYN" (0x43 0x53 0x59 0x4e)
 *          4    2 version      protocol version of this frame's payload
 *          6    2 type         message type (msg.h)
 *          8    4 flags        none defined in version 1: must be 0
 *         12    4 payload_len  bytes of payload after the header
 *         16    4 crc          CRC-32C of bytes 0..15 then the payload
 *         20    - payload
 *
 * All integers little-endian. A frame is at most CS_FRAME_MAX bytes in all.
 * Nothing here allocates except the stream decoder, whose buffer never
 * grows beyond a frame whose header has already been validated.
 */
#ifndef CS_PROTO_FRAME_H
#define CS_PROTO_FRAME_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define CS_FRAME_MAGIC         0x4e595343u /* "CSYN" read as a little-endian u32 */
#define CS_FRAME_HEADER_SIZE   20u
#define CS_FRAME_MAX           (16u * 1024u * 1024u) /* header + payload */
#define CS_FRAME_PAYLOAD_MAX   (CS_FRAME_MAX - CS_FRAME_HEADER_SIZE)
#define CS_PROTO_VERSION_MIN   1 /* versions this implementation speaks */
#define CS_PROTO_VERSION_MAX   1
#define CS_PROTO_VERSION_HELLO 1 /* HELLO always travels in version 1 frames */

/*
 * Errors of the frame and message codecs. They are negative errno values,
 * each distinct, so they pass through code that returns -errno; use
 * cs_proto_strerror() for a precise text (strerror() of these is vague).
 */
enum cs_proto_err {
	CS_PROTO_OK = 0,
	CS_PROTO_ETRUNC = -EAGAIN,            /* truncated: more bytes needed */
	CS_PROTO_EMAGIC = -EPROTO,            /* not a checksync frame */
	CS_PROTO_EVERSION = -EPROTONOSUPPORT, /* version not spoken / not negotiated */
	CS_PROTO_EFLAGS = -EOPNOTSUPP,        /* unknown flag bits set */
	CS_PROTO_EOVERSIZE = -EMSGSIZE,       /* frame larger than CS_FRAME_MAX */
	CS_PROTO_ECRC = -EBADMSG,             /* checksum mismatch */
	CS_PROTO_ETYPE = -ENOMSG,             /* unknown message type */
	CS_PROTO_EMALFORMED = -EILSEQ,        /* payload does not match its layout */
	CS_PROTO_EINVAL = -EINVAL,            /* encoder: a field breaks a limit */
	CS_PROTO_ENOMEM = -ENOMEM,            /* stream decoder: no memory */
};

/* "truncated frame", "bad magic", ...; "unknown error" for other values. */
const char *cs_proto_strerror(int err);
/* "ETRUNC", "EMAGIC", ... (the enum's name without the prefix), or NULL. */
const char *cs_proto_err_name(int err);

/* A parsed frame. payload points into the buffer that was parsed. */
struct cs_frame {
	uint16_t version;
	uint16_t type;
	uint32_t flags;
	uint32_t payload_len;
	const uint8_t *payload;
};

/*
 * Checks the header at buf (magic, version, flags, size) without touching
 * the payload. accept_version 0 accepts any version from
 * CS_PROTO_VERSION_MIN to CS_PROTO_VERSION_MAX; otherwise only that one
 * (the negotiated version). Returns the total frame size (header+payload),
 * CS_PROTO_ETRUNC when len < CS_FRAME_HEADER_SIZE, or the header's error.
 * For an evbuffer: copy out the first CS_FRAME_HEADER_SIZE bytes, peek,
 * wait until that many bytes are buffered, pull them up and parse.
 */
int cs_frame_peek(const void *buf, size_t len, uint16_t accept_version);

/*
 * Parses the frame at the start of buf (len bytes available, more may
 * follow). Returns the total size of the frame (> 0) and fills *out;
 * CS_PROTO_ETRUNC with *ret_need (if not NULL) set to the number of
 * further bytes needed (exact once the header is complete, otherwise the
 * bytes missing from the header); or another negative CS_PROTO_E*. The
 * type is not checked here (cs_msg_decode does that); the CRC is.
 */
int cs_frame_parse(const void *buf, size_t len, uint16_t accept_version, struct cs_frame *out,
                   size_t *ret_need);

/*
 * Writes the header for a payload of payload_len bytes that the caller has
 * already placed at buf + CS_FRAME_HEADER_SIZE, computing the CRC over it.
 * buf must hold CS_FRAME_HEADER_SIZE + payload_len bytes. Returns the total
 * size, or CS_PROTO_EOVERSIZE / CS_PROTO_EVERSION / CS_PROTO_EFLAGS.
 */
int cs_frame_seal(void *buf, uint16_t version, uint16_t type, uint32_t flags, uint32_t payload_len);

/*
 * Encodes a frame with a copy of payload into buf (cap bytes). Returns the
 * total frame size; if that is larger than cap nothing is written (call
 * again with a buffer of the returned size). Negative on error as for
 * cs_frame_seal.
 */
int cs_frame_encode(void *buf, size_t cap, uint16_t version, uint16_t type, uint32_t flags,
                    const void *payload, size_t payload_len);

/*
 * Stream decoder: fed bytes in arbitrary pieces, returns whole frames.
 * Usage:
 *
 *	while (len > 0) {
 *		r = cs_frame_decoder_push(d, p, len, &used, &frame);
 *		if (r < 0)
 *			fail (the stream is unusable: close it);
 *		p += used, len -= used;
 *		if (r == 1)
 *			handle(&frame);   // valid until the next push
 *	}
 *
 * Errors are sticky: after one, every push returns it again.
 */
struct cs_frame_decoder;

struct cs_frame_decoder *cs_frame_decoder_new(void);
void cs_frame_decoder_free(struct cs_frame_decoder *d);
/* Restricts accepted frames to version v (0: any spoken version). */
void cs_frame_decoder_set_version(struct cs_frame_decoder *d, uint16_t v);
/*
 * Consumes bytes up to the end of the current frame. Returns 1 when a
 * frame is complete (*out filled, *ret_used bytes consumed; feed the rest
 * again), 0 when all len bytes were consumed and the frame is not complete
 * yet, or a negative CS_PROTO_E* error.
 */
int cs_frame_decoder_push(struct cs_frame_decoder *d, const void *data, size_t len,
                          size_t *ret_used, struct cs_frame *out);
/* Bytes still needed to complete the current frame (at least 1). */
size_t cs_frame_decoder_need(const struct cs_frame_decoder *d);

/* Little-endian field access, shared by the codecs. */
static inline void cs_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void cs_put_le32(uint8_t *p, uint32_t v)
{
	cs_put_le16(p, (uint16_t)v);
	cs_put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void cs_put_le64(uint8_t *p, uint64_t v)
{
	cs_put_le32(p, (uint32_t)v);
	cs_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t cs_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t cs_get_le32(const uint8_t *p)
{
	return (uint32_t)cs_get_le16(p) | ((uint32_t)cs_get_le16(p + 2) << 16);
}

static inline uint64_t cs_get_le64(const uint8_t *p)
{
	return (uint64_t)cs_get_le32(p) | ((uint64_t)cs_get_le32(p + 4) << 32);
}

#endif
