/* cache/s3fifo.c - S3-FIFO over slot indices. Three intrusive doubly linked lists (free, small,
 * main) thread through one array of 16-byte slot records; the ghost set is a direct-mapped array
 * of 32-bit fingerprints (a collision only forgets or wrongly remembers one ghost, which changes
 * a placement decision, never correctness).
 */
#include "cache/s3fifo.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

enum { Q_FREE = 0, Q_SMALL = 1, Q_MAIN = 2, Q_COUNT = 3 };

struct slot {
    uint32_t prev, next;
    uint32_t owner;
    uint32_t fp;  /* the owner's fingerprint, for the ghost set */
    uint8_t freq; /* 0..3, atomically accessed */
    uint8_t q;
    uint8_t spare[2];
};

struct list {
    uint32_t head, tail, count;
};

struct s3fifo {
    pthread_mutex_t lock;
    uint32_t n;
    struct slot *slots;
    struct list lists[Q_COUNT]; /* protected by lock */
    uint32_t *ghost;
    uint32_t gmask;
};

static void list_remove(struct s3fifo *q, uint32_t s)
{
    struct slot *x = &q->slots[s];
    struct list *l = &q->lists[x->q];
    if (x->prev != S3FIFO_NIL)
        q->slots[x->prev].next = x->next;
    else
        l->head = x->next;
    if (x->next != S3FIFO_NIL)
        q->slots[x->next].prev = x->prev;
    else
        l->tail = x->prev;
    l->count--;
}

/* Pushes at the head; victims come from the tail. */
static void list_push(struct s3fifo *q, int which, uint32_t s)
{
    struct slot *x = &q->slots[s];
    struct list *l = &q->lists[which];
    x->q = (uint8_t)which;
    x->prev = S3FIFO_NIL;
    x->next = l->head;
    if (l->head != S3FIFO_NIL)
        q->slots[l->head].prev = s;
    else
        l->tail = s;
    l->head = s;
    l->count++;
}

struct s3fifo *s3fifo_new(uint32_t nslots)
{
    struct s3fifo *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    uint32_t g = 1;
    while (g < nslots && g < (1u << 31))
        g <<= 1;
    q->n = nslots;
    q->slots = calloc(nslots ? nslots : 1, sizeof(*q->slots));
    q->ghost = calloc(g, sizeof(*q->ghost));
    if (!q->slots || !q->ghost) {
        s3fifo_free(q);
        return NULL;
    }
    q->gmask = g - 1;
    pthread_mutex_init(&q->lock, NULL);
    for (int i = 0; i < Q_COUNT; i++)
        q->lists[i] = (struct list){S3FIFO_NIL, S3FIFO_NIL, 0};
    for (uint32_t s = nslots; s-- > 0;) {
        q->slots[s].owner = S3FIFO_NIL;
        list_push(q, Q_FREE, s);
    }
    return q;
}

void s3fifo_free(struct s3fifo *q)
{
    if (!q)
        return;
    if (q->slots && q->ghost)
        pthread_mutex_destroy(&q->lock);
    free(q->slots);
    free(q->ghost);
    free(q);
}

static uint32_t fp32(uint64_t fp)
{
    uint32_t f = (uint32_t)(fp >> 32) ^ (uint32_t)fp;
    return f ? f : 1;
}

static uint8_t freq_get(struct slot *x)
{
    return __atomic_load_n(&x->freq, __ATOMIC_RELAXED);
}

static void freq_set(struct slot *x, uint8_t f)
{
    __atomic_store_n(&x->freq, f, __ATOMIC_RELAXED);
}

