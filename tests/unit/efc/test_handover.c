#define _GNU_SOURCE
/* tests/unit/efc/test_handover.c - the runtime update's blob (efc/handover.c): an inode table and
 * open handles survive a round trip exactly; a truncated, corrupt or out-of-limits blob is refused
 * as a whole with a reason; the inode table refuses inconsistent records; update requests are
 * checked against the option table (unknown names, bad values, non-runtime options). */
#include <errno.h>
#include <linux/fuse.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "efc/handover_i.h"
#include "efc/ns_i.h"
#include "util/buf.h"
#include "util/opt.h"

/* ---- helpers ----------------------------------------------------------------------------------
 */

static struct efc_attr file_attr(uint64_t size, const char *etag, uint64_t t)
{
    struct efc_attr a;
    memset(&a, 0, sizeof(a));
    a.size = size;
    a.mtime = 1700000000 + (time_t)size;
    a.fetched_ms = t;
    a.sc = OSS_SC_IA;
    snprintf(a.etag, sizeof(a.etag), "%s", etag);
    return a;
}

static uint64_t add(struct efc_ns *ns, uint64_t parent, const char *name, const char *key, bool dir,
                    const struct efc_attr *a)
{
    uint64_t ino = 0;
    assert_int_equal(efc_ns_add(ns, parent, name, strlen(name), key, dir, a, &ino, NULL), 0);
    return ino;
}

/* A FUSE_INIT request as the kernel sends it. */
static void make_init(uint8_t *buf, uint32_t *len)
{
    struct fuse_in_header in;
    struct fuse_init_in ii;
    memset(&in, 0, sizeof(in));
    memset(&ii, 0, sizeof(ii));
    in.len = sizeof(in) + sizeof(ii);
    in.opcode = FUSE_INIT;
    in.unique = 2;
    ii.major = 7;
    ii.minor = 38;
    ii.max_readahead = 131072;
    ii.flags = FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS;
    memcpy(buf, &in, sizeof(in));
    memcpy(buf + sizeof(in), &ii, sizeof(ii));
    *len = in.len;
}

struct handles {
    struct efc_fh_record r[8];
    char keys[8][64], etags[8][64];
    int n;
};

static const struct efc_fh_record HANDLES[] = {
    {.num = (1ull << 32) | 0, .ino = 0x41, .size = 11, .key = "p/a.bin", .etag = "\"E1\""},
    {.num = (7ull << 32) | 5, .ino = 0x82, .size = 0, .stale = true, .key = "p/b", .etag = ""},
    {.num = (2ull << 32) | 1025, .ino = 1, .parent = 1, .is_dir = true, .key = "p/", .etag = ""},
};

struct blob {
    struct buf b;
    struct efc_ns *ns;
    uint64_t inos[16];
};

static int put_node(void *arg, const struct efc_ns_record *r)
{
    return efc_ho_put_node(arg, r);
}

static uint64_t count_nodes(struct efc_ns *ns)
{
    struct efc_ns_stats st;
    efc_ns_get_stats(ns, &st);
    return st.nodes;
}

/* A table with files, directories, an open ETag, several lookups, a name that changed type and a
   forgotten node; encoded with HANDLES. */
