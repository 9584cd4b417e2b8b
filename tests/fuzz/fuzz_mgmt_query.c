// fuzz-links: efc_mgmt
/* tests/fuzz/fuzz_mgmt_query.c - the management server's query parser (mgmt_parse_query) and
 * the request dispatcher on top of it (mgmt_dispatch, with a fake daemon and no warm-up).
 *
 * The input is a raw query string. Parser invariants: it returns a count within the limits or
 * -EINVAL/-E2BIG with a reason; every pair has a non-empty name of at most 63 bytes without
 * control characters, a value of at most MGMT_MAX_VALUE bytes, both valid UTF-8 (jansson's own
 * check is the oracle) without NUL; and re-encoding the pairs and parsing again gives the same
 * pairs. Dispatcher invariants, for the query sent to each endpoint with GET, and the input as a
 * whole request-target: a reply always comes, with a known status, a body of the stated length,
 * JSON that parses with an integer ErrorCode and a Results array, or Prometheus text for a 200
 * from /metrics; the fake's clear and reload callbacks run only for a 200 on their endpoint.
 * The fake cluster alternates between a distributed mount (members whose names JSON must escape)
 * and one that is not (501), so both of /v1/cluster's answers are built.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "mgmt/mgmt.h"
#include "p2p/p2p.h"
#include "util/buf.h"
#include "util/prom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int clears;

static int f_stats(void *arg, struct cache_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->read = 3;
    st->read_hit = 1;
    return 0;
}

static void f_clear_stats(void *arg)
{
    clears++;
}

static int f_clear(void *arg)
{
    clears++;
    return 0;
}

static void f_metrics(void *arg, struct buf *out)
{
    prom_counter(out, "efc_fuzz_total", "Fuzz.", 1);
}

static unsigned cluster_calls;

static int f_cluster(void *arg, struct p2p_cluster_info *ci)
{
    memset(ci, 0, sizeof(*ci));
    if (cluster_calls++ % 2)
        return -ENOENT;
    snprintf(ci->rootlist, sizeof(ci->rootlist), "/etc/efc/rootlist");
    snprintf(ci->self, sizeof(ci->self), "1:127.0.0.21:17980");
    ci->nmembers = ci->ninfo = 2;
    ci->member = calloc(2, sizeof(*ci->member));
    if (ci->member == NULL)
        return -ENOMEM;
    snprintf(ci->member[0].name, sizeof(ci->member[0].name), "1:127.0.0.21:17980");
    ci->member[0].state = "self";
    snprintf(ci->member[1].name, sizeof(ci->member[1].name), "q\"\\\x01\xff:127.0.0.22:17980");
    ci->member[1].state = "down";
    ci->member[1].role = -1;
    return 0;
}

static int f_reload(void *arg, char *msg, size_t len)
{
    clears++;
    snprintf(msg, len, "2 members");
    return 0;
}

static const struct mgmt_ops OPS = {
    .cache_stats = f_stats,
    .cache_clear_stats = f_clear_stats,
    .clear_readdir_cache = f_clear,
    .clear_metadata_cache = f_clear,
    .metrics = f_metrics,
    .cluster = f_cluster,
    .reload_rootlist = f_reload,
};

static struct mgmt_param P[MGMT_MAX_PARAMS], Q[MGMT_MAX_PARAMS];

static void check_utf8(const char *s)
{
    json_t *j = json_string(s); /* NULL for invalid UTF-8 */
    if (j == NULL)
        abort();
    json_decref(j);
}

static void encode(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_append(b, e, 3);
        }
    }
}