/* Finds a victim and frees it; returns its slot or NIL. Called with the lock held. */
static uint32_t evict_one(struct s3fifo *q, s3fifo_evict_fn fn, void *arg)
{
    /* Each step either evicts or moves one slot to a head, so 4 passes bound the work even when
     * every frequency is 3 (3 decrements then an eviction attempt). */
    uint64_t budget = 4ull * q->n + 16;
    while (budget-- > 0) {
        struct list *sm = &q->lists[Q_SMALL], *mn = &q->lists[Q_MAIN];
        int from_small = sm->count > 0 && (sm->count * 10ull > q->n || mn->count == 0);
        uint32_t s = from_small ? sm->tail : mn->tail;
        if (s == S3FIFO_NIL)
            return S3FIFO_NIL;
        struct slot *x = &q->slots[s];
        uint8_t f = freq_get(x);
        if (from_small && f > 0) {
            list_remove(q, s);
            freq_set(x, 0);
            list_push(q, Q_MAIN, s);
            continue;
        }
        if (!from_small && f > 0) {
            list_remove(q, s);
            freq_set(x, (uint8_t)(f - 1));
            list_push(q, Q_MAIN, s);
            continue;
        }
        if (fn(arg, s, x->owner) != 0) {
            /* Pinned: give it another round rather than spinning on it. */
            list_remove(q, s);
            list_push(q, x->q, s);
            continue;
        }
        list_remove(q, s);
        if (from_small)
            q->ghost[x->fp & q->gmask] = x->fp;
        return s;
    }
    return S3FIFO_NIL;
}

uint32_t s3fifo_alloc(struct s3fifo *q, uint64_t fp, uint32_t owner, s3fifo_evict_fn fn, void *arg,
                      int *evicted)
{
    uint32_t f = fp32(fp);
    uint32_t gi = f & q->gmask;
    *evicted = 0;
    pthread_mutex_lock(&q->lock);
    uint32_t s = q->lists[Q_FREE].tail;
    if (s != S3FIFO_NIL) {
        list_remove(q, s);
    } else {
        s = evict_one(q, fn, arg);
        if (s == S3FIFO_NIL) {
            pthread_mutex_unlock(&q->lock);
            return S3FIFO_NIL;
        }
        *evicted = 1;
    }
    struct slot *x = &q->slots[s];
    x->owner = owner;
    x->fp = f;
    freq_set(x, 0);
    if (q->ghost[gi] == f) {
        q->ghost[gi] = 0;
        list_push(q, Q_MAIN, s);
    } else {
        list_push(q, Q_SMALL, s);
    }
    pthread_mutex_unlock(&q->lock);
    return s;
}

int s3fifo_claim(struct s3fifo *q, uint32_t slot, uint32_t owner)
{
    int rc = -EBUSY;
    pthread_mutex_lock(&q->lock);
    if (slot < q->n && q->slots[slot].q == Q_FREE) {
        list_remove(q, slot);
        q->slots[slot].owner = owner;
        q->slots[slot].fp = 0;
        freq_set(&q->slots[slot], 0);
        list_push(q, Q_MAIN, slot);
        rc = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void s3fifo_release(struct s3fifo *q, uint32_t slot)
{
    pthread_mutex_lock(&q->lock);
    if (slot < q->n && q->slots[slot].q != Q_FREE) {
        list_remove(q, slot);
        q->slots[slot].owner = S3FIFO_NIL;
        list_push(q, Q_FREE, slot);
    }
    pthread_mutex_unlock(&q->lock);
}

void s3fifo_touch(struct s3fifo *q, uint32_t slot)
{
    struct slot *x = &q->slots[slot];
    uint8_t f = freq_get(x);
    if (f < 3)
        freq_set(x, (uint8_t)(f + 1));
}

uint32_t s3fifo_used(struct s3fifo *q)
{
    pthread_mutex_lock(&q->lock);
    uint32_t u = q->n - q->lists[Q_FREE].count;
    pthread_mutex_unlock(&q->lock);
    return u;
}

uint32_t s3fifo_nslots(const struct s3fifo *q)
{
    return q->n;
}

uint64_t s3fifo_bytes(const struct s3fifo *q)
{
    return sizeof(*q) + (uint64_t)(q->n ? q->n : 1) * sizeof(struct slot) +
           (uint64_t)(q->gmask + 1) * sizeof(uint32_t);
}
