/* cache/cache.c - the block index, the memory tier, the read path with single-flight, and the
 * cache's life (cache_new, cache_free); the readahead runs are in prefetch.c, the workers that
 * write blocks to the disk tier (disk.c) and the start-up scan in writer.c.
 *
 * The index is a pool of entries (one per block in memory, being filled or written, or partly on
 * disk), grown 4096 at a time as blocks come (up to one per 4 KiB page of memory and per smallest
 * item the disk tier can hold, plus fills in flight), in 256 shards, each a chained hash table
 * under its own mutex whose buckets double past 2 entries a bucket, beside a table of compact
 * records (one per block held only on disk, whole: see below). An entry names its memory slot
 * and its disk item (directory, region, offset: disk.c's region log, where a block takes its own
 * bytes), and carries one valid-page bitmap per tier; the disk bitmap is the item's own, so a
 * read finds a page's place in the item from it (item.c). Both tiers count bytes. A memory slot is
 * a run of 4 KiB pages in one mmap'd arena of mem_bytes (arena.c: a memfd, filled by pwrite), named
 * by its first page (mslot; MEM_AT), of the block's size class (s3fifo.c: the
 * pages of the block's length, blen, fixed by the object's size, to 16; above, the next of four
 * steps per power of two), so a 16 KiB object takes 16 KiB, a 16.5 KiB one 20 KiB and a
 * 5,000-byte one 8 KiB, while every block of a big object, read in pieces or not, takes its whole
 * length:
 *
 *     arena: | chunk 0 (a block)   | chunk 1             | chunk 2             | ...
 *            | 16K 16K 16K 16K ... | 1 MiB block         | 8K 8K 8K 8K 8K ...  |
 *              ^ mslot = page 0, 4, 8, ...                  ^ mslot = page 512, 514, ...
 *
 * s3fifo.c cuts chunks into runs of one class, hands chunks whose runs are all free back to a
 * common pool (so the classes follow the mix of sizes), and replaces runs by S3-FIFO weighted by
 * their pages: an allocation evicts until a run of its class is free. A memory victim whose pages
 * are not on disk yet is demoted (queued for writing) before it goes. The disk tier evicts whole
 * regions, oldest first: the region log calls disk_forget for each of the region's items, and the
 * entry forgets the item if it still names it; an item read since it was written (F_DHIT) is kept,
 * written again by the log, and disk_moved names its new place. A disk read holds the item's region
 * (cdisk_hold, taken under the shard lock) so that it is not reused under the read. An item whose
 * page fails its CRC is dropped whole, and the fill writes what it has of the block as a new item.
 *
 * The index must cost at most 0.1% of the capacity it describes, full of 64 KiB blocks or of 16
 * KiB objects, and 0.01% full of 1 MiB blocks. So an entry is only what a block in memory or in
 * motion needs: the identity, the hash chain, the memory slot, the disk item, the length, a pin
 * count, flags, and the two bitmaps stored in ceil(pages/8) bytes each (1 byte at 64 KiB / 16 KiB
 * pages); 48 bytes at 64 KiB blocks, 56 at 1 MiB / 16 KiB. What only a block being filled needs
 * (its waiters, the fill's result, a buffer lent to the waiters) lives in a `struct fill` on the
 * filler's stack, listed in the shard while the fill runs. A block with nothing but a whole disk
 * item (no memory slot, no pin, no fill or write: entry_maybe_free) has no entry: a compact
 * record of 8 bytes names its item (tag, dhit, directory, region, offset / 512) in the shard's
 * open-addressing table, kept 3/5 to 3/4 full (at most 13.3 bytes a block), as Kangaroo and
 * Navy's small-object engine keep a few bytes of DRAM per object. The tag is the rest of the 64
 * bits, top bits of the identity (35 of them for a 100 GiB directory), so a record does not
 * prove whose item it names: a read that finds none but a record of its tag reads the item
 * header's identity (cdisk_item_is, the region held; a small item is read whole then, so that the
 * page read after it costs no second device read) and passes over another block's item (a
 * miss, never another block's bytes); its own becomes an entry again for the read (cr_take_locked)
 * and a record again once the block has left memory. Region reuse finds a record by its place
 * (disk_forget), so no tag can make it forget another block's item; a kept item (dhit) is named
 * again by disk_moved, and the start-up scan makes records of the whole items it finds. A block
 * may get a second record (a kept item named again after the block was written anew, or a copy
 * written while its directory rested): both name good copies, and each goes with its region. Hash
 * buckets are 4 bytes per 1-2 entries, and the memory tier's runs and S3-FIFO queues 11 bytes a 4
 * KiB page of memory (0.27% of the memory tier, which is small beside the disk tier). Measured by
 * test_index_overhead and test_small_objects (cache_index_bytes_for, an upper bound): 1 GiB +
 * 100 GiB full of 1 MiB blocks, 0.005%; of 16 KiB objects (6.3 million on disk), 0.085%; a real
 * fill of 4,650 objects of 16 KiB, 11.9 bytes an object beyond the first chunk of entries.
 *
 * A read hashes (key, etag, index) to the block identity, takes the shard lock and either copies
 * the pages from memory (the hit path: one lock, one memcpy; large copies pin the entry and copy
 * unlocked), or becomes the block's one filler (F_FILLING, with a fill record), or waits on the
 * shard's condition variable for the filler (single-flight: waiters then share its pages, its
 * buffer or its error; the filler returns only once its last waiter has left, so the record and
 * the buffer outlive every use). A filler drops the lock for all I/O: it reads the pages it can
 * from disk (each page's CRC verified; a bad page is dropped and fetched), fetches the rest
 * through the source in contiguous runs, puts the result in its memory slot, wakes the waiters,
 * copies out, and queues the fetched pages for a worker to write to disk: a block in a memory
 * slot is written from the slot itself, pinned until then (no copy); only a block without one (a
 * scratch buffer's) and a memory victim's demotion are copied for the writer. The reader never
 * waits for a disk write. The write queue and the disk writers are in writer.c.
 *
 * Prefetch runs (readahead on workers of their own, and cache_fetch_run) are in prefetch.c: a
 * run claims the blocks nobody holds or fills, fetches each stretch of them with one source
 * request and publishes them one by one, marked F_AHEAD until a read uses them (ahead_now).
 * The types and helpers cache.c, prefetch.c and writer.c share are in index_i.h.
 *
 * A warm-up fill (cache_fill) is the same fill with another target: with a disk tier it fills a
 * scratch block (pages memory holds are copied, the rest fetched) and writes it synchronously
 * while still the block's filler, so readers of the block join it and it is on disk when the
 * call returns; without one, it fills a memory slot. Its memory slots are admitted as hot
 * (s3fifo.h): a warm-up is a statement that the data is wanted, not a one-time scan to be put
 * on probation. (The disk's region log has no probation: it keeps what was read again.)
 *
 * Lock order: shard lock, then any of {an s3fifo's lock, pool_lock, job_lock}. A compact record
 * is under its shard's lock; cr_take_locked drops it for the header read and takes it again
 * before it lets go of the region (so a record never outlives its region's reuse). The
 * s3fifo eviction callbacks run under an s3fifo lock and only *try* shard locks (a busy shard's
 * block is skipped), so the order is never inverted. The region log calls disk_forget with none
 * of its locks held (disk.c), and cdisk_append is called with no shard lock held. No lock is held
 * across I/O or a source call.
 *
 * Identity: XXH3-128 of ns NUL key NUL etag NUL index(8 bytes LE), ns naming the bucket and its
 * endpoint (cache_config.ns). Peers compute the same one for the same block. Only the hash is
 * stored. With n
 * blocks ever cached the chance that two distinct tuples collide is about n^2 / 2^129: for 10^12
 * blocks, 1.5e-15. A collision could serve wrong bytes, so the argument rests on XXH3-128 being a
 * good hash of non-adversarial input; object keys are chosen by the bucket's owner, who can read
 * the objects anyway. (A peer is another matter: its pages are checked against CRCs bound to the
 * identity, which catches damage, not a forger; peer authentication keeps forgers out.)
 */
#define _GNU_SOURCE
#include "cache/cache.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <xxhash.h>

#include "cache/arena.h"
#include "cache/cache_i.h"
#include "cache/index_i.h"
#include "cache/s3fifo.h"
#include "util/log.h"

/* The entries keep their bitmaps as little-endian bytes and load them into uint64_t words. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "bitmap bytes assume little-endian");

/* The counters' stripes (STAT, index_i.h): the next stripe to hand out, and this thread's. */
unsigned stripe_next;
__thread int stripe_mine = -1;

/* ---- thread-local scratch buffer (fills without a memory slot, prefetch runs) ---- */

struct scratch {
    void *p;
    size_t n;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *p)
{
    struct scratch *s = p;
    free(s->p);
    free(s);
}

static void scratch_key_init(void)
{
    if (pthread_key_create(&scratch_key, scratch_destroy) != 0)
        abort();
}

void *scratch_get(size_t n)
{
    pthread_once(&scratch_once, scratch_key_init);
    struct scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s || pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->n < n) {
        free(s->p);
        s->p = malloc(n);
        s->n = s->p ? n : 0;
    }
    return s->p;
}

/* ---- index ---- */
void cache_block_id(const char *ns, const char *key, const char *etag, uint64_t index,
                    uint64_t id[2])
{
    char buf[CACHE_MAX_NS + CACHE_MAX_KEY + CACHE_MAX_ETAG + 16];
    size_t nl = strnlen(ns, CACHE_MAX_NS), kl = strnlen(key, CACHE_MAX_KEY),
           el = strnlen(etag, CACHE_MAX_ETAG), n = 0;
    memcpy(buf, ns, nl);
    n = nl;
    buf[n++] = '\0';
    memcpy(buf + n, key, kl);
    n += kl;
    buf[n++] = '\0';
    memcpy(buf + n, etag, el);
    n += el;
    buf[n++] = '\0';
    for (int i = 0; i < 8; i++)
        buf[n++] = (char)(index >> (8 * i));
    XXH128_hash_t h = XXH3_128bits(buf, n);
    id[0] = h.low64;
    id[1] = h.high64;
}

