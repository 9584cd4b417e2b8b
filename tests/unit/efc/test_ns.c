#define _GNU_SOURCE
/* tests/unit/efc/test_ns.c - the inode table: stable numbers, lookup counting, forget, type
 * changes, attribute freshness, open versions, growth and concurrent use. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "efc/ns_i.h"

static struct efc_attr file_attr(uint64_t size, const char *etag, uint64_t t)
{
    struct efc_attr a;
    memset(&a, 0, sizeof(a));
    a.size = size;
    a.mtime = 1700000000;
    a.fetched_ms = t;
    snprintf(a.etag, sizeof(a.etag), "%s", etag);
    return a;
}

static uint64_t add(struct efc_ns *ns, uint64_t parent, const char *name, const char *key, bool dir,
                    const struct efc_attr *a)
{
    uint64_t ino = 0;
    assert_int_equal(efc_ns_add(ns, parent, name, strlen(name), key, dir, a, &ino, NULL), 0);
    assert_true(ino != 0);
    return ino;
}

static void test_root(void **state)
{
    struct efc_ns *ns;
    struct efc_node_info n;

    assert_int_equal(efc_ns_new("models/v1/", &ns), 0);
    assert_int_equal(efc_ns_get(ns, EFC_ROOT_INO, &n), 0);
    assert_true(n.is_dir);
    assert_string_equal(n.key, "models/v1/");
    assert_int_equal(n.parent, EFC_ROOT_INO);
    /* the root is never forgotten */
    assert_false(efc_ns_forget(ns, EFC_ROOT_INO, 100));
    assert_int_equal(efc_ns_get(ns, EFC_ROOT_INO, &n), 0);
    assert_int_equal(efc_ns_get(ns, 2, &n), -ENOENT);
    efc_ns_free(ns);
}

static void test_stable_numbers_and_counting(void **state)
{
    struct efc_ns *ns;
    struct efc_node_info n;
    struct efc_attr a = file_attr(10, "\"E1\"", 5);

    assert_int_equal(efc_ns_new("", &ns), 0);
    uint64_t x = add(ns, EFC_ROOT_INO, "x", "x", false, &a);
    assert_true(x != EFC_ROOT_INO);
    assert_int_equal(add(ns, EFC_ROOT_INO, "x", "x", false, &a), x);
    assert_int_equal(add(ns, EFC_ROOT_INO, "x", "x", false, NULL), x);
    assert_int_equal(efc_ns_nlookup(ns, x), 3);
    assert_int_equal(efc_ns_find(ns, EFC_ROOT_INO, "x", 1), x);
    assert_int_equal(efc_ns_find(ns, EFC_ROOT_INO, "y", 1), 0);

    /* the same name under another parent is another node */
    uint64_t d = add(ns, EFC_ROOT_INO, "d", "d/", true, NULL);
    uint64_t dx = add(ns, d, "x", "d/x", false, &a);
    assert_true(dx != x && dx != d);
    assert_int_equal(efc_ns_get(ns, dx, &n), 0);
    assert_string_equal(n.key, "d/x");
    assert_int_equal(n.parent, d);
    assert_int_equal(efc_ns_get(ns, d, &n), 0);
    assert_string_equal(n.key, "d/");
    assert_true(n.is_dir);

    /* forget in parts; the node lives until the count reaches zero */
    assert_false(efc_ns_forget(ns, x, 2));
    assert_int_equal(efc_ns_get(ns, x, &n), 0);
    assert_int_equal(efc_ns_nlookup(ns, x), 1);
    assert_false(efc_ns_forget(ns, x, 1));
    assert_int_equal(efc_ns_get(ns, x, &n), -ENOENT);
    assert_int_equal(efc_ns_find(ns, EFC_ROOT_INO, "x", 1), 0);
    /* a new lookup never reuses the number */
    uint64_t x2 = add(ns, EFC_ROOT_INO, "x", "x", false, &a);
    assert_true(x2 != x && x2 != dx && x2 != d);

    /* forgetting a directory says so */
    assert_false(efc_ns_forget(ns, dx, 1));
    assert_true(efc_ns_forget(ns, d, 1));

    /* the kernel forgetting more than it holds is clamped, not wrapped */
    assert_false(efc_ns_forget(ns, x2, 5));
    assert_int_equal(efc_ns_get(ns, x2, &n), -ENOENT);
    /* unknown numbers are ignored */
    assert_false(efc_ns_forget(ns, 12345678, 1));

    struct efc_ns_stats st;
    efc_ns_get_stats(ns, &st);
    assert_int_equal(st.nodes, 1);
    assert_int_equal(st.created, 5);
    assert_int_equal(st.freed, 4);
    efc_ns_free(ns);
}

