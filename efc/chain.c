/* efc/chain.c - the block sources and the block cache of a mount, stacked in one place.
 *
 * What a read goes through depends on the options, and only this file decides it:
 *
 *     no cache (g_tier_EnableClusterCache=false, or no capacity):   readers -> first -> origin
 *     single-node cache (g_tier_DadiIsDistributed=false):  readers -> cache -> first -> origin
 *     distributed, g_tier_DadiRootClientType=0:               readers -> cache -> p2p -> origin
 *                                                          (p2p also serves peers from the cache)
 *     distributed, type 1 (serves, reads from the origin itself):   readers -> cache -> origin
 *                                                          (p2p serves peers from the cache)
 *     distributed, type 2 (an agent: stores nothing):               readers -> p2p -> origin
 *
 * Each layer is a struct blksrc (cache/blksrc.h); e->top is the one the cache, or a cacheless
 * reader, fetches from. "first" (first.c) serves block 0 of an object from the bytes the open's
 * GET brought; in a cluster blocks come from their owners, so it is not stacked there. The origin
 * (origin.c) owns the bandwidth cap and the origin counters; the cache owns the tier_* counters (on
 * an agent, the readers count them); p2p/ its own. Teardown goes top down: the P2P server first (no
 * peer reads the cache any more), then the cache (it waits for its queued disk writes, so what was
 * fetched persists), the sources after it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "efc/efc.h"
#include "efc/first_i.h"
#include "efc/origin.h"
#include "efc/read.h"
#include "p2p/p2p.h"
#include "util/buf.h"
#include "util/log.h"

/* The first blocks held for the reads that follow their open: with a cache they leave at once
   (its prefetch takes them), without one at the first read of the whole block. */
#define EFC_FIRST_BYTES (64ull << 20)

/* "<bucket>.<host>": the name space of every block identity (cache.h), shared by the nodes of
 * a cluster. 0 or -ENAMETOOLONG. */
static int name_space(const struct efc *e, char *ns, size_t len)
{
    return (size_t)snprintf(ns, len, "%s.%s", e->remote.bucket, e->remote.host) < len
               ? 0
               : -ENAMETOOLONG;
}

/* The block cache, when the options ask for one (see efc_chain_start). */
static int cache_start(struct efc *e, char *err, size_t errlen)
{
    const struct opt_set *o = &e->opts;
    int64_t mem_mb = opt_int(o, OPT_TIER_DADIMEMCACHECAPACITYMB);
    int64_t disk_mb = opt_int(o, OPT_TIER_DADIDISKCACHECAPACITYMB);
    const char *dirs = opt_str(o, OPT_TIER_DADIDISKCACHEPATH);

    if (!opt_bool(o, OPT_TIER_ENABLECLUSTERCACHE) || (mem_mb <= 0 && disk_mb <= 0))
        return 0;
    if (opt_int(o, OPT_TIER_DADIROOTCLIENTTYPE) == 2) {
        log_info("cache: g_tier_DadiRootClientType=2 (agent): no block cache on this node");
        return 0;
    }
    char ns[CACHE_MAX_NS + 1];
    if (name_space(e, ns, sizeof(ns)) != 0) {
        snprintf(err, errlen, "cannot set up the block cache: bucket and host name too long");
        return -ENAMETOOLONG;
    }
    struct cache_config cc;
    memset(&cc, 0, sizeof(cc));
    cc.mem_bytes = (uint64_t)mem_mb << 20;
    cc.disk_dirs = disk_mb > 0 ? dirs : NULL;
    cc.disk_bytes_per_dir = (uint64_t)disk_mb << 20;
    cc.block_size = (uint32_t)opt_int(o, OPT_TIER_BLOCKSIZE);
    cc.page_size = (uint32_t)(opt_int(o, OPT_TIER_DADICACHEPAGESIZEKB) * 1024);
    cc.ns = ns;
    /* io_threads are the prefetch (readahead) workers only, the disk writes have their own two:
       as many as one reader may have GETs in flight, so a cold sequential stream keeps its
       parallelism. A run of missing blocks goes in one ranged request (fetch_range). */
    int64_t inflight = opt_int(o, OPT_READ_MAXINFLIGHT);
    cc.io_threads = (unsigned)(inflight < 2 ? 2 : inflight > 32 ? 32 : inflight);

    char cerr[512];
    int rc = cache_new(&cc, e->top, &e->cache, cerr, sizeof(cerr));
    if (rc) {
        const char *opt = strstr(cerr, "block size")  ? "g_tier_BlockSize"
                          : strstr(cerr, "page size") ? "g_tier_DadiCachePageSizeKB"
                          : strstr(cerr, "memory")    ? "g_tier_DadiMemCacheCapacityMB"
                                                      : "g_tier_EnableClusterCache";
        snprintf(err, errlen, "%s: cannot set up the block cache: %s", opt,
                 cerr[0] ? cerr : strerror(-rc));
        return rc;
    }
    struct cache_stats st;
    cache_get_stats(e->cache, &st);
    if (disk_mb > 0 && st.disk_capacity == 0)
        log_warn("cache: g_tier_DadiDiskCachePath '%s': no usable directory; the disk tier is off",
                 dirs);
    log_info("cache: memory %llu MiB, disk %llu MiB in '%s', block %llu KiB, page %llu KiB; "
             "%llu blocks found on disk in %llu ms; index %llu KiB",
             (unsigned long long)(st.mem_capacity >> 20),
             (unsigned long long)(st.disk_capacity >> 20), disk_mb > 0 ? dirs : "",
             (unsigned long long)(cc.block_size >> 10), (unsigned long long)(cc.page_size >> 10),
             (unsigned long long)st.scan_blocks, (unsigned long long)(st.scan_usec / 1000),
             (unsigned long long)(st.index_bytes >> 10));
    return 0;
}

