/* oss/oss_client.c - requests to OSS or an S3-compatible store: transport, signing, retries,
 * failover and the four operations a read-only mount needs.
 *
 * Transport. A pool of libcurl easy handles, at most max_connections of them; a thread borrows
 * one for an attempt and returns it, so connections (which live in the handle) are reused by
 * whichever thread comes next, and the number of parallel connections is bounded by the pool.
 * The handles share DNS and TLS-session caches. Endpoints are reached with CURLOPT_CONNECT_TO,
 * so the URL, the Host header and the signature keep naming the bucket's own domain wherever
 * the bytes are sent (as `curl --connect-to` does).
 *
 * One call = attempts until success, a final error, or the retry budget is spent. Between
 * attempts: full-jitter exponential back-off (base RETRY_BASE_MS, cap RETRY_CAP_MS). Each
 * endpoint keeps a health record; a transport failure or a 5xx marks it down for a back-off
 * period (doubling up to ENDPOINT_DOWN_MAX_MS), and attempts go to the first endpoint that is not
 * down, so reads carry on through the backup while the primary is out, and go back to the
 * primary once its period ends. A GET whose body was cut short resumes from the byte reached,
 * pinned with If-Match to the ETag of the first answer.
 *
 * Errors from the server are parsed (oss_xml.c) and classified in one place (oss_err.c).
 */
#include "oss/oss.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "oss/oss_cred_i.h"
#include "oss/oss_err_i.h"
#include "oss/oss_sign_i.h"
#include "oss/oss_url_i.h"
#include "oss/oss_xml_i.h"
#include "util/buf.h"
#include "util/crc64.h"
#include "util/histo.h"
#include "util/log.h"
#include "util/prom.h"
#include "util/timeutil.h"
#include "util/urlenc.h"

#define RETRY_BASE_MS        50
#define RETRY_CAP_MS         2000
#define ENDPOINT_DOWN_MAX_MS 30000
#define CRED_POLL_MS         100 /* a call refused for an expired token re-reads the file so often */
#define MAX_HEADERS          16
#define MAX_QUERY            10
#define MAX_URL_LEN          (8u << 10)
#define MAX_HDR_VALUE        4096
#define CURL_BUFFER_SIZE     (512 * 1024)
#define USER_AGENT           "efc/0.1 (aliyun-alinas-efc compatible)"

struct endpoint {
    struct oss_endpoint_url url;
    char connect_to[OSS_MAX_HOST_LEN + 16]; /* "::host:port" or "" to connect to the URL */
    /* health, updated without a lock */
    atomic_uint failures; /* consecutive */
    atomic_uint_fast64_t down_until_ms;
    atomic_uint down_ms; /* current back-off */
};

struct conn {
    CURL *easy;
    struct conn *next;
};

/* Why an attempt failed, for the error counters (oss_stats' err_*). */
enum errkind {
    EK_NONE, /* not the origin's doing: our own abort, a signing failure */
    EK_NOT_FOUND,
    EK_HTTP_4XX,
    EK_HTTP_5XX,
    EK_TIMEOUT,
    EK_CONNECT,
    EK_TRANSPORT,
    EK_COUNT,
};

struct oss_client {
    enum oss_protocol protocol;
    int sign_version;
    bool path_style;
    bool verify_crc64;
    char *bucket;
    char *host; /* service host, maybe with :port */
    char *region;
    char *vhost; /* what Host names: "<bucket>.<host>" or "<host>" */
    char *ca_file;
    int connect_timeout_ms, stall_timeout_ms, retry_budget_ms, max_attempts, endpoint_down_ms;

    struct endpoint eps[OSS_MAX_ENDPOINTS];
    int neps;

    struct oss_cred_src *cred;
    atomic_uint_fast64_t renew_warned; /* generation whose expiry was last logged */
    atomic_int_fast64_t clock_skew_s;  /* server time - our time */

    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

    pthread_mutex_t pool_lock; /* protects free_conns, nconns */
    pthread_cond_t pool_cond;
    struct conn *free_conns;
    int nconns, max_conns;

    struct {
        atomic_uint_fast64_t requests, retries, errors, bytes_received, failovers, cred_reloads,
            crc_mismatches;
        atomic_uint_fast64_t errk[EK_COUNT]; /* failed attempts by kind */
        struct histo get_latency;            /* successful oss_get calls */
    } st;
};

void oss_config_init(struct oss_config *c)
{
    memset(c, 0, sizeof(*c));
    c->verify_crc64 = true;
}

enum oss_storage_class oss_storage_class_parse(const char *s)
{
    if (s == NULL || *s == '\0' || strcasecmp(s, "Standard") == 0)
        return OSS_SC_STANDARD;
    if (strcasecmp(s, "IA") == 0 || strcasecmp(s, "STANDARD_IA") == 0)
        return OSS_SC_IA;
    if (strcasecmp(s, "Archive") == 0 || strcasecmp(s, "GLACIER") == 0)
        return OSS_SC_ARCHIVE;
    if (strcasecmp(s, "ColdArchive") == 0)
        return OSS_SC_COLD_ARCHIVE;
    if (strcasecmp(s, "DeepColdArchive") == 0 || strcasecmp(s, "DEEP_ARCHIVE") == 0)
        return OSS_SC_DEEP_COLD_ARCHIVE;
    return OSS_SC_OTHER;
}

/* ---- libcurl setup ---------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
    struct oss_client *cl = arg;
    pthread_mutex_lock(&cl->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
    struct oss_client *cl = arg;
    pthread_mutex_unlock(&cl->share_locks[data]);
}

static struct conn *conn_get(struct oss_client *cl)
{
    struct conn *c = NULL;

    pthread_mutex_lock(&cl->pool_lock);
    while (cl->free_conns == NULL && cl->nconns >= cl->max_conns)
        pthread_cond_wait(&cl->pool_cond, &cl->pool_lock);
    if (cl->free_conns) {
        c = cl->free_conns;
        cl->free_conns = c->next;
    } else {
        cl->nconns++;
    }
    pthread_mutex_unlock(&cl->pool_lock);
    if (c)
        return c;
    c = calloc(1, sizeof(*c));
    if (c)
        c->easy = curl_easy_init();
    if (c == NULL || c->easy == NULL) {
        free(c);
        pthread_mutex_lock(&cl->pool_lock);
        cl->nconns--;
        pthread_cond_signal(&cl->pool_cond);
        pthread_mutex_unlock(&cl->pool_lock);
        return NULL;
    }
    return c;
}

static void conn_put(struct oss_client *cl, struct conn *c)
{
    pthread_mutex_lock(&cl->pool_lock);
    c->next = cl->free_conns;
    cl->free_conns = c;
    pthread_cond_signal(&cl->pool_cond);
    pthread_mutex_unlock(&cl->pool_lock);
}

/* ---- construction --------------------------------------------------------------------- */

