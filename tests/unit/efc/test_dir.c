#define _GNU_SOURCE
/* tests/unit/efc/test_dir.c - listings: visibility, the file-versus-directory hold-back across
 * page boundaries, streaming directory handles (numbering, on-demand pages, errors, replay under
 * memory pressure), completed listings and the listing cache.
 *
 * A small ListObjectsV2 emulator serves a sorted key list with delimiter '/' in pages of any
 * size, so every page boundary can be tried: pages cut the merged key order of contents and
 * common prefixes, and each page delivers its contents first, then its prefixes, as the XML of
 * OSS and S3 does. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "efc/dir_i.h"

/* ---- the emulator ---------------------------------------------------------------------------- */
/* clang-format off */

struct emu {
    const char **keys; /* sorted (strcmp) object keys */
    size_t nkeys;
    unsigned page; /* entries per page (overrides the request's max_keys when smaller) */
    unsigned calls;
    int fail_call; /* this call (1-based) fails with fail_rc before delivering anything; 0: none */
    int fail_rc;
};

struct merged {
    char key[1100];
    bool is_prefix;
};

/* The merged listing of PREFIX with delimiter '/'. */
static size_t merge(const struct emu *m, const char *prefix, const char *delim,
                    struct merged *out, size_t cap)
{
    size_t n = 0, pl = strlen(prefix);
    for (size_t i = 0; i < m->nkeys; i++) {
        const char *k = m->keys[i];
        if (strncmp(k, prefix, pl) != 0)
            continue;
        const char *slash = delim ? strchr(k + pl, '/') : NULL;
        if (slash) {
            size_t len = (size_t)(slash - k) + 1;
            if (n > 0 && out[n - 1].is_prefix && strlen(out[n - 1].key) == len &&
                strncmp(out[n - 1].key, k, len) == 0)
                continue;
            assert_true(n < cap);
            memcpy(out[n].key, k, len);
            out[n].key[len] = '\0';
            out[n].is_prefix = true;
        } else {
            assert_true(n < cap);
            snprintf(out[n].key, sizeof(out[n].key), "%s", k);
            out[n].is_prefix = false;
        }
        n++;
    }
    return n;
}

static int emu_list(void *arg, struct oss_list *l, oss_list_fn fn, void *fnarg)
{
    struct emu *m = arg;
    static struct merged all[20000];
    size_t n = merge(m, l->prefix ? l->prefix : "", l->delimiter, all, 20000);
    size_t start = l->token[0] ? (size_t)strtoul(l->token, NULL, 10) : 0;
    unsigned per = l->max_keys ? l->max_keys : 1000;

    m->calls++;
    if (m->fail_call && (int)m->calls == m->fail_call)
        return m->fail_rc;
    if (m->page && m->page < per)
        per = m->page;
    size_t end = start + per < n ? start + per : n;
    /* As the XML of OSS and S3: the page's contents first, then its common prefixes. */
    for (int pass = 0; pass < 2; pass++)
    for (size_t i = start; i < end; i++) {
        if (all[i].is_prefix != (pass == 1))
            continue;
        struct oss_list_entry e = {
            .key = all[i].key,
            .is_prefix = all[i].is_prefix,
            .size = all[i].is_prefix ? 0 : strlen(all[i].key),
            .mtime = 1700000000,
            .etag = all[i].is_prefix ? NULL : "\"ETAG\"",
            .storage_class = OSS_SC_STANDARD,
        };
        int rc = fn(fnarg, &e);
        if (rc)
            return rc;
    }
    if (end < n)
        snprintf(l->token, sizeof(l->token), "%zu", end);
    else
        l->token[0] = '\0';
    return 0;
}

/* clang-format on */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists directory PREFIX of KEYS in pages of PAGE and returns the visible entries, sorted, as
   "name" for files and "name/" for directories, joined by spaces. */
