/* efc/efc.h - the daemon aliyun-alinas-efc: its context and the entry points of its parts.
 *
 * The daemon mounts one bucket (or a prefix of it) read-only through FUSE's low-level API:
 *
 *     main.c    command line, logging, the pre-mount bucket check, mount, ready line, detach,
 *               state file, the FUSE session loop, teardown
 *     fs.c      the FUSE operations (lookup, getattr, readdir(plus), open, read, statfs, ...)
 *     ns.c      the inode table (ns_i.h)
 *     dir.c     listings: visibility, directory streams, cached listings for lookups (dir_i.h)
 *     read.c    the read path: ranged reads with readahead, or through the block cache (read.h,
 *               cache/cache.h)
 *     chain.c   the block sources and the cache, stacked in one place (cache/blksrc.h):
 *               reads -> [block cache] -> [first blocks | P2P] -> origin
 *     first.c   first blocks that open's GET brought, served to the cache's fill (first_i.h)
 *     origin.c  the origin block source: ranged GETs on the object store (origin.h)
 *     fuseio.c  the session's /dev/fuse I/O (makes FUSE_PARALLEL_DIROPS reach the kernel)
 *     remote.c  the remote: the mount source "<bucket>.<host>:/<prefix>"
 *     state.c   the state file /run/efc/<mountpoint>.json
 *     handover.c runtime updates: a new daemon process takes the mount over (handover_i.h)
 *
 * struct efc is the one global of the daemon (main.c owns it; FUSE operations reach it as the
 * session's user data). Fields are set up before the session loop starts and read-only after,
 * except where a comment names the lock that protects them.
 *
 * Lock order of the daemon (never taken the other way round):
 *     directory handle mutex (fs.c)  ->  inode-table shard lock (ns.c)
 *                                    ->  listing cache lock (dir.c)
 * Shard locks, the listing cache lock, statfs_lock, probe_lock and fh_lock are leaves: nothing is
 * locked or sent on the network while one is held. The only lock held across a network call is a
 * directory handle's mutex while that handle fetches its next listing page (other readers of the
 * same handle need that page anyway). The read path's locks (read.c) are its own, below all these.
 */
#ifndef EFC_EFC_H
#define EFC_EFC_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "oss/oss.h"
#include "util/histo.h"
#include "util/opt.h"

#define EFC_PROGRAM "aliyun-alinas-efc"
#define EFC_SUBTYPE "aliyun-alinas-efc"

/* Largest FUSE read: the max_read mount option and conn->max_read must agree (libfuse checks). */
#define EFC_MAX_READ (1u << 20)

/* ---- the remote: the mount source --------------------------------------------------------- */

struct efc_remote {
    char *text;   /* as given, e.g. "mybucket.oss-cn-hangzhou.aliyuncs.com:/models/v1" */
    char *bucket; /* "mybucket" */
    char *host;   /* "oss-cn-hangzhou.aliyuncs.com" (with ":port" if one was given) */
    char *prefix; /* the key prefix shown as the mount's root: "" or "models/v1/" */
};

/* Parses "<bucket>.<host>[:port]:/<prefix>" (trailing '/' optional). The prefix may not have
 * empty, "." or ".." components. Returns 0, or -EINVAL with a one-line reason in ERR. */
int efc_remote_parse(const char *text, struct efc_remote *rm, char *err, size_t errlen);
void efc_remote_release(struct efc_remote *rm);

/* ---- the daemon context -------------------------------------------------------------------- */

struct efc_ns;
struct efc_lcache;
struct efc_meta;
struct efc_dirmem;
struct efc_reader_pool;
struct efc_origin;
struct efc_first;
struct p2p;
struct blksrc;
struct buf;
struct cache;
struct cache_stats;
struct efc_fh;
struct efc_probe_slot;
struct efc_fh_table;
struct efc_handover;
struct efc_journal;
struct efc_supwatch;
struct fuse_session;
struct mgmt;
struct warmup;
struct fuse_lowlevel_ops;

/* The FUSE requests the daemon counts (struct efc's fuse_ops, metric efc_fuse_requests_total). */
enum efc_fuse_op {
    EFC_FUSE_LOOKUP,
    EFC_FUSE_GETATTR,
    EFC_FUSE_OPEN,
    EFC_FUSE_READ,
    EFC_FUSE_RELEASE,
    EFC_FUSE_FLUSH,
    EFC_FUSE_FORGET, /* inodes forgotten (a batch forget counts each) */
    EFC_FUSE_OPENDIR,
    EFC_FUSE_READDIR,
    EFC_FUSE_OPS
};

