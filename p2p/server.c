/* p2p/server.c - answers to peers: the listener on this node's rootlist address, the handshake,
 * and the GETs of blocks this node owns.
 *
 * One thread multiplexes the listening socket and every inbound connection with epoll: it
 * accepts, reads frame heads, answers HELLO (and checks AUTH) itself, and queues each GET for
 * the workers (P2P_SERVE_THREADS; a full queue answers BUSY at once: the peer reads the origin
 * rather than wait). A worker answers each block of a GET from this node's cache:
 *
 *   1. the memory tier, pinned, sent from the cache's own memory (writev: no copy);
 *   2. else memory and disk without a fetch (cache_read_local), into the worker's buffer;
 *   3. else through the cache with CACHE_PEER: the cache fetches the block from the origin once,
 *      whoever else asks meanwhile (its single-flight), keeps it, and the fetch is counted as
 *      this node's tier_root_read_source. At most P2P_ORIGIN_FETCHES such fetches run at once,
 *      apart from the workers: many requesters must not stampede the origin, and hits must not
 *      wait behind misses.
 *
 * Each block goes out as DATA frames of at most P2P_MAX_DATA bytes and P2P_MAX_PAGES pages, each
 * page with its CRC64 bound to the requester's identity of the block and the page's number, the
 * last frame of the GET flagged LAST. Writes go under the connection's send lock with a deadline
 * (P2P_SEND_MS): a peer that stops reading loses its connection, not a worker.
 *
 * A GET for another bucket (name space), or one whose identity this node computes otherwise, is
 * refused; an agent (no cache) answers NOT_SERVING to everything.
 *
 * Hot blocks (p2p.c has the whole story): the connection thread answers HOT at once to a GET of a
 * block this node owns that it is already sending to p->fanout other peers (a peer's GETs of one
 * span count once), unless the requester is one of its children in the block's fan-out tree
 * (always served). A RELAY GET (a hot block a
 * child asks its parent for) is read through this node's cache with CACHE_RELAY, from the owner
 * or this node's own parent, by the workers of this node's depth in the block's tree: a worker
 * of depth d only ever waits for one of depth d - 1 elsewhere, so the waits cannot go round.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "cache/cache.h"
#include "p2p/p2p_i.h"
#include "util/log.h"

enum sstate { S_HELLO, S_AUTH, S_READY };

struct sconn {
    struct p2p_server *s;
    int fd;
    unsigned refs; /* atomic: the epoll thread's, each queued or running job's */
    pthread_mutex_t send_lock;
    enum sstate state;
    uint8_t nc[P2P_NONCE], ns[P2P_NONCE];
    char peer[P2P_MAX_NAME + 1]; /* for logs: its name, or its address */
    char name[P2P_MAX_NAME + 1]; /* its name in the rootlist, "" when it gave none */
    uint64_t members;            /* the membership hash its HELLO reported */
    struct sconn *next, *prev;   /* the server's list (s->lock) */
    struct p2p_rx rx;
};

struct sjob {
    struct sjob *next;
    struct sconn *conn;
    int hot;        /* the hot-table slot it counts in, -1 */
    uint64_t peer;  /* ... as this peer (hot_peer) */
    uint64_t since; /* ns: queued, or last said PENDING while queued (s->lock) */
    unsigned level; /* 0: as the owner; d > 0: a RELAY at depth d of its block's tree */
    uint64_t rid;
    struct p2p_get get;
    char text[]; /* ns, key, etag, each NUL-terminated; get's pointers point here */
};

struct p2p_server {
    struct p2p *p;
    struct cache *cache; /* NULL: an agent */
    int lfd, epfd, wake;
    char addr[80];
    pthread_t thread;
    pthread_t workers[P2P_SERVE_THREADS];
    unsigned nworkers;
    bool thread_started;

    pthread_mutex_t lock;
    pthread_cond_t qcond[P2P_TREE_LEVELS]; /* a job of that level was queued, or stop */
    struct sjob *qhead[P2P_TREE_LEVELS], *qtail[P2P_TREE_LEVELS];
    unsigned qlen; /* of all levels */
    pthread_t relays[P2P_TREE_LEVELS][P2P_RELAY_THREADS];
    unsigned nrelays[P2P_TREE_LEVELS], idle[P2P_TREE_LEVELS];
    struct hot {
        uint64_t id[2]; /* a span this node owns */
        unsigned n;     /* peers it is being sent to (their GETs in progress: gets[]) */
        uint64_t peer[P2P_FANOUT_MAX];
        unsigned gets[P2P_FANOUT_MAX];
    } hot[P2P_HOT_SLOTS];
    struct worker *wlist[P2P_SERVE_THREADS + P2P_TREE_LEVELS * P2P_RELAY_THREADS];
    unsigned nw;         /* workers in wlist (s->lock) */
    uint64_t last_pulse; /* the connection thread's last look for silent workers (ns) */
    bool stopping;
    struct sconn *conns;
    unsigned nconns;

    pthread_mutex_t olock;
    pthread_cond_t ocond;
    unsigned ofetches; /* origin fetches for peers running */
};

