/* cache/s3fifo.c - S3-FIFO over runs of 4 KiB pages, weighted by their pages.
 *
 * The space (see s3fifo.h): pages 0..n-1 in chunks of cp pages (cp: one block). A chunk is free
 * or cut into runs of one class k (cls_pages(k) pages each, cp / that many runs; the pages left
 * over, under one run, stay unused), with a bitmap of its runs in use:
 *
 *     chunk 0            chunk 1            chunk 2            chunk 3
 *     [ class 0: 1 page  ][ class 4: 5 pages ][ free              ][ class cp: 1 run  ]
 *     [x x . x x x ... x ][xxxxx.....xxxxx.  ][                   ][xxxxxxxxxxxxxxxxx ]
 *
 * The classes: 1 to 16 pages one by one, then four steps per power of two (20, 24, 28, 32, 40,
 * 48, ...), as CacheLib spaces its allocation classes by a factor of about 1.25; so a run wastes
 * under a page up to 64 KiB and under a fifth of itself above (a 16.5 KiB object takes 20 KiB;
 * with powers of two it took 32). A mix of 1 KiB to 256 KiB objects and 1 MiB blocks fills 0.90
 * of the bytes of a 2 GiB tier (0.83 with powers of two); every size up to 1 MiB alike 0.78
 * (0.69), as above half a chunk a run still takes a whole chunk (test_mem_classes).
 *
 * Each class has a list of its chunks that have a free run (doubly linked: a chunk leaves it
 * from anywhere when its last run is freed). Free chunks are a stack of those used before, then
 * the never-used ones from the lowest up (fresh), so that runs come from pages already mapped
 * while there are any (a first touch is costly; arena.c maps never-used chunks ahead, taking
 * them out with s3fifo_fresh_take and putting them on the stack). An allocation of class k takes
 * the first free run of the first chunk in class k's list, else cuts a free chunk into class k
 * runs; when neither exists it evicts (below) until one does. A chunk with one live run keeps
 * its whole block from other classes until that run goes (FIFO eviction tends to empty the
 * oldest chunks first, as they were filled together).
 *
 * The queues are indexed by a run's first page. The two FIFOs are singly linked through one
 * `next` array (from older to newer: pop at the tail, push at the head). A FIFO never needs to
 * unlink from its middle except when an owner gives its run back early, and that is rare (a
 * failed fill), so release only marks the run DEAD where it stands: its pages leave the count
 * at once, and the run is freed when it reaches the tail. Frequency (lock-free, touched on every
 * hit) and queue state live in byte arrays of their own so that a touch never races with the
 * queue bookkeeping. The ghost set is a direct-mapped array of 16-bit tags (a collision only
 * forgets or wrongly remembers one ghost, which changes a placement decision, never
 * correctness), half as many as pages.
 *
 * Eviction looks at the small FIFO while it holds more than 10% of the pages (or always, for a
 * hot allocation), else at main. A busy victim (pinned) goes back to the head of its FIFO; once
 * a whole FIFO has been found busy the other one is tried, so a pinned block in a tiny small FIFO
 * cannot starve allocation while main has victims. Every step either frees a run or moves one,
 * and the steps are bounded (4 passes over the runs per victim, and at most as many victims as
 * there were runs when the allocation began).
 */
#include "cache/s3fifo.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { Q_FREE = 0, Q_SMALL = 1, Q_MAIN = 2 };
#define DEAD     0x80 /* in state[]: released while in a FIFO */
#define CFREE    0xff /* in ccls[]: the chunk is free */
#define NCLASSES 60   /* 16 + 4 per power of two from 2^4 to 2^15 pages */

struct fifo {
    uint32_t head, tail, count; /* head: newest; tail: oldest; count includes DEAD runs */
    uint64_t pages;             /* pages of the runs in it, DEAD ones included */
};

