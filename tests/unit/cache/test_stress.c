/* tests/unit/cache/test_stress.c - many threads hammering one cache: random reads over a key
 * space larger than both tiers (hits, misses, evictions, demotions, disk hits), prefetch runs,
 * warm-up fills, zero-copy references held across other threads' evictions, counters read and
 * cleared, occasional ETag changes and source failures; every byte read is verified.
 *
 * Bounded: EFC_STRESS_SECONDS (default 8) of wall time, 16 threads.
 *
 * scripts/test.sh also runs it under ThreadSanitizer (cmake -DEFC_TSAN=ON, build/tsan,
 * TSAN_OPTIONS=halt_on_error=1 ctest -R unit/cache).
 */
#include "fake_source.h"

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define KiB      1024ull
#define MiB      (1024ull * 1024ull)
#define NTHREADS 16
#define NOBJ     48

struct stress {
    struct cache *c;
    struct fake f;
    double deadline;
    uint64_t reads, bytes, errors, wrong; /* atomic */
    uint64_t fills, refs, clears;         /* atomic */
    unsigned etag_gen[NOBJ];              /* atomic */
};

static uint64_t obj_size(int o)
{
    /* 0 to ~3 MiB, some exact multiples of the block size, some tiny. */
    static const uint64_t sizes[] = {1, 4095, 256 * KiB, 700 * KiB + 3, MiB, 3 * MiB - 1};
    return sizes[o % 6] + (uint64_t)(o / 6) * 1000;
}

static void *worker(void *p)
{
    struct stress *s = p;
    uint8_t *buf = malloc(2 * MiB);
    fake_rng ^= (uint64_t)(uintptr_t)&buf * 2654435761u;
    cache_clear_stats(s->c); /* at least once per thread, racing the others' counting */
    __atomic_fetch_add(&s->clears, 1, __ATOMIC_RELAXED);
    while (now_sec() < s->deadline) {
        for (int it = 0; it < 64; it++) {
            /* Skewed: a hot quarter of the objects gets most reads. */
            int o = (int)(fake_rand() % 4 == 0 ? fake_rand() % NOBJ : fake_rand() % (NOBJ / 4));
            char key[32], etag[32];
            snprintf(key, sizeof(key), "dir/obj-%d", o);
            unsigned gen = __atomic_load_n(&s->etag_gen[o], __ATOMIC_RELAXED);
            snprintf(etag, sizeof(etag), "\"etag-%u\"", gen);
            uint64_t size = obj_size(o);
            uint64_t r = fake_rand() % 100;
            if (r == 0) {
                __atomic_fetch_add(&s->etag_gen[o], 1, __ATOMIC_RELAXED);
                continue;
            }
            if (r < 5) {
                (void)cache_prefetch(s->c, key, etag, size, 0, size, 0);
                continue;
            }
            uint32_t bs = cache_block_size(s->c);
            if (r < 8) {
                /* A warm-up fill of one block: stored, or a source failure, or (memory full of
                   pinned blocks) no room; never anything else. */
                uint64_t idx = fake_rand() % ((size + bs - 1) / bs), got = 0;
                int rc = cache_fill(s->c, key, etag, size, idx, 0, &got);
                if (rc != 0 && rc != -EIO && rc != -ENOSPC) {
                    fprintf(stderr, "cache_fill %s %s block %llu: %d\n", key, etag,
                            (unsigned long long)idx, rc);
                    __atomic_fetch_add(&s->wrong, 1, __ATOMIC_RELAXED);
                }
                __atomic_fetch_add(&s->fills, 1, __ATOMIC_RELAXED);
                continue;
            }
            if (r < 14) {
                /* A zero-copy reference: held (and checked twice) while other threads evict. */
                uint64_t off = fake_rand() % size;
                size_t len = (size_t)(1 + fake_rand() % (256 * KiB));
                struct cache_ref ref;
                int rc = cache_ref_get(s->c, key, etag, size, off, len, 0, &ref);
                if (rc == 0) {
                    size_t inblk = bs - (size_t)(off % bs);
                    size_t want = len < inblk ? len : inblk;
                    if (want > size - off)
                        want = (size_t)(size - off);
                    if (ref.len != want || fake_check(key, etag, off, ref.data, ref.len) != -1)
                        __atomic_fetch_add(&s->wrong, 1, __ATOMIC_RELAXED);
                    sched_yield();
                    if (fake_check(key, etag, off, ref.data, ref.len) != -1)
                        __atomic_fetch_add(&s->wrong, 1, __ATOMIC_RELAXED);
                    cache_ref_put(s->c, &ref);
                    __atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
                } else if (rc != -ENOENT) {
                    __atomic_fetch_add(&s->wrong, 1, __ATOMIC_RELAXED);
                }
                continue;
            }
            if (r == 14) {
                struct cache_stats st;
                cache_get_stats(s->c, &st);
                if (fake_rand() % 8 == 0) {
                    cache_clear_stats(s->c);
                    __atomic_fetch_add(&s->clears, 1, __ATOMIC_RELAXED);
                }
                continue;
            }
            uint64_t off = fake_rand() % (size + 100);
            size_t len = r < 30 ? (size_t)(1 + fake_rand() % (2 * MiB))
                                : (size_t)(1 + fake_rand() % (64 * KiB));
            ssize_t n = cache_read(s->c, key, etag, size, off, len, buf);
            __atomic_fetch_add(&s->reads, 1, __ATOMIC_RELAXED);
            if (n < 0) {
                if (n != -EIO)
                    __atomic_fetch_add(&s->wrong, 1, __ATOMIC_RELAXED);
                __atomic_fetch_add(&s->errors, 1, __ATOMIC_RELAXED);
                continue;
            }
            size_t want = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len);
            if ((size_t)n != want || fake_check(key, etag, off, buf, want) != -1) {
                fprintf(stderr, "wrong bytes: %s %s off %llu len %zu got %zd\n", key, etag,
                        (unsigned long long)off, len, n);
                __atomic_fetch_add(&s->wrong, 1, __ATOMIC_RELAXED);
            }
            __atomic_fetch_add(&s->bytes, (uint64_t)n, __ATOMIC_RELAXED);
        }
    }
    free(buf);
    return NULL;
}

