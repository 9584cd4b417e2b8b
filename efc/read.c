/* efc/read.c - ranged reads for FUSE reads, with readahead for sequential readers.
 *
 * The bytes come from a block source (cache/blksrc.h): the origin (one ranged GET a fetch) for a
 * plain mount, the P2P source for an agent that stores nothing; below, "GET" is one fetch of that
 * source. A block cache, when there is one, stands between the reader and that source.
 *
 * Design. Each read is classified against the reader's recent history. A read that is not in
 * the readahead window and does not follow a recent read is random: it costs one GET of exactly
 * its range, straight into the caller's buffer, and drops any window. A read that starts at or
 * just after the end of one of the last few reads (FUSE hands the kernel's async reads to several
 * threads, so they arrive slightly out of order) extends a streak; once the streak holds two
 * reads and 256 KiB (or eight small reads) the reader turns readahead on.
 *
 * Readahead works in chunks: chunk i is bytes [i*chunk, (i+1)*chunk) of the pinned object
 * version. The window is the chunks just past the read position; it starts at RA_INITIAL_CHUNKS,
 * doubles each time a read first touches a chunk fetched ahead, and is capped by ahead_bytes and
 * by RA_GROWTH times what the stream has read (so an abandoned stream wastes little). A read
 * ahead of the window (a reordered async read, mostly) fills the gap up to it, unless it jumped
 * further than the window reaches.
 * Chunks are fetched in runs: one GET fills several consecutive chunks, each chunk becoming
 * readable as soon as its own bytes are in. Runs are small while the window is small (so that
 * max_inflight GETs fetch it in parallel) and grow to window / max_inflight chunks (at most
 * RUN_MAX_BYTES) once it is large, which keeps max_inflight connections busy with few requests.
 * At most max_inflight runs of a reader are queued or running; the pool's workers run them. A
 * read that needs a chunk whose run is still queued takes the run off the queue (leaving the
 * chunks after its own queued) and runs it itself, since a FUSE thread blocks anyway and a busy
 * pool must not delay it; one whose chunk is being fetched waits on the reader's condvar. Bytes
 * are copied out of a chunk with the reader lock dropped while the chunk is pinned. A chunk is
 * freed once read to its end, or once it falls SLACK_MIN (at least two chunks) behind the read
 * position, the reordering the window tolerates around that position. A chunk that
 * failed is retried once by a direct GET of the bytes the read needs; -ESTALE (If-Match failed)
 * is final and sticks to the reader. A read far from the window drops it: runs none of whose
 * chunks is wanted any more are dequeued, or aborted through their cancel flag when running.
 * Close does the same and returns at once; a run's fetcher frees it, and the reader is freed by
 * whoever drops its last reference (each chunk and each run holds one).
 *
 * Memory: chunk buffers come from a pool-wide budget (mem_limit, spare buffers included). When it
 * is spent the window stops growing and reads fall back to direct GETs; nothing waits for memory.
 * Up to SPARE_MAX freed buffers are kept for reuse so a stream does not fault in fresh pages for
 * every chunk.
 *
 * With a block cache (pool->cache, cache/cache.h, block size = chunk size) the chunk machinery
 * is not used at all: the cache already owns buffers, single-flight and background fills, so a
 * second layer of chunk buffers would only copy every byte twice and hold memory the cache
 * accounts for. Such a reader keeps the same classification (classify_locked: history, streak,
 * window position and drops), but its window is handed to the cache as prefetch runs
 * (cache_window_locked): as window_pump_locked does, runs of win / max_inflight blocks (at most
 * the cache's 4 MiB run), issued once a whole run fits or the reader is close, so that
 * max_inflight GETs (the cache's prefetch workers, one GET per run) fetch the window in
 * parallel; win grows to RA_GROWTH times what the stream has read, up to ahead_bytes, and never
 * beyond half of what the cache holds (more would evict its own blocks before the reader got to
 * them). Every read, random or sequential, is served by the cache with no lock held: op_read's
 * efc_reader_read_ref() pins a block the memory tier holds (waiting for its fill if a prefetch is
 * bringing it) and the reply is sent from the cache's memory; anything else is one cache_read()
 * into a buffer (a block not there yet is fetched, page-granular, with single-flight). The
 * cache's source fetches with If-Match, so -ESTALE comes back out of the cache (errors are never
 * cached) and sticks to the reader as without a cache; a prefetch that meets it just drops the
 * block. A reader without an ETag bypasses the cache (its blocks could not be keyed), and so does a
 * read the cache refuses as invalid (-EINVAL: an over-long key or ETag), and every reader of a
 * cache that holds nothing.
 *
 * Without a cache, run_fetch() is the one place that turns "chunks i..j of (key, etag)" into
 * bytes. Such reads are counted as the tier_* counters count a cache's (count_tier: by where the
 * bytes came from), so that an agent reading through its peers reports what the guide's
 * metrics describe.
 *
 * Locks: a reader's lock (struct efc_reader.lock) protects that reader's window and the
 * reader-lock fields of its chunks and runs; the pool lock protects the work queue, the threads,
 * the spare buffers and the memory count. Order: reader lock, then pool lock. The pool lock is
 * never held while taking a reader lock, and no lock is held across a source's fetch (the sink
 * takes the reader lock briefly to publish a finished chunk) or a memcpy of chunk data to a caller.
 */
#define _GNU_SOURCE
#include "efc/read.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "cache/cache.h"
#include "oss/oss.h"
#include "util/log.h"

#define DEFAULT_MAX_INFLIGHT 8u
#define DEFAULT_THREADS      32u
#define DEFAULT_MEM_LIMIT    (512ull << 20)
#define MIN_CHUNK_BYTES      4096ull
#define MAX_CHUNK_BYTES      (1ull << 30)
#define MAX_THREADS          1024u

#define RA_INITIAL_CHUNKS 4u
#define HIST              8u             /* read ends remembered for sequential detection */
#define SEQ_MIN_GAP       (512ull << 10) /* a read this far past a recent end still follows it */
#define RA_MIN_STREAK     2u             /* sequential reads before readahead starts ... */
#define RA_MIN_BYTES      (256ull << 10) /* ... which must cover this much, */
#define RA_SMALL_STREAK   8u             /* or this many reads of any size */
#define RA_GROWTH         2u             /* the window stays within this many times what was read */
#define SLACK_MIN         (8ull << 20)   /* reordering tolerated around the read position */
#define RUN_MAX_BYTES     (8ull << 20)   /* one readahead GET fetches at most this much */
#define SPARE_MAX         8u             /* freed chunk buffers kept for reuse */
#define CACHE_RUN_MAX_BYTES                                                                        \
    (4ull << 20) /* a cached reader's prefetch run at most: the cache's own run limit (cache.h) */