static void sconn_put(struct sconn *c)
{
    if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    struct p2p_server *s = c->s;
    pthread_mutex_lock(&s->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    pthread_mutex_unlock(&s->lock);
    close(c->fd);
    pthread_mutex_destroy(&c->send_lock);
    P2P_SUB(s->p, n_conns_in, 1);
    free(c);
}

/* Sends frame head HEAD (LEN bytes) and DATA_LEN bytes of DATA. 0 or -errno (the connection is
 * then shut down: its reader sees the end). */
static int send_frame(struct sconn *c, const uint8_t *head, size_t len, const void *data,
                      size_t data_len)
{
    struct iovec iov[2] = {{(void *)head, len}, {(void *)data, data_len}};
    pthread_mutex_lock(&c->send_lock);
    int rc = p2p_send_all(c->fd, iov, data_len ? 2 : 1, P2P_SEND_MS);
    pthread_mutex_unlock(&c->send_lock);
    if (rc) {
        log_debug("p2p: sending to '%s' failed: %s", c->peer, strerror(-rc));
        shutdown(c->fd, SHUT_RDWR);
    }
    return rc;
}

static int send_error(struct sconn *c, uint64_t rid, int status, const char *msg)
{
    uint8_t f[P2P_HDR + 8 + P2P_MAX_MSG];
    size_t n = p2p_enc_error(f, rid, status, msg);
    return send_frame(c, f, n, NULL, 0);
}

/* ---- answering a GET ------------------------------------------------------------------------ */

struct worker {
    struct p2p_server *s;
    unsigned level;     /* of the jobs it takes (sjob.level) */
    struct sjob *job;   /* the job it answers (s->lock), NULL between jobs */
    uint64_t last_sent; /* atomic: ns of its last frame, or of its job's start */
    uint8_t *buf;       /* a block */
    size_t cap;
    uint8_t head[P2P_HDR + P2P_MAX_META];
    uint64_t crc[P2P_MAX_PAGES];
};

static int status_of(int rc)
{
    switch (rc) {
    case -ESTALE:
        return P2P_STALE;
    case -ENOENT:
        return P2P_NOT_FOUND;
    case -EACCES:
    case -EPERM:
        return P2P_DENIED;
    case -EINVAL:
        return P2P_BAD_REQUEST;
    default:
        return P2P_ORIGIN_FAILED;
    }
}

static void origin_slot_take(struct p2p_server *s)
{
    pthread_mutex_lock(&s->olock);
    if (s->ofetches >= P2P_ORIGIN_FETCHES)
        P2P_ADD(s->p, n_origin_cap_waits, 1);
    while (s->ofetches >= P2P_ORIGIN_FETCHES)
        pthread_cond_wait(&s->ocond, &s->olock);
    s->ofetches++;
    pthread_mutex_unlock(&s->olock);
}

static void origin_slot_give(struct p2p_server *s)
{
    pthread_mutex_lock(&s->olock);
    s->ofetches--;
    pthread_cond_signal(&s->ocond);
    pthread_mutex_unlock(&s->olock);
}

/* Sends [0, len) of block INDEX's range starting at OFF (DATA at BYTES) as DATA frames; LAST on
 * the final one when LAST. */
static int send_block(struct worker *w, struct sconn *c, const struct sjob *j, uint64_t index,
                      uint32_t off, const uint8_t *bytes, uint32_t len, uint8_t hit, bool last)
{
    const struct p2p_get *g = &j->get;
    uint32_t ps = g->page_size;
    uint64_t id[2];
    cache_block_id(g->ns, g->key, g->etag, index, id);
    uint32_t per = P2P_MAX_DATA < P2P_MAX_PAGES * ps ? P2P_MAX_DATA : P2P_MAX_PAGES * ps;
    uint32_t done = 0;
    do {
        uint32_t n = len - done < per ? len - done : per;
        uint32_t np = (n + ps - 1) / ps;
        for (uint32_t k = 0; k < np; k++) {
            uint32_t po = done + k * ps;
            uint32_t pl = len - po < ps ? len - po : ps;
            w->crc[k] = cache_page_crc(id, (off + po) / ps, bytes + po, pl);
        }
        struct p2p_data d = {.index = index,
                             .off = off + done,
                             .status = P2P_OK,
                             .hit = hit,
                             .page_size = ps,
                             .npages = np};
        bool fin = last && done + n == len;
        size_t hl = p2p_enc_data(w->head, j->rid, fin ? P2P_F_LAST : 0, &d, w->crc, n);
        int rc = send_frame(c, w->head, hl, bytes + done, n);
        if (rc)
            return rc;
        __atomic_store_n(&w->last_sent, p2p_now_ns(), __ATOMIC_RELAXED);
        P2P_ADD(w->s->p, n_served_bytes, n);
        done += n;
    } while (done < len);
    return 0;
}

static int send_status(struct worker *w, struct sconn *c, const struct sjob *j, uint64_t index,
                       int status, bool last)
{
    struct p2p_data d = {.index = index, .status = (uint16_t)status, .page_size = j->get.page_size};
    size_t hl = p2p_enc_data(w->head, j->rid, last ? P2P_F_LAST : 0, &d, NULL, 0);
    if (status != P2P_OK)
        P2P_ADD(w->s->p, n_served_errors, 1);
    __atomic_store_n(&w->last_sent, p2p_now_ns(), __ATOMIC_RELAXED);
    return send_frame(c, w->head, hl, NULL, 0);
}

/* Answers one block of J. */
static int serve_block(struct worker *w, struct sjob *j, uint64_t index, bool last)
{
    struct p2p_server *s = w->s;
    unsigned cf = j->level ? CACHE_PEER | CACHE_RELAY : CACHE_PEER;
    struct p2p *p = s->p;
    struct sconn *c = j->conn;
    const struct p2p_get *g = &j->get;
    uint64_t bstart = index * g->block_size;
    uint64_t blen = g->obj_size - bstart < g->block_size ? g->obj_size - bstart : g->block_size;
    uint32_t off = g->count == 1 ? g->off : 0;
    uint32_t len = g->count == 1 && g->len ? g->len : (uint32_t)(blen - off);
    if (off >= blen)
        return send_status(w, c, j, index, P2P_BAD_REQUEST, last);
    if (len > blen - off)
        len = (uint32_t)(blen - off);
    P2P_ADD(p, n_served_blocks, 1);

    if (g->flags & P2P_GET_FILL) {
        /* a warm-up: store the block here, send nothing back */
        origin_slot_take(s);
        int rc = cache_fill(s->cache, g->key, g->etag, g->obj_size,
                            bstart / cache_block_size(s->cache), CACHE_PEER, NULL);
        origin_slot_give(s);
        if (cache_block_size(s->cache) != g->block_size) /* fill every block of ours it spans */
            for (uint64_t b = bstart + cache_block_size(s->cache); rc == 0 && b < bstart + blen;
                 b += cache_block_size(s->cache))
                rc = cache_fill(s->cache, g->key, g->etag, g->obj_size,
                                b / cache_block_size(s->cache), CACHE_PEER, NULL);
        return send_status(w, c, j, index, rc ? status_of(rc) : P2P_OK, last);
    }

    /* 1. pinned in memory: sent from there (a fill under way is waited for) */
    struct cache_ref ref;
    if (cache_ref_get(s->cache, g->key, g->etag, g->obj_size, bstart + off, len, cf, &ref) == 0) {
        if (ref.len == len) {
            P2P_ADD(p, n_served_hits, 1);
            int rc = send_block(w, c, j, index, off, ref.data, len, 1, last);
            cache_ref_put(s->cache, &ref);
            return rc;
        }
        cache_ref_put(s->cache, &ref); /* spans two of our blocks: copy it below */
    }
    if (w->cap < len) {
        free(w->buf);
        w->buf = malloc(len);
        w->cap = w->buf ? len : 0;
        if (w->buf == NULL)
            return send_status(w, c, j, index, P2P_BUSY, last);
    }
    /* 2. memory and disk, no fetch */
    ssize_t n = cache_read_ex(s->cache, g->key, g->etag, g->obj_size, bstart + off, len, w->buf,
                              CACHE_PEER | CACHE_LOCAL, NULL);
    int hit = 1;
    if (n == -ENOENT) {
        /* 3. from the origin, once however many ask, kept here (a relay: from the owner or
           this node's parent in the block's tree) */
        if (!j->level)
            origin_slot_take(s);
        int missed = 0;
        n = cache_read_ex(s->cache, g->key, g->etag, g->obj_size, bstart + off, len, w->buf, cf,
                          &missed);
        if (!j->level)
            origin_slot_give(s);
        hit = !missed;
    }
    if (n < 0) {
        if (n != -ESTALE && n != -ENOENT)
            log_debug("p2p: '%s' block %llu for '%s': %s", g->key, (unsigned long long)index,
                      c->peer, strerror((int)-n));
        return send_status(w, c, j, index, status_of((int)n), last);
    }
    if ((uint32_t)n != len)
        return send_status(w, c, j, index, P2P_ORIGIN_FAILED, last);
    if (hit)
        P2P_ADD(p, n_served_hits, 1);
    else
        P2P_ADD(p, n_served_misses, 1);
    return send_block(w, c, j, index, off, w->buf, len, (uint8_t)hit, last);
}

/* The blocks of a GET still to be answered. */
struct answer {
    struct worker *w;
    struct sjob *j;
    uint64_t sent; /* bits of the mask answered */
    unsigned left; /* blocks not answered yet: the one that brings it to 0 goes LAST */
    int err;       /* the connection failed */
};

/* cache_fetch_run's READY: a block of the run is in; sent on at once. */
static void on_ready(void *arg, uint64_t index, const uint8_t *data, uint32_t len)
{
    struct answer *a = arg;
    const struct p2p_get *g = &a->j->get;
    uint64_t bit = 1ull << (index - g->first);
    if (a->err || !(g->mask & bit) || (a->sent & bit))
        return;
    a->sent |= bit;
    P2P_ADD(a->w->s->p, n_served_blocks, 1);
    P2P_ADD(a->w->s->p, n_served_misses, 1);
    a->err = send_block(a->w, a->j->conn, a->j, index, 0, data, len, 0, --a->left == 0);
}

static void serve_job(struct worker *w, struct sjob *j)
{
    struct p2p *p = w->s->p;
    struct cache *cache = w->s->cache;
    const struct p2p_get *g = &j->get;
    unsigned last_bit = 63u - (unsigned)__builtin_clzll(g->mask);
    struct answer a = {w, j, 0, (unsigned)__builtin_popcountll(g->mask), 0};
    int status = P2P_OK;
    P2P_ADD(p, n_served_requests, 1);
    if (j->level)
        P2P_ADD(p, n_served_relays, 1);
    uint64_t id[2];
    if (cache == NULL) {
        status = P2P_NOT_SERVING;
    } else if (g->ns_len != p->nslen || memcmp(g->ns, p->ns, p->nslen) != 0) {
        status = P2P_OTHER_BUCKET;
    } else {
        cache_block_id(g->ns, g->key, g->etag, g->first, id);
        if (id[0] != g->id[0] || id[1] != g->id[1])
            status = P2P_BAD_REQUEST; /* it names blocks otherwise: never guess which bytes */
    }
    uint32_t run = status == P2P_OK ? cache_block_size(cache) : 0;
    if (status == P2P_OK && g->count > 1 && !(g->flags & P2P_GET_FILL) && run == g->block_size) {
        /* Each stretch of wanted blocks the cache lacks comes from the origin in one request
           (the cache's run), and each block goes on to the peer as soon as it is in: the
           owner of a sequential run streams it as the origin sends it. */
        run = (4u << 20) / run ? (4u << 20) / run : 1;
        for (unsigned i = 0; i <= last_bit && !a.err;) {
            if (!(g->mask >> i & 1)) {
                i++;
                continue;
            }
            unsigned q = i;
            while (q + 1 <= last_bit && (g->mask >> (q + 1) & 1) && q + 1 - i < run)
                q++;
            if (!j->level)
                origin_slot_take(w->s);
            (void)cache_fetch_run(cache, g->key, g->etag, g->obj_size, g->first + i, q - i + 1,
                                  j->level ? CACHE_PEER | CACHE_RELAY : CACHE_PEER, on_ready, &a);
            if (!j->level)
                origin_slot_give(w->s);
            i = q + 1;
        }
    }
    /* The rest: held here, filled by another, or a single block (or a page range of one). */
    for (unsigned i = 0; i <= last_bit && !a.err; i++) {
        if (!(g->mask >> i & 1) || (a.sent >> i & 1))
            continue;
        a.sent |= 1ull << i;
        bool last = --a.left == 0;
        a.err = status != P2P_OK ? send_status(w, j->conn, j, g->first + i, status, last)
                                 : serve_block(w, j, g->first + i, last);
    }
}

/* Takes job J off its hot-table slot: the peer's GETs there one fewer, the peer gone from it
 * at none. s->lock held. */
static void hot_leave(struct p2p_server *s, struct sjob *j)
{
    if (j->hot < 0)
        return;
    struct hot *e = &s->hot[j->hot];
    for (unsigned i = 0; i < e->n; i++) {
        if (e->peer[i] != j->peer)
            continue;
        if (--e->gets[i] == 0) {
            e->n--;
            e->peer[i] = e->peer[e->n];
            e->gets[i] = e->gets[e->n];
        }
        break;
    }
    j->hot = -1;
}

/* The end of job J: its hot-table count, its connection. s->lock not held. */
static void job_done(struct p2p_server *s, struct sjob *j)
{
    if (j->hot >= 0) {
        pthread_mutex_lock(&s->lock);
        hot_leave(s, j);
        pthread_mutex_unlock(&s->lock);
    }
    sconn_put(j->conn);
    free(j);
}

/* A worker of level W->level: 0 answers GETs as the owner, d > 0 RELAY GETs at depth d. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct p2p_server *s = w->s;
    unsigned lv = w->level;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        s->idle[lv]++;
        while (!s->qhead[lv] && !s->stopping)
            pthread_cond_wait(&s->qcond[lv], &s->lock);
        s->idle[lv]--;
        if (s->stopping)
            break;
        struct sjob *j = s->qhead[lv];
        s->qhead[lv] = j->next;
        if (!s->qhead[lv])
            s->qtail[lv] = NULL;
        s->qlen--;
        w->job = j;
        __atomic_store_n(&w->last_sent, p2p_now_ns(), __ATOMIC_RELAXED);
        pthread_mutex_unlock(&s->lock);
        serve_job(w, j);
        pthread_mutex_lock(&s->lock);
        w->job = NULL;
        pthread_mutex_unlock(&s->lock);
        job_done(s, j);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL; /* p2p_server_stop frees W: the connection thread may look at it till then */
}

