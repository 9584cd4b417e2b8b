/* p2p/p2p_i.h - private to p2p/: the node (struct p2p), its peers and their connections, the
 * membership snapshot, and the pieces p2p.c (source, membership, stats), client.c (requests to
 * peers), server.c (answers to peers), auth.c (the key and the proofs) and net.c (sockets, frame
 * reading) share.
 *
 * Locks, in the order they may be taken (never the other way round):
 *     p->mlock (the membership pointer and the peer table)
 *       -> peer->lock (its connections, state, latency estimate)
 *         -> conn->lock (its pending calls and its reader's target)
 *     conn->send_lock is taken alone (a sender holds nothing else while it writes).
 * No lock is held across a connect, a handshake or a blocking send; the receive thread holds a
 * connection's lock while it copies bytes into a call's buffer (recv of what is already there),
 * so that a call given up under the same lock is never written to afterwards.
 */
#ifndef EFC_P2P_P2P_I_H
#define EFC_P2P_P2P_I_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "p2p/p2p.h"
#include "p2p/rootlist_i.h"
#include "p2p/wire_i.h"
#include "util/histo.h"

#define P2P_CONNS_PER_PEER 2     /* connections to one peer at most */
#define P2P_PIPELINE       16    /* calls in flight on a connection before another is opened */
#define P2P_CONNECT_MS     1000  /* connect timeout */
#define P2P_HANDSHAKE_MS   2000  /* HELLO to HELLO_OK (and AUTH) */
#define P2P_SEND_MS        5000  /* a send that cannot progress this long ends the connection */
#define P2P_BACKOFF_MIN_MS 1000  /* a failed peer is skipped this long, doubling ... */
#define P2P_BACKOFF_MAX_MS 30000 /* ... up to this */
#define P2P_SERVE_THREADS  16    /* workers answering peers' GETs */
#define P2P_SERVE_QUEUE    1024  /* GETs waiting for a worker; more are answered BUSY */
#define P2P_ORIGIN_FETCHES 8     /* origin fetches made for peers at once (the rest wait) */
#define P2P_MAX_INBOUND    4096  /* connections from peers at once */
#define P2P_OWNER_BYTES                                                                            \
    (4u << 20)                /* consecutive blocks that share an owner (p2p_span_id): the cache's \
                              prefetch run, one origin request */
#define P2P_FANOUT         4  /* peers an owner serves a block to at once besides its children */
#define P2P_FANOUT_MAX     16 /* g_tier_DadiP2PFanout at most */
#define P2P_TREE_LEVELS    8  /* depths of fan-out trees with workers of their own (server.c) */
#define P2P_RELAY_THREADS  4  /* workers of each depth, started when first needed */
#define P2P_HOT_SLOTS      1024  /* blocks whose fan-out an owner tracks at once */
#define P2P_PENDING_MS     250   /* a worker busy this long on a GET says so (PENDING) ... */
#define P2P_PENDING_MAX_MS 60000 /* ... which a requester believes for this long in all */

struct p2p_conn;
struct p2p_call;

enum peer_state { PEER_UNKNOWN = 0, PEER_UP, PEER_DOWN };

/* Error kinds (p2p_stats.err_*, efc_p2p_errors_total{kind}). */
enum p2p_err {
    PE_CONNECT,
    PE_TIMEOUT,
    PE_RESET,
    PE_PROTOCOL,
    PE_CORRUPT,
    PE_REFUSED, /* it answered a status: other bucket, not serving, bad request, origin failed */
    PE_BUSY,
    PE_AUTH,
    PE_STALE,
    PE__COUNT,
};

