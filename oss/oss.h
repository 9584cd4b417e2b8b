/* oss/oss.h - the object-store client: everything efc needs to read a bucket over OSS's own API
 * (signature V1 or V4) or an S3-compatible API (AWS SigV4).
 *
 * One struct oss_client per mounted bucket. It is thread-safe: any number of threads may call the
 * operations below at once; at most config.max_connections requests are on the wire together and
 * the rest wait for a connection. Connections are pooled and reused across threads.
 *
 * Every call returns 0 or -errno. The mapping from HTTP status and OSS error code to errno lives in
 * one place (oss_err.c); the common results are:
 *   -ENOENT      NoSuchKey, NoSuchBucket (404)
 *   -EACCES      AccessDenied, InvalidObjectState (Archive object not restored), bad signature or
 *                key id that a credential reload did not cure
 *   -ESTALE      If-Match failed: the object changed since its ETag was learnt (412)
 *   -EINVAL      InvalidRange (416) or a bad argument
 *   -ETIMEDOUT   the retry budget ran out while the endpoints were slow or unreachable
 *   -EIO         anything else that did not recover within the retry budget (a CRC mismatch too)
 *   -ENOTSUP     the store does not have the operation (GetBucketStat on S3)
 *   -EPROTO      TLS failed in a way retrying cannot cure (an untrusted certificate)
 * Transient failures (5xx, 429, 408, resets, stalls, short bodies, RequestTimeTooSkewed) are
 * retried with jittered exponential back-off inside each call, moving to the next endpoint of the
 * failover list, until config.retry_budget_ms is spent.
 */
#ifndef EFC_OSS_H
#define EFC_OSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/histo.h"

struct oss_client;
struct buf;

enum oss_protocol {
    OSS_PROTO_OSS = 0, /* Alibaba OSS API, signature V1 or V4 */
    OSS_PROTO_S3 = 1,  /* S3 API, AWS SigV4 */
};

/* Hard limits on what the client accepts from a server or a caller. */
#define OSS_MAX_KEY_LEN      1023 /* OSS and S3 both cap object keys at 1023 bytes */
#define OSS_MAX_ETAG_LEN     127
#define OSS_MAX_TOKEN_LEN    4095 /* continuation token */
#define OSS_MAX_LIST_BODY    (16u << 20)
#define OSS_MAX_ERROR_BODY   (64u << 10)
#define OSS_MAX_ENDPOINTS    8
#define OSS_MAX_REQUEST_ID   95

struct oss_config {
    enum oss_protocol protocol;
    int sign_version;      /* OSS only: 1 or 4 (the default, when 0) */
    const char *bucket;    /* required */
    const char *host;      /* the service host the bucket lives on, e.g. oss-cn-hangzhou.aliyuncs.com;
                              requests name "<bucket>.<host>" in Host (or "<host>" with path_style) */
    const char *region;    /* NULL: derived from host ("oss-<region>[-internal].aliyuncs.com") */
    /* Endpoints separated by ',' or '|', tried in order (primary first): "http://127.0.0.1:9000", ...
       Each is where requests are sent; Host still names the bucket's domain. NULL: "https://<host>". */
    const char *endpoints;
    bool path_style;       /* S3 only: http://host/bucket/key */
    /* Credentials, first that is set wins: sts_file, passwd_file, else the environment
       (OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_SESSION_TOKEN). */
    const char *sts_file;
    const char *passwd_file;
    const char *ca_file;          /* NULL: the system bundle */
    int max_connections;          /* parallel requests on the wire; 0: 64 */
    int connect_timeout_ms;       /* 0: 3000 */
    int stall_timeout_ms;         /* no byte for this long aborts the attempt; 0: 10000 */
    int retry_budget_ms;          /* total time one call may spend retrying; 0: 30000 */
    int max_attempts;             /* per call; 0: 10 */
    int endpoint_down_ms;         /* how long a failed endpoint is skipped at first; 0: 2000 */
    bool verify_crc64;            /* check x-oss-hash-crc64ecma on whole-object reads; default on
                                     via oss_config_init() */
};

/* Fills C with the defaults above (verify_crc64 on, everything else 0/NULL). */
void oss_config_init(struct oss_config *c);

/* Creates a client. It loads the credentials and checks the endpoints now, so a bad credentials
 * file or URL fails here; ERR (if not NULL) receives a one-line reason for humans.
 * Returns 0 and sets *OUT, or -errno. Nothing is sent on the network. */
int oss_client_new(const struct oss_config *c, struct oss_client **out, char *err, size_t errlen);
void oss_client_free(struct oss_client *cl);

enum oss_storage_class {
    OSS_SC_STANDARD = 0,
    OSS_SC_IA,
    OSS_SC_ARCHIVE,
    OSS_SC_COLD_ARCHIVE,
    OSS_SC_DEEP_COLD_ARCHIVE,
    OSS_SC_OTHER,
};

/* Whether an object of this class can be read without a restore. */
static inline bool oss_storage_class_readable(enum oss_storage_class sc)
{
    return sc == OSS_SC_STANDARD || sc == OSS_SC_IA || sc == OSS_SC_OTHER;
}
enum oss_storage_class oss_storage_class_parse(const char *s);

struct oss_object_meta {
    uint64_t size;
    time_t mtime;                        /* Last-Modified */
    char etag[OSS_MAX_ETAG_LEN + 1];     /* as sent, quotes included */
    enum oss_storage_class storage_class;
    bool restored;                       /* x-oss-restore says ongoing-request="false" */
    bool has_crc64;
    uint64_t crc64;                      /* x-oss-hash-crc64ecma */
};

/* HeadObject. Returns 0, -ENOENT, -EACCES, ... */
int oss_head(struct oss_client *cl, const char *key, struct oss_object_meta *meta);

