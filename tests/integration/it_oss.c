/* tests/integration/it_oss.c - the oss/ client against tests/ossemu over loopback.
 *
 * One ossemu serves a directory built here (plus virtual objects for what a file system cannot
 * hold); a second one serves the same directory for the failover tests. Every request is signed
 * by efc and verified by ossemu with the official SDKs' signing code. Faults are injected through
 * ossemu's admin API, deterministically ("next") wherever a count is asserted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "oss/oss.h"
#include "ossemu_ctl.h"
#include "tests/select_tests.h"
#include "tests/unit/mgmt/promcheck.h"
#include "util/buf.h"
#include "util/histo.h"
#include "util/log.h"
#include "util/timeutil.h"

#define BUCKET  "testbucket"
#define OSSHOST "oss-cn-hangzhou.aliyuncs.com"
#define NMANY   5000

static char *root;    /* the served directory */
static char *scratch; /* credentials files */
static struct ossemu emu, emu2;
static char ep1[64], ep2[64];

static const char *const unicode_keys[] = {
    "unicode/中文 文件.txt", "unicode/a+b%c~d.txt",   "unicode/emoji-😀.bin",
    "unicode/sp ace/x y",    "unicode/q?a=b&c#d.txt", "unicode/semi;colon,comma'quote\".txt",
};

static void write_text(const char *dir, const char *rel, const char *text)
{
    assert_int_equal(write_file(dir, rel, text, strlen(text)), 0);
}

static char *scratch_file(const char *name, const char *content)
{
    char *path;
    assert_true(asprintf(&path, "%s/%s", scratch, name) > 0);
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    chmod(tmp, 0600);
    assert_int_equal(rename(tmp, path), 0); /* atomic replace, as a rotation tool would */
    return path;
}

static int group_setup(void **state)
{
    char name[64];

    root = tmpdir_new("it-oss-root");
    scratch = tmpdir_new("it-oss-scratch");
    if (!root || !scratch)
        return -1;
    write_text(root, "hello.txt", "hello, world\n");
    write_pattern_file(root, "data/small.bin", 100000, 1);
    write_pattern_file(root, "data/edge.bin", (1 << 20) + 7, 2);
    write_pattern_file(root, "data/big.bin", 8 << 20, 3);
    write_file(root, "empty.bin", "", 0);
    write_text(root, "dir/a.txt", "a");
    write_text(root, "dir/b.txt", "bb");
    write_text(root, "dir/sub/c.txt", "ccc");
    for (size_t i = 0; i < sizeof(unicode_keys) / sizeof(unicode_keys[0]); i++)
        write_text(root, unicode_keys[i], unicode_keys[i]);
    for (int i = 0; i < NMANY; i++) {
        snprintf(name, sizeof(name), "many/f%05d", i);
        write_file(root, name, name, strlen(name));
    }
    const char *args[] = {"--bucket",      BUCKET,        "--cred",
                          "testak:testsk", "--sts",       "stsak:stssk:token-one",
                          "--region",      "cn-hangzhou", NULL};
    if (ossemu_start(root, args, &emu) != 0 || ossemu_start(root, args, &emu2) != 0)
        return -1;
    snprintf(ep1, sizeof(ep1), "http://127.0.0.1:%d", emu.port);
    snprintf(ep2, sizeof(ep2), "http://127.0.0.1:%d", emu2.port);
    return 0;
}

static int group_teardown(void **state)
{
    ossemu_stop(&emu);
    ossemu_stop(&emu2);
    tmpdir_remove(root);
    tmpdir_remove(scratch);
    return 0;
}

/* Each test starts with no faults, fresh counters, the default credentials and a sane clock. */
static int test_setup(void **state)
{
    ossemu_faults(&emu, "{}");
    ossemu_faults(&emu2, "{}");
    json_decref(ossemu_admin(&emu, "POST", "/creds",
                             "{\"creds\":[\"testak:testsk\"],\"sts\":[\"stsak:stssk:token-one\"],"
                             "\"expired_tokens\":[]}"));
    json_decref(ossemu_admin(&emu, "POST", "/clock", "{\"skew_ms\":0}"));
    ossemu_reset_stats(&emu);
    ossemu_reset_stats(&emu2);
    return 0;
}

enum cred_kind { CRED_PASSWD, CRED_STS, CRED_ENV };

struct mk {
    enum oss_protocol protocol;
    const char *ca_file;
    int sign_version;
    bool path_style;
    enum cred_kind cred;
    const char *endpoints;
    int budget_ms;
    int stall_ms;
    int max_conns;
};

static struct oss_client *mk_client(const struct mk *m)
{
    struct oss_config c;
    struct oss_client *cl = NULL;
    char err[256];
    char *cred_path = NULL;

    oss_config_init(&c);
    c.protocol = m->protocol;
    c.sign_version = m->sign_version;
    c.bucket = BUCKET;
    c.host =
        m->protocol == OSS_PROTO_S3 ? (m->path_style ? "s3.example.test" : "s3." OSSHOST) : OSSHOST;
    c.region = m->protocol == OSS_PROTO_S3 && m->path_style ? "cn-hangzhou" : NULL;
    c.path_style = m->path_style;
    c.endpoints = m->endpoints ? m->endpoints : ep1;
    c.retry_budget_ms = m->budget_ms ? m->budget_ms : 10000;
    c.stall_timeout_ms = m->stall_ms ? m->stall_ms : 5000;
    c.connect_timeout_ms = 1000;
    c.endpoint_down_ms = 300;
    c.max_connections = m->max_conns;
    c.ca_file = m->ca_file;
    if (m->cred == CRED_PASSWD) {
        cred_path = scratch_file("passwd", "testak:testsk\n");
        c.passwd_file = cred_path;
    } else if (m->cred == CRED_STS) {
        cred_path =
            scratch_file("sts.json", "{\"AccessKeyId\":\"stsak\",\"AccessKeySecret\":\"stssk\","
                                     "\"SecurityToken\":\"token-one\","
                                     "\"Expiration\":\"2099-01-01T00:00:00Z\"}");
        c.sts_file = cred_path;
    }
    int rc = oss_client_new(&c, &cl, err, sizeof(err));
    if (rc)
        fail_msg("oss_client_new: %s (%d)", err, rc);
    free(cred_path);
    return cl;
}

