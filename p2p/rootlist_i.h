/* p2p/rootlist_i.h - the rootlist (the cluster's members) and the owner of a block.
 *
 * The rootlist file (g_tier_DadiAddr) lists the cluster's nodes, one a line:
 *
 *     # comment
 *     <id>:<ip>:<port>
 *
 * id is 1..64 of [A-Za-z0-9._-], ip an IPv4 address (or an IPv6 one in brackets), port 1..65535.
 * A '#' starts a comment anywhere; blank lines are skipped. A malformed line, a second line with
 * an id or an address already listed, and lines past P2P_MAX_NODES are reported (with their line
 * numbers) and skipped: never fatal. The membership's hash is of its sorted entries, so two
 * nodes whose files list the same nodes in another order or with other comments agree.
 *
 * The owner of a block is the member with the highest rendezvous score (p2p_score) for the
 * block's identity among those that serve (the identity of the first block of its 4 MiB span, so
 * that a sequential run has one owner: p2p.c): adding or removing one node moves only the blocks
 * it wins or won, and every node computes the same owner without talking.
 */
#ifndef EFC_P2P_ROOTLIST_I_H
#define EFC_P2P_ROOTLIST_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define P2P_ROOTLIST_MAX_BYTES (1u << 20) /* a bigger file is refused */
#define P2P_ROOTLIST_MAX_LINE  512
#define P2P_MAX_NODES          16384
#define P2P_MAX_ID             64

struct p2p_node {
    char id[P2P_MAX_ID + 1];
    char ip[48]; /* as written, without brackets */
    uint16_t port;
    int family;     /* AF_INET or AF_INET6 */
    char name[128]; /* "<id>:<ip>:<port>" (IPv6 in brackets): the node's name everywhere */
    unsigned line;  /* in the file */
    uint64_t seed;  /* its rendezvous seed: a hash of name */
};

struct p2p_rootlist {
    struct p2p_node *nodes; /* sorted by name */
    unsigned n;
    uint64_t hash; /* of the sorted names; 0 for an empty list */
};

/* Called for each line that is skipped: LINE its number, WHY what is wrong with it. */
typedef void (*p2p_rootlist_warn_fn)(void *arg, unsigned line, const char *why);

/* Parses LEN bytes of TEXT into OUT (release it with p2p_rootlist_release). Returns 0 (even when
 * lines were skipped, or none is left), or -E2BIG for a text over P2P_ROOTLIST_MAX_BYTES, or
 * -ENOMEM. */
int p2p_rootlist_parse(const char *text, size_t len, struct p2p_rootlist *out,
                       p2p_rootlist_warn_fn warn, void *arg);
void p2p_rootlist_release(struct p2p_rootlist *rl);

/* The rendezvous score of a node (its seed) for a block (its identity). */
uint64_t p2p_score(uint64_t seed, const uint64_t id[2]);

/* The owner of the block of identity ID: of the nodes SERVING[0..N) (indexes into RL->nodes), the
 * one with the highest p2p_score, a tie going to the smaller name. -1 when N is 0. */
int p2p_owner(const struct p2p_rootlist *rl, const unsigned *serving, unsigned n,
              const uint64_t id[2]);
/* The owner were node BUT (an index into RL->nodes) gone: the block's next owner, the one that
 * owns it once BUT leaves the rootlist. -1 when no other node serves. */
int p2p_owner_but(const struct p2p_rootlist *rl, const unsigned *serving, unsigned n,
                  const uint64_t id[2], int but);

/* The fan-out tree of a hot block. The serving nodes ranked by score for ID (the owner at rank
 * 0, as p2p_owner) form a FANOUT-ary heap: the node at rank q > 0 has the node at rank
 * (q - 1) / FANOUT as its parent, so no node has more than FANOUT children and the depth is
 * log_FANOUT of the cluster's size. A node that does not serve (an agent, or one outside the
 * rootlist) hangs under the node at rank 1 + SEED % (N - 1): any but the owner.
 *
 * p2p_rank: NODE's rank (0: the owner; N when it does not serve), or a number over LIMIT as soon
 * as it is known to be over LIMIT (LIMIT UINT32_MAX: the exact rank). O(N).
 * p2p_tree_depth: the depth of rank RANK (0 for the owner).
 * p2p_ranking: every serving node in rank order into ORDER[0..N). 0 or -ENOMEM. O(N log N).
 * p2p_tree_parent_rank: the rank of the parent of the node at RANK (RANK N or more: a node that
 * does not serve, placed by SEED); RANK > 0.
 * p2p_tree_parent: NODE's parent (an index into RL->nodes; NODE -1: a node not in RL, placed by
 * SEED) and its depth in *DEPTH (may be NULL); -1 when NODE is the owner, N < 2, FANOUT is 0 or
 * without memory. O(N log N): for hot blocks only. */
unsigned p2p_rank(const struct p2p_rootlist *rl, const unsigned *serving, unsigned n,
                  const uint64_t id[2], unsigned node, unsigned limit);
unsigned p2p_tree_depth(unsigned rank, unsigned fanout);
int p2p_ranking(const struct p2p_rootlist *rl, const unsigned *serving, unsigned n,
                const uint64_t id[2], unsigned *order);
unsigned p2p_tree_parent_rank(unsigned rank, unsigned n, uint64_t seed, unsigned fanout);
int p2p_tree_parent(const struct p2p_rootlist *rl, const unsigned *serving, unsigned n,
                    const uint64_t id[2], int node, uint64_t seed, unsigned fanout,
                    unsigned *depth);

#endif