#define CACHE_RUNS_MAX 64u /* prefetch runs one read may issue */

enum chunk_state {
    CH_QUEUED,   /* its run waits on the pool's queue (or in a worker's hands, unclaimed) */
    CH_FETCHING, /* its run is being fetched */
    CH_DONE,     /* err, valid and the bytes are final */
};

struct rfetch;

struct rchunk {
    uint64_t index;
    uint64_t off; /* index * chunk_bytes */
    size_t len;   /* chunk_bytes, less for the object's last chunk */
    uint8_t *buf; /* chunk_bytes long; written only by the run's fetcher before CH_DONE */
    size_t got;   /* bytes the fetcher stored; read by others only once CH_DONE */

    /* reader lock */
    TAILQ_ENTRY(rchunk) rlink;
    struct rfetch *f; /* the run that fills it; NULL once CH_DONE */
    enum chunk_state st;
    bool in_list; /* on the reader's window (else dropped: freed once idle) */
    bool ahead;   /* issued ahead of the reads, not for a read that needed it */
    bool touched; /* a read has used it */
    int err;      /* CH_DONE: 0 or -errno (-ECANCELED: dropped before it was filled) */
    int from;     /* the worst enum blk_from of its bytes; -1 before any came */
    size_t valid; /* CH_DONE: bytes valid from off */
    size_t consumed;
    unsigned pins; /* reads copying from it or waiting for it */
};

/* A run: one GET filling consecutive chunks of one reader. Holds a reference on the reader. */
struct rfetch {
    struct efc_reader *r;
    atomic_bool cancel; /* no chunk of it is wanted any more: the sink aborts the GET */
    unsigned next;      /* fetcher only: the chunk being filled */
    uint64_t bytes;     /* fetcher only: bytes stored */

    /* pool lock */
    bool queued;
    TAILQ_ENTRY(rfetch) qlink;

    /* reader lock */
    bool running;
    unsigned pending; /* chunks not yet CH_DONE (c[next..n-1] once running) */
    unsigned wanted;  /* pending chunks still on the window */
    unsigned n;
    struct rchunk *c[]; /* c[i] may be used only while it is not CH_DONE */
};

TAILQ_HEAD(rchunk_list, rchunk);
TAILQ_HEAD(rfetch_list, rfetch);

struct efc_reader_pool {
    struct blksrc *src;
    struct cache *cache; /* NULL: none */
    /* immutable after _new */
    uint64_t chunk_bytes;
    unsigned max_inflight;
    unsigned max_threads;
    uint64_t mem_limit;
    unsigned max_win; /* window cap in chunks; 0: readahead off */
    unsigned init_win;
    unsigned run_cap;       /* RUN_MAX_BYTES in chunks, at least 1 */
    unsigned cache_run_cap; /* CACHE_RUN_MAX_BYTES in blocks, at least 1 */

    pthread_mutex_t lock;
    pthread_cond_t work_cv;
    /* pool lock */
    struct rfetch_list queue;
    unsigned qlen;
    unsigned idle; /* workers waiting for work */
    bool stopping;
    pthread_t *threads;
    unsigned nthreads;
    void *spare; /* singly linked through each buffer's first bytes */
    unsigned nspare;
    uint64_t mem_used; /* chunk buffers allocated, spares included */
    uint64_t mem_peak;
    bool spawn_failed_logged;

    /* statistics, lock-free */
    atomic_uint_fast64_t reads, bytes_read, direct_gets, chunk_gets, chunks, bytes_fetched, ra_hits,
        ra_misses, bytes_wasted, windows, drops, cancelled, fetch_errors, retries, budget_denied,
        inflight, readers, cache_bypass, zero_copy;
    /* cacheless reads by where their bytes came from (efc_read_stats.tier_*) */
    atomic_uint_fast64_t t_read, t_read_bytes, t_hit, t_hit_bytes, t_miss, t_miss_bytes, t_direct,
        t_direct_bytes;
};

struct efc_reader {
    struct efc_reader_pool *pool;
    /* immutable after open */
    char *key;
    char *etag; /* NULL: no If-Match */
    uint64_t size;
    uint64_t nchunks;

    pthread_mutex_t lock;
    pthread_cond_t cv; /* broadcast whenever a chunk of this reader reaches CH_DONE */
    /* reader lock */
    unsigned refs; /* the opener's until close, plus one per chunk and per run alive */
    bool closed;
    bool stale;                /* the object lost our ETag: every read answers -ESTALE */
    struct rchunk_list chunks; /* the window, in index order */
    unsigned nfetch;           /* runs queued or running, cancelled ones included */
    uint64_t hist[HIST];       /* ends of recent reads */
    unsigned nhist, hpos;
    unsigned streak;
    uint64_t streak_bytes;
    bool ra_on;
    unsigned off_window; /* sequential reads in a row outside the window */
    uint64_t pos;        /* furthest end of a read in the window */
    uint64_t ra_next;    /* next chunk the window may issue; lower ones were issued or skipped */
    unsigned win;        /* current window, chunks past the one holding pos */
    uint64_t ra_bytes;   /* bytes read in the window since it opened */
};

enum read_class {
    RC_RANDOM, /* far from anything recent: direct GET, window dropped */
    RC_SEQ,    /* follows a recent read but not the window: direct GET, window kept */
    RC_WINDOW, /* in (or just opened) the readahead window */
};

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* How far around the read position a read still counts as part of the window, and how far
 * behind it partly read chunks are kept: the kernel's async readahead (raised to several MiB by
 * the FUSE layer) reaches us through many threads, in any order within a batch. */
static inline uint64_t window_slack(const struct efc_reader_pool *p)
{
    return max_u64(2 * p->chunk_bytes, SLACK_MIN);
}

static void *worker_main(void *arg);
static void window_drop_locked(struct efc_reader *r);

static void reader_destroy(struct efc_reader *r)
{
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->lock);
    free(r->key);
    free(r->etag);
    free(r);
}

/* Unlocks R, freeing it if that was its last reference (only possible once it is closed). */
static void reader_unlock(struct efc_reader *r)
{
    bool dead = r->refs == 0;
    pthread_mutex_unlock(&r->lock);
    if (dead)
        reader_destroy(r);
}

static void mark_stale_locked(struct efc_reader *r)
{
    if (r->stale)
        return;
    log_info("read: '%s' changed since it was opened (ETag %s no longer matches)", r->key,
             r->etag ? r->etag : "");
    r->stale = true;
    window_drop_locked(r);
}

/* ---- chunk buffers ---------------------------------------------------------------------- */

