/* util/opt.c - the option table and its parser; see opt.h.
 *
 * Values are checked when they are set (type, bounds, the row's validator) and again as a whole by
 * opt_check() for relations between options. Every error names the option the way the user wrote
 * it in the mount command (g_<name>), so a failed mount says exactly what to fix.
 */
#include "util/opt.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

static int v_abs_path(const char *v, char *err, size_t errlen)
{
    if (v[0] != '\0' && v[0] != '/') {
        snprintf(err, errlen, "must be an absolute path");
        return -EINVAL;
    }
    return 0;
}

static int v_cache_dirs(const char *v, char *err, size_t errlen)
{
    const char *p = v;
    if (*p == '\0')
        return 0;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || p[0] != '/' || p[n - 1] != '/') {
            snprintf(err, errlen,
                     "each directory must be an absolute path ending in '/' "
                     "(several separated by ':')");
            return -EINVAL;
        }
        if (end == NULL)
            return 0;
        p = end + 1;
    }
}

static bool pow2(int64_t x)
{
    return x > 0 && (x & (x - 1)) == 0;
}

static int v_block_size(const char *v, char *err, size_t errlen)
{
    int64_t x = strtoll(v, NULL, 10);
    if (!pow2(x)) {
        snprintf(err, errlen, "must be a power of two");
        return -EINVAL;
    }
    return 0;
}

static int v_sign_version(const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "1") != 0 && strcmp(v, "4") != 0) {
        snprintf(err, errlen, "must be 1 or 4");
        return -EINVAL;
    }
    return 0;
}

static int v_log_level(const char *v, char *err, size_t errlen)
{
    if (log_level_parse(v) < 0) {
        snprintf(err, errlen, "must be one of error, warn, info, debug, trace");
        return -EINVAL;
    }
    return 0;
}

static int v_ip(const char *v, char *err, size_t errlen)
{
    unsigned char a[16];
    if (v[0] == '\0' || inet_pton(AF_INET, v, a) == 1 || inet_pton(AF_INET6, v, a) == 1)
        return 0;
    snprintf(err, errlen, "must be an IPv4 or IPv6 address");
    return -EINVAL;
}

static int v_endpoints(const char *v, char *err, size_t errlen)
{
    /* The full check (oss_endpoint_list_parse) happens when the client is made; here only the
       shape, so the mount helper can refuse nonsense before starting anything. */
    const char *p = v;
    if (*p == '\0')
        return 0;
    for (;;) {
        while (*p == ' ')
            p++;
        if (strncmp(p, "http://", 7) != 0 && strncmp(p, "https://", 8) != 0) {
            snprintf(err, errlen, "each endpoint must start with http:// or https://");
            return -EINVAL;
        }
        p = strpbrk(p, ",|");
        if (p == NULL)
            return 0;
        p++;
    }
}