static void make_blob(struct blob *bl)
{
    struct efc_ns *ns;
    struct efc_ho_header h;
    uint8_t init[256];
    uint64_t next_seq;

    assert_int_equal(efc_ns_new("p/", &ns), 0);
    struct efc_attr a1 = file_attr(11, "\"E1\"", 100), a2 = file_attr(0, "", 0);
    struct efc_attr d = file_attr(0, "", 50);
    d.etag[0] = '\0';
    d.size = 0;
    bl->inos[0] = add(ns, 1, "a.bin", "p/a.bin", false, &a1);
    add(ns, 1, "a.bin", "p/a.bin", false, &a1); /* nlookup 2 */
    bl->inos[1] = add(ns, 1, "dir", "p/dir/", true, &d);
    bl->inos[2] = add(ns, bl->inos[1], "x.txt", "p/dir/x.txt", false, &a2);
    bl->inos[3] = add(ns, 1, "flip", "p/flip", false, &a1);
    bl->inos[4] = add(ns, 1, "flip", "p/flip/", true, &d); /* replaces the file's name */
    bl->inos[5] = add(ns, 1, "gone", "p/gone", false, &a1);
    efc_ns_forget(ns, bl->inos[5], 1);
    for (int i = 0; i < 300; i++) { /* enough to spread over every shard */
        char name[32], key[40];
        snprintf(name, sizeof(name), "f%03d", i);
        snprintf(key, sizeof(key), "p/dir/%s", name);
        struct efc_attr a = file_attr((uint64_t)i, "\"Ex\"", 200 + (uint64_t)i);
        add(ns, bl->inos[1], name, key, false, &a);
    }
    bool same, changed;
    struct efc_attr a3 = file_attr(11, "\"E1\"", 300);
    assert_int_equal(efc_ns_opened(ns, bl->inos[0], &a3, &same, &changed), 0);

    static const uint8_t reply[64] = {7, 0, 0, 0, 38, 0, 0, 0, 0, 0, 2, 0, 0x21, 0, 0, 0};
    memset(&h, 0, sizeof(h));
    make_init(init, &h.init_len);
    h.init = init;
    h.reply = reply;
    h.reply_len = sizeof(reply);
    h.mount_time = 1765274023;
    h.hold_start_ms = 123456;
    h.old_pid = 4242;
    snprintf(h.id, sizeof(h.id), "update-1-abc");
    buf_init(&bl->b, EFC_HO_MAX_BYTES);
    assert_int_equal(efc_ho_begin(&bl->b, &h), 0);
    assert_int_equal(efc_ns_export(ns, put_node, &bl->b, &next_seq), 0);
    for (size_t i = 0; i < sizeof(HANDLES) / sizeof(HANDLES[0]); i++)
        assert_int_equal(efc_ho_put_handle(&bl->b, &HANDLES[i]), 0);
    assert_int_equal(efc_ho_end(&bl->b, next_seq, count_nodes(ns), 3), 0);
    bl->ns = ns;
}

static void free_blob(struct blob *bl)
{
    buf_release(&bl->b);
    efc_ns_free(bl->ns);
}

struct restore {
    struct efc_ns *ns;
    struct efc_ho_header h;
    struct handles hs;
    int nodes;
};

static int r_header(void *arg, const struct efc_ho_header *h)
{
    struct restore *r = arg;
    r->h = *h;
    return 0;
}

static int r_node(void *arg, const struct efc_ns_record *n)
{
    struct restore *r = arg;
    r->nodes++;
    return efc_ns_import(r->ns, n);
}

static int r_handle(void *arg, const struct efc_fh_record *f)
{
    struct restore *r = arg;
    assert_true(r->hs.n < 8);
    int i = r->hs.n++;
    r->hs.r[i] = *f;
    snprintf(r->hs.keys[i], sizeof(r->hs.keys[i]), "%s", f->key);
    snprintf(r->hs.etags[i], sizeof(r->hs.etags[i]), "%s", f->etag);
    r->hs.r[i].key = r->hs.keys[i];
    r->hs.r[i].etag = r->hs.etags[i];
    return 0;
}

static const struct efc_ho_visitor VISIT = {.header = r_header, .node = r_node, .handle = r_handle};

