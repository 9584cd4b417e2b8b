/* mgmt/mgmt.h - the management HTTP server of a mount (g_server_Port, g_server_BindAddr).
 *
 * Endpoints (the seed's "Cache operations", "Monitor cache performance", "Manage the directory
 * cache" and "Data consistency" sections give their parameters and JSON shapes):
 *
 *   /v1/warmup/load?target_path=P[,P...][&pattern=RE]
 *   /v1/warmup/stat?target_path=P[,P...][&preceding_time=S]     (S default 86400, 0: any age)
 *   /v1/warmup/cancel?target_path=P[,P...]
 *   /v1/tier             the ten tier_* counters, integers
 *   /v1/tier/clear       zeroes them
 *   /v1/action/clear_readdir_cache
 *   /v1/action/clear_metadata_cache
 *   /v1/cluster          (ours) the distributed cache as this node sees it
 *   /v1/action/reload_rootlist  (ours) re-read the rootlist now
 *   /metrics             Prometheus text format (version 0.0.4)
 *
 * Methods: GET. HEAD too on the endpoints that change nothing (stat, /v1/tier, /v1/cluster,
 * /metrics); the others answer HEAD with 405, as a HEAD must not start a warm-up, clear a cache
 * or re-read the rootlist.
 *
 * Every /v1 answer is a JSON object, keys in this order:
 *   {"ErrorCode": int, "ErrorMessage": str, "Results": [...]}
 * ErrorCode is 0 or a positive errno value (EINVAL 22 for a bad parameter, ENOENT 2 for no such
 * endpoint or task, ENOTSUP 95 for a part the mount does not have, ...). The top level says
 * "Request processed" when the request itself was well-formed; each result then carries its
 * own outcome: {"ErrorCode", "ErrorMessage", "Location", "Path", ...}, where Location is
 * "<bind addr>:<port>" ("[::1]:17871" for IPv6). One result per comma-separated target_path
 * ("" is the mount's root; "target_path=" asks for the root alone):
 *   load    {ErrorCode, ErrorMessage, Location, Path}: "The warm up (P) is processing in the
 *           background. Use the 'stat' command to get status.", or the reason the path or the
 *           pattern was refused.
 *   stat    {ErrorCode, ErrorMessage, Location, Path, TaskInfos: [{CompletedSize, ErrorCode,
 *           ErrorMessage, IsDir, Path, Pattern, Status, SubmitTime, TotalSize}]}, newest first,
 *           at most MGMT_MAX_TASKINFOS; SubmitTime in microseconds since the epoch; a task's
 *           ErrorCode is EIO (5) when its Status is "failed". A path with no task in the window
 *           answers ErrorCode ENOENT and an empty TaskInfos.
 *   cancel  {ErrorCode, ErrorMessage, Location, Path}
 * /v1/tier answers one result, flat:
 *   {"ErrorCode":0, "ErrorMessage":"", "Location":"127.0.0.1:17871", "tier_read":N,
 *    "tier_read_bytes":N, "tier_read_hit":N, "tier_read_hit_bytes":N, "tier_read_miss":N,
 *    "tier_read_miss_bytes":N, "tier_direct_read":N, "tier_direct_read_bytes":N,
 *    "tier_root_read_source":N, "tier_root_read_source_bytes":N}
 * /v1/tier/clear and /v1/action/... answer one result {ErrorCode, ErrorMessage, Location}
 * (reload_rootlist's ErrorMessage sums up the membership it loaded).
 * /v1/cluster answers one result: {ErrorCode, ErrorMessage, Location, Rootlist (its path),
 *   RootlistHash (16 hex digits), LoadedTime (Unix seconds), Self ("<id>:<ip>:<port>", "" when
 *   this node is not listed), Role ("root+agent", "root", "agent"), Authentication (bool),
 *   MemberCount, MismatchedPeers, Members: [{Name, Id, Address, Self, Role (as above, "unknown"
 *   before the peer was heard from), State ("self", "up", "down", "retrying", "unknown"),
 *   RootlistHash (what the peer reported, "" before it did), RootlistMatches, LatencyMs,
 *   Requests, Errors, Bytes, LastError}]}; 501 when the mount is not distributed.
 *
 * HTTP status: 200 when the request was well-formed (a result may still carry an error); 400 for
 * a missing, unknown, repeated or bad parameter (ErrorMessage names it); 404 for an unknown path;
 * 405 for another method (with Allow); 413 for a request with a body; 414 for a query over
 * MGMT_MAX_QUERY bytes; 500 when an operation of the daemon failed; 501 when the mount has no
 * such part (no block cache for warm-up, no callback). Every answer has a JSON body, except what
 * libmicrohttpd answers itself before a request reaches us (a request line or headers over the
 * connection's memory limit, a malformed request).
 *
 * /metrics: efc_warmup_tasks{status="running"|"completed"|"canceled"|"failed"} (when there is a
 * warm-up engine), then whatever ops->metrics appends: each part of the daemon writes its own
 * families (the cache's with cache_write_metrics, the origin's, the P2P layer's, the object-store
 * client's with oss_write_metrics), so a new part adds metrics without touching this module.
 *
 * The server (libmicrohttpd, internal polling with a thread pool) bounds connections
 * (max_conns, idle ones closed after MGMT_CONN_TIMEOUT_S), the request line and headers
 * (MGMT_CONN_MEMORY bytes per connection) and refuses bodies. It listens on the configured
 * address only.
 */
