/* efc/journal.c - the crash journal (journal_i.h draws its layout and states the rules for writing
 * and reading it). The daemon appends one small record per change of its inode table or handle
 * table to a shared memfd, publishing each with a release store of the used count, and compacts
 * between the two halves when one fills or is mostly dead records; the supervisor reads the
 * journal back after a death as outside input (every header field and record checked against its
 * limits and the bytes left before anything is read; fuzzed by fuzz_journal) into the live set
 * and from it a hand-over blob (hoblob.c). One live-set table, an open-addressing hash keyed by
 * (node or handle, number), serves both the compaction and the replay, so what a compaction keeps
 * is exactly what a replay would have found.
 */
#define _GNU_SOURCE /* memfd_create, fallocate */
#include "efc/journal_i.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "efc/ns_i.h"
#include "efc/update_i.h"
#include "oss/oss.h"
#include "util/le.h"
#include "util/log.h"
#include "util/timeutil.h"

/* The writer publishes the header's counters in place with atomic stores of host integers, which
   are the layout's little-endian fields only on a little-endian host (x86-64, arm64). The readers
   use util/le.h and work anywhere. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the journal's writer is little-endian");
_Static_assert(sizeof(size_t) >= 8, "a journal maps up to 32 GiB");
_Static_assert(EFC_JNL_ARGV_OFF == 1408, "journal_i.h's layout");

/* header fields */
#define H_VERSION   8
#define H_HSIZE     12
#define H_HALF      16
#define H_ACTIVE    24
#define H_PID       28
#define H_USED      32 /* + 8 * half index */
#define H_STATE     48
#define H_INIT_LEN  52
#define H_REPLY_LEN 56
#define H_ARGV_LEN  60
#define H_GEN       64
#define H_ARGC      72
#define H_SPARE     76
#define H_SPARE_END 128

/* Compact a half whose used bytes pass COMPACT_MIN and COMPACT_RATIO times the live estimate. */
#define COMPACT_MIN   (1u << 20)
#define COMPACT_RATIO 4

static size_t rec_size(size_t keylen, size_t etaglen)
{
    return (EFC_JNL_FIXED + keylen + etaglen + 7) & ~(size_t)7;
}

static const char *type_name(unsigned type)
{
    static const char *const names[] = {"?", "node", "unname", "forget", "open", "close"};
    return type <= EFC_JNL_CLOSE ? names[type] : "?";
}

#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, errlen, "crash journal: " __VA_ARGS__);                                      \
        return -EINVAL;                                                                            \
    } while (0)

/* ---- records ----------------------------------------------------------------------------------
 */

struct rec {
    uint32_t len;
    uint8_t type, flags;
    uint16_t keylen, etaglen;
    uint64_t a, b, c, d;
    const uint8_t *key, *etag; /* not NUL-terminated */
};

/* Reads the record at P, which has LEFT bytes before the half's used count, into R, checking it
   whole (OFF, its offset in the half, is for the reason). */
static int get_record(const uint8_t *p, uint64_t left, uint64_t off, struct rec *r, char *err,
                      size_t errlen)
{
    unsigned long long o = (unsigned long long)off;

    if (left < EFC_JNL_FIXED)
        BAD("record at %llu: %llu bytes left, too few for a record", o, (unsigned long long)left);
    r->len = le_get32(p);
    r->type = p[4];
    r->flags = p[5];
    r->keylen = le_get16(p + 6);
    r->etaglen = le_get16(p + 8);
    if (r->len < EFC_JNL_FIXED || r->len % 8 != 0 || r->len > left)
        BAD("record at %llu: length %u runs past the %llu bytes used or is malformed", o, r->len,
            (unsigned long long)left);
    if (r->type < EFC_JNL_NODE || r->type > EFC_JNL_CLOSE)
        BAD("record at %llu: unknown type %u", o, r->type);
    if (le_get16(p + 10) != 0 || le_get32(p + 12) != 0)
        BAD("record at %llu: spare bytes are not zero", o);
    bool named = r->type == EFC_JNL_NODE || r->type == EFC_JNL_OPEN;
    if ((r->flags & ~1u) != 0 || (r->flags != 0 && !named))
        BAD("record at %llu: flags %#x on a %s record", o, r->flags, type_name(r->type));
    if (r->keylen > OSS_MAX_KEY_LEN || r->etaglen > OSS_MAX_ETAG_LEN)
        BAD("record at %llu: key of %u bytes, ETag of %u (at most %d and %d)", o, r->keylen,
            r->etaglen, OSS_MAX_KEY_LEN, OSS_MAX_ETAG_LEN);
    if ((!named && r->keylen != 0) || (r->type != EFC_JNL_OPEN && r->etaglen != 0))
        BAD("record at %llu: a %s record with a key or an ETag", o, type_name(r->type));
    if (r->len != rec_size(r->keylen, r->etaglen))
        BAD("record at %llu: length %u for a key of %u bytes and an ETag of %u", o, r->len,
            r->keylen, r->etaglen);
    r->key = p + EFC_JNL_FIXED;
    r->etag = r->key + r->keylen;
    for (const uint8_t *z = r->etag + r->etaglen; z < p + r->len; z++)
        if (*z != 0)
            BAD("record at %llu: padding bytes are not zero", o);
    if ((r->keylen && memchr(r->key, '\0', r->keylen) != NULL) ||
        (r->etaglen && memchr(r->etag, '\0', r->etaglen) != NULL))
        BAD("record at %llu: a NUL byte in its key or ETag", o);
    r->a = le_get64(p + 16);
    r->b = le_get64(p + 24);
    r->c = le_get64(p + 32);
    r->d = le_get64(p + 40);
    switch (r->type) {
    case EFC_JNL_NODE:
        if (r->a == 0 || r->a == EFC_ROOT_INO || r->b == 0)
            BAD("node record at %llu: inode %llu, parent %llu", o, (unsigned long long)r->a,
                (unsigned long long)r->b);
        if (r->c == 0 || r->c > NAME_MAX || r->c > r->keylen)
            BAD("node record at %llu: name of %llu bytes in a key of %u (1..%d)", o,
                (unsigned long long)r->c, r->keylen, NAME_MAX);
        if (r->d != 0)
            BAD("node record at %llu: spare field is not zero", o);
        break;
    case EFC_JNL_OPEN:
        /* fs.c's numbers are (generation << 32) | slot with a generation of 1 or more, and the
           hand-over blob refuses any other */
        if ((r->a >> 32) == 0 || r->b == 0)
            BAD("open record at %llu: handle number %#llx, inode %llu", o, (unsigned long long)r->a,
                (unsigned long long)r->b);
        break;
    default:
        if (r->a == 0 || r->b != 0 || r->c != 0 || r->d != 0)
            BAD("%s record at %llu: number 0 or spare fields not zero", type_name(r->type), o);
        break;
    }
    return 0;
}

