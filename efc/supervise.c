/* efc/supervise.c - the supervisor: a mount that outlives its daemon.
 *
 *     aliyun-alinas-efc-supervisor --supervise --fuse-fd=N --journal-fd=M [--pid-fd=P]
 *         --mount-time=T [--watchdog-sec=S] [--max-restarts=R] [--log-file=PATH]
 *         [--log-rotate=MAX_BYTES:FILES] -- <mountpoint>
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
 * Who watches the supervisor. The daemon does (efc_supervise_watch): it learns the supervisor's
 * pid when it starts it (--pid-fd) or from its own command line (--supervisor-pid, given by the
 * supervisor to the daemons it starts and by a runtime update to its successor), and a thread
 * polls the supervisor's pidfd. A supervisor that dies while the mount is served (kill -9, the
 * OOM killer) is replaced at once; one that keeps dying (EFC_SUP_MAX_QUICK in a row within
 * EFC_SUP_STABLE_MS of starting) leaves the mount unsupervised with a log line. A runtime update
 * holds the watch while it hands over, so that old and new daemon never both start one.
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
#include <sys/eventfd.h>
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
#include "util/mountopt.h"
#include "util/timeutil.h"

extern char **environ;

#ifndef FUSE_NOTIFY_RESEND /* Linux 6.9's <linux/fuse.h>; Debian 12 has 6.1's */
#define FUSE_NOTIFY_RESEND 7
#endif

#define EFC_SUP_STABLE_MS   10000  /* a daemon up this long resets the count of failed restarts */
#define EFC_SUP_READY_MS    120000 /* a successor may take this long to say "ok" */
#define EFC_SUP_BACKOFF_MS  500    /* the first wait between failed restarts, doubling */
#define EFC_SUP_BACKOFF_MAX 30000
#define EFC_SUP_MAX_QUICK   5 /* supervisors in a row gone within EFC_SUP_STABLE_MS */
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

int efc_supervise_spawn(struct efc *e, const char *log_path, pid_t *sup_pid, char *err,
                        size_t errlen)
{
    char a_fuse[48], a_jnl[48], a_pid[48], a_time[48], a_wd[48], a_max[48], a_rot[64];
    char *a_log = NULL;
    char *argv[16];
    int n = 0, fuse_dup = -1, jnl_dup = -1, pfd[2] = {-1, -1}, pid_dup = -1, rc = -1;
    pid_t pid;

    fuse_dup = dup(fuse_session_fd(e->se)); /* without FD_CLOEXEC: for the supervisor */
    jnl_dup = dup(efc_journal_fd(e->journal));
    if (fuse_dup < 0 || jnl_dup < 0 || pipe2(pfd, O_CLOEXEC) != 0 || (pid_dup = dup(pfd[1])) < 0) {
        snprintf(err, errlen, "cannot set up the supervisor's descriptors: %s", strerror(errno));
        goto out;
    }
    snprintf(a_fuse, sizeof(a_fuse), "--fuse-fd=%d", fuse_dup);
    snprintf(a_jnl, sizeof(a_jnl), "--journal-fd=%d", jnl_dup);
    snprintf(a_pid, sizeof(a_pid), "--pid-fd=%d", pid_dup);
    snprintf(a_time, sizeof(a_time), "--mount-time=%lld", (long long)e->mount_time);
    snprintf(a_wd, sizeof(a_wd), "--watchdog-sec=%lld",
             (long long)opt_int(&e->opts, OPT_SUPERVISOR_WATCHDOGSEC));
    snprintf(a_max, sizeof(a_max), "--max-restarts=%lld",
             (long long)opt_int(&e->opts, OPT_SUPERVISOR_MAXRESTARTS));
    argv[n++] = EFC_SUPERVISOR_NAME;
    argv[n++] = "--supervise";
    argv[n++] = a_fuse;
    argv[n++] = a_jnl;
    argv[n++] = a_pid;
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
        snprintf(a_rot, sizeof(a_rot), "--log-rotate=%lld:%lld",
                 (long long)opt_int(&e->opts, OPT_LOG_MAXBYTES),
                 (long long)opt_int(&e->opts, OPT_LOG_FILECOUNT));
        argv[n++] = a_rot;
    }
    argv[n++] = "--";
    argv[n++] = e->mountpoint;
    argv[n] = NULL;

    /* The daemon blocks SIGUSR2 everywhere and libfuse ignores SIGPIPE: the supervisor starts
       with nothing blocked and default dispositions for the signals it cares about. */
    int src = efc_spawn_self(argv, 0, &pid);
    close(pid_dup);
    pid_dup = -1;
    close(pfd[1]);
    pfd[1] = -1;
    if (src != 0) {
        snprintf(err, errlen, "cannot start the supervisor: %s", strerror(src));
        goto out;
    }
    /* It forks at once, writes the pid of the process that goes on, and exits: reap it, so it is
       no zombie of ours. */
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    char line[32];
    ssize_t got = read(pfd[0], line, sizeof(line) - 1); /* written before it exited */
    long sp = 0;
    if (got > 0) {
        line[got] = '\0';
        sp = strtol(line, NULL, 10);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || sp <= 0) {
        snprintf(err, errlen, "the supervisor did not start (status %d)", st);
        goto out;
    }
    *sup_pid = (pid_t)sp;
    rc = 0;