static void run(uint32_t bs, uint64_t mem, int disk, double seconds)
{
    struct stress *s = calloc(1, sizeof(*s));
    char dir[64] = "/tmp/efc-cache-stress-XXXXXX", dirs[200];
    assert_non_null(mkdtemp(dir));
    snprintf(dirs, sizeof(dirs), "%s/a/:%s/b/", dir, dir);
    char a[100], b[100];
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    mkdir(a, 0700);
    mkdir(b, 0700);
    s->f.block_size = bs;
    s->f.fail_per_mille = 2;
    struct cache_config cfg = {.mem_bytes = mem,
                               .disk_dirs = disk ? dirs : NULL,
                               .disk_bytes_per_dir = 12 * MiB,
                               .block_size = bs,
                               .page_size = 16 * KiB,
                               .io_threads = 3};
    /* Half the configurations fetch prefetch runs through fetch_range, half into one buffer. */
    struct blksrc *src = fake_source(&s->f, bs >= (1u << 20));
    char err[256];
    assert_int_equal(cache_new(&cfg, src, &s->c, err, sizeof(err)), 0);
    s->deadline = now_sec() + seconds;
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, worker, s);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    struct cache_stats st;
    cache_get_stats(s->c, &st);
    print_message("bs %u mem %llu disk %d: %llu fills, %llu refs, %llu clears\n", bs,
                  (unsigned long long)mem, disk, (unsigned long long)s->fills,
                  (unsigned long long)s->refs, (unsigned long long)s->clears);
    print_message("bs %u mem %llu disk %d: %llu reads, %.1f MiB, %llu source errors seen; "
                  "fetches %llu, evictions mem %llu disk %llu, disk writes %llu, corrupt %llu, "
                  "disk errors %llu, waits %llu, prefetch %llu/%llu dropped\n",
                  bs, (unsigned long long)mem, disk, (unsigned long long)s->reads,
                  (double)s->bytes / MiB, (unsigned long long)s->errors,
                  (unsigned long long)st.source_fetches, (unsigned long long)st.evictions_mem,
                  (unsigned long long)st.evictions_disk, (unsigned long long)st.disk_writes,
                  (unsigned long long)st.corrupt_dropped, (unsigned long long)st.disk_errors,
                  (unsigned long long)st.singleflight_waits, (unsigned long long)st.prefetch_queued,
                  (unsigned long long)st.prefetch_dropped);
    assert_int_equal(s->wrong, 0);
    assert_true(st.mem_used <= mem);
    assert_int_equal(st.corrupt_dropped, 0);
    assert_int_equal(st.disk_errors, 0);
    assert_true(s->fills > 0);
    assert_true(s->clears > 0);
    if (mem >= 4ull * bs)
        assert_true(s->refs > 0);
    cache_free(s->c);
    rm_rf(dir);
    free(s);
}

static double seconds(void)
{
    const char *e = getenv("EFC_STRESS_SECONDS");
    double v = e ? atof(e) : 8;
    return v > 0 && v <= 60 ? v : 8;
}

static void test_stress_mem_disk(void **state)
{
    (void)state;
    run(256 * KiB, 6 * MiB, 1, seconds() / 3);
}

static void test_stress_mem_only(void **state)
{
    (void)state;
    /* No disk: fills go to memory, where references pin slots others want. */
    run(1 << 20, 8 * MiB, 0, seconds() / 4);
}

static void test_stress_small_mem(void **state)
{
    (void)state;
    /* Memory for two blocks: slots are fought over, fills fall back to scratch buffers. */
    run(1 << 20, 2 * MiB, 1, seconds() / 6);
}

static void test_stress_disk_only(void **state)
{
    (void)state;
    run(64 * KiB, 0, 1, seconds() / 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_mem_disk),
        cmocka_unit_test(test_stress_mem_only),
        cmocka_unit_test(test_stress_small_mem),
        cmocka_unit_test(test_stress_disk_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
