/* efc/dir.c - directory listings: the visibility filter, directory streams, completed listings
 * and the listing cache; see dir_i.h.
 *
 * Design. A directory stream (struct efc_dir, one per opendir) turns ListObjectsV2 pages into
 * numbered visible entries. Each fetched page becomes one immutable, reference-counted block
 * (struct dirpage: entries and their strings in one allocation) appended to the stream, so the
 * entries a readdir hands to the kernel stay put while later pages arrive, and a completed
 * listing can share the very same blocks. Pages are fetched only when an entry not yet seen is
 * asked for: `ls` on a 100k-entry directory gets its first entries after one page, not after all.
 *
 * The file-versus-directory rule needs look-ahead across pages (see the filter in dir_i.h), so the
 * filter is a small state machine fed entry by entry; it holds back at most a chain of files that
 * are prefixes of one another and releases them once the key order proves no "x/" can follow.
 *
 * Memory is bounded by struct efc_dirmem: every page is charged when built and uncharged when its
 * last reference goes. A stream past the limit keeps only its last EFC_DIR_KEEP_PAGES pages; a
 * seek before them replays the listing from the start. The listing cache gives way (least
 * recently used first) while the charged total passes half the limit, and holds at most
 * max_dirs listings.
 *
 * Locks: a stream has none (its owner serialises calls). The listing cache has one mutex, a leaf:
 * nothing else is locked while it is held. Pages and listings are immutable once published, and
 * their reference counts are atomic.
 */
#include "efc/dir_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

#define EFC_DIR_KEEP_PAGES 4
#define EFC_LIST_PAGE_KEYS 1000
/* Bound on the strings of one page under construction: 1000 keys and up to OSS_MAX_KEY_LEN
   released files, each with a name and an ETag. */
#define EFC_PAGE_STRINGS_MAX                                                                       \
    ((size_t)(EFC_LIST_PAGE_KEYS + OSS_MAX_KEY_LEN + 1) * (EFC_NAME_MAX + OSS_MAX_ETAG_LEN + 2))

bool efc_name_visible(const char *name, size_t len)
{
    if (len == 0 || len > EFC_NAME_MAX)
        return false;
    if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')))
        return false;
    if (memchr(name, '/', len) != NULL || memchr(name, '\0', len) != NULL)
        return false;
    return true;
}

/* ---- the filter -------------------------------------------------------------------------- */

struct held {
    char *key;
    size_t keylen;
    uint64_t size;
    int64_t mtime;
    char *etag;
    uint8_t sc;
};

struct efc_dirfilter {
    char *prefix;
    size_t plen;
    struct held *held; /* a stack: held[i].key is a proper prefix of held[i + 1].key */
    size_t n, cap;
    uint64_t ignored; /* keys outside the prefix (a server bug): counted, logged once */
};

int efc_key_cmp_dir(const char *key, const char *p, size_t plen)
{
    int c = strncmp(key, p, plen);
    if (c != 0)
        return c;
    /* KEY starts with P (strncmp stops at a NUL in KEY, which then compares lower). */
    unsigned char k = (unsigned char)key[plen];
    if (k != '/')
        return k < '/' ? -1 : 1;
    return key[plen + 1] == '\0' ? 0 : 1;
}

int efc_dirfilter_new(const char *prefix, struct efc_dirfilter **out)
{
    struct efc_dirfilter *f = calloc(1, sizeof(*f));
    *out = NULL;
    if (f == NULL)
        return -ENOMEM;
    f->prefix = strdup(prefix);
    if (f->prefix == NULL) {
        free(f);
        return -ENOMEM;
    }
    f->plen = strlen(prefix);
    *out = f;
    return 0;
}

static void held_release(struct held *h)
{
    free(h->key);
    free(h->etag);
    h->key = h->etag = NULL;
}

void efc_dirfilter_reset(struct efc_dirfilter *f)
{
    for (size_t i = 0; i < f->n; i++)
        held_release(&f->held[i]);
    f->n = 0;
}

