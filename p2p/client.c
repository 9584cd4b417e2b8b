/* p2p/client.c - requests to peers: connections, pipelined GETs, their answers, deadlines and
 * back-off.
 *
 * A peer has up to P2P_CONNS_PER_PEER long-lived connections, opened on demand by the thread
 * that needs one (connect, HELLO, HELLO_OK, AUTH: all with deadlines) and then read by the one
 * receive thread (epoll over every outbound connection). A call is one GET: registered on its
 * connection's pending list, then sent; the receive thread finds it by request id and reads each
 * DATA frame's CRCs and bytes straight into the call's buffers (no intermediate copy), marking
 * each block done as its last byte arrives; the caller waits for the blocks it needs, in order,
 * on the call's condition variable, up to the call's deadline.
 *
 * Deadlines come from what the peer has shown (Kraken's piece timeouts are a minimum plus a
 * per-MiB term): a smoothed time per MiB and its variation, as TCP estimates its retransmission
 * timeout, times the MiB asked for, plus a floor. A call that misses its deadline closes its
 * connection (a stalled peer: whatever it sends later is not waited for) and puts the peer into
 * back-off, as does a refused connection, a reset, a protocol error, a failed authentication
 * or a block whose CRCs do not verify; back-off doubles from P2P_BACKOFF_MIN_MS to
 * P2P_BACKOFF_MAX_MS while the failures go on, and the first call after it is the probe. A busy
 * peer or a stale object is no failure of the peer's. Whatever fails, the caller reads the
 * origin instead (p2p.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "p2p/p2p_i.h"
#include "util/log.h"

#define MiB               (1024.0 * 1024.0)
#define DEADLINE_FLOOR_NS 500000000ull /* every call gets at least this */
#define RTO_INITIAL       2.0          /* s per MiB before the peer has answered anything */
#define RTO_MIN           0.05
#define RTO_MAX           10.0
#define DISCARD_BYTES     (64u << 10)

struct p2p_conn {
    struct p2p *p;
    struct p2p_peer *peer;
    int fd;
    unsigned refs; /* atomic: the peer's slot, the receive thread's, each call's and sender's */
    pthread_mutex_t lock;
    pthread_mutex_t send_lock;
    /* conn lock */
    struct p2p_call *pending;
    unsigned npending;
    bool dead;
    int dead_err;
    struct p2p_call *cur; /* the call the current DATA frame's bytes go to; NULL: discard */
    struct p2p_want *cur_want;
    uint8_t *data_dst;
    uint32_t data_left; /* of the current DATA frame */
    bool in_data, frame_last;
    bool rx_done;                 /* the receive thread let go of it (p->clock) */
    struct p2p_conn *next, *prev; /* p->conns (p->clock) */
    /* receive thread only */
    struct p2p_rx rx;
};

static void conn_put(struct p2p_conn *c)
{
    if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    struct p2p *p = c->p;
    pthread_mutex_lock(&p->clock);
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&p->clock);
    close(c->fd);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->send_lock);
    P2P_SUB(c->p, n_conns_out, 1);
    p2p_peer_put(c->p, c->peer);
    free(c);
}

static void conn_get(struct p2p_conn *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
}

/* The connection failed (ERR): no new call goes on it, the pending ones fail, its slot at the
 * peer is freed and the socket shut down (a sender blocked on it wakes, the receive thread
 * sees the end and drops its reference). Idempotent. */