static char *list_dir(const char **keys, size_t nkeys, const char *prefix, unsigned page)
{
    struct emu m = {.keys = keys, .nkeys = nkeys, .page = page};
    struct efc_dirmem mem = {.limit = 1ull << 30};
    struct efc_dir *d;
    char *names[4096];
    size_t n = 0;

    atomic_init(&mem.bytes, 0);
    assert_int_equal(efc_dir_new(prefix, emu_list, &m, &mem, &d), 0);
    for (uint64_t i = 0;; i++) {
        int rc = efc_dir_seek(d, i);
        assert_true(rc >= 0);
        if (rc == 0)
            break;
        const struct efc_dirent *e = efc_dir_get(d, i);
        assert_non_null(e);
        assert_int_equal(strlen(e->name), e->namelen);
        assert_true(n < 4096);
        if (asprintf(&names[n++], "%s%s", e->name, e->is_dir ? "/" : "") < 0)
            fail();
    }
    assert_true(efc_dir_complete(d));
    efc_dir_free(d);
    assert_int_equal(atomic_load(&mem.bytes), 0);
    qsort(names, n, sizeof(*names), cmp_str);
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    char *out = calloc(1, len);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, " ");
        strcat(out, names[i]);
        free(names[i]);
    }
    return out;
}

/* Every page size from 1 up to all-in-one must give the same answer. */
static void expect_listing(const char **keys, size_t nkeys, const char *prefix, const char *want)
{
    for (unsigned page = 1; page <= nkeys + 1; page++) {
        char *got = list_dir(keys, nkeys, prefix, page);
        if (strcmp(got, want) != 0) {
            print_error("prefix '%s', page size %u:\n  got  '%s'\n  want '%s'\n", prefix, page, got,
                        want);
            free(got);
            fail();
        }
        free(got);
    }
}

#define NK(a) (sizeof(a) / sizeof((a)[0]))

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_name_visibility(void **state)
{
    char long_name[300];
    assert_true(efc_name_visible("a", 1));
    assert_true(efc_name_visible("...", 3));
    assert_true(efc_name_visible(".hidden", 7));
    assert_true(efc_name_visible("sp ace\tand\nnewline", 18));
    assert_false(efc_name_visible("", 0));
    assert_false(efc_name_visible(".", 1));
    assert_false(efc_name_visible("..", 2));
    assert_false(efc_name_visible("a/b", 3));
    memset(long_name, 'n', sizeof(long_name));
    assert_true(efc_name_visible(long_name, 255));
    assert_false(efc_name_visible(long_name, 256));
}

static void test_key_cmp_dir(void **state)
{
    assert_true(efc_key_cmp_dir("x", "x", 1) < 0);
    assert_true(efc_key_cmp_dir("x-a", "x", 1) < 0);
    assert_true(efc_key_cmp_dir("x.b/", "x", 1) < 0);
    assert_int_equal(efc_key_cmp_dir("x/", "x", 1), 0);
    assert_true(efc_key_cmp_dir("x/a", "x", 1) > 0);
    assert_true(efc_key_cmp_dir("x0", "x", 1) > 0);
    assert_true(efc_key_cmp_dir("y", "x", 1) > 0);
    assert_true(efc_key_cmp_dir("w", "x", 1) < 0);
    /* bytes compare unsigned, as the store sorts UTF-8 */
    assert_true(efc_key_cmp_dir("x\xc3\xa9", "x", 1) > 0);
    assert_true(efc_key_cmp_dir("\xc3\xa9", "x", 1) > 0);
}

static void test_plain_files_and_dirs(void **state)
{
    const char *keys[] = {"a", "b/c", "b/d", "c", "d/e/f", "z"};
    expect_listing(keys, NK(keys), "", "a b/ c d/ z");
    expect_listing(keys, NK(keys), "b/", "c d");
    expect_listing(keys, NK(keys), "d/", "e/");
    expect_listing(keys, NK(keys), "d/e/", "f");
    expect_listing(keys, NK(keys), "nothing/", "");
}

