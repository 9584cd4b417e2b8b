/* tests/unit/mgmt/test_server.c - the management HTTP server over loopback, driven with libcurl
 * (and a raw socket where curl would tidy the request): every endpoint and its JSON shape, bad
 * and missing parameters, 404/405/413/414, percent-encoding, path escapes, /metrics through a
 * strict Prometheus checker, the fake daemon's counters and clear calls, the warm-up endpoints
 * on the real warm-up engine over a fake backend, the bind address (127.0.0.1 does not answer
 * on 127.0.0.2, and the other way round; ::1 when the host has it), start-up errors, the
 * connection limit, concurrent clients and stop.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "mgmt/mgmt.h"
#include "mgmt/warmup.h"
#include "p2p/p2p.h"
#include "tests/unit/mgmt/promcheck.h"
#include "util/buf.h"
#include "util/histo.h"
#include "util/prom.h"

/* ---- the fake daemon ------------------------------------------------------------------------ */

struct fake_ops {
    struct cache_stats st;
    int stats_rc, readdir_rc, meta_rc;
    atomic_int stats_calls, clear_stats, clear_readdir, clear_meta, metrics_calls;
    struct histo fuse_read;
    int cluster_rc, reload_rc; /* what f_cluster / f_reload return */
    const char *reload_msg;
    atomic_int cluster_calls, reload_calls;
};
static struct fake_ops FO;

static int f_stats(void *arg, struct cache_stats *st)
{
    struct fake_ops *f = arg;
    atomic_fetch_add(&f->stats_calls, 1);
    *st = f->st;
    return f->stats_rc;
}

static void f_clear_stats(void *arg)
{
    struct fake_ops *f = arg;
    atomic_fetch_add(&f->clear_stats, 1);
    memset(&f->st, 0, offsetof(struct cache_stats, mem_used));
}

static int f_readdir(void *arg)
{
    struct fake_ops *f = arg;
    atomic_fetch_add(&f->clear_readdir, 1);
    return f->readdir_rc;
}

static int f_meta(void *arg)
{
    struct fake_ops *f = arg;
    atomic_fetch_add(&f->clear_meta, 1);
    return f->meta_rc;
}

static void f_metrics(void *arg, struct buf *out)
{
    struct fake_ops *f = arg;
    atomic_fetch_add(&f->metrics_calls, 1);
    /* as the daemon does (efc/chain.c): the cache's own writer, when there is a cache */
    if (f->stats_rc == 0)
        cache_write_metrics(&f->st, CACHE_METRICS_TIERS, out);
    prom_counter(out, "efc_fake_origin_requests_total", "Origin requests of the fake.", 42);
    histo_write_prom(&f->fuse_read, "efc_fuse_read_duration_seconds", "FUSE reads.", out);
}

/* The id of member 4 holds what JSON must escape (a quote, a backslash, a control byte) and a
 * byte that is not UTF-8 (sent as '?'). */
#define ODD_ID    "we\"ird\\id\x01\xff"
#define ODD_NAME  ODD_ID ":127.0.0.24:17980"
#define HASH_OURS 0x0123456789abcdefull

/* A cluster of five as node 2 sees it: node 1 up, itself, node 3 down (never answered), node 4
 * (odd id) an agent that reports another rootlist, node 5 never contacted. */
static int f_cluster(void *arg, struct p2p_cluster_info *ci)
{
    struct fake_ops *f = arg;
    atomic_fetch_add(&f->cluster_calls, 1);
    memset(ci, 0, sizeof(*ci));
    if (f->cluster_rc)
        return f->cluster_rc;
    snprintf(ci->rootlist, sizeof(ci->rootlist), "/etc/efc/root list \"a\".txt");
    snprintf(ci->self, sizeof(ci->self), "2:127.0.0.22:17980");
    ci->role = 0;
    ci->members = HASH_OURS;
    ci->loaded_unix = 1765274000;
    ci->nmembers = 5;
    ci->mismatched = 1;
    ci->auth = true;
    ci->ninfo = 5;
    ci->member = calloc(5, sizeof(*ci->member)); /* freed by the server, as p2p_get_cluster's */
    assert_non_null(ci->member);
    struct p2p_member_info *m = ci->member;
    for (int i = 0; i < 5; i++) {
        snprintf(m[i].id, sizeof(m[i].id), "%d", i + 1);
        snprintf(m[i].address, sizeof(m[i].address), "127.0.0.2%d:17980", i + 1);
        snprintf(m[i].name, sizeof(m[i].name), "%d:127.0.0.2%d:17980", i + 1, i + 1);
        m[i].role = -1;
        m[i].state = "unknown";
    }
    m[0].role = 0;
    m[0].state = "up";
    m[0].members = HASH_OURS;
    m[0].latency_ms = 1.25;
    m[0].requests = 120;
    m[0].errors = 1;
    m[0].bytes = 3u << 20;
    snprintf(m[0].last_error, sizeof(m[0].last_error), "timeout after 2000 ms");
    m[1].self = true;
    m[1].role = 0;
    m[1].state = "self";
    m[1].members = HASH_OURS;
    m[2].state = "down";
    m[2].requests = 5;
    m[2].errors = 5;
    snprintf(m[2].last_error, sizeof(m[2].last_error),
             "connect to 127.0.0.23:17980: Connection refused");
    snprintf(m[3].id, sizeof(m[3].id), "%s", ODD_ID);
    snprintf(m[3].name, sizeof(m[3].name), "%s", ODD_NAME);
    m[3].role = 2;
    m[3].state = "up";
    m[3].members = 0xdeadbeefull;
    m[3].mismatch = true;
    m[3].latency_ms = 0.5;
    m[3].requests = 7;
    m[3].bytes = 7u << 20;
    return 0;
}

static int f_reload(void *arg, char *msg, size_t len)
{
    struct fake_ops *f = arg;
    atomic_fetch_add(&f->reload_calls, 1);
    snprintf(msg, len, "%s", f->reload_msg ? f->reload_msg : "");
    return f->reload_rc;
}

static const struct mgmt_ops OPS = {
    .arg = &FO,
    .cache_stats = f_stats,
    .cache_clear_stats = f_clear_stats,
    .clear_readdir_cache = f_readdir,
    .clear_metadata_cache = f_meta,
    .metrics = f_metrics,
    .cluster = f_cluster,
    .reload_rootlist = f_reload,
};