static void conn_fail(struct p2p_conn *c, int err)
{
    struct p2p_peer *peer = c->peer;
    bool was_listed = false;
    pthread_mutex_lock(&peer->lock);
    for (unsigned i = 0; i < peer->nconns; i++) {
        if (peer->conns[i] == c) {
            peer->conns[i] = peer->conns[--peer->nconns];
            peer->conns[peer->nconns] = NULL;
            was_listed = true;
            break;
        }
    }
    pthread_mutex_unlock(&peer->lock);
    pthread_mutex_lock(&c->lock);
    if (!c->dead) {
        c->dead = true;
        c->dead_err = err;
        for (struct p2p_call *k = c->pending; k; k = k->next) {
            k->err = err;
            k->pending = false;
            pthread_cond_broadcast(&k->cond);
        }
        c->pending = NULL;
        __atomic_store_n(&c->npending, 0, __ATOMIC_RELAXED);
        c->cur = NULL;
        shutdown(c->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&c->lock);
    if (was_listed)
        conn_put(c);
}

/* ---- latency and back-off ------------------------------------------------------------------- */

static double unit_of(uint64_t bytes)
{
    double u = (double)bytes / MiB;
    return u < 1.0 ? 1.0 : u;
}

bool p2p_peer_skipped(struct p2p_peer *peer)
{
    pthread_mutex_lock(&peer->lock);
    bool skip = peer->gone ||
                (peer->state == PEER_DOWN && (p2p_now_ns() < peer->down_until || peer->probing));
    pthread_mutex_unlock(&peer->lock);
    return skip;
}

uint64_t p2p_deadline_ns(struct p2p_peer *peer, uint64_t bytes)
{
    pthread_mutex_lock(&peer->lock);
    double per = peer->srtt > 0 ? peer->srtt + 4 * peer->rttvar : RTO_INITIAL;
    pthread_mutex_unlock(&peer->lock);
    if (per < RTO_MIN)
        per = RTO_MIN;
    if (per > RTO_MAX)
        per = RTO_MAX;
    return DEADLINE_FLOOR_NS + (uint64_t)(per * unit_of(bytes) * 1e9);
}

static void peer_ok(struct p2p *p, struct p2p_peer *peer, uint64_t elapsed_ns, uint64_t bytes)
{
    double s = (double)elapsed_ns / 1e9 / unit_of(bytes);
    bool back = false;
    pthread_mutex_lock(&peer->lock);
    if (peer->srtt == 0) {
        peer->srtt = s;
        peer->rttvar = s / 2;
    } else {
        double d = s > peer->srtt ? s - peer->srtt : peer->srtt - s;
        peer->rttvar = 0.75 * peer->rttvar + 0.25 * d;
        peer->srtt = 0.875 * peer->srtt + 0.125 * s;
    }
    back = peer->state == PEER_DOWN;
    peer->state = PEER_UP;
    peer->fails = 0;
    peer->probing = false;
    pthread_mutex_unlock(&peer->lock);
    if (back)
        log_info("p2p: peer '%s' answers again", peer->name);
    histo_observe(&p->latency, elapsed_ns / 1000);
}

static const char *const err_names[PE__COUNT] = {
    "connect", "timeout", "reset", "protocol", "corrupt", "refused", "busy", "auth", "stale",
};

void p2p_peer_fail(struct p2p *p, struct p2p_peer *peer, enum p2p_err kind, const char *why)
{
    P2P_ADD(p, n_err[kind], 1);
    P2P_ADD(peer, errors, 1);
    bool backoff = kind != PE_BUSY && kind != PE_STALE;
    bool went_down = false;
    unsigned ms = 0;
    pthread_mutex_lock(&peer->lock);
    snprintf(peer->last_error, sizeof(peer->last_error), "%s: %s", err_names[kind], why ? why : "");
    /* Calls in flight when a peer fails all fail at once: one outage, one step of back-off. It
       grows only when the peer fails again after it was up, or when the probe fails. */
    if (backoff && peer->state == PEER_DOWN && p2p_now_ns() < peer->down_until)
        backoff = false;
    if (backoff) {
        if (peer->fails < 16)
            peer->fails++;
        ms = P2P_BACKOFF_MIN_MS << (peer->fails - 1 < 5 ? peer->fails - 1 : 5);
        if (ms > P2P_BACKOFF_MAX_MS)
            ms = P2P_BACKOFF_MAX_MS;
        went_down = peer->state != PEER_DOWN;
        peer->state = PEER_DOWN;
        peer->probing = false;
        peer->down_until = p2p_now_ns() + (uint64_t)ms * 1000000ull;
    }
    pthread_mutex_unlock(&peer->lock);
    if (went_down)
        log_warn("p2p: peer '%s' failed (%s: %s); its blocks come from the origin for %u ms",
                 peer->name, err_names[kind], why ? why : "", ms);
    else
        log_debug("p2p: peer '%s': %s: %s", peer->name, err_names[kind], why ? why : "");
}

/* ---- connecting ----------------------------------------------------------------------------- */

/* Opens a connection to PEER and shakes hands. 0 with *OUT, or -errno with KIND and WHY set. */
static int conn_open(struct p2p *p, struct p2p_peer *peer, struct p2p_conn **out,
                     enum p2p_err *kind, char *why, size_t whylen)
{
    *out = NULL;
    *kind = PE_CONNECT;
    int fd = socket(peer->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -errno;
    }
    p2p_sock_setup(fd);
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&peer->addr, peer->alen) != 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
        } else {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            int r = poll(&pf, 1, P2P_CONNECT_MS);
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (r == 0)
                rc = -ETIMEDOUT;
            else if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
                rc = -errno;
            else if (soerr)
                rc = -soerr;
        }
    }
    if (rc) {
        snprintf(why, whylen, "connect: %s", strerror(-rc));
        close(fd);
        return rc;
    }

    /* HELLO, HELLO_OK, AUTH */
    uint64_t deadline = p2p_now_ns() + (uint64_t)P2P_HANDSHAKE_MS * 1000000ull;
    struct p2p_hello h;
    uint8_t frame[P2P_HDR + 128 + P2P_MAX_NAME];
    p2p_hello_fill(p, &h);
    p2p_nonce(h.nonce);
    uint8_t nc[P2P_NONCE];
    memcpy(nc, h.nonce, P2P_NONCE);
    struct iovec iov = {frame, p2p_enc_hello(frame, P2P_HELLO, 0, &h)};
    rc = p2p_send_all(fd, &iov, 1, P2P_HANDSHAKE_MS);
    struct p2p_rx *rx = rc ? NULL : malloc(sizeof(*rx));
    if (rc == 0 && rx == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        p2p_rx_reset(rx);
        rc = p2p_rx_head_wait(fd, rx, deadline);
        rc = rc < 0 ? rc : 0;
    }
    if (rc) {
        *kind = rc == -ETIMEDOUT ? PE_TIMEOUT : rc == -EPROTONOSUPPORT ? PE_PROTOCOL : PE_RESET;
        snprintf(why, whylen, "handshake: %s%s", strerror(-rc),
                 rc == -EPROTONOSUPPORT ? " (it speaks another version of the protocol)" : "");
        goto fail;
    }
    if (rx->h.type == P2P_ERROR) {
        int st = 0;
        char msg[P2P_MAX_MSG + 1] = "";
        p2p_dec_error(rx->buf + P2P_HDR, rx->h.meta_len, &st, msg, sizeof(msg));
        *kind = strstr(msg, "authentication") ? PE_AUTH : PE_REFUSED;
        snprintf(why, whylen, "it refused us: %s", msg);
        rc = -ECONNREFUSED;
        goto fail;
    }
    struct p2p_hello ok;
    if (rx->h.type != P2P_HELLO_OK || p2p_dec_hello(rx->buf + P2P_HDR, rx->h.meta_len, &ok) != 0) {
        *kind = PE_PROTOCOL;
        snprintf(why, whylen, "handshake: a malformed answer");
        rc = -EPROTO;
        goto fail;
    }
    if (p->auth) {
        uint8_t want[P2P_PROOF];
        p2p_proof(p, true, nc, ok.nonce, want);
        if (!ok.auth || !p2p_proof_ok(want, ok.proof)) {
            *kind = PE_AUTH;
            snprintf(why, whylen, "%s",
                     ok.auth ? "it does not hold our key (authentication failed)"
                             : "it has no key (g_tier_DadiP2PKeyFile)");
            rc = -EACCES;
            goto fail;
        }
        uint8_t proof[P2P_PROOF];
        p2p_proof(p, false, nc, ok.nonce, proof);
        iov = (struct iovec){frame, p2p_enc_auth(frame, proof)};
        rc = p2p_send_all(fd, &iov, 1, P2P_HANDSHAKE_MS);
        if (rc) {
            *kind = PE_RESET;
            snprintf(why, whylen, "handshake: %s", strerror(-rc));
            goto fail;
        }
    }
    pthread_mutex_lock(&peer->lock);
    peer->role = ok.role;
    peer->block_size = ok.block_size;
    pthread_mutex_unlock(&peer->lock);
    p2p_note_members(p, peer, ok.name, ok.members);
    if (ok.role == P2P_ROLE_AGENT) {
        p2p_peer_is_agent(p, peer);
        *kind = PE_REFUSED;
        snprintf(why, whylen, "it is an agent (g_tier_DadiRootClientType=2): it serves nothing");
        rc = -ECONNREFUSED;
        goto fail;
    }
    free(rx);

    struct p2p_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    c->p = p;
    c->peer = peer;
    c->fd = fd;
    c->refs = 2; /* the peer's slot and the receive thread's */
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->send_lock, NULL);
    pthread_mutex_lock(&p->mlock);
    peer->refs++;
    pthread_mutex_unlock(&p->mlock);
    P2P_ADD(p, n_conns_out, 1);
    pthread_mutex_lock(&p->clock);
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    pthread_mutex_unlock(&p->clock);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(p->rx_epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        snprintf(why, whylen, "epoll: %s", strerror(errno));
        c->refs = 1;
        conn_put(c);
        return -EIO;
    }
    *out = c;
    return 0;