static void test_dir_wins_over_file(void **state)
{
    /* file "x" and directory "x/" with names between them (bytes below '/') */
    const char *keys[] = {"x", "x!", "x-a", "x-a/in", "x.txt", "x/y", "y"};
    expect_listing(keys, NK(keys), "", "x! x-a/ x.txt x/ y");
    /* a chain of held files, each a prefix of the next, all but the first released */
    const char *chain[] = {"a", "a!", "a!!", "a!!!", "a/b", "b"};
    expect_listing(chain, NK(chain), "", "a! a!! a!!! a/ b");
    /* the whole chain is files when no directory follows, also at the end of the listing */
    const char *chain2[] = {"a", "a!", "a!!"};
    expect_listing(chain2, NK(chain2), "", "a a! a!!");
    /* the directory's marker object and the file */
    const char *marker[] = {"m", "m/"};
    expect_listing(marker, NK(marker), "", "m/");
    expect_listing(marker, NK(marker), "m/", "");
    /* the same inside a directory, with a file that is merely a prefix of a longer directory */
    const char *inner[] = {"p/ab", "p/abc/d", "p/x", "p/x/y"};
    expect_listing(inner, NK(inner), "p/", "ab abc/ x/");
}

static void test_invisible_names(void **state)
{
    char longname[300], longkey[310];
    memset(longname, 'L', 256);
    longname[256] = '\0';
    snprintf(longkey, sizeof(longkey), "%s", longname);
    const char *keys[] = {
        "/lead", /* leading '/': the root's "/" prefix has an empty name */
        "./dot", /* "." component */
        "../up", /* ".." component */
        "a//b",  /* "a" is a directory whose only entry has an empty name */
        "c/./d", /* "c" holds a "." directory: invisible */
        "c/ok",  /* but c/ok is fine */
        longkey, /* 256 bytes: longer than NAME_MAX */
        "n/",    /* a marker object: an empty directory "n" */
        "x",
    };
    /* the emulator wants sorted keys */
    qsort(keys, NK(keys), sizeof(keys[0]), cmp_str);
    expect_listing(keys, NK(keys), "", "a/ c/ n/ x");
    expect_listing(keys, NK(keys), "a/", "");
    expect_listing(keys, NK(keys), "c/", "ok");
    expect_listing(keys, NK(keys), "n/", "");
}

static void test_streaming_on_demand(void **state)
{
    enum { N = 2500 };
    const char **keys = calloc(N, sizeof(*keys));
    char(*names)[16] = calloc(N, 16);
    struct emu m;
    struct efc_dirmem mem = {.limit = 1ull << 30};
    struct efc_dir *d;

    for (int i = 0; i < N; i++) {
        snprintf(names[i], 16, "f%05d", i);
        keys[i] = names[i];
    }
    memset(&m, 0, sizeof(m));
    m.keys = keys;
    m.nkeys = N;
    atomic_init(&mem.bytes, 0);
    assert_int_equal(efc_dir_new("", emu_list, &m, &mem, &d), 0);
    /* nothing is fetched before someone asks */
    assert_int_equal(m.calls, 0);
    assert_null(efc_dir_get(d, 0));
    /* the first entry needs the first page only */
    assert_int_equal(efc_dir_seek(d, 0), 1);
    assert_int_equal(m.calls, 1);
    const struct efc_dirent *e = efc_dir_get(d, 0);
    assert_string_equal(e->name, "f00000");
    assert_false(e->is_dir);
    assert_int_equal(e->size, 6);
    assert_string_equal(e->etag, "\"ETAG\"");
    /* the page's last file is held back until the next page shows no "f00999/" follows */
    assert_non_null(efc_dir_get(d, 998));
    assert_null(efc_dir_get(d, 999));
    assert_int_equal(efc_dir_seek(d, 999), 1);
    assert_int_equal(m.calls, 2);
    assert_string_equal(efc_dir_get(d, 999)->name, "f00999");
    /* numbering is stable: earlier entries are still there, with the same names */
    assert_string_equal(efc_dir_get(d, 0)->name, "f00000");
    assert_int_equal(efc_dir_seek(d, N - 1), 1);
    assert_int_equal(m.calls, 3);
    assert_string_equal(efc_dir_get(d, N - 1)->name, "f02499");
    assert_int_equal(efc_dir_seek(d, N), 0);
    assert_true(efc_dir_complete(d));
    assert_int_equal(m.calls, 3);

    /* the whole listing, sorted, for lookups */
    struct efc_listing *l = efc_dir_listing(d);
    assert_non_null(l);
    assert_int_equal(efc_listing_count(l), N);
    assert_string_equal(efc_listing_find(l, "f01234", 6)->name, "f01234");
    assert_null(efc_listing_find(l, "f0123", 5));
    assert_null(efc_listing_find(l, "zzz", 3));
    efc_dir_free(d);
    /* the listing keeps its pages alive on its own */
    assert_string_equal(efc_listing_find(l, "f02000", 6)->name, "f02000");
    assert_true(atomic_load(&mem.bytes) > 0);
    efc_listing_unref(l);
    assert_int_equal(atomic_load(&mem.bytes), 0);
    free(keys);
    free(names);
}

