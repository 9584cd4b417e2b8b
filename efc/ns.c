/* efc/ns.c - the inode table; see ns_i.h.
 *
 * Design. The table is split into NS_SHARDS shards, each with its own mutex and two hash tables:
 * by inode number and by (parent inode, name). A node belongs to the shard picked by the hash of
 * its (parent, name), and its inode number carries that shard in its low bits:
 *
 *     ino = (sequence << NS_SHARD_BITS) | shard        sequence from a 64-bit counter, never reused
 *
 * so both ways of finding a node (by number from the kernel, by name from a lookup) lead to the
 * same shard and one lock covers both tables of a node. Operations on different names mostly take
 * different locks, and no lock is ever held across a network call: callers do their I/O first and
 * then record the result here. The root is ino 1 (sequence 0, shard 1) and has no name entry.
 *
 * Nodes are compact (one allocation: the struct, then the key; the name is the key's tail) because
 * the kernel can hold millions of inodes; ETags are separate small strings.
 *
 * Locks: one shard mutex at a time, never nested, never held across I/O or a call out of this
 * file. Protected by shard->lock: everything in the shard's tables and the nodes in them.
 */
#include "efc/ns_i.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "efc/journal_i.h"
#include "util/log.h"

#define NS_SHARD_BITS  6
#define NS_SHARDS      (1u << NS_SHARD_BITS)
#define NS_MIN_BUCKETS 64

struct node {
    struct node *ino_next;  /* chain in the shard's inode table */
    struct node *name_next; /* chain in the shard's name table (if named) */
    uint64_t ino;
    uint64_t parent;
    uint64_t nlookup;
    uint64_t hash; /* of (parent, name) */
    /* attributes */
    uint64_t size;
    uint64_t fetched_ms;
    int64_t mtime;
    char *etag;      /* NULL: none known */
    char *open_etag; /* the ETag of the version the kernel's page cache may hold */
    uint16_t keylen;
    uint16_t namelen;
    uint8_t sc;
    bool restored;
    bool is_dir;
    bool named;           /* linked in the name table (false for the root and for replaced nodes) */
    bool lookups_unknown; /* see struct efc_ns_record */
    char key[];           /* NUL-terminated; the name is key[keylen - namelen - is_dir ..] */
};

struct shard {
    pthread_mutex_t lock;
    struct node **by_ino;
    struct node **by_name;
    size_t nbuckets_ino;
    size_t nbuckets_name;
    size_t count; /* nodes in by_ino */
    size_t named; /* nodes in by_name */
} __attribute__((aligned(64)));

struct efc_ns {
    struct shard shards[NS_SHARDS];
    _Atomic uint64_t next_seq;
    _Atomic uint64_t created;
    _Atomic uint64_t freed;
    uint64_t import_max_seq; /* the highest sequence efc_ns_import restored (single-threaded) */
    struct efc_journal *_Atomic journal; /* the crash journal, or NULL */
};

/* FNV-1a over the parent's number and the name: cheap and good enough for a chained table. */
static uint64_t name_hash(uint64_t parent, const char *name, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 8; i++) {
        h ^= (parent >> (8 * i)) & 0xff;
        h *= 1099511628211ull;
    }
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 1099511628211ull;
    }
    /* Mix the high bits down: the low bits pick the shard, the next ones the bucket. */
    h ^= h >> 29;
    return h;
}

static inline struct shard *shard_of_ino(struct efc_ns *ns, uint64_t ino)
{
    return &ns->shards[ino & (NS_SHARDS - 1)];
}

static inline size_t ino_bucket(const struct shard *s, uint64_t ino)
{
    return (size_t)(ino >> NS_SHARD_BITS) & (s->nbuckets_ino - 1);
}

static inline size_t name_bucket(const struct shard *s, uint64_t hash)
{
    return (size_t)(hash >> NS_SHARD_BITS) & (s->nbuckets_name - 1);
}

static inline const char *node_name(const struct node *n)
{
    return n->key + n->keylen - n->namelen - (n->is_dir && n->ino != EFC_ROOT_INO ? 1 : 0);
}

static void node_free(struct node *n)
{
    free(n->etag);
    free(n->open_etag);
    free(n);
}

static struct node *find_ino(struct shard *s, uint64_t ino)
{
    for (struct node *n = s->by_ino[ino_bucket(s, ino)]; n; n = n->ino_next)
        if (n->ino == ino)
            return n;
    return NULL;
}