fail:
    free(rx);
    close(fd);
    return rc;
}

/* A connection to PEER to send a call on, with a reference; opens one if need be. 0, or -errno
 * (the peer is in back-off, or cannot be had now). */
static int conn_for(struct p2p *p, struct p2p_peer *peer, struct p2p_conn **out, bool *probe)
{
    uint64_t wait_until = p2p_now_ns() + (uint64_t)(P2P_CONNECT_MS + P2P_HANDSHAKE_MS) * 1000000ull;
    bool no_more = false; /* an extra connection failed: make do with those there are */
    pthread_mutex_lock(&peer->lock);
    for (;;) {
        if (peer->gone) {
            pthread_mutex_unlock(&peer->lock);
            return -ENOENT;
        }
        if (peer->state == PEER_DOWN) {
            /* In back-off; once it is over, one call probes the peer and the others go to the
               origin until the probe has answered: a dead peer costs one deadline a period,
               not one per block. */
            if (p2p_now_ns() < peer->down_until || (peer->probing && !*probe)) {
                pthread_mutex_unlock(&peer->lock);
                return -EAGAIN;
            }
            if (!*probe) {
                peer->probing = true;
                *probe = true;
            }
        }
        struct p2p_conn *best = NULL;
        unsigned least = ~0u;
        for (unsigned i = 0; i < peer->nconns; i++) {
            unsigned n = __atomic_load_n(&peer->conns[i]->npending, __ATOMIC_RELAXED);
            if (n < least) {
                least = n;
                best = peer->conns[i];
            }
        }
        bool want_more =
            !best || (!no_more && least >= P2P_PIPELINE && peer->nconns < P2P_CONNS_PER_PEER);
        if (best && (!want_more || peer->connecting)) {
            conn_get(best);
            pthread_mutex_unlock(&peer->lock);
            *out = best;
            return 0;
        }
        if (peer->connecting) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
            if (now >= wait_until) {
                pthread_mutex_unlock(&peer->lock);
                return -ETIMEDOUT;
            }
            ts.tv_sec = (time_t)(wait_until / 1000000000ull);
            ts.tv_nsec = (long)(wait_until % 1000000000ull);
            pthread_cond_timedwait(&peer->cond, &peer->lock, &ts);
            continue;
        }
        peer->connecting = true;
        pthread_mutex_unlock(&peer->lock);
        struct p2p_conn *c = NULL;
        enum p2p_err kind;
        char why[160];
        int rc = conn_open(p, peer, &c, &kind, why, sizeof(why));
        pthread_mutex_lock(&peer->lock);
        peer->connecting = false;
        pthread_cond_broadcast(&peer->cond);
        if (rc == 0 && peer->gone) {
            pthread_mutex_unlock(&peer->lock);
            conn_fail(c, -ENOENT); /* not listed: its own reference is the slot's */
            conn_put(c);           /* the slot's */
            return -ENOENT;
        }
        if (rc == 0) {
            peer->conns[peer->nconns++] = c;
            if (peer->state == PEER_UNKNOWN)
                peer->state = PEER_UP;
            continue; /* pick it (or a less busy one) */
        }
        if (best != NULL && peer->nconns > 0) {
            /* only the extra connection failed: no back-off, use those there are */
            log_debug("p2p: peer '%s': another connection failed: %s", peer->name, why);
            no_more = true;
            continue;
        }
        pthread_mutex_unlock(&peer->lock);
        p2p_peer_fail(p, peer, kind, why);
        return rc;
    }
}

