/* cache/cache_i.h - private to cache/: the on-disk item format (item.c; decode exposed for the
 * fuzz target and the unit tests) and the disk tier's region log (disk.c) used by cache.c. The
 * layouts are drawn at the tops of item.c and disk.c.
 */
#ifndef EFC_CACHE_CACHE_I_H
#define EFC_CACHE_CACHE_I_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

#define CITEM_MAGIC     0x49434645u /* "EFCI" little-endian */
#define CITEM_VERSION   1
#define CITEM_FIXED     64                                 /* bytes before the bitmap */
#define CITEM_ALIGN     512                                /* items start on this boundary */
#define CSLOT_MAX_PAGES (CACHE_MAX_BLOCK / CACHE_MIN_PAGE) /* 16384: hard limit of the decoder */
#define CSLOT_WORDS(np) (((np) + 63u) / 64u)
#define CDISK_SB_SIZE   4096
#define CDISK_FILE_NAME                                                                            \
    "efc-cache-v1.slots" /* the name of version 2's file: reformatted in place */

/* One block's item header: what the disk holds of the block and how to check it. */
struct citem_hdr {
    uint64_t id[2]; /* the block's identity (cache_block_id) */
    uint64_t seq;   /* the sequence number of the region it was written in */
    uint32_t blen;  /* the block's length: pages past it do not exist */
    uint32_t block_size, page_size, npages;
    uint32_t nvalid;   /* pages in the item (bits set in valid) */
    uint32_t item_len; /* header + data, rounded up to CITEM_ALIGN */
    uint64_t *valid;   /* caller's array of CSLOT_WORDS(npages) words */
    uint64_t *crc;     /* caller's array of npages CRCs, indexed by page (valid ones only) */
};

/* Length of the block (index, obj_size) given its size, 0 if the index is past the end. */
uint64_t cslot_block_len(uint64_t obj_size, uint64_t index, uint32_t block_size);
/* The CRC of one page, bound to the block's identity and the page's number so that a page can
 * only verify in the place it was written for. */
uint64_t cslot_page_crc(const uint64_t id[2], uint32_t page, const void *data, size_t len);
/* Where cslot_page_crc starts: crc64_update from it over the page's bytes, in any number of
 * pieces, gives the same CRC. */
uint64_t cslot_page_seed(const uint64_t id[2], uint32_t page);
/* Bytes of an item header with NVALID pages of NPAGES. */
uint32_t citem_hdr_len(uint32_t npages, uint32_t nvalid);
/* Bytes of the pages in VALID of a block BLEN long (the last page may be short). */
uint64_t citem_data_len(uint32_t blen, uint32_t page_size, uint32_t npages, const uint64_t *valid);
/* Bytes of the whole item: header and data, rounded up to CITEM_ALIGN. */
uint64_t citem_len(uint32_t hdr_len, uint64_t data_len);
/* Fills h->nvalid and h->item_len from the other fields, then writes the header into OUT
 * (citem_hdr_len(npages, nvalid) bytes). */
void citem_hdr_encode(struct citem_hdr *h, uint8_t *out);
/* Parses LEN bytes read from disk for a cache of geometry (block_size, page_size) into H, whose
 * valid/crc arrays the caller sized for block_size/page_size pages. Returns 0, -ENOENT for no
 * item (zero magic), -EAGAIN when LEN holds the fixed part but not the whole header (h->nvalid
 * and the header's length, citem_hdr_len(h->npages, h->nvalid), are set: read that much and
 * call again), or -EBADMSG for anything malformed: bad magic, version, sizes, header CRC, an
 * empty item, or valid bits past the block's end. Never reads past LEN. */
int citem_hdr_decode(const uint8_t *in, size_t len, uint32_t block_size, uint32_t page_size,
                     struct citem_hdr *h);

/* Bytes of one summary entry for NPAGES pages (see item.c). */
uint32_t citem_sum_len(uint32_t npages);
/* Writes H's summary entry, the item being at OFF in its region, into OUT (citem_sum_len). */
void citem_sum_encode(const struct citem_hdr *h, uint32_t off, uint8_t *out);
/* Parses a summary entry of LEN bytes (read from disk) into *OFF and H (no CRCs, no seq; valid
 * sized by the caller): 0, -ENOENT for a dead entry, or -EBADMSG when it is malformed: bits past
 * the block's end, an item length that does not match its pages, an offset before FIRST or an
 * item running past LIMIT. Never reads past LEN. */
int citem_sum_decode(const uint8_t *in, size_t len, uint32_t block_size, uint32_t page_size,
                     uint64_t first, uint64_t limit, uint32_t *off, struct citem_hdr *h);

/* One directory's cache file (disk.c): a log of regions. Thread-safe. All data I/O goes
 * through a per-thread io_uring (pread/pwrite if io_uring is unavailable). */
struct cdisk;

/* Opens (creates) DIR's cache file for blocks of the name space NS (cache_config.ns). */
int cdisk_open(const char *dir, uint64_t cap, uint32_t block_size, uint32_t page_size,
               const char *ns, struct cdisk **out, char *err, size_t errlen);
