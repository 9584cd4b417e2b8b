/* p2p/wire.c - the P2P protocol, version 1: frames on a TCP connection between two efc nodes.
 *
 * A connection is opened by the node that wants blocks (the client) to the node that owns them
 * (the server). The client sends HELLO; the server answers HELLO_OK, or ERROR and closes. When
 * both hold the shared key (g_tier_DadiP2PKeyFile), HELLO_OK carries the server's proof and the
 * client answers AUTH with its own: a mutual HMAC-SHA256 challenge over both nonces, so neither
 * the key nor anything replayable crosses the wire (auth.c). Then the client sends GETs, as many
 * in flight as it likes (pipelined), each with its own request id; the server answers each with
 * DATA frames, one or more per block, the last of the request flagged LAST, in any order
 * between requests. ERROR with request id 0 ends the connection.
 *
 * Every integer is little-endian. Every frame:
 *
 *   header (32 bytes)
 *     0   4  magic "EFCP" (0x50434645)
 *     4   1  version (1)
 *     5   1  type: 1 HELLO, 2 HELLO_OK, 3 AUTH, 4 GET, 5 DATA, 6 ERROR
 *     6   2  flags (DATA: 1 = last frame of its request)
 *     8   8  request id (0 for HELLO, HELLO_OK, AUTH and connection errors)
 *     16  4  meta length: the typed fields after the header (<= P2P_MAX_META)
 *     20  4  data length: bulk bytes after the meta (DATA only, <= P2P_MAX_DATA)
 *     24  8  CRC64 (util/crc64.h) of bytes 0..23 and of the meta
 *   meta (meta length bytes), then data (data length bytes)
 *
 *   HELLO, HELLO_OK meta
 *     0   1  role (0 root+agent, 1 root, 2 agent)
 *     1   1  auth: 1 when the sender holds a key
 *     2   2  name length n (<= 200)
 *     4   4  block size of the sender (g_tier_BlockSize)
 *     8   8  the sender's membership hash (rootlist.c)
 *     16  32 nonce
 *     48  32 proof (HELLO_OK with auth: HMAC of the key over both nonces; else zero)
 *     80  n  the sender's name in the rootlist, "<id>:<ip>:<port>" ("" when not in it)
 *
 *   AUTH meta
 *     0   32 proof (HMAC of the key over both nonces, the other way round)
 *
 *   GET meta
 *     0   8  object size
 *     8   8  first block index
 *     16  8  mask: block first + i is wanted when bit i is set (i < count)
 *     24  4  count (1..64)
 *     28  4  off: count 1 only, byte offset in the block (a multiple of the page size)
 *     32  4  len: count 1 only, bytes from off (0: to the block's end)
 *     36  4  block size of the requester (a power of two, 4 KiB..64 MiB)
 *     40  4  page size (a power of two >= 4 KiB, dividing the block size): CRCs come per page
 *     44  4  flags: 1 = FILL (warm-up: make the blocks present, send no data), 2 = RELAY (the
 *            block is hot at its owner, which answered HOT: the receiver, the requester's
 *            parent in the block's fan-out tree, reads it through its own cache, from the owner
 *            or its own parent, and passes it on: p2p.c)
 *     48  16 the requester's identity of block first (cache_block_id: low word first)
 *     64  2  name space length ns (<= 511)
 *     66  2  key length k (1..1023)
 *     68  2  ETag length e (<= 127)
 *     70  2  spare (0)
 *     72  ns + k + e: name space "<bucket>.<host>", key, ETag (quotes included)
 *
 *   DATA meta
 *     0   8  block index
 *     8   4  off: byte offset in the block of the first byte (a multiple of the page size)
 *     12  2  status (0 ok, 1 stale, 2 not found, 3 other bucket, 4 busy, 5 origin failed,
 *            6 bad request, 7 not serving, 8 denied, 9 hot: the owner serves this block to as
 *            many peers as it may, ask your parent in its fan-out tree with RELAY; 10 pending:
 *            no answer yet, the server still works on the GET (it is fetching the block from
 *            its origin or its parent), so the requester's deadline starts again, within a
 *            bound); not 0: no data, no pages
 *     14  1  hit: 1 when the server had the bytes in memory or on disk, 0 when it fetched them
 *     15  1  spare (0)
 *     16  4  page size
 *     20  4  number of pages p (<= 1024); the data length is p pages, the last one short only at
 *            the object's or the block's end
 *     24  8p CRC64 of each page, seeded with the requester's block identity and the page's
 *            number in its block (cache_page_crc), checked before a byte is used
 *
 *   ERROR meta
 *     0   2  status (as DATA)
 *     2   2  message length m (<= 256)
 *     4   m  a message for the other side's log
 *
 * Version: a node speaks one version; a frame of another version is answered with an ERROR
 * naming ours (in our version's format, which every version keeps: the header above) and the
 * connection is closed. A change of any layout above is a new version.
 */
