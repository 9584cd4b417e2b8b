/* mgmt/api.c - what each endpoint answers (mgmt_dispatch): routing, parameter checks, JSON and
 * Prometheus bodies.
 *
 * It is a pure function of (method, raw request-target, ops, warm-up) to (status, body), apart
 * from the operations it calls, so the unit tests and the fuzz target drive exactly what the
 * server serves without a socket. A request is checked in a fixed order, and the first problem
 * answers: unknown path (404), method (405), query size (414), query syntax, unknown or repeated
 * parameters, missing or bad values (400), then a part the mount lacks (501). Only then is an
 * operation called, so a bad request never has a side effect.
 *
 * JSON is built with jansson, keys in the seed's order (jansson keeps insertion order). Every
 * string put into JSON goes through jstr(), which repairs invalid UTF-8 (a message cut
 * mid-character by snprintf): jansson refuses such strings, and a missing field would break the
 * answer's shape.
 */
#include "mgmt/mgmt.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "mgmt/mgmt_i.h"
#include "p2p/p2p.h"
#include "mgmt/warmup.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/prom.h"

#define JSON_CT       "application/json"
#define MAX_JSON_BODY (64u << 20) /* 256 paths x 100 tasks x ~2.5 KiB fits */

enum ep_id {
    EP_LOAD,
    EP_STAT,
    EP_CANCEL,
    EP_TIER,
    EP_TIER_CLEAR,
    EP_CLEAR_READDIR,
    EP_CLEAR_META,
    EP_METRICS,
    EP_CLUSTER,
    EP_RELOAD_ROOTLIST,
};

struct endpoint {
    const char *path;
    enum ep_id id;
    bool changes;          /* has a side effect: HEAD is refused */
    const char *params[3]; /* the parameters it takes, NULL-terminated */
};

static const struct endpoint endpoints[] = {
    {"/v1/warmup/load", EP_LOAD, true, {"target_path", "pattern", NULL}},
    {"/v1/warmup/stat", EP_STAT, false, {"target_path", "preceding_time", NULL}},
    {"/v1/warmup/cancel", EP_CANCEL, true, {"target_path", NULL}},
    {"/v1/tier", EP_TIER, false, {NULL}},
    {"/v1/tier/clear", EP_TIER_CLEAR, true, {NULL}},
    {"/v1/action/clear_readdir_cache", EP_CLEAR_READDIR, true, {NULL}},
    {"/v1/action/clear_metadata_cache", EP_CLEAR_META, true, {NULL}},
    {"/metrics", EP_METRICS, false, {NULL}},
    {"/v1/cluster", EP_CLUSTER, false, {NULL}},
    {"/v1/action/reload_rootlist", EP_RELOAD_ROOTLIST, true, {NULL}},
};
#define NENDPOINTS (sizeof(endpoints) / sizeof(endpoints[0]))

struct req {
    const struct mgmt_ops *ops;
    struct warmup *w;
    const char *location;
    const struct endpoint *ep;
    struct mgmt_param *params;
    int nparams;
    struct mgmt_reply *reply;
};

/* ---- JSON helpers ------------------------------------------------------------------------ */