/* Writes a record at P (the caller checked the lengths and that it fits). */
static size_t put_record(uint8_t *p, uint8_t type, uint8_t flags, uint64_t a, uint64_t b,
                         uint64_t c, uint64_t d, const char *key, size_t keylen, const char *etag,
                         size_t etaglen)
{
    size_t len = rec_size(keylen, etaglen);
    le_put32(p, (uint32_t)len);
    p[4] = type;
    p[5] = flags;
    le_put16(p + 6, (uint16_t)keylen);
    le_put16(p + 8, (uint16_t)etaglen);
    le_put16(p + 10, 0);
    le_put32(p + 12, 0);
    le_put64(p + 16, a);
    le_put64(p + 24, b);
    le_put64(p + 32, c);
    le_put64(p + 40, d);
    if (keylen)
        memcpy(p + EFC_JNL_FIXED, key, keylen);
    if (etaglen)
        memcpy(p + EFC_JNL_FIXED + keylen, etag, etaglen);
    memset(p + EFC_JNL_FIXED + keylen + etaglen, 0, len - EFC_JNL_FIXED - keylen - etaglen);
    return len;
}

/* ---- the live set -----------------------------------------------------------------------------
 * What a replay of a half leaves: for each inode and each handle number the last word on it. An
 * ended entry stays in its slot (as a tombstone that a later NODE or OPEN of the same number
 * revives) until the table grows, which keeps only the live ones. */

enum { K_EMPTY = 0, K_NODE = 1, K_HANDLE = 2 };

struct live_ent {
    uint64_t id;  /* inode or handle number */
    uint64_t off; /* of its NODE or OPEN record in the half */
    uint32_t len; /* of that record */
    uint8_t kind;
    bool live;
    bool named; /* nodes: no UNNAME since the NODE */
};