static void check_pattern(const uint8_t *buf, uint64_t off, uint64_t len, uint32_t seed)
{
    for (uint64_t i = 0; i < len; i++)
        if (buf[i] != pattern_byte(off + i, seed))
            fail_msg("byte %" PRIu64 " differs", off + i);
}

static int read_range(struct oss_client *cl, const char *key, uint64_t off, uint64_t len,
                      uint8_t **out, uint64_t *got)
{
    struct oss_get_result res;
    uint8_t *buf = malloc(len ? len : 1);
    struct oss_get g = {.key = key, .offset = off, .length = len, .buf = buf};
    int rc = oss_get(cl, &g, &res);
    *got = rc == 0 ? res.bytes : 0;
    *out = buf;
    return rc;
}

struct listing {
    char **keys;
    size_t n, cap;
    size_t prefixes;
};

static int collect_entry(void *arg, const struct oss_list_entry *e)
{
    struct listing *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->keys = realloc(l->keys, l->cap * sizeof(char *));
    }
    l->keys[l->n++] = strdup(e->key);
    if (e->is_prefix)
        l->prefixes++;
    return 0;
}

static int list_all(struct oss_client *cl, const char *prefix, const char *delim, unsigned maxk,
                    struct listing *l, int *pages)
{
    struct oss_list req = {.prefix = prefix, .delimiter = delim, .max_keys = maxk};
    memset(l, 0, sizeof(*l));
    *pages = 0;
    do {
        int rc = oss_list_page(cl, &req, collect_entry, l);
        if (rc)
            return rc;
        (*pages)++;
    } while (req.token[0] && *pages < 1000);
    return 0;
}

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->keys[i]);
    free(l->keys);
}

/* ---- the signers, end to end ------------------------------------------------------------ */

static void roundtrip(const struct mk *m)
{
    struct oss_client *cl = mk_client(m);
    struct oss_object_meta meta;
    uint8_t *buf;
    uint64_t got;

    assert_int_equal(oss_head(cl, "data/small.bin", &meta), 0);
    assert_int_equal(meta.size, 100000);
    assert_true(meta.etag[0] == '"');
    assert_true(meta.mtime > 1600000000);
    assert_int_equal(read_range(cl, "data/small.bin", 1000, 5000, &buf, &got), 0);
    assert_int_equal(got, 5000);
    check_pattern(buf, 1000, 5000, 1);
    free(buf);

    struct listing l;
    int pages;
    assert_int_equal(list_all(cl, "dir/", "/", 0, &l, &pages), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.keys[0], "dir/a.txt");
    assert_string_equal(l.keys[1], "dir/b.txt");
    assert_string_equal(l.keys[2], "dir/sub/");
    assert_int_equal(l.prefixes, 1);
    listing_free(&l);

    /* No retries, except under a time scale (valgrind: tests/valgrind.sh), where a TLS handshake
       can outlast the connect timeout and is retried. */
    struct oss_stats st;
    oss_get_stats(cl, &st);
    if (it_scaled_ms(1) == 1)
        assert_int_equal(st.retries, 0);
    oss_client_free(cl);
}

static void test_sign_v1(void **state)
{
    roundtrip(&(struct mk){.protocol = OSS_PROTO_OSS, .sign_version = 1});
}

static void test_sign_v4(void **state)
{
    roundtrip(&(struct mk){.protocol = OSS_PROTO_OSS, .sign_version = 4});
}

static void test_sign_s3_vhost(void **state)
{
    roundtrip(&(struct mk){.protocol = OSS_PROTO_S3});
}

static void test_sign_s3_path_style(void **state)
{
    roundtrip(&(struct mk){.protocol = OSS_PROTO_S3, .path_style = true});
}

static void test_sts_v1_v4_s3(void **state)
{
    roundtrip(&(struct mk){.protocol = OSS_PROTO_OSS, .sign_version = 1, .cred = CRED_STS});
    roundtrip(&(struct mk){.protocol = OSS_PROTO_OSS, .sign_version = 4, .cred = CRED_STS});
    roundtrip(&(struct mk){.protocol = OSS_PROTO_S3, .cred = CRED_STS});
}

static void test_env_credentials(void **state)
{
    setenv("OSS_ACCESS_KEY_ID", "stsak", 1);
    setenv("OSS_ACCESS_KEY_SECRET", "stssk", 1);
    setenv("OSS_SESSION_TOKEN", "token-one", 1);
    roundtrip(&(struct mk){.protocol = OSS_PROTO_OSS, .cred = CRED_ENV});
    unsetenv("OSS_ACCESS_KEY_ID");
    unsetenv("OSS_ACCESS_KEY_SECRET");
    unsetenv("OSS_SESSION_TOKEN");
}

/* The STS file is rewritten while the client runs: once noticed by the server's refusal
 * (SecurityTokenExpired → reload → retry), once by the file check alone. No new client. */
static void test_sts_rotation(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){.cred = CRED_STS});
    struct oss_object_meta meta;
    struct oss_stats st;

    assert_int_equal(oss_head(cl, "hello.txt", &meta), 0);
    json_decref(ossemu_admin(&emu, "POST", "/creds",
                             "{\"creds\":[],\"sts\":[\"stsak2:stssk2:token-two\"],"
                             "\"expired_tokens\":[\"token-one\"]}"));
    free(scratch_file("sts.json", "{\"AccessKeyId\":\"stsak2\",\"AccessKeySecret\":\"stssk2\","
                                  "\"SecurityToken\":\"token-two\","
                                  "\"Expiration\":\"2099-01-01T00:00:00Z\"}"));
    assert_int_equal(oss_head(cl, "hello.txt", &meta), 0);
    oss_get_stats(cl, &st);
    assert_int_equal(st.cred_reloads, 1); /* refused once, reloaded, retried */
    assert_int_equal(st.requests, 3);

    json_decref(ossemu_admin(&emu, "POST", "/creds",
                             "{\"creds\":[],\"sts\":[\"stsak3:stssk3:token-three\"],"
                             "\"expired_tokens\":[\"token-two\"]}"));
    free(scratch_file("sts.json", "{\"AccessKeyId\":\"stsak3\",\"AccessKeySecret\":\"stssk3\","
                                  "\"SecurityToken\":\"token-three\","
                                  "\"Expiration\":\"2099-01-01T00:00:00Z\"}"));
    /* Time passing is the state here: the client checks its credentials file at most every
       OSS_CRED_CHECK_MS (1 s, oss/oss_cred_i.h) and this part tests that the check alone picks
       the new file up, so it waits past that interval (a read meanwhile would be refused and
       reload the file itself). */
    usleep(1200 * 1000);
    struct oss_stats before = st;
    assert_int_equal(oss_head(cl, "hello.txt", &meta), 0);
    oss_get_stats(cl, &st);
    /* picked up by the file check, without a refusal and a retry */
    assert_int_equal(st.cred_reloads, before.cred_reloads);
    assert_int_equal(st.retries, before.retries);
    assert_int_equal(st.requests, before.requests + 1);
    oss_client_free(cl);
}

