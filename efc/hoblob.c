/* efc/hoblob.c - the hand-over blob's codec (hoblob_i.h): pure functions of their bytes, the
 * blob being read back by the new daemon as outside input (every length checked against its
 * limit and the bytes left before anything is read; fuzzed by fuzz_handover_blob).
 */
#include "efc/hoblob_i.h"
#include "efc/update_i.h"

#include <errno.h>
#include <limits.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oss/oss.h"
#include "util/crc64.h"
#include "util/le.h"

/* ---- little-endian encoding ------------------------------------------------------------------ */

static int put_bytes(struct buf *b, const void *p, size_t n)
{
    return n ? buf_append(b, p, n) : 0;
}

static int put_u8(struct buf *b, uint8_t v)
{
    return buf_append(b, &v, 1);
}

static int put_u16(struct buf *b, uint16_t v)
{
    uint8_t x[2];
    le_put16(x, v);
    return buf_append(b, x, 2);
}

static int put_u64(struct buf *b, uint64_t v)
{
    uint8_t x[8];
    le_put64(x, v);
    return buf_append(b, x, 8);
}

/* ---- the blob: writing ----------------------------------------------------------------------- */

int efc_ho_begin(struct buf *b, const struct efc_ho_header *h)
{
    uint8_t hdr[EFC_HO_HEADER_SIZE];
    size_t idlen = strlen(h->id);

    if (h->init_len > EFC_HO_MAX_INIT || (h->init_len && h->init == NULL) ||
        idlen > EFC_HO_MAX_ID || h->reply_len > EFC_HO_MAX_REPLY ||
        (h->reply_len && h->reply == NULL))
        return -EINVAL;
    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, EFC_HO_MAGIC, sizeof(EFC_HO_MAGIC)); /* with its NUL: 8 bytes */
    le_put32(hdr + 8, EFC_HO_VERSION);
    le_put32(hdr + 12, EFC_HO_HEADER_SIZE);
    /* 16 body length, 24 checksum, 48/56 counts: patched by efc_ho_end */
    le_put64(hdr + 32, (uint64_t)h->mount_time);
    le_put64(hdr + 40, h->next_seq);
    le_put64(hdr + 64, h->hold_start_ms);
    le_put32(hdr + 72, h->init_len);
    le_put32(hdr + 76, h->old_pid);
    le_put32(hdr + 80, h->reply_len);
    buf_reset(b);
    int rc = buf_append(b, hdr, sizeof(hdr));
    if (rc == 0)
        rc = put_bytes(b, h->init, h->init_len);
    if (rc == 0)
        rc = put_bytes(b, h->reply, h->reply_len);
    if (rc == 0)
        rc = put_u16(b, (uint16_t)idlen);
    if (rc == 0)
        rc = put_bytes(b, h->id, idlen);
    return rc;
}

static size_t etag_len(const char *s)
{
    return strnlen(s, OSS_MAX_ETAG_LEN + 1);
}

int efc_ho_put_node(struct buf *b, const struct efc_ns_record *r)
{
    size_t el = etag_len(r->attr.etag), ol = etag_len(r->open_etag);
    int rc = 0;

    if (r->keylen > OSS_MAX_KEY_LEN || r->namelen > r->keylen || el > OSS_MAX_ETAG_LEN ||
        ol > OSS_MAX_ETAG_LEN)
        return -EINVAL;
    uint8_t flags = (r->is_dir ? 1 : 0) | (r->named ? 2 : 0) | (r->attr.restored ? 4 : 0) |
                    (r->lookups_unknown ? 8 : 0);
    rc = rc ? rc : put_u64(b, r->ino);
    rc = rc ? rc : put_u64(b, r->parent);
    rc = rc ? rc : put_u64(b, r->nlookup);
    rc = rc ? rc : put_u64(b, r->attr.size);
    rc = rc ? rc : put_u64(b, r->attr.fetched_ms);
    rc = rc ? rc : put_u64(b, (uint64_t)(int64_t)r->attr.mtime);
    rc = rc ? rc : put_u16(b, (uint16_t)r->keylen);
    rc = rc ? rc : put_u16(b, (uint16_t)r->namelen);
    rc = rc ? rc : put_u8(b, (uint8_t)r->attr.sc);
    rc = rc ? rc : put_u8(b, flags);
    rc = rc ? rc : put_u16(b, (uint16_t)el);
    rc = rc ? rc : put_u16(b, (uint16_t)ol);
    rc = rc ? rc : put_u16(b, 0);
    rc = rc ? rc : put_bytes(b, r->key, r->keylen);
    rc = rc ? rc : put_bytes(b, r->attr.etag, el);
    rc = rc ? rc : put_bytes(b, r->open_etag, ol);
    return rc;
}

