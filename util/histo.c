/* util/histo.c - lock-free latency histogram; see histo.h.
 *
 * Buckets hold plain (non-cumulative) counts so that an observation touches one bucket only;
 * the cumulative counts Prometheus wants are summed at write time, which is rare. Finding the
 * bucket is a linear scan of 19 bounds: a few nanoseconds, branch-predictable, and simpler than
 * a log computation that would have to match the 1-2.5-5 bounds exactly.
 */
#include "util/histo.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util/prom.h"

const uint64_t histo_bounds_us[HISTO_NBUCKETS] = {
    50,     100,    250,    500,     1000,    2500,    5000,     10000,    25000,    50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

void histo_init(struct histo *h)
{
    for (int i = 0; i <= HISTO_NBUCKETS; i++)
        atomic_init(&h->bucket[i], 0);
    atomic_init(&h->sum_us, 0);
}

void histo_observe(struct histo *h, uint64_t usec)
{
    int i = 0;
    while (i < HISTO_NBUCKETS && usec > histo_bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, usec, memory_order_relaxed);
}

void histo_snapshot(const struct histo *h, struct histo_snap *s)
{
    s->count = 0;
    for (int i = 0; i <= HISTO_NBUCKETS; i++) {
        s->bucket[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        s->count += s->bucket[i];
    }
    s->sum_us = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

/* Microseconds as decimal seconds without trailing zeros: 50 -> "0.00005", 2500000 -> "2.5". */
static void usec_str(uint64_t us, char *out, size_t len)
{
    snprintf(out, len, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
    char *end = out + strlen(out) - 1;
    while (*end == '0')
        *end-- = '\0';
    if (*end == '.')
        *end = '\0';
}

int histo_snap_write_prom(const struct histo_snap *s, const char *name, const char *labels,
                          struct buf *out)
{
    char series[256], lbl[512], le[32];
    const char *sep = labels && labels[0] ? "," : "";
    uint64_t cum = 0;
    int rc;

    if (snprintf(series, sizeof(series), "%s_bucket", name) >= (int)sizeof(series))
        return -EINVAL;
    for (int i = 0; i <= HISTO_NBUCKETS; i++) {
        cum += s->bucket[i];
        if (i < HISTO_NBUCKETS)
            usec_str(histo_bounds_us[i], le, sizeof(le));
        else
            snprintf(le, sizeof(le), "+Inf");
        if (snprintf(lbl, sizeof(lbl), "%s%sle=\"%s\"", labels ? labels : "", sep, le) >=
            (int)sizeof(lbl))
            return -EINVAL;
        rc = prom_sample_u64(out, series, lbl, cum);
        if (rc)
            return rc;
    }
    char sum[40];
    usec_str(s->sum_us, sum, sizeof(sum));
    snprintf(series, sizeof(series), "%s_sum", name);
    rc = labels && labels[0] ? buf_printf(out, "%s{%s} %s\n", series, labels, sum)
                             : buf_printf(out, "%s %s\n", series, sum);
    if (rc)
        return rc;
    snprintf(series, sizeof(series), "%s_count", name);
    return prom_sample_u64(out, series, labels, s->count);
}

int histo_write_prom(const struct histo *h, const char *name, const char *help, struct buf *out)
{
    struct histo_snap s;
    int rc = prom_header(out, name, help, "histogram");
    if (rc)
        return rc;
    histo_snapshot(h, &s);
    return histo_snap_write_prom(&s, name, NULL, out);
}