#define AGENT_LAG_MS 400

static uint64_t auth_failures(void)
{
    json_t *st = ossemu_admin(&emu, "GET", "/stats", NULL);
    uint64_t n = (uint64_t)json_integer_value(json_object_get(st, "auth_failures"));
    json_decref(st);
    return n;
}

/* A credential agent that lags: renews the STS file AGENT_LAG_MS after the server first refused
 * the expired token (the lag is the fault being played; the refusal is waited for). */
static void *renew_late(void *arg)
{
    bool *refused = arg;
    uint64_t end = time_mono_ms() + 10000;
    while (!(*refused = auth_failures() > 0) && time_mono_ms() < end)
        usleep(10 * 1000);
    usleep(AGENT_LAG_MS * 1000);
    free(scratch_file("sts.json", "{\"AccessKeyId\":\"stsak2\",\"AccessKeySecret\":\"stssk2\","
                                  "\"SecurityToken\":\"token-two\","
                                  "\"Expiration\":\"2099-01-01T00:00:00Z\"}"));
    return NULL;
}

/* The server calls the token expired before the credential agent has renewed the file: the
 * call waits for the renewed file (re-reading it, asking the server nothing meanwhile) and goes
 * on with it; a file that is never renewed fails the call with EACCES once the retry budget is
 * spent. */
static void test_sts_expired_before_renewal(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){.cred = CRED_STS, .budget_ms = 1500});
    struct oss_object_meta meta;
    struct oss_stats st;
    bool refused = false;
    pthread_t th;

    assert_int_equal(oss_head(cl, "hello.txt", &meta), 0);
    json_decref(ossemu_admin(&emu, "POST", "/creds",
                             "{\"sts\":[\"stsak:stssk:token-one\",\"stsak2:stssk2:token-two\"],"
                             "\"expired_tokens\":[\"token-one\"]}"));
    assert_int_equal(pthread_create(&th, NULL, renew_late, &refused), 0);
    uint64_t t0 = time_mono_ms();
    int rc = oss_head(cl, "hello.txt", &meta);
    uint64_t took = time_mono_ms() - t0;
    pthread_join(th, NULL);
    assert_true(refused);
    assert_int_equal(rc, 0);
    assert_true(took >= AGENT_LAG_MS && took < 1500);
    oss_get_stats(cl, &st);
    assert_int_equal(st.cred_reloads, 1);
    assert_int_equal(st.requests, 3); /* the first, the refused one, the one with token-two */

    json_decref(ossemu_admin(&emu, "POST", "/creds", "{\"expired_tokens\":[\"token-two\"]}"));
    t0 = time_mono_ms();
    assert_int_equal(oss_head(cl, "hello.txt", &meta), -EACCES);
    took = time_mono_ms() - t0;
    assert_true(took >= 1300 && took < 3000);
    struct oss_stats before = st;
    oss_get_stats(cl, &st);
    assert_int_equal(st.requests, before.requests + 1);
    assert_int_equal(st.cred_reloads, before.cred_reloads);
    oss_client_free(cl);
}

static void test_wrong_secret(void **state)
{
    json_decref(ossemu_admin(&emu, "POST", "/creds", "{\"creds\":[\"testak:othersecret\"]}"));
    struct oss_client *cl = mk_client(&(struct mk){.sign_version = 4});
    struct oss_object_meta meta;
    uint8_t *buf;
    uint64_t got;
    assert_int_equal(oss_head(cl, "hello.txt", &meta), -EACCES);
    assert_int_equal(read_range(cl, "hello.txt", 0, 5, &buf, &got), -EACCES);
    assert_non_null(strstr(oss_last_error(), "SignatureDoesNotMatch"));
    assert_non_null(strstr(oss_last_error(), "request id"));
    /* A listing's error body is an error, not a listing. */
    struct oss_list req = {.prefix = "dir/"};
    struct listing l = {0};
    assert_int_equal(oss_list_page(cl, &req, collect_entry, &l), -EACCES);
    assert_non_null(strstr(oss_last_error(), "SignatureDoesNotMatch"));
    struct oss_bucket_stat bs;
    assert_int_equal(oss_bucket_stat(cl, &bs), -EACCES);
    assert_non_null(strstr(oss_last_error(), "SignatureDoesNotMatch"));
    free(buf);
    oss_client_free(cl);
}

/* ---- namespace --------------------------------------------------------------------------- */

static void test_pagination_5000(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){0});
    struct listing l;
    int pages;
    char want[64];

    assert_int_equal(list_all(cl, "many/", "/", 0, &l, &pages), 0);
    assert_int_equal(l.n, NMANY);
    assert_int_equal(pages, 5);
    for (int i = 0; i < NMANY; i++) {
        snprintf(want, sizeof(want), "many/f%05d", i);
        assert_string_equal(l.keys[i], want);
    }
    listing_free(&l);

    assert_int_equal(list_all(cl, "many/", "/", 333, &l, &pages), 0);
    assert_int_equal(l.n, NMANY);
    assert_int_equal(pages, (NMANY + 332) / 333);
    listing_free(&l);

    /* The whole bucket, no delimiter: every object exactly once, in byte order. */
    assert_int_equal(list_all(cl, "", NULL, 1000, &l, &pages), 0);
    assert_true(l.n >= NMANY + 10);
    for (size_t i = 1; i < l.n; i++)
        assert_true(strcmp(l.keys[i - 1], l.keys[i]) < 0);
    listing_free(&l);
    oss_client_free(cl);
}

