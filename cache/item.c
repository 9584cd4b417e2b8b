/* cache/item.c - the disk tier's item: one block's pages as the region log (disk.c) stores them,
 * a header followed by the bytes of the pages it holds, packed in page order. An item of a block
 * of n bytes costs n bytes plus its header (88 bytes for one page), rounded up to 512: a 16 KiB
 * object takes 16.5 KiB of disk, not a block-sized slot.
 *
 * Item layout (all integers little-endian; W = ceil(npages/64), V = pages held):
 *
 *   0   4  magic "EFCI" (0x49434645); 0 = no item
 *   4   2  version (1)
 *   6   2  flags (0)
 *   8   4  hdr_len = 64 + 8W + 8V + 8
 *   12  4  item_len = hdr_len + data bytes, rounded up to 512
 *   16  8  sequence number of the region it was written in (an item left from an earlier use
 *          of the region has another, so a walk of the region stops there)
 *   24  16 identity: XXH3-128 of (name space, key, etag, block index), low word first
 *   40  4  block length (1..block_size; the last block of an object is short)
 *   44  4  block_size
 *   48  4  page_size
 *   52  4  V
 *   56  8  spare (0)
 *   64  8W valid-page bitmap (bit p of word p/64); no bit past the block's end
 *   ..  8V CRC64 of each page held, in page order, seeded with identity and page number, over
 *          the page's bytes inside the block (the last page of the last block is short)
 *   hdr_len-8  8  CRC64 of bytes 0..hdr_len-9
 *   hdr_len    the pages' bytes, in page order: page p of the item (the k-th set bit) starts at
 *              hdr_len + k * page_size
 *
 * The index keeps each item's valid bitmap (cache.c), so a read finds page p's bytes and CRC
 * from the bitmap alone, without reading the header first.
 *
 * Summary entry (a sealed region's list of its items, disk.c; SE = 32 + 8W bytes):
 *
 *   0   4  the item's offset in its region (0: a dead entry, an append that failed)
 *   4   4  block length
 *   8   16 identity
 *   24  4  item_len
 *   28  4  zero
 *   32  8W valid-page bitmap
 */
#include <errno.h>
#include <string.h>

#include "cache/cache_i.h"
#include "util/crc64.h"
#include "util/le.h"

uint64_t cslot_block_len(uint64_t obj_size, uint64_t index, uint32_t block_size)
{
    if (index >= obj_size / block_size + 1)
        return 0;
    uint64_t start = index * block_size;
    if (start >= obj_size)
        return 0;
    uint64_t left = obj_size - start;
    return left < block_size ? left : block_size;
}

uint64_t cslot_page_seed(const uint64_t id[2], uint32_t page)
{
    return id[0] ^ (id[1] * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)page << 1);
}

uint64_t cslot_page_crc(const uint64_t id[2], uint32_t page, const void *data, size_t len)
{
    return crc64_update(cslot_page_seed(id, page), data, len);
}

uint32_t citem_hdr_len(uint32_t npages, uint32_t nvalid)
{
    return CITEM_FIXED + 8u * CSLOT_WORDS(npages) + 8u * nvalid + 8u;
}

uint64_t citem_data_len(uint32_t blen, uint32_t page_size, uint32_t npages, const uint64_t *valid)
{
    uint64_t n = 0;
    for (uint32_t p = 0; p < npages; p++) {
        if (!(valid[p / 64] >> (p % 64) & 1))
            continue;
        uint64_t o = (uint64_t)p * page_size;
        if (o < blen)
            n += blen - o < page_size ? blen - o : page_size;
    }
    return n;
}

uint64_t citem_len(uint32_t hdr_len, uint64_t data_len)
{
    return (hdr_len + data_len + CITEM_ALIGN - 1) / CITEM_ALIGN * CITEM_ALIGN;
}

static uint32_t popcount(const uint64_t *m, uint32_t w)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < w; i++)
        n += (uint32_t)__builtin_popcountll(m[i]);
    return n;
}

void citem_hdr_encode(struct citem_hdr *h, uint8_t *out)
{
    uint32_t w = CSLOT_WORDS(h->npages);
    h->nvalid = popcount(h->valid, w);
    uint32_t hl = citem_hdr_len(h->npages, h->nvalid);
    h->item_len =
        (uint32_t)citem_len(hl, citem_data_len(h->blen, h->page_size, h->npages, h->valid));
    memset(out, 0, hl);
    le_put32(out, CITEM_MAGIC);
    le_put16(out + 4, CITEM_VERSION);
    le_put32(out + 8, hl);
    le_put32(out + 12, h->item_len);
    le_put64(out + 16, h->seq);
    le_put64(out + 24, h->id[0]);
    le_put64(out + 32, h->id[1]);
    le_put32(out + 40, h->blen);
    le_put32(out + 44, h->block_size);
    le_put32(out + 48, h->page_size);
    le_put32(out + 52, h->nvalid);
    for (uint32_t i = 0; i < w; i++)
        le_put64(out + CITEM_FIXED + 8 * i, h->valid[i]);
    uint8_t *q = out + CITEM_FIXED + 8 * w;
    for (uint32_t p = 0; p < h->npages; p++) {
        if (h->valid[p / 64] >> (p % 64) & 1) {
            le_put64(q, h->crc[p]);
            q += 8;
        }
    }
    le_put64(out + hl - 8, crc64_update(0, out, hl - 8));
}

