/* cli/main.c - aliyun-alinas-efc-cli, the management command line of an efc mount.
 *
 * One run is one request: the command line (the seed's flags, getopt_long) names a mount point and
 * an operation; the mount's management address is found without help (mountinfo says it is an efc
 * mount, the daemon's state file gives g_server_Port and g_server_BindAddr), one GET goes to the
 * mount's /v1 API with libcurl, and the JSON answer is printed as text (cli.c). The exit code
 * tells a script what went wrong: 1 the daemon refused (a non-zero ErrorCode), 2 the command line
 * is wrong, 3 the management API cannot be found or reached.
 *
 * The mount point is first canonicalised without touching the file system (a wedged FUSE daemon
 * would hang a stat of its mount point, and the CLI is what one reaches for then); realpath(3) is
 * the fallback for symlinks, relative ".." and the like.
 *
 * A warm-up started on a terminal is watched: warmup/stat is polled every 0.5 s and one line per
 * path is rewritten in place, until every task has finished or the user presses Ctrl-C, which
 * stops the watching and nothing else (the tasks run in the daemon).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/statefile.h"

#ifndef EFC_VERSION
#define EFC_VERSION "unknown"
#endif

#define CONNECT_TIMEOUT_MS 2000
#define TOTAL_TIMEOUT_MS   30000
#define POLL_INTERVAL_MS   500
#define ARG_MAX_LEN        65536 /* --path, --pattern: far above what the daemon accepts */

struct args {
    const char *mount, *request, *path, *pattern, *preceding, *action;
    bool clear, json, no_wait;
};

struct target {
    char mountpoint[PATH_MAX];
    char host[80];
    unsigned port;
    long pid;
    CURL *curl;
    char curl_err[CURL_ERROR_SIZE];
};