static void test_unicode_keys(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){.sign_version = 1});
    struct oss_client *cl4 = mk_client(&(struct mk){.sign_version = 4});
    struct oss_client *s3 = mk_client(&(struct mk){.protocol = OSS_PROTO_S3});
    size_t nk = sizeof(unicode_keys) / sizeof(unicode_keys[0]);

    struct oss_client *cls[] = {cl, cl4, s3};
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < nk; i++) {
            uint8_t *buf;
            uint64_t got;
            assert_int_equal(read_range(cls[c], unicode_keys[i], 0, 200, &buf, &got), 0);
            assert_int_equal(got, strlen(unicode_keys[i]));
            assert_memory_equal(buf, unicode_keys[i], got);
            free(buf);
        }
        struct listing l;
        int pages;
        assert_int_equal(list_all(cls[c], "unicode/", "/", 2, &l, &pages), 0);
        assert_int_equal(l.n, nk); /* "sp ace/" is a prefix holding one key */
        size_t found = 0;
        for (size_t i = 0; i < l.n; i++)
            for (size_t k = 0; k < nk; k++)
                if (strcmp(l.keys[i], unicode_keys[k]) == 0 ||
                    strcmp(l.keys[i], "unicode/sp ace/") == 0)
                    found++, k = nk;
        assert_int_equal(found, nk);
        listing_free(&l);
    }
    oss_client_free(cl);
    oss_client_free(cl4);
    oss_client_free(s3);
}

static void test_errors(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){0});
    struct oss_object_meta meta;
    uint8_t *buf;
    uint64_t got;

    assert_int_equal(oss_head(cl, "no/such/key", &meta), -ENOENT);
    assert_int_equal(read_range(cl, "no/such/key", 0, 10, &buf, &got), -ENOENT);
    free(buf);

    /* An Archive object: its metadata is visible, its bytes are not. */
    json_decref(ossemu_admin(&emu, "POST", "/objects",
                             "{\"key\":\"cold/archived.bin\",\"data_base64\":\"aGVsbG8=\","
                             "\"storage_class\":\"Archive\"}"));
    assert_int_equal(oss_head(cl, "cold/archived.bin", &meta), 0);
    assert_int_equal(meta.storage_class, OSS_SC_ARCHIVE);
    assert_false(oss_storage_class_readable(meta.storage_class));
    assert_int_equal(read_range(cl, "cold/archived.bin", 0, 5, &buf, &got), -EACCES);
    free(buf);
    json_decref(ossemu_admin(&emu, "DELETE", "/objects?key=cold%2Farchived.bin", NULL));

    /* If-Match against a stale ETag. */
    uint8_t small[10];
    struct oss_get g = {.key = "hello.txt",
                        .length = 5,
                        .buf = small,
                        .if_match = "\"00000000000000000000000000000000\""};
    assert_int_equal(oss_get(cl, &g, NULL), -ESTALE);

    /* A changed object gets a new ETag. */
    assert_int_equal(oss_head(cl, "dir/a.txt", &meta), 0);
    char old[sizeof(meta.etag)];
    strcpy(old, meta.etag);
    write_text(root, "dir/a.txt", "A changed"); /* another size: another ETag at any mtime */
    assert_int_equal(oss_head(cl, "dir/a.txt", &meta), 0);
    assert_string_not_equal(old, meta.etag);
    assert_int_equal(meta.size, 9);
    write_text(root, "dir/a.txt", "a");

    struct oss_bucket_stat bs;
    assert_int_equal(oss_bucket_stat(cl, &bs), 0);
    assert_true(bs.object_count >= NMANY + 10);
    assert_true(bs.storage > (9u << 20));
    oss_client_free(cl);

    struct oss_client *s3 = mk_client(&(struct mk){.protocol = OSS_PROTO_S3});
    assert_int_equal(oss_bucket_stat(s3, &bs), -ENOTSUP);
    oss_client_free(s3);
}

/* ---- ranges -------------------------------------------------------------------------------- */

static void test_ranges_at_edges(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){0});
    const uint64_t size = (1 << 20) + 7;
    uint8_t *buf;
    uint64_t got;

    assert_int_equal(read_range(cl, "data/edge.bin", 0, 1, &buf, &got), 0);
    assert_int_equal(got, 1);
    check_pattern(buf, 0, 1, 2);
    free(buf);
    assert_int_equal(read_range(cl, "data/edge.bin", size - 1, 1, &buf, &got), 0);
    assert_int_equal(got, 1);
    check_pattern(buf, size - 1, 1, 2);
    free(buf);
    /* Asking past the end is clipped at the end. */
    assert_int_equal(read_range(cl, "data/edge.bin", size - 10, 4096, &buf, &got), 0);
    assert_int_equal(got, 10);
    check_pattern(buf, size - 10, 10, 2);
    free(buf);
    /* Starting at the end is an invalid range. */
    assert_int_equal(read_range(cl, "data/edge.bin", size, 1, &buf, &got), -EINVAL);
    free(buf);
    /* The whole object into a buffer: CRC64 checked. */
    assert_int_equal(read_range(cl, "data/edge.bin", 0, size, &buf, &got), 0);
    assert_int_equal(got, size);
    check_pattern(buf, 0, size, 2);
    free(buf);
    oss_client_free(cl);
}

struct sink_state {
    uint64_t next;
    uint64_t total;
    uint32_t seed;
    int bad;
};

static int check_sink(void *arg, uint64_t off, const void *data, size_t len)
{
    struct sink_state *s = arg;
    const uint8_t *p = data;
    if (off != s->next)
        s->bad++;
    for (size_t i = 0; i < len; i += 997)
        if (p[i] != pattern_byte(off + i, s->seed))
            s->bad++;
    s->next = off + len;
    s->total += len;
    return 0;
}

static void test_zero_byte_and_whole_streams(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){0});
    struct oss_object_meta meta;
    struct oss_get_result res;
    uint8_t *buf;
    uint64_t got;

    assert_int_equal(oss_head(cl, "empty.bin", &meta), 0);
    assert_int_equal(meta.size, 0);
    assert_int_equal(read_range(cl, "empty.bin", 0, 4096, &buf, &got), 0);
    assert_int_equal(got, 0);
    free(buf);
    struct sink_state s = {.seed = 3};
    struct oss_get g = {
        .key = "empty.bin", .length = UINT64_MAX, .sink = check_sink, .sink_arg = &s};
    assert_int_equal(oss_get(cl, &g, &res), 0);
    assert_int_equal(res.bytes, 0);

    /* A whole 8 MiB object streamed to a sink, offsets in order. */
    g.key = "data/big.bin";
    assert_int_equal(oss_get(cl, &g, &res), 0);
    assert_int_equal(res.bytes, 8 << 20);
    assert_int_equal(s.total, 8 << 20);
    assert_int_equal(s.bad, 0);
    assert_true(res.meta.has_crc64);
    oss_client_free(cl);
}

