/* mgmt/warmup.c - warm-up tasks: walk a path of the mount and fill the cache with its files.
 *
 * One mutex (w->lock) guards everything below; no backend call is made with it held. Tasks live
 * in a history list ordered by id (oldest first). A task that is submitted goes to the walk FIFO;
 * a walker thread (at most WARMUP_WALKERS_MAX, started on demand) takes it, resolves its path
 * (listing "<key>/" first, HEAD "<key>" only when the listing found nothing: a directory wins
 * over a file of the same name), and turns every visible, matching object into a `wfile` on the
 * task's queue. The queue holds at most WARMUP_QUEUE_MAX files: past that the walker sleeps in
 * its listing callback, so a walk over a million objects costs a bounded amount of memory (the
 * listing itself is paged by the backend). Past WARMUP_WALKERS_MAX tasks walking at once, a new
 * task waits for a walker: it shows as running with nothing found yet.
 *
 * Fill workers (at most cfg.workers, started on demand) take one block at a time from a ring of
 * the tasks that have queued files: pop the ring's first task, claim the next block of its first
 * file, put the task back at the end. That is round-robin over tasks, so a small task submitted
 * after a big one is not starved, and the blocks of one big file are filled by every worker at
 * once. A file leaves its queue when its last block is claimed and is freed by the worker that
 * ends its last fill.
 *
 * Stopping: a cancel, a failure or warmup_free sets the task's status; the walker sees it per key
 * (t->stop, read without the lock) and the workers when they claim their next block, so a task
 * stops within one block fill per worker. A task is "quiescent" once no walker and no fill holds
 * it. History eviction unlinks finished tasks from the list at once; the memory of an unlinked
 * task goes when it becomes quiescent, to whoever makes it so (task_release).
 *
 * Files that vanish while a task runs (fill answers -ENOENT or -ESTALE) are skipped: their
 * unfilled bytes are taken back out of TotalSize so that a completed task has CompletedSize ==
 * TotalSize. A file "a/b" shadowed by a directory "a/b/" (invisible in the mount) is still loaded
 * by a walk that finds both: telling them apart would need the whole listing, and the cost is
 * only some cache space.
 */
#define _GNU_SOURCE
#include "mgmt/warmup.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt/warmup_i.h"
#include "util/log.h"
#include "util/timeutil.h"

#define DEFAULT_WORKERS   8
#define DEFAULT_MAX_TASKS 10000
#define DEFAULT_MAX_AGE_S (7ull * 24 * 3600)
#define ETAG_MAX          255  /* bytes of an ETag the walk accepts (OSS's are 34) */
#define PATTERN_DEPTH_MAX 64   /* nested groups in a pattern */
#define PREFIX_MAX        4096 /* bytes of the mount's root prefix */
#define WORKERS_MAX       1024 /* fill workers, whatever the configuration says */
#define MAX_AGE_S_MAX     (100ull * 365 * 24 * 3600)

/* A file being loaded. Guarded by w->lock. */
struct wfile {
    struct wfile *next;  /* in the task's queue */
    uint64_t size;       /* object size */
    uint64_t nblocks;    /* ceil(size / block_size) */
    uint64_t next_block; /* the next block to claim */
    uint64_t done_bytes; /* bytes of the blocks filled */
    unsigned inflight;   /* fills running */
    bool queued;         /* still on the queue (blocks left to claim) */
    bool vanished;       /* a fill answered -ENOENT / -ESTALE */
    char etag[ETAG_MAX + 1];
    char key[]; /* the full object key */
};

/* A task. Guarded by w->lock except `stop` (atomic, read by the walker without the lock) and
 * the fields fixed at submission (id, submit_us, path, pattern, re). */
struct task {
    struct task *prev, *next; /* history list, while linked */
    struct task *rnext;       /* ready ring, while in_ring */
    struct task *wnext;       /* walk FIFO, while waiting for a walker */
    uint64_t id, submit_us;
    char *path;
    char *pattern;
    regex_t re;
    bool has_re;
    bool is_dir;
    bool linked;  /* in the history list (not evicted) */
    bool walking; /* waiting for or held by a walker */
    bool in_ring;
    atomic_bool stop; /* status left RUNNING: the walker stops */
    enum warmup_status status;
    uint64_t total, completed;
    struct wfile *qhead, *qtail;
    unsigned qlen;
    unsigned inflight; /* blocks being filled */
    char error[256];
};

struct warmup {
    struct warmup_backend be;
    char *root; /* root prefix, "" or ending in '/' */
    unsigned max_workers, max_tasks;
    uint64_t max_age_us;
    uint64_t (*now)(void *arg);
    void *now_arg;