uint64_t cache_page_crc(const uint64_t id[2], uint32_t page, const void *data, size_t len)
{
    return cslot_page_crc(id, page, data, len);
}

uint32_t lookup(struct cache *c, struct shard *sh, const uint64_t id[2])
{
    for (uint32_t i = sh->buckets[id[0] & sh->mask]; i != NIL; i = E(c, i)->hnext) {
        struct centry *e = E(c, i);
        if (e->id[0] == id[0] && e->id[1] == id[1])
            return i;
    }
    return NIL;
}

/* One more chunk of entries on the free list. pool_lock held. */
static void pool_grow_locked(struct cache *c)
{
    if (c->nchunks == c->maxchunks)
        return;
    uint8_t *m = calloc(CHUNK, c->estride);
    if (!m)
        return;
    uint32_t base = c->nchunks << CHUNK_SHIFT;
    c->chunks[c->nchunks++] = m;
    for (uint32_t k = 0; k < CHUNK; k++)
        ((struct centry *)(m + (size_t)k * c->estride))->hnext =
            k + 1 < CHUNK ? base + k + 1 : c->pool_free;
    c->pool_free = base;
    __atomic_fetch_add(&c->index_bytes, (uint64_t)CHUNK * c->estride, __ATOMIC_RELAXED);
}

/* Doubles the shard's buckets (the table went past 2 entries a bucket). Lock held. */
static void shard_grow(struct cache *c, struct shard *sh)
{
    uint32_t nb = (sh->mask + 1) * 2;
    uint32_t *nbk = malloc(sizeof(uint32_t) * nb);
    if (!nbk)
        return; /* longer chains, still correct */
    memset(nbk, 0xff, sizeof(uint32_t) * nb);
    for (uint32_t b = 0; b <= sh->mask; b++) {
        for (uint32_t i = sh->buckets[b]; i != NIL;) {
            struct centry *e = E(c, i);
            uint32_t next = e->hnext;
            e->hnext = nbk[e->id[0] & (nb - 1)];
            nbk[e->id[0] & (nb - 1)] = i;
            i = next;
        }
    }
    free(sh->buckets);
    __atomic_fetch_add(&c->index_bytes, (uint64_t)(nb / 2) * sizeof(uint32_t), __ATOMIC_RELAXED);
    sh->buckets = nbk;
    sh->mask = nb - 1;
}

/* ---- compact records: blocks held only on disk, whole ---- */

/* A block whose every page is in one disk item and that has no memory slot, no fill and no pin
 * needs no entry: a record of 8 bytes names its item in the shard's open-addressing table
 * (linear probing, no tombstones), as Kangaroo's partial keys do. From the top bit down:
 *
 *     | tag: cr_tbits | dhit: 1 | dir: cr_dbits | region: cr_rbits | offset / 512: cr_obits |
 *
 * The tag is the top cr_tbits bits of id[1] (the shard is its low 8 bits), and the record's
 * home slot comes from the tag, so the table can grow without the identities. An offset is
 * never 0 (the region header is there), so no record is 0, the empty slot. A record does not
 * prove whose item it names: a read that finds one with its tag checks the item header's
 * identity (cdisk_item_is) before it trusts it, and goes on to the next one, or misses. */
#define CR_MIN_CAP    16 /* a shard's table when its first record comes */
#define CR_MIN_TBITS  16 /* fewer tag bits than this: no compact records (a huge geometry) */
#define CR_READ_WHOLE (256u << 10) /* a compact hit reads an item this small whole at first */

uint64_t cr_tag(const struct cache *c, const uint64_t id[2])
{
    return id[1] >> (64 - c->cr_tbits);
}

static unsigned cr_lbits(const struct cache *c) /* the bits below dhit */
{
    return c->cr_dbits + c->cr_rbits + c->cr_obits;
}

static uint64_t cr_make(const struct cache *c, const uint64_t id[2], int dir, uint32_t reg,
                        uint32_t off, int dhit)
{
    unsigned lb = cr_lbits(c);
    return cr_tag(c, id) << (lb + 1) | (uint64_t)(dhit != 0) << lb |
           (uint64_t)dir << (c->cr_rbits + c->cr_obits) | (uint64_t)reg << c->cr_obits |
           (uint64_t)(off / CITEM_ALIGN);
}

/* The record's place: directory, region, offset; and the part of the record that says it. */
static uint64_t cr_where(const struct cache *c, uint64_t r, int *dir, uint32_t *reg, uint32_t *off)
{
    *off = (uint32_t)(r & ((1ull << c->cr_obits) - 1)) * CITEM_ALIGN;
    *reg = (uint32_t)(r >> c->cr_obits & ((1ull << c->cr_rbits) - 1));
    *dir = (int)(r >> (c->cr_rbits + c->cr_obits) & ((1ull << c->cr_dbits) - 1));
    return r & ((1ull << cr_lbits(c)) - 1);
}

static int cr_dhit(const struct cache *c, uint64_t r)
{
    return (int)(r >> cr_lbits(c) & 1);
}

static uint32_t cr_home(const struct cache *c, uint64_t tag, uint32_t cap)
{
    return (uint32_t)(((tag << (64 - c->cr_tbits)) >> 32) * cap >> 32);
}

/* Puts record R (tag TAG) in a table of CAP slots that has an empty one. */
static void cr_place(const struct cache *c, uint64_t *t, uint32_t cap, uint64_t tag, uint64_t r)
{
    uint32_t k = cr_home(c, tag, cap);
    while (t[k])
        k = k + 1 == cap ? 0 : k + 1;
    t[k] = r;
}

/* Room for one more record in SH's table, kept at most 3/4 full: grown by a quarter (a table
 * just grown is 3/5 full, 13.3 bytes a record at worst). 0, or -ENOMEM. Lock held. */
static int cr_room(struct cache *c, struct shard *sh)
{
    if ((uint64_t)(sh->ccount + 1) * 4 <= (uint64_t)sh->ccap * 3)
        return 0;
    uint32_t ncap = sh->ccap ? sh->ccap + sh->ccap / 4 : CR_MIN_CAP;
    uint64_t *nt = calloc(ncap, sizeof(*nt));
    if (!nt)
        return -ENOMEM;
    unsigned shift = cr_lbits(c) + 1;
    for (uint32_t k = 0; k < sh->ccap; k++)
        if (sh->crec[k])
            cr_place(c, nt, ncap, sh->crec[k] >> shift, sh->crec[k]);
    free(sh->crec);
    __atomic_fetch_add(&c->index_bytes, (uint64_t)(ncap - sh->ccap) * sizeof(*nt),
                       __ATOMIC_RELAXED);
    sh->crec = nt;
    sh->ccap = ncap;
    return 0;
}

/* The slot of the record of tag TAG whose place is WHERE (cr_where), or, WHERE ~0, of the
 * SKIP-th record of tag TAG in its probe sequence; NIL if none. Lock held. */
uint32_t cr_find(const struct cache *c, const struct shard *sh, uint64_t tag, uint64_t where,
                 unsigned skip)
{
    if (!sh->ccap)
        return NIL;
    unsigned shift = cr_lbits(c) + 1;
    uint64_t lmask = (1ull << cr_lbits(c)) - 1;
    for (uint32_t k = cr_home(c, tag, sh->ccap); sh->crec[k]; k = k + 1 == sh->ccap ? 0 : k + 1) {
        uint64_t r = sh->crec[k];
        if (r >> shift != tag)
            continue;
        if (where == ~0ull ? skip-- == 0 : (r & lmask) == where)
            return k;
    }
    return NIL;
}

/* Removes the record in slot K, shifting back those after it that may move (no tombstones).
 * Lock held. */
static void cr_remove(struct cache *c, struct shard *sh, uint32_t k)
{
    unsigned shift = cr_lbits(c) + 1;
    uint32_t cap = sh->ccap, hole = k;
    sh->crec[hole] = 0;
    sh->ccount--;
    for (uint32_t j = hole + 1 == cap ? 0 : hole + 1; sh->crec[j]; j = j + 1 == cap ? 0 : j + 1) {
        uint32_t home = cr_home(c, sh->crec[j] >> shift, cap);
        /* The record at j may fill the hole when its home is not in (hole, j]. */
        if ((j + cap - home) % cap >= (j + cap - hole) % cap) {
            sh->crec[hole] = sh->crec[j];
            sh->crec[j] = 0;
            hole = j;
        }
    }
}

/* Whether E's disk item holds every page of its block. */
static int ent_whole_on_disk(struct cache *c, const struct centry *e)
{
    uint64_t dv[MAXW];
    ent_get(c, e, DV, dv);
    return bm_count(dv, c->w) == ((uint64_t)e->blen + c->ps - 1) >> c->ps_shift;
}

/* E (no memory slot, no pin, no fill, no write) keeps only its disk item: a record takes its
 * place when the item holds the whole block. 1 when it did (E names no item now; the item is
 * still counted in its directory, now by the record), 0 when E must stay. Lock held. */
static int cr_demote_locked(struct cache *c, struct shard *sh, struct centry *e)
{
    if (!c->cr_tbits || !ent_whole_on_disk(c, e) || cr_room(c, sh) != 0)
        return 0;
    uint64_t r = cr_make(c, e->id, e->ddir, e->dreg, e->doff, (e->flags & F_DHIT) != 0);
    cr_place(c, sh->crec, sh->ccap, cr_tag(c, e->id), r);
    sh->ccount++;
    e->dreg = NIL;
    ent_clear(c, e, DV);
    return 1;
}

/* A new entry in the hash table, or NIL when the pool is empty. Shard lock held. */
uint32_t entry_new(struct cache *c, struct shard *sh, const uint64_t id[2], uint32_t blen)
{
    pthread_mutex_lock(&c->pool_lock);
    if (c->pool_free == NIL)
        pool_grow_locked(c);
    uint32_t i = c->pool_free;
    if (i != NIL)
        c->pool_free = E(c, i)->hnext;
    pthread_mutex_unlock(&c->pool_lock);
    if (i == NIL)
        return NIL;
    struct centry *e = E(c, i);
    memset(e, 0, c->estride);
    e->id[0] = id[0];
    e->id[1] = id[1];
    e->mslot = e->dreg = NIL;
    e->blen = blen;
    if (++sh->count > 2 * (sh->mask + 1))
        shard_grow(c, sh);
    uint32_t *b = &sh->buckets[id[0] & sh->mask];
    e->hnext = *b;
    *b = i;
    return i;
}

