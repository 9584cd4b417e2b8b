/* efc/read.h - the read path: FUSE reads of an open file become ranged reads of a block source
 * (cache/blksrc.h: the origin's GETs, or the P2P layer's requests to peers).
 *
 * A struct efc_reader is one open file: an object key pinned to the ETag learnt at open. Every
 * fetch it makes carries that ETag (If-Match at the origin), so a file whose object changed
 * answers -ESTALE rather than mixing bytes of two versions. Below, "GET" is one fetch of the
 * pool's source.
 *
 * Random reads cost one GET of exactly the bytes asked for (clipped at the object's end), straight
 * into the caller's buffer. A reader that reads sequentially (tolerating the small reordering of
 * FUSE's concurrent async reads) gets readahead: a window of chunk-aligned chunks of chunk_bytes
 * ahead of the read position, growing from a few chunks to ahead_bytes, at most max_inflight of
 * them fetched at once by the pool's worker threads, so one stream is not held to one connection's
 * bandwidth. Reads copy out of fetched chunks; chunks behind the reader are freed. A seek far
 * away drops the window (in-flight fetches are aborted), EOF ends it, close cancels it.
 *
 * A struct efc_reader_pool is shared by all readers of a mount: the worker threads (started on
 * demand, at most config.threads) and the memory budget config.mem_limit for chunk buffers. When
 * the budget is spent readahead stops growing and reads are served by direct GETs; nothing waits
 * for memory.
 *
 * With a block cache (config.cache) every byte of a reader whose ETag is known comes through the
 * cache instead: a read is one cache_read() (or, by efc_reader_read_ref, a pinned block of the
 * cache's memory), and a sequential reader's window becomes cache_prefetch() runs for the blocks
 * ahead, kept within half of what the cache holds; no chunk buffer is used. A reader without an
 * ETag (nothing to key the blocks by) reads as without a cache.
 *
 * Thread safety: every function may be called from any thread. Reads on one reader may run
 * concurrently with each other (FUSE is multi-threaded); efc_reader_close() must not race with a
 * read of the same reader (FUSE sends release after the last read has been answered), and
 * efc_reader_pool_free() must come after every reader of the pool is closed.
 */
#ifndef EFC_READ_H
#define EFC_READ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cache/blksrc.h"
#include "cache/cache.h"

struct efc_reader_pool;
struct efc_reader;

struct efc_read_config {
    uint64_t ahead_bytes; /* readahead window per sequential reader at most (g_read_AheadKB * 1024);
                             0: readahead off, every read is a direct GET */
    unsigned max_inflight; /* chunk GETs in flight per reader (g_read_MaxInflight); 0: 8 */
    unsigned threads;      /* worker threads of the pool at most; 0: 32 */
    uint64_t mem_limit;    /* bytes of chunk buffers across all readers of the pool; 0: 512 MiB */
    struct cache *cache;   /* the block cache (cache/cache.h; not owned, must outlive the pool),
                              in front of the same source; NULL: none, every byte comes from
                              the source */
};

/* Creates a pool reading SRC (not owned; it must outlive the pool). Its block size is the
 * readahead unit (chunks are aligned in the object on it). CFG is copied, zero fields take the
 * defaults above. No thread is started until a reader first reads ahead. Returns 0 and sets
 * *OUT, or -EINVAL (a block size below 4 KiB or above 1 GiB, or a cache of another block size),
 * -ENOMEM. */
int efc_reader_pool_new(struct blksrc *src, const struct efc_read_config *cfg,
                        struct efc_reader_pool **out);

/* Stops and joins the workers (each finishes or aborts its current fetch first; that is bounded
 * by the oss client's retry budget) and frees everything. Every reader must be closed before.
 * NULL is a no-op. */
void efc_reader_pool_free(struct efc_reader_pool *p);

/* Opens a reader of KEY at version ETAG (quotes included, as oss_object_meta.etag; NULL or ""
 * sends no If-Match), SIZE bytes long (from the HEAD or listing that gave the ETag). KEY and ETAG
 * are copied. Nothing is sent on the network. Returns 0 and sets *OUT, or -EINVAL, -ENOMEM. */
int efc_reader_open(struct efc_reader_pool *p, const char *key, const char *etag, uint64_t size,
                    struct efc_reader **out);