int efc_chain_start(struct efc *e, char *err, size_t errlen)
{
    const struct opt_set *o = &e->opts;
    int rc = efc_origin_new(e->oss, (uint32_t)opt_int(o, OPT_TIER_BLOCKSIZE),
                            (uint64_t)opt_int(o, OPT_TIER_DADISDKGETTRAFFICLIMIT), &e->origin);
    if (rc) {
        snprintf(err, errlen, "cannot set up the read path: %s", strerror(-rc));
        return rc;
    }
    e->top = efc_origin_src(e->origin);
    if (opt_distributed(o)) {
        char ns[CACHE_MAX_NS + 1];
        struct p2p_config pc = {
            .rootlist = opt_str(o, OPT_TIER_DADIADDR),
            .self_ip = opt_str(o, OPT_TIER_DADIP2PIP),
            .port = (uint16_t)opt_int(o, OPT_TIER_DADIP2PPORT),
            .role = (int)opt_int(o, OPT_TIER_DADIROOTCLIENTTYPE),
            .key_file = opt_str(o, OPT_TIER_DADIP2PKEYFILE),
            .fanout = (unsigned)opt_int(o, OPT_TIER_DADIP2PFANOUT),
            .ns = ns,
            .block_size = (uint32_t)opt_int(o, OPT_TIER_BLOCKSIZE),
            .page_size = (uint32_t)(opt_int(o, OPT_TIER_DADICACHEPAGESIZEKB) * 1024),
            .origin = e->top,
        };
        rc = name_space(e, ns, sizeof(ns));
        if (rc == 0)
            rc = p2p_new(&pc, &e->p2p, err, errlen);
        else
            snprintf(err, errlen, "bucket and host name too long for the distributed cache");
        if (rc)
            goto fail;
        /* A root that reads from the origin itself (type 1) keeps the origin under its cache;
           the P2P layer only serves its peers. */
        if (pc.role != 1)
            e->top = p2p_src(e->p2p);
    } else {
        rc = efc_first_new(e->top, EFC_FIRST_BYTES, &e->first);
        if (rc) {
            snprintf(err, errlen, "cannot set up the read path: %s", strerror(-rc));
            goto fail;
        }
        e->top = efc_first_src(e->first);
    }
    rc = cache_start(e, err, errlen);
    if (rc)
        goto fail;
    if (e->p2p) {
        rc = p2p_start(e->p2p, e->cache, err, errlen);
        if (rc)
            goto fail;
    }
    return 0;
fail:
    efc_chain_stop(e);
    return rc;
}

void efc_chain_stop(struct efc *e)
{
    p2p_stop_server(e->p2p); /* no peer reads the cache any more */
    if (e->cache) {
        struct cache_stats st;
        cache_get_stats(e->cache, &st);
        log_info(
            "cache: tier_read %llu (%llu bytes), hit %llu (%llu bytes), miss %llu (%llu "
            "bytes), direct %llu (%llu bytes), root_read_source %llu (%llu bytes); "
            "memory %llu/%llu MiB, disk %llu/%llu MiB",
            (unsigned long long)st.read, (unsigned long long)st.read_bytes,
            (unsigned long long)st.read_hit, (unsigned long long)st.read_hit_bytes,
            (unsigned long long)st.read_miss, (unsigned long long)st.read_miss_bytes,
            (unsigned long long)st.direct_read, (unsigned long long)st.direct_read_bytes,
            (unsigned long long)st.root_read_source, (unsigned long long)st.root_read_source_bytes,
            (unsigned long long)(st.mem_used >> 20), (unsigned long long)(st.mem_capacity >> 20),
            (unsigned long long)(st.disk_used >> 20), (unsigned long long)(st.disk_capacity >> 20));
    }
    cache_free(e->cache); /* waits for the queued disk writes: what was fetched persists */
    e->cache = NULL;
    e->top = NULL;
    p2p_free(e->p2p);
    e->p2p = NULL;
    efc_first_free(e->first);
    e->first = NULL;
    efc_origin_free(e->origin);
    e->origin = NULL;
}

int efc_tier_stats(struct efc *e, struct cache_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (e->cache) {
        cache_get_stats(e->cache, st);
        return 0;
    }
    if (e->p2p && e->readers) {
        /* an agent: its reads go through the cluster without a cache; the readers count them */
        struct efc_read_stats rs;
        efc_reader_pool_stats(e->readers, &rs);
        st->read = rs.tier_read;
        st->read_bytes = rs.tier_read_bytes;
        st->read_hit = rs.tier_hit;
        st->read_hit_bytes = rs.tier_hit_bytes;
        st->read_miss = rs.tier_miss;
        st->read_miss_bytes = rs.tier_miss_bytes;
        st->direct_read = rs.tier_direct;
        st->direct_read_bytes = rs.tier_direct_bytes;
        return 0;
    }
    return -ENOENT;
}

void efc_tier_clear(struct efc *e)
{
    if (e->cache)
        cache_clear_stats(e->cache);
    else if (e->p2p && e->readers)
        efc_reader_pool_clear_tier(e->readers);
}

void efc_chain_write_metrics(struct efc *e, struct buf *out)
{
    struct cache_stats st;
    if (efc_tier_stats(e, &st) == 0)
        cache_write_metrics(&st, e->cache ? CACHE_METRICS_TIERS : 0, out);
    if (e->origin)
        efc_origin_write_metrics(e->origin, out);
    if (e->first)
        efc_first_write_metrics(e->first, out);
    if (e->p2p)
        p2p_write_metrics(e->p2p, out);
}