/* Frees the entry if nothing holds it any more, or nothing but a whole disk item (a compact
 * record then names the item). Shard lock held. */
void entry_maybe_free(struct cache *c, struct shard *sh, uint32_t i)
{
    struct centry *e = E(c, i);
    if (e->mslot != NIL || e->pins || (e->flags & (F_FILLING | F_DWRITING)))
        return;
    if (e->dreg != NIL && !cr_demote_locked(c, sh, e))
        return;
    for (uint32_t *p = &sh->buckets[e->id[0] & sh->mask]; *p != NIL; p = &E(c, *p)->hnext) {
        if (*p == i) {
            *p = e->hnext;
            break;
        }
    }
    sh->count--;
    pthread_mutex_lock(&c->pool_lock);
    e->hnext = c->pool_free;
    c->pool_free = i;
    pthread_mutex_unlock(&c->pool_lock);
}

static int mem_evict(void *arg, uint32_t slot, uint32_t owner, uint64_t *fp);

/* ---- blocks fetched ahead ---- */

/* A block fetched ahead is kept from eviction until it is read, but not for ever: a reader that
 * went away must not hold memory. The clock counts pages of memory slots allocated, in units
 * of 1/8 of the tier, and a stamp younger than 8 units (the whole tier turned over once) protects.
 */
static uint8_t ahead_now(struct cache *c)
{
    return (uint8_t)((__atomic_load_n(&c->mtick, __ATOMIC_RELAXED) >> c->tick_shift) & 15);
}

void ahead_set_locked(struct cache *c, struct centry *e)
{
    e->flags = (uint8_t)((e->flags & 0x0f) | F_AHEAD | (ahead_now(c) << 4));
}

static int ahead_protected_locked(struct cache *c, const struct centry *e)
{
    return (e->flags & F_AHEAD) && ((ahead_now(c) - (e->flags >> 4)) & 15) < 8;
}

/* The 4 KiB pages a memory run for a block of BLEN bytes takes (its size class). */
static uint32_t mem_run_pages(uint32_t blen)
{
    return s3fifo_run_pages(
        (uint32_t)(((uint64_t)blen + (1u << S3FIFO_PAGE_SHIFT) - 1) >> S3FIFO_PAGE_SHIFT));
}

/* A memory run for entry I, a block of BLEN bytes (s3fifo_alloc on the memory tier, ticking the
 * clock above by its pages). */
static uint32_t mem_alloc(struct cache *c, const uint64_t id[2], uint32_t i, uint32_t blen, int hot)
{
    int evicted;
    uint32_t np = mem_run_pages(blen);
    __atomic_fetch_add(&c->mtick, np, __ATOMIC_RELAXED);
    uint32_t ms = s3fifo_alloc(c->mq, id[0], i, np, hot, mem_evict, c, &evicted);
    arena_kick(c->ar);
    if (evicted)
        STAT(c, evictions_mem, (uint64_t)evicted);
    return ms;
}

/* ---- fills ---- */

/* Starts a fill of entry I by this thread: F_FILLING, a pin, the record F listed. Lock held. */
void fill_begin_locked(struct shard *sh, struct centry *e, uint32_t i, struct fill *f)
{
    *f = (struct fill){.next = sh->fills, .entry = i, .from = -1};
    sh->fills = f;
    e->flags |= F_FILLING;
    e->pins++;
}

/* Ends the fill F of E: its waiters get ERR, FROM (the worst enum blk_from of its fetches, -1
 * for none) and, when the bytes are in no memory slot, BUF (the pages GOT); returns once the last
 * waiter has left. The caller still holds its pin. Lock held. */
void fill_end_locked(struct shard *sh, struct centry *e, struct fill *f, int err, int from,
                     const uint8_t *buf, const uint64_t *got)
{
    struct fill **pp = &sh->fills;
    while (*pp != f)
        pp = &(*pp)->next;
    *pp = f->next;
    f->done = 1;
    f->err = err;
    f->from = from;
    f->buf = buf;
    f->got = got;
    e->flags &= (uint8_t)~F_FILLING;
    pthread_cond_broadcast(&sh->cond);
    while (f->waiters > 0)
        pthread_cond_wait(&sh->cond, &sh->lock);
}

/* The record of the fill running on entry I (F_FILLING is set). Lock held. */
static struct fill *fill_find(struct shard *sh, uint32_t i)
{
    struct fill *f = sh->fills;
    while (f->entry != i)
        f = f->next;
    return f;
}

/* ---- eviction callbacks (run under an s3fifo lock; only trylock shards) ---- */

static int mem_evict(void *arg, uint32_t slot, uint32_t owner, uint64_t *fp)
{
    struct cache *c = arg;
    struct centry *e = E(c, owner);
    struct shard *sh = shard_of(c, e->id);
    if (pthread_mutex_trylock(&sh->lock) != 0)
        return S3FIFO_BUSY;
    if (e->mslot != slot || e->pins || (e->flags & F_FILLING)) {
        pthread_mutex_unlock(&sh->lock);
        return S3FIFO_BUSY;
    }
    if (ahead_protected_locked(c, e)) {
        /* Fetched ahead for a reader who has not come yet: kept (see ahead_now). */
        pthread_mutex_unlock(&sh->lock);
        return S3FIFO_KEEP;
    }
    e->flags &= (uint8_t)~F_AHEAD;
    uint64_t mv[MAXW], dv[MAXW], dem[MAXW];
    ent_get(c, e, MV, mv);
    ent_get(c, e, DV, dv);
    int any = 0;
    for (uint32_t i = 0; i < c->w; i++) {
        dem[i] = mv[i] & ~dv[i];
        any |= dem[i] != 0;
    }
    if (any && c->ndirs > 0) {
        STAT(c, demotions, 1);
        queue_write(c, e->id, e->blen, dem, MEM_AT(c, slot), NIL, NULL);
    }
    *fp = e->id[0];
    e->mslot = NIL;
    ent_clear(c, e, MV);
    entry_maybe_free(c, sh, owner);
    pthread_mutex_unlock(&sh->lock);
    return S3FIFO_EVICTED;
}

/* Bytes the disk item of E takes (its valid bitmap is the entry's DV). Lock held. */
static uint64_t item_bytes_locked(struct cache *c, const struct centry *e)
{
    uint64_t dv[MAXW];
    ent_get(c, e, DV, dv);
    uint32_t nv = (uint32_t)bm_count(dv, c->w);
    return citem_len(citem_hdr_len(c->np, nv), citem_data_len(e->blen, c->ps, c->np, dv));
}

/* E names the disk item it has (DV set): counted in its directory. Lock held. */
void disk_count_locked(struct cache *c, const struct centry *e, int sign)
{
    struct cdir *dir = &c->dirs[e->ddir];
    uint64_t n = item_bytes_locked(c, e);
    __atomic_fetch_add(&dir->items, (uint64_t)(int64_t)sign, __ATOMIC_RELAXED);
    __atomic_fetch_add(&dir->bytes, sign > 0 ? n : (uint64_t) - (int64_t)n, __ATOMIC_RELAXED);
}

/* E forgets its disk item (its region is reused, or a page of it failed its CRC: the item's
 * layout follows its valid bitmap, so it goes whole). Lock held. */
void disk_drop_locked(struct cache *c, struct centry *e)
{
    if (e->dreg == NIL)
        return;
    disk_count_locked(c, e, -1);
    e->dreg = NIL;
    ent_clear(c, e, DV);
}

/* The region log reuses the region holding the item (REGION, OFF) of block ID (disk.c): the
 * entry forgets it if it still names it (a block written again since names its newer item).
 * Returns 1 to keep it (read since written: disk.c writes it again, then calls disk_moved). */
static int disk_forget(void *arg, uint32_t region, uint32_t off, const struct citem_hdr *h)
{
    struct cdir *dir = arg;
    struct cache *c = dir->c;
    struct shard *sh = shard_of(c, h->id);
    int keep = 0, found = 0;
    pthread_mutex_lock(&sh->lock);
    uint32_t i = lookup(c, sh, h->id);
    if (i != NIL) {
        struct centry *e = E(c, i);
        if (e->dreg == region && e->doff == off && &c->dirs[e->ddir] == dir) {
            found = 1;
            keep = (e->flags & F_DHIT) != 0;
            e->flags &= (uint8_t)~F_DHIT;
            disk_drop_locked(c, e);
            entry_maybe_free(c, sh, i);
        }
    }
    if (!found && c->cr_tbits) {
        /* A compact record names it: its place tells it from another block's of the same tag. */
        int d = (int)(dir - c->dirs);
        uint64_t where = cr_make(c, h->id, d, region, off, 0) & ((1ull << cr_lbits(c)) - 1);
        uint32_t k = cr_find(c, sh, cr_tag(c, h->id), where, 0);
        if (k != NIL) {
            found = 1;
            keep = cr_dhit(c, sh->crec[k]);
            cr_remove(c, sh, k);
            __atomic_fetch_sub(&dir->items, 1, __ATOMIC_RELAXED);
            __atomic_fetch_sub(&dir->bytes, (uint64_t)h->item_len, __ATOMIC_RELAXED);
        }
    }
    if (found && !keep)
        STAT(c, evictions_disk, 1);
    pthread_mutex_unlock(&sh->lock);
    return keep;
}

/* A kept item H is at (REGION, OFF) now: the entry names it again, unless the block has a newer
 * item (or one being written) meanwhile. */
static void disk_moved(void *arg, const struct citem_hdr *h, uint32_t region, uint32_t off)
{
    struct cdir *dir = arg;
    struct cache *c = dir->c;
    struct shard *sh = shard_of(c, h->id);
    pthread_mutex_lock(&sh->lock);
    uint32_t i = lookup(c, sh, h->id);
    if (i == NIL)
        i = entry_new(c, sh, h->id, h->blen);
    if (i != NIL) {
        struct centry *e = E(c, i);
        if (e->dreg == NIL && !(e->flags & F_DWRITING) && e->blen == h->blen) {
            e->dreg = region;
            e->doff = off;
            e->ddir = (uint8_t)(dir - c->dirs);
            ent_put(c, e, DV, h->valid);
            disk_count_locked(c, e, 1);
        }
        entry_maybe_free(c, sh, i);
    }
    pthread_mutex_unlock(&sh->lock);
}

