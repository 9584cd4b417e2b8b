/* efc/main.c - the daemon aliyun-alinas-efc: command line, checks, mount, detach, session loop.
 *
 *     aliyun-alinas-efc [-f|--foreground] [--ready-fd=N] [--protocol=oss|s3]
 *                       [--passwd_file=PATH] [--<option>=<value>]... <source> <mountpoint>
 *
 * Design. Everything that can fail for a reason a human can fix is checked before anything is
 * mounted: the command line and options (util/opt), the source, the mount point, the log file,
 * the credentials and endpoints (oss_client_new), and the bucket itself, with one ListObjectsV2
 * of max-keys=1 on the mount's prefix. Only then is the FUSE session created and mounted. A
 * failure after the mount unmounts before exiting, so a failed start never leaves a mount or a
 * process behind.
 *
 * The ready protocol: with --ready-fd=N exactly one line goes to fd N, "ok" once the mount is
 * live, or "error: <reason>" before a non-zero exit; the same reason goes to stderr and the log.
 * Without --foreground the daemon detaches after mounting (fork, setsid, cwd /, stdio on
 * /dev/null); the parent waits on a pipe until the child has started (or failed), and exits with
 * its verdict, so whoever started the daemon never sees success before the mount works. Worker
 * threads are only started in the child (threads do not survive fork).
 *
 * Shutdown: SIGTERM, SIGINT and SIGHUP (fuse_set_signal_handlers) end the session loop; so does
 * `umount`, which closes the FUSE connection. Then the mount is removed (if still there), open
 * handles are closed, everything is freed and the state file is deleted; the exit code is 0.
 *
 * Runtime updates (handover.c): SIGUSR2 makes the daemon start a new copy of itself with changed
 * options and hand it the mount. That copy runs with --handover-fd=N (the inode table and open
 * handles) and --fuse-fd=M (the live /dev/fuse connection): it mounts nothing, does not detach
 * (it already is a daemon), takes the connection over, and reports on --ready-fd to the old
 * process, which exits on "ok". A copy that fails before "ok" unmounts nothing: the old process
 * goes on serving. Once it serves, it unmounts at shutdown as the first one would have (libfuse
 * does not for a connection it did not mount itself).
 *
 * The one global of the daemon is g_daemon below: libfuse's log callback has no user pointer.
 */
#define _GNU_SOURCE /* O_DIRECT, pipe2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "efc/efc.h"
#include "efc/handover_i.h"
#include "efc/journal_i.h"
#include "efc/ns_i.h"
#include "efc/supervise_i.h"
#include "oss/oss.h"
#include "util/log.h"
#include "util/opt.h"

#define DEFAULT_LOG_DIR "/var/log/aliyun/alinas"

struct daemon {
    struct efc e;
    int sync_fd;          /* detached child: tells the waiting parent how the start went; else -1 */
    int handover_fd;      /* --handover-fd: taking a mount over from a previous process; else -1 */
    int fuse_fd;          /* --fuse-fd: its /dev/fuse connection */
    int journal_fd;       /* --journal-fd: the crash journal of a supervised mount; else -1 */
    pid_t supervisor_pid; /* --supervisor-pid, or the supervisor started here; 0: none known */
    char log_path[PATH_MAX]; /* the log file ("" stderr), for the supervisor */
    bool serving;            /* the session loop ran (an adopted mount is then ours to unmount) */
    bool mounted;            /* fuse_session_mount succeeded */
    bool state_done;         /* the state file was written */
    bool signals_set;        /* fuse_set_signal_handlers succeeded */
    bool fs_setup;    /* efc_fs_setup was called (efc_fs_teardown undoes even a failed one) */
    bool log_to_file; /* log lines go to a file, not stderr */
    /* libfuse's last error message, for the ready line; protected by fuse_err_lock */
    pthread_mutex_t fuse_err_lock;
    char fuse_err[256];
};

static struct daemon *g_daemon;

/* ---- the command line ----------------------------------------------------------------------
 * The daemon's own arguments, one table: parsing, --help and the checks of their values all come
 * from it. Everything else of the form --<name>=<value> is an option of util/opt's table (the
 * mount helper's g_<name>=<value>). */

enum arg_id {
    A_FOREGROUND,
    A_HELP,
    A_VERSION,
    A_READY_FD,
    A_PROTOCOL,
    A_PASSWD,
    A_HANDOVER_FD,
    A_FUSE_FD,
    A_JOURNAL_FD,
    A_SUPERVISOR_PID
};
enum arg_kind { ARG_FLAG, ARG_FD, ARG_VALUE };

struct daemon_arg {
    const char *name; /* without "--" */
    char short_name;  /* 0: none */
    enum arg_kind kind;
    enum arg_id id;
    const char *meta; /* the value's name in --help */
    const char *help; /* NULL: internal, not in --help */
};