void efc_dirfilter_free(struct efc_dirfilter *f)
{
    if (f == NULL)
        return;
    efc_dirfilter_reset(f);
    free(f->held);
    free(f->prefix);
    free(f);
}

static int emit_held(struct efc_dirfilter *f, struct held *h, efc_dirent_fn fn, void *arg)
{
    struct efc_dirent e = {
        .name = h->key + f->plen,
        .etag = h->etag ? h->etag : "",
        .size = h->size,
        .mtime = h->mtime,
        .namelen = (uint16_t)(h->keylen - f->plen),
        .is_dir = false,
        .sc = h->sc,
    };
    return fn(arg, &e);
}

/* Pops the top of the stack and hands it to FN (unless DROP). */
static int pop(struct efc_dirfilter *f, bool drop, efc_dirent_fn fn, void *arg)
{
    struct held *h = &f->held[--f->n];
    int rc = drop ? 0 : emit_held(f, h, fn, arg);
    held_release(h);
    return rc;
}

static int push(struct efc_dirfilter *f, const struct oss_list_entry *e, size_t keylen,
                efc_dirent_fn fn, void *arg)
{
    /* With keys in order the stack is a chain of prefixes, at most OSS_MAX_KEY_LEN deep. A
       server that breaks the order must not make it grow without bound: release the top. */
    if (f->n > OSS_MAX_KEY_LEN) {
        int rc = pop(f, false, fn, arg);
        if (rc)
            return rc;
    }
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 8;
        struct held *nh = realloc(f->held, nc * sizeof(*nh));
        if (nh == NULL)
            return -ENOMEM;
        f->held = nh;
        f->cap = nc;
    }
    struct held *h = &f->held[f->n];
    h->key = strndup(e->key, keylen);
    h->etag = e->etag && e->etag[0] ? strdup(e->etag) : NULL;
    if (h->key == NULL || (e->etag && e->etag[0] && h->etag == NULL)) {
        held_release(h);
        return -ENOMEM;
    }
    h->keylen = keylen;
    h->size = e->size;
    h->mtime = (int64_t)e->mtime;
    h->sc = (uint8_t)e->storage_class;
    f->n++;
    return 0;
}

int efc_dirfilter_feed(struct efc_dirfilter *f, const struct oss_list_entry *e, efc_dirent_fn fn,
                       void *arg)
{
    const char *key = e->key;
    size_t keylen = strlen(key);
    int rc;

    if (keylen < f->plen || memcmp(key, f->prefix, f->plen) != 0) {
        if (f->ignored++ == 0)
            log_warn("listing of '%s' returned key '%s' outside it; ignored", f->prefix, key);
        return 0;
    }
    /* Every key, visible or not, moves the listing's position: release the held files that no
       "x/" can follow any more, and drop the one this key proves to be a directory. */
    while (f->n > 0) {
        struct held *top = &f->held[f->n - 1];
        int c = efc_key_cmp_dir(key, top->key, top->keylen);
        if (c < 0)
            break;
        rc = pop(f, c == 0 && e->is_prefix, fn, arg);
        if (rc)
            return rc;
    }

    const char *rest = key + f->plen;
    size_t restlen = keylen - f->plen;
    if (e->is_prefix) {
        if (restlen < 2 || rest[restlen - 1] != '/' || !efc_name_visible(rest, restlen - 1))
            return 0;
        struct efc_dirent d = {
            .name = NULL, .etag = "", .namelen = (uint16_t)(restlen - 1), .is_dir = true};
        /* FN wants a NUL-terminated name. */
        char name[EFC_NAME_MAX + 1];
        memcpy(name, rest, restlen - 1);
        name[restlen - 1] = '\0';
        d.name = name;
        return fn(arg, &d);
    }
    /* A content key equal to the prefix is the directory's own marker object. */
    if (!efc_name_visible(rest, restlen))
        return 0;
    return push(f, e, keylen, fn, arg);
}

