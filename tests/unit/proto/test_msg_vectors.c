/*
 * Known-answer vectors: the exact bytes of one frame per message type, for
 * the samples in msg_samples.h, as docs/protocol.md defines them. They were
 * produced by gen_vectors.py (an independent encoder written from the
 * document). proto/ must encode each sample to exactly these bytes and
 * decode these bytes back to the sample.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "msg_samples.h"

static const struct {
	uint16_t type;
	const char *hex;
} vectors[] = {
	{CS_MSG_HELLO,
	 "4353594e010001010000000034000000fe0a7eab070000000000000001000100"
	 "020200633106006e6f64652d620200707108002f62696e2f61707002000400de"
	 "adbeef0300010203"
	},
	{CS_MSG_HEARTBEAT,
	 "4353594e010001020000000025000000badee52807000000000000002a000000"
	 "000000000807060504030201e803000000000000dc05000001"
	},
	{CS_MSG_LEASE_RENEW,
	 "4353594e01000202000000001400000074be9a0d070000000000000003000000"
	 "00000000d0070000"
	},
	{CS_MSG_LEASE_GRANT,
	 "4353594e010003020000000015000000ee228a40070000000000000003000000"
	 "00000000d007000001"
	},
	{CS_MSG_VOTE_REQUEST,
	 "4353594e01000402000000001800000067e3cc4a08000000000000002a000000"
	 "0000000006006e6f64652d62"
	},
	{CS_MSG_VOTE,
	 "4353594e0100050200000000160000003813e5ad080000000000000029000000"
	 "00000000fa0000000003"
	},
	{CS_MSG_PREVOTE_REQUEST,
	 "4353594e010006020000000018000000ae74f1d809000000000000002c000000"
	 "0000000006006e6f64652d63"
	},
	{CS_MSG_PREVOTE,
	 "4353594e010007020000000016000000d0ddd23b08000000000000002c000000"
	 "00000000000000000100"
	},
	{CS_MSG_TRANSFER,
	 "4353594e0100080200000000100000004d217b21080000000000000006006e6f"
	 "64652d63"
	},
	{CS_MSG_CKPT_BEGIN,
	 "4353594e010001030000000021000000e24ab41107000000000000002b000000"
	 "000000002a00000000000000002000000000000001"
	},
	{CS_MSG_CKPT_PAGES,
	 "4353594e010002030000000019000000c3e70ba62b0000000000000000100000"
	 "00000000050000001122334455"
	},
	{CS_MSG_CKPT_END,
	 "4353594e010003030000000030000000f26629402b0000000000000000200000"
	 "00000000a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babb"
	 "bcbdbebf"
	},
	{CS_MSG_CKPT_ABORT,
	 "4353594e010004030000000017000000471e82232b0000000000000008000000"
	 "09006469736b2066756c6c"
	},
	{CS_MSG_ACK,
	 "4353594e0100050300000000090000008106c3322b0000000000000001"
	},
	{CS_MSG_CONTROL_REQUEST,
	 "4353594e0100010400000000120000001d56abcf090000000600737461747573"
	 "020000007b7d"
	},
	{CS_MSG_CONTROL_RESPONSE,
	 "4353594e01000204000000001400000026ef80f409000000feffffff08000000"
	 "7b226f6b223a317d"
	},
	{CS_MSG_ERROR,
	 "4353594e0100017f0000000010000000300c2a43050000000a007465726d2036"
	 "203c2037"
	},
};
#define N_VECTORS (sizeof(vectors) / sizeof(vectors[0]))

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;

	CHECK(n <= cap);
	for (size_t i = 0; i < n && i < cap; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
	return n;
}

static void dump(const char *what, const uint8_t *p, size_t n)
{
	fprintf(stderr, "%s (%zu bytes): ", what, n);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%02x", p[i]);
	fprintf(stderr, "\n");
}

int main(void)
{
	uint8_t want[512], got[512];
	struct cs_msg m, out;

	CHECK_EQ(N_VECTORS, N_TYPES);
	for (size_t i = 0; i < N_VECTORS; i++) {
		size_t n = unhex(vectors[i].hex, want, sizeof(want));
		size_t need = 0;

		CHECK_EQ(vectors[i].type, all_types[i]);
		sample_msg(vectors[i].type, &m);
		int r = cs_msg_encode(got, sizeof(got), 1, &m);
		CHECK_EQ(r, (int)n);
		if (r != (int)n || memcmp(got, want, n) != 0) {
			fprintf(stderr, "vector %s differs\n", cs_msg_type_name(vectors[i].type));
			dump("expected", want, n);
			dump("encoded ", got, r > 0 && (size_t)r <= sizeof(got) ? (size_t)r : 0);
			check_failures++;
		}
		/* Decode from an exact-size heap copy so ASan sees any overread. */
		uint8_t *copy = malloc(n);
		memcpy(copy, want, n);
		CHECK_EQ(cs_msg_parse(copy, n, 1, &out, &need), (int)n);
		CHECK(msg_same(&m, &out));
		CHECK_EQ(out.type, vectors[i].type);
		free(copy);
	}
	return check_report("test_msg_vectors");
}