/* Starts a worker of LEVEL into *T. 0 or -errno. */
static int worker_start(struct p2p_server *s, unsigned level, pthread_t *t)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->s = s;
    w->level = level;
    pthread_mutex_lock(&s->lock);
    s->wlist[s->nw++] = w; /* room for every worker there may be */
    pthread_mutex_unlock(&s->lock);
    int rc = pthread_create(t, NULL, worker_main, w);
    if (rc) {
        pthread_mutex_lock(&s->lock);
        s->wlist[--s->nw] = NULL; /* only the connection thread and start add workers */
        pthread_mutex_unlock(&s->lock);
        free(w);
        return -rc;
    }
    return 0;
}

/* Every P2P_PENDING_MS, from the connection thread: a PENDING frame for each GET a worker has
 * sent nothing of for that long (waiting for its origin, its parent in a block's tree, or an
 * origin slot), so that the requester, which would take the silence for a stalled peer, waits
 * on. A peer that is really stuck sends no frame at all and is timed out as before. */
struct due {
    struct sconn *c;
    uint64_t rid, index;
};

/* Adds job J's GET to DUE (a reference on its connection). s->lock held. */
static void due_add(struct due *due, unsigned *n, struct sjob *j)
{
    __atomic_add_fetch(&j->conn->refs, 1, __ATOMIC_ACQ_REL);
    due[*n].c = j->conn;
    due[*n].rid = j->rid;
    due[*n].index = j->get.first;
    (*n)++;
}

