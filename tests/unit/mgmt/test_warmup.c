/* tests/unit/mgmt/test_warmup.c - the warm-up engine against a fake backend: an in-memory
 * key -> size table whose fill records every (key, block) it is asked for, and can hold fills
 * behind a gate, slow them down or fail them for chosen keys. Covers path normalization, loads
 * of a file, a directory and the root, patterns, visibility, exact sizes, progress while running,
 * cancel, failures, vanished files, history trimming by count and by age (fake clock),
 * preceding_time, the walk's bounded queue, fairness between tasks, and free under load.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mgmt/warmup.h"
#include "mgmt/warmup_i.h"
#include "util/log.h"
#include "util/timeutil.h"

#define BS       1000u /* the fake's block size: small, so sizes are easy to reason about */
#define MAXKEYS  6000
#define MAXFILLS 20000

struct fkey {
    char key[256];
    uint64_t size;
    int fill_err; /* fills of this key answer this (-errno) */
};

struct fill_rec {
    int key;
    uint64_t index;
};

struct fake {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    struct fkey keys[MAXKEYS]; /* sorted by key (add them in order) */
    int nkeys;
    struct fill_rec fills[MAXFILLS];
    int nfills;       /* fills started */
    int fills_done;   /* fills returned */
    int held;         /* fills waiting at the gate */
    long gate;        /* fills that may pass the gate; -1: all */
    unsigned fill_us; /* sleep in each fill */
    int list_err;     /* list answers this after its keys */
    int head_err;
    uint64_t listed; /* keys given to list callbacks */
    uint64_t lists, heads;
    char bad[512]; /* what the fake saw wrong */
};

static struct fake F;

static void fake_reset(void)
{
    pthread_mutex_destroy(&F.lock);
    pthread_cond_destroy(&F.cv);
    memset(&F, 0, sizeof(F));
    pthread_mutex_init(&F.lock, NULL);
    pthread_cond_init(&F.cv, NULL);
    F.gate = -1;
}

/* Keys are kept sorted, as a listing returns them. */
static void fake_add(const char *key, uint64_t size)
{
    assert_true(F.nkeys < MAXKEYS);
    int i = F.nkeys++;
    while (i > 0 && strcmp(F.keys[i - 1].key, key) > 0) {
        F.keys[i] = F.keys[i - 1];
        i--;
    }
    memset(&F.keys[i], 0, sizeof(F.keys[i]));
    snprintf(F.keys[i].key, sizeof(F.keys[i].key), "%s", key);
    F.keys[i].size = size;
}

static int fake_find(const char *key)
{
    for (int i = 0; i < F.nkeys; i++)
        if (strcmp(F.keys[i].key, key) == 0)
            return i;
    return -1;
}

/* Fills of KEY answer ERR. */
static void fake_fail(const char *key, int err)
{
    int i = fake_find(key);
    assert_true(i >= 0);
    F.keys[i].fill_err = err;
}

static int fake_list(void *arg, const char *prefix,
                     int (*fn)(void *fnarg, const char *key, const char *etag, uint64_t size),
                     void *fnarg)
{
    size_t plen = strlen(prefix);
    pthread_mutex_lock(&F.lock);
    F.lists++;
    int nkeys = F.nkeys, err = F.list_err;
    pthread_mutex_unlock(&F.lock);
    for (int i = 0; i < nkeys; i++) {
        if (strncmp(F.keys[i].key, prefix, plen) != 0)
            continue;
        pthread_mutex_lock(&F.lock);
        F.listed++;
        pthread_cond_broadcast(&F.cv);
        pthread_mutex_unlock(&F.lock);
        int rc = fn(fnarg, F.keys[i].key, "\"etag\"", F.keys[i].size);
        if (rc)
            return rc;
    }
    return err;
}

static int fake_head(void *arg, const char *key, char *etag, size_t etaglen, uint64_t *size)
{
    pthread_mutex_lock(&F.lock);
    F.heads++;
    int err = F.head_err;
    pthread_mutex_unlock(&F.lock);
    if (err)
        return err;
    int i = fake_find(key);
    if (i < 0)
        return -ENOENT;
    snprintf(etag, etaglen, "\"etag\"");
    *size = F.keys[i].size;
    return 0;
}

/* cmocka's asserts may not run on the engine's threads: the fake notes what went wrong and the
 * test's teardown fails on it. */
static void fake_bad(const char *what, const char *key)
{
    pthread_mutex_lock(&F.lock);
    if (!F.bad[0])
        snprintf(F.bad, sizeof(F.bad), "%s: '%s'", what, key);
    pthread_mutex_unlock(&F.lock);
}

static int fake_fill(void *arg, const char *key, const char *etag, uint64_t size, uint64_t index)
{
    int i = fake_find(key);
    if (i < 0) {
        fake_bad("fill of an unknown key", key);
        return -EINVAL;
    }
    if (strcmp(etag, "\"etag\"") != 0 || size != F.keys[i].size || index * BS >= size)
        fake_bad("fill with a wrong etag, size or index", key);
    pthread_mutex_lock(&F.lock);
    if (F.nfills >= MAXFILLS) {
        pthread_mutex_unlock(&F.lock);
        fake_bad("too many fills", key);
        return -EIO;
    }
    F.fills[F.nfills].key = i;
    F.fills[F.nfills].index = index;
    F.nfills++;
    F.held++;
    pthread_cond_broadcast(&F.cv);
    while (F.gate == 0)
        pthread_cond_wait(&F.cv, &F.lock);
    if (F.gate > 0)
        F.gate--;
    F.held--;
    int err = F.keys[i].fill_err;
    unsigned us = F.fill_us;
    pthread_mutex_unlock(&F.lock);
    if (us)
        usleep(us);
    pthread_mutex_lock(&F.lock);
    F.fills_done++;
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.lock);
    return err;
}

static void gate_set(long n)
{
    pthread_mutex_lock(&F.lock);
    F.gate = n;
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.lock);
}