int efc_ho_put_handle(struct buf *b, const struct efc_fh_record *r)
{
    size_t kl = strlen(r->key), el = r->etag ? etag_len(r->etag) : 0;
    int rc = 0;

    if (kl > OSS_MAX_KEY_LEN || el > OSS_MAX_ETAG_LEN || (r->num >> 32) == 0)
        return -EINVAL;
    rc = rc ? rc : put_u64(b, r->num);
    rc = rc ? rc : put_u64(b, r->ino);
    rc = rc ? rc : put_u64(b, r->parent);
    rc = rc ? rc : put_u64(b, r->size);
    rc = rc ? rc : put_u8(b, (uint8_t)((r->is_dir ? 1 : 0) | (r->stale ? 2 : 0)));
    rc = rc ? rc : put_u8(b, 0);
    rc = rc ? rc : put_u16(b, (uint16_t)kl);
    rc = rc ? rc : put_u16(b, (uint16_t)el);
    rc = rc ? rc : put_u16(b, 0);
    rc = rc ? rc : put_bytes(b, r->key, kl);
    rc = rc ? rc : put_bytes(b, r->etag, el);
    return rc;
}

uint64_t efc_ho_checksum(const void *blob, size_t len)
{
    static const uint8_t zero[8];
    const uint8_t *p = blob;
    if (len < EFC_HO_HEADER_SIZE)
        return 0;
    uint64_t crc = crc64_update(0, p, 24);
    crc = crc64_update(crc, zero, 8);
    return crc64_update(crc, p + 32, len - 32);
}

int efc_ho_end(struct buf *b, uint64_t next_seq, uint64_t nodes, uint64_t handles)
{
    if (b->len < EFC_HO_HEADER_SIZE || nodes > EFC_HO_MAX_NODES || handles > EFC_HO_MAX_HANDLES)
        return -EINVAL;
    uint8_t *h = (uint8_t *)b->data;
    le_put64(h + 16, b->len - EFC_HO_HEADER_SIZE);
    le_put64(h + 40, next_seq);
    le_put64(h + 48, nodes);
    le_put64(h + 56, handles);
    le_put64(h + 24, efc_ho_checksum(h, b->len)); /* last: it covers everything else */
    return 0;
}

/* ---- the blob: reading ----------------------------------------------------------------------- */

struct cursor {
    const uint8_t *p;
    size_t left;
};

static const uint8_t *take(struct cursor *c, size_t n)
{
    if (n > c->left)
        return NULL;
    const uint8_t *p = c->p;
    c->p += n;
    c->left -= n;
    return p;
}

/* Copies N bytes into DST (room for N + 1) as a string; false if they hold a NUL. */
static bool take_str(struct cursor *c, size_t n, char *dst)
{
    const uint8_t *p = take(c, n);
    if (p == NULL || (n && memchr(p, '\0', n) != NULL))
        return false;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return true;
}

#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, errlen, "handover blob: " __VA_ARGS__);                                      \
        return -EINVAL;                                                                            \
    } while (0)