static void test_type_change(void **state)
{
    struct efc_ns *ns;
    struct efc_node_info n;
    struct efc_attr a = file_attr(3, "\"F\"", 1);

    assert_int_equal(efc_ns_new("p/", &ns), 0);
    uint64_t f = add(ns, EFC_ROOT_INO, "x", "p/x", false, &a);
    uint64_t d = add(ns, EFC_ROOT_INO, "x", "p/x/", true, NULL);
    assert_true(d != f);
    /* the name leads to the directory; the file's inode lingers until forgotten */
    assert_int_equal(efc_ns_find(ns, EFC_ROOT_INO, "x", 1), d);
    assert_int_equal(efc_ns_get(ns, f, &n), 0);
    assert_false(n.is_dir);
    assert_int_equal(efc_ns_get(ns, d, &n), 0);
    assert_true(n.is_dir);
    assert_string_equal(n.key, "p/x/");
    /* forgetting the old file must not unname the directory */
    efc_ns_forget(ns, f, 1);
    assert_int_equal(efc_ns_find(ns, EFC_ROOT_INO, "x", 1), d);
    assert_int_equal(add(ns, EFC_ROOT_INO, "x", "p/x/", true, NULL), d);
    assert_int_equal(efc_ns_nlookup(ns, d), 2);
    /* and back to a file: a third number */
    uint64_t f2 = add(ns, EFC_ROOT_INO, "x", "p/x", false, &a);
    assert_true(f2 != f && f2 != d);
    efc_ns_free(ns);
}

static void test_attr_freshness(void **state)
{
    struct efc_ns *ns;
    struct efc_node_info n;
    struct efc_attr a = file_attr(100, "\"NEW\"", 50), old = file_attr(7, "\"OLD\"", 40), out;
    uint64_t ino;

    assert_int_equal(efc_ns_new("", &ns), 0);
    assert_int_equal(efc_ns_add(ns, EFC_ROOT_INO, "f", 1, "f", false, &a, &ino, &out), 0);
    assert_int_equal(out.size, 100);
    /* an older listing does not overwrite a newer HEAD, and the caller gets the newer one */
    assert_int_equal(efc_ns_add(ns, EFC_ROOT_INO, "f", 1, "f", false, &old, &ino, &out), 0);
    assert_int_equal(out.size, 100);
    assert_string_equal(out.etag, "\"NEW\"");
    assert_int_equal(efc_ns_set_attr(ns, ino, &old), 0);
    assert_int_equal(efc_ns_get(ns, ino, &n), 0);
    assert_int_equal(n.attr.size, 100);
    struct efc_attr newer = file_attr(5, "\"N2\"", 60);
    assert_int_equal(efc_ns_set_attr(ns, ino, &newer), 0);
    assert_int_equal(efc_ns_get(ns, ino, &n), 0);
    assert_int_equal(n.attr.size, 5);
    assert_string_equal(n.attr.etag, "\"N2\"");
    assert_int_equal(n.attr.fetched_ms, 60);
    assert_int_equal(efc_ns_set_attr(ns, 999999, &newer), -ENOENT);
    efc_ns_free(ns);
}

