/* bench/cachebench.c (efc-cachebench) - a small in-process benchmark of cache/, not a test:
 * memory-hit and disk-hit throughput and mean latency for 4 KiB and 1 MiB reads, on one and two
 * threads, the start-up scan time of a directory holding 10,000 items (warm, and with the file
 * dropped from the page cache), what the index costs full for 1 GiB of memory and 100 GiB of
 * disk (a sparse cache file) at 1 MiB and at the smallest block size, and for objects of 16 KiB:
 * how many a 10 GiB disk tier holds, the index per object (computed, and measured on a fill of
 * 20,000), disk hits of whole objects; and how many 16 KiB objects a 2 GiB memory tier holds,
 * with memory hits of them. It prints its numbers; each measurement runs ~0.4 s.
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

static int no_evict(void *arg, uint32_t region, uint32_t off, const struct citem_hdr *h)
{
    (void)arg;
    (void)region;
    (void)off;
    (void)h;
    abort(); /* the file is sized to hold every item */
}

static const struct cdisk_owner no_owner = {no_evict, NULL, NULL};

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
        CHECK(cdisk_append(d, &h, data, &no_owner, &r, &off) == 0);
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
        /* The index grows with the blocks held: its cost when both tiers are full of blocks. */
        uint64_t full =
            cache_index_bytes_for(c, st.mem_capacity / sizes[i], cache_disk_items_fit(c, sizes[i]));
        printf("index full, 1 GiB memory + 100 GiB disk, %4u KiB blocks: %llu bytes (%.1f MiB), "
               "%.0f bytes per GiB, %.4f%% of the capacity\n",
               sizes[i] / 1024, (unsigned long long)full, (double)full / MiB,
               (double)full / (cap / (1024.0 * MiB)), 100.0 * (double)full / cap);
        cache_free(c);
        rm_rf(dir);
        CHECK(mkdir(dir, 0700) == 0);
    }
    rm_rf(dir);
}

/* Objects of 16 KiB: how many a 10 GiB disk tier holds and what the index costs full of them
 * (computed for the sparse file), then a real fill of 20,000 into a 1 GiB tier: the index's
 * growth per object, and disk hits of whole objects. */
static void bench_small(void)
{
    const uint64_t obj = 16 * KiB;
    const unsigned nobj = 20000;
    char dir[64] = "/tmp/efc-cache-bench-XXXXXX", err[256];
    CHECK((mkdtemp(dir)) != NULL);
    struct fake f = {.block_size = 1 << 20};
    struct blksrc *src = fake_source(&f, 1);
    struct cache_config cfg = {
        .disk_dirs = dir, .disk_bytes_per_dir = 10 * 1024 * MiB, .block_size = 1 << 20};
    struct cache *c;
    struct cache_stats st;
    CHECK(cache_new(&cfg, src, &c, err, sizeof(err)) == 0);
    cache_get_stats(c, &st);
    uint64_t n = cache_disk_items_fit(c, obj), idx = cache_index_bytes_for(c, 0, n);
    printf("16 KiB objects, 10 GiB disk tier: %llu objects held (in 1 MiB slots: %llu); index "
           "full of them %.1f MiB, %.1f bytes per object, %.4f%% of the capacity\n",
           (unsigned long long)n, (unsigned long long)(st.disk_capacity >> 20), (double)idx / MiB,
           (double)idx / (double)n, 100.0 * (double)idx / (double)st.disk_capacity);
    cache_free(c);
    rm_rf(dir);
    CHECK(mkdir(dir, 0700) == 0);

    cfg.disk_bytes_per_dir = 1024 * MiB;
    CHECK(cache_new(&cfg, src, &c, err, sizeof(err)) == 0);
    cache_get_stats(c, &st);
    uint64_t idx0 = st.index_bytes;
    uint8_t *buf = malloc(obj);
    char key[32];
    double t0 = now_sec();
    for (unsigned i = 0; i < nobj; i++) {
        snprintf(key, sizeof(key), "small/%u", i);
        CHECK(cache_read(c, key, "e", obj, 0, obj, buf) == (ssize_t)obj);
        /* At most 1,024 writes behind (16 MiB): a full write queue drops writes, and on a loaded
           machine the disk writers fell that far behind (the scan then found fewer). */
        int k = 0;
        for (; k < 100000; k++) { /* 10 s at most, then fail */
            cache_get_stats(c, &st);
            if (st.disk_writes + st.disk_writes_dropped + 1024 > i)
                break;
            usleep(100);
        }
        CHECK(k < 100000);
    }
    double fill = now_sec() - t0;
    cache_free(c); /* waits for the writes */
    CHECK(cache_new(&cfg, src, &c, err, sizeof(err)) == 0);
    cache_get_stats(c, &st);
    CHECK(st.scan_blocks == nobj);
    printf("16 KiB objects, 1 GiB disk tier: %u written in %.2f s, found again in %.1f ms; index "
           "%.1f bytes per object held\n",
           nobj, fill, st.scan_usec / 1e3, (double)(st.index_bytes - idx0) / nobj);
    uint64_t f0 = fake_fetches(&f), ops = 0;
    t0 = now_sec();
    double t;
    do {
        for (int i = 0; i < 256; i++, ops++) {
            snprintf(key, sizeof(key), "small/%u", (unsigned)(fake_rand() % nobj));
            CHECK(cache_read(c, key, "e", obj, 0, obj, buf) == (ssize_t)obj);
        }
        t = now_sec() - t0;
    } while (t < 0.4);
    CHECK(fake_fetches(&f) == f0);
    printf("disk hit    16 KiB objects x 1 thread(s): %9.0f reads/s  mean %7.2f us\n",
           (double)ops / t, t / (double)ops * 1e6);
    free(buf);
    cache_free(c);
    rm_rf(dir);
}

