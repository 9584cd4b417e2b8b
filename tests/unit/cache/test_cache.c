/* tests/unit/cache/test_cache.c - the block cache against a fake source: hits and misses,
 * partial blocks, ETag changes, single-flight, hard caps, persistence (clean, kill -9),
 * corruption, failing disks (tmpfs ENOSPC, removed directory, truncated file), the index's
 * cost, the counters, prefetch and the origin bandwidth cap.
 */
#include "cache_test.h"

#include <linux/magic.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/vfs.h>

#include "cache/arena.h"
#include "cache/cache_i.h"
#include "cache/s3fifo.h"
#include "util/crc64.h"

#define GiB (1024ull * MiB)

/* Waits until the cache's background work (disk writes, prefetches) has settled: its counters of
 * that work unchanged over QUIET_POLLS polls 10 ms apart. Quiescence is the state to wait for here:
 * the cache shows no depth of its write and prefetch queues. Fails the test if they are still
 * moving after WAIT_SECONDS. */
#define QUIET_POLLS 5

/* Under a sanitizer (ASan: several times slower, TSan: ten; in CI for memory errors and races,
   which one pass of the code finds as well as four) the single-threaded repetitions of the crash
   and capacity tests run once; the dev build's run does them all. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

static void settle(struct cache *c)
{
    struct cache_stats a, b;
    double end = now_sec() + WAIT_SECONDS;
    cache_get_stats(c, &a);
    b = a;
    for (int quiet = 0; quiet < QUIET_POLLS;) {
        if (now_sec() > end)
            fail_msg("the cache did not settle in %d s: %llu disk writes, %llu dropped, %llu "
                     "errors, %llu source fetches and still moving",
                     WAIT_SECONDS, (unsigned long long)b.disk_writes,
                     (unsigned long long)b.disk_writes_dropped, (unsigned long long)b.disk_errors,
                     (unsigned long long)b.source_fetches);
        usleep(10000);
        cache_get_stats(c, &b);
        if (b.disk_writes == a.disk_writes && b.disk_writes_dropped == a.disk_writes_dropped &&
            b.disk_errors == a.disk_errors && b.source_fetches == a.source_fetches &&
            b.source_errors == a.source_errors)
            quiet++;
        else
            quiet = 0;
        a = b;
    }
}

static void test_hit_miss_partial(void **state)
{
    struct env *e = *state;
    struct cache *c = mk(e, 8 * MiB, NULL, 0, 1 << 20);
    uint64_t size = 5 * MiB + 12345;
    read_ok(c, "a/obj", "e1", size, 0, 100000);
    assert_int_equal(fake_fetches(&e->f), 1);
    read_ok(c, "a/obj", "e1", size, 0, 100000);
    read_ok(c, "a/obj", "e1", size, 4096, 1000);
    assert_int_equal(fake_fetches(&e->f), 1);
    /* A read spanning blocks and one into the short last block. */
    read_ok(c, "a/obj", "e1", size, MiB - 10, 20);
    read_ok(c, "a/obj", "e1", size, 5 * MiB, 1 * MiB);
    read_ok(c, "a/obj", "e1", size, size - 1, 10);
    uint64_t f1 = fake_fetches(&e->f);
    read_ok(c, "a/obj", "e1", size, 5 * MiB, 1 * MiB);
    assert_int_equal(fake_fetches(&e->f), f1);
    /* Past the end and zero length: 0, no fetch. */
    uint8_t b[16];
    assert_int_equal(cache_read(c, "a/obj", "e1", size, size, 16, b), 0);
    assert_int_equal(cache_read(c, "a/obj", "e1", size, size + 100, 16, b), 0);
    assert_int_equal(cache_read(c, "a/obj", "e1", size, 0, 0, b), 0);
    assert_int_equal(cache_read(c, "a/obj", "e1", 0, 0, 16, b), 0);
    assert_int_equal(fake_fetches(&e->f), f1);
    /* Whole object in FUSE-sized chunks. */
    for (uint64_t off = 0; off < size; off += 128 * KiB)
        read_ok(c, "a/obj", "e1", size, off, 128 * KiB);
    read_ok(c, "a/obj", "e1", size, 0, size);
    /* Bad arguments. */
    assert_int_equal(cache_read(c, NULL, "e", 10, 0, 1, b), -EINVAL);
    assert_int_equal(cache_read(c, "k", "e", 10, 0, 1, NULL), -EINVAL);
    char longkey[1100];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = 0;
    assert_int_equal(cache_read(c, longkey, "e", 10, 0, 1, b), -EINVAL);
    cache_free(c);
}

static void test_ref(void **state)
{
    struct env *e = *state;
    /* Two memory slots: a pinned block must survive the pressure of others. */
    struct cache *c = mk(e, 2 * MiB, NULL, 0, 1 << 20);
    struct cache_ref r, r2, r3;
    uint64_t size = 3 * MiB;
    assert_int_equal(cache_ref_get(c, "z", "e", size, 100, 1000, 0, &r), -ENOENT);
    read_ok(c, "z", "e", size, 0, 100000);
    assert_int_equal(cache_ref_get(c, "z", "e", size, 100, 1000, 0, &r), 0);
    assert_int_equal(r.len, 1000);
    assert_int_equal(fake_check("z", "e", 100, r.data, r.len), -1);
    assert_int_equal(cache_ref_get(c, "z", "e", size, 200000, 10, 0, &r2),
                     -ENOENT); /* page not held */
    for (int k = 0; k < 20; k++)
        read_ok(c, "other", "e", 20 * MiB, (uint64_t)k * MiB, 4096);
    assert_int_equal(fake_check("z", "e", 100, r.data, r.len), -1);
    assert_int_equal(cache_ref_get(c, "z", "e", size, 100, 1000, 0, &r2), 0); /* still held */
    /* A hit hands out the cached block itself (FUSE replies from it), not a copy: both refs
       point at the same bytes. */
    assert_ptr_equal(r2.data, r.data);
    assert_int_equal(cache_ref_get(c, "z", "e", size, 1100, 100, 0, &r3), 0);
    assert_ptr_equal(r3.data, (const uint8_t *)r.data + 1000);
    cache_ref_put(c, &r3);
    cache_ref_put(c, &r2);
    cache_ref_put(c, &r);
    assert_null(r.data);
    cache_ref_put(c, &r); /* a second put is a no-op */
    /* Clipped to the block. */
    read_ok(c, "z", "e", size, MiB - 20000, 20000);
    assert_int_equal(cache_ref_get(c, "z", "e", size, MiB - 100, 5000, 0, &r), 0);
    assert_int_equal(r.len, 100);
    cache_ref_put(c, &r);
    cache_free(c);
}

/* The memory tier counts bytes: an object takes a run of 4 KiB pages of its size class (the
 * power of two at or above its length), not a block. A memory-only cache of 8 MiB holds 512
 * objects of 16 KiB (it held 8 when every block took a 1 MiB slot), every byte reads back, and
 * big blocks and small objects evict each other with mem_used never above the capacity. */
static void test_mem_by_bytes(void **state)
{
    struct env *e = *state;
    const uint64_t mem = 8 * MiB;
    struct cache *c = mk(e, mem, NULL, 0, 1 << 20);
    struct cache_stats st;
    char key[32];
    for (int i = 0; i < 512; i++) {
        snprintf(key, sizeof(key), "small/%d", i);
        read_ok(c, key, "e", 16 * KiB, 0, 16 * KiB);
    }
    cache_get_stats(c, &st);
    assert_int_equal(st.blocks_mem, 512);
    assert_int_equal(st.mem_used, mem);
    assert_int_equal(st.evictions_mem, 0);
    /* Big blocks (one page read of each: the run is the whole block's) evict the oldest small
       objects, 64 of them (a chunk) a block. */
    for (int k = 0; k < 4; k++) {
        read_ok(c, "big", "e", 4 * MiB, (uint64_t)k * MiB, 4096);
        cache_get_stats(c, &st);
        assert_true(st.mem_used <= mem);
    }
    cache_get_stats(c, &st);
    assert_int_equal(st.evictions_mem, 256);
    assert_int_equal(st.blocks_mem, 256 + 4);
    assert_int_equal(st.mem_used, mem);
    /* Every byte held reads back from memory: the newest 256 small objects and the big blocks. */
    uint64_t f0 = fake_fetches(&e->f);
    for (int i = 256; i < 512; i++) {
        snprintf(key, sizeof(key), "small/%d", i);
        read_ok(c, key, "e", 16 * KiB, 0, 16 * KiB);
    }
    for (int k = 0; k < 4; k++)
        read_ok(c, "big", "e", 4 * MiB, (uint64_t)k * MiB, 4096);
    assert_int_equal(fake_fetches(&e->f), f0);
    /* The zero-copy path hands out the object's run in the arena. */
    struct cache_ref r;
    assert_int_equal(cache_ref_get(c, "small/300", "e", 16 * KiB, 100, 16 * KiB, 0, &r), 0);
    assert_int_equal(r.len, 16 * KiB - 100);
    assert_int_equal(fake_check("small/300", "e", 100, r.data, r.len), -1);
    cache_ref_put(c, &r);
    /* And the reverse: small objects of 5000 bytes (8 KiB runs), each read twice (wanted, so
       they reach S3-FIFO's main queue), take the big blocks' memory back once those go. */
    for (int i = 0; i < 1024; i++) {
        snprintf(key, sizeof(key), "tiny/%d", i);
        read_ok(c, key, "e", 5000, 0, 5000);
        read_ok(c, key, "e", 5000, 0, 5000);
        cache_get_stats(c, &st);
        assert_true(st.mem_used <= mem);
    }
    cache_get_stats(c, &st);
    print_message("8 MiB of memory: %llu objects held, %llu bytes used, %llu evicted\n",
                  (unsigned long long)st.blocks_mem, (unsigned long long)st.mem_used,
                  (unsigned long long)st.evictions_mem);
    assert_true(st.blocks_mem > 512 + 4); /* the big blocks' chunks went to the 8 KiB class */
    f0 = fake_fetches(&e->f);
    for (int k = 0; k < 4; k++)
        read_ok(c, "big", "e", 4 * MiB, (uint64_t)k * MiB, 4096);
    assert_int_equal(fake_fetches(&e->f), f0 + 4); /* evicted */
    cache_free(c);
}

