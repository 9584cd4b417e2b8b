/* cache/cache.h - the tiered block cache: a memory tier and a disk tier between the FUSE read
 * path and the block source (the origin, later the P2P layer).
 *
 * Objects are cut into blocks of config.block_size bytes. A block's identity is a 128-bit
 * XXH3 hash of (key, ETag, block index) (the bucket is implicit: one cache per bucket), so a
 * changed object (new ETag) can never hit the blocks of its old version. Validity is tracked per
 * page of config.page_size bytes: a miss fetches only the pages the read needs (cache_prefetch
 * fills whole blocks), and the last block of an object simply has fewer pages.
 *
 * Threading: every function may be called from any number of threads at once, except
 * cache_free (call it once, when no other call is running). No lock is held across I/O; the
 * index is sharded so readers of different blocks do not contend.
 *
 * Errors: 0 or -errno. A failing cache disk never makes a read fail: the read degrades to the
 * memory tier or to the source. The only errors cache_read returns are bad arguments (-EINVAL)
 * and the source's own errors (which are never cached).
 */
#ifndef EFC_CACHE_H
#define EFC_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cache;

#define CACHE_MIN_BLOCK (64u << 10)
#define CACHE_MAX_BLOCK (64u << 20)
#define CACHE_MIN_PAGE  (4u << 10)
#define CACHE_MAX_DIRS  16
#define CACHE_MAX_KEY   1023 /* as OSS_MAX_KEY_LEN */
#define CACHE_MAX_ETAG  127

struct cache_config {
    uint64_t mem_bytes;          /* memory tier capacity: a hard cap on block memory; 0 = none */
    const char *disk_dirs;       /* "/a/:/b/"; NULL or "" = no disk tier (copied) */
    uint64_t disk_bytes_per_dir; /* hard cap per directory, headers included */
    uint32_t block_size;         /* power of two, CACHE_MIN_BLOCK..CACHE_MAX_BLOCK; 0 = 1 MiB */
    uint32_t page_size; /* power of two >= CACHE_MIN_PAGE dividing block_size; 0 = 16 KiB */
    uint64_t origin_bytes_per_sec; /* token bucket on bytes fetched through the source; 0 = none */
    unsigned io_threads; /* prefetch workers: source requests in flight for readahead; 0 = 2.
                            The disk tier has writers of its own (2), so neither waits for
                            the other */
};

/* The miss path: fetch bytes [index * block_size + off, + len) of (key, etag) into buf. The
 * range may run past the end of block `index` into the blocks after it (a prefetch fetches a run
 * of consecutive blocks in one request), never past obj_size. The P2P layer implements it later;
 * efc implements it with oss_get (If-Match etag). Must be thread-safe. Returns the bytes fetched
 * (short only at the object's end) or -errno. */
struct cache_source {
    ssize_t (*fetch)(void *arg, const char *key, const char *etag, uint64_t obj_size,
                     uint64_t index, uint32_t off, uint32_t len, void *buf);
    void *arg;
    /* Optional (NULL: a run is fetched into one buffer and copied to its blocks' slots): the
     * range [index * block_size, + len) of (key, etag) in one request, its bytes handed in order
     * to SINK as they arrive (SINK returns 0, or -errno to abort the request with it), so that
     * each block of a run lands in its own slot and is served as soon as it is in. Returns 0
     * once the range (clipped at obj_size) was delivered whole, else -errno. Thread-safe. */
    int (*fetch_range)(void *arg, const char *key, const char *etag, uint64_t obj_size,
                       uint64_t index, uint64_t len,
                       int (*sink)(void *sink_arg, const void *data, size_t n), void *sink_arg);
};

/* Creates a cache. Disk directories that cannot be used (missing, unwritable, locked by another
 * cache, too small for one block) are skipped with a warning, not an error: the cache then runs
 * on the tiers it has. Blocks left in the directories by an earlier cache with the same
 * block and page size are found again (their headers are scanned here). Starts the io_threads
 * workers. Returns 0 with *out set (free with cache_free), or -EINVAL/-ENOMEM with a message in
 * err. *src is copied; src->arg must outlive the cache. */
int cache_new(const struct cache_config *cfg, const struct cache_source *src, struct cache **out,
              char *err, size_t errlen);
/* Waits for queued disk writes (so what was fetched persists), drops queued prefetches, stops the
 * workers and frees everything. cache_free(NULL) is a no-op. */
void cache_free(struct cache *c);

/* Reads [off, off+len) of the object (key, etag, obj_size) through the cache into buf. Hits come
 * from memory or disk (every disk page's CRC64 is verified; a bad page is dropped and refetched);
 * misses are fetched through the source with single-flight per block (concurrent misses on one
 * block make one fetch; its waiters share its bytes or its error) and inserted into the tiers,
 * the disk write happening in the background. Returns the bytes read (short only at obj_size;
 * 0 at or past it) or -errno (-EINVAL for bad arguments, else the source's error). */
ssize_t cache_read(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                   uint64_t off, size_t len, void *buf);

