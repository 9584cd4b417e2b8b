/* util/mountopt.h - what mount(8) hands a mount helper, parsed without side effects.
 *
 * mount(8) runs `/sbin/mount.alinas <source> <dir> [-sfnv] [-N ns] [-o opts] [-t type]`, with the
 * flags possibly before the operands and -o possibly repeated. Three pieces of that are untrusted
 * text: the command line, the comma-separated option string and the source
 * `<bucket>.<host>[:port]:/<prefix>`. Each is parsed here by a pure function (no file system, no
 * environment) so that they can be unit-tested and fuzzed (tests/fuzz/fuzz_mount_args.c); the
 * helper (efc/mount_alinas.c) does the checks that touch the system. The daemon may use
 * mountopt_source_parse() for its <source> operand, so both read it the same way.
 *
 * Every g_* option goes through the one option table (util/opt.h); this file only knows the
 * helper's own options (efc, protocol, passwd_file, trybind) and the generic mount options that
 * are accepted and ignored.
 */
#ifndef EFC_UTIL_MOUNTOPT_H
#define EFC_UTIL_MOUNTOPT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/opt.h"

/* ---- the helper's command line ---- */

struct mountopt_cmd {
    const char *source; /* first operand (points into argv) */
    const char *dir;    /* second operand (points into argv) */
    bool fake;          /* -f: validate only */
    bool verbose;       /* -v */
    bool nomtab;        /* -n: accepted; there is no mtab to write */
    bool sloppy;        /* -s: unknown generic options are ignored (g_* never are) */
    bool help;          /* -h */
    const char *type;   /* -t, or NULL */
    const char *ns;     /* -N, or NULL */
    char *options;      /* every -o joined with ',' (malloc'd, "" if none); owned by the struct */
};

/* Parses ARGV (argv[0] is the program). Returns 0, -EINVAL with a reason in ERR (a flag that is
 * unknown or lacks its argument, a missing or extra operand; not with -h), or -ENOMEM. Release with
 * mountopt_cmd_release() whatever the result. */
int mountopt_cmd_parse(int argc, char *const argv[], struct mountopt_cmd *cmd, char *err,
                       size_t errlen);
void mountopt_cmd_release(struct mountopt_cmd *cmd);

/* ---- the -o option string ---- */

/* Splits the next option off *CURSOR (a comma-separated list; a double-quoted part of a value may
 * hold commas, as libmount allows: comment="a,b"). Empty items are skipped. Copies the name into
 * NAME and the value (quotes removed) into VALUE; *HAS_VALUE tells "x" from "x=". Advances
 * *CURSOR. Returns 1 for an option, 0 at the end, -EINVAL for an unterminated quote and
 * -ENAMETOOLONG when a name or value does not fit. */
int mountopt_next(const char **cursor, char *name, size_t namelen, char *value, size_t valuelen,
                  bool *has_value);

/* Whether NAME (with VALUE if HAS_VALUE) is a generic mount option that the helper accepts and
 * ignores: ro, rw, defaults, _netdev, nofail, auto, noauto, user[=name], nouser, users, exec,
 * noexec, suid, nosuid, dev, nodev, atime, noatime, relatime, strictatime, nodiratime, sync, async,
 * x-<anything>[=value], comment=<anything>. */
bool mountopt_is_generic(const char *name, bool has_value);

struct mountopt {
    bool efc;            /* "efc" was given */
    char protocol[4];    /* "oss", "s3", or "" if not given */
    char *passwd_file;   /* malloc'd, NULL if not given */
    bool trybind;        /* default yes: share the daemon of an equal mount (see below) */
    struct opt_set opts; /* every g_* option, defaults for the rest */
    char ignored[256];   /* with SLOPPY: the unknown options that were ignored, ", "-separated */
};

/* Fills M with defaults. Returns 0 or -ENOMEM. */
int mountopt_init(struct mountopt *m);
void mountopt_release(struct mountopt *m);

/* Parses OPTSTR into M (on top of what is there): the helper's own options, g_* options through
 * opt_set_kv(), generic options ignored. Then requires efc and protocol and runs opt_check().
 * Returns 0; -ENOENT for an unknown option ("unknown option 'foo'" in ERR; with SLOPPY only
 * unknown g_* options fail, others are listed in M->ignored); -EINVAL with a one-line reason for
 * any other error; -ENOMEM. */
int mountopt_parse(struct mountopt *m, const char *optstr, bool sloppy, char *err, size_t errlen);

/* trybind: a mount of a source that efc already mounts on this host with the same options is a
 * bind mount of the existing one (one daemon, one cache). "The same options" means: the same
 * protocol, the same passwd_file (its path, as given), and the same value, given or default, of
 * every option of the table except those that only say where the daemon writes its log
 * (g_log_File, g_log_MaxBytes, g_log_FileCount) and how much (g_log_Level, which
 * efc_runtime_ops can change anyway). Everything
 * else (credentials, endpoint, cache sizes and paths, P2P, timeouts, the management port, the
 * supervisor) changes what is served or how, and a difference gives the mount a daemon of its
 * own. A new option counts unless it is added to the exceptions here. */

/* Whether option ID is one of the exceptions above (does not keep two mounts from sharing). */
bool mountopt_bind_ignores(int id);

/* The first option (an opt_id) that keeps mounts with options A and B from sharing a daemon, or -1
 * when they may share (protocol and passwd_file are the caller's to compare). */
int mountopt_bind_differs(const struct opt_set *a, const struct opt_set *b);

/* ---- the source ---- */

#define MOUNTOPT_BUCKET_MAX 63
#define MOUNTOPT_HOST_MAX   255
#define MOUNTOPT_PREFIX_MAX 1023

struct mountopt_source {
    char bucket[MOUNTOPT_BUCKET_MAX + 1]; /* first dot-separated label */
    char host[MOUNTOPT_HOST_MAX + 1];     /* the rest, with ":port" if given */
    char prefix[MOUNTOPT_PREFIX_MAX + 1]; /* "" for the whole bucket, else "a/b/" (no leading
                                             slash, one trailing slash) */
};

/* Parses `<bucket>.<host>[:port]:/<prefix>`. The bucket is 3-63 of [a-z0-9-], not starting or
 * ending with '-'; the host is dot-separated labels of [A-Za-z0-9-] with an optional :port
 * (1-65535); the prefix may not hold empty, "." or ".." components (the slash after ':' is
 * required; a trailing one is optional). Returns 0 or -EINVAL with a reason in ERR. */
int mountopt_source_parse(const char *src, struct mountopt_source *out, char *err, size_t errlen);

/* ---- /proc/self/mountinfo ---- */

struct mountopt_mountinfo {
    char *majmin;     /* the device, "major:minor" (a FUSE connection's own) */
    char *root;       /* the file system's directory mounted there, "/" for the whole of it */
    char *mountpoint; /* octal escapes (\040 ...) decoded */
    char *fstype;     /* e.g. "fuse.aliyun-alinas-efc" */
    char *source;     /* decoded */
};

/* Parses one mountinfo line in place (LINE is modified; the fields point into it). Returns 0 or
 * -EINVAL if the line does not have mountinfo's shape. */
int mountopt_mountinfo_parse(char *line, struct mountopt_mountinfo *out);

#endif