int citem_hdr_decode(const uint8_t *in, size_t len, uint32_t block_size, uint32_t page_size,
                     struct citem_hdr *h)
{
    if (page_size == 0 || block_size < page_size || block_size % page_size != 0 ||
        block_size / page_size > CSLOT_MAX_PAGES)
        return -EINVAL;
    if (len < CITEM_FIXED)
        return -EBADMSG;
    uint32_t magic = le_get32(in);
    if (magic == 0)
        return -ENOENT;
    uint32_t np = block_size / page_size, w = CSLOT_WORDS(np);
    if (magic != CITEM_MAGIC || le_get16(in + 4) != CITEM_VERSION || le_get16(in + 6) != 0 ||
        le_get32(in + 44) != block_size || le_get32(in + 48) != page_size || le_get64(in + 56) != 0)
        return -EBADMSG;
    uint32_t nv = le_get32(in + 52);
    if (nv == 0 || nv > np)
        return -EBADMSG;
    uint32_t hl = citem_hdr_len(np, nv);
    if (le_get32(in + 8) != hl)
        return -EBADMSG;
    h->npages = np;
    h->nvalid = nv;
    if (len < hl)
        return -EAGAIN;
    if (le_get64(in + hl - 8) != crc64_update(0, in, hl - 8))
        return -EBADMSG;
    h->block_size = block_size;
    h->page_size = page_size;
    h->item_len = le_get32(in + 12);
    h->seq = le_get64(in + 16);
    h->id[0] = le_get64(in + 24);
    h->id[1] = le_get64(in + 32);
    h->blen = le_get32(in + 40);
    if (h->blen == 0 || h->blen > block_size)
        return -EBADMSG;
    uint32_t have = (h->blen + page_size - 1) / page_size; /* pages inside the block */
    for (uint32_t i = 0; i < w; i++) {
        uint64_t v = le_get64(in + CITEM_FIXED + 8 * i);
        /* No bit may name a page past the block's end. */
        if (i * 64 + 64 > have && (have <= i * 64 ? v : v >> (have - i * 64)) != 0)
            return -EBADMSG;
        h->valid[i] = v;
    }
    if (popcount(h->valid, w) != nv ||
        h->item_len != citem_len(hl, citem_data_len(h->blen, page_size, np, h->valid)))
        return -EBADMSG;
    const uint8_t *q = in + CITEM_FIXED + 8 * w;
    for (uint32_t p = 0; p < np; p++) {
        if (h->valid[p / 64] >> (p % 64) & 1) {
            h->crc[p] = le_get64(q);
            q += 8;
        } else {
            h->crc[p] = 0;
        }
    }
    return 0;
}

uint32_t citem_sum_len(uint32_t npages)
{
    return 32 + 8 * CSLOT_WORDS(npages);
}

void citem_sum_encode(const struct citem_hdr *h, uint32_t off, uint8_t *out)
{
    memset(out, 0, citem_sum_len(h->npages));
    le_put32(out, off);
    le_put32(out + 4, h->blen);
    le_put64(out + 8, h->id[0]);
    le_put64(out + 16, h->id[1]);
    le_put32(out + 24, h->item_len);
    for (uint32_t k = 0; k < CSLOT_WORDS(h->npages); k++)
        le_put64(out + 32 + 8 * k, h->valid[k]);
}

int citem_sum_decode(const uint8_t *in, size_t len, uint32_t block_size, uint32_t page_size,
                     uint64_t first, uint64_t limit, uint32_t *off, struct citem_hdr *h)
{
    if (page_size == 0 || block_size < page_size || block_size % page_size != 0 ||
        block_size / page_size > CSLOT_MAX_PAGES)
        return -EINVAL;
    uint32_t np = block_size / page_size, w = CSLOT_WORDS(np);
    if (len < citem_sum_len(np))
        return -EBADMSG;
    *off = le_get32(in);
    if (*off == 0)
        return -ENOENT;
    h->block_size = block_size;
    h->page_size = page_size;
    h->npages = np;
    h->blen = le_get32(in + 4);
    h->id[0] = le_get64(in + 8);
    h->id[1] = le_get64(in + 16);
    h->item_len = le_get32(in + 24);
    if (le_get32(in + 28) != 0 || h->blen == 0 || h->blen > block_size || *off < first ||
        *off % CITEM_ALIGN != 0)
        return -EBADMSG;
    uint32_t have = (h->blen + page_size - 1) / page_size;
    for (uint32_t k = 0; k < w; k++) {
        uint64_t v = le_get64(in + 32 + 8 * k);
        if (k * 64 + 64 > have && (have <= k * 64 ? v : v >> (have - k * 64)) != 0)
            return -EBADMSG;
        h->valid[k] = v;
    }
    h->nvalid = popcount(h->valid, w);
    if (h->nvalid == 0 ||
        h->item_len != citem_len(citem_hdr_len(np, h->nvalid),
                                 citem_data_len(h->blen, page_size, np, h->valid)) ||
        (uint64_t)*off + h->item_len > limit)
        return -EBADMSG;
    return 0;
}