/* ---- a failing disk ---- */

/* DIR may be read and written: it has not failed in the last DIR_BACKOFF_NS. */
int dir_up(const struct cdir *dir)
{
    return __atomic_load_n(&dir->down_until, __ATOMIC_RELAXED) <= now_ns();
}

/* A read or write (OP) of DIR's cache file failed with RC: the directory rests, and the bout's
 * first failure says so, once (a failing device must not fill the log). */
void dir_failed(struct cache *c, struct cdir *dir, const char *op, int rc)
{
    STAT(c, disk_errors, 1);
    uint64_t now = now_ns();
    __atomic_store_n(&dir->down_until, now + DIR_BACKOFF_NS, __ATOMIC_RELAXED);
    pthread_mutex_lock(&dir->state_lock);
    if (!dir->failing) {
        __atomic_store_n(&dir->failing, 1, __ATOMIC_RELAXED);
        /* A disk that fails and recovers over and over (full but for the room it already
           has) is logged once a minute. */
        if (dir->warned_at == 0 || now - dir->warned_at >= DIR_WARN_NS) {
            dir->warned = 1;
            dir->warned_at = now;
            log_warn("disk cache %s failed on '%s': %s; reads go on from memory and the origin, "
                     "the disk is tried again every %llu s",
                     op, cdisk_path(dir->d), strerror(-rc),
                     (unsigned long long)(DIR_BACKOFF_NS / 1000000000ull));
        }
    }
    pthread_mutex_unlock(&dir->state_lock);
}

/* A write to DIR succeeded: a bout of failures ends (a read that works does not end it: a full
 * disk reads well). */
void dir_worked(struct cdir *dir)
{
    if (!__atomic_load_n(&dir->failing, __ATOMIC_RELAXED))
        return;
    pthread_mutex_lock(&dir->state_lock);
    if (dir->failing) {
        __atomic_store_n(&dir->failing, 0, __ATOMIC_RELAXED);
        if (dir->warned)
            log_info("disk cache '%s' works again", cdisk_path(dir->d));
        dir->warned = 0;
    }
    pthread_mutex_unlock(&dir->state_lock);
}

/* ---- a compact record back to an entry ---- */

/* Block ID (BLEN long) has no entry: when a compact record of its tag names an item that is not
 * another block's (the item header says whose: cdisk_item_is; a damaged one is taken, for the
 * page CRCs to reject), an entry takes the record's place, naming the item, and is returned;
 * NIL when no record does (a record of another block with the same tag is left alone: a miss,
 * never another block's bytes). The lock is dropped for each header read, the
 * item's region held; an entry another thread made for the block meanwhile is returned
 * instead. Lock held. */
static uint32_t cr_take_locked(struct cache *c, struct shard *sh, const uint64_t id[2],
                               uint32_t blen)
{
    if (!c->cr_tbits)
        return NIL;
    uint64_t tag = cr_tag(c, id);
    unsigned skip = 0;
    for (int tries = 0; tries < 16; tries++) {
        uint32_t i = lookup(c, sh, id);
        if (i != NIL)
            return i;
        uint32_t k = cr_find(c, sh, tag, ~0ull, skip);
        if (k == NIL)
            return NIL;
        int d;
        uint32_t reg, off;
        uint64_t r = sh->crec[k], where = cr_where(c, r, &d, &reg, &off);
        struct cdir *dir = &c->dirs[d];
        if (!dir_up(dir))
            return NIL; /* its directory rests: the source serves meanwhile */
        cdisk_hold(dir->d, reg);
        pthread_mutex_unlock(&sh->lock);
        /* The whole item when it is small (one read from the device; the fill's page read then
           finds it in the page cache), else its header. The fill takes the scratch block after. */
        uint32_t np = (blen + c->ps - 1) >> c->ps_shift;
        uint64_t ilen = citem_len(citem_hdr_len(c->np, np), blen);
        void *tmp = ilen <= CR_READ_WHOLE && ilen <= c->bs ? scratch_get(c->bs) : NULL;
        uint8_t hdr[CITEM_FIXED];
        int is = cdisk_item_is(dir->d, reg, off, id, blen, tmp ? tmp : hdr,
                               tmp ? (size_t)ilen : sizeof(hdr));
        if (is < 0 && is != -ENODATA)
            dir_failed(c, dir, "read", is);
        pthread_mutex_lock(&sh->lock);
        cdisk_unhold(dir->d, reg); /* after the lock: the record cannot outlive the region */
        if ((k = cr_find(c, sh, tag, where, 0)) == NIL)
            continue; /* gone meanwhile (its region reused, or taken by another reader) */
        if (is == 0) {
            skip++; /* another block's item: the next record of the tag */
            continue;
        }
        /* Ours, or damaged, or unreadable: the entry names it, and the fill's page reads (their
           CRCs bound to the identity) drop it if it is bad, counted, as any damaged item. */
        if ((i = lookup(c, sh, id)) != NIL || (i = entry_new(c, sh, id, blen)) == NIL)
            return i;
        cr_remove(c, sh, k);
        struct centry *e = E(c, i);
        uint64_t all[MAXW];
        bm_range(all, c->w, 0, (blen - 1) >> c->ps_shift);
        e->dreg = reg;
        e->doff = off;
        e->ddir = (uint8_t)d;
        ent_put(c, e, DV, all);
        if (cr_dhit(c, r))
            e->flags |= F_DHIT;
        return i; /* the item stays counted in its directory, now by the entry */
    }
    return NIL;
}

/* ---- the source ---- */

/* One source request: [off, off+len) from the start of block B->index (running on into the
 * following blocks if need be) into BUF. Fetches from the origin count in root_read_source.
 * FLAGS: BLKREQ_*. *FROM is set where the bytes came from. */
static ssize_t source_fetch(struct cache *c, const struct blk *b, uint32_t off, uint32_t len,
                            void *buf, unsigned flags, enum blk_from *from)
{
    struct blkreq rq = {b->key, b->etag, b->obj_size, b->index, flags};
    STAT(c, source_fetches, 1);
    *from = BLK_FROM_ORIGIN;
    ssize_t n = blksrc_fetch(c->src, &rq, off, len, buf, from);
    if (n < 0) {
        STAT(c, source_errors, 1);
        return n;
    }
    if ((size_t)n > len)
        return -EIO; /* a source that overruns the buffer is broken; never trust its bytes */
    if (*from == BLK_FROM_ORIGIN) {
        STAT(c, root_read_source, 1);
        STAT(c, root_read_source_bytes, n);
    }
    return n;
}

/* ---- the read path ---- */

/* The class of a fill that got its bytes from FROM (an enum blk_from; -1: fetched nothing). */
static int from_class(int from)
{
    if (from < 0 || from == BLK_FROM_PEER)
        return BLK_HIT;
    return from == BLK_FROM_FALLBACK ? BLK_FALLBACK : BLK_MISS;
}

/* Fills the pages in WANT of entry I (F_FILLING set and pinned by the caller) into BUF: from disk
 * where valid (verified), else from the source (not at all under CACHE_LOCAL: -ENOENT). Sets GOT
 * to the pages now in BUF and FETCHED to those that came from the source, and *FROM to the worst
 * origin of the fetched ones (left alone when nothing was fetched). Returns 0 or the source's
 * -errno. No lock held. */
static int fill_pages(struct cache *c, const struct blk *b, const uint64_t *want,
                      const uint64_t *ondisk, const struct dloc *dl, uint8_t *buf, uint64_t *got,
                      uint64_t *fetched, uint64_t *bad, unsigned flags, int *from)
{
    uint32_t w = c->w;
    memset(got, 0, 8ull * w);
    memset(fetched, 0, 8ull * w);
    memset(bad, 0, 8ull * w);
    /* A resting directory is not read: its pages come from the source, and stay valid on disk
       for when it works again. */
    if (ondisk && bm_any(ondisk, w) && dir_up(&c->dirs[dl->dir])) {
        struct cdir *dir = &c->dirs[dl->dir];
        int rc =
            cdisk_read_pages(dir->d, dl->reg, dl->off, b->id, b->blen, dl->valid, ondisk, buf, bad);
        if (rc < 0) {
            dir_failed(c, dir, "read", rc);
        } else if (bm_any(bad, w)) {
            STAT(c, corrupt_dropped, bm_count(bad, w));
            log_warn("disk cache '%s' region %u offset %u: %llu page(s) missing or failed their "
                     "CRC; refetching",
                     cdisk_path(dir->d), dl->reg, dl->off, (unsigned long long)bm_count(bad, w));
        }
        for (uint32_t i = 0; i < w; i++)
            got[i] = ondisk[i] & ~bad[i];
    }
    /* The rest from the source, one request per contiguous run of missing pages. */
    uint32_t have = (b->blen + c->ps - 1) >> c->ps_shift;
    for (uint32_t p = 0; p < have;) {
        if (!bm_test(want, p) || bm_test(got, p)) {
            p++;
            continue;
        }
        uint32_t q = p;
        while (q + 1 < have && bm_test(want, q + 1) && !bm_test(got, q + 1))
            q++;
        uint32_t off = p << c->ps_shift;
        uint32_t end = (q + 1) << c->ps_shift;
        if (end > b->blen)
            end = b->blen;
        if (flags & CACHE_LOCAL)
            return -ENOENT;
        enum blk_from bf;
        ssize_t n = source_fetch(c, b, off, end - off, buf + off, src_flags(flags), &bf);
        if (n < 0)
            return (int)n;
        *from = worst(*from, (int)bf);
        if ((uint32_t)n != end - off)
            return -EIO; /* short inside the object: the source broke its contract */
        for (uint32_t x = p; x <= q; x++) {
            bm_set(got, x);
            bm_set(fetched, x);
        }
        p = q + 1;
    }
    return 0;
}

