/* efc/first.c - first blocks brought by open (first_i.h).
 *
 * Entries sit in one list, oldest first, under one mutex. A fetch that finds its entry takes a
 * reference and copies or sinks the bytes with the mutex dropped; an entry taken out of the list
 * (wholly fetched, aged, over the bounds) is freed by whoever drops its last reference. Lists stay
 * short: with a cache every entry is fetched whole by the prefetch open queues right after the
 * put, so the list is searched (linearly) only for fetches of block 0 while some entry is held.
 */
#include "efc/first_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/prom.h"
#include "util/timeutil.h"

#define FIRST_DEFAULT_BYTES (64ull << 20)

struct entry {
    struct entry *prev, *next; /* in the list, oldest first; both NULL once out of it */
    unsigned refs;             /* the list's (while listed) and each fetch's; under the mutex */
    uint64_t put_ms;
    uint64_t obj_size;
    size_t len;
    void *data;
    char *key, *etag;
};

struct efc_first {
    struct blksrc src; /* first: efc_first_src hands out its address */
    struct blksrc *below;
    pthread_mutex_t lock;
    struct entry *head, *tail;
    uint64_t max_bytes, bytes, entries;
    atomic_uint_fast64_t puts, served, dropped;
};

static void entry_free(struct entry *en)
{
    free(en->data);
    free(en->key);
    free(en->etag);
    free(en);
}

/* Takes EN out of the list and drops the list's reference; true if that was the last one (the
 * caller frees it after unlocking). Under the mutex. */
static bool unlist_locked(struct efc_first *f, struct entry *en)
{
    if (en->prev)
        en->prev->next = en->next;
    else
        f->head = en->next;
    if (en->next)
        en->next->prev = en->prev;
    else
        f->tail = en->prev;
    en->prev = en->next = NULL;
    f->bytes -= en->len;
    f->entries--;
    return --en->refs == 0;
}

static void unref(struct efc_first *f, struct entry *en)
{
    pthread_mutex_lock(&f->lock);
    bool last = --en->refs == 0;
    pthread_mutex_unlock(&f->lock);
    if (last)
        entry_free(en);
}

/* The listed entry of block 0 of RQ's version, with a reference taken, or NULL. Entries past
 * their age are dropped on the way (freed into *GONE for the caller). Under the mutex. */
static struct entry *find_locked(struct efc_first *f, const struct blkreq *rq, uint64_t now,
                                 struct entry **gone)
{
    while (f->head && now - f->head->put_ms > EFC_FIRST_MAX_AGE_MS) {
        struct entry *old = f->head;
        atomic_fetch_add(&f->dropped, 1);
        if (unlist_locked(f, old)) {
            old->next = *gone;
            *gone = old;
        }
    }
    if (rq->index != 0 || rq->etag == NULL || rq->etag[0] == '\0')
        return NULL;
    for (struct entry *en = f->head; en; en = en->next) {
        if (en->obj_size == rq->obj_size && strcmp(en->key, rq->key) == 0 &&
            strcmp(en->etag, rq->etag) == 0) {
            en->refs++;
            return en;
        }
    }
    return NULL;
}

static void free_gone(struct entry *gone)
{
    while (gone) {
        struct entry *n = gone->next;
        entry_free(gone);
        gone = n;
    }
}

/* The entry for RQ if [OFF, OFF+LEN) of block 0 lies inside it (referenced), else NULL. When the
 * range covers all of it, the entry leaves the list (the fetcher now holds the block). */
static struct entry *lookup(struct efc_first *f, const struct blkreq *rq, uint64_t off,
                            uint64_t len)
{
    struct entry *gone = NULL, *en = NULL;

    pthread_mutex_lock(&f->lock);
    if (f->head) {
        en = find_locked(f, rq, time_mono_ms(), &gone);
        if (en && (off > en->len || len > en->len - off)) {
            en->refs--; /* listed: not the last reference */
            en = NULL;
        }
        if (en && off == 0 && len == en->len)
            unlist_locked(f, en); /* the fetch's reference remains */
    }
    pthread_mutex_unlock(&f->lock);
    free_gone(gone);
    if (en)
        atomic_fetch_add(&f->served, 1);
    return en;
}

static ssize_t first_fetch(struct blksrc *s, const struct blkreq *rq, uint64_t off, size_t len,
                           void *buf, enum blk_from *from)
{
    struct efc_first *f = (struct efc_first *)s;
    /* Clipped at the object's end, as a source answers. */
    uint64_t want = off >= rq->obj_size ? 0 : rq->obj_size - off < len ? rq->obj_size - off : len;
    struct entry *en = want ? lookup(f, rq, off, want) : NULL;

    if (en == NULL)
        return blksrc_fetch(f->below, rq, off, len, buf, from);
    memcpy(buf, (const char *)en->data + off, want);
    *from = BLK_FROM_ORIGIN; /* the open's GET brought them */
    unref(f, en);
    return (ssize_t)want;
}

