/* efc/supervise.c - the supervisor: a mount that outlives its daemon.
 *
 *     aliyun-alinas-efc-supervisor --supervise --fuse-fd=N --journal-fd=M --mount-time=T
 *         [--watchdog-sec=S] [--max-restarts=R] [--log-file=PATH] -- <mountpoint>
 *
 * Why. A FUSE mount whose daemon dies answers ENOTCONN ("Transport endpoint is not connected")
 * until somebody runs `umount -l`, and every process that had a file open on it has lost it. The
 * kernel keeps a FUSE connection as long as one /dev/fuse descriptor of it is open; so a small
 * second process that holds one keeps the connection, and with it the mount, the dentries and the
 * open files, alive while a new daemon is started to take the connection over.
 *
 * Who starts whom. A daemon that has just mounted (main.c) creates the crash journal (journal_i.h)
 * and starts this process with a copy of its /dev/fuse descriptor and of the journal; this
 * process forks once more (so the daemon has no child to reap), starts its own session and
 * becomes a child subreaper, so that every daemon started later (by it, or by a runtime update of
 * such a daemon) is its child and its exit status can be told in the log.
 *
 *     mount.alinas -> daemon (pid A) ------- mounts; writes the journal as it serves
 *                       `-> supervisor ----- holds /dev/fuse and the journal; watches pid A
 *     kill -9 A        supervisor: A is gone, the journal's state is SERVING and the connection
 *                       is alive: FUSE_NOTIFY_RESEND (requests A had read go back to the queue),
 *                       journal -> hand-over blob, start daemon B with --handover-fd, --fuse-fd,
 *                       --journal-fd and --ready-fd, exactly as a runtime update starts its
 *                       successor; B replays INIT, imports the table and serves; "ok"
 *
 * Which pid to watch: the journal's header names the daemon that serves (each daemon writes its
 * pid there before it says "ok"), so a runtime update's successor is followed without a word.
 * The supervisor watches with a pidfd and ends when the daemon ends with the journal saying
 * EXITING (unmount, SIGTERM) or when the connection itself is gone (poll gives POLLERR).
 *
 * Requests in flight. On Linux 6.9 and later a FUSE_NOTIFY_RESEND puts every request that was
 * read and not answered back in the queue, where the next daemon finds it: a reader blocked in
 * read(2) when its daemon was killed gets its bytes from the next one. For that the requests must
 * have been read from a descriptor that is still open, so a supervised daemon on such a kernel
 * reads the session's own descriptor (no clone_fd: main.c), which this process holds. On older
 * kernels the daemon keeps clone_fd, and the requests it had read fail with ECONNABORTED when it
 * dies (its cloned descriptors close) instead of hanging forever.
 *
 * The watchdog. Every few seconds a thread looks up EFC_WATCHDOG_NAME in the mount's root, which
 * the daemon answers at once without asking the origin (fs.c). A lookup left unanswered for the
 * watchdog's time (g_supervisor_WatchdogSec) means the daemon is wedged (a deadlock, every
 * worker stuck): it is killed with SIGKILL and replaced like a dead one; the probe itself is
 * resent and answered by the successor.
 *
 * Giving up. A successor that fails to start, or dies within EFC_SUP_STABLE_MS (10 s) of starting,
 * counts against g_supervisor_MaxRestarts (a crash loop: a daemon that cannot start, or one that
 * dies on a request it is resent each time); after the first such failure the supervisor waits
 * 0.5 s before the next attempt, doubling up to 30 s. When the bound is reached it stops trying: it
 * answers every request on the connection with EIO itself (so nothing hangs and nothing waits for a
 * daemon that will not come) and logs one line saying why and how to unmount, until the mount is
 * unmounted.
 */
#define _GNU_SOURCE /* memfd_create, pidfd, program_invocation_name */
#include "efc/supervise_i.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "efc/efc.h"
#include "efc/handover_i.h"
#include "efc/journal_i.h"
#include "efc/ns_i.h"
#include "util/log.h"
#include "util/timeutil.h"

extern char **environ;

#ifndef FUSE_NOTIFY_RESEND /* Linux 6.9's <linux/fuse.h>; Debian 12 has 6.1's */
#define FUSE_NOTIFY_RESEND 7
#endif