static void pulse(struct p2p_server *s)
{
    uint64_t now = p2p_now_ns(), quiet = P2P_PENDING_MS * 1000000ull;
    if (now - s->last_pulse < quiet)
        return;
    s->last_pulse = now;
    unsigned n = 0;
    pthread_mutex_lock(&s->lock);
    struct due *due = malloc((s->nw + s->qlen + 1) * sizeof(*due));
    for (unsigned i = 0; due && i < s->nw; i++) {
        struct worker *w = s->wlist[i];
        if (w == NULL || w->job == NULL ||
            now - __atomic_load_n(&w->last_sent, __ATOMIC_RELAXED) < quiet)
            continue;
        __atomic_store_n(&w->last_sent, now, __ATOMIC_RELAXED);
        due_add(due, &n, w->job);
    }
    /* and the GETs waiting for a worker */
    for (unsigned l = 0; due && l < P2P_TREE_LEVELS; l++)
        for (struct sjob *j = s->qhead[l]; j; j = j->next)
            if (now - j->since >= quiet) {
                j->since = now;
                due_add(due, &n, j);
            }
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < n; i++) {
        uint8_t f[P2P_HDR + 128]; /* a DATA frame without pages: 24 bytes of meta */
        struct p2p_data d = {
            .index = due[i].index, .status = P2P_PENDING, .page_size = P2P_MIN_PAGE};
        size_t hl = p2p_enc_data(f, due[i].rid, 0, &d, NULL, 0);
        (void)send_frame(due[i].c, f, hl, NULL, 0);
        sconn_put(due[i].c);
    }
    free(due);
}