static int first_fetch_range(struct blksrc *s, const struct blkreq *rq, uint64_t len,
                             blk_sink_fn sink, void *sink_arg)
{
    struct efc_first *f = (struct efc_first *)s;
    uint64_t bs = s->block_size;
    /* Block 0 of the range: all the range, or its whole first block when the range runs on. */
    uint64_t head = rq->index == 0 ? (len < bs ? len : bs) : 0;
    if (head > rq->obj_size)
        head = rq->obj_size;
    struct entry *en = head ? lookup(f, rq, 0, head) : NULL;

    if (en == NULL)
        return blksrc_fetch_range(f->below, rq, len, sink, sink_arg);
    int rc = sink(sink_arg, en->data, (size_t)head, BLK_FROM_ORIGIN);
    unref(f, en);
    if (rc || len <= bs || rq->obj_size <= bs)
        return rc;
    struct blkreq rest = *rq;
    rest.index = 1;
    return blksrc_fetch_range(f->below, &rest, len - bs, sink, sink_arg);
}

static const struct blksrc_ops first_ops = {
    .name = "first blocks",
    .fetch = first_fetch,
    .fetch_range = first_fetch_range,
};

int efc_first_new(struct blksrc *below, uint64_t max_bytes, struct efc_first **out)
{
    *out = NULL;
    if (below == NULL || below->block_size == 0)
        return -EINVAL;
    struct efc_first *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    f->src.ops = &first_ops;
    f->src.block_size = below->block_size;
    f->below = below;
    f->max_bytes = max_bytes ? max_bytes : FIRST_DEFAULT_BYTES;
    pthread_mutex_init(&f->lock, NULL);
    *out = f;
    return 0;
}

void efc_first_free(struct efc_first *f)
{
    if (f == NULL)
        return;
    while (f->head) {
        struct entry *en = f->head;
        unlist_locked(f, en);
        entry_free(en); /* no fetch runs: the list held the only reference */
    }
    pthread_mutex_destroy(&f->lock);
    free(f);
}

struct blksrc *efc_first_src(struct efc_first *f)
{
    return &f->src;
}

int efc_first_put(struct efc_first *f, const char *key, const char *etag, uint64_t obj_size,
                  void *data, size_t len)
{
    uint64_t whole = obj_size < f->src.block_size ? obj_size : f->src.block_size;
    if (key == NULL || etag == NULL || etag[0] == '\0' || len == 0 || len != whole ||
        len > f->max_bytes) {
        free(data);
        return -EINVAL;
    }
    struct entry *en = calloc(1, sizeof(*en));
    if (en)
        en->key = strdup(key);
    if (en && en->key)
        en->etag = strdup(etag);
    if (en == NULL || en->etag == NULL) {
        if (en)
            free(en->key);
        free(en);
        free(data);
        return -ENOMEM;
    }
    en->data = data;
    en->len = len;
    en->obj_size = obj_size;
    en->put_ms = time_mono_ms();
    en->refs = 1;

    struct entry *gone = NULL;
    pthread_mutex_lock(&f->lock);
    struct blkreq rq = {.key = key, .etag = etag, .obj_size = obj_size, .index = 0};
    struct entry *same = find_locked(f, &rq, en->put_ms, &gone);
    if (same) {
        same->refs--; /* the reference find_locked took; the list's stays until unlisted */
        atomic_fetch_add(&f->dropped, 1);
        if (unlist_locked(f, same)) {
            same->next = gone;
            gone = same;
        }
    }
    while (f->head && (f->bytes + len > f->max_bytes || f->entries >= EFC_FIRST_MAX_ENTRIES)) {
        struct entry *old = f->head;
        atomic_fetch_add(&f->dropped, 1);
        if (unlist_locked(f, old)) {
            old->next = gone;
            gone = old;
        }
    }
    en->prev = f->tail;
    if (f->tail)
        f->tail->next = en;
    else
        f->head = en;
    f->tail = en;
    f->bytes += len;
    f->entries++;
    pthread_mutex_unlock(&f->lock);
    free_gone(gone);
    atomic_fetch_add(&f->puts, 1);
    return 0;
}

void efc_first_get_stats(struct efc_first *f, struct efc_first_stats *st)
{
    st->puts = atomic_load(&f->puts);
    st->served = atomic_load(&f->served);
    st->dropped = atomic_load(&f->dropped);
    pthread_mutex_lock(&f->lock);
    st->entries = f->entries;
    st->bytes = f->bytes;
    pthread_mutex_unlock(&f->lock);
}

int efc_first_write_metrics(struct efc_first *f, struct buf *out)
{
    struct efc_first_stats st;

    efc_first_get_stats(f, &st);
    int rc = prom_counter(out, "efc_first_block_puts_total",
                          "First blocks that open's GET brought, kept for the read that follows.",
                          st.puts);
    if (rc == 0)
        rc = prom_counter(out, "efc_first_block_served_total",
                          "Fetches of the cache (or of a reader) answered from those blocks, no "
                          "request sent.",
                          st.served);
    if (rc == 0)
        rc = prom_counter(out, "efc_first_block_dropped_total",
                          "Those blocks that left before a fetch took them whole (aged, over the "
                          "bound, replaced).",
                          st.dropped);
    if (rc == 0)
        rc = prom_gauge(out, "efc_first_block_bytes", "Bytes of first blocks held.",
                        (double)st.bytes);
    return rc;
}