static void assert_same_node(struct efc_ns *a, struct efc_ns *b, uint64_t ino)
{
    struct efc_node_info x, y;
    assert_int_equal(efc_ns_get(a, ino, &x), 0);
    assert_int_equal(efc_ns_get(b, ino, &y), 0);
    assert_int_equal(x.parent, y.parent);
    assert_int_equal(x.is_dir, y.is_dir);
    assert_string_equal(x.key, y.key);
    assert_int_equal(x.keylen, y.keylen);
    assert_int_equal(x.attr.size, y.attr.size);
    assert_int_equal(x.attr.mtime, y.attr.mtime);
    assert_int_equal(x.attr.sc, y.attr.sc);
    assert_int_equal(x.attr.fetched_ms, y.attr.fetched_ms);
    assert_string_equal(x.attr.etag, y.attr.etag);
    assert_int_equal(efc_ns_nlookup(a, ino), efc_ns_nlookup(b, ino));
}

/* ---- tests --------------------------------------------------------------------------------------
 */

static void test_round_trip(void **state)
{
    struct blob bl;
    struct restore r;
    char err[256];

    make_blob(&bl);
    memset(&r, 0, sizeof(r));
    assert_int_equal(efc_ns_new("p/", &r.ns), 0);
    assert_int_equal(efc_ho_parse(bl.b.data, bl.b.len, &VISIT, &r, err, sizeof(err)), 0);
    assert_int_equal(efc_ns_import_done(r.ns, r.h.next_seq), 0);

    assert_int_equal(r.h.mount_time, 1765274023);
    assert_int_equal(r.h.hold_start_ms, 123456);
    assert_int_equal(r.h.old_pid, 4242);
    assert_string_equal(r.h.id, "update-1-abc");
    uint8_t init[256];
    uint32_t ilen;
    make_init(init, &ilen);
    assert_int_equal(r.h.init_len, ilen);
    assert_memory_equal(r.h.init, init, ilen);
    assert_int_equal(r.h.reply_len, 64);
    assert_int_equal(r.h.reply[12], 0x21);

    /* every node, the same; the forgotten one still gone */
    assert_int_equal((uint64_t)r.nodes, count_nodes(bl.ns));
    assert_int_equal(count_nodes(r.ns), count_nodes(bl.ns));
    for (int i = 0; i < 5; i++)
        assert_same_node(bl.ns, r.ns, bl.inos[i]);
    struct efc_node_info n;
    assert_int_equal(efc_ns_get(r.ns, bl.inos[5], &n), -ENOENT);
    /* names lead to the same numbers; the replaced file keeps its number but not its name */
    assert_int_equal(efc_ns_find(r.ns, 1, "a.bin", 5), bl.inos[0]);
    assert_int_equal(efc_ns_find(r.ns, 1, "flip", 4), bl.inos[4]);
    assert_int_equal(efc_ns_find(r.ns, bl.inos[1], "x.txt", 5), bl.inos[2]);
    for (int i = 0; i < 300; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%03d", i);
        uint64_t ino = efc_ns_find(bl.ns, bl.inos[1], name, 4);
        assert_true(ino != 0);
        assert_int_equal(efc_ns_find(r.ns, bl.inos[1], name, 4), ino);
        assert_same_node(bl.ns, r.ns, ino);
    }
    /* the open ETag came along: the same version is still "the one the kernel may cache" */
    bool same = false, changed = true;
    struct efc_attr a = file_attr(11, "\"E1\"", 400);
    assert_int_equal(efc_ns_opened(r.ns, bl.inos[0], &a, &same, &changed), 0);
    assert_true(same);
    assert_false(changed);
    /* lookups and forgets go on from the restored counts; new numbers never reuse old ones */
    assert_false(efc_ns_forget(r.ns, bl.inos[0], 1));
    assert_int_equal(efc_ns_nlookup(r.ns, bl.inos[0]), 1);
    struct efc_attr a4 = file_attr(1, "\"N\"", 500);
    uint64_t fresh = add(r.ns, 1, "new", "p/new", false, &a4);
    for (int i = 0; i < 5; i++)
        assert_true((fresh >> 6) > (bl.inos[i] >> 6));

    /* handles: every field */
    assert_int_equal(r.hs.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r.hs.r[i].num, HANDLES[i].num);
        assert_int_equal(r.hs.r[i].ino, HANDLES[i].ino);
        assert_int_equal(r.hs.r[i].parent, HANDLES[i].parent);
        assert_int_equal(r.hs.r[i].size, HANDLES[i].size);
        assert_int_equal(r.hs.r[i].is_dir, HANDLES[i].is_dir);
        assert_int_equal(r.hs.r[i].stale, HANDLES[i].stale);
        assert_string_equal(r.hs.r[i].key, HANDLES[i].key);
        assert_string_equal(r.hs.r[i].etag, HANDLES[i].etag);
    }
    efc_ns_free(r.ns);
    free_blob(&bl);
}