/* Seals the open region (writes its summary) and closes. No append may be running. */
void cdisk_close(struct cdisk *d);
uint64_t cdisk_file_bytes(const struct cdisk *d); /* the file's size when full */
uint32_t cdisk_nregions(const struct cdisk *d);
uint32_t cdisk_region_size(const struct cdisk *d);
/* How many items of DATA_LEN bytes (one block's pages) the file holds when full. */
uint64_t cdisk_items_fit(const struct cdisk *d, uint64_t data_len);
const char *cdisk_path(const struct cdisk *d);
/* 1 while the disk tier writes with O_DIRECT, 0 when through the page cache (disk.c). */
int cdisk_direct(const struct cdisk *d);
/* Bytes of memory the region table costs (part of the index). */
uint64_t cdisk_mem_bytes(const struct cdisk *d);

/* Calls FN for every item of every region, regions oldest first, items in the order they were
 * written (a later item of a block replaces an earlier one); H has no CRCs. Stops at a non-zero
 * return. Only before the first append. 0 or -errno. */
typedef int (*cdisk_item_fn)(void *arg, uint32_t region, uint32_t off, const struct citem_hdr *h);
int cdisk_scan(struct cdisk *d, cdisk_item_fn fn, void *arg);

/* A reader of REGION: the region is not reused while held. Take it under the lock that
 * protects the index entry naming the region (the evictor drops the entry under that lock
 * before it waits for the region's readers). */
void cdisk_hold(struct cdisk *d, uint32_t region);
void cdisk_unhold(struct cdisk *d, uint32_t region);

/* Reads the pages in MASK of the item at (REGION, OFF) (block identity ID, length BLEN, holding
 * the pages in VALID, a superset of MASK) into BUF at their offsets in the block and verifies
 * each page's CRC; pages that fail are set in BAD. Returns 0 (check BAD; a read short of the
 * item, the file cut short under us, leaves every page of MASK bad) or -errno for an I/O error
 * (then every page is bad too). The caller holds the region (cdisk_hold). */
int cdisk_read_pages(struct cdisk *d, uint32_t region, uint32_t off, const uint64_t id[2],
                     uint64_t blen, const uint64_t *valid, const uint64_t *mask, void *buf,
                     uint64_t *bad);

/* Whether the item at (REGION, OFF) is one of block ID, BLEN long, as its header says (the fixed
 * part only: the page CRCs, checked by cdisk_read_pages, are bound to the identity too): 1, 0
 * (another block's item), -ENODATA when no item is there (the file cut short, or bytes without
 * an item's magic: damage), or -errno for an I/O error. Reads LEN bytes from the item's start
 * into BUF (at least CITEM_FIXED): the whole item, when small, so that the page read after it
 * finds its bytes in the page cache (writes bypass it) rather than wait for the device again. The
 * index's compact records name an item by a few bits of its identity (cache.c), and this tells a
 * block's own item from another's. The caller holds the region (cdisk_hold). */
int cdisk_item_is(struct cdisk *d, uint32_t region, uint32_t off, const uint64_t id[2],
                  uint64_t blen, void *buf, size_t len);

/* What owns the items (the index), told of a region's reuse with no lock held: EVICT is called
 * for each item H of the region (identity, length, pages, item_len; no CRCs), and the index forgets
 * the item if it still names it; it returns 1 when the item was read since it was written (and the
 * index named it), to keep it: the item is then written again at the start of the reused region
 * (Navy's reinsertion: a block read from disk survives one more pass of the log), and MOVED tells
 * the index its new place (H: its identity, length and pages; no CRCs). */
struct cdisk_owner {
    int (*evict)(void *arg, uint32_t region, uint32_t off, const struct citem_hdr *h);
    void (*moved)(void *arg, const struct citem_hdr *h, uint32_t region, uint32_t off);
    void *arg;
};

/* Appends the item H (its CRCs filled for the pages in h->valid) with those pages' bytes from
 * BUF (block offsets) to the open region, reusing the oldest region through OWNER when no
 * region has room. On 0, *REGION and *OFF say where it went, and the caller must call
 * cdisk_append_done once the index names the item (the region is not sealed before). Returns 0,
 * -errno for a failed write (then the append is done already), or 1 when there is no place
 * (every region busy). No lock may be held that OWNER's callbacks take. */
int cdisk_append(struct cdisk *d, struct citem_hdr *h, const void *buf,
                 const struct cdisk_owner *owner, uint32_t *region, uint32_t *off);
/* The same, BUF's bytes being also at FOFF in FD (the memory tier's memfd; -1: none): the
 * staging copy of an O_DIRECT write reads them with pread, not through BUF. */
int cdisk_append_fd(struct cdisk *d, struct citem_hdr *h, const void *buf, int fd, uint64_t foff,
                    const struct cdisk_owner *owner, uint32_t *region, uint32_t *off);
void cdisk_append_done(struct cdisk *d, uint32_t region);

/* At most what the index costs (cache_stats.index_bytes) once it holds NFULL blocks in entries
 * (those in memory, or partly on disk) and NCOMPACT held only on disk, whole (compact records),
 * and how many blocks of DATA_LEN bytes the disk tier holds: for the tests and efc-cachebench
 * (cache.c). */
uint64_t cache_index_bytes_for(const struct cache *c, uint64_t nfull, uint64_t ncompact);
/* Tests only, before the first block: compact records keep at most BITS bits of tag, so that a
 * test can find two blocks of one tag (cache.c). */
void cache_test_tag_bits(struct cache *c, unsigned bits);
uint64_t cache_disk_items_fit(const struct cache *c, uint64_t data_len);

#endif
