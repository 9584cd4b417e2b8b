/* p2p/p2p.c - the distributed cache's block source, membership and counters (p2p.h).
 *
 * The membership is an immutable snapshot (struct p2p_members: the parsed rootlist, the peer of
 * each node, the nodes that own blocks) swapped under p->mlock when the rootlist changes (every
 * reload_ms, or at p2p_reload) or when a peer turns out to be an agent; readers take a reference
 * and never wait for a reload. Peers outlive snapshots: a peer keeps its connections, back-off
 * and latency estimate across reloads for as long as it stays listed; one that leaves has its
 * connections closed (its calls fail over to the origin).
 *
 * Fetches (the block source):
 *   - fetch: a range of one or a few blocks; each block whose owner is a peer is one GET of the
 *     pages it needs (page-aligned, so that the bytes land in the caller's buffer when the range
 *     is), all sent before any is waited for; blocks this node owns, or that no node owns, come
 *     from the origin.
 *   - fetch_range (readahead, prefetch runs): one GET per owner for all the run's blocks it owns,
 *     sent at once to every owner; the blocks are handed to the sink in order as each arrives.
 *   - a block a peer fails to deliver (down, stalled past its deadline, reset, refusing, a page
 *     whose CRC does not verify) is read from the origin instead (BLK_FROM_FALLBACK: the
 *     tier_direct_read of the guide), and the peer goes into back-off (client.c). A peer that
 *     says the object changed is checked against the origin, which has the last word.
 *   - BLKREQ_LOCAL (this node serving a peer, or a warm-up here) goes to the origin directly.
 *
 * Who owns a block: the serving member with the highest p2p_score(seed, identity). A node that
 * is not in the rootlist owns nothing but still reads through the owners.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <xxhash.h>

#include "cache/cache.h"
#include "p2p/p2p_i.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/prom.h"

/* ---- peers and memberships ------------------------------------------------------------------ */

static struct p2p_peer *peer_new(const struct p2p_node *nd)
{
    struct p2p_peer *pe = calloc(1, sizeof(*pe));
    if (pe == NULL)
        return NULL;
    snprintf(pe->name, sizeof(pe->name), "%s", nd->name);
    if (p2p_addr(nd->ip, nd->port, &pe->addr, &pe->alen) != 0) {
        free(pe);
        return NULL;
    }
    pthread_mutex_init(&pe->lock, NULL);
    p2p_cond_init(&pe->cond);
    pe->role = -1;
    return pe;
}

/* The live peer named NAME, or a new one, with a reference. mlock held. */
static struct p2p_peer *peer_ref_locked(struct p2p *p, const struct p2p_node *nd)
{
    for (unsigned i = 0; i < p->npeers; i++) {
        struct p2p_peer *pe = p->peers[i];
        if (!pe->gone && strcmp(pe->name, nd->name) == 0) {
            pe->refs++;
            return pe;
        }
    }
    if (p->npeers == p->cappeers) {
        unsigned cap = p->cappeers ? 2 * p->cappeers : 16;
        struct p2p_peer **np = realloc(p->peers, cap * sizeof(*np));
        if (np == NULL)
            return NULL;
        p->peers = np;
        p->cappeers = cap;
    }
    struct p2p_peer *pe = peer_new(nd);
    if (pe == NULL)
        return NULL;
    pe->refs = 1;
    p->peers[p->npeers++] = pe;
    return pe;
}

static void peer_put_locked(struct p2p *p, struct p2p_peer *pe)
{
    if (--pe->refs > 0)
        return;
    for (unsigned i = 0; i < p->npeers; i++) {
        if (p->peers[i] == pe) {
            p->peers[i] = p->peers[--p->npeers];
            break;
        }
    }
    pthread_mutex_destroy(&pe->lock);
    pthread_cond_destroy(&pe->cond);
    free(pe);
}

void p2p_peer_put(struct p2p *p, struct p2p_peer *peer)
{
    pthread_mutex_lock(&p->mlock);
    peer_put_locked(p, peer);
    pthread_mutex_unlock(&p->mlock);
}

static int peer_role(struct p2p_peer *pe)
{
    pthread_mutex_lock(&pe->lock);
    int r = pe->role;
    pthread_mutex_unlock(&pe->lock);
    return r;
}

/* A snapshot of RL (moved in: RL is left empty) with this node at SELF. mlock held. NULL
 * without memory. */
static struct p2p_members *members_new_locked(struct p2p *p, struct p2p_rootlist *rl, int self)
{
    struct p2p_members *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->refs = 1;
    m->rl = *rl;
    memset(rl, 0, sizeof(*rl));
    m->self = self;
    m->loaded_unix = (uint64_t)time(NULL);
    unsigned n = m->rl.n;
    m->peer = calloc(n ? n : 1, sizeof(*m->peer));
    m->serving = calloc(n ? n : 1, sizeof(*m->serving));
    if (m->peer == NULL || m->serving == NULL)
        goto fail;
    for (unsigned i = 0; i < n; i++) {
        if ((int)i == self) {
            if (p->role != P2P_ROLE_AGENT)
                m->serving[m->nserving++] = i;
            continue;
        }
        m->peer[i] = peer_ref_locked(p, &m->rl.nodes[i]);
        if (m->peer[i] == NULL)
            goto fail;
        if (peer_role(m->peer[i]) != P2P_ROLE_AGENT)
            m->serving[m->nserving++] = i;
    }
    return m;
fail:
    for (unsigned i = 0; i < n; i++)
        if (m->peer && m->peer[i])
            peer_put_locked(p, m->peer[i]);
    *rl = m->rl;
    free(m->peer);
    free(m->serving);
    free(m);
    return NULL;
}

static void members_free(struct p2p *p, struct p2p_members *m)
{
    pthread_mutex_lock(&p->mlock);
    for (unsigned i = 0; i < m->rl.n; i++)
        if (m->peer[i])
            peer_put_locked(p, m->peer[i]);
    pthread_mutex_unlock(&p->mlock);
    p2p_rootlist_release(&m->rl);
    free(m->peer);
    free(m->serving);
    free(m);
}

struct p2p_members *p2p_members_get(struct p2p *p)
{
    pthread_mutex_lock(&p->mlock);
    struct p2p_members *m = p->members;
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&p->mlock);
    return m;
}

