/* tests/unit/cache/test_fill.c - cache_fill, the warm-up's way into the cache: where it stores
 * (disk first, synchronously, else memory), what it counts, single-flight with readers, and
 * that warm-up blocks skip probation so a warm-up does not evict its own earlier blocks.
 */
#include "cache_test.h"

#include <pthread.h>

static uint64_t nblocks(uint64_t size, uint32_t bs)
{
    return (size + bs - 1) / bs;
}

/* Fills every block of the object; returns the bytes fetched. */
static uint64_t fill_all(struct cache *c, const char *key, const char *etag, uint64_t size)
{
    uint32_t bs = cache_block_size(c);
    uint64_t total = 0;
    for (uint64_t i = 0; i < nblocks(size, bs); i++) {
        uint64_t got = 12345;
        assert_int_equal(cache_fill(c, key, etag, size, i, 0, &got), 0);
        uint64_t blen = size - i * bs < bs ? size - i * bs : bs;
        assert_true(got == 0 || got == blen);
        total += got;
    }
    return total;
}

static void test_fill_disk(void **state)
{
    struct env *e = *state;
    struct cache *c = mk(e, 4 * MiB, e->d1, 32 * MiB, 1 << 20);
    assert_int_equal(cache_block_size(c), 1 << 20);
    const uint64_t size = 6 * MiB + 333;
    assert_int_equal(fill_all(c, "w/a", "e1", size), size);
    struct cache_stats st;
    cache_get_stats(c, &st);
    /* On disk when cache_fill returned (no settling), not in memory, and not a tier read. */
    assert_int_equal(st.blocks_disk, 7);
    assert_int_equal(st.blocks_mem, 0);
    assert_int_equal(st.read, 0);
    assert_int_equal(st.read_miss, 0);
    assert_int_equal(st.root_read_source, 7);
    assert_int_equal(st.root_read_source_bytes, size);
    /* Present: not fetched again. */
    assert_int_equal(fill_all(c, "w/a", "e1", size), 0);
    assert_int_equal(fake_fetches(&e->f), 7);
    /* Read back from disk: no fetch. */
    read_ok(c, "w/a", "e1", size, 0, size);
    assert_int_equal(fake_fetches(&e->f), 7);
    /* A block a reader put in memory only (its disk write still queued or dropped) is written
       to disk by the fill, from memory. */
    read_ok(c, "w/b", "e1", 2 * MiB, 0, 2 * MiB);
    uint64_t f0 = fake_fetches(&e->f);
    assert_int_equal(fill_all(c, "w/b", "e1", 2 * MiB), 0);
    assert_int_equal(fake_fetches(&e->f), f0);
    /* A partly cached block: the fill fetches only what is missing. */
    read_ok(c, "w/c", "e1", 2 * MiB, 0, 16 * KiB);
    uint64_t got = 0;
    f0 = fake_fetches(&e->f);
    assert_int_equal(cache_fill(c, "w/c", "e1", 2 * MiB, 0, 0, &got), 0);
    assert_int_equal(got, MiB - 16 * KiB);
    assert_int_equal(fake_fetches(&e->f), f0 + 1);
    read_ok(c, "w/c", "e1", 2 * MiB, 0, MiB);
    assert_int_equal(fake_fetches(&e->f), f0 + 1);
    cache_free(c);

    /* What a fill stored is there after a restart. */
    e->f.fetches = 0;
    c = mk(e, 4 * MiB, e->d1, 32 * MiB, 1 << 20);
    read_ok(c, "w/a", "e1", size, 0, size);
    read_ok(c, "w/b", "e1", 2 * MiB, 0, 2 * MiB);
    read_ok(c, "w/c", "e1", 2 * MiB, 0, MiB);
    assert_int_equal(fake_fetches(&e->f), 0);
    cache_free(c);
}

static void test_fill_survives_kill9(void **state)
{
    struct env *e = *state;
    const uint64_t size = 5 * MiB;
    int fds[2];
    if (fork_reporting_child(e, fds) == 0) {
        /* The child reports each fill that returned (stored on disk, synchronously), then waits
           to be killed: no cache_free, no flush. */
        struct cache *c = mk_or_null(e, 0, e->d1, 32 * MiB, 1 << 20);
        if (c == NULL)
            _exit(2);
        for (uint64_t i = 0; i < 5; i++) {
            if (cache_fill(c, "k9", "e", size, i, 0, NULL) != 0)
                _exit(3);
            report(fds[1], i + 1);
        }
        for (;;)
            pause();
    }
    wait_report(e, fds[0], 5, "fills done");
    kill9(e);
    close(fds[0]);
    e->f.fetches = 0;
    struct cache *c = mk(e, 0, e->d1, 32 * MiB, 1 << 20);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.scan_blocks, 5);
    read_ok(c, "k9", "e", size, 0, size);
    assert_int_equal(fake_fetches(&e->f), 0);
    cache_free(c);
}