static void test_empty_table(void **state)
{
    struct efc_ns *ns;
    struct buf b;
    struct efc_ho_header h;
    uint8_t init[256];
    uint64_t next_seq;
    char err[256];

    assert_int_equal(efc_ns_new("", &ns), 0);
    memset(&h, 0, sizeof(h));
    make_init(init, &h.init_len);
    h.init = init;
    buf_init(&b, EFC_HO_MAX_BYTES);
    assert_int_equal(efc_ho_begin(&b, &h), 0);
    assert_int_equal(efc_ns_export(ns, put_node, &b, &next_seq), 0);
    assert_int_equal(efc_ho_end(&b, next_seq, 1, 0), 0);
    struct restore r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(efc_ns_new("", &r.ns), 0);
    assert_int_equal(efc_ho_parse(b.data, b.len, &VISIT, &r, err, sizeof(err)), 0);
    assert_int_equal(r.nodes, 1); /* the root, checked against the new table's */
    assert_string_equal(r.h.id, "");
    assert_int_equal(efc_ns_import_done(r.ns, r.h.next_seq), 0);
    efc_ns_free(r.ns);
    /* a table of another prefix refuses the root */
    memset(&r, 0, sizeof(r));
    assert_int_equal(efc_ns_new("other/", &r.ns), 0);
    assert_int_equal(efc_ho_parse(b.data, b.len, &VISIT, &r, err, sizeof(err)), -EINVAL);
    efc_ns_free(r.ns);
    efc_ns_free(ns);
    buf_release(&b);
}

static void test_truncated_refused(void **state)
{
    struct blob bl;
    char err[256];

    make_blob(&bl);
    for (size_t len = 0; len < bl.b.len; len++) {
        err[0] = '\0';
        int rc = efc_ho_parse(bl.b.data, len, NULL, NULL, err, sizeof(err));
        assert_true(rc == -EINVAL || rc == -EBADMSG);
        assert_true(strncmp(err, "handover blob: ", 15) == 0);
    }
    /* and one byte too many */
    char *more = malloc(bl.b.len + 1);
    memcpy(more, bl.b.data, bl.b.len);
    more[bl.b.len] = 0;
    assert_int_equal(efc_ho_parse(more, bl.b.len + 1, NULL, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "body length"));
    free(more);
    free_blob(&bl);
}

static void test_corrupt_refused(void **state)
{
    struct blob bl;
    char err[256];

    make_blob(&bl);
    uint8_t *p = (uint8_t *)bl.b.data;
    /* any single flipped bit anywhere is refused (the checksum covers the header too) */
    for (size_t i = 0; i < bl.b.len; i += 7) {
        p[i] ^= 0x10;
        err[0] = '\0';
        int rc = efc_ho_parse(p, bl.b.len, NULL, NULL, err, sizeof(err));
        assert_true(rc == -EINVAL || rc == -EBADMSG);
        assert_true(strncmp(err, "handover blob: ", 15) == 0);
        p[i] ^= 0x10;
    }
    p[100] ^= 1;
    assert_int_equal(efc_ho_parse(p, bl.b.len, NULL, NULL, err, sizeof(err)), -EBADMSG);
    assert_string_equal(err, "handover blob: checksum mismatch (corrupt)");
    p[100] ^= 1;
    assert_int_equal(efc_ho_parse(p, bl.b.len, NULL, NULL, err, sizeof(err)), 0);
    free_blob(&bl);
}

