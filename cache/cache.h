/* cache/cache.h - the tiered block cache: a memory tier and a disk tier between the FUSE read
 * path and the block source (cache/blksrc.h: the origin, or the P2P layer in front of it).
 *
 * Objects are cut into blocks of config.block_size bytes. A block's identity (cache_block_id) is
 * a 128-bit XXH3 hash of (name space, key, ETag, block index), the name space naming the bucket
 * and its endpoint ("<bucket>.<host>"): a changed object (new ETag) can never hit the blocks of
 * its old version, and two buckets never share a block by accident. Nodes of a cluster compute
 * the same identity for the same block, so it also names blocks between them. Validity is
 * tracked per page of config.page_size bytes: a miss fetches only the pages the read needs
 * (cache_prefetch fills whole blocks), and the last block of an object simply has fewer pages.
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

#include "cache/blksrc.h"

struct cache;
struct buf;

#define CACHE_MIN_BLOCK (64u << 10)
#define CACHE_MAX_BLOCK (64u << 20)
#define CACHE_MIN_PAGE  (4u << 10)
#define CACHE_MAX_DIRS  16
#define CACHE_MAX_KEY   1023 /* as OSS_MAX_KEY_LEN */
#define CACHE_MAX_ETAG  127
#define CACHE_MAX_NS    511 /* "<bucket>.<host>": 63 + 1 + a host name of at most 253 */

struct cache_config {
    uint64_t mem_bytes;          /* memory tier capacity: a hard cap on block memory; 0 = none */
    const char *disk_dirs;       /* "/a/:/b/"; NULL or "" = no disk tier (copied) */
    uint64_t disk_bytes_per_dir; /* hard cap per directory, headers included; a block takes
                                    its own bytes (see disk.c), so the cap holds many more
                                    small objects than large blocks */
    uint32_t block_size;         /* power of two, CACHE_MIN_BLOCK..CACHE_MAX_BLOCK; 0 = 1 MiB */
    uint32_t page_size;  /* power of two >= CACHE_MIN_PAGE dividing block_size; 0 = 16 KiB */
    const char *ns;      /* the bucket's name space, "<bucket>.<host>": part of every block's
                            identity, and of the disk tier's superblock (copied); NULL = "" */
    unsigned io_threads; /* prefetch workers: source requests in flight for readahead; 0 = 2.
                            The disk tier has writers of its own (2), so neither waits for
                            the other */
};

/* Creates a cache whose misses are fetched from SRC (not owned: it must outlive the cache, and
 * its block_size must be cfg->block_size). Disk directories that cannot be used (missing,
 * unwritable, locked by another cache, too small for two regions of blocks) are skipped with a
 * warning, not an error: the cache then runs on the tiers it has. Blocks left in the directories
 * by an earlier cache of the same name space, block and page size are found again (the region
 * summaries are read here); a directory written for another geometry, another name space or by
 * an older format (the block-slot file of efc before the region log) starts empty, with a log
 * line saying which. Starts the io_threads workers. Returns 0
 * with *out set (free with cache_free), or -EINVAL/-ENOMEM with a message in err. */
int cache_new(const struct cache_config *cfg, struct blksrc *src, struct cache **out, char *err,
              size_t errlen);
/* Waits for queued disk writes (so what was fetched persists), drops queued prefetches, stops the
 * workers and frees everything. cache_free(NULL) is a no-op. */
void cache_free(struct cache *c);

/* Flags of cache_read_ex, cache_ref_get and cache_fill. */
#define CACHE_PEER                                                                                 \
    1u /* for a peer (or a warm-up asked by one): not a read of this node's own                    \
          (the tier_* read counters do not count it), and a miss is fetched with                   \
          BLKREQ_LOCAL (never sent on to another peer) */
#define CACHE_LOCAL                                                                                \
    2u /* memory and disk only: never fetch, never wait for a fill; a range not                    \
          wholly held answers -ENOENT */
