// fuzz-links: efc_cache
/* tests/fuzz/fuzz_cache_item.c - the disk cache's decoders of what it reads from its file, i.e.
 * from outside: the item header (citem_hdr_decode) and, with bit 6 of byte 0, a region summary's
 * entry (citem_sum_decode). Byte 0 picks the geometry (the largest has CSLOT_MAX_PAGES pages)
 * and, with bit 7, patches the header CRC so the fuzzer gets past it; the rest is the header or
 * the entry. A success must describe a block within the geometry whose item length matches its
 * pages (and, for an entry, lies within its region), and must survive an encode/decode round trip
 * unchanged; -EAGAIN must name a header longer than the input. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_i.h"
#include "util/crc64.h"
#include "util/le.h"

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
    if (data[0] & 0x40) {
        const uint64_t first = 512, limit = 16u << 20;
        struct citem_hdr h = {.valid = valid};
        uint32_t off;
        int rc = citem_sum_decode(in, size, bs, ps, first, limit, &off, &h);
        if (rc == 0) {
            uint32_t sl = citem_sum_len(np);
            if (size < sl || off < first || off + (uint64_t)h.item_len > limit || h.blen == 0 ||
                h.blen > bs || h.nvalid == 0 ||
                h.item_len !=
                    citem_len(citem_hdr_len(np, h.nvalid), citem_data_len(h.blen, ps, np, valid)))
                abort();
            uint8_t *out = malloc(sl);
            citem_sum_encode(&h, off, out);
            if (memcmp(out, in, sl) != 0)
                abort();
            free(out);
        } else if (rc != -EBADMSG && rc != -ENOENT) {
            abort();
        }
        free(in);
        return 0;
    }
    if (fix && size >= CITEM_FIXED) {
        uint32_t nv = le_get32(in + 52);
        uint64_t hl = nv <= np ? citem_hdr_len(np, nv) : 0;
        if (hl && size >= hl)
            le_put64(in + hl - 8, crc64_update(0, in, hl - 8));
    }
    struct citem_hdr h = {.valid = valid, .crc = crc};
    int rc = citem_hdr_decode(in, size, bs, ps, &h);
    if (rc == 0) {
        uint32_t hl = citem_hdr_len(np, h.nvalid);
        if (h.blen == 0 || h.blen > bs || h.npages != np || h.block_size != bs ||
            h.page_size != ps || size < hl || h.nvalid == 0)
            abort();
        uint32_t have = (h.blen + ps - 1) / ps, nv = 0;
        for (uint32_t p = 0; p < np; p++) {
            int v = (int)(valid[p / 64] >> (p % 64) & 1);
            if (v && p >= have)
                abort();
            nv += (uint32_t)v;
        }
        if (nv != h.nvalid || h.item_len != citem_len(hl, citem_data_len(h.blen, ps, np, valid)))
            abort();
        uint8_t *out = malloc(hl);
        struct citem_hdr e = h;
        citem_hdr_encode(&e, out);
        struct citem_hdr h2 = {.valid = valid2, .crc = crc2};
        if (citem_hdr_decode(out, hl, bs, ps, &h2) != 0 || h2.id[0] != h.id[0] ||
            h2.id[1] != h.id[1] || h2.blen != h.blen || h2.seq != h.seq ||
            h2.item_len != h.item_len || memcmp(valid, valid2, 8 * CSLOT_WORDS(np)) != 0 ||
            memcmp(crc, crc2, 8ull * np) != 0 || memcmp(out, in, hl) != 0)
            abort();
        free(out);
    } else if (rc == -EAGAIN) {
        if (size < CITEM_FIXED || size >= citem_hdr_len(np, h.nvalid))
            abort();
    } else if (rc != -EBADMSG && rc != -ENOENT) {
        abort();
    }
    free(in);
    return 0;
}