#define I64MAX INT64_MAX
/* clang-format off */
const struct opt_def opt_table[OPT__COUNT] = {
    [OPT_OSS_STSFILE] = {"oss_STSFile", OPT_STRING, "", 0, 0, true,
        "STS credentials file (JSON with AccessKeyId, AccessKeySecret, SecurityToken, Expiration); reloaded when it changes", v_abs_path},
    [OPT_OSS_ENDPOINT] = {"oss_Endpoint", OPT_STRING, "", 0, 0, true,
        "where requests go, e.g. http://127.0.0.1:9000; several, separated by '|', are a failover list (primary first); Host keeps the bucket's domain", v_endpoints},
    [OPT_OSS_SIGNVERSION] = {"oss_SignVersion", OPT_INT, "4", 1, 4, true,
        "OSS signature version, 1 or 4", v_sign_version},
    [OPT_OSS_REGION] = {"oss_Region", OPT_STRING, "", 0, 0, true,
        "region for signature V4 / SigV4 (default: from the endpoint's host name)", NULL},
    [OPT_OSS_PATHSTYLE] = {"oss_PathStyle", OPT_BOOL, "false", 0, 1, true,
        "protocol=s3: path-style requests (http://host/bucket/key), as MinIO-like servers need", NULL},
    [OPT_OSS_MAXCONNECTIONS] = {"oss_MaxConnections", OPT_INT, "64", 1, 1024, true,
        "parallel connections to the origin", NULL},
    [OPT_OSS_CONNECTTIMEOUTMS] = {"oss_ConnectTimeoutMs", OPT_INT, "3000", 100, 600000, true,
        "connect timeout per attempt (ms)", NULL},
    [OPT_OSS_STALLTIMEOUTMS] = {"oss_StallTimeoutMs", OPT_INT, "10000", 500, 600000, true,
        "an attempt that receives nothing for this long is abandoned and retried (ms)", NULL},
    [OPT_OSS_RETRYBUDGETMS] = {"oss_RetryBudgetMs", OPT_INT, "30000", 100, 3600000, true,
        "how long one request may keep retrying before it fails with EIO/ETIMEDOUT (ms)", NULL},

    [OPT_TIER_ENABLECLUSTERCACHE] = {"tier_EnableClusterCache", OPT_BOOL, "true", 0, 1, true,
        "enable the cache (false: protocol translation only)", NULL},
    [OPT_TIER_DADIISDISTRIBUTED] = {"tier_DadiIsDistributed", OPT_BOOL, "true", 0, 1, true,
        "true: share the cache with the nodes of the rootlist; false: single node", NULL},
    [OPT_TIER_DADIADDR] = {"tier_DadiAddr", OPT_STRING, "", 0, 0, true,
        "rootlist file (<id>:<ip>:<port> lines), required in distributed mode", v_abs_path},
    [OPT_TIER_DADIROOTCLIENTTYPE] = {"tier_DadiRootClientType", OPT_INT, "0", 0, 2, true,
        "node role: 0 root and agent, 1 root (serves cache only), 2 agent (stores nothing)", NULL},
    [OPT_TIER_DADIMEMCACHECAPACITYMB] = {"tier_DadiMemCacheCapacityMB", OPT_INT, "0", 0, I64MAX >> 20, false,
        "memory cache capacity in MB (0: no memory cache)", NULL},
    [OPT_TIER_DADIDISKCACHECAPACITYMB] = {"tier_DadiDiskCacheCapacityMB", OPT_INT, "0", 0, I64MAX >> 20, false,
        "disk cache capacity per directory in MB (0: no disk cache)", NULL},
    [OPT_TIER_DADIDISKCACHEPATH] = {"tier_DadiDiskCachePath", OPT_STRING, "", 0, 0, false,
        "disk cache directories, each absolute and ending in '/', separated by ':'", v_cache_dirs},
    [OPT_TIER_DADIP2PPORT] = {"tier_DadiP2PPort", OPT_INT, "17980", 1, 65535, true,
        "P2P port", NULL},
    [OPT_TIER_DADIP2PIP] = {"tier_DadiP2PIP", OPT_STRING, "", 0, 0, true,
        "address this node listens on for P2P and is known by in the rootlist (default: the rootlist line that is ours)", v_ip},
    [OPT_TIER_DADIP2PKEYFILE] = {"tier_DadiP2PKeyFile", OPT_STRING, "", 0, 0, true,
        "shared secret file (mode 600) that peers must prove they hold; every node of the rootlist needs the same (default: no peer authentication)", v_abs_path},
    [OPT_TIER_DADIP2PFANOUT] = {"tier_DadiP2PFanout", OPT_INT, "4", 1, 16, true,
        "peers an owner serves a hot block to at once besides its children in the block's fan-out tree; the others get it from their parents in the tree", NULL},
    [OPT_TIER_DADISDKGETTRAFFICLIMIT] = {"tier_DadiSdkGetTrafficLimit", OPT_SIZE, "3221225472", 0, I64MAX, true,
        "origin read bandwidth cap in bytes/s (0: none)", NULL},
    [OPT_TIER_DADICACHEPAGESIZEKB] = {"tier_DadiCachePageSizeKB", OPT_INT, "16", 4, 1024, false,
        "cache page size in KB: the unit of validity inside a block (power of two)", v_block_size},
    [OPT_TIER_BLOCKSIZE] = {"tier_BlockSize", OPT_SIZE, "1048576", 65536, 64 << 20, true,
        "cache block size in bytes (power of two, 64K..64M)", v_block_size},

    [OPT_METADATA_CACHEENABLE] = {"metadata_CacheEnable", OPT_BOOL, "false", 0, 1, true,
        "cache object metadata (fewer HEAD requests; changes visible only after clear_metadata_cache)", NULL},
    [OPT_READDIRCACHE_ENABLE] = {"readdircache_Enable", OPT_BOOL, "true", 0, 1, true,
        "cache directory listings", NULL},
    [OPT_READDIRCACHE_MAXCOUNT] = {"readdircache_MaxCount", OPT_INT, "20000", 0, 100000000, true,
        "most directory listings the readdir cache holds", NULL},
    [OPT_READDIRCACHE_MAXSIZE] = {"readdircache_MaxSize", OPT_SIZE, "104857600", 0, I64MAX, true,
        "memory the readdir cache may use (bytes)", NULL},
    [OPT_READDIRCACHE_REMAINTIME] = {"readdircache_RemainTime", OPT_INT, "3600", 0, 315360000, true,
        "seconds a cached listing stays valid", NULL},

    [OPT_READ_AHEADKB] = {"read_AheadKB", OPT_INT, "32768", 0, 1 << 22, true,
        "sequential readahead window per open file (KB; 0: off)", NULL},
    [OPT_READ_MAXINFLIGHT] = {"read_MaxInflight", OPT_INT, "8", 1, 256, true,
        "ranged GETs in flight per sequential stream", NULL},

    [OPT_FUSE_MAXTHREADS] = {"fuse_MaxThreads", OPT_INT, "64", 1, 1024, true,
        "FUSE worker threads at most", NULL},
    [OPT_FUSE_ATTRTIMEOUTSEC] = {"fuse_AttrTimeoutSec", OPT_INT, "1", 0, 86400, true,
        "seconds the kernel may cache attributes and names (metadata cache on: longer)", NULL},

    [OPT_SERVER_PORT] = {"server_Port", OPT_INT, "0", 0, 65535, true,
        "management HTTP port (0: off)", NULL},
    [OPT_SERVER_BINDADDR] = {"server_BindAddr", OPT_STRING, "127.0.0.1", 0, 0, true,
        "address the management port listens on", v_ip},
    [OPT_WARMUP_WORKERS] = {"warmup_Workers", OPT_INT, "8", 1, 256, true,
        "warm-up block fills in flight over all tasks", NULL},
    [OPT_WARMUP_MAXTASKS] = {"warmup_MaxTasks", OPT_INT, "10000", 1, 1000000, true,
        "warm-up tasks kept in the history (finished ones go first)", NULL},
    [OPT_WARMUP_MAXAGESEC] = {"warmup_MaxAgeSec", OPT_INT, "604800", 1, 315360000, true,
        "seconds a finished warm-up task stays in the history", NULL},
    [OPT_WARMUP_LOCALCOPY] = {"warmup_LocalCopy", OPT_BOOL, "false", 0, 1, true,
        "distributed mode: a warm-up loads each block at its owner and, when true, on this node too", NULL},

    [OPT_SUPERVISOR_ENABLE] = {"supervisor_Enable", OPT_BOOL, "true", 0, 1, false,
        "a supervisor process holds the mount and starts a new daemon if this one dies or stops answering", NULL},
    [OPT_SUPERVISOR_WATCHDOGSEC] = {"supervisor_WatchdogSec", OPT_INT, "60", 0, 3600, false,
        "seconds a daemon may leave the supervisor's probe unanswered before it is replaced (0: no watchdog)", NULL},
    [OPT_SUPERVISOR_MAXRESTARTS] = {"supervisor_MaxRestarts", OPT_INT, "5", 1, 1000, false,
        "restarts in a row that fail or die within 10 s before the mount is left answering EIO", NULL},

    [OPT_LOG_LEVEL] = {"log_Level", OPT_STRING, "info", 0, 0, true,
        "error, warn, info, debug or trace", v_log_level},
    [OPT_LOG_FILE] = {"log_File", OPT_STRING, "", 0, 0, true,
        "log file (default: /var/log/aliyun/alinas/efc-<bucket>.log when detached, stderr in the foreground)", v_abs_path},
    [OPT_LOG_MAXBYTES] = {"log_MaxBytes", OPT_SIZE, "1048576", 0, I64MAX, true,
        "size at which the log file is rotated, as the CPFS client's logging_max_bytes (0: never)", NULL},
    [OPT_LOG_FILECOUNT] = {"log_FileCount", OPT_INT, "10", 1, 1000, true,
        "log files kept, the current one included, as the CPFS client's logging_file_count", NULL},
};
/* clang-format on */