static const struct daemon_arg daemon_args[] = {
    {"foreground", 'f', ARG_FLAG, A_FOREGROUND, NULL, "stay in the foreground and log to stderr"},
    {"ready-fd", 0, ARG_FD, A_READY_FD, "N",
     "write one line to fd N: \"ok\" once mounted, else \"error: ...\""},
    {"protocol", 0, ARG_VALUE, A_PROTOCOL, "P",
     "oss (default: OSS API, signature V1/V4) or s3 (AWS SigV4)"},
    {"passwd_file", 0, ARG_VALUE, A_PASSWD, "PATH",
     "credentials file, AccessKeyId:AccessKeySecret"},
    {"help", 'h', ARG_FLAG, A_HELP, NULL, "this text"},
    {"version", 'V', ARG_FLAG, A_VERSION, NULL, "version"},
    /* internal: a runtime update's or the supervisor's successor takes a mounted connection */
    {"handover-fd", 0, ARG_FD, A_HANDOVER_FD, "N", NULL},
    {"fuse-fd", 0, ARG_FD, A_FUSE_FD, "N", NULL},
    {"journal-fd", 0, ARG_FD, A_JOURNAL_FD, "N", NULL},
    {"supervisor-pid", 0, ARG_VALUE, A_SUPERVISOR_PID, "PID", NULL},
};
#define N_DAEMON_ARGS (sizeof(daemon_args) / sizeof(daemon_args[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: " EFC_PROGRAM " [-f|--foreground] [--ready-fd=N] [--protocol=oss|s3]\n"
               "       [--passwd_file=PATH] [--<option>=<value>]... <source> <mountpoint>\n"
               "\n"
               "Mounts an OSS or S3 bucket read-only at <mountpoint>. <source> is\n"
               "<bucket>.<endpoint>[:port]:/<path>, e.g. mybucket.oss-cn-hangzhou.aliyuncs.com:/\n"
               "(the path, a key prefix, becomes the root of the mount).\n"
               "\n");
    for (size_t i = 0; i < N_DAEMON_ARGS; i++) {
        const struct daemon_arg *a = &daemon_args[i];
        char head[64];
        if (a->help == NULL)
            continue;
        int n = a->short_name ? snprintf(head, sizeof(head), "-%c, ", a->short_name) : 0;
        snprintf(head + n, sizeof(head) - (size_t)n, "--%s%s%s", a->name, a->meta ? "=" : "",
                 a->meta ? a->meta : "");
        fprintf(f, "  %-18s  %s\n", head, a->help);
    }
    fprintf(f, "  --handover-fd=N --fuse-fd=M [--journal-fd=J]\n"
               "                      internal: take over a mounted connection (runtime updates,\n"
               "                      restarts by the supervisor)\n"
               "\n"
               "Options (the mount helper's g_<name>=<value>):\n");
    opt_print_help(f);
}

/* Writes the one ready line (if a ready fd was given) and closes the fd. */
static void ready_line(struct daemon *d, const char *line)
{
    int fd = d->e.ready_fd;
    if (fd < 0)
        return;
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t w = write(fd, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fd);
    d->e.ready_fd = -1;
}

static void tell_parent(struct daemon *d, char verdict)
{
    if (d->sync_fd < 0)
        return;
    ssize_t w;
    do {
        w = write(d->sync_fd, &verdict, 1);
    } while (w < 0 && errno == EINTR);
    close(d->sync_fd);
    d->sync_fd = -1;
}