/* The memory tier's space itself (s3fifo.c), at random: runs of every class allocated,
 * released and evicted (some victims busy) never overlap, stay inside the arena and aligned to
 * their class, and the pages counted used are the pages of the live runs. */
#define RUNS_CHUNKS 6
#define RUNS_CP     64 /* pages a chunk */
#define RUNS_NP     (RUNS_CHUNKS * RUNS_CP)

struct runs_model {
    uint32_t owner_at[RUNS_NP]; /* per page: the owner whose run covers it, or NIL */
    uint32_t start[4096], len[4096];
    int busy_per_mille;
};

static void runs_drop(struct runs_model *m, uint32_t o)
{
    for (uint32_t p = m->start[o]; p < m->start[o] + m->len[o]; p++) {
        assert_int_equal(m->owner_at[p], o);
        m->owner_at[p] = S3FIFO_NIL;
    }
    m->len[o] = 0;
}

static int runs_evict(void *arg, uint32_t page, uint32_t owner, uint64_t *fp)
{
    struct runs_model *m = arg;
    assert_true(owner < 4096 && m->len[owner] > 0 && m->start[owner] == page);
    if ((int)(fake_rand() % 1000) < m->busy_per_mille)
        return S3FIFO_BUSY;
    *fp = fake_mix(owner);
    runs_drop(m, owner);
    return S3FIFO_EVICTED;
}

static void test_mem_runs_random(void **state)
{
    (void)state;
    struct runs_model *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    for (uint32_t p = 0; p < RUNS_NP; p++)
        m->owner_at[p] = S3FIFO_NIL;
    struct s3fifo *q = s3fifo_new(RUNS_CHUNKS, RUNS_CP);
    assert_non_null(q);
    assert_null(s3fifo_new(2, 48)); /* a chunk is a power of two of pages */
    uint64_t allocs = 0, fails = 0;
    for (uint32_t step = 0; step < 40000; step++) {
        uint32_t o = (uint32_t)(fake_rand() % 4096);
        m->busy_per_mille = step % 5000 < 4000 ? 50 : 900;
        if (m->len[o] > 0) {
            if (fake_rand() % 4 == 0) {
                s3fifo_release(q, m->start[o]);
                runs_drop(m, o);
            } else {
                s3fifo_touch(q, m->start[o]);
            }
            continue;
        }
        uint32_t want = 1u << (fake_rand() % 7); /* 1 to 64 pages */
        want -= (uint32_t)(fake_rand() % (want / 2 + 1));
        uint32_t rp = s3fifo_run_pages(want);
        assert_true(rp >= want && rp < 2 * want + 1);
        int ev;
        uint32_t p =
            s3fifo_alloc(q, fake_mix(o), o, want, (int)(step % 7 == 0), runs_evict, m, &ev);
        if (p == S3FIFO_NIL) {
            fails++;
            continue;
        }
        allocs++;
        assert_true(p % RUNS_CP % rp == 0 && p % RUNS_CP + rp <= RUNS_CP && p + rp <= RUNS_NP);
        for (uint32_t k = p; k < p + rp; k++) {
            assert_int_equal(m->owner_at[k], S3FIFO_NIL); /* no overlap */
            m->owner_at[k] = o;
        }
        m->start[o] = p;
        m->len[o] = rp;
        uint64_t used = 0, items = 0;
        for (uint32_t k = 0; k < 4096; k++) {
            used += m->len[k];
            items += m->len[k] > 0;
        }
        assert_int_equal(s3fifo_used(q), used);
        assert_int_equal(s3fifo_items(q), items);
    }
    print_message("runs: %llu allocations, %llu refused (every candidate busy)\n",
                  (unsigned long long)allocs, (unsigned long long)fails);
    assert_true(allocs > 30000 / 2);
    /* Everything evictable: a whole chunk's run is always had. */
    m->busy_per_mille = 0;
    if (m->len[4095] > 0) {
        s3fifo_release(q, m->start[4095]);
        runs_drop(m, 4095);
    }
    int ev;
    uint32_t p = s3fifo_alloc(q, 1, 4095, RUNS_CP, 0, runs_evict, m, &ev);
    assert_int_not_equal(p, S3FIFO_NIL);
    assert_int_equal(p % RUNS_CP, 0);
    assert_true(s3fifo_used(q) <= RUNS_NP);
    s3fifo_free(q);
    free(m);
}

/* The size classes bound the waste: a 16.5 KiB object costs 20 KiB of the memory tier (it cost
 * 32 KiB when classes were powers of two), every class is at most a fifth above what it holds
 * past 16 pages, and a mix of sizes from 1 KiB to 1 MiB, churned through S3-FIFO, keeps the tier
 * filled with object bytes to a high fraction of its capacity. */
#define MIX_CHUNKS 2048
#define MIX_CP     256 /* 1 MiB chunks */
#define MIX_OWNERS 65536

struct mix_model {
    uint32_t bytes[MIX_OWNERS]; /* per owner: its object's bytes, 0 when it holds no run */
    uint32_t page[MIX_OWNERS];  /* per owner: its run's first page */
    uint64_t live;              /* the object bytes held */
};

static int mix_evict(void *arg, uint32_t page, uint32_t owner, uint64_t *fp)
{
    struct mix_model *m = arg;
    assert_true(owner < MIX_OWNERS && m->bytes[owner] > 0 && m->page[owner] == page);
    m->live -= m->bytes[owner];
    m->bytes[owner] = 0;
    *fp = 0; /* no ghost: every object is new */
    return S3FIFO_EVICTED;
}

/* Churns a 2 GiB tier (2048 chunks) through S3-FIFO with objects of sizes as many in each
 * power of two from 1 KiB to 2^(OCTAVES-1) KiB and, with BLOCK_EVERY, one 1 MiB block every
 * BLOCK_EVERY objects; *MEAN and *WORST: the object bytes held over the capacity, once full. */
static void mix_fill(unsigned octaves, unsigned block_every, double *mean, double *worst)
{
    struct mix_model *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    struct s3fifo *q = s3fifo_new(MIX_CHUNKS, MIX_CP);
    assert_non_null(q);
    const uint64_t cap = (uint64_t)MIX_CHUNKS * MIX_CP * 4096;
    double sum = 0, usum = 0;
    int samples = 0;
    *worst = 1;
    for (uint32_t step = 0; step < 120000; step++) {
        uint32_t o = step % MIX_OWNERS;
        if (m->bytes[o] > 0) { /* an owner id reused: its old object goes */
            s3fifo_release(q, m->page[o]);
            m->live -= m->bytes[o];
            m->bytes[o] = 0;
        }
        uint32_t lo = 1024u << (fake_rand() % octaves);
        uint32_t bytes = lo + (uint32_t)(fake_rand() % lo);
        if (block_every && step % block_every == 0)
            bytes = MIX_CP * 4096;
        int ev;
        uint32_t p =
            s3fifo_alloc(q, fake_mix(step), o, (bytes + 4095) / 4096, 0, mix_evict, m, &ev);
        assert_int_not_equal(p, S3FIFO_NIL);
        m->bytes[o] = bytes;
        m->page[o] = p;
        m->live += bytes;
        assert_true(s3fifo_used(q) * 4096 <= cap);
        if (step >= 40000 && step % 100 == 0) {
            double f = (double)m->live / (double)cap;
            *worst = f < *worst ? f : *worst;
            sum += f;
            usum += (double)(s3fifo_used(q) * 4096) / (double)cap;
            samples++;
        }
    }
    *mean = sum / samples;
    print_message("objects of 1 KiB to %u KiB%s fill the tier to %.3f of its bytes (mean), %.3f "
                  "at worst; their runs take %.3f\n",
                  1u << octaves, block_every ? " and 1 MiB blocks" : "", *mean, *worst,
                  usum / samples);
    s3fifo_free(q);
    free(m);
}

