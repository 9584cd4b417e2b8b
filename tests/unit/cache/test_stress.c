/* tests/unit/cache/test_stress.c - many threads hammering one cache: random reads over a key
 * space larger than both tiers (hits, misses, evictions, demotions, disk hits), prefetches,
 * occasional ETag changes and source failures; every byte read is verified.
 *
 * Bounded: EFC_STRESS_SECONDS (default 8) of wall time, 16 threads.
 *
 * Under ThreadSanitizer (built by hand, the tree's CMake knows only ASan+UBSan):
 *   cd /work/main && mkdir -p build/tsan && gcc -std=gnu11 -O1 -g -fsanitize=thread -I. \
 *     -DEFC_SOURCE_DIR='"."' -DEFC_OSSEMU_DIR='"."' tests/unit/cache/test_stress.c \
 *     cache/cache.c cache/disk.c cache/s3fifo.c util/log.c util/crc64.c \
 *     -o build/tsan/test_stress $(pkg-config --cflags --libs liburing libxxhash libisal cmocka) \
 *     -lpthread && EFC_STRESS_SECONDS=8 build/tsan/test_stress
 */
#include "fake_source.h"

#include <pthread.h>
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
                (void)cache_prefetch(s->c, key, etag, size, 0, size);
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
    struct cache_source src = {fake_fetch, &s->f};
    char err[256];
    assert_int_equal(cache_new(&cfg, &src, &s->c, err, sizeof(err)), 0);
    s->deadline = now_sec() + seconds;
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, worker, s);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    struct cache_stats st;
    cache_get_stats(s->c, &st);
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
    assert_true(st.read_hit > 0);
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
    run(256 * KiB, 6 * MiB, 1, seconds() / 2);
}

static void test_stress_small_mem(void **state)
{
    (void)state;
    /* Memory for two blocks: slots are fought over, fills fall back to scratch buffers. */
    run(1 << 20, 2 * MiB, 1, seconds() / 4);
}

static void test_stress_disk_only(void **state)
{
    (void)state;
    run(64 * KiB, 0, 1, seconds() / 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_mem_disk),
        cmocka_unit_test(test_stress_small_mem),
        cmocka_unit_test(test_stress_disk_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
