/* p2p/p2p.h - the distributed cache: nodes of a rootlist share their caches, so that a cluster
 * fetches each block from the origin once (the guide's Configuration 3, 4 and "Scale the
 * cluster").
 *
 * A struct p2p is a block source (cache/blksrc.h) to stack between a node's cache (or, on an
 * agent, its readers) and the origin: a block this node owns, or whose owner cannot answer, comes
 * from the origin; any other comes from its owner, the member of the rootlist with the highest
 * rendezvous score for the block's identity (rootlist_i.h). The owner answers from its memory or
 * disk, or fetches the block from the origin once however many nodes ask (its cache's
 * single-flight), keeps it and answers everyone. A peer that fails, stalls past a deadline
 * derived from its observed latency, answers bytes whose CRC does not verify, or refuses, is
 * skipped for a back-off period and the read goes to the origin: the application never sees a
 * peer's failure.
 *
 * The same struct serves the blocks this node owns to its peers (server.c) from the cache given
 * to p2p_start, and re-reads the rootlist every 5 s (or at p2p_reload). Roles
 * (g_tier_DadiRootClientType): 0 serves and reads through the cluster, 1 serves and reads from
 * the origin itself (the p2p source is then not stacked under its cache), 2 (an agent) reads
 * through the cluster, stores nothing and owns nothing.
 *
 * Peers authenticate each other when a key file is given (g_tier_DadiP2PKeyFile): a mutual
 * HMAC-SHA256 challenge, the key never on the wire or in a log. A peer is never told object-store
 * credentials: each owner fetches with its own. A request for a bucket this node does not mount
 * is refused.
 *
 * Thread-safe after p2p_start; p2p_stop_server and p2p_free must not race with other calls.
 */
#ifndef EFC_P2P_H
#define EFC_P2P_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/blksrc.h"

struct p2p;
struct cache;
struct buf;

struct p2p_config {
    const char *rootlist;  /* the rootlist file (g_tier_DadiAddr): required */
    const char *self_ip;   /* g_tier_DadiP2PIP: this node's address; NULL or "": the rootlist
                              entry whose address is this machine's */
    uint16_t port;         /* g_tier_DadiP2PPort: this node's port (its entry's) */
    int role;              /* g_tier_DadiRootClientType: 0, 1 or 2 */
    const char *key_file;  /* g_tier_DadiP2PKeyFile; NULL or "": no authentication */
    const char *ns;        /* the bucket's name space, "<bucket>.<host>" (cache_config.ns) */
    uint32_t block_size;   /* g_tier_BlockSize */
    uint32_t page_size;    /* the unit of CRCs on the wire (g_tier_DadiCachePageSizeKB) */
    struct blksrc *origin; /* where owned blocks and fallbacks come from (not owned) */
    unsigned reload_ms;    /* how often the rootlist is re-read; 0: 5000 (the guide's) */
    unsigned fanout;       /* g_tier_DadiP2PFanout: peers an owner serves a block to at once
                              besides its children in the block's fan-out tree; 0: 4 */
};

/* Reads the rootlist and the key file and finds this node in the rootlist; starts nothing.
 * Returns 0 and sets *OUT, or -errno with a one-line reason naming the option at fault in ERR
 * (an unreadable rootlist: "g_tier_DadiAddr: cannot read rootlist '/etc/efc/rootlist': No such
 * file or directory"; a key file others can read; several rootlist entries on this machine
 * without g_tier_DadiP2PIP). */
int p2p_new(const struct p2p_config *cfg, struct p2p **out, char *err, size_t errlen);

/* The block source (lives as long as P). */
struct blksrc *p2p_src(struct p2p *p);

/* Starts the threads: the rootlist reloads, the peer connections' reader and, when this node
 * is in the rootlist (an agent too, which answers that it serves nothing), the server of its
 * blocks on its address, reading them through SERVE (NULL for an agent; not owned: it must stay
 * until p2p_stop_server). Returns 0, or -errno with a one-line reason in ERR ("g_tier_DadiP2PPort:
 * cannot listen on 127.0.0.21:17980: Address already in use"). */
int p2p_start(struct p2p *p, struct cache *serve, char *err, size_t errlen);

/* Stops serving peers: the listener closes, requests in progress end. Call before the serving
 * cache goes; the source (p2p_src) keeps working. Idempotent. */
