/* tests/unit/cache/test_source.c - the seam between the cache and its block source (blksrc.h):
 * where the bytes came from decides how a read is counted, reads for peers are neither counted
 * nor sent on to another peer, cache_read_local never fetches, and a block's identity includes
 * the bucket's name space (in memory and on disk).
 */
#include "cache_test.h"

/* A cache over E's fake source in name space NS: memory MEM, disk DISK bytes in d1 (0: none). */
static struct cache *mk_ns(struct env *e, const char *ns, uint64_t mem, uint64_t disk)
{
    struct cache_config cfg = {.mem_bytes = mem,
                               .disk_dirs = disk ? e->d1 : NULL,
                               .disk_bytes_per_dir = disk,
                               .block_size = 1 << 20,
                               .page_size = 16 * KiB,
                               .io_threads = 2,
                               .ns = ns};
    struct cache *c = NULL;
    char err[256];
    e->f.block_size = 1 << 20;
    int rc = cache_new(&cfg, fake_source(&e->f, 1), &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("cache_new: %s", err);
    return c;
}

static void assert_adds_up(struct cache *c)
{
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.read, st.read_hit + st.read_miss + st.direct_read);
    assert_int_equal(st.read_bytes, st.read_hit_bytes + st.read_miss_bytes + st.direct_read_bytes);
}

/* Each origin of bytes is counted as the guide's table says. */
static void test_counted_by_origin(void **state)
{
    struct env *e = *state;
    struct cache *c = mk_ns(e, "b.h", 16 * MiB, 0);
    struct cache_stats st;
    const struct {
        enum blk_from from;
        uint64_t hit, miss, direct, root;
    } cases[] = {
        {BLK_FROM_ORIGIN, 0, 1, 0, 1},      /* this node fetched: a miss, its own origin fetch */
        {BLK_FROM_PEER, 1, 0, 0, 0},        /* the owner held it: a hit of the distributed cache */
        {BLK_FROM_PEER_ORIGIN, 0, 1, 0, 0}, /* the owner fetched it: a miss, not ours to count */
        {BLK_FROM_FALLBACK, 0, 0, 1, 0},    /* the owner failed: a direct read */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%zu", i);
        cache_clear_stats(c);
        e->f.from = cases[i].from;
        read_ok(c, key, "e", 3 * MiB, 0, 100 * KiB);
        cache_get_stats(c, &st);
        assert_int_equal(st.read, 1);
        assert_int_equal(st.read_hit, cases[i].hit);
        assert_int_equal(st.read_miss, cases[i].miss);
        assert_int_equal(st.direct_read, cases[i].direct);
        assert_int_equal(st.root_read_source, cases[i].root);
        assert_int_equal(st.root_read_source_bytes, cases[i].root * 112 * KiB); /* 7 pages */
        assert_adds_up(c);
        /* and again: now from this node's memory, a hit whatever the source was */
        read_ok(c, key, "e", 3 * MiB, 0, 100 * KiB);
        cache_get_stats(c, &st);
        assert_int_equal(st.read_hit, cases[i].hit + 1);
        assert_adds_up(c);
    }
    /* A read across blocks of several origins counts once, as the worst of them. */
    cache_clear_stats(c);
    e->f.from = BLK_FROM_FALLBACK;
    read_ok(c, "mixed", "e", 3 * MiB, 0, 10); /* block 0: direct */
    e->f.from = BLK_FROM_PEER;
    read_ok(c, "mixed", "e", 3 * MiB, 0, 2 * MiB + 10); /* 0 held, 1 peer, 2 peer */
    cache_get_stats(c, &st);
    assert_int_equal(st.read, 2);
    assert_int_equal(st.direct_read, 1);
    assert_int_equal(st.read_hit, 1);
    assert_int_equal(st.read_hit_bytes, 2 * MiB + 10);
    assert_adds_up(c);
    /* A prefetch from a peer is no origin fetch of ours either. */
    e->f.from = BLK_FROM_PEER;
    assert_int_equal(cache_prefetch(c, "pf", "e", 4 * MiB, 0, 4 * MiB, 0), 0);
    uint8_t *buf = malloc(4 * MiB);
    double deadline = now_sec() + 60;
    while (cache_read_local(c, "pf", "e", 4 * MiB, 0, 4 * MiB, buf) != (ssize_t)(4 * MiB)) {
        if (now_sec() > deadline)
            fail_msg("the prefetch of 4 blocks did not land in 60 s");
        usleep(1000);
    }
    assert_int_equal(fake_check("pf", "e", 0, buf, 4 * MiB), -1);
    free(buf);
    cache_get_stats(c, &st);
    assert_int_equal(st.root_read_source, 0);
    assert_int_equal(st.root_read_source_bytes, 0);
    assert_adds_up(c);
    cache_free(c);
}

/* A read for a peer is not a read of this node, and its miss is fetched with BLKREQ_LOCAL; this
 * node's own reads never carry it. */