static void test_fill_memory_only(void **state)
{
    struct env *e = *state;
    struct cache *c = mk(e, 8 * MiB, NULL, 0, 256 * KiB);
    assert_int_equal(cache_block_size(c), 256 * KiB);
    const uint64_t size = MiB + 5;
    assert_int_equal(fill_all(c, "m", "e", size), size);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.blocks_mem, 5);
    assert_int_equal(st.read, 0);
    assert_int_equal(st.root_read_source, 5);
    assert_int_equal(fill_all(c, "m", "e", size), 0);
    read_ok(c, "m", "e", size, 0, size);
    struct cache_ref r;
    assert_int_equal(cache_ref_get(c, "m", "e", size, 300 * KiB, 4096, 0, &r), 0);
    cache_ref_put(c, &r);
    assert_int_equal(fake_fetches(&e->f), 5);
    cache_free(c);
}

static void test_fill_errors(void **state)
{
    struct env *e = *state;
    struct cache *c = mk(e, 4 * MiB, NULL, 0, 1 << 20);
    uint64_t got = 7;
    assert_int_equal(cache_fill(c, "k", "e", 2 * MiB, 2, 0, &got), -EINVAL); /* past the end */
    assert_int_equal(got, 0);
    assert_int_equal(cache_fill(c, "k", "e", 2 * MiB + 1, 2, 0, NULL), 0); /* a 1-byte block */
    assert_int_equal(cache_fill(c, "k", "e", 0, 0, 0, NULL), -EINVAL);
    assert_int_equal(cache_fill(c, "k", "e", 10, UINT64_MAX, 0, NULL), -EINVAL);
    assert_int_equal(cache_fill(c, NULL, "e", 10, 0, 0, NULL), -EINVAL);
    assert_int_equal(cache_fill(c, "k", NULL, 10, 0, 0, NULL), -EINVAL);
    assert_int_equal(cache_fill(NULL, "k", "e", 10, 0, 0, NULL), -EINVAL);
    /* The source's error comes back and is not cached. */
    __atomic_store_n(&e->f.fail_errno, EACCES, __ATOMIC_RELAXED);
    assert_int_equal(cache_fill(c, "k", "e", 2 * MiB, 0, 0, &got), -EACCES);
    __atomic_store_n(&e->f.fail_errno, 0, __ATOMIC_RELAXED);
    assert_int_equal(cache_fill(c, "k", "e", 2 * MiB, 0, 0, &got), 0);
    assert_int_equal(got, MiB);
    cache_free(c);
    /* No tier at all: nowhere to store, nothing fetched. */
    e->f.fetches = 0;
    c = mk(e, 0, NULL, 0, 1 << 20);
    assert_int_equal(cache_fill(c, "k", "e", 2 * MiB, 0, 0, &got), -ENOSPC);
    assert_int_equal(fake_fetches(&e->f), 0);
    cache_free(c);
}

/* Memory for one block, pinned by a reference: a memory-only fill has nowhere to go. */
static void test_fill_enospc_pinned(void **state)
{
    struct env *e = *state;
    struct cache *c = mk(e, 1 * MiB, NULL, 0, 1 << 20);
    read_ok(c, "p", "e", MiB, 0, 4096);
    struct cache_ref r;
    assert_int_equal(cache_ref_get(c, "p", "e", MiB, 0, 4096, 0, &r), 0);
    uint64_t f0 = fake_fetches(&e->f);
    assert_int_equal(cache_fill(c, "q", "e", MiB, 0, 0, NULL), -ENOSPC);
    assert_int_equal(fake_fetches(&e->f), f0);
    /* A reader of the same block is not failed by it. */
    read_ok(c, "q", "e", MiB, 0, MiB);
    cache_ref_put(c, &r);
    assert_int_equal(cache_fill(c, "q", "e", MiB, 0, 0, NULL), 0);
    cache_free(c);
}

