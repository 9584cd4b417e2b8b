#define _GNU_SOURCE
/* tests/unit/efc/test_first.c - the first-block layer: block 0 of a version served from what
 * open's GET brought (fetch and fetch_range, a run past block 0 split in two), everything else
 * passed below; entries leave once fetched whole, and oldest first past the bounds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "efc/first_i.h"

#define BS 65536u

/* The source below: object bytes are (offset * 7) & 0xff; it counts its calls. */
struct below {
    struct blksrc src;
    unsigned fetches, ranges;
    uint64_t last_index, last_len;
};

static uint8_t obj_byte(uint64_t off)
{
    return (uint8_t)(off * 7);
}

static ssize_t below_fetch(struct blksrc *s, const struct blkreq *rq, uint64_t off, size_t len,
                           void *buf, enum blk_from *from)
{
    struct below *b = (struct below *)s;
    uint64_t start = rq->index * BS + off;
    b->fetches++;
    if (start >= rq->obj_size)
        return 0;
    if (len > rq->obj_size - start)
        len = (size_t)(rq->obj_size - start);
    for (size_t i = 0; i < len; i++)
        ((uint8_t *)buf)[i] = obj_byte(start + i);
    *from = BLK_FROM_ORIGIN;
    return (ssize_t)len;
}

static int below_range(struct blksrc *s, const struct blkreq *rq, uint64_t len, blk_sink_fn sink,
                       void *arg)
{
    struct below *b = (struct below *)s;
    uint64_t start = rq->index * BS;
    uint8_t chunk[4096];
    b->ranges++;
    b->last_index = rq->index;
    b->last_len = len;
    if (len > rq->obj_size - start)
        len = rq->obj_size - start;
    for (uint64_t o = 0; o < len; o += sizeof(chunk)) {
        size_t n = len - o < sizeof(chunk) ? (size_t)(len - o) : sizeof(chunk);
        for (size_t i = 0; i < n; i++)
            chunk[i] = obj_byte(start + o + i);
        int rc = sink(arg, chunk, n, BLK_FROM_ORIGIN);
        if (rc)
            return rc;
    }
    return 0;
}

static const struct blksrc_ops below_ops = {"below", below_fetch, below_range};

/* A first block as open would put it: bytes marked 0xEE so that they are told apart. */
static void *marked(size_t len)
{
    void *p = malloc(len);
    assert_non_null(p);
    memset(p, 0xEE, len);
    return p;
}

struct collect {
    uint8_t *buf;
    uint64_t n;
};

static int collect(void *arg, const void *data, size_t n, enum blk_from from)
{
    struct collect *c = arg;
    assert_int_equal(from, BLK_FROM_ORIGIN);
    memcpy(c->buf + c->n, data, n);
    c->n += n;
    return 0;
}

static void test_small_object_served_once_whole(void **state)
{
    struct below b = {.src = {&below_ops, BS}};
    struct efc_first *f;
    struct efc_first_stats st;
    uint8_t buf[1000];
    enum blk_from from;

    assert_int_equal(efc_first_new(&b.src, 0, &f), 0);
    struct blksrc *s = efc_first_src(f);
    assert_int_equal(s->block_size, BS);
    assert_int_equal(efc_first_put(f, "k", "\"e1\"", 1000, marked(1000), 1000), 0);

    /* Part of it: served, and kept for the rest. */
    struct blkreq rq = {.key = "k", .etag = "\"e1\"", .obj_size = 1000};
    assert_int_equal(blksrc_fetch(s, &rq, 100, 50, buf, &from), 50);
    assert_int_equal(buf[0], 0xEE);
    /* Another version, another key, another block: below. */
    rq.etag = "\"e2\"";
    assert_int_equal(blksrc_fetch(s, &rq, 0, 10, buf, &from), 10);
    assert_int_equal(buf[1], obj_byte(1));
    rq.etag = "\"e1\"";
    rq.key = "other";
    assert_int_equal(blksrc_fetch(s, &rq, 0, 10, buf, &from), 10);
    assert_int_equal(b.fetches, 2);
    /* The whole of it (asked past the end: clipped): served, and the entry leaves. */
    rq.key = "k";
    memset(buf, 0, sizeof(buf));
    assert_int_equal(blksrc_fetch(s, &rq, 0, BS, buf, &from), 1000);
    assert_int_equal(buf[999], 0xEE);
    assert_int_equal(b.fetches, 2);
    efc_first_get_stats(f, &st);
    assert_int_equal(st.puts, 1);
    assert_int_equal(st.served, 2);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(blksrc_fetch(s, &rq, 0, 10, buf, &from), 10);
    assert_int_equal(b.fetches, 3);
    assert_int_equal(buf[1], obj_byte(1));
    efc_first_free(f);
}