struct p2p_peer {
    char name[128]; /* "<id>:<ip>:<port>" */
    struct sockaddr_storage addr;
    socklen_t alen;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* a connection attempt ended */
    /* peer lock */
    struct p2p_conn *conns[P2P_CONNS_PER_PEER];
    unsigned nconns;
    bool connecting;
    enum peer_state state;
    uint64_t down_until; /* CLOCK_MONOTONIC ns */
    unsigned fails;      /* in a row */
    bool probing;        /* down, its back-off over: one call is trying it, the others wait */
    double srtt, rttvar; /* seconds per unit (a MiB, or one small request): 0 before a sample */
    int role;            /* what its HELLO_OK said; -1 before */
    uint64_t members;    /* the membership hash it reported; 0 before */
    uint32_t block_size;
    char last_error[96];
    bool gone;     /* left the membership */
    unsigned refs; /* the peer table's, membership snapshots', calls' (p->mlock) */

    uint64_t requests, errors, bytes; /* atomics */
};

/* An immutable membership: the rootlist, the peer of each node, who serves. */
struct p2p_members {
    unsigned refs; /* atomic */
    struct p2p_rootlist rl;
    struct p2p_peer **peer; /* per node of rl; NULL for this node */
    int self;               /* index of this node in rl, -1 when not in it */
    unsigned *serving;      /* indexes of the nodes that own blocks (not agents) */
    unsigned nserving;
    uint64_t loaded_unix;
};

struct p2p_server;

struct p2p {
    struct blksrc src; /* first: p2p_src hands out its address */
    struct blksrc *origin;
    char *rootlist_path;
    char *self_ip; /* NULL: find it */
    uint16_t port;
    int role;
    char *ns;
    size_t nslen;
    uint32_t page_size;
    unsigned reload_ms;
    unsigned fanout; /* P2P_FANOUT unless configured */
    uint64_t seed;   /* this node's place in fan-out trees when it is not in the rootlist */
    bool auth;
    uint8_t key[256];
    size_t keylen;

    pthread_mutex_t mlock;
    struct p2p_members *members; /* mlock; never NULL after p2p_new */
    struct p2p_peer **peers;     /* mlock: every peer known (members' and gone ones in use) */
    unsigned npeers, cappeers;
    uint64_t last_warned_hash; /* mlock: the rootlist text hash whose problems were logged */
    bool lost_logged;          /* mlock: "rootlist unreadable" was logged for this outage */
    unsigned fd_warned_n;      /* the rootlist size the descriptor limit was warned about */

    /* threads */
    pthread_mutex_t tlock;
    pthread_cond_t tcond; /* the reload thread's wake-up */
    bool stopping, reload_now;
    pthread_t reload_thread, rx_thread;
    bool reload_started, rx_started;
    int rx_epfd;         /* the client connections' epoll */
    int rx_wake;         /* eventfd: stop */
    uint8_t *rx_discard; /* where the bytes of answers given up on go */
    struct p2p_server *server;
    struct cache *serve;   /* what the server answers from (p2p_start); NULL: an agent */
    pthread_mutex_t clock; /* the outbound connections' list */
    struct p2p_conn *conns;

    uint64_t next_rid;    /* atomic */
    struct histo latency; /* peer GETs, send to last byte */

    /* counters (atomics) */
    uint64_t n_requests, n_peer_hits, n_peer_misses, n_peer_bytes, n_local_owned, n_fallbacks;
    uint64_t n_relayed, n_served_hot, n_served_relays, n_fanout_max, n_failovers;
    uint64_t n_err[PE__COUNT];
    uint64_t n_served_requests, n_served_blocks, n_served_hits, n_served_misses, n_served_bytes;
    uint64_t n_served_errors, n_served_busy, n_origin_cap_waits;
    uint64_t n_conns_in, n_conns_out;
    uint64_t n_reloads, n_rootlist_errors, n_mismatches;
};

#define P2P_ADD(p, f, v) __atomic_fetch_add(&(p)->f, (uint64_t)(v), __ATOMIC_RELAXED)
#define P2P_SUB(p, f, v) __atomic_fetch_sub(&(p)->f, (uint64_t)(v), __ATOMIC_RELAXED)
#define P2P_GET(p, f)    __atomic_load_n(&(p)->f, __ATOMIC_RELAXED)