struct live_set {
    struct live_ent *e;
    size_t cap;  /* a power of 2, or 0 */
    size_t used; /* slots taken, live or ended */
    size_t nlive;
    uint64_t
        bytes; /* of the live records as a compaction writes them (an unnamed node: + UNNAME) */
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* The slot of (KIND, ID), or the empty slot where it would go. CAP must not be 0. */
static struct live_ent *slot_of(const struct live_set *s, uint8_t kind, uint64_t id)
{
    size_t mask = s->cap - 1, i = (size_t)mix(id ^ ((uint64_t)kind << 56)) & mask;
    while (s->e[i].kind != K_EMPTY && (s->e[i].kind != kind || s->e[i].id != id))
        i = (i + 1) & mask;
    return &s->e[i];
}

static struct live_ent *live_find(const struct live_set *s, uint8_t kind, uint64_t id)
{
    if (s->cap == 0)
        return NULL;
    struct live_ent *e = slot_of(s, kind, id);
    return e->kind != K_EMPTY && e->live ? e : NULL;
}

static uint64_t ent_bytes(const struct live_ent *e)
{
    return e->len + (e->named ? 0 : EFC_JNL_FIXED);
}

/* Rebuilds S with room for twice its live entries, dropping the ended ones. */
static int live_grow(struct live_set *s)
{
    size_t cap = 64;
    while (cap < 4 * (s->nlive + 1))
        cap *= 2;
    struct live_ent *e = calloc(cap, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    struct live_set n = {
        .e = e, .cap = cap, .used = s->nlive, .nlive = s->nlive, .bytes = s->bytes};
    for (size_t i = 0; i < s->cap; i++)
        if (s->e[i].kind != K_EMPTY && s->e[i].live)
            *slot_of(&n, s->e[i].kind, s->e[i].id) = s->e[i];
    free(s->e);
    *s = n;
    return 0;
}

/* A NODE or OPEN record: (KIND, ID) is live, named, and its record is LEN bytes at OFF. */
static int live_put(struct live_set *s, uint8_t kind, uint64_t id, uint64_t off, uint32_t len)
{
    if ((s->used + 1) * 4 > s->cap * 3 && live_grow(s) != 0)
        return -ENOMEM;
    struct live_ent *e = slot_of(s, kind, id);
    if (e->kind == K_EMPTY) {
        e->kind = kind;
        e->id = id;
        s->used++;
    } else if (e->live) { /* a number used twice: the later record wins */
        s->bytes -= ent_bytes(e);
        s->nlive--;
    }
    e->off = off;
    e->len = len;
    e->live = true;
    e->named = true;
    s->nlive++;
    s->bytes += len;
    return 0;
}

static void live_end(struct live_set *s, uint8_t kind, uint64_t id)
{
    struct live_ent *e = live_find(s, kind, id);
    if (e) {
        s->bytes -= ent_bytes(e);
        s->nlive--;
        e->live = false;
    }
}

static void live_unname(struct live_set *s, uint64_t ino)
{
    struct live_ent *e = live_find(s, K_NODE, ino);
    if (e && e->named) {
        e->named = false;
        s->bytes += EFC_JNL_FIXED;
    }
}

/* Checks the USED bytes of records at BASE and replays them into S. Returns 0, or -EINVAL or
   -ENOMEM with a reason. */
static int scan(const uint8_t *base, uint64_t used, struct live_set *s, char *err, size_t errlen)
{
    struct rec r;
    int rc = 0;

    for (uint64_t off = 0; off < used && rc == 0; off += r.len) {
        rc = get_record(base + off, used - off, off, &r, err, errlen);
        if (rc)
            return rc;
        switch (r.type) {
        case EFC_JNL_NODE:
            rc = live_put(s, K_NODE, r.a, off, r.len);
            break;
        case EFC_JNL_UNNAME:
            live_unname(s, r.a);
            break;
        case EFC_JNL_FORGET:
            live_end(s, K_NODE, r.a);
            break;
        case EFC_JNL_OPEN:
            rc = live_put(s, K_HANDLE, r.a, off, r.len);
            break;
        case EFC_JNL_CLOSE:
            live_end(s, K_HANDLE, r.a);
            break;
        }
    }
    if (rc)
        snprintf(err, errlen, "crash journal: no memory for the live set");
    return rc;
}

/* ---- the header -------------------------------------------------------------------------------
 */

int efc_journal_read_header(const void *mem, size_t len, struct efc_journal_header *h, char *err,
                            size_t errlen)
{
    const uint8_t *p = mem;

    memset(h, 0, sizeof(*h));
    if (len < EFC_JNL_HEADER_SIZE)
        BAD("%zu bytes, shorter than its header", len);
    if (memcmp(p, EFC_JNL_MAGIC, sizeof(EFC_JNL_MAGIC)) != 0)
        BAD("bad magic");
    uint32_t version = le_get32(p + H_VERSION), hsize = le_get32(p + H_HSIZE);
    if (version != EFC_JNL_VERSION)
        BAD("version %u (this daemon reads %u)", version, EFC_JNL_VERSION);
    if (hsize != EFC_JNL_HEADER_SIZE)
        BAD("header size %u (expected %u)", hsize, EFC_JNL_HEADER_SIZE);
    h->half = le_get64(p + H_HALF);
    if (h->half < EFC_JNL_MIN_HALF || h->half > EFC_JNL_MAX_HALF || h->half % 4096 != 0)
        BAD("half size %llu (a multiple of 4096 in %u..%llu)", (unsigned long long)h->half,
            EFC_JNL_MIN_HALF, EFC_JNL_MAX_HALF);
    if ((uint64_t)len - EFC_JNL_HEADER_SIZE < 2 * h->half)
        BAD("%zu bytes cannot hold two halves of %llu", len, (unsigned long long)h->half);
    h->active = le_get32(p + H_ACTIVE);
    if (h->active > 1)
        BAD("active half %u", h->active);
    h->pid = le_get32(p + H_PID);
    h->used = le_get64(p + H_USED + 8 * h->active);
    if (h->used > h->half)
        BAD("%llu bytes used of a half of %llu", (unsigned long long)h->used,
            (unsigned long long)h->half);
    h->state = le_get32(p + H_STATE);
    if (h->state > EFC_JNL_OFF)
        BAD("unknown state %u", h->state);
    h->init_len = le_get32(p + H_INIT_LEN);
    h->reply_len = le_get32(p + H_REPLY_LEN);
    if (h->init_len > EFC_HO_MAX_INIT || h->reply_len > EFC_HO_MAX_REPLY)
        BAD("INIT request of %u bytes, reply of %u (at most %u and %u)", h->init_len, h->reply_len,
            EFC_HO_MAX_INIT, EFC_HO_MAX_REPLY);
    h->init = p + EFC_JNL_INIT_OFF;
    h->reply = p + EFC_JNL_REPLY_OFF;
    h->generation = le_get64(p + H_GEN);
    for (size_t i = H_SPARE; i < H_SPARE_END; i++)
        if (p[i] != 0)
            BAD("spare header bytes are not zero");

    uint32_t alen = le_get32(p + H_ARGV_LEN), argc = le_get32(p + H_ARGC);
    const char *a = (const char *)p + EFC_JNL_ARGV_OFF;
    if (argc > EFC_JNL_MAX_ARGC || alen > EFC_JNL_MAX_ARGV)
        BAD("%u arguments of %u bytes (at most %d and %d)", argc, alen, EFC_JNL_MAX_ARGC,
            (int)EFC_JNL_MAX_ARGV);
    if (alen && a[alen - 1] != '\0')
        BAD("the arguments do not end with a NUL");
    uint32_t n = 0;
    for (uint32_t o = 0; o < alen; o += (uint32_t)strlen(a + o) + 1) {
        if (n == argc)
            BAD("more than %u arguments in %u bytes", argc, alen);
        h->argv[n++] = a + o;
    }
    if (n != argc)
        BAD("%u arguments in %u bytes, %u expected", n, alen, argc);
    h->argc = (int)argc;
    h->argv[n] = NULL;
    return 0;
}

/* ---- reading: the replay ----------------------------------------------------------------------
 */

/* The header of MEM into H and the live set of its active half into S: none for a journal turned
   off (its records stopped being written: a successor gets no table). */
static int load(const void *mem, size_t len, struct efc_journal_header *h, struct live_set *s,
                char *err, size_t errlen)
{
    int rc = efc_journal_read_header(mem, len, h, err, errlen);
    if (rc || h->state == EFC_JNL_OFF)
        return rc;
    const uint8_t *base = (const uint8_t *)mem + EFC_JNL_HEADER_SIZE + h->active * h->half;
    return scan(base, h->used, s, err, errlen);
}

static int cmp_ent(const void *x, const void *y)
{
    const struct live_ent *a = x, *b = y;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Calls V for the live entries of S, whose records (checked by scan) are in the half at BASE:
   nodes by inode, then handles by number. */
static int visit(const uint8_t *base, const struct live_set *s, const struct efc_journal_visitor *v,
                 void *arg, char *err, size_t errlen)
{
    char key[OSS_MAX_KEY_LEN + 1], etag[OSS_MAX_ETAG_LEN + 1];
    struct live_ent *all = NULL;
    size_t n = 0;
    int rc = 0;

    if (s->nlive == 0 || v == NULL)
        return 0;
    all = malloc(s->nlive * sizeof(*all));
    if (all == NULL) {
        snprintf(err, errlen, "crash journal: no memory for the live set");
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->cap; i++)
        if (s->e[i].kind != K_EMPTY && s->e[i].live)
            all[n++] = s->e[i];
    qsort(all, n, sizeof(*all), cmp_ent);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const uint8_t *p = base + all[i].off;
        size_t kl = le_get16(p + 6), el = le_get16(p + 8);
        memcpy(key, p + EFC_JNL_FIXED, kl);
        key[kl] = '\0';
        if (all[i].kind == K_NODE && v->node) {
            struct efc_journal_node nd = {.ino = le_get64(p + 16),
                                          .parent = le_get64(p + 24),
                                          .namelen = (size_t)le_get64(p + 32),
                                          .is_dir = (p[5] & 1) != 0,
                                          .named = all[i].named,
                                          .key = key,
                                          .keylen = kl};
            rc = v->node(arg, &nd);
        } else if (all[i].kind == K_HANDLE && v->handle) {
            memcpy(etag, p + EFC_JNL_FIXED + kl, el);
            etag[el] = '\0';
            struct efc_fh_record r = {.num = le_get64(p + 16),
                                      .ino = le_get64(p + 24),
                                      .parent = le_get64(p + 32),
                                      .size = le_get64(p + 40),
                                      .is_dir = (p[5] & 1) != 0,
                                      .key = key,
                                      .etag = etag};
            rc = v->handle(arg, &r);
        }
    }
    free(all);
    return rc;
}

int efc_journal_replay(const void *mem, size_t len, const struct efc_journal_visitor *v, void *arg,
                       char *err, size_t errlen)
{
    struct efc_journal_header h;
    struct live_set s = {0};

    int rc = load(mem, len, &h, &s, err, errlen);
    if (rc == 0)
        rc = visit((const uint8_t *)mem + EFC_JNL_HEADER_SIZE + h.active * h.half, &s, v, arg, err,
                   errlen);
    free(s.e);
    return rc;
}

/* ---- reading: the hand-over blob --------------------------------------------------------------
 */

struct blob_ctx {
    struct buf *b;
    uint64_t nodes, handles, max_ino;
};

static int blob_node(void *arg, const struct efc_journal_node *n)
{
    struct blob_ctx *c = arg;
    struct efc_ns_record r;

    memset(&r, 0, sizeof(r)); /* no attributes (fetched_ms 0), no open ETag */
    r.ino = n->ino;
    r.parent = n->parent;
    r.nlookup = 1;
    r.lookups_unknown = true;
    r.is_dir = n->is_dir;
    r.named = n->named;
    r.key = n->key;
    r.keylen = n->keylen;
    r.namelen = n->namelen;
    if (n->ino > c->max_ino)
        c->max_ino = n->ino;
    c->nodes++;
    return efc_ho_put_node(c->b, &r);
}

static int blob_handle(void *arg, const struct efc_fh_record *r)
{
    struct blob_ctx *c = arg;
    c->handles++;
    return efc_ho_put_handle(c->b, r);
}

int efc_journal_blob(const void *mem, size_t len, int64_t mount_time, uint32_t old_pid,
                     uint64_t hold_start_ms, const char *id, uint64_t (*next_seq)(uint64_t max_ino),
                     struct buf *b, char *err, size_t errlen)
{
    static const struct efc_journal_visitor v = {.node = blob_node, .handle = blob_handle};
    struct efc_journal_header h;
    struct efc_ho_header hd;
    struct live_set s = {0};
    struct blob_ctx c = {.b = b, .max_ino = EFC_ROOT_INO};
    size_t idlen = strlen(id);
    int rc;

    buf_init(b, EFC_HO_MAX_BYTES);
    if (idlen > EFC_HO_MAX_ID || (idlen && !efc_update_id_valid(id, idlen)))
        BAD("bad update id '%.*s'", EFC_HO_MAX_ID, id);
    rc = load(mem, len, &h, &s, err, errlen);
    if (rc)
        goto out;
    if (h.init_len < EFC_HO_MIN_INIT) {
        snprintf(err, errlen,
                 "crash journal: no FUSE INIT request (%u bytes): the daemon died before the "
                 "kernel's INIT was recorded",
                 h.init_len);
        rc = -EINVAL;
        goto out;
    }
    if (le_get32(h.init) != h.init_len || le_get32(h.init + 4) != FUSE_INIT) {
        snprintf(err, errlen, "crash journal: the saved request is not a FUSE_INIT of %u bytes",
                 h.init_len);
        rc = -EINVAL;
        goto out;
    }
    memset(&hd, 0, sizeof(hd));
    hd.mount_time = mount_time;
    hd.old_pid = old_pid;
    hd.hold_start_ms = hold_start_ms ? hold_start_ms : time_mono_ms();
    hd.init = h.init;
    hd.init_len = h.init_len;
    hd.reply = h.reply;
    hd.reply_len = h.reply_len;
    memcpy(hd.id, id, idlen + 1);
    rc = efc_ho_begin(b, &hd);
    if (rc == 0)
        rc = visit((const uint8_t *)mem + EFC_JNL_HEADER_SIZE + h.active * h.half, &s, &v, &c, err,
                   errlen);
    uint64_t seq = rc == 0 ? next_seq(c.max_ino) : 0;
    if (rc == 0 && seq == 0)
        rc = -EINVAL;
    if (rc == 0)
        rc = efc_ho_end(b, seq, c.nodes, c.handles);
    if (rc && rc != -ENOMEM)
        snprintf(err, errlen,
                 "crash journal: %llu nodes and %llu handles make no hand-over blob: %s",
                 (unsigned long long)c.nodes, (unsigned long long)c.handles, strerror(-rc));
out:
    if (rc)
        buf_release(b);
    free(s.e);
    return rc;
}

/* ---- writing ----------------------------------------------------------------------------------
 */

struct efc_journal {
    int fd;
    uint8_t *map;
    size_t len;
    uint64_t half;
    /* A leaf (callers hold ns.c's shard locks or fs.c's fh_lock): the appends and every store
       into the header. Protects everything below. */
    pthread_mutex_t lock;
    uint32_t active;
    uint64_t used; /* of the active half, as published */
    uint64_t generation;
    bool off;
    uint64_t records; /* appended by this process */
    /* The compaction trigger's estimate of the live records, O(1) per append: exact after the
       last compaction (or the attach's scan), then moved by each record, the bytes of the live
       ones taken at the average size of those written. */
    uint64_t live_count, live_bytes; /* after the last compaction */
    uint64_t made_count, made_bytes; /* NODE and OPEN records since */
    uint64_t ended;                  /* FORGET and CLOSE records since */
};

static void store32(struct efc_journal *j, size_t off, uint32_t v)
{
    __atomic_store_n((uint32_t *)(void *)(j->map + off), v, __ATOMIC_RELEASE);
}

static void store64(struct efc_journal *j, size_t off, uint64_t v)
{
    __atomic_store_n((uint64_t *)(void *)(j->map + off), v, __ATOMIC_RELEASE);
}

static uint8_t *half_base(struct efc_journal *j, uint32_t i)
{
    return j->map + EFC_JNL_HEADER_SIZE + i * j->half;
}

/* Gives half I's pages back to the system (the memfd is sparse) after its used count is 0. */
static void drop_half(struct efc_journal *j, uint32_t i)
{
    store64(j, H_USED + 8 * i, 0);
    (void)fallocate(j->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    (off_t)(EFC_JNL_HEADER_SIZE + i * j->half), (off_t)j->half);
}

static uint64_t live_count(const struct efc_journal *j)
{
    uint64_t made = j->live_count + j->made_count;
    return made > j->ended ? made - j->ended : 0;
}

static uint64_t live_estimate(const struct efc_journal *j)
{
    uint64_t made = j->live_count + j->made_count;
    return made ? live_count(j) * ((j->live_bytes + j->made_bytes) / made) : 0;
}

/* Turns the journal off for good, WHY saying why (under the lock). State OFF is published before
   anything else: from then on a successor is started with an empty table. */
static void turn_off(struct efc_journal *j, const char *why)
{
    if (j->off)
        return;
    j->off = true;
    store32(j, H_STATE, EFC_JNL_OFF);
    drop_half(j, 0);
    drop_half(j, 1);
    log_warn("crash journal is off: %s; a daemon that dies from now on is restarted with an empty "
             "inode table (the kernel's inodes answer ESTALE)",
             why);
}

/* Copies the live records of the active half into the other one and makes that active, so that a
   record of NEED bytes fits (under the lock). Turns the journal off if it cannot. */
static void compact(struct efc_journal *j, size_t need)
{
    struct live_set s = {0};
    char why[320];
    uint32_t from = j->active, to = from ^ 1;
    const uint8_t *src = half_base(j, from);
    uint8_t *dst = half_base(j, to);
    uint64_t out = 0;

    if (scan(src, j->used, &s, why, sizeof(why)) != 0) {
        turn_off(j, why);
        goto out;
    }
    /* A live set that leaves less than an eighth of the half free would be copied again within a
       few appends, each copy under this lock that the inode table's shard locks wait for. */
    if (s.bytes + need > j->half - j->half / 8) {
        snprintf(why, sizeof(why),
                 "its %zu live records (%llu bytes) leave too little of a half of %llu bytes",
                 s.nlive, (unsigned long long)s.bytes, (unsigned long long)j->half);
        turn_off(j, why);
        goto out;
    }
    /* The other half is not active: nothing in it counts until the flip below. */
    store64(j, H_USED + 8 * to, 0);
    for (size_t i = 0; i < s.cap; i++) {
        const struct live_ent *e = &s.e[i];
        if (e->kind == K_EMPTY || !e->live)
            continue;
        memcpy(dst + out, src + e->off, e->len);
        out += e->len;
        if (!e->named)
            out += put_record(dst + out, EFC_JNL_UNNAME, 0, e->id, 0, 0, 0, NULL, 0, NULL, 0);
    }
    store64(j, H_USED + 8 * to, out);
    store32(j, H_ACTIVE, to); /* the commit point: a death before it leaves the old half whole */
    store64(j, H_GEN, ++j->generation);
    drop_half(j, from);
    j->active = to;
    j->used = out;
    j->live_count = s.nlive;
    j->live_bytes = out;
    j->made_count = j->made_bytes = j->ended = 0;
out:
    free(s.e);
}

/* Appends one record (lengths already checked). */
static void append(struct efc_journal *j, uint8_t type, uint8_t flags, uint64_t a, uint64_t b,
                   uint64_t c, uint64_t d, const char *key, size_t keylen, const char *etag,
                   size_t etaglen)
{
    size_t len = rec_size(keylen, etaglen);

    pthread_mutex_lock(&j->lock);
    if (!j->off && j->used > COMPACT_MIN && j->used / COMPACT_RATIO > live_estimate(j))
        compact(j, len);
    if (!j->off && len > j->half - j->used)
        compact(j, len);
    if (!j->off) {
        put_record(half_base(j, j->active) + j->used, type, flags, a, b, c, d, key, keylen, etag,
                   etaglen);
        j->used += len;
        store64(j, H_USED + 8 * j->active, j->used); /* only now is the record there */
        j->records++;
        if (type == EFC_JNL_NODE || type == EFC_JNL_OPEN) {
            j->made_count++;
            j->made_bytes += len;
        } else if (type == EFC_JNL_FORGET || type == EFC_JNL_CLOSE) {
            j->ended++;
        }
    }
    pthread_mutex_unlock(&j->lock);
}

/* A record the replay would refuse must never be written (it would cost every record after it):
   the journal goes off instead. */
static void refuse(struct efc_journal *j, const char *what, uint64_t num, size_t keylen, size_t n2)
{
    char why[200];
    snprintf(why, sizeof(why), "a %s record out of limits (number %#llx, key of %zu bytes, %zu)",
             what, (unsigned long long)num, keylen, n2);
    pthread_mutex_lock(&j->lock);
    turn_off(j, why);
    pthread_mutex_unlock(&j->lock);
}

void efc_journal_node(struct efc_journal *j, uint64_t ino, uint64_t parent, size_t namelen,
                      bool is_dir, const char *key, size_t keylen)
{
    if (j == NULL)
        return;
    if (ino == 0 || ino == EFC_ROOT_INO || parent == 0 || namelen == 0 || namelen > NAME_MAX ||
        namelen > keylen || keylen > OSS_MAX_KEY_LEN || memchr(key, '\0', keylen) != NULL) {
        refuse(j, "node", ino, keylen, namelen);
        return;
    }
    append(j, EFC_JNL_NODE, is_dir ? 1 : 0, ino, parent, namelen, 0, key, keylen, NULL, 0);
}

void efc_journal_unname(struct efc_journal *j, uint64_t ino)
{
    if (j && ino) /* number 0 names nothing: the record would change nothing */
        append(j, EFC_JNL_UNNAME, 0, ino, 0, 0, 0, NULL, 0, NULL, 0);
}

void efc_journal_forget(struct efc_journal *j, uint64_t ino)
{
    if (j && ino)
        append(j, EFC_JNL_FORGET, 0, ino, 0, 0, 0, NULL, 0, NULL, 0);
}

void efc_journal_open(struct efc_journal *j, const struct efc_fh_record *r)
{
    if (j == NULL)
        return;
    const char *key = r->key ? r->key : "", *etag = r->etag ? r->etag : "";
    size_t kl = strnlen(key, OSS_MAX_KEY_LEN + 1), el = strnlen(etag, OSS_MAX_ETAG_LEN + 1);
    if ((r->num >> 32) == 0 || r->ino == 0 || kl > OSS_MAX_KEY_LEN || el > OSS_MAX_ETAG_LEN) {
        refuse(j, "open", r->num, kl, el);
        return;
    }
    append(j, EFC_JNL_OPEN, r->is_dir ? 1 : 0, r->num, r->ino, r->parent, r->size, key, kl, etag,
           el);
}

void efc_journal_close(struct efc_journal *j, uint64_t num)
{
    if (j && num)
        append(j, EFC_JNL_CLOSE, 0, num, 0, 0, 0, NULL, 0, NULL, 0);
}

/* ---- the journal's life -----------------------------------------------------------------------
 */

static int journal_new(int fd, uint8_t *map, size_t len, uint64_t half, struct efc_journal **out)
{
    struct efc_journal *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->fd = fd;
    j->map = map;
    j->len = len;
    j->half = half;
    pthread_mutex_init(&j->lock, NULL);
    *out = j;
    return 0;
}

int efc_journal_create(uint64_t half, struct efc_journal **out, char *err, size_t errlen)
{
    uint8_t *map;
    int rc;

    *out = NULL;
    if (half < EFC_JNL_MIN_HALF)
        half = EFC_JNL_MIN_HALF;
    if (half > EFC_JNL_MAX_HALF)
        half = EFC_JNL_MAX_HALF;
    half = (half + 4095) & ~(uint64_t)4095;
    size_t len = EFC_JNL_HEADER_SIZE + 2 * half;
    int fd = memfd_create("efc-journal", MFD_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "crash journal: memfd_create: %s", strerror(errno));
        return rc;
    }
    if (ftruncate(fd, (off_t)len) != 0) {
        rc = -errno;
        snprintf(err, errlen, "crash journal: cannot size the memfd to %zu bytes: %s", len,
                 strerror(errno));
        close(fd);
        return rc;
    }
    map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = -errno;
        snprintf(err, errlen, "crash journal: mmap of %zu bytes: %s", len, strerror(errno));
        close(fd);
        return rc;
    }
    /* the memfd is zeros: used 0/0, active 0, state SERVING, generation 0, no INIT, no argv */
    memcpy(map, EFC_JNL_MAGIC, sizeof(EFC_JNL_MAGIC));
    le_put32(map + H_VERSION, EFC_JNL_VERSION);
    le_put32(map + H_HSIZE, EFC_JNL_HEADER_SIZE);
    le_put64(map + H_HALF, half);
    le_put32(map + H_STATE, EFC_JNL_SERVING);
    rc = journal_new(fd, map, len, half, out);
    if (rc) {
        snprintf(err, errlen, "crash journal: %s", strerror(-rc));
        munmap(map, len);
        close(fd);
    }
    return rc;
}

