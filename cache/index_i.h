/* cache/index_i.h - private to cache/: the block index's types (struct cache, struct centry, struct
 * shard, struct fill, the background jobs) and the helpers shared by cache.c (the index, the
 * memory tier, the read path), prefetch.c (the prefetch runs) and writer.c (the disk writers,
 * the start-up scan). What the index is and how it is laid out is told at the top of cache.c; a
 * function below that is not inline is defined in cache.c unless its comment names another file.
 */
#ifndef EFC_CACHE_INDEX_I_H
#define EFC_CACHE_INDEX_I_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "cache/blksrc.h"
#include "cache/cache.h"
#include "cache/cache_i.h"
#include "cache/s3fifo.h"

#define NSHARDS         256
#define NIL             UINT32_MAX
#define MAXW            (CSLOT_MAX_PAGES / 64) /* bitmap words for the largest geometry */
#define POOL_SLACK      4096 /* entries beyond the tiers' blocks: fills in flight */
#define CHUNK_SHIFT     12   /* the index grows by 4096 entries at a time */
#define CHUNK           (1u << CHUNK_SHIFT)
#define COPY_UNDER_LOCK (64u << 10)   /* hits up to this size copy with the lock held */
#define WQ_MIN_BYTES    (64ull << 20) /* disk-write queue: bytes of copies waiting */
#define WBUF_KEEP_BYTES (16ull << 20) /* idle disk-write copies kept for reuse */
#define PQ_MAX          1024          /* prefetch queue: blocks waiting */
#define RUN_MAX_BYTES   (4u << 20)    /* one prefetch request fetches at most this (or a block) */
#define RUN_MAX_BLOCKS  (RUN_MAX_BYTES / CACHE_MIN_BLOCK)
#define MEM_AT(c, ms)   ((c)->arena + ((size_t)(ms) << S3FIFO_PAGE_SHIFT)) /* a memory run */
#define DISK_WRITERS    2 /* disk writes go through io_uring: two threads keep a disk busy */
/* A directory whose disk failed a read or a write rests this long (neither read nor written),
   then is tried again. Its first failure of a bout is logged, at most once a minute. */
#define DIR_BACKOFF_NS (2ull * 1000000000ull)
#define DIR_WARN_NS    (60ull * 1000000000ull)

enum {
    F_FILLING = 1,  /* a fill runs (its record is in the shard's list) */
    F_DWRITING = 2, /* a disk write of the block runs */
    F_AHEAD = 4,    /* in memory by prefetch, not read yet; bits 4-7: its ahead_stamp */
    F_DHIT = 8,     /* its disk item was read since the item was written (or moved) */
};
enum { MV = 0, DV = 1 }; /* the entry's bitmaps: memory-valid, disk-valid */

/* One block. Protected by its shard's lock (except id and blen, fixed while allocated). */
struct centry {
    uint64_t id[2];
    uint32_t hnext; /* hash chain, or the pool's free list */
    uint32_t mslot; /* memory slot (its first 4 KiB page in the arena) or NIL */
    uint32_t dreg;  /* the region of its disk item in dirs[ddir], or NIL */
    uint32_t doff;  /* the item's offset in that region */
    uint32_t blen;  /* block length */
    uint16_t pins;  /* readers, fillers and writers using the entry: at most one per thread */
    uint8_t ddir;
    uint8_t flags;
    uint8_t bits[]; /* mvalid then dvalid, c->mb bytes each (little-endian bitmap words) */
};

/* A fill in flight (see the top). Shard lock. */
struct fill {
    struct fill *next; /* the shard's list */
    uint32_t entry;
    int done, err;
    int from;            /* done: the worst enum blk_from of its fetches; -1: it fetched nothing */
    unsigned waiters;    /* registered and not yet gone */
    const uint8_t *buf;  /* done: the block's bytes when they are in no memory slot, else NULL */
    const uint64_t *got; /* done: the pages in buf */
};

