/* tests/unit/p2p/test_wire.c - the P2P frame format (p2p/wire.c): every frame kind through its
 * encoder and back through the header, CRC and meta decoders, the bytes at the offsets the
 * layout comment promises (a peer of another build reads them there), and every limit of the
 * decoders refused with the error the caller acts on.
 *
 * Frames that an encoder cannot produce (a name over its limit, a status with pages) are made
 * by encoding a valid one and patching its bytes, as a broken or hostile peer would.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/wire_i.h"
#include "util/crc64.h"
#include "util/le.h"

#define FRAME_MAX (P2P_HDR + P2P_MAX_META)

static uint8_t frame[FRAME_MAX];

/* Decodes the header of the N-byte frame F and checks that it is whole and its CRC holds. */
static void dec_ok(const uint8_t *f, size_t n, struct p2p_hdr *h)
{
    assert_int_equal(p2p_dec_hdr(f, h), 0);
    assert_int_equal(h->version, P2P_VERSION);
    assert_int_equal(n, P2P_HDR + (size_t)h->meta_len);
    assert_int_equal(p2p_check_crc(f, f + P2P_HDR, h), 0);
    /* the CRC is CRC64 of bytes 0..23 and the meta, at offset 24 */
    uint64_t crc = crc64_update(crc64_update(0, f, 24), f + P2P_HDR, h->meta_len);
    assert_int_equal(h->crc, crc);
    assert_int_equal(le_get64(f + 24), crc);
}

/* The fixed header fields at their offsets: "EFCP", version, type, flags, rid, lengths. */
static void hdr_bytes(const uint8_t *f, uint8_t type, uint16_t flags, uint64_t rid,
                      uint32_t meta_len, uint32_t data_len)
{
    assert_memory_equal(f, "EFCP", 4);
    assert_int_equal(f[4], 1);
    assert_int_equal(f[5], type);
    assert_int_equal(le_get16(f + 6), flags);
    assert_int_equal(le_get64(f + 8), rid);
    assert_int_equal(le_get32(f + 16), meta_len);
    assert_int_equal(le_get32(f + 20), data_len);
}

static void fill_hello(struct p2p_hello *h, const char *name)
{
    memset(h, 0, sizeof(*h));
    h->role = P2P_ROLE_ROOT;
    h->auth = 1;
    h->block_size = 1u << 20;
    h->members = 0x0123456789abcdefull;
    for (int i = 0; i < P2P_NONCE; i++)
        h->nonce[i] = (uint8_t)(i + 1);
    for (int i = 0; i < P2P_PROOF; i++)
        h->proof[i] = (uint8_t)(0xa0 + i);
    snprintf(h->name, sizeof(h->name), "%s", name);
}

static void test_hello_roundtrip(void **state)
{
    const enum p2p_type types[] = {P2P_HELLO, P2P_HELLO_OK};
    const char *names[] = {"n1:10.0.0.1:7000", "", "b-2:[fd00::1]:65535"};
    for (size_t t = 0; t < 2; t++) {
        for (size_t k = 0; k < 3; k++) {
            struct p2p_hello in, out;
            struct p2p_hdr h;
            fill_hello(&in, names[k]);
            size_t nl = strlen(names[k]);
            size_t n = p2p_enc_hello(frame, types[t], 0, &in);
            assert_int_equal(n, P2P_HDR + 80 + nl);
            dec_ok(frame, n, &h);
            hdr_bytes(frame, (uint8_t)types[t], 0, 0, (uint32_t)(80 + nl), 0);
            assert_int_equal(h.type, types[t]);
            assert_int_equal(h.flags, 0);
            assert_int_equal(h.rid, 0);
            assert_int_equal(h.data_len, 0);

            const uint8_t *m = frame + P2P_HDR;
            assert_int_equal(m[0], P2P_ROLE_ROOT);
            assert_int_equal(m[1], 1);
            assert_int_equal(le_get16(m + 2), nl);
            assert_int_equal(le_get32(m + 4), 1u << 20);
            assert_int_equal(le_get64(m + 8), 0x0123456789abcdefull);
            assert_memory_equal(m + 16, in.nonce, P2P_NONCE);
            assert_memory_equal(m + 48, in.proof, P2P_PROOF);
            assert_memory_equal(m + 80, names[k], nl);

            memset(&out, 0x55, sizeof(out));
            assert_int_equal(p2p_dec_hello(m, h.meta_len, &out), 0);
            assert_int_equal(out.role, P2P_ROLE_ROOT);
            assert_int_equal(out.auth, 1);
            assert_int_equal(out.block_size, 1u << 20);
            assert_int_equal(out.members, 0x0123456789abcdefull);
            assert_memory_equal(out.nonce, in.nonce, P2P_NONCE);
            assert_memory_equal(out.proof, in.proof, P2P_PROOF);
            assert_string_equal(out.name, names[k]);
        }
    }

    /* the longest name, of every printable character but the space */
    struct p2p_hello in, out;
    struct p2p_hdr h;
    char name[P2P_MAX_NAME + 1];
    for (int i = 0; i < P2P_MAX_NAME; i++)
        name[i] = (char)(0x21 + i % (0x7f - 0x21));
    name[P2P_MAX_NAME] = '\0';
    fill_hello(&in, name);
    in.role = P2P_ROLE_AGENT;
    in.auth = 0;
    size_t n = p2p_enc_hello(frame, P2P_HELLO, 0, &in);
    assert_int_equal(n, P2P_HDR + 80 + P2P_MAX_NAME);
    dec_ok(frame, n, &h);
    assert_int_equal(p2p_dec_hello(frame + P2P_HDR, h.meta_len, &out), 0);
    assert_string_equal(out.name, name);
    assert_int_equal(out.role, P2P_ROLE_AGENT);
    assert_int_equal(out.auth, 0);
}