int efc_journal_attach(int fd, struct efc_journal **out, char *err, size_t errlen)
{
    struct efc_journal_header h;
    struct live_set s = {0};
    struct stat st;
    uint8_t *map = MAP_FAILED;
    size_t len = 0;
    int rc;

    *out = NULL;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "crash journal: fstat: %s", strerror(errno));
        goto fail;
    }
    if (st.st_size < EFC_JNL_HEADER_SIZE) {
        snprintf(err, errlen, "crash journal: %lld bytes, shorter than its header",
                 (long long)st.st_size);
        rc = -EINVAL;
        goto fail;
    }
    len = (size_t)st.st_size;
    map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = -errno;
        snprintf(err, errlen, "crash journal: mmap of %zu bytes: %s", len, strerror(errno));
        goto fail;
    }
    rc = load(map, len, &h, &s, err, errlen);
    if (rc)
        goto fail;
    rc = journal_new(fd, map, len, h.half, out);
    if (rc) {
        snprintf(err, errlen, "crash journal: %s", strerror(-rc));
        goto fail;
    }
    struct efc_journal *j = *out;
    j->active = h.active;
    j->used = h.used;
    j->generation = h.generation;
    j->off = h.state == EFC_JNL_OFF;
    j->live_count = s.nlive;
    j->live_bytes = s.bytes;
    /* a writer that died between a compaction's flip and its cleanup left the old half counted */
    if (!j->off && le_get64(map + H_USED + 8 * (h.active ^ 1)) != 0)
        drop_half(j, h.active ^ 1);
    free(s.e);
    return 0;