static int setf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int setf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool bucket_name_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
            return false;
    }
    return true;
}

int oss_client_new(const struct oss_config *c, struct oss_client **out, char *err, size_t errlen)
{
    struct oss_client *cl;
    char region[64];
    int rc;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return setf(err, errlen, -EIO, "cannot initialise libcurl");
    if (c->bucket == NULL || !bucket_name_ok(c->bucket))
        return setf(err, errlen, -EINVAL, "bad bucket name '%s'", c->bucket ? c->bucket : "");
    if (c->host == NULL || c->host[0] == '\0' || strlen(c->host) > OSS_MAX_HOST_LEN)
        return setf(err, errlen, -EINVAL, "bad endpoint host '%s'", c->host ? c->host : "");
    if (c->protocol == OSS_PROTO_OSS && c->sign_version != 0 && c->sign_version != 1 &&
        c->sign_version != 4)
        return setf(err, errlen, -EINVAL, "bad signature version %d (want 1 or 4)",
                    c->sign_version);

    cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return -ENOMEM;
    cl->protocol = c->protocol;
    cl->sign_version = c->protocol == OSS_PROTO_S3 ? 4 : (c->sign_version ? c->sign_version : 4);
    cl->path_style = c->path_style && c->protocol == OSS_PROTO_S3;
    cl->verify_crc64 = c->verify_crc64;
    cl->connect_timeout_ms = c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 3000;
    cl->stall_timeout_ms = c->stall_timeout_ms > 0 ? c->stall_timeout_ms : 10000;
    cl->retry_budget_ms = c->retry_budget_ms > 0 ? c->retry_budget_ms : 30000;
    cl->max_attempts = c->max_attempts > 0 ? c->max_attempts : 10;
    cl->endpoint_down_ms = c->endpoint_down_ms > 0 ? c->endpoint_down_ms : 2000;
    cl->max_conns = c->max_connections > 0 ? c->max_connections : 64;
    pthread_mutex_init(&cl->pool_lock, NULL);
    pthread_cond_init(&cl->pool_cond, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&cl->share_locks[i], NULL);

    cl->bucket = strdup(c->bucket);
    cl->host = strdup(c->host);
    cl->ca_file = c->ca_file ? strdup(c->ca_file) : NULL;
    if (c->region && c->region[0]) {
        cl->region = strdup(c->region);
    } else {
        char hostonly[OSS_MAX_HOST_LEN + 1];
        snprintf(hostonly, sizeof(hostonly), "%s", c->host);
        char *colon = strchr(hostonly, ':');
        if (colon)
            *colon = '\0';
        if (oss_region_from_host(hostonly, region, sizeof(region)) == 0) {
            cl->region = strdup(region);
        } else if (c->protocol == OSS_PROTO_S3) {
            cl->region = strdup("us-east-1");
        } else if (cl->sign_version == 4) {
            rc = setf(err, errlen, -EINVAL,
                      "cannot tell the region from '%s': set g_oss_Region (or use "
                      "g_oss_SignVersion=1)",
                      c->host);
            goto fail;
        } else {
            cl->region = strdup("");
        }
    }
    if (cl->path_style) {
        cl->vhost = strdup(c->host);
    } else {
        size_t n = strlen(c->bucket) + strlen(c->host) + 2;
        cl->vhost = malloc(n);
        if (cl->vhost)
            snprintf(cl->vhost, n, "%s.%s", c->bucket, c->host);
    }
    if (!cl->bucket || !cl->host || !cl->region || !cl->vhost || (c->ca_file && !cl->ca_file)) {
        rc = -ENOMEM;
        goto fail;
    }

    if (c->endpoints && c->endpoints[0]) {
        struct oss_endpoint_url urls[OSS_MAX_ENDPOINTS];
        int n = oss_endpoint_list_parse(c->endpoints, urls, OSS_MAX_ENDPOINTS, err, errlen);
        if (n < 0) {
            rc = n;
            goto fail;
        }
        for (int i = 0; i < n; i++) {
            cl->eps[i].url = urls[i];
            snprintf(cl->eps[i].connect_to, sizeof(cl->eps[i].connect_to),
                     urls[i].ipv6 ? "::[%s]:%d" : "::%s:%d", urls[i].host, urls[i].port);
        }
        cl->neps = n;
    } else {
        char url[OSS_MAX_HOST_LEN + 16];
        snprintf(url, sizeof(url), "https://%s", c->host);
        rc = oss_endpoint_parse(url, strlen(url), &cl->eps[0].url, err, errlen);
        if (rc)
            goto fail;
        cl->eps[0].connect_to[0] = '\0';
        cl->neps = 1;
    }

    rc = oss_cred_src_new(c->sts_file, c->passwd_file, &cl->cred, err, errlen);
    if (rc)
        goto fail;

    cl->share = curl_share_init();
    if (cl->share == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    curl_share_setopt(cl->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(cl->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(cl->share, CURLSHOPT_USERDATA, cl);
    curl_share_setopt(cl->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(cl->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);

    log_info("oss: bucket '%s' on '%s' (%s, %s), %d endpoint(s), first %s://%s:%d", cl->bucket,
             cl->host, cl->protocol == OSS_PROTO_S3 ? "s3" : "oss",
             cl->protocol == OSS_PROTO_S3 ? "sigv4"
             : cl->sign_version == 1      ? "v1"
                                          : "v4",
             cl->neps, cl->eps[0].url.https ? "https" : "http", cl->eps[0].url.host,
             cl->eps[0].url.port);
    *out = cl;
    return 0;
fail:
    oss_client_free(cl);
    return rc;
}

void oss_client_free(struct oss_client *cl)
{
    if (cl == NULL)
        return;
    while (cl->free_conns) {
        struct conn *c = cl->free_conns;
        cl->free_conns = c->next;
        curl_easy_cleanup(c->easy);
        free(c);
    }
    if (cl->share)
        curl_share_cleanup(cl->share);
    oss_cred_src_free(cl->cred);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&cl->share_locks[i]);
    pthread_mutex_destroy(&cl->pool_lock);
    pthread_cond_destroy(&cl->pool_cond);
    free(cl->bucket);
    free(cl->host);
    free(cl->region);
    free(cl->vhost);
    free(cl->ca_file);
    free(cl);
}

void oss_get_stats(struct oss_client *cl, struct oss_stats *st)
{
    st->requests = atomic_load(&cl->st.requests);
    st->retries = atomic_load(&cl->st.retries);
    st->errors = atomic_load(&cl->st.errors);
    st->bytes_received = atomic_load(&cl->st.bytes_received);
    st->failovers = atomic_load(&cl->st.failovers);
    st->cred_reloads = atomic_load(&cl->st.cred_reloads);
    st->crc_mismatches = atomic_load(&cl->st.crc_mismatches);
    st->err_not_found = atomic_load(&cl->st.errk[EK_NOT_FOUND]);
    st->err_http_4xx = atomic_load(&cl->st.errk[EK_HTTP_4XX]);
    st->err_http_5xx = atomic_load(&cl->st.errk[EK_HTTP_5XX]);
    st->err_timeout = atomic_load(&cl->st.errk[EK_TIMEOUT]);
    st->err_connect = atomic_load(&cl->st.errk[EK_CONNECT]);
    st->err_transport = atomic_load(&cl->st.errk[EK_TRANSPORT]);
    histo_snapshot(&cl->st.get_latency, &st->get_latency);
}

/* ---- endpoint health ------------------------------------------------------------------- */

static int endpoint_pick(struct oss_client *cl)
{
    uint64_t now = time_mono_ms();
    int best = 0;
    uint64_t best_until = UINT64_MAX;

    for (int i = 0; i < cl->neps; i++) {
        uint64_t until = atomic_load(&cl->eps[i].down_until_ms);
        if (until <= now)
            return i;
        if (until < best_until) {
            best_until = until;
            best = i;
        }
    }
    return best; /* all down: the one that comes back first */
}

static void endpoint_ok(struct oss_client *cl, int i)
{
    struct endpoint *ep = &cl->eps[i];
    if (atomic_load(&ep->failures) != 0) {
        atomic_store(&ep->failures, 0);
        atomic_store(&ep->down_ms, 0);
        atomic_store(&ep->down_until_ms, 0);
        if (cl->neps > 1)
            log_info("oss: endpoint %s:%d is healthy again", ep->url.host, ep->url.port);
    }
}

static void endpoint_failed(struct oss_client *cl, int i, const char *why)
{
    struct endpoint *ep = &cl->eps[i];
    unsigned f = atomic_fetch_add(&ep->failures, 1) + 1;
    unsigned d = atomic_load(&ep->down_ms);
    d = d == 0 ? (unsigned)cl->endpoint_down_ms : d * 2;
    if (d > ENDPOINT_DOWN_MAX_MS)
        d = ENDPOINT_DOWN_MAX_MS;
    atomic_store(&ep->down_ms, d);
    atomic_store(&ep->down_until_ms, time_mono_ms() + d);
    if (cl->neps > 1 && (f == 1 || log_verbosity >= LOG_LVL_DEBUG))
        log_warn("oss: endpoint %s:%d failed (%s); skipping it for %u ms", ep->url.host,
                 ep->url.port, why, d);
}

/* ---- one attempt ------------------------------------------------------------------------ */

enum op { OP_HEAD, OP_GET, OP_LIST, OP_STAT };

struct xfer {
    struct oss_client *cl;
    CURL *easy;
    enum op op;
    /* response headers */
    long status;
    char etag[OSS_MAX_ETAG_LEN + 1];
    char request_id[OSS_MAX_REQUEST_ID + 1];
    char date[64];
    char last_modified[64];
    char storage_class[32];
    char restore[256];
    char oss_err[MAX_HDR_VALUE];
    bool has_crc64, has_range, has_length;
    uint64_t crc64, content_length, range_start, range_total;
    /* GET body */
    const struct oss_get *g;
    uint64_t cur;  /* next object offset expected into the destination */
    uint64_t end;  /* exclusive end wanted (clipped at the object's size once known) */
    uint64_t skip; /* bytes of a 200 answer to drop before CUR */
    uint64_t crc;  /* over bytes delivered from offset 0 */
    bool crc_on;
    bool body_started;
    int sink_err;
    /* XML bodies: a listing, a stat, or an error */
    struct oss_xml *xml;
    int xml_err;
    size_t xml_bytes;
};

static void xfer_reset_headers(struct xfer *x)
{
    x->status = 0;
    x->etag[0] = x->request_id[0] = x->date[0] = x->last_modified[0] = '\0';
    x->storage_class[0] = x->restore[0] = x->oss_err[0] = '\0';
    x->has_crc64 = x->has_range = x->has_length = false;
}

static void copy_trim(char *dst, size_t dstlen, const char *v, size_t n)
{
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    if (n >= dstlen)
        n = dstlen - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return false;
    *out = v;
    return true;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    char val[MAX_HDR_VALUE];

    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        xfer_reset_headers(x); /* a new response (after 100-continue or a redirect) */
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (colon == NULL)
        return n;
    size_t nl = (size_t)(colon - data);
    copy_trim(val, sizeof(val), colon + 1, n - nl - 1);
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(data, name, nl) == 0)
    if (IS("etag")) {
        copy_trim(x->etag, sizeof(x->etag), val, strlen(val));
    } else if (IS("x-oss-request-id") || IS("x-amz-request-id")) {
        copy_trim(x->request_id, sizeof(x->request_id), val, strlen(val));
    } else if (IS("date")) {
        copy_trim(x->date, sizeof(x->date), val, strlen(val));
    } else if (IS("last-modified")) {
        copy_trim(x->last_modified, sizeof(x->last_modified), val, strlen(val));
    } else if (IS("x-oss-storage-class") || IS("x-amz-storage-class")) {
        copy_trim(x->storage_class, sizeof(x->storage_class), val, strlen(val));
    } else if (IS("x-oss-restore") || IS("x-amz-restore")) {
        copy_trim(x->restore, sizeof(x->restore), val, strlen(val));
    } else if (IS("x-oss-err")) {
        copy_trim(x->oss_err, sizeof(x->oss_err), val, strlen(val));
    } else if (IS("x-oss-hash-crc64ecma")) {
        x->has_crc64 = parse_u64(val, &x->crc64);
    } else if (IS("content-length")) {
        x->has_length = parse_u64(val, &x->content_length);
    } else if (IS("content-range")) {
        /* "bytes a-b/total"; a 416 says "bytes * /total" (no space), which is ignored */
        unsigned long long a, b, t;
        if (sscanf(val, "bytes %llu-%llu/%llu", &a, &b, &t) == 3 && a <= b && b < t) {
            x->has_range = true;
            x->range_start = a;
            x->range_total = t;
        }
    }
#undef IS
    return n;
}

static int xml_feed_bounded(struct xfer *x, const char *data, size_t n, size_t limit)
{
    if (x->xml == NULL || x->xml_err)
        return 0;
    if (x->xml_bytes + n > limit) {
        x->xml_err = -EBADMSG;
        return 0;
    }
    x->xml_bytes += n;
    int rc = oss_xml_feed(x->xml, data, n, false);
    if (rc)
        x->xml_err = rc;
    return 0;
}

static int deliver(struct xfer *x, const char *data, size_t n)
{
    const struct oss_get *g = x->g;

    if (x->skip) {
        size_t s = n < x->skip ? n : (size_t)x->skip;
        x->skip -= s;
        data += s;
        n -= s;
    }
    if (x->cur >= x->end || n == 0)
        return 0; /* beyond what was asked: drop */
    if (n > x->end - x->cur)
        n = (size_t)(x->end - x->cur);
    if (g->buf) {
        memcpy((char *)g->buf + (x->cur - g->offset), data, n);
    } else {
        int rc = g->sink(g->sink_arg, x->cur, data, n);
        if (rc) {
            x->sink_err = rc < 0 ? rc : -EIO;
            return -1;
        }
    }
    if (x->crc_on)
        x->crc = crc64_update(x->crc, data, n);
    x->cur += n;
    atomic_fetch_add(&x->cl->st.bytes_received, n);
    return 0;
}

/* Called once the status and headers are in, before the first body byte (or after the
 * transfer, when there was no body). Returns false when a GET answer is not the range asked. */
static bool body_start(struct xfer *x)
{
    x->body_started = true;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->op == OP_GET && (x->status == 200 || x->status == 206)) {
        /* A 200 to a ranged request carries the whole object: drop bytes up to our offset. */
        uint64_t start = x->status == 206 ? (x->has_range ? x->range_start : x->cur) : 0;
        if (start > x->cur)
            return false;
        x->skip = x->cur - start;
        uint64_t total = x->has_range                        ? x->range_total
                         : x->has_length && x->status == 200 ? x->content_length
                                                             : UINT64_MAX;
        if (total < x->end)
            x->end = total;
        /* The whole object's CRC64 is checked only by a GET that reaches its end: a range
           short of it (a cache's first blocks) needs no pass over its bytes. */
        if (total != UINT64_MAX && x->end < total)
            x->crc_on = false;
    } else if (x->status >= 300) {
        /* An error body replaces whatever the answer was expected to hold (a listing...). */
        oss_xml_free(x->xml);
        x->xml = oss_xml_new(OSS_XML_ERROR);
    }
    return true;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;

    if (!x->body_started && !body_start(x))
        return 0; /* fails the attempt with CURLE_WRITE_ERROR */
    if (x->op == OP_GET && (x->status == 200 || x->status == 206))
        return deliver(x, data, n) == 0 ? n : 0;
    xml_feed_bounded(x, data, n, x->status >= 300 ? OSS_MAX_ERROR_BODY : OSS_MAX_LIST_BODY);
    return n;
}

/* A request being built: what is sent and what the signer sees. */
struct req {
    const char *method;
    const char *key; /* NULL for bucket requests */
    struct oss_kv query[MAX_QUERY];
    size_t nquery;
    struct oss_kv headers[MAX_HEADERS];
    size_t nheaders;
    char range[64];
    const char *if_match;
    const char *if_none_match;
};

static void req_query(struct req *r, const char *k, const char *v)
{
    if (r->nquery < MAX_QUERY)
        r->query[r->nquery++] = (struct oss_kv){k, v};
}

static void req_header(struct req *r, const char *k, const char *v)
{
    if (r->nheaders < MAX_HEADERS)
        r->headers[r->nheaders++] = (struct oss_kv){k, v};
}

static time_t now_corrected(struct oss_client *cl)
{
    return time(NULL) + (time_t)atomic_load(&cl->clock_skew_s);
}

/* Builds the URL: scheme://vhost[:port]/[bucket/]key?query */
static int build_url(struct oss_client *cl, const struct endpoint *ep, const struct req *r,
                     struct buf *url, struct buf *path)
{
    int rc = 0;

    buf_reset(url);
    buf_reset(path);
    rc |= buf_puts(path, "/");
    if (cl->path_style) {
        rc |= buf_puts(path, cl->bucket);
        rc |= buf_puts(path, "/");
    }
    if (r->key)
        rc |= buf_puts(path, r->key);
    rc |= buf_printf(url, "%s://%s", ep->url.https ? "https" : "http", cl->vhost);
    rc |= buf_puts(url, "/");
    if (cl->path_style) {
        rc |= url_encode(url, cl->bucket, strlen(cl->bucket), true);
        rc |= buf_puts(url, "/");
    }
    if (r->key)
        rc |= url_encode(url, r->key, strlen(r->key), true);
    for (size_t i = 0; i < r->nquery; i++) {
        rc |= buf_puts(url, i == 0 ? "?" : "&");
        rc |= url_encode(url, r->query[i].k, strlen(r->query[i].k), false);
        if (r->query[i].v) {
            rc |= buf_puts(url, "=");
            rc |= url_encode(url, r->query[i].v, strlen(r->query[i].v), false);
        }
    }
    return rc ? -E2BIG : 0;
}

struct attempt_out {
    int err; /* 0 or -errno from classification / transport */
    enum oss_err_action action;
    bool transport; /* failed below HTTP (connect, reset, stall, short body) */
    enum errkind kind;
    char code[64];
    char why[160];
};

/* Runs one attempt against endpoint EPI with credentials CRED. */
static void attempt(struct oss_client *cl, int epi, const struct oss_cred *cred, struct req *r,
                    struct xfer *x, struct attempt_out *o)
{
    const struct endpoint *ep = &cl->eps[epi];
    struct buf url, path, auth, hdr;
    struct curl_slist *hl = NULL;
    char date[40];
    struct conn *c;
    CURLcode cc;
    int rc;

    memset(o, 0, sizeof(*o));
    buf_init(&url, MAX_URL_LEN);
    buf_init(&path, MAX_URL_LEN);
    buf_init(&auth, 4096);
    buf_init(&hdr, 2 * MAX_HDR_VALUE);

    /* Headers every request carries, then signing. */
    size_t base_headers = r->nheaders;
    time_t now = now_corrected(cl);
    bool s3 = cl->protocol == OSS_PROTO_S3;
    if (s3 || cl->sign_version == 4)
        time_fmt_iso8601_basic(now, date, sizeof(date));
    else
        time_fmt_rfc1123(now, date, sizeof(date));
    if (s3) {
        req_header(r, "host", cl->vhost);
        req_header(r, "x-amz-date", date);
        req_header(r, "x-amz-content-sha256", "UNSIGNED-PAYLOAD");
        if (cred->security_token[0])
            req_header(r, "x-amz-security-token", cred->security_token);
    } else {
        if (cl->sign_version == 4) {
            req_header(r, "x-oss-date", date);
            req_header(r, "x-oss-content-sha256", "UNSIGNED-PAYLOAD");
        } else {
            req_header(r, "date", date);
        }
        if (cred->security_token[0])
            req_header(r, "x-oss-security-token", cred->security_token);
        if (r->range[0])
            req_header(r, "x-oss-range-behavior", "standard");
    }

    rc = build_url(cl, ep, r, &url, &path);
    if (rc == 0) {
        struct oss_sign_req sr = {
            .method = r->method,
            .bucket = cl->bucket,
            .key = r->key,
            .uri_path = path.data,
            .query = r->query,
            .nquery = r->nquery,
            .headers = r->headers,
            .nheaders = r->nheaders,
            .region = cl->region,
            .service = "s3",
            .now = now,
            .access_key_id = cred->access_key_id,
            .access_key_secret = cred->access_key_secret,
        };
        rc = s3                      ? oss_sign_aws4(&sr, &auth)
             : cl->sign_version == 4 ? oss_sign_v4(&sr, &auth)
                                     : oss_sign_v1(&sr, &auth);
    }
    if (rc) {
        o->err = rc;
        snprintf(o->why, sizeof(o->why), "cannot build or sign the request (%s)", strerror(-rc));
        goto out;
    }

    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].k, "host") == 0)
            continue; /* curl sends Host from the URL */
        buf_reset(&hdr);
        if (buf_printf(&hdr, "%s: %s", r->headers[i].k, r->headers[i].v) == 0)
            hl = curl_slist_append(hl, hdr.data);
    }
    buf_reset(&hdr);
    buf_printf(&hdr, "Authorization: %s", auth.data);
    hl = curl_slist_append(hl, hdr.data);
    hl = curl_slist_append(hl, "Expect:");
    hl = curl_slist_append(hl, "Accept:");
    if (r->range[0]) {
        buf_reset(&hdr);
        buf_printf(&hdr, "Range: %s", r->range);
        hl = curl_slist_append(hl, hdr.data);
    }
    if (r->if_match) {
        buf_reset(&hdr);
        buf_printf(&hdr, "If-Match: %s", r->if_match);
        hl = curl_slist_append(hl, hdr.data);
    }
    if (r->if_none_match) {
        buf_reset(&hdr);
        buf_printf(&hdr, "If-None-Match: %s", r->if_none_match);
        hl = curl_slist_append(hl, hdr.data);
    }

    c = conn_get(cl);
    if (c == NULL) {
        o->err = -ENOMEM;
        goto out;
    }
    CURL *e = c->easy;
    x->easy = e;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url.data);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(e, CURLOPT_SHARE, cl->share);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)CURL_BUFFER_SIZE);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cl->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)((cl->stall_timeout_ms + 999) / 1000));
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    if (cl->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, cl->ca_file);
    struct curl_slist *ct = NULL;
    if (ep->connect_to[0]) {
        ct = curl_slist_append(NULL, ep->connect_to);
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, ct);
    }
    if (strcmp(r->method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);

    atomic_fetch_add(&cl->st.requests, 1);
    if (epi != 0)
        atomic_fetch_add(&cl->st.failovers, 1);
    cc = curl_easy_perform(e);
    if (!x->body_started && cc == CURLE_OK)
        body_start(x);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, NULL);
    curl_slist_free_all(ct);
    x->easy = NULL;
    conn_put(cl, c);

    if (x->sink_err) {
        o->err = x->sink_err;
        o->action = OSS_ERR_FAIL;
        snprintf(o->why, sizeof(o->why), "the receiver refused the data (%s)",
                 strerror(-x->sink_err));
        goto out;
    }
    if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
        cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_UNSUPPORTED_PROTOCOL ||
        cc == CURLE_URL_MALFORMAT) {
        /* Not transient: retrying cannot fix a certificate nobody trusts. */
        o->transport = true;
        o->action = OSS_ERR_FAIL;
        o->err = -EPROTO;
        o->kind = EK_CONNECT;
        snprintf(o->why, sizeof(o->why), "%s", curl_easy_strerror(cc));
        goto out;
    }
    if (cc != CURLE_OK || x->status == 0) {
        o->transport = true;
        o->action = OSS_ERR_RETRY;
        o->err =
            (cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_COULDNT_CONNECT) ? -ETIMEDOUT : -EIO;
        o->kind = cc == CURLE_OPERATION_TIMEDOUT ? EK_TIMEOUT
                  : (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                     cc == CURLE_COULDNT_RESOLVE_PROXY || cc == CURLE_SSL_CONNECT_ERROR)
                      ? EK_CONNECT
                      : EK_TRANSPORT;
        snprintf(o->why, sizeof(o->why), "%s", curl_easy_strerror(cc));
        goto out;
    }
    if (x->status == 304 && r->if_none_match)
        goto out; /* not modified: the answer the caller asked for, not an error */
    if (x->status >= 300) {
        const char *code = NULL;
        if (x->xml && x->xml_err == 0 && oss_xml_feed(x->xml, "", 0, true) == 0)
            code = oss_xml_error_code(x->xml);
        if ((code == NULL || code[0] == '\0') && x->oss_err[0]) {
            /* HEAD errors: the error XML, base64, in x-oss-err */
            unsigned char dec[MAX_HDR_VALUE];
            int dn =
                EVP_DecodeBlock(dec, (const unsigned char *)x->oss_err, (int)strlen(x->oss_err));
            if (dn > 0) {
                oss_xml_free(x->xml);
                x->xml = oss_xml_new(OSS_XML_ERROR);
                while (dn > 0 && dec[dn - 1] == '\0')
                    dn--; /* base64 padding decodes to NULs */
                if (x->xml && oss_xml_feed(x->xml, (const char *)dec, (size_t)dn, true) == 0)
                    code = oss_xml_error_code(x->xml);
            }
        }
        struct oss_err_class ec = oss_err_classify(x->status, code);
        o->err = ec.err;
        o->kind = x->status == 404 ? EK_NOT_FOUND : x->status < 500 ? EK_HTTP_4XX : EK_HTTP_5XX;
        o->action = ec.action;
        snprintf(o->code, sizeof(o->code), "%s", code ? code : "");
        snprintf(o->why, sizeof(o->why), "HTTP %ld %s", x->status, code ? code : "");
        goto out;
    }
    if (x->op == OP_GET) {
        if (x->cur < x->end && x->end != UINT64_MAX) {
            o->transport = true;
            o->action = OSS_ERR_RETRY;
            o->err = -EIO;
            o->kind = EK_TRANSPORT;
            snprintf(o->why, sizeof(o->why), "short body: %" PRIu64 " bytes missing",
                     x->end - x->cur);
        }
    } else if (x->op == OP_LIST || x->op == OP_STAT) {
        rc = x->xml_err ? x->xml_err : (x->xml ? oss_xml_feed(x->xml, "", 0, true) : -EBADMSG);
        if (rc) {
            /* A damaged answer is worth another try: it is most often a cut connection. */
            o->transport = true;
            o->action = OSS_ERR_RETRY;
            o->err = -EIO;
            o->kind = EK_TRANSPORT;
            snprintf(o->why, sizeof(o->why), "bad XML answer: %s",
                     x->xml ? oss_xml_error(x->xml) : "no body");
        }
    }