/* A chunk_bytes buffer within the budget, or NULL when it is spent (or malloc failed). */
static void *cbuf_take(struct efc_reader_pool *p)
{
    void *b = NULL;
    bool alloc = false;

    pthread_mutex_lock(&p->lock);
    if (p->spare) {
        b = p->spare;
        memcpy(&p->spare, b, sizeof(void *));
        p->nspare--;
    } else if (p->mem_used + p->chunk_bytes <= p->mem_limit) {
        p->mem_used += p->chunk_bytes;
        if (p->mem_used > p->mem_peak)
            p->mem_peak = p->mem_used;
        alloc = true;
    }
    pthread_mutex_unlock(&p->lock);
    if (alloc) {
        b = malloc(p->chunk_bytes);
        if (b == NULL) {
            pthread_mutex_lock(&p->lock);
            p->mem_used -= p->chunk_bytes;
            pthread_mutex_unlock(&p->lock);
        }
    }
    return b;
}

static void cbuf_give(struct efc_reader_pool *p, void *b)
{
    pthread_mutex_lock(&p->lock);
    if (p->nspare < SPARE_MAX && !p->stopping) {
        memcpy(b, &p->spare, sizeof(void *));
        p->spare = b;
        p->nspare++;
        b = NULL;
    } else {
        p->mem_used -= p->chunk_bytes;
    }
    pthread_mutex_unlock(&p->lock);
    free(b);
}

/* ---- chunks and runs (reader lock held) ------------------------------------------------- */

/* Frees C once nothing refers to it: off the window, filled or failed, not pinned. */
static void chunk_maybe_free_locked(struct efc_reader *r, struct rchunk *c)
{
    struct efc_reader_pool *p = r->pool;

    if (c->in_list || c->pins || c->st != CH_DONE)
        return;
    if (c->err == 0 && c->consumed < c->valid)
        atomic_fetch_add(&p->bytes_wasted, c->valid - c->consumed);
    else if (c->err)
        atomic_fetch_add(&p->bytes_wasted, c->got);
    cbuf_give(p, c->buf);
    free(c);
    r->refs--;
}

/* C's bytes are final (RC 0: c->got of them are valid). Wakes the reads waiting for it. */
static void chunk_complete_locked(struct efc_reader *r, struct rchunk *c, int rc)
{
    struct efc_reader_pool *p = r->pool;
    struct rfetch *f = c->f;

    c->f = NULL;
    c->st = CH_DONE;
    c->err = rc;
    c->valid = rc == 0 ? c->got : 0;
    f->pending--;
    if (c->in_list)
        f->wanted--;
    if (rc == -ECANCELED)
        atomic_fetch_add(&p->cancelled, 1);
    pthread_cond_broadcast(&r->cv);
    if (rc == -ESTALE && !r->stale) {
        mark_stale_locked(r); /* may free C */
        return;
    }
    if (!c->in_list)
        chunk_maybe_free_locked(r, c);
}

static void fetch_free_locked(struct efc_reader *r, struct rfetch *f)
{
    r->nfetch--;
    atomic_fetch_sub(&r->pool->inflight, 1);
    free(f);
    r->refs--;
}

/* Dequeues F if it is still queued; true if it was (the caller then owns it). */
static bool fetch_dequeue(struct efc_reader_pool *p, struct rfetch *f)
{
    bool mine = false;

    pthread_mutex_lock(&p->lock);
    if (f->queued) {
        TAILQ_REMOVE(&p->queue, f, qlink);
        f->queued = false;
        p->qlen--;
        mine = true;
    }
    pthread_mutex_unlock(&p->lock);
    return mine;
}

/* Cancels every pending chunk of F, which nobody else holds, and frees F. */
static void fetch_cancel_owned_locked(struct efc_reader *r, struct rfetch *f)
{
    for (unsigned i = f->next; i < f->n; i++)
        chunk_complete_locked(r, f->c[i], -ECANCELED);
    fetch_free_locked(r, f);
}

/* No chunk of F is wanted any more: stop it, now if it is queued, else at its next bytes. */
static void fetch_unwanted_locked(struct efc_reader *r, struct rfetch *f)
{
    if (f->running)
        atomic_store(&f->cancel, true);
    else if (fetch_dequeue(r->pool, f))
        fetch_cancel_owned_locked(r, f);
    /* else a worker has it and cancels it when it claims it */
}

/* Takes C off the window; the chunk goes when its last user lets go of it, its run when none of
 * its chunks is wanted. */
static void chunk_drop_locked(struct efc_reader *r, struct rchunk *c)
{
    TAILQ_REMOVE(&r->chunks, c, rlink);
    c->in_list = false;
    if (c->st != CH_DONE) {
        struct rfetch *f = c->f;
        if (--f->wanted == 0)
            fetch_unwanted_locked(r, f); /* may free C */
        return;
    }
    chunk_maybe_free_locked(r, c);
}

static void pool_enqueue(struct efc_reader_pool *p, struct rfetch *f, bool head)
{
    pthread_mutex_lock(&p->lock);
    if (head)
        TAILQ_INSERT_HEAD(&p->queue, f, qlink);
    else
        TAILQ_INSERT_TAIL(&p->queue, f, qlink);
    f->queued = true;
    p->qlen++;
    if (p->qlen > p->idle && p->nthreads < p->max_threads && !p->stopping) {
        sigset_t all, old;
        sigfillset(&all);
        /* workers take no signals (as libfuse's own threads), whoever starts them */
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int err = pthread_create(&p->threads[p->nthreads], NULL, worker_main, p);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err == 0) {
            p->nthreads++;
        } else if (!p->spawn_failed_logged) {
            /* not fatal: a read takes its queued run off the queue and runs it itself */
            p->spawn_failed_logged = true;
            log_warn("read: cannot start a readahead thread: %s", strerror(err));
        }
    }
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->lock);
}

static struct rfetch *fetch_alloc_locked(struct efc_reader *r, unsigned n)
{
    struct rfetch *f = calloc(1, sizeof(*f) + n * sizeof(f->c[0]));

    if (f == NULL)
        return NULL;
    f->r = r;
    atomic_init(&f->cancel, false);
    r->refs++;
    r->nfetch++;
    atomic_fetch_add(&r->pool->inflight, 1);
    return f;
}

/* Issues a run of up to N chunks from FIRST, appended to the window and queued. Returns the
 * chunks issued: fewer when the memory budget runs out, 0 when it is spent. */
