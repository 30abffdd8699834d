/* CRC-32C (Castagnoli), the checksum of frames and image sections. */
#ifndef CS_PROTO_CRC32C_H
#define CS_PROTO_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Extends crc (0 for a new checksum) over len bytes. Incremental: feeding
 * a buffer in pieces gives the same result as feeding it at once.
 * Safe in a signal handler and in a child of a multi-threaded process.
 */
uint32_t cs_crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * Copies len bytes from src to dst and extends crc over them, reading each
 * byte once. dst is written past the cache (its reader is expected to be a
 * device); src is read without the sanitizers' checks, as a copy of
 * another program's memory must be.
 */
uint32_t cs_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len);

/* The CRC of a followed by b, from the CRC of each and b's length. */
uint32_t cs_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#endif