out:
    r->nheaders = base_headers;
    curl_slist_free_all(hl);
    buf_release(&url);
    buf_release(&path);
    buf_release(&auth);
    buf_release(&hdr);
}

/* ---- the retry loop ---------------------------------------------------------------------- */

static _Thread_local char last_error[512];

const char *oss_last_error(void)
{
    return last_error;
}

static uint64_t jitter_ms(unsigned attempt_no)
{
    static _Thread_local uint64_t s;
    if (s == 0)
        s = time_mono_ns() ^ ((uint64_t)pthread_self() << 1) ^ 0x9E3779B97F4A7C15ULL;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    uint64_t cap = RETRY_BASE_MS;
    for (unsigned i = 0; i < attempt_no && cap < RETRY_CAP_MS; i++)
        cap *= 2;
    if (cap > RETRY_CAP_MS)
        cap = RETRY_CAP_MS;
    return s % (cap + 1);
}

static void fix_clock(struct oss_client *cl, struct xfer *x)
{
    time_t server;
    const char *st = x->xml ? oss_xml_error_field(x->xml, "ServerTime") : NULL;
    if ((st && st[0] && time_parse_http(st, &server) == 0) ||
        (x->date[0] && time_parse_http(x->date, &server) == 0)) {
        int64_t skew = (int64_t)(server - time(NULL));
        atomic_store(&cl->clock_skew_s, skew);
        log_warn("oss: clock differs from the server's by %" PRId64 " s; correcting", skew);
    }
}

