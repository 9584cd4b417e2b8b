/* cache/s3fifo.c - S3-FIFO over slot indices, at 10 bytes a slot.
 *
 * The two FIFOs are singly linked through one `next` array (from older to newer: pop at the
 * tail, push at the head), and the free slots form a stack through the same array. A FIFO never
 * needs to unlink from its middle except when an owner gives its slot back early, and that is
 * rare (a failed disk write), so release only marks the slot DEAD where it stands: it leaves the
 * FIFO when it reaches the tail, and is then reused at once without asking anybody. Frequency
 * (lock-free, touched on every hit) and queue state live in byte arrays of their own so that a
 * touch never races with the queue bookkeeping. The ghost set is a direct-mapped array of 16-bit
 * tags (a collision only forgets or wrongly remembers one ghost, which changes a placement
 * decision, never correctness), about half as many as slots.
 *
 * Eviction looks at the small FIFO while it holds more than 10% of the slots (or always, for a
 * hot allocation), else at main. A busy victim (pinned) goes back to the head of its FIFO; once
 * a whole FIFO has been found busy the other one is tried, so a pinned block in a tiny small FIFO
 * cannot starve allocation while main has victims. Every step either evicts or moves one slot,
 * and the steps are bounded (4 passes over the slots), so a call is O(n) at worst.
 */
#include "cache/s3fifo.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

enum { Q_FREE = 0, Q_SMALL = 1, Q_MAIN = 2 };
#define DEAD 0x80 /* in state[]: released while in a FIFO */

struct fifo {
    uint32_t head, tail, count; /* head: newest; tail: oldest; count includes DEAD slots */
};

struct s3fifo {
    pthread_mutex_t lock;
    uint32_t n;
    uint32_t *next;  /* toward newer in a FIFO; the next free slot in the free stack */
    uint32_t *owner; /* lock */
    uint8_t *freq;   /* 0..3; atomic (s3fifo_touch takes no lock) */
    uint8_t *state;  /* Q_* | DEAD; lock */
    struct fifo small, main;
    uint32_t free_top; /* lock */
    uint32_t used;     /* slots with a live owner; lock */
    int built;         /* the free stack exists: claims are over */
    uint16_t *ghost;
    uint32_t gmask;
};

static void fifo_push(struct s3fifo *q, struct fifo *l, uint32_t s, uint8_t which)
{
    q->state[s] = which;
    q->next[s] = S3FIFO_NIL;
    if (l->head != S3FIFO_NIL)
        q->next[l->head] = s;
    else
        l->tail = s;
    l->head = s;
    l->count++;
}

static uint32_t fifo_pop(struct s3fifo *q, struct fifo *l)
{
    uint32_t s = l->tail;
    l->tail = q->next[s];
    if (l->tail == S3FIFO_NIL)
        l->head = S3FIFO_NIL;
    l->count--;
    return s;
}

struct s3fifo *s3fifo_new(uint32_t nslots)
{
    struct s3fifo *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    uint32_t g = 1;
    while (g < nslots / 2 && g < (1u << 31))
        g <<= 1;
    size_t n = nslots ? nslots : 1;
    q->n = nslots;
    q->next = malloc(n * sizeof(*q->next));
    q->owner = malloc(n * sizeof(*q->owner));
    q->freq = calloc(n, 1);
    q->state = calloc(n, 1); /* Q_FREE */
    q->ghost = calloc(g, sizeof(*q->ghost));
    if (!q->next || !q->owner || !q->freq || !q->state || !q->ghost) {
        s3fifo_free(q);
        return NULL;
    }
    q->gmask = g - 1;
    pthread_mutex_init(&q->lock, NULL);
    q->small = q->main = (struct fifo){S3FIFO_NIL, S3FIFO_NIL, 0};
    q->free_top = S3FIFO_NIL;
    for (uint32_t s = 0; s < nslots; s++)
        q->owner[s] = S3FIFO_NIL;
    return q;
}

void s3fifo_free(struct s3fifo *q)
{
    if (!q)
        return;
    if (q->next && q->owner && q->freq && q->state && q->ghost)
        pthread_mutex_destroy(&q->lock);
    free(q->next);
    free(q->owner);
    free(q->freq);
    free(q->state);
    free(q->ghost);
    free(q);
}

