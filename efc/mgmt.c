/* efc/mgmt.c - the daemon's side of the management server: the ops table mgmt/ calls (cache
 * counters, cache clearing, the daemon's own metrics) and the warm-up engine's backend on the
 * object store and the block cache.
 *
 * Design. mgmt/ knows nothing of the daemon: it gets callbacks (mgmt_ops) and a warm-up engine
 * whose backend (warmup_backend) lists and HEADs through oss/ and fills through cache_fill() (in a
 * cluster, p2p_fill(): each block at its owner). The
 * server starts after the FUSE session is set up and the block cache exists (efc_fs_start), so a
 * request never sees a half-built daemon, and stops before either goes.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cache/cache.h"
#include "efc/dir_i.h"
#include "efc/efc.h"
#include "efc/meta_i.h"
#include "efc/ns_i.h"
#include "efc/read.h"
#include "mgmt/mgmt.h"
#include "mgmt/warmup.h"
#include "p2p/p2p.h"
#include "util/buf.h"
#include "util/histo.h"
#include "util/log.h"
#include "util/prom.h"

/* ---- the warm-up backend --------------------------------------------------------------------- */

struct wu_list {
    int (*fn)(void *fnarg, const char *key, const char *etag, uint64_t size);
    void *fnarg;
};

static int wu_list_entry(void *arg, const struct oss_list_entry *le)
{
    struct wu_list *w = arg;
    /* Archive-class objects cannot be read (a listing does not say whether one was restored):
       skipped, so that one of them does not fail a whole directory's warm-up. */
    if (le->is_prefix || !oss_storage_class_readable(le->storage_class))
        return 0;
    return w->fn(w->fnarg, le->key, le->etag ? le->etag : "", le->size);
}

static int wu_list(void *arg, const char *prefix,
                   int (*fn)(void *fnarg, const char *key, const char *etag, uint64_t size),
                   void *fnarg)
{
    struct efc *e = arg;
    struct wu_list w = {.fn = fn, .fnarg = fnarg};
    struct oss_list l = {.prefix = prefix, .delimiter = NULL, .max_keys = 1000};

    /* Bounded by the listing itself: each page moves the continuation token forward. */
    for (;;) {
        int rc = oss_list_page(e->oss, &l, wu_list_entry, &w);
        if (rc) {
            if (rc < 0)
                log_warn("warm-up: listing of '%s' failed: %s", prefix, oss_last_error());
            return rc;
        }
        if (l.token[0] == '\0')
            return 0;
    }
}

static int wu_head(void *arg, const char *key, char *etag, size_t etaglen, uint64_t *size)
{
    struct efc *e = arg;
    struct oss_object_meta m;
    int rc = oss_head(e->oss, key, &m);

    if (rc)
        return rc;
    if (!oss_storage_class_readable(m.storage_class) && !m.restored)
        return -EACCES;
    snprintf(etag, etaglen, "%s", m.etag);
    *size = m.size;
    return 0;
}

static int wu_fill(void *arg, const char *key, const char *etag, uint64_t size, uint64_t index)
{
    struct efc *e = arg;
    /* In a cluster each block is loaded at its owner, which every node will ask for it. */
    if (e->p2p)
        return p2p_fill(e->p2p, e->cache, key, etag, size, index,
                        opt_bool(&e->opts, OPT_WARMUP_LOCALCOPY));
    return cache_fill(e->cache, key, etag, size, index, 0, NULL);
}

/* ---- the ops table -----------------------------------------------------------------------------
 */

static int op_cache_stats(void *arg, struct cache_stats *st)
{
    return efc_tier_stats(arg, st);
}

static void op_cache_clear_stats(void *arg)
{
    efc_tier_clear(arg);
}

static int op_cluster(void *arg, struct p2p_cluster_info *ci)
{
    struct efc *e = arg;
    return e->p2p ? p2p_get_cluster(e->p2p, ci) : -ENOENT;
}

static int op_reload_rootlist(void *arg, char *msg, size_t len)
{
    struct efc *e = arg;
    return e->p2p ? p2p_reload(e->p2p, msg, len) : -ENOENT;
}

static int op_clear_readdir(void *arg)
{
    struct efc *e = arg;
    uint64_t n = efc_lcache_clear(e->lcache);
    /* With the metadata cache on the kernel keeps names for long (found_timeout), some answered
       from the listings just dropped: take them back too, whichever cache is cleared last. */
    int k = e->meta ? efc_fs_forget_kernel(e) : 0;
    log_info("management: readdir cache cleared (%llu directories; %d inodes taken back from the "
             "kernel)",
             (unsigned long long)n, k);
    return 0;
}

static int op_clear_metadata(void *arg)
{
    struct efc *e = arg;
    if (e->meta == NULL) {
        log_info("management: metadata cache clear asked, but it is off (g_metadata_CacheEnable)");
        return 0;
    }
    uint64_t n = efc_meta_clear(e->meta);
    /* The kernel was given the cache's answers for long (found_timeout): take them back. */
    int k = efc_fs_forget_kernel(e);
    log_info("management: metadata cache cleared (%llu entries; %d inodes taken back from the "
             "kernel)",
             (unsigned long long)n, k);
    return 0;
}