static unsigned run_issue_locked(struct efc_reader *r, uint64_t first, unsigned n, bool ahead)
{
    struct efc_reader_pool *p = r->pool;
    struct rfetch *f = fetch_alloc_locked(r, n);
    unsigned i;

    if (f == NULL)
        return 0;
    for (i = 0; i < n; i++) {
        struct rchunk *c = calloc(1, sizeof(*c));
        void *b = c ? cbuf_take(p) : NULL;
        if (b == NULL) {
            free(c);
            atomic_fetch_add(&p->budget_denied, 1);
            break;
        }
        c->index = first + i;
        c->off = c->index * p->chunk_bytes;
        c->len = (size_t)min_u64(p->chunk_bytes, r->size - c->off);
        c->buf = b;
        c->f = f;
        c->st = CH_QUEUED;
        c->in_list = true;
        c->ahead = ahead;
        c->from = -1;
        TAILQ_INSERT_TAIL(&r->chunks, c, rlink); /* indices only grow: the list stays sorted */
        r->refs++;
        f->c[i] = c;
    }
    if (i == 0) {
        fetch_free_locked(r, f);
        return 0;
    }
    f->n = f->pending = f->wanted = i;
    pool_enqueue(p, f, false);
    return i;
}

/* F was just taken off the queue by a read that needs its chunk J: the chunks after J go back
 * to the head of the queue as a run of their own, so the read waits only for what it needs. */
static void fetch_split_locked(struct efc_reader *r, struct rfetch *f, unsigned j)
{
    unsigned rest = f->n - j - 1;

    if (rest == 0)
        return;
    struct rfetch *g = fetch_alloc_locked(r, rest);
    if (g == NULL)
        return; /* the read fetches the whole run: slower, still right */
    for (unsigned i = 0; i < rest; i++) {
        struct rchunk *c = f->c[j + 1 + i];
        g->c[i] = c;
        c->f = g;
        if (c->in_list)
            g->wanted++;
    }
    g->n = g->pending = rest;
    f->n = j + 1;
    f->pending -= rest;
    f->wanted -= g->wanted;
    if (g->wanted == 0)
        fetch_cancel_owned_locked(r, g);
    else
        pool_enqueue(r->pool, g, true);
}

/* ---- fetching --------------------------------------------------------------------------- */

static int run_sink(void *arg, const void *data, size_t len, enum blk_from from)
{
    struct rfetch *f = arg;
    const uint8_t *src = data;

    while (len > 0) {
        if (atomic_load_explicit(&f->cancel, memory_order_relaxed))
            return -ECANCELED;
        if (f->next >= f->n)
            return -EIO; /* the source delivers only the range asked; anything else is a bug */
        struct rchunk *c = f->c[f->next]; /* not CH_DONE: only this thread completes it */
        size_t n = (size_t)min_u64(len, c->len - c->got);
        memcpy(c->buf + c->got, src, n);
        c->got += n;
        c->from = c->from > (int)from ? c->from : (int)from;
        f->bytes += n;
        src += n;
        len -= n;
        if (c->got == c->len) {
            struct efc_reader *r = f->r;
            pthread_mutex_lock(&r->lock);
            chunk_complete_locked(r, c, 0);
            pthread_mutex_unlock(&r->lock); /* F holds a reference: R lives on */
            f->next++;
        }
    }
    return 0;
}

/* Fills the chunks f->c[f->next..] of R's object version: one request to the source, each chunk
 * published as soon as its bytes are in. The one step a block cache replaces. Runs with no lock
 * held. */
static int run_fetch(struct efc_reader_pool *p, const struct efc_reader *r, struct rfetch *f)
{
    const struct rchunk *first = f->c[0], *last = f->c[f->n - 1];
    struct blkreq rq = {r->key, r->etag, r->size, first->index, 0};
    uint64_t len = last->off + last->len - first->off;

    atomic_fetch_add(&p->chunk_gets, 1);
    atomic_fetch_add(&p->chunks, f->n);
    int rc = blksrc_fetch_range(p->src, &rq, len, run_sink, f);
    atomic_fetch_add(&p->bytes_fetched, f->bytes);
    if (rc && rc != -ECANCELED && rc != -ESTALE) /* the source logged why */
        log_debug("read: fetching '%s' bytes %" PRIu64 "-%" PRIu64 " failed: %s", r->key,
                  first->off, first->off + len - 1, strerror(-rc));
    return rc;
}

/* Runs F, just taken off the queue by this thread. Reader lock held; dropped while fetching. */
static void fetch_run_locked(struct efc_reader *r, struct rfetch *f)
{
    if (f->wanted == 0) {
        fetch_cancel_owned_locked(r, f); /* dropped while it was in our hands */
        return;
    }
    f->running = true;
    for (unsigned i = 0; i < f->n; i++)
        f->c[i]->st = CH_FETCHING;
    pthread_mutex_unlock(&r->lock);
    int rc = run_fetch(r->pool, r, f);
    pthread_mutex_lock(&r->lock);
    /* what the sink did not complete: a failure, a cancellation, or an object that ended early */
    for (unsigned i = f->next; i < f->n; i++)
        chunk_complete_locked(r, f->c[i], rc);
    if (rc && rc != -ECANCELED)
        atomic_fetch_add(&r->pool->fetch_errors, 1);
    fetch_free_locked(r, f);
}

/* One request to the source for exactly [OFF, OFF+LEN) into DST. Returns the bytes received or
 * -errno; *FROM (worst of) where they came from. */
static ssize_t direct_get(struct efc_reader_pool *p, const struct efc_reader *r, uint64_t off,
                          uint64_t len, void *dst, int *from)
{
    struct blkreq rq = {r->key, r->etag, r->size, off / p->chunk_bytes, 0};
    enum blk_from bf = BLK_FROM_ORIGIN;

    atomic_fetch_add(&p->direct_gets, 1);
    ssize_t n = blksrc_fetch(p->src, &rq, off % p->chunk_bytes, len, dst, &bf);
    if (n < 0)
        return n; /* the source logged why */
    *from = *from > (int)bf ? *from : (int)bf;
    atomic_fetch_add(&p->bytes_fetched, (uint64_t)n);
    return n;
}

/* A direct GET with the reader lock dropped. Marks the reader stale on -ESTALE. */
static ssize_t direct_locked(struct efc_reader *r, uint64_t off, uint64_t len, void *dst, int *from)
{
    pthread_mutex_unlock(&r->lock);
    ssize_t n = direct_get(r->pool, r, off, len, dst, from);
    pthread_mutex_lock(&r->lock);
    if (n == -ESTALE)
        mark_stale_locked(r);
    return n;
}

/* ---- the window (reader lock held) ------------------------------------------------------ */

static void window_drop_locked(struct efc_reader *r)
{
    struct rchunk *c;

    while ((c = TAILQ_FIRST(&r->chunks)) != NULL)
        chunk_drop_locked(r, c);
    r->ra_on = false;
    r->win = r->pool->init_win;
}