#define CACHE_RELAY                                                                                \
    4u /* with CACHE_PEER: a hot block this node passes on to a peer in its fan-out tree (p2p/):   \
          a miss is fetched through the cluster, not with BLKREQ_LOCAL */

/* Reads [off, off+len) of the object (key, etag, obj_size) through the cache into buf. Hits come
 * from memory or disk (every disk page's CRC64 is verified; a bad page is dropped and refetched);
 * misses are fetched through the source with single-flight per block (concurrent misses on one
 * block make one fetch; its waiters share its bytes or its error) and inserted into the tiers,
 * the disk write happening in the background. Returns the bytes read (short only at obj_size;
 * 0 at or past it) or -errno (-EINVAL for bad arguments, -ENOENT under CACHE_LOCAL, else the
 * source's error). *MISSED (may be NULL) is set when a block had to be fetched, by this call or
 * by a fill it joined, from the origin or through a peer. */
ssize_t cache_read_ex(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                      uint64_t off, size_t len, void *buf, unsigned flags, int *missed);

static inline ssize_t cache_read(struct cache *c, const char *key, const char *etag,
                                 uint64_t obj_size, uint64_t off, size_t len, void *buf)
{
    return cache_read_ex(c, key, etag, obj_size, off, len, buf, 0, NULL);
}

/* What this node holds of [off, off+len), for a peer: memory and disk only, never a fetch, never
 * a wait, never counted as a read of this node. -ENOENT unless every page is held. */
static inline ssize_t cache_read_local(struct cache *c, const char *key, const char *etag,
                                       uint64_t obj_size, uint64_t off, size_t len, void *buf)
{
    return cache_read_ex(c, key, etag, obj_size, off, len, buf, CACHE_PEER | CACHE_LOCAL, NULL);
}

/* Zero-copy memory hits (for fuse_reply_data): if [off, off+len) lies inside one block whose
 * pages the memory tier holds, pins that block, points ref->data at its bytes in the arena and
 * sets ref->len (clipped to the block and the object) and returns 0. A fill of the block under
 * way (a prefetch's, a reader's) is waited for first. Otherwise returns -ENOENT and pins
 * nothing: use cache_read. -EINVAL for bad arguments. A pinned block cannot be evicted (and its
 * memory slot is not reused), so release it with cache_ref_put as soon as the reply is sent.
 * Counted as a read (unless FLAGS has CACHE_PEER): a hit, or a miss when it waited for a fill.
 * With CACHE_LOCAL it does not wait for a fill either. */
struct cache_ref {
    const void *data;
    size_t len;
    uint32_t entry_; /* private */
    uint32_t shard_; /* private */
};
int cache_ref_get(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                  uint64_t off, size_t len, unsigned flags, struct cache_ref *ref);
void cache_ref_put(struct cache *c, struct cache_ref *ref);

/* Queues the asynchronous fill of the blocks covering [off, off+len) (readahead) into memory and
 * returns at once. Consecutive blocks are fetched as runs (up to 4 MiB, or one block) of one
 * source request each, so the caller chooses the request size by the ranges it passes. Blocks a
 * tier holds, or that are being filled, are not fetched. A prefetched block is kept from
 * eviction until its first read (or until the memory tier has turned over once), and that read
 * does not count as a re-access; the caller keeps its window within what the cache can hold.
 * Returns 0, -EINVAL, or -EAGAIN when the bounded queue (1024 blocks) was full (the blocks that
 * did not fit are dropped, never waited for). FLAGS: 0, or CACHE_PEER for blocks a peer asked
 * this node for (fetched with BLKREQ_LOCAL). */
int cache_prefetch(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                   uint64_t off, uint64_t len, unsigned flags);