/* Objects of 16 KiB in a 2 GiB memory tier (no disk): how many it holds once full (every
 * object costs its own bytes of memory, rounded to its size class, not a block), and memory hits
 * of whole objects among those held. */
static void bench_mem_small(void)
{
    const uint64_t obj = 16 * KiB, mem = 2048 * MiB;
    const unsigned nobj = (unsigned)(mem / obj) + 8192; /* past full: evictions begin */
    char err[256];
    struct fake f = {.block_size = 1 << 20};
    struct blksrc *src = fake_source(&f, 1);
    struct cache_config cfg = {.mem_bytes = mem, .block_size = 1 << 20};
    struct cache *c;
    struct cache_stats st;
    CHECK(cache_new(&cfg, src, &c, err, sizeof(err)) == 0);
    uint8_t *buf = malloc(obj);
    char key[32];
    for (unsigned i = 0; i < nobj; i++) {
        snprintf(key, sizeof(key), "small/%u", i);
        CHECK(cache_read(c, key, "e", obj, 0, obj, buf) == (ssize_t)obj);
    }
    cache_get_stats(c, &st);
    printf("16 KiB objects, 2 GiB memory tier: %llu objects held after %u read (in 1 MiB slots: "
           "%llu), %.1f MiB used, index %.1f MiB\n",
           (unsigned long long)st.blocks_mem, nobj, (unsigned long long)(mem >> 20),
           (double)st.mem_used / MiB, (double)st.index_bytes / MiB);
    /* Hits among the newest half (held whatever the eviction order). */
    uint64_t f0 = fake_fetches(&f), ops = 0, half = st.blocks_mem / 2;
    double t0 = now_sec(), t;
    do {
        for (int i = 0; i < 256; i++, ops++) {
            snprintf(key, sizeof(key), "small/%u", nobj - 1 - (unsigned)(fake_rand() % half));
            CHECK(cache_read(c, key, "e", obj, 0, obj, buf) == (ssize_t)obj);
        }
        t = now_sec() - t0;
    } while (t < 0.4);
    CHECK(fake_fetches(&f) == f0);
    printf("mem hit     16 KiB objects x 1 thread(s): %9.0f reads/s  mean %7.2f us\n",
           (double)ops / t, t / (double)ops * 1e6);
    free(buf);
    cache_free(c);
}

int main(void)
{
    bench_index();
    bench_hits();
    bench_scan();
    bench_small();
    bench_mem_small();
    return 0;
}