/* The token of CRED was refused as expired and the file still holds it: waits, until DEADLINE,
 * for a renewed file (a credential agent may lag behind the expiry). Returns what
 * oss_cred_reload last did: 1 once the credentials differ from CRED's. */
static int await_renewed_cred(struct oss_client *cl, const struct oss_cred *cred, const char *code,
                              uint64_t deadline)
{
    uint64_t gen = cred->generation, warned = atomic_load(&cl->renew_warned), now = time_mono_ms();
    if (warned < gen && atomic_compare_exchange_strong(&cl->renew_warned, &warned, gen))
        log_warn("oss: the store refused the token of %s as expired (%s); waiting up to %" PRIu64
                 " ms for the file to be renewed",
                 oss_cred_label(cl->cred), code, deadline > now ? deadline - now : 0);
    int rr = 0;
    while (rr != 1 && time_mono_ms() + CRED_POLL_MS < deadline) {
        usleep(CRED_POLL_MS * 1000);
        rr = oss_cred_reload(cl->cred, gen);
    }
    return rr;
}

typedef void (*xfer_prep_fn)(struct xfer *x, struct req *r, void *arg);

/* Runs attempts until success or a final error. PREP (re)initialises X and R before each
 * attempt (a resumed GET moves its range). Returns 0 or -errno; X holds the last answer. */
