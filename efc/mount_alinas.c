/* efc/mount_alinas.c - /sbin/mount.alinas: mount(8)'s helper for `mount -t alinas -o efc,...`.
 *
 * The helper validates everything it can before anything starts (the command line, every option
 * through the one option table, the source, the credential files, the mount point), then runs the
 * daemon with `--ready-fd` and waits, bounded, for its one ready line: `ok` means the mount is
 * live and the helper exits 0 at once (it never stays around); `error: <reason>` is printed as
 * `mount.alinas: <reason>` and the helper exits 32, mount(8)'s "mount failure". If the daemon dies
 * or stays silent, the helper kills it by pid, detaches a mount it may have left on the mount point
 * (only a fuse.aliyun-alinas-efc mount of our source that was not there before), and exits 32 with
 * a reason. The daemon's stdout and stderr go to an unlinked temporary file, so a failed mount
 * prints one line (the file's last line is quoted when the daemon died without a ready line); with
 * -v they are passed through instead.
 *
 * trybind (default yes): when efc already mounts the same source (bucket, host and prefix) on this
 * host with the same options (mountopt.h says which count), the helper bind-mounts that mount on
 * the mount point instead of starting a daemon: one daemon, one cache. The options of the existing
 * mount are those of its daemon's state file (a mount without one, or whose daemon is gone, is
 * not shared). The bind mount's state file is a symlink to the daemon's, so the CLI and
 * efc_runtime_ops reach the shared daemon through any of its mount points. Unmounting one leaves
 * the others served (the kernel keeps the FUSE connection while any mount of it exists); the
 * daemon ends with the last one and removes the symlinks. A bind mount that fails (not root, say)
 * falls back to a daemon of its own, with a warning: trybind is an attempt.
 *
 * Daemon command line: <daemon> --ready-fd=3 --protocol=<p> [--passwd_file=<f>]
 * [--<name>=<value> for every g_<name> given] <source> <realpath of dir>. The daemon is
 * EFC_DAEMON_PATH, or $EFC_DAEMON when set (tests run the daemon of a build tree).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/mountopt.h"
#include "util/opt.h"
#include "util/statefile.h"
#include "util/timeutil.h"

#ifndef EFC_DAEMON_PATH
#define EFC_DAEMON_PATH "/usr/local/bin/aliyun-alinas-efc"
#endif

#define PROG           "mount.alinas"
#define EXIT_USAGE     1
#define EXIT_FAIL      32
#define READY_TIMEOUT  120000 /* ms: the daemon's own checks are bounded well below this */
#define READY_LINE_MAX 4096
#define FSTYPE         "fuse.aliyun-alinas-efc"
#define READY_FD       3

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

static void usage(FILE *f, bool full)
{
    fprintf(f, "usage: " PROG " <bucket>.<host>:/<prefix> <dir> [-sfnvh] [-o options]\n");
    if (!full)
        return;
    fprintf(f, "  called by mount(8): mount -t alinas -o efc,protocol=oss|s3[,passwd_file=F]"
               "[,g_<name>=<value>...] <source> <dir>\n"
               "  -f  validate only (fake)   -v  verbose   -s  ignore unknown generic options\n"
               "options g_<name>=<value> (the daemon's --<name>=<value>):\n");
    opt_print_help(f);
}

/* Makes sure fds 0-2 are open, so no pipe or file of ours lands on them. */
static void ensure_stdio(void)
{
    for (;;) {
        int fd = open("/dev/null", O_RDWR);
        if (fd < 0)
            return;
        if (fd > 2) {
            close(fd);
            return;
        }
    }
}

static int check_file(const char *what, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        fprintf(stderr, PROG ": cannot read %s '%s': %s\n", what, path, strerror(errno));
        return -1;
    }
    int rc = fstat(fd, &st);
    close(fd);
    if (rc != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, PROG ": %s '%s' is not a regular file\n", what, path);
        return -1;
    }
    if (st.st_mode & 0077)
        fprintf(stderr, PROG ": warning: %s '%s' is open to group or others (chmod 600 it)\n", what,
                path);
    return 0;
}

/* Calls FN for each mount on DIR (mountinfo's view); stops when FN returns non-zero. */
static int for_each_mount_on(const char *dir, int (*fn)(struct mountopt_mountinfo *, void *),
                             void *arg)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;

    if (f == NULL)
        return -errno;
    while (rc == 0 && getline(&line, &cap, f) > 0) {
        struct mountopt_mountinfo mi;
        if (mountopt_mountinfo_parse(line, &mi) == 0 && strcmp(mi.mountpoint, dir) == 0)
            rc = fn(&mi, arg);
    }
    free(line);
    fclose(f);
    return rc;
}