/* Bytes of the pages in M of a block BLEN long (the last page may be short). */
static uint64_t pages_bytes(struct cache *c, uint32_t blen, const uint64_t *m)
{
    uint64_t n = 0;
    for (uint32_t p = 0; p < c->np; p++) {
        if (!bm_test(m, p))
            continue;
        uint64_t o = (uint64_t)p * c->ps;
        if (o < blen)
            n += blen - o < c->ps ? blen - o : c->ps;
    }
    return n;
}

/* Copies the pages in PAGES from block buffer SRC to DST (both at block offsets). */
void copy_pages(struct cache *c, uint32_t blen, const uint64_t *pages, uint8_t *dst,
                const uint8_t *src)
{
    for (uint32_t p = 0; p < c->np; p++) {
        if (!bm_test(pages, p))
            continue;
        uint64_t o = (uint64_t)p * c->ps;
        if (o < blen)
            memcpy(dst + o, src + o, blen - o < c->ps ? blen - o : c->ps);
    }
}

/* Puts the pages in PAGES of block B from SRC (the fill's scratch block) into memory slot SLOT
 * with arena_fill, each run of consecutive pages in one call. */
static void stage_out(struct cache *c, const struct blk *b, const uint64_t *pages, uint8_t *slot,
                      const uint8_t *src)
{
    for (uint32_t p = 0; p < c->np;) {
        if (!bm_test(pages, p)) {
            p++;
            continue;
        }
        uint32_t q = p;
        while (q + 1 < c->np && bm_test(pages, q + 1))
            q++;
        uint64_t s = (uint64_t)p * c->ps, e = ((uint64_t)q + 1) * c->ps;
        if (e > b->blen)
            e = b->blen;
        if (s < e)
            arena_fill(c->ar, slot + s, src + s, (size_t)(e - s));
        p = q + 1;
    }
}

/* A read's hit on the memory slot of E: the first read of a block fetched ahead is the access it
 * was fetched for, not a re-access. Lock held. */
static void read_touch_locked(struct cache *c, struct centry *e)
{
    if (e->flags & F_AHEAD)
        e->flags &= (uint8_t)~F_AHEAD;
    else
        s3fifo_touch(c->mq, e->mslot);
}

/* Reads [boff, boff+len) of block B into DST through the cache (MODE_READ), or makes the whole
 * block present (MODE_PREFETCH, MODE_FILL: see the enum). FLAGS: CACHE_PEER, CACHE_LOCAL (MODE_READ
 * only). *FETCHED_BYTES (may be NULL) gets the bytes this call fetched from the source. Returns
 * BLK_* (how the block was served) or -errno. */