static void fake_ops_reset(void)
{
    memset(&FO, 0, sizeof(FO));
    histo_init(&FO.fuse_read);
    uint64_t *v = (uint64_t *)&FO.st;
    for (int i = 0; i < 10; i++)
        v[i] = 1000 + (uint64_t)i; /* read=1000, read_bytes=1001, ... root_read_source_bytes=1009 */
    FO.st.read = 10;
    FO.st.read_hit = 4;
    FO.st.read_hit_bytes = 3 << 20;
    FO.st.read_miss_bytes = 1 << 20;
    FO.st.mem_used = 123;
    FO.st.mem_capacity = 1 << 30;
    FO.st.disk_used = 456;
    FO.st.disk_capacity = 10ull << 30;
    FO.st.evictions_mem = 7;
    FO.st.corrupt_dropped = 3;
    FO.st.disk_errors = 2;
    histo_observe(&FO.fuse_read, 120);
    histo_observe(&FO.fuse_read, 3000000);
}

/* ---- the fake warm-up backend -------------------------------------------------------------- */

#define BS (1u << 20)

static const struct {
    const char *key;
    uint64_t size;
} KEYS[] = {
    {"data/a.bin", 3 * BS}, {"data/b_2.bin", BS + 5}, {"data/sub/c.txt", 10},
    {"file1", 100},         {"slow/x.bin", 4 * BS},
};
#define NKEYS (sizeof(KEYS) / sizeof(KEYS[0]))

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_closed; /* fills of "slow/" wait while true */
static atomic_int fills;

static int be_list(void *arg, const char *prefix,
                   int (*fn)(void *fnarg, const char *key, const char *etag, uint64_t size),
                   void *fnarg)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strncmp(KEYS[i].key, prefix, strlen(prefix)) == 0) {
            int rc = fn(fnarg, KEYS[i].key, "\"e\"", KEYS[i].size);
            if (rc)
                return rc;
        }
    return 0;
}

static int be_head(void *arg, const char *key, char *etag, size_t etaglen, uint64_t *size)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(KEYS[i].key, key) == 0) {
            snprintf(etag, etaglen, "\"e\"");
            *size = KEYS[i].size;
            return 0;
        }
    return -ENOENT;
}

static int be_fill(void *arg, const char *key, const char *etag, uint64_t size, uint64_t index)
{
    atomic_fetch_add(&fills, 1);
    if (strncmp(key, "slow/", 5) == 0) {
        pthread_mutex_lock(&gate_lock);
        while (gate_closed)
            pthread_cond_wait(&gate_cv, &gate_lock);
        pthread_mutex_unlock(&gate_lock);
    }
    return 0;
}

static void gate(bool closed)
{
    pthread_mutex_lock(&gate_lock);
    gate_closed = closed;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_lock);
}

static const struct warmup_backend BE = {
    .list = be_list, .head = be_head, .fill = be_fill, .block_size = BS};

/* ---- HTTP client ---------------------------------------------------------------------------- */

struct resp {
    long status;
    CURLcode cc;
    char ctype[128];
    char allow[64];
    struct buf body;
    json_t *json; /* the body parsed, when it is JSON */
};

static size_t body_cb(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    return buf_append(&r->body, p, sz * n) == 0 ? sz * n : 0;
}

static size_t header_cb(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = sz * n;
    if (len > 6 && strncasecmp(p, "Allow:", 6) == 0)
        snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(len - 6), p + 6);
    return len;
}

static void resp_free(struct resp *r)
{
    buf_release(&r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* METHOD ("GET", "HEAD", ...) of TARGET on HOST:PORT; BODY (may be NULL) is sent as is. */
static void http_full(const char *host, uint16_t port, const char *method, const char *target,
                      const char *body, struct resp *r)
{
    char url[MGMT_MAX_QUERY * 4];
    CURL *e = curl_easy_init();
    memset(r, 0, sizeof(*r));
    buf_init(&r->body, 16 << 20);
    assert_non_null(e);
    snprintf(url, sizeof(url), strchr(host, ':') ? "http://[%s]:%u%s" : "http://%s:%u%s", host,
             port, target);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0 || body)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    r->cc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    char *ct = NULL;
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
    curl_easy_cleanup(e);
    if (r->body.data && strcmp(r->ctype, "application/json") == 0)
        r->json = json_loads(r->body.data, 0, NULL);
}

static struct mgmt *M;
static uint16_t PORT;
static struct warmup *W;
static char LOC[64];

static void get(const char *target, struct resp *r)
{
    http_full("127.0.0.1", PORT, "GET", target, NULL, r);
    assert_int_equal(r->cc, CURLE_OK);
}

static json_int_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", k);
    return json_integer_value(v);
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        fail_msg("'%s' is not a string", k);
    return json_string_value(v);
}

/* The object's keys are exactly KEYS (NULL-terminated), in that order. */
static void assert_keys(json_t *o, const char *const *keys)
{
    void *it = json_object_iter(o);
    for (int i = 0; keys[i]; i++, it = json_object_iter_next(o, it)) {
        if (it == NULL)
            fail_msg("key '%s' missing", keys[i]);
        if (strcmp(json_object_iter_key(it), keys[i]) != 0)
            fail_msg("key %d is '%s', expected '%s'", i, json_object_iter_key(it), keys[i]);
    }
    if (it)
        fail_msg("extra key '%s'", json_object_iter_key(it));
}

static const char *const TOP_KEYS[] = {"ErrorCode", "ErrorMessage", "Results", NULL};

/* An answer with STATUS, top-level ErrorCode CODE and a message containing NEEDLE; returns the
 * parsed JSON (owned by R). */
static json_t *expect(struct resp *r, long status, int code, const char *needle)
{
    if (r->json == NULL)
        fail_msg("not a JSON answer (status %ld, type '%s'): %s", r->status, r->ctype,
                 r->body.data ? r->body.data : "");
    assert_keys(r->json, TOP_KEYS);
    const char *msg = jstr(r->json, "ErrorMessage");
    if (r->status != status || jint(r->json, "ErrorCode") != code || !strstr(msg, needle))
        fail_msg("got %ld %lld '%s', expected %ld %d '%s'", r->status,
                 (long long)jint(r->json, "ErrorCode"), msg, status, code, needle);
    return r->json;
}

static void expect_get(const char *target, long status, int code, const char *needle)
{
    struct resp r;
    get(target, &r);
    expect(&r, status, code, needle);
    resp_free(&r);
}

/* Result I of a processed request. */
static json_t *result(struct resp *r, size_t i)
{
    expect(r, 200, 0, "Request processed");
    json_t *res = json_array_get(json_object_get(r->json, "Results"), i);
    if (res == NULL)
        fail_msg("no result %zu in %s", i, r->body.data);
    assert_string_equal(jstr(res, "Location"), LOC);
    return res;
}