#define EFC_SUP_STABLE_MS   10000  /* a daemon up this long resets the count of failed restarts */
#define EFC_SUP_READY_MS    120000 /* a successor may take this long to say "ok" */
#define EFC_SUP_BACKOFF_MS  500    /* the first wait between failed restarts, doubling */
#define EFC_SUP_BACKOFF_MAX 30000
#define EFC_SUP_EIO_BUF     ((16u << 20) + (64u << 10)) /* /dev/fuse reads: max_write + room */

/* ---- the daemon's side ------------------------------------------------------------------------
 */

bool efc_kernel_has_resend(void)
{
    struct utsname u;
    unsigned maj = 0, min = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%u.%u", &maj, &min) != 2)
        return false;
    return maj > 6 || (maj == 6 && min >= 9); /* FUSE_NOTIFY_RESEND: Linux 6.9 */
}

int efc_supervise_spawn(struct efc *e, const char *log_path, char *err, size_t errlen)
{
    char a_fuse[48], a_jnl[48], a_time[48], a_wd[48], a_max[48], *a_log = NULL;
    char *argv[16];
    int n = 0, fuse_dup = -1, jnl_dup = -1, rc = -1;
    pid_t pid;

    fuse_dup = dup(fuse_session_fd(e->se)); /* without FD_CLOEXEC: for the supervisor */
    jnl_dup = dup(efc_journal_fd(e->journal));
    if (fuse_dup < 0 || jnl_dup < 0) {
        snprintf(err, errlen, "dup: %s", strerror(errno));
        goto out;
    }
    snprintf(a_fuse, sizeof(a_fuse), "--fuse-fd=%d", fuse_dup);
    snprintf(a_jnl, sizeof(a_jnl), "--journal-fd=%d", jnl_dup);
    snprintf(a_time, sizeof(a_time), "--mount-time=%lld", (long long)e->mount_time);
    snprintf(a_wd, sizeof(a_wd), "--watchdog-sec=%lld",
             (long long)opt_int(&e->opts, OPT_SUPERVISOR_WATCHDOGSEC));
    snprintf(a_max, sizeof(a_max), "--max-restarts=%lld",
             (long long)opt_int(&e->opts, OPT_SUPERVISOR_MAXRESTARTS));
    argv[n++] = EFC_SUPERVISOR_NAME;
    argv[n++] = "--supervise";
    argv[n++] = a_fuse;
    argv[n++] = a_jnl;
    argv[n++] = a_time;
    argv[n++] = a_wd;
    argv[n++] = a_max;
    if (log_path) {
        if (asprintf(&a_log, "--log-file=%s", log_path) < 0) {
            a_log = NULL;
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        argv[n++] = a_log;
    }
    argv[n++] = "--";
    argv[n++] = e->mountpoint;
    argv[n] = NULL;

    /* The daemon blocks SIGUSR2 everywhere and libfuse ignores SIGPIPE: the supervisor starts
       with nothing blocked and default dispositions for the signals it cares about. */
    posix_spawnattr_t attr;
    sigset_t none, def;
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGUSR2);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGHUP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int src = posix_spawn(&pid, "/proc/self/exe", NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    if (src != 0) {
        snprintf(err, errlen, "cannot start the supervisor: %s", strerror(src));
        goto out;
    }
    /* It forks at once and this child exits: reap it, so it is no zombie of ours. */
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(err, errlen, "the supervisor did not start (status %d)", st);
        goto out;
    }
    rc = 0;
out:
    if (fuse_dup >= 0)
        close(fuse_dup);
    if (jnl_dup >= 0)
        close(jnl_dup);
    free(a_log);
    return rc;
}

/* ---- the supervisor -------------------------------------------------------------------------- */

struct sup {
    int fuse_fd;
    int jfd;
    const void *jmem; /* the journal, mapped read-only */
    size_t jlen;
    const char *mnt;
    int64_t mount_time;
    uint64_t watchdog_ms; /* 0: off */
    unsigned max_restarts;

    pid_t pid;         /* the daemon watched */
    int pidfd;         /* -1: none */
    bool status_known; /* PID was our child and has been reaped: STATUS is its end */
    int status;
    uint64_t since_ms;       /* when the watch of PID began */
    bool killed_by_watchdog; /* PID was killed by us */
    unsigned failures;       /* restarts in a row that failed or did not last */
    unsigned restarts;       /* successful restarts so far */
    char probe_path[PATH_MAX];

    _Atomic uint64_t probe_start_ms; /* a probe in flight since; 0: none */
};

static volatile sig_atomic_t g_quit;

