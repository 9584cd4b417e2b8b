/* efc/meta.c - the metadata cache; see meta_i.h.
 *
 * Design. A hash table split in 64 shards by the key's hash; each shard has its own chains, LRU
 * list, byte count and mutex, and a 64th of the byte bound. An entry is one allocation (the
 * struct and its key). Replacing a key's entry frees the old one; eviction takes the shard's least
 * recently used entries until the shard is back under its share. Nothing here does I/O.
 */
#include "efc/meta_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define META_SHARDS          64
#define META_DEFAULT_BYTES   (64ull << 20)
#define META_BUCKETS_INITIAL 256

struct ment {
    struct ment *hnext;
    struct ment *prev, *next; /* LRU, most recent first */
    uint64_t hash;
    size_t klen;
    struct efc_meta_ent v;
    char key[]; /* klen bytes and a NUL */
};

struct shard {
    pthread_mutex_t lock;
    struct ment **tab; /* protected by lock, as everything below */
    size_t nb, n;
    uint64_t bytes;
    struct ment lru;
    uint64_t hits, misses, negative_hits, evicted;
};

struct efc_meta {
    uint64_t shard_bytes; /* each shard's share of the bound */
    struct shard s[META_SHARDS];
};

static uint64_t mhash(const char *key, size_t klen)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < klen; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 31);
}

static size_t ment_bytes(const struct ment *e)
{
    return sizeof(*e) + e->klen + 1;
}

int efc_meta_new(uint64_t max_bytes, struct efc_meta **out)
{
    struct efc_meta *m = calloc(1, sizeof(*m));

    *out = NULL;
    if (m == NULL)
        return -ENOMEM;
    m->shard_bytes = (max_bytes ? max_bytes : META_DEFAULT_BYTES) / META_SHARDS;
    for (int i = 0; i < META_SHARDS; i++) {
        struct shard *sh = &m->s[i];
        sh->nb = META_BUCKETS_INITIAL;
        sh->tab = calloc(sh->nb, sizeof(*sh->tab));
        if (sh->tab == NULL) {
            efc_meta_free(m);
            return -ENOMEM;
        }
        pthread_mutex_init(&sh->lock, NULL);
        sh->lru.prev = sh->lru.next = &sh->lru;
    }
    *out = m;
    return 0;
}