static void test_auth_roundtrip(void **state)
{
    uint8_t proof[P2P_PROOF], out[P2P_PROOF];
    struct p2p_hdr h;
    for (int i = 0; i < P2P_PROOF; i++)
        proof[i] = (uint8_t)(0xff - 3 * i);
    size_t n = p2p_enc_auth(frame, proof);
    assert_int_equal(n, P2P_HDR + P2P_PROOF);
    dec_ok(frame, n, &h);
    hdr_bytes(frame, P2P_AUTH, 0, 0, P2P_PROOF, 0);
    assert_int_equal(h.type, P2P_AUTH);
    assert_memory_equal(frame + P2P_HDR, proof, P2P_PROOF);
    memset(out, 0, sizeof(out));
    assert_int_equal(p2p_dec_auth(frame + P2P_HDR, h.meta_len, out), 0);
    assert_memory_equal(out, proof, P2P_PROOF);

    assert_int_equal(p2p_dec_auth(frame + P2P_HDR, P2P_PROOF - 1, out), -EBADMSG);
    assert_int_equal(p2p_dec_auth(frame + P2P_HDR, P2P_PROOF + 1, out), -EBADMSG);
    assert_int_equal(p2p_dec_auth(frame + P2P_HDR, 0, out), -EBADMSG);
}

/* A valid GET of blocks 8, 9 and 11 of a 12-block object: each limit test changes one field. */
static void base_get(struct p2p_get *g)
{
    memset(g, 0, sizeof(*g));
    g->block_size = 1u << 20;
    g->page_size = 4096;
    g->obj_size = 12ull << 20;
    g->first = 8;
    g->count = 4;
    g->mask = 0xb;
    g->id[0] = 0x1111222233334444ull;
    g->id[1] = 0x5555666677778888ull;
    g->ns = "bucket.oss-cn-hangzhou.aliyuncs.com";
    g->ns_len = (uint16_t)strlen(g->ns);
    g->key = "dir/object.bin";
    g->key_len = (uint16_t)strlen(g->key);
    g->etag = "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"";
    g->etag_len = (uint16_t)strlen(g->etag);
}

/* Encodes G, checks the frame, and returns what p2p_dec_get makes of its meta (into OUT). */
static int get_rc(const struct p2p_get *g, struct p2p_get *out)
{
    struct p2p_hdr h;
    size_t n = p2p_enc_get(frame, 77, g);
    assert_int_equal(n, P2P_HDR + 72 + (size_t)g->ns_len + g->key_len + g->etag_len);
    dec_ok(frame, n, &h);
    assert_int_equal(h.type, P2P_GET);
    assert_int_equal(h.rid, 77);
    return p2p_dec_get(frame + P2P_HDR, h.meta_len, out);
}

static void get_same(const struct p2p_get *a, const struct p2p_get *b)
{
    assert_int_equal(a->obj_size, b->obj_size);
    assert_int_equal(a->first, b->first);
    assert_int_equal(a->mask, b->mask);
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->off, b->off);
    assert_int_equal(a->len, b->len);
    assert_int_equal(a->block_size, b->block_size);
    assert_int_equal(a->page_size, b->page_size);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->id[0], b->id[0]);
    assert_int_equal(a->id[1], b->id[1]);
    assert_int_equal(a->ns_len, b->ns_len);
    assert_int_equal(a->key_len, b->key_len);
    assert_int_equal(a->etag_len, b->etag_len);
    assert_memory_equal(a->ns, b->ns, a->ns_len);
    assert_memory_equal(a->key, b->key, a->key_len);
    assert_memory_equal(a->etag, b->etag, a->etag_len);
}

static void test_get_roundtrip(void **state)
{
    struct p2p_get g, out;

    base_get(&g);
    assert_int_equal(get_rc(&g, &out), 0);
    get_same(&g, &out);
    hdr_bytes(frame, P2P_GET, 0, 77, 72 + g.ns_len + g.key_len + g.etag_len, 0);
    /* the strings point into the meta, one after the other, after the 72 fixed bytes */
    const uint8_t *m = frame + P2P_HDR;
    assert_ptr_equal(out.ns, (const char *)m + 72);
    assert_ptr_equal(out.key, out.ns + g.ns_len);
    assert_ptr_equal(out.etag, out.key + g.key_len);
    assert_int_equal(le_get64(m), 12ull << 20);
    assert_int_equal(le_get64(m + 8), 8);
    assert_int_equal(le_get64(m + 16), 0xb);
    assert_int_equal(le_get32(m + 24), 4);
    assert_int_equal(le_get32(m + 28), 0);
    assert_int_equal(le_get32(m + 32), 0);
    assert_int_equal(le_get32(m + 36), 1u << 20);
    assert_int_equal(le_get32(m + 40), 4096);
    assert_int_equal(le_get32(m + 44), 0);
    assert_int_equal(le_get64(m + 48), 0x1111222233334444ull);
    assert_int_equal(le_get64(m + 56), 0x5555666677778888ull);
    assert_int_equal(le_get16(m + 64), g.ns_len);
    assert_int_equal(le_get16(m + 66), g.key_len);
    assert_int_equal(le_get16(m + 68), g.etag_len);
    assert_int_equal(le_get16(m + 70), 0);

    /* one block, a page-aligned range of it, warm-up flag, no name space and no ETag */
    base_get(&g);
    g.first = 11;
    g.count = 1;
    g.mask = 1;
    g.off = 8192;
    g.len = 4096;
    g.flags = P2P_GET_FILL;
    g.ns = "";
    g.ns_len = 0;
    g.etag = "";
    g.etag_len = 0;
    assert_int_equal(get_rc(&g, &out), 0);
    get_same(&g, &out);

    /* 64 blocks, all wanted */
    base_get(&g);
    g.first = 0;
    g.count = 64;
    g.mask = UINT64_MAX;
    g.obj_size = 64ull << 20;
    assert_int_equal(get_rc(&g, &out), 0);
    get_same(&g, &out);

    /* the smallest and largest sizes, the longest strings */
    static char ns[P2P_MAX_NS], key[P2P_MAX_KEY], etag[P2P_MAX_ETAG];
    memset(ns, 'n', sizeof(ns));
    memset(key, 'k', sizeof(key));
    memset(etag, 'e', sizeof(etag));
    base_get(&g);
    g.block_size = g.page_size = 4096;
    g.obj_size = 12 * 4096;
    g.ns = ns;
    g.ns_len = P2P_MAX_NS;
    g.key = key;
    g.key_len = P2P_MAX_KEY;
    g.etag = etag;
    g.etag_len = P2P_MAX_ETAG;
    assert_int_equal(get_rc(&g, &out), 0);
    get_same(&g, &out);
    base_get(&g);
    g.block_size = P2P_MAX_BLOCK_SIZE;
    g.page_size = P2P_MAX_BLOCK_SIZE;
    g.obj_size = 12ull * P2P_MAX_BLOCK_SIZE;
    assert_int_equal(get_rc(&g, &out), 0);
    get_same(&g, &out);
}

