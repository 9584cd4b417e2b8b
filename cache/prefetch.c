/* cache/prefetch.c - prefetch runs: readahead on its own workers, and cache_fetch_run.
 *
 * Prefetch (readahead) runs on its own workers (io_threads of them: as many source requests in
 * flight as the read path wants), apart from the disk writers (writer.c), so that a slow disk never
 * holds back a stream and a stream never starves the disk. A prefetch job is a run of
 * consecutive blocks; cache_prefetch cuts a range into runs aligned on run_max blocks and queues
 * them (at most PQ_MAX blocks waiting; a full queue drops the request):
 *
 *     cache_prefetch -> pq_head ... pq_tail (job_lock) -> prefetcher_main x io_threads
 *                                                         -> run_blocks (do_prefetch)
 *     cache_fetch_run (a peer serving a span) ----------> run_blocks, READY told of each block
 *
 *     run_blocks:  | blk 0 | blk 1 | blk 2 | blk 3 | blk 4 | ...   (at most RUN_MAX_BLOCKS)
 *     run_claim:     CLAIMED CLAIMED SKIP    CLAIMED SOLO
 *     run_fetch:   [ one request  ]         [ one ]               (a stretch of claimed blocks)
 *     run_publish:   each block as its last byte lands (run_sink_fn); SOLO: block_io after
 *
 * The worker claims each block that nobody holds or fills (F_FILLING, a memory slot: a fill
 * record of its own, so readers of the block wait for the run as for any filler), fetches every
 * stretch of claimed blocks with one source request (the source contract allows a range across
 * blocks), and publishes the blocks one by one. The bytes go into a memory slot by arena_fill
 * (pwrite into the arena's memfd), and each page's CRC is computed then, from the source's
 * buffer, for the disk writer (run_sink_fn): nothing in the process touches a fresh slot's pages
 * (arena.c says why; with an anonymous arena the stretch's slots are mapped first instead,
 * slot_prefault). Blocks it fetched ahead are marked F_AHEAD until a read uses them: that first
 * read is the access they were fetched for, so it does not count as a re-access (a sequential scan
 * stays in S3-FIFO's small FIFO, as it should), and one not read yet is kept once when it comes
 * up for eviction (S3FIFO_KEEP), so that in a small memory tier readahead does not evict the
 * blocks the reader is about to use in favour of those it has passed. The read path keeps its
 * window within half of what the cache can hold.
 *
 * Locks: as in cache.c (shard lock, then job_lock); none is held across a source call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cache/arena.h"
#include "cache/index_i.h"
#include "util/crc64.h"
#include "util/log.h"

/* ---- prefetch runs ---- */

enum { RB_SKIP, RB_SOLO, RB_CLAIMED };

struct runblk {
    struct blk b;
    int state;      /* RB_*: held or being filled / partly held (block_io) / ours to fetch */
    uint32_t entry; /* RB_CLAIMED: */
    uint32_t mslot; /* NIL: no memory slot to be had, the run's buffer is lent to waiters */
    struct fill f;
};

/* Maps the pages of memory slot MSLOT (NIL: none) before a fetch writes to them. The first write
 * to a page the process never touched costs a page fault, and on a virtual machine whose free
 * memory goes back to the host, the host's fault and zeroing too: a cold stream into an empty
 * memory tier spent most of its CPU there, inside the copy out of the socket buffer (which then
 * holds back the connection). One madvise maps the whole slot in one kernel call, before the
 * request is sent; on a slot already mapped it only walks the page table. Best effort: a kernel
 * without MADV_POPULATE_WRITE (before 5.14) faults the pages in as they are written. */
static void slot_prefault(struct cache *c, uint32_t mslot, uint32_t blen)
{
    if (mslot != NIL && !arena_is_file(c->ar))
        (void)madvise(MEM_AT(c, mslot), (size_t)blen, MADV_POPULATE_WRITE);
}