/* Reports a start-up failure everywhere it can be seen; returns the exit code. */
__attribute__((format(printf, 2, 3))) static int fail(struct daemon *d, const char *fmt, ...)
{
    char reason[1024], line[1100];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    for (char *p = reason; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    /* Plainly on stderr for whoever runs the daemon (detached, stderr is /dev/null), and in the
       log too when the log is a file. */
    if (d->log_to_file)
        log_error("%s", reason);
    fprintf(stderr, EFC_PROGRAM ": %s\n", reason);
    snprintf(line, sizeof(line), "error: %s\n", reason);
    ready_line(d, line);
    tell_parent(d, 1);
    return 1;
}

static void fuse_log_cb(enum fuse_log_level level, const char *fmt, va_list ap)
{
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    if (level <= FUSE_LOG_ERR) {
        log_error("libfuse: %s", msg);
        if (g_daemon) {
            pthread_mutex_lock(&g_daemon->fuse_err_lock);
            snprintf(g_daemon->fuse_err, sizeof(g_daemon->fuse_err), "%s",
                     strncmp(msg, "fuse: ", 6) == 0 ? msg + 6 : msg);
            pthread_mutex_unlock(&g_daemon->fuse_err_lock);
        }
    } else if (level <= FUSE_LOG_WARNING) {
        log_warn("libfuse: %s", msg);
    } else if (level <= FUSE_LOG_INFO) {
        log_info("libfuse: %s", msg);
    } else {
        log_debug("libfuse: %s", msg);
    }
}

static const char *fuse_last_error(struct daemon *d, const char *fallback)
{
    static __thread char copy[256];
    pthread_mutex_lock(&d->fuse_err_lock);
    snprintf(copy, sizeof(copy), "%s", d->fuse_err[0] ? d->fuse_err : fallback);
    pthread_mutex_unlock(&d->fuse_err_lock);
    return copy;
}

/* ---- the command line ---------------------------------------------------------------------- */

enum parse_result { PARSE_OK, PARSE_EXIT_OK, PARSE_ERROR };

/* The entry of A ("-f", "--name", "--name=value"); NULL when it is none of the daemon's own.
 * *VALUE points at the text after '=' (NULL without one). */
static const struct daemon_arg *find_arg(const char *a, const char **value)
{
    *value = NULL;
    if (a[0] == '-' && a[1] != '-' && a[1] != '\0' && a[2] == '\0') {
        for (size_t i = 0; i < N_DAEMON_ARGS; i++)
            if (daemon_args[i].short_name == a[1])
                return &daemon_args[i];
        return NULL;
    }
    if (a[0] != '-' || a[1] != '-')
        return NULL;
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    for (size_t i = 0; i < N_DAEMON_ARGS; i++) {
        if (strlen(daemon_args[i].name) == len && strncmp(daemon_args[i].name, name, len) == 0) {
            *value = eq ? eq + 1 : NULL;
            return &daemon_args[i];
        }
    }
    return NULL;
}

/* Applies one of the daemon's own arguments. Returns PARSE_OK, or another result (with a reason
   in ERR for PARSE_ERROR). */
static enum parse_result apply_arg(struct daemon *d, const struct daemon_arg *a, const char *v,
                                   char *err, size_t errlen)
{
    struct efc *e = &d->e;

    if (a->kind == ARG_FLAG && v != NULL) {
        snprintf(err, errlen, "--%s takes no value", a->name);
        return PARSE_ERROR;
    }
    if (a->kind != ARG_FLAG && (v == NULL || *v == '\0')) {
        snprintf(err, errlen, "--%s needs a value (--%s=%s)", a->name, a->name, a->meta);
        return PARSE_ERROR;
    }
    int fd = -1;
    if (a->kind == ARG_FD) {
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (*end != '\0' || errno || x < 0 || x > INT_MAX || fcntl((int)x, F_GETFD) < 0) {
            snprintf(err, errlen, "--%s: '%.200s' is not an open file descriptor", a->name, v);
            return PARSE_ERROR;
        }
        fd = (int)x;
        fcntl(fd, F_SETFD, FD_CLOEXEC); /* ours alone: no child inherits it by accident */
    }
    switch (a->id) {
    case A_FOREGROUND:
        e->foreground = true;
        break;
    case A_HELP:
        usage(stdout);
        return PARSE_EXIT_OK;
    case A_VERSION:
        printf(EFC_PROGRAM " %s (libfuse %s)\n", EFC_VERSION, fuse_pkgversion());
        return PARSE_EXIT_OK;
    case A_READY_FD:
        e->ready_fd = fd;
        break;
    case A_HANDOVER_FD:
        d->handover_fd = fd;
        break;
    case A_FUSE_FD:
        d->fuse_fd = fd;
        break;
    case A_JOURNAL_FD:
        d->journal_fd = fd;
        break;
    case A_SUPERVISOR_PID: {
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (*end != '\0' || errno || x <= 0 || x > INT_MAX) {
            snprintf(err, errlen, "--%s: '%.200s' is not a process id", a->name, v);
            return PARSE_ERROR;
        }
        d->supervisor_pid = (pid_t)x;
        break;
    }
    case A_PROTOCOL:
        if (strcmp(v, "oss") == 0) {
            e->protocol = OSS_PROTO_OSS;
        } else if (strcmp(v, "s3") == 0) {
            e->protocol = OSS_PROTO_S3;
        } else {
            snprintf(err, errlen, "unknown protocol '%.200s' (expected oss or s3)", v);
            return PARSE_ERROR;
        }
        break;
    case A_PASSWD:
        free(e->passwd_file);
        e->passwd_file = strdup(v);
        if (e->passwd_file == NULL) {
            snprintf(err, errlen, "out of memory");
            return PARSE_ERROR;
        }
        break;
    }
    return PARSE_OK;
}

static enum parse_result parse_args(struct daemon *d, int argc, char **argv, char *err,
                                    size_t errlen)
{
    struct efc *e = &d->e;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    bool opts_done = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || a[0] != '-' || a[1] == '\0') {
            if (npos == 2) {
                snprintf(err, errlen, "unexpected argument '%.200s' (source and mountpoint given)",
                         a);
                return PARSE_ERROR;
            }
            pos[npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            opts_done = true;
            continue;
        }
        const char *v;
        const struct daemon_arg *da = find_arg(a, &v);
        if (da) {
            /* "--name value" as well as "--name=value" */
            if (da->kind != ARG_FLAG && v == NULL && a[1] == '-' && i + 1 < argc)
                v = argv[++i];
            enum parse_result pr = apply_arg(d, da, v, err, errlen);
            if (pr != PARSE_OK)
                return pr;
        } else if (a[1] == '-') {
            /* --<option>=<value>, or --<option> alone for a boolean: util/opt's table */
            char oerr[512];
            int rc = opt_set_kv(&e->opts, a + 2, oerr, sizeof(oerr));
            if (rc) {
                snprintf(err, errlen, "%s", oerr);
                return PARSE_ERROR;
            }
        } else {
            snprintf(err, errlen, "unknown option '%.200s' (try --help)", a);
            return PARSE_ERROR;
        }
    }
    if ((d->handover_fd >= 0) != (d->fuse_fd >= 0) || (d->journal_fd >= 0 && d->fuse_fd < 0)) {
        snprintf(err, errlen,
                 "--handover-fd and --fuse-fd go together (and --journal-fd with them)");
        return PARSE_ERROR;
    }
    if (npos < 2) {
        snprintf(err, errlen,
                 "missing %s (usage: " EFC_PROGRAM
                 " [options] <bucket>.<endpoint>:/<path> <mountpoint>)",
                 npos == 0 ? "source and mountpoint" : "mountpoint");
        return PARSE_ERROR;
    }
    int rc = efc_remote_parse(pos[0], &e->remote, err, errlen);
    if (rc)
        return PARSE_ERROR;
    e->mountpoint = strdup(pos[1]);
    if (e->mountpoint == NULL) {
        snprintf(err, errlen, "out of memory");
        return PARSE_ERROR;
    }
    return PARSE_OK;
}