static void test_open_versions(void **state)
{
    struct efc_ns *ns;
    bool same, changed;
    struct efc_attr v1 = file_attr(10, "\"V1\"", 10), v2 = file_attr(12, "\"V2\"", 20);
    uint64_t ino;

    assert_int_equal(efc_ns_new("", &ns), 0);
    assert_int_equal(efc_ns_add(ns, EFC_ROOT_INO, "f", 1, "f", false, &v1, &ino, NULL), 0);
    /* first open: nothing can be cached yet, attributes as the lookup said */
    assert_int_equal(efc_ns_opened(ns, ino, &v1, &same, &changed), 0);
    assert_false(same);
    assert_false(changed);
    /* reopen of the same version: keep the page cache */
    assert_int_equal(efc_ns_opened(ns, ino, &v1, &same, &changed), 0);
    assert_true(same);
    assert_false(changed);
    /* the object changed: drop pages and attributes */
    assert_int_equal(efc_ns_opened(ns, ino, &v2, &same, &changed), 0);
    assert_false(same);
    assert_true(changed);
    struct efc_node_info n;
    assert_int_equal(efc_ns_get(ns, ino, &n), 0);
    assert_int_equal(n.attr.size, 12);
    /* a listing that still shows V1 later does not make V1 look cached */
    struct efc_attr stale = file_attr(10, "\"V1\"", 30);
    assert_int_equal(efc_ns_set_attr(ns, ino, &stale), 0);
    assert_int_equal(efc_ns_opened(ns, ino, &v2, &same, &changed), 0);
    assert_true(same);    /* the kernel's pages are V2's */
    assert_true(changed); /* but its attributes may be V1's */
    assert_int_equal(efc_ns_opened(ns, 424242, &v2, &same, &changed), -ENOENT);
    efc_ns_free(ns);
}

static void test_many(void **state)
{
    struct efc_ns *ns;
    enum { N = 100000 };
    uint64_t *inos = malloc(N * sizeof(*inos));
    char name[32];

    assert_non_null(inos);
    assert_int_equal(efc_ns_new("", &ns), 0);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "file-%06d", i);
        inos[i] = add(ns, EFC_ROOT_INO, name, name, false, NULL);
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "file-%06d", i);
        assert_int_equal(efc_ns_find(ns, EFC_ROOT_INO, name, strlen(name)), inos[i]);
        struct efc_node_info n;
        assert_int_equal(efc_ns_get(ns, inos[i], &n), 0);
        assert_string_equal(n.key, name);
    }
    /* all distinct */
    for (int i = 1; i < N; i++)
        assert_true(inos[i] != inos[i - 1]);
    for (int i = 0; i < N; i++)
        efc_ns_forget(ns, inos[i], 1);
    struct efc_ns_stats st;
    efc_ns_get_stats(ns, &st);
    assert_int_equal(st.nodes, 1);
    efc_ns_free(ns);
    free(inos);
}

struct worker {
    struct efc_ns *ns;
    int id;
    uint64_t looked;
};

/* Each thread looks the same 64 names up and forgets them again, many times: the counts must
   balance and every number handed out for a name must be live while counted. */
static void *churn(void *arg)
{
    struct worker *w = arg;
    char name[16];
    for (int round = 0; round < 2000; round++) {
        int k = (round * 7 + w->id) % 64;
        snprintf(name, sizeof(name), "n%02d", k);
        uint64_t ino;
        struct efc_attr a = file_attr((uint64_t)k, "\"E\"", (uint64_t)round);
        if (efc_ns_add(w->ns, EFC_ROOT_INO, name, strlen(name), name, false, &a, &ino, NULL))
            abort();
        struct efc_node_info n;
        if (efc_ns_get(w->ns, ino, &n) != 0 || strcmp(n.key, name) != 0)
            abort();
        efc_ns_forget(w->ns, ino, 1);
        w->looked++;
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    struct efc_ns *ns;
    enum { T = 8 };
    pthread_t th[T];
    struct worker w[T];

    assert_int_equal(efc_ns_new("", &ns), 0);
    for (int i = 0; i < T; i++) {
        w[i] = (struct worker){.ns = ns, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, churn, &w[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].looked, 2000);
    }
    struct efc_ns_stats st;
    efc_ns_get_stats(ns, &st);
    assert_int_equal(st.nodes, 1);
    efc_ns_free(ns);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root),
        cmocka_unit_test(test_stable_numbers_and_counting),
        cmocka_unit_test(test_type_change),
        cmocka_unit_test(test_attr_freshness),
        cmocka_unit_test(test_open_versions),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_concurrent),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