void p2p_members_put(struct p2p *p, struct p2p_members *m)
{
    if (m && __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
        members_free(p, m);
}

/* What block INDEX of (key, etag) is owned by: the identity of the first block of its span
 * (P2P_OWNER_BYTES of consecutive blocks), so that the owner of a sequential run fetches it from
 * the origin in one request, as a single node would, rather than block by block. */
void p2p_span_id(const struct p2p *p, const char *key, const char *etag, uint64_t index,
                 uint64_t id[2])
{
    uint64_t span = P2P_OWNER_BYTES / p->src.block_size ? P2P_OWNER_BYTES / p->src.block_size : 1;
    cache_block_id(p->ns, key, etag ? etag : "", index / span * span, id);
}

/* The node that owns ID (p2p_span_id) in M: an index into m->rl, or -1 when nobody serves. */
static int owner_of(const struct p2p_members *m, const uint64_t id[2])
{
    return p2p_owner(&m->rl, m->serving, m->nserving, id);
}

/* Who to ask for ID's block: its owner, or, while the owner is skipped (in back-off after a
 * failure), the node that owns the block once the owner leaves the rootlist: it fetches the
 * block from the origin once for everyone and keeps it, so a dead node costs the origin its
 * share once rather than once per reader. *MOVED is set when the owner was passed over. */
static int source_of(const struct p2p_members *m, const uint64_t id[2], bool *moved)
{
    int o = owner_of(m, id);
    *moved = false;
    if (o < 0 || o == m->self || m->peer[o] == NULL || !p2p_peer_skipped(m->peer[o]))
        return o;
    *moved = true;
    int next = p2p_owner_but(&m->rl, m->serving, m->nserving, id, o);
    return next >= 0 && (next == m->self || !p2p_peer_skipped(m->peer[next])) ? next : -2;
}

void p2p_owner_name(struct p2p *p, const char *key, const char *etag, uint64_t index, char *name,
                    size_t len)
{
    uint64_t id[2];
    p2p_span_id(p, key, etag, index, id);
    struct p2p_members *m = p2p_members_get(p);
    int o = owner_of(m, id);
    snprintf(name, len, "%s", o >= 0 ? m->rl.nodes[o].name : "");
    p2p_members_put(p, m);
}

/* A copy of RL's nodes (for a snapshot rebuilt without a reload). */
static int rootlist_copy(const struct p2p_rootlist *rl, struct p2p_rootlist *out)
{
    *out = *rl;
    out->nodes = malloc((rl->n ? rl->n : 1) * sizeof(*rl->nodes));
    if (out->nodes == NULL)
        return -ENOMEM;
    memcpy(out->nodes, rl->nodes, rl->n * sizeof(*rl->nodes));
    return 0;
}

void p2p_peer_is_agent(struct p2p *p, struct p2p_peer *peer)
{
    struct p2p_members *old = NULL;
    pthread_mutex_lock(&p->mlock);
    struct p2p_members *m = p->members;
    bool owns = false;
    for (unsigned k = 0; k < m->nserving && !owns; k++)
        owns = m->peer[m->serving[k]] == peer;
    struct p2p_rootlist rl;
    if (owns && rootlist_copy(&m->rl, &rl) == 0) {
        struct p2p_members *nm = members_new_locked(p, &rl, m->self);
        if (nm) {
            old = m;
            p->members = nm;
        } else {
            p2p_rootlist_release(&rl);
        }
    }
    pthread_mutex_unlock(&p->mlock);
    if (old) {
        log_info("p2p: peer '%s' is an agent (g_tier_DadiRootClientType=2): it owns no blocks",
                 peer->name);
        p2p_members_put(p, old);
    }
}

void p2p_note_members(struct p2p *p, struct p2p_peer *peer, const char *name, uint64_t theirs)
{
    struct p2p_members *m = p2p_members_get(p);
    if (peer == NULL) {
        for (unsigned i = 0; i < m->rl.n && name[0]; i++)
            if (m->peer[i] && strcmp(m->peer[i]->name, name) == 0)
                peer = m->peer[i];
    }
    uint64_t ours = m->rl.hash;
    if (peer) {
        pthread_mutex_lock(&peer->lock);
        bool changed = peer->members != theirs;
        peer->members = theirs;
        pthread_mutex_unlock(&peer->lock);
        if (changed && theirs != ours) {
            P2P_ADD(p, n_mismatches, 1);
            log_warn("p2p: peer '%s' has another membership than this node (rootlist hash "
                     "%016" PRIx64 ", ours %016" PRIx64 "): the rootlist must be the same on "
                     "every node, or blocks are fetched twice",
                     peer->name, theirs, ours);
        }
    } else if (theirs != ours && name[0]) {
        /* a node we do not list asks us: its rootlist lists us, ours not it */
        P2P_ADD(p, n_mismatches, 1);
        log_debug("p2p: '%s', not in our rootlist, reports membership %016" PRIx64, name, theirs);
    }
    p2p_members_put(p, m);
}

void p2p_hello_fill(struct p2p *p, struct p2p_hello *h)
{
    memset(h, 0, sizeof(*h));
    struct p2p_members *m = p2p_members_get(p);
    h->role = (uint8_t)p->role;
    h->auth = p->auth;
    h->block_size = p->src.block_size;
    h->members = m->rl.hash;
    if (m->self >= 0)
        snprintf(h->name, sizeof(h->name), "%s", m->rl.nodes[m->self].name);
    p2p_members_put(p, m);
}

/* ---- the rootlist --------------------------------------------------------------------------- */

/* Reads PATH (at most P2P_ROOTLIST_MAX_BYTES) into *TEXT (malloc'd). 0 or -errno. */
static int read_file(const char *path, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if (st.st_size > P2P_ROOTLIST_MAX_BYTES) {
        close(fd);
        return -EFBIG;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

struct warn_ctx {
    const char *path;
    bool log;
    unsigned count;
};

static void rootlist_warn(void *arg, unsigned line, const char *why)
{
    struct warn_ctx *w = arg;
    w->count++;
    if (w->log)
        log_warn("p2p: rootlist '%s' line %u skipped: %s", w->path, line, why);
}

/* Whether IP is an address of this machine (it can be bound). */
static bool is_local(const char *ip)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (p2p_addr(ip, 0, &ss, &sl) != 0)
        return false;
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = bind(fd, (struct sockaddr *)&ss, sl) == 0;
    close(fd);
    return ok;
}

static bool same_ip(const char *a, const char *b)
{
    struct sockaddr_storage x, y;
    socklen_t xl, yl;
    if (p2p_addr(a, 0, &x, &xl) != 0 || p2p_addr(b, 0, &y, &yl) != 0 || xl != yl)
        return false;
    return memcmp(&x, &y, xl) == 0;
}

/* This node's index in RL: by g_tier_DadiP2PIP, else the one entry with our port whose address
 * is this machine's. -1 when not in it; -EINVAL (with ERR) when several could be. */
static int find_self(struct p2p *p, const struct p2p_rootlist *rl, char *err, size_t errlen)
{
    int self = -1;
    for (unsigned i = 0; i < rl->n; i++) {
        const struct p2p_node *nd = &rl->nodes[i];
        if (nd->port != p->port)
            continue;
        bool mine = p->self_ip ? same_ip(nd->ip, p->self_ip) : is_local(nd->ip);
        if (!mine)
            continue;
        if (self >= 0) {
            snprintf(err, errlen,
                     "g_tier_DadiP2PIP: rootlist entries on lines %u and %u are both addresses of "
                     "this machine: set g_tier_DadiP2PIP to this node's",
                     rl->nodes[self].line, nd->line);
            return -EINVAL;
        }
        self = (int)i;
    }
    return self;
}

/* Loads the rootlist into a new snapshot. START: the first load (its problems fail the mount).
 * Returns 0 (and *CHANGED), or -errno with a reason in ERR (the membership is kept). */
/* The descriptors a membership of N nodes may need: two connections to each peer and two from
 * each, plus the mount's own (FUSE, cache files, the origin's connections). At start the soft
 * limit (ulimit -n) is raised to the hard one; a rootlist that needs more than the limit is
 * warned about, naming the fix. */
static void fd_budget(struct p2p *p, unsigned n, bool start)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (start && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            log_debug("p2p: open file limit raised from %llu to %llu", (unsigned long long)was,
                      (unsigned long long)rl.rlim_cur);
        else
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t need = 2ull * P2P_CONNS_PER_PEER * n + 512;
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur && n != p->fd_warned_n) {
        p->fd_warned_n = n;
        log_warn("p2p: the rootlist lists %u nodes: connections to and from them may take %llu "
                 "file descriptors, over this process's limit of %llu; raise it (ulimit -n, or "
                 "LimitNOFILE= of the service) or peers beyond it are read from the origin",
                 n, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
    }
}

static int load(struct p2p *p, bool start, bool *changed, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    *changed = false;
    int rc = read_file(p->rootlist_path, &text, &len);
    if (rc) {
        snprintf(err, errlen, "g_tier_DadiAddr: cannot read rootlist '%s': %s", p->rootlist_path,
                 rc == -EFBIG ? "larger than 1 MiB" : strerror(-rc));
        return rc;
    }
    uint64_t th = XXH3_64bits(text, len);
    struct warn_ctx w = {p->rootlist_path, false, 0};
    pthread_mutex_lock(&p->mlock);
    w.log = start || th != p->last_warned_hash;
    p->last_warned_hash = th;
    pthread_mutex_unlock(&p->mlock);
    struct p2p_rootlist rl;
    rc = p2p_rootlist_parse(text, len, &rl, rootlist_warn, &w);
    free(text);
    if (w.log && w.count)
        P2P_ADD(p, n_rootlist_errors, w.count);
    if (rc) {
        snprintf(err, errlen, "g_tier_DadiAddr: rootlist '%s': %s", p->rootlist_path,
                 strerror(-rc));
        return rc;
    }
    if (rl.n == 0 && !start) {
        snprintf(err, errlen, "rootlist '%s' lists no node", p->rootlist_path);
        return -ENODATA;
    }
    int self = find_self(p, &rl, err, errlen);
    if (self == -EINVAL) {
        if (start) {
            p2p_rootlist_release(&rl);
            return -EINVAL;
        }
        self = -1; /* keep the name we had, if it is still there */
        struct p2p_members *m = p2p_members_get(p);
        for (unsigned i = 0; m->self >= 0 && i < rl.n; i++)
            if (strcmp(rl.nodes[i].name, m->rl.nodes[m->self].name) == 0)
                self = (int)i;
        p2p_members_put(p, m);
    }

    pthread_mutex_lock(&p->mlock);
    struct p2p_members *old = p->members;
    if (old && old->rl.hash == rl.hash &&
        (old->self < 0
             ? self < 0
             : self >= 0 && strcmp(old->rl.nodes[old->self].name, rl.nodes[self].name) == 0)) {
        pthread_mutex_unlock(&p->mlock);
        p2p_rootlist_release(&rl);
        return 0;
    }
    struct p2p_members *m = members_new_locked(p, &rl, self);
    if (m == NULL) {
        pthread_mutex_unlock(&p->mlock);
        p2p_rootlist_release(&rl);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    p->members = m;
    pthread_mutex_unlock(&p->mlock);
    *changed = true;

    /* what changed, for the log; peers that left lose their connections (both lists are sorted
       by name: one merge walk, not n x n comparisons, for a rootlist of thousands) */
    unsigned added = 0, removed = 0;
    for (unsigned i = 0, j = 0; old && (i < m->rl.n || j < old->rl.n);) {
        int cmp = i == m->rl.n     ? 1
                  : j == old->rl.n ? -1
                                   : strcmp(m->rl.nodes[i].name, old->rl.nodes[j].name);
        if (cmp < 0) {
            added++;
            i++;
        } else if (cmp > 0) {
            removed++;
            if (old->peer[j])
                p2p_peer_close(p, old->peer[j]);
            j++;
        } else {
            i++;
            j++;
        }
    }
    fd_budget(p, m->rl.n, old == NULL);
    if (old)
        log_info("p2p: rootlist '%s' reloaded: %u members (%u added, %u removed), hash "
                 "%016" PRIx64 ", this node %s%s%s",
                 p->rootlist_path, m->rl.n, added, removed, m->rl.hash, m->self >= 0 ? "'" : "",
                 m->self >= 0 ? m->rl.nodes[m->self].name : "not in it", m->self >= 0 ? "'" : "");
    p2p_members_put(p, old);
    return 0;
}

/* ---- the block source ----------------------------------------------------------------------- */

static void stats_block(struct p2p *p, enum blk_from f)
{
    if (f == BLK_FROM_PEER)
        P2P_ADD(p, n_peer_hits, 1);
    else if (f == BLK_FROM_PEER_ORIGIN)
        P2P_ADD(p, n_peer_misses, 1);
    else if (f == BLK_FROM_FALLBACK)
        P2P_ADD(p, n_fallbacks, 1);
    else
        P2P_ADD(p, n_local_owned, 1);
}

/* A call to PEER for blocks of RQ's object. */
static struct p2p_call *call_new(struct p2p *p, struct p2p_peer *peer, const struct blkreq *rq,
                                 unsigned nwant)
{
    struct p2p_call *c = calloc(1, sizeof(*c) + 0);
    if (c == NULL)
        return NULL;
    c->want = calloc(nwant, sizeof(*c->want));
    if (c->want == NULL) {
        free(c);
        return NULL;
    }
    c->peer = peer;
    const char *etag = rq->etag ? rq->etag : "";
    c->get = (struct p2p_get){
        .obj_size = rq->obj_size,
        .block_size = p->src.block_size,
        .page_size = p->page_size,
        .ns = p->ns,
        .key = rq->key,
        .etag = etag,
        .ns_len = (uint16_t)p->nslen,
        .key_len = (uint16_t)strnlen(rq->key, P2P_MAX_KEY),
        .etag_len = (uint16_t)strnlen(etag, P2P_MAX_ETAG),
    };
    return c;
}

static void call_free(struct p2p_call *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->nwant; i++)
        free(c->want[i].crc);
    free(c->want);
    free(c);
}

/* Adds block INDEX [off, off+len) (page-aligned) into DST to C. 0 or -ENOMEM. */
static int call_want(struct p2p *p, struct p2p_call *c, uint64_t index, uint32_t off, uint32_t len,
                     uint8_t *dst)
{
    struct p2p_want *w = &c->want[c->nwant];
    uint32_t np = (len + p->page_size - 1) / p->page_size;
    w->crc = np ? malloc(np * sizeof(uint64_t)) : NULL;
    if (np && w->crc == NULL)
        return -ENOMEM;
    w->index = index;
    w->off = off;
    w->len = len;
    w->dst = dst;
    c->nwant++;
    c->bytes += len;
    return 0;
}

/* Fixes C's GET for its wants: blocks [first, first+count) with their mask. */
static void call_seal(struct p2p *p, struct p2p_call *c, const struct blkreq *rq, bool partial)
{
    uint64_t lo = c->want[0].index, hi = lo;
    for (unsigned i = 1; i < c->nwant; i++) {
        if (c->want[i].index < lo)
            lo = c->want[i].index;
        if (c->want[i].index > hi)
            hi = c->want[i].index;
    }
    c->get.first = lo;
    c->get.count = (uint32_t)(hi - lo + 1);
    c->get.mask = 0;
    for (unsigned i = 0; i < c->nwant; i++)
        c->get.mask |= 1ull << (c->want[i].index - lo);
    if (partial) {
        c->get.off = c->want[0].off;
        c->get.len = c->want[0].len;
    }
    cache_block_id(p->ns, rq->key, c->get.etag, lo, c->get.id);
}

/* Whether want W's pages verify against the CRCs that came with them. */
static bool verified(struct p2p *p, const struct blkreq *rq, const struct p2p_want *w)
{
    uint64_t id[2];
    uint32_t ps = p->page_size;
    cache_block_id(p->ns, rq->key, rq->etag ? rq->etag : "", w->index, id);
    for (uint32_t o = 0; o < w->len; o += ps) {
        uint32_t n = w->len - o < ps ? w->len - o : ps;
        if (cache_page_crc(id, (w->off + o) / ps, w->dst + o, n) != w->crc[o / ps])
            return false;
    }
    return true;
}

/* want_outcome: the owner answered HOT (its fan-out of the block is full): not a failure of the
 * peer, nothing to note; ask the parent in the block's fan-out tree (relay_*). */
#define WANT_HOT (PE__COUNT + 1)

/* The outcome of want I of started call C: 0 and *FROM when its bytes are in and verified, else
 * the enum p2p_err to note (PE__COUNT: already noted), or WANT_HOT. */
static int want_outcome(struct p2p *p, const struct blkreq *rq, struct p2p_call *c, unsigned i,
                        enum blk_from *from)
{
    int rc = p2p_call_wait(p, c, i);
    if (rc == -ETIMEDOUT)
        return PE_TIMEOUT;
    if (rc)
        return PE__COUNT; /* the connection failed: the receive thread noted it */
    struct p2p_want *w = &c->want[i];
    switch (w->status) {
    case P2P_OK:
        break;
    case P2P_STALE:
        return PE_STALE;
    case P2P_BUSY:
        return PE_BUSY;
    case P2P_HOT:
        return (c->get.flags & P2P_GET_RELAY) ? PE_REFUSED : WANT_HOT;
    default:
        return PE_REFUSED;
    }
    if (!verified(p, rq, w)) {
        log_warn("p2p: peer '%s' sent block %" PRIu64 " of '%s' with pages that fail their CRC; "
                 "its bytes are dropped",
                 c->peer->name, w->index, rq->key);
        return PE_CORRUPT;
    }
    *from = w->hit ? BLK_FROM_PEER : BLK_FROM_PEER_ORIGIN;
    P2P_ADD(p, n_peer_bytes, w->len);
    P2P_ADD(c->peer, bytes, w->len);
    return 0;
}

#define FETCH_MAX_PIECES 64 /* blocks of one fetch round */

/* ---- hot blocks: the fan-out tree ----------------------------------------------------------
 *
 * An owner serves a block to at most p->fanout peers at once besides its children in the
 * block's fan-out tree (rootlist_i.h); any other peer is answered HOT and asks its parent in the
 * tree with RELAY. The parent reads the block through its own cache (a hit, a fill under way, or
 * a fetch: from the owner, which always serves its children, or from its own parent) and passes
 * it on, so that hundreds of nodes loading one file cost the owner a handful of sends and the
 * origin one copy. A node waits on its parent only, which ranks closer to the owner: the waits
 * form a tree and end at the owner; each depth of the tree is served by workers of its own
 * (server.c), so that waits for one block cannot hold up the workers another block's tree
 * needs. Peers whose membership differs from ours are not relayed through (their trees differ). */

/* This node's parent in the fan-out tree of block INDEX of RQ's object, or NULL (this node is its
 * owner, the cluster is too small, or the parent's membership is not ours). Not referenced: it
 * lives as long as M. */
static struct p2p_peer *tree_parent(struct p2p *p, struct p2p_members *m, const struct blkreq *rq,
                                    uint64_t index)
{
    uint64_t id[2];
    p2p_span_id(p, rq->key, rq->etag, index, id);
    int par =
        p2p_tree_parent(&m->rl, m->serving, m->nserving, id, m->self, p->seed, p->fanout, NULL);
    if (par < 0 || par == m->self || m->peer[par] == NULL)
        return NULL;
    struct p2p_peer *pe = m->peer[par];
    pthread_mutex_lock(&pe->lock);
    bool same = pe->members == 0 || pe->members == m->rl.hash;
    pthread_mutex_unlock(&pe->lock);
    return same ? pe : NULL;
}

/* Whether want I of call C was answered HOT (waits for its answer). */
static bool want_hot(struct p2p *p, struct p2p_call *c, unsigned i)
{
    return p2p_call_wait(p, c, i) == 0 && c->want[i].status == P2P_HOT;
}

/* A RELAY call for block INDEX [off, off+len) (page-aligned) into DST to this node's parent in the
 * block's tree, started. NULL when there is no parent or it cannot be asked now. */
static struct p2p_call *relay_start(struct p2p *p, struct p2p_members *m, const struct blkreq *rq,
                                    uint64_t index, uint32_t off, uint32_t len, uint8_t *dst,
                                    bool partial)
{
    struct p2p_peer *pe = tree_parent(p, m, rq, index);
    struct p2p_call *c = pe ? call_new(p, pe, rq, 1) : NULL;
    if (c == NULL)
        return NULL;
    if (call_want(p, c, index, off, len, dst) != 0) {
        call_free(c);
        return NULL;
    }
    call_seal(p, c, rq, partial);
    c->get.flags = P2P_GET_RELAY;
    if (p2p_call_start(p, c) != 0) {
        p2p_call_end(p, c, PE__COUNT);
        call_free(c);
        return NULL;
    }
    return c;
}

/* Adds block INDEX [off, off+len) into DST to the RELAY calls CALLS[*N..] (one per parent, at
 * most CAP), unstarted. Returns the call's index and sets *WANT, or -1. */
static int relay_add(struct p2p *p, struct p2p_members *m, const struct blkreq *rq,
                     struct p2p_call **calls, unsigned *n, unsigned from, unsigned cap,
                     uint64_t index, uint32_t len, uint8_t *dst, int *want)
{
    struct p2p_peer *pe = tree_parent(p, m, rq, index);
    if (pe == NULL)
        return -1;
    unsigned c = from;
    while (c < *n && calls[c]->peer != pe)
        c++;
    if (c == *n) {
        if (*n == cap || (calls[c] = call_new(p, pe, rq, FETCH_MAX_PIECES)) == NULL)
            return -1;
        calls[c]->get.flags = P2P_GET_RELAY;
        (*n)++;
    }
    *want = (int)calls[c]->nwant;
    return call_want(p, calls[c], index, 0, len, dst) == 0 ? (int)c : -1;
}

/* Reads [off, off+len) of block RQ->index (the range may run on) from the origin into BUF after
 * a peer failed. */
static ssize_t fallback(struct p2p *p, const struct blkreq *rq, uint64_t index, uint64_t off,
                        size_t len, void *buf)
{
    struct blkreq r = *rq;
    enum blk_from f;
    r.index = index;
    ssize_t n = blksrc_fetch(p->origin, &r, off, len, buf, &f);
    uint64_t bs = p->src.block_size;
    if (n >= 0) /* blocks, as every other counter of blocks */
        P2P_ADD(p, n_fallbacks, (off + len + bs - 1) / bs);
    return n;
}

/* A buffer of N bytes for this thread, kept for its next run: a fresh one per run would be
 * mapped and faulted in afresh each time (glibc maps a buffer that large). A thread keeps at
 * most RUN_BUF_KEEP (a cache's prefetch run); a larger run (a cacheless reader's, up to 8 MiB)
 * gets a buffer of its own, which run_buf_done frees. NULL without memory. */
#define RUN_BUF_KEEP (4u << 20)
static pthread_key_t run_buf_key;
static pthread_once_t run_buf_once = PTHREAD_ONCE_INIT;

struct run_buf {
    void *p;
    size_t n;
};

static void run_buf_free(void *arg)
{
    struct run_buf *b = arg;
    free(b->p);
    free(b);
}

static void run_buf_init(void)
{
    if (pthread_key_create(&run_buf_key, run_buf_free) != 0)
        abort();
}

static uint8_t *run_buf(size_t n)
{
    pthread_once(&run_buf_once, run_buf_init);
    struct run_buf *b = pthread_getspecific(run_buf_key);
    if (b == NULL) {
        b = calloc(1, sizeof(*b));
        if (b == NULL || pthread_setspecific(run_buf_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    if (n > RUN_BUF_KEEP)
        return malloc(n);
    if (b->n < n) {
        free(b->p);
        b->p = malloc(n);
        b->n = b->p ? n : 0;
    }
    return b->p;
}

static void run_buf_done(uint8_t *buf, size_t n)
{
    if (n > RUN_BUF_KEEP)
        free(buf);
}

/* One block piece of a fetch. */
struct piece {
    uint64_t index;
    uint32_t boff, n; /* the bytes the caller wants of the block */
    uint8_t *out;
    int node;              /* owner: index in the membership; -1 or self: the origin */
    struct p2p_call *call; /* NULL: from the origin */
    uint8_t *tmp;          /* the page-aligned range when out cannot take it */
};

static ssize_t p2p_fetch(struct blksrc *s, const struct blkreq *rq, uint64_t off, size_t len,
                         void *buf, enum blk_from *from)
{
    struct p2p *p = (struct p2p *)s;
    uint64_t bs = s->block_size;
    if (rq->flags & BLKREQ_LOCAL)
        return blksrc_fetch(p->origin, rq, off, len, buf, from);
    uint64_t start = rq->index * bs + off;
    *from = BLK_FROM_ORIGIN;
    if (start >= rq->obj_size || len == 0)
        return 0;
    uint64_t end = rq->obj_size - start < len ? rq->obj_size : start + len;
    if ((end - 1) / bs - start / bs >= FETCH_MAX_PIECES) {
        /* more blocks than one round takes: in rounds (never asked by efc's readers) */
        uint64_t cut = (start / bs + FETCH_MAX_PIECES) * bs;
        struct blkreq r = *rq;
        enum blk_from f1, f2;
        ssize_t a = p2p_fetch(s, rq, off, (size_t)(cut - start), buf, &f1);
        if (a < 0)
            return a;
        r.index = cut / bs;
        ssize_t b = p2p_fetch(s, &r, 0, (size_t)(end - cut), (uint8_t *)buf + (cut - start), &f2);
        if (b < 0)
            return b;
        *from = blk_from_worst(f1, f2);
        return a + b;
    }

    struct p2p_members *m = p2p_members_get(p);
    struct piece pc[FETCH_MAX_PIECES];
    unsigned np = 0;
    int worst = -1;
    ssize_t rc = 0;
    for (uint64_t pos = start; pos < end; np++) {
        struct piece *x = &pc[np];
        memset(x, 0, sizeof(*x));
        x->index = pos / bs;
        x->boff = (uint32_t)(pos - x->index * bs);
        uint64_t bend = (x->index + 1) * bs < end ? (x->index + 1) * bs : end;
        x->n = (uint32_t)(bend - pos);
        x->out = (uint8_t *)buf + (pos - start);
        uint64_t id[2];
        p2p_span_id(p, rq->key, rq->etag, x->index, id);
        bool moved;
        x->node = source_of(m, id, &moved);
        if (moved && x->node == m->self)
            x->node = -2; /* the next owner is this node: from the origin, its owner failed */
        else if (moved && x->node >= 0)
            P2P_ADD(p, n_failovers, 1);
        if (x->node >= 0 && x->node != m->self) {
            /* the pages that hold the bytes: the request is page-aligned */
            uint64_t blen = rq->obj_size - x->index * bs < bs ? rq->obj_size - x->index * bs : bs;
            uint32_t ps = p->page_size;
            uint32_t a = x->boff / ps * ps;
            uint64_t b = ((uint64_t)x->boff + x->n + ps - 1) / ps * ps;
            if (b > blen)
                b = blen;
            uint8_t *dst = x->out;
            if (a != x->boff || b != (uint64_t)x->boff + x->n)
                dst = x->tmp = malloc((size_t)(b - a));
            x->call = dst ? call_new(p, m->peer[x->node], rq, 1) : NULL;
            if (x->call && call_want(p, x->call, x->index, a, (uint32_t)(b - a), dst) == 0) {
                call_seal(p, x->call, rq, true);
                int src = p2p_call_start(p, x->call);
                if (src) {
                    p2p_call_end(p, x->call, PE__COUNT); /* noted (or in back-off) */
                    call_free(x->call);
                    x->call = NULL;
                    x->node = -2; /* a fallback */
                }
            } else {
                call_free(x->call);
                x->call = NULL;
                x->node = -2;
            }
        }
        pos = bend;
    }
    /* The origin's pieces while the peers work, then the peers' answers. */
    for (unsigned i = 0; i < np && rc >= 0; i++) {
        struct piece *x = &pc[i];
        if (x->call)
            continue;
        struct blkreq r = *rq;
        r.index = x->index;
        enum blk_from f = BLK_FROM_ORIGIN;
        ssize_t n = x->node == -2 ? fallback(p, rq, x->index, x->boff, x->n, x->out)
                                  : blksrc_fetch(p->origin, &r, x->boff, x->n, x->out, &f);
        if (x->node == -2)
            f = BLK_FROM_FALLBACK;
        else if (n >= 0)
            P2P_ADD(p, n_local_owned, 1);
        if (n < 0)
            rc = n;
        else if ((uint32_t)n != x->n)
            rc = -EIO;
        worst = worst > (int)f ? worst : (int)f;
    }
    for (unsigned i = 0; i < np; i++) {
        struct piece *x = &pc[i];
        if (!x->call)
            continue;
        enum blk_from f = BLK_FROM_FALLBACK;
        int out = rc >= 0 ? want_outcome(p, rq, x->call, 0, &f) : PE__COUNT;
        if (out == WANT_HOT) {
            /* the owner's fan-out is full: the parent in the block's tree passes it on */
            struct p2p_want w0 = x->call->want[0];
            p2p_call_end(p, x->call, PE__COUNT);
            call_free(x->call);
            x->call = relay_start(p, m, rq, x->index, w0.off, w0.len, w0.dst, true);
            out = x->call ? want_outcome(p, rq, x->call, 0, &f) : PE__COUNT;
            if (out == 0)
                P2P_ADD(p, n_relayed, 1);
        }
        if (rc >= 0 && out == 0) {
            if (x->tmp)
                memcpy(x->out, x->tmp + (x->boff - x->call->want[0].off), x->n);
            stats_block(p, f);
        } else if (rc >= 0) {
            ssize_t n = fallback(p, rq, x->index, x->boff, x->n, x->out);
            if (n < 0)
                rc = n;
            else if ((uint32_t)n != x->n)
                rc = -EIO;
            f = BLK_FROM_FALLBACK;
        }
        if (x->call)
            p2p_call_end(p, x->call, out == WANT_HOT ? PE__COUNT : out);
        worst = worst > (int)f ? worst : (int)f;
    }
    for (unsigned i = 0; i < np; i++) {
        call_free(pc[i].call);
        free(pc[i].tmp);
    }
    p2p_members_put(p, m);
    if (rc < 0)
        return rc;
    *from = worst < 0 ? BLK_FROM_ORIGIN : (enum blk_from)worst;
    return (ssize_t)(end - start);
}

/* A sink that passes bytes on to another, saying they came from FROM. */
struct fwd {
    blk_sink_fn sink;
    void *arg;
    enum blk_from from;
};

static int fwd_sink(void *arg, const void *data, size_t n, enum blk_from from)
{
    struct fwd *f = arg;
    (void)from;
    return f->sink(f->arg, data, n, f->from);
}

static int p2p_fetch_range(struct blksrc *s, const struct blkreq *rq, uint64_t len,
                           blk_sink_fn sink, void *sink_arg)
{
    struct p2p *p = (struct p2p *)s;
    uint64_t bs = s->block_size;
    if (rq->flags & BLKREQ_LOCAL)
        return blksrc_fetch_range(p->origin, rq, len, sink, sink_arg);
    uint64_t start = rq->index * bs;
    if (start >= rq->obj_size || len == 0)
        return 0;
    uint64_t end = rq->obj_size - start < len ? rq->obj_size : start + len;
    int rc = 0;
    for (uint64_t wstart = start; wstart < end && rc == 0;) {
        /* a window of up to FETCH_MAX_PIECES blocks */
        uint64_t wend = wstart + FETCH_MAX_PIECES * bs < end ? wstart + FETCH_MAX_PIECES * bs : end;
        unsigned nb = (unsigned)((wend - wstart + bs - 1) / bs);
        uint8_t *wbuf = run_buf((size_t)(wend - wstart));
        /* the owners' calls, then RELAY calls for blocks an owner answered HOT */
        struct p2p_call *calls[2 * FETCH_MAX_PIECES] = {0};
        int node[FETCH_MAX_PIECES], callof[FETCH_MAX_PIECES], wantof[FETCH_MAX_PIECES];
        unsigned ncalls = 0;
        if (wbuf == NULL)
            return -ENOMEM;
        struct p2p_members *m = p2p_members_get(p);
        for (unsigned k = 0; k < nb; k++) {
            uint64_t id[2];
            p2p_span_id(p, rq->key, rq->etag, wstart / bs + k, id);
            bool moved;
            node[k] = source_of(m, id, &moved);
            if (moved && node[k] == m->self)
                node[k] = -2; /* the next owner is this node: from the origin, its owner failed */
            else if (moved && node[k] >= 0)
                P2P_ADD(p, n_failovers, 1);
            callof[k] = -1;
            if (node[k] < 0 || node[k] == m->self)
                continue;
            unsigned c = 0;
            while (c < ncalls && calls[c]->peer != m->peer[node[k]])
                c++;
            if (c == ncalls) {
                calls[c] = call_new(p, m->peer[node[k]], rq, nb);
                if (calls[c] == NULL) {
                    node[k] = -2;
                    continue;
                }
                ncalls++;
            }
            uint64_t bpos = wstart + (uint64_t)k * bs;
            uint32_t blen = (uint32_t)(wend - bpos < bs ? wend - bpos : bs);
            wantof[k] = (int)calls[c]->nwant;
            if (call_want(p, calls[c], wstart / bs + k, 0, blen, wbuf + (bpos - wstart)) != 0) {
                node[k] = -2;
                continue;
            }
            callof[k] = (int)c;
        }
        bool started[2 * FETCH_MAX_PIECES] = {0};
        for (unsigned c = 0; c < ncalls; c++) {
            if (calls[c]->nwant == 0)
                continue;
            call_seal(p, calls[c], rq, false);
            if (p2p_call_start(p, calls[c]) == 0) {
                started[c] = true;
                continue;
            }
            p2p_call_end(p, calls[c], PE__COUNT); /* noted (or in back-off) */
            for (unsigned k = 0; k < nb; k++)
                if (callof[k] == (int)c) {
                    callof[k] = -1;
                    node[k] = -2;
                }
        }
        /* The origin's blocks (runs of them in one request each) while the peers work; a run at
           the front of the window goes to the sink as it arrives (nothing comes before it), so a
           node reading the spans it owns streams them as a single node would. */
        enum blk_from bfrom[FETCH_MAX_PIECES];
        unsigned streamed = 0; /* blocks [0, streamed) were handed to the sink already */
        for (unsigned k = 0; k < nb && rc == 0;) {
            if (callof[k] >= 0) {
                k++;
                continue;
            }
            unsigned q = k;
            while (q + 1 < nb && callof[q + 1] < 0 && (node[q + 1] == -2) == (node[k] == -2))
                q++;
            uint64_t a = wstart + (uint64_t)k * bs;
            uint64_t b =
                wstart + (uint64_t)(q + 1) * bs < wend ? wstart + (uint64_t)(q + 1) * bs : wend;
            ssize_t n;
            if (k == 0) {
                struct fwd f = {sink, sink_arg,
                                node[k] == -2 ? BLK_FROM_FALLBACK : BLK_FROM_ORIGIN};
                struct blkreq r = *rq;
                r.index = a / bs;
                rc = blksrc_fetch_range(p->origin, &r, b - a, fwd_sink, &f);
                if (rc == 0 && node[k] == -2)
                    P2P_ADD(p, n_fallbacks, q - k + 1);
                else if (rc == 0)
                    P2P_ADD(p, n_local_owned, q - k + 1);
                streamed = q + 1;
                k = q + 1;
                continue;
            }
            if (node[k] == -2) {
                n = fallback(p, rq, a / bs, 0, (size_t)(b - a), wbuf + (a - wstart));
            } else {
                struct blkreq r = *rq;
                enum blk_from f;
                r.index = a / bs;
                n = blksrc_fetch(p->origin, &r, 0, (size_t)(b - a), wbuf + (a - wstart), &f);
            }
            if (n < 0)
                rc = (int)n;
            else if ((uint64_t)n != b - a)
                rc = -EIO;
            for (unsigned x = k; x <= q; x++) {
                bfrom[x] = node[k] == -2 ? BLK_FROM_FALLBACK : BLK_FROM_ORIGIN;
                if (rc == 0 && node[k] != -2)
                    P2P_ADD(p, n_local_owned, 1);
            }
            k = q + 1;
        }
        /* In order: each block to the sink as soon as it is in. */
        int outcome[2 * FETCH_MAX_PIECES];
        for (unsigned c = 0; c < 2 * FETCH_MAX_PIECES; c++)
            outcome[c] = 0;
        unsigned nowner = ncalls;
        for (unsigned k = streamed; k < nb && rc == 0; k++) {
            uint64_t bpos = wstart + (uint64_t)k * bs;
            uint32_t blen = (uint32_t)(wend - bpos < bs ? wend - bpos : bs);
            if (callof[k] >= 0 && callof[k] < (int)nowner &&
                want_hot(p, calls[callof[k]], (unsigned)wantof[k])) {
                /* The owner's fan-out is full: this block and the rest of its call (the owner
                   answers a GET HOT whole) go to this node's parents in their trees. */
                int hot = callof[k];
                outcome[hot] = PE__COUNT; /* nothing to note of the owner */
                unsigned first = ncalls;
                for (unsigned q = k; q < nb; q++) {
                    if (callof[q] != hot || !want_hot(p, calls[hot], (unsigned)wantof[q]))
                        continue;
                    uint64_t qpos = wstart + (uint64_t)q * bs;
                    uint32_t qlen = (uint32_t)(wend - qpos < bs ? wend - qpos : bs);
                    int w = -1;
                    int rcall = relay_add(p, m, rq, calls, &ncalls, first, 2 * FETCH_MAX_PIECES,
                                          qpos / bs, qlen, wbuf + (qpos - wstart), &w);
                    callof[q] = rcall >= 0 ? rcall : -3; /* -3: from the origin below */
                    wantof[q] = w;
                }
                for (unsigned c = first; c < ncalls; c++) {
                    call_seal(p, calls[c], rq, false);
                    if (p2p_call_start(p, calls[c]) == 0) {
                        started[c] = true;
                        continue;
                    }
                    p2p_call_end(p, calls[c], PE__COUNT);
                    for (unsigned q = k; q < nb; q++)
                        if (callof[q] == (int)c)
                            callof[q] = -3;
                }
            }
            if (callof[k] >= 0 || callof[k] == -3) {
                struct p2p_call *c = callof[k] >= 0 ? calls[callof[k]] : NULL;
                enum blk_from f = BLK_FROM_FALLBACK;
                int out = c ? want_outcome(p, rq, c, (unsigned)wantof[k], &f) : PE__COUNT;
                if (out == 0) {
                    bfrom[k] = f;
                    stats_block(p, f);
                    if (callof[k] >= (int)nowner)
                        P2P_ADD(p, n_relayed, 1);
                } else {
                    if (c && outcome[callof[k]] == 0)
                        outcome[callof[k]] = out == WANT_HOT ? PE__COUNT : out;
                    ssize_t n = fallback(p, rq, bpos / bs, 0, blen, wbuf + (bpos - wstart));
                    if (n < 0)
                        rc = (int)n;
                    else if ((uint32_t)n != blen)
                        rc = -EIO;
                    bfrom[k] = BLK_FROM_FALLBACK;
                }
            }
            if (rc == 0)
                rc = sink(sink_arg, wbuf + (bpos - wstart), blen, bfrom[k]);
        }
        for (unsigned c = 0; c < ncalls; c++) {
            if (started[c])
                p2p_call_end(p, calls[c], rc && outcome[c] == 0 ? PE__COUNT : outcome[c]);
            call_free(calls[c]);
        }
        run_buf_done(wbuf, (size_t)(wend - wstart)); /* no call writes to it any more */
        p2p_members_put(p, m);
        wstart = wend;
    }
    return rc;
}

static const struct blksrc_ops p2p_ops = {
    .name = "p2p",
    .fetch = p2p_fetch,
    .fetch_range = p2p_fetch_range,
};

struct blksrc *p2p_src(struct p2p *p)
{
    return &p->src;
}

/* ---- warm-up -------------------------------------------------------------------------------- */

int p2p_fill(struct p2p *p, struct cache *cache, const char *key, const char *etag, uint64_t size,
             uint64_t index, bool also_local)
{
    uint64_t bs = p->src.block_size;
    if (index * bs >= size)
        return -EINVAL;
    uint64_t id[2];
    p2p_span_id(p, key, etag, index, id);
    struct p2p_members *m = p2p_members_get(p);
    int owner = owner_of(m, id);
    int rc = -EAGAIN;
    if (owner >= 0 && owner != m->self) {
        struct blkreq rq = {key, etag, size, index, 0};
        struct p2p_call *c = call_new(p, m->peer[owner], &rq, 1);
        if (c && call_want(p, c, index, 0, 0, NULL) == 0) {
            call_seal(p, c, &rq, false);
            c->get.flags = P2P_GET_FILL;
            c->bytes = size - index * bs < bs ? size - index * bs : bs; /* its deadline's */
            int out = PE__COUNT;
            if (p2p_call_start(p, c) == 0) {
                int w = p2p_call_wait(p, c, 0);
                out = w == -ETIMEDOUT ? PE_TIMEOUT : w ? PE__COUNT : 0;
                if (w == 0 && c->want[0].status != P2P_OK) {
                    out = c->want[0].status == P2P_BUSY    ? PE_BUSY
                          : c->want[0].status == P2P_STALE ? PE_STALE
                                                           : PE_REFUSED;
                    if (c->want[0].status == P2P_STALE || c->want[0].status == P2P_NOT_FOUND)
                        rc = c->want[0].status == P2P_STALE ? -ESTALE : -ENOENT;
                }
                if (out == 0)
                    rc = 0;
            }
            p2p_call_end(p, c, out);
        }
        call_free(c);
    }
    p2p_members_put(p, m);
    if (rc == -ESTALE || rc == -ENOENT)
        return rc;
    if (rc == 0 && !also_local)
        return 0;
    /* This node owns it, nobody does, the owner could not, or a copy here is wanted too. */
    if (cache == NULL)
        return rc == 0 ? 0 : -EIO; /* an agent stores nothing */
    return cache_fill(cache, key, etag, size, index, 0, NULL);
}

/* ---- life cycle ----------------------------------------------------------------------------- */

int p2p_new(const struct p2p_config *cfg, struct p2p **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->rootlist || !cfg->rootlist[0]) {
        snprintf(err, errlen, "g_tier_DadiAddr: required in distributed mode");
        return -EINVAL;
    }
    if (!cfg->origin || cfg->block_size < P2P_MIN_PAGE || cfg->page_size < P2P_MIN_PAGE ||
        cfg->page_size > cfg->block_size || !cfg->ns || strlen(cfg->ns) > P2P_MAX_NS) {
        snprintf(err, errlen, "p2p: bad configuration");
        return -EINVAL;
    }
    struct p2p *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->src.ops = &p2p_ops;
    p->src.block_size = cfg->block_size;
    p->origin = cfg->origin;
    p->port = cfg->port;
    p->role = cfg->role;
    p->page_size = cfg->page_size;
    p->reload_ms = cfg->reload_ms ? cfg->reload_ms : 5000;
    p->fanout = cfg->fanout ? cfg->fanout : P2P_FANOUT;
    if (p->fanout > P2P_FANOUT_MAX)
        p->fanout = P2P_FANOUT_MAX;
    {
        char self[96];
        snprintf(self, sizeof(self), "%s:%u", cfg->self_ip ? cfg->self_ip : "",
                 (unsigned)cfg->port);
        p->seed = XXH3_64bits(self, strlen(self));
    }
    p->rx_epfd = p->rx_wake = -1;
    pthread_mutex_init(&p->mlock, NULL);
    pthread_mutex_init(&p->tlock, NULL);
    pthread_mutex_init(&p->clock, NULL);
    p2p_cond_init(&p->tcond);
    histo_init(&p->latency);
    p->rootlist_path = strdup(cfg->rootlist);
    p->ns = strdup(cfg->ns);
    p->nslen = strlen(cfg->ns);
    if (cfg->self_ip && cfg->self_ip[0])
        p->self_ip = strdup(cfg->self_ip);
    int rc = -ENOMEM;
    if (!p->rootlist_path || !p->ns || (cfg->self_ip && cfg->self_ip[0] && !p->self_ip))
        goto fail;
    if (cfg->key_file && cfg->key_file[0]) {
        rc = p2p_key_load(p, cfg->key_file, err, errlen);
        if (rc)
            goto fail;
    }
    bool changed;
    rc = load(p, true, &changed, err, errlen);
    if (rc)
        goto fail;
    struct p2p_members *m = p->members;
    if (m->rl.n == 0)
        log_warn("p2p: rootlist '%s' lists no node: every block comes from the origin until it "
                 "does",
                 p->rootlist_path);
    else if (m->self < 0)
        log_warn("p2p: this node (%s%s port %u) is not in rootlist '%s': it reads through the "
                 "cluster but serves no one",
                 p->self_ip ? "g_tier_DadiP2PIP " : "no address of this machine with",
                 p->self_ip ? p->self_ip : "", (unsigned)p->port, p->rootlist_path);
    log_info("p2p: rootlist '%s': %u members, hash %016" PRIx64 "; this node %s (role %d: %s); "
             "peer authentication %s",
             p->rootlist_path, m->rl.n, m->rl.hash,
             m->self >= 0 ? m->rl.nodes[m->self].name : "is not in it", p->role,
             p->role == P2P_ROLE_AGENT  ? "agent, stores nothing"
             : p->role == P2P_ROLE_ROOT ? "serves, reads from the origin"
                                        : "serves, reads through the cluster",
             p->auth ? "on" : "off");
    *out = p;
    return 0;
fail:
    if (rc == -ENOMEM && errlen && !err[0])
        snprintf(err, errlen, "p2p: out of memory");
    p2p_free(p);
    return rc;
}

static void *reload_main(void *arg)
{
    struct p2p *p = arg;
    pthread_mutex_lock(&p->tlock);
    while (!p->stopping) {
        if (!p->reload_now) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
                         (uint64_t)p->reload_ms * 1000000ull;
            ts.tv_sec = (time_t)(t / 1000000000ull);
            ts.tv_nsec = (long)(t % 1000000000ull);
            pthread_cond_timedwait(&p->tcond, &p->tlock, &ts);
            if (p->stopping)
                break;
        }
        p->reload_now = false;
        pthread_mutex_unlock(&p->tlock);
        char msg[256];
        p2p_reload(p, msg, sizeof(msg));
        pthread_mutex_lock(&p->tlock);
    }
    pthread_mutex_unlock(&p->tlock);
    return NULL;
}

/* Starts the server on this node's address when it has one and none runs. tlock held. */
static int server_maybe_start_locked(struct p2p *p, char *err, size_t errlen)
{
    if (p->server || p->stopping)
        return 0;
    struct p2p_members *m = p2p_members_get(p);
    int rc = 0;
    if (m->self >= 0) {
        const struct p2p_node *nd = &m->rl.nodes[m->self];
        rc = p2p_server_start(p, p->role == P2P_ROLE_AGENT ? NULL : p->serve, nd->ip, nd->port, err,
                              errlen);
    }
    p2p_members_put(p, m);
    return rc;
}

int p2p_start(struct p2p *p, struct cache *serve, char *err, size_t errlen)
{
    p->serve = serve;
    int rc = p2p_client_start(p);
    if (rc) {
        snprintf(err, errlen, "p2p: cannot start: %s", strerror(-rc));
        return rc;
    }
    pthread_mutex_lock(&p->tlock);
    rc = server_maybe_start_locked(p, err, errlen);
    if (rc == 0 && pthread_create(&p->reload_thread, NULL, reload_main, p) == 0)
        p->reload_started = true;
    else if (rc == 0)
        rc = -EAGAIN;
    pthread_mutex_unlock(&p->tlock);
    if (rc == -EAGAIN)
        snprintf(err, errlen, "p2p: cannot start the rootlist thread");
    return rc;
}

int p2p_reload(struct p2p *p, char *msg, size_t msglen)
{
    char err[512] = "";
    bool changed = false;
    int rc = load(p, false, &changed, err, sizeof(err));
    P2P_ADD(p, n_reloads, 1);
    if (rc) {
        pthread_mutex_lock(&p->mlock);
        bool first = !p->lost_logged;
        p->lost_logged = true;
        pthread_mutex_unlock(&p->mlock);
        if (first)
            log_warn("p2p: %s: keeping the last membership", err);
        snprintf(msg, msglen, "%s: the last membership is kept", err);
        return rc;
    }
    pthread_mutex_lock(&p->mlock);
    if (p->lost_logged)
        log_info("p2p: rootlist '%s' is readable again", p->rootlist_path);
    p->lost_logged = false;
    pthread_mutex_unlock(&p->mlock);
    if (changed) {
        pthread_mutex_lock(&p->tlock);
        char serr[256] = "";
        if (p->reload_started && server_maybe_start_locked(p, serr, sizeof(serr)) != 0)
            log_warn("p2p: %s", serr);
        pthread_mutex_unlock(&p->tlock);
    }
    struct p2p_members *m = p2p_members_get(p);
    snprintf(msg, msglen, "%u members, hash %016" PRIx64 ", this node %s%s", m->rl.n, m->rl.hash,
             m->self >= 0 ? m->rl.nodes[m->self].name : "not in it", changed ? "" : " (unchanged)");
    p2p_members_put(p, m);
    return 0;
}

void p2p_stop_server(struct p2p *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->tlock);
    p->stopping = true;
    pthread_cond_broadcast(&p->tcond);
    pthread_mutex_unlock(&p->tlock);
    if (p->reload_started) {
        pthread_join(p->reload_thread, NULL);
        p->reload_started = false;
    }
    p2p_server_stop(p);
}

void p2p_free(struct p2p *p)
{
    if (p == NULL)
        return;
    p2p_stop_server(p);
    /* every peer's connections: their receive references go with the receive thread */
    struct p2p_members *m = p->members;
    for (unsigned i = 0; m && i < m->rl.n; i++)
        if (m->peer[i])
            p2p_peer_close(p, m->peer[i]);
    p2p_client_stop(p);
    /* the receive thread is gone: drop the references it held on what it still watched */
    if (m) {
        p->members = NULL;
        p2p_members_put(p, m);
    }
    if (p->rx_epfd >= 0)
        close(p->rx_epfd);
    if (p->rx_wake >= 0)
        close(p->rx_wake);
    free(p->rx_discard);
    free(p->peers);
    free(p->rootlist_path);
    free(p->self_ip);
    free(p->ns);
    OPENSSL_cleanse(p->key, sizeof(p->key));
    pthread_mutex_destroy(&p->mlock);
    pthread_mutex_destroy(&p->tlock);
    pthread_mutex_destroy(&p->clock);
    pthread_cond_destroy(&p->tcond);
    free(p);
}

/* ---- what it shows -------------------------------------------------------------------------- */

int p2p_get_cluster(struct p2p *p, struct p2p_cluster_info *ci)
{
    memset(ci, 0, sizeof(*ci));
    struct p2p_members *m = p2p_members_get(p);
    snprintf(ci->rootlist, sizeof(ci->rootlist), "%s", p->rootlist_path);
    if (m->self >= 0)
        snprintf(ci->self, sizeof(ci->self), "%s", m->rl.nodes[m->self].name);
    ci->role = p->role;
    ci->members = m->rl.hash;
    ci->loaded_unix = m->loaded_unix;
    ci->nmembers = m->rl.n;
    ci->auth = p->auth;
    unsigned n = m->rl.n < P2P_INFO_MAX_MEMBERS ? m->rl.n : P2P_INFO_MAX_MEMBERS;
    ci->member = calloc(n ? n : 1, sizeof(*ci->member));
    if (ci->member == NULL) {
        p2p_members_put(p, m);
        return -ENOMEM;
    }
    uint64_t now = p2p_now_ns();
    for (unsigned i = 0; i < m->rl.n; i++) {
        const struct p2p_node *nd = &m->rl.nodes[i];
        struct p2p_peer *pe = m->peer[i];
        bool mismatch = false;
        if (pe) {
            pthread_mutex_lock(&pe->lock);
            mismatch = pe->members != 0 && pe->members != m->rl.hash;
            pthread_mutex_unlock(&pe->lock);
        }
        ci->mismatched += mismatch;
        if (i >= n)
            continue;
        struct p2p_member_info *x = &ci->member[ci->ninfo++];
        snprintf(x->name, sizeof(x->name), "%s", nd->name);
        snprintf(x->id, sizeof(x->id), "%s", nd->id);
        snprintf(x->address, sizeof(x->address), nd->family == AF_INET6 ? "[%s]:%u" : "%s:%u",
                 nd->ip, (unsigned)nd->port);
        x->self = (int)i == m->self;
        x->mismatch = mismatch;
        if (pe == NULL) {
            x->state = "self";
            x->role = p->role;
            x->members = m->rl.hash;
            continue;
        }
        pthread_mutex_lock(&pe->lock);
        x->state = pe->state == PEER_UP                             ? "up"
                   : pe->state == PEER_DOWN && now < pe->down_until ? "down"
                   : pe->state == PEER_DOWN                         ? "retrying"
                                                                    : "unknown";
        x->role = pe->role;
        x->members = pe->members;
        x->latency_ms = pe->srtt * 1e3;
        snprintf(x->last_error, sizeof(x->last_error), "%s", pe->last_error);
        pthread_mutex_unlock(&pe->lock);
        x->requests = P2P_GET(pe, requests);
        x->errors = P2P_GET(pe, errors);
        x->bytes = P2P_GET(pe, bytes);
    }
    p2p_members_put(p, m);
    return 0;
}

void p2p_get_stats(struct p2p *p, struct p2p_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->requests = P2P_GET(p, n_requests);
    st->peer_hits = P2P_GET(p, n_peer_hits);
    st->peer_misses = P2P_GET(p, n_peer_misses);
    st->peer_bytes = P2P_GET(p, n_peer_bytes);
    st->local_owned = P2P_GET(p, n_local_owned);
    st->fallbacks = P2P_GET(p, n_fallbacks);
    st->err_connect = P2P_GET(p, n_err[PE_CONNECT]);
    st->err_timeout = P2P_GET(p, n_err[PE_TIMEOUT]);
    st->err_reset = P2P_GET(p, n_err[PE_RESET]);
    st->err_protocol = P2P_GET(p, n_err[PE_PROTOCOL]);
    st->err_corrupt = P2P_GET(p, n_err[PE_CORRUPT]);
    st->err_refused = P2P_GET(p, n_err[PE_REFUSED]);
    st->err_busy = P2P_GET(p, n_err[PE_BUSY]);
    st->err_auth = P2P_GET(p, n_err[PE_AUTH]);
    st->err_stale = P2P_GET(p, n_err[PE_STALE]);
    st->served_requests = P2P_GET(p, n_served_requests);
    st->served_blocks = P2P_GET(p, n_served_blocks);
    st->served_hits = P2P_GET(p, n_served_hits);
    st->served_misses = P2P_GET(p, n_served_misses);
    st->served_bytes = P2P_GET(p, n_served_bytes);
    st->served_errors = P2P_GET(p, n_served_errors);
    st->served_busy = P2P_GET(p, n_served_busy);
    st->origin_cap_waits = P2P_GET(p, n_origin_cap_waits);
    st->relayed = P2P_GET(p, n_relayed);
    st->failovers = P2P_GET(p, n_failovers);
    st->served_hot = P2P_GET(p, n_served_hot);
    st->served_relays = P2P_GET(p, n_served_relays);
    st->fanout_max = P2P_GET(p, n_fanout_max);
    st->conns_in = P2P_GET(p, n_conns_in);
    st->conns_out = P2P_GET(p, n_conns_out);
    st->reloads = P2P_GET(p, n_reloads);
    st->rootlist_errors = P2P_GET(p, n_rootlist_errors);
    st->mismatches = P2P_GET(p, n_mismatches);
}

enum peer_field { PF_UP, PF_LATENCY, PF_REQUESTS, PF_ERRORS };

/* One family with a sample per peer, labelled peer="<id>:<ip>:<port>". */
static void peer_family(struct buf *out, const struct p2p_cluster_info *ci, const char *name,
                        const char *help, const char *type, enum peer_field f)
{
    prom_header(out, name, help, type);
    for (unsigned i = 0; i < ci->ninfo; i++) {
        const struct p2p_member_info *x = &ci->member[i];
        if (x->self)
            continue;
        struct buf l;
        buf_init(&l, 512);
        buf_puts(&l, "peer=\"");
        prom_label_escape(&l, x->name);
        buf_puts(&l, "\"");
        if (l.data) {
            if (f == PF_LATENCY)
                prom_sample_double(out, name, l.data, x->latency_ms / 1e3);
            else
                prom_sample_u64(out, name, l.data,
                                f == PF_UP         ? (uint64_t)(strcmp(x->state, "up") == 0)
                                : f == PF_REQUESTS ? x->requests
                                                   : x->errors);
        }
        buf_release(&l);
    }
}

int p2p_write_metrics(struct p2p *p, struct buf *out)
{
    struct p2p_stats st;
    struct p2p_cluster_info ci;
    p2p_get_stats(p, &st);
    if (p2p_get_cluster(p, &ci) != 0)
        return -ENOMEM;
    prom_gauge(out, "efc_p2p_members", "Nodes in the rootlist this node uses.",
               (double)ci.nmembers);
    prom_gauge(out, "efc_p2p_self_listed", "1 when this node is in the rootlist (it serves).",
               ci.self[0] ? 1 : 0);
    prom_gauge(out, "efc_p2p_membership_mismatched_peers",
               "Peers that reported another rootlist than this node's.", (double)ci.mismatched);
    prom_counter(out, "efc_p2p_membership_mismatches_total",
                 "Times a peer was found to report another rootlist.", st.mismatches);
    prom_counter(out, "efc_p2p_rootlist_reloads_total", "Rootlist re-reads.", st.reloads);
    prom_counter(out, "efc_p2p_rootlist_bad_lines_total", "Rootlist lines skipped as malformed.",
                 st.rootlist_errors);
    prom_counter(out, "efc_p2p_requests_total", "GETs sent to peers.", st.requests);
    prom_header(out, "efc_p2p_blocks_total",
                "Blocks this node's reads got, by where from: a peer's tiers (peer_hit), a "
                "peer's origin fetch (peer_miss), the origin as the owner (owned), the origin "
                "after a peer failed (fallback).",
                "counter");
    prom_sample_u64(out, "efc_p2p_blocks_total", "from=\"peer_hit\"", st.peer_hits);
    prom_sample_u64(out, "efc_p2p_blocks_total", "from=\"peer_miss\"", st.peer_misses);
    prom_sample_u64(out, "efc_p2p_blocks_total", "from=\"owned\"", st.local_owned);
    prom_sample_u64(out, "efc_p2p_blocks_total", "from=\"fallback\"", st.fallbacks);
    prom_counter(out, "efc_p2p_received_bytes_total", "Verified bytes received from peers.",
                 st.peer_bytes);
    prom_header(out, "efc_p2p_errors_total", "Failed requests to peers, by kind.", "counter");
    static const char *const kinds[PE__COUNT] = {
        "connect", "timeout", "reset", "protocol", "corrupt", "refused", "busy", "auth", "stale"};
    for (int k = 0; k < PE__COUNT; k++) {
        char l[32];
        snprintf(l, sizeof(l), "kind=\"%s\"", kinds[k]);
        prom_sample_u64(out, "efc_p2p_errors_total", l, P2P_GET(p, n_err[k]));
    }
    histo_write_prom(&p->latency, "efc_p2p_request_duration_seconds",
                     "GETs to peers answered whole, from send to last byte", out);
    prom_counter(out, "efc_p2p_served_requests_total", "GETs this node answered for peers.",
                 st.served_requests);
    prom_header(out, "efc_p2p_served_blocks_total",
                "Blocks served to peers: from this node's tiers (hit) or fetched from the origin "
                "for them (miss).",
                "counter");
    prom_sample_u64(out, "efc_p2p_served_blocks_total", "result=\"hit\"", st.served_hits);
    prom_sample_u64(out, "efc_p2p_served_blocks_total", "result=\"miss\"", st.served_misses);
    prom_counter(out, "efc_p2p_served_bytes_total", "Bytes sent to peers.", st.served_bytes);
    prom_counter(out, "efc_p2p_served_errors_total", "Blocks peers asked for that failed here.",
                 st.served_errors);
    prom_counter(out, "efc_p2p_served_busy_total", "GETs answered busy (queue full).",
                 st.served_busy);
    prom_counter(out, "efc_p2p_origin_cap_waits_total",
                 "Origin fetches for peers that waited for the per-node cap.", st.origin_cap_waits);
    prom_counter(out, "efc_p2p_failover_blocks_total",
                 "Blocks asked of their next owner, their owner being in back-off.", st.failovers);
    prom_counter(out, "efc_p2p_relayed_blocks_total",
                 "Blocks a hot owner sent this node to its parent in the block's fan-out tree for.",
                 st.relayed);
    prom_counter(out, "efc_p2p_served_hot_total",
                 "GETs answered hot: the block's fan-out was full, the peer asked its parent.",
                 st.served_hot);
    prom_counter(out, "efc_p2p_served_relays_total",
                 "GETs of hot blocks this node passed on down their fan-out trees.",
                 st.served_relays);
    prom_gauge(out, "efc_p2p_fanout_max",
               "The most peers this node served one block to at once within its fan-out (its "
               "children in the block's tree are served beyond it).",
               (double)st.fanout_max);
    prom_header(out, "efc_p2p_connections", "Open P2P connections.", "gauge");
    prom_sample_u64(out, "efc_p2p_connections", "direction=\"in\"", st.conns_in);
    prom_sample_u64(out, "efc_p2p_connections", "direction=\"out\"", st.conns_out);

    peer_family(out, &ci, "efc_p2p_peer_up", "1 when the peer answers (0: down or not tried yet).",
                "gauge", PF_UP);
    peer_family(out, &ci, "efc_p2p_peer_latency_seconds",
                "Smoothed time a peer takes to answer a MiB (or one smaller GET).", "gauge",
                PF_LATENCY);
    peer_family(out, &ci, "efc_p2p_peer_requests_total", "GETs sent to each peer.", "counter",
                PF_REQUESTS);
    peer_family(out, &ci, "efc_p2p_peer_errors_total", "Failed GETs to each peer.", "counter",
                PF_ERRORS);
    free(ci.member);
    return 0;
}