static void test_errors_are_retried(void **state)
{
    const char *keys[] = {"a", "b", "c", "d", "e"};
    struct emu m = {.keys = keys, .nkeys = NK(keys), .page = 2, .fail_call = 2, .fail_rc = -EIO};
    struct efc_dirmem mem = {.limit = 1ull << 30};
    struct efc_dir *d;

    atomic_init(&mem.bytes, 0);
    assert_int_equal(efc_dir_new("", emu_list, &m, &mem, &d), 0);
    assert_int_equal(efc_dir_seek(d, 0), 1);
    /* "b" is held back after page 1; page 2 fails: the error comes back, nothing is lost */
    assert_int_equal(efc_dir_seek(d, 1), -EIO);
    assert_int_equal(efc_dir_seek(d, 1), 1);
    assert_string_equal(efc_dir_get(d, 1)->name, "b");
    assert_int_equal(efc_dir_seek(d, 4), 1);
    assert_string_equal(efc_dir_get(d, 4)->name, "e");
    assert_int_equal(efc_dir_seek(d, 5), 0);
    struct efc_dir_stats st;
    efc_dir_get_stats(d, &st);
    assert_int_equal(st.restarts, 0);
    assert_int_equal(st.entries, 5);
    efc_dir_free(d);
}

static void test_memory_pressure_replays(void **state)
{
    enum { N = 100 };
    const char *keys[N];
    char names[N][8];
    struct emu m;
    struct efc_dirmem mem = {.limit = 1}; /* always over: keep only the last pages */
    struct efc_dir *d;

    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "k%03d", i);
        keys[i] = names[i];
    }
    memset(&m, 0, sizeof(m));
    m.keys = keys;
    m.nkeys = N;
    m.page = 10;
    atomic_init(&mem.bytes, 0);
    assert_int_equal(efc_dir_new("", emu_list, &m, &mem, &d), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(efc_dir_seek(d, (uint64_t)i), 1);
        assert_string_equal(efc_dir_get(d, (uint64_t)i)->name, names[i]);
    }
    assert_int_equal(efc_dir_seek(d, N), 0);
    /* early pages were let go, so there is no whole listing to keep */
    assert_null(efc_dir_get(d, 0));
    assert_null(efc_dir_listing(d));
    /* a seek back (rewinddir) replays the listing: same numbers, same names */
    unsigned calls = m.calls;
    assert_int_equal(efc_dir_seek(d, 3), 1);
    assert_string_equal(efc_dir_get(d, 3)->name, "k003");
    assert_true(m.calls > calls);
    struct efc_dir_stats st;
    efc_dir_get_stats(d, &st);
    assert_int_equal(st.restarts, 1);
    efc_dir_free(d);
    assert_int_equal(atomic_load(&mem.bytes), 0);
}