/* Writes V (N bytes, little-endian) at OFF and reseals the checksum, so the field checks are
   what refuses the blob. */
static void poke(uint8_t *p, size_t len, size_t off, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[off + (size_t)i] = (uint8_t)(v >> (8 * i));
    uint64_t c = efc_ho_checksum(p, len);
    for (int i = 0; i < 8; i++)
        p[24 + i] = (uint8_t)(c >> (8 * i));
}

static void expect_refused(const char *what, size_t off, uint64_t v, int n, const char *fragment)
{
    struct blob bl;
    char err[256];

    make_blob(&bl);
    poke((uint8_t *)bl.b.data, bl.b.len, off, v, n);
    err[0] = '\0';
    int rc = efc_ho_parse(bl.b.data, bl.b.len, NULL, NULL, err, sizeof(err));
    if (rc != -EINVAL || strstr(err, fragment) == NULL)
        fail_msg("%s: rc %d, err '%s' (wanted '%s')", what, rc, err, fragment);
    free_blob(&bl);
}

static void test_limits(void **state)
{
    struct blob bl;
    make_blob(&bl);
    uint32_t init_len = (uint32_t)(((uint8_t *)bl.b.data)[72] | ((uint8_t *)bl.b.data)[73] << 8);
    uint32_t reply_len = (uint32_t)(((uint8_t *)bl.b.data)[80]);
    assert_int_equal(reply_len, 64);
    size_t id_off = EFC_HO_HEADER_SIZE + init_len + reply_len; /* u16 id length */
    size_t node0 = id_off + 2 + strlen("update-1-abc");
    free_blob(&bl);

    expect_refused("magic", 0, 'X', 1, "bad magic");
    expect_refused("version", 8, 2, 4, "version 2");
    expect_refused("header size", 12, 64, 4, "header size 64");
    expect_refused("body length", 16, 5, 8, "body length");
    expect_refused("node count", 48, EFC_HO_MAX_NODES + 1, 8, "nodes (at most");
    expect_refused("handle count", 56, EFC_HO_MAX_HANDLES + 1, 8, "handles (at most");
    expect_refused("count vs bytes", 48, 1000000, 8, "cannot fit");
    expect_refused("init short", 72, 8, 4, "INIT request of 8 bytes");
    expect_refused("init long", 72, EFC_HO_MAX_INIT + 1, 4, "INIT request of");
    expect_refused("init opcode", EFC_HO_HEADER_SIZE + 4, FUSE_LOOKUP, 4, "not a FUSE_INIT");
    expect_refused("reply long", 80, EFC_HO_MAX_REPLY + 1, 4, "INIT reply of 257 bytes");
    expect_refused("next seq", 40, 0, 8, "next inode sequence is 0");
    expect_refused("spare", 90, 1, 1, "spare header bytes");
    expect_refused("id length", id_off, EFC_HO_MAX_ID + 1, 2, "bad update id");
    expect_refused("id chars", id_off + 2, '/', 1, "bad update id");
    expect_refused("node ino", node0, 0, 8, "inode or parent number 0");
    expect_refused("node key length", node0 + 48, OSS_MAX_KEY_LEN + 1, 2, "key of 1024 bytes");
    expect_refused("node name length", node0 + 50, 300, 2, "name of 300");
    expect_refused("node etag length", node0 + 54, OSS_MAX_ETAG_LEN + 1, 2, "ETag longer");
    expect_refused("node class", node0 + 52, 99, 1, "bad storage class or flags");
    expect_refused("node flags", node0 + 53, 0x80, 1, "bad storage class or flags");
    expect_refused("node spare", node0 + 58, 1, 2, "bad storage class or flags");
}