struct shard {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a fill or a disk write on this shard ended, a waiter left */
    uint32_t *buckets;
    uint32_t mask;
    uint32_t count; /* entries in the table; the buckets double past 2 a bucket */
    struct fill *fills;
    uint64_t *crec; /* compact records (see "compact records"), ccap slots, or NULL */
    uint32_t ccap, ccount;
} __attribute__((aligned(64)));

struct cdir {
    struct cache *c;
    struct cdisk *d;
    struct cdisk_owner own; /* disk_forget, disk_moved, this */
    uint64_t items, bytes;  /* atomic: items the index names, and their bytes on disk */
    uint64_t down_until;    /* atomic; CLOCK_MONOTONIC ns */
    /* A bout of failures: from a failed read or write to the next write that succeeds. */
    pthread_mutex_t state_lock;
    int failing;        /* state_lock to change; read atomically */
    int warned;         /* state_lock: this bout's first failure was logged */
    uint64_t warned_at; /* state_lock: when the last bout was logged */
};

enum { JOB_WRITE, JOB_PREFETCH };

struct job {
    struct job *next;
    int kind;
    /* JOB_WRITE */
    uint64_t id[2];
    uint32_t blen;
    uint8_t *data;  /* block-sized copy; pages at their block offsets; NULL: the memory slot */
    uint32_t entry; /* data NULL: the entry, pinned until written, whose memory slot holds them */
    uint64_t *crc;  /* owned: the CRCs of the pages (cslot_page_crc), computed as they were
                       fetched, so that the writer need not read the slot; NULL: the writer's */
    /* JOB_PREFETCH: blocks index..index+nblocks-1 */
    char *key, *etag;
    uint64_t obj_size, index;
    uint32_t nblocks;
    unsigned flags;   /* CACHE_PEER (and CACHE_RELAY) or 0 */
    uint64_t pages[]; /* JOB_WRITE: the pages in data */
};

/* The BLKREQ_* flags of a source fetch made for a read with cache FLAGS: a peer's miss goes to
 * the origin (BLKREQ_LOCAL), unless it relays a hot block (CACHE_RELAY: through the cluster). */
static inline unsigned src_flags(unsigned flags)
{
    return (flags & (CACHE_PEER | CACHE_RELAY)) == CACHE_PEER ? BLKREQ_LOCAL : 0;
}

/* Counters are striped per thread (a thread keeps one stripe) so that hits on two cores do not
 * bounce one cache line; readers of the stats sum the stripes. */
#define NSTRIPES 16

struct counters {
    uint64_t read, read_bytes, read_hit, read_hit_bytes, read_miss, read_miss_bytes;
    uint64_t direct_read, direct_read_bytes, root_read_source, root_read_source_bytes;
    uint64_t evictions_mem, evictions_disk, demotions, disk_errors, corrupt_dropped;
    uint64_t singleflight_waits, source_fetches, source_errors;
    uint64_t disk_writes, disk_write_bytes, disk_writes_dropped, prefetch_queued, prefetch_dropped;
} __attribute__((aligned(64)));

struct cache {
    uint32_t bs, ps, np, w, mb; /* mb: bytes of one entry bitmap */
    unsigned bs_shift, ps_shift;
    uint32_t run_max; /* blocks in one prefetch job */
    uint64_t mtick;   /* pages of memory slots allocated so far (atomic): the clock of F_AHEAD */
    unsigned tick_shift;
    struct blksrc *src;
    char *ns; /* the name space of the identities */
    struct shard shards[NSHARDS];

    pthread_mutex_t pool_lock;
    uint8_t **chunks; /* the entries, CHUNK of them a chunk, allocated as needed */
    size_t estride;
    uint32_t nchunks, maxchunks, pool_free; /* free list through hnext; under pool_lock */