/* Claims block R for a run when nobody holds any of its pages or fills it. */
static void run_claim(struct cache *c, struct runblk *r)
{
    uint64_t mv[MAXW], dv[MAXW], all[MAXW];
    struct shard *sh = shard_of(c, r->b.id);
    bm_range(all, c->w, 0, (r->b.blen - 1) >> c->ps_shift);
    pthread_mutex_lock(&sh->lock);
    uint32_t i = lookup(c, sh, r->b.id);
    if (i == NIL && c->cr_tbits && cr_find(c, sh, cr_tag(c, r->b.id), ~0ull, 0) != NIL) {
        pthread_mutex_unlock(&sh->lock);
        r->state = RB_SOLO; /* a compact record of its tag: block_io reads it from disk */
        return;
    }
    if (i == NIL && (i = entry_new(c, sh, r->b.id, r->b.blen)) == NIL) {
        pthread_mutex_unlock(&sh->lock);
        r->state = RB_SKIP; /* the index is full of fills: readahead can wait */
        return;
    }
    struct centry *e = E(c, i);
    ent_get(c, e, MV, mv);
    ent_get(c, e, DV, dv);
    if ((e->flags & F_FILLING) || (e->mslot != NIL && bm_covers(mv, all, c->w)))
        r->state = RB_SKIP;
    else if (bm_any(mv, c->w) || bm_any(dv, c->w))
        r->state = RB_SOLO; /* merging pages, or a disk read: block_io's work */
    else
        r->state = RB_CLAIMED;
    if (r->state != RB_CLAIMED) {
        entry_maybe_free(c, sh, i);
        pthread_mutex_unlock(&sh->lock);
        return;
    }
    fill_begin_locked(sh, e, i, &r->f);
    r->entry = i;
    r->mslot = e->mslot; /* NIL, or a slot with no valid page */
    pthread_mutex_unlock(&sh->lock);
    if (r->mslot == NIL && c->mq) {
        uint32_t ms = mem_alloc_run(c, r->b.id, i, r->b.blen, 0);
        if (ms != NIL) {
            pthread_mutex_lock(&sh->lock);
            e->mslot = ms;
            ent_clear(c, e, MV);
            pthread_mutex_unlock(&sh->lock);
            r->mslot = ms;
        }
    }
}

/* Called for each block a run fetched, as soon as its bytes are in (cache_fetch_run). */
struct run_ready {
    void (*fn)(void *arg, uint64_t index, const uint8_t *data, uint32_t len);
    void *arg;
};

/* Ends the fill of claimed block R: with its bytes DATA (its memory slot, or a scratch block
 * lent to the waiters when it has none), which came from FROM (an enum blk_from); DATA NULL: the
 * fetch failed, and waiters fetch for themselves. READY (may be NULL) is told of the bytes while
 * the block is still pinned. CRC (NULL: none), taken over: the CRCs of its pages, for the disk
 * writer. */
static void run_publish(struct cache *c, struct runblk *r, const uint8_t *data, int from,
                        const struct run_ready *ready, uint64_t *crc)
{
    uint64_t all[MAXW];
    struct shard *sh = shard_of(c, r->b.id);
    struct centry *e = E(c, r->entry);
    bm_range(all, c->w, 0, (r->b.blen - 1) >> c->ps_shift);
    pthread_mutex_lock(&sh->lock);
    if (data && r->mslot != NIL) {
        ent_put(c, e, MV, all);
        if (!ready) /* fetched ahead of its reader; READY's caller is the reader */
            ahead_set_locked(c, e);
    }
    fill_end_locked(sh, e, &r->f, 0, data ? from : -1, data && r->mslot == NIL ? data : NULL, all);
    pthread_mutex_unlock(&sh->lock);
    if (data)
        queue_write(c, r->b.id, r->b.blen, all, data, r->mslot != NIL ? r->entry : NIL, crc);
    else
        free(crc);
    if (data && ready)
        ready->fn(ready->arg, r->b.index, data, r->b.blen);
    pthread_mutex_lock(&sh->lock);
    e->pins--;
    entry_maybe_free(c, sh, r->entry);
    pthread_mutex_unlock(&sh->lock);
}

/* A run fetched through the source's fetch_range: bytes land in each block's memory slot (or a
 * scratch block, for one without) and each block is published once its last byte is in. */
struct run_sink {
    struct cache *c;
    struct runblk *r;
    unsigned m, k;         /* blocks, the one being filled */
    uint32_t got;          /* bytes of block k in */
    int from;              /* the worst origin of block k's bytes */
    uint8_t *spare;        /* a scratch block for blocks with no memory slot */
    uint64_t *crc;         /* block k's page CRCs so far (NULL: none; the writer computes them) */
    uint64_t origin_bytes; /* delivered from the origin (BLK_FROM_ORIGIN) */
    const struct run_ready *ready;
};

/* Continues the page CRCs CRC of block ID over its bytes [OFF, OFF + LEN), which are SRC. */
static void crc_pages(const struct cache *c, const uint64_t id[2], uint64_t *crc, uint32_t off,
                      const uint8_t *src, size_t len)
{
    while (len > 0) {
        uint32_t p = off >> c->ps_shift, in = off & (c->ps - 1);
        size_t k = c->ps - in < len ? c->ps - in : len;
        crc[p] = crc64_update(in == 0 ? cslot_page_seed(id, p) : crc[p], src, k);
        off += (uint32_t)k;
        src += k;
        len -= k;
    }
}