static int any_mount(struct mountopt_mountinfo *mi, void *arg)
{
    return 1;
}

static int ours(struct mountopt_mountinfo *mi, void *source)
{
    return strcmp(mi->fstype, FSTYPE) == 0 && strcmp(mi->source, source) == 0;
}

/* The mount point was not a mount point when we started, so an efc mount of our source found
   there now is the daemon's: detach it, a few times in case it was stacked. */
static void detach_our_mount(const char *dir, const char *source)
{
    for (int i = 0; i < 8 && for_each_mount_on(dir, ours, (void *)source) == 1; i++) {
        if (umount2(dir, MNT_DETACH) != 0) {
            fprintf(stderr, PROG ": cannot detach the half-made mount on '%s': %s\n", dir,
                    strerror(errno));
            return;
        }
    }
}

/* Waits up to MS for PID; returns its status, or -1 if it is still running. */
static int wait_bounded(pid_t pid, int ms)
{
    uint64_t end = time_mono_ms() + (uint64_t)ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return errno == ECHILD ? 0 : -1;
        if (time_mono_ms() >= end)
            return -1;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Ends the daemon we started (and anything it forked that is still in its process group). */
static void kill_daemon(pid_t pid)
{
    kill(-pid, SIGTERM);
    kill(pid, SIGTERM);
    if (wait_bounded(pid, 3000) == -1) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        wait_bounded(pid, 3000);
    }
}

static void describe_status(int st, char *out, size_t outlen)
{
    if (WIFEXITED(st))
        snprintf(out, outlen, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, outlen, "was killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(out, outlen, "stopped");
}

/* The last non-empty line the daemon wrote to its output file, for a failure reason. */
static void last_output_line(int fd, char *out, size_t outlen)
{
    char buf[2048];
    out[0] = '\0';
    if (fd < 0)
        return;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0)
        return;
    off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
    if (n <= 0)
        return;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    char *nl = strrchr(buf, '\n');
    snprintf(out, outlen, "%.400s", nl ? nl + 1 : buf);
}

static int output_file(void)
{
    int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char tmpl[] = "/tmp/mount.alinas.XXXXXX";
    fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd >= 0)
        unlink(tmpl);
    return fd;
}

static void print_command(char *const argv[])
{
    printf(PROG ": running");
    for (int i = 0; argv[i]; i++) {
        const char *a = argv[i];
        if (a[0] && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                              "-_=./:,+@%") == strlen(a)) {
            printf(" %s", a);
            continue;
        }
        printf(" '");
        for (; *a; a++)
            if (*a == '\'')
                printf("'\\''");
            else
                putchar(*a);
        putchar('\'');
    }
    putchar('\n');
    fflush(stdout);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (rc < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(EXIT_FAIL);
    }
    return s;
}

/* The daemon's argv: NULL-terminated, malloc'd strings in a malloc'd array (the caller frees). */
static char **daemon_argv(const char *daemon, const struct mountopt *m, const char *source,
                          const char *dir)
{
    char **av = calloc(OPT__COUNT + 8, sizeof(*av));
    int n = 0;
    if (av == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(EXIT_FAIL);
    }
    av[n++] = xasprintf("%s", daemon);
    av[n++] = xasprintf("--ready-fd=%d", READY_FD);
    av[n++] = xasprintf("--protocol=%s", m->protocol);
    if (m->passwd_file)
        av[n++] = xasprintf("--passwd_file=%s", m->passwd_file);
    for (int i = 0; i < OPT__COUNT; i++)
        if (m->opts.v[i].set)
            av[n++] = xasprintf("--%s=%s", opt_table[i].name, opt_str(&m->opts, i));
    av[n++] = xasprintf("%s", source);
    av[n++] = xasprintf("%s", dir);
    av[n] = NULL;
    return av;
}

/* In the child: stdin from /dev/null, stdout/stderr to OUT_FD (or inherited if < 0), the ready
   pipe on fd 3, nothing else open. Never returns. */
static void exec_daemon(char *const av[], int ready_w, int out_fd)
{
    int nul = open("/dev/null", O_RDONLY);
    /* Move our fds above 3 first so the dup2s below cannot clobber one another. */
    int rw = fcntl(ready_w, F_DUPFD, 10);
    int of = out_fd >= 0 ? fcntl(out_fd, F_DUPFD, 10) : -1;
    if (rw < 0 || nul < 0 || (out_fd >= 0 && of < 0))
        _exit(127);
    dup2(nul, 0);
    if (of >= 0) {
        dup2(of, 1);
        dup2(of, 2);
    }
    dup2(rw, READY_FD);
    close_range(READY_FD + 1, ~0U, 0);
    /* Own process group: if the daemon never answers, the helper ends it and whatever it forked. */
    setpgid(0, 0);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(av[0], av);
    int e = errno;
    dprintf(READY_FD, "error: cannot run the daemon '%s': %s\n", av[0], strerror(e));
    _exit(127);
}