static int run(struct oss_client *cl, const char *what, struct xfer *x, struct req *r,
               xfer_prep_fn prep, void *prep_arg)
{
    uint64_t deadline = time_mono_ms() + (uint64_t)cl->retry_budget_ms;
    bool cred_reloaded = false, cred_stale = false;
    int clock_fixes = 0;
    struct oss_cred cred;
    struct attempt_out o;

    last_error[0] = '\0';
    oss_cred_get(cl->cred, &cred);
    for (unsigned n = 0;; n++) {
        int epi = endpoint_pick(cl);
        prep(x, r, prep_arg);
        attempt(cl, epi, &cred, r, x, &o);
        if (o.err != 0 && o.kind != EK_NONE)
            atomic_fetch_add(&cl->st.errk[o.kind], 1);
        if (o.err == 0) {
            endpoint_ok(cl, epi);
            explicit_bzero(&cred, sizeof(cred));
            return 0;
        }
        if (o.transport || (x->status >= 500 && o.action == OSS_ERR_RETRY))
            endpoint_failed(cl, epi, o.why);
        else if (x->status > 0)
            endpoint_ok(cl, epi); /* it answered; the answer is the problem */

        bool again = false;
        uint64_t wait = 0;
        switch (o.action) {
        case OSS_ERR_RETRY:
            again = true;
            wait = jitter_ms(n);
            break;
        case OSS_ERR_RELOAD_CRED:
        case OSS_ERR_RENEW_CRED:
            /* A refused key or signature: the file is re-read once. An expired token: until
               the file holds another, within the retry budget. (The reload itself is logged by
               oss_cred.c, once however many calls notice it.) */
            if (!cred_reloaded || o.action == OSS_ERR_RENEW_CRED) {
                cred_reloaded = true;
                int rr = oss_cred_reload(cl->cred, cred.generation);
                if (rr != 1 && o.action == OSS_ERR_RENEW_CRED && oss_cred_from_file(cl->cred))
                    rr = await_renewed_cred(cl, &cred, o.code, deadline);
                if (rr == 1) {
                    atomic_fetch_add(&cl->st.cred_reloads, 1);
                    log_debug("oss: %s: credentials reloaded after %s", what,
                              o.code[0] ? o.code : "403");
                    oss_cred_get(cl->cred, &cred);
                    again = true;
                } else {
                    cred_stale = o.action == OSS_ERR_RENEW_CRED && oss_cred_from_file(cl->cred);
                }
            }
            break;
        case OSS_ERR_FIX_CLOCK:
            if (clock_fixes++ < 2) {
                fix_clock(cl, x);
                again = true;
            }
            break;
        case OSS_ERR_FAIL:
            break;
        }
        if (again && n + 1 < (unsigned)cl->max_attempts && time_mono_ms() + wait < deadline) {
            atomic_fetch_add(&cl->st.retries, 1);
            log_debug("oss: %s: %s (request id %s); retry %u in %" PRIu64 " ms", what, o.why,
                      x->request_id[0] ? x->request_id : "-", n + 1, wait);
            if (wait)
                usleep((useconds_t)(wait * 1000));
            continue;
        }
        atomic_fetch_add(&cl->st.errors, 1);
        snprintf(last_error, sizeof(last_error), "%.160s (%.200s:%d%s%.95s)", o.why,
                 cl->eps[epi].url.host, cl->eps[epi].url.port,
                 x->request_id[0] ? ", request id " : "", x->request_id);
        if (o.err == -ENOENT || o.err == -ECANCELED) /* normal answers: a miss, a caller's abort */
            log_debug("oss: %s: %s", what, o.why);
        else
            log_warn("oss: %s: %s (request id %s)%s", what, o.why,
                     x->request_id[0] ? x->request_id : "-",
                     again        ? "; retry budget spent"
                     : cred_stale ? "; the credentials were not renewed within the retry budget"
                                  : "");
        explicit_bzero(&cred, sizeof(cred));
        if (again && x->status == 0)
            return -ETIMEDOUT; /* budget spent and the endpoints never answered */
        return o.err;
    }
}