/* A JSON string of S, with bytes that are not valid UTF-8 replaced by '?'. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return NULL;
    size_t i = 0;
    while (i < n) {
        /* The longest valid prefix of at most 4 bytes starting at i, else one bad byte. */
        size_t k = 1;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80)
            k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (i + k <= n && mgmt_utf8_ok((const unsigned char *)s + i, k)) {
            memcpy(copy + i, s + i, k);
            i += k;
        } else {
            copy[i++] = '?';
        }
    }
    copy[n] = '\0';
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *jint(uint64_t v)
{
    return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* {"ErrorCode": CODE, "ErrorMessage": MSG} followed, for results, by "Location". */
static json_t *jhead(int code, const char *msg, const char *location)
{
    json_t *o = json_object();
    json_object_set_new(o, "ErrorCode", json_integer(code));
    json_object_set_new(o, "ErrorMessage", jstr(msg));
    if (location)
        json_object_set_new(o, "Location", jstr(location));
    return o;
}

static int dump_cb(const char *p, size_t n, void *arg)
{
    return buf_append(arg, p, n) ? -1 : 0;
}

/* Serialises ROOT (consumed) as the reply's body. */
static int reply_json(struct req *r, unsigned status, json_t *root)
{
    struct buf b;
    buf_init(&b, MAX_JSON_BODY);
    int rc =
        root ? json_dump_callback(root, dump_cb, &b, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : -1;
    json_decref(root);
    if (rc != 0 || buf_puts(&b, "\n") != 0) {
        buf_release(&b);
        return -ENOMEM;
    }
    r->reply->status = status;
    r->reply->content_type = JSON_CT;
    r->reply->body = buf_detach(&b, &r->reply->len);
    return r->reply->body ? 0 : -ENOMEM;
}

/* A request that failed as a whole: {"ErrorCode", "ErrorMessage", "Results": []}. */
static int reply_error(struct req *r, unsigned status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int reply_error(struct req *r, unsigned status, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *root = jhead(code, msg, NULL);
    json_object_set_new(root, "Results", json_array());
    log_debug("mgmt: %s: %u %s", r->ep ? r->ep->path : "-", status, msg);
    return reply_json(r, status, root);
}

/* The top level of a request that was processed; RESULTS is consumed. */
static int reply_results(struct req *r, json_t *results)
{
    json_t *root = jhead(0, "Request processed", NULL);
    json_object_set_new(root, "Results", results);
    return reply_json(r, 200, root);
}

/* ---- parameters -------------------------------------------------------------------------- */

static const char *param(const struct req *r, const char *name)
{
    for (int i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].name, name) == 0)
            return r->params[i].value;
    return NULL;
}

/* Unknown and repeated names. Returns 0 or a reply's status (the reply is made). */
static int check_names(struct req *r, int *rc)
{
    const struct endpoint *ep = r->ep;
    for (int i = 0; i < r->nparams; i++) {
        const char *name = r->params[i].name;
        bool known = false;
        for (int k = 0; ep->params[k]; k++)
            known = known || strcmp(ep->params[k], name) == 0;
        if (!known) {
            char takes[128] = "no parameters";
            if (ep->params[0]) {
                size_t o = (size_t)snprintf(takes, sizeof(takes), "only");
                for (int k = 0; ep->params[k]; k++)
                    o += (size_t)snprintf(takes + o, sizeof(takes) - o, "%s '%s'", k ? "," : "",
                                          ep->params[k]);
            }
            *rc = reply_error(r, 400, EINVAL, "unknown parameter '%s': %s takes %s", name, ep->path,
                              takes);
            return 400;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(r->params[j].name, name) == 0) {
                *rc = reply_error(
                    r, 400, EINVAL, "parameter '%s' is given more than once%s", name,
                    strcmp(name, "target_path") == 0 ? ": separate several paths with commas" : "");
                return 400;
            }
        }
    }
    return 0;
}

/* Splits V at commas into at most MGMT_MAX_PATHS pointers into COPY (modified). "" is one
 * empty path (the root). Returns the count, or -E2BIG. */