/* ---- checks and set-up --------------------------------------------------------------------- */

/* Makes the mount point absolute and canonical and checks that it is a directory. */
static int check_mountpoint(struct efc *e, char *err, size_t errlen)
{
    char *real = realpath(e->mountpoint, NULL);
    struct stat st;

    if (real == NULL) {
        snprintf(err, errlen, "mountpoint '%s': %s", e->mountpoint, strerror(errno));
        return -errno;
    }
    if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "mountpoint '%s' is not a directory", real);
        free(real);
        return -ENOTDIR;
    }
    free(e->mountpoint);
    e->mountpoint = real;
    return 0;
}

/* mkdir -p of PATH's parent directory. */
static int make_parent_dirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    char *slash = strrchr(tmp, '/');
    if (slash == NULL || slash == tmp)
        return 0;
    *slash = '\0';
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int setup_logging(struct daemon *d, char *err, size_t errlen)
{
    struct efc *e = &d->e;
    char path[PATH_MAX];
    const char *file = opt_str(&e->opts, OPT_LOG_FILE);

    log_set_ident("efc");
    log_set_level((enum log_level)log_level_parse(opt_str(&e->opts, OPT_LOG_LEVEL)));
    if (file[0] == '\0' && e->foreground)
        return 0; /* stderr */
    if (file[0] == '\0') {
        snprintf(path, sizeof(path), DEFAULT_LOG_DIR "/efc-%s.log", e->remote.bucket);
        file = path;
    }
    int rc = make_parent_dirs(file);
    if (rc == 0)
        rc = log_open_file(file);
    if (rc) {
        snprintf(err, errlen, "cannot open log file '%.900s': %s (set g_log_File)", file,
                 strerror(-rc));
        return rc;
    }
    log_set_rotation((uint64_t)opt_int(&e->opts, OPT_LOG_MAXBYTES),
                     (unsigned)opt_int(&e->opts, OPT_LOG_FILECOUNT));
    d->log_to_file = true;
    snprintf(d->log_path, sizeof(d->log_path), "%s", file);
    return 0;
}

/* One line with every option the mount was given (no option holds a secret: credentials and the
 * P2P key are in files, named by path). */
static void log_options(const struct efc *e)
{
    char line[1900];
    size_t n = 0;
    for (int i = 0; i < OPT__COUNT && n < sizeof(line); i++) {
        if (!e->opts.v[i].set)
            continue;
        int w = snprintf(line + n, sizeof(line) - n, " g_%s=%s", opt_table[i].name,
                         opt_str(&e->opts, (enum opt_id)i));
        n += w > 0 ? (size_t)w : 0;
    }
    log_info("options:%s", n ? line : " all defaults");
}

/* A relative credentials path would break after the daemon moves to "/". */
static int absolute_passwd_file(struct efc *e)
{
    if (e->passwd_file == NULL || e->passwd_file[0] == '/')
        return 0;
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return -errno;
    size_t n = strlen(cwd) + strlen(e->passwd_file) + 2;
    char *p = malloc(n);
    if (p == NULL)
        return -ENOMEM;
    snprintf(p, n, "%s/%s", cwd, e->passwd_file);
    free(e->passwd_file);
    e->passwd_file = p;
    return 0;
}

static const char *endpoint_text(const struct efc *e, char *buf, size_t len)
{
    const char *ep = opt_str(&e->opts, OPT_OSS_ENDPOINT);
    if (ep[0])
        return ep;
    snprintf(buf, len, "https://%s", e->remote.host);
    return buf;
}

static int make_client(struct efc *e, char *err, size_t errlen)
{
    struct oss_config c;
    char why[512];

    oss_config_init(&c);
    c.protocol = e->protocol;
    c.sign_version = (int)opt_int(&e->opts, OPT_OSS_SIGNVERSION);
    c.bucket = e->remote.bucket;
    c.host = e->remote.host;
    c.region = opt_str(&e->opts, OPT_OSS_REGION)[0] ? opt_str(&e->opts, OPT_OSS_REGION) : NULL;
    c.endpoints =
        opt_str(&e->opts, OPT_OSS_ENDPOINT)[0] ? opt_str(&e->opts, OPT_OSS_ENDPOINT) : NULL;
    c.path_style = opt_bool(&e->opts, OPT_OSS_PATHSTYLE);
    c.sts_file = opt_str(&e->opts, OPT_OSS_STSFILE)[0] ? opt_str(&e->opts, OPT_OSS_STSFILE) : NULL;
    c.passwd_file = e->passwd_file;
    c.max_connections = (int)opt_int(&e->opts, OPT_OSS_MAXCONNECTIONS);
    c.connect_timeout_ms = (int)opt_int(&e->opts, OPT_OSS_CONNECTTIMEOUTMS);
    c.stall_timeout_ms = (int)opt_int(&e->opts, OPT_OSS_STALLTIMEOUTMS);
    c.retry_budget_ms = (int)opt_int(&e->opts, OPT_OSS_RETRYBUDGETMS);
    why[0] = '\0';
    int rc = oss_client_new(&c, &e->oss, why, sizeof(why));
    if (rc)
        snprintf(err, errlen, "%s", why[0] ? why : strerror(-rc));
    return rc;
}