static uint64_t status_count(const char *status)
{
    json_t *st = ossemu_admin(&emu, "GET", "/stats", NULL);
    uint64_t n =
        (uint64_t)json_integer_value(json_object_get(json_object_get(st, "by_status"), status));
    json_decref(st);
    return n;
}

/* RES answers a GET of the first LEN bytes of data/edge.bin (SIZE bytes, seed 2) with those bytes
 * in BUF and the metadata HEAD gave. */
static void check_first_answer(const struct oss_get_result *res, const uint8_t *buf, size_t len,
                               uint64_t size, const struct oss_object_meta *head)
{
    assert_false(res->not_modified);
    assert_int_equal(res->bytes, len);
    check_pattern(buf, 0, len, 2);
    assert_int_equal(res->meta.size, size);
    assert_string_equal(res->meta.etag, head->etag);
    assert_int_equal(res->meta.mtime, head->mtime);
    assert_int_equal(res->meta.storage_class, head->storage_class);
}

/* One GET of an object's first bytes answers what a HEAD would (size from Content-Range), and
 * If-None-Match with the ETag it gave answers 304 with nothing delivered, on OSS and S3 alike;
 * a stale ETag gets the bytes. */
static void check_first_bytes_and_revalidation(const struct mk *m)
{
    struct oss_client *cl = mk_client(m);
    struct oss_object_meta head;
    struct oss_get_result res;
    uint8_t buf[4096];
    const uint64_t size = (1 << 20) + 7;

    assert_int_equal(oss_head(cl, "data/edge.bin", &head), 0);
    ossemu_reset_stats(&emu);
    struct oss_get g = {.key = "data/edge.bin", .length = sizeof(buf), .buf = buf};
    assert_int_equal(oss_get(cl, &g, &res), 0);
    check_first_answer(&res, buf, sizeof(buf), size, &head);
    assert_int_equal(ossemu_requests(&emu, "data/edge.bin"), 1);

    /* Revalidation: the ETag still holds. */
    g.if_none_match = head.etag;
    memset(buf, 0, sizeof(buf));
    assert_int_equal(oss_get(cl, &g, &res), 0);
    assert_true(res.not_modified);
    assert_int_equal(res.bytes, 0);
    assert_string_equal(res.meta.etag, head.etag);
    assert_int_equal(buf[0], 0);
    assert_int_equal(status_count("304"), 1);

    /* Another ETag: the bytes come, with the object's metadata. */
    g.if_none_match = "\"0123456789ABCDEF0123456789ABCDEF-1\"";
    assert_int_equal(oss_get(cl, &g, &res), 0);
    check_first_answer(&res, buf, sizeof(buf), size, &head);

    /* A small object whole in the first range: its size, its CRC checked. */
    g = (struct oss_get){.key = "hello.txt", .length = sizeof(buf), .buf = buf};
    assert_int_equal(oss_get(cl, &g, &res), 0);
    assert_int_equal(res.bytes, 13);
    assert_int_equal(res.meta.size, 13);
    assert_memory_equal(buf, "hello, world\n", 13);

    /* An empty object: the range is unsatisfiable (416), a HEAD gives the metadata; revalidated
       with its ETag it is one 304. */
    g = (struct oss_get){.key = "empty.bin", .length = sizeof(buf), .buf = buf};
    assert_int_equal(oss_get(cl, &g, &res), 0);
    assert_false(res.not_modified);
    assert_int_equal(res.bytes, 0);
    assert_int_equal(res.meta.size, 0);
    assert_true(res.meta.etag[0] == '"');
    char etag[OSS_MAX_ETAG_LEN + 1];
    snprintf(etag, sizeof(etag), "%s", res.meta.etag);
    g.if_none_match = etag;
    assert_int_equal(oss_get(cl, &g, &res), 0);
    assert_true(res.not_modified);

    /* A missing key is -ENOENT whatever the condition. */
    g = (struct oss_get){
        .key = "no/such.bin", .length = sizeof(buf), .buf = buf, .if_none_match = etag};
    assert_int_equal(oss_get(cl, &g, &res), -ENOENT);
    oss_client_free(cl);
}

static void test_first_bytes_and_revalidation(void **state)
{
    check_first_bytes_and_revalidation(&(struct mk){0});
    check_first_bytes_and_revalidation(&(struct mk){.protocol = OSS_PROTO_S3});
}

/* ---- faults ------------------------------------------------------------------------------- */

static void read_small_ok(struct oss_client *cl)
{
    uint8_t *buf;
    uint64_t got;
    assert_int_equal(read_range(cl, "data/small.bin", 0, 100000, &buf, &got), 0);
    assert_int_equal(got, 100000);
    check_pattern(buf, 0, 100000, 1);
    free(buf);
}

static void test_fault_errors_recovered(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){0});
    const char *statuses[] = {"503", "500", "429", "408"};

    for (int i = 0; i < 4; i++) {
        char body[256];
        ossemu_reset_stats(&emu);
        snprintf(
            body, sizeof(body),
            "{\"next\":[{\"kind\":\"error\",\"status\":%s},{\"kind\":\"error\",\"status\":%s}]}",
            statuses[i], statuses[i]);
        assert_int_equal(ossemu_faults(&emu, body), 0);
        read_small_ok(cl);
        assert_int_equal(ossemu_requests(&emu, "data/small.bin"), 3);
    }
    oss_client_free(cl);
}