/* Fetches, synchronously, the blocks of [first, first + n) that no tier holds and nobody fills,
 * as a prefetch run does: each stretch of them with one source request, each block published
 * (readers waiting for it served) as soon as its bytes are in, and READY(ARG, index, data, len)
 * called for it then, DATA its bytes, valid during the call only (the block is pinned). Blocks
 * held, being filled by another, or that failed get no call: read them as usual. N is at most
 * the cache's run (4 MiB of blocks). FLAGS: CACHE_PEER (with CACHE_RELAY) or 0. Returns the number
 * of blocks it fetched, or -EINVAL. (The P2P server streams an owner's run to the peer that asked
 * for it.) */
int cache_fetch_run(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                    uint64_t first, unsigned n, unsigned flags,
                    void (*ready)(void *arg, uint64_t index, const uint8_t *data, uint32_t len),
                    void *arg);

/* Warm-up (mgmt/warmup.c): makes block INDEX of (key, etag, obj_size) present in the cache and
 * returns once it is stored: on the disk tier when the cache has one (written before returning,
 * so it survives a crash right after), else in the memory tier. A block some tier already holds
 * (all its pages valid) is not fetched again. Fetches join readers' fills of the same block
 * (single-flight). Filled blocks enter the eviction policy as recently used (not on probation),
 * so a warm-up does not evict the blocks it has just loaded while others remain to evict.
 * Not counted as a tier read; a fetch from the origin counts in root_read_source. FLAGS: 0 or
 * CACHE_PEER (a warm-up a peer asked this node, the block's owner, for). *FETCHED (may be NULL)
 * is set to the bytes fetched from the source (0 when already present). Returns 0, -EINVAL for
 * bad arguments or an index past the object's end, -ENOSPC when no tier can take the block, or
 * the source's error. */
int cache_fill(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
               uint64_t index, unsigned flags, uint64_t *fetched);

/* The block size and page size the cache was created with. */
uint32_t cache_block_size(const struct cache *c);
uint32_t cache_page_size(const struct cache *c);

/* The identity of block INDEX of (key, etag) in name space NS (cache_config.ns; see the top):
 * what the cache, and every node of a cluster, names that block by. */
void cache_block_id(const char *ns, const char *key, const char *etag, uint64_t index,
                    uint64_t id[2]);
/* The CRC64 of page PAGE of block ID, LEN bytes at DATA, bound to the block's identity and the
 * page's number so that it verifies only in the place it was computed for: what the disk tier
 * stores for each page, and what a peer sends with each page. */
uint64_t cache_page_crc(const uint64_t id[2], uint32_t page, const void *data, size_t len);

/* Counters. The first ten are the seed's tier_* metrics:
 *   read, read_bytes           every cache_read (and cache_ref_get hit) inside the object; the
 *                              bytes asked (clipped to the object's end). Reads for peers
 *                              (CACHE_PEER) are not counted.
 *   read_hit                   reads whose every block came from this node's memory or disk, or
 *                              from a peer that held it (a hit of the distributed cache)
 *   read_hit_bytes             bytes of those blocks (of any read)
 *   read_miss                  reads for which at least one block had to be fetched from the
 *                              origin, by this node or by the peer that owns it, by this read
 *                              or by a fill it joined (single-flight waiters count too)
 *   read_miss_bytes            bytes of the blocks that needed such a fetch
 *   direct_read, _bytes        reads (bytes) that went to the origin directly: the peer that
 *                              owns a block failed or refused (BLK_FROM_FALLBACK), or the cache
 *                              could not take the block in (its index exhausted)
 *   root_read_source, _bytes   fetches from the origin this node's cache made as a distributed
 *                              node (for its own misses and prefetches, and for peers), and the
 *                              bytes they returned; not the direct reads
 * Every read counts in exactly one of hit, miss and direct (direct before miss before hit), so
 * read = read_hit + read_miss + direct_read, and the bytes add up the same way. Prefetches are
 * not reads. The rest are gauges and diagnostics, not cleared by cache_clear_stats.
 *
 * Memory: block data lives in the mem_bytes arena only. Beyond it, transiently: copies queued for
 * the disk writer (demotions, and blocks that got no memory slot; a block in a memory slot is
 * written from it, pinned; at most max(64 MiB, 4 blocks) queued either way), one scratch buffer
 * per thread that ever filled a block without a memory slot (a block) or ran a prefetch (a run:
 * max(4 MiB, a block)), and the index (index_bytes: it grows with the blocks held, 4096 entries at
 * a time, up to one entry per 4 KiB page of memory and per smallest disk item: 48 bytes a block
 * at 64 KiB blocks, 56 at 1 MiB with 16 KiB pages, plus 1 to 2 for the hash table), and 11 bytes
 * per 4 KiB page of memory for the memory tier's runs and replacement queues. Full of blocks it
 * is under 0.1% of the capacity at every block and page size, 0.0091% at 1 MiB (1 GiB memory,
 * 100 GiB disk); full of 16 KiB objects on disk, 0.35%).
 *
 * Space counts bytes in both tiers: a block (or a small object, one short block) of n bytes takes
 * a memory slot of the power of two of 4 KiB pages at or above n (mem_used counts those pages),
 * and a disk item of its pages plus a header (disk_used). */