static int count_entry(void *arg, const struct oss_list_entry *le)
{
    (void)le;
    (*(unsigned *)arg)++;
    return 0;
}

/* Credentials, endpoint and bucket, all at once: one listing of the mount's prefix. */
static int check_bucket(struct efc *e, char *err, size_t errlen)
{
    struct oss_list l;
    unsigned n = 0;
    char epbuf[300];

    memset(&l, 0, sizeof(l));
    l.prefix = e->remote.prefix;
    l.delimiter = "/";
    l.max_keys = 1;
    int rc = oss_list_page(e->oss, &l, count_entry, &n);
    if (rc) {
        const char *why = oss_last_error();
        snprintf(err, errlen, "cannot list bucket '%s' at %s: %s", e->remote.bucket,
                 endpoint_text(e, epbuf, sizeof(epbuf)), why[0] ? why : strerror(-rc));
        return rc;
    }
    if (n == 0 && e->remote.prefix[0])
        log_warn("nothing in bucket '%s' under '%s' yet: the mount starts empty", e->remote.bucket,
                 e->remote.prefix);
    return 0;
}

/* "-o" value text with ',' and '\' escaped for libfuse's option parser. */
static char *escape_opt(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1), *p = out;
    if (out == NULL)
        return NULL;
    for (; *s; s++) {
        if (*s == ',' || *s == '\\')
            *p++ = '\\';
        *p++ = *s;
    }
    *p = '\0';
    return out;
}

static struct fuse_session *new_session(struct daemon *d, char *err, size_t errlen)
{
    struct efc *e = &d->e;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct fuse_session *se = NULL;
    char opts[256];
    char *fsname = escape_opt(e->remote.text);
    char *fsopt = NULL;

    if (fsname == NULL)
        goto oom;
    size_t n = strlen(fsname) + sizeof("fsname=");
    fsopt = malloc(n);
    if (fsopt == NULL)
        goto oom;
    snprintf(fsopt, n, "fsname=%s", fsname);
    /* Not "ro" at the VFS level: on an MS_RDONLY mount the kernel answers chmod/chown with EROFS
     * before we are asked, and the contract says EPERM for those. Every operation that writes
     * reaches fs.c and is refused there with EROFS. nosuid,nodev are libfuse's defaults. */
    snprintf(opts, sizeof(opts),
             "allow_other,default_permissions,noatime,subtype=" EFC_SUBTYPE ",max_read=%u",
             EFC_MAX_READ);
    if (fuse_opt_add_arg(&args, EFC_PROGRAM) || fuse_opt_add_arg(&args, "-o") ||
        fuse_opt_add_arg(&args, opts) || fuse_opt_add_arg(&args, "-o") ||
        fuse_opt_add_arg(&args, fsopt))
        goto oom;
    se = fuse_session_new(&args, efc_fs_ops(), sizeof(struct fuse_lowlevel_ops), e);
    if (se == NULL)
        snprintf(err, errlen, "cannot start a FUSE session: %s",
                 fuse_last_error(d, "unknown error"));
    fuse_opt_free_args(&args);
    free(fsname);
    free(fsopt);
    return se;
oom:
    fuse_opt_free_args(&args);
    free(fsname);
    free(fsopt);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

/* mountinfo escapes ' ', '\t', '\n' and '\' in paths as octal. */
static void mountinfo_escape(const char *s, char *out, size_t len)
{
    size_t o = 0;
    for (; *s && o + 5 < len; s++) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\\')
            o += (size_t)snprintf(out + o, len - o, "\\%03o", (unsigned char)*s);
        else
            out[o++] = *s;
    }
    out[o] = '\0';
}

/* Finds the device ("major:minor") of our mount, without touching it (the session loop is not
   running yet, so a stat of the mount point would hang). */
static void find_bdi(struct efc *e)
{
    char want[PATH_MAX * 2], line[PATH_MAX * 3];
    FILE *f = fopen("/proc/self/mountinfo", "re");

    e->bdi[0] = '\0';
    if (f == NULL)
        return;
    mountinfo_escape(e->mountpoint, want, sizeof(want));
    while (fgets(line, sizeof(line), f)) {
        char majmin[32], mnt[PATH_MAX * 2];
        /* id parent major:minor root mountpoint options ... - fstype source superoptions */
        if (sscanf(line, "%*u %*u %31s %*s %4095s", majmin, mnt) != 2)
            continue;
        const char *dash = strstr(line, " - ");
        if (dash && strcmp(mnt, want) == 0 &&
            strncmp(dash + 3, "fuse." EFC_SUBTYPE " ", sizeof("fuse." EFC_SUBTYPE)) == 0)
            snprintf(e->bdi, sizeof(e->bdi), "%s", majmin); /* the last one is ours */
    }
    fclose(f);
}