static void check_parser(const char *q, size_t n)
{
    char err[256];
    err[0] = '\0';
    int rc = mgmt_parse_query(q, n, P, MGMT_MAX_PARAMS, err, sizeof(err));
    if (rc < 0) {
        if ((rc != -EINVAL && rc != -E2BIG) || err[0] == '\0' || strlen(err) >= sizeof(err))
            abort();
        return;
    }
    if (rc > MGMT_MAX_PARAMS || n > MGMT_MAX_QUERY)
        abort();
    struct buf b;
    buf_init(&b, 16 * MGMT_MAX_QUERY);
    for (int i = 0; i < rc; i++) {
        size_t nl = strnlen(P[i].name, sizeof(P[i].name));
        size_t vl = strnlen(P[i].value, sizeof(P[i].value));
        if (nl == 0 || nl >= sizeof(P[i].name) || vl > MGMT_MAX_VALUE)
            abort();
        for (size_t k = 0; k < nl; k++)
            if ((unsigned char)P[i].name[k] < 0x20 || P[i].name[k] == 0x7f)
                abort();
        check_utf8(P[i].name);
        check_utf8(P[i].value);
        if (i)
            buf_puts(&b, "&");
        encode(&b, P[i].name);
        buf_puts(&b, "=");
        encode(&b, P[i].value);
    }
    /* Re-encoded, the query may exceed MGMT_MAX_QUERY (every byte tripled): only compare when
       it fits. */
    if (b.len <= MGMT_MAX_QUERY) {
        int rc2 =
            mgmt_parse_query(b.data ? b.data : "", b.len, Q, MGMT_MAX_PARAMS, err, sizeof(err));
        if (rc2 != rc)
            abort();
        for (int i = 0; i < rc; i++)
            if (strcmp(P[i].name, Q[i].name) != 0 || strcmp(P[i].value, Q[i].value) != 0)
                abort();
    }
    buf_release(&b);
}

static void check_reply(const char *method, const char *target, size_t len)
{
    struct mgmt_reply r;
    int before = clears;
    if (mgmt_dispatch(&OPS, NULL, "127.0.0.1:17871", method, target, len, &r) != 0)
        return; /* out of memory only */
    if (r.body == NULL || strlen(r.body) != r.len || r.content_type == NULL)
        abort();
    static const unsigned ok[] = {200, 400, 404, 405, 414, 500, 501};
    int known = 0;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        known |= r.status == ok[i];
    if (!known)
        abort();
    if (strcmp(r.content_type, "application/json") == 0) {
        json_t *j = json_loads(r.body, 0, NULL);
        if (j == NULL || !json_is_integer(json_object_get(j, "ErrorCode")) ||
            !json_is_string(json_object_get(j, "ErrorMessage")) ||
            !json_is_array(json_object_get(j, "Results")))
            abort();
        if ((json_integer_value(json_object_get(j, "ErrorCode")) == 0) != (r.status == 200))
            abort();
        json_decref(j);
    } else if (r.status != 200 || strncmp(r.body, "# HELP ", 7) != 0) {
        abort();
    }
    if (clears != before && r.status != 200)
        abort(); /* a refused request had a side effect */
    mgmt_reply_release(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const eps[] = {
        "/v1/warmup/load",
        "/v1/warmup/stat",
        "/v1/warmup/cancel",
        "/v1/tier",
        "/v1/tier/clear",
        "/v1/action/clear_readdir_cache",
        "/v1/action/clear_metadata_cache",
        "/metrics",
        "/v1/cluster",
        "/v1/action/reload_rootlist",
    };
    if (size > 4 * MGMT_MAX_QUERY)
        return 0;
    check_parser((const char *)data, size);

    char *t = malloc(size + 64);
    for (size_t i = 0; i < sizeof(eps) / sizeof(eps[0]); i++) {
        size_t n = strlen(eps[i]);
        memcpy(t, eps[i], n);
        t[n] = '?';
        memcpy(t + n + 1, data, size);
        t[n + 1 + size] = '\0';
        check_reply("GET", t, n + 1 + size);
    }
    /* the input as a whole target, with a method chosen by its length */
    static const char *const methods[] = {"GET", "HEAD", "POST"};
    memcpy(t, data, size);
    t[size] = '\0';
    check_reply(methods[size % 3], t, size);
    free(t);
    return 0;
}