#include "p2p/wire_i.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/crc64.h"
#include "util/le.h"

#define HELLO_FIXED 80
#define GET_FIXED   72
#define DATA_FIXED  24
#define ERROR_FIXED 4

static void hdr_put(uint8_t *out, enum p2p_type type, uint16_t flags, uint64_t rid,
                    uint32_t meta_len, uint32_t data_len)
{
    le_put32(out, P2P_MAGIC);
    out[4] = P2P_VERSION;
    out[5] = (uint8_t)type;
    le_put16(out + 6, flags);
    le_put64(out + 8, rid);
    le_put32(out + 16, meta_len);
    le_put32(out + 20, data_len);
    uint64_t crc = crc64_update(0, out, 24);
    crc = crc64_update(crc, out + P2P_HDR, meta_len);
    le_put64(out + 24, crc);
}

size_t p2p_enc_hello(uint8_t *out, enum p2p_type type, uint64_t rid, const struct p2p_hello *h)
{
    uint8_t *m = out + P2P_HDR;
    size_t n = strnlen(h->name, P2P_MAX_NAME);
    memset(m, 0, HELLO_FIXED);
    m[0] = h->role;
    m[1] = h->auth;
    le_put16(m + 2, (uint16_t)n);
    le_put32(m + 4, h->block_size);
    le_put64(m + 8, h->members);
    memcpy(m + 16, h->nonce, P2P_NONCE);
    memcpy(m + 48, h->proof, P2P_PROOF);
    memcpy(m + HELLO_FIXED, h->name, n);
    hdr_put(out, type, 0, rid, (uint32_t)(HELLO_FIXED + n), 0);
    return P2P_HDR + HELLO_FIXED + n;
}

size_t p2p_enc_auth(uint8_t *out, const uint8_t proof[P2P_PROOF])
{
    memcpy(out + P2P_HDR, proof, P2P_PROOF);
    hdr_put(out, P2P_AUTH, 0, 0, P2P_PROOF, 0);
    return P2P_HDR + P2P_PROOF;
}

size_t p2p_enc_get(uint8_t *out, uint64_t rid, const struct p2p_get *g)
{
    uint8_t *m = out + P2P_HDR;
    size_t ns = g->ns_len, k = g->key_len, e = g->etag_len;
    memset(m, 0, GET_FIXED);
    le_put64(m, g->obj_size);
    le_put64(m + 8, g->first);
    le_put64(m + 16, g->mask);
    le_put32(m + 24, g->count);
    le_put32(m + 28, g->off);
    le_put32(m + 32, g->len);
    le_put32(m + 36, g->block_size);
    le_put32(m + 40, g->page_size);
    le_put32(m + 44, g->flags);
    le_put64(m + 48, g->id[0]);
    le_put64(m + 56, g->id[1]);
    le_put16(m + 64, (uint16_t)ns);
    le_put16(m + 66, (uint16_t)k);
    le_put16(m + 68, (uint16_t)e);
    memcpy(m + GET_FIXED, g->ns, ns);
    memcpy(m + GET_FIXED + ns, g->key, k);
    memcpy(m + GET_FIXED + ns + k, g->etag, e);
    hdr_put(out, P2P_GET, 0, rid, (uint32_t)(GET_FIXED + ns + k + e), 0);
    return P2P_HDR + GET_FIXED + ns + k + e;
}