    uint8_t *arena; /* whole blocks (chunks), cut into runs of 4 KiB pages by s3fifo.c */
    size_t arena_len;
    struct arena *ar; /* its mapping and the thread mapping chunks ahead (arena.c) */
    struct s3fifo *mq;

    int ndirs;
    struct cdir dirs[CACHE_MAX_DIRS];

    pthread_mutex_t job_lock;
    pthread_cond_t wq_cond, pq_cond;
    struct job *wq_head, *wq_tail, *pq_head, *pq_tail; /* under job_lock */
    uint64_t wq_bytes, wq_max;
    pthread_mutex_t wbuf_lock; /* a leaf lock: job_free runs under job_lock */
    void *wbuf_free; /* idle block-sized copies for disk writes, linked through their first word */
    unsigned wbuf_nfree, wbuf_keep;
    unsigned pq_blocks;
    int stopping;       /* prefetchers: stop, drop the queue */
    int writers_stop;   /* writers: stop once the queue is empty */
    pthread_t *threads; /* nprefetchers prefetchers, then the writers */
    unsigned nthreads, nprefetchers;

    struct counters n[NSTRIPES]; /* atomics */
    uint64_t index_bytes, disk_capacity, scan_blocks, scan_usec;
    uint64_t index_fixed; /* index_bytes before the first entry */
    /* The fields of a compact record (cr_make); cr_tbits 0: no compact records. */
    unsigned cr_tbits, cr_dbits, cr_rbits, cr_obits;
};

extern unsigned stripe_next;     /* cache.c */
extern __thread int stripe_mine; /* cache.c: this thread's stripe, -1 before its first */

static inline int stripe(void)
{
    if (stripe_mine < 0)
        stripe_mine = (int)(__atomic_fetch_add(&stripe_next, 1, __ATOMIC_RELAXED) % NSTRIPES);
    return stripe_mine;
}

#define STAT(c, f, v) __atomic_fetch_add(&(c)->n[stripe()].f, (uint64_t)(v), __ATOMIC_RELAXED)

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- bitmaps ---- */

static inline int bm_test(const uint64_t *m, uint32_t p)
{
    return (int)(m[p / 64] >> (p % 64) & 1);
}

static inline void bm_set(uint64_t *m, uint32_t p)
{
    m[p / 64] |= 1ull << (p % 64);
}

static inline void bm_range(uint64_t *m, uint32_t w, uint32_t p0, uint32_t p1)
{
    memset(m, 0, 8ull * w);
    for (uint32_t p = p0; p <= p1; p++)
        bm_set(m, p);
}

static inline int bm_covers(const uint64_t *have, const uint64_t *need, uint32_t w)
{
    for (uint32_t i = 0; i < w; i++)
        if (need[i] & ~have[i])
            return 0;
    return 1;
}

static inline int bm_any(const uint64_t *m, uint32_t w)
{
    for (uint32_t i = 0; i < w; i++)
        if (m[i])
            return 1;
    return 0;
}

static inline uint64_t bm_count(const uint64_t *m, uint32_t w)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < w; i++)
        n += (uint64_t)__builtin_popcountll(m[i]);
    return n;
}

/* ---- index ---- */

static inline struct centry *E(struct cache *c, uint32_t i)
{
    return (struct centry *)(c->chunks[i >> CHUNK_SHIFT] + (size_t)(i & (CHUNK - 1)) * c->estride);
}

/* Loads bitmap WHICH of E into OUT (c->w words); a tier the entry has nothing in reads empty. */
static inline void ent_get(struct cache *c, const struct centry *e, int which, uint64_t *out)
{
    memset(out, 0, 8ull * c->w);
    if ((which == MV ? e->mslot : e->dreg) != NIL)
        memcpy(out, e->bits + (size_t)which * c->mb, c->mb);
}

static inline void ent_put(struct cache *c, struct centry *e, int which, const uint64_t *in)
{
    memcpy(e->bits + (size_t)which * c->mb, in, c->mb);
}