struct s3fifo {
    pthread_mutex_t lock;
    uint32_t n;                 /* pages */
    uint32_t nch;               /* chunks */
    uint32_t cshift;            /* log2 of the pages of a chunk */
    uint32_t cw;                /* bitmap words per chunk */
    uint32_t *next;             /* per page (a run's first): toward newer in a FIFO */
    uint32_t *owner;            /* per page: lock */
    uint8_t *freq;              /* per page: 0..3; atomic (s3fifo_touch takes no lock) */
    uint8_t *state;             /* per page: Q_* | DEAD; lock */
    uint8_t *ccls;              /* per chunk: its class, or CFREE */
    uint32_t *cfree;            /* per chunk: runs free in it */
    uint32_t *cnext, *cprev;    /* per chunk: its class's list, or the free stack (cnext) */
    uint64_t *cbits;            /* per chunk: cw words, a bit per run in use */
    uint32_t partial[NCLASSES]; /* per class: chunks with a free run */
    uint32_t cpages[NCLASSES];  /* per class: pages of a run */
    uint32_t cruns[NCLASSES];   /* per class: runs in a chunk (0: larger than a chunk) */
    uint32_t free_top;          /* free chunks used before (or prepared), a stack */
    uint32_t nfree;             /* chunks in that stack; atomic reads */
    uint32_t fresh;             /* chunks fresh.. are free and never used; atomic reads */
    struct fifo small, main;
    uint64_t used, items; /* pages and runs with a live owner; lock */
    uint16_t *ghost;
    uint32_t gmask;
};

/* ---- the space ---- */

/* The size classes, in pages: 1, 2, ..., 16, then four steps per power of two (20, 24, 28, 32,
 * 40, 48, 56, 64, 80, ...) up to 2^15. A run wastes less than a page below 64 KiB and less than
 * a fifth of itself above (CacheLib's allocator spaces its classes by a factor of 1.25 too). */
static uint32_t cls_of(uint32_t npages)
{
    if (npages <= 16)
        return npages ? npages - 1 : 0;
    uint32_t j = 31 - (uint32_t)__builtin_clz(npages - 1); /* 2^j < npages <= 2^(j+1), j >= 4 */
    uint32_t step = 1u << (j - 2);
    uint32_t m = (npages - (1u << j) + step - 1) >> (j - 2); /* 1..4 */
    return 16 + (j - 4) * 4 + m - 1;
}

static uint32_t cls_pages(uint32_t k)
{
    if (k < 16)
        return k + 1;
    uint32_t j = 4 + (k - 16) / 4, m = (k - 16) % 4 + 1;
    return (1u << j) + (m << (j - 2));
}

uint32_t s3fifo_run_pages(uint32_t npages)
{
    return cls_pages(cls_of(npages ? npages : 1));
}

static uint32_t run_pages_at(const struct s3fifo *q, uint32_t page)
{
    return q->cpages[q->ccls[page >> q->cshift]];
}

static void part_remove(struct s3fifo *q, uint32_t k, uint32_t ch)
{
    uint32_t p = q->cprev[ch], nx = q->cnext[ch];
    if (p != S3FIFO_NIL)
        q->cnext[p] = nx;
    else
        q->partial[k] = nx;
    if (nx != S3FIFO_NIL)
        q->cprev[nx] = p;
}

static void part_push(struct s3fifo *q, uint32_t k, uint32_t ch)
{
    q->cprev[ch] = S3FIFO_NIL;
    q->cnext[ch] = q->partial[k];
    if (q->partial[k] != S3FIFO_NIL)
        q->cprev[q->partial[k]] = ch;
    q->partial[k] = ch;
}

/* A free chunk: one used before (its pages are mapped) if there is one, else the next one never
 * used; NIL when none is free. Lock held. */
static uint32_t chunk_take(struct s3fifo *q)
{
    uint32_t ch = q->free_top;
    if (ch != S3FIFO_NIL) {
        q->free_top = q->cnext[ch];
        __atomic_store_n(&q->nfree, q->nfree - 1, __ATOMIC_RELAXED);
        return ch;
    }
    if (q->fresh < q->nch) {
        ch = q->fresh;
        __atomic_store_n(&q->fresh, ch + 1, __ATOMIC_RELAXED);
        return ch;
    }
    return S3FIFO_NIL;
}