static struct node *find_name(struct shard *s, uint64_t hash, uint64_t parent, const char *name,
                              size_t len)
{
    for (struct node *n = s->by_name[name_bucket(s, hash)]; n; n = n->name_next)
        if (n->hash == hash && n->parent == parent && n->namelen == len &&
            memcmp(node_name(n), name, len) == 0)
            return n;
    return NULL;
}

/* Doubles a table when it holds more nodes than buckets. Failing to grow is harmless (longer
   chains), so allocation failures are ignored. */
static void grow_ino(struct shard *s)
{
    if (s->count <= s->nbuckets_ino)
        return;
    size_t nb = s->nbuckets_ino * 2;
    struct node **t = calloc(nb, sizeof(*t));
    if (t == NULL)
        return;
    for (size_t i = 0; i < s->nbuckets_ino; i++) {
        struct node *n = s->by_ino[i];
        while (n) {
            struct node *next = n->ino_next;
            size_t b = (size_t)(n->ino >> NS_SHARD_BITS) & (nb - 1);
            n->ino_next = t[b];
            t[b] = n;
            n = next;
        }
    }
    free(s->by_ino);
    s->by_ino = t;
    s->nbuckets_ino = nb;
}

static void grow_name(struct shard *s)
{
    if (s->named <= s->nbuckets_name)
        return;
    size_t nb = s->nbuckets_name * 2;
    struct node **t = calloc(nb, sizeof(*t));
    if (t == NULL)
        return;
    for (size_t i = 0; i < s->nbuckets_name; i++) {
        struct node *n = s->by_name[i];
        while (n) {
            struct node *next = n->name_next;
            size_t b = (size_t)(n->hash >> NS_SHARD_BITS) & (nb - 1);
            n->name_next = t[b];
            t[b] = n;
            n = next;
        }
    }
    free(s->by_name);
    s->by_name = t;
    s->nbuckets_name = nb;
}

static void link_ino(struct shard *s, struct node *n)
{
    size_t b = ino_bucket(s, n->ino);
    n->ino_next = s->by_ino[b];
    s->by_ino[b] = n;
    s->count++;
    grow_ino(s);
}

static void unlink_ino(struct shard *s, struct node *n)
{
    struct node **pp = &s->by_ino[ino_bucket(s, n->ino)];
    while (*pp && *pp != n)
        pp = &(*pp)->ino_next;
    if (*pp) {
        *pp = n->ino_next;
        s->count--;
    }
}

static void link_name(struct shard *s, struct node *n)
{
    size_t b = name_bucket(s, n->hash);
    n->name_next = s->by_name[b];
    s->by_name[b] = n;
    n->named = true;
    s->named++;
    grow_name(s);
}

static void unlink_name(struct shard *s, struct node *n)
{
    if (!n->named)
        return;
    struct node **pp = &s->by_name[name_bucket(s, n->hash)];
    while (*pp && *pp != n)
        pp = &(*pp)->name_next;
    if (*pp) {
        *pp = n->name_next;
        s->named--;
    }
    n->named = false;
}

/* Stores the strings of a node's attributes; returns false (node unchanged) without memory. */
static bool set_etag(char **dst, const char *etag)
{
    if (etag == NULL || etag[0] == '\0') {
        free(*dst);
        *dst = NULL;
        return true;
    }
    if (*dst && strcmp(*dst, etag) == 0)
        return true;
    char *s = strdup(etag);
    if (s == NULL)
        return false;
    free(*dst);
    *dst = s;
    return true;
}

static bool etag_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return (a == NULL || a[0] == '\0') && (b == NULL || b[0] == '\0');
    return strcmp(a, b) == 0;
}

/* Takes ATTR if it is at least as recent as what N holds. */
static void store_attr(struct node *n, const struct efc_attr *a)
{
    if (a == NULL || a->fetched_ms < n->fetched_ms)
        return;
    if (!set_etag(&n->etag, a->etag))
        return; /* keep the older, consistent set rather than half of the new one */
    n->size = a->size;
    n->mtime = (int64_t)a->mtime;
    n->sc = (uint8_t)a->sc;
    n->restored = a->restored;
    n->fetched_ms = a->fetched_ms;
}

static void load_attr(const struct node *n, struct efc_attr *a)
{
    a->size = n->size;
    a->mtime = (time_t)n->mtime;
    a->sc = (enum oss_storage_class)n->sc;
    a->restored = n->restored;
    a->fetched_ms = n->fetched_ms;
    if (n->etag)
        snprintf(a->etag, sizeof(a->etag), "%s", n->etag);
    else
        a->etag[0] = '\0';
}