/* Forks; the parent waits for the child's verdict and exits with it. Returns in the child. */
static int detach(struct daemon *d, char *err, size_t errlen)
{
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot detach: pipe: %s", strerror(errno));
        return -errno;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot detach: fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -errno;
    }
    if (pid > 0) {
        char verdict = 1;
        ssize_t r;
        close(p[1]);
        if (d->e.ready_fd >= 0)
            close(d->e.ready_fd); /* the child's copy carries the ready line */
        do {
            r = read(p[0], &verdict, 1);
        } while (r < 0 && errno == EINTR);
        _exit(r == 1 && verdict == 0 ? 0 : 1);
    }
    close(p[0]);
    d->sync_fd = p[1];
    if (setsid() < 0)
        log_debug("setsid: %s", strerror(errno));
    if (chdir("/") != 0)
        log_debug("chdir /: %s", strerror(errno));
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
        if (nul > 2)
            close(nul);
    }
    return 0;
}

extern char **environ;

/* What libfuse's unmount does for a mount it made itself (fuse_kern_unmount), for a connection
   taken over from a previous process: nothing when the connection is already gone (umount(8)
   ended it), else a lazy unmount, with umount2() as root and fusermount3 otherwise. */
static void unmount_adopted(struct efc *e)
{
    struct pollfd p = {.fd = fuse_session_fd(e->se), .events = 0};

    if (p.fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLERR))
        return;
    if (geteuid() == 0) {
        if (umount2(e->mountpoint, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
            log_warn("cannot unmount '%s': %s", e->mountpoint, strerror(errno));
        return;
    }
    char *argv[] = {"fusermount3", "-u", "-q", "-z", "--", e->mountpoint, NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) == 0)
        waitpid(pid, NULL, 0);
    else
        log_warn("cannot run fusermount3 to unmount '%s'", e->mountpoint);
}

/* The bind mounts of this daemon's mount (trybind, mount_alinas.c) have state files that are
   symlinks to its own, named relative to the state directory: they go with it. */
static void remove_state_links(const struct efc *e)
{
    const char *mine = strrchr(e->state_path, '/');
    DIR *dir = opendir(efc_state_dir());
    struct dirent *de;
    char target[PATH_MAX];

    if (dir == NULL || mine == NULL) {
        if (dir)
            closedir(dir);
        return;
    }
    mine++;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_type != DT_LNK && de->d_type != DT_UNKNOWN)
            continue;
        ssize_t n = readlinkat(dirfd(dir), de->d_name, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, mine) == 0 && unlinkat(dirfd(dir), de->d_name, 0) != 0 &&
            errno != ENOENT)
            log_warn("cannot remove state file link '%s': %s", de->d_name, strerror(errno));
    }
    closedir(dir);
}

static void cleanup(struct daemon *d)
{
    struct efc *e = &d->e;

    if (e->se) {
        if (d->signals_set)
            fuse_remove_signal_handlers(e->se);
        if (d->mounted && d->fuse_fd < 0)
            fuse_session_unmount(e->se);
        else if (d->mounted && d->serving)
            unmount_adopted(e);
        fuse_session_destroy(e->se);
        e->se = NULL;
    }
    efc_supervise_unwatch(e); /* before the session it reads */
    /* After the session: its workers are gone, none is parked in handover.c any more. */
    efc_handover_free(e);
    efc_mgmt_stop(e); /* before the parts its requests use */
    if (d->fs_setup)
        efc_fs_teardown(e);
    d->fs_setup = false;
    efc_journal_free(e->journal); /* after the table and the handles that write to it */
    e->journal = NULL;
    if (d->journal_fd >= 0)
        close(d->journal_fd);
    d->journal_fd = -1;
    oss_client_free(e->oss);
    e->oss = NULL;
    if (d->state_done && unlink(e->state_path) != 0 && errno != ENOENT)
        log_warn("cannot remove state file '%s': %s", e->state_path, strerror(errno));
    if (d->state_done) {
        /* efc_runtime_ops's backup for rollback and its lock mean nothing once the mount is
           gone */
        char bak[PATH_MAX + 8];
        snprintf(bak, sizeof(bak), "%s.bak", e->state_path);
        unlink(bak);
        snprintf(bak, sizeof(bak), "%s.lock", e->state_path);
        unlink(bak);
        remove_state_links(e);
    }
    efc_remote_release(&e->remote);
    free(e->mountpoint);
    free(e->passwd_file);
    opt_release(&e->opts);
}

/* The crash journal and the supervisor (supervise.c). A process taking a mount over goes on
 * with the journal it was handed (if any); a fresh mount with g_supervisor_Enable creates one and
 * starts its supervisor. A supervisor that cannot be started leaves the mount unsupervised, with
 * a warning: serving matters more. Fails only when a handed journal is unusable. */
