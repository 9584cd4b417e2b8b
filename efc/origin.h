/* efc/origin.h - the origin: the block source (cache/blksrc.h) that reads the object store.
 *
 * The bottom of every source stack: a single-node cache's misses, a cluster node's blocks that
 * it owns (and those whose owner failed), and the reads of a mount without a cache all end here.
 * Each fetch is one ranged GET with If-Match on the block's ETag (oss_get), so an object that
 * changed answers -ESTALE, never bytes of another version; a range is streamed to the caller's
 * sink as it arrives. The bandwidth cap of g_tier_DadiSdkGetTrafficLimit (a token bucket on the
 * bytes asked for) applies here and only here: traffic between peers is not origin traffic.
 * Every fetch reports BLK_FROM_ORIGIN. open's first-block GET (efc_origin_get_first) goes through
 * here too, under the same cap and counters.
 *
 * Thread-safe. The client must outlive the origin.
 */
#ifndef EFC_ORIGIN_H
#define EFC_ORIGIN_H

#include <stdint.h>

#include "cache/blksrc.h"
#include "oss/oss.h"

struct oss_client;
struct buf;
struct efc_origin;

/* An origin reading CL in blocks of BLOCK_SIZE bytes, at most BYTES_PER_SEC (0: no cap).
 * Returns 0 and sets *OUT, or -EINVAL (BLOCK_SIZE 0), -ENOMEM. */
int efc_origin_new(struct oss_client *cl, uint32_t block_size, uint64_t bytes_per_sec,
                   struct efc_origin **out);
/* NULL is a no-op. No fetch may be running. */
void efc_origin_free(struct efc_origin *o);
/* The block source (lives as long as O). */
struct blksrc *efc_origin_src(struct efc_origin *o);

/* What open asks the store (fs.c): one GET of the first LEN bytes of KEY into BUF, of whatever
 * version the object has now, or nothing when it still has the ETag IF_NONE_MATCH (NULL: no
 * condition): RES->not_modified. RES->meta is the object's metadata (size included) as a HEAD
 * would give it. Throttled (after the answer: the bytes it brought) and counted as a fetch (a 304
 * as a fetch of no bytes). Returns 0 or oss_get's error (-ENOENT, -EACCES, ...). */
struct oss_get_result;
int efc_origin_get_first(struct efc_origin *o, const char *key, const char *if_none_match,
                         void *buf, uint64_t len, struct oss_get_result *res);
/* The same, the bytes going to SINK (oss.h's oss_sink_fn) as they arrive instead of to a buffer
 * of LEN bytes. */
int efc_origin_get_first_sink(struct efc_origin *o, const char *key, const char *if_none_match,
                              uint64_t len, oss_sink_fn sink, void *sink_arg,
                              struct oss_get_result *res);

struct efc_origin_stats {
    uint64_t fetches;      /* GETs asked of the object store (fetch and fetch_range calls, and
                              open's first-block GETs) */
    uint64_t bytes;        /* body bytes they delivered */
    uint64_t errors;       /* fetches that failed (not counting -ESTALE) */
    uint64_t stale;        /* fetches answered -ESTALE: the object changed */
    uint64_t throttled_ns; /* time fetches waited for the bandwidth cap */
};
void efc_origin_get_stats(struct efc_origin *o, struct efc_origin_stats *st);
/* Appends efc_origin_fetches_total, efc_origin_bytes_total, efc_origin_errors_total,
 * efc_origin_stale_total and efc_origin_throttled_seconds_total to OUT. 0 or the buffer's
 * error. */
int efc_origin_write_metrics(struct efc_origin *o, struct buf *out);

#endif