static void test_records_refused_by_table(void **state)
{
    struct efc_ns *ns;
    struct efc_ns_record r;

    assert_int_equal(efc_ns_new("p/", &ns), 0);
    memset(&r, 0, sizeof(r));
    r.key = "p/a";
    r.keylen = 3;
    r.namelen = 1;
    r.parent = 1;
    r.nlookup = 1;
    r.named = true;
    /* the number's shard must be the one the name hashes to: only one of 64 is right */
    int ok = 0;
    for (uint64_t shard = 0; shard < 64; shard++) {
        r.ino = (5ull << 6) | shard;
        if (efc_ns_import(ns, &r) == 0)
            ok++;
    }
    assert_int_equal(ok, 1);
    /* a duplicate name or number */
    r.ino = efc_ns_find(ns, 1, "a", 1);
    assert_int_equal(r.ino >> 6, 5);
    assert_int_equal(efc_ns_import(ns, &r), -EINVAL); /* the same number again */
    r.ino = (6ull << 6) | (r.ino & 63);
    assert_int_equal(efc_ns_import(ns, &r), -EINVAL); /* same name, another number */
    r.named = false;
    assert_int_equal(efc_ns_import(ns, &r), 0); /* an unnamed (replaced) node may share it */
    /* malformed records */
    struct efc_ns_record bad = r;
    bad.ino = 7ull << 6;
    bad.key = "p/a/b";
    bad.keylen = 5;
    bad.namelen = 3; /* "a/b" */
    assert_int_equal(efc_ns_import(ns, &bad), -EINVAL);
    bad = r;
    bad.ino = 8ull << 6;
    bad.is_dir = true; /* a directory's key ends in '/' */
    assert_int_equal(efc_ns_import(ns, &bad), -EINVAL);
    bad = r;
    bad.ino = 9ull << 6;
    bad.nlookup = 0;
    assert_int_equal(efc_ns_import(ns, &bad), -EINVAL);
    bad = r;
    bad.ino = 10ull << 6;
    bad.keylen = 2; /* disagrees with the string */
    assert_int_equal(efc_ns_import(ns, &bad), -EINVAL);
    /* the next sequence must pass every imported one */
    assert_int_equal(efc_ns_import_done(ns, 6), -EINVAL);
    assert_int_equal(efc_ns_import_done(ns, 7), 0);
    efc_ns_free(ns);
}

/* ---- update requests --------------------------------------------------------------------------
 */

static int parse(const char *json, struct opt_set *cur, struct efc_update_req *req,
                 struct opt_set *out, char *err)
{
    return efc_update_parse(json, strlen(json), cur, req, out, err, 512);
}