static int start(void **state)
{
    char err[256];
    fake_ops_reset();
    struct warmup_config wc = {.root_prefix = "", .workers = 2};
    assert_int_equal(warmup_new(&wc, &BE, &W), 0);
    struct mgmt_config cfg = {.bind_addr = "127.0.0.1", .port = 0, .warmup = W};
    if (mgmt_start(&cfg, &OPS, &M, err, sizeof(err)) != 0)
        fail_msg("mgmt_start: %s", err);
    PORT = mgmt_port(M);
    assert_true(PORT != 0);
    snprintf(LOC, sizeof(LOC), "127.0.0.1:%u", PORT);
    return 0;
}

static int stop(void **state)
{
    gate(false);
    mgmt_stop(M);
    warmup_free(W);
    M = NULL;
    W = NULL;
    return 0;
}

/* ---- /v1/tier and the actions --------------------------------------------------------------- */

static void test_tier(void **state)
{
    static const char *const keys[] = {"ErrorCode",
                                       "ErrorMessage",
                                       "Location",
                                       "tier_read",
                                       "tier_read_bytes",
                                       "tier_read_hit",
                                       "tier_read_hit_bytes",
                                       "tier_read_miss",
                                       "tier_read_miss_bytes",
                                       "tier_direct_read",
                                       "tier_direct_read_bytes",
                                       "tier_root_read_source",
                                       "tier_root_read_source_bytes",
                                       NULL};
    struct resp r;
    get("/v1/tier", &r);
    assert_string_equal(r.ctype, "application/json");
    json_t *res = result(&r, 0);
    assert_int_equal(json_array_size(json_object_get(r.json, "Results")), 1);
    assert_keys(res, keys);
    assert_int_equal(jint(res, "ErrorCode"), 0);
    assert_string_equal(jstr(res, "ErrorMessage"), "");
    assert_int_equal(jint(res, "tier_read"), 10);
    assert_int_equal(jint(res, "tier_read_bytes"), 1001);
    assert_int_equal(jint(res, "tier_read_hit"), 4);
    assert_int_equal(jint(res, "tier_read_miss"), 1004);
    assert_int_equal(jint(res, "tier_direct_read"), 1006);
    assert_int_equal(jint(res, "tier_root_read_source_bytes"), 1009);
    resp_free(&r);

    /* HEAD: same status, no body */
    http_full("127.0.0.1", PORT, "HEAD", "/v1/tier", NULL, &r);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    resp_free(&r);

    /* clear zeroes them */
    get("/v1/tier/clear", &r);
    res = result(&r, 0);
    assert_int_equal(jint(res, "ErrorCode"), 0);
    assert_int_equal(atomic_load(&FO.clear_stats), 1);
    resp_free(&r);
    get("/v1/tier", &r);
    res = result(&r, 0);
    assert_int_equal(jint(res, "tier_read"), 0);
    assert_int_equal(jint(res, "tier_root_read_source_bytes"), 0);
    resp_free(&r);

    /* no block cache: all zero, still a well-formed answer */
    FO.stats_rc = -ENOENT;
    FO.st.read = 99;
    get("/v1/tier", &r);
    assert_int_equal(jint(result(&r, 0), "tier_read"), 0);
    resp_free(&r);
    /* another failure is an error */
    FO.stats_rc = -EIO;
    expect_get("/v1/tier", 500, EIO, "counters");
    FO.stats_rc = 0;
}

static void test_actions(void **state)
{
    struct resp r;
    get("/v1/action/clear_readdir_cache", &r);
    assert_int_equal(jint(result(&r, 0), "ErrorCode"), 0);
    resp_free(&r);
    assert_int_equal(atomic_load(&FO.clear_readdir), 1);
    get("/v1/action/clear_metadata_cache", &r);
    assert_int_equal(jint(result(&r, 0), "ErrorCode"), 0);
    resp_free(&r);
    assert_int_equal(atomic_load(&FO.clear_meta), 1);

    FO.readdir_rc = -EBUSY;
    expect_get("/v1/action/clear_readdir_cache", 500, EBUSY, "readdir cache");
    assert_int_equal(atomic_load(&FO.clear_readdir), 2);

    /* HEAD must not clear anything */
    http_full("127.0.0.1", PORT, "HEAD", "/v1/action/clear_metadata_cache", NULL, &r);
    assert_int_equal(r.status, 405);
    resp_free(&r);
    http_full("127.0.0.1", PORT, "HEAD", "/v1/tier/clear", NULL, &r);
    assert_int_equal(r.status, 405);
    resp_free(&r);
    assert_int_equal(atomic_load(&FO.clear_meta), 1);
    assert_int_equal(atomic_load(&FO.clear_stats), 0);
}

/* ---- the distributed cache ----------------------------------------------------------------- */

static json_t *jget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL)
        fail_msg("no '%s'", k);
    return v;
}