static void op_metrics(void *arg, struct buf *out)
{
    struct efc *e = arg;
    struct efc_lcache_stats ls;
    struct efc_ns_stats ns;
    struct efc_read_stats rs;

    efc_chain_write_metrics(e, out);
    oss_write_metrics(e->oss, out);
    histo_write_prom(&e->read_latency, "efc_fuse_read_duration_seconds",
                     "FUSE read requests, from arrival to reply", out);
    prom_header(out, "efc_fuse_requests_total", "FUSE requests the daemon answered, by kind",
                "counter");
    for (int op = 0; op < EFC_FUSE_OPS; op++) {
        char label[32];
        snprintf(label, sizeof(label), "op=\"%s\"", efc_fuse_op_name((enum efc_fuse_op)op));
        prom_sample_u64(out, "efc_fuse_requests_total", label,
                        atomic_load_explicit(&e->fuse_ops[op], memory_order_relaxed));
    }

    efc_lcache_get_stats(e->lcache, &ls);
    prom_gauge(out, "efc_readdir_cache_dirs", "directory listings in the readdir cache",
               (double)ls.dirs);
    prom_gauge(out, "efc_readdir_cache_bytes", "memory held by the readdir cache",
               (double)ls.bytes);
    prom_counter(out, "efc_readdir_cache_hits_total", "lookups and opendirs the cache answered",
                 ls.hits);
    prom_counter(out, "efc_readdir_cache_misses_total", "lookups and opendirs it could not",
                 ls.misses);
    prom_counter(out, "efc_readdir_cache_expired_total", "listings dropped for their age",
                 ls.expired);
    prom_counter(out, "efc_readdir_cache_evicted_total", "listings dropped for room", ls.evicted);

    prom_gauge(out, "efc_metadata_cache_enabled", "1 when g_metadata_CacheEnable is on",
               e->meta ? 1 : 0);
    if (e->meta) {
        struct efc_meta_stats ms;
        efc_meta_get_stats(e->meta, &ms);
        prom_gauge(out, "efc_metadata_cache_entries", "entries in the metadata cache",
                   (double)ms.entries);
        prom_gauge(out, "efc_metadata_cache_bytes", "memory held by the metadata cache",
                   (double)ms.bytes);
        prom_counter(out, "efc_metadata_cache_hits_total", "answers from the metadata cache",
                     ms.hits);
        prom_counter(out, "efc_metadata_cache_negative_hits_total",
                     "answers of 'no such name' from the metadata cache", ms.negative_hits);
        prom_counter(out, "efc_metadata_cache_misses_total", "questions it could not answer",
                     ms.misses);
        prom_counter(out, "efc_metadata_cache_evicted_total", "entries dropped for room",
                     ms.evicted);
    }

    efc_ns_get_stats(e->ns, &ns);
    prom_gauge(out, "efc_inodes", "inodes the kernel knows of, the root included",
               (double)ns.nodes);

    if (e->readers) {
        efc_reader_pool_stats(e->readers, &rs);
        prom_counter(out, "efc_read_requests_total", "reads answered with data", rs.reads);
        prom_counter(out, "efc_read_bytes_total", "bytes those reads returned", rs.bytes_read);
        prom_gauge(out, "efc_open_files", "files open through the mount", (double)rs.readers);
        prom_gauge(out, "efc_readahead_bytes", "readahead buffers held (no block cache)",
                   (double)rs.mem_used);
    }
    prom_gauge(out, "efc_start_time_seconds", "when the daemon mounted, Unix time",
               (double)e->mount_time);
}

int efc_mgmt_start(struct efc *e, char *err, size_t errlen)
{
    int64_t port = opt_int(&e->opts, OPT_SERVER_PORT);
    int rc;

    if (port == 0 || e->mgmt)
        return 0;
    if (e->cache || e->p2p) {
        struct warmup_config wc = {
            .root_prefix = e->remote.prefix,
            .workers = (unsigned)opt_int(&e->opts, OPT_WARMUP_WORKERS),
            .max_tasks = (unsigned)opt_int(&e->opts, OPT_WARMUP_MAXTASKS),
            .max_age_s = (uint64_t)opt_int(&e->opts, OPT_WARMUP_MAXAGESEC),
        };
        struct warmup_backend be = {
            .arg = e,
            .list = wu_list,
            .head = wu_head,
            .fill = wu_fill,
            .block_size = (uint64_t)opt_int(&e->opts, OPT_TIER_BLOCKSIZE),
        };
        rc = warmup_new(&wc, &be, &e->warmup);
        if (rc) {
            snprintf(err, errlen, "cannot start the warm-up engine: %s", strerror(-rc));
            return rc;
        }
    }
    static const struct mgmt_ops ops_template = {
        .cache_stats = op_cache_stats,
        .cache_clear_stats = op_cache_clear_stats,
        .clear_readdir_cache = op_clear_readdir,
        .clear_metadata_cache = op_clear_metadata,
        .metrics = op_metrics,
        .cluster = op_cluster,
        .reload_rootlist = op_reload_rootlist,
    };
    struct mgmt_ops ops = ops_template;
    ops.arg = e;
    struct mgmt_config mc = {
        .bind_addr = opt_str(&e->opts, OPT_SERVER_BINDADDR),
        .port = (uint16_t)port,
        .warmup = e->warmup,
    };
    rc = mgmt_start(&mc, &ops, &e->mgmt, err, errlen);
    if (rc) {
        warmup_free(e->warmup);
        e->warmup = NULL;
        return rc;
    }
    log_info("management API on %s:%u%s", mc.bind_addr, (unsigned)port,
             e->warmup ? "" : " (no block cache: warm-up unavailable)");
    return 0;
}

void efc_mgmt_stop(struct efc *e)
{
    mgmt_stop(e->mgmt);
    e->mgmt = NULL;
    warmup_free(e->warmup);
    e->warmup = NULL;
}