fail:
    free(s.e);
    if (map != MAP_FAILED)
        munmap(map, len);
    close(fd);
    return rc;
}

void efc_journal_free(struct efc_journal *j)
{
    if (j == NULL)
        return;
    munmap(j->map, j->len);
    close(j->fd);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

int efc_journal_fd(const struct efc_journal *j)
{
    return j ? j->fd : -1;
}

void efc_journal_set_pid(struct efc_journal *j, pid_t pid)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->lock);
    store32(j, H_PID, (uint32_t)pid);
    pthread_mutex_unlock(&j->lock);
}

void efc_journal_set_state(struct efc_journal *j, enum efc_journal_state s)
{
    if (j == NULL || (unsigned)s > EFC_JNL_OFF)
        return;
    pthread_mutex_lock(&j->lock);
    if (s == EFC_JNL_OFF)
        turn_off(j, "turned off by the daemon");
    else if (!(j->off && s == EFC_JNL_SERVING)) /* serving with a journal off stays off */
        store32(j, H_STATE, s);
    pthread_mutex_unlock(&j->lock);
}

int efc_journal_set_init(struct efc_journal *j, const void *init, size_t init_len,
                         const void *reply, size_t reply_len)
{
    if (j == NULL)
        return 0;
    if (init_len > EFC_HO_MAX_INIT || reply_len > EFC_HO_MAX_REPLY)
        return -EINVAL;
    pthread_mutex_lock(&j->lock);
    /* lengths 0 while the bytes change: a death in between leaves "no INIT seen", not a mix */
    store32(j, H_INIT_LEN, 0);
    store32(j, H_REPLY_LEN, 0);
    if (init_len)
        memcpy(j->map + EFC_JNL_INIT_OFF, init, init_len);
    if (reply_len)
        memcpy(j->map + EFC_JNL_REPLY_OFF, reply, reply_len);
    store32(j, H_REPLY_LEN, (uint32_t)reply_len);
    store32(j, H_INIT_LEN, (uint32_t)init_len);
    pthread_mutex_unlock(&j->lock);
    return 0;
}