int efc_ns_new(const char *root_key, struct efc_ns **out)
{
    struct efc_ns *ns;
    size_t klen = strlen(root_key);

    *out = NULL;
    if (klen > OSS_MAX_KEY_LEN)
        return -ENAMETOOLONG;
    ns = calloc(1, sizeof(*ns));
    if (ns == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < NS_SHARDS; i++) {
        struct shard *s = &ns->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->nbuckets_ino = s->nbuckets_name = NS_MIN_BUCKETS;
        s->by_ino = calloc(NS_MIN_BUCKETS, sizeof(*s->by_ino));
        s->by_name = calloc(NS_MIN_BUCKETS, sizeof(*s->by_name));
        if (s->by_ino == NULL || s->by_name == NULL) {
            efc_ns_free(ns);
            return -ENOMEM;
        }
    }
    atomic_init(&ns->next_seq, 1);

    struct node *root = calloc(1, sizeof(*root) + klen + 1);
    if (root == NULL) {
        efc_ns_free(ns);
        return -ENOMEM;
    }
    root->ino = EFC_ROOT_INO;
    root->parent = EFC_ROOT_INO;
    root->nlookup = 1; /* the kernel never looks the root up; it is implicitly held */
    root->is_dir = true;
    root->keylen = (uint16_t)klen;
    memcpy(root->key, root_key, klen + 1);
    link_ino(shard_of_ino(ns, EFC_ROOT_INO), root);
    atomic_fetch_add(&ns->created, 1);
    *out = ns;
    return 0;
}

void efc_ns_free(struct efc_ns *ns)
{
    if (ns == NULL)
        return;
    for (unsigned i = 0; i < NS_SHARDS; i++) {
        struct shard *s = &ns->shards[i];
        for (size_t b = 0; s->by_ino && b < s->nbuckets_ino; b++) {
            struct node *n = s->by_ino[b];
            while (n) {
                struct node *next = n->ino_next;
                node_free(n);
                n = next;
            }
        }
        free(s->by_ino);
        free(s->by_name);
        pthread_mutex_destroy(&s->lock);
    }
    free(ns);
}

