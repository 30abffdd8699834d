#include "crc32c.h"

/* Reflected polynomial 0x1EDC6F41; the table is built at compile time so the
 * function never initialises anything at run time (it runs in signal
 * handlers and in copy-on-write children). */
#define P 0x82F63B78u
#define R1(c) (((c) & 1) ? (((c) >> 1) ^ P) : ((c) >> 1))
#define R8(c) R1(R1(R1(R1(R1(R1(R1(R1(c))))))))
#define E(n) R8((uint32_t)(n))
#define E4(n) E(n), E(n + 1), E(n + 2), E(n + 3)
#define E16(n) E4(n), E4(n + 4), E4(n + 8), E4(n + 12)
#define E64(n) E16(n), E16(n + 16), E16(n + 32), E16(n + 48)

static const uint32_t crc32c_table[256] = {E64(0), E64(64), E64(128), E64(192)};

/* a times b modulo P, both reflected polynomials. */
static uint32_t mult_mod_p(uint32_t a, uint32_t b)
{
	uint32_t product = 0;

	for (uint32_t bit = 1u << 31; bit; bit >>= 1) {
		if (a & bit)
			product ^= b;
		b = b & 1 ? (b >> 1) ^ P : b >> 1;
	}
	return product;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <emmintrin.h>

/*
 * The crc32 instruction has a latency of three cycles and a throughput of
 * one: one dependent chain uses a third of it. Long buffers are taken in
 * rounds of three blocks whose CRCs run side by side, the first continuing
 * crc, the other two from zero, then joined: a CRC register c followed by
 * n more bytes is c times x^(8n) modulo P, and the join adds the blocks'
 * own CRCs (the CRC is linear). A round of 24 KiB spends two such products
 * (~100 cycles) against ~3,000 for its bytes.
 */
#define BLOCK 8192u
#define X_8BLOCK 0x28461564u  /* x^(8 * BLOCK) mod P, reflected (x^0 = 1 << 31) */
#define X_16BLOCK 0xbf455269u /* x^(16 * BLOCK) mod P */

/* The register after a round of three blocks, from their chains: the first
 * followed by two blocks, the second by one, the third as it is. */
static uint64_t join_round(uint64_t a, uint64_t b, uint64_t d)
{
	return mult_mod_p(X_16BLOCK, (uint32_t)a) ^ mult_mod_p(X_8BLOCK, (uint32_t)b) ^ (uint32_t)d;
}

__attribute__((target("sse4.2"))) static uint64_t crc_words(uint64_t c, const uint8_t *p,
							      size_t len)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v;

		__builtin_memcpy(&v, p + i, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	return c;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
							     size_t len)
{
	uint64_t c = crc;

	while (len >= 3 * BLOCK) {
		uint64_t a = c, b = 0, d = 0;

		for (size_t i = 0; i < BLOCK; i += 8) {
			uint64_t va, vb, vd;

			__builtin_memcpy(&va, p + i, 8);
			__builtin_memcpy(&vb, p + BLOCK + i, 8);
			__builtin_memcpy(&vd, p + 2 * BLOCK + i, 8);
			a = __builtin_ia32_crc32di(a, va);
			b = __builtin_ia32_crc32di(b, vb);
			d = __builtin_ia32_crc32di(d, vd);
		}
		c = join_round(a, b, d);
		p += 3 * BLOCK;
		len -= 3 * BLOCK;
	}
	c = crc_words(c, p, len);
	p += len & ~(size_t)7;
	len &= 7;
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}

/*
 * crc32c_hw over bytes it copies on the way: each word is loaded once,
 * stored with a non-temporal store (the copy's reader is a device, through
 * O_DIRECT) and fed to its chain, so the CRC runs in the shadow of the
 * loads' cache misses. Not instrumented: the source may be memory the
 * sanitizers do not cover (in a sanitized program, their own shadow).
 */
__attribute__((target("sse4.2"), no_sanitize_address)) static uint32_t
crc32c_hw_copy(uint32_t crc, uint8_t *dst, const uint8_t *src, size_t len)
{
	uint64_t c = crc;

	while (len >= 3 * BLOCK) {
		uint64_t a = c, b = 0, d = 0;

		for (size_t i = 0; i < BLOCK; i += 8) {
			uint64_t va, vb, vd;

			__builtin_memcpy(&va, src + i, 8);
			__builtin_memcpy(&vb, src + BLOCK + i, 8);
			__builtin_memcpy(&vd, src + 2 * BLOCK + i, 8);
			_mm_stream_si64((long long *)(void *)(dst + i), (long long)va);
			_mm_stream_si64((long long *)(void *)(dst + BLOCK + i), (long long)vb);
			_mm_stream_si64((long long *)(void *)(dst + 2 * BLOCK + i), (long long)vd);
			a = __builtin_ia32_crc32di(a, va);
			b = __builtin_ia32_crc32di(b, vb);
			d = __builtin_ia32_crc32di(d, vd);
		}
		c = join_round(a, b, d);
		src += 3 * BLOCK;
		dst += 3 * BLOCK;
		len -= 3 * BLOCK;
	}
	for (; len >= 8; len -= 8, src += 8, dst += 8) {
		uint64_t v;

		__builtin_memcpy(&v, src, 8);
		_mm_stream_si64((long long *)(void *)dst, (long long)v);
		c = __builtin_ia32_crc32di(c, v);
	}
	_mm_sfence();
	return (uint32_t)c;
}

static int have_sse42(void)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	return (c & bit_SSE4_2) != 0;
}
#endif

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* cpuid traps to the hypervisor in a virtual machine (microseconds each), so
 * its answer is kept. Racing first calls store the same value: relaxed
 * atomics suffice, and a signal handler or a copy-on-write child may call. */
static int use_hw(void)
{
	static int known; /* 0 unknown, 1 no, 2 yes */
	int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
	if (!k) {
		k = have_sse42() ? 2 : 1;
		__atomic_store_n(&known, k, __ATOMIC_RELAXED);
	}
	return k == 2;
}
#endif

uint32_t cs_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
#if defined(__x86_64__) && defined(__GNUC__)
	if (use_hw())
		return ~crc32c_hw(crc, p, len);
#endif
	return ~crc32c_sw(crc, p, len);
}

/* x^(8 * len) modulo P, reflected: the factor a CRC register is multiplied
 * by when len more bytes follow it, by squaring from x^8. */
static uint32_t x_pow_8n(uint64_t len)
{
	uint32_t result = 1u << 31, square = 1u << 23; /* x^0, x^8 */

	for (; len; len >>= 1) {
		if (len & 1)
			result = mult_mod_p(result, square);
		square = mult_mod_p(square, square);
	}
	return result;
}

uint32_t cs_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	/* Both carry the conditioning (the register inverted before and
	 * after); in this sum its two contributions cancel, as in zlib's
	 * crc32_combine. The unit test checks every split. */
	return mult_mod_p(x_pow_8n(len_b), crc_a) ^ crc_b;
}

/* The fallback's copy, as uninstrumented as the fast one. */
__attribute__((no_sanitize_address)) static void copy_words(uint8_t *dst, const uint8_t *src,
							    size_t len)
{
	for (size_t i = 0; i < len; i++)
		((volatile uint8_t *)dst)[i] = src[i];
}

uint32_t cs_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (use_hw() && len % 8 == 0)
		return ~crc32c_hw_copy(~crc, dst, src, len);
#endif
	copy_words(dst, src, len);
	return cs_crc32c(crc, dst, len);
}