static void test_fault_reset_and_truncate(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){0});
    struct oss_stats st;

    assert_int_equal(ossemu_faults(&emu, "{\"next\":[{\"kind\":\"reset\"}]}"), 0);
    read_small_ok(cl);
    assert_int_equal(ossemu_requests(&emu, "data/small.bin"), 2);

    /* A short body resumes where it stopped: the second request asks only for the rest. */
    ossemu_reset_stats(&emu);
    assert_int_equal(ossemu_faults(&emu, "{\"next\":[{\"kind\":\"truncate\",\"after\":30000}]}"),
                     0);
    read_small_ok(cl);
    assert_int_equal(ossemu_requests(&emu, "data/small.bin"), 2);
    json_t *j = ossemu_admin(&emu, "GET", "/stats", NULL);
    uint64_t bytes = (uint64_t)json_integer_value(
        json_object_get(json_object_get(json_object_get(j, "by_key"), "data/small.bin"), "bytes"));
    json_decref(j);
    assert_int_equal(bytes, 100000);

    /* A short body on a whole-object stream. */
    struct sink_state s = {.seed = 3};
    struct oss_get g = {
        .key = "data/big.bin", .length = UINT64_MAX, .sink = check_sink, .sink_arg = &s};
    assert_int_equal(ossemu_faults(&emu, "{\"next\":[{\"kind\":\"truncate\",\"after\":1000000}]}"),
                     0);
    assert_int_equal(oss_get(cl, &g, NULL), 0);
    assert_int_equal(s.total, 8 << 20);
    assert_int_equal(s.bad, 0);
    oss_get_stats(cl, &st);
    assert_int_equal(st.crc_mismatches, 0);
    oss_client_free(cl);
}

static void test_fault_corrupt_caught_by_crc(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){0});
    struct oss_stats st;
    assert_int_equal(ossemu_faults(&emu, "{\"next\":[{\"kind\":\"corrupt\"}]}"), 0);
    read_small_ok(cl); /* whole object: CRC64 catches the flipped byte, the read is redone */
    oss_get_stats(cl, &st);
    assert_int_equal(st.crc_mismatches, 1);
    assert_int_equal(ossemu_requests(&emu, "data/small.bin"), 2);
    oss_client_free(cl);
}

/* Corrupt bodies in a row are transient faults like any other: read again within the attempts
 * (10) and the retry budget; a CRC that never matches ends in EIO within them. */
static void test_fault_corrupt_burst_and_for_good(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){0});
    struct oss_stats st;
    assert_int_equal(ossemu_faults(&emu, "{\"next\":[{\"kind\":\"corrupt\"},{\"kind\":"
                                         "\"corrupt\"},{\"kind\":\"corrupt\"},{\"kind\":"
                                         "\"corrupt\"}]}"),
                     0);
    read_small_ok(cl);
    oss_get_stats(cl, &st);
    assert_int_equal(st.crc_mismatches, 4);
    assert_int_equal(ossemu_requests(&emu, "data/small.bin"), 5);
    assert_true(st.retries >= 4);

    assert_int_equal(ossemu_faults(&emu, "{\"corrupt_rate\":1}"), 0);
    ossemu_reset_stats(&emu);
    uint8_t *buf = NULL;
    uint64_t got = 0;
    assert_int_equal(read_range(cl, "data/small.bin", 0, 100000, &buf, &got), -EIO);
    free(buf);
    assert_int_equal(ossemu_requests(&emu, "data/small.bin"), 10); /* the attempts, no more */
    assert_int_equal(ossemu_faults(&emu, "{}"), 0);
    oss_client_free(cl);
}

static void test_fault_stall_and_latency(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){.stall_ms = 1000});
    uint64_t t0 = time_mono_ms();
    assert_int_equal(ossemu_faults(&emu, "{\"next\":[{\"kind\":\"stall\"}]}"), 0);
    read_small_ok(cl);
    uint64_t dt = time_mono_ms() - t0;
    assert_true(dt >= 900 && dt < 5000);

    t0 = time_mono_ms();
    assert_int_equal(ossemu_faults(&emu, "{\"next\":[{\"kind\":\"latency\",\"ms\":300}]}"), 0);
    read_small_ok(cl);
    dt = time_mono_ms() - t0;
    assert_true(dt >= 280 && dt < 5000);
    oss_client_free(cl);
}

/* A store that never recovers fails in bounded time with the right errno. */
static void test_fault_persistent_bounded(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){.budget_ms = 2000, .stall_ms = 1000});
    uint8_t *buf;
    uint64_t got;

    assert_int_equal(ossemu_faults(&emu, "{\"error_rate\":{\"503\":1.0}}"), 0);
    uint64_t t0 = time_mono_ms();
    assert_int_equal(read_range(cl, "data/small.bin", 0, 10, &buf, &got), -EIO);
    free(buf);
    assert_true(time_mono_ms() - t0 < 5000);

    assert_int_equal(ossemu_faults(&emu, "{\"down\":true}"), 0);
    t0 = time_mono_ms();
    assert_int_equal(read_range(cl, "data/small.bin", 0, 10, &buf, &got), -ETIMEDOUT);
    free(buf);
    assert_true(time_mono_ms() - t0 < 5000);

    assert_int_equal(ossemu_faults(&emu, "{\"stall_rate\":1.0}"), 0);
    t0 = time_mono_ms();
    int rc = read_range(cl, "data/small.bin", 0, 10, &buf, &got);
    free(buf);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(time_mono_ms() - t0 < 6000);

    /* Nothing listening at all. */
    struct oss_client *dead =
        mk_client(&(struct mk){.endpoints = "http://127.0.0.1:1", .budget_ms = 1500});
    t0 = time_mono_ms();
    assert_int_equal(read_range(dead, "data/small.bin", 0, 10, &buf, &got), -ETIMEDOUT);
    free(buf);
    assert_true(time_mono_ms() - t0 < 4000);
    oss_client_free(dead);
    oss_client_free(cl);
}

static void test_fault_random_mix_recovered(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){.budget_ms = 20000, .stall_ms = 1000});
    assert_int_equal(ossemu_faults(&emu, "{\"error_rate\":{\"503\":0.1,\"500\":0.05,\"429\":0.05},"
                                         "\"reset_rate\":0.05,\"truncate_rate\":0.05,"
                                         "\"corrupt_rate\":0.05}"),
                     0);
    for (int i = 0; i < 30; i++)
        read_small_ok(cl);
    oss_client_free(cl);
}

/* Failed attempts are counted by kind, successful GETs timed, and the whole lot written as valid
 * Prometheus text (oss_write_metrics). */