/* Issues runs ahead of pos while the window, max_inflight and the budget allow. */
static void window_pump_locked(struct efc_reader *r)
{
    struct efc_reader_pool *p = r->pool;

    if (!r->ra_on || r->closed || r->stale)
        return;
    uint64_t at = r->pos / p->chunk_bytes;
    uint64_t want = min_u64(r->nchunks, at + 1 + r->win);
    /* runs just big enough for max_inflight of them to cover the window */
    unsigned run = (unsigned)min_u64(max_u64(r->win / p->max_inflight, 1), p->run_cap);
    while (r->ra_next < want && r->nfetch < p->max_inflight) {
        unsigned n = (unsigned)min_u64(want - r->ra_next, run);
        uint64_t lead = r->ra_next > at ? r->ra_next - at : 0;
        /* Wait until a whole run fits, unless the reader is getting close or the object ends:
           fewer, larger GETs for the same window. */
        if (n < run && r->ra_next + n < r->nchunks && 2 * lead > r->win)
            break;
        unsigned got = run_issue_locked(r, r->ra_next, n, true);
        if (got == 0)
            break;
        r->ra_next += got;
    }
}

/* Frees chunks that fell behind the window (stragglers then go direct). Chunks read to their
 * end are freed at once; this catches those read only in part. */
static void window_trim_locked(struct efc_reader *r)
{
    uint64_t back = window_slack(r->pool);
    struct rchunk *c;

    if (r->pos < back)
        return;
    uint64_t limit = (r->pos - back) / r->pool->chunk_bytes;
    while ((c = TAILQ_FIRST(&r->chunks)) != NULL && c->index < limit)
        chunk_drop_locked(r, c);
}

static struct rchunk *window_find_locked(struct efc_reader *r, uint64_t idx)
{
    struct rchunk *c;

    for (c = TAILQ_FIRST(&r->chunks); c != NULL; c = TAILQ_NEXT(c, rlink)) {
        if (c->index == idx)
            return c;
        if (c->index > idx)
            break;
    }
    return NULL;
}

/* Classifies the read [OFF, END) and moves the window accordingly. */
static enum read_class classify_locked(struct efc_reader *r, uint64_t off, uint64_t end)
{
    struct efc_reader_pool *p = r->pool;
    uint64_t len = end - off, slack = window_slack(p);
    bool in_win = false, near = off == 0; /* a read from the start opens a stream */

    if (r->ra_on) {
        uint64_t lo = r->pos > slack ? r->pos - slack : 0;
        uint64_t hi = max_u64(r->ra_next * p->chunk_bytes, r->pos) + slack;
        in_win = off >= lo && off < hi;
        /* A read that lags further behind, but by less than the window's size, is a straggler
           of this stream (a reordered async read, or one thread of several running late): it
           is served directly and changes nothing. */
        uint64_t straggle = max_u64((uint64_t)r->win * p->chunk_bytes, slack);
        if (!in_win && off < lo && end + straggle >= lo)
            return RC_SEQ;
    }
    uint64_t gap = max_u64(2 * len, SEQ_MIN_GAP);
    for (unsigned i = 0; i < r->nhist && !near; i++)
        near = r->hist[i] <= end && off <= r->hist[i] + gap;
    r->hist[r->hpos] = end;
    r->hpos = (r->hpos + 1) % HIST;
    if (r->nhist < HIST)
        r->nhist++;

    if (in_win) {
        r->streak++;
        r->streak_bytes += len;
        r->off_window = 0;
        r->ra_bytes += len;
        return RC_WINDOW;
    }
    if (!near) {
        r->streak = 0;
        r->streak_bytes = 0;
        if (r->ra_on) {
            log_debug("read: '%s' seek to %" PRIu64 " drops the window at %" PRIu64, r->key, off,
                      r->pos);
            atomic_fetch_add(&p->drops, 1);
            window_drop_locked(r);
        }
        return RC_RANDOM;
    }
    r->streak++;
    r->streak_bytes += len;
    if (r->ra_on) {
        /* A second sequential stream (another region read through the same open file) is
           served directly while the window is in use; once it alone goes on, the window moves
           to it (a file read again from the start, say). */
        if (++r->off_window < RA_MIN_STREAK)
            return RC_SEQ;
        log_debug("read: '%s' stream moved to %" PRIu64 "; window at %" PRIu64 " dropped", r->key,
                  off, r->pos);
        atomic_fetch_add(&p->drops, 1);
        window_drop_locked(r);
    }
    if (p->max_win && !r->stale && r->streak >= RA_MIN_STREAK &&
        (r->streak_bytes >= RA_MIN_BYTES || r->streak >= RA_SMALL_STREAK)) {
        /* This read is served directly; the window starts at the next chunk boundary so no
           byte already fetched is fetched again. */
        r->ra_on = true;
        r->off_window = 0;
        r->pos = end;
        r->ra_next = (end + p->chunk_bytes - 1) / p->chunk_bytes;
        r->win = p->init_win;
        r->ra_bytes = r->streak_bytes;
        atomic_fetch_add(&p->windows, 1);
        log_debug("read: '%s' is read sequentially; readahead from %" PRIu64, r->key, end);
        return RC_WINDOW;
    }
    return RC_SEQ;
}

/* Issues the chunks of [OFF, END) that the window has not issued yet, as a run for this read to
 * take (the read runs it itself unless a worker is quicker). Chunks between the window's end and
 * the read are issued too, unless the read jumped further than the window reaches: a read
 * ahead of the window is mostly a reordered async read, and its predecessors follow. */
static void window_plan_locked(struct efc_reader *r, uint64_t off, uint64_t end)
{
    struct efc_reader_pool *p = r->pool;
    uint64_t first = off / p->chunk_bytes, last = (end - 1) / p->chunk_bytes;

    r->pos = max_u64(r->pos, end);
    if (r->closed || r->stale)
        return;
    if (first > r->ra_next + r->win)
        r->ra_next = first;
    while (r->ra_next < first) {
        unsigned n = (unsigned)min_u64(first - r->ra_next, p->run_cap);
        unsigned got = r->nfetch < p->max_inflight ? run_issue_locked(r, r->ra_next, n, true) : 0;
        if (got == 0) {
            r->ra_next = first; /* the rest of the gap will be read directly */
            break;
        }
        r->ra_next += got;
    }
    if (r->ra_next <= last) {
        unsigned n = (unsigned)min_u64(last + 1 - r->ra_next, p->run_cap);
        /* Without memory for all of them the rest of this read goes direct, and so does the
           rest of those chunks (fetching them later would fetch again what this read got). */
        run_issue_locked(r, r->ra_next, n, false);
        r->ra_next = last + 1;
    }
}

/* Copies [FROM, TO) (inside chunk C) to DST, waiting for C or fetching it. Returns the bytes
 * copied (fewer only at the object's end) or -errno. *OWN is set when this read had to fetch
 * (take C's run off the queue, or retry C directly). */
