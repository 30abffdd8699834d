/*
 * libFuzzer target for the wire protocol: the frame parser, the stream
 * decoder and every message decoder. Beyond "no crash", it checks that
 * whatever decodes re-encodes to the very same bytes (the encoding is
 * canonical), so a decoder that accepts more than the encoder would write
 * is caught too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[CS_FRAME_MAX];

/* Re-encodes m and compares with the frame it was decoded from. */
static void check_canonical(const struct cs_msg *m, uint16_t version, const uint8_t *frame,
                            size_t len)
{
	int n = cs_msg_encode(out, sizeof(out), version, m);

	if (n < 0 || (size_t)n != len || memcmp(out, frame, len) != 0)
		abort();
}

/* Frames one after another, as a contiguous buffer holds them. */
static size_t parse_all(const uint8_t *data, size_t size)
{
	size_t pos = 0, frames = 0;

	while (pos < size) {
		struct cs_msg m;
		size_t need = 0;
		int r = cs_msg_parse(data + pos, size - pos, 0, &m, &need);

		if (r == CS_PROTO_ETRUNC && (need == 0 || need > CS_FRAME_MAX))
			abort();
		if (r == CS_PROTO_ETYPE || r == CS_PROTO_EMALFORMED) {
			/* The frame itself was valid: skip it like a receiver that logs
			 * and closes would not, to reach the frames after it. */
			int t = cs_frame_peek(data + pos, size - pos, 0);
			if (t <= 0 || (size_t)t > size - pos)
				abort();
			pos += (size_t)t;
			frames++;
			continue;
		}
		if (r <= 0)
			break;
		if ((size_t)r > size - pos)
			abort();
		check_canonical(&m, 1, data + pos, (size_t)r);
		pos += (size_t)r;
		frames++;
	}
	return frames;
}

/* The same bytes through the stream decoder, in chunks of varying size. */
static size_t push_all(const uint8_t *data, size_t size)
{
	struct cs_frame_decoder *d = cs_frame_decoder_new();
	size_t pos = 0, frames = 0, step = 1;

	if (!d)
		return 0;
	while (pos < size) {
		size_t len = size - pos < step ? size - pos : step, used = 0;
		struct cs_frame f;
		int r = cs_frame_decoder_push(d, data + pos, len, &used, &f);

		if (used > len)
			abort();
		pos += used;
		if (r < 0)
			break;
		if (r == 1) {
			struct cs_msg m;
			if (f.payload_len > CS_FRAME_PAYLOAD_MAX)
				abort();
			cs_msg_decode(&f, &m);
			frames++;
		}
		step = step * 3 + 1 > 4096 ? 1 : step * 3 + 1;
	}
	cs_frame_decoder_free(d);
	return frames;
}

/*
 * Random bytes almost never carry a right CRC, so the message decoders are
 * also fed directly: the type from bytes 6..7 of a would-be header, the
 * payload from byte 20 on.
 */
static void decode_payload(const uint8_t *data, size_t size)
{
	struct cs_frame f;
	struct cs_msg m;
	uint8_t *copy;

	if (size < CS_FRAME_HEADER_SIZE)
		return;
	f.version = 1;
	f.type = cs_get_le16(data + 6);
	f.flags = 0;
	f.payload_len = (uint32_t)(size - CS_FRAME_HEADER_SIZE);
	/* An exact-size copy, so ASan catches a read one past the payload. */
	copy = malloc(f.payload_len ? f.payload_len : 1);
	if (!copy)
		return;
	memcpy(copy, data + CS_FRAME_HEADER_SIZE, f.payload_len);
	f.payload = copy;
	if (cs_msg_decode(&f, &m) == 0) {
		int n = cs_msg_encode(out, sizeof(out), 1, &m);
		if (n < 0 || (size_t)n != size ||
		    memcmp(out + CS_FRAME_HEADER_SIZE, copy, f.payload_len) != 0)
			abort();
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (parse_all(copy, size) != push_all(copy, size))
		abort();
	decode_payload(copy, size);
	free(copy);
	return 0;
}