static struct ment **slot(struct shard *sh, const char *key, size_t klen, uint64_t h)
{
    struct ment **pp = &sh->tab[(h >> 6) & (sh->nb - 1)];
    while (*pp && ((*pp)->hash != h || (*pp)->klen != klen || memcmp((*pp)->key, key, klen) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void lru_unlink(struct ment *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_front(struct shard *sh, struct ment *e)
{
    e->next = sh->lru.next;
    e->prev = &sh->lru;
    sh->lru.next->prev = e;
    sh->lru.next = e;
}

/* Unlinks E; the caller frees it. */
static void unlink_ent(struct shard *sh, struct ment *e)
{
    struct ment **pp = slot(sh, e->key, e->klen, e->hash);
    *pp = e->hnext;
    lru_unlink(e);
    sh->n--;
    sh->bytes -= ment_bytes(e);
}

/* Doubles the shard's table when chains grow long; on failure the table just stays as it is. */
static void grow(struct shard *sh)
{
    size_t nb = sh->nb * 2;
    struct ment **t = calloc(nb, sizeof(*t));
    if (t == NULL)
        return;
    for (size_t i = 0; i < sh->nb; i++) {
        struct ment *e = sh->tab[i];
        while (e) {
            struct ment *next = e->hnext;
            size_t b = (e->hash >> 6) & (nb - 1);
            e->hnext = t[b];
            t[b] = e;
            e = next;
        }
    }
    free(sh->tab);
    sh->tab = t;
    sh->nb = nb;
}

void efc_meta_free(struct efc_meta *m)
{
    if (m == NULL)
        return;
    efc_meta_clear(m);
    for (int i = 0; i < META_SHARDS; i++) {
        if (m->s[i].tab)
            pthread_mutex_destroy(&m->s[i].lock);
        free(m->s[i].tab);
    }
    free(m);
}

int efc_meta_get(struct efc_meta *m, const char *key, size_t klen, struct efc_meta_ent *out)
{
    uint64_t h = mhash(key, klen);
    struct shard *sh = &m->s[h % META_SHARDS];
    int found = 0;

    pthread_mutex_lock(&sh->lock);
    struct ment *e = *slot(sh, key, klen, h);
    if (e) {
        *out = e->v;
        lru_unlink(e);
        lru_front(sh, e);
        sh->hits++;
        if (!e->v.present)
            sh->negative_hits++;
        found = 1;
    } else {
        sh->misses++;
    }
    pthread_mutex_unlock(&sh->lock);
    return found;
}

void efc_meta_put(struct efc_meta *m, const char *key, size_t klen, const struct efc_meta_ent *v)
{
    uint64_t h = mhash(key, klen);
    struct shard *sh = &m->s[h % META_SHARDS];
    struct ment *e = malloc(sizeof(*e) + klen + 1);
    struct ment *gone[8];
    size_t ngone = 0;

    if (e == NULL)
        return; /* a cache: forgetting is always allowed */
    e->hash = h;
    e->klen = klen;
    e->v = *v;
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    pthread_mutex_lock(&sh->lock);
    struct ment **pp = slot(sh, key, klen, h);
    if (*pp) {
        struct ment *old = *pp;
        unlink_ent(sh, old);
        gone[ngone++] = old;
    }
    if (sh->n >= sh->nb * 2)
        grow(sh);
    pp = slot(sh, key, klen, h);
    e->hnext = NULL;
    *pp = e;
    lru_front(sh, e);
    sh->n++;
    sh->bytes += ment_bytes(e);
    while (ngone < 8 && sh->n > 1 && sh->bytes > m->shard_bytes) {
        struct ment *victim = sh->lru.prev;
        unlink_ent(sh, victim);
        gone[ngone++] = victim;
        sh->evicted++;
    }
    pthread_mutex_unlock(&sh->lock);
    for (size_t i = 0; i < ngone; i++)
        free(gone[i]);
}

void efc_meta_drop(struct efc_meta *m, const char *key, size_t klen)
{
    uint64_t h = mhash(key, klen);
    struct shard *sh = &m->s[h % META_SHARDS];

    pthread_mutex_lock(&sh->lock);
    struct ment *e = *slot(sh, key, klen, h);
    if (e)
        unlink_ent(sh, e);
    pthread_mutex_unlock(&sh->lock);
    free(e);
}

uint64_t efc_meta_clear(struct efc_meta *m)
{
    uint64_t n = 0;
    for (int i = 0; i < META_SHARDS; i++) {
        struct shard *sh = &m->s[i];
        if (sh->tab == NULL)
            continue;
        /* Detach the whole shard under the lock, free outside it. */
        pthread_mutex_lock(&sh->lock);
        struct ment *list = sh->lru.next == &sh->lru ? NULL : sh->lru.next;
        sh->lru.prev->next = NULL;
        sh->lru.prev = sh->lru.next = &sh->lru;
        memset(sh->tab, 0, sh->nb * sizeof(*sh->tab));
        n += sh->n;
        sh->n = 0;
        sh->bytes = 0;
        pthread_mutex_unlock(&sh->lock);
        while (list) {
            struct ment *next = list->next;
            free(list);
            list = next;
        }
    }
    return n;
}

void efc_meta_get_stats(struct efc_meta *m, struct efc_meta_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (int i = 0; i < META_SHARDS; i++) {
        struct shard *sh = &m->s[i];
        pthread_mutex_lock(&sh->lock);
        st->entries += sh->n;
        st->bytes += sh->bytes;
        st->hits += sh->hits;
        st->misses += sh->misses;
        st->negative_hits += sh->negative_hits;
        st->evicted += sh->evicted;
        pthread_mutex_unlock(&sh->lock);
    }
}