/* A free run of class K, or NIL. Lock held. */
static uint32_t run_alloc(struct s3fifo *q, uint32_t k)
{
    uint32_t ch = q->partial[k];
    if (ch == S3FIFO_NIL) {
        ch = chunk_take(q);
        if (ch == S3FIFO_NIL)
            return S3FIFO_NIL;
        q->ccls[ch] = (uint8_t)k;
        q->cfree[ch] = q->cruns[k];
        memset(q->cbits + (size_t)ch * q->cw, 0, 8ull * q->cw);
        part_push(q, k, ch);
    }
    uint64_t *bits = q->cbits + (size_t)ch * q->cw;
    uint32_t r = 0;
    for (uint32_t w = 0; w < q->cw; w++) {
        if (~bits[w]) {
            r = w * 64 + (uint32_t)__builtin_ctzll(~bits[w]);
            break;
        }
    }
    /* The chunk is in the list, so a run below its count is free (the bits above it stay 0,
       but the lowest free bit comes first). */
    bits[r / 64] |= 1ull << (r % 64);
    if (--q->cfree[ch] == 0)
        part_remove(q, k, ch);
    return (ch << q->cshift) + r * q->cpages[k];
}

/* Frees the run at PAGE. Lock held. */
static void run_free(struct s3fifo *q, uint32_t page)
{
    uint32_t ch = page >> q->cshift, k = q->ccls[ch];
    uint32_t runs = q->cruns[k];
    uint32_t r = (page & ((1u << q->cshift) - 1)) / q->cpages[k];
    q->cbits[(size_t)ch * q->cw + r / 64] &= ~(1ull << (r % 64));
    uint32_t was = q->cfree[ch]++;
    if (q->cfree[ch] == runs) {
        if (was > 0)
            part_remove(q, k, ch);
        q->ccls[ch] = CFREE;
        q->cnext[ch] = q->free_top;
        q->free_top = ch;
        __atomic_store_n(&q->nfree, q->nfree + 1, __ATOMIC_RELAXED);
    } else if (was == 0) {
        part_push(q, k, ch);
    }
}

/* ---- the queues ---- */

static void fifo_push(struct s3fifo *q, struct fifo *l, uint32_t s, uint8_t which)
{
    q->state[s] = (uint8_t)(which | (q->state[s] & DEAD));
    q->next[s] = S3FIFO_NIL;
    if (l->head != S3FIFO_NIL)
        q->next[l->head] = s;
    else
        l->tail = s;
    l->head = s;
    l->count++;
    l->pages += run_pages_at(q, s);
}

static uint32_t fifo_pop(struct s3fifo *q, struct fifo *l)
{
    uint32_t s = l->tail;
    l->tail = q->next[s];
    if (l->tail == S3FIFO_NIL)
        l->head = S3FIFO_NIL;
    l->count--;
    l->pages -= run_pages_at(q, s);
    return s;
}

struct s3fifo *s3fifo_new(uint32_t nchunks, uint32_t chunk_pages)
{
    if (chunk_pages == 0 || (chunk_pages & (chunk_pages - 1)) || chunk_pages > (1u << 15) ||
        (uint64_t)nchunks * chunk_pages > (1ull << 31))
        return NULL;
    struct s3fifo *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    uint32_t nslots = nchunks * chunk_pages;
    uint32_t g = 1;
    while (g < nslots / 2)
        g <<= 1;
    size_t n = nslots ? nslots : 1, nc = nchunks ? nchunks : 1;
    q->n = nslots;
    q->nch = nchunks;
    q->cshift = (uint32_t)__builtin_ctz(chunk_pages);
    q->cw = (chunk_pages + 63) / 64;
    q->next = malloc(n * sizeof(*q->next));
    q->owner = malloc(n * sizeof(*q->owner));
    q->freq = calloc(n, 1);
    q->state = calloc(n, 1); /* Q_FREE */
    q->ccls = malloc(nc);
    q->cfree = malloc(nc * sizeof(*q->cfree));
    q->cnext = malloc(nc * sizeof(*q->cnext));
    q->cprev = malloc(nc * sizeof(*q->cprev));
    q->cbits = malloc(nc * q->cw * sizeof(*q->cbits));
    q->ghost = calloc(g, sizeof(*q->ghost));
    if (!q->next || !q->owner || !q->freq || !q->state || !q->ccls || !q->cfree || !q->cnext ||
        !q->cprev || !q->cbits || !q->ghost) {
        s3fifo_free(q);
        return NULL;
    }
    q->gmask = g - 1;
    pthread_mutex_init(&q->lock, NULL);
    q->small = q->main = (struct fifo){S3FIFO_NIL, S3FIFO_NIL, 0, 0};
    for (uint32_t k = 0; k < NCLASSES; k++) {
        q->partial[k] = S3FIFO_NIL;
        q->cpages[k] = cls_pages(k);
        q->cruns[k] = chunk_pages / q->cpages[k];
    }
    /* No chunk used yet: the arena fills from its start, and reuses freed chunks first. */
    q->free_top = S3FIFO_NIL;
    q->fresh = 0;
    memset(q->ccls, CFREE, nc);
    return q;
}