/* Zero-copy memory hits (for fuse_reply_data): if [off, off+len) lies inside one block whose
 * pages the memory tier holds, pins that block, points ref->data at its bytes in the arena and
 * sets ref->len (clipped to the block and the object) and returns 0. A fill of the block under
 * way (a prefetch's, a reader's) is waited for first. Otherwise returns -ENOENT and pins
 * nothing: use cache_read. -EINVAL for bad arguments. A pinned block cannot be evicted (and its
 * memory slot is not reused), so release it with cache_ref_put as soon as the reply is sent.
 * Counted as a read: a hit, or a miss when it waited for a fill. */
struct cache_ref {
    const void *data;
    size_t len;
    uint32_t entry_; /* private */
    uint32_t shard_; /* private */
};
int cache_ref_get(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                  uint64_t off, size_t len, struct cache_ref *ref);
void cache_ref_put(struct cache *c, struct cache_ref *ref);

/* Queues the asynchronous fill of the blocks covering [off, off+len) (readahead) into memory and
 * returns at once. Consecutive blocks are fetched as runs (up to 4 MiB, or one block) of one
 * source request each, so the caller chooses the request size by the ranges it passes. Blocks a
 * tier holds, or that are being filled, are not fetched. A prefetched block is kept from
 * eviction until its first read (or until the memory tier has turned over once), and that read
 * does not count as a re-access; the caller keeps its window within what the cache can hold.
 * Returns 0, -EINVAL, or -EAGAIN when the bounded queue (1024 blocks) was full (the blocks that
 * did not fit are dropped, never waited for). */
int cache_prefetch(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                   uint64_t off, uint64_t len);

/* Warm-up (mgmt/warmup.c): makes block INDEX of (key, etag, obj_size) present in the cache and
 * returns once it is stored: on the disk tier when the cache has one (written before returning,
 * so it survives a crash right after), else in the memory tier. A block some tier already holds
 * (all its pages valid) is not fetched again. Fetches join readers' fills of the same block
 * (single-flight). Filled blocks enter the eviction policy as recently used (not on probation),
 * so a warm-up does not evict the blocks it has just loaded while others remain to evict.
 * Not counted as a tier read; the fetch counts in root_read_source. *FETCHED (may be NULL) is set
 * to the bytes fetched from the source (0 when already present). Returns 0, -EINVAL for bad
 * arguments or an index past the object's end, -ENOSPC when no tier can take the block, or the
 * source's error. */
int cache_fill(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
               uint64_t index, uint64_t *fetched);

/* The block size the cache was created with. */
uint32_t cache_block_size(const struct cache *c);

/* Counters. The first ten are the seed's tier_* metrics, in single-node meaning:
 *   read, read_bytes           every cache_read (and cache_ref_get hit) inside the object; the
 *                              bytes asked (clipped to the object's end)
 *   read_hit                   reads that needed no source fetch for any of their blocks
 *   read_hit_bytes             bytes of the blocks (of any read) served from memory or disk
 *   read_miss                  reads for which at least one block needed a source fetch, made
 *                              by this read or joined (single-flight waiters count too)
 *   read_miss_bytes            bytes of the blocks that needed a fetch
 *   direct_read, _bytes        reads (bytes) that the cache could not take in (its index or its
 *                              buffers exhausted) and that went straight to the source uncached
 *   root_read_source, _bytes   source fetches this cache made (for misses and prefetches) and
 *                              the bytes they returned
 * Prefetches are not reads. The rest are gauges and diagnostics, not cleared by
 * cache_clear_stats.
 *
 * Memory: block data lives in the mem_bytes arena only. Beyond it, transiently: copies queued for
 * the disk writer (at most max(64 MiB, 4 blocks)), one scratch buffer per thread that ever filled
 * a block without a memory slot (a block) or ran a prefetch (a run: max(4 MiB, a block)), and the
 * index (index_bytes, allocated at cache_new: 40 bytes a block of capacity at 64 KiB blocks, 56 at
 * 1 MiB with 16 KiB pages, plus about 15 for the hash table and the replacement queues; under
 * 0.1% of the capacity at every block and page size, 0.082% at 64 KiB blocks). */
struct cache_stats {
    uint64_t read, read_bytes, read_hit, read_hit_bytes, read_miss, read_miss_bytes;
    uint64_t direct_read, direct_read_bytes, root_read_source, root_read_source_bytes;

    uint64_t mem_used, mem_capacity;   /* bytes of block buffers in use / the cap */
    uint64_t disk_used, disk_capacity; /* bytes of slots in use / sum of the slot files' sizes */
    uint64_t index_bytes;              /* everything the index costs, allocated at cache_new */
    uint64_t blocks_mem, blocks_disk;
    uint64_t evictions_mem, evictions_disk, demotions;
    uint64_t disk_errors;        /* failed or short disk reads and writes */
    uint64_t corrupt_dropped;    /* disk pages whose CRC64 did not verify */
    uint64_t singleflight_waits; /* readers that waited for another's fill of their block */
    uint64_t source_fetches, source_errors;
    uint64_t disk_writes, disk_write_bytes, disk_writes_dropped; /* background queue */
    uint64_t prefetch_queued, prefetch_dropped;
    uint64_t scan_blocks; /* blocks found on disk at cache_new */
    uint64_t scan_usec;   /* how long that scan took */
};

void cache_get_stats(struct cache *c, struct cache_stats *st);
/* Zeroes the ten tier_* counters. */
void cache_clear_stats(struct cache *c);

#endif