/* ---- the connection thread ------------------------------------------------------------------ */

/* bsearch over a rootlist's nodes (sorted by name) for a name. */
static int by_name(const void *key, const void *node)
{
    return strcmp(key, ((const struct p2p_node *)node)->name);
}

/* Where job J (a GET from C, its strings NUL-terminated) goes: a RELAY to the workers of this
 * node's depth in the tree of its block (j->level; depth 0, this node owns it: as the owner); a
 * GET of a block this node owns from a peer that agrees on the membership and is not one of the
 * block's tree children counts in the block's hot-table slot (j->hot), unless p->fanout such GETs
 * are being served already: then it returns 1 (answer HOT). Else 0. */
static int classify(struct p2p_server *s, struct sconn *c, struct sjob *j)
{
    struct p2p *p = s->p;
    const struct p2p_get *g = &j->get;
    if ((g->flags & P2P_GET_FILL) || g->ns_len != p->nslen || memcmp(g->ns, p->ns, p->nslen) != 0)
        return 0;
    uint64_t id[2];
    p2p_span_id(p, g->key, g->etag, g->first, id);
    struct p2p_members *m = p2p_members_get(p);
    const struct p2p_rootlist *rl = &m->rl;
    int hot = 0;
    if (g->flags & P2P_GET_RELAY) {
        unsigned q = m->self >= 0
                         ? p2p_rank(rl, m->serving, m->nserving, id, (unsigned)m->self, UINT32_MAX)
                         : m->nserving;
        unsigned d = q >= m->nserving ? P2P_TREE_LEVELS - 1 : p2p_tree_depth(q, p->fanout);
        j->level = d < P2P_TREE_LEVELS ? d : P2P_TREE_LEVELS - 1;
        if (j->level == 0)
            j->get.flags &= ~P2P_GET_RELAY; /* this node owns it: answered as the owner */
    } else if (m->self >= 0 && c->members == rl->hash &&
               p2p_owner(rl, m->serving, m->nserving, id) == m->self) {
        /* a child of the owner in the block's tree is always served, and not counted */
        const struct p2p_node *nd =
            c->name[0] ? bsearch(c->name, rl->nodes, rl->n, sizeof(*rl->nodes), by_name) : NULL;
        if (nd && p2p_rank(rl, m->serving, m->nserving, id, (unsigned)(nd - rl->nodes),
                           p->fanout) <= p->fanout) {
            p2p_members_put(p, m);
            return 0;
        }
        /* the fan-out counts peers, not GETs: a peer's readahead and its reader may ask for
           the same span at once */
        uint64_t who = c->name[0] ? XXH3_64bits(c->name, strlen(c->name)) : (uint64_t)(uintptr_t)c;
        unsigned h = (unsigned)(id[0] % P2P_HOT_SLOTS);
        pthread_mutex_lock(&s->lock);
        struct hot *e = &s->hot[h];
        if (e->n == 0) {
            e->id[0] = id[0];
            e->id[1] = id[1];
        }
        bool full = false;
        if (e->id[0] == id[0] && e->id[1] == id[1]) { /* else: a collision, untracked */
            unsigned i = 0;
            while (i < e->n && e->peer[i] != who)
                i++;
            full = i == e->n && e->n >= p->fanout;
            if (!full) {
                if (i == e->n) {
                    e->peer[i] = who;
                    e->gets[i] = 0;
                    e->n++;
                }
                e->gets[i]++;
                j->hot = (int)h;
                j->peer = who;
                if (e->n > P2P_GET(p, n_fanout_max))
                    __atomic_store_n(&p->n_fanout_max, (uint64_t)e->n, __ATOMIC_RELAXED);
            }
        }
        pthread_mutex_unlock(&s->lock);
        hot = full;
    }
    p2p_members_put(p, m);
    return hot;
}