/* Reads the ready line. Returns 1 with the line in LINE, 0 on EOF without a line, -ETIMEDOUT,
   or -EINTR when a signal asked us to stop. */
static int read_ready_line(int fd, char *line, size_t linelen, int timeout_ms)
{
    size_t have = 0;
    uint64_t end = time_mono_ms() + (uint64_t)timeout_ms;

    for (;;) {
        if (interrupted)
            return -EINTR;
        uint64_t now = time_mono_ms();
        if (now >= end)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - now);
        int r = poll(&p, 1, left > 1000 ? 1000 : left);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r <= 0)
            continue;
        ssize_t n = read(fd, line + have, linelen - 1 - have);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        if (n == 0) {
            line[have] = '\0';
            return 0;
        }
        have += (size_t)n;
        line[have] = '\0';
        char *nl = memchr(line, '\n', have);
        if (nl || have == linelen - 1) {
            if (nl)
                *nl = '\0';
            return 1;
        }
    }
}

static int spawn_and_wait(const struct mountopt_cmd *cmd, char *const av[], const char *dir);

/* ---- trybind ---- */

/* An efc mount that this one may share. */
struct bind_target {
    char mountpoint[PATH_MAX];
    char state[PATH_MAX]; /* its daemon's state file, symlinks resolved */
    long pid;             /* its daemon */
};

/* The JSON value of a state file option as the text the option table parses; NULL if none. */
static const char *json_opt_text(json_t *v, char *buf, size_t len)
{
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    if (json_is_integer(v)) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Whether the daemon of the mount on MOUNTPOINT serves with M's options (its state file says):
   fills T. With VERBOSE, says why not. */
static bool same_options(const struct mountopt *m, const char *mountpoint, bool verbose,
                         struct bind_target *t)
{
    char path[PATH_MAX], buf[32], err[256];
    const char *why = NULL;
    json_error_t jerr;
    json_t *root = NULL;
    struct opt_set theirs;
    bool same = false;

    if (opt_init(&theirs) != 0)
        return false;
    if (statefile_path(statefile_dir(), mountpoint, path, sizeof(path)) != 0 ||
        realpath(path, t->state) == NULL || (root = json_load_file(t->state, 0, &jerr)) == NULL) {
        why = "no readable state file";
        goto out;
    }
    t->pid = (long)json_integer_value(json_object_get(root, "pid"));
    if (t->pid <= 0 || (kill((pid_t)t->pid, 0) != 0 && errno == ESRCH)) {
        why = "its daemon is not running";
        goto out;
    }
    const char *proto = json_string_value(json_object_get(root, "protocol"));
    const char *pw = json_string_value(json_object_get(root, "passwd_file"));
    if (proto == NULL || strcmp(proto, m->protocol) != 0) {
        why = "another protocol";
        goto out;
    }
    if (strcmp(pw ? pw : "", m->passwd_file ? m->passwd_file : "") != 0) {
        why = "another passwd_file";
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(root, "options"), key, v)
    {
        int id = opt_lookup(key, strlen(key));
        const char *text = json_opt_text(v, buf, sizeof(buf));
        if (id < 0 || text == NULL || opt_set_value(&theirs, id, text, err, sizeof(err)) != 0) {
            why = "its state file has options this helper does not know";
            goto out;
        }
    }
    int d = mountopt_bind_differs(&m->opts, &theirs);
    if (d >= 0) {
        if (verbose)
            printf(PROG ": not sharing '%s': g_%s differs\n", mountpoint, opt_table[d].name);
        goto out;
    }
    snprintf(t->mountpoint, sizeof(t->mountpoint), "%s", mountpoint);
    same = true;
out:
    if (why && verbose)
        printf(PROG ": not sharing '%s': %s\n", mountpoint, why);
    json_decref(root);
    opt_release(&theirs);
    return same;
}

/* Finds a whole (root "/") efc mount of SOURCE whose daemon has M's options. */
static bool find_equal_mount(const struct mountopt *m, const struct mountopt_source *src,
                             bool verbose, struct bind_target *t)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    bool found = false;

    if (f == NULL)
        return false;
    while (!found && getline(&line, &cap, f) > 0) {
        struct mountopt_mountinfo mi;
        struct mountopt_source other;
        if (mountopt_mountinfo_parse(line, &mi) != 0 || strcmp(mi.fstype, FSTYPE) != 0 ||
            strcmp(mi.root, "/") != 0 || mountopt_source_parse(mi.source, &other, NULL, 0) != 0 ||
            strcmp(other.bucket, src->bucket) != 0 || strcasecmp(other.host, src->host) != 0 ||
            strcmp(other.prefix, src->prefix) != 0)
            continue;
        found = same_options(m, mi.mountpoint, verbose, t);
    }
    free(line);
    fclose(f);
    return found;
}