/* Reads up to SIZE bytes at OFF into BUF. Returns the bytes read, short only at the end of the
 * object (0 at or past it), or -errno: -ESTALE once the object no longer has the reader's ETag
 * (every later read answers -ESTALE too, without a request), -ENOENT, -EACCES, -EIO, -ETIMEDOUT
 * as oss_get() gives them. A failed readahead chunk is retried once by a direct GET before its
 * error reaches the caller. */
ssize_t efc_reader_read(struct efc_reader *r, uint64_t off, size_t size, void *buf);

/* The bytes of one read, to be replied without copying them again (fuse_reply_data). */
struct efc_read_ref {
    const void *data; /* the bytes: the cache's own memory, or a buffer of the read's own */
    size_t len;
    struct cache_ref ref_; /* private: the pinned cache block */
    void *own_;            /* private: the buffer the bytes were copied to */
};

/* As efc_reader_read, but the bytes are left where they are when the cache's memory tier holds
 * all of [OFF, OFF+SIZE) in one block: OUT->data then points into the cache, which keeps that
 * block (pinned, never evicted or reused) until efc_reader_ref_put. Otherwise the bytes are read
 * into a buffer OUT owns. Returns OUT->len (short only at the object's end, 0 at or past it) or
 * the -errno of efc_reader_read (-ENOMEM when no buffer could be had). Always pair with
 * efc_reader_ref_put, as soon as the bytes are sent (a pin holds up the block's eviction). */
ssize_t efc_reader_read_ref(struct efc_reader *r, uint64_t off, size_t size,
                            struct efc_read_ref *out);
/* Releases what efc_reader_read_ref gave (whatever it returned); a second call is a no-op. */
void efc_reader_ref_put(struct efc_reader *r, struct efc_read_ref *ref);

/* Closes R without waiting: queued readahead is cancelled; fetches in flight are told to abort
 * and freed by whichever thread runs them. NULL is a no-op. */
void efc_reader_close(struct efc_reader *r);

/* Counters of a pool since its creation, and a few gauges (marked). */
struct efc_read_stats {
    uint64_t reads;         /* efc_reader_read() calls that returned bytes (not errors, not EOF) */
    uint64_t bytes_read;    /* bytes they returned */
    uint64_t gets;          /* GETs issued: direct_gets + chunk_gets (oss retries not counted) */
    uint64_t direct_gets;   /* exact-range GETs into a caller's buffer */
    uint64_t chunk_gets;    /* GETs filling chunks (a readahead run, or a sequential read's own) */
    uint64_t chunks;        /* chunks those GETs were asked to fill */
    uint64_t bytes_fetched; /* body bytes the GETs delivered (aborted runs included) */
    uint64_t ra_hits;       /* sequential reads served wholly from chunks fetched ahead */
    uint64_t ra_misses;     /* sequential reads (readahead on) that needed a GET of their own */
    uint64_t bytes_wasted;  /* chunk bytes received but freed before anyone read them */
    uint64_t windows;       /* times a reader turned readahead on */
    uint64_t drops;         /* times a window was dropped by a seek far away */
    uint64_t cancelled;     /* chunks dropped before they were filled (queued or mid-GET) */
    uint64_t fetch_errors;  /* chunk GETs that failed (not counting cancellations) */
    uint64_t retries;       /* direct GETs retrying a chunk whose GET failed */
    uint64_t budget_denied; /* chunks not started because mem_limit was reached */
    uint64_t cache_bypass;  /* reads the block cache refused (-EINVAL) that went by direct GET */
    uint64_t zero_copy;     /* reads efc_reader_read_ref answered from a pinned cache block */
    /* Reads without a cache by where their bytes came from, as the tier_* counters count a
       cache's reads (cache.h): hit (every byte from a peer that held it), miss (an origin fetch,
       by this node or a peer), direct (a peer failed, the origin answered). Cleared by
       efc_reader_pool_clear_tier. */
    uint64_t tier_read, tier_read_bytes, tier_hit, tier_hit_bytes, tier_miss, tier_miss_bytes;
    uint64_t tier_direct, tier_direct_bytes;
    uint64_t mem_used; /* gauge: bytes of chunk buffers held (idle spare buffers included) */
    uint64_t mem_peak; /* high-water mark of mem_used */
    uint64_t inflight; /* gauge: chunk GETs queued or running */
    uint64_t readers;  /* gauge: readers open */
    uint64_t threads;  /* gauge: worker threads started */
};

void efc_reader_pool_stats(struct efc_reader_pool *p, struct efc_read_stats *st);
/* Zeroes the tier_* counters of the stats. */
void efc_reader_pool_clear_tier(struct efc_reader_pool *p);

#endif
