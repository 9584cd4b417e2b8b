/* util/histo.h - a lock-free latency histogram with fixed log-scale buckets.
 *
 * Buckets are the 1-2.5-5 series from 50 µs to 60 s (HISTO_NBUCKETS upper bounds) plus an
 * overflow bucket, the same for every histogram so that they can be compared and summed across
 * modules and nodes. histo_observe() is two relaxed atomic adds: any number of threads may
 * observe at once without a lock, and a reader (histo_snapshot) sees each counter exactly, the
 * set of them nearly at one instant. A snapshot's count is the sum of its buckets, so a written
 * histogram is always self-consistent (the +Inf bucket equals _count), even mid-update.
 *
 * histo_write_prom() writes a Prometheus histogram in seconds, as the format's conventions
 * want: NAME_bucket{le="0.00005"} ... {le="+Inf"}, NAME_sum, NAME_count; NAME should end in
 * "_seconds". A zero-filled struct histo is a valid empty histogram.
 */
#ifndef EFC_UTIL_HISTO_H
#define EFC_UTIL_HISTO_H

#include <stdatomic.h>
#include <stdint.h>

#include "util/buf.h"

#define HISTO_NBUCKETS 19 /* finite upper bounds; bucket HISTO_NBUCKETS is the overflow */

/* The finite upper bounds, in microseconds, ascending (inclusive: an observation equal to a
 * bound falls in that bound's bucket, as Prometheus' le means). */
extern const uint64_t histo_bounds_us[HISTO_NBUCKETS];

struct histo {
    atomic_uint_fast64_t bucket[HISTO_NBUCKETS + 1]; /* not cumulative */
    atomic_uint_fast64_t sum_us;
};

struct histo_snap {
    uint64_t bucket[HISTO_NBUCKETS + 1]; /* not cumulative */
    uint64_t count;                      /* sum of bucket[] */
    uint64_t sum_us;
};

void histo_init(struct histo *h);
void histo_observe(struct histo *h, uint64_t usec);
void histo_snapshot(const struct histo *h, struct histo_snap *s);

/* The whole family: HELP and TYPE lines, then the samples of H. */
int histo_write_prom(const struct histo *h, const char *name, const char *help, struct buf *out);
/* The samples of S alone, each carrying LABELS (NULL, "" or `op="read"`, escaped) before the le
 * label: several series of one family share one prom_header(out, name, help, "histogram"). */
int histo_snap_write_prom(const struct histo_snap *s, const char *name, const char *labels,
                          struct buf *out);

#endif