static void xfer_init(struct xfer *x, struct oss_client *cl, enum op op)
{
    memset(x, 0, sizeof(*x));
    x->cl = cl;
    x->op = op;
}

static void meta_from_xfer(const struct xfer *x, struct oss_object_meta *m)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->etag, sizeof(m->etag), "%s", x->etag);
    if (x->has_range)
        m->size = x->range_total;
    else if (x->has_length)
        m->size = x->content_length;
    time_t t;
    if (x->last_modified[0] && time_parse_http(x->last_modified, &t) == 0)
        m->mtime = t;
    m->storage_class = oss_storage_class_parse(x->storage_class);
    m->restored = strstr(x->restore, "ongoing-request=\"false\"") != NULL;
    m->has_crc64 = x->has_crc64;
    m->crc64 = x->crc64;
}

/* ---- HeadObject ------------------------------------------------------------------------ */

static void prep_plain(struct xfer *x, struct req *r, void *arg)
{
    enum op op = x->op;
    struct oss_client *cl = x->cl;
    oss_xml_free(x->xml);
    xfer_init(x, cl, op);
    if (op == OP_LIST)
        x->xml = oss_xml_new(OSS_XML_LIST);
    else if (op == OP_STAT)
        x->xml = oss_xml_new(OSS_XML_STAT);
}

