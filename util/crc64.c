/* util/crc64.c - CRC-64/XZ through ISA-L's folding implementation (several GB/s), plus the
 * GF(2) matrix combine used by zlib and aliyun-oss-c-sdk's aos_crc64_combine, so ranges read in
 * parallel can be checked against the whole object's CRC without a second pass.
 */
#include "util/crc64.h"

#include <isa-l/crc64.h>

#define CRC64_POLY_REFLECTED 0xC96C5795D7870F42ULL

uint64_t crc64_update(uint64_t crc, const void *buf, size_t len)
{
    return crc64_ecma_refl(crc, buf, len);
}

static uint64_t gf2_times(const uint64_t *mat, uint64_t vec)
{
    uint64_t sum = 0;
    while (vec) {
        if (vec & 1)
            sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void gf2_square(uint64_t *square, const uint64_t *mat)
{
    for (int n = 0; n < 64; n++)
        square[n] = gf2_times(mat, mat[n]);
}

uint64_t crc64_combine(uint64_t crc_a, uint64_t crc_b, uint64_t len_b)
{
    uint64_t even[64], odd[64];

    if (len_b == 0)
        return crc_a;
    /* odd = operator for one zero bit */
    odd[0] = CRC64_POLY_REFLECTED;
    uint64_t row = 1;
    for (int n = 1; n < 64; n++) {
        odd[n] = row;
        row <<= 1;
    }
    gf2_square(even, odd); /* two zero bits */
    gf2_square(odd, even); /* four zero bits */
    do {
        gf2_square(even, odd);
        if (len_b & 1)
            crc_a = gf2_times(even, crc_a);
        len_b >>= 1;
        if (len_b == 0)
            break;
        gf2_square(odd, even);
        if (len_b & 1)
            crc_a = gf2_times(odd, crc_a);
        len_b >>= 1;
    } while (len_b != 0);
    return crc_a ^ crc_b;
}