int efc_ns_get(struct efc_ns *ns, uint64_t ino, struct efc_node_info *out)
{
    struct shard *s = shard_of_ino(ns, ino);
    int rc = -ENOENT;

    pthread_mutex_lock(&s->lock);
    struct node *n = find_ino(s, ino);
    if (n) {
        out->ino = n->ino;
        out->parent = n->parent;
        out->is_dir = n->is_dir;
        load_attr(n, &out->attr);
        memcpy(out->key, n->key, (size_t)n->keylen + 1);
        out->keylen = n->keylen;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

uint64_t efc_ns_find(struct efc_ns *ns, uint64_t parent, const char *name, size_t namelen)
{
    uint64_t h = name_hash(parent, name, namelen);
    struct shard *s = &ns->shards[h & (NS_SHARDS - 1)];
    uint64_t ino = 0;

    pthread_mutex_lock(&s->lock);
    struct node *n = find_name(s, h, parent, name, namelen);
    if (n)
        ino = n->ino;
    pthread_mutex_unlock(&s->lock);
    return ino;
}

int efc_ns_add(struct efc_ns *ns, uint64_t parent, const char *name, size_t namelen,
               const char *key, bool is_dir, const struct efc_attr *attr, uint64_t *ino,
               struct efc_attr *out)
{
    uint64_t h = name_hash(parent, name, namelen);
    unsigned si = (unsigned)(h & (NS_SHARDS - 1));
    struct shard *s = &ns->shards[si];
    size_t keylen = strlen(key);
    struct node *n;

    if (keylen > OSS_MAX_KEY_LEN || namelen == 0 || namelen > keylen)
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    n = find_name(s, h, parent, name, namelen);
    if (n && n->is_dir != is_dir) {
        /* The name changed type: the old inode stays until the kernel forgets it, but the name
           now leads to a new one (the kernel sees a new node id and replaces its dentry). */
        unlink_name(s, n);
        efc_journal_unname(atomic_load_explicit(&ns->journal, memory_order_relaxed), n->ino);
        n = NULL;
    }
    if (n == NULL) {
        n = calloc(1, sizeof(*n) + keylen + 1);
        if (n == NULL) {
            pthread_mutex_unlock(&s->lock);
            return -ENOMEM;
        }
        n->ino = (atomic_fetch_add(&ns->next_seq, 1) << NS_SHARD_BITS) | si;
        n->parent = parent;
        n->hash = h;
        n->is_dir = is_dir;
        n->keylen = (uint16_t)keylen;
        n->namelen = (uint16_t)namelen;
        memcpy(n->key, key, keylen + 1);
        link_ino(s, n);
        link_name(s, n);
        atomic_fetch_add(&ns->created, 1);
        efc_journal_node(atomic_load_explicit(&ns->journal, memory_order_relaxed), n->ino, parent,
                         namelen, is_dir, key, keylen);
    }
    n->nlookup++;
    store_attr(n, attr);
    *ino = n->ino;
    if (out)
        load_attr(n, out);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

bool efc_ns_forget(struct efc_ns *ns, uint64_t ino, uint64_t nlookup)
{
    struct shard *s = shard_of_ino(ns, ino);
    struct node *dead = NULL;
    bool dir = false;

    if (ino == EFC_ROOT_INO)
        return false; /* lives as long as the mount */
    pthread_mutex_lock(&s->lock);
    struct node *n = find_ino(s, ino);
    if (n == NULL) {
        pthread_mutex_unlock(&s->lock);
        log_warn("ns: forget of unknown inode %llu", (unsigned long long)ino);
        return false;
    }
    if (n->lookups_unknown) {
        nlookup = n->nlookup; /* the kernel forgets an inode's whole count at once */
    } else if (nlookup > n->nlookup) {
        log_warn("ns: kernel forgets %llu lookups of inode %llu which has %llu",
                 (unsigned long long)nlookup, (unsigned long long)ino,
                 (unsigned long long)n->nlookup);
        nlookup = n->nlookup;
    }
    n->nlookup -= nlookup;
    if (n->nlookup == 0) {
        unlink_name(s, n);
        unlink_ino(s, n);
        efc_journal_forget(atomic_load_explicit(&ns->journal, memory_order_relaxed), n->ino);
        dead = n;
    }
    pthread_mutex_unlock(&s->lock);
    if (dead) {
        dir = dead->is_dir;
        node_free(dead);
        atomic_fetch_add(&ns->freed, 1);
    }
    return dir;
}

int efc_ns_set_attr(struct efc_ns *ns, uint64_t ino, const struct efc_attr *attr)
{
    struct shard *s = shard_of_ino(ns, ino);
    int rc = -ENOENT;

    pthread_mutex_lock(&s->lock);
    struct node *n = find_ino(s, ino);
    if (n) {
        store_attr(n, attr);
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int efc_ns_opened(struct efc_ns *ns, uint64_t ino, const struct efc_attr *attr, bool *same_version,
                  bool *changed)
{
    struct shard *s = shard_of_ino(ns, ino);
    int rc = -ENOENT;

    *same_version = false;
    *changed = true;
    pthread_mutex_lock(&s->lock);
    struct node *n = find_ino(s, ino);
    if (n) {
        *same_version = n->open_etag != NULL && etag_eq(n->open_etag, attr->etag);
        *changed = !etag_eq(n->etag, attr->etag) || n->size != attr->size ||
                   n->mtime != (int64_t)attr->mtime;
        /* A revalidation is the newest word on the object whatever the clock says. */
        struct efc_attr a = *attr;
        if (a.fetched_ms < n->fetched_ms)
            a.fetched_ms = n->fetched_ms;
        store_attr(n, &a);
        if (!set_etag(&n->open_etag, attr->etag))
            *same_version = false; /* unknown: let the kernel drop its pages */
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void efc_ns_get_stats(struct efc_ns *ns, struct efc_ns_stats *st)
{
    st->created = atomic_load(&ns->created);
    st->freed = atomic_load(&ns->freed);
    st->nodes = st->created - st->freed;
}

uint64_t efc_ns_nlookup(struct efc_ns *ns, uint64_t ino)
{
    struct shard *s = shard_of_ino(ns, ino);
    uint64_t v = 0;

    pthread_mutex_lock(&s->lock);
    struct node *n = find_ino(s, ino);
    if (n)
        v = n->nlookup;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* ---- runtime update: export and import ------------------------------------------------------ */

int efc_ns_export(struct efc_ns *ns, efc_ns_record_fn fn, void *arg, uint64_t *next_seq)
{
    struct efc_ns_record r;
    int rc = 0;

    *next_seq = atomic_load(&ns->next_seq);
    for (unsigned i = 0; i < NS_SHARDS && rc == 0; i++) {
        struct shard *s = &ns->shards[i];
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nbuckets_ino && rc == 0; b++) {
            for (struct node *n = s->by_ino[b]; n && rc == 0; n = n->ino_next) {
                memset(&r, 0, sizeof(r));
                r.ino = n->ino;
                r.parent = n->parent;
                r.nlookup = n->nlookup;
                r.is_dir = n->is_dir;
                r.named = n->named;
                r.lookups_unknown = n->lookups_unknown;
                load_attr(n, &r.attr);
                if (n->open_etag)
                    snprintf(r.open_etag, sizeof(r.open_etag), "%s", n->open_etag);
                r.key = n->key;
                r.keylen = n->keylen;
                r.namelen = n->namelen;
                rc = fn(arg, &r);
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return rc;
}

int efc_ns_import(struct efc_ns *ns, const struct efc_ns_record *r)
{
    size_t keylen = r->keylen, namelen = r->namelen;
    uint64_t seq = r->ino >> NS_SHARD_BITS;

    if (r->key == NULL || keylen > OSS_MAX_KEY_LEN || strlen(r->key) != keylen)
        return -EINVAL;
    if (r->ino == EFC_ROOT_INO) {
        /* The new table made its own root from the same source: only check that it agrees. */
        struct shard *s = shard_of_ino(ns, EFC_ROOT_INO);
        pthread_mutex_lock(&s->lock);
        struct node *root = find_ino(s, EFC_ROOT_INO);
        bool same = root && root->keylen == keylen && memcmp(root->key, r->key, keylen) == 0;
        pthread_mutex_unlock(&s->lock);
        return same && r->is_dir ? 0 : -EINVAL;
    }
    /* A node's name is its key's last component: "<parent key><name>" or "<...><name>/". */
    size_t tail = namelen + (r->is_dir ? 1 : 0);
    if (r->ino == 0 || seq == 0 || namelen == 0 || namelen > NAME_MAX || tail > keylen ||
        r->nlookup == 0 || (r->is_dir && r->key[keylen - 1] != '/'))
        return -EINVAL;
    const char *name = r->key + keylen - tail;
    if (memchr(name, '/', namelen) != NULL || (keylen > tail && r->key[keylen - tail - 1] != '/'))
        return -EINVAL;
    if (strnlen(r->attr.etag, sizeof(r->attr.etag)) >= sizeof(r->attr.etag) ||
        strnlen(r->open_etag, sizeof(r->open_etag)) >= sizeof(r->open_etag))
        return -EINVAL;

    uint64_t h = name_hash(r->parent, name, namelen);
    unsigned si = (unsigned)(r->ino & (NS_SHARDS - 1));
    /* A named node must live in the shard its name hashes to, as efc_ns_add put it. */
    if (r->named && (h & (NS_SHARDS - 1)) != si)
        return -EINVAL;
    struct shard *s = &ns->shards[si];
    struct node *n = calloc(1, sizeof(*n) + keylen + 1);
    if (n == NULL)
        return -ENOMEM;
    n->ino = r->ino;
    n->parent = r->parent;
    n->nlookup = r->nlookup;
    n->lookups_unknown = r->lookups_unknown;
    n->hash = h;
    n->is_dir = r->is_dir;
    n->keylen = (uint16_t)keylen;
    n->namelen = (uint16_t)namelen;
    memcpy(n->key, r->key, keylen + 1);
    if (!set_etag(&n->open_etag, r->open_etag)) {
        node_free(n);
        return -ENOMEM;
    }
    struct efc_attr a = r->attr;
    n->fetched_ms = 0;
    store_attr(n, &a);
    if (a.etag[0] && n->etag == NULL) {
        node_free(n);
        return -ENOMEM;
    }

    pthread_mutex_lock(&s->lock);
    if (find_ino(s, n->ino) ||
        (r->named && find_name(s, h, n->parent, node_name(n), namelen) != NULL)) {
        pthread_mutex_unlock(&s->lock);
        node_free(n);
        return -EINVAL;
    }
    link_ino(s, n);
    if (r->named)
        link_name(s, n);
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add(&ns->created, 1);
    if (seq > ns->import_max_seq)
        ns->import_max_seq = seq;
    return 0;
}

uint64_t efc_ns_seq_after(uint64_t max_ino)
{
    return (max_ino >> NS_SHARD_BITS) + 1;
}

void efc_ns_set_journal(struct efc_ns *ns, struct efc_journal *j)
{
    atomic_store(&ns->journal, j);
}

int efc_ns_import_done(struct efc_ns *ns, uint64_t next_seq)
{
    if (next_seq <= ns->import_max_seq || next_seq > (UINT64_MAX >> NS_SHARD_BITS))
        return -EINVAL;
    atomic_store(&ns->next_seq, next_seq);
    return 0;
}