int block_io(struct cache *c, const struct blk *b, uint32_t boff, uint32_t len, void *dst, int mode,
             unsigned flags, uint64_t *fetched_bytes)
{
    uint32_t w = c->w;
    uint64_t need[MAXW], want[MAXW], ondisk[MAXW], got[MAXW], fetched[MAXW], bad[MAXW];
    uint64_t inmem[MAXW], indisk[MAXW];
    int from = -1; /* the worst origin of the bytes of the fills this call joined */
    /* A fill stores on the disk tier when there is one: warm-up data must survive a restart,
       and a data set larger than memory must not churn the memory tier. */
    int todisk = mode == MODE_FILL && c->ndirs > 0;
    if (fetched_bytes)
        *fetched_bytes = 0;
    if (mode != MODE_READ) {
        boff = 0;
        len = b->blen;
    }
    bm_range(need, w, boff >> c->ps_shift, (boff + len - 1) >> c->ps_shift);
    struct shard *sh = shard_of(c, b->id);
    pthread_mutex_lock(&sh->lock);
    uint32_t i = lookup(c, sh, b->id);
    if (i == NIL)
        i = cr_take_locked(c, sh, b->id, b->blen);
    if (i == NIL && (i = entry_new(c, sh, b->id, b->blen)) == NIL) {
        pthread_mutex_unlock(&sh->lock);
        return (flags & CACHE_LOCAL) ? -ENOENT : BLK_UNCACHED;
    }
    struct centry *e = E(c, i);
    for (;;) {
        ent_get(c, e, MV, inmem);
        ent_get(c, e, DV, indisk);
        if (todisk && e->dreg != NIL && bm_covers(indisk, need, w)) {
            e->flags |= F_DHIT; /* wanted again: kept when its region is reused */
            entry_maybe_free(c, sh, i);
            pthread_mutex_unlock(&sh->lock);
            return from_class(from);
        }
        if (e->mslot != NIL && bm_covers(inmem, need, w)) {
            if (mode == MODE_READ)
                read_touch_locked(c, e);
            else if (mode == MODE_FILL)
                s3fifo_touch(c->mq, e->mslot);
            if (todisk) {
                /* In memory, not (wholly) on disk: write it from the arena, pinned. Every page
                   is valid, so no filler writes to the slot meanwhile. */
                const uint8_t *src = MEM_AT(c, e->mslot);
                e->pins++;
                pthread_mutex_unlock(&sh->lock);
                (void)disk_write_block(c, b->id, b->blen, src, inmem, NULL, 1);
                pthread_mutex_lock(&sh->lock);
                e->pins--;
                entry_maybe_free(c, sh, i);
                pthread_mutex_unlock(&sh->lock);
                return from_class(from); /* on disk now, or at least in memory */
            }
            if (mode != MODE_READ) {
                pthread_mutex_unlock(&sh->lock);
                return BLK_HIT;
            }
            const uint8_t *src = MEM_AT(c, e->mslot) + boff;
            if (len <= COPY_UNDER_LOCK) {
                memcpy(dst, src, len);
                pthread_mutex_unlock(&sh->lock);
            } else {
                e->pins++;
                pthread_mutex_unlock(&sh->lock);
                memcpy(dst, src, len);
                pthread_mutex_lock(&sh->lock);
                e->pins--;
                entry_maybe_free(c, sh, i);
                pthread_mutex_unlock(&sh->lock);
            }
            return from_class(from);
        }
        if (!(e->flags & F_FILLING))
            break;
        if (mode == MODE_PREFETCH) {
            pthread_mutex_unlock(&sh->lock);
            return BLK_HIT;
        }
        if (flags & CACHE_LOCAL) {
            pthread_mutex_unlock(&sh->lock); /* being filled: not held yet, and never waited for */
            return -ENOENT;
        }
        /* Someone is filling this block: wait for its pages (or its error). The filler keeps
           the entry pinned until every waiter has left. */
        struct fill *f = fill_find(sh, i);
        STAT(c, singleflight_waits, 1);
        f->waiters++;
        while (!f->done)
            pthread_cond_wait(&sh->cond, &sh->lock);
        from = worst(from, f->from);
        int ok = 0, ferr = f->err;
        uint8_t *tmp = NULL;
        if (ferr == 0 && f->buf && bm_covers(f->got, need, w)) {
            if (mode == MODE_READ) {
                memcpy(dst, f->buf + boff, len);
                ok = 1;
            } else if (todisk && (tmp = scratch_get(c->bs)) != NULL) {
                /* A fill for the disk tier writes the lent block itself (the filler's own write
                   is queued, and a fill must not return before the block is on disk). */
                memcpy(tmp, f->buf, b->blen);
                ok = 1;
            }
        }
        if (--f->waiters == 0)
            pthread_cond_broadcast(&sh->cond);
        if (ok && tmp) {
            e->pins++;
            pthread_mutex_unlock(&sh->lock);
            int wr = disk_write_block(c, b->id, b->blen, tmp, need, NULL, 1);
            pthread_mutex_lock(&sh->lock);
            e->pins--;
            if (wr != 0)
                continue; /* not stored: fill it ourselves (memory as the fallback) */
        }
        if (ok) {
            entry_maybe_free(c, sh, i);
            pthread_mutex_unlock(&sh->lock);
            return from_class(from);
        }
        if (ferr != 0 && !ent_covers(c, e, MV, need)) {
            entry_maybe_free(c, sh, i);
            pthread_mutex_unlock(&sh->lock);
            return ferr;
        }
    }

    if ((flags & CACHE_LOCAL) && !todisk) {
        /* Only what memory and disk hold: nothing to fill from the source. */
        for (uint32_t k = 0; k < w; k++) {
            if (need[k] & ~inmem[k] & ~indisk[k]) {
                entry_maybe_free(c, sh, i);
                pthread_mutex_unlock(&sh->lock);
                return -ENOENT;
            }
        }
    }

    /* This thread fills the block. */
    struct fill fr;
    fill_begin_locked(sh, e, i, &fr);
    uint32_t mslot = e->mslot;
    struct dloc dl = {e->dreg, e->doff, e->ddir, {0}};
    if (todisk) {
        /* The pages the disk lacks; those memory holds are copied, the rest fetched. */
        for (uint32_t k = 0; k < w; k++) {
            want[k] = need[k] & ~indisk[k];
            ondisk[k] = 0;
        }
    } else {
        for (uint32_t k = 0; k < w; k++) {
            want[k] = need[k] & ~inmem[k];
            ondisk[k] = want[k] & indisk[k];
        }
    }
    /* The region of the disk item is held while we read it (not reused under us). */
    int held = !todisk && dl.reg != NIL && bm_any(ondisk, w);
    if (held) {
        ent_get(c, e, DV, dl.valid);
        cdisk_hold(c->dirs[dl.dir].d, dl.reg);
    }
    pthread_mutex_unlock(&sh->lock);

    if (!todisk && mslot == NIL && c->mq) {
        mslot = mem_alloc(c, b->id, i, b->blen, mode == MODE_FILL);
        if (mslot != NIL) {
            pthread_mutex_lock(&sh->lock);
            e->mslot = mslot;
            ent_clear(c, e, MV);
            pthread_mutex_unlock(&sh->lock);
        }
    }
    /* The fill goes into the memory slot (into_mem), else a thread's scratch block. A fill
       that no tier can take fetches nothing. */
    int into_mem = !todisk && mslot != NIL;
    uint8_t *buf = into_mem ? MEM_AT(c, mslot) : NULL;
    /* A memfd-backed arena's empty slot is filled through the thread's scratch block and
       arena_fill (pwrite), its page CRCs computed there for the disk writer: user space does not
       touch a fresh slot's pages (arena.c). */
    int staged = into_mem && arena_is_file(c->ar) && !bm_any(inmem, w);
    if (staged && (buf = scratch_get(c->bs)) == NULL) {
        buf = MEM_AT(c, mslot);
        staged = 0;
    }
    int err = 0, ffrom = -1;
    memset(got, 0, sizeof(got));
    memset(fetched, 0, sizeof(fetched));
    memset(bad, 0, sizeof(bad));
    if (!into_mem && mode == MODE_FILL && !todisk)
        err = -ENOSPC;
    else if (!into_mem && (buf = scratch_get(c->bs)) == NULL)
        err = -ENOMEM;
    if (err == 0 && todisk) {
        uint64_t frommem[MAXW], rest[MAXW];
        for (uint32_t k = 0; k < w; k++) {
            frommem[k] = want[k] & inmem[k];
            rest[k] = want[k] & ~inmem[k];
        }
        /* F_FILLING keeps the memory slot ours to read: mem_evict skips filling entries. */
        if (bm_any(frommem, w))
            copy_pages(c, b->blen, frommem, buf, MEM_AT(c, mslot));
        err = fill_pages(c, b, rest, NULL, NULL, buf, got, fetched, bad, flags, &ffrom);
        for (uint32_t k = 0; k < w; k++)
            got[k] |= frommem[k];
        if (err == 0 && disk_write_block(c, b->id, b->blen, buf, want, NULL, 1) != 0) {
            /* The disk tier cannot take it (full of pinned slots, failing): memory then. */
            uint32_t ms = mslot;
            if (ms == NIL && c->mq)
                ms = mem_alloc(c, b->id, i, b->blen, 1);
            if (ms == NIL) {
                err = -ENOSPC;
            } else {
                copy_pages(c, b->blen, got, MEM_AT(c, ms), buf);
                pthread_mutex_lock(&sh->lock);
                if (mslot == NIL) {
                    e->mslot = ms;
                    ent_clear(c, e, MV);
                }
                uint64_t mv[MAXW];
                ent_get(c, e, MV, mv);
                for (uint32_t k = 0; k < w; k++)
                    mv[k] |= got[k];
                ent_put(c, e, MV, mv);
                pthread_mutex_unlock(&sh->lock);
            }
        }
    } else if (err == 0) {
        err = fill_pages(c, b, want, held ? ondisk : NULL, &dl, buf, got, fetched, bad, flags,
                         &ffrom);
    }
    if (held)
        cdisk_unhold(c->dirs[dl.dir].d, dl.reg);
    if (fetched_bytes)
        *fetched_bytes = pages_bytes(c, b->blen, fetched);
    uint64_t *crc = NULL;
    if (staged && err == 0) {
        stage_out(c, b, got, MEM_AT(c, mslot), buf);
        if (c->ndirs > 0 && (crc = malloc(8ull * c->np)) != NULL)
            for (uint32_t p = 0; p < c->np; p++)
                if (bm_test(got, p)) {
                    uint64_t o = (uint64_t)p * c->ps;
                    crc[p] = cslot_page_crc(b->id, p, buf + o,
                                            b->blen - o < c->ps ? b->blen - o : c->ps);
                }
    }

    pthread_mutex_lock(&sh->lock);
    if (into_mem) {
        uint64_t mv[MAXW];
        ent_get(c, e, MV, mv);
        for (uint32_t k = 0; k < w; k++)
            mv[k] |= got[k];
        ent_put(c, e, MV, mv);
        if (mode == MODE_PREFETCH && err == 0)
            ahead_set_locked(c, e);
    }
    /* A bad page drops the whole item; what the fill has of the block is written anew. A read
       from the item marks it for keeping when its region is reused. */
    int dropped = 0;
    if (held && !bm_any(bad, w) && e->dreg == dl.reg && e->doff == dl.off && e->ddir == dl.dir)
        e->flags |= F_DHIT;
    if (bm_any(bad, w) && e->dreg == dl.reg && e->doff == dl.off && e->ddir == dl.dir) {
        disk_drop_locked(c, e);
        dropped = 1;
    }
    /* Waiters get the source's error; a fill that found no room, or that could not fetch
       (CACHE_LOCAL: a disk page failed its CRC), is not theirs to fail: they fill for
       themselves. They copy from a buffer of ours only when the bytes are in no memory slot. */
    fill_end_locked(sh, e, &fr, err == -ENOSPC || err == -ENOENT ? 0 : err, ffrom,
                    (err == 0 && !into_mem) ? buf : NULL, got);
    pthread_mutex_unlock(&sh->lock);

    int rc;
    if (!todisk && err == 0 && bm_any(dropped ? got : fetched, w))
        queue_write(c, b->id, b->blen, dropped ? got : fetched, buf, into_mem ? i : NIL, crc);
    else
        free(crc);
    if (err == 0) {
        if (mode == MODE_READ)
            memcpy(dst, buf + boff, len);
        rc = from_class(worst(from, ffrom));
    } else {
        rc = err;
    }
    pthread_mutex_lock(&sh->lock);
    e->pins--;
    entry_maybe_free(c, sh, i);
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

int check_obj(const char *key, const char *etag)
{
    if (!key || !etag || strnlen(key, CACHE_MAX_KEY + 1) > CACHE_MAX_KEY ||
        strnlen(etag, CACHE_MAX_ETAG + 1) > CACHE_MAX_ETAG)
        return -EINVAL;
    return 0;
}

/* Counts one read of LEN bytes, all of whose blocks were served as CLS (BLK_HIT, BLK_MISS or
 * BLK_FALLBACK: hit, miss or direct). */
static void count_read(struct cache *c, int cls, uint64_t len)
{
    STAT(c, read, 1);
    STAT(c, read_bytes, len);
    if (cls == BLK_HIT)
        STAT(c, read_hit, 1);
    else if (cls == BLK_MISS)
        STAT(c, read_miss, 1);
    else
        STAT(c, direct_read, 1);
}

static void count_block(struct cache *c, int cls, uint64_t n)
{
    if (cls == BLK_HIT)
        STAT(c, read_hit_bytes, n);
    else if (cls == BLK_MISS)
        STAT(c, read_miss_bytes, n);
    else
        STAT(c, direct_read_bytes, n);
}

ssize_t cache_read_ex(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                      uint64_t off, size_t len, void *buf, unsigned flags, int *missed)
{
    if (missed)
        *missed = 0;
    if (!c || check_obj(key, etag) != 0 || (len && !buf))
        return -EINVAL;
    if (off >= obj_size || len == 0)
        return 0;
    if (len > obj_size - off)
        len = (size_t)(obj_size - off);
    if (len > (size_t)SSIZE_MAX)
        len = (size_t)SSIZE_MAX;
    int mine = !(flags & CACHE_PEER); /* a read of this node's: counted */
    size_t done = 0;
    int cls = BLK_HIT; /* the read's: direct before miss before hit */
    while (done < len) {
        uint64_t pos = off + done;
        struct blk b = {key, etag, obj_size, pos >> c->bs_shift, 0, {0, 0}};
        uint32_t boff = (uint32_t)(pos & (c->bs - 1));
        uint32_t n = c->bs - boff;
        if (n > len - done)
            n = (uint32_t)(len - done);
        b.blen = (uint32_t)cslot_block_len(obj_size, b.index, c->bs);
        cache_block_id(c->ns, key, etag, b.index, b.id);
        int rc = block_io(c, &b, boff, n, (uint8_t *)buf + done, MODE_READ, flags, NULL);
        if (rc == BLK_UNCACHED) {
            /* The index is full of fills in flight: read the source straight into BUF. */
            enum blk_from bf;
            ssize_t r = source_fetch(c, &b, boff, n, (uint8_t *)buf + done, src_flags(flags), &bf);
            if (r >= 0 && (uint32_t)r != n)
                r = -EIO;
            if (r < 0)
                return r;
            rc = BLK_FALLBACK; /* not through the cache: a direct read */
        } else if (rc < 0) {
            return rc;
        }
        if (missed && rc != BLK_HIT)
            *missed = 1;
        if (mine)
            count_block(c, rc, n);
        cls = worst(cls, rc);
        done += n;
    }
    if (mine)
        count_read(c, cls, len);
    return (ssize_t)len;
}

int cache_ref_get(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                  uint64_t off, size_t len, unsigned flags, struct cache_ref *ref)
{
    if (!c || !ref || check_obj(key, etag) != 0)
        return -EINVAL;
    ref->data = NULL;
    ref->len = 0;
    if (!c->mq || off >= obj_size || len == 0)
        return -ENOENT;
    if (len > obj_size - off)
        len = (size_t)(obj_size - off);
    uint64_t index = off >> c->bs_shift;
    uint32_t boff = (uint32_t)(off & (c->bs - 1));
    if (len > c->bs - boff)
        len = c->bs - boff;
    uint64_t id[2], need[MAXW];
    cache_block_id(c->ns, key, etag, index, id);
    bm_range(need, c->w, boff >> c->ps_shift, (uint32_t)((boff + len - 1) >> c->ps_shift));
    struct shard *sh = shard_of(c, id);
    int waited = 0, from = -1;
    pthread_mutex_lock(&sh->lock);
    for (;;) {
        uint32_t i = lookup(c, sh, id);
        struct centry *e = i != NIL ? E(c, i) : NULL;
        if (e && ent_covers(c, e, MV, need)) {
            e->pins++;
            read_touch_locked(c, e);
            ref->data = MEM_AT(c, e->mslot) + boff;
            ref->len = len;
            ref->entry_ = i;
            ref->shard_ = (uint32_t)(sh - c->shards);
            break;
        }
        if (!e || !(e->flags & F_FILLING) || (flags & CACHE_LOCAL)) {
            pthread_mutex_unlock(&sh->lock);
            return -ENOENT;
        }
        /* A fill is under way (a prefetch, mostly): wait for it rather than copy later. */
        struct fill *f = fill_find(sh, i);
        if (!waited)
            STAT(c, singleflight_waits, 1);
        waited = 1;
        f->waiters++;
        while (!f->done)
            pthread_cond_wait(&sh->cond, &sh->lock);
        from = worst(from, f->from);
        if (--f->waiters == 0)
            pthread_cond_broadcast(&sh->cond);
    }
    pthread_mutex_unlock(&sh->lock);
    if (!(flags & CACHE_PEER)) {
        int cls = from_class(from);
        count_block(c, cls, len);
        count_read(c, cls, len);
    }
    return 0;
}

void cache_ref_put(struct cache *c, struct cache_ref *ref)
{
    if (!c || !ref || !ref->data)
        return;
    struct shard *sh = &c->shards[ref->shard_];
    pthread_mutex_lock(&sh->lock);
    E(c, ref->entry_)->pins--;
    entry_maybe_free(c, sh, ref->entry_);
    pthread_mutex_unlock(&sh->lock);
    ref->data = NULL;
    ref->len = 0;
}

int cache_fill(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
               uint64_t index, unsigned flags, uint64_t *fetched)
{
    if (fetched)
        *fetched = 0;
    if (!c || check_obj(key, etag) != 0)
        return -EINVAL;
    struct blk b = {key, etag, obj_size, index, 0, {0, 0}};
    uint64_t blen = cslot_block_len(obj_size, index, c->bs); /* 0 past the end */
    if (blen == 0)
        return -EINVAL;
    b.blen = (uint32_t)blen;
    if (!c->mq && c->ndirs == 0)
        return -ENOSPC;
    cache_block_id(c->ns, key, etag, index, b.id);
    int rc =
        block_io(c, &b, 0, b.blen, NULL, MODE_FILL, flags & (CACHE_PEER | CACHE_RELAY), fetched);
    if (rc == BLK_UNCACHED)
        return -ENOSPC; /* the index is full of fills in flight */
    return rc < 0 ? rc : 0;
}

uint32_t cache_block_size(const struct cache *c)
{
    return c->bs;
}

uint32_t cache_page_size(const struct cache *c)
{
    return c->ps;
}

uint32_t mem_alloc_run(struct cache *c, const uint64_t id[2], uint32_t i, uint32_t blen, int hot)
{
    return mem_alloc(c, id, i, blen, hot);
}

/* Workers take no signals (the daemon's signal handling belongs to its main thread). */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* ---- life cycle ---- */

static int is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

static unsigned log2u(uint64_t v)
{
    return (unsigned)__builtin_ctzll(v);
}

int cache_new(const struct cache_config *cfg, struct blksrc *src, struct cache **out, char *err,
              size_t errlen)
{
    *out = NULL;
    if (errlen)
        err[0] = '\0';
    uint32_t bs = cfg->block_size ? cfg->block_size : (1u << 20);
    uint32_t ps = cfg->page_size ? cfg->page_size : (16u << 10);
    const char *ns = cfg->ns ? cfg->ns : "";
    if (!src || !src->ops || !src->ops->fetch || !src->ops->fetch_range) {
        snprintf(err, errlen, "cache: no block source");
        return -EINVAL;
    }
    if (src->block_size != bs) {
        snprintf(err, errlen, "cache: block size %u differs from its source's (%u)", bs,
                 src->block_size);
        return -EINVAL;
    }
    if (strlen(ns) > CACHE_MAX_NS) {
        snprintf(err, errlen, "cache: name space longer than %d bytes", CACHE_MAX_NS);
        return -EINVAL;
    }
    if (!is_pow2(bs) || bs < CACHE_MIN_BLOCK || bs > CACHE_MAX_BLOCK) {
        snprintf(err, errlen, "cache: block size %u is not a power of two in 64 KiB..64 MiB", bs);
        return -EINVAL;
    }
    if (!is_pow2(ps) || ps < CACHE_MIN_PAGE || ps > bs) {
        snprintf(err, errlen, "cache: page size %u is not a power of two in 4 KiB..block size", ps);
        return -EINVAL;
    }
    struct cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->bs = bs;
    c->ps = ps;
    c->np = bs / ps;
    c->w = CSLOT_WORDS(c->np);
    c->bs_shift = log2u(bs);
    c->ps_shift = log2u(ps);
    c->src = src;
    c->ns = strdup(ns);
    if (!c->ns) {
        free(c);
        return -ENOMEM;
    }
    c->mb = (c->np + 7) / 8;
    c->estride = (offsetof(struct centry, bits) + 2ull * c->mb + 7) & ~7ull;
    c->run_max = RUN_MAX_BYTES / bs ? RUN_MAX_BYTES / bs : 1;
    c->wq_max = WQ_MIN_BYTES > 4ull * bs ? WQ_MIN_BYTES : 4ull * bs;
    c->wbuf_keep = WBUF_KEEP_BYTES / bs > 2 ? (unsigned)(WBUF_KEEP_BYTES / bs) : 2;
    pthread_mutex_init(&c->pool_lock, NULL);
    pthread_mutex_init(&c->job_lock, NULL);
    pthread_mutex_init(&c->wbuf_lock, NULL);
    pthread_cond_init(&c->wq_cond, NULL);
    pthread_cond_init(&c->pq_cond, NULL);
    for (int s = 0; s < NSHARDS; s++) {
        pthread_mutex_init(&c->shards[s].lock, NULL);
        pthread_cond_init(&c->shards[s].cond, NULL);
    }
    int rc = -ENOMEM;

    /* Disk directories first: the most items they can hold bounds the index. */
    uint64_t disk_items = 0;
    if (cfg->disk_dirs && cfg->disk_dirs[0]) {
        char *list = strdup(cfg->disk_dirs), *save = NULL;
        if (!list)
            goto fail;
        for (char *d = strtok_r(list, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            if (c->ndirs == CACHE_MAX_DIRS) {
                log_warn("disk cache: more than %d directories; ignoring '%s'", CACHE_MAX_DIRS, d);
                continue;
            }
            char derr[512];
            struct cdisk *dk;
            int r = cdisk_open(d, cfg->disk_bytes_per_dir, bs, ps, ns, &dk, derr, sizeof(derr));
            if (r != 0) {
                log_warn("%s; the disk tier goes on without it", derr);
                STAT(c, disk_errors, 1);
                continue;
            }
            struct cdir *dir = &c->dirs[c->ndirs];
            dir->c = c;
            dir->d = dk;
            dir->own = (struct cdisk_owner){disk_forget, disk_moved, dir};
            disk_items += cdisk_items_fit(dk, 1);
            c->disk_capacity += cdisk_file_bytes(dk);
            pthread_mutex_init(&dir->state_lock, NULL);
            c->ndirs++;
        }
        free(list);
    }
    /* The fields of the compact records: as many tag bits as the directories' places leave. */
    if (c->ndirs > 0) {
        unsigned db = 0, rb = 0, ob = 0;
        while ((1u << db) < (unsigned)c->ndirs)
            db++;
        for (int d = 0; d < c->ndirs; d++) {
            while ((1ull << rb) < cdisk_nregions(c->dirs[d].d))
                rb++;
            while ((1ull << ob) < cdisk_region_size(c->dirs[d].d) / CITEM_ALIGN)
                ob++;
        }
        if (db + rb + ob + 1 + CR_MIN_TBITS <= 64) {
            c->cr_tbits = 63 - db - rb - ob;
            c->cr_dbits = db;
            c->cr_rbits = rb;
            c->cr_obits = ob;
        }
    }
    /* The memory tier: whole blocks (chunks of the arena), cut into runs of 4 KiB pages. */
    uint32_t cpages = bs >> S3FIFO_PAGE_SHIFT;
    uint64_t mslots = cfg->mem_bytes / bs;
    if (mslots > (1ull << 31) / cpages)
        mslots = (1ull << 31) / cpages;
    uint64_t mpages = mslots * cpages;
    c->tick_shift = 0;
    while ((8ull << (c->tick_shift + 1)) <= mpages) /* a unit: 1/8 of the memory tier, or 1 */
        c->tick_shift++;
    if (mslots) {
        c->arena_len = (size_t)mslots * bs;
        c->mq = s3fifo_new((uint32_t)mslots, cpages);
        if (!c->mq)
            goto fail;
        c->ar = arena_new((size_t)mslots, bs, c->mq, ARENA_TOUCHER);
        if (!c->ar) {
            snprintf(err, errlen, "cache: cannot map %llu bytes of memory tier",
                     (unsigned long long)c->arena_len);
            goto fail;
        }
        c->arena = arena_base(c->ar);
    }

    /* The index: entries as blocks come, up to one for every page of memory (its smallest run)
       and the smallest item of every disk, plus fills in flight. */
    uint64_t ne = mpages + disk_items + POOL_SLACK;
    if (ne >= NIL - CHUNK)
        ne = NIL - CHUNK; /* beyond 4 billion blocks the index refuses more (BLK_UNCACHED) */
    c->maxchunks = (uint32_t)((ne + CHUNK - 1) / CHUNK);
    c->chunks = calloc(c->maxchunks, sizeof(*c->chunks));
    if (!c->chunks)
        goto fail;
    c->pool_free = NIL;
    uint32_t nb = 4; /* per shard, at first; doubled past 2 entries a bucket (shard_grow) */
    for (int s = 0; s < NSHARDS; s++) {
        c->shards[s].buckets = malloc(sizeof(uint32_t) * nb);
        if (!c->shards[s].buckets)
            goto fail;
        memset(c->shards[s].buckets, 0xff, sizeof(uint32_t) * nb);
        c->shards[s].mask = nb - 1;
    }
    c->index_bytes = sizeof(*c) + (uint64_t)c->maxchunks * sizeof(*c->chunks) +
                     (uint64_t)NSHARDS * nb * sizeof(uint32_t) + (c->mq ? s3fifo_bytes(c->mq) : 0);
    for (int d = 0; d < c->ndirs; d++)
        c->index_bytes += cdisk_mem_bytes(c->dirs[d].d);
    c->index_fixed = c->index_bytes;

    /* What earlier runs left on disk. */
    uint64_t t0 = now_ns();
    for (int d = 0; d < c->ndirs; d++) {
        int r = cdisk_scan(c->dirs[d].d, scan_one, &c->dirs[d]);
        if (r != 0) {
            log_warn("disk cache '%s': scan failed: %s", cdisk_path(c->dirs[d].d), strerror(-r));
            STAT(c, disk_errors, 1);
        }
    }
    c->scan_usec = (now_ns() - t0) / 1000;
    if (c->ndirs)
        log_info("disk cache: %llu blocks found in %d director%s in %llu ms",
                 (unsigned long long)c->scan_blocks, c->ndirs, c->ndirs == 1 ? "y" : "ies",
                 (unsigned long long)(c->scan_usec / 1000));

    unsigned npf = cfg->io_threads ? cfg->io_threads : 2;
    unsigned nwr = c->ndirs > 0 ? DISK_WRITERS : 0;
    c->threads = calloc(npf + nwr, sizeof(*c->threads));
    if (!c->threads)
        goto fail;
    for (unsigned t = 0; t < npf + nwr; t++) {
        if (start_thread(&c->threads[t], t < npf ? prefetcher_main : writer_main, c) != 0) {
            snprintf(err, errlen, "cache: cannot start worker threads");
            rc = -EAGAIN;
            goto fail;
        }
        c->nthreads++;
        if (t < npf)
            c->nprefetchers++;
    }
    *out = c;
    return 0;
fail:
    if (rc == -ENOMEM && errlen && !err[0])
        snprintf(err, errlen, "cache: out of memory");
    cache_free(c);
    return rc;
}

/* Writes every memory page that is not on disk yet (its write was dropped, or it is being
 * demoted), synchronously, so that cache_free leaves the disk tier as complete as it can. Called
 * only when no reader is running. */
static void flush_memory(struct cache *c)
{
    if (!c->mq || c->ndirs == 0)
        return;
    for (int s = 0; s < NSHARDS; s++) {
        struct shard *sh = &c->shards[s];
        for (uint32_t b = 0; b <= sh->mask; b++) {
            uint32_t cand[64];
            int n = 0;
            pthread_mutex_lock(&sh->lock);
            for (uint32_t i = sh->buckets[b]; i != NIL && n < 64; i = E(c, i)->hnext)
                cand[n++] = i;
            pthread_mutex_unlock(&sh->lock);
            for (int k = 0; k < n; k++) {
                struct job *j = calloc(1, sizeof(*j) + 8ull * c->w);
                uint8_t *data = j ? wbuf_get(c) : NULL;
                if (!data) {
                    free(j);
                    return;
                }
                pthread_mutex_lock(&sh->lock);
                struct centry *e = E(c, cand[k]);
                int any = 0;
                /* The entry may have gone (or been reused) since it was listed: check. */
                if (e->mslot != NIL && (e->id[0] & sh->mask) == b && shard_of(c, e->id) == sh) {
                    uint64_t mv[MAXW], dv[MAXW];
                    ent_get(c, e, MV, mv);
                    ent_get(c, e, DV, dv);
                    for (uint32_t x = 0; x < c->w; x++) {
                        j->pages[x] = mv[x] & ~dv[x];
                        any |= j->pages[x] != 0;
                    }
                }
                if (any) {
                    j->kind = JOB_WRITE;
                    j->id[0] = e->id[0];
                    j->id[1] = e->id[1];
                    j->blen = e->blen;
                    memcpy(data, MEM_AT(c, e->mslot), e->blen);
                    j->data = data;
                }
                pthread_mutex_unlock(&sh->lock);
                if (any)
                    do_write(c, j);
                else
                    wbuf_put(c, data);
                job_free(c, j);
            }
        }
    }
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    /* Stop: prefetches are dropped (a running one finishes), then the writers finish the queued
       disk writes (so fetched blocks persist), prefetches' included; then nothing queues. */
    pthread_mutex_lock(&c->job_lock);
    c->stopping = 1;
    while (c->pq_head) {
        struct job *j = c->pq_head;
        c->pq_head = j->next;
        job_free(c, j);
    }
    c->pq_tail = NULL;
    c->pq_blocks = 0;
    pthread_cond_broadcast(&c->pq_cond);
    pthread_mutex_unlock(&c->job_lock);
    for (unsigned t = 0; t < c->nprefetchers; t++)
        pthread_join(c->threads[t], NULL);
    pthread_mutex_lock(&c->job_lock);
    c->writers_stop = 1;
    pthread_cond_broadcast(&c->wq_cond);
    pthread_mutex_unlock(&c->job_lock);
    for (unsigned t = c->nprefetchers; t < c->nthreads; t++)
        pthread_join(c->threads[t], NULL);
    free(c->threads);
    if (c->chunks)
        flush_memory(c);
    while (c->wq_head) { /* only if no worker ever started */
        struct job *j = c->wq_head;
        c->wq_head = j->next;
        if (!j->data)
            job_unpin(c, j);
        job_free(c, j);
    }
    while (c->wbuf_free) { /* every thread is gone: no lock */
        void *p = c->wbuf_free;
        memcpy(&c->wbuf_free, p, sizeof(void *));
        free(p);
    }
    for (int d = 0; d < c->ndirs; d++) {
        cdisk_close(c->dirs[d].d);
        pthread_mutex_destroy(&c->dirs[d].state_lock);
    }
    arena_free(c->ar);
    s3fifo_free(c->mq);
    for (int s = 0; s < NSHARDS; s++) {
        free(c->shards[s].buckets);
        free(c->shards[s].crec);
        pthread_mutex_destroy(&c->shards[s].lock);
        pthread_cond_destroy(&c->shards[s].cond);
    }
    for (uint32_t k = 0; c->chunks && k < c->nchunks; k++)
        free(c->chunks[k]);
    free(c->chunks);
    pthread_mutex_destroy(&c->pool_lock);
    free(c->ns);
    pthread_mutex_destroy(&c->job_lock);
    pthread_mutex_destroy(&c->wbuf_lock);
    pthread_cond_destroy(&c->wq_cond);
    pthread_cond_destroy(&c->pq_cond);
    free(c);
}

uint64_t cache_index_bytes_for(const struct cache *c, uint64_t nfull, uint64_t ncompact)
{
    if (!c->cr_tbits) {
        nfull += ncompact;
        ncompact = 0;
    }
    /* Entries: the pool keeps the most it ever held, fills in flight included. */
    uint64_t chunks = (nfull + POOL_SLACK + CHUNK - 1) / CHUNK, nb = 4,
             per = (nfull + NSHARDS - 1) / NSHARDS;
    while (per > 2 * nb) /* as shard_grow doubles them */
        nb *= 2;
    uint64_t n =
        c->index_fixed + chunks * CHUNK * c->estride + (nb - 4) * NSHARDS * sizeof(uint32_t);
    /* Compact records: a shard's table of cap slots grows by a quarter once 3/4 full, so it is
       at most max(CR_MIN_CAP, 5/3 (count + 1)) slots, whatever the shards' shares. */
    if (ncompact > 0)
        n += 8 * ((ncompact + NSHARDS) * 5 / 3 + 1 + (uint64_t)NSHARDS * CR_MIN_CAP);
    return n;
}

void cache_test_tag_bits(struct cache *c, unsigned bits)
{
    if (c->cr_tbits > bits)
        c->cr_tbits = bits;
}

uint64_t cache_disk_items_fit(const struct cache *c, uint64_t data_len)
{
    uint64_t n = 0;
    for (int d = 0; d < c->ndirs; d++)
        n += cdisk_items_fit(c->dirs[d].d, data_len);
    return n;
}

/* Sums one counter over the stripes. */
#define SUM(c, f)                                                                                  \
    ({                                                                                             \
        uint64_t sum_ = 0;                                                                         \
        for (int k_ = 0; k_ < NSTRIPES; k_++)                                                      \
            sum_ += __atomic_load_n(&(c)->n[k_].f, __ATOMIC_RELAXED);                              \
        sum_;                                                                                      \
    })

void cache_get_stats(struct cache *c, struct cache_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->read = SUM(c, read);
    st->read_bytes = SUM(c, read_bytes);
    st->read_hit = SUM(c, read_hit);
    st->read_hit_bytes = SUM(c, read_hit_bytes);
    st->read_miss = SUM(c, read_miss);
    st->read_miss_bytes = SUM(c, read_miss_bytes);
    st->direct_read = SUM(c, direct_read);
    st->direct_read_bytes = SUM(c, direct_read_bytes);
    st->root_read_source = SUM(c, root_read_source);
    st->root_read_source_bytes = SUM(c, root_read_source_bytes);
    st->mem_capacity = c->arena_len;
    st->mem_fill_fd_bytes = c->ar ? arena_fill_bytes(c->ar) : 0;
    st->blocks_mem = c->mq ? s3fifo_items(c->mq) : 0;
    st->mem_used = c->mq ? s3fifo_used(c->mq) << S3FIFO_PAGE_SHIFT : 0;
    st->disk_capacity = c->disk_capacity;
    for (int d = 0; d < c->ndirs; d++) {
        st->blocks_disk += __atomic_load_n(&c->dirs[d].items, __ATOMIC_RELAXED);
        st->disk_used += __atomic_load_n(&c->dirs[d].bytes, __ATOMIC_RELAXED);
    }
    st->index_bytes = __atomic_load_n(&c->index_bytes, __ATOMIC_RELAXED);
    st->evictions_mem = SUM(c, evictions_mem);
    st->evictions_disk = SUM(c, evictions_disk);
    st->demotions = SUM(c, demotions);
    st->disk_errors = SUM(c, disk_errors);
    st->corrupt_dropped = SUM(c, corrupt_dropped);
    st->singleflight_waits = SUM(c, singleflight_waits);
    st->source_fetches = SUM(c, source_fetches);
    st->source_errors = SUM(c, source_errors);
    st->disk_writes = SUM(c, disk_writes);
    st->disk_write_bytes = SUM(c, disk_write_bytes);
    st->disk_writes_dropped = SUM(c, disk_writes_dropped);
    st->prefetch_queued = SUM(c, prefetch_queued);
    st->prefetch_dropped = SUM(c, prefetch_dropped);
    st->scan_blocks = c->scan_blocks;
    st->scan_usec = c->scan_usec;
}

void cache_clear_stats(struct cache *c)
{
    for (int k = 0; k < NSTRIPES; k++) {
        struct counters *n = &c->n[k];
        uint64_t *f[] = {&n->read,
                         &n->read_bytes,
                         &n->read_hit,
                         &n->read_hit_bytes,
                         &n->read_miss,
                         &n->read_miss_bytes,
                         &n->direct_read,
                         &n->direct_read_bytes,
                         &n->root_read_source,
                         &n->root_read_source_bytes};
        for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
            __atomic_store_n(f[i], 0, __ATOMIC_RELAXED);
    }
}