static int key_ok(const char *key)
{
    if (key == NULL || key[0] == '\0')
        return -EINVAL;
    if (strlen(key) > OSS_MAX_KEY_LEN)
        return -ENAMETOOLONG;
    return 0;
}

int oss_head(struct oss_client *cl, const char *key, struct oss_object_meta *meta)
{
    struct xfer x;
    struct req r = {.method = "HEAD", .key = key};
    int rc = key_ok(key);
    if (rc)
        return rc;
    xfer_init(&x, cl, OP_HEAD);
    rc = run(cl, "HEAD", &x, &r, prep_plain, NULL);
    if (rc == 0)
        meta_from_xfer(&x, meta);
    oss_xml_free(x.xml);
    return rc;
}

/* ---- GetObject ------------------------------------------------------------------------- */

struct get_state {
    const struct oss_get *g;
    bool started; /* an attempt ran: X holds its outcome */
    uint64_t cur; /* resume point */
    uint64_t end; /* exclusive, or UINT64_MAX */
    uint64_t crc;
    bool crc_on;
    char etag[OSS_MAX_ETAG_LEN + 1]; /* pinned by the first answer */
};

static void prep_get(struct xfer *x, struct req *r, void *arg)
{
    struct get_state *gs = arg;
    struct oss_client *cl = x->cl;

    if (gs->started) {
        /* Carry forward what the last attempt delivered: the next one resumes there. */
        gs->cur = x->cur;
        gs->crc = x->crc;
        gs->crc_on = x->crc_on;
        gs->end = x->end;
        if (gs->etag[0] == '\0' && x->etag[0] && (x->status == 200 || x->status == 206))
            snprintf(gs->etag, sizeof(gs->etag), "%s", x->etag);
    }
    gs->started = true;
    oss_xml_free(x->xml);
    xfer_init(x, cl, OP_GET);
    x->g = gs->g;
    x->cur = gs->cur;
    x->end = gs->end;
    x->crc = gs->crc;
    x->crc_on = gs->crc_on;
    r->if_match = gs->etag[0] ? gs->etag : gs->g->if_match;
    /* A resumed body continues the version the first answer began: no second question. */
    r->if_none_match = gs->etag[0] ? NULL : gs->g->if_none_match;
    if (gs->end != UINT64_MAX)
        snprintf(r->range, sizeof(r->range), "bytes=%" PRIu64 "-%" PRIu64, gs->cur, gs->end - 1);
    else if (gs->cur != 0)
        snprintf(r->range, sizeof(r->range), "bytes=%" PRIu64 "-", gs->cur);
    else
        r->range[0] = '\0'; /* the whole object: no Range, so an empty object reads fine */
}