/* Makes DIR's state file a symlink to T's, so that the tools find the shared daemon through DIR.
   Relative: the daemon, ending, removes the symlinks in its directory that name its file. */
static void link_state(const struct bind_target *t, const char *dir)
{
    char alias[PATH_MAX], tmp[PATH_MAX + 32], target[PATH_MAX];

    snprintf(target, sizeof(target), "%s", t->state);
    if (statefile_path(statefile_dir(), dir, alias, sizeof(alias)) != 0)
        return;
    if (strcmp(strrchr(alias, '/') + 1, basename(target)) == 0)
        return; /* the daemon's own mount point, mounted again: its state file is this one */
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", alias, (long)getpid());
    unlink(tmp);
    if (symlink(basename(target), tmp) != 0 || rename(tmp, alias) != 0) {
        fprintf(stderr,
                PROG ": warning: cannot link the state file '%s' (%s): the management tools will "
                     "not find the daemon through '%s'\n",
                alias, strerror(errno), dir);
        unlink(tmp);
    }
}

/* trybind: bind-mounts an equal mount on DIR. 1 if done (or, with -f, would be), 0 if there is
   none or the bind mount failed (a daemon of its own then). */
static int try_bind(const struct mountopt_cmd *cmd, const struct mountopt *m,
                    const struct mountopt_source *src, const char *dir)
{
    struct bind_target t;

    if (!m->trybind || !find_equal_mount(m, src, cmd->verbose, &t))
        return 0;
    if (cmd->verbose || cmd->fake)
        printf(PROG ": '%s' mounts this source with the same options (daemon pid %ld): "
                    "bind-mounting it on '%s' (trybind)\n",
               t.mountpoint, t.pid, dir);
    if (cmd->fake)
        return 1;
    if (mount(t.mountpoint, dir, NULL, MS_BIND, NULL) != 0) {
        fprintf(stderr,
                PROG ": warning: cannot bind-mount '%s' on '%s' (trybind): %s; starting a "
                     "daemon of its own\n",
                t.mountpoint, dir, strerror(errno));
        return 0;
    }
    link_state(&t, dir);
    return 1;
}

/* Validates everything that can be checked before the daemon starts, then mounts. Returns the
   exit code. */
static int validate_and_mount(const struct mountopt_cmd *cmd, struct mountopt *m)
{
    struct mountopt_source src;
    char err[512];
    int rc;

    err[0] = '\0';
    rc = mountopt_parse(m, cmd->options, cmd->sloppy, err, sizeof(err));
    if (rc) {
        fprintf(stderr, PROG ": %s\n", rc == -ENOMEM ? "out of memory" : err);
        return EXIT_FAIL;
    }
    if (m->ignored[0])
        fprintf(stderr, PROG ": warning: ignoring unknown options %s (-s)\n", m->ignored);
    if (mountopt_source_parse(cmd->source, &src, err, sizeof(err)) != 0) {
        fprintf(stderr, PROG ": invalid source '%s': %s\n", cmd->source, err);
        return EXIT_FAIL;
    }
    if (m->passwd_file && check_file("passwd_file", m->passwd_file) != 0)
        return EXIT_FAIL;
    const char *sts = opt_str(&m->opts, OPT_OSS_STSFILE);
    if (sts[0] && check_file("g_oss_STSFile", sts) != 0)
        return EXIT_FAIL;

    char dir[PATH_MAX];
    struct stat st;
    if (realpath(cmd->dir, dir) == NULL) {
        fprintf(stderr, PROG ": mount point '%s': %s\n", cmd->dir, strerror(errno));
        return EXIT_FAIL;
    }
    if (stat(dir, &st) != 0) {
        fprintf(stderr, PROG ": mount point '%s': %s\n", dir, strerror(errno));
        return EXIT_FAIL;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, PROG ": mount point '%s' is not a directory\n", dir);
        return EXIT_FAIL;
    }
    rc = for_each_mount_on(dir, any_mount, NULL);
    if (rc < 0) {
        fprintf(stderr, PROG ": cannot read /proc/self/mountinfo: %s\n", strerror(-rc));
        return EXIT_FAIL;
    }
    if (rc == 1) {
        fprintf(stderr, PROG ": '%s' is already mounted\n", dir);
        return EXIT_FAIL;
    }
    if (try_bind(cmd, m, &src, dir))
        return 0;

    const char *daemon = getenv("EFC_DAEMON");
    if (daemon == NULL || daemon[0] == '\0')
        daemon = EFC_DAEMON_PATH;
    char **av = daemon_argv(daemon, m, cmd->source, dir);
    rc = spawn_and_wait(cmd, av, dir);
    for (int i = 0; av[i]; i++)
        free(av[i]);
    free(av);
    return rc;
}

