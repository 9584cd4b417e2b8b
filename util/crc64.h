/* util/crc64.h - CRC-64/XZ (ECMA-182 reflected), the checksum OSS sends in
 * x-oss-hash-crc64ecma. Init and xorout are all ones; crc64("123456789") = 0x995dc9bbdf1939fa.
 */
#ifndef EFC_UTIL_CRC64_H
#define EFC_UTIL_CRC64_H

#include <stddef.h>
#include <stdint.h>

/* Continues CRC over BUF; start with crc = 0. */
uint64_t crc64_update(uint64_t crc, const void *buf, size_t len);
/* CRC of A||B given crc(A), crc(B) and len(B), as zlib's crc32_combine. */
uint64_t crc64_combine(uint64_t crc_a, uint64_t crc_b, uint64_t len_b);

#endif
