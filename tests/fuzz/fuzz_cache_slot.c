// fuzz-links: efc_cache
/* tests/fuzz/fuzz_cache_slot.c - the disk cache's slot header decoder (cslot_hdr_decode): its
 * input is read from a cache file, i.e. from outside. Byte 0 picks the geometry (the largest has
 * CSLOT_MAX_PAGES pages) and, with bit 7, patches the header CRC so the fuzzer gets past it; the
 * rest is the header. A success must describe a block within the geometry, and must survive an
 * encode/decode round trip unchanged. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_i.h"
#include "util/crc64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t geo[][2] = {
    {1u << 20, 16u << 10},
    {64u << 10, 4u << 10},
    {1u << 20, 1u << 20},
    {64u << 20, 4u << 10},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint64_t valid[CSLOT_WORDS(CSLOT_MAX_PAGES)], crc[CSLOT_MAX_PAGES];
    static uint64_t valid2[CSLOT_WORDS(CSLOT_MAX_PAGES)], crc2[CSLOT_MAX_PAGES];
    if (size < 1)
        return 0;
    uint32_t bs = geo[data[0] % 4][0], ps = geo[data[0] % 4][1], np = bs / ps;
    int fix = data[0] & 0x80;
    size -= 1;
    uint8_t *in = malloc(size ? size : 1);
    memcpy(in, data + 1, size);
    uint32_t hs = cslot_hdr_size(np);
    if (fix && size >= hs) {
        uint64_t c = crc64_update(0, in, hs - 8);
        for (int i = 0; i < 8; i++)
            in[hs - 8 + i] = (uint8_t)(c >> (8 * i));
    }
    struct cslot_hdr h = {.valid = valid, .crc = crc};
    int rc = cslot_hdr_decode(in, size, bs, ps, &h);
    if (rc == 0) {
        if (h.blen == 0 || h.blen > bs || h.npages != np || h.block_size != bs ||
            h.page_size != ps || size < hs)
            abort();
        uint32_t have = (h.blen + ps - 1) / ps;
        for (uint32_t p = have; p < np; p++)
            if (valid[p / 64] >> (p % 64) & 1)
                abort();
        uint8_t *out = malloc(hs);
        cslot_hdr_encode(&h, out);
        struct cslot_hdr h2 = {.valid = valid2, .crc = crc2};
        if (cslot_hdr_decode(out, hs, bs, ps, &h2) != 0 || h2.id[0] != h.id[0] ||
            h2.id[1] != h.id[1] || h2.blen != h.blen || h2.seq != h.seq ||
            memcmp(valid, valid2, 8 * CSLOT_WORDS(np)) != 0 || memcmp(crc, crc2, 8ull * np) != 0)
            abort();
        free(out);
    } else if (rc != -EBADMSG && rc != -ENOENT) {
        abort();
    }
    free(in);
    return 0;
}