static int start_journal(struct daemon *d, bool adopt, char *err, size_t errlen)
{
    struct efc *e = &d->e;
    char jerr[512];
    int rc;

    if (adopt && d->journal_fd < 0)
        return 0; /* handed over by an unsupervised daemon */
    if (adopt) {
        rc = efc_journal_attach(d->journal_fd, &e->journal, jerr, sizeof(jerr));
        d->journal_fd = -1; /* taken */
        if (rc) {
            snprintf(err, errlen, "--journal-fd: %s", jerr);
            return rc;
        }
    } else if (opt_bool(&e->opts, OPT_SUPERVISOR_ENABLE)) {
        rc = efc_journal_create(EFC_JNL_DEFAULT_HALF, &e->journal, jerr, sizeof(jerr));
        if (rc) {
            log_warn("'%s' is not supervised: no crash journal: %s", e->mountpoint, jerr);
            return 0;
        }
    } else {
        return 0;
    }
    char **args = efc_handover_argv(e, &e->opts);
    int argc = 0;
    while (args && args[argc])
        argc++;
    rc = args ? efc_journal_set_argv(e->journal, argc, args) : -ENOMEM;
    efc_handover_argv_free(args);
    if (rc == 0 && !adopt) {
        efc_journal_set_pid(e->journal, getpid());
        rc = efc_supervise_spawn(e, d->log_to_file ? d->log_path : NULL, &d->supervisor_pid, jerr,
                                 sizeof(jerr));
        if (rc)
            log_warn("'%s' is not supervised: %s", e->mountpoint, jerr);
    } else if (rc) {
        log_warn("'%s': the command line does not fit the crash journal", e->mountpoint);
    }
    if (rc) {
        if (adopt) {
            efc_journal_set_state(e->journal, EFC_JNL_OFF);
        } else {
            efc_journal_free(e->journal);
            e->journal = NULL;
            return 0;
        }
    }
    efc_ns_set_journal(e->ns, e->journal);
    return 0;
}