static void test_mem_classes(void **state)
{
    struct env *e = *state;
    for (uint32_t np = 1; np <= 1u << 15; np++) {
        uint32_t rp = s3fifo_run_pages(np);
        assert_true(rp >= np);
        assert_true(np <= 16 ? rp == np : rp * 4 <= np * 5);
    }
    struct cache *c = mk(e, 8 * MiB, NULL, 0, 1 << 20);
    struct cache_stats st;
    read_ok(c, "x", "e", 16 * KiB + 512, 0, 16 * KiB + 512);
    cache_get_stats(c, &st);
    assert_int_equal(st.blocks_mem, 1);
    assert_true(st.mem_used <= 20 * KiB);
    cache_free(c);

    /* A dataset of small files (1 KiB to 256 KiB, as many in each power of two) beside the
       1 MiB blocks of big objects, one in 32 (about half the bytes); then every size up to 1 MiB
       alike, the worst case: above half a chunk a run takes a whole chunk. */
    double mean, worst;
    mix_fill(8, 32, &mean, &worst);
    assert_true(mean >= 0.85 && worst >= 0.8);
    mix_fill(10, 0, &mean, &worst);
    assert_true(mean >= 0.75 && worst >= 0.7);
}

/* The arena's toucher (arena.c) maps never-used chunks ahead of the allocations, a bounded
 * number of them: in a 64 MiB arena (8 MiB ahead), every chunk an allocation gets is already
 * resident when handed out, and the chunks past the window are not mapped until the
 * allocations come near. */
#define AR_CHUNKS 64
#define AR_AHEAD  8 /* an eighth of the arena */

static int ar_resident(const uint8_t *p, size_t len)
{
    unsigned char vec[256];
    assert_true(len / 4096 <= sizeof(vec));
    assert_int_equal(mincore((void *)p, len, vec), 0);
    for (size_t i = 0; i < len / 4096; i++)
        if (!(vec[i] & 1))
            return 0;
    return 1;
}

/* Waits (at most 10 s) until the toucher has AR_AHEAD chunks ready. */
static void ar_wait_ready(struct s3fifo *q)
{
    for (int i = 0; i < 10000 && s3fifo_fresh_wanted(q, AR_AHEAD); i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    assert_false(s3fifo_fresh_wanted(q, AR_AHEAD));
}

static int ar_evict_none(void *arg, uint32_t page, uint32_t owner, uint64_t *fp)
{
    (void)arg, (void)page, (void)owner, (void)fp;
    return S3FIFO_BUSY;
}

static void test_arena_ahead(void **state)
{
    (void)state;
    struct s3fifo *q = s3fifo_new(AR_CHUNKS, 256);
    assert_non_null(q);
    struct arena *a = arena_new(AR_CHUNKS, MiB, q, ARENA_TOUCHER | ARENA_ANON);
    assert_non_null(a);
    const uint8_t *base = arena_base(a);
    assert_int_equal((uintptr_t)base % (2 * MiB), 0);
    for (uint32_t o = 0; o < 3 * AR_AHEAD; o++) {
        ar_wait_ready(q);
        int ev;
        uint32_t p = s3fifo_alloc(q, o, o, 256, 0, ar_evict_none, NULL, &ev);
        assert_int_not_equal(p, S3FIFO_NIL);
        assert_true(ar_resident(base + (size_t)p * 4096, MiB));
        arena_kick(a);
    }
    /* The window: chunks beyond those used and AR_AHEAD ready (and the huge page of the last)
       are untouched. */
    ar_wait_ready(q);
    for (uint32_t ch = 4 * AR_AHEAD + 2; ch < AR_CHUNKS; ch++)
        assert_false(ar_resident(base + (size_t)ch * MiB, 4096));
    arena_free(a);
    s3fifo_free(q);
}

/* The memory tier is a memfd: a prefetch run puts each block in its slot with arena_fill
 * (pwrite, counted) and computes the page CRCs from the source's pieces (uneven, straddling
 * pages and blocks) for the disk writer, which stages the slot through the fd. The bytes read
 * back from memory and, after a restart, from disk (every page's CRC checked) are the object's. */
static void test_memfd_fill(void **state)
{
    struct env *e = *state;
    /* The arena itself: a close-on-exec memfd; arena_fill lands where the mapping shows it. */
    struct s3fifo *q = s3fifo_new(4, 256);
    assert_non_null(q);
    struct arena *a = arena_new(4, MiB, q, 0);
    assert_non_null(a);
    assert_true(arena_is_file(a));
    assert_true(fcntl(arena_fd(a), F_GETFD) & FD_CLOEXEC);
    uint8_t src[5000];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 7 + 1);
    arena_fill(a, arena_base(a) + MiB + 100, src, sizeof(src));
    assert_memory_equal(arena_base(a) + MiB + 100, src, sizeof(src));
    assert_int_equal(arena_fill_bytes(a), sizeof(src));
    arena_free(a);
    /* Anonymous memory, asked for: a plain copy, nothing through a memfd. */
    a = arena_new(4, MiB, q, ARENA_ANON);
    assert_non_null(a);
    assert_false(arena_is_file(a));
    assert_int_equal(arena_fd(a), -1);
    arena_fill(a, arena_base(a) + 3 * MiB, src, sizeof(src));
    assert_memory_equal(arena_base(a) + 3 * MiB, src, sizeof(src));
    assert_int_equal(arena_fill_bytes(a), 0);
    arena_free(a);
    s3fifo_free(q);

    struct cache *c = mk(e, 16 * MiB, e->d1, 32 * MiB, 1 << 20);
    uint64_t size = 5 * MiB + 12345;
    assert_int_equal(cache_prefetch(c, "mf", "e", size, 0, size, 0), 0);
    struct cache_stats st;
    WAIT_UNTIL((cache_get_stats(c, &st), st.disk_writes >= 6));
    settle(c);
    cache_get_stats(c, &st);
    assert_int_equal(st.mem_fill_fd_bytes, size);
    assert_int_equal(st.corrupt_dropped, 0);
    uint64_t f0 = fake_fetches(&e->f);
    for (uint64_t off = 0; off < size; off += MiB) {
        struct cache_ref r;
        assert_int_equal(cache_ref_get(c, "mf", "e", size, off, MiB, 0, &r), 0);
        assert_int_equal(r.len, size - off < MiB ? size - off : MiB);
        assert_int_equal(fake_check("mf", "e", off, r.data, r.len), -1);
        cache_ref_put(c, &r);
    }
    assert_int_equal(fake_fetches(&e->f), f0);
    /* A read's own fill (block_io) of a small object and of part of a block: through the
       thread's scratch block and arena_fill too. */
    read_ok(c, "small", "e", 20000, 0, 20000);
    read_ok(c, "part", "e", 3 * MiB, MiB + 70000, 100000);
    uint64_t f1 = fake_fetches(&e->f);
    assert_true(f1 > f0);
    WAIT_UNTIL((cache_get_stats(c, &st), st.disk_writes >= 8));
    settle(c);
    cache_get_stats(c, &st);
    assert_true(st.mem_fill_fd_bytes >= size + 20000 + 100000);
    read_ok(c, "small", "e", 20000, 0, 20000);
    read_ok(c, "part", "e", 3 * MiB, MiB + 70000, 100000);
    assert_int_equal(fake_fetches(&e->f), f1);
    cache_free(c);
    /* From disk: the CRCs the fills computed verify every page (a wrong one drops the page, and
       the read fetches it). */
    c = mk(e, 16 * MiB, e->d1, 32 * MiB, 1 << 20);
    read_ok(c, "mf", "e", size, 0, size);
    read_ok(c, "small", "e", 20000, 0, 20000);
    read_ok(c, "part", "e", 3 * MiB, MiB + 70000, 100000);
    cache_get_stats(c, &st);
    assert_int_equal(st.corrupt_dropped, 0);
    assert_int_equal(fake_fetches(&e->f), f1);
    cache_free(c);
}

static void test_etag_change(void **state)
{
    struct env *e = *state;
    struct cache *c = mk(e, 8 * MiB, e->d1, 16 * MiB, 1 << 20);
    uint64_t size = 3 * MiB;
    read_ok(c, "k", "v1", size, 0, size);
    uint64_t f1 = fake_fetches(&e->f);
    read_ok(c, "k", "v2", size, 0, size); /* new bytes, never the old ones */
    assert_true(fake_fetches(&e->f) > f1);
    uint64_t f2 = fake_fetches(&e->f);
    read_ok(c, "k", "v1", size, 0, size);
    read_ok(c, "k", "v2", size, 100, size);
    assert_int_equal(fake_fetches(&e->f), f2);
    cache_free(c);
}

struct sf_arg {
    struct cache *c;
    pthread_barrier_t *bar;
    ssize_t rc;
    int bad;
};

static void *sf_thread(void *p)
{
    struct sf_arg *a = p;
    uint8_t *buf = malloc(MiB);
    pthread_barrier_wait(a->bar);
    a->rc = cache_read(a->c, "hot", "e", 10 * MiB, 2 * MiB + 4096, 512 * KiB, buf);
    if (a->rc > 0)
        a->bad = fake_check("hot", "e", 2 * MiB + 4096, buf, (size_t)a->rc) != -1;
    free(buf);
    return NULL;
}