static void on_quit(int sig)
{
    (void)sig;
    g_quit = 1;
}

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static bool pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* The connection is gone (unmounted, or aborted through fusectl). */
static bool connection_gone(const struct sup *s)
{
    struct pollfd p = {.fd = s->fuse_fd, .events = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP | POLLNVAL));
}

/* Sleeps MS, in slices, returning early when asked to quit or when the connection ends. */
static void nap(const struct sup *s, uint64_t ms)
{
    uint64_t end = time_mono_ms() + ms;
    while (!g_quit && !connection_gone(s)) {
        uint64_t now = time_mono_ms();
        if (now >= end)
            return;
        uint64_t step = end - now < 100 ? end - now : 100;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void *probe_main(void *arg)
{
    struct sup *s = arg;
    uint64_t every = s->watchdog_ms / 6;
    if (every < 1000)
        every = 1000;
    if (every > 10000)
        every = 10000;
    while (!g_quit) {
        struct stat st;
        atomic_store(&s->probe_start_ms, time_mono_ms());
        (void)stat(s->probe_path, &st); /* ENOENT is the answer; any answer will do */
        atomic_store(&s->probe_start_ms, 0);
        nap(s, every);
        if (connection_gone(s))
            break;
    }
    return NULL;
}

/* Requests the dead daemon had read go back to the kernel's queue (Linux 6.9+). */
static void resend(const struct sup *s)
{
    static bool warned;
    struct fuse_out_header out = {.len = sizeof(out), .error = FUSE_NOTIFY_RESEND};
    if (write(s->fuse_fd, &out, sizeof(out)) == (ssize_t)sizeof(out))
        return;
    if (!warned)
        log_warn("this kernel cannot resend FUSE requests (%s; Linux 6.9 can): the requests the "
                 "dead daemon had taken failed",
                 strerror(errno));
    warned = true;
}

/* Reaps every child that ended (daemons this process started, and the orphans of their runtime
 * updates, which come to a subreaper); keeps the status of the watched one. */
static void reap_children(struct sup *s)
{
    int st;
    pid_t r;
    while ((r = waitpid(-1, &st, WNOHANG)) > 0 || (r < 0 && errno == EINTR)) {
        if (r == s->pid) {
            s->status_known = true;
            s->status = st;
        }
    }
}

/* What became of the watched daemon, for the log. */
static void death_text(struct sup *s, char *out, size_t n)
{
    int st = 0;
    pid_t r;
    do {
        r = waitpid(s->pid, &st, 0); /* ECHILD unless it is our child and not reaped yet */
    } while (r < 0 && errno == EINTR);
    if (r == s->pid) {
        s->status_known = true;
        s->status = st;
    }
    st = s->status;
    if (s->status_known && WIFSIGNALED(st))
        snprintf(out, n, "was killed by signal %d (%s)%s", WTERMSIG(st), strsignal(WTERMSIG(st)),
                 s->killed_by_watchdog ? ", by the watchdog" : "");
    else if (s->status_known)
        snprintf(out, n, "exited with status %d", WEXITSTATUS(st));
    else /* the first daemon is not our child: its status went to its own parent */
        snprintf(out, n, "is gone%s", s->killed_by_watchdog ? " (killed by the watchdog)" : "");
    reap_children(s);
}

/* Answers every request with EIO until the mount goes. Never returns. */
static void serve_eio(struct sup *s, const char *why)
{
    log_error("giving up on '%s': %s; it answers every request with EIO until it is unmounted "
              "(umount %s)",
              s->mnt, why, s->mnt);
    resend(s);
    uint8_t *buf = malloc(EFC_SUP_EIO_BUF);
    if (buf == NULL) {
        log_error("out of memory: leaving the connection of '%s' to the kernel", s->mnt);
        _exit(1);
    }
    uint64_t answered = 0;
    while (!g_quit) {
        ssize_t n = read(s->fuse_fd, buf, EFC_SUP_EIO_BUF);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
                continue;
            if (errno != ENODEV)
                log_error("reading the FUSE connection of '%s': %s", s->mnt, strerror(errno));
            break;
        }
        if ((size_t)n < sizeof(struct fuse_in_header))
            continue;
        struct fuse_in_header in;
        memcpy(&in, buf, sizeof(in));
        if (in.opcode == FUSE_FORGET || in.opcode == FUSE_BATCH_FORGET ||
            in.opcode == FUSE_INTERRUPT)
            continue; /* no reply expected */
        struct fuse_out_header out = {.len = sizeof(out), .error = -EIO, .unique = in.unique};
        if (write(s->fuse_fd, &out, sizeof(out)) == (ssize_t)sizeof(out))
            answered++;
    }
    log_info("'%s' is unmounted (%llu requests answered EIO); supervisor exiting", s->mnt,
             (unsigned long long)answered);
    free(buf);
    _exit(0);
}

/* Starts a successor from the journal. Returns 0 (S->pid is it) or -1 with the reason in WHY. */
static int start_successor(struct sup *s, uint64_t died_ms, char *why, size_t whylen)
{
    struct efc_journal_header h;
    struct buf b;
    char err[1024], id[64];
    int blob = -1, rfd[2] = {-1, -1}, fuse_dup = -1, jnl_dup = -1, rc = -1;
    pid_t pid = -1;

    if (efc_journal_read_header(s->jmem, s->jlen, &h, err, sizeof(err)) != 0) {
        snprintf(why, whylen, "the crash journal is unreadable: %s", err);
        return -1;
    }
    if (h.argc < 3) {
        snprintf(why, whylen, "the crash journal holds no command line");
        return -1;
    }
    snprintf(id, sizeof(id), "restart-%u", s->restarts + 1);
    buf_init(&b, EFC_HO_MAX_BYTES);
    if (efc_journal_blob(s->jmem, s->jlen, s->mount_time, (uint32_t)s->pid, died_ms, id,
                         efc_ns_seq_after, &b, err, sizeof(err)) != 0) {
        snprintf(why, whylen, "cannot rebuild the inode table from the crash journal: %s", err);
        buf_release(&b);
        return -1;
    }
    blob = efc_handover_memfd(b.data, b.len, err, sizeof(err));
    buf_release(&b);
    if (blob < 0) {
        snprintf(why, whylen, "%s", err);
        return -1;
    }
    fuse_dup = dup(s->fuse_fd);
    jnl_dup = dup(s->jfd);
    if (fuse_dup < 0 || jnl_dup < 0 || pipe2(rfd, O_CLOEXEC) != 0) {
        snprintf(why, whylen, "cannot set up the new daemon's descriptors: %s", strerror(errno));
        goto out;
    }
    int rdup = dup(rfd[1]); /* the ready pipe's write end, without FD_CLOEXEC */
    int bdup = dup(blob);
    char a[4][48];
    snprintf(a[0], sizeof(a[0]), "--handover-fd=%d", bdup);
    snprintf(a[1], sizeof(a[1]), "--fuse-fd=%d", fuse_dup);
    snprintf(a[2], sizeof(a[2]), "--ready-fd=%d", rdup);
    snprintf(a[3], sizeof(a[3]), "--journal-fd=%d", jnl_dup);
    const char *argv[EFC_JNL_MAX_ARGC + 8];
    int n = 0;
    argv[n++] = h.argv[0];
    for (int i = 0; i < 4; i++)
        argv[n++] = a[i];
    for (int i = 1; i < h.argc; i++)
        argv[n++] = h.argv[i];
    argv[n] = NULL;

    posix_spawnattr_t attr;
    sigset_t mask, def;
    posix_spawnattr_init(&attr);
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2); /* pending until the new daemon's handover thread takes it */
    sigemptyset(&def);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGHUP);
    posix_spawnattr_setsigmask(&attr, &mask);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int src = bdup >= 0 && rdup >= 0
                  ? posix_spawn(&pid, "/proc/self/exe", NULL, &attr, (char *const *)argv, environ)
                  : EBADF;
    posix_spawnattr_destroy(&attr);
    if (rdup >= 0)
        close(rdup);
    if (bdup >= 0)
        close(bdup);
    close(rfd[1]);
    rfd[1] = -1;
    if (src != 0) {
        snprintf(why, whylen, "cannot start '%s': %s", h.argv[0], strerror(src));
        goto out;
    }
    if (efc_handover_wait_ready(rfd[0], pid, EFC_SUP_READY_MS, why, whylen) != 0) {
        if (pid_alive(pid)) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        goto out;
    }
    s->pid = pid;
    rc = 0;