static int walk(const uint8_t *blob, size_t len, const struct efc_ho_visitor *v, void *arg,
                char *err, size_t errlen)
{
    struct efc_ho_header h;
    struct cursor c;
    char key[OSS_MAX_KEY_LEN + 1], etag[OSS_MAX_ETAG_LEN + 1];
    int rc;

    memset(&h, 0, sizeof(h));
    if (len < EFC_HO_HEADER_SIZE)
        BAD("%zu bytes, shorter than its header", len);
    if (memcmp(blob, EFC_HO_MAGIC, sizeof(EFC_HO_MAGIC)) != 0)
        BAD("bad magic");
    uint32_t version = le_get32(blob + 8), hsize = le_get32(blob + 12);
    if (version != EFC_HO_VERSION)
        BAD("version %u (this daemon reads %u)", version, EFC_HO_VERSION);
    if (hsize != EFC_HO_HEADER_SIZE)
        BAD("header size %u (expected %u)", hsize, EFC_HO_HEADER_SIZE);
    uint64_t body = le_get64(blob + 16);
    if (len > EFC_HO_MAX_BYTES || body != len - EFC_HO_HEADER_SIZE)
        BAD("body length %llu does not match the %zu bytes given", (unsigned long long)body, len);
    for (size_t i = 84; i < EFC_HO_HEADER_SIZE; i++)
        if (blob[i] != 0)
            BAD("spare header bytes are not zero");
    if (efc_ho_checksum(blob, len) != le_get64(blob + 24)) {
        snprintf(err, errlen, "handover blob: checksum mismatch (corrupt)");
        return -EBADMSG;
    }
    h.mount_time = (int64_t)le_get64(blob + 32);
    h.next_seq = le_get64(blob + 40);
    h.nodes = le_get64(blob + 48);
    h.handles = le_get64(blob + 56);
    h.hold_start_ms = le_get64(blob + 64);
    h.init_len = le_get32(blob + 72);
    h.old_pid = le_get32(blob + 76);
    h.reply_len = le_get32(blob + 80);
    if (h.nodes > EFC_HO_MAX_NODES)
        BAD("%llu nodes (at most %llu)", (unsigned long long)h.nodes,
            (unsigned long long)EFC_HO_MAX_NODES);
    if (h.handles > EFC_HO_MAX_HANDLES)
        BAD("%llu handles (at most %llu)", (unsigned long long)h.handles,
            (unsigned long long)EFC_HO_MAX_HANDLES);
    if (h.init_len < EFC_HO_MIN_INIT || h.init_len > EFC_HO_MAX_INIT)
        BAD("INIT request of %u bytes (%u..%u)", h.init_len, EFC_HO_MIN_INIT, EFC_HO_MAX_INIT);
    if (h.reply_len > EFC_HO_MAX_REPLY)
        BAD("INIT reply of %u bytes (at most %u)", h.reply_len, EFC_HO_MAX_REPLY);
    if (h.next_seq == 0)
        BAD("next inode sequence is 0");

    c.p = blob + EFC_HO_HEADER_SIZE;
    c.left = (size_t)body;
    h.init = take(&c, h.init_len);
    if (h.init == NULL)
        BAD("truncated in the INIT request");
    if (le_get32(h.init) != h.init_len || le_get32(h.init + 4) != FUSE_INIT)
        BAD("the saved request is not a FUSE_INIT of %u bytes", h.init_len);
    h.reply = take(&c, h.reply_len);
    if (h.reply == NULL)
        BAD("truncated in the INIT reply");
    const uint8_t *p = take(&c, 2);
    if (p == NULL)
        BAD("truncated before the update id");
    size_t idlen = le_get16(p);
    if (idlen > EFC_HO_MAX_ID || !take_str(&c, idlen, h.id) ||
        (idlen && !efc_update_id_valid(h.id, idlen)))
        BAD("bad update id");
    /* Every record has a fixed part: a count the bytes left cannot hold is refused at once. */
    if (h.nodes > c.left / EFC_HO_NODE_FIXED ||
        h.handles > (c.left - h.nodes * EFC_HO_NODE_FIXED) / EFC_HO_HANDLE_FIXED)
        BAD("%llu nodes and %llu handles cannot fit in %zu bytes", (unsigned long long)h.nodes,
            (unsigned long long)h.handles, c.left);
    if (v && v->header && (rc = v->header(arg, &h)) != 0)
        return rc;

    for (uint64_t i = 0; i < h.nodes; i++) {
        struct efc_ns_record r;
        char oetag[OSS_MAX_ETAG_LEN + 1];
        p = take(&c, EFC_HO_NODE_FIXED);
        if (p == NULL)
            BAD("truncated in node %llu", (unsigned long long)i);
        memset(&r, 0, sizeof(r));
        r.ino = le_get64(p);
        r.parent = le_get64(p + 8);
        r.nlookup = le_get64(p + 16);
        r.attr.size = le_get64(p + 24);
        r.attr.fetched_ms = le_get64(p + 32);
        r.attr.mtime = (time_t)(int64_t)le_get64(p + 40);
        r.keylen = le_get16(p + 48);
        r.namelen = le_get16(p + 50);
        uint8_t sc = p[52], flags = p[53];
        size_t el = le_get16(p + 54), ol = le_get16(p + 56);
        if (r.ino == 0 || r.parent == 0)
            BAD("node %llu: inode or parent number 0", (unsigned long long)i);
        if (r.keylen > OSS_MAX_KEY_LEN || r.namelen > NAME_MAX || r.namelen > r.keylen)
            BAD("node %llu: key of %zu bytes, name of %zu", (unsigned long long)i, r.keylen,
                r.namelen);
        if (el > OSS_MAX_ETAG_LEN || ol > OSS_MAX_ETAG_LEN)
            BAD("node %llu: ETag longer than %d bytes", (unsigned long long)i, OSS_MAX_ETAG_LEN);
        if (sc > OSS_SC_OTHER || (flags & ~15u) != 0 || le_get16(p + 58) != 0)
            BAD("node %llu: bad storage class or flags", (unsigned long long)i);
        if ((r.ino == EFC_ROOT_INO) != (r.namelen == 0) ||
            (r.ino != EFC_ROOT_INO && r.nlookup == 0))
            BAD("node %llu: bad name length or lookup count", (unsigned long long)i);
        r.is_dir = flags & 1;
        r.named = (flags & 2) != 0;
        r.attr.restored = (flags & 4) != 0;
        r.lookups_unknown = (flags & 8) != 0;
        r.attr.sc = (enum oss_storage_class)sc;
        if (!take_str(&c, r.keylen, key) || !take_str(&c, el, r.attr.etag) ||
            !take_str(&c, ol, oetag))
            BAD("node %llu: truncated or holds a NUL byte", (unsigned long long)i);
        memcpy(r.open_etag, oetag, ol + 1);
        r.key = key;
        if (v && v->node && (rc = v->node(arg, &r)) != 0)
            return rc;
    }
    for (uint64_t i = 0; i < h.handles; i++) {
        struct efc_fh_record r;
        p = take(&c, EFC_HO_HANDLE_FIXED);
        if (p == NULL)
            BAD("truncated in handle %llu", (unsigned long long)i);
        memset(&r, 0, sizeof(r));
        r.num = le_get64(p);
        r.ino = le_get64(p + 8);
        r.parent = le_get64(p + 16);
        r.size = le_get64(p + 24);
        uint8_t flags = p[32];
        size_t kl = le_get16(p + 34), el = le_get16(p + 36);
        if ((r.num >> 32) == 0 || r.ino == 0)
            BAD("handle %llu: bad number or inode", (unsigned long long)i);
        if ((flags & ~3u) != 0 || p[33] != 0 || le_get16(p + 38) != 0)
            BAD("handle %llu: bad flags", (unsigned long long)i);
        if (kl > OSS_MAX_KEY_LEN || el > OSS_MAX_ETAG_LEN)
            BAD("handle %llu: key of %zu bytes, ETag of %zu", (unsigned long long)i, kl, el);
        r.is_dir = flags & 1;
        r.stale = (flags & 2) != 0;
        if (!take_str(&c, kl, key) || !take_str(&c, el, etag))
            BAD("handle %llu: truncated or holds a NUL byte", (unsigned long long)i);
        r.key = key;
        r.etag = etag;
        if (v && v->handle && (rc = v->handle(arg, &r)) != 0)
            return rc;
    }
    if (c.left != 0)
        BAD("%zu bytes after the last record", c.left);
    return 0;
}

int efc_ho_parse(const void *blob, size_t len, const struct efc_ho_visitor *v, void *arg, char *err,
                 size_t errlen)
{
    int rc = walk(blob, len, NULL, NULL, err, errlen);
    if (rc == 0 && v)
        rc = walk(blob, len, v, arg, err, errlen);
    return rc;
}

#undef BAD