static struct efc_listing *make_listing(struct efc_dirmem *mem, const char **keys, size_t n)
{
    struct emu m = {.keys = keys, .nkeys = n};
    struct efc_dir *d;
    assert_int_equal(efc_dir_new("", emu_list, &m, mem, &d), 0);
    assert_int_equal(efc_dir_seek(d, 1u << 20), 0);
    struct efc_listing *l = efc_dir_listing(d);
    assert_non_null(l);
    efc_dir_free(d);
    return l;
}

static void test_listing_and_cache(void **state)
{
    struct efc_dirmem mem = {.limit = 1ull << 30};
    struct efc_lcache *c;
    const char *keys[] = {"x", "x-a", "x/y", "y"};

    atomic_init(&mem.bytes, 0);
    struct efc_listing *l = make_listing(&mem, keys, NK(keys));
    const struct efc_dirent *e = efc_listing_find(l, "x", 1);
    assert_non_null(e);
    assert_true(e->is_dir); /* the directory won */
    assert_false(efc_listing_find(l, "x-a", 3)->is_dir);
    assert_null(efc_listing_find(l, "x/", 2));
    uint64_t t = efc_listing_time(l);

    assert_int_equal(efc_lcache_new(2, 0, &mem, &c), 0);
    efc_lcache_put(c, "d10/", l);
    struct efc_listing *g = efc_lcache_get(c, "d10/", 1000, t + 500);
    assert_ptr_equal(g, l);
    efc_listing_unref(g);
    /* too old: gone */
    assert_null(efc_lcache_get(c, "d10/", 1000, t + 1001));
    assert_null(efc_lcache_get(c, "d10/", 1000, t));
    /* at most two directories: the least recently used goes */
    efc_lcache_put(c, "d1/", l);
    efc_lcache_put(c, "d2/", l);
    g = efc_lcache_get(c, "d1/", 1000, t);
    efc_listing_unref(g);
    efc_lcache_put(c, "d3/", l);
    assert_null(efc_lcache_get(c, "d2/", 1000, t));
    g = efc_lcache_get(c, "d1/", 1000, t);
    assert_non_null(g);
    efc_listing_unref(g);
    g = efc_lcache_get(c, "d3/", 1000, t);
    assert_non_null(g);
    efc_listing_unref(g);
    /* replace and drop */
    efc_lcache_put(c, "d3/", l);
    efc_lcache_drop(c, "d3/");
    assert_null(efc_lcache_get(c, "d3/", 1000, t));
    efc_listing_unref(l);
    efc_lcache_free(c);
    assert_int_equal(atomic_load(&mem.bytes), 0);
}

static void test_cache_gives_way_to_memory(void **state)
{
    struct efc_dirmem mem = {.limit = 1ull << 30};
    struct efc_lcache *c;
    const char *keys[] = {"a", "b", "c"};

    atomic_init(&mem.bytes, 0);
    assert_int_equal(efc_lcache_new(100, 0, &mem, &c), 0);
    struct efc_listing *l1 = make_listing(&mem, keys, NK(keys));
    struct efc_listing *l2 = make_listing(&mem, keys, NK(keys));
    uint64_t t = efc_listing_time(l2);
    efc_lcache_put(c, "d1/", l1);
    /* past half the limit, older listings are let go when a new one comes */
    mem.limit = 2 * atomic_load(&mem.bytes) / 3;
    efc_lcache_put(c, "d2/", l2);
    assert_null(efc_lcache_get(c, "d1/", 100000, t));
    struct efc_listing *g = efc_lcache_get(c, "d2/", 100000, t);
    assert_non_null(g);
    efc_listing_unref(g);
    efc_listing_unref(l1);
    efc_listing_unref(l2);
    efc_lcache_free(c);
    assert_int_equal(atomic_load(&mem.bytes), 0);
}

/* The readdir cache's byte bound (g_readdircache_MaxSize): listings past it go, least recently
   used first, and a listing larger than the whole bound is not kept at all. */