/* ---- calls ---------------------------------------------------------------------------------- */

int p2p_call_start(struct p2p *p, struct p2p_call *c)
{
    p2p_cond_init(&c->cond);
    c->conn = NULL;
    c->err = 0;
    c->last = false;
    c->pending = false;
    for (unsigned i = 0; i < c->nwant; i++) {
        c->want[i].got = 0;
        c->want[i].status = -1;
        c->want[i].done = false;
        c->want[i].verified = false;
    }
    struct p2p_conn *conn;
    c->probe = false;
    int rc = conn_for(p, c->peer, &conn, &c->probe);
    if (rc)
        return rc;
    c->conn = conn;
    c->rid = __atomic_add_fetch(&p->next_rid, 1, __ATOMIC_RELAXED);
    c->started = p2p_now_ns();
    c->patience = p2p_deadline_ns(c->peer, c->bytes);
    c->deadline = c->started + c->patience;
    pthread_mutex_lock(&conn->lock);
    if (conn->dead) {
        rc = conn->dead_err ? conn->dead_err : -ECONNRESET;
        pthread_mutex_unlock(&conn->lock);
        return rc;
    }
    c->next = conn->pending;
    conn->pending = c;
    __atomic_add_fetch(&conn->npending, 1, __ATOMIC_RELAXED);
    c->pending = true;
    pthread_mutex_unlock(&conn->lock);

    uint8_t frame[P2P_HDR + 72 + P2P_MAX_NS + P2P_MAX_KEY + P2P_MAX_ETAG];
    struct iovec iov = {frame, p2p_enc_get(frame, c->rid, &c->get)};
    P2P_ADD(p, n_requests, 1);
    P2P_ADD(c->peer, requests, 1);
    pthread_mutex_lock(&conn->send_lock);
    rc = p2p_send_all(conn->fd, &iov, 1, P2P_SEND_MS);
    pthread_mutex_unlock(&conn->send_lock);
    if (rc) {
        conn_fail(conn, rc); /* fails C too */
        return rc;
    }
    return 0;
}