/* Takes bytes of the run as the source delivers them. A block with a memory slot gets them by
 * arena_fill, and its page CRCs are computed here, from the source's buffer while it is in the
 * CPU's cache: in a memfd-backed arena nothing in the process then touches the slot's fresh
 * pages but the kernel (the FUSE reply and the O_DIRECT disk write read them by their physical
 * pages), which keeps their page-table entries, and on a VM the host's, off the stream. */
static int run_sink_fn(void *arg, const void *data, size_t n, enum blk_from from)
{
    struct run_sink *rs = arg;
    struct cache *c = rs->c;
    const uint8_t *src = data;
    if (from == BLK_FROM_ORIGIN)
        rs->origin_bytes += n;
    while (n > 0) {
        if (rs->k >= rs->m)
            return -EIO; /* more than asked for: a broken source */
        struct runblk *x = &rs->r[rs->k];
        uint8_t *dst = x->mslot != NIL ? MEM_AT(c, x->mslot) : rs->spare;
        if (!dst)
            return -ENOMEM;
        size_t take = x->b.blen - rs->got < n ? x->b.blen - rs->got : n;
        if (x->mslot != NIL) {
            if (rs->got == 0 && c->ndirs > 0 && !rs->crc)
                rs->crc = malloc(8ull * c->np); /* NULL: the writer computes them */
            if (rs->crc)
                crc_pages(c, x->b.id, rs->crc, rs->got, src, take);
            arena_fill(c->ar, dst + rs->got, src, take);
        } else {
            memcpy(dst + rs->got, src, take);
        }
        rs->got += (uint32_t)take;
        rs->from = worst(rs->from, (int)from);
        src += take;
        n -= take;
        if (rs->got == x->b.blen) {
            run_publish(c, x, dst, rs->from, rs->ready, rs->crc);
            rs->crc = NULL;
            rs->k++;
            rs->got = 0;
            rs->from = -1;
        }
    }
    return 0;
}

/* Fetches the M claimed blocks R (consecutive) with one source request and publishes them.
 * FLAGS: the job's (CACHE_PEER). */
static void run_fetch(struct cache *c, struct runblk *r, unsigned m, unsigned flags,
                      const struct run_ready *ready)
{
    uint64_t total = 0;
    for (unsigned k = 0; k < m; k++)
        total += r[k].b.blen;
    struct run_sink rs = {c, r, m, 0, 0, -1, NULL, NULL, 0, ready};
    for (unsigned k = 0; k < m && !rs.spare; k++)
        if (r[k].mslot == NIL)
            rs.spare = scratch_get(c->bs);
    struct blkreq rq = {r->b.key, r->b.etag, r->b.obj_size, r->b.index, src_flags(flags)};
    STAT(c, source_fetches, 1);
    int rc = blksrc_fetch_range(c->src, &rq, total, run_sink_fn, &rs);
    if (rs.origin_bytes) {
        STAT(c, root_read_source, 1);
        STAT(c, root_read_source_bytes, rs.origin_bytes);
    }
    if (rc < 0) {
        STAT(c, source_errors, 1);
        log_debug("cache: prefetch of '%s' blocks %llu-%llu: %s", r->b.key,
                  (unsigned long long)r->b.index, (unsigned long long)(r->b.index + m - 1),
                  strerror(-rc));
    }
    free(rs.crc);                       /* a block cut short */
    for (unsigned k = rs.k; k < m; k++) /* what did not come (an error, a short object) */
        run_publish(c, &r[k], NULL, -1, NULL, NULL);
}

/* Blocks [index, index + nblocks) (at most RUN_MAX_BLOCKS) of (key, etag): each stretch of those
 * nobody holds or fills is claimed and fetched with one request; READY (NULL: none) hears of
 * each as it comes. The others: with SOLO, those partly held are completed one by one
 * (block_io), else left alone. Returns the blocks this call fetched. */