static void test_cache_byte_bound(void **state)
{
    struct efc_dirmem mem = {.limit = 1ull << 30};
    struct efc_lcache *c;
    const char *keys[] = {"a", "b", "c", "d"};
    struct efc_lcache_stats st;

    atomic_init(&mem.bytes, 0);
    struct efc_listing *l1 = make_listing(&mem, keys, NK(keys));
    struct efc_listing *l2 = make_listing(&mem, keys, NK(keys));
    size_t one = efc_listing_bytes(l1);
    uint64_t t = efc_listing_time(l2);
    assert_true(one > 0);
    assert_int_equal(efc_lcache_new(100, one + one / 2, &mem, &c), 0);
    efc_lcache_put(c, "a/", l1);
    efc_lcache_put(c, "b/", l2); /* two do not fit: "a/" goes */
    assert_null(efc_lcache_get(c, "a/", 100000, t));
    struct efc_listing *g = efc_lcache_get(c, "b/", 100000, t);
    assert_ptr_equal(g, l2);
    efc_listing_unref(g);
    efc_lcache_get_stats(c, &st);
    assert_int_equal(st.dirs, 1);
    assert_int_equal(st.bytes, one);
    assert_int_equal(st.evicted, 1);
    efc_lcache_free(c);

    /* larger than the bound: never kept */
    assert_int_equal(efc_lcache_new(100, one - 1, &mem, &c), 0);
    efc_lcache_put(c, "a/", l1);
    assert_null(efc_lcache_get(c, "a/", 100000, t));
    efc_lcache_get_stats(c, &st);
    assert_int_equal(st.dirs, 0);
    assert_int_equal(efc_lcache_clear(c), 0);
    efc_lcache_free(c);
    efc_listing_unref(l1);
    efc_listing_unref(l2);
    assert_int_equal(atomic_load(&mem.bytes), 0);
}

/* A stream replaying a cached listing gives the same entries in the same order, and asks the
   store for nothing. */
static void test_stream_from_listing(void **state)
{
    struct efc_dirmem mem = {.limit = 1ull << 30};
    const char *keys[] = {"x", "x-a", "x/y", "y", "z/1", "z/2"};
    struct emu m = {.keys = keys, .nkeys = NK(keys)};
    struct efc_dir *d, *r;

    atomic_init(&mem.bytes, 0);
    assert_int_equal(efc_dir_new("", emu_list, &m, &mem, &d), 0);
    assert_int_equal(efc_dir_seek(d, 1u << 20), 0);
    struct efc_listing *l = efc_dir_listing(d);
    assert_non_null(l);
    unsigned calls = m.calls;
    assert_int_equal(efc_dir_from_listing("", l, emu_list, &m, &mem, &r), 0);
    assert_true(efc_dir_complete(r));
    uint64_t n = efc_listing_count(l);
    assert_int_equal(n, 4); /* x (dir), x-a, y, z */
    for (uint64_t i = 0; i < n; i++) {
        assert_int_equal(efc_dir_seek(r, i), 1);
        const struct efc_dirent *a = efc_dir_get(d, i), *b = efc_dir_get(r, i);
        assert_non_null(a);
        assert_non_null(b);
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->is_dir, b->is_dir);
    }
    assert_int_equal(efc_dir_seek(r, n), 0);
    assert_int_equal(m.calls, calls);
    struct efc_listing *l2 = efc_dir_listing(r);
    assert_ptr_equal(l2, l);
    efc_listing_unref(l2);
    efc_dir_free(r);
    efc_dir_free(d);
    efc_listing_unref(l);
    assert_int_equal(atomic_load(&mem.bytes), 0);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_visibility),
        cmocka_unit_test(test_key_cmp_dir),
        cmocka_unit_test(test_plain_files_and_dirs),
        cmocka_unit_test(test_dir_wins_over_file),
        cmocka_unit_test(test_invisible_names),
        cmocka_unit_test(test_streaming_on_demand),
        cmocka_unit_test(test_errors_are_retried),
        cmocka_unit_test(test_memory_pressure_replays),
        cmocka_unit_test(test_listing_and_cache),
        cmocka_unit_test(test_cache_gives_way_to_memory),
        cmocka_unit_test(test_cache_byte_bound),
        cmocka_unit_test(test_stream_from_listing),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
