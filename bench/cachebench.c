/* bench/cachebench.c (efc-cachebench) - a small in-process benchmark of cache/, not a test:
 * memory-hit and disk-hit throughput and mean latency for 4 KiB and 1 MiB reads, on one and two
 * threads, the start-up scan time of a directory holding 10,000 blocks (warm, and with the
 * file dropped from the page cache), and what the index costs for 1 GiB of memory and 100 GiB
 * of disk (a sparse slot file) at 1 MiB and at the smallest block size. It prints its numbers;
 * each measurement runs ~0.4 s.
 */
#include "tests/unit/cache/fake_source.h"

#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>

#include "cache/cache_i.h"

/* Setup steps must work; a failure is a bug in the bench or the cache, not a slow run. */
#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "efc-cachebench: %s:%d: check failed: %s\n", __FILE__, __LINE__, #x);  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define KiB  1024ull
#define MiB  (1024ull * 1024ull)
#define SIZE (32 * MiB)

struct bench {
    struct cache *c;
    size_t len;
    double secs;
    uint64_t ops;
    int tid;
};

static void *bench_thread(void *p)
{
    struct bench *b = p;
    uint8_t *buf = malloc(b->len);
    char key[16];
    snprintf(key, sizeof(key), "bench%d", b->tid);
    fake_rng ^= (uint64_t)(b->tid + 1) * 0x9E3779B97F4A7C15ull;
    double t0 = now_sec(), t;
    b->ops = 0;
    do {
        for (int i = 0; i < 256; i++) {
            uint64_t off = (fake_rand() % (SIZE / b->len)) * b->len;
            if (cache_read(b->c, key, "e", SIZE, off, b->len, buf) != (ssize_t)b->len)
                abort();
            b->ops++;
        }
        t = now_sec() - t0;
    } while (t < 0.4);
    b->secs = t;
    free(buf);
    return NULL;
}

static void measure(struct cache *c, const char *what, size_t len, int nthreads)
{
    struct bench b[2];
    pthread_t th[2];
    for (int i = 0; i < nthreads; i++) {
        b[i] = (struct bench){c, len, 0, 0, i};
        pthread_create(&th[i], NULL, bench_thread, &b[i]);
    }
    uint64_t ops = 0;
    double secs = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        ops += b[i].ops;
        secs += b[i].secs;
    }
    secs /= nthreads;
    printf("%-9s %4zu KiB x %d thread(s): %9.0f reads/s %8.1f MiB/s  mean %7.2f us\n", what,
           len / 1024, nthreads, (double)ops / secs, (double)ops * (double)len / secs / MiB,
           secs * nthreads / (double)ops * 1e6);
}

static void warm(struct cache *c, int nthreads)
{
    uint8_t *buf = malloc(MiB);
    for (int t = 0; t < nthreads; t++) {
        char key[16];
        snprintf(key, sizeof(key), "bench%d", t);
        for (uint64_t off = 0; off < SIZE; off += MiB)
            CHECK(cache_read(c, key, "e", SIZE, off, MiB, buf) == MiB);
    }
    free(buf);
}

static void bench_hits(void)
{
    struct fake f = {.block_size = 1 << 20};
    struct blksrc *src = fake_source(&f, 1);
    char err[256], dir[64] = "/tmp/efc-cache-bench-XXXXXX";
    CHECK((mkdtemp(dir)) != NULL);
    struct cache *c;

    struct cache_config mem = {.mem_bytes = 2 * SIZE + 8 * MiB, .block_size = 1 << 20};
    CHECK(cache_new(&mem, src, &c, err, sizeof(err)) == 0);
    warm(c, 2);
    uint64_t f0 = fake_fetches(&f);
    measure(c, "mem hit", 4 * KiB, 1);
    measure(c, "mem hit", MiB, 1);
    measure(c, "mem hit", 4 * KiB, 2);
    measure(c, "mem hit", MiB, 2);
    CHECK((fake_fetches(&f)) == (f0));
    cache_free(c);

    /* Disk only (the file in the page cache): io_uring reads plus a CRC64 per 16 KiB page. */
    struct cache_config disk = {
        .disk_dirs = dir, .disk_bytes_per_dir = 2 * SIZE + 8 * MiB, .block_size = 1 << 20};
    CHECK(cache_new(&disk, src, &c, err, sizeof(err)) == 0);
    warm(c, 2);
    cache_free(c); /* flushes */
    CHECK(cache_new(&disk, src, &c, err, sizeof(err)) == 0);
    f0 = fake_fetches(&f);
    measure(c, "disk hit", 4 * KiB, 1);
    measure(c, "disk hit", MiB, 1);
    measure(c, "disk hit", 4 * KiB, 2);
    measure(c, "disk hit", MiB, 2);
    CHECK((fake_fetches(&f)) == (f0));
    cache_free(c);
    rm_rf(dir);
}