    pthread_mutex_t lock;
    pthread_cond_t work_cv;  /* the ready ring got a task, or stopping */
    pthread_cond_t walk_cv;  /* the walk FIFO got a task, or stopping */
    pthread_cond_t space_cv; /* a queue shrank or a task stopped, or stopping */
    bool stopping;

    struct task *head, *tail; /* history, by id */
    unsigned ntasks;
    uint64_t counts[4]; /* linked tasks by status */
    uint64_t next_id;

    struct task *rhead, *rtail; /* ready ring */
    struct task *whead, *wtail; /* walk FIFO */
    unsigned wlen;

    pthread_t *workers;
    unsigned nworkers, idle_workers;
    pthread_t walkers[WARMUP_WALKERS_MAX];
    unsigned nwalkers, idle_walkers;
};

const char *warmup_status_name(enum warmup_status s)
{
    switch (s) {
    case WARMUP_RUNNING:
        return "running";
    case WARMUP_COMPLETED:
        return "completed";
    case WARMUP_CANCELED:
        return "canceled";
    case WARMUP_FAILED:
        return "failed";
    }
    return "unknown";
}

static uint64_t real_now(void *arg)
{
    (void)arg;
    return time_real_us();
}

void warmup_set_clock_for_test(struct warmup *w, uint64_t (*now)(void *arg), void *arg)
{
    pthread_mutex_lock(&w->lock);
    w->now = now ? now : real_now;
    w->now_arg = now ? arg : NULL;
    pthread_mutex_unlock(&w->lock);
}

/* ---- paths and patterns -------------------------------------------------------------------- */

int warmup_normalize(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    if (!path) {
        snprintf(err, errlen, "path is missing");
        return -EINVAL;
    }
    size_t len = strlen(path);
    if (path[0] == '/') {
        snprintf(err, errlen, "path '%.200s' is absolute: give a path relative to the mount", path);
        return -EINVAL;
    }
    /* "dir/" names "dir"; only one '/' goes, so "dir//" still has an empty component. */
    if (len > 0 && path[len - 1] == '/')
        len--;
    if (len > WARMUP_PATH_MAX) {
        snprintf(err, errlen, "path '%.64s...' is longer than %d bytes", path, WARMUP_PATH_MAX);
        return -EINVAL;
    }
    if (outlen < len + 1) {
        snprintf(err, errlen, "path '%.200s' does not fit in %zu bytes", path, outlen);
        return -EINVAL;
    }
    /* i may reach len: "a/b/" (from "a/b//") ends in an empty component */
    for (size_t i = 0; len > 0 && i <= len;) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        size_t n = j - i;
        if (n == 0) {
            snprintf(err, errlen, "path '%.200s' has an empty component", path);
            return -EINVAL;
        }
        if ((n == 1 && path[i] == '.') || (n == 2 && path[i] == '.' && path[i + 1] == '.')) {
            snprintf(err, errlen, "path '%.200s' has a '%.*s' component: it must stay in the mount",
                     path, (int)n, path + i);
            return -EINVAL;
        }
        i = j + 1;
    }
    memcpy(out, path, len);
    out[len] = '\0';
    return 0;
}

static bool interval_digit(const char **pp, uint64_t *v)
{
    /* glibc reads the numbers of an interval token by token, and an escaped digit is a digit to
       it: "a{1,1\\0314}" is "a{1,10314}" (fuzz_warmup_path found it: 840 MB in regcomp). */
    const char *p = *pp;
    if (*p == '\\')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    *v = *v < 1000000 ? *v * 10 + (uint64_t)(*p - '0') : *v;
    *pp = p + 1;
    return true;
}

/* Reads "m}", "m,}", ",n}" or "m,n}" after a '{' at *P; returns the repetition's largest count
 * (m + 1 for "m,": the open bound costs glibc one more copy) and moves *P past the '}', or
 * returns 0 when it is no interval (regcomp then decides what the brace is). */
static uint64_t parse_interval(const char **pp)
{
    const char *p = *pp;
    uint64_t m = 0, n = 0;
    bool dm = false, dn = false, comma = false;
    while (interval_digit(&p, &m))
        dm = true;
    if (*p == ',' || (p[0] == '\\' && p[1] == ',')) { /* an escaped comma is one too */
        comma = true;
        p += *p == ',' ? 1 : 2;
        while (interval_digit(&p, &n))
            dn = true;
    }
    if (*p != '}' || (!dm && !dn))
        return 0;
    *pp = p + 1;
    uint64_t k = !comma ? m : !dn ? m + 1 : n > m ? n : m;
    return k ? k : 1;
}