int p2p_call_wait(struct p2p *p, struct p2p_call *c, unsigned i)
{
    (void)p;
    struct p2p_conn *conn = c->conn;
    struct p2p_want *w = &c->want[i];
    int rc = 0;
    pthread_mutex_lock(&conn->lock);
    while (!w->done && !c->err && !c->last) {
        /* the deadline may move on while we wait (a PENDING frame) */
        struct timespec ts = {(time_t)(c->deadline / 1000000000ull),
                              (long)(c->deadline % 1000000000ull)};
        if (pthread_cond_timedwait(&c->cond, &conn->lock, &ts) == ETIMEDOUT &&
            p2p_now_ns() >= c->deadline) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    if (!w->done && rc == 0)
        rc = c->err ? c->err : -EPROTO; /* the LAST frame came without this block */
    pthread_mutex_unlock(&conn->lock);
    return rc;
}

void p2p_call_end(struct p2p *p, struct p2p_call *c, int outcome)
{
    struct p2p_conn *conn = c->conn;
    if (conn) {
        pthread_mutex_lock(&conn->lock);
        if (c->pending) {
            for (struct p2p_call **pp = &conn->pending; *pp; pp = &(*pp)->next) {
                if (*pp == c) {
                    *pp = c->next;
                    __atomic_sub_fetch(&conn->npending, 1, __ATOMIC_RELAXED);
                    break;
                }
            }
            c->pending = false;
        }
        if (conn->cur == c)
            conn->cur = NULL; /* the rest of the frame is read and dropped */
        pthread_mutex_unlock(&conn->lock);
        if (outcome == PE_TIMEOUT)
            conn_fail(conn, -ETIMEDOUT); /* a stalled peer: nothing more is waited for on it */
    }
    if (c->probe && (outcome == PE__COUNT || outcome == PE_BUSY || outcome == PE_STALE)) {
        /* the probe ended without saying whether the peer is back: let another try */
        pthread_mutex_lock(&c->peer->lock);
        c->peer->probing = false;
        pthread_mutex_unlock(&c->peer->lock);
    }
    if (outcome == 0)
        peer_ok(p, c->peer, p2p_now_ns() - c->started, c->bytes);
    else if (outcome < PE__COUNT) {
        char why[96];
        if (outcome == PE_TIMEOUT)
            snprintf(why, sizeof(why), "no answer in %.0f ms",
                     (double)(c->deadline - c->started) / 1e6);
        else
            snprintf(why, sizeof(why), "%s",
                     outcome == PE_CORRUPT ? "a page failed its CRC"
                     : outcome == PE_BUSY  ? "it is busy"
                     : outcome == PE_STALE ? "it says the object changed"
                     : c->err              ? strerror(-c->err)
                                           : "a bad answer");
        p2p_peer_fail(p, c->peer, (enum p2p_err)outcome, why);
    }
    if (conn)
        conn_put(conn);
    c->conn = NULL;
    pthread_cond_destroy(&c->cond);
}

void p2p_peer_close(struct p2p *p, struct p2p_peer *peer)
{
    (void)p;
    for (;;) {
        pthread_mutex_lock(&peer->lock);
        peer->gone = true;
        struct p2p_conn *c = peer->nconns ? peer->conns[0] : NULL;
        if (c)
            conn_get(c);
        pthread_mutex_unlock(&peer->lock);
        if (c == NULL)
            return;
        conn_fail(c, -ENOENT);
        conn_put(c);
    }
}

/* ---- the receive thread --------------------------------------------------------------------- */

static struct p2p_call *find_call(struct p2p_conn *c, uint64_t rid)
{
    for (struct p2p_call *k = c->pending; k; k = k->next)
        if (k->rid == rid)
            return k;
    return NULL;
}

/* A DATA frame's head is in: aims the connection at where its bytes go. Conn lock held. 0 or
 * -EPROTO for an answer that does not fit what was asked. */
static int data_begin_locked(struct p2p_conn *c, const struct p2p_data *d, uint32_t data_len,
                             bool last)
{
    c->cur = NULL;
    c->cur_want = NULL;
    c->data_dst = NULL;
    c->data_left = data_len;
    c->frame_last = last;
    struct p2p_call *k = find_call(c, c->rx.h.rid);
    if (k == NULL)
        return 0; /* given up on: drop */
    /* Any frame of the call shows the peer alive and at work (a PENDING one: still fetching
       it from its origin or its parent): the call's deadline starts again, up to
       P2P_PENDING_MAX_MS in all. Only silence is a stall. */
    uint64_t now = p2p_now_ns(), cap = k->started + P2P_PENDING_MAX_MS * 1000000ull;
    uint64_t next = now + k->patience;
    if (next > k->deadline)
        k->deadline = next < cap ? next : cap > k->deadline ? cap : k->deadline;
    if (d->status == P2P_PENDING) {
        if (data_len)
            return -EPROTO;
        k->pendings++;
        pthread_cond_broadcast(&k->cond);
        return 0;
    }
    struct p2p_want *w = NULL;
    for (unsigned i = 0; i < k->nwant && !w; i++)
        if (k->want[i].index == d->index)
            w = &k->want[i];
    if (w == NULL || w->done)
        return -EPROTO;
    if (d->status != P2P_OK) {
        w->status = d->status;
        w->done = true;
        return 0;
    }
    uint32_t ps = k->get.page_size;
    if (d->page_size != ps || d->off < w->off || (d->off - w->off) % ps ||
        (uint64_t)d->off + data_len > (uint64_t)w->off + w->len || d->off - w->off != w->got)
        return -EPROTO;
    uint32_t first = (d->off - w->off) / ps;
    for (uint32_t i = 0; i < d->npages; i++) {
        const uint8_t *q = d->crcs + 8 * i;
        uint64_t v = 0;
        for (int b = 7; b >= 0; b--)
            v = v << 8 | q[b];
        w->crc[first + i] = v;
    }
    w->status = P2P_OK;
    w->hit = d->hit;
    c->cur = k;
    c->cur_want = w;
    c->data_dst = w->dst + (d->off - w->off);
    return 0;
}

/* The current DATA frame is all in. Conn lock held. */
static void data_end_locked(struct p2p_conn *c)
{
    struct p2p_call *k = c->cur;
    c->in_data = false;
    if (k) {
        struct p2p_want *w = c->cur_want;
        if (w && w->status == P2P_OK && w->got == w->len)
            w->done = true;
    }
    if (c->frame_last) {
        k = find_call(c, c->rx.h.rid);
        if (k)
            k->last = true;
    }
    if (k)
        pthread_cond_broadcast(&k->cond);
    c->cur = NULL;
    c->cur_want = NULL;
}

/* Reads what connection C has. 0 when it has nothing more now, -errno when it failed. */
static int conn_rx(struct p2p *p, struct p2p_conn *c)
{
    uint8_t *discard = p->rx_discard;
    for (;;) {
        if (!c->in_data) {
            int rc = p2p_rx_head(c->fd, &c->rx);
            if (rc <= 0)
                return rc;
            const uint8_t *meta = c->rx.buf + P2P_HDR;
            if (c->rx.h.type == P2P_DATA) {
                struct p2p_data d;
                if (p2p_dec_data(meta, c->rx.h.meta_len, c->rx.h.data_len, &d) != 0)
                    return -EPROTO;
                pthread_mutex_lock(&c->lock);
                rc = data_begin_locked(c, &d, c->rx.h.data_len, c->rx.h.flags & P2P_F_LAST);
                if (rc == 0) {
                    c->in_data = true;
                    if (c->data_left == 0)
                        data_end_locked(c);
                }
                pthread_mutex_unlock(&c->lock);
                if (rc)
                    return rc;
            } else if (c->rx.h.type == P2P_ERROR) {
                int st = 0;
                char msg[P2P_MAX_MSG + 1];
                if (p2p_dec_error(meta, c->rx.h.meta_len, &st, msg, sizeof(msg)) != 0)
                    return -EPROTO;
                if (c->rx.h.rid == 0) {
                    log_info("p2p: peer '%s' closes the connection: %s", c->peer->name, msg);
                    return -ECONNRESET;
                }
                pthread_mutex_lock(&c->lock);
                struct p2p_call *k = find_call(c, c->rx.h.rid);
                if (k) {
                    for (unsigned i = 0; i < k->nwant; i++) {
                        if (!k->want[i].done) {
                            k->want[i].status =
                                st > 0 && st <= P2P_STATUS_MAX ? st : P2P_BAD_REQUEST;
                            k->want[i].done = true;
                        }
                    }
                    k->last = true;
                    pthread_cond_broadcast(&k->cond);
                }
                pthread_mutex_unlock(&c->lock);
            } else {
                return -EPROTO;
            }
            p2p_rx_reset(&c->rx);
            continue;
        }
        pthread_mutex_lock(&c->lock);
        uint8_t *dst = c->cur ? c->data_dst : discard;
        size_t want = c->data_left;
        if (!c->cur && want > DISCARD_BYTES)
            want = DISCARD_BYTES;
        ssize_t r = recv(c->fd, dst, want, 0);
        if (r <= 0) {
            int e = r == 0 ? ECONNRESET : errno;
            pthread_mutex_unlock(&c->lock);
            if (r < 0 && e == EINTR)
                continue;
            if (r < 0 && (e == EAGAIN || e == EWOULDBLOCK))
                return 0;
            return -e;
        }
        c->data_left -= (uint32_t)r;
        if (c->cur) {
            c->data_dst += r;
            c->cur_want->got += (uint32_t)r;
        }
        if (c->data_left == 0) {
            data_end_locked(c);
            p2p_rx_reset(&c->rx);
        }
        pthread_mutex_unlock(&c->lock);
    }
}

static void *rx_main(void *arg)
{
    struct p2p *p = arg;
    struct epoll_event ev[64];
    for (;;) {
        int n = epoll_wait(p->rx_epfd, ev, 64, -1);
        if (n < 0 && errno != EINTR) {
            log_error("p2p: epoll_wait: %s", strerror(errno));
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == NULL) {
                pthread_mutex_lock(&p->tlock);
                bool stop = p->stopping;
                pthread_mutex_unlock(&p->tlock);
                if (stop)
                    return NULL;
                uint64_t v;
                if (read(p->rx_wake, &v, sizeof(v)) < 0) {
                    /* nothing to drain */
                }
                continue;
            }
            struct p2p_conn *c = ev[i].data.ptr;
            int rc = conn_rx(p, c);
            if (rc == 0)
                continue;
            bool quiet;
            pthread_mutex_lock(&c->lock);
            quiet = c->dead; /* we closed it (given up on, or the peer left) */
            pthread_mutex_unlock(&c->lock);
            if (!quiet) {
                enum p2p_err kind =
                    rc == -ECONNRESET || rc == -EPIPE || rc == -ETIMEDOUT ? PE_RESET : PE_PROTOCOL;
                char why[96];
                snprintf(why, sizeof(why), "%s",
                         rc == -EPROTO ? "an answer that does not fit "
                                         "the request"
                                       : strerror(-rc));
                p2p_peer_fail(p, c->peer, kind, why);
            }
            conn_fail(c, rc);
            epoll_ctl(p->rx_epfd, EPOLL_CTL_DEL, c->fd, NULL);
            pthread_mutex_lock(&p->clock);
            c->rx_done = true;
            pthread_mutex_unlock(&p->clock);
            conn_put(c);
        }
    }
}