static inline void ent_clear(struct cache *c, struct centry *e, int which)
{
    memset(e->bits + (size_t)which * c->mb, 0, c->mb);
}

/* Whether tier WHICH of E holds every page of NEED. */
static inline int ent_covers(struct cache *c, const struct centry *e, int which,
                             const uint64_t *need)
{
    uint64_t have[MAXW];
    if ((which == MV ? e->mslot : e->dreg) == NIL)
        return 0;
    ent_get(c, e, which, have);
    return bm_covers(have, need, c->w);
}

static inline struct shard *shard_of(struct cache *c, const uint64_t id[2])
{
    return &c->shards[id[1] % NSHARDS];
}

/* One block of one object version. */
struct blk {
    const char *key, *etag;
    uint64_t obj_size, index;
    uint32_t blen;
    uint64_t id[2];
};

/* How a block was served, for the tier_* counters (see cache.h): from this node's tiers or a
 * peer's (a hit), fetched from the origin by this node or a peer (a miss), read from the origin
 * after a peer failed (direct), or not cacheable at all (BLK_UNCACHED: the index is full of
 * fills; the caller reads the source itself). */
enum { BLK_HIT = 0, BLK_MISS = 1, BLK_FALLBACK = 2, BLK_UNCACHED = 3 };

static inline int worst(int a, int b)
{
    return a > b ? a : b;
}

/* Appends J to the queue HEAD..TAIL (the prefetch or the disk-write queue of C) and wakes one of
 * its workers on CV. Takes job_lock. */
static inline void job_push(struct cache *c, struct job **head, struct job **tail,
                            pthread_cond_t *cv, struct job *j)
{
    pthread_mutex_lock(&c->job_lock);
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
    pthread_cond_signal(cv);
    pthread_mutex_unlock(&c->job_lock);
}

/* What block_io is asked for. */
enum {
    MODE_READ,     /* copy [boff, boff+len) to dst */
    MODE_PREFETCH, /* make the whole block present in memory; never wait for another filler */
    MODE_FILL, /* cache_fill: make the whole block present on disk (else in memory), synchronously
                */
};

/* Where a block's disk item is, as an entry named it (the region held: cdisk_hold). */
struct dloc {
    uint32_t reg, off;
    int dir;
    uint64_t valid[MAXW];
};

/* ---- shared between the files of cache/ (each defined in cache.c unless said otherwise) ---- */

/* A thread's block-sized scratch buffer of at least N bytes (kept for the thread), or NULL. */
void *scratch_get(size_t n);
/* The entry of block ID in SH's hash table, or NIL. Shard lock held. */
uint32_t lookup(struct cache *c, struct shard *sh, const uint64_t id[2]);
/* The tag of ID's compact record (see "compact records" in cache.c). */
uint64_t cr_tag(const struct cache *c, const uint64_t id[2]);
/* The slot of a compact record of tag TAG in SH's table (see its definition), or NIL. Lock held. */
uint32_t cr_find(const struct cache *c, const struct shard *sh, uint64_t tag, uint64_t where,
                 unsigned skip);
/* A new entry in the hash table, or NIL when the pool is empty. Shard lock held. */
uint32_t entry_new(struct cache *c, struct shard *sh, const uint64_t id[2], uint32_t blen);
/* Frees entry I if nothing holds it any more (or a compact record takes its place). Lock held. */
void entry_maybe_free(struct cache *c, struct shard *sh, uint32_t i);
/* Marks E as fetched ahead of its reader, stamped with the clock of memory allocations. Lock held.
 */
void ahead_set_locked(struct cache *c, struct centry *e);
/* mem_alloc (a memory run for entry I, a block of BLEN bytes, or NIL) for prefetch.c. */
uint32_t mem_alloc_run(struct cache *c, const uint64_t id[2], uint32_t i, uint32_t blen, int hot);
/* Starts a fill of entry I by this thread (F_FILLING, a pin, F listed). Lock held. */
void fill_begin_locked(struct shard *sh, struct centry *e, uint32_t i, struct fill *f);
/* Ends the fill F of E and waits for its last waiter to leave (see its definition). Lock held. */
void fill_end_locked(struct shard *sh, struct centry *e, struct fill *f, int err, int from,
                     const uint8_t *buf, const uint64_t *got);