size_t p2p_enc_data(uint8_t *out, uint64_t rid, uint16_t flags, const struct p2p_data *d,
                    const uint64_t *crcs, uint32_t data_len)
{
    uint8_t *m = out + P2P_HDR;
    uint32_t np = d->status == P2P_OK ? d->npages : 0;
    memset(m, 0, DATA_FIXED);
    le_put64(m, d->index);
    le_put32(m + 8, d->off);
    le_put16(m + 12, d->status);
    m[14] = d->hit;
    le_put32(m + 16, d->page_size);
    le_put32(m + 20, np);
    for (uint32_t i = 0; i < np; i++)
        le_put64(m + DATA_FIXED + 8 * i, crcs[i]);
    hdr_put(out, P2P_DATA, flags, rid, DATA_FIXED + 8 * np, np ? data_len : 0);
    return P2P_HDR + DATA_FIXED + 8 * np;
}

size_t p2p_enc_error(uint8_t *out, uint64_t rid, int status, const char *msg)
{
    uint8_t *m = out + P2P_HDR;
    size_t n = msg ? strnlen(msg, P2P_MAX_MSG) : 0;
    le_put16(m, (uint16_t)status);
    le_put16(m + 2, (uint16_t)n);
    if (n)
        memcpy(m + ERROR_FIXED, msg, n);
    hdr_put(out, P2P_ERROR, 0, rid, (uint32_t)(ERROR_FIXED + n), 0);
    return P2P_HDR + ERROR_FIXED + n;
}

int p2p_dec_hdr(const uint8_t *in, struct p2p_hdr *h)
{
    if (le_get32(in) != P2P_MAGIC)
        return -EPROTO;
    h->version = in[4];
    h->type = in[5];
    h->flags = le_get16(in + 6);
    h->rid = le_get64(in + 8);
    h->meta_len = le_get32(in + 16);
    h->data_len = le_get32(in + 20);
    h->crc = le_get64(in + 24);
    if (h->version != P2P_VERSION)
        return -EPROTONOSUPPORT;
    if (h->type < P2P_HELLO || h->type > P2P_ERROR)
        return -EBADMSG;
    if (h->meta_len > P2P_MAX_META || h->data_len > P2P_MAX_DATA)
        return -EMSGSIZE;
    if (h->data_len && h->type != P2P_DATA)
        return -EBADMSG;
    return 0;
}

int p2p_check_crc(const uint8_t *hdr, const uint8_t *meta, const struct p2p_hdr *h)
{
    uint64_t crc = crc64_update(0, hdr, 24);
    crc = crc64_update(crc, meta, h->meta_len);
    return crc == h->crc ? 0 : -EBADMSG;
}

static int name_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e)
            return 0;
    return 1;
}

int p2p_dec_hello(const uint8_t *m, size_t len, struct p2p_hello *h)
{
    if (len < HELLO_FIXED)
        return -EBADMSG;
    size_t n = le_get16(m + 2);
    if (n > P2P_MAX_NAME || len != HELLO_FIXED + n || !name_ok(m + HELLO_FIXED, n) ||
        m[0] > P2P_ROLE_AGENT || m[1] > 1)
        return -EBADMSG;
    h->role = m[0];
    h->auth = m[1];
    h->block_size = le_get32(m + 4);
    h->members = le_get64(m + 8);
    memcpy(h->nonce, m + 16, P2P_NONCE);
    memcpy(h->proof, m + 48, P2P_PROOF);
    memcpy(h->name, m + HELLO_FIXED, n);
    h->name[n] = '\0';
    return 0;
}

int p2p_dec_auth(const uint8_t *m, size_t len, uint8_t proof[P2P_PROOF])
{
    if (len != P2P_PROOF)
        return -EBADMSG;
    memcpy(proof, m, P2P_PROOF);
    return 0;
}

static int pow2(uint32_t v)
{
    return v && !(v & (v - 1));
}