int opt_lookup(const char *name, size_t len)
{
    if (len >= 2 && strncmp(name, "g_", 2) == 0) {
        name += 2;
        len -= 2;
    }
    for (int i = 0; i < OPT__COUNT; i++)
        if (strlen(opt_table[i].name) == len && strncmp(opt_table[i].name, name, len) == 0)
            return i;
    return -1;
}

static int fail(char *err, size_t errlen, int id, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "g_%s: %s", opt_table[id].name, why);
    return -EINVAL;
}

static int parse_bool(const char *v, int64_t *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_int(const char *v, bool suffixes, int64_t *out)
{
    const char *p = v;
    int64_t x = 0;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    while (*p >= '0' && *p <= '9') {
        if (x > (INT64_MAX - 9) / 10)
            return -ERANGE;
        x = x * 10 + (*p++ - '0');
    }
    if (suffixes && *p) {
        int shift;
        switch (toupper((unsigned char)*p)) {
        case 'K':
            shift = 10;
            break;
        case 'M':
            shift = 20;
            break;
        case 'G':
            shift = 30;
            break;
        case 'T':
            shift = 40;
            break;
        default:
            return -EINVAL;
        }
        p++;
        if (toupper((unsigned char)*p) == 'I')
            p++;
        if (toupper((unsigned char)*p) == 'B')
            p++;
        if (x > (INT64_MAX >> shift))
            return -ERANGE;
        x <<= shift;
    }
    if (*p != '\0')
        return -EINVAL;
    *out = x;
    return 0;
}

int opt_set_value(struct opt_set *o, int id, const char *value, char *err, size_t errlen)
{
    const struct opt_def *d = &opt_table[id];
    int64_t x = 0;
    char canon[32], why[256];
    const char *text = value;

    if (value == NULL)
        return fail(err, errlen, id, "missing value");
    if (strlen(value) > OPT_MAX_VALUE)
        return fail(err, errlen, id, "value too long");
    switch (d->type) {
    case OPT_BOOL:
        if (parse_bool(value, &x))
            return fail(err, errlen, id, "must be true or false");
        text = x ? "true" : "false";
        break;
    case OPT_INT:
    case OPT_SIZE: {
        int rc = parse_int(value, d->type == OPT_SIZE, &x);
        if (rc || x < d->min || x > d->max) {
            snprintf(why, sizeof(why), "must be %s from %lld to %lld",
                     d->type == OPT_SIZE ? "a size (bytes, K/M/G/T suffix allowed)" : "a number",
                     (long long)d->min, (long long)d->max);
            return fail(err, errlen, id, why);
        }
        snprintf(canon, sizeof(canon), "%lld", (long long)x);
        text = canon;
        break;
    }
    case OPT_STRING:
        for (const char *p = value; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return fail(err, errlen, id, "control characters are not allowed");
        break;
    }
    if (d->validate && d->validate(text, why, sizeof(why)) != 0)
        return fail(err, errlen, id, why);
    char *s = strdup(text);
    if (s == NULL)
        return -ENOMEM;
    free(o->v[id].s);
    o->v[id].s = s;
    o->v[id].i = x;
    o->v[id].set = true;
    return 0;
}

int opt_init(struct opt_set *o)
{
    char err[256];
    memset(o, 0, sizeof(*o));
    for (int i = 0; i < OPT__COUNT; i++) {
        int rc = opt_set_value(o, i, opt_table[i].defval, err, sizeof(err));
        if (rc) {
            /* A default that does not pass its own row is a bug in the table. */
            log_error("option table: %s", err);
            opt_release(o);
            return rc;
        }
        o->v[i].set = false;
    }
    return 0;
}

void opt_release(struct opt_set *o)
{
    for (int i = 0; i < OPT__COUNT; i++) {
        free(o->v[i].s);
        o->v[i].s = NULL;
    }
}

int opt_copy(struct opt_set *dst, const struct opt_set *src)
{
    memset(dst, 0, sizeof(*dst));
    for (int i = 0; i < OPT__COUNT; i++) {
        dst->v[i] = src->v[i];
        dst->v[i].s = src->v[i].s ? strdup(src->v[i].s) : NULL;
        if (src->v[i].s && dst->v[i].s == NULL) {
            opt_release(dst);
            return -ENOMEM;
        }
    }
    return 0;
}

int opt_set_kv(struct opt_set *o, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    size_t nl = eq ? (size_t)(eq - kv) : strlen(kv);
    int id = opt_lookup(kv, nl);
    if (id < 0) {
        if (err && errlen)
            snprintf(err, errlen, "unknown option '%.*s'", (int)(nl > 200 ? 200 : nl), kv);
        return -ENOENT;
    }
    if (eq == NULL) {
        /* A bare boolean name means true, as mount options do. */
        if (opt_table[id].type == OPT_BOOL)
            return opt_set_value(o, id, "true", err, errlen);
        return fail(err, errlen, id, "missing value (expected name=value)");
    }
    return opt_set_value(o, id, eq + 1, err, errlen);
}

bool opt_distributed(const struct opt_set *o)
{
    return opt_bool(o, OPT_TIER_ENABLECLUSTERCACHE) && opt_bool(o, OPT_TIER_DADIISDISTRIBUTED) &&
           (opt_int(o, OPT_TIER_DADIMEMCACHECAPACITYMB) > 0 ||
            opt_int(o, OPT_TIER_DADIDISKCACHECAPACITYMB) > 0 ||
            opt_int(o, OPT_TIER_DADIROOTCLIENTTYPE) == 2);
}

int opt_check(const struct opt_set *o, char *err, size_t errlen)
{
    int64_t page = opt_int(o, OPT_TIER_DADICACHEPAGESIZEKB) * 1024;
    int64_t block = opt_int(o, OPT_TIER_BLOCKSIZE);
    if (page > block)
        return fail(err, errlen, OPT_TIER_DADICACHEPAGESIZEKB,
                    "a page cannot be larger than g_tier_BlockSize");
    if (opt_int(o, OPT_TIER_DADIDISKCACHECAPACITYMB) > 0 &&
        opt_str(o, OPT_TIER_DADIDISKCACHEPATH)[0] == '\0')
        return fail(err, errlen, OPT_TIER_DADIDISKCACHEPATH,
                    "required when g_tier_DadiDiskCacheCapacityMB is not 0");
    if (opt_int(o, OPT_TIER_DADIROOTCLIENTTYPE) == 2 && opt_bool(o, OPT_TIER_ENABLECLUSTERCACHE) &&
        !opt_bool(o, OPT_TIER_DADIISDISTRIBUTED))
        return fail(
            err, errlen, OPT_TIER_DADIROOTCLIENTTYPE,
            "2 (an agent) reads through the cluster: it needs g_tier_DadiIsDistributed=true");
    if (opt_distributed(o) && opt_str(o, OPT_TIER_DADIADDR)[0] == '\0')
        return fail(err, errlen, OPT_TIER_DADIADDR,
                    "required in distributed mode (g_tier_DadiIsDistributed=true, the default): "
                    "give the rootlist file, or set g_tier_DadiIsDistributed=false for a "
                    "single-node cache");
    return 0;
}

void opt_print_help(void *fp)
{
    FILE *f = fp;
    for (int i = 0; i < OPT__COUNT; i++) {
        const struct opt_def *d = &opt_table[i];
        fprintf(f, "  --%s=<%s>  (mount option g_%s; default %s%s)\n      %s\n", d->name,
                d->type == OPT_BOOL   ? "bool"
                : d->type == OPT_INT  ? "int"
                : d->type == OPT_SIZE ? "bytes"
                                      : "text",
                d->name, d->defval[0] ? d->defval : "none",
                d->runtime ? "" : "; fixed while mounted", d->help);
    }
}
