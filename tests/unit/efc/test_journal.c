#define _GNU_SOURCE
/* tests/unit/efc/test_journal.c - the crash journal (efc/journal.c): a replay gives exactly the
 * live set (named or not, every open handle), across a second writer, across many compactions,
 * and not the records past the published used count; a journal outgrowing a half turns off; a
 * corrupt journal is refused as a whole with a reason before any callback; the hand-over blob made
 * from it parses and restores the inode table (lookup counts unknown); the command line round
 * trips through the header. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "efc/hoblob_i.h"
#include "efc/journal_i.h"
#include "efc/ns_i.h"
#include "tests/select_tests.h"
#include "util/buf.h"
#include "util/le.h"

/* ---- helpers ----------------------------------------------------------------------------------
 */

#define HALF_SMALL  EFC_JNL_MIN_HALF
#define OFF_ACTIVE  24
#define OFF_USED(i) (32 + 8 * (i))
#define OFF_STATE   48
#define OFF_GEN     64
#define H(num)      (((uint64_t)(num) << 32) | 7) /* a handle number as fs.c makes them */

static struct efc_journal *mk(uint64_t half)
{
    struct efc_journal *j = NULL;
    char err[256];
    assert_int_equal(efc_journal_create(half, &j, err, sizeof(err)), 0);
    assert_non_null(j);
    return j;
}

/* The whole memfd, mapped shared (writes go to the journal). */
struct map {
    uint8_t *mem;
    size_t len;
};