static void run_sf(struct cache *c, int nthreads, struct sf_arg *args)
{
    pthread_t th[32];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    for (int i = 0; i < nthreads; i++) {
        args[i] = (struct sf_arg){c, &bar, 0, 0};
        pthread_create(&th[i], NULL, sf_thread, &args[i]);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
}

static void test_singleflight(void **state)
{
    struct env *e = *state;
    struct sf_arg args[32];
    e->f.latency_us = 100000;
    struct cache *c = mk(e, 8 * MiB, NULL, 0, 1 << 20);
    run_sf(c, 32, args);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(args[i].rc, 512 * KiB);
        assert_false(args[i].bad);
    }
    assert_int_equal(fake_fetches(&e->f), 1);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.source_fetches, 1);
    assert_int_equal(st.read_miss, 32);
    assert_true(st.singleflight_waits >= 16);
    cache_free(c);

    /* A failing fetch: its waiters get its error, and the error is not cached. */
    e->f.fetches = 0;
    c = mk(e, 8 * MiB, NULL, 0, 1 << 20);
    __atomic_store_n(&e->f.fail_errno, EACCES, __ATOMIC_RELAXED);
    run_sf(c, 16, args);
    for (int i = 0; i < 16; i++)
        assert_int_equal(args[i].rc, -EACCES);
    assert_int_equal(fake_fetches(&e->f), 1);
    __atomic_store_n(&e->f.fail_errno, 0, __ATOMIC_RELAXED);
    run_sf(c, 8, args);
    for (int i = 0; i < 8; i++)
        assert_int_equal(args[i].rc, 512 * KiB);
    assert_int_equal(fake_fetches(&e->f), 2);
    cache_free(c);

    /* No memory tier (disk only, or nothing): the filler lends its buffer to its waiters. */
    for (int disk = 0; disk < 2; disk++) {
        e->f.fetches = 0;
        c = mk(e, 0, disk ? e->d1 : NULL, 16 * MiB, 1 << 20);
        run_sf(c, 24, args);
        for (int i = 0; i < 24; i++) {
            assert_int_equal(args[i].rc, 512 * KiB);
            assert_false(args[i].bad);
        }
        assert_int_equal(fake_fetches(&e->f), 1);
        cache_free(c);
    }
}

static uint64_t file_bytes_on_disk(const char *dir)
{
    char p[256];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, CDISK_FILE_NAME);
    if (stat(p, &st) != 0)
        return 0;
    uint64_t alloc = (uint64_t)st.st_blocks * 512;
    return alloc > (uint64_t)st.st_size ? alloc : (uint64_t)st.st_size;
}

static void test_caps(void **state)
{
    struct env *e = *state;
    const uint64_t mem = 4 * MiB, per_dir = 8 * MiB;
    struct cache *c = mk(e, mem, e->dirs, per_dir, 256 * KiB);
    /* Working set ~2x memory + disk. */
    const int nobj = 10;
    const uint64_t size = 4 * MiB;
    for (int round = 0; round < (UNDER_SANITIZER ? 1 : 3); round++) {
        for (int i = 0; i < 300; i++) {
            char key[32];
            int o = (int)(fake_rand() % nobj);
            snprintf(key, sizeof(key), "obj%d", o);
            uint64_t off = fake_rand() % size, len = 1 + fake_rand() % (600 * KiB);
            read_ok(c, key, "e", size, off, (size_t)len);
            if (i % 50 == 0) {
                struct cache_stats st;
                cache_get_stats(c, &st);
                assert_true(st.mem_used <= mem);
                assert_true(file_bytes_on_disk(e->d1) <= per_dir);
                assert_true(file_bytes_on_disk(e->d2) <= per_dir);
            }
        }
        settle(c);
    }
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_true(st.mem_used <= mem);
    assert_true(st.disk_capacity <= 2 * per_dir);
    assert_true(st.evictions_mem > 0);
    assert_true(st.evictions_disk > 0);
    assert_true(st.blocks_disk > 0);
    assert_true(file_bytes_on_disk(e->d1) <= per_dir);
    assert_true(file_bytes_on_disk(e->d2) <= per_dir);
    assert_true(file_bytes_on_disk(e->d1) > per_dir / 2);
    cache_free(c);
}

static void test_persistence(void **state)
{
    struct env *e = *state;
    uint64_t size = 20 * MiB + 777;
    struct cache *c = mk(e, 2 * MiB, e->dirs, 64 * MiB, 1 << 20);
    read_ok(c, "p/big", "etag", size, 0, size);
    read_ok(c, "p/small", "etag", 5000, 0, 5000);
    cache_free(c); /* waits for the disk writes */
    e->f.fetches = 0;
    c = mk(e, 2 * MiB, e->dirs, 64 * MiB, 1 << 20);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.scan_blocks, 22);
    read_ok(c, "p/big", "etag", size, 0, size);
    read_ok(c, "p/small", "etag", 5000, 0, 5000);
    assert_int_equal(fake_fetches(&e->f), 0);
    cache_get_stats(c, &st);
    assert_int_equal(st.read_miss, 0);
    assert_int_equal(st.corrupt_dropped, 0);
    cache_free(c);
    /* Blocks whose background write was never made are flushed by cache_free: a cache whose
       write queue is clogged (a slow disk) still persists its memory tier. */
    e->f.fetches = 0;
    c = mk(e, 16 * MiB, e->dirs, 64 * MiB, 1 << 20);
    read_ok(c, "p/flush", "etag", 12 * MiB, 0, 12 * MiB);
    cache_free(c);
    c = mk(e, 2 * MiB, e->dirs, 64 * MiB, 1 << 20);
    read_ok(c, "p/flush", "etag", 12 * MiB, 0, 12 * MiB);
    assert_int_equal(fake_fetches(&e->f), 12);
    cache_free(c);
    /* Another geometry starts empty rather than misreading. */
    e->f.fetches = 0;
    c = mk(e, 2 * MiB, e->dirs, 64 * MiB, 256 * KiB);
    cache_get_stats(c, &st);
    assert_int_equal(st.scan_blocks, 0);
    read_ok(c, "p/small", "etag", 5000, 0, 5000);
    assert_int_equal(fake_fetches(&e->f), 1);
    cache_free(c);
}

/* The blocks the child must have written before it is killed, per trial: at most about twice what
 * its disk tier holds (30 blocks in 15 regions), so that regions are being reused and rewritten
 * when it dies (from the second trial on, the tier starts full anyway: the parent's checking
 * reads of the trial before filled it); one trial kills it at its first write. A sanitizer build
 * runs the first trial only.
 *
 * After the kill the scan walks the open region's items from its start and stops at the first
 * that did not land (disk.c: skipping it could take a stored object's bytes for an item header).
 * Two writers append at once, so the write counted first may be the region's second item while
 * the first is still in flight: a kill at the first write may find nothing (seen on a loaded
 * machine). Past KILL9_FOUND_AFTER writes, blocks must be found. */
static const uint64_t KILL9_AFTER_WRITES[] = {12, 1, 40, 64};
#define KILL9_FOUND_AFTER 12

static void test_kill9(void **state)
{
    struct env *e = *state;
    /* The child cycles through versions of an object bigger than the disk tier, so slots are
       being reused and written when it is killed. */
    const uint64_t size = 24 * MiB;
    const int versions = 6;
    for (int trial = 0; trial < (UNDER_SANITIZER ? 1 : 4); trial++) {
        int fds[2];
        if (fork_reporting_child(e, fds) == 0) {
            /* The child: reads for ever, reporting each time its count of completed disk writes
               (disk tier only: every block read is written there) moves. */
            struct cache *c = mk_or_null(e, 0, e->d1, 32 * MiB, 1 << 20);
            uint8_t *buf = malloc(MiB);
            if (c == NULL || buf == NULL)
                _exit(2);
            uint64_t reported = 0;
            for (unsigned n = 0;; n++) {
                char etag[16];
                snprintf(etag, sizeof(etag), "v%u", n / 8 % versions);
                uint64_t off = (fake_rand() % (size / MiB)) * MiB;
                if (cache_read(c, "crash", etag, size, off, MiB, buf) != (ssize_t)MiB)
                    _exit(3);
                struct cache_stats st;
                cache_get_stats(c, &st);
                if (st.disk_writes != reported) {
                    reported = st.disk_writes;
                    report(fds[1], reported);
                }
            }
        }
        uint64_t written = wait_report(e, fds[0], KILL9_AFTER_WRITES[trial], "disk writes");
        kill9(e);
        close(fds[0]);
        e->f.fetches = 0;
        struct cache *c = mk(e, 0, e->d1, 32 * MiB, 1 << 20);
        struct cache_stats st;
        cache_get_stats(c, &st);
        /* What the disk holds first, before reads write anything (the region log evicts the
           oldest first, and a full pass would push out what the child left): those blocks serve
           the right bytes. */
        uint8_t *blk = malloc(MiB);
        uint64_t held = 0;
        for (int v = 0; v < versions; v++) {
            char etag[16];
            snprintf(etag, sizeof(etag), "v%d", v);
            for (uint64_t off = 0; off < size; off += MiB) {
                if (cache_read_local(c, "crash", etag, size, off, MiB, blk) == (ssize_t)MiB) {
                    assert_int_equal(fake_check("crash", etag, off, blk, MiB), -1);
                    held++;
                }
            }
        }
        free(blk);
        for (int v = 0; v < versions; v++) {
            char etag[16];
            snprintf(etag, sizeof(etag), "v%d", v);
            read_ok(c, "crash", etag, size, 0, size); /* never wrong bytes */
        }
        struct cache_stats st2;
        cache_get_stats(c, &st2);
        cache_free(c);
        print_message("kill -9 trial %d, at %llu disk writes: %llu blocks found, %llu of them "
                      "read back whole, %llu torn pages dropped\n",
                      trial, (unsigned long long)written, (unsigned long long)st.scan_blocks,
                      (unsigned long long)held, (unsigned long long)st2.corrupt_dropped);
        assert_true(held <= st.scan_blocks);
        if (written >= KILL9_FOUND_AFTER) {
            assert_true(st.scan_blocks > 0);
            assert_true(held > 0);
        }
    }
}