static void test_cluster(void **state)
{
    static const char *const keys[] = {
        "ErrorCode",       "ErrorMessage", "Location", "Rootlist",       "RootlistHash",
        "LoadedTime",      "Self",         "Role",     "Authentication", "MemberCount",
        "MismatchedPeers", "Members",      NULL};
    static const char *const member_keys[] = {
        "Name",   "Id",           "Address",         "Self",      "Role",
        "State",  "RootlistHash", "RootlistMatches", "LatencyMs", "Requests",
        "Errors", "Bytes",        "LastError",       NULL};
    struct resp r;
    get("/v1/cluster", &r);
    assert_string_equal(r.ctype, "application/json");
    json_t *res = result(&r, 0);
    assert_int_equal(json_array_size(json_object_get(r.json, "Results")), 1);
    assert_keys(res, keys);
    assert_int_equal(jint(res, "ErrorCode"), 0);
    assert_string_equal(jstr(res, "ErrorMessage"), "");
    assert_string_equal(jstr(res, "Rootlist"), "/etc/efc/root list \"a\".txt");
    assert_string_equal(jstr(res, "RootlistHash"), "0123456789abcdef");
    assert_int_equal(jint(res, "LoadedTime"), 1765274000);
    assert_string_equal(jstr(res, "Self"), "2:127.0.0.22:17980");
    assert_string_equal(jstr(res, "Role"), "root+agent");
    assert_true(json_is_true(jget(res, "Authentication")));
    assert_int_equal(jint(res, "MemberCount"), 5);
    assert_int_equal(jint(res, "MismatchedPeers"), 1);
    json_t *members = jget(res, "Members");
    assert_true(json_is_array(members));
    assert_int_equal(json_array_size(members), 5);
    for (size_t i = 0; i < 5; i++)
        assert_keys(json_array_get(members, i), member_keys);

    /* a peer that answers */
    json_t *m = json_array_get(members, 0);
    assert_string_equal(jstr(m, "Name"), "1:127.0.0.21:17980");
    assert_string_equal(jstr(m, "Id"), "1");
    assert_string_equal(jstr(m, "Address"), "127.0.0.21:17980");
    assert_true(json_is_false(jget(m, "Self")));
    assert_string_equal(jstr(m, "Role"), "root+agent");
    assert_string_equal(jstr(m, "State"), "up");
    assert_string_equal(jstr(m, "RootlistHash"), "0123456789abcdef");
    assert_true(json_is_true(jget(m, "RootlistMatches")));
    assert_true(json_is_real(jget(m, "LatencyMs")));
    assert_true(json_real_value(jget(m, "LatencyMs")) == 1.25);
    assert_int_equal(jint(m, "Requests"), 120);
    assert_int_equal(jint(m, "Errors"), 1);
    assert_int_equal(jint(m, "Bytes"), 3 << 20);
    assert_string_equal(jstr(m, "LastError"), "timeout after 2000 ms");
    /* this node */
    m = json_array_get(members, 1);
    assert_true(json_is_true(jget(m, "Self")));
    assert_string_equal(jstr(m, "State"), "self");
    assert_string_equal(jstr(m, "RootlistHash"), "0123456789abcdef");
    assert_true(json_is_true(jget(m, "RootlistMatches")));
    assert_true(json_real_value(jget(m, "LatencyMs")) == 0.0);
    assert_int_equal(jint(m, "Requests"), 0);
    assert_string_equal(jstr(m, "LastError"), "");
    /* down, never heard from: role unknown, no hash yet, which is not a mismatch */
    m = json_array_get(members, 2);
    assert_string_equal(jstr(m, "State"), "down");
    assert_string_equal(jstr(m, "Role"), "unknown");
    assert_string_equal(jstr(m, "RootlistHash"), "");
    assert_true(json_is_true(jget(m, "RootlistMatches")));
    assert_int_equal(jint(m, "Requests"), 5);
    assert_int_equal(jint(m, "Errors"), 5);
    assert_string_equal(jstr(m, "LastError"), "connect to 127.0.0.23:17980: Connection refused");
    /* another rootlist; its name escaped in JSON, the byte that is not UTF-8 replaced */
    m = json_array_get(members, 3);
    assert_string_equal(jstr(m, "Name"), "we\"ird\\id\x01?:127.0.0.24:17980");
    assert_string_equal(jstr(m, "Id"), "we\"ird\\id\x01?");
    assert_string_equal(jstr(m, "Role"), "agent");
    assert_string_equal(jstr(m, "State"), "up");
    assert_string_equal(jstr(m, "RootlistHash"), "00000000deadbeef");
    assert_true(json_is_false(jget(m, "RootlistMatches")));
    assert_int_equal(jint(m, "Bytes"), 7 << 20);
    assert_non_null(strstr(r.body.data, "\"Name\": \"we\\\"ird\\\\id\\u0001?:"));
    /* listed, never contacted */
    m = json_array_get(members, 4);
    assert_string_equal(jstr(m, "State"), "unknown");
    assert_string_equal(jstr(m, "Role"), "unknown");
    resp_free(&r);
    assert_int_equal(atomic_load(&FO.cluster_calls), 1);

    /* HEAD: nothing changes, so it is allowed */
    http_full("127.0.0.1", PORT, "HEAD", "/v1/cluster", NULL, &r);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    resp_free(&r);
    http_full("127.0.0.1", PORT, "POST", "/v1/cluster", "", &r);
    expect(&r, 405, EINVAL, "use GET or HEAD");
    assert_non_null(strstr(r.allow, "GET, HEAD"));
    resp_free(&r);

    /* it takes no parameters: refused before the daemon is asked */
    int calls = atomic_load(&FO.cluster_calls);
    expect_get("/v1/cluster?verbose=1", 400, EINVAL,
               "unknown parameter 'verbose': /v1/cluster takes no parameters");
    expect_get("/v1/cluster?%zz", 400, EINVAL, "bad query");
    assert_int_equal(atomic_load(&FO.cluster_calls), calls);

    /* not distributed: 501; another failure: 500 */
    FO.cluster_rc = -ENOENT;
    expect_get("/v1/cluster", 501, ENOTSUP, "not in distributed mode");
    FO.cluster_rc = -ENOMEM;
    expect_get("/v1/cluster", 500, ENOMEM, "cannot read the cluster's state");
    FO.cluster_rc = 0;
}