out:
    for (int i = 0; i < 2; i++)
        if (rfd[i] >= 0)
            close(rfd[i]);
    if (fuse_dup >= 0)
        close(fuse_dup);
    if (jnl_dup >= 0)
        close(jnl_dup);
    if (blob >= 0)
        close(blob);
    return rc;
}

/* The daemon is gone and the mount is not ending: start successors until one serves, or give
 * up (serve_eio). */
static void recover(struct sup *s, uint64_t died_ms)
{
    char why[1200] = "";
    for (;;) {
        if (g_quit || connection_gone(s))
            return;
        if (s->failures >= s->max_restarts) {
            char t[1400];
            snprintf(t, sizeof(t), "%u restarts in a row failed or did not last (the last: %s)",
                     s->failures, why[0] ? why : "it died soon after it started");
            serve_eio(s, t);
        }
        if (s->failures > 1) { /* the first retry at once: one death is no loop yet */
            uint64_t wait = (uint64_t)EFC_SUP_BACKOFF_MS
                            << (s->failures - 2 < 10 ? s->failures - 2 : 10);
            nap(s, wait < EFC_SUP_BACKOFF_MAX ? wait : EFC_SUP_BACKOFF_MAX);
            if (g_quit || connection_gone(s))
                return;
        }
        why[0] = '\0';
        resend(s);
        pid_t old = s->pid;
        if (start_successor(s, died_ms, why, sizeof(why)) == 0) {
            s->restarts++;
            log_info("pid %d serves '%s' again after pid %d (restart %u; %llu ms without a "
                     "daemon)",
                     (int)s->pid, s->mnt, (int)old, s->restarts,
                     (unsigned long long)(time_mono_ms() - died_ms));
            return;
        }
        s->failures++;
        log_error("restart %u of '%s' failed: %s", s->failures, s->mnt, why);
    }
}

