/* efc/handover.c - runtime updates: the daemon hands its mount to a new process; see handover_i.h.
 *
 * Design. `efc_runtime_ops update` writes the wanted options to <state>.pending.json and sends
 * SIGUSR2. SIGUSR2 is blocked in every thread (efc_handover_block_signals runs first in main) and
 * taken by one thread with sigwait(), which runs the whole update; nothing happens in a signal
 * handler. The old daemon checks the request against the option table before touching anything
 * (unknown names, bad values, options the table does not mark runtime are refused, the daemon
 * keeps serving and the state file's "update" section says why).
 *
 * Quiescing without losing a request. libfuse's own exit path cannot be used: a worker that has
 * just read a request drops it when it sees the loop exiting (fuse_loop_mt.c: "if (mt->exit)
 * return NULL" after the read, and fuse_session_receive_buf_int returns 0 once the session has
 * exited), and a request read but never answered fails with ECONNABORTED when its (cloned) fd
 * closes, or hangs forever on the shared one. So the session loop is never stopped. Instead every
 * /dev/fuse read goes through efc_handover_read (fuseio.c's read callback): while a handover
 * holds, a worker that comes to read parks on a condition variable instead, and one already
 * blocked inside read(2) is woken with EFC_HO_WAKE_SIGNAL (a handler without SA_RESTART, so the
 * read fails with EINTR and the worker parks). Each worker says when it is inside read(2)
 * (in_read) and counts a request it returned until it comes back to read (busy), so "no worker
 * inside read(2) and none busy" means every request read has been answered; new requests wait
 * in the kernel's queue. The flags are atomics (sequentially consistent: a worker publishes
 * in_read before it tests hold, the update publishes hold before it tests in_read, so one of them
 * sees the other), which keeps the read path free of locks.
 *
 * The new process. The old one writes the inode table and the open handles into a memfd (the
 * blob, with limits on every field: it is read back as outside input), stops the management
 * server, the read path and the block cache (cache_free flushes the queued disk writes, so the
 * new cache finds the blocks), and starts itself again (efc_self_exe: /proc/self/exe, or the
 * daemon's path under valgrind) with the new options, --handover-fd
 * (the memfd), --fuse-fd (its /dev/fuse descriptor; its per-worker clone fds stay behind, idle,
 * and close without losing a request when it exits) and --ready-fd. The new process adopts the fd
 * (fuse_session_mount of "/dev/fd/N", which libfuse 3.14 takes as an already mounted channel and
 * never unmounts), makes libfuse process the kernel's saved INIT request with the reply swallowed
 * (libfuse refuses every request until it has seen INIT, and the kernel will not send another),
 * and compares that reply with the one the kernel got from the first process (a binary or options
 * that would negotiate differently cannot serve this connection: it refuses), imports the blob
 * and starts serving; then it says "ok" and the old process exits. It is a new process
 * (posix_spawn), not an exec in place: the pid changes, as the seed's "restart" implies, and until
 * "ok" the old process still has everything it needs to go on serving, so any failure of the new
 * one (options the cache refuses, an unreachable endpoint, a crash) costs only a pause.
 *
 * Locks: h->lock (a leaf) protects the parking, the thread registry and the update result; the
 * update itself runs on one thread only.
 */
#define _GNU_SOURCE /* memfd_create, program_invocation_name, pipe2 */
#include "efc/handover_i.h"

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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "efc/efc.h"
#include "efc/journal_i.h"
#include "efc/supervise_i.h"
#include "util/log.h"
#include "util/opt.h"
#include "util/timeutil.h"
#include "util/vg.h"

extern char **environ;

#define EFC_HO_TRIGGER_SIGNAL SIGUSR2
#define EFC_HO_WAKE_SIGNAL    (SIGRTMIN + 2)
/* The replayed INIT's request id: the kernel's ids count up from 1 and never come near it. */
#define EFC_HO_INIT_UNIQUE   0xefcefcefcefcefc0ull
#define EFC_HO_READY_TIMEOUT 60000 /* ms the new process may take to start */
#define EFC_HO_QUIESCE_EXTRA 5000  /* ms on top of the retry budget for requests in flight */

/* ---- the daemon's side ----------------------------------------------------------------------- */

/* One FUSE worker thread that has come to read /dev/fuse. */
struct ho_thread {
    pthread_t tid;
    atomic_bool in_read;    /* inside read(2): a wake signal interrupts it */
    bool in_request;        /* returned a request it has not come back from (own thread only) */
    struct efc_handover *h; /* for the exit destructor */
    struct ho_thread *prev, *next;
};

struct efc_handover {
    struct efc *e;
    atomic_bool hold;     /* workers park instead of reading */
    atomic_uint busy;     /* workers processing a request they read */
    pthread_mutex_t lock; /* protects everything below that is not atomic */
    pthread_cond_t cond;  /* hold was lifted */
    struct ho_thread *threads;
    pthread_key_t key;
    bool key_made;

