/* efc/first_i.h - first blocks brought by open: a block source (cache/blksrc.h) that serves block
 * 0 of an object version from bytes an open's GET already received, and passes everything else
 * on to the source below it.
 *
 * open (fs.c) asks the store about a file with one ranged GET of its first block (bytes
 * 0..block_size-1), whose answer gives both the object's metadata (size from Content-Range, ETag,
 * Last-Modified, class, CRC) and those bytes. open puts the bytes here and asks the cache to
 * prefetch block 0; the cache's fill comes down to this layer and finds them, so the read that
 * follows the open hits the cache and no second request goes out. Without a cache the readers
 * fetch from this layer directly, with the same effect.
 *
 *     cache (or the readers)  ->  first blocks  ->  origin
 *
 * (chain.c stacks it only on a mount that is not distributed: in a cluster a block comes from
 * its owner, and open only revalidates.)
 *
 * An entry is block 0 of one (key, ETag), whole: min(block size, object size) bytes. A fetch of
 * block 0 of that version finds it when its range lies inside the entry (a run of blocks from 0
 * gets block 0 from here and the rest from below, in one request). An entry leaves when a fetch
 * took all of it (the cache holds it now), when it is older than EFC_FIRST_MAX_AGE_MS, or oldest
 * first when the entries pass their byte or count bound (a block nobody read).
 *
 * Thread-safe: one mutex (a leaf), never held across the source below or a caller's sink.
 */
#ifndef EFC_FIRST_I_H
#define EFC_FIRST_I_H

#include <stddef.h>
#include <stdint.h>

#include "cache/blksrc.h"

#define EFC_FIRST_MAX_AGE_MS  30000
#define EFC_FIRST_MAX_ENTRIES 1024

struct efc_first;

/* A layer over BELOW (not owned; it must outlive the layer) holding at most MAX_BYTES of first
 * blocks (0: 64 MiB). Returns 0 and sets *OUT, or -EINVAL, -ENOMEM. */
int efc_first_new(struct blksrc *below, uint64_t max_bytes, struct efc_first **out);
/* NULL is a no-op. No fetch may be running. */
void efc_first_free(struct efc_first *f);
/* The block source (lives as long as F); its block size is BELOW's. */
struct blksrc *efc_first_src(struct efc_first *f);

/* Keeps DATA (LEN bytes, allocated with malloc; F owns it from now on, whatever the result) as
 * block 0 of (KEY, ETAG), an object of OBJ_SIZE bytes. LEN must be the whole block:
 * min(block size, OBJ_SIZE), and not 0; ETAG not empty. An entry for the same version is
 * replaced. Returns 0, or -EINVAL (then DATA is freed), -ENOMEM. */
int efc_first_put(struct efc_first *f, const char *key, const char *etag, uint64_t obj_size,
                  void *data, size_t len);

struct efc_first_stats {
    uint64_t puts;           /* blocks put */
    uint64_t served;         /* fetches answered (wholly or their block 0) from an entry */
    uint64_t dropped;        /* entries that left unused: aged, over the bounds, replaced */
    uint64_t entries, bytes; /* gauges */
};
void efc_first_get_stats(struct efc_first *f, struct efc_first_stats *st);
/* Appends efc_first_block_puts_total, efc_first_block_served_total,
 * efc_first_block_dropped_total and efc_first_block_bytes (held) to OUT. 0 or the buffer's
 * error. */
struct buf;
int efc_first_write_metrics(struct efc_first *f, struct buf *out);

#endif