/* Copies the pages in PAGES from block buffer SRC to DST (both at block offsets). */
void copy_pages(struct cache *c, uint32_t blen, const uint64_t *pages, uint8_t *dst,
                const uint8_t *src);
/* E names the disk item it has (DV set): counted in (SIGN 1) or out of (-1) its directory. Lock
 * held. */
void disk_count_locked(struct cache *c, const struct centry *e, int sign);
/* E forgets its disk item (dead space now), if it names one. Lock held. */
void disk_drop_locked(struct cache *c, struct centry *e);
/* Whether DIR is up (not resting after a failure). */
int dir_up(const struct cdir *dir);
/* DIR's disk failed OP ("read", "write") with RC: it rests (DIR_BACKOFF_NS), logged once a bout. */
void dir_failed(struct cache *c, struct cdir *dir, const char *op, int rc);
/* A write to DIR succeeded: the bout of failures, if any, is over. */
void dir_worked(struct cdir *dir);
/* Queues PAGES of BUF (ENTRY NIL: copied; else ENTRY's pinned memory slot) for the disk tier
 * (writer.c). CRC (NULL: none; else malloc'd, taken over and freed whatever happens): the CRCs
 * of the pages, by page number. */
void queue_write(struct cache *c, const uint64_t id[2], uint32_t blen, const uint64_t *pages,
                 const uint8_t *buf, uint32_t entry, uint64_t *crc);
/* Frees a job (NULL: nothing) and its buffers. Any lock may be held (wbuf_lock is a leaf)
 * (writer.c). */
void job_free(struct cache *c, struct job *j);
/* Writes the pages in PAGES of block ID from DATA to the disk tier, synchronously: 0, 1 (no
 * place), or -errno. CRC (NULL: computed here): the CRCs of PAGES, by page number. No lock held
 * (writer.c). */
int disk_write_block(struct cache *c, const uint64_t id[2], uint32_t blen, const uint8_t *data,
                     const uint64_t *pages, const uint64_t *pcrc, int hot);
/* A block-sized buffer for a disk write's copy, reused (writer.c); NULL when out of memory. */
void *wbuf_get(struct cache *c);
/* Gives back a buffer of wbuf_get (NULL: nothing), kept for reuse or freed (writer.c). */
void wbuf_put(struct cache *c, void *p);
/* Writes job J's block to disk and unpins its entry if J wrote from the memory slot (writer.c). */
void do_write(struct cache *c, struct job *j);
/* Unpins the entry of a write job that was to write from its memory slot. No lock held
 * (writer.c). */
void job_unpin(struct cache *c, struct job *j);
/* A disk writer: writes the queue's blocks until c->writers_stop and the queue is empty
 * (writer.c). */
void *writer_main(void *arg);
/* cdisk_scan's callback at start-up: the index names the item (REGION, OFF) of H found in the
 * directory ARG (struct cdir) (writer.c). */
int scan_one(void *arg, uint32_t region, uint32_t off, const struct citem_hdr *h);
/* Reads or makes present block B through the cache (see its definition; MODE_*). BLK_* or -errno.
 */
int block_io(struct cache *c, const struct blk *b, uint32_t boff, uint32_t len, void *dst, int mode,
             unsigned flags, uint64_t *fetched_bytes);
/* -EINVAL when KEY or ETAG is missing or too long, else 0. */
int check_obj(const char *key, const char *etag);
/* A prefetch worker: runs the prefetch queue's jobs until c->stopping (prefetch.c). */
void *prefetcher_main(void *arg);

#endif