static ssize_t serve_chunk_locked(struct efc_reader *r, struct rchunk *c, uint64_t from,
                                  uint64_t to, uint8_t *dst, bool *own, int *src_from)
{
    struct efc_reader_pool *p = r->pool;
    ssize_t n;

    c->pins++;
    if (!c->touched) {
        c->touched = true;
        if (c->ahead && r->ra_on) {
            /* Readahead paid off: double the window, but keep it within RA_GROWTH times what
               the stream has read, so an abandoned stream wastes little more than it read. */
            uint64_t cap = min_u64(p->max_win, RA_GROWTH * r->ra_bytes / p->chunk_bytes);
            r->win = (unsigned)max_u64(r->win, min_u64((uint64_t)r->win * 2, cap));
        }
    }
    while (c->st != CH_DONE) {
        struct rfetch *f = c->f;
        if (c->st == CH_QUEUED && fetch_dequeue(p, f)) {
            unsigned j = 0;
            while (f->c[j] != c)
                j++;
            fetch_split_locked(r, f, j);
            *own = true;
            fetch_run_locked(r, f);
            window_pump_locked(r);
        } else {
            pthread_cond_wait(&r->cv, &r->lock);
        }
    }
    if (c->err == 0) {
        size_t a = (size_t)(from - c->off), b = (size_t)min_u64(to - c->off, c->valid);
        n = b > a ? (ssize_t)(b - a) : 0;
        pthread_mutex_unlock(&r->lock);
        memcpy(dst, c->buf + a, (size_t)n);
        pthread_mutex_lock(&r->lock);
        c->consumed += (size_t)n;
        *src_from = *src_from > c->from ? *src_from : c->from;
    } else if (c->err == -ESTALE || r->stale) {
        n = -ESTALE;
    } else {
        *own = true;
        atomic_fetch_add(&p->retries, 1);
        n = direct_locked(r, from, to - from, dst, src_from);
    }
    c->pins--;
    if (c->in_list && (c->err || c->consumed >= c->valid))
        chunk_drop_locked(r, c); /* read to its end, or failed: never used again */
    else
        chunk_maybe_free_locked(r, c);
    return n;
}

/* ---- workers ---------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    struct efc_reader_pool *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct rfetch *f = TAILQ_FIRST(&p->queue);
        if (f == NULL) {
            if (p->stopping)
                break;
            p->idle++;
            pthread_cond_wait(&p->work_cv, &p->lock);
            p->idle--;
            continue;
        }
        TAILQ_REMOVE(&p->queue, f, qlink);
        f->queued = false;
        p->qlen--;
        pthread_mutex_unlock(&p->lock);

        struct efc_reader *r = f->r;
        pthread_mutex_lock(&r->lock);
        fetch_run_locked(r, f);
        window_pump_locked(r);
        reader_unlock(r);

        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ---- public ----------------------------------------------------------------------------- */

int efc_reader_pool_new(struct blksrc *src, const struct efc_read_config *cfg,
                        struct efc_reader_pool **out)
{
    struct efc_reader_pool *p;

    if (src == NULL || cfg == NULL || out == NULL)
        return -EINVAL;
    uint64_t cs = src->block_size;
    if (cs < MIN_CHUNK_BYTES || cs > MAX_CHUNK_BYTES)
        return -EINVAL;
    if (cfg->cache && cache_block_size(cfg->cache) != cs)
        return -EINVAL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->src = src;
    p->cache = cfg->cache;
    p->chunk_bytes = cs;
    p->max_inflight = cfg->max_inflight ? cfg->max_inflight : DEFAULT_MAX_INFLIGHT;
    p->max_threads = cfg->threads ? cfg->threads : DEFAULT_THREADS;
    if (p->max_threads > MAX_THREADS)
        p->max_threads = MAX_THREADS;
    p->mem_limit = cfg->mem_limit ? cfg->mem_limit : DEFAULT_MEM_LIMIT;
    uint64_t win = cfg->ahead_bytes / cs;
    if (cfg->ahead_bytes && win == 0)
        win = 1;
    win = min_u64(win, p->mem_limit / cs); /* more could never be held */
    if (p->cache) {
        /* Readahead into the cache must not evict what it fetched before the reader gets
           there: keep the window within half of what the cache holds. A cache that holds
           nothing (its only disk directory unusable, no memory) is no use: read without it. */
        struct cache_stats cst;
        cache_get_stats(p->cache, &cst);
        uint64_t hold = (cst.mem_capacity + cst.disk_capacity) / cs;
        if (hold == 0) {
            log_warn("read: the block cache holds no block; reading without it");
            p->cache = NULL;
        } else {
            win = min_u64(win, max_u64(hold / 2, 1));
        }
    }
    p->max_win = (unsigned)min_u64(win, UINT32_MAX / 2);
    p->init_win = (unsigned)min_u64(RA_INITIAL_CHUNKS, p->max_win);
    p->run_cap = (unsigned)max_u64(RUN_MAX_BYTES / cs, 1);
    p->cache_run_cap = (unsigned)max_u64(CACHE_RUN_MAX_BYTES / cs, 1);
    p->threads = calloc(p->max_threads, sizeof(pthread_t));
    if (p->threads == NULL) {
        free(p);
        return -ENOMEM;
    }
    TAILQ_INIT(&p->queue);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    *out = p;
    return 0;
}

void efc_reader_pool_free(struct efc_reader_pool *p)
{
    if (p == NULL)
        return;
    uint64_t open = atomic_load(&p->readers);
    if (open)
        log_warn("read: freeing the reader pool with %" PRIu64 " readers still open", open);
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work_cv);
    unsigned n = p->nthreads;
    pthread_mutex_unlock(&p->lock);
    /* No thread starts once stopping is set, so nthreads is final. */
    for (unsigned i = 0; i < n; i++)
        pthread_join(p->threads[i], NULL);
    while (p->spare) {
        void *b = p->spare;
        memcpy(&p->spare, b, sizeof(void *));
        free(b);
    }
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

int efc_reader_open(struct efc_reader_pool *p, const char *key, const char *etag, uint64_t size,
                    struct efc_reader **out)
{
    struct efc_reader *r;

    if (p == NULL || key == NULL || key[0] == '\0' || out == NULL)
        return -EINVAL;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->key = strdup(key);
    r->etag = etag && etag[0] ? strdup(etag) : NULL;
    if (r->key == NULL || (etag && etag[0] && r->etag == NULL)) {
        free(r->key);
        free(r->etag);
        free(r);
        return -ENOMEM;
    }
    r->pool = p;
    r->size = size;
    r->nchunks = size / p->chunk_bytes + (size % p->chunk_bytes != 0);
    r->refs = 1;
    r->win = p->init_win;
    TAILQ_INIT(&r->chunks);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_fetch_add(&p->readers, 1);
    *out = r;
    return 0;
}