/* Queues the GET in C's frame; a full queue answers BUSY. 0 or -errno (drop the connection). */
static int queue_get(struct p2p_server *s, struct sconn *c)
{
    struct p2p_get g;
    if (p2p_dec_get(c->rx.buf + P2P_HDR, c->rx.h.meta_len, &g) != 0) {
        log_warn("p2p: a malformed GET from '%s'; closing its connection", c->peer);
        send_error(c, 0, P2P_BAD_REQUEST, "malformed GET");
        return -EPROTO;
    }
    if (s->cache == NULL) /* an agent: no worker, nothing to serve */
        return send_error(c, c->rx.h.rid, P2P_NOT_SERVING, "this node is an agent");
    size_t tl = (size_t)g.ns_len + 1 + g.key_len + 1 + g.etag_len + 1;
    struct sjob *j = malloc(sizeof(*j) + tl);
    if (j == NULL)
        return send_error(c, c->rx.h.rid, P2P_BUSY, "out of memory");
    j->rid = c->rx.h.rid;
    j->get = g;
    char *t = j->text;
    memcpy(t, g.ns, g.ns_len);
    t[g.ns_len] = '\0';
    j->get.ns = t;
    t += g.ns_len + 1;
    memcpy(t, g.key, g.key_len);
    t[g.key_len] = '\0';
    j->get.key = t;
    t += g.key_len + 1;
    memcpy(t, g.etag, g.etag_len);
    t[g.etag_len] = '\0';
    j->get.etag = t;
    j->next = NULL;
    j->conn = c;
    j->hot = -1;
    j->level = 0;
    j->since = p2p_now_ns();
    if (classify(s, c, j) != 0) {
        free(j);
        P2P_ADD(s->p, n_served_hot, 1);
        return send_error(c, c->rx.h.rid, P2P_HOT, "hot: ask your parent in the block's tree");
    }
    unsigned lv = j->level;
    pthread_t *spawn = NULL;
    pthread_mutex_lock(&s->lock);
    bool full = s->qlen >= P2P_SERVE_QUEUE;
    if (!full) {
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
        if (s->qtail[lv])
            s->qtail[lv]->next = j;
        else
            s->qhead[lv] = j;
        s->qtail[lv] = j;
        s->qlen++;
        pthread_cond_signal(&s->qcond[lv]);
        if (lv && s->idle[lv] == 0 && s->nrelays[lv] < P2P_RELAY_THREADS && !s->stopping)
            spawn = &s->relays[lv][s->nrelays[lv]++];
    }
    pthread_mutex_unlock(&s->lock);
    if (full) {
        if (j->hot >= 0) {
            pthread_mutex_lock(&s->lock);
            hot_leave(s, j);
            pthread_mutex_unlock(&s->lock);
        }
        free(j);
        P2P_ADD(s->p, n_served_busy, 1);
        return send_error(c, c->rx.h.rid, P2P_BUSY, "busy");
    }
    if (spawn && worker_start(s, lv, spawn) != 0) {
        /* the level's other workers (there is one at least once this failed for the first)
           take the job; without any, the requester's deadline sends it to the origin */
        log_warn("p2p: cannot start a relay worker of depth %u", lv);
        pthread_mutex_lock(&s->lock);
        s->nrelays[lv]--;
        pthread_mutex_unlock(&s->lock);
    }
    return 0;
}

