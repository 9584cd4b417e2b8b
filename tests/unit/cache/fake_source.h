/* tests/unit/cache/fake_source.h - a deterministic block source (cache/blksrc.h) for the cache
 * tests: the byte at offset o of (key, etag) is a function of the three, so any read can be
 * verified. It counts fetches and bytes, can add latency or fail, and says its bytes come from
 * wherever the test wants (f->from, the origin by default). Header-only: each test file includes
 * it once.
 */
#ifndef EFC_TEST_FAKE_SOURCE_H
#define EFC_TEST_FAKE_SOURCE_H

#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"

struct fake {
    struct blksrc src; /* first: fake_source() hands out its address */
    uint32_t block_size;
    int one_piece;       /* fetch_range delivers a range in one sink call (else in uneven pieces) */
    enum blk_from from;  /* what every fetch reports (fake_source sets BLK_FROM_ORIGIN) */
    unsigned flags_seen; /* atomic: the BLKREQ_* flags of every fetch or-ed together */
    uint64_t fetches, bytes;         /* atomic */
    int fail_errno;                  /* atomic: every fetch fails with -fail_errno while set */
    unsigned fail_per_mille;         /* atomic: random failures (-EIO), 0..1000 */
    unsigned latency_us;             /* atomic */
    unsigned inflight, max_inflight; /* atomic: fetches in their latency at once, now and at most */
    unsigned hold;                   /* atomic: fetches wait while it is set (at most 120 s) */
};

static uint64_t fake_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t fake_seed(const char *key, const char *etag)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = etag; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h;
}

static void fake_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint64_t o = off + i, word = fake_mix(seed ^ (o >> 3));
        unsigned b = (unsigned)(o & 7);
        for (; b < 8 && i < len; b++, i++)
            buf[i] = (uint8_t)(word >> (8 * b));
    }
}

/* Returns the offset of the first wrong byte, or -1. */
static inline long long fake_check(const char *key, const char *etag, uint64_t off,
                                   const uint8_t *buf, size_t len)
{
    uint8_t tmp[4096];
    uint64_t seed = fake_seed(key, etag);
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof(tmp) ? len - done : sizeof(tmp);
        fake_fill(seed, off + done, tmp, n);
        if (memcmp(tmp, buf + done, n) != 0) {
            for (size_t k = 0; k < n; k++)
                if (tmp[k] != buf[done + k])
                    return (long long)(done + k);
        }
        done += n;
    }
    return -1;
}

static __thread uint64_t fake_rng = 88172645463325252ull;

static inline uint64_t fake_rand(void)
{
    fake_rng ^= fake_rng << 13;
    fake_rng ^= fake_rng >> 7;
    fake_rng ^= fake_rng << 17;
    return fake_rng;
}

/* What every fetch does first: count it, wait the latency, fail with -fail_errno if set. Returns
 * 0 or that -errno. */
static inline int fake_begin(struct fake *f)
{
    __atomic_fetch_add(&f->fetches, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 120000 && __atomic_load_n(&f->hold, __ATOMIC_ACQUIRE); i++)
        usleep(1000);
    unsigned lat = __atomic_load_n(&f->latency_us, __ATOMIC_RELAXED);
    if (lat) {
        unsigned now = __atomic_add_fetch(&f->inflight, 1, __ATOMIC_RELAXED);
        unsigned top = __atomic_load_n(&f->max_inflight, __ATOMIC_RELAXED);
        while (now > top && !__atomic_compare_exchange_n(&f->max_inflight, &top, now, 1,
                                                         __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            ;
        usleep(lat);
        __atomic_sub_fetch(&f->inflight, 1, __ATOMIC_RELAXED);
    }
    return -__atomic_load_n(&f->fail_errno, __ATOMIC_RELAXED);
}

static ssize_t fake_fetch(struct blksrc *s, const struct blkreq *rq, uint64_t off, size_t len,
                          void *buf, enum blk_from *from)
{
    struct fake *f = (struct fake *)s;
    const char *key = rq->key, *etag = rq->etag;
    uint64_t obj_size = rq->obj_size, index = rq->index;
    *from = f->from;
    __atomic_fetch_or(&f->flags_seen, rq->flags, __ATOMIC_RELAXED);
    int rc = fake_begin(f);
    if (rc)
        return rc;
    unsigned fpm = __atomic_load_n(&f->fail_per_mille, __ATOMIC_RELAXED);
    if (fpm && fake_rand() % 1000 < fpm)
        return -EIO;
    uint64_t pos = index * f->block_size + off;
    if (pos >= obj_size)
        return 0;
    uint64_t n = obj_size - pos < len ? obj_size - pos : len;
    fake_fill(fake_seed(key, etag), pos, buf, n);
    __atomic_fetch_add(&f->bytes, n, __ATOMIC_RELAXED);
    return (ssize_t)n;
}

/* The same bytes handed to SINK in uneven pieces (so that pieces straddle block ends), or in one
 * piece (f->one_piece); a random failure strikes after part of the range was delivered. */
static inline int fake_fetch_range(struct blksrc *s, const struct blkreq *rq, uint64_t len,
                                   blk_sink_fn sink, void *sink_arg)
{
    struct fake *f = (struct fake *)s;
    const char *key = rq->key, *etag = rq->etag;
    uint64_t obj_size = rq->obj_size, index = rq->index;
    __atomic_fetch_or(&f->flags_seen, rq->flags, __ATOMIC_RELAXED);
    int rc = fake_begin(f);
    if (rc)
        return rc;
    uint64_t pos = index * f->block_size;
    if (pos >= obj_size)
        return 0;
    uint64_t end = obj_size - pos < len ? obj_size : pos + len;
    size_t piece_max = f->one_piece ? (size_t)(end - pos) : 96 * 1024;
    uint8_t *piece = malloc(piece_max);
    if (!piece)
        return -ENOMEM;
    unsigned fpm = __atomic_load_n(&f->fail_per_mille, __ATOMIC_RELAXED);
    int fail = fpm && fake_rand() % 1000 < fpm;
    uint64_t fail_at = fail ? pos + fake_rand() % (end - pos) : UINT64_MAX;
    uint64_t seed = fake_seed(key, etag);
    while (pos < end) {
        uint64_t n = f->one_piece ? piece_max : 1 + fake_rand() % piece_max;
        if (n > end - pos)
            n = end - pos;
        if (pos + n > fail_at) {
            rc = -EIO;
            break;
        }
        fake_fill(seed, pos, piece, n);
        __atomic_fetch_add(&f->bytes, n, __ATOMIC_RELAXED);
        rc = sink(sink_arg, piece, n, f->from);
        if (rc)
            break;
        pos += n;
    }
    free(piece);
    return rc;
}

static const struct blksrc_ops fake_ops = {"fake", fake_fetch, fake_fetch_range};

/* F as a block source of f->block_size blocks, reporting the origin; with RANGE, ranges come in
 * uneven pieces, else in one. */
static inline struct blksrc *fake_source(struct fake *f, int range)
{
    f->src.ops = &fake_ops;
    f->src.block_size = f->block_size;
    f->one_piece = !range;
    f->from = BLK_FROM_ORIGIN;
    return &f->src;
}

static inline uint64_t fake_fetches(struct fake *f)
{
    return __atomic_load_n(&f->fetches, __ATOMIC_RELAXED);
}

static inline uint64_t fake_bytes(struct fake *f)
{
    return __atomic_load_n(&f->bytes, __ATOMIC_RELAXED);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void rm_rf(const char *path)
{
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