#ifndef EFC_MGMT_MGMT_H
#define EFC_MGMT_MGMT_H

#include <stddef.h>
#include <stdint.h>

struct cache_stats;
struct warmup;
struct buf;
struct p2p_cluster_info;

/* What the server needs from the daemon; every callback may be NULL (the endpoint then answers
 * an error saying the mount has no such part) and must be thread-safe. */
struct mgmt_ops {
    void *arg;
    /* The block cache's counters. -ENOENT when the mount has no block cache (/v1/tier then
       answers all ten counters as 0, /metrics leaves the cache families out). */
    int (*cache_stats)(void *arg, struct cache_stats *st);
    void (*cache_clear_stats)(void *arg);
    /* Drop every cached listing / every metadata cache entry. Return 0 or -errno. */
    int (*clear_readdir_cache)(void *arg);
    int (*clear_metadata_cache)(void *arg);
    /* Appends the daemon's own Prometheus lines (origin requests and bytes, errors by kind,
       latency histograms, readdir/metadata cache sizes, ...) to OUT, e.g. with util/prom.h,
       util/histo.h and oss_write_metrics(). OUT is bounded (MGMT_MAX_METRICS bytes in all). */
    void (*metrics)(void *arg, struct buf *out);
    /* The distributed cache's state (p2p_get_cluster: CI->member is freed by the caller), and
       an immediate re-read of the rootlist (MSG: a one-line summary, or why it failed). Both
       return -ENOENT when the mount is not distributed. */
    int (*cluster)(void *arg, struct p2p_cluster_info *ci);
    int (*reload_rootlist)(void *arg, char *msg, size_t len);
};

struct mgmt_config {
    const char *bind_addr; /* IPv4 or IPv6 literal; NULL: "127.0.0.1" */
    uint16_t port;         /* 0: any free port (tests; read it back with mgmt_port) */
    unsigned threads;      /* 0: 2 */
    unsigned max_conns;    /* 0: 64 */
    struct warmup *warmup; /* NULL: the warm-up endpoints answer an error (no block cache) */
};

#define MGMT_CONN_TIMEOUT_S 30
#define MGMT_CONN_MEMORY    (32u << 10) /* request line + headers, per connection */
#define MGMT_MAX_METRICS    (4u << 20)
#define MGMT_MAX_PATHS      256 /* comma-separated target_paths per request */
#define MGMT_MAX_TASKINFOS  100 /* tasks shown per path by stat */

struct mgmt;

/* Starts serving. Returns 0, or -errno with a one-line reason in ERR (e.g. "management port
 * 17871 on 127.0.0.1: Address already in use"). The caller keeps OPS' callees and cfg->warmup
 * alive until mgmt_stop. */
int mgmt_start(const struct mgmt_config *cfg, const struct mgmt_ops *ops, struct mgmt **out,
               char *err, size_t errlen);
/* The port it listens on (the one chosen when cfg->port was 0). */
uint16_t mgmt_port(const struct mgmt *m);
/* Stops accepting, waits for requests in progress, closes the socket. NULL: no-op. */
void mgmt_stop(struct mgmt *m);

/* ---- exposed for unit tests and fuzzing ---------------------------------------------------- */

/* Parses a URL query string ("a=1&b=x%2Cy"), percent-decoding names and values ('+' is a space),
 * into at most min(MAX, MGMT_MAX_PARAMS) pairs, in order; empty segments ("a=1&&b=2") are
 * skipped, a segment without '=' has the value "". Repeated names are all returned. Limits:
 * MGMT_MAX_QUERY bytes of query, 63 bytes per decoded name, MGMT_MAX_VALUE per decoded value.
 * Decoded names and values are valid UTF-8 without NUL; names have no control characters.
 * Returns the number of pairs, or with a reason in ERR: -E2BIG (a limit), -EINVAL (a bad
 * escape, a NUL, a control byte in the raw query, an empty name, invalid UTF-8). */
#define MGMT_MAX_QUERY  8192
#define MGMT_MAX_PARAMS 16
#define MGMT_MAX_VALUE  4096
struct mgmt_param {
    char name[64];
    char value[MGMT_MAX_VALUE + 1];
};
int mgmt_parse_query(const char *query, size_t len, struct mgmt_param *out, size_t max, char *err,
                     size_t errlen);

/* One answer, as the server sends it. */
struct mgmt_reply {
    unsigned status;          /* HTTP status */
    const char *content_type; /* static */
    const char *allow;        /* static; the Allow header of a 405, else NULL */
    char *body;               /* malloc'd, NUL-terminated; never NULL after a 0 return */
    size_t len;
};
/* Answers one request without a socket, exactly as the server would: METHOD ("GET", ...),
 * TARGET[0..TARGET_LEN) the raw request-target ("/v1/tier?x=y"), LOCATION what the results
 * carry. Returns 0 (REPLY filled: free it with mgmt_reply_release) or -ENOMEM. */
int mgmt_dispatch(const struct mgmt_ops *ops, struct warmup *w, const char *location,
                  const char *method, const char *target, size_t target_len,
                  struct mgmt_reply *reply);
void mgmt_reply_release(struct mgmt_reply *reply);

#endif