static void test_update_requests(void **state)
{
    struct opt_set cur, out;
    struct efc_update_req req;
    char err[512];

    assert_int_equal(opt_init(&cur), 0);
    assert_int_equal(opt_set_kv(&cur, "g_log_Level=warn", err, sizeof(err)), 0);
    assert_int_equal(opt_set_kv(&cur, "g_tier_DadiMemCacheCapacityMB=64", err, sizeof(err)), 0);
    assert_int_equal(opt_set_kv(&cur, "g_tier_DadiIsDistributed=false", err, sizeof(err)), 0);

    /* merge: keeps what was set, changes what is named (with or without g_, typed values) */
    assert_int_equal(parse("{\"version\":1,\"id\":\"u-1\",\"action\":\"update\",\"mode\":\"merge\","
                           "\"options\":{\"g_fuse_AttrTimeoutSec\":\"5\",\"read_AheadKB\":1024,"
                           "\"g_metadata_CacheEnable\":true}}",
                           &cur, &req, &out, err),
                     0);
    assert_string_equal(req.id, "u-1");
    assert_string_equal(req.action, "update");
    assert_false(req.replace);
    assert_int_equal(opt_int(&out, OPT_FUSE_ATTRTIMEOUTSEC), 5);
    assert_int_equal(opt_int(&out, OPT_READ_AHEADKB), 1024);
    assert_true(opt_bool(&out, OPT_METADATA_CACHEENABLE));
    assert_string_equal(opt_str(&out, OPT_LOG_LEVEL), "warn");
    assert_true(out.v[OPT_LOG_LEVEL].set);
    opt_release(&out);

    /* replace: the defaults plus what is named (a rollback); the capacity must stay the same */
    assert_int_equal(
        parse("{\"version\":1,\"id\":\"r-1\",\"action\":\"rollback\",\"mode\":\"replace\","
              "\"options\":{\"g_tier_DadiMemCacheCapacityMB\":64,"
              "\"g_tier_DadiIsDistributed\":false}}",
              &cur, &req, &out, err),
        0);
    assert_true(req.replace);
    assert_string_equal(opt_str(&out, OPT_LOG_LEVEL), "info");
    assert_false(out.v[OPT_LOG_LEVEL].set);
    opt_release(&out);
    assert_int_equal(parse("{\"version\":1,\"id\":\"r-2\",\"mode\":\"replace\",\"options\":{}}",
                           &cur, &req, &out, err),
                     -EINVAL);
    assert_non_null(strstr(err, "g_tier_DadiMemCacheCapacityMB cannot change while mounted"));
    assert_string_equal(req.id, "r-2"); /* known even when refused: the answer names it */

    static const struct {
        const char *json, *fragment;
    } bad[] = {
        {"{\"version\":1,\"id\":\"x\",\"options\":{\"g_nope\":\"1\"}}", "unknown option 'g_nope'"},
        {"{\"version\":1,\"id\":\"x\",\"options\":{\"g_fuse_AttrTimeoutSec\":\"abc\"}}",
         "g_fuse_AttrTimeoutSec"},
        {"{\"version\":1,\"id\":\"x\",\"options\":{\"g_tier_BlockSize\":1000}}",
         "g_tier_BlockSize"},
        {"{\"version\":1,\"id\":\"x\",\"options\":{\"g_tier_DadiDiskCachePath\":\"/c/\"}}",
         "cannot change while mounted"},
        {"{\"version\":1,\"id\":\"x\",\"options\":{\"g_log_Level\":1.5}}", "must be a string"},
        {"{\"version\":1,\"id\":\"x\",\"options\":{\"g_log_Level\":null}}", "must be a string"},
        {"{\"version\":1,\"id\":\"x\",\"options\":[]}", "\"options\" must be an object"},
        {"{\"version\":1,\"id\":\"x\"}", "\"options\" must be an object"},
        {"{\"version\":2,\"id\":\"x\",\"options\":{}}", "\"version\" must be 1"},
        {"{\"version\":1,\"id\":\"a/b\",\"options\":{}}", "\"id\" must be"},
        {"{\"version\":1,\"id\":\"\",\"options\":{}}", "\"id\" must be"},
        {"{\"version\":1,\"id\":\"x\",\"action\":\"drop\",\"options\":{}}", "\"action\""},
        {"{\"version\":1,\"id\":\"x\",\"mode\":\"all\",\"options\":{}}", "\"mode\""},
        {"{\"version\":1,\"id\":\"x\",\"options\":{\"g_log_Level\":\"a\",\"g_log_Level\":\"b\"}}",
         "not valid JSON"},
        {"[1,2]", "not a JSON object"},
        {"{\"version\":1,", "not valid JSON"},
        {"", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = parse(bad[i].json, &cur, &req, &out, err);
        if (rc != -EINVAL || strstr(err, bad[i].fragment) == NULL)
            fail_msg("case %zu: rc %d err '%s' (wanted '%s')", i, rc, err, bad[i].fragment);
    }
    /* size limit */
    size_t big = EFC_UPDATE_MAX_BYTES + 1;
    char *text = malloc(big);
    memset(text, ' ', big);
    assert_int_equal(efc_update_parse(text, big, &cur, &req, &out, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "at most"));
    free(text);
    opt_release(&cur);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_table),
        cmocka_unit_test(test_truncated_refused),
        cmocka_unit_test(test_corrupt_refused),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_records_refused_by_table),
        cmocka_unit_test(test_update_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