static void test_corruption(void **state)
{
    struct env *e = *state;
    uint64_t size = 8 * MiB;
    struct cache *c = mk(e, 0, e->d1, 32 * MiB, 1 << 20);
    read_ok(c, "c", "e", size, 0, size);
    cache_free(c);
    /* The file: 4 KiB of superblock, then regions of region_size (superblock offset 24), each
       holding PER items of one full block, the 8 blocks in the first 8 / PER regions. Flip a
       byte of page 0 of every item; in region 1, flip one of its first item's header and one of
       its summary's footer: the scan then walks region 1 and stops at that first item. */
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", e->d1, CDISK_FILE_NAME);
    FILE *fp = fopen(p, "r+b");
    assert_non_null(fp);
    uint8_t sb[32];
    assert_int_equal(fread(sb, 1, sizeof(sb), fp), sizeof(sb));
    long rs = (long)(sb[24] | sb[25] << 8 | sb[26] << 16 | (uint32_t)sb[27] << 24);
    long hl = (long)citem_hdr_len(64, 64), ilen = (long)citem_len((uint32_t)hl, MiB);
    long per = rs / ilen;
    assert_true(per >= 2 && 8 % per == 0);
    long flips[12];
    int nf = 0;
    for (long k = 0; k < 8; k++)
        flips[nf++] = CDISK_SB_SIZE + k / per * rs + 512 + k % per * ilen + hl + 1000;
    flips[nf++] = CDISK_SB_SIZE + rs + 512 + 100;
    flips[nf++] = CDISK_SB_SIZE + 2 * rs - 64 + 10;
    for (int i = 0; i < nf; i++) {
        fseek(fp, flips[i], SEEK_SET);
        int ch = fgetc(fp);
        assert_true(ch != EOF);
        fseek(fp, flips[i], SEEK_SET);
        fputc(ch ^ 0x5a, fp);
    }
    fclose(fp);
    e->f.fetches = 0;
    c = mk(e, 0, e->d1, 32 * MiB, 1 << 20);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.scan_blocks, 8 - per); /* region 1's walk stopped at its first item */
    read_ok(c, "c", "e", size, 0, size);
    cache_get_stats(c, &st);
    assert_true(st.corrupt_dropped > 0);
    assert_true(fake_fetches(&e->f) > 0);
    settle(c);
    uint64_t f1 = fake_fetches(&e->f);
    read_ok(c, "c", "e", size, 0, size); /* rewritten and good now */
    assert_int_equal(fake_fetches(&e->f), f1);
    cache_free(c);
}

static void test_enospc_tmpfs(void **state)
{
    struct env *e = *state;
    mount_small_tmpfs(e);
    /* The cap says 32 MiB, the file system holds 2. */
    struct cache *c = mk(e, 2 * MiB, e->d1, 32 * MiB, 1 << 20);
    uint64_t size = 24 * MiB;
    for (int r = 0; r < 2; r++) {
        for (uint64_t off = 0; off < size; off += 256 * KiB)
            read_ok(c, "full", "e", size, off, 256 * KiB);
        settle(c);
    }
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_true(st.disk_errors > 0);
    assert_true(st.disk_writes > 0);
    cache_free(c);
    umount_tmpfs(e);
}

static void test_dir_removed_and_truncated(void **state)
{
    struct env *e = *state;
    uint64_t size = 16 * MiB;
    struct cache *c = mk(e, 2 * MiB, e->dirs, 32 * MiB, 1 << 20);
    read_ok(c, "r", "e", size, 0, size);
    settle(c);
    /* Truncate one directory's file under us, remove the other directory. */
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", e->d1, CDISK_FILE_NAME);
    assert_int_equal(truncate(p, 8192), 0);
    rm_rf(e->d2);
    for (int r = 0; r < 3; r++) {
        read_ok(c, "r", "e", size, 0, size);
        read_ok(c, "r2", "e", size, 0, size);
        settle(c);
    }
    struct cache_stats st;
    cache_get_stats(c, &st);
    /* The blocks past the cut are missing pages, not a failing disk (which would rest). */
    assert_true(st.corrupt_dropped > 0);
    assert_int_equal(st.disk_errors, 0);
    cache_free(c);
    /* A directory that does not exist: skipped, the cache still works. */
    c = mk(e, 2 * MiB, "/nonexistent/efc-cache/", 32 * MiB, 1 << 20);
    read_ok(c, "r", "e", size, 0, size);
    cache_get_stats(c, &st);
    assert_int_equal(st.disk_capacity, 0);
    cache_free(c);
}

static void test_no_tiers(void **state)
{
    struct env *e = *state;
    struct cache *c = mk(e, 0, NULL, 0, 1 << 20);
    read_ok(c, "n", "e", 3 * MiB, 1000, 2 * MiB);
    read_ok(c, "n", "e", 3 * MiB, 1000, 2 * MiB);
    assert_int_equal(fake_fetches(&e->f), 6);
    cache_free(c);
}

static void test_index_overhead(void **state)
{
    struct env *e = *state;
    /* 1 GiB of memory and 100 GiB of disk, as the issue asks. The cache file is sparse. The index
       grows with the blocks held: its cost full is cache_index_bytes_for (checked against a real
       fill in test_small_objects). */
    struct cache *c = mk(e, 1 * GiB, e->d1, 100 * GiB, 1 << 20);
    struct cache_stats st;
    cache_get_stats(c, &st);
    uint64_t cap = st.mem_capacity + st.disk_capacity;
    uint64_t full = cache_index_bytes_for(c, GiB / MiB, cache_disk_items_fit(c, MiB));
    print_message("index full of 1 MiB blocks: %llu bytes for %.1f GiB configured (%.4f%%)\n",
                  (unsigned long long)full, (double)cap / (double)GiB,
                  100.0 * (double)full / (double)cap);
    assert_true(st.mem_capacity == 1 * GiB);
    assert_true(st.disk_capacity > 99 * GiB && st.disk_capacity <= 100 * GiB);
    assert_true(full * 10000 <= cap); /* 0.01% */
    assert_true(st.index_bytes < full);
    assert_true(file_bytes_on_disk(e->d1) <= 100 * GiB);
    /* Objects of 16 KiB: the disk holds them by their bytes, and the index at most 0.1% of the
       capacity (the target): each held only on disk is a compact record (an entry of 56
       bytes would cost 0.35%), each in memory an entry. */
    uint64_t small = cache_disk_items_fit(c, 16 * KiB);
    full = cache_index_bytes_for(c, GiB / (16 * KiB), small);
    print_message("index full of 16 KiB objects: %llu objects on disk, %llu bytes (%.4f%%)\n",
                  (unsigned long long)small, (unsigned long long)full,
                  100.0 * (double)full / (double)cap);
    assert_true(small >= st.disk_capacity / (16 * KiB) * 96 / 100);
    assert_true(full * 1000 <= cap);
    cache_free(c);
    /* Smaller blocks cost more per byte, and smaller pages more bitmap: the bound holds at every
       allowed block size, with the default (16 KiB) and the smallest (4 KiB) pages. */
    for (uint32_t ps = 4 * KiB; ps <= 16 * KiB; ps *= 4) {
        for (uint32_t bs = CACHE_MIN_BLOCK; bs <= CACHE_MAX_BLOCK; bs *= 2) {
            struct cache_config cfg = {.mem_bytes = 1 * GiB,
                                       .disk_dirs = e->d1,
                                       .disk_bytes_per_dir = 100 * GiB,
                                       .block_size = bs,
                                       .page_size = ps};
            e->f.block_size = bs;
            struct blksrc *src = fake_source(&e->f, 1);
            char err[256];
            assert_int_equal(cache_new(&cfg, src, &c, err, sizeof(err)), 0);
            cache_get_stats(c, &st);
            cap = st.mem_capacity + st.disk_capacity;
            full = cache_index_bytes_for(c, GiB / bs, cache_disk_items_fit(c, bs));
            double pct = 100.0 * (double)full / (double)cap;
            print_message("index full, %5u KiB blocks, %2u KiB pages: %9llu bytes, %8.0f bytes/GiB "
                          "(%.4f%%)\n",
                          bs / 1024, ps / 1024, (unsigned long long)full,
                          (double)full / ((double)cap / (double)GiB), pct);
            assert_true(pct <= 0.1);
            cache_free(c);
        }
    }
}