void p2p_stop_server(struct p2p *p);

/* Stops everything and frees P (NULL: no-op). No fetch may be running. */
void p2p_free(struct p2p *p);

/* Re-reads the rootlist now (/v1/action/reload_rootlist). Returns 0 with a one-line summary in
 * MSG ("4 members (2 added, 1 removed), this node '2:127.0.0.22:17980'"), or -errno with the
 * reason (the last good membership is kept). */
int p2p_reload(struct p2p *p, char *msg, size_t msglen);

/* Warm-up of block INDEX of (key, etag, size): at its owner (a GET that asks it to store the
 * block and send nothing back), or in CACHE when this node owns it; with ALSO_LOCAL, in CACHE
 * too (through the owner). When the owner cannot, the block is filled here. 0 or -errno. */
int p2p_fill(struct p2p *p, struct cache *cache, const char *key, const char *etag, uint64_t size,
             uint64_t index, bool also_local);

/* The name ("<id>:<ip>:<port>") of the node that owns block INDEX of (key, etag) in the current
 * membership into NAME, "" when no node serves. For diagnosis and tests. */
void p2p_owner_name(struct p2p *p, const char *key, const char *etag, uint64_t index, char *name,
                    size_t len);

/* What /v1/cluster shows (mgmt/ turns it into JSON). */
#define P2P_INFO_MAX_MEMBERS 4096
struct p2p_member_info {
    char name[128]; /* "<id>:<ip>:<port>" */
    char id[65];
    char address[64]; /* "<ip>:<port>" */
    bool self;
    int role;          /* what it said (enum p2p_role); -1 before it was heard from */
    const char *state; /* "self", "up", "down", "unknown" (never connected yet) */
    uint64_t members;  /* the membership hash it reported; 0 before it was heard from */
    bool mismatch;     /* it reported a membership other than ours */
    double latency_ms; /* smoothed latency of its answers, per MiB; 0 before any */
    uint64_t requests, errors, bytes; /* this node's requests to it */
    char last_error[96];
};
struct p2p_cluster_info {
    char rootlist[4096];
    char self[128]; /* this node's name, "" when it is not in the rootlist */
    int role;
    uint64_t members;     /* the membership hash */
    uint64_t loaded_unix; /* when the membership was last (re)loaded */
    unsigned nmembers;
    unsigned mismatched;            /* peers whose membership differs */
    bool auth;                      /* peer authentication is on */
    unsigned ninfo;                 /* members[0..ninfo) filled (at most P2P_INFO_MAX_MEMBERS) */
    struct p2p_member_info *member; /* malloc'd by p2p_get_cluster; free it */
};
/* Fills CI. 0 or -ENOMEM. */
int p2p_get_cluster(struct p2p *p, struct p2p_cluster_info *ci);

/* Counters, for tests and the metrics below. */
struct p2p_stats {
    uint64_t requests;    /* GETs sent to peers */
    uint64_t peer_hits;   /* blocks peers answered from their memory or disk */
    uint64_t peer_misses; /* blocks peers fetched from the origin for us */
    uint64_t peer_bytes;  /* bytes received from peers, verified */
    uint64_t local_owned; /* blocks this node owns, fetched from the origin here */
    uint64_t fallbacks;   /* blocks read from the origin because their owner failed */
    uint64_t relayed;     /* blocks a hot owner sent us to our parent in its tree for */
    uint64_t failovers;   /* blocks asked of their next owner, their owner in back-off */
    uint64_t err_connect, err_timeout, err_reset, err_protocol, err_corrupt, err_refused, err_busy,
        err_auth, err_stale;
    uint64_t served_requests, served_blocks, served_hits, served_misses, served_bytes;
    uint64_t served_errors, served_busy, origin_cap_waits;
    uint64_t served_hot;          /* GETs answered HOT: the block's fan-out was full */
    uint64_t served_relays;       /* RELAY GETs served: blocks passed on down a fan-out tree */
    uint64_t fanout_max;          /* the most peers served one block at once (children aside) */
    uint64_t conns_in, conns_out; /* gauges */
    uint64_t reloads, rootlist_errors, mismatches;
};
void p2p_get_stats(struct p2p *p, struct p2p_stats *st);
/* Appends efc_p2p_* Prometheus lines to OUT. */
int p2p_write_metrics(struct p2p *p, struct buf *out);

#endif