int p2p_dec_get(const uint8_t *m, size_t len, struct p2p_get *g)
{
    if (len < GET_FIXED)
        return -EBADMSG;
    memset(g, 0, sizeof(*g));
    g->obj_size = le_get64(m);
    g->first = le_get64(m + 8);
    g->mask = le_get64(m + 16);
    g->count = le_get32(m + 24);
    g->off = le_get32(m + 28);
    g->len = le_get32(m + 32);
    g->block_size = le_get32(m + 36);
    g->page_size = le_get32(m + 40);
    g->flags = le_get32(m + 44);
    g->id[0] = le_get64(m + 48);
    g->id[1] = le_get64(m + 56);
    g->ns_len = le_get16(m + 64);
    g->key_len = le_get16(m + 66);
    g->etag_len = le_get16(m + 68);
    if (g->ns_len > P2P_MAX_NS || g->key_len == 0 || g->key_len > P2P_MAX_KEY ||
        g->etag_len > P2P_MAX_ETAG ||
        len != GET_FIXED + (size_t)g->ns_len + g->key_len + g->etag_len)
        return -EBADMSG;
    if (g->count == 0 || g->count > P2P_MAX_BLOCKS || g->mask == 0 ||
        (g->count < 64 && (g->mask >> g->count) != 0) ||
        (g->flags & ~(P2P_GET_FILL | P2P_GET_RELAY)) ||
        (g->flags & P2P_GET_FILL && g->flags & P2P_GET_RELAY))
        return -EBADMSG;
    if (!pow2(g->block_size) || g->block_size < P2P_MIN_PAGE ||
        g->block_size > P2P_MAX_BLOCK_SIZE || !pow2(g->page_size) || g->page_size < P2P_MIN_PAGE ||
        g->page_size > g->block_size)
        return -EBADMSG;
    if (g->count == 1) {
        if (g->off % g->page_size || g->off >= g->block_size || g->len > g->block_size - g->off)
            return -EBADMSG;
    } else if (g->off || g->len) {
        return -EBADMSG;
    }
    /* every wanted block starts inside the object (a 0-byte object has no block to want) */
    uint64_t last = g->first + (uint64_t)(63 - __builtin_clzll(g->mask));
    if (g->first > UINT64_MAX / g->block_size - 64 || last * g->block_size + g->off >= g->obj_size)
        return -EBADMSG;
    g->ns = (const char *)m + GET_FIXED;
    g->key = g->ns + g->ns_len;
    g->etag = g->key + g->key_len;
    return 0;
}

int p2p_dec_data(const uint8_t *m, size_t len, uint32_t data_len, struct p2p_data *d)
{
    if (len < DATA_FIXED)
        return -EBADMSG;
    d->index = le_get64(m);
    d->off = le_get32(m + 8);
    d->status = le_get16(m + 12);
    d->hit = m[14];
    d->page_size = le_get32(m + 16);
    d->npages = le_get32(m + 20);
    d->crcs = m + DATA_FIXED;
    if (d->status > P2P_STATUS_MAX || d->hit > 1 || d->npages > P2P_MAX_PAGES ||
        len != DATA_FIXED + 8ull * d->npages)
        return -EBADMSG;
    if (d->status != P2P_OK)
        return d->npages || data_len ? -EBADMSG : 0;
    if (!pow2(d->page_size) || d->page_size < P2P_MIN_PAGE || d->page_size > P2P_MAX_BLOCK_SIZE ||
        d->off % d->page_size)
        return -EBADMSG;
    /* p pages: all whole but the last, which holds at least one byte */
    uint64_t whole = (uint64_t)d->npages * d->page_size;
    if (d->npages == 0 ? data_len != 0 : (data_len > whole || data_len <= whole - d->page_size))
        return -EBADMSG;
    return 0;
}

int p2p_dec_error(const uint8_t *m, size_t len, int *status, char *msg, size_t msglen)
{
    if (len < ERROR_FIXED)
        return -EBADMSG;
    size_t n = le_get16(m + 2);
    if (n > P2P_MAX_MSG || len != ERROR_FIXED + n)
        return -EBADMSG;
    *status = le_get16(m);
    if (msglen) {
        size_t c = n < msglen - 1 ? n : msglen - 1;
        for (size_t i = 0; i < c; i++) /* printable for the log */
            msg[i] = m[ERROR_FIXED + i] >= 0x20 && m[ERROR_FIXED + i] < 0x7f
                         ? (char)m[ERROR_FIXED + i]
                         : '?';
        msg[c] = '\0';
    }
    return 0;
}

const char *p2p_status_name(int status)
{
    static const char *const names[] = {"ok",     "stale",         "not found",   "other bucket",
                                        "busy",   "origin failed", "bad request", "not serving",
                                        "denied", "hot",           "pending"};
    return status >= 0 && status <= P2P_STATUS_MAX ? names[status] : "unknown";
}