out:
    for (int i = 0; i < 2; i++)
        if (pfd[i] >= 0)
            close(pfd[i]);
    if (pid_dup >= 0)
        close(pid_dup);
    if (fuse_dup >= 0)
        close(fuse_dup);
    if (jnl_dup >= 0)
        close(jnl_dup);
    free(a_log);
    return rc;
}

/* The watch of the supervisor (one per daemon). The thread sleeps in poll on the supervisor's
 * pidfd (or looks every second where there is none) and an eventfd that ends it. */
struct efc_supwatch {
    struct efc *e;
    char *log_path; /* NULL: stderr */
    pthread_t thread;
    int efd; /* eventfd: the watch is to end */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pid_t pid; /* the supervisor watched; 0: none (the last start failed) */
    bool held; /* a runtime update is on: start none */
    bool stop; /* the watch ends */
};

static int pidfd_open_(pid_t pid);
static bool pid_alive(pid_t pid);

/* Whether PID runs the supervisor (its argv[0]): a pid handed over may have been reused. */
static bool is_supervisor(pid_t pid)
{
    char path[64], cmd[sizeof(EFC_SUPERVISOR_NAME) + 1];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, cmd, sizeof(cmd));
    close(fd);
    return n >= (ssize_t)sizeof(EFC_SUPERVISOR_NAME) &&
           memcmp(cmd, EFC_SUPERVISOR_NAME, sizeof(EFC_SUPERVISOR_NAME)) == 0;
}