static int split_paths(char *copy, char **out)
{
    int n = 0;
    char *p = copy;
    for (;;) {
        if (n >= MGMT_MAX_PATHS)
            return -E2BIG;
        out[n++] = p;
        char *comma = strchr(p, ',');
        if (comma == NULL)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

static json_t *path_result(const struct req *r, int code, const char *msg, const char *path)
{
    json_t *o = jhead(code, msg, r->location);
    json_object_set_new(o, "Path", jstr(path));
    return o;
}

/* ---- warm-up ----------------------------------------------------------------------------- */

static json_t *task_json(const struct warmup_task_info *t)
{
    json_t *o = json_object();
    bool failed = t->status == WARMUP_FAILED;
    json_object_set_new(o, "CompletedSize", jint(t->completed_size));
    json_object_set_new(o, "ErrorCode", json_integer(failed ? EIO : 0));
    json_object_set_new(o, "ErrorMessage", jstr(t->error));
    json_object_set_new(o, "IsDir", json_boolean(t->is_dir));
    json_object_set_new(o, "Path", jstr(t->path));
    json_object_set_new(o, "Pattern", jstr(t->pattern));
    json_object_set_new(o, "Status", jstr(warmup_status_name(t->status)));
    json_object_set_new(o, "SubmitTime", jint(t->submit_time_us));
    json_object_set_new(o, "TotalSize", jint(t->total_size));
    return o;
}

/* Parses a non-negative decimal integer that fits in 64 bits. */
static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static int do_warmup(struct req *r)
{
    const char *target = param(r, "target_path");
    const char *pattern = param(r, "pattern");
    const char *prec = param(r, "preceding_time");
    uint64_t preceding = 86400;
    int rc = 0;

    if (target == NULL)
        return reply_error(r, 400, EINVAL,
                           "missing parameter 'target_path': give the path(s) relative to the "
                           "mount, comma-separated (an empty value for the root)");
    if (prec && !parse_u64(prec, &preceding)) {
        char shown[80];
        mgmt_shown(prec, strlen(prec), shown, sizeof(shown));
        return reply_error(r, 400, EINVAL,
                           "bad parameter 'preceding_time': '%s' is not a non-negative integer "
                           "of seconds",
                           shown);
    }
    char *copy = strdup(target);
    char **paths = malloc(MGMT_MAX_PATHS * sizeof(*paths));
    struct warmup_task_info *infos = NULL;
    json_t *results = NULL;
    if (copy == NULL || paths == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    int n = split_paths(copy, paths);
    if (n < 0) {
        rc = reply_error(r, 400, E2BIG,
                         "bad parameter 'target_path': more than %d comma-separated paths",
                         MGMT_MAX_PATHS);
        goto out;
    }
    if (r->w == NULL) {
        rc = reply_error(r, 501, ENOTSUP,
                         "warm-up is not available: the mount has no block cache "
                         "(mount with g_tier_EnableClusterCache=true and a cache capacity)");
        goto out;
    }
    if (r->ep->id == EP_STAT) {
        infos = malloc(MGMT_MAX_TASKINFOS * sizeof(*infos));
        if (infos == NULL) {
            rc = -ENOMEM;
            goto out;
        }
    }

    results = json_array();
    for (int i = 0; i < n; i++) {
        char norm[WARMUP_PATH_MAX + 1], err[512], msg[1024 + WARMUP_PATH_MAX];
        err[0] = '\0';
        int wr = warmup_normalize(paths[i], norm, sizeof(norm), err, sizeof(err));
        if (wr < 0) {
            json_array_append_new(results,
                                  path_result(r, -wr, err[0] ? err : strerror(-wr), paths[i]));
            continue;
        }
        json_t *res;
        switch (r->ep->id) {
        case EP_LOAD: {
            uint64_t id = 0;
            wr = warmup_load(r->w, norm, pattern, &id, err, sizeof(err));
            if (wr == 0) {
                snprintf(msg, sizeof(msg),
                         "The warm up (%s) is processing in the background. Use the 'stat' "
                         "command to get status.",
                         norm);
                log_debug("mgmt: warm-up of '%s' submitted (task %" PRIu64 ")", norm, id);
            } else if (err[0] == '\0') {
                snprintf(msg, sizeof(msg), "cannot warm up '%s': %s", norm,
                         wr == -EBUSY ? "too many warm-up tasks are running; try again later"
                                      : strerror(-wr));
            } else {
                snprintf(msg, sizeof(msg), "%s", err);
            }
            res = path_result(r, wr ? -wr : 0, msg, norm);
            break;
        }
        case EP_STAT: {
            int cnt =
                warmup_stat(r->w, norm, preceding, infos, MGMT_MAX_TASKINFOS, err, sizeof(err));
            json_t *tasks = json_array();
            if (cnt < 0) {
                res = path_result(r, -cnt, err[0] ? err : strerror(-cnt), norm);
            } else if (cnt == 0) {
                if (preceding)
                    snprintf(msg, sizeof(msg),
                             "no warm-up task for path '%s' in the last %" PRIu64 " seconds", norm,
                             preceding);
                else
                    snprintf(msg, sizeof(msg), "no warm-up task for path '%s'", norm);
                res = path_result(r, ENOENT, msg, norm);
            } else {
                res = path_result(r, 0, "Successfully stat the warm up", norm);
                for (int k = 0; k < cnt && k < MGMT_MAX_TASKINFOS; k++)
                    json_array_append_new(tasks, task_json(&infos[k]));
            }
            json_object_set_new(res, "TaskInfos", tasks);
            break;
        }
        default: { /* EP_CANCEL */
            int cnt = warmup_cancel(r->w, norm, err, sizeof(err));
            if (cnt >= 0) {
                snprintf(msg, sizeof(msg),
                         "The warm up (%s) is canceled: %d running task%s stopped", norm, cnt,
                         cnt == 1 ? "" : "s");
                log_debug("mgmt: warm-up of '%s' canceled (%d tasks)", norm, cnt);
            } else if (cnt == -ENOENT) {
                snprintf(msg, sizeof(msg), "no warm-up task for path '%s'", norm);
            } else if (cnt == -EALREADY) {
                snprintf(msg, sizeof(msg),
                         "cannot cancel a completed task: every warm-up task of '%s' has "
                         "already finished (completed, failed or canceled)",
                         norm);
            } else {
                snprintf(msg, sizeof(msg), "cannot cancel the warm up of '%s': %s", norm,
                         err[0] ? err : strerror(-cnt));
            }
            res = path_result(r, cnt >= 0 ? 0 : -cnt, msg, norm);
            break;
        }
        }
        json_array_append_new(results, res);
    }
    rc = reply_results(r, results);
    results = NULL;
out:
    json_decref(results);
    free(infos);
    free(paths);
    free(copy);
    return rc;
}

/* ---- tier counters and actions ----------------------------------------------------------- */

static int not_available(struct req *r, const char *what)
{
    return reply_error(r, 501, ENOTSUP, "%s is not available on this mount", what);
}

static int do_tier(struct req *r)
{
    struct cache_stats st;
    memset(&st, 0, sizeof(st));
    if (r->ops->cache_stats == NULL)
        return not_available(r, "the block cache's counters");
    int rc = r->ops->cache_stats(r->ops->arg, &st);
    if (rc == -ENOENT) /* no block cache: every read bypasses it, all zero */
        memset(&st, 0, sizeof(st));
    else if (rc < 0)
        return reply_error(r, 500, -rc, "cannot read the block cache's counters: %s",
                           strerror(-rc));
    json_t *o = jhead(0, "", r->location);
    json_object_set_new(o, "tier_read", jint(st.read));
    json_object_set_new(o, "tier_read_bytes", jint(st.read_bytes));
    json_object_set_new(o, "tier_read_hit", jint(st.read_hit));
    json_object_set_new(o, "tier_read_hit_bytes", jint(st.read_hit_bytes));
    json_object_set_new(o, "tier_read_miss", jint(st.read_miss));
    json_object_set_new(o, "tier_read_miss_bytes", jint(st.read_miss_bytes));
    json_object_set_new(o, "tier_direct_read", jint(st.direct_read));
    json_object_set_new(o, "tier_direct_read_bytes", jint(st.direct_read_bytes));
    json_object_set_new(o, "tier_root_read_source", jint(st.root_read_source));
    json_object_set_new(o, "tier_root_read_source_bytes", jint(st.root_read_source_bytes));
    json_t *results = json_array();
    json_array_append_new(results, o);
    return reply_results(r, results);
}

static int do_action(struct req *r)
{
    const char *what, *done;
    int rc = 0;

    switch (r->ep->id) {
    case EP_TIER_CLEAR:
        what = "clearing the tier counters";
        done = "tier counters cleared";
        if (r->ops->cache_clear_stats == NULL)
            return not_available(r, what);
        r->ops->cache_clear_stats(r->ops->arg);
        break;
    case EP_CLEAR_READDIR:
        what = "clearing the readdir cache";
        done = "readdir cache cleared";
        if (r->ops->clear_readdir_cache == NULL)
            return not_available(r, what);
        rc = r->ops->clear_readdir_cache(r->ops->arg);
        break;
    default: /* EP_CLEAR_META */
        what = "clearing the metadata cache";
        done = "metadata cache cleared";
        if (r->ops->clear_metadata_cache == NULL)
            return not_available(r, what);
        rc = r->ops->clear_metadata_cache(r->ops->arg);
        break;
    }
    if (rc < 0) {
        log_warn("mgmt: %s failed: %s", what, strerror(-rc));
        return reply_error(r, 500, -rc, "%s failed: %s", what, strerror(-rc));
    }
    log_info("mgmt: %s", done);
    json_t *results = json_array();
    json_array_append_new(results, jhead(0, done, r->location));
    return reply_results(r, results);
}

/* ---- the distributed cache --------------------------------------------------------------- */

static const char *role_name(int role)
{
    return role == 0 ? "root+agent" : role == 1 ? "root" : role == 2 ? "agent" : "unknown";
}

static json_t *jhash(uint64_t h)
{
    char x[20];
    snprintf(x, sizeof(x), "%016" PRIx64, h);
    return json_string(x);
}

static int do_cluster(struct req *r)
{
    struct p2p_cluster_info ci;
    if (r->ops->cluster == NULL)
        return not_available(r, "the distributed cache");
    int rc = r->ops->cluster(r->ops->arg, &ci);
    if (rc == -ENOENT)
        return reply_error(r, 501, ENOTSUP,
                           "this mount is not in distributed mode (g_tier_DadiIsDistributed with "
                           "a cache capacity, or g_tier_DadiRootClientType=2)");
    if (rc < 0)
        return reply_error(r, 500, -rc, "cannot read the cluster's state: %s", strerror(-rc));
    json_t *o = jhead(0, "", r->location);
    json_object_set_new(o, "Rootlist", jstr(ci.rootlist));
    json_object_set_new(o, "RootlistHash", jhash(ci.members));
    json_object_set_new(o, "LoadedTime", jint(ci.loaded_unix));
    json_object_set_new(o, "Self", jstr(ci.self));
    json_object_set_new(o, "Role", jstr(role_name(ci.role)));
    json_object_set_new(o, "Authentication", json_boolean(ci.auth));
    json_object_set_new(o, "MemberCount", jint(ci.nmembers));
    json_object_set_new(o, "MismatchedPeers", jint(ci.mismatched));
    json_t *members = json_array();
    for (unsigned i = 0; i < ci.ninfo; i++) {
        const struct p2p_member_info *x = &ci.member[i];
        json_t *m = json_object();
        json_object_set_new(m, "Name", jstr(x->name));
        json_object_set_new(m, "Id", jstr(x->id));
        json_object_set_new(m, "Address", jstr(x->address));
        json_object_set_new(m, "Self", json_boolean(x->self));
        json_object_set_new(m, "Role", jstr(role_name(x->role)));
        json_object_set_new(m, "State", jstr(x->state));
        json_object_set_new(m, "RootlistHash", x->members ? jhash(x->members) : json_string(""));
        json_object_set_new(m, "RootlistMatches", json_boolean(!x->mismatch));
        json_object_set_new(m, "LatencyMs", json_real(x->latency_ms));
        json_object_set_new(m, "Requests", jint(x->requests));
        json_object_set_new(m, "Errors", jint(x->errors));
        json_object_set_new(m, "Bytes", jint(x->bytes));
        json_object_set_new(m, "LastError", jstr(x->last_error));
        json_array_append_new(members, m);
    }
    json_object_set_new(o, "Members", members);
    free(ci.member);
    json_t *results = json_array();
    json_array_append_new(results, o);
    return reply_results(r, results);
}

static int do_reload(struct req *r)
{
    char msg[512] = "";
    if (r->ops->reload_rootlist == NULL)
        return not_available(r, "reloading the rootlist");
    int rc = r->ops->reload_rootlist(r->ops->arg, msg, sizeof(msg));
    if (rc == -ENOENT)
        return reply_error(r, 501, ENOTSUP,
                           "this mount is not in distributed mode: it has no "
                           "rootlist");
    if (rc < 0) /* the callback's message says why; errno's words only when it said nothing */
        return reply_error(r, 500, -rc, "reloading the rootlist failed: %s",
                           msg[0] ? msg : strerror(-rc));
    log_info("mgmt: rootlist reloaded: %s", msg);
    json_t *results = json_array();
    json_array_append_new(results, jhead(0, msg, r->location));
    return reply_results(r, results);
}

/* ---- /metrics ---------------------------------------------------------------------------- */

static int do_metrics(struct req *r)
{
    struct buf b;
    buf_init(&b, MGMT_MAX_METRICS);

    if (r->w) {
        uint64_t counts[4] = {0};
        char l[48];
        warmup_counts(r->w, counts);
        prom_header(&b, "efc_warmup_tasks", "Warm-up tasks in the history, by status.", "gauge");
        for (int s = WARMUP_RUNNING; s <= WARMUP_FAILED; s++) {
            snprintf(l, sizeof(l), "status=\"%s\"", warmup_status_name((enum warmup_status)s));
            prom_sample_u64(&b, "efc_warmup_tasks", l, counts[s]);
        }
    }
    if (r->ops->metrics)
        r->ops->metrics(r->ops->arg, &b);
    if (b.data == NULL && buf_puts(&b, "") != 0) {
        buf_release(&b);
        return -ENOMEM;
    }
    r->reply->status = 200;
    r->reply->content_type = PROM_CONTENT_TYPE;
    r->reply->body = buf_detach(&b, &r->reply->len);
    return r->reply->body ? 0 : -ENOMEM;
}

/* ---- routing ----------------------------------------------------------------------------- */

int mgmt_dispatch(const struct mgmt_ops *ops, struct warmup *w, const char *location,
                  const char *method, const char *target, size_t target_len,
                  struct mgmt_reply *reply)
{
    static const struct mgmt_ops no_ops;
    struct req r = {.ops = ops ? ops : &no_ops, .w = w, .location = location, .reply = reply};
    char shown[128], err[256];
    int rc = 0;

    memset(reply, 0, sizeof(*reply));
    const char *q = memchr(target, '?', target_len);
    size_t plen = q ? (size_t)(q - target) : target_len;
    const char *query = q ? q + 1 : target + target_len;
    size_t qlen = q ? target_len - plen - 1 : 0;

    for (size_t i = 0; i < NENDPOINTS; i++)
        if (strlen(endpoints[i].path) == plen && memcmp(endpoints[i].path, target, plen) == 0)
            r.ep = &endpoints[i];
    if (r.ep == NULL) {
        mgmt_shown(target, plen, shown, sizeof(shown));
        return reply_error(&r, 404, ENOENT,
                           "unknown path '%s': the endpoints are /v1/warmup/load, "
                           "/v1/warmup/stat, /v1/warmup/cancel, /v1/tier, /v1/tier/clear, "
                           "/v1/action/clear_readdir_cache, /v1/action/clear_metadata_cache, "
                           "/v1/cluster, /v1/action/reload_rootlist and /metrics",
                           shown);
    }
    bool get = strcmp(method, "GET") == 0, head = strcmp(method, "HEAD") == 0;
    if (!get && !(head && !r.ep->changes)) {
        mgmt_shown(method, strlen(method), shown, sizeof(shown));
        rc = reply_error(&r, 405, EINVAL, "method '%s' is not allowed on %s: use %s", shown,
                         r.ep->path, r.ep->changes ? "GET" : "GET or HEAD");
        reply->allow = r.ep->changes ? "GET" : "GET, HEAD";
        return rc;
    }
    if (qlen > MGMT_MAX_QUERY)
        return reply_error(&r, 414, E2BIG, "the query is %zu bytes, over the limit of %d", qlen,
                           MGMT_MAX_QUERY);

    r.params = malloc(MGMT_MAX_PARAMS * sizeof(*r.params));
    if (r.params == NULL)
        return -ENOMEM;
    r.nparams = mgmt_parse_query(query, qlen, r.params, MGMT_MAX_PARAMS, err, sizeof(err));
    if (r.nparams < 0) {
        rc = reply_error(&r, 400, -r.nparams, "bad query: %s", err);
        goto out;
    }
    if (check_names(&r, &rc))
        goto out;

    switch (r.ep->id) {
    case EP_LOAD:
    case EP_STAT:
    case EP_CANCEL:
        rc = do_warmup(&r);
        break;
    case EP_TIER:
        rc = do_tier(&r);
        break;
    case EP_METRICS:
        rc = do_metrics(&r);
        break;
    case EP_CLUSTER:
        rc = do_cluster(&r);
        break;
    case EP_RELOAD_ROOTLIST:
        rc = do_reload(&r);
        break;
    default:
        rc = do_action(&r);
        break;
    }
out:
    free(r.params);
    if (rc < 0) {
        free(reply->body);
        memset(reply, 0, sizeof(*reply));
    }
    return rc;
}

void mgmt_reply_release(struct mgmt_reply *reply)
{
    if (reply == NULL)
        return;
    free(reply->body);
    memset(reply, 0, sizeof(*reply));
}