int efc_journal_set_argv(struct efc_journal *j, int argc, char *const *argv)
{
    size_t total = 0;

    if (argc < 0 || argc > EFC_JNL_MAX_ARGC)
        return argc < 0 ? -EINVAL : -E2BIG;
    for (int i = 0; i < argc; i++) {
        total += strlen(argv[i]) + 1;
        if (total > EFC_JNL_MAX_ARGV)
            return -E2BIG;
    }
    if (j == NULL)
        return 0;
    pthread_mutex_lock(&j->lock);
    store32(j, H_ARGV_LEN, 0);
    store32(j, H_ARGC, 0);
    size_t off = EFC_JNL_ARGV_OFF;
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]) + 1;
        memcpy(j->map + off, argv[i], n);
        off += n;
    }
    store32(j, H_ARGV_LEN, (uint32_t)total);
    store32(j, H_ARGC, (uint32_t)argc);
    pthread_mutex_unlock(&j->lock);
    return 0;
}

void efc_journal_get_stats(struct efc_journal *j, struct efc_journal_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->lock);
    st->records = j->records;
    st->compactions = j->generation;
    st->used = j->used;
    st->live = j->off ? 0 : live_count(j);
    st->off = j->off;
    pthread_mutex_unlock(&j->lock);
}

#undef BAD