/* A frame head from C, by the state of its handshake. 0 or -errno (drop the connection). */
static int on_frame(struct p2p_server *s, struct sconn *c)
{
    struct p2p *p = s->p;
    const uint8_t *meta = c->rx.buf + P2P_HDR;
    uint32_t ml = c->rx.h.meta_len;
    switch (c->state) {
    case S_HELLO: {
        struct p2p_hello h;
        if (c->rx.h.type != P2P_HELLO || p2p_dec_hello(meta, ml, &h) != 0) {
            send_error(c, 0, P2P_BAD_REQUEST, "expected HELLO");
            return -EPROTO;
        }
        if (h.name[0]) {
            snprintf(c->peer, sizeof(c->peer), "%s", h.name);
            snprintf(c->name, sizeof(c->name), "%s", h.name);
        }
        c->members = h.members;
        p2p_note_members(p, NULL, h.name, h.members);
        if (p->auth && !h.auth) {
            P2P_ADD(p, n_err[PE_AUTH], 1);
            log_warn("p2p: '%s' has no key and this node requires one (g_tier_DadiP2PKeyFile): "
                     "refused",
                     c->peer);
            send_error(c, 0, P2P_DENIED, "authentication required (g_tier_DadiP2PKeyFile)");
            return -EACCES;
        }
        struct p2p_hello ok;
        p2p_hello_fill(p, &ok);
        memcpy(c->nc, h.nonce, P2P_NONCE);
        p2p_nonce(c->ns);
        memcpy(ok.nonce, c->ns, P2P_NONCE);
        if (p->auth)
            p2p_proof(p, true, c->nc, c->ns, ok.proof);
        uint8_t f[P2P_HDR + 128 + P2P_MAX_NAME];
        int rc = send_frame(c, f, p2p_enc_hello(f, P2P_HELLO_OK, 0, &ok), NULL, 0);
        c->state = p->auth ? S_AUTH : S_READY;
        return rc;
    }
    case S_AUTH: {
        uint8_t proof[P2P_PROOF], want[P2P_PROOF];
        if (c->rx.h.type != P2P_AUTH || p2p_dec_auth(meta, ml, proof) != 0) {
            send_error(c, 0, P2P_BAD_REQUEST, "expected AUTH");
            return -EPROTO;
        }
        p2p_proof(p, false, c->nc, c->ns, want);
        if (!p2p_proof_ok(want, proof)) {
            P2P_ADD(p, n_err[PE_AUTH], 1);
            log_warn("p2p: '%s' does not hold this node's key: authentication failed, refused",
                     c->peer);
            send_error(c, 0, P2P_DENIED, "authentication failed");
            return -EACCES;
        }
        c->state = S_READY;
        return 0;
    }
    case S_READY:
        if (c->rx.h.type == P2P_GET)
            return queue_get(s, c);
        send_error(c, 0, P2P_BAD_REQUEST, "unexpected frame");
        return -EPROTO;
    }
    return -EPROTO;
}

static void accept_all(struct p2p_server *s)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("p2p: accept on %s: %s", s->addr, strerror(errno));
            return;
        }
        pthread_mutex_lock(&s->lock);
        bool full = s->nconns >= P2P_MAX_INBOUND;
        pthread_mutex_unlock(&s->lock);
        struct sconn *c = full ? NULL : calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        p2p_sock_setup(fd);
        c->s = s;
        c->fd = fd;
        c->refs = 1;
        pthread_mutex_init(&c->send_lock, NULL);
        char ip[64] = "?";
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "%s", ip);
        pthread_mutex_lock(&s->lock);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        pthread_mutex_unlock(&s->lock);
        P2P_ADD(s->p, n_conns_in, 1);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            sconn_put(c);
    }
}

static void *server_main(void *arg)
{
    struct p2p_server *s = arg;
    struct epoll_event ev[64];
    for (;;) {
        int n = epoll_wait(s->epfd, ev, 64, P2P_PENDING_MS);
        if (n < 0 && errno != EINTR) {
            log_error("p2p: epoll_wait: %s", strerror(errno));
            break;
        }
        pulse(s);
        for (int i = 0; i < n; i++) {
            void *ptr = ev[i].data.ptr;
            if (ptr == &s->wake) {
                pthread_mutex_lock(&s->lock);
                bool stop = s->stopping;
                pthread_mutex_unlock(&s->lock);
                if (stop)
                    return NULL;
                continue;
            }
            if (ptr == &s->lfd) {
                accept_all(s);
                continue;
            }
            struct sconn *c = ptr;
            int rc;
            for (;;) {
                rc = p2p_rx_head(c->fd, &c->rx);
                if (rc <= 0)
                    break;
                rc = on_frame(s, c);
                p2p_rx_reset(&c->rx);
                if (rc)
                    break;
            }
            if (rc == -EPROTONOSUPPORT) {
                log_warn("p2p: '%s' speaks protocol version %u, this node %u: refused", c->peer,
                         (unsigned)c->rx.h.version, (unsigned)P2P_VERSION);
                char msg[64];
                snprintf(msg, sizeof(msg), "this node speaks version %u", (unsigned)P2P_VERSION);
                send_error(c, 0, P2P_BAD_REQUEST, msg);
            } else if (rc < 0 && rc != -ECONNRESET && rc != -EACCES) {
                log_debug("p2p: connection from '%s': %s", c->peer, strerror(-rc));
            }
            if (rc < 0) {
                epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
                shutdown(c->fd, SHUT_RDWR);
                sconn_put(c);
            }
        }
    }
    return NULL;
}