static void test_range_split_past_block_zero(void **state)
{
    struct below b = {.src = {&below_ops, BS}};
    struct efc_first *f;
    const uint64_t size = 3 * BS + 5;
    uint8_t *buf = malloc(size);

    assert_int_equal(efc_first_new(&b.src, 0, &f), 0);
    struct blksrc *s = efc_first_src(f);
    /* LEN must be the whole block. */
    assert_int_equal(efc_first_put(f, "big", "\"e\"", size, marked(100), 100), -EINVAL);
    assert_int_equal(efc_first_put(f, "big", "", size, marked(BS), BS), -EINVAL);
    assert_int_equal(efc_first_put(f, "big", "\"e\"", size, marked(BS), BS), 0);

    struct blkreq rq = {.key = "big", .etag = "\"e\"", .obj_size = size};
    struct collect c = {buf, 0};
    assert_int_equal(blksrc_fetch_range(s, &rq, size, collect, &c), 0);
    assert_int_equal(c.n, size);
    assert_int_equal(buf[0], 0xEE);
    assert_int_equal(buf[BS - 1], 0xEE);
    assert_int_equal(buf[BS], obj_byte(BS));
    assert_int_equal(buf[size - 1], obj_byte(size - 1));
    assert_int_equal(b.ranges, 1);
    assert_int_equal(b.last_index, 1);
    assert_int_equal(b.last_len, size - BS);
    /* Taken whole: the next run goes below from block 0. */
    c.n = 0;
    assert_int_equal(blksrc_fetch_range(s, &rq, BS, collect, &c), 0);
    assert_int_equal(buf[0], obj_byte(0));
    assert_int_equal(b.last_index, 0);
    free(buf);
    efc_first_free(f);
}

static void test_bounds_drop_oldest(void **state)
{
    struct below b = {.src = {&below_ops, BS}};
    struct efc_first *f;
    struct efc_first_stats st;
    char key[16];
    uint8_t byte;
    enum blk_from from;

    /* Room for three blocks of 40000 bytes. */
    assert_int_equal(efc_first_new(&b.src, 3 * 40000, &f), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(efc_first_put(f, key, "\"e\"", 40000, marked(40000), 40000), 0);
    }
    efc_first_get_stats(f, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.bytes, 3 * 40000);
    assert_int_equal(st.dropped, 2);
    struct blkreq rq = {.key = "k0", .etag = "\"e\"", .obj_size = 40000};
    assert_int_equal(blksrc_fetch(efc_first_src(f), &rq, 0, 1, &byte, &from), 1);
    assert_int_equal(byte, obj_byte(0)); /* k0 left: from below */
    rq.key = "k4";
    assert_int_equal(blksrc_fetch(efc_first_src(f), &rq, 0, 1, &byte, &from), 1);
    assert_int_equal(byte, 0xEE);
    /* The same version put again replaces its entry. */
    assert_int_equal(efc_first_put(f, "k4", "\"e\"", 40000, marked(40000), 40000), 0);
    efc_first_get_stats(f, &st);
    assert_int_equal(st.entries, 3);
    efc_first_free(f); /* entries still held are freed (ASan checks) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_object_served_once_whole),
        cmocka_unit_test(test_range_split_past_block_zero),
        cmocka_unit_test(test_bounds_drop_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