/* Receives body bytes in order; returns 0 to go on or -errno to abort the call with that error. */
typedef int (*oss_sink_fn)(void *arg, uint64_t offset, const void *data, size_t len);

struct oss_get {
    const char *key;
    uint64_t offset;
    uint64_t length;     /* bytes wanted from offset; UINT64_MAX: to the end of the object */
    const char *if_match; /* ETag (quotes included) the bytes must come from, or NULL */
    /* ETag (quotes included) the caller already holds, or NULL: when the object still has it,
       the store answers 304 and the call returns 0 with result.not_modified set, no byte
       delivered (a revalidation that costs one round trip and brings the new bytes when the
       object changed). */
    const char *if_none_match;
    /* Where the bytes go: into BUF (which must hold LENGTH bytes; LENGTH must be finite), or
       to SINK when BUF is NULL. */
    void *buf;
    oss_sink_fn sink;
    void *sink_arg;
};

struct oss_get_result {
    uint64_t bytes;                /* bytes delivered; equals the range asked for, clipped at EOF */
    struct oss_object_meta meta;   /* from the response headers */
    /* If-None-Match matched (304): nothing was delivered, and META holds only what a 304 carries
       (ETag, Last-Modified; size 0). */
    bool not_modified;
};

/* Ranged GetObject (sends x-oss-range-behavior: standard). A body cut short is resumed from where
 * it stopped, pinned to the first response's ETag, so the caller never sees a short read except
 * at the end of the object. A range starting at or past the end answers -EINVAL unless offset is 0
 * (a zero-byte object reads as 0 bytes: the store answers 416 to any range of it, and a HEAD then
 * gives its metadata, a second request). RES->meta.size is the object's size (Content-Range's
 * total), so a GET of the first bytes also answers what a HEAD would. When the whole object was read and the server sent its
 * CRC64, the bytes are checked against it (-EIO on mismatch). RES may be NULL. */
int oss_get(struct oss_client *cl, const struct oss_get *g, struct oss_get_result *res);

struct oss_list_entry {
    const char *key;      /* decoded; for a common prefix, the prefix (ends in the delimiter) */
    bool is_prefix;
    uint64_t size;
    time_t mtime;
    const char *etag;
    enum oss_storage_class storage_class;
};

/* Called once per entry of a page: first every object (Contents) in key order, then every common
 * prefix in key order, as OSS and S3 send them; merge the two if you need one key order. Return 0
 * to go on, or -errno to stop (the call then returns that value). Strings live until it returns. */
typedef int (*oss_list_fn)(void *arg, const struct oss_list_entry *e);

struct oss_list {
    const char *prefix;       /* "" for the whole bucket */
    const char *delimiter;    /* "/" or NULL */
    const char *start_after;  /* NULL or "" for none */
    unsigned max_keys;        /* 1..1000; 0: 1000 */
    /* In: the continuation token of the page to fetch ("" or NULL for the first).
       Out: set by oss_list_page() to the next page's token, "" when the listing is complete. */
    char token[OSS_MAX_TOKEN_LEN + 1];
};

/* ListObjectsV2 (encoding-type=url), one page. Entries are delivered only once the page has
 * arrived and parsed whole, so a retried page never repeats an entry. Returns 0 or -errno. */
int oss_list_page(struct oss_client *cl, struct oss_list *l, oss_list_fn fn, void *arg);

struct oss_bucket_stat {
    uint64_t storage;      /* bytes */
    uint64_t object_count;
};

/* GetBucketStat. -ENOTSUP on S3. */
int oss_bucket_stat(struct oss_client *cl, struct oss_bucket_stat *st);

/* What the last failed call of this thread ran into, for humans: e.g. "HTTP 403
 * SignatureDoesNotMatch (request id 5C3D...)" or "Couldn't connect to server (127.0.0.1:9000)".
 * "" if it has not failed. Valid until this thread's next call. */
const char *oss_last_error(void);

struct oss_stats {
    uint64_t requests;        /* attempts sent */
    uint64_t retries;
    uint64_t errors;          /* calls that failed */
    uint64_t bytes_received;  /* body bytes */
    uint64_t failovers;       /* attempts sent to other than the first endpoint */
    uint64_t cred_reloads;
    uint64_t crc_mismatches;  /* whole-object reads whose CRC64 did not match (each re-read too) */
    /* Failed attempts by kind; every attempt counts, retried or not, so one call that retried
       through three 503s adds 3 to err_http_5xx. */
    uint64_t err_not_found;   /* HTTP 404 */
    uint64_t err_http_4xx;    /* other HTTP errors below 500 (403, 412, 416, 429, a rare 3xx) */
    uint64_t err_http_5xx;
    uint64_t err_timeout;     /* no byte for stall_timeout_ms, or the connect timed out */
    uint64_t err_connect;     /* could not resolve or connect, TLS handshake or certificate */
    uint64_t err_transport;   /* reset, short body, damaged answer: after the connection was up */
    /* Latency of successful oss_get calls, from the call to the last byte delivered into the
       caller's buffer or sink, retries, resumptions and CRC re-reads included. */
    struct histo_snap get_latency;
};
void oss_get_stats(struct oss_client *cl, struct oss_stats *st);

/* Appends the client's Prometheus lines to OUT: efc_oss_requests_total, efc_oss_retries_total,
 * efc_oss_failed_calls_total, efc_oss_received_bytes_total, efc_oss_failovers_total,
 * efc_oss_credential_reloads_total, efc_oss_errors_total{kind="not_found|http_4xx|http_5xx|
 * timeout|connect|transport|crc"} and the histogram efc_oss_get_duration_seconds.
 * Returns 0 or the buffer's error. */
int oss_write_metrics(struct oss_client *cl, struct buf *out);

#endif