struct efc {
    /* configuration */
    struct opt_set opts;
    enum oss_protocol protocol;
    char *passwd_file; /* NULL: none */
    struct efc_remote remote;
    char *mountpoint; /* absolute, canonical */
    bool foreground;
    int ready_fd; /* -1: none */
    char state_path[PATH_MAX];
    time_t mount_time;
    double attr_timeout; /* seconds, in entry and attribute replies */
    /* seconds, in the entry and attribute replies of names found: attr_timeout, or with the
       metadata cache on at least EFC_META_KERNEL_S (its answers hold until
       clear_metadata_cache, which takes the kernel's copies back: efc_fs_forget_kernel) */
    double found_timeout;
    uint64_t attr_ttl_ms;    /* how long a file's attributes serve getattr */
    uint64_t listing_ttl_ms; /* how long a completed listing answers lookups (0: never) */
    uint64_t readdir_ttl_ms; /* how long a listing replays for readdir (0: readdir cache off) */
    char bdi[32];            /* "major:minor" of the mount, for the kernel readahead; "" unknown */

    /* parts */
    struct oss_client *oss;
    struct efc_ns *ns;
    struct efc_dirmem *dirmem;
    struct efc_lcache *lcache;
    struct efc_meta *meta; /* the metadata cache; NULL: off (g_metadata_CacheEnable) */
    struct efc_reader_pool *readers;
    /* the block sources and the cache (chain.c) */
    struct efc_origin *origin; /* the object store as a block source */
    struct p2p *p2p;           /* the distributed cache (p2p/p2p.h); NULL: not distributed */
    struct efc_first *first;   /* first blocks open's GET brought (first_i.h); NULL in a cluster */
    struct blksrc *top;        /* the source the cache (else the readers) fetch from */
    struct cache *cache;       /* the block cache (cache/cache.h); NULL: none */
    struct fuse_session *se;
    struct mgmt *mgmt;     /* the management server; NULL: off */
    struct warmup *warmup; /* the warm-up engine; NULL: off */

    /* the last GetBucketStat, for statfs; protected by statfs_lock */
    pthread_mutex_t statfs_lock;
    bool statfs_valid;       /* st holds an answer */
    bool statfs_unsupported; /* the store has no GetBucketStat (S3) */
    bool statfs_busy;        /* a thread is fetching it */
    uint64_t statfs_ms;      /* when st (or the last failure) was learnt */
    struct oss_bucket_stat statfs;

    /* directories whose names lookups probed one by one lately, see fs.c's probes_in(); each
       slot protected by probe_lock (a leaf) */
    pthread_mutex_t probe_lock;
    pthread_cond_t probe_cond; /* a listing for lookups is done (CLOCK_MONOTONIC) */
    struct efc_probe_slot *probe_slots;

    /* open files, so teardown can close what the kernel never released; protected by fh_lock */
    pthread_mutex_t fh_lock;
    struct efc_fh *fh_list;
    /* handle numbers (fi->fh) to handles, see fs.c */
    struct efc_fh_table *fh_table;
    _Atomic bool readahead_set; /* the kernel readahead was raised */
    struct histo read_latency;  /* FUSE reads, arrival to reply (lock-free) */
    /* FUSE requests by kind (enum efc_fuse_op), for the metrics: what a workload costs the
       daemon in round trips through the kernel */
    _Atomic uint64_t fuse_ops[EFC_FUSE_OPS];

    /* FUSE INIT negotiation, see fuseio.c */
    bool want_parallel_dirops;           /* set by op_init before the INIT reply is sent */
    _Atomic bool init_seen;              /* the INIT request was read */
    _Atomic bool kernel_parallel_dirops; /* the kernel offers FUSE_PARALLEL_DIROPS */
    _Atomic uint64_t init_unique;        /* the INIT request's id until its reply goes out */
    _Atomic bool resent_seen;            /* a request resent by the kernel was read (logged once) */

    /* runtime updates: handing the mount to a new daemon process (handover.c); NULL: off */
    struct efc_handover *handover;
    /* the crash journal the supervisor restarts a dead daemon from (journal_i.h, supervise.c);
       NULL: the mount is not supervised */
    struct efc_journal *journal;
    /* the daemon's watch of its supervisor, which starts a new one if it dies (supervise.c);
       NULL: not watched */
    struct efc_supwatch *supwatch;
};

/* ---- fs.c ---------------------------------------------------------------------------------- */

/* The FUSE low-level operations; the session's user data must be the struct efc. */
const struct fuse_lowlevel_ops *efc_fs_ops(void);
/* Builds the namespace and listing cache for E (E->opts, E->remote and E->oss set). No threads are
 * started. Returns 0 or -errno. */