static void test_get_limits(void **state)
{
    struct p2p_get g, out;
    static char big[P2P_MAX_KEY + 1];
    memset(big, 'x', sizeof(big));

    /* count 1..64 */
    base_get(&g);
    g.count = 0;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.count = 65;
    g.mask = 1;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.count = 64;
    g.first = 0;
    assert_int_equal(get_rc(&g, &out), 0);

    /* mask: not zero, no bit at or past count */
    base_get(&g);
    g.mask = 0;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.mask = 0x10; /* bit 4 of a 4-block GET */
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.mask = 0x8;
    assert_int_equal(get_rc(&g, &out), 0);
    g.count = 1;
    g.mask = 2;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.mask = 1ull << 63;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);

    /* flags: FILL or RELAY, not both, nothing else */
    base_get(&g);
    g.flags = P2P_GET_RELAY;
    assert_int_equal(get_rc(&g, &out), 0);
    get_same(&g, &out);
    g.flags = P2P_GET_FILL | P2P_GET_RELAY;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.flags = 4;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.flags = P2P_GET_FILL | 0x80000000u;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);

    /* off and len: count 1 only, off page-aligned inside the block, len not past its end */
    base_get(&g);
    g.count = 1;
    g.mask = 1;
    g.off = 100;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.off = 4096 + 512;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.off = g.block_size;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.off = g.block_size - 4096;
    g.len = 4096;
    assert_int_equal(get_rc(&g, &out), 0);
    g.len = 4097;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.off = 4096;
    g.len = g.block_size - 4096;
    assert_int_equal(get_rc(&g, &out), 0);
    g.len++;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.off = 0;
    g.len = g.block_size;
    assert_int_equal(get_rc(&g, &out), 0);
    g.len = UINT32_MAX;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    base_get(&g); /* count 4 */
    g.off = 4096;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.off = 0;
    g.len = 4096;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);

    /* block and page sizes: powers of two, 4 KiB <= page <= block <= 64 MiB */
    const uint32_t bad_sizes[][2] = {
        {0, 4096},
        {3u << 12, 4096},          /* block not a power of two */
        {1u << 20, 3u << 12},      /* page not a power of two */
        {1u << 20, 0},             /* no page size */
        {1u << 20, 2048},          /* page under 4 KiB */
        {2048, 2048},              /* block under 4 KiB */
        {8192, 16384},             /* page > block */
        {128u << 20, 4096},        /* block over 64 MiB */
        {(1u << 20) + 4096, 4096}, /* not a power of two */
        {1u << 31, 1u << 31},
    };
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        base_get(&g);
        g.block_size = bad_sizes[i][0];
        g.page_size = bad_sizes[i][1];
        g.obj_size = UINT64_MAX;
        if (get_rc(&g, &out) != -EBADMSG)
            fail_msg("block %u page %u accepted", bad_sizes[i][0], bad_sizes[i][1]);
    }

    /* lengths of the strings */
    base_get(&g);
    g.key_len = 0;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.key = big;
    g.key_len = P2P_MAX_KEY + 1;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.key_len = P2P_MAX_KEY;
    assert_int_equal(get_rc(&g, &out), 0);
    base_get(&g);
    g.ns = big;
    g.ns_len = P2P_MAX_NS + 1;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.ns_len = P2P_MAX_NS;
    assert_int_equal(get_rc(&g, &out), 0);
    base_get(&g);
    g.etag = big;
    g.etag_len = P2P_MAX_ETAG + 1;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.etag_len = P2P_MAX_ETAG;
    assert_int_equal(get_rc(&g, &out), 0);

    /* the meta's length must be the fixed part and the three strings, exactly */
    base_get(&g);
    size_t ml = 72 + (size_t)g.ns_len + g.key_len + g.etag_len;
    p2p_enc_get(frame, 1, &g);
    assert_int_equal(p2p_dec_get(frame + P2P_HDR, ml, &out), 0);
    assert_int_equal(p2p_dec_get(frame + P2P_HDR, ml - 1, &out), -EBADMSG);
    assert_int_equal(p2p_dec_get(frame + P2P_HDR, ml + 1, &out), -EBADMSG);
    assert_int_equal(p2p_dec_get(frame + P2P_HDR, 71, &out), -EBADMSG);
    assert_int_equal(p2p_dec_get(frame + P2P_HDR, 0, &out), -EBADMSG);

    /* every wanted block starts inside the object */
    base_get(&g); /* blocks 8, 9, 11 of 12 */
    g.obj_size = (11ull << 20) + 1;
    assert_int_equal(get_rc(&g, &out), 0);
    g.obj_size = 11ull << 20; /* block 11 is past the end */
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.mask = 0x7; /* blocks 8..10 */
    assert_int_equal(get_rc(&g, &out), 0);
    g.obj_size = 0;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    base_get(&g);
    g.count = 1;
    g.mask = 1;
    g.first = 12; /* the block at the object's end */
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.first = 11;
    g.off = (1u << 20) - 4096;
    g.obj_size = (12ull << 20) - 4096; /* the range starts at the end */
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.obj_size++;
    assert_int_equal(get_rc(&g, &out), 0);

    /* first * block_size must not wrap around: 2^52 blocks of 4 KiB would start at byte 0 */
    base_get(&g);
    g.block_size = g.page_size = 4096;
    g.count = 1;
    g.mask = 1;
    g.obj_size = UINT64_MAX;
    g.first = 1ull << 52;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.first = UINT64_MAX;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.first = UINT64_MAX / 4096 - 63;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.first = UINT64_MAX / 4096 - 64; /* the last first index whose 64 blocks all fit */
    assert_int_equal(get_rc(&g, &out), 0);
    g.count = 64;
    g.mask = 1ull << 63;
    assert_int_equal(get_rc(&g, &out), 0);
    g.block_size = 8192; /* twice the size: far past the end */
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
    g.first = 1ull << 51; /* 2^51 * 8 KiB wraps to 0 */
    g.count = 1;
    g.mask = 1;
    assert_int_equal(get_rc(&g, &out), -EBADMSG);
}