uint64_t p2p_now_ns(void);

/* ---- p2p.c ---------------------------------------------------------------------------------- */

/* The identity that decides who owns block INDEX of (key, etag): its span's first block's. */
void p2p_span_id(const struct p2p *p, const char *key, const char *etag, uint64_t index,
                 uint64_t id[2]);
/* The current membership, with a reference (drop it with p2p_members_put). */
struct p2p_members *p2p_members_get(struct p2p *p);
void p2p_members_put(struct p2p *p, struct p2p_members *m);
/* A peer whose HELLO_OK says it is an agent: rebuilds the membership without it as an owner. */
void p2p_peer_is_agent(struct p2p *p, struct p2p_peer *peer);
/* A HELLO (or HELLO_OK) with the membership hash THEIRS from NAME: counted and logged once per
 * change when it differs from ours. */
void p2p_note_members(struct p2p *p, struct p2p_peer *peer, const char *name, uint64_t theirs);
/* The HELLO this node sends or answers with (nonce and proof left to the caller). */
void p2p_hello_fill(struct p2p *p, struct p2p_hello *h);
void p2p_peer_put(struct p2p *p, struct p2p_peer *peer);

/* ---- client.c ------------------------------------------------------------------------------- */

/* One block (or a page-aligned range of one) asked of a peer. */
struct p2p_want {
    uint64_t index;
    uint32_t off, len; /* the range in the block: page-aligned off, len to the block's end or a
                          multiple of the page size */
    uint8_t *dst;      /* len bytes */
    uint64_t *crc;     /* ceil(len / page) CRCs as received */
    uint32_t got;      /* bytes received (conn lock) */
    int status;        /* enum p2p_status once answered, -1 before (conn lock) */
    uint8_t hit;
    bool done;     /* answered (conn lock) */
    bool verified; /* the requester checked its CRCs */
};

/* A GET to one peer for blocks of one object version. */
struct p2p_call {
    struct p2p_peer *peer;
    struct p2p_conn *conn; /* set by p2p_call_start */
    uint64_t rid;
    uint64_t started;      /* ns */
    uint64_t deadline;     /* ns (conn lock once started: a PENDING frame moves it on) */
    uint64_t patience;     /* ns: the deadline's distance from its start, or a PENDING frame */
    unsigned pendings;     /* PENDING frames received (conn lock) */
    struct p2p_call *next; /* the connection's pending list (conn lock) */
    int err;               /* the connection failed: -errno (conn lock) */
    bool last;             /* the LAST frame came (conn lock) */
    bool pending;          /* on the connection's list (conn lock) */
    pthread_cond_t cond;   /* a want or the call ended; with conn->lock */
    struct p2p_get get;
    unsigned nwant;
    struct p2p_want *want;
    uint64_t bytes; /* asked for */
    bool probe;     /* it probes a peer whose back-off ended (client.c) */
};

/* Sends C (its get and wants set up by the caller, c->peer referenced) on a connection to its
 * peer, opening one if need be. 0, or -errno (the peer is in back-off, cannot be reached or
 * refused us: the caller goes to the origin). */
int p2p_call_start(struct p2p *p, struct p2p_call *c);
/* Waits until want I of C is answered, C fails, or C's deadline passes. Returns 0 (check
 * want->status), -ETIMEDOUT or the connection's -errno. */
int p2p_call_wait(struct p2p *p, struct p2p_call *c, unsigned i);
/* Ends C: takes it off its connection if it is still there (a timed-out call's bytes are then
 * discarded as they come), notes the peer's latency or failure. OUTCOME: 0 ok, else the
 * enum p2p_err of what went wrong (PE__COUNT: nothing to note). */
void p2p_call_end(struct p2p *p, struct p2p_call *c, int outcome);
/* Whether calls to PEER would be refused now (in back-off, or its probe is out): the caller
 * looks elsewhere rather than try it. */