int efc_fs_setup(struct efc *e);
/* Starts the read path (after the daemon has forked): the block sources and the cache
 * (efc_chain_start), then the read workers. Returns 0, or -errno with a one-line reason naming
 * the option at fault in ERR. */
int efc_fs_start(struct efc *e, char *err, size_t errlen);
/* Closes what the kernel left open and frees everything efc_fs_setup/start made. */
void efc_fs_teardown(struct efc *e);
/* Takes back the names and attributes the kernel holds for the inodes the daemon knows (for
 * clearing the caches with the metadata cache on: names and attributes were given for
 * found_timeout). Returns the number of inodes, or -errno. */
int efc_fs_forget_kernel(struct efc *e);
/* The name of FUSE request kind OP ("lookup", ...), for the metrics. */
const char *efc_fuse_op_name(enum efc_fuse_op op);

/* ---- chain.c ------------------------------------------------------------------------------- */

/* Builds the block sources and the block cache from E's options: the origin always; the P2P
 * layer in distributed mode (opt_distributed: it reads the rootlist, and serves peers from the
 * cache); the cache when g_tier_EnableClusterCache is on, a memory or disk capacity is set and
 * g_tier_DadiRootClientType is not 2 (an agent stores nothing); the first-block layer
 * (first_i.h) over the origin when not distributed. Sets e->origin, e->p2p, e->first, e->cache
 * and e->top. Returns 0, or -errno with a one-line reason naming the option at fault in ERR. A
 * disk cache directory that cannot be used is not an error: the cache goes on without it (a
 * warning is logged). */
int efc_chain_start(struct efc *e, char *err, size_t errlen);
/* Frees them (the cache first, waiting for its queued disk writes). No reader may be open. */
void efc_chain_stop(struct efc *e);
/* The tier_* counters (and, with a cache, all its counters) into ST. Returns 0, or -ENOENT when
 * the mount reads neither through a cache nor through the cluster. */
int efc_tier_stats(struct efc *e, struct cache_stats *st);
/* Zeroes the tier_* counters. */
void efc_tier_clear(struct efc *e);
/* Appends the Prometheus lines of the chain (cache, origin) to OUT. */
void efc_chain_write_metrics(struct efc *e, struct buf *out);

/* ---- mgmt.c -------------------------------------------------------------------------------- */

/* Starts the management HTTP server (mgmt/mgmt.h) and the warm-up engine when g_server_Port is
 * not 0. Returns 0, or -errno with a one-line reason in ERR. */
int efc_mgmt_start(struct efc *e, char *err, size_t errlen);
/* Stops them (requests in progress finish; running warm-ups are canceled). Idempotent. */
void efc_mgmt_stop(struct efc *e);

/* ---- fuseio.c ------------------------------------------------------------------------------ */

/* Routes E->se's /dev/fuse I/O through efc so the INIT reply carries FUSE_PARALLEL_DIROPS, which
 * libfuse before 3.16 leaves out (see fuseio.c). Call after fuse_session_mount(). Returns 0 or
 * -errno. */
int efc_fuseio_install(struct efc *e);

/* Reads the kernel's FUSE INIT request from E->se and answers it on this thread, before the FUSE
 * workers start (main.c, a new mount): when the daemon says "ok" the kernel has its answer and
 * the crash journal the INIT a successor replays, so a daemon that dies at once can be replaced.
 * Returns 0 or -errno with ERR set. */
int efc_fuseio_answer_init(struct efc *e, char *err, size_t errlen);

/* ---- state.c ------------------------------------------------------------------------------- */

/* Directory of the state files: EFC_STATE_DIR in the environment, else /run/efc. */
const char *efc_state_dir(void);
/* "<dir>/<mountpoint with '/' replaced by '_'>.json". Returns 0 or -ENAMETOOLONG. */
int efc_state_path(const char *mountpoint, char *out, size_t outlen);
struct efc_update_result;
/* Writes E's state file atomically (a JSON object: version, pid, source, mountpoint, protocol,
 * passwd_file, start_time, options {"g_<name>": value, ...}, explicit [names given], and the
 * "update" section from LAST, the last runtime update's result, when not NULL). Returns 0 or
 * -errno; ERR receives a reason. */
int efc_state_write(const struct efc *e, const struct efc_update_result *last, char *err,
                    size_t errlen);
/* The JSON text of E's state (malloc'd), or NULL without memory. */
char *efc_state_json(const struct efc *e, long pid, const struct efc_update_result *last);

#endif