static unsigned run_blocks(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                           uint64_t index, unsigned nblocks, unsigned flags, int solo,
                           const struct run_ready *ready)
{
    struct runblk r[RUN_MAX_BLOCKS];
    unsigned n = 0, fetched = 0;
    for (; n < nblocks && n < RUN_MAX_BLOCKS; n++) {
        struct runblk *x = &r[n];
        x->b = (struct blk){key, etag, obj_size, index + n, 0, {0, 0}};
        x->b.blen = (uint32_t)cslot_block_len(obj_size, x->b.index, c->bs);
        if (x->b.blen == 0)
            break;
        cache_block_id(c->ns, key, etag, x->b.index, x->b.id);
        run_claim(c, x);
    }
    /* Each stretch of claimed blocks is one request; readers of them wait for its publish. */
    for (unsigned k = 0; k < n;) {
        if (r[k].state != RB_CLAIMED) {
            k++;
            continue;
        }
        unsigned q = k;
        while (q + 1 < n && r[q + 1].state == RB_CLAIMED)
            q++;
        for (unsigned x = k; x <= q; x++)
            slot_prefault(c, r[x].mslot, r[x].b.blen);
        run_fetch(c, &r[k], q - k + 1, flags, ready);
        fetched += q - k + 1;
        k = q + 1;
    }
    for (unsigned k = 0; solo && k < n; k++)
        if (r[k].state == RB_SOLO)
            (void)block_io(c, &r[k].b, 0, r[k].b.blen, NULL, MODE_PREFETCH, flags, NULL);
    return fetched;
}

static void do_prefetch(struct cache *c, struct job *j)
{
    (void)run_blocks(c, j->key, j->etag, j->obj_size, j->index, j->nblocks, j->flags, 1, NULL);
}

int cache_fetch_run(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                    uint64_t first, unsigned n, unsigned flags,
                    void (*ready)(void *arg, uint64_t index, const uint8_t *data, uint32_t len),
                    void *arg)
{
    if (!c || check_obj(key, etag) != 0 || n == 0 || n > c->run_max)
        return -EINVAL;
    struct run_ready rr = {ready, arg};
    return (int)run_blocks(c, key, etag, obj_size, first, n, flags & (CACHE_PEER | CACHE_RELAY), 0,
                           ready ? &rr : NULL);
}

int cache_prefetch(struct cache *c, const char *key, const char *etag, uint64_t obj_size,
                   uint64_t off, uint64_t len, unsigned flags)
{
    if (!c || check_obj(key, etag) != 0)
        return -EINVAL;
    if (off >= obj_size || len == 0)
        return 0;
    if (len > obj_size - off)
        len = obj_size - off;
    uint64_t first = off >> c->bs_shift, last = (off + len - 1) >> c->bs_shift;
    /* One job per run of at most run_max blocks, each becomes one source request. Runs are
       aligned on run_max blocks, so that the runs of two readers of an object coincide and a
       cluster's owner of a run (p2p/: 4 MiB spans) gets it whole. */
    for (uint64_t idx = first; idx <= last;) {
        uint64_t to_edge = c->run_max - idx % c->run_max;
        uint32_t n = (uint32_t)(last - idx + 1 < to_edge ? last - idx + 1 : to_edge);
        pthread_mutex_lock(&c->job_lock);
        int full = c->stopping || c->pq_blocks + n > PQ_MAX;
        if (!full)
            c->pq_blocks += n;
        pthread_mutex_unlock(&c->job_lock);
        if (full) {
            STAT(c, prefetch_dropped, last - idx + 1);
            return -EAGAIN;
        }
        struct job *j = calloc(1, sizeof(*j));
        if (j) {
            j->key = strdup(key);
            j->etag = strdup(etag);
        }
        if (!j || !j->key || !j->etag) {
            job_free(c, j);
            pthread_mutex_lock(&c->job_lock);
            c->pq_blocks -= n;
            pthread_mutex_unlock(&c->job_lock);
            STAT(c, prefetch_dropped, last - idx + 1);
            return -ENOMEM;
        }
        j->kind = JOB_PREFETCH;
        j->flags = flags & (CACHE_PEER | CACHE_RELAY);
        j->obj_size = obj_size;
        j->index = idx;
        j->nblocks = n;
        STAT(c, prefetch_queued, n);
        job_push(c, &c->pq_head, &c->pq_tail, &c->pq_cond, j);
        idx += n;
    }
    return 0;
}

void *prefetcher_main(void *arg)
{
    struct cache *c = arg;
    pthread_mutex_lock(&c->job_lock);
    for (;;) {
        struct job *j = c->pq_head;
        if (c->stopping)
            break;
        if (!j) {
            pthread_cond_wait(&c->pq_cond, &c->job_lock);
            continue;
        }
        c->pq_head = j->next;
        if (!c->pq_head)
            c->pq_tail = NULL;
        c->pq_blocks -= j->nblocks;
        pthread_mutex_unlock(&c->job_lock);
        do_prefetch(c, j);
        job_free(c, j);
        pthread_mutex_lock(&c->job_lock);
    }
    pthread_mutex_unlock(&c->job_lock);
    return NULL;
}