/* Waits (at most 10 s) until COND holds under the fake's lock. The fake broadcasts each change,
 * but the engine's own progress (a walk waiting for room) is not, so it also looks every 5 ms. */
#define WAIT_FAKE(cond)                                                                            \
    do {                                                                                           \
        uint64_t end_ = time_mono_ms() + 10000;                                                    \
        pthread_mutex_lock(&F.lock);                                                               \
        while (!(cond) && time_mono_ms() < end_) {                                                 \
            struct timespec dl_;                                                                   \
            clock_gettime(CLOCK_REALTIME, &dl_);                                                   \
            dl_.tv_nsec += 5000000;                                                                \
            if (dl_.tv_nsec >= 1000000000) {                                                       \
                dl_.tv_sec++;                                                                      \
                dl_.tv_nsec -= 1000000000;                                                         \
            }                                                                                      \
            pthread_cond_timedwait(&F.cv, &F.lock, &dl_);                                          \
        }                                                                                          \
        bool ok_ = (cond);                                                                         \
        int nf_ = F.nfills, held_ = F.held, done_ = F.fills_done;                                  \
        pthread_mutex_unlock(&F.lock);                                                             \
        if (!ok_)                                                                                  \
            fail_msg("timed out waiting for %s (%d fills, %d held, %d done)", #cond, nf_, held_,   \
                     done_);                                                                       \
    } while (0)

static const struct warmup_backend BE = {
    .list = fake_list,
    .head = fake_head,
    .fill = fake_fill,
    .block_size = BS,
};

/* The engine a test made: a failed test leaves it running, and teardown frees it. */
static struct warmup *cur;

static struct warmup *mk(const char *root, unsigned workers, unsigned max_tasks, uint64_t max_age)
{
    struct warmup_config cfg = {
        .root_prefix = root, .workers = workers, .max_tasks = max_tasks, .max_age_s = max_age};
    struct warmup *w = NULL;
    assert_int_equal(warmup_new(&cfg, &BE, &w), 0);
    cur = w;
    return w;
}

static void wfree(struct warmup *w)
{
    warmup_free(w);
    if (w == cur)
        cur = NULL;
}

static uint64_t load(struct warmup *w, const char *path, const char *pattern)
{
    uint64_t id = 0;
    char err[256] = "";
    int rc = warmup_load(w, path, pattern, &id, err, sizeof(err));
    if (rc)
        fail_msg("load '%s': %d %s", path, rc, err);
    return id;
}

/* The newest task of PATH (there must be one). */
static struct warmup_task_info stat1(struct warmup *w, const char *path)
{
    struct warmup_task_info i;
    char err[256] = "";
    int n = warmup_stat(w, path, 0, &i, 1, err, sizeof(err));
    if (n < 1)
        fail_msg("stat '%s': %d %s", path, n, err);
    return i;
}

/* Waits (at most 10 s) for the newest task of PATH to finish. */
static struct warmup_task_info wait_done(struct warmup *w, const char *path)
{
    for (int i = 0; i < 10000; i++) {
        struct warmup_task_info t = stat1(w, path);
        if (t.status != WARMUP_RUNNING)
            return t;
        usleep(1000);
    }
    fail_msg("task of '%s' still running after 10 s", path);
    abort();
}

static int fills_of(const char *key, uint64_t index)
{
    int i = fake_find(key), n = 0;
    pthread_mutex_lock(&F.lock);
    for (int j = 0; j < F.nfills; j++)
        n += F.fills[j].key == i && F.fills[j].index == index;
    pthread_mutex_unlock(&F.lock);
    return n;
}

/* Every block of KEY was filled exactly once. */
static void assert_loaded(const char *key)
{
    int i = fake_find(key);
    assert_true(i >= 0);
    uint64_t nb = (F.keys[i].size + BS - 1) / BS;
    for (uint64_t b = 0; b < nb; b++)
        if (fills_of(key, b) != 1)
            fail_msg("block %llu of '%s' filled %d times", (unsigned long long)b, key,
                     fills_of(key, b));
}

static void assert_not_loaded(const char *key)
{
    int i = fake_find(key), n = 0;
    pthread_mutex_lock(&F.lock);
    for (int j = 0; j < F.nfills; j++)
        n += F.fills[j].key == i;
    pthread_mutex_unlock(&F.lock);
    if (n)
        fail_msg("'%s' was filled %d times", key, n);
}

static int setup(void **state)
{
    fake_reset();
    return 0;
}

static void gate_set(long n);