/* Runs the daemon and waits for its ready line. Returns the exit code. */
static int spawn_and_wait(const struct mountopt_cmd *cmd, char *const av[], const char *dir)
{
    int rc;

    if (cmd->verbose)
        print_command(av);
    if (cmd->fake)
        return 0;

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        fprintf(stderr, PROG ": pipe: %s\n", strerror(errno));
        return EXIT_FAIL;
    }
    int out_fd = cmd->verbose ? -1 : output_file();
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    fflush(NULL);

    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
        return EXIT_FAIL;
    }
    if (pid == 0)
        exec_daemon(av, pfd[1], out_fd);
    /* Also from here, so the group exists before any kill(-pid) below. */
    setpgid(pid, pid);
    close(pfd[1]);

    char line[READY_LINE_MAX];
    rc = read_ready_line(pfd[0], line, sizeof(line), READY_TIMEOUT);
    close(pfd[0]);
    if (rc == 1 && strcmp(line, "ok") == 0) {
        if (out_fd >= 0)
            close(out_fd);
        return 0;
    }

    char why[READY_LINE_MAX + 512], status[128], last[512];
    int st_code;
    if (rc == 1 && strncmp(line, "error: ", 7) == 0) {
        snprintf(why, sizeof(why), "%s", line + 7);
        /* The daemon exits by itself after an error line; give it a moment, then insist. */
        if (wait_bounded(pid, 5000) == -1)
            kill_daemon(pid);
    } else if (rc == 1) {
        kill_daemon(pid);
        snprintf(why, sizeof(why), "the daemon answered '%.200s' instead of ok", line);
    } else if (rc == 0) {
        st_code = wait_bounded(pid, 5000);
        last_output_line(out_fd, last, sizeof(last));
        if (st_code == -1) {
            kill_daemon(pid);
            snprintf(status, sizeof(status),
                     "closed its ready pipe without an answer (stopped it)");
        } else {
            describe_status(st_code, status, sizeof(status));
        }
        snprintf(why, sizeof(why), "the daemon %s before the mount was ready%s%s", status,
                 last[0] ? ": " : "", last);
    } else if (rc == -ETIMEDOUT) {
        kill_daemon(pid);
        snprintf(why, sizeof(why), "the daemon did not answer within %d s; stopped it",
                 READY_TIMEOUT / 1000);
    } else if (rc == -EINTR) {
        kill_daemon(pid);
        snprintf(why, sizeof(why), "interrupted by signal %d; stopped the daemon",
                 (int)interrupted);
    } else {
        kill_daemon(pid);
        snprintf(why, sizeof(why), "cannot read the daemon's answer: %s", strerror(-rc));
    }
    if (out_fd >= 0)
        close(out_fd);
    detach_our_mount(dir, cmd->source);
    fprintf(stderr, PROG ": %s\n", why);
    return EXIT_FAIL;
}

int main(int argc, char **argv)
{
    struct mountopt_cmd cmd;
    char err[512];
    int rc, code;

    ensure_stdio();
    err[0] = '\0';
    rc = mountopt_cmd_parse(argc, argv, &cmd, err, sizeof(err));
    if (rc == 0 && cmd.help) {
        usage(stdout, true);
        code = 0;
    } else if (rc) {
        fprintf(stderr, PROG ": %s\n", rc == -ENOMEM ? "out of memory" : err);
        usage(stderr, false);
        code = EXIT_USAGE;
    } else if (cmd.ns) {
        fprintf(stderr, PROG ": mounting in another namespace (-N) is not supported\n");
        code = EXIT_FAIL;
    } else {
        struct mountopt m;
        if (mountopt_init(&m) != 0) {
            fprintf(stderr, PROG ": out of memory\n");
            code = EXIT_FAIL;
        } else {
            code = validate_and_mount(&cmd, &m);
        }
        mountopt_release(&m);
    }
    mountopt_cmd_release(&cmd);
    return code;
}