static void no_evict(void *arg, uint32_t region, uint32_t off, const uint64_t id[2])
{
    (void)arg;
    (void)region;
    (void)off;
    (void)id;
    abort(); /* the file is sized to hold every item */
}

static void bench_scan(void)
{
    /* 10,000 items of one 16 KiB page (their data is not needed to measure the scan, but the
       region log writes it: 165 MiB). */
    const uint32_t nblocks = 10000, bs = 1 << 20, ps = 16 << 10;
    char dir[64] = "/tmp/efc-cache-bench-XXXXXX", err[256];
    CHECK((mkdtemp(dir)) != NULL);
    uint64_t cap = (uint64_t)nblocks * (ps + 1024) * 9 / 8 + 64 * MiB;
    struct cdisk *d;
    CHECK(cdisk_open(dir, cap, bs, ps, "", &d, err, sizeof(err)) == 0);
    CHECK(cdisk_items_fit(d, ps) >= nblocks);
    uint8_t *data = calloc(1, ps);
    uint64_t valid[1] = {1}, crc[64] = {0};
    for (uint32_t i = 0; i < nblocks; i++) {
        struct citem_hdr h = {.id = {i * 7919ull + 1, i}, .blen = bs, .valid = valid, .crc = crc};
        uint32_t r, off;
        CHECK(cdisk_append(d, &h, data, no_evict, NULL, &r, &off) == 0);
        cdisk_append_done(d, r);
    }
    free(data);
    cdisk_close(d);
    struct fake f = {.block_size = bs};
    struct blksrc *src = fake_source(&f, 1);
    struct cache_config cfg = {.disk_dirs = dir, .disk_bytes_per_dir = cap, .block_size = bs};
    struct cache *c;
    struct cache_stats st;
    CHECK(cache_new(&cfg, src, &c, err, sizeof(err)) == 0);
    cache_get_stats(c, &st);
    CHECK((st.scan_blocks) == (nblocks));
    printf("scan of %u items (page cache warm): %.1f ms\n", nblocks, st.scan_usec / 1e3);
    cache_free(c);
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, CDISK_FILE_NAME);
    int fd = open(p, O_RDONLY);
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    CHECK(cache_new(&cfg, src, &c, err, sizeof(err)) == 0);
    cache_get_stats(c, &st);
    CHECK((st.scan_blocks) == (nblocks));
    printf("scan of %u items (file dropped from the page cache): %.1f ms\n", nblocks,
           st.scan_usec / 1e3);
    cache_free(c);
    rm_rf(dir);
}

static void bench_index(void)
{
    char dir[64] = "/tmp/efc-cache-bench-XXXXXX", err[256];
    CHECK((mkdtemp(dir)) != NULL);
    const uint32_t sizes[] = {1u << 20, CACHE_MIN_BLOCK};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct fake f = {.block_size = sizes[i]};
        struct blksrc *src = fake_source(&f, 1);
        struct cache_config cfg = {.mem_bytes = 1024 * MiB,
                                   .disk_dirs = dir,
                                   .disk_bytes_per_dir = 100 * 1024 * MiB,
                                   .block_size = sizes[i]};
        struct cache *c;
        struct cache_stats st;
        CHECK(cache_new(&cfg, src, &c, err, sizeof(err)) == 0);
        cache_get_stats(c, &st);
        double cap = (double)(st.mem_capacity + st.disk_capacity);
        printf("index, 1 GiB memory + 100 GiB disk, %4u KiB blocks: %llu bytes (%.1f MiB), "
               "%.0f bytes per GiB, %.4f%% of the capacity\n",
               sizes[i] / 1024, (unsigned long long)st.index_bytes, (double)st.index_bytes / MiB,
               (double)st.index_bytes / (cap / (1024.0 * MiB)),
               100.0 * (double)st.index_bytes / cap);
        cache_free(c);
        rm_rf(dir);
        CHECK(mkdir(dir, 0700) == 0);
    }
    rm_rf(dir);
}

int main(void)
{
    bench_index();
    bench_hits();
    bench_scan();
    return 0;
}
