/* util/opt.h - the one option table.
 *
 * Every tunable of efc is one row of opt_table[] (opt.c): its name, type, default, bounds,
 * whether it may change while mounted, and its help line. That table drives the daemon's command
 * line (--<name>=<value>), the mount helper (g_<name>=<value> → --<name>=<value>), --help, the
 * state file used by runtime updates, and the management API. Nothing else lists options.
 *
 * Names are the seed's without the "g_" prefix (tier_DadiMemCacheCapacityMB, readdircache_Enable,
 * ...) plus efc's own under the same scheme (oss_Endpoint, log_Level, ...).
 */
#ifndef EFC_UTIL_OPT_H
#define EFC_UTIL_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum opt_type {
    OPT_BOOL,   /* true/false, yes/no, on/off, 1/0 */
    OPT_INT,    /* decimal integer within [min, max] */
    OPT_SIZE,   /* bytes: decimal with an optional K/M/G/T suffix (powers of 1024), in [min, max] */
    OPT_STRING, /* any text up to OPT_MAX_VALUE bytes, checked by the row's validator if any */
};

#define OPT_MAX_VALUE 4095

enum opt_id {
    /* credentials and the origin */
    OPT_OSS_STSFILE,
    OPT_OSS_ENDPOINT,
    OPT_OSS_SIGNVERSION,
    OPT_OSS_REGION,
    OPT_OSS_PATHSTYLE,
    OPT_OSS_MAXCONNECTIONS,
    OPT_OSS_CONNECTTIMEOUTMS,
    OPT_OSS_STALLTIMEOUTMS,
    OPT_OSS_RETRYBUDGETMS,
    /* cache */
    OPT_TIER_ENABLECLUSTERCACHE,
    OPT_TIER_DADIISDISTRIBUTED,
    OPT_TIER_DADIADDR,
    OPT_TIER_DADIROOTCLIENTTYPE,
    OPT_TIER_DADIMEMCACHECAPACITYMB,
    OPT_TIER_DADIDISKCACHECAPACITYMB,
    OPT_TIER_DADIDISKCACHEPATH,
    OPT_TIER_DADIP2PPORT,
    OPT_TIER_DADIP2PIP,
    OPT_TIER_DADIP2PKEYFILE,
    OPT_TIER_DADIP2PFANOUT,
    OPT_TIER_DADISDKGETTRAFFICLIMIT,
    OPT_TIER_DADICACHEPAGESIZEKB,
    OPT_TIER_BLOCKSIZE,
    /* metadata and directory caches */
    OPT_METADATA_CACHEENABLE,
    OPT_READDIRCACHE_ENABLE,
    OPT_READDIRCACHE_MAXCOUNT,
    OPT_READDIRCACHE_MAXSIZE,
    OPT_READDIRCACHE_REMAINTIME,
    /* read path */
    OPT_READ_AHEADKB,
    OPT_READ_MAXINFLIGHT,
    /* FUSE */
    OPT_FUSE_MAXTHREADS,
    OPT_FUSE_ATTRTIMEOUTSEC,
    /* management */
    OPT_SERVER_PORT,
    OPT_SERVER_BINDADDR,
    OPT_WARMUP_WORKERS,
    OPT_WARMUP_MAXTASKS,
    OPT_WARMUP_MAXAGESEC,
    OPT_WARMUP_LOCALCOPY,
    /* the supervisor (efc/supervise.c) */
    OPT_SUPERVISOR_ENABLE,
    OPT_SUPERVISOR_WATCHDOGSEC,
    OPT_SUPERVISOR_MAXRESTARTS,
    /* logging */
    OPT_LOG_LEVEL,
    OPT_LOG_FILE,
    OPT_LOG_MAXBYTES,
    OPT_LOG_FILECOUNT,
    OPT__COUNT
};

struct opt_def {
    const char *name; /* without "g_" */
    enum opt_type type;
    const char *defval; /* textual default ("" for none) */
    int64_t min, max;   /* OPT_INT, OPT_SIZE */
    bool runtime;       /* may be changed by a runtime update (a daemon restart) */
    const char *help;
    /* Extra check for the value (already type-checked); returns 0 or -EINVAL with a reason. */
    int (*validate)(const char *value, char *err, size_t errlen);
};

extern const struct opt_def opt_table[OPT__COUNT];

struct opt_value {
    bool set;  /* given explicitly (else the default) */
    int64_t i; /* OPT_BOOL (0/1), OPT_INT, OPT_SIZE */
    char *s;   /* canonical text of the value, always set after opt_init */
};

struct opt_set {
    struct opt_value v[OPT__COUNT];
};

/* Fills every option with its default. Returns 0 or -ENOMEM. */
int opt_init(struct opt_set *o);
void opt_release(struct opt_set *o);
/* Deep copy. Returns 0 or -ENOMEM. */
int opt_copy(struct opt_set *dst, const struct opt_set *src);

/* Looks NAME up (with or without a leading "g_", case-sensitive as in the seed); -1 if unknown. */
int opt_lookup(const char *name, size_t len);

/* Parses and validates VALUE for option ID and stores it. Returns 0, or -EINVAL with a one-line
 * reason naming the option in ERR (e.g. "g_tier_BlockSize: must be a power of two"). */
int opt_set_value(struct opt_set *o, int id, const char *value, char *err, size_t errlen);

/* "name=value" (name with or without g_). Returns 0, -ENOENT for an unknown name (ERR names it),
 * or -EINVAL. */
int opt_set_kv(struct opt_set *o, const char *kv, char *err, size_t errlen);

/* Whether O asks for the distributed cache: the cache on (g_tier_EnableClusterCache), distributed
 * (g_tier_DadiIsDistributed, true by default) and either a capacity to share or the agent role.
 * A mount with no cache options at all (the guide's basic mount) is not: it needs no rootlist. */
bool opt_distributed(const struct opt_set *o);

/* Checks relations between options (e.g. page size divides block size). Returns 0 or -EINVAL. */
int opt_check(const struct opt_set *o, char *err, size_t errlen);

static inline bool opt_bool(const struct opt_set *o, enum opt_id id)
{
    return o->v[id].i != 0;
}
static inline int64_t opt_int(const struct opt_set *o, enum opt_id id)
{
    return o->v[id].i;
}
static inline const char *opt_str(const struct opt_set *o, enum opt_id id)
{
    return o->v[id].s;
}

/* Writes "--help" text for every option to F (a FILE *). */
void opt_print_help(void *f);

#endif