void s3fifo_free(struct s3fifo *q)
{
    if (!q)
        return;
    if (q->ghost)
        pthread_mutex_destroy(&q->lock);
    free(q->next);
    free(q->owner);
    free(q->freq);
    free(q->state);
    free(q->ccls);
    free(q->cfree);
    free(q->cnext);
    free(q->cprev);
    free(q->cbits);
    free(q->ghost);
    free(q);
}

static uint8_t freq_get(struct s3fifo *q, uint32_t s)
{
    return __atomic_load_n(&q->freq[s], __ATOMIC_RELAXED);
}

static void freq_set(struct s3fifo *q, uint32_t s, uint8_t f)
{
    __atomic_store_n(&q->freq[s], f, __ATOMIC_RELAXED);
}

static uint32_t ghost_index(const struct s3fifo *q, uint64_t fp)
{
    return (uint32_t)fp & q->gmask;
}

static uint16_t ghost_tag(uint64_t fp)
{
    uint16_t t = (uint16_t)(fp >> 48); /* bits the index does not use */
    return t ? t : 1;
}

/* Finds a victim and frees its run (or frees a DEAD run). Returns 1 if a run was freed, 0 if
 * every candidate was busy. Lock held. */
static int evict_one(struct s3fifo *q, int prefer_small, s3fifo_evict_fn fn, void *arg,
                     int *evicted)
{
    uint64_t budget = 4ull * (q->small.count + q->main.count) + 16;
    uint32_t small_busy = 0, main_busy = 0; /* busy victims met in a row, per FIFO */
    while (budget-- > 0) {
        struct fifo *sm = &q->small, *mn = &q->main;
        int small_ok = sm->count > 0 && small_busy < sm->count;
        int main_ok = mn->count > 0 && main_busy < mn->count;
        if (!small_ok && !main_ok)
            return 0;
        int from_small = small_ok && (prefer_small || sm->pages * 10 > q->n || !main_ok);
        uint32_t s = fifo_pop(q, from_small ? sm : mn);
        if (q->state[s] & DEAD) {
            q->state[s] = Q_FREE; /* given back earlier: nobody to ask */
            run_free(q, s);
            return 1;
        }
        uint8_t f = freq_get(q, s);
        if (f > 0) {
            /* Accessed: from small to main, or around main once more with one access less. */
            freq_set(q, s, from_small ? 0 : (uint8_t)(f - 1));
            fifo_push(q, mn, s, Q_MAIN);
            main_busy = 0;
            continue;
        }
        uint64_t vfp = 0;
        int r = fn(arg, s, q->owner[s], &vfp);
        if (r == S3FIFO_EVICTED) {
            if (from_small)
                q->ghost[ghost_index(q, vfp)] = ghost_tag(vfp);
            (*evicted)++;
            q->state[s] = Q_FREE;
            q->owner[s] = S3FIFO_NIL;
            q->used -= run_pages_at(q, s);
            q->items--;
            run_free(q, s);
            return 1;
        }
        if (r == S3FIFO_KEEP) {
            fifo_push(q, mn, s, Q_MAIN);
            main_busy = 0;
            continue;
        }
        /* Busy (pinned): another round for it rather than spinning on it. */
        fifo_push(q, from_small ? sm : mn, s, from_small ? Q_SMALL : Q_MAIN);
        if (from_small)
            small_busy++;
        else
            main_busy++;
    }
    return 0;
}