int oss_get(struct oss_client *cl, const struct oss_get *g, struct oss_get_result *res)
{
    struct xfer x;
    struct req r = {.method = "GET", .key = g->key};
    struct get_state gs;
    int rc = key_ok(g->key);

    if (rc)
        return rc;
    if ((g->buf == NULL && g->sink == NULL) || (g->buf && g->length == UINT64_MAX))
        return -EINVAL;
    if (res)
        memset(res, 0, sizeof(*res));
    if (g->length == 0)
        return 0;
    uint64_t t0 = time_mono_ns();
    xfer_init(&x, cl, OP_GET);
    for (int crc_tries = 0;; crc_tries++) {
        gs = (struct get_state){
            .g = g,
            .cur = g->offset,
            .end = g->length > UINT64_MAX - g->offset ? UINT64_MAX : g->offset + g->length,
            .crc_on = cl->verify_crc64 && g->offset == 0,
        };
        rc = run(cl, "GET", &x, &r, prep_get, &gs);
        if (rc == 0 && x.status == 304)
            break;
        if (rc == -EINVAL && x.status == 416 && g->offset == 0) {
            /* A range on an empty object is unsatisfiable: it reads as nothing. */
            struct oss_object_meta m;
            rc = oss_head(cl, g->key, &m);
            if (rc == 0 && m.size == 0) {
                if (res)
                    res->meta = m;
                oss_xml_free(x.xml);
                return 0;
            }
            rc = rc ? rc : -EINVAL;
        }
        if (rc)
            break;
        uint64_t size = x.has_range ? x.range_total : x.has_length ? x.content_length : 0;
        if (x.crc_on && x.has_crc64 && x.cur == size && x.crc != x.crc64) {
            /* Bytes changed on the way: read again, as for any transient fault, within the
               attempts and the retry budget (a CRC that never matches ends there: EIO). */
            uint64_t wait = jitter_ms((unsigned)crc_tries);
            bool again = crc_tries + 1 < cl->max_attempts &&
                         (time_mono_ns() - t0) / 1000000 + wait < (uint64_t)cl->retry_budget_ms;
            atomic_fetch_add(&cl->st.crc_mismatches, 1);
            log_warn("oss: GET '%s': CRC64 mismatch (got %" PRIu64 ", object says %" PRIu64
                     ", request id %s)%s",
                     g->key, x.crc, x.crc64, x.request_id,
                     again ? "; reading again" : "; retry budget spent");
            rc = -EIO;
            if (again) {
                atomic_fetch_add(&cl->st.retries, 1);
                usleep((useconds_t)(wait * 1000));
                continue;
            }
        }
        break;
    }
    if (rc == 0)
        histo_observe(&cl->st.get_latency, (time_mono_ns() - t0) / 1000);
    if (rc == 0 && res) {
        meta_from_xfer(&x, &res->meta);
        res->not_modified = x.status == 304;
        if (res->not_modified)
            res->meta.size = 0; /* a 304's Content-Length, if any, is not the object's */
        else
            res->bytes = x.cur - g->offset;
    }
    oss_xml_free(x.xml);
    return rc;
}

/* ---- ListObjectsV2 --------------------------------------------------------------------- */

int oss_list_page(struct oss_client *cl, struct oss_list *l, oss_list_fn fn, void *arg)
{
    struct xfer x;
    struct req r = {.method = "GET"};
    char maxkeys[16];
    int rc;

    if (l->max_keys > 1000)
        return -EINVAL;
    snprintf(maxkeys, sizeof(maxkeys), "%u", l->max_keys ? l->max_keys : 1000);
    req_query(&r, "list-type", "2");
    /* An empty prefix is not sent: signers disagree on empty values (OSS-NOTES). */
    if (l->prefix && l->prefix[0])
        req_query(&r, "prefix", l->prefix);
    if (l->delimiter && l->delimiter[0])
        req_query(&r, "delimiter", l->delimiter);
    req_query(&r, "max-keys", maxkeys);
    if (l->token[0])
        req_query(&r, "continuation-token", l->token);
    if (l->start_after && l->start_after[0])
        req_query(&r, "start-after", l->start_after);
    req_query(&r, "encoding-type", "url");

    xfer_init(&x, cl, OP_LIST);
    rc = run(cl, "LIST", &x, &r, prep_plain, NULL);
    if (rc == 0) {
        size_t n = oss_xml_list_count(x.xml);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = fn(arg, oss_xml_list_entry(x.xml, i));
        const char *tok = oss_xml_list_truncated(x.xml) ? oss_xml_list_next_token(x.xml) : "";
        if (strlen(tok) > OSS_MAX_TOKEN_LEN) {
            rc = rc ? rc : -EBADMSG;
            tok = "";
        }
        if (rc == 0 && oss_xml_list_truncated(x.xml) && tok[0] == '\0')
            rc = -EBADMSG; /* truncated without a way on */
        snprintf(l->token, sizeof(l->token), "%s", tok);
    }
    oss_xml_free(x.xml);
    return rc;
}

/* ---- GetBucketStat --------------------------------------------------------------------- */

int oss_bucket_stat(struct oss_client *cl, struct oss_bucket_stat *st)
{
    struct xfer x;
    struct req r = {.method = "GET"};
    int rc;

    if (cl->protocol == OSS_PROTO_S3)
        return -ENOTSUP;
    req_query(&r, "stat", NULL);
    xfer_init(&x, cl, OP_STAT);
    rc = run(cl, "GetBucketStat", &x, &r, prep_plain, NULL);
    if (rc == 0)
        oss_xml_stat(x.xml, st);
    oss_xml_free(x.xml);
    return rc;
}

/* ---- Prometheus ------------------------------------------------------------------------ */

static void first_err(int *rc, int r)
{
    if (r && *rc == 0)
        *rc = r;
}

int oss_write_metrics(struct oss_client *cl, struct buf *out)
{
    static const char *const kinds[] = {"not_found", "http_4xx",  "http_5xx", "timeout",
                                        "connect",   "transport", "crc"};
    struct oss_stats st;
    int rc = 0;

    oss_get_stats(cl, &st);
    const uint64_t counts[] = {st.err_not_found, st.err_http_4xx,  st.err_http_5xx,  st.err_timeout,
                               st.err_connect,   st.err_transport, st.crc_mismatches};
    first_err(&rc, prom_counter(out, "efc_oss_requests_total",
                                "Requests sent to the object store (every attempt).", st.requests));
    first_err(&rc, prom_counter(out, "efc_oss_retries_total",
                                "Attempts retried after a transient failure.", st.retries));
    first_err(&rc,
              prom_counter(out, "efc_oss_failed_calls_total",
                           "Calls that failed after their retries (404s included).", st.errors));
    first_err(&rc, prom_counter(out, "efc_oss_received_bytes_total",
                                "Body bytes received from the object store.", st.bytes_received));
    first_err(&rc, prom_counter(out, "efc_oss_failovers_total",
                                "Attempts sent to another endpoint than the first.", st.failovers));
    first_err(&rc, prom_counter(out, "efc_oss_credential_reloads_total",
                                "Credential reloads after the store refused a signature.",
                                st.cred_reloads));
    first_err(&rc, prom_header(out, "efc_oss_errors_total",
                               "Failed attempts by kind, each retry counting (crc: whole-object "
                               "reads whose CRC64 did not match).",
                               "counter"));
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        char l[32];
        snprintf(l, sizeof(l), "kind=\"%s\"", kinds[i]);
        first_err(&rc, prom_sample_u64(out, "efc_oss_errors_total", l, counts[i]));
    }
    first_err(&rc, prom_header(
                       out, "efc_oss_get_duration_seconds",
                       "Duration of successful object reads (GET), from the call to the last byte, "
                       "retries included.",
                       "histogram"));
    first_err(&rc,
              histo_snap_write_prom(&st.get_latency, "efc_oss_get_duration_seconds", NULL, out));
    return rc;
}