/* A full disk: the fill degrades to memory. */
static void test_fill_disk_full(void **state)
{
    struct env *e = *state;
    mount_small_tmpfs(e);
    struct cache *c = mk(e, 4 * MiB, e->d1, 32 * MiB, 1 << 20);
    const uint64_t size = 12 * MiB;
    assert_int_equal(fill_all(c, "full", "e", size), size);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_true(st.disk_errors > 0);
    assert_true(st.blocks_mem > 0);
    /* The last blocks are still held somewhere. */
    uint64_t f0 = fake_fetches(&e->f);
    read_ok(c, "full", "e", size, size - MiB, MiB);
    assert_int_equal(fake_fetches(&e->f), f0);
    cache_free(c);
    umount_tmpfs(e);
}

struct sf {
    struct cache *c;
    pthread_barrier_t *bar;
    int fill; /* cache_fill instead of cache_read */
    int rc;
};

static void *sf_thread(void *p)
{
    struct sf *a = p;
    pthread_barrier_wait(a->bar);
    if (a->fill) {
        a->rc = cache_fill(a->c, "hot", "e", 4 * MiB, 1, 0, NULL);
    } else {
        uint8_t *buf = malloc(MiB);
        ssize_t n = cache_read(a->c, "hot", "e", 4 * MiB, MiB, MiB, buf);
        a->rc = n == (ssize_t)MiB && fake_check("hot", "e", MiB, buf, MiB) == -1 ? 0 : -1;
        free(buf);
    }
    return NULL;
}

static void test_fill_singleflight(void **state)
{
    struct env *e = *state;
    e->f.latency_us = 100000;
    for (int disk = 0; disk < 2; disk++) {
        e->f.fetches = 0;
        struct cache *c = mk(e, disk ? 0 : 8 * MiB, disk ? e->d1 : NULL, 16 * MiB, 1 << 20);
        pthread_t th[16];
        struct sf a[16];
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, 16);
        for (int i = 0; i < 16; i++) {
            a[i] = (struct sf){c, &bar, i % 2, -99};
            pthread_create(&th[i], NULL, sf_thread, &a[i]);
        }
        for (int i = 0; i < 16; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&bar);
        for (int i = 0; i < 16; i++)
            assert_int_equal(a[i].rc, 0);
        assert_int_equal(fake_fetches(&e->f), 1);
        struct cache_stats st;
        cache_get_stats(c, &st);
        assert_int_equal(st.read, 8); /* the readers, not the fills */
        if (disk) {
            assert_int_equal(st.blocks_disk, 1);
        }
        cache_free(c);
    }
    e->f.latency_us = 0;
}

/* Warm-up blocks skip probation. Memory: 8 slots. A warm-up of 6 blocks, then a reader passes
 * 4 new blocks through once: the reader's blocks evict each other (they are on probation), not
 * the warm-up's. */
static void test_fill_no_probation_memory(void **state)
{
    struct env *e = *state;
    struct cache *c = mk(e, 8 * MiB, NULL, 0, 1 << 20);
    assert_int_equal(fill_all(c, "warm", "e", 6 * MiB), 6 * MiB);
    for (int i = 0; i < 4; i++)
        read_ok(c, "scan", "e", 4 * MiB, (uint64_t)i * MiB, 4096);
    assert_int_equal(fill_all(c, "warm", "e", 6 * MiB), 0);
    cache_free(c);
}

/* Disk: blocks an earlier run left (found at start-up: old, never read since) are colder than a
 * running warm-up, so the warm-up evicts them before its own first blocks. */
static void test_fill_no_probation_disk(void **state)
{
    struct env *e = *state;
    const uint32_t bs = 256 * KiB;
    struct cache *c = mk(e, 0, e->d1, 8 * MiB, bs);
    struct cache_stats st;
    cache_get_stats(c, &st);
    uint64_t nslots = st.disk_capacity / bs;
    assert_true(nslots >= 16);
    uint64_t old = nslots / 2;
    assert_int_equal(fill_all(c, "old", "e", old * bs), old * bs);
    cache_free(c);
    c = mk(e, 0, e->d1, 8 * MiB, bs);
    cache_get_stats(c, &st);
    assert_int_equal(st.scan_blocks, old);
    uint64_t n = nslots - 2; /* together with the old ones, more than the disk holds */
    assert_int_equal(fill_all(c, "new", "e", n * bs), n * bs);
    cache_get_stats(c, &st);
    assert_true(st.evictions_disk > 0);
    assert_int_equal(fill_all(c, "new", "e", n * bs), 0); /* every block still there */
    cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fill_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_survives_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_memory_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_enospc_pinned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_singleflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_no_probation_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_no_probation_disk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
