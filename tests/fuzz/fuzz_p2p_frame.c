// fuzz-links: efc_p2p
/* tests/fuzz/fuzz_p2p_frame.c - a P2P frame as a peer sends it (p2p/wire.c).
 *
 * The input is a frame: the header is decoded, the CRC checked, and the meta (when the input
 * holds all of it) decoded by the header's type, with the header's data length for DATA. A
 * receiver checks the CRC before it decodes the meta; here the meta is decoded whatever the CRC
 * says, because the decoders must survive any bytes and a fuzzer rarely forges a CRC64. The
 * header and the meta are copied into buffers of their exact size, so that a read past either
 * is caught by ASan in the replay build too, where the input sits in a larger buffer.
 *
 * What a decoder accepts must honour the limits wire_i.h promises, and must encode back to the
 * same meta (spare bytes aside), in a frame whose header decodes and whose CRC holds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/wire_i.h"
#include "util/le.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[P2P_HDR + P2P_MAX_META];

static void check(int cond)
{
    if (!cond)
        abort();
}

/* OUT holds a frame of N bytes our encoder made: its header decodes and its CRC holds. */
static void reencoded(size_t n, uint8_t type, size_t meta_len)
{
    struct p2p_hdr h;
    check(n == P2P_HDR + meta_len);
    check(p2p_dec_hdr(out, &h) == 0);
    check(h.type == type && h.meta_len == meta_len);
    check(p2p_check_crc(out, out + P2P_HDR, &h) == 0);
}

static int printable(const char *s, size_t n, uint8_t lo)
{
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)s[i] < lo || (uint8_t)s[i] > 0x7e)
            return 0;
    return 1;
}

static void fz_hello(const struct p2p_hdr *h, const uint8_t *m)
{
    struct p2p_hello x;
    if (p2p_dec_hello(m, h->meta_len, &x) != 0)
        return;
    size_t n = strlen(x.name);
    check(n <= P2P_MAX_NAME && printable(x.name, n, 0x21));
    check(x.role <= P2P_ROLE_AGENT && x.auth <= 1);
    check(h->meta_len == 80 + n);
    size_t len = p2p_enc_hello(out, (enum p2p_type)h->type, h->rid, &x);
    reencoded(len, h->type, h->meta_len);
    check(memcmp(out + P2P_HDR, m, h->meta_len) == 0);
}

static void fz_auth(const struct p2p_hdr *h, const uint8_t *m)
{
    uint8_t proof[P2P_PROOF];
    if (p2p_dec_auth(m, h->meta_len, proof) != 0)
        return;
    size_t len = p2p_enc_auth(out, proof);
    reencoded(len, P2P_AUTH, h->meta_len);
    check(memcmp(out + P2P_HDR, m, h->meta_len) == 0);
}

static int pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

static void fz_get(const struct p2p_hdr *h, const uint8_t *m)
{
    struct p2p_get g;
    if (p2p_dec_get(m, h->meta_len, &g) != 0)
        return;
    check(g.count >= 1 && g.count <= P2P_MAX_BLOCKS && g.mask != 0);
    check(g.count == 64 || g.mask >> g.count == 0);
    check(pow2(g.block_size) && pow2(g.page_size) && g.page_size >= P2P_MIN_PAGE &&
          g.page_size <= g.block_size && g.block_size <= P2P_MAX_BLOCK_SIZE);
    check(g.count == 1 ? g.off % g.page_size == 0 && (uint64_t)g.off + g.len <= g.block_size
                       : g.off == 0 && g.len == 0);
    check(g.key_len >= 1 && g.key_len <= P2P_MAX_KEY && g.ns_len <= P2P_MAX_NS &&
          g.etag_len <= P2P_MAX_ETAG);
    check(g.ns == (const char *)m + 72 && g.key == g.ns + g.ns_len && g.etag == g.key + g.key_len &&
          g.etag + g.etag_len == (const char *)m + h->meta_len);
    /* every wanted block starts inside the object, computed without wrapping */
    unsigned top = 63 - (unsigned)__builtin_clzll(g.mask);
    unsigned __int128 start = ((unsigned __int128)g.first + top) * g.block_size + g.off;
    check(start < g.obj_size);

    size_t len = p2p_enc_get(out, h->rid, &g);
    reencoded(len, P2P_GET, h->meta_len);
    check(memcmp(out + P2P_HDR, m, 70) == 0); /* 70, 71: spare */
    check(memcmp(out + P2P_HDR + 72, m + 72, h->meta_len - 72) == 0);
}

