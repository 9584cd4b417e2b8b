#define _GNU_SOURCE
/* tests/unit/efc/test_meta.c - the metadata cache: positive and negative entries, replacement,
 * drop, clear, the memory bound, and concurrent use. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "efc/meta_i.h"

static struct efc_meta_ent file_ent(uint64_t size, const char *etag)
{
    struct efc_meta_ent m;
    memset(&m, 0, sizeof(m));
    m.present = true;
    m.size = size;
    m.mtime = 1700000000;
    snprintf(m.etag, sizeof(m.etag), "%s", etag);
    return m;
}

static void test_put_get_drop_clear(void **state)
{
    struct efc_meta *m;
    struct efc_meta_ent v, out;
    struct efc_meta_stats st;

    assert_int_equal(efc_meta_new(0, &m), 0);
    assert_int_equal(efc_meta_get(m, "a/b", 3, &out), 0);
    v = file_ent(10, "\"e1\"");
    efc_meta_put(m, "a/b", 3, &v);
    assert_int_equal(efc_meta_get(m, "a/b", 3, &out), 1);
    assert_true(out.present);
    assert_int_equal(out.size, 10);
    assert_string_equal(out.etag, "\"e1\"");
    /* a prefix of the key is another key */
    assert_int_equal(efc_meta_get(m, "a/", 2, &out), 0);
    /* replacement */
    v = file_ent(20, "\"e2\"");
    efc_meta_put(m, "a/b", 3, &v);
    assert_int_equal(efc_meta_get(m, "a/b", 3, &out), 1);
    assert_int_equal(out.size, 20);
    /* negative entries */
    memset(&v, 0, sizeof(v));
    efc_meta_put(m, "nope", 4, &v);
    assert_int_equal(efc_meta_get(m, "nope", 4, &out), 1);
    assert_false(out.present);
    efc_meta_get_stats(m, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.negative_hits, 1);
    efc_meta_drop(m, "a/b", 3);
    assert_int_equal(efc_meta_get(m, "a/b", 3, &out), 0);
    assert_int_equal(efc_meta_clear(m), 1);
    assert_int_equal(efc_meta_get(m, "nope", 4, &out), 0);
    efc_meta_get_stats(m, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    efc_meta_free(m);
}

/* Many keys under a small bound: memory stays under it, recent keys survive. */
static void test_bound(void **state)
{
    struct efc_meta *m;
    struct efc_meta_stats st;
    struct efc_meta_ent v = file_ent(1, "\"x\""), out;
    char key[64];
    const uint64_t bound = 256 << 10;

    assert_int_equal(efc_meta_new(bound, &m), 0);
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof(key), "dir/file-%06d", i);
        efc_meta_put(m, key, (size_t)n, &v);
    }
    efc_meta_get_stats(m, &st);
    assert_true(st.bytes <= bound);
    assert_true(st.evicted > 0);
    assert_true(st.entries > 100);
    int n = snprintf(key, sizeof(key), "dir/file-%06d", 99999);
    assert_int_equal(efc_meta_get(m, key, (size_t)n, &out), 1);
    n = snprintf(key, sizeof(key), "dir/file-%06d", 0);
    assert_int_equal(efc_meta_get(m, key, (size_t)n, &out), 0);
    efc_meta_free(m);
}

static struct efc_meta *shared;

static void *hammer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char key[32];
    struct efc_meta_ent v = file_ent(7, "\"h\""), out;
    for (int i = 0; i < 50000; i++) {
        int k = (int)(rand_r(&seed) % 5000);
        int n = snprintf(key, sizeof(key), "k%d", k);
        switch (rand_r(&seed) % 8) {
        case 0:
            efc_meta_drop(shared, key, (size_t)n);
            break;
        case 1:
            efc_meta_put(shared, key, (size_t)n, &v);
            break;
        case 2:
            if (i % 5000 == 0)
                efc_meta_clear(shared);
            break;
        default:
            if (efc_meta_get(shared, key, (size_t)n, &out))
                assert_int_equal(out.size, 7);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t t[8];
    assert_int_equal(efc_meta_new(64 << 10, &shared), 0);
    for (uintptr_t i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, (void *)(i + 1)), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    struct efc_meta_stats st;
    efc_meta_get_stats(shared, &st);
    assert_true(st.bytes <= 64 << 10);
    efc_meta_free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_drop_clear),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