/* Objects of 16 KiB take 16.5 KiB of disk each, not a block: the tier holds what
 * cache_disk_items_fit says, every one of them readable, and the index grows as it said. A
 * 10 GiB tier holds at least 600,000 (the target). */
static void test_small_objects(void **state)
{
    struct env *e = *state;
    const uint64_t obj = 16 * KiB;
    struct cache *c = mk(e, 0, e->d1, 10 * GiB, 1 << 20);
    uint64_t big = cache_disk_items_fit(c, obj);
    print_message("a 10 GiB disk tier holds %llu objects of 16 KiB\n", (unsigned long long)big);
    assert_true(big >= 600000);
    cache_free(c);
    rm_rf(e->d1);
    assert_int_equal(mkdir(e->d1, 0700), 0);

    /* 80 MiB: more objects than one chunk of entries (4096), so that entries of 56 bytes would
       show in the index's growth. */
    c = mk(e, 0, e->d1, 80 * MiB, 1 << 20);
    struct cache_stats st;
    cache_get_stats(c, &st);
    uint64_t n = cache_disk_items_fit(c, obj), idx0 = st.index_bytes;
    uint64_t base = cache_index_bytes_for(c, 0, 0); /* no block: a chunk of entries for fills */
    assert_true(n > 4096);
    assert_true(n >= st.disk_capacity / obj * 9 / 10);
    for (uint64_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "small/%llu", (unsigned long long)i);
        read_ok(c, key, "e", obj, 0, obj);
    }
    /* Each object is one background write (or one dropped): wait for all of them. */
    WAIT_UNTIL((cache_get_stats(c, &st), st.disk_writes + st.disk_writes_dropped >= n));
    print_message("%llu objects of 16 KiB in a %llu-byte tier: %llu held, %llu bytes used, "
                  "index %llu -> %llu bytes; %llu writes, %llu dropped, %llu evicted\n",
                  (unsigned long long)n, (unsigned long long)st.disk_capacity,
                  (unsigned long long)st.blocks_disk, (unsigned long long)st.disk_used,
                  (unsigned long long)idx0, (unsigned long long)st.index_bytes,
                  (unsigned long long)st.disk_writes, (unsigned long long)st.disk_writes_dropped,
                  (unsigned long long)st.evictions_disk);
    assert_int_equal(st.blocks_disk, n);
    assert_int_equal(st.evictions_disk, 0);
    assert_true(st.disk_used <= st.disk_capacity);
    assert_true(st.index_bytes <= cache_index_bytes_for(c, 0, n));
    /* The 0.1% of the capacity: at most 16 bytes an object of 16.5 KiB of disk, hash
       tables included (compact records: cache.c). */
    print_message("index beyond a chunk of entries: %.1f bytes per object\n",
                  (double)(st.index_bytes - base) / (double)n);
    assert_true(st.index_bytes - base <= 16 * n);
    cache_free(c);
    /* All of them again after a restart, from disk, the index as small. */
    e->f.fetches = 0;
    c = mk(e, 0, e->d1, 80 * MiB, 1 << 20);
    cache_get_stats(c, &st);
    assert_int_equal(st.scan_blocks, n);
    assert_int_equal(st.blocks_disk, n);
    assert_true(st.index_bytes - base <= 16 * n);
    for (uint64_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "small/%llu", (unsigned long long)i);
        read_ok(c, key, "e", obj, 0, obj);
    }
    assert_int_equal(fake_fetches(&e->f), 0);
    assert_true(st.index_bytes - base <= 16 * n);
    /* One more evicts the oldest region, whole: its items' records go (counted out), and the
       first object, in that region, is fetched again, its own bytes. */
    read_ok(c, "small/more", "e", obj, 0, obj);
    WAIT_UNTIL((cache_get_stats(c, &st), st.disk_writes + st.disk_writes_dropped >= 1));
    assert_true(st.evictions_disk > 0);
    assert_int_equal(st.blocks_disk, n + 1 - st.evictions_disk);
    uint64_t f0 = fake_fetches(&e->f);
    read_ok(c, "small/0", "e", obj, 0, obj);
    assert_int_equal(fake_fetches(&e->f), f0 + 1);
    cache_get_stats(c, &st);
    assert_int_equal(st.corrupt_dropped, 0);
    cache_free(c);
}

/* Two blocks whose compact records have the same tag (the tag cut to 4 bits, so that two such
 * names are found among a few hundred): each read gets its own block's bytes, from disk once
 * written; the other's item is told apart by its header, never served, never dropped. And
 * after a restart (full tags again), both are disk hits. */
static void test_compact_same_tag(void **state)
{
    struct env *e = *state;
    const uint64_t obj = 16 * KiB;
    struct cache *c = mk(e, 0, e->d1, 32 * MiB, 1 << 20);
    cache_test_tag_bits(c, 4);
    /* One shard (low 8 bits of id[1]) and one 4-bit tag (its top bits): 12 bits to match. */
    int seen[4096];
    memset(seen, -1, sizeof(seen));
    char ka[32] = "", kb[32] = "";
    for (int i = 0; i < 100000 && !kb[0]; i++) {
        uint64_t id[2];
        snprintf(kb, sizeof(kb), "tag/%d", i);
        cache_block_id("", kb, "e", 0, id);
        unsigned v = (unsigned)((id[1] & 255) << 4 | id[1] >> 60);
        if (seen[v] >= 0) {
            snprintf(ka, sizeof(ka), "tag/%d", seen[v]);
            break;
        }
        seen[v] = i;
        kb[0] = '\0';
    }
    assert_true(ka[0] && kb[0]);
    struct cache_stats st;
    read_ok(c, ka, "e", obj, 0, obj);
    WAIT_UNTIL((cache_get_stats(c, &st), st.disk_writes >= 1));
    read_ok(c, kb, "e", obj, 0, obj); /* finds A's record: not B's item, a miss */
    assert_int_equal(fake_fetches(&e->f), 2);
    WAIT_UNTIL((cache_get_stats(c, &st), st.disk_writes >= 2));
    for (int k = 0; k < 2; k++) {
        read_ok(c, ka, "e", obj, 0, obj);
        read_ok(c, kb, "e", obj, 0, obj);
    }
    assert_int_equal(fake_fetches(&e->f), 2);
    cache_get_stats(c, &st);
    assert_int_equal(st.blocks_disk, 2);
    assert_int_equal(st.corrupt_dropped, 0);
    cache_free(c);
    e->f.fetches = 0;
    c = mk(e, 0, e->d1, 32 * MiB, 1 << 20);
    read_ok(c, kb, "e", obj, 0, obj);
    read_ok(c, ka, "e", obj, 0, obj);
    assert_int_equal(fake_fetches(&e->f), 0);
    cache_free(c);
}

/* A block read from disk since it was written is kept when its region is reused (written again
 * at the region's start), so that a stream as large as the tier does not flush what is read
 * again; the stream's own old blocks go instead. */
static void test_disk_reinsertion(void **state)
{
    struct env *e = *state;
    struct cache *c = mk(e, 0, e->d1, 32 * MiB, 1 << 20);
    uint64_t cap = cache_disk_items_fit(c, MiB);
    assert_true(cap >= 16);
    struct cache_stats st;
    read_ok(c, "hot", "e", 4 * MiB, 0, 4 * MiB);
    WAIT_UNTIL((cache_get_stats(c, &st), st.disk_writes >= 4));
    read_ok(c, "hot", "e", 4 * MiB, 0, 4 * MiB); /* from disk: read since written */
    assert_int_equal(fake_fetches(&e->f), 4);
    /* A stream of as many blocks as the tier holds, one block at a time. */
    for (uint64_t b = 0; b < cap; b++) {
        read_ok(c, "stream", "e", cap * MiB, b * MiB, MiB);
        WAIT_UNTIL((cache_get_stats(c, &st), st.disk_writes + st.disk_writes_dropped >= 5 + b));
    }
    cache_get_stats(c, &st);
    assert_true(st.evictions_disk >= 4);
    uint8_t *buf = malloc(MiB);
    for (uint64_t off = 0; off < 4 * MiB; off += MiB)
        assert_int_equal(cache_read_local(c, "hot", "e", 4 * MiB, off, MiB, buf), MiB);
    assert_int_equal(cache_read_local(c, "stream", "e", cap * MiB, 0, MiB, buf), -ENOENT);
    free(buf);
    read_ok(c, "hot", "e", 4 * MiB, 0, 4 * MiB);
    cache_free(c);
    /* And after a restart: the kept items are where the summary says. */
    e->f.fetches = 0;
    c = mk(e, 0, e->d1, 32 * MiB, 1 << 20);
    read_ok(c, "hot", "e", 4 * MiB, 0, 4 * MiB);
    assert_int_equal(fake_fetches(&e->f), 0);
    cache_free(c);
}

/* A directory written by the block-slot format (superblock version 2) starts empty, reformatted:
 * never read as the new one. */