static int teardown(void **state)
{
    if (cur) {
        gate_set(-1);
        wfree(cur);
    }
    if (F.bad[0]) {
        print_error("fake backend: %s\n", F.bad);
        return -1;
    }
    return 0;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_status_names(void **state)
{
    assert_string_equal(warmup_status_name(WARMUP_RUNNING), "running");
    assert_string_equal(warmup_status_name(WARMUP_COMPLETED), "completed");
    assert_string_equal(warmup_status_name(WARMUP_CANCELED), "canceled");
    assert_string_equal(warmup_status_name(WARMUP_FAILED), "failed");
}

static void test_normalize(void **state)
{
    char out[WARMUP_PATH_MAX + 1], err[256];
    static const char *const ok[][2] = {
        {"", ""},       {"a", "a"},           {"file100G", "file100G"},
        {"a/b", "a/b"}, {"a/b/", "a/b"},      {"model/weights.bin", "model/weights.bin"},
        {"...", "..."}, {".a/b..", ".a/b.."}, {"a b/c%2F", "a b/c%2F"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        memset(out, 'x', sizeof(out));
        err[0] = '\0';
        if (warmup_normalize(ok[i][0], out, sizeof(out), err, sizeof(err)) != 0)
            fail_msg("'%s' refused: %s", ok[i][0], err);
        assert_string_equal(out, ok[i][1]);
    }
    static const char *const bad[][2] = {
        {"/a", "absolute"},
        {"/", "absolute"},
        {"//", "absolute"},
        {"a//b", "empty"},
        {"a/b//", "empty"},
        {"..", "'..'"},
        {"a/../b", "'..'"},
        {"a/..", "'..'"},
        {".", "'.'"},
        {"./a", "'.'"},
        {"a/./b", "'.'"},
        {"a/.", "'.'"},
        {"/mnt/oss_data/model", "absolute"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (warmup_normalize(bad[i][0], out, sizeof(out), err, sizeof(err)) != -EINVAL)
            fail_msg("'%s' accepted", bad[i][0]);
        if (!strstr(err, bad[i][1]) || !strstr(err, bad[i][0]))
            fail_msg("'%s': reason '%s' does not say '%s'", bad[i][0], err, bad[i][1]);
    }
    assert_int_equal(warmup_normalize(NULL, out, sizeof(out), err, sizeof(err)), -EINVAL);

    /* length: WARMUP_PATH_MAX bytes pass (with or without a trailing '/'), one more does not */
    char longp[WARMUP_PATH_MAX + 3];
    memset(longp, 'a', WARMUP_PATH_MAX);
    longp[WARMUP_PATH_MAX] = '\0';
    assert_int_equal(warmup_normalize(longp, out, sizeof(out), err, sizeof(err)), 0);
    assert_int_equal(strlen(out), WARMUP_PATH_MAX);
    strcat(longp, "/");
    assert_int_equal(warmup_normalize(longp, out, sizeof(out), err, sizeof(err)), 0);
    assert_int_equal(strlen(out), WARMUP_PATH_MAX);
    longp[WARMUP_PATH_MAX] = 'a';
    longp[WARMUP_PATH_MAX + 1] = '\0';
    assert_int_equal(warmup_normalize(longp, out, sizeof(out), err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "longer than"));
    /* a short output buffer is refused, not overrun */
    char small[4];
    assert_int_equal(warmup_normalize("abcd", small, sizeof(small), err, sizeof(err)), -EINVAL);
    assert_int_equal(warmup_normalize("abc", small, sizeof(small), err, sizeof(err)), 0);
    assert_string_equal(small, "abc");
}

static void test_pattern_check(void **state)
{
    char err[256];
    static const char *const ok[] = {"",
                                     ".*_2$",
                                     "\\.safetensors$",
                                     "^shard-[0-9]{5}-of-[0-9]{5}$",
                                     "a{32}",
                                     "[]{}]{3}",
                                     "(x|y)+z?",
                                     "[[:digit:]]{1,9}",
                                     "(model|weights)-[0-9]+\\.(bin|pt)$",
                                     "a{1,990}",
                                     "\\(a\\)*"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (warmup_pattern_check(ok[i], err, sizeof(err)) != 0)
            fail_msg("'%s' refused: %s", ok[i], err);
    static const char *const bad[] = {
        "(a{1,1000}){1,1000}", /* 8 GB in regcomp */
        "((a?){1,30}){1,30}+", /* regcomp does not finish */
        "(a?){1,200}+",        /* 4 s */
        "(a+)+",
        "a**",
        "a{2}{3}",
        "a{20000}",
        "a{1,1\\0314}", /* escaped digits are digits to glibc: a{1,10314}, 840 MB */
        "a{1\\,20000}",  /* and an escaped comma a comma */
        "(a|b|c|d|){0,255}",
        "(a|){1,255}(a|){1,255}(a|){1,255}",
        "(a*)\\1",
        "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a))))))))))))))))))))"
        "))))))))))))))))))))))))))))))))))))))))))))))",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (warmup_pattern_check(bad[i], err, sizeof(err)) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(strlen(err) > 0);
    }
    char longp[WARMUP_PATTERN_MAX + 2];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(warmup_pattern_check(longp, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "longer than"));
    /* exactly WARMUP_PATTERN_MAX bytes pass the length check (a bracket expression is one node,
     * so this is within the expansion limit too) ... */
    longp[0] = '[';
    longp[WARMUP_PATTERN_MAX - 1] = ']';
    longp[WARMUP_PATTERN_MAX] = '\0';
    assert_int_equal(warmup_pattern_check(longp, err, sizeof(err)), 0);
    /* ... but 1001 nodes do not */
    memset(longp, 'a', (WARMUP_PATTERN_COST_MAX + 1));
    longp[(WARMUP_PATTERN_COST_MAX + 1)] = '\0';
    assert_int_equal(warmup_pattern_check(longp, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "too complex"));
    longp[WARMUP_PATTERN_COST_MAX] = '\0';
    assert_int_equal(warmup_pattern_check(longp, err, sizeof(err)), 0);
}

static void test_bad_requests(void **state)
{
    struct warmup *w = mk("", 2, 0, 0);
    char err[256];
    uint64_t id = 0;
    assert_int_equal(warmup_load(w, "/abs", NULL, &id, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "'/abs'"));
    assert_int_equal(warmup_load(w, "a/../../etc", NULL, &id, err, sizeof(err)), -EINVAL);
    assert_int_equal(warmup_load(w, "a", "(", &id, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "does not compile"));
    assert_int_equal(warmup_load(w, "a", "(a{1,1000}){1,1000}", &id, err, sizeof(err)), -EINVAL);
    struct warmup_task_info i;
    assert_int_equal(warmup_stat(w, "/abs", 0, &i, 1, err, sizeof(err)), -EINVAL);
    assert_int_equal(warmup_cancel(w, "a//b", err, sizeof(err)), -EINVAL);
    /* nothing was submitted */
    assert_int_equal(warmup_stat(w, "a", 0, &i, 1, err, sizeof(err)), 0);
    uint64_t c[4];
    warmup_counts(w, c);
    assert_int_equal(c[0] + c[1] + c[2] + c[3], 0);
    wfree(w);
    warmup_free(NULL);

    struct warmup_config cfg = {0};
    struct warmup_backend be = BE;
    be.block_size = 0;
    assert_int_equal(warmup_new(&cfg, &be, &w), -EINVAL);
}

static void test_load_file(void **state)
{
    fake_add("d/f", 2500);
    fake_add("d/g", 10);
    fake_add("e", 3000);
    struct warmup *w = mk("", 4, 0, 0);
    uint64_t t0 = time_real_us();
    uint64_t id = load(w, "d/f", NULL);
    assert_true(id > 0);
    struct warmup_task_info i = wait_done(w, "d/f");
    assert_int_equal(i.status, WARMUP_COMPLETED);
    assert_false(i.is_dir);
    assert_int_equal(i.total_size, 2500);
    assert_int_equal(i.completed_size, 2500);
    assert_string_equal(i.path, "d/f");
    assert_string_equal(i.pattern, "");
    assert_string_equal(i.error, "");
    assert_int_equal(i.id, id);
    assert_true(i.submit_time_us >= t0 && i.submit_time_us <= time_real_us());
    assert_loaded("d/f");
    assert_not_loaded("d/g");
    assert_not_loaded("e");
    assert_int_equal(F.nfills, 3);
    /* "d/f/" is the same path; a second task gets a new, larger id */
    uint64_t id2 = load(w, "d/f/", "");
    assert_true(id2 > id);
    assert_int_equal(wait_done(w, "d/f").id, id2);
    uint64_t c[4];
    warmup_counts(w, c);
    assert_int_equal(c[WARMUP_COMPLETED], 2);
    assert_int_equal(c[WARMUP_RUNNING], 0);
    wfree(w);
}

static void test_load_dir_recursive(void **state)
{
    fake_add("d", 5000);            /* a file shadowed by the directory "d/": the dir wins */
    fake_add("d/a", 1000);          /* one full block */
    fake_add("d/empty", 0);         /* counts, nothing to fill */
    fake_add("d/sub/", 10);         /* a directory marker: not a file */
    fake_add("d/sub/b", 1001);      /* two blocks, the last of 1 byte */
    fake_add("d/sub/deep/c", 4321); /* five blocks */
    fake_add("d//x", 100);          /* invisible: empty component */
    fake_add("d/../y", 100);        /* invisible: ".." */
    fake_add("d/./z", 100);         /* invisible: "." */
    fake_add("dx", 100);            /* not under "d/" */
    fake_add("other/q", 100);
    struct warmup *w = mk("", 3, 0, 0);
    load(w, "d", NULL);
    struct warmup_task_info i = wait_done(w, "d");
    assert_int_equal(i.status, WARMUP_COMPLETED);
    assert_true(i.is_dir);
    assert_int_equal(i.total_size, 1000 + 1001 + 4321);
    assert_int_equal(i.completed_size, i.total_size);
    assert_loaded("d/a");
    assert_loaded("d/sub/b");
    assert_loaded("d/sub/deep/c");
    assert_not_loaded("d");
    assert_not_loaded("d/sub/");
    assert_not_loaded("d//x");
    assert_not_loaded("d/../y");
    assert_not_loaded("d/./z");
    assert_not_loaded("dx");
    assert_not_loaded("other/q");
    assert_int_equal(F.nfills, 1 + 2 + 5);
    assert_int_equal(F.heads, 0); /* a directory needs no HEAD */

    /* a subdirectory, given with a trailing slash */
    load(w, "d/sub/", NULL);
    i = wait_done(w, "d/sub");
    assert_int_equal(i.status, WARMUP_COMPLETED);
    assert_true(i.is_dir);
    assert_int_equal(i.total_size, 1001 + 4321);
    wfree(w);
}

static void test_load_root(void **state)
{
    fake_add("/lead", 100); /* invisible: leading '/' */
    fake_add("a", 1500);
    fake_add("b/c", 2000);
    fake_add("b/d/", 100); /* a directory marker with bytes: still not a file */
    fake_add("b/e//f", 100);
    struct warmup *w = mk("", 2, 0, 0);
    load(w, "", NULL);
    struct warmup_task_info i = wait_done(w, "");
    assert_int_equal(i.status, WARMUP_COMPLETED);
    assert_true(i.is_dir);
    assert_string_equal(i.path, "");
    assert_int_equal(i.total_size, 3500);
    assert_int_equal(i.completed_size, 3500);
    assert_loaded("a");
    assert_loaded("b/c");
    assert_not_loaded("/lead");
    assert_not_loaded("b/e//f");
    assert_not_loaded("b/d/");
    wfree(w);

    /* an empty bucket: the root exists and its task completes with nothing */
    fake_reset();
    w = mk("", 2, 0, 0);
    load(w, "", NULL);
    i = wait_done(w, "");
    assert_int_equal(i.status, WARMUP_COMPLETED);
    assert_int_equal(i.total_size, 0);
    wfree(w);
}

static void test_root_prefix(void **state)
{
    fake_add("outside", 100);
    fake_add("pre/fix/a", 1200);
    fake_add("pre/fix/d/b", 800);
    fake_add("pre/fix/f", 300);
    fake_add("pre/other", 100);
    /* without and with the trailing slash */
    for (int k = 0; k < 2; k++) {
        struct warmup *w = mk(k ? "pre/fix/" : "pre/fix", 2, 0, 0);
        int base = F.nfills;
        load(w, "", NULL);
        struct warmup_task_info i = wait_done(w, "");
        assert_int_equal(i.status, WARMUP_COMPLETED);
        assert_int_equal(i.total_size, 2300);
        assert_int_equal(F.nfills - base, 2 + 1 + 1);
        load(w, "d", NULL);
        i = wait_done(w, "d");
        assert_int_equal(i.total_size, 800);
        assert_true(i.is_dir);
        load(w, "f", NULL);
        i = wait_done(w, "f");
        assert_int_equal(i.status, WARMUP_COMPLETED);
        assert_false(i.is_dir);
        assert_int_equal(i.total_size, 300);
        wfree(w);
    }
    assert_not_loaded("outside");
    assert_not_loaded("pre/other");
}

/* "../other" would name a key outside the root: refused; "other" is not under the root. */
static void test_root_prefix_escape(void **state)
{
    fake_add("pre/other", 100);
    struct warmup *w = mk("pre/fix/", 2, 0, 0);
    uint64_t id;
    char err[256];
    assert_int_equal(warmup_load(w, "../other", NULL, &id, err, sizeof(err)), -EINVAL);
    assert_int_equal(warmup_load(w, "other", NULL, &id, err, sizeof(err)), 0);
    struct warmup_task_info i = wait_done(w, "other");
    assert_int_equal(i.status, WARMUP_FAILED);
    assert_not_loaded("pre/other");
    wfree(w);
}

static void test_pattern(void **state)
{
    fake_add("testDir/a_1", 100);
    fake_add("testDir/a_2", 200);
    fake_add("testDir/a_22", 400);
    fake_add("testDir/sub_2/x", 800); /* the directory matches, the name does not */
    fake_add("testDir/sub_2/y_2", 1600);
    struct warmup *w = mk("", 2, 0, 0);
    load(w, "testDir", ".*_2$");
    struct warmup_task_info i = wait_done(w, "testDir");
    assert_int_equal(i.status, WARMUP_COMPLETED);
    assert_string_equal(i.pattern, ".*_2$");
    assert_int_equal(i.total_size, 200 + 1600);
    assert_int_equal(i.completed_size, 200 + 1600);
    assert_loaded("testDir/a_2");
    assert_loaded("testDir/sub_2/y_2");
    assert_not_loaded("testDir/a_1");
    assert_not_loaded("testDir/a_22");
    assert_not_loaded("testDir/sub_2/x");

    /* unanchored: "_2" anywhere in the name */
    int base = F.nfills;
    load(w, "testDir", "_2");
    i = wait_done(w, "testDir");
    assert_int_equal(i.total_size, 200 + 400 + 1600);
    assert_int_equal(F.nfills - base, 1 + 1 + 2);

    /* a file path is filtered by its own name */
    load(w, "testDir/a_1", "_2$");
    i = wait_done(w, "testDir/a_1");
    assert_int_equal(i.status, WARMUP_COMPLETED);
    assert_int_equal(i.total_size, 0);
    assert_not_loaded("testDir/a_1");
    wfree(w);
}

static void test_shadowed_file_loaded(void **state)
{
    /* "d/x" is shadowed by the directory "d/x/" in the mount; the walk loads both (documented
     * choice in warmup.c). This pins the behaviour so a change is deliberate. */
    fake_add("d/x", 100);
    fake_add("d/x/y", 200);
    struct warmup *w = mk("", 2, 0, 0);
    load(w, "d", NULL);
    struct warmup_task_info i = wait_done(w, "d");
    assert_int_equal(i.total_size, 300);
    assert_loaded("d/x");
    assert_loaded("d/x/y");
    wfree(w);
}

static void test_big_file_blocks_once(void **state)
{
    fake_add("big", 64 * BS + 7);
    F.fill_us = 200;
    struct warmup *w = mk("", 8, 0, 0);
    load(w, "big", NULL);
    struct warmup_task_info i = wait_done(w, "big");
    assert_int_equal(i.status, WARMUP_COMPLETED);
    assert_int_equal(i.total_size, 64 * BS + 7);
    assert_int_equal(i.completed_size, 64 * BS + 7);
    assert_loaded("big");
    assert_int_equal(F.nfills, 65);
    wfree(w);
}

static void test_progress(void **state)
{
    fake_add("p/a", 2 * BS);
    fake_add("p/b", 2 * BS);
    fake_add("p/c", 2 * BS);
    fake_add("p/d", 2 * BS);
    gate_set(3); /* three fills pass, the rest wait */
    struct warmup *w = mk("", 2, 0, 0);
    load(w, "p", NULL);
    WAIT_FAKE(F.fills_done == 3 && F.held == 2);
    /* the walk ends (four files fit in the queue): TotalSize is then final, CompletedSize is
     * exactly the three blocks that passed, and the task is still running */
    struct warmup_task_info i;
    for (int k = 0; k < 5000; k++) {
        i = stat1(w, "p");
        if (i.completed_size == 3 * BS && i.total_size == 8 * BS)
            break;
        usleep(1000);
    }
    assert_int_equal(i.status, WARMUP_RUNNING);
    assert_true(i.is_dir);
    assert_int_equal(i.total_size, 8 * BS);
    assert_int_equal(i.completed_size, 3 * BS);
    uint64_t c[4];
    warmup_counts(w, c);
    assert_int_equal(c[WARMUP_RUNNING], 1);
    gate_set(-1);
    i = wait_done(w, "p");
    assert_int_equal(i.status, WARMUP_COMPLETED);
    assert_int_equal(i.completed_size, 8 * BS);
    assert_int_equal(F.nfills, 8);
    warmup_counts(w, c);
    assert_int_equal(c[WARMUP_RUNNING], 0);
    assert_int_equal(c[WARMUP_COMPLETED], 1);
    wfree(w);
}

static void test_cancel(void **state)
{
    char name[64], err[256];
    for (int k = 0; k < 50; k++) {
        snprintf(name, sizeof(name), "c/f%02d", k);
        fake_add(name, 3 * BS);
    }
    fake_add("done", 100);
    gate_set(0);
    struct warmup *w = mk("", 4, 0, 0);
    load(w, "c", NULL);
    WAIT_FAKE(F.held == 4);
    assert_int_equal(warmup_cancel(w, "c", err, sizeof(err)), 1);
    pthread_mutex_lock(&F.lock);
    int started = F.nfills;
    pthread_mutex_unlock(&F.lock);
    assert_int_equal(started, 4);
    struct warmup_task_info i = stat1(w, "c");
    assert_int_equal(i.status, WARMUP_CANCELED);
    assert_string_equal(i.error, "");
    gate_set(-1);
    WAIT_FAKE(F.fills_done == 4);
    usleep(100 * 1000); /* grace: nothing new may start */
    assert_int_equal(F.nfills, started);
    i = stat1(w, "c");
    assert_int_equal(i.status, WARMUP_CANCELED);
    assert_int_equal(i.completed_size, 4 * BS); /* the fills that were running */
    /* canceled, completed, unknown */
    assert_int_equal(warmup_cancel(w, "c", err, sizeof(err)), -EALREADY);
    assert_non_null(strstr(err, "'c'"));
    load(w, "done", NULL);
    assert_int_equal(wait_done(w, "done").status, WARMUP_COMPLETED);
    assert_int_equal(warmup_cancel(w, "done", err, sizeof(err)), -EALREADY);
    assert_int_equal(warmup_cancel(w, "nope", err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "'nope'"));
    assert_int_equal(warmup_cancel(w, "/c", err, sizeof(err)), -EINVAL);
    uint64_t c[4];
    warmup_counts(w, c);
    assert_int_equal(c[WARMUP_CANCELED], 1);
    assert_int_equal(c[WARMUP_COMPLETED], 1);
    wfree(w);
}

static void test_cancel_many_of_a_path(void **state)
{
    char err[256];
    fake_add("m/a", 10 * BS);
    gate_set(0);
    struct warmup *w = mk("", 2, 0, 0);
    load(w, "m", NULL);
    load(w, "m", NULL);
    load(w, "m/a", NULL);
    WAIT_FAKE(F.held == 2);
    assert_int_equal(warmup_cancel(w, "m", err, sizeof(err)), 2);
    struct warmup_task_info i[4];
    assert_int_equal(warmup_stat(w, "m", 0, i, 4, err, sizeof(err)), 2);
    assert_int_equal(i[0].status, WARMUP_CANCELED);
    assert_int_equal(i[1].status, WARMUP_CANCELED);
    assert_int_equal(stat1(w, "m/a").status, WARMUP_RUNNING);
    gate_set(-1);
    assert_int_equal(wait_done(w, "m/a").status, WARMUP_COMPLETED);
    wfree(w);
}

/* A walk still listing (the fake's callback blocked on a full queue) stops when canceled. */
static void test_cancel_during_walk(void **state)
{
    char name[64], err[256];
    for (int k = 0; k < 2000; k++) {
        snprintf(name, sizeof(name), "w/f%04d", k);
        fake_add(name, 1);
    }
    gate_set(0);
    struct warmup *w = mk("", 2, 0, 0);
    load(w, "w", NULL);
    /* the queue fills up, two files are being filled, the walk waits */
    WAIT_FAKE(F.held == 2 && F.listed >= WARMUP_QUEUE_MAX + 2);
    usleep(50 * 1000);
    pthread_mutex_lock(&F.lock);
    uint64_t listed = F.listed;
    pthread_mutex_unlock(&F.lock);
    /* bounded memory: the walk holds at most the queue, the fills and the key in hand */
    assert_true(listed <= WARMUP_QUEUE_MAX + 2 + 1);
    struct warmup_task_info i = stat1(w, "w");
    assert_int_equal(i.status, WARMUP_RUNNING);
    assert_true(i.total_size <= WARMUP_QUEUE_MAX + 2 + 1);
    assert_int_equal(warmup_cancel(w, "w", err, sizeof(err)), 1);
    gate_set(-1);
    WAIT_FAKE(F.fills_done == 2);
    usleep(50 * 1000);
    assert_int_equal(F.nfills, 2);
    assert_true(F.listed <= listed + 1); /* the listing stopped */
    wfree(w);
}

static void test_fill_error(void **state)
{
    fake_add("e/a", 3 * BS);
    fake_add("e/bad", 3 * BS);
    fake_add("e/c", 3 * BS);
    fake_fail("e/bad", -EIO);
    struct warmup *w = mk("", 1, 0, 0);
    load(w, "e", NULL);
    struct warmup_task_info i = wait_done(w, "e");
    assert_int_equal(i.status, WARMUP_FAILED);
    assert_non_null(strstr(i.error, "'e/bad'"));
    assert_non_null(strstr(i.error, strerror(EIO)));
    assert_not_loaded("e/c"); /* one worker: the failure stops the task before it */
    assert_int_equal(fills_of("e/bad", 0), 1);
    assert_int_equal(fills_of("e/bad", 1), 0);
    uint64_t c[4];
    warmup_counts(w, c);
    assert_int_equal(c[WARMUP_FAILED], 1);
    char err[256];
    assert_int_equal(warmup_cancel(w, "e", err, sizeof(err)), -EALREADY);
    wfree(w);
}

static void test_vanished_skipped(void **state)
{
    fake_add("v/a", 2 * BS);
    fake_add("v/gone", 5 * BS + 5);
    fake_add("v/stale", 3 * BS);
    fake_add("v/z", 1 * BS);
    fake_fail("v/gone", -ENOENT);
    fake_fail("v/stale", -ESTALE);
    struct warmup *w = mk("", 2, 0, 0);
    load(w, "v", NULL);
    struct warmup_task_info i = wait_done(w, "v");
    assert_int_equal(i.status, WARMUP_COMPLETED);
    assert_string_equal(i.error, "");
    assert_int_equal(i.total_size, 3 * BS);
    assert_int_equal(i.completed_size, 3 * BS);
    assert_loaded("v/a");
    assert_loaded("v/z");
    /* a vanished file is not tried to its end */
    assert_true(fills_of("v/gone", 4) + fills_of("v/gone", 5) == 0);
    wfree(w);
}

static void test_nonexistent(void **state)
{
    fake_add("there", 10);
    struct warmup *w = mk("", 2, 0, 0);
    load(w, "nope", NULL);
    struct warmup_task_info i = wait_done(w, "nope");
    assert_int_equal(i.status, WARMUP_FAILED);
    assert_string_equal(i.error, "path 'nope' does not exist");
    assert_int_equal(i.total_size, 0);
    /* "the" is a prefix of "there" but neither a file nor a directory */
    load(w, "the", NULL);
    assert_int_equal(wait_done(w, "the").status, WARMUP_FAILED);

    /* a HEAD error other than ENOENT */
    F.head_err = -EACCES;
    load(w, "x", NULL);
    i = wait_done(w, "x");
    assert_int_equal(i.status, WARMUP_FAILED);
    assert_non_null(strstr(i.error, "cannot stat 'x'"));
    F.head_err = 0;

    /* a listing error */
    F.list_err = -EIO;
    load(w, "", NULL);
    i = wait_done(w, "");
    assert_int_equal(i.status, WARMUP_FAILED);
    assert_non_null(strstr(i.error, "cannot list"));
    assert_non_null(strstr(i.error, strerror(EIO)));
    wfree(w);
}

static void test_history_max_tasks(void **state)
{
    char name[16], err[256];
    for (int k = 0; k < 5; k++) {
        snprintf(name, sizeof(name), "h%d", k);
        fake_add(name, 10);
    }
    struct warmup *w = mk("", 2, 3, 0);
    for (int k = 0; k < 5; k++) {
        snprintf(name, sizeof(name), "h%d", k);
        load(w, name, NULL);
        assert_int_equal(wait_done(w, name).status, WARMUP_COMPLETED);
    }
    struct warmup_task_info i;
    assert_int_equal(warmup_stat(w, "h0", 0, &i, 1, err, sizeof(err)), 0);
    assert_int_equal(warmup_stat(w, "h1", 0, &i, 1, err, sizeof(err)), 0);
    for (int k = 2; k < 5; k++) {
        snprintf(name, sizeof(name), "h%d", k);
        assert_int_equal(warmup_stat(w, name, 0, &i, 1, err, sizeof(err)), 1);
    }
    assert_int_equal(warmup_cancel(w, "h0", err, sizeof(err)), -ENOENT);
    uint64_t c[4];
    warmup_counts(w, c);
    assert_int_equal(c[WARMUP_COMPLETED], 3);

    /* running tasks are never evicted: with three running, a fourth is refused */
    gate_set(0);
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof(name), "h%d", k);
        load(w, name, NULL);
    }
    WAIT_FAKE(F.held == 2);
    uint64_t id;
    assert_int_equal(warmup_load(w, "h3", NULL, &id, err, sizeof(err)), -EBUSY);
    assert_true(strlen(err) > 0);
    warmup_counts(w, c);
    assert_int_equal(c[WARMUP_RUNNING], 3);
    assert_int_equal(c[WARMUP_COMPLETED], 0);
    /* a canceled one makes room */
    assert_int_equal(warmup_cancel(w, "h0", err, sizeof(err)), 1);
    assert_int_equal(warmup_load(w, "h3", NULL, &id, err, sizeof(err)), 0);
    assert_int_equal(warmup_stat(w, "h0", 0, &i, 1, err, sizeof(err)), 0);
    gate_set(-1);
    for (int k = 1; k < 4; k++) {
        snprintf(name, sizeof(name), "h%d", k);
        assert_int_equal(wait_done(w, name).status, WARMUP_COMPLETED);
    }
    wfree(w);
}

static uint64_t fake_now;
static uint64_t clock_fn(void *arg)
{
    return __atomic_load_n((uint64_t *)arg, __ATOMIC_SEQ_CST);
}
static void advance(uint64_t s)
{
    __atomic_add_fetch(&fake_now, s * 1000000u, __ATOMIC_SEQ_CST);
}

static void test_history_max_age(void **state)
{
    char err[256];
    fake_add("old", 10);
    fake_add("run", 10 * BS);
    fake_now = 1700000000ull * 1000000u;
    struct warmup *w = mk("", 2, 0, 10);
    warmup_set_clock_for_test(w, clock_fn, &fake_now);
    load(w, "old", NULL);
    struct warmup_task_info i = wait_done(w, "old");
    assert_int_equal(i.submit_time_us, fake_now);
    advance(9);
    assert_int_equal(warmup_stat(w, "old", 0, &i, 1, err, sizeof(err)), 1);
    gate_set(0);
    load(w, "run", NULL);
    advance(2); /* "old" is 11 s old now */
    assert_int_equal(warmup_stat(w, "old", 0, &i, 1, err, sizeof(err)), 0);
    uint64_t c[4];
    warmup_counts(w, c);
    assert_int_equal(c[WARMUP_COMPLETED], 0);
    assert_int_equal(c[WARMUP_RUNNING], 1);
    /* a running task outlives max_age */
    advance(100);
    assert_int_equal(warmup_stat(w, "run", 0, &i, 1, err, sizeof(err)), 1);
    assert_int_equal(i.status, WARMUP_RUNNING);
    /* ... and goes as soon as it is finished */
    gate_set(-1);
    int n = 1;
    for (int k = 0; k < 10000 && n == 1; k++) {
        n = warmup_stat(w, "run", 0, &i, 1, err, sizeof(err));
        assert_true(n == 0 || i.status == WARMUP_RUNNING);
        usleep(1000);
    }
    assert_int_equal(n, 0);
    assert_int_equal(F.nfills, 1 + 10);
    warmup_counts(w, c);
    assert_int_equal(c[0] + c[1] + c[2] + c[3], 0);
    wfree(w);
}

static void test_preceding_time(void **state)
{
    char err[256];
    fake_add("p", 10);
    fake_now = 1700000000ull * 1000000u;
    struct warmup *w = mk("", 2, 0, 0);
    warmup_set_clock_for_test(w, clock_fn, &fake_now);
    uint64_t a = load(w, "p", NULL);
    wait_done(w, "p");
    advance(100);
    uint64_t b = load(w, "p", ".*");
    wait_done(w, "p");
    advance(10);
    struct warmup_task_info i[3];
    assert_int_equal(warmup_stat(w, "p", 50, i, 3, err, sizeof(err)), 1);
    assert_int_equal(i[0].id, b);
    assert_string_equal(i[0].pattern, ".*");
    assert_int_equal(warmup_stat(w, "p", 0, i, 3, err, sizeof(err)), 2);
    assert_int_equal(i[0].id, b); /* newest first */
    assert_int_equal(i[1].id, a);
    assert_true(i[0].submit_time_us > i[1].submit_time_us);
    assert_int_equal(warmup_stat(w, "p", 110, i, 3, err, sizeof(err)), 2);
    assert_int_equal(warmup_stat(w, "p", 109, i, 3, err, sizeof(err)), 1);
    assert_int_equal(warmup_stat(w, "p", 86400, i, 3, err, sizeof(err)), 2);
    /* the count says how many matched, OUT gets MAX of them */
    memset(i, 0, sizeof(i));
    assert_int_equal(warmup_stat(w, "p", 0, i, 1, err, sizeof(err)), 2);
    assert_int_equal(i[0].id, b);
    assert_int_equal(i[1].id, 0);
    assert_int_equal(warmup_stat(w, "p", 0, NULL, 0, err, sizeof(err)), 2);
    /* other paths are not matched */
    assert_int_equal(warmup_stat(w, "", 0, i, 3, err, sizeof(err)), 0);
    wfree(w);
}

static void test_fairness(void **state)
{
    char name[32];
    fake_add("big/f", 400 * BS);
    for (int k = 0; k < 5; k++) {
        snprintf(name, sizeof(name), "small/%d", k);
        fake_add(name, BS);
    }
    F.fill_us = 1000;
    struct warmup *w = mk("", 1, 0, 0);
    load(w, "big", NULL);
    WAIT_FAKE(F.fills_done >= 3);
    load(w, "small", NULL);
    struct warmup_task_info i = wait_done(w, "small");
    assert_int_equal(i.status, WARMUP_COMPLETED);
    /* round-robin: the small task needed ~10 fills, not the big one's 400 */
    i = stat1(w, "big");
    assert_int_equal(i.status, WARMUP_RUNNING);
    assert_true(i.completed_size < 100 * BS);
    wfree(w);
}

/* Many tasks at once, some canceled, then free while the rest run: everything stops promptly
 * and (under ASan) nothing leaks or is used after free. */
static void test_many_tasks_then_free(void **state)
{
    char name[64], err[256];
    for (int d = 0; d < 30; d++)
        for (int k = 0; k < 30; k++) {
            snprintf(name, sizeof(name), "m%02d/f%02d", d, k);
            fake_add(name, 3 * BS - 1);
        }
    F.fill_us = 300;
    struct warmup *w = mk("", 4, 0, 0);
    for (int d = 0; d < 30; d++) {
        snprintf(name, sizeof(name), "m%02d", d);
        load(w, name, d % 3 ? NULL : "f0");
    }
    WAIT_FAKE(F.fills_done >= 40);
    int canceled = 0;
    for (int d = 0; d < 30; d += 2) {
        snprintf(name, sizeof(name), "m%02d", d);
        int rc = warmup_cancel(w, name, err, sizeof(err));
        assert_true(rc == 1 || rc == -EALREADY);
        canceled += rc == 1;
    }
    assert_true(canceled > 0);
    uint64_t c[4];
    warmup_counts(w, c);
    assert_int_equal(c[0] + c[1] + c[2] + c[3], 30);
    assert_true(c[WARMUP_RUNNING] > 0);
    uint64_t t0 = time_mono_ms();
    wfree(w);
    uint64_t ms = time_mono_ms() - t0;
    /* one fill per worker (0.3 ms) and the joins */
    if (ms > 1000)
        fail_msg("warmup_free took %llu ms", (unsigned long long)ms);
    /* no fill runs after free */
    pthread_mutex_lock(&F.lock);
    int n = F.nfills;
    assert_int_equal(F.fills_done, n);
    pthread_mutex_unlock(&F.lock);
    usleep(20 * 1000);
    assert_int_equal(F.nfills, n);
}

static void *open_gate_later(void *arg)
{
    usleep(50 * 1000);
    gate_set(-1);
    return NULL;
}

/* Free while fills are held at the gate and walks wait on full queues: free cancels, the walks
 * let go at once, and free returns as soon as the fills in progress do. */
static void test_free_while_blocked(void **state)
{
    char name[64];
    for (int d = 0; d < 20; d++)
        for (int k = 0; k < WARMUP_QUEUE_MAX + 20; k++) {
            snprintf(name, sizeof(name), "z%02d/f%04d", d, k);
            fake_add(name, 1);
        }
    gate_set(0);
    struct warmup *w = mk("", 3, 0, 0);
    for (int d = 0; d < 20; d++) {
        snprintf(name, sizeof(name), "z%02d", d);
        load(w, name, NULL);
    }
    WAIT_FAKE(F.held == 3 && F.listed >= WARMUP_WALKERS_MAX * WARMUP_QUEUE_MAX);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, open_gate_later, NULL), 0);
    uint64_t t0 = time_mono_ms();
    wfree(w);
    uint64_t ms = time_mono_ms() - t0;
    pthread_join(th, NULL);
    assert_true(ms >= 40); /* it did wait for the fills in progress */
    if (ms > 1000)
        fail_msg("warmup_free took %llu ms", (unsigned long long)ms);
    assert_int_equal(F.nfills, 3);
}

int main(void)
{
    log_set_level(LOG_LVL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_normalize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pattern_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_dir_recursive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_prefix_escape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pattern, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shadowed_file_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_file_blocks_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_many_of_a_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_during_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vanished_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonexistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_max_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_max_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preceding_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fairness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_tasks_then_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_while_blocked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