int p2p_server_start(struct p2p *p, struct cache *serve, const char *ip, uint16_t port, char *err,
                     size_t errlen)
{
    struct p2p_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->p = p;
    s->cache = serve;
    s->lfd = s->epfd = s->wake = -1;
    pthread_mutex_init(&s->lock, NULL);
    for (unsigned l = 0; l < P2P_TREE_LEVELS; l++)
        pthread_cond_init(&s->qcond[l], NULL);
    pthread_mutex_init(&s->olock, NULL);
    pthread_cond_init(&s->ocond, NULL);
    snprintf(s->addr, sizeof(s->addr), strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, (unsigned)port);
    p->server = s;
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = p2p_addr(ip, port, &ss, &sl);
    if (rc) {
        snprintf(err, errlen, "g_tier_DadiP2PIP: '%s' is not an IP address", ip);
        p2p_server_stop(p);
        return rc;
    }
    s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->lfd < 0 || setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(s->lfd, (struct sockaddr *)&ss, sl) != 0 || listen(s->lfd, 1024) != 0) {
        rc = -errno;
        snprintf(err, errlen, "g_tier_DadiP2PPort: cannot listen on %s: %s", s->addr,
                 strerror(-rc));
        p2p_server_stop(p);
        return rc;
    }
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event el = {.events = EPOLLIN, .data.ptr = &s->lfd};
    struct epoll_event ew = {.events = EPOLLIN, .data.ptr = &s->wake};
    if (s->epfd < 0 || s->wake < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &el) != 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake, &ew) != 0) {
        rc = -errno;
        snprintf(err, errlen, "p2p: cannot start the server: %s", strerror(-rc));
        p2p_server_stop(p);
        return rc;
    }
    for (unsigned i = 0; serve && i < P2P_SERVE_THREADS; i++) {
        if (worker_start(s, 0, &s->workers[i]) != 0) {
            snprintf(err, errlen, "p2p: cannot start the server's workers");
            p2p_server_stop(p);
            return -EAGAIN;
        }
        s->nworkers++;
    }
    /* An agent has no workers: every GET is answered NOT_SERVING from the connection thread. */
    if (pthread_create(&s->thread, NULL, server_main, s) != 0) {
        snprintf(err, errlen, "p2p: cannot start the server");
        p2p_server_stop(p);
        return -EAGAIN;
    }
    s->thread_started = true;
    log_info("p2p: serving %s on %s", serve ? "this node's cache" : "nothing (an agent)", s->addr);
    return 0;
}

void p2p_server_stop(struct p2p *p)
{
    struct p2p_server *s = p->server;
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    for (unsigned l = 0; l < P2P_TREE_LEVELS; l++)
        pthread_cond_broadcast(&s->qcond[l]);
    pthread_mutex_unlock(&s->lock);
    if (s->thread_started) {
        uint64_t one = 1;
        if (write(s->wake, &one, sizeof(one)) < 0)
            log_warn("p2p: cannot wake the server thread: %s", strerror(errno));
        pthread_join(s->thread, NULL);
    }
    /* Workers finish the job they run (their sends end at P2P_SEND_MS at worst). */
    pthread_mutex_lock(&s->lock);
    for (struct sconn *c = s->conns; c; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    /* no job is queued any more: nrelays is stable */
    for (unsigned l = 1; l < P2P_TREE_LEVELS; l++)
        for (unsigned i = 0; i < s->nrelays[l]; i++)
            pthread_join(s->relays[l][i], NULL);
    for (unsigned i = 0; i < s->nw; i++) {
        free(s->wlist[i]->buf);
        free(s->wlist[i]);
    }
    for (unsigned l = 0; l < P2P_TREE_LEVELS; l++) {
        while (s->qhead[l]) {
            struct sjob *j = s->qhead[l];
            s->qhead[l] = j->next;
            sconn_put(j->conn);
            free(j);
        }
    }
    /* The connection thread's references. */
    for (;;) {
        pthread_mutex_lock(&s->lock);
        struct sconn *c = s->conns;
        pthread_mutex_unlock(&s->lock);
        if (c == NULL)
            break;
        sconn_put(c);
    }
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->wake >= 0)
        close(s->wake);
    pthread_mutex_destroy(&s->lock);
    for (unsigned l = 0; l < P2P_TREE_LEVELS; l++)
        pthread_cond_destroy(&s->qcond[l]);
    pthread_mutex_destroy(&s->olock);
    pthread_cond_destroy(&s->ocond);
    free(s);
    p->server = NULL;
}
