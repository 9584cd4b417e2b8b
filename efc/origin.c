/* efc/origin.c - the origin block source (origin.h): ranged GETs through oss/, under a token
 * bucket.
 *
 * The token bucket holds at most a tenth of a second of the rate (and at least one block), so a
 * burst after an idle spell is short; a fetch takes its bytes' worth of tokens before it starts
 * and sleeps off a debt, so concurrent fetches share the rate in the order they asked.
 */
#include "efc/origin.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oss/oss.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/prom.h"

struct efc_origin {
    struct blksrc src; /* first: efc_origin_src hands out its address */
    struct oss_client *cl;

    pthread_mutex_t tb_lock;
    uint64_t tb_rate, tb_last; /* bytes/s (0: no cap), CLOCK_MONOTONIC ns */
    double tb_tokens, tb_burst;

    uint64_t fetches, bytes, errors, stale, throttled_ns; /* atomics */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define ADD(o, f, v) __atomic_fetch_add(&(o)->f, (uint64_t)(v), __ATOMIC_RELAXED)

static void tb_take(struct efc_origin *o, uint64_t n)
{
    if (o->tb_rate == 0)
        return;
    pthread_mutex_lock(&o->tb_lock);
    uint64_t now = now_ns();
    o->tb_tokens += (double)(now - o->tb_last) * (double)o->tb_rate / 1e9;
    if (o->tb_tokens > o->tb_burst)
        o->tb_tokens = o->tb_burst;
    o->tb_last = now;
    o->tb_tokens -= (double)n;
    double wait = o->tb_tokens < 0 ? -o->tb_tokens / (double)o->tb_rate : 0;
    pthread_mutex_unlock(&o->tb_lock);
    if (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        ADD(o, throttled_ns, (uint64_t)(wait * 1e9));
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
}

static void count_result(struct efc_origin *o, int rc, const struct blkreq *rq, uint64_t start,
                         uint64_t len)
{
    if (rc == -ESTALE) {
        ADD(o, stale, 1);
    } else if (rc) {
        ADD(o, errors, 1);
        log_warn("origin: '%s' bytes %" PRIu64 "-%" PRIu64 ": %s (%s)", rq->key, start,
                 start + len - 1, strerror(-rc), oss_last_error());
    }
}

/* The bytes to fetch of [START, START + LEN) of RQ's object (0: none, past its end), their
 * bandwidth taken and the fetch counted. */
static uint64_t fetch_begin(struct efc_origin *o, const struct blkreq *rq, uint64_t start,
                            uint64_t len)
{
    if (start >= rq->obj_size || len == 0)
        return 0;
    if (len > rq->obj_size - start)
        len = rq->obj_size - start;
    tb_take(o, len);
    ADD(o, fetches, 1);
    return len;
}

static ssize_t origin_fetch(struct blksrc *s, const struct blkreq *rq, uint64_t off, size_t len,
                            void *buf, enum blk_from *from)
{
    struct efc_origin *o = (struct efc_origin *)s;
    uint64_t start = rq->index * s->block_size + off;
    struct oss_get g = {.key = rq->key,
                        .offset = start,
                        .length = len,
                        .if_match = rq->etag && rq->etag[0] ? rq->etag : NULL,
                        .buf = buf};
    struct oss_get_result res;

    *from = BLK_FROM_ORIGIN;
    if ((g.length = fetch_begin(o, rq, start, len)) == 0)
        return 0;
    int rc = oss_get(o->cl, &g, &res);
    count_result(o, rc, rq, start, g.length);
    if (rc)
        return rc;
    ADD(o, bytes, res.bytes);
    return (ssize_t)res.bytes;
}

struct range_sink {
    blk_sink_fn sink;
    void *arg;
    uint64_t next; /* the object offset the next byte must have */
};

static int range_sink_fn(void *arg, uint64_t offset, const void *data, size_t len)
{
    struct range_sink *rs = arg;
    if (offset != rs->next)
        return -EIO; /* oss_get delivers the range in order; anything else is a bug */
    rs->next += len;
    return rs->sink(rs->arg, data, len, BLK_FROM_ORIGIN);
}

static int origin_fetch_range(struct blksrc *s, const struct blkreq *rq, uint64_t len,
                              blk_sink_fn sink, void *sink_arg)
{
    struct efc_origin *o = (struct efc_origin *)s;
    uint64_t start = rq->index * s->block_size;
    struct range_sink rs = {sink, sink_arg, start};
    struct oss_get g = {.key = rq->key,
                        .offset = start,
                        .length = len,
                        .if_match = rq->etag && rq->etag[0] ? rq->etag : NULL,
                        .sink = range_sink_fn,
                        .sink_arg = &rs};

    if ((g.length = fetch_begin(o, rq, start, len)) == 0)
        return 0;
    int rc = oss_get(o->cl, &g, NULL);
    ADD(o, bytes, rs.next - start);
    if (rc == -ECANCELED) /* the sink stopped it: not the origin's failure */
        return rc;
    count_result(o, rc, rq, start, g.length);
    if (rc)
        return rc;
    return rs.next == start + g.length ? 0 : -EIO;
}

static int get_first(struct efc_origin *o, const struct oss_get *g, struct oss_get_result *res)
{
    if (g->length == 0)
        return -EINVAL;
    ADD(o, fetches, 1);
    int rc = oss_get(o->cl, g, res);
    if (rc == 0) {
        /* The size was unknown before the answer: the bytes it brought are paid after it. */
        tb_take(o, res->bytes);
        ADD(o, bytes, res->bytes);
    } else if (rc != -ENOENT && rc != -EACCES) {
        /* A missing key or an archived object is an answer about the name, not a failure. */
        ADD(o, errors, 1);
        log_warn("origin: '%s' first %" PRIu64 " bytes: %s (%s)", g->key, g->length, strerror(-rc),
                 oss_last_error());
    }
    return rc;
}

int efc_origin_get_first(struct efc_origin *o, const char *key, const char *if_none_match,
                         void *buf, uint64_t len, struct oss_get_result *res)
{
    struct oss_get g = {.key = key, .length = len, .if_none_match = if_none_match, .buf = buf};
    return get_first(o, &g, res);
}

int efc_origin_get_first_sink(struct efc_origin *o, const char *key, const char *if_none_match,
                              uint64_t len, oss_sink_fn sink, void *sink_arg,
                              struct oss_get_result *res)
{
    struct oss_get g = {.key = key,
                        .length = len,
                        .if_none_match = if_none_match,
                        .sink = sink,
                        .sink_arg = sink_arg};
    return get_first(o, &g, res);
}

static const struct blksrc_ops origin_ops = {
    .name = "origin",
    .fetch = origin_fetch,
    .fetch_range = origin_fetch_range,
};

int efc_origin_new(struct oss_client *cl, uint32_t block_size, uint64_t bytes_per_sec,
                   struct efc_origin **out)
{
    *out = NULL;
    if (cl == NULL || block_size == 0)
        return -EINVAL;
    struct efc_origin *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return -ENOMEM;
    o->src.ops = &origin_ops;
    o->src.block_size = block_size;
    o->cl = cl;
    pthread_mutex_init(&o->tb_lock, NULL);
    o->tb_rate = bytes_per_sec;
    o->tb_burst =
        o->tb_rate ? (double)(o->tb_rate / 10 > block_size ? o->tb_rate / 10 : block_size) : 0;
    o->tb_tokens = o->tb_burst;
    o->tb_last = now_ns();
    *out = o;
    return 0;
}

void efc_origin_free(struct efc_origin *o)
{
    if (o == NULL)
        return;
    pthread_mutex_destroy(&o->tb_lock);
    free(o);
}

struct blksrc *efc_origin_src(struct efc_origin *o)
{
    return &o->src;
}

#define LOAD(o, f) __atomic_load_n(&(o)->f, __ATOMIC_RELAXED)

void efc_origin_get_stats(struct efc_origin *o, struct efc_origin_stats *st)
{
    st->fetches = LOAD(o, fetches);
    st->bytes = LOAD(o, bytes);
    st->errors = LOAD(o, errors);
    st->stale = LOAD(o, stale);
    st->throttled_ns = LOAD(o, throttled_ns);
}

int efc_origin_write_metrics(struct efc_origin *o, struct buf *out)
{
    struct efc_origin_stats st;
    efc_origin_get_stats(o, &st);
    prom_counter(out, "efc_origin_fetches_total",
                 "Ranged GETs of blocks from the object store (cache misses, owned blocks, "
                 "reads after a peer failed, reads without a cache).",
                 st.fetches);
    prom_counter(out, "efc_origin_bytes_total", "Bytes those GETs delivered.", st.bytes);
    prom_counter(out, "efc_origin_errors_total", "Those GETs that failed.", st.errors);
    prom_counter(out, "efc_origin_stale_total",
                 "Those GETs answered 'changed' (If-Match failed): the object has a new version.",
                 st.stale);
    prom_header(out, "efc_origin_throttled_seconds_total",
                "Time GETs waited for the bandwidth cap (g_tier_DadiSdkGetTrafficLimit).",
                "counter");
    return prom_sample_double(out, "efc_origin_throttled_seconds_total", NULL,
                              (double)st.throttled_ns / 1e9);
}