static void test_error_kinds_and_metrics(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){.stall_ms = 1000});
    struct oss_stats st;
    uint8_t *buf;
    uint64_t got;

    assert_int_equal(read_range(cl, "no/such/key", 0, 10, &buf, &got), -ENOENT);
    free(buf);
    assert_int_equal(ossemu_faults(&emu, "{\"next\":[{\"kind\":\"error\",\"status\":503},"
                                         "{\"kind\":\"error\",\"status\":500},"
                                         "{\"kind\":\"error\",\"status\":429}]}"),
                     0);
    read_small_ok(cl);
    /* (not a reset: on a reused connection curl itself re-sends the request, unseen) */
    assert_int_equal(ossemu_faults(&emu, "{\"next\":[{\"kind\":\"truncate\",\"after\":30000}]}"),
                     0);
    read_small_ok(cl);
    assert_int_equal(ossemu_faults(&emu, "{\"next\":[{\"kind\":\"stall\"}]}"), 0);
    read_small_ok(cl);
    assert_int_equal(ossemu_faults(&emu, "{\"next\":[{\"kind\":\"latency\",\"ms\":300}]}"), 0);
    read_small_ok(cl);
    oss_get_stats(cl, &st);
    assert_int_equal(st.err_not_found, 1);
    assert_int_equal(st.err_http_5xx, 2);
    assert_int_equal(st.err_http_4xx, 1);
    assert_int_equal(st.err_transport, 1);
    assert_int_equal(st.err_timeout, 1);
    assert_int_equal(st.err_connect, 0);
    /* four successful GETs (the 404 is not timed): the stalled one took >= 1 s, the slow one
       300 ms, i.e. in (0.25, 0.5] */
    assert_int_equal(st.get_latency.count, 4);
    uint64_t over_1s = 0;
    for (int i = 0; i <= HISTO_NBUCKETS; i++)
        if (i == HISTO_NBUCKETS || histo_bounds_us[i] > 1000000)
            over_1s += st.get_latency.bucket[i];
    assert_true(over_1s >= 1);
    assert_true(st.get_latency.sum_us >= 1300000);
    int b500 = 0;
    while (histo_bounds_us[b500] != 500000)
        b500++;
    assert_true(st.get_latency.bucket[b500] >= 1);

    struct buf out;
    char err[512];
    buf_init(&out, 1 << 20);
    assert_int_equal(oss_write_metrics(cl, &out), 0);
    if (prom_check(out.data, err, sizeof(err)) != 0)
        fail_msg("%s\n%s", err, out.data);
    assert_non_null(strstr(out.data, "efc_oss_errors_total{kind=\"http_5xx\"} 2\n"));
    assert_non_null(strstr(out.data, "efc_oss_errors_total{kind=\"not_found\"} 1\n"));
    assert_non_null(strstr(out.data, "efc_oss_errors_total{kind=\"crc\"} 0\n"));
    assert_non_null(strstr(out.data, "efc_oss_get_duration_seconds_count 4\n"));
    assert_non_null(strstr(out.data, "efc_oss_received_bytes_total "));
    buf_release(&out);
    oss_client_free(cl);

    /* Nothing listening: connection errors. */
    struct oss_client *dead =
        mk_client(&(struct mk){.endpoints = "http://127.0.0.1:1", .budget_ms = 300});
    assert_int_equal(read_range(dead, "data/small.bin", 0, 10, &buf, &got), -ETIMEDOUT);
    free(buf);
    oss_get_stats(dead, &st);
    assert_true(st.err_connect >= 1);
    assert_int_equal(st.err_connect, st.requests);
    assert_int_equal(st.get_latency.count, 0);
    oss_client_free(dead);
}

static void test_clock_skew_corrected(void **state)
{
    json_decref(ossemu_admin(&emu, "POST", "/clock", "{\"skew_ms\":3600000}"));
    struct oss_client *cl = mk_client(&(struct mk){0});
    struct oss_object_meta meta;
    assert_int_equal(oss_head(cl, "hello.txt", &meta), 0);
    read_small_ok(cl); /* the corrected clock holds for later requests */
    struct oss_stats st;
    oss_get_stats(cl, &st);
    assert_int_equal(st.requests, 3);
    oss_client_free(cl);
}

/* ---- failover ------------------------------------------------------------------------------ */

static void test_failover(void **state)
{
    char eps[160];
    snprintf(eps, sizeof(eps), "%s,%s", ep1, ep2);
    struct oss_client *cl = mk_client(&(struct mk){.endpoints = eps, .stall_ms = 1000});

    read_small_ok(cl);
    assert_int_equal(ossemu_requests(&emu2, NULL), 0);

    assert_int_equal(ossemu_faults(&emu, "{\"down\":true}"), 0);
    for (int i = 0; i < 10; i++)
        read_small_ok(cl);
    assert_true(ossemu_requests(&emu2, "data/small.bin") >= 10);

    /* The primary comes back: once its down period is over (endpoint_down_ms, doubled at each
       probe that failed while it was down, so not known here), a read probes it, and from then
       on reads return to it. */
    assert_int_equal(ossemu_faults(&emu, "{}"), 0);
    ossemu_reset_stats(&emu);
    uint64_t end = time_mono_ms() + 60000;
    while (ossemu_requests(&emu, "data/small.bin") == 0) {
        if (time_mono_ms() > end)
            fail_msg("no read went back to the primary in 60 s");
        read_small_ok(cl);
        usleep(20000);
    }
    ossemu_reset_stats(&emu);
    for (int i = 0; i < 5; i++)
        read_small_ok(cl);
    assert_true(ossemu_requests(&emu, "data/small.bin") >= 4);
    struct oss_stats st;
    oss_get_stats(cl, &st);
    assert_true(st.failovers >= 10);
    oss_client_free(cl);
}

/* ---- concurrency ------------------------------------------------------------------------- */

struct worker {
    struct oss_client *cl;
    int id;
    int failures;
};