int main(int argc, char **argv)
{
    static struct daemon dmn;
    struct daemon *d = &dmn;
    struct efc *e = &d->e;
    char err[1024];
    int rc;

    /* No core dump, ever: a core of this process would hold the object store's credentials (the
       secret, an STS token in a request's headers) and the P2P key, and land wherever the
       machine's core_pattern says. Root can still attach a debugger. The supervisor too: it
       carries the same environment, which may hold credentials. */
    if (prctl(PR_SET_DUMPABLE, 0) != 0)
        fprintf(stderr, EFC_PROGRAM ": cannot turn core dumps off: %s\n", strerror(errno));
    if (argc > 1 && strcmp(argv[1], "--supervise") == 0)
        return efc_supervise_main(argc, argv);
    /* First: every thread started from here on inherits the mask, so only the handover thread
       receives SIGUSR2 (and a SIGUSR2 arriving before it exists waits instead of killing us). */
    efc_handover_block_signals();
    g_daemon = d;
    d->sync_fd = -1;
    d->handover_fd = -1;
    d->fuse_fd = -1;
    d->journal_fd = -1;
    e->ready_fd = -1;
    pthread_mutex_init(&d->fuse_err_lock, NULL);
    log_set_ident("efc");
    fuse_set_log_func(fuse_log_cb);
    if (opt_init(&e->opts) != 0) {
        fprintf(stderr, EFC_PROGRAM ": out of memory\n");
        return 1;
    }
    e->protocol = OSS_PROTO_OSS;

    switch (parse_args(d, argc, argv, err, sizeof(err))) {
    case PARSE_EXIT_OK:
        cleanup(d);
        return 0;
    case PARSE_ERROR:
        cleanup(d);
        fail(d, "%s", err);
        return 2; /* a usage error */
    case PARSE_OK:
        break;
    }
    /* Taking a mount over, the mount point is the old process's canonical path, and must not
       be looked at: a stat would wait for the very requests the old process is holding. */
    if (d->fuse_fd >= 0 && e->mountpoint[0] != '/') {
        snprintf(err, sizeof(err), "mountpoint '%s' is not absolute", e->mountpoint);
        goto failed;
    }
    if (opt_check(&e->opts, err, sizeof(err)) != 0 ||
        (d->fuse_fd < 0 && check_mountpoint(e, err, sizeof(err)) != 0) ||
        setup_logging(d, err, sizeof(err)) != 0)
        goto failed;
    if (absolute_passwd_file(e) != 0) {
        snprintf(err, sizeof(err), "cannot resolve passwd_file '%s'", e->passwd_file);
        goto failed;
    }
    if (efc_state_path(e->mountpoint, e->state_path, sizeof(e->state_path)) != 0) {
        snprintf(err, sizeof(err), "mountpoint '%s': path too long", e->mountpoint);
        goto failed;
    }
    log_info("starting " EFC_PROGRAM " %s: '%s' on '%s' (%s)%s", EFC_VERSION, e->remote.text,
             e->mountpoint, e->protocol == OSS_PROTO_S3 ? "s3" : "oss",
             e->foreground ? ", foreground" : "");
    log_options(e);

    bool adopt = d->fuse_fd >= 0;
    if (make_client(e, err, sizeof(err)) != 0 || check_bucket(e, err, sizeof(err)) != 0)
        goto failed;
    e->mount_time = time(NULL);
    rc = efc_handover_setup(e, d->handover_fd, err, sizeof(err)); /* adopting: the old mount time */
    d->handover_fd = -1;                                          /* closed by it */
    if (rc)
        goto failed;
    d->fs_setup = true;
    rc = efc_fs_setup(e);
    if (rc) {
        snprintf(err, sizeof(err), "cannot set up the file system: %s", strerror(-rc));
        goto failed;
    }
    if (adopt && efc_handover_restore_ns(e, err, sizeof(err)) != 0)
        goto failed;
    e->se = new_session(d, err, sizeof(err));
    if (e->se == NULL)
        goto failed;
    if (fuse_set_signal_handlers(e->se) != 0) {
        snprintf(err, sizeof(err), "cannot install signal handlers");
        goto failed;
    }
    d->signals_set = true;
    /* Adopting: "/dev/fd/N" makes libfuse take the open connection as is (it neither mounts nor,
       later, unmounts it). */
    char devfd[32];
    snprintf(devfd, sizeof(devfd), "/dev/fd/%d", d->fuse_fd);
    if (fuse_session_mount(e->se, adopt ? devfd : e->mountpoint) != 0) {
        snprintf(err, sizeof(err), "cannot mount on '%s': %s", e->mountpoint,
                 fuse_last_error(d, "mount failed"));
        goto failed;
    }
    d->mounted = true;
    rc = efc_fuseio_install(e);
    if (rc) {
        snprintf(err, sizeof(err), "cannot set up the FUSE channel: %s", strerror(-rc));
        goto failed;
    }
    if (adopt && efc_handover_replay_init(e, err, sizeof(err)) != 0)
        goto failed;
    find_bdi(e);

    /* A process taking a mount over is a daemon already (and its pid is what the update waits
       for): it does not detach again. */
    if (!e->foreground && !adopt && detach(d, err, sizeof(err)) != 0)
        goto failed;
    /* From here on in the process that serves the mount. */
    rc = efc_fs_start(e, err, sizeof(err));
    if (rc)
        goto failed;
    if (adopt && efc_handover_restore_handles(e, err, sizeof(err)) != 0)
        goto failed;
    /* The management API (g_server_Port): a port that cannot be had fails the mount, since
       whoever asked for it relies on it for warm-up and metrics. */
    if (efc_mgmt_start(e, err, sizeof(err)) != 0)
        goto failed;
    char serr[512];
    if (adopt) {
        d->state_done = true; /* the handover thread writes it once the old process is gone */
    } else if (efc_state_write(e, NULL, serr, sizeof(serr)) == 0) { /* no update yet */
        d->state_done = true;
    } else {
        log_warn("no state file (management tools will not find this mount): %s", serr);
    }

    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    if (cfg == NULL) {
        snprintf(err, sizeof(err), "out of memory");
        goto failed;
    }
    if (start_journal(d, adopt, err, sizeof(err)) != 0) {
        fuse_loop_cfg_destroy(cfg);
        goto failed;
    }
    unsigned threads = (unsigned)opt_int(&e->opts, OPT_FUSE_MAXTHREADS);
    /* Supervised on a kernel that can resend: every worker reads the session's own descriptor,
       which the supervisor holds too, so requests read by a daemon that dies stay with the
       connection and are resent to the next one (supervise.c). Else a descriptor per worker. */
    fuse_loop_cfg_set_clone_fd(cfg, e->journal && efc_kernel_has_resend() ? 0 : 1);
    fuse_loop_cfg_set_max_threads(cfg, threads);
    /* Idle workers are kept (up to the maximum): creating a thread per burst costs more than
       the stacks of sleeping ones. */
    fuse_loop_cfg_set_idle_threads(cfg, threads);
    /* A new mount answers the kernel's INIT before it says "ok" (a process taking over has
       replayed it already): the crash journal then holds it, and a daemon that dies right after
       "ok" is replaced like any other, instead of leaving the supervisor unable to. */
    if (!adopt && efc_fuseio_answer_init(e, err, sizeof(err)) != 0) {
        fuse_loop_cfg_destroy(cfg);
        goto failed;
    }

    if (efc_handover_start(e) != 0) {
        log_warn("runtime updates are off for '%s': cannot start their thread", e->mountpoint);
        struct efc_update_result r;
        if (adopt &&
            efc_state_write(e, efc_handover_result(e, &r) ? &r : NULL, serr, sizeof(serr)) != 0)
            log_warn("no state file (management tools will not find this mount): %s", serr);
    }
    log_info("%s '%s' on '%s' (pid %d, up to %u FUSE threads%s)", adopt ? "took over" : "mounted",
             e->remote.text, e->mountpoint, (int)getpid(), threads,
             e->journal ? ", supervised" : "");
    d->serving = true;
    if (e->journal) /* named before "ok": the supervisor follows this pid from now on */
        efc_journal_set_pid(e->journal, getpid());
    if (e->journal && d->supervisor_pid > 0 &&
        efc_supervise_watch(e, d->supervisor_pid, d->log_to_file ? d->log_path : NULL) != 0)
        log_warn("'%s': cannot watch its supervisor (pid %d): a supervisor that dies is not "
                 "replaced",
                 e->mountpoint, (int)d->supervisor_pid);
    ready_line(d, "ok\n");
    tell_parent(d, 0);

    rc = fuse_session_loop_mt(e->se, cfg);
    fuse_loop_cfg_destroy(cfg);
    /* The mount ends (unmount or a signal): no new supervisor, and the supervisor is not to start
       another daemon. */
    efc_supervise_unwatch(e);
    if (e->journal)
        efc_journal_set_state(e->journal, EFC_JNL_EXITING);
    if (rc < 0)
        log_error("the FUSE session ended with an error: %s", strerror(-rc));
    else if (rc > 0)
        log_info("signal %d: unmounting '%s'", rc, e->mountpoint);
    else
        log_info("'%s' was unmounted", e->mountpoint);
    cleanup(d);
    log_info("exiting");
    return rc < 0 ? 1 : 0;

failed:
    /* Unmount and free first: whoever reads the error line may check at once that nothing is
       left mounted. */
    cleanup(d);
    return fail(d, "%s", err);
}