int p2p_client_start(struct p2p *p)
{
    p->rx_discard = malloc(DISCARD_BYTES);
    if (p->rx_discard == NULL)
        return -ENOMEM;
    p->rx_epfd = epoll_create1(EPOLL_CLOEXEC);
    p->rx_wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->rx_epfd < 0 || p->rx_wake < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(p->rx_epfd, EPOLL_CTL_ADD, p->rx_wake, &ev) != 0)
        return -errno;
    int rc = pthread_create(&p->rx_thread, NULL, rx_main, p);
    if (rc)
        return -rc;
    p->rx_started = true;
    return 0;
}

void p2p_client_stop(struct p2p *p)
{
    if (p->rx_started) {
        uint64_t one = 1;
        if (write(p->rx_wake, &one, sizeof(one)) < 0)
            log_warn("p2p: cannot wake the receive thread: %s", strerror(errno));
        pthread_join(p->rx_thread, NULL);
        p->rx_started = false;
    }
    /* What the receive thread still watched: its references go with it. */
    for (;;) {
        struct p2p_conn *c = NULL;
        pthread_mutex_lock(&p->clock);
        for (struct p2p_conn *k = p->conns; k && !c; k = k->next)
            if (!k->rx_done)
                c = k;
        if (c)
            c->rx_done = true;
        pthread_mutex_unlock(&p->clock);
        if (c == NULL)
            break;
        conn_fail(c, -ESHUTDOWN);
        conn_put(c);
    }
}