static void test_old_format(void **state)
{
    struct env *e = *state;
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", e->d1, CDISK_FILE_NAME);
    uint8_t sb[CDISK_SB_SIZE] = {0};
    memcpy(sb, "EFCCACHE", 8);
    sb[8] = 2;
    sb[12] = 0x10; /* 4096 */
    uint64_t crc = crc64_update(0, sb, 56);
    for (int i = 0; i < 8; i++)
        sb[56 + i] = (uint8_t)(crc >> (8 * i));
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(sb, 1, sizeof(sb), fp), sizeof(sb));
    for (int i = 0; i < 64; i++) /* slot headers and data of the old format */
        assert_int_equal(fwrite(sb, 1, sizeof(sb), fp), sizeof(sb));
    fclose(fp);
    struct cache *c = mk(e, 0, e->d1, 32 * MiB, 1 << 20);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.scan_blocks, 0);
    read_ok(c, "o", "e", 3 * MiB, 0, 3 * MiB);
    cache_free(c);
    fp = fopen(p, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(sb, 1, 16, fp), 16);
    fclose(fp);
    assert_int_equal(sb[8], 3);
    c = mk(e, 0, e->d1, 32 * MiB, 1 << 20);
    cache_get_stats(c, &st);
    assert_int_equal(st.scan_blocks, 3);
    cache_free(c);
}

static void test_stats(void **state)
{
    struct env *e = *state;
    struct cache *c = mk(e, 8 * MiB, NULL, 0, 1 << 20);
    read_ok(c, "s", "e", 4 * MiB, 0, 100);       /* miss */
    read_ok(c, "s", "e", 4 * MiB, 10, 50);       /* hit */
    read_ok(c, "s", "e", 4 * MiB, MiB - 10, 20); /* half hit, half miss: a miss */
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.read, 3);
    assert_int_equal(st.read_bytes, 170);
    assert_int_equal(st.read_hit, 1);
    assert_int_equal(st.read_miss, 2);
    assert_int_equal(st.read_hit_bytes, 50);
    assert_int_equal(st.read_miss_bytes, 120);
    assert_int_equal(st.root_read_source, 3); /* page-granular: 16 KiB each */
    assert_int_equal(st.root_read_source_bytes, 3 * 16 * KiB);
    assert_int_equal(st.direct_read, 0);
    assert_int_equal(st.blocks_mem, 2);
    assert_int_equal(st.mem_used, 2 * MiB);
    assert_int_equal(st.mem_capacity, 8 * MiB);
    cache_clear_stats(c);
    cache_get_stats(c, &st);
    assert_int_equal(st.read, 0);
    assert_int_equal(st.root_read_source_bytes, 0);
    assert_int_equal(st.blocks_mem, 2);
    cache_free(c);
}

static void test_prefetch(void **state)
{
    struct env *e = *state;
    for (int range = 1; range >= 0; range--) {
        e->no_range = !range;
        e->f.fetches = e->f.bytes = 0;
        e->f.latency_us = 0;
        rm_rf(e->d1); /* what the first round left would be found on disk */
        mkdir(e->d1, 0700);
        struct cache *c = mk(e, 16 * MiB, e->d1, 32 * MiB, 1 << 20);
        uint64_t size = 6 * MiB + 5;
        assert_int_equal(cache_prefetch(c, "pf", "e", size, 0, size, 0), 0);
        /* All 7 blocks published, not merely their bytes handed over by the source: a block is
           queued for the disk tier when it is published, so its disk write is the sign. */
        struct cache_stats st;
        WAIT_UNTIL((cache_get_stats(c, &st), st.disk_writes >= 7));
        settle(c);
        /* Runs of consecutive blocks, one request each (4 MiB at most): blocks 0-3, then 4-6. */
        assert_int_equal(fake_fetches(&e->f), 2);
        assert_int_equal(fake_bytes(&e->f), size);
        read_ok(c, "pf", "e", size, 0, size);
        assert_int_equal(fake_fetches(&e->f), 2);
        cache_get_stats(c, &st);
        assert_int_equal(st.read_hit, 1);
        assert_int_equal(st.root_read_source, 2);
        assert_int_equal(st.root_read_source_bytes, size);
        assert_int_equal(st.prefetch_queued, 7);
        /* Blocks already held split a run: one request for each stretch still missing. */
        read_ok(c, "pf3", "e", 8 * MiB, 2 * MiB, 1);
        uint64_t f0 = fake_fetches(&e->f);
        assert_int_equal(cache_prefetch(c, "pf3", "e", 8 * MiB, 0, 4 * MiB, 0), 0);
        WAIT_UNTIL(fake_fetches(&e->f) >= f0 + 3);
        settle(c);
        assert_int_equal(fake_fetches(&e->f), f0 + 3); /* 0-1, 2's other pages, 3 */
        read_ok(c, "pf3", "e", 8 * MiB, 0, 4 * MiB);
        assert_int_equal(fake_fetches(&e->f), f0 + 3);
        /* A run that fails part way: what came before the failure may be kept, the rest is
           fetched by its readers, and every byte read is right. */
        __atomic_store_n(&e->f.fail_per_mille, 1000, __ATOMIC_RELAXED);
        assert_int_equal(cache_prefetch(c, "pf4", "e", 4 * MiB, 0, 4 * MiB, 0), 0);
        WAIT_UNTIL((cache_get_stats(c, &st), st.source_errors > 0));
        __atomic_store_n(&e->f.fail_per_mille, 0, __ATOMIC_RELAXED);
        settle(c);
        read_ok(c, "pf4", "e", 4 * MiB, 0, 4 * MiB);
        /* The queue is bounded: a huge prefetch drops what does not fit. */
        __atomic_store_n(&e->f.latency_us, 20000, __ATOMIC_RELAXED);
        int rc = cache_prefetch(c, "pf2", "e", 4096 * MiB, 0, 4096 * MiB, 0);
        assert_int_equal(rc, -EAGAIN);
        cache_get_stats(c, &st);
        assert_true(st.prefetch_dropped > 0);
        cache_free(c); /* drops the queue, does not wait for it */
    }
    e->no_range = 0;
    e->f.latency_us = 0;
}

/* A sequential reader with readahead in a memory tier of 4 blocks: the read path keeps its
 * window at half of that (2 blocks), and the blocks fetched ahead must still be there when the
 * reader gets to them, although the reader reads each block in several pieces (each a hit) and
 * the blocks it has passed are more recent than those waiting ahead. Every block is fetched once.
 */
static void test_prefetch_tiny_memory(void **state)
{
    struct env *e = *state;
    struct cache *c = mk(e, 4 * MiB, NULL, 0, 1 << 20);
    const uint64_t nb = 32, size = nb * MiB;
    for (uint64_t k = 0; k < nb; k++) {
        /* The window: blocks k+1 and k+2 (k+1 was asked for at the previous step). */
        uint64_t from = k == 0 ? 1 : k + 2;
        if (from < nb) {
            uint64_t want = fake_bytes(&e->f) + (k == 0 ? 2 : 1) * MiB;
            assert_int_equal(
                cache_prefetch(c, "seq", "e", size, from * MiB, (k + 3 - from) * MiB, 0), 0);
            if (want > size)
                want = size;
            /* The blocks asked for are fetched before the reader gets to them. */
            WAIT_UNTIL(fake_bytes(&e->f) >= want);
        }
        for (uint64_t off = 0; off < MiB; off += 256 * KiB)
            read_ok(c, "seq", "e", size, k * MiB + off, 256 * KiB);
    }
    struct cache_stats st;
    cache_get_stats(c, &st);
    print_message("tiny memory: %llu bytes fetched for %llu, %llu evictions, %llu hits\n",
                  (unsigned long long)fake_bytes(&e->f), (unsigned long long)size,
                  (unsigned long long)st.evictions_mem, (unsigned long long)st.read_hit);
    assert_int_equal(fake_bytes(&e->f), size);
    assert_true(st.mem_used <= 4 * MiB);
    cache_free(c);
}

static void test_bad_config(void **state)
{
    struct env *e = *state;
    e->f.block_size = 1 << 20;
    struct blksrc *src = fake_source(&e->f, 1);
    struct cache *c = (struct cache *)1;
    char err[128];
    struct cache_config cfg = {.block_size = 3 << 20};
    assert_int_equal(cache_new(&cfg, src, &c, err, sizeof(err)), -EINVAL);
    assert_null(c);
    assert_non_null(strstr(err, "block size"));
    cfg = (struct cache_config){.block_size = 1 << 20, .page_size = 1024};
    assert_int_equal(cache_new(&cfg, src, &c, err, sizeof(err)), -EINVAL);
    cfg = (struct cache_config){.block_size = 1 << 20, .page_size = 2 << 20};
    assert_int_equal(cache_new(&cfg, src, &c, err, sizeof(err)), -EINVAL);
    cache_free(NULL);
}