bool p2p_peer_skipped(struct p2p_peer *peer);
/* The deadline of a GET of BYTES to PEER: its observed latency per MiB (plus its variation)
 * times the MiB, plus a floor. */
uint64_t p2p_deadline_ns(struct p2p_peer *peer, uint64_t bytes);
/* Marks PEER failed (KIND), into back-off; logs when it goes down. */
void p2p_peer_fail(struct p2p *p, struct p2p_peer *peer, enum p2p_err kind, const char *why);
/* Closes every connection of PEER (it left the membership); pending calls fail. */
void p2p_peer_close(struct p2p *p, struct p2p_peer *peer);
/* The client receive thread. */
int p2p_client_start(struct p2p *p);
void p2p_client_stop(struct p2p *p);

/* ---- server.c ------------------------------------------------------------------------------- */

int p2p_server_start(struct p2p *p, struct cache *serve, const char *ip, uint16_t port, char *err,
                     size_t errlen);
void p2p_server_stop(struct p2p *p);

/* ---- auth.c --------------------------------------------------------------------------------- */

/* Reads the key file PATH into P (refusing one that others may read). 0, or -errno with a
 * reason in ERR. */
int p2p_key_load(struct p2p *p, const char *path, char *err, size_t errlen);
void p2p_nonce(uint8_t nonce[P2P_NONCE]);
/* The server's proof (SERVER true) or the client's, over the client's and the server's
 * nonces. */
void p2p_proof(const struct p2p *p, bool server, const uint8_t nc[P2P_NONCE],
               const uint8_t ns[P2P_NONCE], uint8_t out[P2P_PROOF]);
/* Constant-time comparison. */
bool p2p_proof_ok(const uint8_t a[P2P_PROOF], const uint8_t b[P2P_PROOF]);

/* ---- net.c ---------------------------------------------------------------------------------- */

/* Initialises C to wait against CLOCK_MONOTONIC (every deadline of p2p/ is on that clock). */
void p2p_cond_init(pthread_cond_t *c);
/* A socket address for IP:PORT. 0 or -EINVAL. */
int p2p_addr(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);
/* Sets the options of a peer connection: non-blocking, TCP_NODELAY, keepalive probes and a user
 * timeout, so a dead peer is noticed within seconds. */
void p2p_sock_setup(int fd);
/* Sends all of IOV (N entries, modified) on non-blocking FD within TIMEOUT_MS. 0 or -errno. */
int p2p_send_all(int fd, struct iovec *iov, int n, int timeout_ms);
/* Reads exactly LEN bytes from non-blocking FD, waiting at most until DEADLINE (ns). */
int p2p_recv_all(int fd, void *buf, size_t len, uint64_t deadline);

/* The reading state of a connection: the next frame's header and meta. */
struct p2p_rx {
    uint8_t buf[P2P_HDR + P2P_MAX_META]; /* the header, then the meta */
    size_t got;                          /* of header + meta */
    struct p2p_hdr h;                    /* once the header is in */
    bool have_hdr;
};
/* Reads what FD has of the frame head into RX. Returns 1 when the header and meta are in (and
 * their CRC verified), 0 when FD has nothing more now, or -errno: -ECONNRESET (closed),
 * -EPROTO, -EPROTONOSUPPORT, -EMSGSIZE, -EBADMSG (see p2p_dec_hdr). */
int p2p_rx_head(int fd, struct p2p_rx *rx);
/* Reads one whole frame head within DEADLINE (the handshakes). Same returns, -ETIMEDOUT for the
 * deadline; 0 never. */
int p2p_rx_head_wait(int fd, struct p2p_rx *rx, uint64_t deadline);
/* Ready for the next frame. */
static inline void p2p_rx_reset(struct p2p_rx *rx)
{
    rx->got = 0;
    rx->have_hdr = false;
}

#endif