/* Waits until PID is gone or the watch ends. Returns false when the watch ends. */
static bool watch_wait(struct efc_supwatch *w, pid_t pid)
{
    int pfd = pid > 0 ? pidfd_open_(pid) : -1;
    /* the pidfd pins the process: checked after it, the name is that process's */
    bool alive = pid > 0 && pid_alive(pid) && is_supervisor(pid);
    while (alive) {
        struct pollfd p[2] = {{.fd = w->efd, .events = POLLIN}, {.fd = pfd, .events = POLLIN}};
        int r = poll(p, pfd >= 0 ? 2 : 1, pfd >= 0 ? -1 : 1000);
        if (r < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (pfd >= 0 ? r > 0 && p[1].revents != 0 : !pid_alive(pid))
            alive = false;
    }
    if (pfd >= 0)
        close(pfd);
    pthread_mutex_lock(&w->lock);
    bool go_on = !w->stop;
    pthread_mutex_unlock(&w->lock);
    return go_on;
}

static void *watch_main(void *arg)
{
    struct efc_supwatch *w = arg;
    struct efc *e = w->e;
    unsigned quick = 0; /* supervisors in a row that were gone within EFC_SUP_STABLE_MS */
    uint64_t since = time_mono_ms();
    for (;;) {
        pthread_mutex_lock(&w->lock);
        pid_t pid = w->pid;
        pthread_mutex_unlock(&w->lock);
        if (!watch_wait(w, pid))
            break;
        pthread_mutex_lock(&w->lock);
        while (w->held && !w->stop)
            pthread_cond_wait(&w->cond, &w->lock);
        bool end = w->stop || fuse_session_exited(e->se); /* the mount ends: none needed */
        pthread_mutex_unlock(&w->lock);
        if (end)
            break;
        quick = time_mono_ms() - since < EFC_SUP_STABLE_MS ? quick + 1 : 0;
        if (quick >= EFC_SUP_MAX_QUICK) {
            log_error("the supervisors of '%s' keep ending (%u in a row within %d s): the mount "
                      "goes on unsupervised",
                      e->mountpoint, quick, EFC_SUP_STABLE_MS / 1000);
            break;
        }
        if (quick > 1) { /* the first at once, then 0.5 s doubling */
            struct pollfd p = {.fd = w->efd, .events = POLLIN};
            if (poll(&p, 1, EFC_SUP_BACKOFF_MS << (quick - 2)) > 0)
                break;
        }
        if (pid > 0)
            log_warn("the supervisor (pid %d) of '%s' is gone: starting another", (int)pid,
                     e->mountpoint);
        char err[512];
        pid_t np = 0;
        pthread_mutex_lock(&w->lock);
        if (!w->held && !w->stop) {
            if (efc_supervise_spawn(e, w->log_path, &np, err, sizeof(err)) == 0)
                log_info("supervisor pid %d watches '%s' now", (int)np, e->mountpoint);
            else
                log_error("cannot start a supervisor for '%s': %s", e->mountpoint, err);
            w->pid = np;
        }
        pthread_mutex_unlock(&w->lock);
        since = time_mono_ms();
    }
    return NULL;
}

int efc_supervise_watch(struct efc *e, pid_t pid, const char *log_path)
{
    struct efc_supwatch *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->e = e;
    w->pid = pid;
    w->efd = eventfd(0, EFD_CLOEXEC);
    w->log_path = log_path ? strdup(log_path) : NULL;
    if (w->efd < 0 || (log_path && w->log_path == NULL)) {
        int rc = w->efd < 0 ? -errno : -ENOMEM;
        if (w->efd >= 0)
            close(w->efd);
        free(w->log_path);
        free(w);
        return rc;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    int rc = pthread_create(&w->thread, NULL, watch_main, w);
    if (rc != 0) {
        close(w->efd);
        free(w->log_path);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        return -rc;
    }
    e->supwatch = w;
    return 0;
}

pid_t efc_supervise_hold(struct efc *e)
{
    struct efc_supwatch *w = e->supwatch;
    if (w == NULL)
        return 0;
    pthread_mutex_lock(&w->lock); /* waits for a start under way */
    w->held = true;
    pid_t pid = w->pid;
    pthread_mutex_unlock(&w->lock);
    return pid;
}

void efc_supervise_release(struct efc *e)
{
    struct efc_supwatch *w = e->supwatch;
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->held = false;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void efc_supervise_unwatch(struct efc *e)
{
    struct efc_supwatch *w = e->supwatch;
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    uint64_t one = 1;
    if (write(w->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        log_debug("supervisor watch: eventfd: %s", strerror(errno));
    pthread_join(w->thread, NULL);
    close(w->efd);
    free(w->log_path);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
    e->supwatch = NULL;
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
    char probe_path[PATH_MAX + sizeof(EFC_WATCHDOG_NAME) + 1];
    char dev[32];             /* the mount's device ("major:minor"), "" if unknown */
    char probe_mnt[PATH_MAX]; /* the mount point probed */

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

/* The mount points of the connection (device DEV) in mountinfo: whether MNT is one of them, and
   the first other one in OTHER ("" if none). */
static bool mounts_of(const char *dev, const char *mnt, char *other, size_t otherlen)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    bool self = false;

    other[0] = '\0';
    if (f == NULL)
        return true;
    while (getline(&line, &cap, f) > 0) {
        struct mountopt_mountinfo mi;
        if (mountopt_mountinfo_parse(line, &mi) != 0 || strcmp(mi.majmin, dev) != 0 ||
            strcmp(mi.fstype, "fuse." EFC_SUBTYPE) != 0)
            continue;
        if (strcmp(mi.mountpoint, mnt) == 0)
            self = true;
        else if (other[0] == '\0')
            snprintf(other, otherlen, "%s", mi.mountpoint);
    }
    free(line);
    fclose(f);
    return self;
}

/* Probes through a mount point of the connection: the one it was started for while that is
   mounted, else another (trybind's bind mounts keep the connection after the first mount point
   is unmounted, and a stat of that directory would answer without the daemon). */
static void choose_probe(struct sup *s)
{
    char other[PATH_MAX];

    if (s->dev[0] == '\0')
        return;
    const char *mnt =
        mounts_of(s->dev, s->mnt, other, sizeof(other)) || other[0] == '\0' ? s->mnt : other;
    if (strcmp(mnt, s->probe_mnt) == 0)
        return;
    log_info("'%s' is unmounted: watching its daemon through '%s'", s->probe_mnt, mnt);
    snprintf(s->probe_mnt, sizeof(s->probe_mnt), "%s", mnt);
    snprintf(s->probe_path, sizeof(s->probe_path), "%s/%s", mnt, EFC_WATCHDOG_NAME);
}

/* The device of the mount on S->mnt (the last efc mount there, as the daemon's find_bdi). */
static void find_dev(struct sup *s)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;

    if (f == NULL)
        return;
    while (getline(&line, &cap, f) > 0) {
        struct mountopt_mountinfo mi;
        if (mountopt_mountinfo_parse(line, &mi) == 0 && strcmp(mi.mountpoint, s->mnt) == 0 &&
            strcmp(mi.fstype, "fuse." EFC_SUBTYPE) == 0)
            snprintf(s->dev, sizeof(s->dev), "%s", mi.majmin);
    }
    free(line);
    fclose(f);
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
        choose_probe(s);
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
    char a[5][48];
    snprintf(a[0], sizeof(a[0]), "--handover-fd=%d", bdup);
    snprintf(a[1], sizeof(a[1]), "--fuse-fd=%d", fuse_dup);
    snprintf(a[2], sizeof(a[2]), "--ready-fd=%d", rdup);
    snprintf(a[3], sizeof(a[3]), "--journal-fd=%d", jnl_dup);
    snprintf(a[4], sizeof(a[4]), "--supervisor-pid=%d", (int)getpid());
    char *argv[EFC_JNL_MAX_ARGC + 8];
    int n = 0;
    argv[n++] = (char *)h.argv[0];
    for (int i = 0; i < 5; i++)
        argv[n++] = a[i];
    for (int i = 1; i < h.argc; i++)
        argv[n++] = (char *)h.argv[i];
    argv[n] = NULL;

    /* SIGUSR2 blocked: pending until the new daemon's handover thread takes it */
    int src = bdup >= 0 && rdup >= 0 ? efc_spawn_self(argv, SIGUSR2, &pid) : EBADF;
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
    int pid_fd = -1; /* where the pid of the process that goes on is written */
    long long rot_bytes = 0, rot_files = 1;

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
        else if (strncmp(a, "--pid-fd=", 9) == 0)
            bad = parse_fd(a + 9, &pid_fd);
        else if (strncmp(a, "--log-rotate=", 13) == 0) {
            char *colon = strchr(a + 13, ':');
            if (colon == NULL)
                bad = -1;
            else {
                *colon = '\0';
                bad = parse_num(a + 13, 0, INT64_MAX, &rot_bytes) ||
                      parse_num(colon + 1, 1, LOG_MAX_FILES, &rot_files);
                *colon = ':';
            }
        } else if (strncmp(a, "--log-file=", 11) == 0)
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
    snprintf(s->probe_mnt, sizeof(s->probe_mnt), "%s", s->mnt);
    s->dev[0] = '\0';
    find_dev(s);

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
    log_set_rotation((uint64_t)rot_bytes, (unsigned)rot_files);

    /* Leave the daemon without a child to reap: the grandchild goes on. */
    pid_t f = fork();
    if (f < 0) {
        fprintf(stderr, EFC_SUPERVISOR_NAME ": fork: %s\n", strerror(errno));
        return 1;
    }
    if (f > 0) {
        if (pid_fd >= 0)
            dprintf(pid_fd, "%d\n", (int)f);
        _exit(0);
    }
    if (pid_fd >= 0)
        close(pid_fd);
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