    /* the kernel's INIT request, as read (or as handed over), and the reply it got */
    uint8_t init[EFC_HO_MAX_INIT];
    _Atomic uint32_t init_len;
    uint8_t reply[EFC_HO_MAX_REPLY];
    _Atomic uint32_t reply_len;

    /* the replayed INIT (taking over): its reply is swallowed, its error and body kept */
    _Atomic uint64_t swallow_unique;
    _Atomic int swallow_error;
    atomic_bool swallowed;
    uint8_t replayed[EFC_HO_MAX_REPLY];
    uint32_t replayed_len;

    /* taking over: the blob (mapped read-only) and its header */
    bool adopted;
    void *blob;
    size_t blob_len;
    struct efc_ho_header hdr;
    uint64_t ready_ms; /* when this process was ready to serve (time_mono_ms) */

    bool have_result;
    struct efc_update_result result;

    pthread_t thread;
    bool thread_started;
    atomic_bool quit; /* the thread is to end (at its next SIGUSR2) */
};

static __thread struct ho_thread *tls_thread;

static void wake_handler(int sig)
{
    (void)sig; /* only there to make a blocked read(2) fail with EINTR */
}

void efc_handover_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, EFC_HO_TRIGGER_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Thread exit (libfuse ends workers when the session ends, or when idle ones are many). */
static void thread_gone(void *p)
{
    struct ho_thread *t = p;
    struct efc_handover *h = t->h;

    pthread_mutex_lock(&h->lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        h->threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
    if (t->in_request)
        atomic_fetch_sub(&h->busy, 1);
    pthread_mutex_unlock(&h->lock);
    free(t);
}

static struct ho_thread *self_thread(struct efc_handover *h)
{
    struct ho_thread *t = tls_thread;
    if (t)
        return t;
    while ((t = calloc(1, sizeof(*t))) == NULL)
        usleep(10000); /* without its record a worker could not be accounted for */
    t->tid = pthread_self();
    t->h = h;
    atomic_init(&t->in_read, false);
    pthread_mutex_lock(&h->lock);
    t->next = h->threads;
    if (h->threads)
        h->threads->prev = t;
    h->threads = t;
    pthread_mutex_unlock(&h->lock);
    pthread_setspecific(h->key, t);
    tls_thread = t;
    return t;
}

static void unlock_cleanup(void *m)
{
    pthread_mutex_unlock(m);
}

static void park(struct efc_handover *h)
{
    pthread_mutex_lock(&h->lock);
    /* libfuse cancels workers when the session ends; cond_wait is a cancellation point */
    pthread_cleanup_push(unlock_cleanup, &h->lock);
    while (atomic_load(&h->hold))
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_cleanup_pop(1);
}

ssize_t efc_handover_read(struct efc_handover *h, int fd, void *buf, size_t len)
{
    struct ho_thread *t = self_thread(h);

    if (t->in_request) {
        t->in_request = false;
        atomic_fetch_sub(&h->busy, 1);
    }
    for (;;) {
        atomic_store(&t->in_read, true);
        if (atomic_load(&h->hold)) {
            atomic_store(&t->in_read, false);
            park(h);
            continue;
        }
        ssize_t n = read(fd, buf, len);
        int err = errno;
        if (n > 0) {
            /* busy before in_read drops: whoever sees this thread out of read(2) sees it busy */
            t->in_request = true;
            atomic_fetch_add(&h->busy, 1);
        }
        atomic_store(&t->in_read, false);
        if (n < 0 && err == EINTR && atomic_load(&h->hold))
            continue; /* woken for a handover: park */
        errno = err;
        return n;
    }
}

void efc_handover_note_init(struct efc_handover *h, const void *buf, size_t len)
{
    if (len < EFC_HO_MIN_INIT || len > EFC_HO_MAX_INIT || atomic_load(&h->init_len) != 0)
        return;
    memcpy(h->init, buf, len);
    atomic_store(&h->init_len, (uint32_t)len);
}

/* The body of a reply (everything after the out header), at most MAX bytes, into DST. */
static uint32_t reply_body(const struct iovec *iov, int count, uint8_t *dst, size_t max)
{
    size_t n = 0, skip = sizeof(struct fuse_out_header);
    for (int i = 0; i < count; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        p += skip;
        l -= skip;
        skip = 0;
        if (l > max - n)
            l = max - n;
        memcpy(dst + n, p, l);
        n += l;
    }
    return (uint32_t)n;
}

void efc_handover_note_init_reply(struct efc_handover *h, const struct iovec *iov, int count)
{
    if (atomic_load(&h->reply_len) != 0)
        return;
    uint32_t n = reply_body(iov, count, h->reply, sizeof(h->reply));
    atomic_store(&h->reply_len, n);
    /* What a successor needs if this process dies (supervise.c): the supervisor has no other
       way to learn how the kernel and this process agreed to talk. */
    if (h->e->journal &&
        efc_journal_set_init(h->e->journal, h->init, atomic_load(&h->init_len), h->reply, n) != 0)
        log_warn("the kernel's INIT is too long for the crash journal");
}

bool efc_handover_swallow(struct efc_handover *h, const struct iovec *iov, int count)
{
    uint64_t want = atomic_load_explicit(&h->swallow_unique, memory_order_relaxed);
    if (want == 0 || count < 1 || iov[0].iov_len < sizeof(struct fuse_out_header))
        return false;
    const struct fuse_out_header *out = iov[0].iov_base;
    if (out->unique != want)
        return false;
    h->replayed_len = reply_body(iov, count, h->replayed, sizeof(h->replayed));
    atomic_store(&h->swallow_error, out->error);
    atomic_store(&h->swallowed, true);
    atomic_store(&h->swallow_unique, 0);
    return true;
}

bool efc_handover_result(const struct efc *e, struct efc_update_result *r)
{
    struct efc_handover *h = e->handover;
    bool have;
    if (h == NULL)
        return false;
    pthread_mutex_lock(&h->lock);
    have = h->have_result;
    if (have)
        *r = h->result;
    pthread_mutex_unlock(&h->lock);
    return have;
}

static void set_result(struct efc_handover *h, const char *id, bool ok, uint64_t pause_ms,
                       long previous_pid, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void set_result(struct efc_handover *h, const char *id, bool ok, uint64_t pause_ms,
                       long previous_pid, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&h->lock);
    memset(&h->result, 0, sizeof(h->result));
    snprintf(h->result.id, sizeof(h->result.id), "%s", id);
    h->result.ok = ok;
    h->result.pause_ms = pause_ms;
    h->result.previous_pid = previous_pid;
    h->result.time = (int64_t)time(NULL);
    va_start(ap, fmt);
    vsnprintf(h->result.message, sizeof(h->result.message), fmt, ap);
    va_end(ap);
    /* one line of printable ASCII: the state file is JSON (UTF-8) and the tool prints it */
    for (char *p = h->result.message; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : '?';
    h->have_result = true;
    pthread_mutex_unlock(&h->lock);
}

static void write_state(struct efc *e)
{
    char serr[512];
    struct efc_update_result r;
    if (efc_state_write(e, efc_handover_result(e, &r) ? &r : NULL, serr, sizeof(serr)) != 0)
        log_warn("cannot write the state file: %s", serr);
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static int note_header(void *arg, const struct efc_ho_header *hd)
{
    struct efc_handover *h = arg;
    h->hdr = *hd;
    memcpy(h->init, hd->init, hd->init_len);
    atomic_store(&h->init_len, hd->init_len);
    h->hdr.init = h->init;
    memcpy(h->reply, hd->reply, hd->reply_len);
    atomic_store(&h->reply_len, hd->reply_len);
    h->hdr.reply = h->reply;
    return 0;
}

int efc_handover_setup(struct efc *e, int adopt_fd, char *err, size_t errlen)
{
    struct efc_handover *h = calloc(1, sizeof(*h));
    struct sigaction sa;

    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    h->e = e;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    e->handover = h;
    if (pthread_key_create(&h->key, thread_gone) != 0) {
        snprintf(err, errlen, "cannot create a thread key");
        return -EAGAIN;
    }
    h->key_made = true;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = wake_handler; /* no SA_RESTART: a blocked read(2) returns EINTR */
    sigemptyset(&sa.sa_mask);
    if (sigaction(EFC_HO_WAKE_SIGNAL, &sa, NULL) != 0) {
        snprintf(err, errlen, "cannot install the handover signal handler: %s", strerror(errno));
        return -errno;
    }
    if (adopt_fd < 0)
        return 0;

    struct stat st;
    if (fstat(adopt_fd, &st) != 0 || st.st_size <= 0 || (uint64_t)st.st_size > EFC_HO_MAX_BYTES) {
        snprintf(err, errlen, "--handover-fd=%d: not a handover blob", adopt_fd);
        return -EINVAL;
    }
    h->blob_len = (size_t)st.st_size;
    h->blob = mmap(NULL, h->blob_len, PROT_READ, MAP_PRIVATE, adopt_fd, 0);
    close(adopt_fd);
    if (h->blob == MAP_FAILED) {
        h->blob = NULL;
        snprintf(err, errlen, "cannot map the handover blob: %s", strerror(errno));
        return -ENOMEM;
    }
    static const struct efc_ho_visitor hv = {.header = note_header};
    char perr[512];
    int rc = efc_ho_parse(h->blob, h->blob_len, &hv, h, perr, sizeof(perr));
    if (rc) {
        snprintf(err, errlen, "%s", perr);
        return rc;
    }
    h->adopted = true;
    e->mount_time = (time_t)h->hdr.mount_time;
    return 0;
}

static int import_node(void *arg, const struct efc_ns_record *r)
{
    struct efc *e = arg;
    int rc = efc_ns_import(e->ns, r);
    if (rc)
        log_error("handover: cannot restore inode %llu '%s': %s", (unsigned long long)r->ino,
                  r->key, strerror(-rc));
    return rc;
}

int efc_handover_restore_ns(struct efc *e, char *err, size_t errlen)
{
    struct efc_handover *h = e->handover;
    static const struct efc_ho_visitor v = {.node = import_node};
    char perr[512];

    int rc = efc_ho_parse(h->blob, h->blob_len, &v, e, perr, sizeof(perr));
    if (rc == 0)
        rc = efc_ns_import_done(e->ns, h->hdr.next_seq);
    if (rc) {
        snprintf(err, errlen, "cannot restore the inode table: %s",
                 rc == -EINVAL || rc == -EBADMSG ? perr : strerror(-rc));
        return rc;
    }
    log_info("handover: %llu inodes restored", (unsigned long long)h->hdr.nodes);
    return 0;
}

int efc_handover_replay_init(struct efc *e, char *err, size_t errlen)
{
    struct efc_handover *h = e->handover;
    uint32_t len = atomic_load(&h->init_len);
    /* Zeroed room past the request: libfuse reads its own sizeof(struct fuse_init_in), which may
       exceed what an older kernel sent. */
    uint8_t *mem = calloc(1, EFC_HO_MAX_INIT + 4096);

    if (mem == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    memcpy(mem, h->init, len);
    struct fuse_in_header *in = (struct fuse_in_header *)mem;
    in->unique = EFC_HO_INIT_UNIQUE;
    atomic_store(&h->swallowed, false);
    atomic_store(&h->swallow_unique, EFC_HO_INIT_UNIQUE);
    struct fuse_buf fb = {.size = len, .mem = mem};
    fuse_session_process_buf(e->se, &fb);
    free(mem);
    atomic_store(&h->swallow_unique, 0);
    atomic_store(&e->init_seen, true);
    if (!atomic_load(&h->swallowed) || atomic_load(&h->swallow_error) != 0 ||
        fuse_session_exited(e->se)) {
        snprintf(err, errlen, "libfuse refused the handed-over FUSE INIT (%s)",
                 atomic_load(&h->swallowed) ? strerror(-atomic_load(&h->swallow_error))
                                            : "no reply");
        return -EPROTO;
    }
    /* The kernel keeps what the first process answered; this one must mean the same (another
       binary, or options that changed the negotiation, could not serve this connection). */
    uint32_t rlen = atomic_load(&h->reply_len);
    if (rlen) {
        struct fuse_init_out a, b;
        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        memcpy(&a, h->reply, rlen < sizeof(a) ? rlen : sizeof(a));
        memcpy(&b, h->replayed, h->replayed_len < sizeof(b) ? h->replayed_len : sizeof(b));
        /* fuseio.c adds FUSE_PARALLEL_DIROPS to the reply it writes, after this one was taken */
        a.flags &= ~(uint32_t)FUSE_PARALLEL_DIROPS;
        b.flags &= ~(uint32_t)FUSE_PARALLEL_DIROPS;
        if (a.major != b.major || a.minor != b.minor || a.flags != b.flags ||
            a.flags2 != b.flags2 || a.max_readahead != b.max_readahead ||
            a.max_write != b.max_write || a.max_pages != b.max_pages ||
            a.time_gran != b.time_gran || a.max_background != b.max_background ||
            a.congestion_threshold != b.congestion_threshold) {
            snprintf(err, errlen,
                     "this daemon would negotiate FUSE differently from the one that mounted "
                     "(flags 0x%x/0x%x, max_write %u/%u, max_readahead %u/%u); remount instead",
                     a.flags, b.flags, a.max_write, b.max_write, a.max_readahead, b.max_readahead);
            return -EPROTO;
        }
        log_info("handover: FUSE INIT replayed, negotiation as before (protocol %u.%u, flags "
                 "0x%x)",
                 b.major, b.minor, b.flags);
    } else {
        log_warn("handover: FUSE INIT replayed; the first reply is unknown, not compared");
    }
    return 0;
}

static int import_handle(void *arg, const struct efc_fh_record *r)
{
    struct efc *e = arg;
    int rc = efc_fs_import_handle(e, r);
    if (rc)
        log_error("handover: cannot restore handle %llu of '%s': %s", (unsigned long long)r->num,
                  r->key, strerror(-rc));
    return rc;
}

int efc_handover_restore_handles(struct efc *e, char *err, size_t errlen)
{
    struct efc_handover *h = e->handover;
    static const struct efc_ho_visitor v = {.handle = import_handle};
    char perr[512];

    int rc = efc_ho_parse(h->blob, h->blob_len, &v, e, perr, sizeof(perr));
    if (rc) {
        snprintf(err, errlen, "cannot restore the open files: %s",
                 rc == -EINVAL || rc == -EBADMSG ? perr : strerror(-rc));
        return rc;
    }
    efc_fs_import_done(e);
    log_info("handover: %llu open files and directories restored",
             (unsigned long long)h->hdr.handles);
    munmap(h->blob, h->blob_len);
    h->blob = NULL;
    return 0;
}

/* ---- the old process: one update ------------------------------------------------------------- */

/* "<dir>/<name>.json" -> "<dir>/<name>.pending.json" */
static int pending_path(const struct efc *e, char *out, size_t n)
{
    size_t l = strlen(e->state_path);
    if (l < 5 || strcmp(e->state_path + l - 5, ".json") != 0 || l + 8 >= n)
        return -ENAMETOOLONG;
    snprintf(out, n, "%.*s.pending.json", (int)(l - 5), e->state_path);
    return 0;
}

/* Reads PATH whole, at most MAX bytes. Returns 0, -ENOENT, -EFBIG or -errno. */
static int read_small_file(const char *path, size_t max, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        close(fd);
        return -EFBIG;
    }
    char *p = malloc(max + 1);
    size_t got = 0;
    if (p == NULL) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        ssize_t r = read(fd, p + got, max + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got > max)
            break;
    }
    close(fd);
    if (got > max) {
        free(p);
        return -EFBIG;
    }
    p[got] = '\0';
    *text = p;
    *len = got;
    return 0;
}

/* Holds the workers and waits until every request read has been answered (see the top of the
 * file). Returns 0, or -ETIMEDOUT with the hold still on. */
static int quiesce(struct efc_handover *h, uint64_t wait_ms)
{
    uint64_t deadline = time_mono_ms() + wait_ms;

    atomic_store(&h->hold, true);
    for (;;) {
        bool reading = false;
        pthread_mutex_lock(&h->lock);
        for (struct ho_thread *t = h->threads; t; t = t->next) {
            if (atomic_load(&t->in_read)) {
                reading = true;
                pthread_kill(t->tid, EFC_HO_WAKE_SIGNAL);
            }
        }
        pthread_mutex_unlock(&h->lock);
        /* in_read first, busy second: a worker raises busy before it drops in_read */
        if (!reading && atomic_load(&h->busy) == 0)
            return 0;
        if (time_mono_ms() >= deadline)
            return -ETIMEDOUT;
        usleep(reading ? 500 : 1000);
    }
}

static void release(struct efc_handover *h)
{
    pthread_mutex_lock(&h->lock);
    atomic_store(&h->hold, false);
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

struct blob_ctx {
    struct buf b;
    uint64_t nodes, handles;
};

static int put_node_cb(void *arg, const struct efc_ns_record *r)
{
    struct blob_ctx *c = arg;
    c->nodes++;
    return efc_ho_put_node(&c->b, r);
}

static int put_handle_cb(void *arg, const struct efc_fh_record *r)
{
    struct blob_ctx *c = arg;
    c->handles++;
    return efc_ho_put_handle(&c->b, r);
}

int efc_handover_memfd(const void *data, size_t len, char *err, size_t errlen)
{
    int mfd = memfd_create("efc-handover", MFD_CLOEXEC);
    if (mfd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "memfd_create: %s", strerror(errno));
        return rc;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(mfd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int rc = w < 0 ? -errno : -EIO;
            snprintf(err, errlen, "cannot write the handover blob: %s", strerror(-rc));
            close(mfd);
            return rc;
        }
        off += (size_t)w;
    }
    return mfd;
}

/* The blob of E in a new memfd (*FD). Returns 0 or -errno with a reason in ERR. */
static int make_blob(struct efc *e, const char *id, uint64_t hold_start, int *fd, char *err,
                     size_t errlen)
{
    struct efc_handover *h = e->handover;
    struct efc_ho_header hd;
    struct blob_ctx c;
    uint64_t next_seq = 0;
    int rc;

    *fd = -1;
    memset(&hd, 0, sizeof(hd));
    memset(&c, 0, sizeof(c));
    hd.mount_time = (int64_t)e->mount_time;
    hd.hold_start_ms = hold_start;
    hd.old_pid = (uint32_t)getpid();
    hd.init = h->init;
    hd.init_len = atomic_load(&h->init_len);
    hd.reply = h->reply;
    hd.reply_len = atomic_load(&h->reply_len);
    snprintf(hd.id, sizeof(hd.id), "%s", id);
    if (hd.init_len < EFC_HO_MIN_INIT) {
        snprintf(err, errlen, "the kernel's FUSE INIT request was not seen");
        return -EPROTO;
    }
    buf_init(&c.b, EFC_HO_MAX_BYTES);
    rc = efc_ho_begin(&c.b, &hd);
    if (rc == 0)
        rc = efc_ns_export(e->ns, put_node_cb, &c, &next_seq);
    if (rc == 0)
        rc = efc_fs_export_handles(e, put_handle_cb, &c);
    if (rc == 0)
        rc = efc_ho_end(&c.b, next_seq, c.nodes, c.handles);
    if (rc) {
        snprintf(err, errlen, "cannot serialise the inode table and open files: %s", strerror(-rc));
        buf_release(&c.b);
        return rc;
    }
    int mfd = efc_handover_memfd(c.b.data, c.b.len, err, errlen);
    if (mfd < 0) {
        buf_release(&c.b);
        return mfd;
    }
    log_info("update %s: %llu inodes and %llu open handles handed over (%zu bytes)", id,
             (unsigned long long)c.nodes, (unsigned long long)c.handles, c.b.len);
    buf_release(&c.b);
    *fd = mfd;
    return 0;
}

char **efc_handover_argv(const struct efc *e, const struct opt_set *o)
{
    size_t cap = OPT__COUNT + 8, n = 0;
    char **argv = calloc(cap, sizeof(*argv));
    bool ok = argv != NULL;

#define ADD(expr)                                                                                  \
    do {                                                                                           \
        if (ok && (argv[n] = (expr)) != NULL)                                                      \
            n++;                                                                                   \
        else                                                                                       \
            ok = false;                                                                            \
    } while (0)
    ADD(strdup(program_invocation_name));
    ADD(strdup(e->protocol == OSS_PROTO_S3 ? "--protocol=s3" : "--protocol=oss"));
    if (e->foreground)
        ADD(strdup("--foreground"));
    if (e->passwd_file) {
        char *pw = NULL;
        ADD(asprintf(&pw, "--passwd_file=%s", e->passwd_file) > 0 ? pw : NULL);
    }
    for (int i = 0; i < OPT__COUNT; i++) {
        if (!o->v[i].set)
            continue;
        char *a = NULL;
        ADD(asprintf(&a, "--%s=%s", opt_table[i].name, o->v[i].s ? o->v[i].s : "") > 0 ? a : NULL);
    }
    ADD(strdup("--"));
    ADD(strdup(e->remote.text));
    ADD(strdup(e->mountpoint));
#undef ADD
    if (!ok) {
        efc_handover_argv_free(argv);
        return NULL;
    }
    return argv;
}

void efc_handover_argv_free(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

static char self_path[PATH_MAX];

static void self_path_init(void)
{
    /* valgrind answers a readlink of /proc/self/exe with the path of the program it runs */
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
    self_path[n > 0 ? n : 0] = '\0';
}

const char *efc_self_exe(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (!efc_on_valgrind())
        return "/proc/self/exe";
    pthread_once(&once, self_path_init);
    return self_path[0] ? self_path : "/proc/self/exe";
}

int efc_spawn_self(char *const argv[], int blocked, pid_t *pid)
{
    static const int defaulted[] = {SIGTERM, SIGINT, SIGHUP, EFC_HO_TRIGGER_SIGNAL, 0};
    posix_spawnattr_t attr;
    sigset_t mask, def;

    posix_spawnattr_init(&attr);
    sigemptyset(&mask);
    if (blocked)
        sigaddset(&mask, blocked);
    sigemptyset(&def);
    for (int i = 0; defaulted[i]; i++)
        sigaddset(&def, defaulted[i]);
    sigaddset(&def, EFC_HO_WAKE_SIGNAL); /* not a constant expression: SIGRTMIN */
    posix_spawnattr_setsigmask(&attr, &mask);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(pid, efc_self_exe(), NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    return rc;
}

/* Starts the new daemon with options O; returns its pid, or -1 with a reason in ERR. */
static pid_t spawn_new(struct efc *e, const struct opt_set *o, int blob_fd, int ready_fd, char *err,
                       size_t errlen)
{
    char *argv[OPT__COUNT + 16];
    char fds[5][48];
    int dups[4] = {-1, -1, -1, -1};
    int n = 0, nfds = e->journal ? 4 : 3;
    pid_t pid = -1;
    char **rest = efc_handover_argv(e, o);

    if (rest == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* Copies without FD_CLOEXEC: these (and only these) reach the new process. */
    dups[0] = dup(blob_fd);
    dups[1] = dup(fuse_session_fd(e->se));
    dups[2] = dup(ready_fd);
    if (e->journal)
        dups[3] = dup(efc_journal_fd(e->journal));
    for (int i = 0; i < nfds; i++) {
        if (dups[i] < 0) {
            snprintf(err, errlen, "dup: %s", strerror(errno));
            goto out;
        }
    }
    snprintf(fds[0], sizeof(fds[0]), "--handover-fd=%d", dups[0]);
    snprintf(fds[1], sizeof(fds[1]), "--fuse-fd=%d", dups[1]);
    snprintf(fds[2], sizeof(fds[2]), "--ready-fd=%d", dups[2]);
    snprintf(fds[3], sizeof(fds[3]), "--journal-fd=%d", dups[3]);
    argv[n++] = rest[0];
    for (int i = 0; i < nfds; i++)
        argv[n++] = fds[i];
    /* the supervisor's watch passes to the successor (no new supervisor while this is on) */
    pid_t sup = efc_supervise_hold(e);
    if (sup > 0) {
        snprintf(fds[4], sizeof(fds[4]), "--supervisor-pid=%d", (int)sup);
        argv[n++] = fds[4];
    }
    for (size_t i = 1; rest[i] && n < (int)(sizeof(argv) / sizeof(argv[0])) - 1; i++)
        argv[n++] = rest[i];
    argv[n] = NULL;

    /* SIGUSR2 blocked: pending until its handover thread takes it */
    int rc = efc_spawn_self(argv, EFC_HO_TRIGGER_SIGNAL, &pid);
    if (rc != 0) {
        pid = -1;
        snprintf(err, errlen, "cannot start '%s': %s", program_invocation_name, strerror(rc));
    }
out:
    for (int i = 0; i < 4; i++)
        if (dups[i] >= 0)
            close(dups[i]);
    efc_handover_argv_free(rest);
    return pid;
}

/* Waits for the new process's ready line on FD. Returns 0 for "ok", else -1 with its reason (or
 * what became of it) in WHY. */
int efc_handover_wait_ready(int fd, pid_t pid, int timeout_ms, char *why, size_t whylen)
{
    char line[1100];
    size_t got = 0;
    uint64_t deadline = time_mono_ms() + (uint64_t)timeout_ms;

    for (;;) {
        uint64_t now = time_mono_ms();
        if (now >= deadline) {
            snprintf(why, whylen, "the new process (pid %d) did not start within %d s", (int)pid,
                     timeout_ms / 1000);
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t n = read(fd, line + got, sizeof(line) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            got += (size_t)n;
            line[got] = '\0';
            char *nl = strchr(line, '\n');
            if (nl == NULL && got < sizeof(line) - 1)
                continue;
            if (nl)
                *nl = '\0';
            if (strcmp(line, "ok") == 0)
                return 0;
            snprintf(why, whylen, "%.900s", strncmp(line, "error: ", 7) == 0 ? line + 7 : line);
            return -1;
        }
        /* EOF: the new process died without a word */
        int st = 0;
        if (waitpid(pid, &st, 0) == pid) {
            if (WIFSIGNALED(st))
                snprintf(why, whylen, "the new process (pid %d) was killed by signal %d", (int)pid,
                         WTERMSIG(st));
            else
                snprintf(why, whylen, "the new process (pid %d) exited with status %d", (int)pid,
                         WEXITSTATUS(st));
        } else {
            snprintf(why, whylen, "the new process (pid %d) closed its ready pipe", (int)pid);
        }
        return -1;
    }
}

/* Makes sure the failed new process PID is gone (it releases the disk cache as it exits). */
static void reap(pid_t pid)
{
    int st;
    for (int i = 0; i < 3000; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return;
        if (i == 1000)
            kill(pid, SIGTERM);
        if (i == 2000)
            kill(pid, SIGKILL);
        usleep(10000);
    }
}

static void mgmt_restart(struct efc *e, bool had_mgmt)
{
    char merr[512];
    if (had_mgmt && efc_mgmt_start(e, merr, sizeof(merr)) != 0)
        log_error("update: cannot restart the management server: %s", merr);
}

static void ho_update(struct efc_handover *h)
{
    struct efc *e = h->e;
    struct efc_update_req req;
    struct opt_set nopts;
    char path[PATH_MAX], err[1024];
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (pending_path(e, path, sizeof(path)) != 0)
        return;
    rc = read_small_file(path, EFC_UPDATE_MAX_BYTES, &text, &len);
    if (rc) {
        log_warn("SIGUSR2 without a readable update request '%s' (%s): ignored", path,
                 strerror(-rc));
        return;
    }
    unlink(path);
    rc = efc_update_parse(text, len, &e->opts, &req, &nopts, err, sizeof(err));
    free(text);
    if (rc) {
        log_warn("update %s refused: %s", req.id[0] ? req.id : "(no id)", err);
        set_result(h, req.id, false, 0, 0, "%s", err);
        write_state(e);
        return;
    }
    log_info("update %s (%s): handing '%s' over to a new process", req.id, req.action,
             e->mountpoint);

    uint64_t t0 = time_mono_ms();
    bool had_mgmt = e->mgmt != NULL;
    efc_mgmt_stop(e); /* idempotent; the new process binds the port again */
    uint64_t wait_ms = (uint64_t)opt_int(&e->opts, OPT_OSS_RETRYBUDGETMS) + EFC_HO_QUIESCE_EXTRA;
    if (quiesce(h, wait_ms) != 0) {
        release(h);
        mgmt_restart(e, had_mgmt);
        snprintf(err, sizeof(err), "requests still running after %llu s; try again",
                 (unsigned long long)(wait_ms / 1000));
        goto failed;
    }
    uint64_t t_quiet = time_mono_ms();

    int blob_fd = -1, pipefd[2] = {-1, -1};
    rc = make_blob(e, req.id, t0, &blob_fd, err, sizeof(err));
    if (rc == 0 && pipe2(pipefd, O_CLOEXEC) != 0) {
        snprintf(err, sizeof(err), "pipe: %s", strerror(errno));
        close(blob_fd);
        rc = -1;
    }
    if (rc) {
        release(h);
        mgmt_restart(e, had_mgmt);
        goto failed;
    }
    efc_fs_suspend(e);
    uint64_t t_stopped = time_mono_ms();
    pid_t pid = spawn_new(e, &nopts, blob_fd, pipefd[1], err, sizeof(err));
    close(pipefd[1]);
    close(blob_fd);
    if (pid > 0 &&
        efc_handover_wait_ready(pipefd[0], pid, EFC_HO_READY_TIMEOUT, err, sizeof(err)) == 0) {
        uint64_t t_ready = time_mono_ms();
        log_info("update %s: pid %d serves '%s' now; requests held %llu ms (quiesce %llu, "
                 "export and cache flush %llu, new process %llu); exiting",
                 req.id, (int)pid, e->mountpoint, (unsigned long long)(t_ready - t0),
                 (unsigned long long)(t_quiet - t0), (unsigned long long)(t_stopped - t_quiet),
                 (unsigned long long)(t_ready - t_stopped));
        /* Nothing of this process may run any more: no teardown (it would unmount), no state
           file removal. Its /dev/fuse fds close; the new process holds the connection. */
        _exit(0);
    }
    close(pipefd[0]);
    if (pid > 0)
        reap(pid);
    /* The new process may have named itself in the journal before it failed: this one serves. */
    if (e->journal)
        efc_journal_set_pid(e->journal, getpid());
    efc_supervise_release(e);
    log_error("update %s failed: %s; going on with the current options", req.id, err);
    char rerr[512];
    if (efc_fs_resume(e, rerr, sizeof(rerr)) != 0)
        log_error("update %s: cannot restart the read path: %s", req.id, rerr);
    release(h);
    mgmt_restart(e, had_mgmt);
failed:
    opt_release(&nopts);
    set_result(h, req.id, false, 0, 0, "%s", err);
    write_state(e);
}

/* ---- the handover thread --------------------------------------------------------------------- */

static void *ho_main(void *arg)
{
    struct efc_handover *h = arg;
    struct efc *e = h->e;
    sigset_t set;

    if (h->adopted) {
        /* The old process exits once it has read our "ok": the state file names this pid only
           after that, so whoever sees the new pid no longer finds the old one. */
        pid_t old = (pid_t)h->hdr.old_pid;
        uint64_t deadline = time_mono_ms() + 10000;
        while (getppid() == old && time_mono_ms() < deadline && !atomic_load(&h->quit))
            usleep(1000);
        if (getppid() == old)
            log_warn("the previous process %d is still there", (int)old);
        uint64_t pause =
            h->ready_ms > h->hdr.hold_start_ms ? h->ready_ms - h->hdr.hold_start_ms : 0;
        set_result(h, h->hdr.id, true, pause, (long)old, "%s", "");
        write_state(e);
        log_info("update %s: took over from pid %d; requests were held %llu ms", h->hdr.id,
                 (int)old, (unsigned long long)pause);
    }
    sigemptyset(&set);
    sigaddset(&set, EFC_HO_TRIGGER_SIGNAL);
    while (!atomic_load(&h->quit)) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0 || atomic_load(&h->quit))
            continue;
        ho_update(h);
    }
    return NULL;
}

int efc_handover_start(struct efc *e)
{
    struct efc_handover *h = e->handover;
    if (h == NULL)
        return -EINVAL;
    h->ready_ms = time_mono_ms();
    int rc = pthread_create(&h->thread, NULL, ho_main, h);
    if (rc)
        return -rc;
    h->thread_started = true;
    return 0;
}

void efc_handover_free(struct efc *e)
{
    struct efc_handover *h = e->handover;
    if (h == NULL)
        return;
    if (h->thread_started) {
        /* Not pthread_cancel: the thread ends by itself, after an update in progress is done.
           A SIGUSR2 sent to the thread (not the process) only it can take. */
        atomic_store(&h->quit, true);
        pthread_kill(h->thread, EFC_HO_TRIGGER_SIGNAL);
        pthread_join(h->thread, NULL);
    }
    release(h);
    if (h->blob)
        munmap(h->blob, h->blob_len);
    /* The session loop has joined its workers by now (their destructors ran): nothing else
       refers to H. */
    if (h->key_made)
        pthread_key_delete(h->key);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h);
    e->handover = NULL;
}