static void test_item_header(void **state)
{
    (void)state;
    uint64_t valid[1] = {0x5}, crc[64], v2[1], c2[64];
    for (int i = 0; i < 64; i++)
        crc[i] = (uint64_t)i * 0x1234567ull;
    struct citem_hdr h = {.id = {1, 2},
                          .blen = 40000,
                          .seq = 9,
                          .block_size = 1 << 20,
                          .page_size = 16 << 10,
                          .npages = 64,
                          .valid = valid,
                          .crc = crc};
    uint32_t hs = citem_hdr_len(64, 2);
    assert_int_equal(hs, 64 + 8 + 16 + 8);
    uint8_t buf[1024];
    citem_hdr_encode(&h, buf);
    assert_int_equal(h.nvalid, 2);
    /* Pages 0 and 2 of 40000 bytes: 16384 + (40000 - 32768), after the header, to 512. */
    assert_int_equal(h.item_len, (hs + 16384 + 7232 + 511) / 512 * 512);
    struct citem_hdr d = {.valid = v2, .crc = c2};
    assert_int_equal(citem_hdr_decode(buf, hs, 1 << 20, 16 << 10, &d), 0);
    assert_int_equal(d.id[1], 2);
    assert_int_equal(d.seq, 9);
    assert_int_equal(d.blen, 40000);
    assert_int_equal(d.valid[0], 5);
    assert_int_equal(d.crc[2], crc[2]);
    assert_int_equal(d.crc[1], 0);
    assert_int_equal(d.item_len, h.item_len);
    /* The fixed part alone says how long the header is. */
    assert_int_equal(citem_hdr_decode(buf, CITEM_FIXED, 1 << 20, 16 << 10, &d), -EAGAIN);
    assert_int_equal(citem_hdr_len(d.npages, d.nvalid), hs);
    assert_int_equal(citem_hdr_decode(buf, CITEM_FIXED - 1, 1 << 20, 16 << 10, &d), -EBADMSG);
    assert_int_equal(citem_hdr_decode(buf, hs, 1 << 19, 16 << 10, &d), -EBADMSG);
    buf[70] ^= 1;
    assert_int_equal(citem_hdr_decode(buf, hs, 1 << 20, 16 << 10, &d), -EBADMSG);
    /* A valid bit past the block's end (40000 bytes = 3 pages) is refused. */
    valid[0] = 0x9;
    citem_hdr_encode(&h, buf);
    assert_int_equal(citem_hdr_decode(buf, hs, 1 << 20, 16 << 10, &d), -EBADMSG);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(citem_hdr_decode(buf, hs, 1 << 20, 16 << 10, &d), -ENOENT);
}

static int direct_evict(void *arg, uint32_t region, uint32_t off, const struct citem_hdr *h)
{
    (void)arg, (void)region, (void)off, (void)h;
    return 0;
}

static void direct_moved(void *arg, const struct citem_hdr *h, uint32_t region, uint32_t off)
{
    (void)arg, (void)h, (void)region, (void)off;
}

static int direct_count(void *arg, uint32_t region, uint32_t off, const struct citem_hdr *h)
{
    (void)region, (void)off, (void)h;
    (*(int *)arg)++;
    return 0;
}

#define DIRECT_ITEMS 24

/* How many of the pages of DIR's cache file are in the page cache (*RES) of how many (*TOTAL). */
static void resident_pages(const char *dir, size_t *res, size_t *total)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, CDISK_FILE_NAME);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    size_t len = (size_t)st.st_size, ps = (size_t)sysconf(_SC_PAGESIZE);
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    *total = (len + ps - 1) / ps;
    unsigned char *v = malloc(*total);
    assert_int_equal(mincore(m, len, v), 0);
    *res = 0;
    for (size_t i = 0; i < *total; i++)
        *res += v[i] & 1;
    free(v);
    munmap(m, len);
    close(fd);
}

/* Appends items of many lengths (so that they start and end anywhere in a 4096-byte block, and
 * share blocks with their neighbours) to a cache file in a new directory under PARENT, reads
 * every page back, and again after a restart; the file must be written with O_DIRECT or not as
 * WANT says. */
static void disk_roundtrip(const char *parent, int want)
{
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/efc-cache-direct-XXXXXX", parent);
    assert_non_null(mkdtemp(dir));
    const uint32_t bs = 1 << 20, ps = 4096, np = bs / ps;
    static const uint32_t lens[] = {1,     100,   4000,   4096,   5000, 16384,
                                    16385, 40000, 100000, bs - 3, bs};
    uint8_t *src = malloc(bs), *got = malloc(bs);
    uint64_t valid[DIRECT_ITEMS][4], crc[256], bad[4];
    uint32_t reg[DIRECT_ITEMS], off[DIRECT_ITEMS];
    const struct cdisk_owner own = {direct_evict, direct_moved, NULL};
    struct cdisk *d = NULL;
    char err[256];
    for (int round = 0; round < 2; round++) {
        assert_int_equal(cdisk_open(dir, 64 * MiB, bs, ps, "ns", &d, err, sizeof(err)), 0);
        assert_int_equal(cdisk_direct(d), want);
        if (round == 1) {
            int n = 0;
            assert_int_equal(cdisk_scan(d, direct_count, &n), 0);
            assert_int_equal(n, DIRECT_ITEMS);
        }
        for (int i = 0; i < DIRECT_ITEMS && round == 0; i++) {
            uint32_t blen = lens[i % (sizeof(lens) / sizeof(lens[0]))];
            uint64_t id[2] = {(uint64_t)i + 1, 77};
            for (uint32_t b = 0; b < blen; b++)
                src[b] = (uint8_t)(b * 7 + (uint32_t)i * 13 + (b >> 12));
            /* Every page, or (odd items) every other one. */
            memset(valid[i], 0, sizeof(valid[i]));
            for (uint32_t p = 0; (uint64_t)p * ps < blen; p += (uint32_t)(i % 2) + 1) {
                valid[i][p / 64] |= 1ull << (p % 64);
                uint64_t pl = blen - (uint64_t)p * ps < ps ? blen - (uint64_t)p * ps : ps;
                crc[p] = cslot_page_crc(id, p, src + (uint64_t)p * ps, pl);
            }
            struct citem_hdr h = {
                .id = {id[0], id[1]}, .blen = blen, .valid = valid[i], .crc = crc};
            assert_int_equal(cdisk_append(d, &h, src, &own, &reg[i], &off[i]), 0);
            cdisk_append_done(d, reg[i]);
        }
        if (round == 0) {
            /* Written directly, the file's pages are not in the page cache (but the 4096-byte
               blocks shared by two items, or with a region header); written through it, all
               are. */
            size_t res = 0, total = 0;
            resident_pages(dir, &res, &total);
            print_message("%s: %zu of the file's %zu pages in the page cache\n", parent, res,
                          total);
            if (want)
                assert_true(res * 4 < total);
            else
                assert_int_equal(res, total);
        }
        for (int i = 0; i < DIRECT_ITEMS; i++) {
            uint32_t blen = lens[i % (sizeof(lens) / sizeof(lens[0]))];
            uint64_t id[2] = {(uint64_t)i + 1, 77};
            for (uint32_t b = 0; b < blen; b++)
                src[b] = (uint8_t)(b * 7 + (uint32_t)i * 13 + (b >> 12));
            memset(got, 0xee, bs);
            memset(bad, 0, sizeof(bad));
            cdisk_hold(d, reg[i]);
            assert_int_equal(
                cdisk_read_pages(d, reg[i], off[i], id, blen, valid[i], valid[i], got, bad), 0);
            cdisk_unhold(d, reg[i]);
            for (uint32_t w = 0; w < np / 64; w++)
                assert_int_equal(bad[w], 0);
            for (uint32_t p = 0; (uint64_t)p * ps < blen; p++) {
                if (!(valid[i][p / 64] >> (p % 64) & 1))
                    continue;
                uint64_t pl = blen - (uint64_t)p * ps < ps ? blen - (uint64_t)p * ps : ps;
                assert_memory_equal(got + (uint64_t)p * ps, src + (uint64_t)p * ps, pl);
            }
        }
        cdisk_close(d);
    }
    free(src);
    free(got);
    rm_rf(dir);
}

/* The disk tier writes its file with O_DIRECT where the file system allows it (/var/tmp, on the
 * root file system), through the page cache on a tmpfs (/dev/shm), and reads back the same
 * bytes either way. */
static void test_disk_direct(void **state)
{
    (void)state;
    struct statfs fs;
    assert_int_equal(statfs("/dev/shm", &fs), 0);
    assert_int_equal(fs.f_type, TMPFS_MAGIC);
    disk_roundtrip("/dev/shm", 0);
    assert_int_equal(statfs("/var/tmp", &fs), 0);
    if (fs.f_type == TMPFS_MAGIC)
        fail_msg("/var/tmp is a tmpfs: this test needs a file system that takes O_DIRECT");
    disk_roundtrip("/var/tmp", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_item_header),
        cmocka_unit_test(test_disk_direct),
        cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hit_miss_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etag_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref, setup, teardown),
        cmocka_unit_test_setup_teardown(test_singleflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_tiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enospc_tmpfs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_removed_and_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_overhead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_same_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mem_by_bytes, setup, teardown),
        cmocka_unit_test(test_mem_runs_random),
        cmocka_unit_test_setup_teardown(test_mem_classes, setup, teardown),
        cmocka_unit_test(test_arena_ahead),
        cmocka_unit_test_setup_teardown(test_memfd_fill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_reinsertion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefetch_tiny_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