/* glibc's regcomp() costs memory about quadratic in the nodes of the expanded pattern when most
 * of it can match the empty string ("(a|){1,255}" sixteen times: 400 MB), and CPU far worse
 * than that for a repetition of something that holds a repetition ("((a?){1,30}){1,30}+" does
 * not finish). So: no repetition of a group that holds one, no repetition of a repetition, no
 * back-references (regexec() is exponential with them), and at most WARMUP_PATTERN_COST_MAX
 * nodes once bounded repetitions are expanded (every character and group counts; a bracket
 * expression is one node). At 1000 nodes the worst we found costs regcomp ~15 MB and 10 ms, and
 * regexec ~30 ms on a 1 KiB name. File-name patterns ("\.bin$", ".*_2$", "shard-[0-9]{5}") are
 * far from these limits. */
int warmup_pattern_check(const char *pattern, char *err, size_t errlen)
{
    struct {
        uint64_t sum;  /* nodes of the group so far */
        uint64_t last; /* nodes of its last atom */
        bool rep;      /* the group holds a repetition */
        bool last_rep; /* its last atom is a group that holds one */
        bool last_q;   /* its last token is a repetition */
        bool has_last; /* there is an atom to repeat */
    } st[PATTERN_DEPTH_MAX + 1];
    int depth = 0;
    const uint64_t cap = 1ull << 40;
    size_t len = strlen(pattern);
    if (len > WARMUP_PATTERN_MAX) {
        snprintf(err, errlen, "pattern is longer than %d bytes", WARMUP_PATTERN_MAX);
        return -EINVAL;
    }
    memset(&st[0], 0, sizeof(st[0]));
    for (const char *p = pattern; *p;) {
        uint64_t k = 0; /* a repetition's factor, or 0 for an atom */
        switch (*p) {
        case '\\':
            if (p[1] >= '1' && p[1] <= '9') {
                snprintf(err, errlen, "pattern '%.200s' has a back-reference: not supported",
                         pattern);
                return -EINVAL;
            }
            p += p[1] ? 2 : 1;
            break;
        case '[': {
            /* A bracket expression is one atom: skip it; ']' first is a member, and so is
             * anything inside "[:", "[." and "[=". Unterminated: regcomp refuses it. */
            const char *q = p + 1;
            if (*q == '^')
                q++;
            if (*q == ']')
                q++;
            while (*q && *q != ']') {
                if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
                    char c = q[1];
                    q += 2;
                    while (*q && !(*q == c && q[1] == ']'))
                        q++;
                    q += *q ? 2 : 0;
                } else {
                    q++;
                }
            }
            p = *q ? q + 1 : q;
            break;
        }
        case '(':
            if (depth == PATTERN_DEPTH_MAX) {
                snprintf(err, errlen, "pattern '%.200s' nests more than %d groups", pattern,
                         PATTERN_DEPTH_MAX);
                return -EINVAL;
            }
            depth++;
            memset(&st[depth], 0, sizeof(st[depth]));
            st[depth].sum = 1; /* the group's own node */
            p++;
            continue;
        case ')':
            p++;
            if (depth > 0) {
                uint64_t g = st[depth].sum;
                bool rep = st[depth].rep;
                depth--;
                st[depth].sum = st[depth].sum + g < cap ? st[depth].sum + g : cap;
                st[depth].last = g;
                st[depth].last_rep = rep;
                st[depth].last_q = false;
                st[depth].has_last = true;
                st[depth].rep |= rep;
                continue;
            }
            break;
        case '|':
            p++;
            st[depth].sum++;
            st[depth].has_last = st[depth].last_q = st[depth].last_rep = false;
            continue;
        case '{': {
            const char *q = p + 1;
            k = parse_interval(&q);
            p = k ? q : p + 1;
            break;
        }
        case '+':
            k = 2;
            p++;
            break;
        case '*':
        case '?':
            k = 1;
            p++;
            break;
        default:
            p++;
            break;
        }
        if (k && st[depth].has_last) {
            if (st[depth].last_q || st[depth].last_rep) {
                snprintf(err, errlen,
                         "pattern '%.200s' repeats a repetition: not supported (it can make the "
                         "regular expression library run for ever)",
                         pattern);
                return -EINVAL;
            }
            uint64_t grown = st[depth].last && k > cap / st[depth].last ? cap : st[depth].last * k;
            st[depth].sum += grown - st[depth].last;
            st[depth].last = grown;
            st[depth].last_q = st[depth].rep = true;
        } else {
            /* an atom; a repetition with nothing before it is left to regcomp */
            st[depth].sum++;
            st[depth].last = 1;
            st[depth].last_q = st[depth].last_rep = false;
            st[depth].has_last = true;
        }
        if (st[depth].sum > cap)
            st[depth].sum = cap;
        uint64_t total = 0;
        for (int i = 0; i <= depth; i++)
            total += st[i].sum;
        if (total > WARMUP_PATTERN_COST_MAX) {
            snprintf(err, errlen, "pattern '%.200s' is too complex (over %d nodes once expanded)",
                     pattern, WARMUP_PATTERN_COST_MAX);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- tasks --------------------------------------------------------------------------------- */

/* Takes T out of the ready ring (a walk over the ring: it holds only the running tasks that have
 * files queued, and a task leaves it once, when it stops). */
static void ring_remove(struct warmup *w, struct task *t)
{
    if (!t->in_ring)
        return;
    struct task *prev = NULL;
    for (struct task *r = w->rhead; r; prev = r, r = r->rnext) {
        if (r != t)
            continue;
        if (prev)
            prev->rnext = t->rnext;
        else
            w->rhead = t->rnext;
        if (w->rtail == t)
            w->rtail = prev;
        break;
    }
    t->in_ring = false;
}

/* Only running tasks are in the ready ring: a finished one may be evicted and freed. */
static void set_status(struct warmup *w, struct task *t, enum warmup_status s)
{
    if (t->linked) {
        w->counts[t->status]--;
        w->counts[s]++;
    }
    t->status = s;
    if (s != WARMUP_RUNNING) {
        atomic_store(&t->stop, true);
        ring_remove(w, t);
    }
}

static void task_free(struct task *t)
{
    if (t->has_re)
        regfree(&t->re);
    free(t->path);
    free(t->pattern);
    free(t);
}

/* Frees T if it is evicted and nothing holds it any more. */
static void task_release(struct task *t)
{
    if (!t->linked && !t->walking && t->inflight == 0 && !t->in_ring)
        task_free(t);
}

static void file_release(struct task *t, struct wfile *f)
{
    if (f->vanished && f->size - f->done_bytes <= t->total)
        t->total -= f->size - f->done_bytes;
    free(f);
}

/* Stops a running task: STATUS is canceled or failed. The queued files that no fill holds go at
 * once; the others when their last fill ends. */
static void task_stop(struct warmup *w, struct task *t, enum warmup_status status)
{
    set_status(w, t, status);
    struct wfile *f = t->qhead;
    t->qhead = t->qtail = NULL;
    t->qlen = 0;
    while (f) {
        struct wfile *next = f->next;
        f->queued = false;
        if (f->inflight == 0)
            free(f);
        f = next;
    }
    pthread_cond_broadcast(&w->space_cv);
}

static void task_maybe_complete(struct warmup *w, struct task *t)
{
    if (t->status == WARMUP_RUNNING && !t->walking && !t->qhead && t->inflight == 0) {
        set_status(w, t, WARMUP_COMPLETED);
        log_info("warm-up task %" PRIu64 " of '%s' completed: %" PRIu64 " bytes", t->id, t->path,
                 t->completed);
    }
}

static void task_fail(struct warmup *w, struct task *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void task_fail(struct warmup *w, struct task *t, const char *fmt, ...)
{
    if (t->status != WARMUP_RUNNING)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->error, sizeof(t->error), fmt, ap);
    va_end(ap);
    task_stop(w, t, WARMUP_FAILED);
    log_warn("warm-up task %" PRIu64 " of '%s' failed: %s", t->id, t->path, t->error);
}

static void evict(struct warmup *w, struct task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        w->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        w->tail = t->prev;
    w->counts[t->status]--;
    w->ntasks--;
    t->linked = false;
    task_release(t);
}

/* Evicts the finished tasks older than max_age, then the oldest finished ones while there are
 * more than KEEP tasks. */
static void trim(struct warmup *w, unsigned keep)
{
    uint64_t now = w->now(w->now_arg);
    for (struct task *t = w->head, *next; t; t = next) {
        next = t->next;
        if (t->submit_us + w->max_age_us > now)
            break; /* the rest are younger (submit times only grow, bar clock steps) */
        if (t->status != WARMUP_RUNNING)
            evict(w, t);
    }
    for (struct task *t = w->head, *next; t && w->ntasks > keep; t = next) {
        next = t->next;
        if (t->status != WARMUP_RUNNING)
            evict(w, t);
    }
}

/* ---- workers ------------------------------------------------------------------------------- */

static void *worker_main(void *arg);
static void *walker_main(void *arg);

/* Gets a worker to the ready ring: wakes an idle one, or starts one. An idle worker that was
 * signalled but has not run yet still counts as idle, so a signal can be absorbed by a worker
 * already woken; every claim kicks again while the ring is not empty, which makes up for it. */
static void kick(struct warmup *w)
{
    if (!w->rhead)
        return;
    if (w->idle_workers > 0) {
        pthread_cond_signal(&w->work_cv);
    } else if (w->nworkers < w->max_workers) {
        int rc = pthread_create(&w->workers[w->nworkers], NULL, worker_main, w);
        if (rc == 0)
            w->nworkers++;
        else if (w->nworkers == 0)
            task_fail(w, w->rhead, "cannot start a warm-up worker: %s", strerror(rc));
        else
            log_warn("cannot start a warm-up worker: %s", strerror(rc));
    }
}

/* Puts T at the end of the ready ring if it has a block to claim. */
static void ring_push(struct warmup *w, struct task *t)
{
    if (t->in_ring || t->status != WARMUP_RUNNING || !t->qhead)
        return;
    t->in_ring = true;
    t->rnext = NULL;
    if (w->rtail)
        w->rtail->rnext = t;
    else
        w->rhead = t;
    w->rtail = t;
}

static struct task *ring_pop(struct warmup *w)
{
    while (w->rhead) {
        struct task *t = w->rhead;
        w->rhead = t->rnext;
        if (!w->rhead)
            w->rtail = NULL;
        t->in_ring = false;
        if (t->qhead)
            return t;
        /* its queue went (a vanished file) since it was pushed: drop it; the walk pushes it
         * again with its next file */
    }
    return NULL;
}

/* Takes F, the head of T's file queue, off the queue (its last block is claimed, or it vanished)
 * and wakes a lister waiting for room. Under w->lock. */
static void dequeue_head(struct warmup *w, struct task *t, struct wfile *f)
{
    t->qhead = f->next;
    if (!t->qhead)
        t->qtail = NULL;
    t->qlen--;
    f->queued = false;
    pthread_cond_broadcast(&w->space_cv);
}

static void *worker_main(void *arg)
{
    struct warmup *w = arg;
    const uint64_t bs = w->be.block_size;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        struct task *t = ring_pop(w);
        if (!t) {
            w->idle_workers++;
            pthread_cond_wait(&w->work_cv, &w->lock);
            w->idle_workers--;
            continue;
        }
        struct wfile *f = t->qhead;
        uint64_t index = f->next_block++;
        f->inflight++;
        t->inflight++;
        if (f->next_block == f->nblocks)
            dequeue_head(w, t, f);
        ring_push(w, t); /* round-robin: the task goes behind the others */
        kick(w);
        pthread_mutex_unlock(&w->lock);

        int rc = w->be.fill(w->be.arg, f->key, f->etag, f->size, index);

        pthread_mutex_lock(&w->lock);
        uint64_t bytes = f->size - index * bs < bs ? f->size - index * bs : bs;
        if (rc == 0) {
            f->done_bytes += bytes;
            t->completed += bytes;
        } else if (rc == -ENOENT || rc == -ESTALE) {
            /* The object went or changed since the listing: skip it, as the mount would no
             * longer show this version. */
            if (!f->vanished)
                log_info("warm-up task %" PRIu64 ": '%s' changed or vanished, skipped", t->id,
                         f->key);
            f->vanished = true;
            if (f->queued) /* then it is the queue's head: only the head is claimed */
                dequeue_head(w, t, f);
        } else {
            task_fail(w, t, "cannot load '%.200s': %s", f->key + strlen(w->root), strerror(-rc));
        }
        f->inflight--;
        t->inflight--;
        if (f->inflight == 0 && !f->queued)
            file_release(t, f);
        task_maybe_complete(w, t);
        task_release(t);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- walkers ------------------------------------------------------------------------------- */

struct walk {
    struct warmup *w;
    struct task *t;
    uint64_t keys; /* keys the listing gave */
};

/* Whether the mount shows REL (a key relative to the root) as a file. */
static bool visible(const char *rel)
{
    size_t len = strlen(rel);
    if (len == 0 || len > WARMUP_PATH_MAX || rel[len - 1] == '/')
        return false;
    for (const char *p = rel;;) {
        const char *s = strchr(p, '/');
        size_t n = s ? (size_t)(s - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!s)
            return true;
        p = s + 1;
    }
}

static bool matches(struct task *t, const char *rel)
{
    if (!t->has_re)
        return true;
    const char *name = strrchr(rel, '/');
    return regexec(&t->re, name ? name + 1 : rel, 0, NULL, 0) == 0;
}

/* Queues a matching file, waiting for room. Returns 0, or 1 when the task stopped. */
static int enqueue(struct warmup *w, struct task *t, const char *key, const char *etag,
                   uint64_t size)
{
    size_t klen = strlen(key);
    struct wfile *f = NULL;
    if (size > 0) {
        f = calloc(1, sizeof(*f) + klen + 1);
        if (!f) {
            pthread_mutex_lock(&w->lock);
            task_fail(w, t, "cannot queue '%.200s': %s", key + strlen(w->root), strerror(ENOMEM));
            pthread_mutex_unlock(&w->lock);
            return 1;
        }
        memcpy(f->key, key, klen + 1);
        snprintf(f->etag, sizeof(f->etag), "%s", etag);
        f->size = size;
        f->nblocks = (size - 1) / w->be.block_size + 1;
        f->queued = true;
    }
    pthread_mutex_lock(&w->lock);
    while (t->status == WARMUP_RUNNING && t->qlen >= WARMUP_QUEUE_MAX)
        pthread_cond_wait(&w->space_cv, &w->lock);
    if (t->status != WARMUP_RUNNING) {
        pthread_mutex_unlock(&w->lock);
        free(f);
        return 1;
    }
    t->total += size;
    if (f) {
        if (t->qtail)
            t->qtail->next = f;
        else
            t->qhead = f;
        t->qtail = f;
        t->qlen++;
        ring_push(w, t);
        kick(w);
    }
    pthread_mutex_unlock(&w->lock);
    return 0;
}

static int walk_key(void *arg, const char *key, const char *etag, uint64_t size)
{
    struct walk *k = arg;
    struct warmup *w = k->w;
    struct task *t = k->t;
    if (atomic_load(&t->stop))
        return 1;
    if (k->keys++ == 0 && t->path[0]) {
        pthread_mutex_lock(&w->lock);
        t->is_dir = true;
        pthread_mutex_unlock(&w->lock);
    }
    size_t rlen = strlen(w->root);
    if (strncmp(key, w->root, rlen) != 0)
        return 0; /* not under the root: a backend that ignored the prefix */
    const char *rel = key + rlen;
    if (!visible(rel) || !matches(t, rel))
        return 0;
    if (strlen(etag) > ETAG_MAX) {
        log_warn("warm-up task %" PRIu64 ": '%.200s' has an ETag longer than %d bytes, skipped",
                 t->id, rel, ETAG_MAX);
        return 0;
    }
    return enqueue(w, t, key, etag, size);
}

static void walk(struct warmup *w, struct task *t)
{
    size_t rlen = strlen(w->root), plen = strlen(t->path);
    char *prefix = malloc(rlen + plen + 2);
    if (!prefix) {
        pthread_mutex_lock(&w->lock);
        task_fail(w, t, "cannot walk '%s': %s", t->path, strerror(ENOMEM));
        pthread_mutex_unlock(&w->lock);
        return;
    }
    memcpy(prefix, w->root, rlen);
    memcpy(prefix + rlen, t->path, plen);
    prefix[rlen + plen] = '\0';
    if (plen) {
        prefix[rlen + plen] = '/';
        prefix[rlen + plen + 1] = '\0';
    }

    struct walk k = {.w = w, .t = t};
    int rc = atomic_load(&t->stop) ? 1 : w->be.list(w->be.arg, prefix, walk_key, &k);
    if (rc < 0) {
        pthread_mutex_lock(&w->lock);
        task_fail(w, t, "cannot list '%s': %s", t->path[0] ? t->path : "(root)", strerror(-rc));
        pthread_mutex_unlock(&w->lock);
    } else if (rc == 0 && k.keys == 0 && plen) {
        /* Not a directory: a file? */
        char etag[ETAG_MAX + 1] = "";
        uint64_t size = 0;
        prefix[rlen + plen] = '\0';
        rc = w->be.head(w->be.arg, prefix, etag, sizeof(etag), &size);
        if (rc == -ENOENT) {
            pthread_mutex_lock(&w->lock);
            task_fail(w, t, "path '%s' does not exist", t->path);
            pthread_mutex_unlock(&w->lock);
        } else if (rc < 0) {
            pthread_mutex_lock(&w->lock);
            task_fail(w, t, "cannot stat '%s': %s", t->path, strerror(-rc));
            pthread_mutex_unlock(&w->lock);
        } else if (matches(t, t->path)) {
            enqueue(w, t, prefix, etag, size);
        }
    }
    free(prefix);
}

static void *walker_main(void *arg)
{
    struct warmup *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        struct task *t = w->whead;
        if (!t) {
            w->idle_walkers++;
            pthread_cond_wait(&w->walk_cv, &w->lock);
            w->idle_walkers--;
            continue;
        }
        w->whead = t->wnext;
        if (!w->whead)
            w->wtail = NULL;
        w->wlen--;
        pthread_mutex_unlock(&w->lock);
        walk(w, t);
        pthread_mutex_lock(&w->lock);
        t->walking = false;
        task_maybe_complete(w, t);
        task_release(t);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- API ----------------------------------------------------------------------------------- */

int warmup_new(const struct warmup_config *cfg, const struct warmup_backend *be,
               struct warmup **out)
{
    if (!cfg || !be || !be->list || !be->head || !be->fill || be->block_size == 0)
        return -EINVAL;
    const char *root = cfg->root_prefix ? cfg->root_prefix : "";
    size_t rlen = strlen(root);
    if (rlen > PREFIX_MAX)
        return -EINVAL;
    struct warmup *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->be = *be;
    w->max_workers = cfg->workers ? cfg->workers : DEFAULT_WORKERS;
    if (w->max_workers > WORKERS_MAX)
        w->max_workers = WORKERS_MAX;
    w->max_tasks = cfg->max_tasks ? cfg->max_tasks : DEFAULT_MAX_TASKS;
    uint64_t age_s = cfg->max_age_s ? cfg->max_age_s : DEFAULT_MAX_AGE_S;
    /* a century at most, so that submit time + max age cannot wrap */
    w->max_age_us = (age_s < MAX_AGE_S_MAX ? age_s : MAX_AGE_S_MAX) * 1000000u;
    w->now = real_now;
    w->next_id = 1;
    /* "dir/sub" and "dir/sub/" name the same prefix */
    w->root = malloc(rlen + 2);
    w->workers = calloc(w->max_workers, sizeof(*w->workers));
    if (!w->root || !w->workers) {
        free(w->root);
        free(w->workers);
        free(w);
        return -ENOMEM;
    }
    memcpy(w->root, root, rlen + 1);
    if (rlen && root[rlen - 1] != '/')
        memcpy(w->root + rlen, "/", 2);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->work_cv, NULL);
    pthread_cond_init(&w->walk_cv, NULL);
    pthread_cond_init(&w->space_cv, NULL);
    *out = w;
    return 0;
}

void warmup_free(struct warmup *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    for (struct task *t = w->head; t; t = t->next)
        if (t->status == WARMUP_RUNNING)
            task_stop(w, t, WARMUP_CANCELED);
    pthread_cond_broadcast(&w->work_cv);
    pthread_cond_broadcast(&w->walk_cv);
    pthread_cond_broadcast(&w->space_cv);
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < w->nwalkers; i++)
        pthread_join(w->walkers[i], NULL);
    for (unsigned i = 0; i < w->nworkers; i++)
        pthread_join(w->workers[i], NULL);
    /* The tasks still waiting for a walker: evicted ones are freed here, the others below. */
    for (struct task *t = w->whead, *next; t; t = next) {
        next = t->wnext;
        t->walking = false;
        task_release(t);
    }
    for (struct task *t = w->head, *next; t; t = next) {
        next = t->next;
        task_free(t);
    }
    pthread_cond_destroy(&w->work_cv);
    pthread_cond_destroy(&w->walk_cv);
    pthread_cond_destroy(&w->space_cv);
    pthread_mutex_destroy(&w->lock);
    free(w->workers);
    free(w->root);
    free(w);
}

int warmup_load(struct warmup *w, const char *path, const char *pattern, uint64_t *id, char *err,
                size_t errlen)
{
    char norm[WARMUP_PATH_MAX + 1];
    int rc = warmup_normalize(path, norm, sizeof(norm), err, errlen);
    if (rc)
        return rc;
    if (!pattern)
        pattern = "";
    rc = warmup_pattern_check(pattern, err, errlen);
    if (rc)
        return rc;
    struct task *t = calloc(1, sizeof(*t));
    if (!t || !(t->path = strdup(norm)) || !(t->pattern = strdup(pattern))) {
        snprintf(err, errlen, "cannot create a warm-up task for '%s': %s", norm, strerror(ENOMEM));
        if (t)
            task_free(t);
        return -ENOMEM;
    }
    if (pattern[0]) {
        rc = regcomp(&t->re, pattern, REG_EXTENDED | REG_NOSUB);
        if (rc) {
            char why[128];
            regerror(rc, &t->re, why, sizeof(why));
            snprintf(err, errlen, "pattern '%.200s' does not compile: %s", pattern, why);
            task_free(t);
            return -EINVAL;
        }
        t->has_re = true;
    }

    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        task_free(t);
        snprintf(err, errlen, "the warm-up is shutting down");
        return -ESHUTDOWN;
    }
    trim(w, w->max_tasks - 1);
    if (w->ntasks >= w->max_tasks) {
        pthread_mutex_unlock(&w->lock);
        task_free(t);
        snprintf(err, errlen, "%u warm-up tasks are running: cancel some or wait", w->max_tasks);
        return -EBUSY;
    }
    /* A walker for each task waiting for one, as far as the cap allows: a signalled walker may
     * not have woken yet, so idle walkers are counted against the waiting tasks. */
    if (w->wlen + 1 > w->idle_walkers && w->nwalkers < WARMUP_WALKERS_MAX) {
        rc = pthread_create(&w->walkers[w->nwalkers], NULL, walker_main, w);
        if (rc == 0) {
            w->nwalkers++;
        } else if (w->nwalkers == 0) {
            pthread_mutex_unlock(&w->lock);
            task_free(t);
            snprintf(err, errlen, "cannot start a warm-up walker: %s", strerror(rc));
            return -rc;
        }
    }
    t->id = w->next_id++;
    t->submit_us = w->now(w->now_arg);
    t->status = WARMUP_RUNNING;
    t->linked = true;
    t->walking = true;
    t->is_dir = !norm[0]; /* the root is a directory; other paths once the walk knows */
    t->prev = w->tail;
    if (w->tail)
        w->tail->next = t;
    else
        w->head = t;
    w->tail = t;
    w->ntasks++;
    w->counts[WARMUP_RUNNING]++;
    if (w->wtail)
        w->wtail->wnext = t;
    else
        w->whead = t;
    w->wtail = t;
    w->wlen++;
    pthread_cond_signal(&w->walk_cv);
    *id = t->id;
    pthread_mutex_unlock(&w->lock);
    log_info("warm-up task %" PRIu64 " of '%s' submitted%s%s", *id, norm,
             pattern[0] ? ", pattern " : "", pattern);
    return 0;
}

int warmup_stat(struct warmup *w, const char *path, uint64_t preceding_s,
                struct warmup_task_info *out, size_t max, char *err, size_t errlen)
{
    char norm[WARMUP_PATH_MAX + 1];
    int rc = warmup_normalize(path, norm, sizeof(norm), err, errlen);
    if (rc)
        return rc;
    int n = 0;
    pthread_mutex_lock(&w->lock);
    trim(w, w->max_tasks);
    uint64_t now = w->now(w->now_arg);
    uint64_t since = preceding_s && preceding_s < now / 1000000u ? now - preceding_s * 1000000u : 0;
    for (struct task *t = w->tail; t; t = t->prev) {
        if (t->submit_us < since || strcmp(t->path, norm) != 0)
            continue;
        if ((size_t)n < max) {
            struct warmup_task_info *i = &out[n];
            memset(i, 0, sizeof(*i));
            snprintf(i->path, sizeof(i->path), "%s", t->path);
            snprintf(i->pattern, sizeof(i->pattern), "%s", t->pattern);
            snprintf(i->error, sizeof(i->error), "%s", t->error);
            i->is_dir = t->is_dir;
            i->status = t->status;
            i->completed_size = t->completed;
            i->total_size = t->total;
            i->submit_time_us = t->submit_us;
            i->id = t->id;
        }
        n++;
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}

int warmup_cancel(struct warmup *w, const char *path, char *err, size_t errlen)
{
    char norm[WARMUP_PATH_MAX + 1];
    int rc = warmup_normalize(path, norm, sizeof(norm), err, errlen);
    if (rc)
        return rc;
    int canceled = 0, found = 0;
    pthread_mutex_lock(&w->lock);
    trim(w, w->max_tasks);
    for (struct task *t = w->head; t; t = t->next) {
        if (strcmp(t->path, norm) != 0)
            continue;
        found++;
        if (t->status == WARMUP_RUNNING) {
            task_stop(w, t, WARMUP_CANCELED);
            canceled++;
            log_info("warm-up task %" PRIu64 " of '%s' canceled", t->id, t->path);
        }
    }
    pthread_mutex_unlock(&w->lock);
    if (canceled)
        return canceled;
    if (found) {
        snprintf(err, errlen,
                 "the warm-up tasks of '%s' are finished (completed, failed or canceled)", norm);
        return -EALREADY;
    }
    snprintf(err, errlen, "no warm-up task for '%s'", norm);
    return -ENOENT;
}

void warmup_counts(struct warmup *w, uint64_t counts[4])
{
    pthread_mutex_lock(&w->lock);
    trim(w, w->max_tasks);
    memcpy(counts, w->counts, sizeof(w->counts));
    pthread_mutex_unlock(&w->lock);
}