static volatile sig_atomic_t interrupted;

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(CLI_PROGRAM ": ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\ntry '" CLI_PROGRAM " --help'\n", stderr);
    exit(CLI_EXIT_USAGE);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(CLI_PROGRAM ": ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void usage(void)
{
    printf(
        "Usage: " CLI_PROGRAM " -m MOUNTPOINT -r REQUEST [options]\n"
        "\n"
        "Manages the cache of an efc mount through its management API, which the mount must\n"
        "have enabled (-o g_server_Port=17871). The port is found from the mount itself.\n"
        "\n"
        "Requests:\n"
        "  -r warmup/load --path P [--pattern RE]\n"
        "        load P into the cache in the background; on a terminal, show its progress until\n"
        "        it ends (Ctrl-C stops watching, not the warm-up)\n"
        "  -r warmup/stat --path P [--preceding_time S]\n"
        "        show the warm-up tasks of P submitted in the last S seconds (default 86400)\n"
        "  -r warmup/cancel --path P\n"
        "        cancel the running warm-up tasks of P (finished tasks cannot be canceled)\n"
        "  -r tier [-c]\n"
        "        print the ten tier_* cache counters, one 'name value' a line; -c resets them\n"
        "  -r cluster\n"
        "        show the distributed cache as this node sees it: its rootlist (path, hash, when\n"
        "        loaded), this node's name and role, whether peers authenticate, then one line a\n"
        "        member: role, state, latency, requests, errors, bytes, whether it uses the same\n"
        "        rootlist, its last error\n"
        "  -r action -k clear_readdir_cache|clear_metadata_cache|reload_rootlist\n"
        "        drop the cached directory listings / file metadata; re-read the rootlist now\n"
        "        (it is re-read every 5 s anyway) and print the membership it holds\n"
        "\n"
        "Options:\n"
        "  -m MOUNTPOINT         the efc mount point\n"
        "  -r REQUEST            one of the requests above\n"
        "  --path P              a path relative to the mount point (\"\" is its root); several\n"
        "                        paths are separated by commas\n"
        "  --pattern RE          warm-up only files whose name matches this regular expression\n"
        "  --preceding_time S    warmup/stat: tasks submitted in the last S seconds (0: all)\n"
        "  -c                    with -r tier: reset the counters\n"
        "  -k ACTION             with -r action: clear_readdir_cache, clear_metadata_cache or\n"
        "                        reload_rootlist\n"
        "  --json                print the daemon's JSON answer instead of text\n"
        "  --no-wait             warmup/load: return at once, without the progress display\n"
        "  -h, --help            print this help\n"
        "  --version             print the version\n"
        "\n"
        "Exit status: 0 success; 1 the daemon answered an error (warmup/stat: also a path with\n"
        "no task; warmup/load on a terminal: a task failed or was canceled; cluster and\n"
        "reload_rootlist: the mount is not distributed); 2 a usage error; 3 the mount's\n"
        "management API cannot be found or reached.\n"
        "\n"
        "Environment: EFC_STATE_DIR, the daemons' state files (default /run/efc);\n"
        "EFC_CLI_MOUNTINFO, a test hook: a file read instead of /proc/self/mountinfo.\n");
}

/* ---- command line -------------------------------------------------------------------------- */

enum { OPT_PATH = 256, OPT_PATTERN, OPT_PRECEDING, OPT_JSON, OPT_NO_WAIT, OPT_VERSION };

static void set_once(const char **slot, const char *value, const char *name)
{
    if (*slot != NULL)
        die_usage("%s given twice", name);
    if (strlen(value) > ARG_MAX_LEN)
        die_usage("%s is longer than %d bytes", name, ARG_MAX_LEN);
    *slot = value;
}

static void parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {
        {"path", required_argument, NULL, OPT_PATH},
        {"pattern", required_argument, NULL, OPT_PATTERN},
        {"preceding_time", required_argument, NULL, OPT_PRECEDING},
        {"json", no_argument, NULL, OPT_JSON},
        {"no-wait", no_argument, NULL, OPT_NO_WAIT},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(a, 0, sizeof(*a));
    opterr = 0; /* our own messages, with the hint to --help */
    while ((c = getopt_long(argc, argv, ":m:r:ck:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            set_once(&a->mount, optarg, "-m");
            break;
        case 'r':
            set_once(&a->request, optarg, "-r");
            break;
        case 'k':
            set_once(&a->action, optarg, "-k");
            break;
        case 'c':
            a->clear = true;
            break;
        case OPT_PATH:
            set_once(&a->path, optarg, "--path");
            break;
        case OPT_PATTERN:
            set_once(&a->pattern, optarg, "--pattern");
            break;
        case OPT_PRECEDING:
            set_once(&a->preceding, optarg, "--preceding_time");
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_NO_WAIT:
            a->no_wait = true;
            break;
        case 'h':
            usage();
            exit(CLI_EXIT_OK);
        case OPT_VERSION:
            printf(CLI_PROGRAM " %s\n", EFC_VERSION);
            exit(CLI_EXIT_OK);
        case ':':
            die_usage("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt)
                die_usage("unknown option '-%c'", optopt);
            die_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        die_usage("unexpected argument '%s'", argv[optind]);
    if (a->mount == NULL)
        die_usage("-m MOUNTPOINT is required");
    if (a->mount[0] == '\0')
        die_usage("-m: the mount point is empty");
    if (a->request == NULL)
        die_usage("-r REQUEST is required (warmup/load, warmup/stat, warmup/cancel, tier, "
                  "cluster, action)");

    bool warmup = strncmp(a->request, "warmup/", 7) == 0;
    if (warmup && strcmp(a->request + 7, "load") && strcmp(a->request + 7, "stat") &&
        strcmp(a->request + 7, "cancel"))
        die_usage("unknown request '%s' (warmup/load, warmup/stat, warmup/cancel)", a->request);
    if (!warmup && strcmp(a->request, "tier") && strcmp(a->request, "cluster") &&
        strcmp(a->request, "action"))
        die_usage("unknown request '%s' (warmup/load, warmup/stat, warmup/cancel, tier, cluster, "
                  "action)",
                  a->request);
    if (warmup && a->path == NULL)
        die_usage("-r %s needs --path (\"\" for the mount's root)", a->request);
    if (!warmup && a->path)
        die_usage("--path applies to -r warmup/load, warmup/stat and warmup/cancel only");
    if (a->pattern && strcmp(a->request, "warmup/load") != 0)
        die_usage("--pattern applies to -r warmup/load only");
    if (a->preceding && strcmp(a->request, "warmup/stat") != 0)
        die_usage("--preceding_time applies to -r warmup/stat only");
    if (a->preceding) {
        size_t n = strlen(a->preceding);
        if (n == 0 || n > 12 || strspn(a->preceding, "0123456789") != n)
            die_usage("--preceding_time '%s' is not a number of seconds", a->preceding);
    }
    if (a->clear && strcmp(a->request, "tier") != 0)
        die_usage("-c applies to -r tier only");
    if (strcmp(a->request, "action") == 0) {
        if (a->action == NULL)
            die_usage("-r action needs -k clear_readdir_cache, -k clear_metadata_cache or -k "
                      "reload_rootlist");
        if (strcmp(a->action, "clear_readdir_cache") && strcmp(a->action, "clear_metadata_cache") &&
            strcmp(a->action, "reload_rootlist"))
            die_usage("unknown action '%s' (clear_readdir_cache, clear_metadata_cache, "
                      "reload_rootlist)",
                      a->action);
    } else if (a->action) {
        die_usage("-k applies to -r action only");
    }
}

/* ---- finding the mount's management API --------------------------------------------------- */

/* Reads PATH whole into B (limit set by the caller). 0 or -errno (-E2BIG past the limit). */
static int read_file(const char *path, struct buf *b)
{
    char chunk[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

    if (fd < 0)
        return -errno;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        rc = buf_append(b, chunk, (size_t)n);
        if (rc)
            break;
    }
    close(fd);
    return rc;
}

static int lookup_mount(const char *mountinfo, const char *path, struct cli_mount *m)
{
    struct buf b;
    int rc;

    buf_init(&b, CLI_MAX_MOUNTINFO);
    rc = read_file(mountinfo, &b);
    if (rc == 0)
        rc = cli_mountinfo_find(b.data ? b.data : "", b.len, path, m);
    buf_release(&b);
    return rc;
}

/* Finds the efc mount named by ARG: fills T's mountpoint. Prints why not and returns -1. */
static int find_mount(const char *arg, struct target *t)
{
    const char *mountinfo = getenv("EFC_CLI_MOUNTINFO");
    char abs[PATH_MAX * 2], lex[PATH_MAX];
    struct cli_mount m;
    int rc;

    if (mountinfo == NULL || mountinfo[0] == '\0')
        mountinfo = "/proc/self/mountinfo";
    /* Lexical first: it needs no stat of the mount point, which a wedged daemon would hang. */
    abs[0] = '\0';
    if (arg[0] == '/') {
        snprintf(abs, sizeof(abs), "%s", arg);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) != NULL)
            snprintf(abs, sizeof(abs), "%s/%s", cwd, arg);
    }
    if (abs[0] && cli_path_lexical(abs, lex, sizeof(lex)) == 0) {
        rc = lookup_mount(mountinfo, lex, &m);
        if (rc) {
            fail("cannot read '%s': %s", mountinfo, strerror(-rc));
            return -1;
        }
        if (m.found && strcmp(m.fstype, CLI_FSTYPE) == 0) {
            snprintf(t->mountpoint, sizeof(t->mountpoint), "%s", lex);
            return 0;
        }
    }
    char *real = realpath(arg, NULL);
    if (real == NULL) {
        fail("cannot resolve mount point '%s': %s", arg, strerror(errno));
        return -1;
    }
    if (strlen(real) >= sizeof(t->mountpoint)) {
        fail("mount point '%s': path too long", real);
        free(real);
        return -1;
    }
    snprintf(t->mountpoint, sizeof(t->mountpoint), "%s", real);
    free(real);
    rc = lookup_mount(mountinfo, t->mountpoint, &m);
    if (rc) {
        fail("cannot read '%s': %s", mountinfo, strerror(-rc));
        return -1;
    }
    if (!m.found) {
        if (strcmp(m.parent_fstype, CLI_FSTYPE) == 0)
            fail("'%s' is not a mount point: it is inside the efc mount '%s' (give -m %s and a "
                 "--path relative to it)",
                 t->mountpoint, m.parent, m.parent);
        else
            fail("'%s' is not a mount point", t->mountpoint);
        return -1;
    }
    if (strcmp(m.fstype, CLI_FSTYPE) != 0) {
        char clean[sizeof(m.fstype)];
        cli_sanitize(m.fstype, clean, sizeof(clean));
        fail("'%s' is not an efc mount (its file system type is '%s', not '" CLI_FSTYPE "')",
             t->mountpoint, clean);
        return -1;
    }
    return 0;
}

static bool is_symlink(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

/* Reads the mount's state file into T (port, host, pid). Prints why not and returns -1. */
static int find_port(struct target *t)
{
    char path[PATH_MAX * 2 + 16], err[256];
    struct cli_state st;
    struct buf b;
    int rc;

    if (statefile_path(statefile_dir(), t->mountpoint, path, sizeof(path)) != 0) {
        fail("mount point '%s': path too long", t->mountpoint);
        return -1;
    }
    buf_init(&b, CLI_MAX_STATE);
    rc = read_file(path, &b);
    if (rc == -ENOENT) {
        fail("no state file '%s' for the efc mount '%s': its daemon did not record its "
             "management port (is it running, and was EFC_STATE_DIR the same for it?)",
             path, t->mountpoint);
    } else if (rc) {
        fail("cannot read state file '%s': %s", path,
             rc == -E2BIG ? "larger than 1 MiB" : strerror(-rc));
    } else if (cli_state_parse(b.data ? b.data : "", b.len, &st, err, sizeof(err)) != 0) {
        fail("state file '%s': %s", path, err);
        rc = -EINVAL;
    } else if (st.mountpoint[0] && strcmp(st.mountpoint, t->mountpoint) != 0 && !is_symlink(path)) {
        /* (a symlink is a bind mount's, trybind: it names the daemon it shares, of another
           mount point) */
        char clean[PATH_MAX];
        cli_sanitize(st.mountpoint, clean, sizeof(clean));
        fail("state file '%s' is for '%s', not '%s'", path, clean, t->mountpoint);
        rc = -EINVAL;
    } else if (st.port == 0) {
        fail("the management port of '%s' is off (g_server_Port is 0): mount it with -o "
             "g_server_Port=17871, or change it in place with 'efc_runtime_ops update %s -o "
             "g_server_Port=17871'",
             t->mountpoint, t->mountpoint);
        rc = -ENOTCONN;
    } else if (cli_connect_host(st.bind_addr, t->host, sizeof(t->host)) != 0) {
        char clean[sizeof(st.bind_addr)];
        cli_sanitize(st.bind_addr, clean, sizeof(clean));
        fail("state file '%s': g_server_BindAddr '%s' is not an IP address", path, clean);
        rc = -EINVAL;
    } else {
        t->port = st.port;
        t->pid = st.pid;
    }
    buf_release(&b);
    return rc ? -1 : 0;
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    /* a body past the limit fails the transfer (curl sees a short write) */
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    return interrupted ? 1 : 0;
}

enum { REQ_OK, REQ_INTERRUPTED, REQ_FAILED };

/* GETs ENDPOINT?QUERY and parses the answer into *REPLY. Prints why it failed. */
static int request(struct target *t, const char *endpoint, const char *query, json_t **reply)
{
    char where[128], err[256];
    struct buf body, url;
    long status = 0;
    CURLcode cc;

    *reply = NULL;
    snprintf(where, sizeof(where), "%s:%u", t->host, t->port);
    buf_init(&url, 512 + (query ? strlen(query) : 0));
    if (buf_printf(&url, "http://%s%s%s%s", where, endpoint, query ? "?" : "",
                   query ? query : "") != 0) {
        fail("out of memory");
        buf_release(&url);
        return REQ_FAILED;
    }
    buf_init(&body, CLI_MAX_BODY);
    curl_easy_setopt(t->curl, CURLOPT_URL, url.data);
    curl_easy_setopt(t->curl, CURLOPT_WRITEDATA, &body);
    t->curl_err[0] = '\0';
    cc = curl_easy_perform(t->curl);
    buf_release(&url);
    if (cc == CURLE_ABORTED_BY_CALLBACK && interrupted) {
        buf_release(&body);
        return REQ_INTERRUPTED;
    }
    if (cc != CURLE_OK) {
        const char *why = t->curl_err[0] ? t->curl_err : curl_easy_strerror(cc);
        char stale[96] = "";
        if (cc == CURLE_WRITE_ERROR && body.len + CURL_MAX_WRITE_SIZE > body.max)
            why = "answer larger than 16 MiB";
        if (t->pid > 0 && kill((pid_t)t->pid, 0) != 0 && errno == ESRCH)
            snprintf(stale, sizeof(stale), " (its pid %ld is not running: the state file is stale)",
                     t->pid);
        fail("the daemon of '%s' does not answer on %s: %s%s", t->mountpoint, where, why, stale);
        buf_release(&body);
        return REQ_FAILED;
    }
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    /* Errors come as JSON with a non-zero ErrorCode whatever the HTTP status (400 for a bad
       parameter): the body decides, the status only words a failure to parse it. */
    *reply = cli_reply_parse(body.data ? body.data : "", body.len, err, sizeof(err));
    if (*reply == NULL)
        fail("unexpected answer from %s%s (HTTP %ld): %s", where, endpoint, status, err);
    buf_release(&body);
    return *reply ? REQ_OK : REQ_FAILED;
}

/* "name=<escaped value>" appended to Q (with '&' when not first). */
static int query_add(struct buf *q, CURL *c, const char *name, const char *value)
{
    char *esc = curl_easy_escape(c, value, (int)strlen(value));
    int rc;
    if (esc == NULL)
        return -ENOMEM;
    rc = buf_printf(q, "%s%s=%s", q->len ? "&" : "", name, esc);
    curl_free(esc);
    return rc;
}

static int print_json(json_t *reply)
{
    char *text = json_dumps(reply, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        fail("out of memory");
        return CLI_EXIT_CONNECT;
    }
    puts(text);
    free(text);
    return cli_reply_failed(reply) ? CLI_EXIT_SERVER : CLI_EXIT_OK;
}

/* ---- the warm-up progress display ----------------------------------------------------------- */

#define RATE_SAMPLES 6 /* 3 s of samples at 0.5 s */

struct watched {
    char *raw;                /* the path as the daemon named it (for the stat query) */
    char path[CLI_MAX_FIELD]; /* sanitized, as tasks' paths are */
    struct cli_task task;
    bool have;
    double t[RATE_SAMPLES];
    uint64_t done[RATE_SAMPLES];
    unsigned nsamples;
};

static void on_sigint(int sig)
{
    interrupted = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void term_size(unsigned *cols, unsigned *rows)
{
    struct winsize ws;
    bool ok = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0;
    *cols = ok && ws.ws_col >= 20 ? ws.ws_col : 80;
    *rows = ok && ws.ws_row >= 4 ? ws.ws_row : 24;
}

/* Cuts S to fit COLS - 1 display columns (a wrapped line would break the cursor moves). */
static void fit(char *s, unsigned cols)
{
    unsigned w = 0;
    for (char *p = s; *p; p++) {
        if (((unsigned char)*p & 0xc0) == 0x80)
            continue;
        if (++w >= cols) {
            *p = '\0';
            return;
        }
    }
}

/* The path as shown: "(root)", "dir/", "file". */
static void display_path(const struct watched *w, char *out, size_t outlen)
{
    if (w->path[0] == '\0')
        snprintf(out, outlen, "(root)");
    else
        snprintf(out, outlen, "%s%s", w->path, w->have && w->task.is_dir ? "/" : "");
}

static size_t display_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* One line of the display; the path padded to WIDTH columns so that the lines align. */
static void render_line(struct watched *w, size_t width, char *line, size_t linelen)
{
    char disp[CLI_MAX_FIELD + 8 + 64], sizes[64], pct[16], rate[48] = "";

    display_path(w, disp, sizeof(disp) - 64);
    size_t k = strlen(disp);
    for (size_t dw = display_width(disp); dw < width && k + 1 < sizeof(disp); dw++)
        disp[k++] = ' ';
    disp[k] = '\0';
    if (!w->have) {
        snprintf(line, linelen, "%s  waiting for the task to appear", disp);
        return;
    }
    cli_task_progress(&w->task, sizes, sizeof(sizes), pct, sizeof(pct));
    if (!cli_task_finished(w->task.status) && w->nsamples >= 2) {
        unsigned last = (w->nsamples - 1) % RATE_SAMPLES;
        unsigned first = w->nsamples > RATE_SAMPLES ? w->nsamples % RATE_SAMPLES : 0;
        double dt = w->t[last] - w->t[first];
        if (dt > 0.1 && w->done[last] >= w->done[first]) {
            char h[32];
            cli_human_size((uint64_t)((double)(w->done[last] - w->done[first]) / dt), h, sizeof(h));
            snprintf(rate, sizeof(rate), "  %s/s", h);
        }
    }
    snprintf(line, linelen, "%s  %-9s  %s  %6s%s%s%s", disp, w->task.status, sizes, pct, rate,
             w->task.error[0] ? "  " : "", w->task.error);
}

/* Polls warmup/stat for the tasks just submitted and redraws until they end. Returns the exit
 * code: 0 when all completed (or the user stopped watching), 1 if one failed or was canceled,
 * 3 if the daemon stopped answering. */
static int watch(struct target *t, struct watched *ws, size_t n, const char *pattern,
                 uint64_t t0_us)
{
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    struct buf q;
    char clean_pattern[CLI_MAX_FIELD], line[CLI_MAX_FIELD * 2 + 256];
    double start = now_s();
    size_t drawn = 0; /* lines of the last redraw, to move back over */
    int rc = CLI_EXIT_OK;

    cli_sanitize(pattern ? pattern : "", clean_pattern, sizeof(clean_pattern));
    /* one stat for every path: their names joined as the daemon split them (the daemon bounds
       how many and how long; these limits only keep a confused answer from growing them) */
    struct buf joined;
    buf_init(&joined, CLI_MAX_BODY);
    buf_init(&q, 3 * CLI_MAX_BODY + 64);
    for (size_t i = 0; i < n; i++)
        if ((i && buf_puts(&joined, ",")) || buf_puts(&joined, ws[i].raw)) {
            fail("out of memory");
            buf_release(&joined);
            buf_release(&q);
            return CLI_EXIT_CONNECT;
        }
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old); /* no SA_RESTART: the sleep below wakes up */

    for (;;) {
        json_t *reply;
        struct cli_task *tasks = NULL;
        char err[256];
        /* the window reaches back past our own submission, whatever the clocks did */
        uint64_t window = (uint64_t)(now_s() - start) + 3600;

        buf_reset(&q);
        if (query_add(&q, t->curl, "target_path", joined.data ? joined.data : "") ||
            buf_printf(&q, "&preceding_time=%" PRIu64, window)) {
            fail("out of memory");
            rc = CLI_EXIT_CONNECT;
            break;
        }
        int r = request(t, "/v1/warmup/stat", q.data, &reply);
        if (r == REQ_INTERRUPTED)
            break;
        if (r == REQ_FAILED) {
            rc = CLI_EXIT_CONNECT;
            break;
        }
        long nt = cli_stat_tasks(reply, &tasks, err, sizeof(err));
        json_decref(reply);
        if (nt < 0) {
            fail("unexpected answer from %s:%u/v1/warmup/stat: %s", t->host, t->port, err);
            rc = CLI_EXIT_CONNECT;
            break;
        }
        double now = now_s();
        bool all_done = true;
        for (size_t i = 0; i < n; i++) {
            struct watched *w = &ws[i];
            const struct cli_task *best = NULL;
            /* ours: the newest task of the path and pattern submitted since we asked (the 2 s
               allow for the daemon's clock being read a little before ours) */
            for (long k = 0; k < nt; k++)
                if (strcmp(tasks[k].path, w->path) == 0 &&
                    strcmp(tasks[k].pattern, clean_pattern) == 0 &&
                    tasks[k].submit_us + 2000000u >= t0_us &&
                    (best == NULL || tasks[k].submit_us > best->submit_us))
                    best = &tasks[k];
            if (best) {
                w->task = *best;
                w->have = true;
                w->t[w->nsamples % RATE_SAMPLES] = now;
                w->done[w->nsamples % RATE_SAMPLES] = best->completed;
                w->nsamples++;
            }
            if (!w->have || !cli_task_finished(w->task.status))
                all_done = false;
        }
        free(tasks);

        /* The cursor cannot move above the screen's top: with more paths than rows, the
           first ones get a line each and one line sums up the rest. */
        unsigned cols, rows;
        term_size(&cols, &rows);
        size_t shown = n < rows - 2 ? n : rows - 3, width = 0, finished = 0;
        for (size_t i = 0; i < n; i++) {
            char d[CLI_MAX_FIELD + 8];
            display_path(&ws[i], d, sizeof(d));
            if (i < shown && display_width(d) > width)
                width = display_width(d);
            finished += ws[i].have && cli_task_finished(ws[i].task.status);
        }
        if (drawn)
            printf("\033[%zuA", drawn);
        for (size_t i = 0; i < shown; i++) {
            render_line(&ws[i], width, line, sizeof(line));
            fit(line, cols);
            printf("\r\033[K%s\n", line);
        }
        if (shown < n)
            printf("\r\033[K... and %zu more paths (%zu of %zu tasks finished)\n", n - shown,
                   finished, n);
        /* a terminal grown shorter leaves old lines below: clear them */
        for (size_t i = shown + (shown < n); i < drawn; i++)
            printf("\r\033[K\n");
        if (drawn > shown + (shown < n))
            printf("\033[%zuA", drawn - (shown + (shown < n)));
        fflush(stdout);
        drawn = shown + (shown < n);
        if (all_done) {
            for (size_t i = 0; i < n; i++)
                if (strcmp(ws[i].task.status, "completed") != 0)
                    rc = CLI_EXIT_SERVER;
            break;
        }
        bool missing = false;
        for (size_t i = 0; i < n; i++)
            missing |= !ws[i].have;
        if (missing && now - start > 10) {
            fail("the warm-up task did not appear in warmup/stat within 10 s; check it with -r "
                 "warmup/stat");
            rc = CLI_EXIT_SERVER;
            break;
        }
        struct timespec ts = {0, POLL_INTERVAL_MS * 1000000L};
        while (!interrupted && nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        if (interrupted)
            break;
    }
    if (interrupted) {
        printf("\nstopped watching: the warm-up goes on in the background (see it with -r "
               "warmup/stat, stop it with -r warmup/cancel)\n");
        rc = CLI_EXIT_OK;
    }
    sigaction(SIGINT, &old, NULL);
    buf_release(&joined);
    buf_release(&q);
    return rc;
}

/* ---- requests ------------------------------------------------------------------------------ */

static int do_warmup(struct target *t, const struct args *a)
{
    const char *op = a->request + 7;
    char endpoint[32], err[256];
    struct buf q;
    json_t *reply;
    int rc;

    buf_init(&q, ARG_MAX_LEN * 8);
    if (query_add(&q, t->curl, "target_path", a->path) ||
        (a->pattern && query_add(&q, t->curl, "pattern", a->pattern)) ||
        (a->preceding && query_add(&q, t->curl, "preceding_time", a->preceding))) {
        buf_release(&q);
        fail("out of memory");
        return CLI_EXIT_CONNECT;
    }
    snprintf(endpoint, sizeof(endpoint), "/v1/warmup/%s", op);
    uint64_t t0 = realtime_us();
    rc = request(t, endpoint, q.data, &reply);
    buf_release(&q);
    if (rc != REQ_OK)
        return CLI_EXIT_CONNECT;
    if (a->json) {
        rc = print_json(reply);
        json_decref(reply);
        return rc;
    }
    bool failed = cli_reply_failed(reply);
    if (strcmp(op, "stat") == 0) {
        if (cli_print_stat(stdout, stderr, reply, a->preceding, err, sizeof(err)) != 0) {
            fail("unexpected answer from %s:%u%s: %s", t->host, t->port, endpoint, err);
            json_decref(reply);
            return CLI_EXIT_CONNECT;
        }
        json_decref(reply);
        return failed ? CLI_EXIT_SERVER : CLI_EXIT_OK;
    }
    cli_print_results(stdout, stderr, reply, op);
    rc = failed ? CLI_EXIT_SERVER : CLI_EXIT_OK;
    if (strcmp(op, "load") == 0 && !a->no_wait && isatty(STDOUT_FILENO)) {
        json_t *results = json_object_get(reply, "Results"), *r;
        size_t n = 0, i;
        struct watched *ws = calloc(json_array_size(results) + 1, sizeof(*ws));
        if (ws == NULL) {
            json_decref(reply);
            fail("out of memory");
            return CLI_EXIT_CONNECT;
        }
        json_array_foreach(results, i, r)
        {
            json_t *p = json_object_get(r, "Path");
            if (json_is_string(p) && json_object_get(r, "ErrorCode") &&
                json_integer_value(json_object_get(r, "ErrorCode")) == 0) {
                ws[n].raw = (char *)json_string_value(p);
                cli_sanitize(ws[n].raw, ws[n].path, sizeof(ws[n].path));
                n++;
            }
        }
        if (n > 0) {
            fflush(stdout);
            int wrc = watch(t, ws, n, a->pattern, t0);
            if (wrc != CLI_EXIT_OK)
                rc = wrc;
        }
        free(ws);
    }
    json_decref(reply);
    return rc;
}

/* Prints why REPLY failed: each failed result's message, else the top-level one. */
static void report_failure(json_t *reply, const char *what)
{
    char msg[CLI_MAX_FIELD];
    int printed = 0;
    json_t *r;
    size_t i;

    json_array_foreach(json_object_get(reply, "Results"), i, r)
    {
        if (json_integer_value(json_object_get(r, "ErrorCode")) == 0)
            continue;
        cli_sanitize(json_string_value(json_object_get(r, "ErrorMessage")), msg, sizeof(msg));
        fail("cannot %s: %s", what, msg[0] ? msg : "error");
        printed++;
    }
    if (printed == 0) {
        cli_sanitize(json_string_value(json_object_get(reply, "ErrorMessage")), msg, sizeof(msg));
        fail("cannot %s: %s", what, msg[0] ? msg : "error");
    }
}

static int do_tier(struct target *t, const struct args *a)
{
    char err[256];
    json_t *reply;
    int rc;

    if (request(t, a->clear ? "/v1/tier/clear" : "/v1/tier", NULL, &reply) != REQ_OK)
        return CLI_EXIT_CONNECT;
    if (a->json) {
        rc = print_json(reply);
    } else if (cli_reply_failed(reply)) {
        report_failure(reply, a->clear ? "clear the tier counters" : "read the tier counters");
        rc = CLI_EXIT_SERVER;
    } else if (a->clear) {
        printf("cleared the tier counters\n");
        rc = CLI_EXIT_OK;
    } else if (cli_print_tier(stdout, reply, err, sizeof(err)) != 0) {
        fail("unexpected answer from %s:%u/v1/tier: %s", t->host, t->port, err);
        rc = CLI_EXIT_CONNECT;
    } else {
        rc = CLI_EXIT_OK;
    }
    json_decref(reply);
    return rc;
}

static int do_cluster(struct target *t, const struct args *a)
{
    char err[256];
    json_t *reply;
    int rc;

    if (request(t, "/v1/cluster", NULL, &reply) != REQ_OK)
        return CLI_EXIT_CONNECT;
    if (a->json) {
        rc = print_json(reply);
    } else if (cli_reply_failed(reply)) {
        /* not distributed (501, ENOTSUP) lands here: the daemon's message says so */
        report_failure(reply, "show the cluster");
        rc = CLI_EXIT_SERVER;
    } else if (cli_print_cluster(stdout, reply, err, sizeof(err)) != 0) {
        fail("unexpected answer from %s:%u/v1/cluster: %s", t->host, t->port, err);
        rc = CLI_EXIT_CONNECT;
    } else {
        rc = CLI_EXIT_OK;
    }
    json_decref(reply);
    return rc;
}

static int do_action(struct target *t, const struct args *a)
{
    bool reload = strcmp(a->action, "reload_rootlist") == 0;
    char endpoint[64], msg[CLI_MAX_FIELD];
    json_t *reply;
    int rc;

    snprintf(endpoint, sizeof(endpoint), "/v1/action/%s", a->action);
    if (request(t, endpoint, NULL, &reply) != REQ_OK)
        return CLI_EXIT_CONNECT;
    if (a->json) {
        rc = print_json(reply);
    } else if (cli_reply_failed(reply)) {
        report_failure(reply, reload ? "reload the rootlist" : a->action);
        rc = CLI_EXIT_SERVER;
    } else if (reload) {
        /* the daemon sums up the membership it now holds in the result's message */
        cli_sanitize(json_string_value(json_object_get(
                         json_array_get(json_object_get(reply, "Results"), 0), "ErrorMessage")),
                     msg, sizeof(msg));
        printf("reloaded the rootlist%s%s\n", msg[0] ? ": " : "", msg);
        rc = CLI_EXIT_OK;
    } else {
        printf("cleared the %s cache\n",
               strcmp(a->action, "clear_readdir_cache") == 0 ? "readdir" : "metadata");
        rc = CLI_EXIT_OK;
    }
    json_decref(reply);
    return rc;
}

int main(int argc, char **argv)
{
    struct args a;
    struct target *t;
    int rc;

    parse_args(argc, argv, &a);
    t = calloc(1, sizeof(*t));
    if (t == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fail("out of memory");
        return CLI_EXIT_CONNECT;
    }
    if (find_mount(a.mount, t) != 0 || find_port(t) != 0) {
        free(t);
        return CLI_EXIT_CONNECT;
    }
    t->curl = curl_easy_init();
    if (t->curl == NULL) {
        fail("cannot initialise libcurl");
        free(t);
        return CLI_EXIT_CONNECT;
    }
    curl_easy_setopt(t->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(t->curl, CURLOPT_TIMEOUT_MS, (long)TOTAL_TIMEOUT_MS);
    /* the management port is local: never through a proxy from the environment */
    curl_easy_setopt(t->curl, CURLOPT_PROXY, "");
    curl_easy_setopt(t->curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(t->curl, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(t->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(t->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(t->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(t->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(t->curl, CURLOPT_ERRORBUFFER, t->curl_err);
    curl_easy_setopt(t->curl, CURLOPT_USERAGENT, CLI_PROGRAM "/" EFC_VERSION);

    if (strncmp(a.request, "warmup/", 7) == 0)
        rc = do_warmup(t, &a);
    else if (strcmp(a.request, "tier") == 0)
        rc = do_tier(t, &a);
    else if (strcmp(a.request, "cluster") == 0)
        rc = do_cluster(t, &a);
    else
        rc = do_action(t, &a);

    curl_easy_cleanup(t->curl);
    curl_global_cleanup();
    free(t);
    return rc;
}