/* Counts a cacheless read of N bytes whose bytes came from FROM (the worst enum blk_from, -1 for
 * none) as the tier_* counters would: a hit when peers held every byte, a miss when an origin
 * fetch was needed, direct when a peer failed and the origin answered instead. */
static void count_tier(struct efc_reader_pool *p, int from, uint64_t n)
{
    atomic_fetch_add(&p->t_read, 1);
    atomic_fetch_add(&p->t_read_bytes, n);
    if (from < 0 || from == BLK_FROM_PEER) {
        atomic_fetch_add(&p->t_hit, 1);
        atomic_fetch_add(&p->t_hit_bytes, n);
    } else if (from == BLK_FROM_FALLBACK) {
        atomic_fetch_add(&p->t_direct, 1);
        atomic_fetch_add(&p->t_direct_bytes, n);
    } else {
        atomic_fetch_add(&p->t_miss, 1);
        atomic_fetch_add(&p->t_miss_bytes, n);
    }
}

/* ---- through the block cache ------------------------------------------------------------ */

/* The window of a cached reader after its read ending at END (RC_WINDOW): moves pos, grows win
 * and sets RUNS[0..*NRUNS) to the runs of blocks to prefetch now, [first, end) each. As
 * window_pump_locked: runs of win / max_inflight blocks (at most the cache's run), so that
 * max_inflight requests fetch the window in parallel, and a short run only when the reader is
 * getting close or the object ends. */
static void cache_window_locked(struct efc_reader *r, uint64_t end, uint64_t runs[][2],
                                unsigned *nruns)
{
    struct efc_reader_pool *p = r->pool;
    uint64_t cs = p->chunk_bytes;

    *nruns = 0;
    r->pos = max_u64(r->pos, end);
    if (r->closed || r->stale)
        return;
    uint64_t grow = min_u64(p->max_win, RA_GROWTH * r->ra_bytes / cs);
    r->win = (unsigned)max_u64(r->win, grow);
    /* blocks the read itself touches are the read's (cache_read); the window starts after */
    r->ra_next = max_u64(r->ra_next, (end + cs - 1) / cs);
    uint64_t at = (r->pos - 1) / cs; /* pos >= end > 0 */
    uint64_t want = min_u64(r->nchunks, at + 1 + r->win);
    unsigned run = (unsigned)min_u64(max_u64(r->win / p->max_inflight, 1), p->cache_run_cap);
    while (r->ra_next < want && *nruns < CACHE_RUNS_MAX) {
        /* aligned on the cache's run, as the cache cuts runs (cache_prefetch) */
        uint64_t edge = p->cache_run_cap - r->ra_next % p->cache_run_cap;
        unsigned n = (unsigned)min_u64(min_u64(want - r->ra_next, run), edge);
        uint64_t lead = r->ra_next > at ? r->ra_next - at : 0;
        if (n < run && n < edge && r->ra_next + n < r->nchunks && 2 * lead > r->win)
            break;
        runs[*nruns][0] = r->ra_next;
        runs[*nruns][1] = r->ra_next + n;
        (*nruns)++;
        r->ra_next += n;
    }
}

/* Classifies the read [OFF, END) of a cached reader and queues its window's prefetches.
 * 0, or -ESTALE for a reader whose object changed. */
static int cache_reader_prepare(struct efc_reader *r, uint64_t off, uint64_t end)
{
    struct efc_reader_pool *p = r->pool;
    uint64_t runs[CACHE_RUNS_MAX][2];
    unsigned nruns = 0;

    pthread_mutex_lock(&r->lock);
    if (r->stale) {
        pthread_mutex_unlock(&r->lock);
        return -ESTALE;
    }
    if (classify_locked(r, off, end) == RC_WINDOW)
        cache_window_locked(r, end, runs, &nruns);
    pthread_mutex_unlock(&r->lock);

    /* One call per run: the cache makes each one source request. */
    for (unsigned i = 0; i < nruns; i++) {
        uint64_t cs = p->chunk_bytes, from = runs[i][0], to = runs[i][1];
        int prc =
            cache_prefetch(p->cache, r->key, r->etag, r->size, from * cs, (to - from) * cs, 0);
        if (prc && prc != -EAGAIN)
            log_debug("read: prefetch of '%s' blocks %" PRIu64 "-%" PRIu64 ": %s", r->key, from,
                      to - 1, strerror(-prc));
        if (prc)
            break;
    }
    return 0;
}

/* The bytes of a prepared read, copied through the cache. */
static ssize_t cache_reader_copy(struct efc_reader *r, uint64_t off, uint64_t end, void *buf)
{
    struct efc_reader_pool *p = r->pool;
    ssize_t n = cache_read(p->cache, r->key, r->etag, r->size, off, end - off, buf);
    if (n == -EINVAL) {
        atomic_fetch_add(&p->cache_bypass, 1);
        int unused = -1;
        n = direct_get(p, r, off, end - off, buf, &unused);
    }
    if (n == -ESTALE) { /* other errors were logged by the source (and fs.c's op_read) */
        pthread_mutex_lock(&r->lock);
        mark_stale_locked(r);
        pthread_mutex_unlock(&r->lock);
    }
    return n;
}

static ssize_t cache_reader_read(struct efc_reader *r, uint64_t off, uint64_t end, void *buf)
{
    int rc = cache_reader_prepare(r, off, end);
    return rc ? rc : cache_reader_copy(r, off, end, buf);
}