static int parse_fd(const char *v, int *out)
{
    char *end;
    long fd = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || fd < 0 || fd > INT_MAX || fcntl((int)fd, F_GETFD) < 0)
        return -1;
    *out = (int)fd;
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

static int parse_num(const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

int efc_supervise_main(int argc, char **argv)
{
    static struct sup sv;
    struct sup *s = &sv;
    const char *log_file = NULL;
    long long wd = 60, maxr = 5, mt = 0;

    s->fuse_fd = s->jfd = s->pidfd = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (strncmp(a, "--fuse-fd=", 10) == 0)
            bad = parse_fd(a + 10, &s->fuse_fd);
        else if (strncmp(a, "--journal-fd=", 13) == 0)
            bad = parse_fd(a + 13, &s->jfd);
        else if (strncmp(a, "--watchdog-sec=", 15) == 0)
            bad = parse_num(a + 15, 0, 3600, &wd);
        else if (strncmp(a, "--max-restarts=", 15) == 0)
            bad = parse_num(a + 15, 1, 1000, &maxr);
        else if (strncmp(a, "--mount-time=", 13) == 0)
            bad = parse_num(a + 13, 0, INT64_MAX, &mt);
        else if (strncmp(a, "--log-file=", 11) == 0)
            log_file = a + 11;
        else if (strcmp(a, "--") == 0 && i + 1 == argc - 1)
            s->mnt = argv[++i];
        else
            bad = -1;
        if (bad) {
            fprintf(stderr, EFC_SUPERVISOR_NAME ": bad argument '%s'\n", a);
            return 2;
        }
    }
    if (s->fuse_fd < 0 || s->jfd < 0 || s->mnt == NULL || s->mnt[0] != '/') {
        fprintf(stderr,
                EFC_SUPERVISOR_NAME ": needs --fuse-fd, --journal-fd and -- <mountpoint>\n");
        return 2;
    }
    s->watchdog_ms = (uint64_t)wd * 1000;
    s->max_restarts = (unsigned)maxr;
    s->mount_time = mt;
    snprintf(s->probe_path, sizeof(s->probe_path), "%s/%s", s->mnt, EFC_WATCHDOG_NAME);

    struct stat st;
    if (fstat(s->jfd, &st) != 0 || st.st_size < EFC_JNL_HEADER_SIZE) {
        fprintf(stderr, EFC_SUPERVISOR_NAME ": --journal-fd is not a journal\n");
        return 2;
    }
    s->jlen = (size_t)st.st_size;
    s->jmem = mmap(NULL, s->jlen, PROT_READ, MAP_SHARED, s->jfd, 0);
    if (s->jmem == MAP_FAILED) {
        fprintf(stderr, EFC_SUPERVISOR_NAME ": cannot map the journal: %s\n", strerror(errno));
        return 2;
    }
    log_set_ident("efc-supervisor");
    if (log_file && log_open_file(log_file) != 0)
        log_file = NULL; /* stderr, as the daemon's */

    /* Leave the daemon without a child to reap: the grandchild goes on. */
    pid_t f = fork();
    if (f < 0) {
        fprintf(stderr, EFC_SUPERVISOR_NAME ": fork: %s\n", strerror(errno));
        return 1;
    }
    if (f > 0)
        _exit(0);
    setsid();
    if (chdir("/") != 0)
        log_debug("chdir /: %s", strerror(errno));
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        if (log_file)
            dup2(nul, 2);
        if (nul > 2)
            close(nul);
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        log_debug("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_quit; /* no SA_RESTART: poll and read return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);

    struct efc_journal_header h;
    char err[512];
    if (efc_journal_read_header(s->jmem, s->jlen, &h, err, sizeof(err)) != 0) {
        log_error("cannot supervise '%s': %s", s->mnt, err);
        return 1;
    }
    s->pid = (pid_t)h.pid;
    s->since_ms = time_mono_ms();
    /* Detached: nothing waits for the probe, which may be blocked in a lookup of a wedged daemon
       when we exit (the exit ends it; it touches nothing but the static S). */
    pthread_t probe;
    if (s->watchdog_ms && pthread_create(&probe, NULL, probe_main, s) == 0)
        pthread_detach(probe);
    log_info("supervising '%s' (daemon pid %d; watchdog %s%llu s; at most %u failed restarts in a "
             "row)",
             s->mnt, (int)s->pid, s->watchdog_ms ? "" : "off, ",
             (unsigned long long)(s->watchdog_ms / 1000), s->max_restarts);

    pid_t watched = 0;
    while (!g_quit) {
        bool dead;
        if (s->pid != watched) { /* a new daemon to watch */
            watched = s->pid;
            s->killed_by_watchdog = false;
            s->status_known = false;
            if (s->pidfd >= 0)
                close(s->pidfd);
            s->pidfd = pidfd_open_(s->pid);
        }
        if (s->pidfd >= 0) {
            struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
            dead = poll(&p, 1, 500) == 1;
        } else {
            /* gone already (ESRCH), or Linux before 5.3: look every half second */
            reap_children(s);
            dead = !pid_alive(s->pid);
            if (!dead)
                nap(s, 500);
        }
        reap_children(s);
        uint64_t now = time_mono_ms();
        if (!dead) {
            uint64_t ps = atomic_load(&s->probe_start_ms);
            uint64_t from = ps > s->since_ms ? ps : s->since_ms;
            if (s->watchdog_ms && ps && now - from > s->watchdog_ms && !s->killed_by_watchdog) {
                log_error("daemon pid %d of '%s' has not answered a lookup for %llu s: killing "
                          "it to start a new one",
                          (int)s->pid, s->mnt, (unsigned long long)((now - from) / 1000));
                s->killed_by_watchdog = true;
                kill(s->pid, SIGKILL);
            }
            continue;
        }
        /* The daemon is gone: a runtime update's successor, the end of the mount, or a death. */
        if (s->pidfd >= 0)
            close(s->pidfd);
        s->pidfd = -1;
        watched = 0;
        if (efc_journal_read_header(s->jmem, s->jlen, &h, err, sizeof(err)) != 0) {
            log_error("the crash journal of '%s' is unreadable: %s", s->mnt, err);
            serve_eio(s, "its crash journal is unreadable");
        }
        if ((pid_t)h.pid != s->pid && pid_alive((pid_t)h.pid)) {
            log_info("'%s' is served by pid %d now (after pid %d)", s->mnt, (int)h.pid,
                     (int)s->pid);
            s->pid = (pid_t)h.pid;
            s->since_ms = now;
            continue;
        }
        if (h.state == EFC_JNL_EXITING || connection_gone(s))
            break;
        char what[200];
        death_text(s, what, sizeof(what));
        uint64_t up = now - s->since_ms;
        if (up >= EFC_SUP_STABLE_MS)
            s->failures = 0;
        else if (s->restarts > 0)
            s->failures++; /* a successor that did not last */
        log_error("daemon pid %d of '%s' %s after %llu s up: starting a new one", (int)s->pid,
                  s->mnt, what, (unsigned long long)(up / 1000));
        recover(s, now);
        s->since_ms = time_mono_ms();
    }
    log_info("'%s' is no longer mounted%s; supervisor exiting", s->mnt,
             g_quit ? " or the supervisor was told to stop" : "");
    return 0;
}