int efc_dirfilter_finish(struct efc_dirfilter *f, efc_dirent_fn fn, void *arg)
{
    while (f->n > 0) {
        int rc = pop(f, false, fn, arg);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- pages ------------------------------------------------------------------------------- */

struct dirpage {
    _Atomic unsigned refs;
    uint32_t n;
    uint64_t first;      /* stream index of e[0] */
    uint64_t fetched_ms; /* when the page was requested */
    size_t bytes;        /* charged to mem */
    struct efc_dirmem *mem;
    struct efc_dirent e[]; /* then the strings */
};

static void page_unref(struct dirpage *p)
{
    if (p == NULL || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    atomic_fetch_sub(&p->mem->bytes, p->bytes);
    free(p);
}

static void page_ref(struct dirpage *p)
{
    atomic_fetch_add(&p->refs, 1);
}

/* Entries of the page being built; strings go to a bounded buffer as offsets. */
struct pbent {
    size_t name_off, etag_off;
    uint64_t size;
    int64_t mtime;
    uint16_t namelen;
    bool is_dir;
    uint8_t sc;
};

struct pbuild {
    struct pbent *v;
    size_t n, cap;
    struct buf strings;
};

static int pb_add(void *arg, const struct efc_dirent *e)
{
    struct pbuild *pb = arg;
    if (pb->n == pb->cap) {
        size_t nc = pb->cap ? pb->cap * 2 : 256;
        struct pbent *nv = realloc(pb->v, nc * sizeof(*nv));
        if (nv == NULL)
            return -ENOMEM;
        pb->v = nv;
        pb->cap = nc;
    }
    struct pbent *p = &pb->v[pb->n];
    p->name_off = pb->strings.len;
    int rc = buf_append(&pb->strings, e->name, (size_t)e->namelen + 1);
    if (rc)
        return rc;
    p->etag_off = pb->strings.len;
    rc = buf_append(&pb->strings, e->etag, strlen(e->etag) + 1);
    if (rc)
        return rc;
    p->size = e->size;
    p->mtime = e->mtime;
    p->namelen = e->namelen;
    p->is_dir = e->is_dir;
    p->sc = e->sc;
    pb->n++;
    return 0;
}

static struct dirpage *pb_finish(struct pbuild *pb, uint64_t first, uint64_t fetched_ms,
                                 struct efc_dirmem *mem)
{
    size_t head = sizeof(struct dirpage) + pb->n * sizeof(struct efc_dirent);
    size_t total = head + pb->strings.len;
    struct dirpage *p = malloc(total);
    if (p == NULL)
        return NULL;
    char *s = (char *)p + head;
    if (pb->strings.len)
        memcpy(s, pb->strings.data, pb->strings.len);
    atomic_init(&p->refs, 1);
    p->n = (uint32_t)pb->n;
    p->first = first;
    p->fetched_ms = fetched_ms;
    p->bytes = total;
    p->mem = mem;
    for (size_t i = 0; i < pb->n; i++) {
        const struct pbent *b = &pb->v[i];
        p->e[i] = (struct efc_dirent){
            .name = s + b->name_off,
            .etag = s + b->etag_off,
            .size = b->size,
            .mtime = b->mtime,
            .namelen = b->namelen,
            .is_dir = b->is_dir,
            .sc = b->sc,
        };
    }
    atomic_fetch_add(&mem->bytes, total);
    return p;
}

/* ---- completed listings ------------------------------------------------------------------ */

struct efc_listing {
    _Atomic unsigned refs;
    uint64_t time_ms;
    size_t n;
    size_t bytes; /* of this struct and the index; the pages are charged on their own */
    struct efc_dirmem *mem;
    struct dirpage **pages;
    size_t npages;
    const struct efc_dirent **sorted;
};

static int cmp_name(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int cmp_dirent_ptr(const void *a, const void *b)
{
    const struct efc_dirent *x = *(const struct efc_dirent *const *)a;
    const struct efc_dirent *y = *(const struct efc_dirent *const *)b;
    return cmp_name(x->name, x->namelen, y->name, y->namelen);
}

const struct efc_dirent *efc_listing_find(const struct efc_listing *l, const char *name, size_t len)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct efc_dirent *e = l->sorted[mid];
        int c = cmp_name(name, len, e->name, e->namelen);
        if (c == 0)
            return e;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t efc_listing_count(const struct efc_listing *l)
{
    return l->n;
}

uint64_t efc_listing_time(const struct efc_listing *l)
{
    return l->time_ms;
}

struct efc_listing *efc_listing_ref(struct efc_listing *l)
{
    atomic_fetch_add(&l->refs, 1);
    return l;
}

void efc_listing_unref(struct efc_listing *l)
{
    if (l == NULL || atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    for (size_t i = 0; i < l->npages; i++)
        page_unref(l->pages[i]);
    atomic_fetch_sub(&l->mem->bytes, l->bytes);
    free(l->pages);
    free(l->sorted);
    free(l);
}

/* ---- directory streams ------------------------------------------------------------------- */

/* One page as the server sent it. Its XML groups contents and common prefixes (OSS and S3 both
   send all <Contents> first), so the page is sorted back into key order before the filter sees
   it; pages themselves follow each other in key order, so this restores the listing's order. */
struct rawent {
    size_t key_off, etag_off;
    uint64_t size;
    int64_t mtime;
    bool is_prefix;
    uint8_t sc;
};

struct rawpage {
    struct rawent *v;
    size_t n, cap;
    struct buf strings;
};

struct efc_dir {
    char *prefix;
    efc_lister_fn lister;
    void *lister_arg;
    struct efc_dirmem *mem;
    struct efc_dirfilter *filter;
    struct oss_list req;    /* holds the continuation token */
    bool started;           /* the first page was requested */
    bool done;              /* the last page has been read */
    bool whole;             /* every entry since index 0 is in memory */
    bool broken;            /* a page failed half-way: the filter's state is lost, replay */
    uint64_t count;         /* entries emitted so far: the next index */
    uint64_t start_ms;      /* when the first page was requested */
    struct dirpage **pages; /* consecutive, covering [pages[0]->first, count) */
    size_t npages, cap;
    struct pbuild pb;
    struct rawpage raw;
    struct efc_listing *listing; /* built once complete */
    struct efc_dir_stats st;
};

/* The scratch space of one page goes once the page is built: an idle open directory holds
   only its pages (charged to mem), not a page's worth of buffers. */
static void scratch_release(struct efc_dir *d)
{
    free(d->pb.v);
    d->pb.v = NULL;
    d->pb.n = d->pb.cap = 0;
    buf_release(&d->pb.strings);
    free(d->raw.v);
    d->raw.v = NULL;
    d->raw.n = d->raw.cap = 0;
    buf_release(&d->raw.strings);
}

int efc_dir_new(const char *prefix, efc_lister_fn lister, void *lister_arg, struct efc_dirmem *mem,
                struct efc_dir **out)
{
    struct efc_dir *d = calloc(1, sizeof(*d));
    int rc;

    *out = NULL;
    if (d == NULL)
        return -ENOMEM;
    d->prefix = strdup(prefix);
    if (d->prefix == NULL) {
        free(d);
        return -ENOMEM;
    }
    rc = efc_dirfilter_new(prefix, &d->filter);
    if (rc) {
        free(d->prefix);
        free(d);
        return rc;
    }
    d->lister = lister;
    d->lister_arg = lister_arg;
    d->mem = mem;
    d->whole = true;
    buf_init(&d->pb.strings, EFC_PAGE_STRINGS_MAX);
    buf_init(&d->raw.strings, OSS_MAX_LIST_BODY);
    *out = d;
    return 0;
}

static void drop_pages(struct efc_dir *d, size_t k)
{
    if (k == 0)
        return;
    for (size_t i = 0; i < k; i++)
        page_unref(d->pages[i]);
    if (d->npages > k)
        memmove(d->pages, d->pages + k, (d->npages - k) * sizeof(*d->pages));
    d->npages -= k;
}

static void restart(struct efc_dir *d)
{
    drop_pages(d, d->npages);
    efc_dirfilter_reset(d->filter);
    d->req.token[0] = '\0';
    d->started = d->done = d->broken = false;
    d->whole = true;
    d->count = 0;
    efc_listing_unref(d->listing);
    d->listing = NULL;
    d->st.restarts++;
}

void efc_dir_free(struct efc_dir *d)
{
    if (d == NULL)
        return;
    drop_pages(d, d->npages);
    free(d->pages);
    efc_listing_unref(d->listing);
    efc_dirfilter_free(d->filter);
    scratch_release(d);
    free(d->prefix);
    free(d);
}

static int raw_add(void *arg, const struct oss_list_entry *e)
{
    struct rawpage *r = arg;
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 256;
        struct rawent *nv = realloc(r->v, nc * sizeof(*nv));
        if (nv == NULL)
            return -ENOMEM;
        r->v = nv;
        r->cap = nc;
    }
    struct rawent *x = &r->v[r->n];
    x->key_off = r->strings.len;
    int rc = buf_append(&r->strings, e->key, strlen(e->key) + 1);
    if (rc)
        return rc;
    x->etag_off = r->strings.len;
    rc = buf_append(&r->strings, e->etag ? e->etag : "", (e->etag ? strlen(e->etag) : 0) + 1);
    if (rc)
        return rc;
    x->size = e->size;
    x->mtime = (int64_t)e->mtime;
    x->is_prefix = e->is_prefix;
    x->sc = (uint8_t)e->storage_class;
    r->n++;
    return 0;
}

/* qsort has no context argument; the strings of the page being sorted. Streams are used by one
   thread at a time, but several streams sort at once, hence thread-local. */
static __thread const char *raw_sort_base;

static int cmp_raw(const void *a, const void *b)
{
    const struct rawent *x = a, *y = b;
    return strcmp(raw_sort_base + x->key_off, raw_sort_base + y->key_off);
}

/* Feeds the buffered page, in key order, to the filter. */
static int feed_raw(struct efc_dir *d)
{
    struct rawpage *r = &d->raw;
    if (r->n > 1) {
        raw_sort_base = r->strings.data;
        qsort(r->v, r->n, sizeof(*r->v), cmp_raw);
        raw_sort_base = NULL;
    }
    for (size_t i = 0; i < r->n; i++) {
        const struct rawent *x = &r->v[i];
        struct oss_list_entry e = {
            .key = r->strings.data + x->key_off,
            .is_prefix = x->is_prefix,
            .size = x->size,
            .mtime = (time_t)x->mtime,
            .etag = r->strings.data + x->etag_off,
            .storage_class = (enum oss_storage_class)x->sc,
        };
        int rc = efc_dirfilter_feed(d->filter, &e, pb_add, &d->pb);
        if (rc)
            return rc;
    }
    return 0;
}

/* Fetches, filters and appends one page. */
static int fetch_one_page(struct efc_dir *d, uint64_t t)
{
    int rc;

    d->req.prefix = d->prefix;
    d->req.delimiter = "/";
    d->req.start_after = NULL;
    d->req.max_keys = EFC_LIST_PAGE_KEYS;
    rc = d->lister(d->lister_arg, &d->req, raw_add, &d->raw);
    d->st.pages++;
    if (rc) {
        /* The filter has seen nothing of this page: it can simply be asked for again (with
           the token it was asked with, unless the server's answer already moved it on). */
        if (d->raw.n > 0)
            d->broken = true;
        return rc;
    }
    /* From here a failure (only memory exhaustion) leaves the filter half-way: replay. */
    rc = feed_raw(d);
    if (rc == 0 && d->req.token[0] == '\0') {
        rc = efc_dirfilter_finish(d->filter, pb_add, &d->pb);
        if (rc == 0)
            d->done = true;
    }
    if (rc) {
        d->broken = true;
        return rc;
    }
    if (d->pb.n == 0)
        return 0;
    if (d->npages == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 16;
        struct dirpage **np = realloc(d->pages, nc * sizeof(*np));
        if (np == NULL) {
            d->broken = true;
            return -ENOMEM;
        }
        d->pages = np;
        d->cap = nc;
    }
    struct dirpage *p = pb_finish(&d->pb, d->count, t, d->mem);
    if (p == NULL) {
        d->broken = true;
        return -ENOMEM;
    }
    d->pages[d->npages++] = p;
    d->count += p->n;
    d->st.entries += p->n;
    if (atomic_load(&d->mem->bytes) > d->mem->limit && d->npages > EFC_DIR_KEEP_PAGES) {
        drop_pages(d, d->npages - EFC_DIR_KEEP_PAGES);
        d->whole = false;
    }
    return 0;
}

static int fetch_page(struct efc_dir *d)
{
    uint64_t t = time_mono_ms();

    if (!d->started) {
        d->start_ms = t;
        d->started = true;
    }
    int rc = fetch_one_page(d, t);
    scratch_release(d);
    return rc;
}

int efc_dir_seek(struct efc_dir *d, uint64_t index)
{
    uint64_t base = d->npages ? d->pages[0]->first : d->count;
    int rc;

    if (d->broken || index < base) {
        if (index < base)
            log_debug("dir '%s': entry %llu is no longer in memory; listing again", d->prefix,
                      (unsigned long long)index);
        restart(d);
    }
    while (index >= d->count) {
        if (d->done)
            return 0;
        rc = fetch_page(d);
        if (rc)
            return rc;
    }
    return 1;
}

static struct dirpage *page_of(const struct efc_dir *d, uint64_t index)
{
    size_t lo = 0, hi = d->npages;
    if (d->npages == 0 || index < d->pages[0]->first || index >= d->count)
        return NULL;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->pages[mid]->first <= index)
            lo = mid;
        else
            hi = mid;
    }
    return d->pages[lo];
}

const struct efc_dirent *efc_dir_get(struct efc_dir *d, uint64_t index)
{
    struct dirpage *p = page_of(d, index);
    return p ? &p->e[index - p->first] : NULL;
}

uint64_t efc_dir_entry_time(const struct efc_dir *d, uint64_t index)
{
    struct dirpage *p = page_of(d, index);
    return p ? p->fetched_ms : 0;
}

bool efc_dir_complete(const struct efc_dir *d)
{
    return d->done && !d->broken;
}

struct efc_listing *efc_dir_listing(struct efc_dir *d)
{
    if (!d->done || d->broken || !d->whole)
        return NULL;
    if (d->listing)
        return efc_listing_ref(d->listing);
    if (atomic_load(&d->mem->bytes) > d->mem->limit)
        return NULL;

    struct efc_listing *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->n = (size_t)d->count;
    l->sorted = malloc((l->n ? l->n : 1) * sizeof(*l->sorted));
    l->pages = malloc((d->npages ? d->npages : 1) * sizeof(*l->pages));
    if (l->sorted == NULL || l->pages == NULL) {
        free(l->sorted);
        free(l->pages);
        free(l);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < d->npages; i++) {
        page_ref(d->pages[i]);
        l->pages[i] = d->pages[i];
        for (uint32_t j = 0; j < d->pages[i]->n; j++)
            l->sorted[k++] = &d->pages[i]->e[j];
    }
    l->npages = d->npages;
    qsort(l->sorted, l->n, sizeof(*l->sorted), cmp_dirent_ptr);
    atomic_init(&l->refs, 1);
    l->time_ms = d->start_ms;
    l->mem = d->mem;
    l->bytes = sizeof(*l) + l->n * sizeof(*l->sorted) + l->npages * sizeof(*l->pages);
    atomic_fetch_add(&d->mem->bytes, l->bytes);
    d->listing = l;
    return efc_listing_ref(l);
}

int efc_dir_from_listing(const char *prefix, struct efc_listing *l, efc_lister_fn lister,
                         void *lister_arg, struct efc_dirmem *mem, struct efc_dir **out)
{
    struct efc_dir *d;
    int rc = efc_dir_new(prefix, lister, lister_arg, mem, &d);

    *out = NULL;
    if (rc)
        return rc;
    d->pages = malloc((l->npages ? l->npages : 1) * sizeof(*d->pages));
    if (d->pages == NULL) {
        efc_dir_free(d);
        return -ENOMEM;
    }
    d->cap = l->npages ? l->npages : 1;
    for (size_t i = 0; i < l->npages; i++) {
        page_ref(l->pages[i]);
        d->pages[i] = l->pages[i];
    }
    d->npages = l->npages;
    d->count = l->n;
    d->started = d->done = d->whole = true;
    d->start_ms = l->time_ms;
    d->listing = efc_listing_ref(l);
    *out = d;
    return 0;
}

void efc_dir_get_stats(const struct efc_dir *d, struct efc_dir_stats *st)
{
    *st = d->st;
}

/* ---- the listing cache ------------------------------------------------------------------- */

struct lc_ent {
    char *key; /* the directory's key: "" or "a/b/" */
    size_t klen;
    uint64_t hash;
    size_t bytes; /* efc_listing_bytes() when put */
    struct efc_listing *l;
    struct lc_ent *hnext;       /* hash chain */
    struct lc_ent *prev, *next; /* LRU list, most recent first */
};

struct efc_lcache {
    pthread_mutex_t lock;
    struct lc_ent **tab; /* protected by lock, as everything below */
    size_t nb;
    unsigned n, max;
    uint64_t bytes, max_bytes;
    struct lc_ent lru; /* sentinel */
    struct efc_dirmem *mem;
    uint64_t hits, misses, expired, evicted;
};

size_t efc_listing_bytes(const struct efc_listing *l)
{
    size_t b = l->bytes;
    for (size_t i = 0; i < l->npages; i++)
        b += l->pages[i]->bytes;
    return b;
}

int efc_lcache_new(unsigned max_dirs, uint64_t max_bytes, struct efc_dirmem *mem,
                   struct efc_lcache **out)
{
    struct efc_lcache *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (c == NULL)
        return -ENOMEM;
    c->max = max_dirs ? max_dirs : 1;
    c->nb = 64;
    while (c->nb < c->max && c->nb < (1u << 20))
        c->nb *= 2;
    c->tab = calloc(c->nb, sizeof(*c->tab));
    if (c->tab == NULL) {
        free(c);
        return -ENOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->max_bytes = max_bytes;
    c->mem = mem;
    c->lru.prev = c->lru.next = &c->lru;
    *out = c;
    return 0;
}

static uint64_t lc_hash(const char *key, size_t klen)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < klen; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ull;
    }
    return h;
}

static struct lc_ent **lc_slot(struct efc_lcache *c, const char *key, size_t klen, uint64_t h)
{
    struct lc_ent **pp = &c->tab[(h ^ (h >> 29)) & (c->nb - 1)];
    while (*pp && ((*pp)->hash != h || (*pp)->klen != klen || memcmp((*pp)->key, key, klen) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void lru_unlink(struct lc_ent *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push_front(struct efc_lcache *c, struct lc_ent *e)
{
    e->next = c->lru.next;
    e->prev = &c->lru;
    c->lru.next->prev = e;
    c->lru.next = e;
}

/* Unlinks E (under the lock) and returns it for the caller to free (lc_free) after unlocking. */
static struct lc_ent *lc_remove(struct efc_lcache *c, struct lc_ent *e)
{
    struct lc_ent **pp = lc_slot(c, e->key, e->klen, e->hash);
    *pp = e->hnext;
    lru_unlink(e);
    c->n--;
    c->bytes -= e->bytes;
    return e;
}

static void lc_free(struct lc_ent *e)
{
    if (e == NULL)
        return;
    efc_listing_unref(e->l);
    free(e->key);
    free(e);
}

void efc_lcache_free(struct efc_lcache *c)
{
    if (c == NULL)
        return;
    efc_lcache_clear(c);
    pthread_mutex_destroy(&c->lock);
    free(c->tab);
    free(c);
}

void efc_lcache_put(struct efc_lcache *c, const char *key, struct efc_listing *l)
{
    struct lc_ent *gone[8];
    size_t ngone = 0;
    size_t klen = strlen(key);
    struct lc_ent *e = calloc(1, sizeof(*e));

    if (e == NULL || (e->key = malloc(klen + 1)) == NULL) {
        free(e);
        return;
    }
    memcpy(e->key, key, klen + 1);
    e->klen = klen;
    e->hash = lc_hash(key, klen);
    e->bytes = efc_listing_bytes(l);
    if (c->max_bytes && e->bytes > c->max_bytes) {
        /* Larger than the whole cache: keeping it would only push everything else out. */
        free(e->key);
        free(e);
        efc_lcache_drop(c, key);
        return;
    }
    e->l = efc_listing_ref(l);
    pthread_mutex_lock(&c->lock);
    struct lc_ent **pp = lc_slot(c, key, klen, e->hash);
    if (*pp)
        gone[ngone++] = lc_remove(c, *pp);
    pp = lc_slot(c, key, klen, e->hash);
    *pp = e;
    lru_push_front(c, e);
    c->n++;
    c->bytes += e->bytes;
    /* Evict from the cold end; a few at a time keeps the frees out of the lock. */
    while (ngone < 8 && c->n > 1 &&
           (c->n > c->max || (c->max_bytes && c->bytes > c->max_bytes) ||
            atomic_load(&c->mem->bytes) > c->mem->limit / 2)) {
        gone[ngone++] = lc_remove(c, c->lru.prev);
        c->evicted++;
    }
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < ngone; i++)
        lc_free(gone[i]);
}

struct efc_listing *efc_lcache_get(struct efc_lcache *c, const char *key, uint64_t max_age_ms,
                                   uint64_t now_ms)
{
    struct efc_listing *l = NULL;
    struct lc_ent *stale = NULL;
    size_t klen = strlen(key);

    pthread_mutex_lock(&c->lock);
    struct lc_ent *e = *lc_slot(c, key, klen, lc_hash(key, klen));
    if (e) {
        uint64_t age = now_ms > e->l->time_ms ? now_ms - e->l->time_ms : 0;
        /* A listing newer than NOW_MS (built while the caller's clock was read) is fresh. */
        if (age <= max_age_ms) {
            l = efc_listing_ref(e->l);
            lru_unlink(e);
            lru_push_front(c, e);
            c->hits++;
        } else {
            stale = lc_remove(c, e);
            c->expired++;
            c->misses++;
        }
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    lc_free(stale);
    return l;
}

void efc_lcache_drop(struct efc_lcache *c, const char *key)
{
    struct lc_ent *e;
    size_t klen = strlen(key);

    pthread_mutex_lock(&c->lock);
    e = *lc_slot(c, key, klen, lc_hash(key, klen));
    if (e)
        lc_remove(c, e);
    pthread_mutex_unlock(&c->lock);
    lc_free(e);
}

uint64_t efc_lcache_clear(struct efc_lcache *c)
{
    uint64_t n = 0;
    for (;;) {
        struct lc_ent *e = NULL;
        pthread_mutex_lock(&c->lock);
        if (c->n > 0)
            e = lc_remove(c, c->lru.next);
        pthread_mutex_unlock(&c->lock);
        if (e == NULL)
            return n;
        lc_free(e);
        n++;
    }
}

void efc_lcache_get_stats(struct efc_lcache *c, struct efc_lcache_stats *st)
{
    pthread_mutex_lock(&c->lock);
    st->dirs = c->n;
    st->bytes = c->bytes;
    st->hits = c->hits;
    st->misses = c->misses;
    st->expired = c->expired;
    st->evicted = c->evicted;
    pthread_mutex_unlock(&c->lock);
}