static void test_data_roundtrip(void **state)
{
    struct p2p_data d, out;
    struct p2p_hdr h;
    uint64_t crcs[3] = {0x0102030405060708ull, 0, UINT64_MAX};

    memset(&d, 0, sizeof(d));
    d.index = 0xfedcba9876543210ull;
    d.off = 8192;
    d.status = P2P_OK;
    d.hit = 1;
    d.page_size = 4096;
    d.npages = 3;
    size_t n = p2p_enc_data(frame, 99, P2P_F_LAST, &d, crcs, 2 * 4096 + 1);
    assert_int_equal(n, P2P_HDR + 24 + 3 * 8);
    dec_ok(frame, n, &h);
    hdr_bytes(frame, P2P_DATA, P2P_F_LAST, 99, 24 + 3 * 8, 2 * 4096 + 1);
    assert_int_equal(h.type, P2P_DATA);
    assert_int_equal(h.flags, P2P_F_LAST);
    assert_int_equal(h.rid, 99);
    assert_int_equal(h.data_len, 2 * 4096 + 1);
    const uint8_t *m = frame + P2P_HDR;
    assert_int_equal(le_get64(m), 0xfedcba9876543210ull);
    assert_int_equal(le_get32(m + 8), 8192);
    assert_int_equal(le_get16(m + 12), P2P_OK);
    assert_int_equal(m[14], 1);
    assert_int_equal(m[15], 0);
    assert_int_equal(le_get32(m + 16), 4096);
    assert_int_equal(le_get32(m + 20), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(le_get64(m + 24 + 8 * i), crcs[i]);

    memset(&out, 0x55, sizeof(out));
    assert_int_equal(p2p_dec_data(m, h.meta_len, h.data_len, &out), 0);
    assert_int_equal(out.index, d.index);
    assert_int_equal(out.off, 8192);
    assert_int_equal(out.status, P2P_OK);
    assert_int_equal(out.hit, 1);
    assert_int_equal(out.page_size, 4096);
    assert_int_equal(out.npages, 3);
    assert_ptr_equal(out.crcs, m + 24);
    for (int i = 0; i < 3; i++)
        assert_int_equal(le_get64(out.crcs + 8 * i), crcs[i]);

    /* no pages: a frame that only says "last" */
    d.npages = 0;
    d.hit = 0;
    n = p2p_enc_data(frame, 5, P2P_F_LAST, &d, NULL, 0);
    assert_int_equal(n, P2P_HDR + 24);
    dec_ok(frame, n, &h);
    assert_int_equal(h.data_len, 0);
    assert_int_equal(p2p_dec_data(frame + P2P_HDR, h.meta_len, h.data_len, &out), 0);
    assert_int_equal(out.npages, 0);
    assert_int_equal(out.hit, 0);

    /* a failure: the encoder sends neither pages nor data, whatever it is given */
    for (uint16_t st = P2P_STALE; st <= P2P_STATUS_MAX; st++) {
        d.status = st;
        d.npages = 3;
        n = p2p_enc_data(frame, 6, 0, &d, crcs, 3 * 4096);
        assert_int_equal(n, P2P_HDR + 24);
        dec_ok(frame, n, &h);
        assert_int_equal(h.data_len, 0);
        assert_int_equal(h.flags, 0);
        assert_int_equal(p2p_dec_data(frame + P2P_HDR, h.meta_len, h.data_len, &out), 0);
        assert_int_equal(out.status, st);
        assert_int_equal(out.npages, 0);
    }

    /* the most a frame carries: 1024 whole pages, P2P_MAX_DATA bytes */
    static uint64_t many[P2P_MAX_PAGES];
    for (int i = 0; i < P2P_MAX_PAGES; i++)
        many[i] = (uint64_t)i * 0x9e3779b97f4a7c15ull;
    d.status = P2P_OK;
    d.off = 0;
    d.npages = P2P_MAX_PAGES;
    n = p2p_enc_data(frame, 7, P2P_F_LAST, &d, many, P2P_MAX_DATA);
    assert_int_equal(n, P2P_HDR + 24 + 8 * P2P_MAX_PAGES);
    dec_ok(frame, n, &h);
    assert_int_equal(h.data_len, P2P_MAX_DATA);
    assert_int_equal(p2p_dec_data(frame + P2P_HDR, h.meta_len, h.data_len, &out), 0);
    assert_int_equal(out.npages, P2P_MAX_PAGES);
    assert_int_equal(le_get64(out.crcs + 8 * 1023), many[1023]);
}

/* What p2p_dec_data says of a DATA meta for D with NP pages, checked against DATA_LEN. */
static int data_rc(const struct p2p_data *d, uint32_t np, uint32_t data_len)
{
    static uint64_t crcs[P2P_MAX_PAGES + 1];
    struct p2p_data x = *d, out;
    x.npages = np;
    size_t n = p2p_enc_data(frame, 1, 0, &x, crcs, data_len);
    return p2p_dec_data(frame + P2P_HDR, n - P2P_HDR, data_len, &out);
}

static void test_data_limits(void **state)
{
    struct p2p_data d, out;
    memset(&d, 0, sizeof(d));
    d.page_size = 4096;

    /* the data is p pages, all whole but the last, which holds at least one byte */
    assert_int_equal(data_rc(&d, 2, 8192), 0);
    assert_int_equal(data_rc(&d, 2, 4097), 0);
    assert_int_equal(data_rc(&d, 2, 4096), -EBADMSG); /* the last page empty */
    assert_int_equal(data_rc(&d, 2, 8193), -EBADMSG);
    assert_int_equal(data_rc(&d, 2, 0), -EBADMSG);
    assert_int_equal(data_rc(&d, 1, 1), 0);
    assert_int_equal(data_rc(&d, 1, 0), -EBADMSG);
    assert_int_equal(data_rc(&d, 0, 0), 0);
    assert_int_equal(data_rc(&d, 0, 1), -EBADMSG);
    assert_int_equal(data_rc(&d, P2P_MAX_PAGES, P2P_MAX_DATA), 0);
    assert_int_equal(data_rc(&d, P2P_MAX_PAGES + 1, P2P_MAX_DATA), -EBADMSG);
    assert_int_equal(data_rc(&d, P2P_MAX_PAGES + 1, P2P_MAX_DATA + 1), -EBADMSG);

    /* the page size: a power of two, 4 KiB..64 MiB; off a multiple of it */
    const uint32_t bad_pages[] = {0, 2048, 4095, 3u << 12, 128u << 20, 1u << 31};
    for (size_t i = 0; i < sizeof(bad_pages) / sizeof(bad_pages[0]); i++) {
        d.page_size = bad_pages[i];
        if (data_rc(&d, 1, 1) != -EBADMSG)
            fail_msg("page size %u accepted", bad_pages[i]);
    }
    d.page_size = 64u << 20;
    assert_int_equal(data_rc(&d, 1, 1), 0);
    d.page_size = 8192;
    d.off = 4096;
    assert_int_equal(data_rc(&d, 1, 1), -EBADMSG);
    d.off = 16384;
    assert_int_equal(data_rc(&d, 1, 1), 0);
    d.off = 0;

    /* hit is 0 or 1 */
    d.page_size = 4096;
    d.hit = 2;
    assert_int_equal(data_rc(&d, 1, 1), -EBADMSG);
    d.hit = 1;
    assert_int_equal(data_rc(&d, 1, 1), 0);

    /* status: 0..8; a failure carries neither pages nor data */
    d.status = P2P_STATUS_MAX + 1;
    assert_int_equal(data_rc(&d, 0, 0), -EBADMSG);
    d.status = 0xffff;
    assert_int_equal(data_rc(&d, 0, 0), -EBADMSG);
    d.status = P2P_DENIED;
    assert_int_equal(data_rc(&d, 0, 0), 0);
    assert_int_equal(data_rc(&d, 0, 1), -EBADMSG);
    /* pages on a failure: the encoder drops them, so write them in as a peer could */
    memset(&d, 0, sizeof(d));
    d.page_size = 4096;
    d.npages = 1;
    uint64_t crc = 42;
    size_t n = p2p_enc_data(frame, 1, 0, &d, &crc, 4096);
    le_put16(frame + P2P_HDR + 12, P2P_BUSY);
    assert_int_equal(p2p_dec_data(frame + P2P_HDR, n - P2P_HDR, 4096, &out), -EBADMSG);
    assert_int_equal(p2p_dec_data(frame + P2P_HDR, n - P2P_HDR, 0, &out), -EBADMSG);
    le_put16(frame + P2P_HDR + 12, P2P_OK);
    assert_int_equal(p2p_dec_data(frame + P2P_HDR, n - P2P_HDR, 4096, &out), 0);

    /* the meta's length is 24 + 8 per page, exactly */
    assert_int_equal(p2p_dec_data(frame + P2P_HDR, n - P2P_HDR - 1, 4096, &out), -EBADMSG);
    assert_int_equal(p2p_dec_data(frame + P2P_HDR, n - P2P_HDR + 1, 4096, &out), -EBADMSG);
    assert_int_equal(p2p_dec_data(frame + P2P_HDR, 23, 0, &out), -EBADMSG);
    /* a page count whose CRC list would wrap a 32-bit length */
    le_put32(frame + P2P_HDR + 20, 0x20000000u);
    assert_int_equal(p2p_dec_data(frame + P2P_HDR, 24, 0, &out), -EBADMSG);
}

static void test_error_roundtrip(void **state)
{
    struct p2p_hdr h;
    char msg[P2P_MAX_MSG + 1];
    int st;

    size_t n = p2p_enc_error(frame, 12, P2P_BUSY, "too many requests");
    assert_int_equal(n, P2P_HDR + 4 + 17);
    dec_ok(frame, n, &h);
    hdr_bytes(frame, P2P_ERROR, 0, 12, 4 + 17, 0);
    assert_int_equal(h.type, P2P_ERROR);
    assert_int_equal(le_get16(frame + P2P_HDR), P2P_BUSY);
    assert_int_equal(le_get16(frame + P2P_HDR + 2), 17);
    st = -1;
    assert_int_equal(p2p_dec_error(frame + P2P_HDR, h.meta_len, &st, msg, sizeof(msg)), 0);
    assert_int_equal(st, P2P_BUSY);
    assert_string_equal(msg, "too many requests");

    /* a short buffer gets the start of the message */
    char small[5];
    assert_int_equal(p2p_dec_error(frame + P2P_HDR, h.meta_len, &st, small, sizeof(small)), 0);
    assert_string_equal(small, "too ");
    /* none at all: only the status */
    st = -1;
    assert_int_equal(p2p_dec_error(frame + P2P_HDR, h.meta_len, &st, NULL, 0), 0);
    assert_int_equal(st, P2P_BUSY);

    /* no message (the connection-level error of request 0) */
    n = p2p_enc_error(frame, 0, P2P_BAD_REQUEST, NULL);
    assert_int_equal(n, P2P_HDR + 4);
    dec_ok(frame, n, &h);
    assert_int_equal(h.rid, 0);
    strcpy(msg, "stale");
    assert_int_equal(p2p_dec_error(frame + P2P_HDR, h.meta_len, &st, msg, sizeof(msg)), 0);
    assert_int_equal(st, P2P_BAD_REQUEST);
    assert_string_equal(msg, "");

    /* the longest message; a longer one is cut by the encoder */
    char text[P2P_MAX_MSG + 10];
    memset(text, 'm', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    n = p2p_enc_error(frame, 3, P2P_DENIED, text);
    assert_int_equal(n, P2P_HDR + 4 + P2P_MAX_MSG);
    dec_ok(frame, n, &h);
    assert_int_equal(p2p_dec_error(frame + P2P_HDR, h.meta_len, &st, msg, sizeof(msg)), 0);
    assert_int_equal(strlen(msg), P2P_MAX_MSG);
    assert_int_equal(st, P2P_DENIED);
}

static void test_error_limits(void **state)
{
    char msg[P2P_MAX_MSG + 1];
    int st;
    uint8_t *m = frame + P2P_HDR;

    /* a message over 256 bytes: only a peer that does not use our encoder sends one */
    char text[P2P_MAX_MSG + 1];
    memset(text, 'x', P2P_MAX_MSG);
    text[P2P_MAX_MSG] = '\0';
    p2p_enc_error(frame, 1, P2P_BUSY, text);
    m[4 + P2P_MAX_MSG] = 'y';
    le_put16(m + 2, P2P_MAX_MSG + 1);
    assert_int_equal(p2p_dec_error(m, 4 + P2P_MAX_MSG + 1, &st, msg, sizeof(msg)), -EBADMSG);
    le_put16(m + 2, 0xffff);
    assert_int_equal(p2p_dec_error(m, 4 + 0xffff, &st, msg, sizeof(msg)), -EBADMSG);

    /* the length must match the meta's */
    size_t n = p2p_enc_error(frame, 1, P2P_BUSY, "abc");
    assert_int_equal(p2p_dec_error(m, n - P2P_HDR - 1, &st, msg, sizeof(msg)), -EBADMSG);
    assert_int_equal(p2p_dec_error(m, n - P2P_HDR + 1, &st, msg, sizeof(msg)), -EBADMSG);
    assert_int_equal(p2p_dec_error(m, 3, &st, msg, sizeof(msg)), -EBADMSG);
    assert_int_equal(p2p_dec_error(m, 0, &st, msg, sizeof(msg)), -EBADMSG);

    /* bytes a terminal or a log would act on become '?' */
    const uint8_t raw[] = {'a',  0x00, 'b',  '\n', 'c',  0x1b, 'd',
                           0x7f, 'e',  0x80, 'f',  0xff, ' ',  '~'};
    p2p_enc_error(frame, 1, P2P_STALE, "");
    memcpy(m + 4, raw, sizeof(raw));
    le_put16(m + 2, sizeof(raw));
    assert_int_equal(p2p_dec_error(m, 4 + sizeof(raw), &st, msg, sizeof(msg)), 0);
    assert_int_equal(st, P2P_STALE);
    assert_string_equal(msg, "a?b?c?d?e?f? ~");
}

static void test_hello_limits(void **state)
{
    struct p2p_hello in, out;
    uint8_t *m = frame + P2P_HDR;
    char name[P2P_MAX_NAME + 1];
    memset(name, 'a', P2P_MAX_NAME);
    name[P2P_MAX_NAME] = '\0';

    /* a name over 200 bytes, as a peer that does not use our encoder could send */
    fill_hello(&in, name);
    size_t n = p2p_enc_hello(frame, P2P_HELLO, 0, &in);
    assert_int_equal(p2p_dec_hello(m, n - P2P_HDR, &out), 0);
    m[80 + P2P_MAX_NAME] = 'a';
    le_put16(m + 2, P2P_MAX_NAME + 1);
    assert_int_equal(p2p_dec_hello(m, n - P2P_HDR + 1, &out), -EBADMSG);
    le_put16(m + 2, 0xffff);
    assert_int_equal(p2p_dec_hello(m, 80 + 0xffff, &out), -EBADMSG);

    /* the meta's length is 80 + the name's, exactly */
    fill_hello(&in, "n:10.0.0.1:1");
    n = p2p_enc_hello(frame, P2P_HELLO, 0, &in);
    assert_int_equal(p2p_dec_hello(m, n - P2P_HDR, &out), 0);
    assert_int_equal(p2p_dec_hello(m, n - P2P_HDR - 1, &out), -EBADMSG);
    assert_int_equal(p2p_dec_hello(m, n - P2P_HDR + 1, &out), -EBADMSG);
    assert_int_equal(p2p_dec_hello(m, 79, &out), -EBADMSG);

    /* every byte of the name is printable and not a space */
    const uint8_t bad[] = {0x00, 0x09, 0x0a, 0x1f, ' ', 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < sizeof(bad); i++) {
        m[80 + 3] = bad[i];
        if (p2p_dec_hello(m, n - P2P_HDR, &out) != -EBADMSG)
            fail_msg("name byte 0x%02x accepted", bad[i]);
    }
    m[80 + 3] = '!';
    assert_int_equal(p2p_dec_hello(m, n - P2P_HDR, &out), 0);
    m[80 + 3] = '~';
    assert_int_equal(p2p_dec_hello(m, n - P2P_HDR, &out), 0);
    assert_string_equal(out.name, "n:1~.0.0.1:1");

    /* role 0..2, auth 0..1 */
    fill_hello(&in, "n:10.0.0.1:1");
    for (uint8_t role = 0; role <= 2; role++) {
        in.role = role;
        n = p2p_enc_hello(frame, P2P_HELLO, 0, &in);
        assert_int_equal(p2p_dec_hello(m, n - P2P_HDR, &out), 0);
        assert_int_equal(out.role, role);
    }
    in.role = 3;
    n = p2p_enc_hello(frame, P2P_HELLO, 0, &in);
    assert_int_equal(p2p_dec_hello(m, n - P2P_HDR, &out), -EBADMSG);
    in.role = 0xff;
    n = p2p_enc_hello(frame, P2P_HELLO, 0, &in);
    assert_int_equal(p2p_dec_hello(m, n - P2P_HDR, &out), -EBADMSG);
    in.role = P2P_ROLE_ROOT_AGENT;
    in.auth = 2;
    n = p2p_enc_hello(frame, P2P_HELLO, 0, &in);
    assert_int_equal(p2p_dec_hello(m, n - P2P_HDR, &out), -EBADMSG);
    in.auth = 0;
    n = p2p_enc_hello(frame, P2P_HELLO, 0, &in);
    assert_int_equal(p2p_dec_hello(m, n - P2P_HDR, &out), 0);
    assert_int_equal(out.auth, 0);
}

static void test_hdr_limits(void **state)
{
    struct p2p_hdr h;
    uint8_t f[P2P_HDR];
    p2p_enc_auth(frame, (const uint8_t[P2P_PROOF]){0});
    memcpy(f, frame, P2P_HDR);

    /* not efc's magic */
    f[0] = 'X';
    assert_int_equal(p2p_dec_hdr(f, &h), -EPROTO);
    memcpy(f, frame, P2P_HDR);
    f[3] ^= 0x80;
    assert_int_equal(p2p_dec_hdr(f, &h), -EPROTO);
    memcpy(f, "PCFE", 4); /* big-endian */
    assert_int_equal(p2p_dec_hdr(f, &h), -EPROTO);
    memcpy(f, "GET ", 4); /* a client that thinks it talks HTTP */
    assert_int_equal(p2p_dec_hdr(f, &h), -EPROTO);

    /* another version: refused, and h.version says which, for the ERROR that answers it */
    const uint8_t versions[] = {0, 2, 0xff};
    for (size_t i = 0; i < sizeof(versions); i++) {
        memcpy(f, frame, P2P_HDR);
        f[4] = versions[i];
        memset(&h, 0, sizeof(h));
        assert_int_equal(p2p_dec_hdr(f, &h), -EPROTONOSUPPORT);
        assert_int_equal(h.version, versions[i]);
    }

    /* unknown types */
    const uint8_t types[] = {0, 7, 0x80, 0xff};
    for (size_t i = 0; i < sizeof(types); i++) {
        memcpy(f, frame, P2P_HDR);
        f[5] = types[i];
        assert_int_equal(p2p_dec_hdr(f, &h), -EBADMSG);
    }
    for (uint8_t t = P2P_HELLO; t <= P2P_ERROR; t++) {
        memcpy(f, frame, P2P_HDR);
        f[5] = t;
        assert_int_equal(p2p_dec_hdr(f, &h), 0);
        assert_int_equal(h.type, t);
    }

    /* the meta's and data's lengths, up to their limits */
    memcpy(f, frame, P2P_HDR);
    le_put32(f + 16, P2P_MAX_META);
    assert_int_equal(p2p_dec_hdr(f, &h), 0);
    assert_int_equal(h.meta_len, P2P_MAX_META);
    le_put32(f + 16, P2P_MAX_META + 1);
    assert_int_equal(p2p_dec_hdr(f, &h), -EMSGSIZE);
    le_put32(f + 16, UINT32_MAX);
    assert_int_equal(p2p_dec_hdr(f, &h), -EMSGSIZE);
    memcpy(f, frame, P2P_HDR);
    f[5] = P2P_DATA;
    le_put32(f + 20, P2P_MAX_DATA);
    assert_int_equal(p2p_dec_hdr(f, &h), 0);
    assert_int_equal(h.data_len, P2P_MAX_DATA);
    le_put32(f + 20, P2P_MAX_DATA + 1);
    assert_int_equal(p2p_dec_hdr(f, &h), -EMSGSIZE);
    le_put32(f + 20, UINT32_MAX);
    assert_int_equal(p2p_dec_hdr(f, &h), -EMSGSIZE);

    /* data only on DATA */
    for (uint8_t t = P2P_HELLO; t <= P2P_ERROR; t++) {
        memcpy(f, frame, P2P_HDR);
        f[5] = t;
        le_put32(f + 20, 1);
        assert_int_equal(p2p_dec_hdr(f, &h), t == P2P_DATA ? 0 : -EBADMSG);
    }

    /* the other fields come back as written */
    memcpy(f, frame, P2P_HDR);
    f[5] = P2P_DATA;
    le_put16(f + 6, 0xbeef);
    le_put64(f + 8, 0x8877665544332211ull);
    le_put32(f + 16, 1234);
    le_put32(f + 20, 5678);
    le_put64(f + 24, 0xa5a5a5a5a5a5a5a5ull);
    assert_int_equal(p2p_dec_hdr(f, &h), 0);
    assert_int_equal(h.flags, 0xbeef);
    assert_int_equal(h.rid, 0x8877665544332211ull);
    assert_int_equal(h.meta_len, 1234);
    assert_int_equal(h.data_len, 5678);
    assert_int_equal(h.crc, 0xa5a5a5a5a5a5a5a5ull);
}

/* Flipping any one byte of bytes 0..23 or of the meta (with the header as first decoded), or of
 * the CRC itself, breaks the CRC. */
static void crc_flips(const uint8_t *f, size_t n)
{
    struct p2p_hdr h, h2;
    static uint8_t c[FRAME_MAX];
    const uint8_t xors[] = {0x01, 0x80, 0xff, 0x5a};
    assert_int_equal(p2p_dec_hdr(f, &h), 0);
    assert_int_equal(p2p_check_crc(f, f + P2P_HDR, &h), 0);
    for (size_t i = 0; i < n; i++) {
        for (size_t x = 0; x < sizeof(xors); x++) {
            memcpy(c, f, n);
            c[i] ^= xors[x];
            int rc;
            if (i >= 24 && i < P2P_HDR) {
                assert_int_equal(p2p_dec_hdr(c, &h2), 0);
                rc = p2p_check_crc(c, c + P2P_HDR, &h2);
            } else {
                rc = p2p_check_crc(c, c + P2P_HDR, &h);
            }
            if (rc != -EBADMSG)
                fail_msg("byte %zu ^ 0x%02x of a type %u frame: CRC still matches", i, xors[x],
                         h.type);
        }
    }
}

static void test_crc(void **state)
{
    static uint8_t f[FRAME_MAX];
    struct p2p_hello hello;
    struct p2p_get g;
    struct p2p_data d;
    uint64_t crcs[2] = {1, 2};
    size_t n;

    fill_hello(&hello, "n1:10.0.0.1:7000");
    n = p2p_enc_hello(f, P2P_HELLO, 0, &hello);
    crc_flips(f, n);
    n = p2p_enc_hello(f, P2P_HELLO_OK, 0, &hello);
    crc_flips(f, n);
    n = p2p_enc_auth(f, hello.proof);
    crc_flips(f, n);
    base_get(&g);
    n = p2p_enc_get(f, 3, &g);
    crc_flips(f, n);
    memset(&d, 0, sizeof(d));
    d.page_size = 4096;
    d.npages = 2;
    n = p2p_enc_data(f, 4, P2P_F_LAST, &d, crcs, 8000);
    crc_flips(f, n);
    n = p2p_enc_error(f, 5, P2P_ORIGIN_FAILED, "origin timed out");
    crc_flips(f, n);

    /* the CRC does not cover the data after the meta: each page has its own */
    n = p2p_enc_data(f, 4, P2P_F_LAST, &d, crcs, 8000);
    struct p2p_hdr h;
    assert_int_equal(p2p_dec_hdr(f, &h), 0);
    f[n] ^= 0xff;
    assert_int_equal(p2p_check_crc(f, f + P2P_HDR, &h), 0);
}

static void test_status_name(void **state)
{
    assert_string_equal(p2p_status_name(P2P_OK), "ok");
    assert_string_equal(p2p_status_name(P2P_STALE), "stale");
    assert_string_equal(p2p_status_name(P2P_NOT_FOUND), "not found");
    assert_string_equal(p2p_status_name(P2P_OTHER_BUCKET), "other bucket");
    assert_string_equal(p2p_status_name(P2P_BUSY), "busy");
    assert_string_equal(p2p_status_name(P2P_ORIGIN_FAILED), "origin failed");
    assert_string_equal(p2p_status_name(P2P_BAD_REQUEST), "bad request");
    assert_string_equal(p2p_status_name(P2P_NOT_SERVING), "not serving");
    assert_string_equal(p2p_status_name(P2P_DENIED), "denied");
    assert_string_equal(p2p_status_name(P2P_HOT), "hot");
    assert_string_equal(p2p_status_name(P2P_PENDING), "pending");
    assert_string_equal(p2p_status_name(P2P_STATUS_MAX + 1), "unknown");
    assert_string_equal(p2p_status_name(-1), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_roundtrip),
        cmocka_unit_test(test_auth_roundtrip),
        cmocka_unit_test(test_get_roundtrip),
        cmocka_unit_test(test_get_limits),
        cmocka_unit_test(test_data_roundtrip),
        cmocka_unit_test(test_data_limits),
        cmocka_unit_test(test_error_roundtrip),
        cmocka_unit_test(test_error_limits),
        cmocka_unit_test(test_hello_limits),
        cmocka_unit_test(test_hdr_limits),
        cmocka_unit_test(test_crc),
        cmocka_unit_test(test_status_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
