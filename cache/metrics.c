/* cache/metrics.c - the cache's Prometheus lines (cache_write_metrics), written from a
 * struct cache_stats, so that the management server shows them without knowing the cache, and a
 * node whose read counters come from elsewhere (an agent: no tiers) writes them the same way.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>

#include "cache/cache.h"
#include "util/buf.h"
#include "util/prom.h"

static double ratio(uint64_t num, uint64_t den)
{
    return den ? (double)num / (double)den : 0.0;
}

static void labelled(struct buf *b, const char *name, const char *help, const char *type,
                     const char *label, const char *v1, uint64_t x1, const char *v2, uint64_t x2)
{
    char l[64];
    prom_header(b, name, help, type);
    snprintf(l, sizeof(l), "%s=\"%s\"", label, v1);
    prom_sample_u64(b, name, l, x1);
    snprintf(l, sizeof(l), "%s=\"%s\"", label, v2);
    prom_sample_u64(b, name, l, x2);
}

int cache_write_metrics(const struct cache_stats *st, unsigned what, struct buf *b)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } tier[] = {
#define T(n, f, h) {"efc_tier_" n "_total", h, offsetof(struct cache_stats, f)}
        T("read", read, "Reads through the cache path (tier_read)."),
        T("read_bytes", read_bytes, "Bytes read through the cache path (tier_read_bytes)."),
        T("read_hit", read_hit,
          "Reads served from this node's or a peer's memory or disk (tier_read_hit)."),
        T("read_hit_bytes", read_hit_bytes, "Bytes of blocks served so (tier_read_hit_bytes)."),
        T("read_miss", read_miss,
          "Reads that needed an origin fetch, by this node or a peer (tier_read_miss)."),
        T("read_miss_bytes", read_miss_bytes,
          "Bytes of blocks that needed an origin fetch (tier_read_miss_bytes)."),
        T("direct_read", direct_read,
          "Reads that went to the origin directly, a peer having failed (tier_direct_read)."),
        T("direct_read_bytes", direct_read_bytes,
          "Bytes read from the origin directly (tier_direct_read_bytes)."),
        T("root_read_source", root_read_source,
          "Origin fetches this node's cache made, for itself or for peers "
          "(tier_root_read_source)."),
        T("root_read_source_bytes", root_read_source_bytes,
          "Bytes of those origin fetches (tier_root_read_source_bytes)."),
#undef T
    };
    for (size_t i = 0; i < sizeof(tier) / sizeof(tier[0]); i++)
        prom_counter(b, tier[i].name, tier[i].help,
                     *(const uint64_t *)((const char *)st + tier[i].off));

    /* The cache counts hits over both tiers together, so the ratio is the cache's, not a
       tier's: by reads, and by bytes of blocks. */
    prom_header(b, "efc_cache_hit_ratio",
                "Share of reads (kind=requests) or of block bytes (kind=bytes) served from the "
                "cache since the counters were last cleared; 0 before any read.",
                "gauge");
    prom_sample_double(b, "efc_cache_hit_ratio", "kind=\"requests\"",
                       ratio(st->read_hit, st->read));
    prom_sample_double(b, "efc_cache_hit_ratio", "kind=\"bytes\"",
                       ratio(st->read_hit_bytes, st->read_hit_bytes + st->read_miss_bytes));
    if (!(what & CACHE_METRICS_TIERS))
        return 0;

    labelled(b, "efc_cache_used_bytes", "Bytes of cache in use, per tier.", "gauge", "tier",
             "memory", st->mem_used, "disk", st->disk_used);
    labelled(b, "efc_cache_capacity_bytes", "Configured cache capacity, per tier.", "gauge", "tier",
             "memory", st->mem_capacity, "disk", st->disk_capacity);
    labelled(b, "efc_cache_blocks", "Blocks held, per tier.", "gauge", "tier", "memory",
             st->blocks_mem, "disk", st->blocks_disk);
    labelled(b, "efc_cache_evictions_total", "Blocks evicted, per tier.", "counter", "tier",
             "memory", st->evictions_mem, "disk", st->evictions_disk);
    prom_counter(b, "efc_cache_demotions_total", "Blocks moved from memory to disk.",
                 st->demotions);
    prom_gauge(b, "efc_cache_index_bytes", "Memory used by the block index.",
               (double)st->index_bytes);
    prom_counter(b, "efc_cache_corrupt_pages_dropped_total",
                 "Disk cache pages dropped: their CRC64 did not verify, or the file was cut short.",
                 st->corrupt_dropped);
    prom_counter(b, "efc_cache_disk_errors_total", "Failed disk cache reads and writes.",
                 st->disk_errors);
    prom_counter(b, "efc_cache_singleflight_waits_total",
                 "Reads that waited for another reader's fetch of their block.",
                 st->singleflight_waits);
    prom_counter(b, "efc_cache_source_fetches_total", "Block fetches from the source.",
                 st->source_fetches);
    prom_counter(b, "efc_cache_source_errors_total", "Block fetches from the source that failed.",
                 st->source_errors);
    prom_counter(b, "efc_cache_disk_writes_total", "Blocks written to the disk tier.",
                 st->disk_writes);
    prom_counter(b, "efc_cache_disk_write_bytes_total", "Bytes written to the disk tier.",
                 st->disk_write_bytes);
    prom_counter(b, "efc_cache_disk_writes_dropped_total",
                 "Disk writes dropped because the write queue was full.", st->disk_writes_dropped);
    prom_counter(b, "efc_cache_prefetch_queued_total", "Readahead blocks queued.",
                 st->prefetch_queued);
    prom_counter(b, "efc_cache_prefetch_dropped_total",
                 "Readahead blocks dropped (queue full or block present).", st->prefetch_dropped);
    return 0;
}