static void *reader(void *arg)
{
    struct worker *w = arg;
    uint64_t size = 8 << 20;
    uint32_t x = (uint32_t)w->id * 2654435761u + 1;
    uint8_t *buf = malloc(256 << 10);
    for (int i = 0; i < 20; i++) {
        x = x * 1103515245u + 12345u;
        uint64_t off = (x >> 4) % size;
        uint64_t len = 1 + (x % (256 << 10));
        struct oss_get_result res;
        struct oss_get g = {.key = "data/big.bin", .offset = off, .length = len, .buf = buf};
        if (oss_get(w->cl, &g, &res) != 0) {
            w->failures++;
            continue;
        }
        uint64_t want = len < size - off ? len : size - off;
        if (res.bytes != want)
            w->failures++;
        for (uint64_t k = 0; k < res.bytes; k += 101)
            if (buf[k] != pattern_byte(off + k, 3)) {
                w->failures++;
                break;
            }
    }
    free(buf);
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    struct oss_client *cl = mk_client(&(struct mk){.max_conns = 4});
    pthread_t th[16];
    struct worker w[16];
    for (int i = 0; i < 16; i++) {
        w[i] = (struct worker){.cl = cl, .id = i};
        pthread_create(&th[i], NULL, reader, &w[i]);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    oss_client_free(cl);
}

/* HTTPS: the endpoint is an address, yet TLS verifies the bucket's own domain (the request
 * names it, as curl --connect-to does), against a CA made here. */
static void test_https(void **state)
{
    char cmd[2048], eps[64], ca[300];
    struct ossemu tls;

    snprintf(cmd, sizeof(cmd),
             "cd '%s' && printf 'subjectAltName=DNS:*.oss-cn-hangzhou.aliyuncs.com,"
             "DNS:*.s3.oss-cn-hangzhou.aliyuncs.com\\n' > ext && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout ca.key -out ca.pem -days 2 -subj '/CN=efc test CA' 2>/dev/null && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key "
             "-out srv.csr -subj '/CN=*.oss-cn-hangzhou.aliyuncs.com' 2>/dev/null && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem "
             "-days 2 -extfile ext 2>/dev/null",
             scratch);
    assert_int_equal(system(cmd), 0);
    char cert[300], key[300];
    snprintf(cert, sizeof(cert), "%s/srv.pem", scratch);
    snprintf(key, sizeof(key), "%s/srv.key", scratch);
    snprintf(ca, sizeof(ca), "%s/ca.pem", scratch);
    const char *args[] = {"--bucket",  BUCKET, "--cred", "testak:testsk", "--tls-cert", cert,
                          "--tls-key", key,    NULL};
    assert_int_equal(ossemu_start(root, args, &tls), 0);
    snprintf(eps, sizeof(eps), "https://127.0.0.1:%d", tls.port);

    roundtrip(&(struct mk){.endpoints = eps, .ca_file = ca});
    roundtrip(&(struct mk){.endpoints = eps, .ca_file = ca, .protocol = OSS_PROTO_S3});

    /* Not trusted: fails at once (no retries), saying why. */
    struct oss_client *cl = mk_client(&(struct mk){.endpoints = eps});
    struct oss_object_meta meta;
    uint64_t t0 = time_mono_ms();
    assert_int_equal(oss_head(cl, "hello.txt", &meta), -EPROTO);
    assert_true(time_mono_ms() - t0 < it_scaled_ms(2000));
    assert_non_null(strstr(oss_last_error(), "certificate"));
    oss_client_free(cl);
    ossemu_stop(&tls);
}

static void test_bad_config(void **state)
{
    struct oss_config c;
    struct oss_client *cl;
    char err[256];

    oss_config_init(&c);
    c.bucket = BUCKET;
    c.host = OSSHOST;
    c.endpoints = "ftp://127.0.0.1:21";
    c.passwd_file = "/nonexistent/passwd";
    assert_int_equal(oss_client_new(&c, &cl, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "ftp://"));
    c.endpoints = ep1;
    assert_true(oss_client_new(&c, &cl, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "/nonexistent/passwd"));
    c.host = "oss-accelerate.aliyuncs.com";
    char *pw = scratch_file("passwd2", "a:b\n");
    c.passwd_file = pw;
    assert_int_equal(oss_client_new(&c, &cl, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "region"));
    c.region = "cn-hangzhou";
    assert_int_equal(oss_client_new(&c, &cl, err, sizeof(err)), 0);
    oss_client_free(cl);
    free(pw);
}

int main(int argc, char **argv)
{
    log_set_level(getenv("EFC_TEST_LOG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_sign_v1, test_setup),
        cmocka_unit_test_setup(test_sign_v4, test_setup),
        cmocka_unit_test_setup(test_sign_s3_vhost, test_setup),
        cmocka_unit_test_setup(test_sign_s3_path_style, test_setup),
        cmocka_unit_test_setup(test_sts_v1_v4_s3, test_setup),
        cmocka_unit_test_setup(test_env_credentials, test_setup),
        cmocka_unit_test_setup(test_sts_rotation, test_setup),
        cmocka_unit_test_setup(test_sts_expired_before_renewal, test_setup),
        cmocka_unit_test_setup(test_wrong_secret, test_setup),
        cmocka_unit_test_setup(test_pagination_5000, test_setup),
        cmocka_unit_test_setup(test_unicode_keys, test_setup),
        cmocka_unit_test_setup(test_errors, test_setup),
        cmocka_unit_test_setup(test_ranges_at_edges, test_setup),
        cmocka_unit_test_setup(test_zero_byte_and_whole_streams, test_setup),
        cmocka_unit_test_setup(test_first_bytes_and_revalidation, test_setup),
        cmocka_unit_test_setup(test_fault_errors_recovered, test_setup),
        cmocka_unit_test_setup(test_fault_reset_and_truncate, test_setup),
        cmocka_unit_test_setup(test_fault_corrupt_caught_by_crc, test_setup),
        cmocka_unit_test_setup(test_fault_corrupt_burst_and_for_good, test_setup),
        cmocka_unit_test_setup(test_fault_stall_and_latency, test_setup),
        cmocka_unit_test_setup(test_fault_persistent_bounded, test_setup),
        cmocka_unit_test_setup(test_fault_random_mix_recovered, test_setup),
        cmocka_unit_test_setup(test_error_kinds_and_metrics, test_setup),
        cmocka_unit_test_setup(test_clock_skew_corrected, test_setup),
        cmocka_unit_test_setup(test_failover, test_setup),
        cmocka_unit_test_setup(test_concurrent_readers, test_setup),
        cmocka_unit_test_setup(test_https, test_setup),
        cmocka_unit_test_setup(test_bad_config, test_setup),
    };
    size_t n = select_tests(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
    if (n == 0)
        return 1;
    return _cmocka_run_group_tests("tests", tests, n, group_setup, group_teardown);
}