static void test_peer_reads(void **state)
{
    struct env *e = *state;
    struct cache *c = mk_ns(e, "b.h", 16 * MiB, 0);
    struct cache_stats st;
    uint8_t *buf = malloc(MiB);
    int missed = 0;

    read_ok(c, "own", "e", 2 * MiB, 0, MiB);
    assert_int_equal(__atomic_load_n(&e->f.flags_seen, __ATOMIC_RELAXED), 0);
    assert_int_equal(cache_read_ex(c, "peer", "e", 2 * MiB, 0, MiB, buf, CACHE_PEER, &missed),
                     (ssize_t)MiB);
    assert_int_equal(fake_check("peer", "e", 0, buf, MiB), -1);
    assert_int_equal(missed, 1);
    assert_int_equal(__atomic_load_n(&e->f.flags_seen, __ATOMIC_RELAXED), BLKREQ_LOCAL);
    cache_get_stats(c, &st);
    assert_int_equal(st.read, 1);             /* "own" only */
    assert_int_equal(st.root_read_source, 2); /* both fetched from the origin here */
    /* held now: no miss */
    assert_int_equal(cache_read_ex(c, "peer", "e", 2 * MiB, 0, MiB, buf, CACHE_PEER, &missed),
                     (ssize_t)MiB);
    assert_int_equal(missed, 0);
    /* a zero-copy pin for a peer is not counted either */
    struct cache_ref r;
    assert_int_equal(cache_ref_get(c, "peer", "e", 2 * MiB, 0, 4096, CACHE_PEER, &r), 0);
    cache_ref_put(c, &r);
    cache_get_stats(c, &st);
    assert_int_equal(st.read, 1);
    free(buf);
    cache_free(c);
}

/* cache_read_local: memory and disk only, never a fetch, never counted. */
static void test_read_local(void **state)
{
    struct env *e = *state;
    struct cache *c = mk_ns(e, "b.h", 4 * MiB, 64 * MiB);
    uint8_t *buf = malloc(MiB);
    struct cache_stats st;

    assert_int_equal(cache_read_local(c, "x", "e", 2 * MiB, 0, 4096, buf), -ENOENT);
    assert_int_equal(fake_fetches(&e->f), 0);
    read_ok(c, "x", "e", 2 * MiB, 0, 64 * KiB); /* pages 0-3 of block 0 */
    uint64_t f0 = fake_fetches(&e->f);
    assert_int_equal(cache_read_local(c, "x", "e", 2 * MiB, 16 * KiB, 32 * KiB, buf), 32 * KiB);
    assert_int_equal(fake_check("x", "e", 16 * KiB, buf, 32 * KiB), -1);
    /* a page not held: nothing, and no fetch of it */
    assert_int_equal(cache_read_local(c, "x", "e", 2 * MiB, 0, 128 * KiB, buf), -ENOENT);
    assert_int_equal(fake_fetches(&e->f), f0);

    /* From disk, once memory has let it go: fill 2 MiB to disk, then evict memory with more. */
    assert_int_equal(cache_fill(c, "d", "e", 2 * MiB, 0, 0, NULL), 0);
    for (int i = 0; i < 8; i++) {
        char key[16];
        snprintf(key, sizeof(key), "evict%d", i);
        read_ok(c, key, "e", MiB, 0, MiB);
    }
    f0 = fake_fetches(&e->f);
    assert_int_equal(cache_read_local(c, "d", "e", 2 * MiB, 0, MiB, buf), (ssize_t)MiB);
    assert_int_equal(fake_check("d", "e", 0, buf, MiB), -1);
    assert_int_equal(fake_fetches(&e->f), f0);
    cache_get_stats(c, &st);
    assert_int_equal(st.read, 9); /* the reads above, not the local ones */
    free(buf);
    cache_free(c);
}

/* Two buckets never share a block: the identity includes the name space, and a disk directory
 * written for another one starts empty. */
static void test_name_space(void **state)
{
    struct env *e = *state;
    uint64_t a[2], b[2], a2[2];
    struct cache *c = mk_ns(e, "bucket1.oss-cn-hangzhou.aliyuncs.com", 8 * MiB, 64 * MiB);
    struct cache *c2 = NULL;
    cache_block_id("bucket1.oss-cn-hangzhou.aliyuncs.com", "k", "\"e\"", 3, a);
    cache_block_id("bucket1.oss-cn-hangzhou.aliyuncs.com", "k", "\"e\"", 4, a2);
    assert_false(a[0] == a2[0] && a[1] == a2[1]);
    read_ok(c, "k", "e", 2 * MiB, 0, 2 * MiB);
    cache_free(c); /* flushed to disk */

    /* the same name space finds the blocks again */
    c = mk_ns(e, "bucket1.oss-cn-hangzhou.aliyuncs.com", 8 * MiB, 64 * MiB);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.scan_blocks, 2);
    cache_free(c);

    /* another does not, and cannot be fooled into it */
    c2 = mk_ns(e, "bucket2.oss-cn-hangzhou.aliyuncs.com", 8 * MiB, 64 * MiB);
    cache_block_id("bucket2.oss-cn-hangzhou.aliyuncs.com", "k", "\"e\"", 3, b);
    assert_false(a[0] == b[0] && a[1] == b[1]);
    cache_get_stats(c2, &st);
    assert_int_equal(st.scan_blocks, 0);
    uint64_t f0 = fake_fetches(&e->f);
    read_ok(c2, "k", "e", 2 * MiB, 0, 2 * MiB);
    assert_true(fake_fetches(&e->f) > f0);
    cache_free(c2);
}

/* The source must agree with the cache on the block size. */
static void test_source_block_size(void **state)
{
    struct env *e = *state;
    struct cache_config cfg = {.mem_bytes = 8 * MiB, .block_size = 1 << 20};
    struct cache *c = NULL;
    char err[256];
    e->f.block_size = 2 << 20;
    assert_int_equal(cache_new(&cfg, fake_source(&e->f, 1), &c, err, sizeof(err)), -EINVAL);
    assert_null(c);
    assert_non_null(strstr(err, "block size"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counted_by_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_block_size, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