static void test_reload_rootlist(void **state)
{
    static const char *const keys[] = {"ErrorCode", "ErrorMessage", "Location", NULL};
    const char *summary = "5 members, hash 0123456789abcdef, this node 2:127.0.0.22:17980";
    struct resp r;
    FO.reload_msg = summary;
    get("/v1/action/reload_rootlist", &r);
    json_t *res = result(&r, 0);
    assert_int_equal(json_array_size(json_object_get(r.json, "Results")), 1);
    assert_keys(res, keys);
    assert_int_equal(jint(res, "ErrorCode"), 0);
    assert_string_equal(jstr(res, "ErrorMessage"), summary);
    resp_free(&r);
    assert_int_equal(atomic_load(&FO.reload_calls), 1);

    /* HEAD would re-read the rootlist: refused, as are parameters, with no call */
    http_full("127.0.0.1", PORT, "HEAD", "/v1/action/reload_rootlist", NULL, &r);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.allow, "GET"));
    assert_null(strstr(r.allow, "HEAD"));
    resp_free(&r);
    http_full("127.0.0.1", PORT, "GET", "/v1/action/reload_rootlist", "x=1", &r);
    expect(&r, 413, E2BIG, "no body");
    resp_free(&r);
    expect_get("/v1/action/reload_rootlist?path=/etc/other", 400, EINVAL,
               "unknown parameter 'path': /v1/action/reload_rootlist takes no parameters");
    assert_int_equal(atomic_load(&FO.reload_calls), 1);

    /* the reload failed: 500 with the callback's reason; with none, errno's words */
    FO.reload_rc = -EACCES;
    FO.reload_msg = "cannot open rootlist '/etc/efc/rootlist': Permission denied: the last "
                    "membership is kept";
    expect_get("/v1/action/reload_rootlist", 500, EACCES,
               "reloading the rootlist failed: cannot open rootlist '/etc/efc/rootlist': "
               "Permission denied: the last membership is kept");
    FO.reload_msg = "";
    FO.reload_rc = -EINVAL;
    expect_get("/v1/action/reload_rootlist", 500, EINVAL,
               "reloading the rootlist failed: Invalid argument");
    /* not distributed */
    FO.reload_rc = -ENOENT;
    expect_get("/v1/action/reload_rootlist", 501, ENOTSUP, "not in distributed mode");
    FO.reload_rc = 0;
    assert_int_equal(atomic_load(&FO.reload_calls), 4);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_http_errors(void **state)
{
    struct resp r;
    expect_get("/v1/nothing", 404, ENOENT, "unknown path '/v1/nothing'");
    /* the list of endpoints names every one */
    expect_get("/v1/clusters", 404, ENOENT, "/v1/cluster, /v1/action/reload_rootlist and /metrics");
    expect_get("/", 404, ENOENT, "unknown path");

    http_full("127.0.0.1", PORT, "POST", "/v1/tier", "", &r);
    expect(&r, 405, EINVAL, "method 'POST'");
    assert_non_null(strstr(r.allow, "GET, HEAD"));
    resp_free(&r);
    http_full("127.0.0.1", PORT, "PUT", "/v1/warmup/load?target_path=x", NULL, &r);
    expect(&r, 405, EINVAL, "use GET");
    assert_non_null(strstr(r.allow, "GET"));
    resp_free(&r);
    http_full("127.0.0.1", PORT, "DELETE", "/v1/tier/clear", NULL, &r);
    expect(&r, 405, EINVAL, "DELETE");
    resp_free(&r);
    assert_int_equal(atomic_load(&FO.clear_stats), 0);

    /* a body is refused, even on GET */
    http_full("127.0.0.1", PORT, "GET", "/v1/tier/clear", "x=1", &r);
    expect(&r, 413, E2BIG, "no body");
    resp_free(&r);
    assert_int_equal(atomic_load(&FO.clear_stats), 0);

    expect_get("/v1/tier?verbose=1", 400, EINVAL, "unknown parameter 'verbose'");
    expect_get("/v1/warmup/load", 400, EINVAL, "missing parameter 'target_path'");
    expect_get("/v1/warmup/load?target_path=a&target_path=b", 400, EINVAL,
               "'target_path' is given more than once");
    expect_get("/v1/warmup/load?target_path=%G0", 400, EINVAL, "'target_path'");
    expect_get("/v1/warmup/stat?target_path=a&preceding_time=soon", 400, EINVAL,
               "'preceding_time'");
    expect_get("/v1/warmup/stat?target_path=a&preceding_time=-5", 400, EINVAL, "'preceding_time'");

    /* a query over MGMT_MAX_QUERY: our 414 in JSON */
    static char t[3 * MGMT_MAX_QUERY];
    strcpy(t, "/v1/warmup/load?target_path=");
    memset(t + strlen(t), 'a', MGMT_MAX_QUERY);
    expect_get(t, 414, E2BIG, "over the limit");
    /* the server still serves afterwards */
    get("/v1/tier", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

/* Sends raw bytes and returns the status of the answer (0 when the connection closed without
 * one); the body goes to OUT. */
static int raw_request(uint16_t port, const char *req, size_t n, char *out, size_t outlen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = 5};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may close early on an oversized request */
        off += (size_t)w;
    }
    size_t got = 0;
    for (;;) {
        ssize_t k = recv(fd, out + got, outlen - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got == outlen - 1)
            break;
    }
    out[got] = '\0';
    close(fd);
    int status = 0;
    if (sscanf(out, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    return status;
}

static void test_raw_requests(void **state)
{
    static char out[1 << 16];
    /* chunked body: refused before it is read */
    const char *chunked = "GET /v1/tier/clear HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          "Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    assert_int_equal(raw_request(PORT, chunked, strlen(chunked), out, sizeof(out)), 413);
    assert_non_null(strstr(out, "\"ErrorCode\""));
    assert_int_equal(atomic_load(&FO.clear_stats), 0);
    /* Content-Length: 0 is no body */
    const char *cl0 = "GET /v1/tier HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                      "Connection: close\r\n\r\n";
    assert_int_equal(raw_request(PORT, cl0, strlen(cl0), out, sizeof(out)), 200);
    /* a request line far over the connection's memory: MHD answers (no crash, no hang) */
    static char big[MGMT_CONN_MEMORY * 2 + 200];
    int n = snprintf(big, sizeof(big), "GET /v1/tier?a=");
    memset(big + n, 'x', MGMT_CONN_MEMORY * 2);
    n += MGMT_CONN_MEMORY * 2;
    n += snprintf(big + n, sizeof(big) - (size_t)n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    int st = raw_request(PORT, big, (size_t)n, out, sizeof(out));
    assert_true(st == 414 || st == 431 || st == 0);
    /* a query with raw bytes curl would have encoded: %-escapes are ours to decode */
    const char *enc = "GET /v1/warmup/stat?target_path=%64ata%2Fsub&preceding_time=0 HTTP/1.1\r\n"
                      "Host: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(raw_request(PORT, enc, strlen(enc), out, sizeof(out)), 200);
    assert_non_null(strstr(out, "\"Path\": \"data/sub\""));
    /* the server still answers */
    assert_int_equal(raw_request(PORT, cl0, strlen(cl0), out, sizeof(out)), 200);
}

/* ---- warm-up --------------------------------------------------------------------------------- */

static const char *const LOAD_KEYS[] = {"ErrorCode", "ErrorMessage", "Location", "Path", NULL};
static const char *const STAT_KEYS[] = {"ErrorCode", "ErrorMessage", "Location",
                                        "Path",      "TaskInfos",    NULL};
static const char *const TASK_KEYS[] = {"CompletedSize", "ErrorCode", "ErrorMessage", "IsDir",
                                        "Path",          "Pattern",   "Status",       "SubmitTime",
                                        "TotalSize",     NULL};

/* How long a test waits for a state (a task's status, the server noticing a close) before it
 * fails: generous, for a sanitizer build on a loaded machine. */
#define WAIT_SECONDS 60

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Polls stat of PATH until its newest task has STATUS; returns its TaskInfo (a copy, json_decref
 * it). Fails the test, with the status last seen, after WAIT_SECONDS. */
static json_t *wait_status(const char *path, const char *status)
{
    char t[512], last[32] = "no task";
    snprintf(t, sizeof(t), "/v1/warmup/stat?target_path=%s", path);
    double end = now_sec() + WAIT_SECONDS;
    for (;;) {
        int late = now_sec() > end;
        struct resp r;
        get(t, &r);
        json_t *res = result(&r, 0);
        assert_keys(res, STAT_KEYS);
        json_t *task = json_array_get(json_object_get(res, "TaskInfos"), 0);
        if (task && strcmp(jstr(task, "Status"), status) == 0) {
            json_incref(task);
            resp_free(&r);
            return task;
        }
        if (task)
            snprintf(last, sizeof(last), "%s", jstr(task, "Status"));
        resp_free(&r);
        if (late)
            fail_msg("'%s' did not reach status '%s' in %d s (last: '%s')", path, status,
                     WAIT_SECONDS, last);
        usleep(10000);
    }
}

static void test_warmup_load_stat(void **state)
{
    struct resp r;
    get("/v1/warmup/load?target_path=data", &r);
    json_t *res = result(&r, 0);
    assert_keys(res, LOAD_KEYS);
    assert_int_equal(jint(res, "ErrorCode"), 0);
    assert_string_equal(jstr(res, "ErrorMessage"),
                        "The warm up (data) is processing in the background. Use the 'stat' "
                        "command to get status.");
    assert_string_equal(jstr(res, "Path"), "data");
    resp_free(&r);

    uint64_t now = (uint64_t)time(NULL) * 1000000;
    json_t *task = wait_status("data", "completed");
    assert_keys(task, TASK_KEYS);
    assert_int_equal(jint(task, "TotalSize"), 3 * BS + BS + 5 + 10);
    assert_int_equal(jint(task, "CompletedSize"), 3 * BS + BS + 5 + 10);
    assert_int_equal(jint(task, "ErrorCode"), 0);
    assert_string_equal(jstr(task, "ErrorMessage"), "");
    assert_true(json_is_true(json_object_get(task, "IsDir")));
    assert_string_equal(jstr(task, "Path"), "data");
    assert_string_equal(jstr(task, "Pattern"), "");
    json_int_t sub = jint(task, "SubmitTime");
    assert_true(sub > (json_int_t)now - 60000000 && sub < (json_int_t)now + 60000000);
    json_decref(task);

    /* the stat result's own message, and its Path */
    get("/v1/warmup/stat?target_path=data/", &r);
    res = result(&r, 0);
    assert_string_equal(jstr(res, "ErrorMessage"), "Successfully stat the warm up");
    assert_string_equal(jstr(res, "Path"), "data");
    resp_free(&r);

    /* a file, with a pattern; '+' and %-escapes decoded */
    get("/v1/warmup/load?target_path=data&pattern=_2%5C.bin%24", &r);
    assert_int_equal(jint(result(&r, 0), "ErrorCode"), 0);
    resp_free(&r);
    task = wait_status("data", "completed");
    assert_string_equal(jstr(task, "Pattern"), "_2\\.bin$");
    assert_int_equal(jint(task, "TotalSize"), BS + 5);
    json_decref(task);
    get("/v1/warmup/stat?target_path=data", &r);
    assert_int_equal(json_array_size(json_object_get(result(&r, 0), "TaskInfos")), 2);
    resp_free(&r);

    /* several paths, one result each, in order; escapes refused per path */
    get("/v1/warmup/load?target_path=file1,data%2Fsub%2F,../x,/abs,a//b,", &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "Results")), 6);
    res = result(&r, 0);
    assert_int_equal(jint(res, "ErrorCode"), 0);
    assert_string_equal(jstr(res, "Path"), "file1");
    res = result(&r, 1);
    assert_int_equal(jint(res, "ErrorCode"), 0);
    assert_string_equal(jstr(res, "Path"), "data/sub");
    res = result(&r, 2);
    assert_int_equal(jint(res, "ErrorCode"), EINVAL);
    assert_string_equal(jstr(res, "Path"), "../x");
    assert_non_null(strstr(jstr(res, "ErrorMessage"), ".."));
    res = result(&r, 3);
    assert_int_equal(jint(res, "ErrorCode"), EINVAL);
    assert_non_null(strstr(jstr(res, "ErrorMessage"), "absolute"));
    res = result(&r, 4);
    assert_int_equal(jint(res, "ErrorCode"), EINVAL);
    res = result(&r, 5); /* "" after the last comma: the root */
    assert_int_equal(jint(res, "ErrorCode"), 0);
    assert_string_equal(jstr(res, "Path"), "");
    resp_free(&r);
    json_decref(wait_status("file1", "completed"));
    json_decref(wait_status("data/sub", "completed"));
    json_decref(wait_status("", "completed"));

    /* a pattern that does not compile: the result says so */
    get("/v1/warmup/load?target_path=data&pattern=(", &r);
    res = result(&r, 0);
    assert_int_not_equal(jint(res, "ErrorCode"), 0);
    assert_non_null(strstr(jstr(res, "ErrorMessage"), "pattern"));
    resp_free(&r);

    /* no task for a path */
    get("/v1/warmup/stat?target_path=nothing/here", &r);
    res = result(&r, 0);
    assert_keys(res, STAT_KEYS);
    assert_int_equal(jint(res, "ErrorCode"), ENOENT);
    assert_non_null(strstr(jstr(res, "ErrorMessage"), "no warm-up task"));
    assert_int_equal(json_array_size(json_object_get(res, "TaskInfos")), 0);
    resp_free(&r);
    get("/v1/warmup/stat?target_path=..", &r);
    assert_int_equal(jint(result(&r, 0), "ErrorCode"), EINVAL);
    resp_free(&r);

    /* a nonexistent path: the task fails, with a reason */
    get("/v1/warmup/load?target_path=missing", &r);
    assert_int_equal(jint(result(&r, 0), "ErrorCode"), 0);
    resp_free(&r);
    task = wait_status("missing", "failed");
    assert_int_equal(jint(task, "ErrorCode"), EIO);
    assert_true(strlen(jstr(task, "ErrorMessage")) > 0);
    json_decref(task);

    /* metrics count the tasks by status */
    get("/metrics", &r);
    assert_non_null(strstr(r.body.data, "efc_warmup_tasks{status=\"completed\"} 5\n"));
    assert_non_null(strstr(r.body.data, "efc_warmup_tasks{status=\"failed\"} 1\n"));
    assert_non_null(strstr(r.body.data, "efc_warmup_tasks{status=\"running\"} 0\n"));
    resp_free(&r);
}

static void test_warmup_cancel(void **state)
{
    struct resp r;
    gate(true);
    get("/v1/warmup/load?target_path=slow", &r);
    assert_int_equal(jint(result(&r, 0), "ErrorCode"), 0);
    resp_free(&r);
    json_decref(wait_status("slow", "running"));

    get("/v1/warmup/cancel?target_path=slow", &r);
    json_t *res = result(&r, 0);
    assert_keys(res, LOAD_KEYS);
    assert_int_equal(jint(res, "ErrorCode"), 0);
    assert_string_equal(jstr(res, "Path"), "slow");
    resp_free(&r);
    gate(false);
    json_t *task = wait_status("slow", "canceled");
    assert_true(jint(task, "CompletedSize") < 4 * BS);
    json_decref(task);

    get("/v1/warmup/cancel?target_path=slow,nothing,/x", &r);
    res = result(&r, 0);
    assert_int_equal(jint(res, "ErrorCode"), EALREADY);
    assert_non_null(strstr(jstr(res, "ErrorMessage"), "cannot cancel a completed task"));
    res = result(&r, 1);
    assert_int_equal(jint(res, "ErrorCode"), ENOENT);
    assert_non_null(strstr(jstr(res, "ErrorMessage"), "no warm-up task"));
    res = result(&r, 2);
    assert_int_equal(jint(res, "ErrorCode"), EINVAL);
    resp_free(&r);

    /* HEAD never starts or cancels a warm-up */
    int before = atomic_load(&fills);
    http_full("127.0.0.1", PORT, "HEAD", "/v1/warmup/load?target_path=file1", NULL, &r);
    assert_int_equal(r.status, 405);
    resp_free(&r);
    get("/v1/warmup/stat?target_path=file1", &r);
    assert_int_equal(jint(result(&r, 0), "ErrorCode"), ENOENT);
    resp_free(&r);
    assert_int_equal(atomic_load(&fills), before);
}

/* ---- /metrics -------------------------------------------------------------------------------- */

static void assert_prom_ok(const char *text)
{
    char err[512];
    if (prom_check(text, err, sizeof(err)) != 0)
        fail_msg("not valid Prometheus text: %s\n%s", err, text);
}

static void test_metrics(void **state)
{
    struct resp r;
    get("/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert_prom_ok(r.body.data);
    const char *want[] = {
        "efc_tier_read_total 10\n",
        "efc_tier_read_bytes_total 1001\n",
        "efc_tier_read_hit_total 4\n",
        "efc_tier_root_read_source_bytes_total 1009\n",
        "# TYPE efc_tier_direct_read_total counter\n",
        "efc_cache_hit_ratio{kind=\"requests\"} 0.4\n",
        "efc_cache_hit_ratio{kind=\"bytes\"} 0.75\n",
        "efc_cache_used_bytes{tier=\"memory\"} 123\n",
        "efc_cache_used_bytes{tier=\"disk\"} 456\n",
        "efc_cache_capacity_bytes{tier=\"disk\"} 10737418240\n",
        "efc_cache_evictions_total{tier=\"memory\"} 7\n",
        "efc_cache_corrupt_pages_dropped_total 3\n",
        "efc_cache_disk_errors_total 2\n",
        "efc_warmup_tasks{status=\"running\"} 0\n",
        "efc_fake_origin_requests_total 42\n",
        "efc_fuse_read_duration_seconds_bucket{le=\"0.00025\"} 1\n",
        "efc_fuse_read_duration_seconds_bucket{le=\"+Inf\"} 2\n",
        "efc_fuse_read_duration_seconds_count 2\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(r.body.data, want[i]) == NULL)
            fail_msg("/metrics lacks '%s':\n%s", want[i], r.body.data);
    resp_free(&r);
    assert_true(atomic_load(&FO.metrics_calls) >= 1);

    /* HEAD works; a parameter does not */
    http_full("127.0.0.1", PORT, "HEAD", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    expect_get("/metrics?x=1", 400, EINVAL, "unknown parameter 'x'");

    /* without a block cache, the cache families are left out and the rest still parses */
    FO.stats_rc = -ENOENT;
    get("/metrics", &r);
    assert_prom_ok(r.body.data);
    assert_null(strstr(r.body.data, "efc_tier_read_total"));
    assert_non_null(strstr(r.body.data, "efc_warmup_tasks"));
    resp_free(&r);
    FO.stats_rc = 0;
}

/* ---- binding, start, stop, limits -------------------------------------------------------------
 */

static void test_bind_loopback_only(void **state)
{
    struct resp r;
    /* bound to 127.0.0.1: 127.0.0.2 (loopback too, another address) must not answer */
    http_full("127.0.0.2", PORT, "GET", "/v1/tier", NULL, &r);
    assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
    resp_free(&r);

    /* and the other way round, which also proves 127.0.0.2 is usable on this host */
    struct mgmt *m2;
    char err[256];
    struct mgmt_config cfg = {.bind_addr = "127.0.0.2", .port = 0};
    assert_int_equal(mgmt_start(&cfg, &OPS, &m2, err, sizeof(err)), 0);
    uint16_t p2 = mgmt_port(m2);
    http_full("127.0.0.2", p2, "GET", "/v1/tier", NULL, &r);
    assert_int_equal(r.cc, CURLE_OK);
    char loc[64];
    snprintf(loc, sizeof(loc), "127.0.0.2:%u", p2);
    json_t *res = json_array_get(json_object_get(r.json, "Results"), 0);
    assert_string_equal(jstr(res, "Location"), loc);
    resp_free(&r);
    http_full("127.0.0.1", p2, "GET", "/v1/tier", NULL, &r);
    assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
    resp_free(&r);
    /* warm-up on a mount without a block cache */
    http_full("127.0.0.2", p2, "GET", "/v1/warmup/load?target_path=x", NULL, &r);
    expect(&r, 501, ENOTSUP, "no block cache");
    resp_free(&r);
    mgmt_stop(m2);
}

static void test_ipv6(void **state)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    if (!have) {
        printf("skipping the IPv6 test: this host cannot bind ::1\n");
        skip();
    }
    struct mgmt *m6;
    char err[256];
    struct mgmt_config cfg = {.bind_addr = "::1", .port = 0};
    if (mgmt_start(&cfg, &OPS, &m6, err, sizeof(err)) != 0)
        fail_msg("mgmt_start on ::1: %s", err);
    uint16_t p6 = mgmt_port(m6);
    struct resp r;
    http_full("::1", p6, "GET", "/v1/tier", NULL, &r);
    assert_int_equal(r.cc, CURLE_OK);
    char loc[64];
    snprintf(loc, sizeof(loc), "[::1]:%u", p6);
    assert_string_equal(jstr(json_array_get(json_object_get(r.json, "Results"), 0), "Location"),
                        loc);
    resp_free(&r);
    /* IPv6 only: not on IPv4 */
    http_full("127.0.0.1", p6, "GET", "/v1/tier", NULL, &r);
    assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
    resp_free(&r);
    mgmt_stop(m6);
}

static void test_start_errors(void **state)
{
    struct mgmt *m2 = (struct mgmt *)1;
    char err[256];
    struct mgmt_config cfg = {.bind_addr = "localhost", .port = 0};
    assert_int_equal(mgmt_start(&cfg, &OPS, &m2, err, sizeof(err)), -EINVAL);
    assert_null(m2);
    assert_non_null(strstr(err, "'localhost'"));
    cfg.bind_addr = "127.0.0.1";
    cfg.port = PORT; /* taken by the fixture's server */
    assert_int_equal(mgmt_start(&cfg, &OPS, &m2, err, sizeof(err)), -EADDRINUSE);
    char want[64];
    snprintf(want, sizeof(want), "management port %u on 127.0.0.1", PORT);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "in use"));
    mgmt_stop(NULL);
}

static void test_stop_closes(void **state)
{
    struct mgmt *m2;
    char err[256];
    struct mgmt_config cfg = {.port = 0}; /* NULL bind_addr: 127.0.0.1 */
    assert_int_equal(mgmt_start(&cfg, NULL, &m2, err, sizeof(err)), 0);
    uint16_t p = mgmt_port(m2);
    struct resp r;
    http_full("127.0.0.1", p, "GET", "/v1/tier", NULL, &r);
    expect(&r, 501, ENOTSUP, "not available"); /* no ops at all */
    resp_free(&r);
    mgmt_stop(m2);
    http_full("127.0.0.1", p, "GET", "/v1/tier", NULL, &r);
    assert_int_equal(r.cc, CURLE_COULDNT_CONNECT);
    resp_free(&r);
    /* the port is free again */
    cfg.port = p;
    assert_int_equal(mgmt_start(&cfg, NULL, &m2, err, sizeof(err)), 0);
    mgmt_stop(m2);
}

/* Connections waiting in the accept queue of the socket listening on 127.0.0.1:PORT, as the kernel
 * shows them (/proc/net/tcp: a listening socket's rx_queue is its accept backlog); -1 if there is
 * no such socket. */
static int accept_backlog(uint16_t port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    assert_non_null(f);
    char line[512];
    int found = -1;
    while (found < 0 && fgets(line, sizeof(line), f)) {
        unsigned addr, lport, state, txq, rxq;
        if (sscanf(line, " %*u: %x:%x %*x:%*x %x %x:%x", &addr, &lport, &state, &txq, &rxq) == 5 &&
            lport == port && state == 0x0A /* TCP_LISTEN */ && addr == htonl(INADDR_LOOPBACK))
            found = (int)rxq;
    }
    fclose(f);
    return found;
}

static void test_connection_limit(void **state)
{
    struct mgmt *m2;
    char err[256];
    struct mgmt_config cfg = {.port = 0, .threads = 1, .max_conns = 2};
    assert_int_equal(mgmt_start(&cfg, &OPS, &m2, err, sizeof(err)), 0);
    uint16_t p = mgmt_port(m2);
    /* Two idle connections, held open by the server once it has taken them off its listening
       socket's accept queue. That queue is where to see it: the server shows no count of its
       connections, and a request cannot prove one accepted and keep it, as every answer closes
       its connection. */
    int idle[2];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    for (int i = 0; i < 2; i++) {
        idle[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(idle[i], (struct sockaddr *)&a, sizeof(a)), 0);
    }
    double end = now_sec() + WAIT_SECONDS;
    int queued;
    while ((queued = accept_backlog(p)) != 0) {
        if (now_sec() > end)
            fail_msg("the server has not accepted the two connections in %d s (queued: %d)",
                     WAIT_SECONDS, queued);
        usleep(2000);
    }
    struct resp r;
    http_full("127.0.0.1", p, "GET", "/v1/tier", NULL, &r);
    assert_int_not_equal(r.cc, CURLE_OK); /* over the limit: closed at once */
    resp_free(&r);
    close(idle[0]);
    close(idle[1]);
    /* The server notices the closes: a request is served again. */
    end = now_sec() + WAIT_SECONDS;
    for (;;) {
        int late = now_sec() > end;
        http_full("127.0.0.1", p, "GET", "/v1/tier", NULL, &r);
        CURLcode cc = r.cc;
        long status = r.status;
        resp_free(&r);
        if (cc == CURLE_OK && status == 200)
            break;
        if (late)
            fail_msg("no request served %d s after the idle connections closed (last: %s, %ld)",
                     WAIT_SECONDS, curl_easy_strerror(cc), status);
        usleep(20000);
    }
    mgmt_stop(m2);
}

#define CLIENTS 4
#define EACH    50

static void *client(void *arg)
{
    long bad = 0;
    for (int i = 0; i < EACH; i++) {
        struct resp r;
        http_full("127.0.0.1", PORT, "GET", i % 2 ? "/v1/tier" : "/metrics", NULL, &r);
        if (r.cc != CURLE_OK || r.status != 200 || r.body.len == 0)
            bad++;
        resp_free(&r);
    }
    return (void *)bad;
}

static void test_concurrent_clients(void **state)
{
    pthread_t t[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, client, NULL), 0);
    long bad = 0;
    for (int i = 0; i < CLIENTS; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        bad += (long)rv;
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tier, start, stop),
        cmocka_unit_test_setup_teardown(test_actions, start, stop),
        cmocka_unit_test_setup_teardown(test_cluster, start, stop),
        cmocka_unit_test_setup_teardown(test_reload_rootlist, start, stop),
        cmocka_unit_test_setup_teardown(test_http_errors, start, stop),
        cmocka_unit_test_setup_teardown(test_raw_requests, start, stop),
        cmocka_unit_test_setup_teardown(test_warmup_load_stat, start, stop),
        cmocka_unit_test_setup_teardown(test_warmup_cancel, start, stop),
        cmocka_unit_test_setup_teardown(test_metrics, start, stop),
        cmocka_unit_test_setup_teardown(test_bind_loopback_only, start, stop),
        cmocka_unit_test_setup_teardown(test_ipv6, start, stop),
        cmocka_unit_test_setup_teardown(test_start_errors, start, stop),
        cmocka_unit_test_setup_teardown(test_stop_closes, start, stop),
        cmocka_unit_test_setup_teardown(test_connection_limit, start, stop),
        cmocka_unit_test_setup_teardown(test_concurrent_clients, start, stop),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