struct cache_stats {
    uint64_t read, read_bytes, read_hit, read_hit_bytes, read_miss, read_miss_bytes;
    uint64_t direct_read, direct_read_bytes, root_read_source, root_read_source_bytes;

    uint64_t mem_used, mem_capacity;   /* bytes of memory slots in use / the cap */
    uint64_t mem_fill_fd_bytes;        /* bytes put in memory slots through the memory tier's
                                          memfd (arena.c), 0 when it is anonymous memory */
    uint64_t disk_used, disk_capacity; /* bytes of the items the index names (headers and
                                          padding included) / sum of the cache files' sizes */
    uint64_t index_bytes;              /* everything the index costs, as allocated now */
    uint64_t blocks_mem, blocks_disk;  /* blocks in memory slots / items on disk */
    uint64_t evictions_mem, evictions_disk, demotions;
    uint64_t disk_errors;        /* failed disk reads and writes (and short writes) */
    uint64_t corrupt_dropped;    /* disk pages whose CRC64 did not verify, or cut off the file */
    uint64_t singleflight_waits; /* readers that waited for another's fill of their block */
    uint64_t source_fetches, source_errors; /* every fetch through the source, peer or origin */
    uint64_t disk_writes, disk_write_bytes, disk_writes_dropped; /* items written (bytes with
                                                                   headers), queue drops */
    uint64_t prefetch_queued, prefetch_dropped;
    uint64_t scan_blocks; /* blocks found on disk at cache_new */
    uint64_t scan_usec;   /* how long that scan took */
};

void cache_get_stats(struct cache *c, struct cache_stats *st);
/* Zeroes the ten tier_* counters. */
void cache_clear_stats(struct cache *c);

/* Appends ST as Prometheus lines to OUT: efc_tier_<name>_total for the ten tier_* counters and
 * efc_cache_hit_ratio{kind="requests"|"bytes"} always; with CACHE_METRICS_TIERS the tiers'
 * families too: efc_cache_{used,capacity}_bytes{tier="memory"|"disk"}, efc_cache_blocks{tier},
 * efc_cache_evictions_total{tier}, efc_cache_demotions_total, efc_cache_index_bytes,
 * efc_cache_corrupt_pages_dropped_total, efc_cache_disk_errors_total, efc_cache_source_*,
 * efc_cache_singleflight_waits_total, efc_cache_disk_writes*, efc_cache_prefetch_*. (A node that
 * stores nothing, an agent, has only the first.) Returns 0 or the buffer's error. */
#define CACHE_METRICS_TIERS 1u
int cache_write_metrics(const struct cache_stats *st, unsigned what, struct buf *out);

#endif