/* The free stack, built at the first allocation from whatever claims left: lowest slots on top,
 * so a fresh slot file fills from its start. Lock held. */
static void build_free(struct s3fifo *q)
{
    for (uint32_t s = q->n; s-- > 0;) {
        if (q->state[s] == Q_FREE) {
            q->next[s] = q->free_top;
            q->free_top = s;
        }
    }
    q->built = 1;
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

/* Finds a victim and frees it; returns its slot or NIL. Lock held. */
static uint32_t evict_one(struct s3fifo *q, int prefer_small, s3fifo_evict_fn fn, void *arg,
                          int *evicted)
{
    uint64_t budget = 4ull * q->n + 16;
    uint32_t small_busy = 0, main_busy = 0; /* busy victims met in a row, per FIFO */
    while (budget-- > 0) {
        struct fifo *sm = &q->small, *mn = &q->main;
        int small_ok = sm->count > 0 && small_busy < sm->count;
        int main_ok = mn->count > 0 && main_busy < mn->count;
        if (!small_ok && !main_ok)
            return S3FIFO_NIL;
        int from_small = small_ok && (prefer_small || sm->count * 10ull > q->n || !main_ok);
        uint32_t s = fifo_pop(q, from_small ? sm : mn);
        if (q->state[s] & DEAD)
            return s; /* given back earlier: reuse it, nobody to ask */
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
            *evicted = 1;
            return s;
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
    return S3FIFO_NIL;
}

uint32_t s3fifo_alloc(struct s3fifo *q, uint64_t fp, uint32_t owner, int hot, s3fifo_evict_fn fn,
                      void *arg, int *evicted)
{
    *evicted = 0;
    pthread_mutex_lock(&q->lock);
    if (!q->built)
        build_free(q);
    uint32_t s = q->free_top;
    if (s != S3FIFO_NIL) {
        q->free_top = q->next[s];
        q->used++;
    } else {
        s = evict_one(q, hot, fn, arg, evicted);
        if (s == S3FIFO_NIL) {
            pthread_mutex_unlock(&q->lock);
            return S3FIFO_NIL;
        }
        if (!*evicted)
            q->used++; /* a DEAD slot: it had no owner */
    }
    q->owner[s] = owner;
    freq_set(q, s, 0);
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

int s3fifo_claim(struct s3fifo *q, uint32_t slot, uint32_t owner)
{
    int rc = -EBUSY;
    pthread_mutex_lock(&q->lock);
    if (!q->built && slot < q->n && q->state[slot] == Q_FREE) {
        q->owner[slot] = owner;
        freq_set(q, slot, 0);
        fifo_push(q, &q->main, slot, Q_MAIN);
        q->used++;
        rc = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void s3fifo_release(struct s3fifo *q, uint32_t slot)
{
    pthread_mutex_lock(&q->lock);
    if (slot < q->n && q->state[slot] != Q_FREE && !(q->state[slot] & DEAD)) {
        q->state[slot] |= DEAD;
        q->owner[slot] = S3FIFO_NIL;
        q->used--;
    }
    pthread_mutex_unlock(&q->lock);
}

void s3fifo_touch(struct s3fifo *q, uint32_t slot)
{
    uint8_t f = freq_get(q, slot);
    if (f < 3)
        freq_set(q, slot, (uint8_t)(f + 1));
}

uint32_t s3fifo_used(struct s3fifo *q)
{
    pthread_mutex_lock(&q->lock);
    uint32_t u = q->used;
    pthread_mutex_unlock(&q->lock);
    return u;
}

uint32_t s3fifo_nslots(const struct s3fifo *q)
{
    return q->n;
}

uint64_t s3fifo_bytes(const struct s3fifo *q)
{
    uint64_t n = q->n ? q->n : 1;
    return sizeof(*q) + n * (sizeof(*q->next) + sizeof(*q->owner) + 2) +
           (uint64_t)(q->gmask + 1) * sizeof(*q->ghost);
}