static void fz_data(const struct p2p_hdr *h, const uint8_t *m)
{
    struct p2p_data d;
    static uint64_t crcs[P2P_MAX_PAGES];
    if (p2p_dec_data(m, h->meta_len, h->data_len, &d) != 0)
        return;
    check(d.status <= P2P_STATUS_MAX && d.hit <= 1 && d.npages <= P2P_MAX_PAGES);
    check(h->meta_len == 24 + 8 * d.npages && d.crcs == m + 24);
    if (d.status != P2P_OK) {
        check(d.npages == 0 && h->data_len == 0);
    } else {
        check(pow2(d.page_size) && d.page_size >= P2P_MIN_PAGE && d.off % d.page_size == 0);
        uint64_t whole = (uint64_t)d.npages * d.page_size;
        check(d.npages == 0 ? h->data_len == 0
                            : h->data_len <= whole && h->data_len > whole - d.page_size);
    }
    for (uint32_t i = 0; i < d.npages; i++)
        crcs[i] = le_get64(d.crcs + 8 * i);
    size_t len = p2p_enc_data(out, h->rid, h->flags, &d, crcs, h->data_len);
    reencoded(len, P2P_DATA, h->meta_len);
    check(le_get32(out + 20) == h->data_len && le_get16(out + 6) == h->flags);
    check(memcmp(out + P2P_HDR, m, 15) == 0); /* 15: spare */
    check(memcmp(out + P2P_HDR + 16, m + 16, h->meta_len - 16) == 0);
}

static void fz_error(const struct p2p_hdr *h, const uint8_t *m)
{
    char msg[P2P_MAX_MSG + 1], small[8];
    int st = -1, st2 = -1;
    if (p2p_dec_error(m, h->meta_len, &st, msg, sizeof(msg)) != 0)
        return;
    size_t n = strlen(msg);
    check(st >= 0 && st <= 0xffff);
    check(n == le_get16(m + 2) && n <= P2P_MAX_MSG && printable(msg, n, 0x20));
    /* a shorter buffer gets the start of the same text; none, only the status */
    check(p2p_dec_error(m, h->meta_len, &st2, small, sizeof(small)) == 0 && st2 == st);
    check(strncmp(small, msg, sizeof(small) - 1) == 0 && strlen(small) < sizeof(small));
    check(p2p_dec_error(m, h->meta_len, &st2, NULL, 0) == 0 && st2 == st);
    /* the printable text encodes back to the same frame when nothing was replaced */
    size_t len = p2p_enc_error(out, h->rid, st, msg);
    reencoded(len, P2P_ERROR, h->meta_len);
    check(le_get16(out + P2P_HDR) == st);
    if (memcmp(msg, m + 4, n) == 0)
        check(memcmp(out + P2P_HDR, m, h->meta_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < P2P_HDR)
        return 0;
    uint8_t *hdr = malloc(P2P_HDR);
    if (hdr == NULL)
        abort();
    memcpy(hdr, in, P2P_HDR);
    struct p2p_hdr h;
    int rc = p2p_dec_hdr(hdr, &h);
    if (rc != 0) {
        check(rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -EMSGSIZE || rc == -EBADMSG);
        check(rc != -EPROTONOSUPPORT || h.version != P2P_VERSION);
        free(hdr);
        return 0;
    }
    check(le_get32(hdr) == P2P_MAGIC && h.version == P2P_VERSION);
    check(h.type >= P2P_HELLO && h.type <= P2P_ERROR);
    check(h.meta_len <= P2P_MAX_META && h.data_len <= P2P_MAX_DATA);
    check(h.data_len == 0 || h.type == P2P_DATA);
    if (size - P2P_HDR < h.meta_len) { /* a receiver would wait for the rest */
        free(hdr);
        return 0;
    }
    uint8_t *meta = malloc(h.meta_len ? h.meta_len : 1);
    if (meta == NULL)
        abort();
    memcpy(meta, in + P2P_HDR, h.meta_len);
    rc = p2p_check_crc(hdr, meta, &h);
    check(rc == 0 || rc == -EBADMSG);

    switch (h.type) {
    case P2P_HELLO:
    case P2P_HELLO_OK:
        fz_hello(&h, meta);
        break;
    case P2P_AUTH:
        fz_auth(&h, meta);
        break;
    case P2P_GET:
        fz_get(&h, meta);
        break;
    case P2P_DATA:
        fz_data(&h, meta);
        break;
    case P2P_ERROR:
        fz_error(&h, meta);
        break;
    }
    free(meta);
    free(hdr);
    return 0;
}