ssize_t efc_reader_read(struct efc_reader *r, uint64_t off, size_t size, void *buf)
{
    struct efc_reader_pool *p = r->pool;
    uint8_t *dst = buf;

    if (off >= r->size || size == 0)
        return 0;
    uint64_t end = off + min_u64(size, r->size - off);
    uint64_t cur = off, dstart = UINT64_MAX; /* start of a pending run of direct bytes */
    ssize_t rc = 0;
    bool own = false, ahead_only = true;
    int rfrom = -1; /* where the read's bytes came from: the worst enum blk_from */

    if (p->cache && r->etag) {
        rc = cache_reader_read(r, off, end, buf);
        if (rc > 0) {
            atomic_fetch_add(&p->reads, 1);
            atomic_fetch_add(&p->bytes_read, (uint64_t)rc);
        }
        return rc;
    }

    pthread_mutex_lock(&r->lock);
    if (r->stale) {
        pthread_mutex_unlock(&r->lock);
        return -ESTALE;
    }
    enum read_class cls = classify_locked(r, off, end);
    if (cls == RC_WINDOW) {
        window_plan_locked(r, off, end);
        window_pump_locked(r);
    }
    while (cur < end) {
        uint64_t idx = cur / p->chunk_bytes;
        uint64_t pend = min_u64(end, (idx + 1) * p->chunk_bytes);
        struct rchunk *c = TAILQ_EMPTY(&r->chunks) ? NULL : window_find_locked(r, idx);
        if (c == NULL) {
            if (dstart == UINT64_MAX)
                dstart = cur;
            cur = pend;
            continue;
        }
        if (dstart != UINT64_MAX) {
            /* Flush the direct bytes first; C may be gone once the lock was dropped, so the
               loop looks it up again. */
            own = true;
            rc = direct_locked(r, dstart, cur - dstart, dst + (dstart - off), &rfrom);
            if (rc < 0)
                break;
            if ((uint64_t)rc < cur - dstart) { /* the object ended early */
                end = cur = dstart + (uint64_t)rc;
                dstart = UINT64_MAX;
                break;
            }
            dstart = UINT64_MAX;
            continue;
        }
        ahead_only = ahead_only && c->ahead;
        rc = serve_chunk_locked(r, c, cur, pend, dst + (cur - off), &own, &rfrom);
        if (rc < 0)
            break;
        cur += (uint64_t)rc;
        if (cur < pend) {
            end = cur;
            break;
        }
    }
    if (rc >= 0 && dstart != UINT64_MAX) {
        own = true;
        rc = direct_locked(r, dstart, end - dstart, dst + (dstart - off), &rfrom);
        if (rc >= 0)
            end = dstart + (uint64_t)rc;
    }
    if (rc >= 0 && cls == RC_WINDOW && r->ra_on) {
        atomic_fetch_add(own || !ahead_only ? &p->ra_misses : &p->ra_hits, 1);
        window_trim_locked(r);
        window_pump_locked(r);
    }
    pthread_mutex_unlock(&r->lock);
    if (rc < 0)
        return rc;
    atomic_fetch_add(&p->reads, 1);
    atomic_fetch_add(&p->bytes_read, end - off);
    count_tier(p, rfrom, end - off);
    return (ssize_t)(end - off);
}

ssize_t efc_reader_read_ref(struct efc_reader *r, uint64_t off, size_t size,
                            struct efc_read_ref *out)
{
    struct efc_reader_pool *p = r->pool;
    ssize_t n;

    memset(out, 0, sizeof(*out));
    if (off >= r->size || size == 0)
        return 0;
    uint64_t end = off + min_u64(size, r->size - off);
    if (p->cache && r->etag) {
        int rc = cache_reader_prepare(r, off, end);
        if (rc)
            return rc;
        /* A read across two blocks cannot be one pinned span: it takes the copy (asking the
           cache would count it as a read twice). */
        uint64_t cs = p->chunk_bytes;
        if (off / cs == (end - 1) / cs &&
            cache_ref_get(p->cache, r->key, r->etag, r->size, off, end - off, 0, &out->ref_) == 0) {
            out->data = out->ref_.data;
            out->len = out->ref_.len; /* == end - off: the span is inside one block */
            atomic_fetch_add(&p->zero_copy, 1);
            atomic_fetch_add(&p->reads, 1);
            atomic_fetch_add(&p->bytes_read, out->len);
            return (ssize_t)out->len;
        }
        out->own_ = malloc(end - off);
        if (out->own_ == NULL)
            return -ENOMEM;
        n = cache_reader_copy(r, off, end, out->own_);
        if (n > 0) {
            atomic_fetch_add(&p->reads, 1);
            atomic_fetch_add(&p->bytes_read, (uint64_t)n);
        }
    } else {
        out->own_ = malloc(end - off);
        if (out->own_ == NULL)
            return -ENOMEM;
        n = efc_reader_read(r, off, end - off, out->own_);
    }
    if (n < 0) {
        free(out->own_);
        out->own_ = NULL;
        return n;
    }
    out->data = out->own_;
    out->len = (size_t)n;
    return n;
}

void efc_reader_ref_put(struct efc_reader *r, struct efc_read_ref *ref)
{
    if (ref->ref_.data)
        cache_ref_put(r->pool->cache, &ref->ref_);
    free(ref->own_);
    memset(ref, 0, sizeof(*ref));
}

void efc_reader_close(struct efc_reader *r)
{
    if (r == NULL)
        return;
    struct efc_reader_pool *p = r->pool;
    pthread_mutex_lock(&r->lock);
    r->closed = true;
    window_drop_locked(r);
    r->refs--;
    atomic_fetch_sub(&p->readers, 1);
    reader_unlock(r);
}

void efc_reader_pool_clear_tier(struct efc_reader_pool *p)
{
    atomic_uint_fast64_t *t[] = {&p->t_read, &p->t_read_bytes, &p->t_hit,    &p->t_hit_bytes,
                                 &p->t_miss, &p->t_miss_bytes, &p->t_direct, &p->t_direct_bytes};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        atomic_store(t[i], 0);
}

void efc_reader_pool_stats(struct efc_reader_pool *p, struct efc_read_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->reads = atomic_load(&p->reads);
    st->bytes_read = atomic_load(&p->bytes_read);
    st->direct_gets = atomic_load(&p->direct_gets);
    st->chunk_gets = atomic_load(&p->chunk_gets);
    st->gets = st->direct_gets + st->chunk_gets;
    st->chunks = atomic_load(&p->chunks);
    st->bytes_fetched = atomic_load(&p->bytes_fetched);
    st->ra_hits = atomic_load(&p->ra_hits);
    st->ra_misses = atomic_load(&p->ra_misses);
    st->bytes_wasted = atomic_load(&p->bytes_wasted);
    st->windows = atomic_load(&p->windows);
    st->drops = atomic_load(&p->drops);
    st->cancelled = atomic_load(&p->cancelled);
    st->fetch_errors = atomic_load(&p->fetch_errors);
    st->retries = atomic_load(&p->retries);
    st->budget_denied = atomic_load(&p->budget_denied);
    st->inflight = atomic_load(&p->inflight);
    st->readers = atomic_load(&p->readers);
    st->cache_bypass = atomic_load(&p->cache_bypass);
    st->zero_copy = atomic_load(&p->zero_copy);
    st->tier_read = atomic_load(&p->t_read);
    st->tier_read_bytes = atomic_load(&p->t_read_bytes);
    st->tier_hit = atomic_load(&p->t_hit);
    st->tier_hit_bytes = atomic_load(&p->t_hit_bytes);
    st->tier_miss = atomic_load(&p->t_miss);
    st->tier_miss_bytes = atomic_load(&p->t_miss_bytes);
    st->tier_direct = atomic_load(&p->t_direct);
    st->tier_direct_bytes = atomic_load(&p->t_direct_bytes);
    pthread_mutex_lock(&p->lock);
    st->mem_used = p->mem_used;
    st->mem_peak = p->mem_peak;
    st->threads = p->nthreads;
    pthread_mutex_unlock(&p->lock);
}