static struct map map_of(int fd)
{
    struct stat st;
    struct map m;
    assert_int_equal(fstat(fd, &st), 0);
    m.len = (size_t)st.st_size;
    m.mem = mmap(NULL, m.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(m.mem != MAP_FAILED);
    return m;
}

static void unmap(struct map *m)
{
    munmap(m->mem, m->len);
}

/* The active half's records and its used count. */
static uint8_t *active_base(const struct map *m)
{
    uint64_t half = le_get64(m->mem + 16);
    return m->mem + EFC_JNL_HEADER_SIZE + le_get32(m->mem + OFF_ACTIVE) * half;
}

static uint64_t active_used(const struct map *m)
{
    return le_get64(m->mem + OFF_USED(le_get32(m->mem + OFF_ACTIVE)));
}

/* What a replay handed out, in order. */
#define GOT_MAX 1024
struct got {
    int nodes, handles, calls;
    struct {
        uint64_t ino, parent;
        size_t namelen, keylen;
        bool is_dir, named;
        char key[OSS_MAX_KEY_LEN + 1];
    } n[GOT_MAX];
    struct {
        struct efc_fh_record r;
        char key[OSS_MAX_KEY_LEN + 1], etag[OSS_MAX_ETAG_LEN + 1];
    } h[GOT_MAX];
};

static int got_node(void *arg, const struct efc_journal_node *n)
{
    struct got *g = arg;
    g->calls++;
    assert_int_equal(g->handles, 0); /* nodes first */
    assert_int_equal(strlen(n->key), n->keylen);
    if (g->nodes > 0 && g->nodes <= GOT_MAX)
        assert_true(n->ino > g->n[g->nodes - 1].ino); /* in inode order */
    if (g->nodes < GOT_MAX) {
        int i = g->nodes;
        g->n[i].ino = n->ino;
        g->n[i].parent = n->parent;
        g->n[i].namelen = n->namelen;
        g->n[i].keylen = n->keylen;
        g->n[i].is_dir = n->is_dir;
        g->n[i].named = n->named;
        memcpy(g->n[i].key, n->key, n->keylen + 1);
    }
    g->nodes++;
    return 0;
}

static int got_handle(void *arg, const struct efc_fh_record *r)
{
    struct got *g = arg;
    g->calls++;
    if (g->handles > 0 && g->handles <= GOT_MAX)
        assert_true(r->num > g->h[g->handles - 1].r.num); /* in number order */
    if (g->handles < GOT_MAX) {
        int i = g->handles;
        g->h[i].r = *r;
        snprintf(g->h[i].key, sizeof(g->h[i].key), "%s", r->key);
        snprintf(g->h[i].etag, sizeof(g->h[i].etag), "%s", r->etag);
        g->h[i].r.key = g->h[i].key;
        g->h[i].r.etag = g->h[i].etag;
    }
    g->handles++;
    return 0;
}

static const struct efc_journal_visitor GOT = {.node = got_node, .handle = got_handle};

static struct got *replay_ok(const void *mem, size_t len)
{
    struct got *g = calloc(1, sizeof(*g));
    char err[256] = "";
    int rc = efc_journal_replay(mem, len, &GOT, g, err, sizeof(err));
    if (rc != 0)
        fail_msg("replay: %d %s", rc, err);
    return g;
}

static struct got *replay_journal(struct efc_journal *j)
{
    struct map m = map_of(efc_journal_fd(j));
    struct got *g = replay_ok(m.mem, m.len);
    unmap(&m);
    return g;
}

static void node(struct efc_journal *j, uint64_t ino, uint64_t parent, const char *key,
                 size_t namelen, bool dir)
{
    efc_journal_node(j, ino, parent, namelen, dir, key, strlen(key));
}

static void open_h(struct efc_journal *j, uint64_t num, uint64_t ino, uint64_t size,
                   const char *key, const char *etag, bool dir)
{
    struct efc_fh_record r = {
        .num = num, .ino = ino, .parent = 1, .size = size, .is_dir = dir, .key = key, .etag = etag};
    efc_journal_open(j, &r);
}

/* A FUSE_INIT request as the kernel sends it. */
static void make_init(uint8_t *buf, uint32_t *len)
{
    struct fuse_in_header in;
    struct fuse_init_in ii;
    memset(&in, 0, sizeof(in));
    memset(&ii, 0, sizeof(ii));
    in.len = sizeof(in) + sizeof(ii);
    in.opcode = FUSE_INIT;
    in.unique = 2;
    ii.major = 7;
    ii.minor = 38;
    ii.max_readahead = 131072;
    memcpy(buf, &in, sizeof(in));
    memcpy(buf + sizeof(in), &ii, sizeof(ii));
    *len = in.len;
}

/* ---- replay -----------------------------------------------------------------------------------
 */

/* Every kind of record: the replay keeps the last word on each inode and handle. */
static void fill_mixed(struct efc_journal *j)
{
    node(j, 0x100, 1, "p/a", 1, false);
    node(j, 0x200, 1, "p/d/", 1, true);
    node(j, 0x300, 0x200, "p/d/b", 1, false);
    efc_journal_unname(j, 0x300); /* live, unnamed */
    node(j, 0x400, 1, "p/c", 1, false);
    efc_journal_forget(j, 0x400); /* gone */
    node(j, 0x500, 1, "p/e", 1, false);
    efc_journal_unname(j, 0x500);
    efc_journal_forget(j, 0x500); /* gone after unname */
    efc_journal_unname(j, 0x999); /* never a node: ignored */
    efc_journal_forget(j, 0x998);
    open_h(j, H(1), 0x100, 11, "p/a", "\"E1\"", false);
    open_h(j, H(2), 0x200, 0, "p/d/", "", true);
    efc_journal_close(j, H(2));
    open_h(j, H(3), 0x300, 5, "p/d/b", "\"E3\"", false);
    efc_journal_close(j, H(9)); /* never opened: ignored */
}

static void test_replay_live_set(void **state)
{
    struct efc_journal *j = mk(HALF_SMALL);
    fill_mixed(j);

    struct got *g = replay_journal(j);
    assert_int_equal(g->nodes, 3);
    assert_int_equal(g->n[0].ino, 0x100);
    assert_true(g->n[0].named);
    assert_false(g->n[0].is_dir);
    assert_string_equal(g->n[0].key, "p/a");
    assert_int_equal(g->n[0].namelen, 1);
    assert_int_equal(g->n[0].parent, 1);
    assert_int_equal(g->n[1].ino, 0x200);
    assert_true(g->n[1].named);
    assert_true(g->n[1].is_dir);
    assert_string_equal(g->n[1].key, "p/d/");
    assert_int_equal(g->n[2].ino, 0x300);
    assert_false(g->n[2].named);
    assert_int_equal(g->n[2].parent, 0x200);
    assert_string_equal(g->n[2].key, "p/d/b");

    assert_int_equal(g->handles, 2);
    assert_int_equal(g->h[0].r.num, H(1));
    assert_int_equal(g->h[0].r.ino, 0x100);
    assert_int_equal(g->h[0].r.size, 11);
    assert_string_equal(g->h[0].key, "p/a");
    assert_string_equal(g->h[0].etag, "\"E1\"");
    assert_false(g->h[0].r.is_dir);
    assert_int_equal(g->h[1].r.num, H(3));
    assert_string_equal(g->h[1].etag, "\"E3\"");

    struct efc_journal_stats st;
    efc_journal_get_stats(j, &st);
    assert_int_equal(st.records, 16);
    assert_int_equal(st.compactions, 0);
    assert_false(st.off);
    free(g);
    efc_journal_free(j);
}

/* A successor attaches to the memfd (a dup, as it gets it) and goes on where the first stopped. */
static void test_attach_continues(void **state)
{
    struct efc_journal *j = mk(HALF_SMALL), *j2 = NULL;
    char err[256];
    struct efc_journal_stats st1, st2;

    fill_mixed(j);
    efc_journal_get_stats(j, &st1);
    assert_int_equal(efc_journal_attach(dup(efc_journal_fd(j)), &j2, err, sizeof(err)), 0);
    node(j2, 0x600, 1, "p/f", 1, false);
    efc_journal_unname(j2, 0x100);
    efc_journal_close(j2, H(1));
    efc_journal_forget(j2, 0x300);
    efc_journal_get_stats(j2, &st2);
    assert_int_equal(st2.records, 4);
    assert_true(st2.used > st1.used);
    assert_int_equal(st2.live, 4); /* its scan found 5, then +1 -2 */

    struct got *g = replay_journal(j2);
    assert_int_equal(g->nodes, 3);
    assert_int_equal(g->n[0].ino, 0x100);
    assert_false(g->n[0].named); /* the second writer's unname */
    assert_int_equal(g->n[1].ino, 0x200);
    assert_int_equal(g->n[2].ino, 0x600);
    assert_true(g->n[2].named);
    assert_int_equal(g->handles, 1);
    assert_int_equal(g->h[0].r.num, H(3));
    free(g);

    /* not a journal: refused, and the fd it took is closed */
    int fd = memfd_create("not-a-journal", MFD_CLOEXEC);
    assert_int_equal(ftruncate(fd, EFC_JNL_HEADER_SIZE + 2 * HALF_SMALL), 0);
    struct efc_journal *j3 = NULL;
    assert_int_equal(efc_journal_attach(fd, &j3, err, sizeof(err)), -EINVAL);
    assert_null(j3);
    assert_non_null(strstr(err, "magic"));
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    efc_journal_free(j2);
    efc_journal_free(j);
}

/* Many short-lived nodes: compactions keep the half bounded and the live set exact, unnamed nodes
   included. */
static void test_compaction(void **state)
{
    const uint64_t half = EFC_JNL_MIN_HALF * 4;
    struct efc_journal *j = mk(half);
    struct efc_journal_stats st;
    char key[64];
    uint64_t max_used = 0;

    for (uint64_t i = 0; i < 200000; i++) {
        uint64_t ino = 0x1000 + i;
        snprintf(key, sizeof(key), "dir/file%06llu", (unsigned long long)i);
        node(j, ino, 2, key, strlen(key) - 4, false);
        open_h(j, H(i + 1), ino, i, key, "\"etag\"", false);
        if (i % 1000 == 7) { /* kept: 200 nodes, every fourth unnamed, and their handles */
            if (i % 4000 == 7)
                efc_journal_unname(j, ino);
            continue;
        }
        efc_journal_close(j, H(i + 1));
        efc_journal_forget(j, ino);
        efc_journal_get_stats(j, &st);
        if (st.used > max_used)
            max_used = st.used;
    }
    efc_journal_get_stats(j, &st);
    assert_false(st.off);
    assert_true(st.compactions > 50);
    assert_true(max_used <= half);
    assert_int_equal(st.live, 400);

    struct map m = map_of(efc_journal_fd(j));
    assert_int_equal(le_get64(m.mem + OFF_GEN), st.compactions);
    assert_int_equal(le_get32(m.mem + OFF_STATE), EFC_JNL_SERVING);
    /* the inactive half's pages were given back */
    uint32_t inactive = le_get32(m.mem + OFF_ACTIVE) ^ 1;
    assert_int_equal(le_get64(m.mem + OFF_USED(inactive)), 0);
    struct stat sb;
    assert_int_equal(fstat(efc_journal_fd(j), &sb), 0);
    assert_true((uint64_t)sb.st_blocks * 512 <= EFC_JNL_HEADER_SIZE + half + 4096);

    struct got *g = replay_ok(m.mem, m.len);
    assert_int_equal(g->nodes, 200);
    assert_int_equal(g->handles, 200);
    for (int k = 0; k < 200; k++) {
        uint64_t i = (uint64_t)k * 1000 + 7;
        snprintf(key, sizeof(key), "dir/file%06llu", (unsigned long long)i);
        assert_int_equal(g->n[k].ino, 0x1000 + i);
        assert_string_equal(g->n[k].key, key);
        assert_int_equal(g->n[k].namelen, strlen(key) - 4);
        assert_int_equal(g->n[k].parent, 2);
        assert_int_equal(g->n[k].named, i % 4000 != 7);
        assert_int_equal(g->h[k].r.num, H(i + 1));
        assert_int_equal(g->h[k].r.size, i);
        assert_string_equal(g->h[k].key, key);
        assert_string_equal(g->h[k].etag, "\"etag\"");
    }
    free(g);
    unmap(&m);
    efc_journal_free(j);
}

/* With room to spare, a half of mostly dead records is compacted before it fills. */
static void test_compaction_of_dead_records(void **state)
{
    const uint64_t half = 16ull << 20;
    struct efc_journal *j = mk(half);
    struct efc_journal_stats st;
    uint64_t max_used = 0;

    for (uint64_t i = 0; i < 100000; i++) {
        node(j, 0x1000 + i, 1, "some/key/of/a/file", 4, false);
        if (i % 10 != 0)
            efc_journal_forget(j, 0x1000 + i);
        efc_journal_get_stats(j, &st);
        if (st.used > max_used)
            max_used = st.used;
    }
    /* 10,000 live nodes of 72 bytes: 720 KB; the dead ones go once used passes 1 MiB and 4x */
    assert_true(st.compactions > 0);
    assert_true(max_used < 4ull << 20);
    struct got *g = replay_journal(j);
    assert_int_equal(g->nodes, 10000);
    free(g);
    efc_journal_free(j);
}

struct writer {
    struct efc_journal *j;
    uint64_t id;
};

static void *write_many(void *arg)
{
    struct writer *w = arg;
    for (uint64_t i = 0; i < 20000; i++) {
        uint64_t ino = (w->id << 40) | (i + 2);
        node(w->j, ino, 1, "a/key", 3, false);
        if (i % 100 != 0)
            efc_journal_forget(w->j, ino);
    }
    return NULL;
}

/* Writers on several threads (as the inode table's shards append): every record lands whole,
   across the compactions they cause. */
static void test_threads(void **state)
{
    struct efc_journal *j = mk(EFC_JNL_MIN_HALF * 4);
    pthread_t t[4];
    struct writer w[4];
    struct efc_journal_stats st;

    for (int i = 0; i < 4; i++) {
        w[i].j = j;
        w[i].id = (uint64_t)i + 1;
        assert_int_equal(pthread_create(&t[i], NULL, write_many, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    efc_journal_get_stats(j, &st);
    assert_false(st.off);
    assert_true(st.compactions > 0);
    assert_int_equal(st.live, 800);
    struct got *g = replay_journal(j);
    assert_int_equal(g->nodes, 800);
    for (int k = 0; k < 800; k++)
        assert_int_equal(g->n[k].ino,
                         ((uint64_t)(k / 200 + 1) << 40) | ((uint64_t)(k % 200) * 100 + 2));
    free(g);
    efc_journal_free(j);
}

/* More live records than a half holds: the journal turns off and stays off. */
static void test_overflow_turns_off(void **state)
{
    struct efc_journal *j = mk(HALF_SMALL);
    struct efc_journal_stats st;
    char key[256];

    memset(key, 'k', 200);
    key[200] = '\0';
    for (uint64_t i = 0; i < 400; i++)
        node(j, 0x100 + i, 1, key, 10, false);
    efc_journal_get_stats(j, &st);
    assert_true(st.off);
    uint64_t records = st.records;
    assert_true(records < 400);
    node(j, 0x10000, 1, "x", 1, false);
    efc_journal_forget(j, 0x100);
    open_h(j, H(1), 0x100, 0, "x", "", false);
    efc_journal_get_stats(j, &st);
    assert_int_equal(st.records, records); /* no-ops */

    struct map m = map_of(efc_journal_fd(j));
    struct efc_journal_header h;
    char err[256];
    assert_int_equal(efc_journal_read_header(m.mem, m.len, &h, err, sizeof(err)), 0);
    assert_int_equal(h.state, EFC_JNL_OFF);
    struct got *g = replay_ok(m.mem, m.len); /* a successor gets no table */
    assert_int_equal(g->calls, 0);
    free(g);
    /* a daemon that says it serves does not turn it back on; one that exits says so */
    efc_journal_set_state(j, EFC_JNL_SERVING);
    assert_int_equal(le_get32(m.mem + OFF_STATE), EFC_JNL_OFF);
    efc_journal_set_state(j, EFC_JNL_EXITING);
    assert_int_equal(le_get32(m.mem + OFF_STATE), EFC_JNL_EXITING);
    unmap(&m);
    efc_journal_free(j);

    /* a record the replay would refuse turns the journal off instead of being written */
    j = mk(HALF_SMALL);
    node(j, 0x100, 1, "p/a", 1, false);
    node(j, 0x200, 1, "p/b", 0, false); /* no name */
    efc_journal_get_stats(j, &st);
    assert_true(st.off);
    efc_journal_free(j);
}

/* Records past the published used count (a writer killed mid-append) are not seen. */
static void test_torn_tail(void **state)
{
    struct efc_journal *j = mk(HALF_SMALL);
    node(j, 0x100, 1, "p/a", 1, false);

    struct map m = map_of(efc_journal_fd(j));
    uint64_t used = active_used(&m);
    uint8_t *base = active_base(&m);
    /* a whole second NODE record, and half a third, past used */
    memcpy(base + used, base, used);
    le_put64(base + used + 16, 0x200);
    memset(base + 2 * used, 0xa5, 20);
    struct got *g = replay_ok(m.mem, m.len);
    assert_int_equal(g->nodes, 1);
    assert_int_equal(g->n[0].ino, 0x100);
    free(g);
    /* the second record was whole: published, it counts */
    le_put64(m.mem + OFF_USED(0), 2 * used);
    g = replay_ok(m.mem, m.len);
    assert_int_equal(g->nodes, 2);
    assert_int_equal(g->n[1].ino, 0x200);
    free(g);
    unmap(&m);
    efc_journal_free(j);
}

/* As test_torn_tail, then a successor attaches and overwrites the torn bytes. */
static void test_torn_tail_overwritten(void **state)
{
    struct efc_journal *j = mk(HALF_SMALL), *j2 = NULL;
    char err[256];
    node(j, 0x100, 1, "p/a", 1, false);
    struct map m = map_of(efc_journal_fd(j));
    uint64_t used = active_used(&m);
    memset(active_base(&m) + used, 0xff, 200);
    assert_int_equal(efc_journal_attach(dup(efc_journal_fd(j)), &j2, err, sizeof(err)), 0);
    efc_journal_free(j);
    node(j2, 0x200, 1, "p/b", 1, false);
    struct got *g = replay_ok(m.mem, m.len);
    assert_int_equal(g->nodes, 2);
    assert_int_equal(g->n[1].ino, 0x200);
    free(g);
    unmap(&m);
    efc_journal_free(j2);
}

/* ---- refused input ----------------------------------------------------------------------------
 */

struct corruption {
    const char *what;
    const char *reason; /* a part of the refusal's reason */
    void (*apply)(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last);
};

static void c_magic(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    mem[0] = 'X';
}
static void c_version(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    le_put32(mem + 8, 2);
}
static void c_half(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    le_put64(mem + 16, EFC_JNL_MIN_HALF + 8);
}
static void c_used(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    le_put64(mem + OFF_USED(0), EFC_JNL_MIN_HALF + 8);
}
static void c_state(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    le_put32(mem + OFF_STATE, 3);
}
static void c_len_past(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    le_put32(base + last, (uint32_t)(used - last + 8));
}
static void c_len_short(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    le_put32(base + last, 40);
}
static void c_type(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    base[last + 4] = 9;
}
static void c_spare(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    base[last + 10] = 1;
}
static void c_namelen0(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    le_put64(base + last + 32, 0);
}
static void c_root(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    le_put64(base + last + 16, EFC_ROOT_INO);
}
static void c_padding(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    base[used - 1] = 'z'; /* the key "p/last" leaves two bytes of padding */
}
static void c_nul(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    base[last + EFC_JNL_FIXED + 1] = '\0';
}
static void c_flags(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    base[last + 5] = 2;
}
static void c_keylen(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    le_put16(base + last + 6, 9); /* the record's length no longer matches */
}
static void c_argc(uint8_t *mem, uint8_t *base, uint64_t used, uint64_t last)
{
    le_put32(mem + 72, 1); /* argc 1 but no argument bytes */
}

static const struct corruption CORRUPTIONS[] = {
    {"bad magic", "magic", c_magic},
    {"bad version", "version", c_version},
    {"half not a multiple of 4096", "half size", c_half},
    {"used past the half", "used", c_used},
    {"unknown state", "state", c_state},
    {"a record running past used", "runs past", c_len_past},
    {"a record shorter than its fixed part", "length 40", c_len_short},
    {"a bad type", "unknown type 9", c_type},
    {"a spare field set", "spare", c_spare},
    {"a node with no name", "name of 0 bytes", c_namelen0},
    {"a node record for the root", "inode 1", c_root},
    {"padding not zero", "padding", c_padding},
    {"a NUL in a key", "NUL", c_nul},
    {"an unknown flag", "flags", c_flags},
    {"a key length that does not match the record's", "length 56 for a key of 9", c_keylen},
    {"argc without arguments", "arguments", c_argc},
};

static void test_corrupt_refused(void **state)
{
    struct efc_journal *j = mk(HALF_SMALL);
    char err[256];

    fill_mixed(j);
    struct efc_journal_stats st;
    efc_journal_get_stats(j, &st);
    uint64_t last = st.used;
    node(j, 0x700, 1, "p/last", 4, false); /* the record the corruptions hit */
    struct map m = map_of(efc_journal_fd(j));
    uint8_t *copy = malloc(m.len);
    assert_non_null(copy);
    uint64_t used = active_used(&m);
    assert_int_equal(used, last + 56);

    for (size_t i = 0; i < sizeof(CORRUPTIONS) / sizeof(CORRUPTIONS[0]); i++) {
        const struct corruption *c = &CORRUPTIONS[i];
        memcpy(copy, m.mem, m.len);
        c->apply(copy, copy + EFC_JNL_HEADER_SIZE, used, last);
        struct got *g = calloc(1, sizeof(*g));
        err[0] = '\0';
        int rc = efc_journal_replay(copy, m.len, &GOT, g, err, sizeof(err));
        if (rc != -EINVAL || strncmp(err, "crash journal: ", 15) != 0 ||
            strstr(err, c->reason) == NULL)
            fail_msg("%s: rc %d, reason '%s' (expected '%s')", c->what, rc, err, c->reason);
        assert_int_equal(g->calls, 0); /* nothing half applied */
        struct buf b;
        assert_int_equal(
            efc_journal_blob(copy, m.len, 1, 2, 0, "x", efc_ns_seq_after, &b, err, sizeof(err)),
            -EINVAL);
        assert_int_equal(b.len, 0);
        free(g);
    }
    /* the same bytes, uncorrupted, replay */
    struct got *g = replay_ok(m.mem, m.len);
    assert_int_equal(g->nodes, 4);
    free(g);
    /* too short for the header, or for its halves */
    assert_int_equal(efc_journal_replay(m.mem, 100, &GOT, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "shorter than its header"));
    assert_int_equal(efc_journal_replay(m.mem, m.len - 1, &GOT, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "two halves"));
    free(copy);
    unmap(&m);
    efc_journal_free(j);
}

/* ---- the hand-over blob -----------------------------------------------------------------------
 */

struct restore {
    struct efc_ns *ns;
    struct efc_ho_header h;
    int nodes, handles;
    struct efc_fh_record hs[4];
    char keys[4][64], etags[4][64];
};

static int r_header(void *arg, const struct efc_ho_header *h)
{
    struct restore *r = arg;
    r->h = *h;
    return 0;
}

static int r_node(void *arg, const struct efc_ns_record *n)
{
    struct restore *r = arg;
    r->nodes++;
    assert_true(n->lookups_unknown);
    assert_int_equal(n->nlookup, 1);
    assert_int_equal(n->attr.fetched_ms, 0);
    assert_string_equal(n->attr.etag, "");
    assert_string_equal(n->open_etag, "");
    return r->ns ? efc_ns_import(r->ns, n) : 0;
}

static int r_handle(void *arg, const struct efc_fh_record *f)
{
    struct restore *r = arg;
    assert_true(r->handles < 4);
    int i = r->handles++;
    r->hs[i] = *f;
    snprintf(r->keys[i], sizeof(r->keys[i]), "%s", f->key);
    snprintf(r->etags[i], sizeof(r->etags[i]), "%s", f->etag);
    r->hs[i].key = r->keys[i];
    r->hs[i].etag = r->etags[i];
    return 0;
}

static const struct efc_ho_visitor RESTORE = {
    .header = r_header, .node = r_node, .handle = r_handle};

static uint64_t add(struct efc_ns *ns, uint64_t parent, const char *name, const char *key, bool dir)
{
    struct efc_attr a;
    uint64_t ino = 0;
    memset(&a, 0, sizeof(a));
    assert_int_equal(efc_ns_add(ns, parent, name, strlen(name), key, dir, &a, &ino, NULL), 0);
    return ino;
}

/* The inode table journals itself; the blob made from the journal restores it in a new table. */
static void test_blob(void **state)
{
    struct efc_journal *j = mk(HALF_SMALL);
    struct efc_ns *ns;
    uint8_t init[256];
    uint32_t init_len;
    static const uint8_t reply[64] = {7, 0, 0, 0, 38, 0, 0, 0, 0, 0, 2, 0, 0x21};
    char err[256];
    struct buf b;

    assert_int_equal(efc_ns_new("p/", &ns), 0);
    efc_ns_set_journal(ns, j);
    uint64_t a = add(ns, 1, "a", "p/a", false);
    uint64_t d = add(ns, 1, "d", "p/d/", true);
    uint64_t x = add(ns, d, "x", "p/d/x", false);
    assert_int_equal(add(ns, d, "x", "p/d/x", false), x); /* a second lookup: no new record */
    uint64_t gone = add(ns, 1, "gone", "p/gone", false);
    efc_ns_forget(ns, gone, 1);
    uint64_t flip = add(ns, 1, "flip", "p/flip", false);
    uint64_t flip2 = add(ns, 1, "flip", "p/flip/", true); /* the file's node is unnamed */
    open_h(j, H(1), a, 11, "p/a", "\"E1\"", false);
    open_h(j, H(2), d, 0, "p/d/", "", true);

    struct map m = map_of(efc_journal_fd(j));
    /* no INIT yet: no blob */
    assert_int_equal(
        efc_journal_blob(m.mem, m.len, 1, 2, 0, "c1", efc_ns_seq_after, &b, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "INIT"));
    make_init(init, &init_len);
    assert_int_equal(efc_journal_set_init(j, init, init_len, reply, sizeof(reply)), 0);
    assert_int_equal(efc_journal_set_init(j, init, EFC_HO_MAX_INIT + 1, reply, sizeof(reply)),
                     -EINVAL);
    /* a bad update id */
    assert_int_equal(
        efc_journal_blob(m.mem, m.len, 1, 2, 0, "no/slash", efc_ns_seq_after, &b, err, sizeof(err)),
        -EINVAL);

    assert_int_equal(efc_journal_blob(m.mem, m.len, 1765274023, 4242, 0, "crash-1",
                                      efc_ns_seq_after, &b, err, sizeof(err)),
                     0);
    struct restore r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(efc_ns_new("p/", &r.ns), 0);
    if (efc_ho_parse(b.data, b.len, &RESTORE, &r, err, sizeof(err)) != 0)
        fail_msg("parse: %s", err);
    assert_int_equal(efc_ns_import_done(r.ns, r.h.next_seq), 0);
    assert_int_equal(r.h.mount_time, 1765274023);
    assert_int_equal(r.h.old_pid, 4242);
    assert_string_equal(r.h.id, "crash-1");
    assert_int_equal(r.h.init_len, init_len);
    assert_memory_equal(r.h.init, init, init_len);
    assert_int_equal(r.h.reply_len, sizeof(reply));
    assert_memory_equal(r.h.reply, reply, sizeof(reply));
    uint64_t max = a;
    uint64_t all[] = {d, x, flip, flip2};
    for (size_t i = 0; i < 4; i++)
        max = all[i] > max ? all[i] : max;
    assert_int_equal(r.h.next_seq, efc_ns_seq_after(max));
    assert_int_equal(r.nodes, 5); /* a, d, x, flip (unnamed), flip2 */
    assert_int_equal(r.h.nodes, 5);

    /* the new table: same numbers under the same names; the unnamed node by number only */
    assert_int_equal(efc_ns_find(r.ns, 1, "a", 1), a);
    assert_int_equal(efc_ns_find(r.ns, 1, "d", 1), d);
    assert_int_equal(efc_ns_find(r.ns, d, "x", 1), x);
    assert_int_equal(efc_ns_find(r.ns, 1, "flip", 4), flip2);
    assert_int_equal(efc_ns_find(r.ns, 1, "gone", 4), 0);
    struct efc_node_info ni;
    assert_int_equal(efc_ns_get(r.ns, flip, &ni), 0);
    assert_string_equal(ni.key, "p/flip");
    assert_int_equal(efc_ns_nlookup(r.ns, x), 1);
    /* the kernel's one forget, whatever its count, ends a node of unknown count */
    efc_ns_forget(r.ns, x, 2);
    assert_int_equal(efc_ns_find(r.ns, d, "x", 1), 0);

    assert_int_equal(r.handles, 2);
    assert_int_equal(r.hs[0].num, H(1));
    assert_int_equal(r.hs[0].ino, a);
    assert_int_equal(r.hs[0].size, 11);
    assert_string_equal(r.hs[0].key, "p/a");
    assert_string_equal(r.hs[0].etag, "\"E1\"");
    assert_false(r.hs[0].is_dir);
    assert_int_equal(r.hs[1].num, H(2));
    assert_true(r.hs[1].is_dir);
    assert_string_equal(r.hs[1].key, "p/d/");

    efc_ns_set_journal(ns, NULL);
    buf_release(&b);
    efc_ns_free(r.ns);
    efc_ns_free(ns);
    unmap(&m);
    efc_journal_free(j);
}

/* An empty journal makes an empty table; one turned off too. */
static void test_blob_empty(void **state)
{
    struct efc_journal *j = mk(HALF_SMALL);
    uint8_t init[256];
    uint32_t init_len;
    char err[256];
    struct buf b;

    make_init(init, &init_len);
    assert_int_equal(efc_journal_set_init(j, init, init_len, NULL, 0), 0);
    struct map m = map_of(efc_journal_fd(j));
    assert_int_equal(
        efc_journal_blob(m.mem, m.len, 1, 2, 0, "", efc_ns_seq_after, &b, err, sizeof(err)), 0);
    struct restore r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(efc_ho_parse(b.data, b.len, &RESTORE, &r, err, sizeof(err)), 0);
    assert_int_equal(r.nodes + r.handles, 0);
    assert_int_equal(r.h.next_seq, efc_ns_seq_after(EFC_ROOT_INO));
    buf_release(&b);

    node(j, 0x100, 1, "p/a", 1, false);
    efc_journal_set_state(j, EFC_JNL_OFF);
    assert_int_equal(
        efc_journal_blob(m.mem, m.len, 1, 2, 0, "", efc_ns_seq_after, &b, err, sizeof(err)), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(efc_ho_parse(b.data, b.len, &RESTORE, &r, err, sizeof(err)), 0);
    assert_int_equal(r.nodes + r.handles, 0);
    buf_release(&b);
    unmap(&m);
    efc_journal_free(j);
}

/* ---- the header -------------------------------------------------------------------------------
 */

static void test_header_round_trip(void **state)
{
    struct efc_journal *j = mk(100000); /* rounded up to 4096 */
    struct efc_journal_header h;
    char err[256];
    char *argv[] = {"/usr/bin/aliyun-alinas-efc", "bucket:/p", "/mnt/x", "", "-o", "ro"};

    efc_journal_set_pid(j, 4321);
    assert_int_equal(efc_journal_set_argv(j, 6, argv), 0);
    struct map m = map_of(efc_journal_fd(j));
    assert_int_equal(efc_journal_read_header(m.mem, m.len, &h, err, sizeof(err)), 0);
    assert_int_equal(h.half, 102400);
    assert_int_equal(m.len, EFC_JNL_HEADER_SIZE + 2 * 102400);
    assert_int_equal(h.active, 0);
    assert_int_equal(h.used, 0);
    assert_int_equal(h.pid, 4321);
    assert_int_equal(h.state, EFC_JNL_SERVING);
    assert_int_equal(h.generation, 0);
    assert_int_equal(h.init_len, 0);
    assert_int_equal(h.argc, 6);
    for (int i = 0; i < 6; i++)
        assert_string_equal(h.argv[i], argv[i]);
    assert_null(h.argv[6]);
    efc_journal_set_state(j, EFC_JNL_EXITING);
    assert_int_equal(efc_journal_read_header(m.mem, m.len, &h, err, sizeof(err)), 0);
    assert_int_equal(h.state, EFC_JNL_EXITING);

    /* the limits: EFC_JNL_MAX_ARGC strings, EFC_JNL_MAX_ARGV bytes */
    char *many[EFC_JNL_MAX_ARGC + 2];
    for (int i = 0; i < EFC_JNL_MAX_ARGC + 1; i++)
        many[i] = "a";
    many[EFC_JNL_MAX_ARGC + 1] = NULL;
    assert_int_equal(efc_journal_set_argv(j, EFC_JNL_MAX_ARGC + 1, many), -E2BIG);
    assert_int_equal(efc_journal_read_header(m.mem, m.len, &h, err, sizeof(err)), 0);
    assert_int_equal(h.argc, 6); /* unchanged */
    assert_int_equal(efc_journal_set_argv(j, EFC_JNL_MAX_ARGC, many), 0);
    assert_int_equal(efc_journal_read_header(m.mem, m.len, &h, err, sizeof(err)), 0);
    assert_int_equal(h.argc, EFC_JNL_MAX_ARGC);
    assert_string_equal(h.argv[EFC_JNL_MAX_ARGC - 1], "a");
    char *big = malloc(EFC_JNL_MAX_ARGV + 1);
    memset(big, 'b', EFC_JNL_MAX_ARGV);
    big[EFC_JNL_MAX_ARGV] = '\0';
    char *one[] = {big};
    assert_int_equal(efc_journal_set_argv(j, 1, one), -E2BIG);
    big[EFC_JNL_MAX_ARGV - 1] = '\0'; /* exactly the room, its NUL included */
    assert_int_equal(efc_journal_set_argv(j, 1, one), 0);
    assert_int_equal(efc_journal_read_header(m.mem, m.len, &h, err, sizeof(err)), 0);
    assert_int_equal(strlen(h.argv[0]), EFC_JNL_MAX_ARGV - 1);
    free(big);

    /* a header claiming more strings than the limit is refused */
    le_put32(m.mem + 72, EFC_JNL_MAX_ARGC + 1);
    assert_int_equal(efc_journal_read_header(m.mem, m.len, &h, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "arguments"));
    /* or one string of the two it claims */
    assert_int_equal(efc_journal_set_argv(j, 2, argv), 0);
    le_put32(m.mem + 72, 3);
    assert_int_equal(efc_journal_read_header(m.mem, m.len, &h, err, sizeof(err)), -EINVAL);
    le_put32(m.mem + 72, 1);
    assert_int_equal(efc_journal_read_header(m.mem, m.len, &h, err, sizeof(err)), -EINVAL);
    unmap(&m);
    efc_journal_free(j);

    /* NULL is fine everywhere on the writing side */
    efc_journal_node(NULL, 2, 1, 1, false, "a", 1);
    efc_journal_forget(NULL, 2);
    efc_journal_set_state(NULL, EFC_JNL_EXITING);
    assert_int_equal(efc_journal_fd(NULL), -1);
    efc_journal_free(NULL);
}

int main(int argc, char **argv)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_live_set), cmocka_unit_test(test_attach_continues),
        cmocka_unit_test(test_compaction),      cmocka_unit_test(test_compaction_of_dead_records),
        cmocka_unit_test(test_threads),         cmocka_unit_test(test_overflow_turns_off),
        cmocka_unit_test(test_torn_tail),       cmocka_unit_test(test_torn_tail_overwritten),
        cmocka_unit_test(test_corrupt_refused), cmocka_unit_test(test_blob),
        cmocka_unit_test(test_blob_empty),      cmocka_unit_test(test_header_round_trip),
    };
    size_t n = select_tests(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
    if (n == 0)
        return 1;
    return _cmocka_run_group_tests("tests", tests, n, NULL, NULL);
}