uint32_t s3fifo_alloc(struct s3fifo *q, uint64_t fp, uint32_t owner, uint32_t npages, int hot,
                      s3fifo_evict_fn fn, void *arg, int *evicted)
{
    *evicted = 0;
    uint32_t k = cls_of(npages ? npages : 1);
    if (npages > (1u << q->cshift))
        return S3FIFO_NIL;
    pthread_mutex_lock(&q->lock);
    uint64_t rounds = (uint64_t)q->small.count + q->main.count + 1;
    uint32_t s;
    while ((s = run_alloc(q, k)) == S3FIFO_NIL) {
        if (rounds-- == 0 || !evict_one(q, hot, fn, arg, evicted)) {
            pthread_mutex_unlock(&q->lock);
            return S3FIFO_NIL;
        }
    }
    q->used += q->cpages[k];
    q->items++;
    q->owner[s] = owner;
    freq_set(q, s, 0);
    q->state[s] = Q_FREE;
    uint32_t gi = ghost_index(q, fp);
    uint16_t tag = ghost_tag(fp);
    if (q->ghost[gi] == tag)
        q->ghost[gi] = 0;
    else if (!hot)
        gi = S3FIFO_NIL;
    if (gi != S3FIFO_NIL)
        fifo_push(q, &q->main, s, Q_MAIN);
    else
        fifo_push(q, &q->small, s, Q_SMALL);
    pthread_mutex_unlock(&q->lock);
    return s;
}

void s3fifo_release(struct s3fifo *q, uint32_t page)
{
    pthread_mutex_lock(&q->lock);
    if (page < q->n && q->state[page] != Q_FREE && !(q->state[page] & DEAD)) {
        q->state[page] |= DEAD;
        q->owner[page] = S3FIFO_NIL;
        q->used -= run_pages_at(q, page);
        q->items--;
    }
    pthread_mutex_unlock(&q->lock);
}

void s3fifo_touch(struct s3fifo *q, uint32_t page)
{
    uint8_t f = freq_get(q, page);
    if (f < 3)
        freq_set(q, page, (uint8_t)(f + 1));
}

uint64_t s3fifo_used(struct s3fifo *q)
{
    pthread_mutex_lock(&q->lock);
    uint64_t u = q->used;
    pthread_mutex_unlock(&q->lock);
    return u;
}

uint64_t s3fifo_items(struct s3fifo *q)
{
    pthread_mutex_lock(&q->lock);
    uint64_t u = q->items;
    pthread_mutex_unlock(&q->lock);
    return u;
}

int s3fifo_fresh_wanted(struct s3fifo *q, uint32_t max_free)
{
    return __atomic_load_n(&q->nfree, __ATOMIC_RELAXED) < max_free &&
           __atomic_load_n(&q->fresh, __ATOMIC_RELAXED) < q->nch;
}

uint32_t s3fifo_fresh_take(struct s3fifo *q, uint32_t max_free)
{
    uint32_t ch = S3FIFO_NIL;
    pthread_mutex_lock(&q->lock);
    if (q->nfree < max_free && q->fresh < q->nch) {
        ch = q->fresh;
        __atomic_store_n(&q->fresh, ch + 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&q->lock);
    return ch;
}

void s3fifo_fresh_put(struct s3fifo *q, uint32_t chunk)
{
    pthread_mutex_lock(&q->lock);
    q->cnext[chunk] = q->free_top;
    q->free_top = chunk;
    __atomic_store_n(&q->nfree, q->nfree + 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&q->lock);
}

uint64_t s3fifo_npages(const struct s3fifo *q)
{
    return q->n;
}

uint64_t s3fifo_bytes(const struct s3fifo *q)
{
    uint64_t n = q->n ? q->n : 1, nc = q->nch ? q->nch : 1;
    return sizeof(*q) + n * (sizeof(*q->next) + sizeof(*q->owner) + 2) +
           (uint64_t)(q->gmask + 1) * sizeof(*q->ghost) +
           nc * (1 + 3 * sizeof(uint32_t) + 8ull * q->cw);
}
