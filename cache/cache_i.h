/* cache/cache_i.h - private to cache/: the on-disk slot format (decode exposed for the fuzz
 * target and the unit tests) and the disk directory layer used by cache.c. The layout is drawn
 * at the top of disk.c.
 */
#ifndef EFC_CACHE_CACHE_I_H
#define EFC_CACHE_CACHE_I_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

#define CSLOT_MAGIC     0x53434645u /* "EFCS" little-endian */
#define CSLOT_VERSION   1
#define CSLOT_FIXED     64                                 /* bytes before the bitmap */
#define CSLOT_MAX_PAGES (CACHE_MAX_BLOCK / CACHE_MIN_PAGE) /* 16384: hard limit of the decoder */
#define CSLOT_WORDS(np) (((np) + 63u) / 64u)
#define CDISK_SB_SIZE   4096
#define CDISK_FILE_NAME "efc-cache-v1.slots"

struct cslot_hdr {
    uint64_t id[2]; /* the block's identity (cache_block_id) */
    uint32_t blen;  /* the block's length: pages past it do not exist */
    uint64_t seq;   /* per-directory write sequence, for diagnosis */
    uint32_t block_size, page_size, npages;
    uint64_t *valid; /* caller's array of CSLOT_WORDS(npages) words */
    uint64_t *crc;   /* caller's array of npages CRCs */
};

/* Size of one slot header for NPAGES pages (a multiple of 512). */
uint32_t cslot_hdr_size(uint32_t npages);
/* Length of the block (index, obj_size) given its size, 0 if the index is past the end. */
uint64_t cslot_block_len(uint64_t obj_size, uint64_t index, uint32_t block_size);
/* The CRC of one page, bound to the block's identity and the page's number so that a page can
 * only verify in the place it was written for. */
uint64_t cslot_page_crc(const uint64_t id[2], uint32_t page, const void *data, size_t len);
/* Writes the header into OUT (cslot_hdr_size(h->npages) bytes). */
void cslot_hdr_encode(const struct cslot_hdr *h, uint8_t *out);
/* Parses LEN bytes read from disk for a cache of geometry (block_size, page_size), into H whose
 * valid/crc arrays the caller sized for block_size/page_size pages. Returns 0, -ENOENT for an
 * empty slot (all-zero magic), or -EBADMSG for anything malformed: bad magic, version, sizes,
 * header CRC, or valid bits past the block's end. Never reads past LEN. */
int cslot_hdr_decode(const uint8_t *in, size_t len, uint32_t block_size, uint32_t page_size,
                     struct cslot_hdr *h);

/* One directory's slot file (disk.c). Thread-safe: slots are independent; the caller makes sure
 * two threads never write one slot at once. All I/O goes through a per-thread io_uring (pread/
 * pwrite if io_uring is unavailable). */
struct cdisk;

/* Opens (creates) DIR's slot file for blocks of the name space NS (cache_config.ns). */
int cdisk_open(const char *dir, uint64_t cap, uint32_t block_size, uint32_t page_size,
               const char *ns, struct cdisk **out, char *err, size_t errlen);
void cdisk_close(struct cdisk *d);
uint32_t cdisk_nslots(const struct cdisk *d);
uint64_t cdisk_file_bytes(const struct cdisk *d); /* the file's size when full */
const char *cdisk_path(const struct cdisk *d);
/* Calls FN for every slot whose header decodes; stops at a non-zero return. 0 or -errno. */
typedef int (*cdisk_scan_fn)(void *arg, uint32_t slot, const struct cslot_hdr *h);
int cdisk_scan(struct cdisk *d, cdisk_scan_fn fn, void *arg);
/* Reads the pages in MASK of SLOT (identity ID, block length BLEN) into BUF at their offsets in
 * the block and verifies each page's CRC; pages that fail are set in BAD. Returns 0 (check BAD;
 * a read short of the slot, the file cut short under us, leaves every page of MASK bad) or
 * -errno for an I/O error (then every page is bad too). */
int cdisk_read_pages(struct cdisk *d, uint32_t slot, const uint64_t id[2], uint64_t blen,
                     const uint64_t *mask, void *buf, uint64_t *bad);
/* Reads and decodes SLOT's header into H (arrays sized by the caller). */
int cdisk_read_hdr(struct cdisk *d, uint32_t slot, struct cslot_hdr *h);
/* Writes the pages in NEWPAGES from BUF (block offsets) into SLOT, then the header H (which
 * must already hold their CRCs). 0 or -errno (a short write is -EIO). */
int cdisk_write(struct cdisk *d, uint32_t slot, const struct cslot_hdr *h, const void *buf,
                const uint64_t *newpages, uint64_t blen);

#endif
