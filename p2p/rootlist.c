/* p2p/rootlist.c - the rootlist parser, the rendezvous score, the owner of a block and its fan-out
 * tree (rootlist_i.h).
 *
 * Lines are cut at '\n' (a '\r' before it is dropped, as Windows editors leave one); a '#' ends
 * the line's content. The address is everything between the first and the last ':' (an IPv6
 * address in brackets keeps its own colons inside them) and must parse with inet_pton, so a
 * host name or a typo is refused here rather than failing connects later.
 */
#define _GNU_SOURCE /* qsort_r */
#include "p2p/rootlist_i.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "util/le.h"

static int id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* Parses one trimmed entry S (N bytes) into ND. NULL, or why it is malformed. */
static const char *parse_entry(const char *s, size_t n, struct p2p_node *nd)
{
    const char *c1 = memchr(s, ':', n);
    if (c1 == NULL)
        return "expected <id>:<ip>:<port>";
    const char *c2 = s + n;
    while (c2 > c1 && c2[-1] != ':')
        c2--;
    c2--; /* the last ':' */
    if (c2 == c1)
        return "expected <id>:<ip>:<port>";
    size_t il = (size_t)(c1 - s);
    if (il == 0 || il > P2P_MAX_ID)
        return "the id must be 1 to 64 characters";
    for (size_t i = 0; i < il; i++)
        if (!id_char(s[i]))
            return "the id may hold only letters, digits, '.', '_' and '-'";
    memcpy(nd->id, s, il);
    nd->id[il] = '\0';

    const char *a = c1 + 1;
    size_t al = (size_t)(c2 - a);
    int v6 = al >= 2 && a[0] == '[' && a[al - 1] == ']';
    if (v6) {
        a++;
        al -= 2;
    }
    if (al == 0 || al >= sizeof(nd->ip))
        return "the address is not an IP address";
    memcpy(nd->ip, a, al);
    nd->ip[al] = '\0';
    unsigned char bin[16];
    nd->family = v6 ? AF_INET6 : AF_INET;
    if (inet_pton(nd->family, nd->ip, bin) != 1)
        return v6 ? "the address is not an IPv6 address"
                  : "the address is not an IPv4 address "
                    "(an IPv6 one goes in brackets)";

    const char *p = c2 + 1;
    size_t pl = (size_t)(s + n - p);
    unsigned long port = 0;
    if (pl == 0 || pl > 5)
        return "the port must be 1 to 65535";
    for (size_t i = 0; i < pl; i++) {
        if (p[i] < '0' || p[i] > '9')
            return "the port must be 1 to 65535";
        port = port * 10 + (unsigned long)(p[i] - '0');
    }
    if (port == 0 || port > 65535)
        return "the port must be 1 to 65535";
    nd->port = (uint16_t)port;
    snprintf(nd->name, sizeof(nd->name), v6 ? "%s:[%s]:%u" : "%s:%s:%u", nd->id, nd->ip,
             (unsigned)nd->port);
    nd->seed = XXH3_64bits(nd->name, strlen(nd->name));
    return NULL;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct p2p_node *)a)->name, ((const struct p2p_node *)b)->name);
}

/* Duplicates are looked up in two hash tables of the nodes kept so far, by id and by address,
 * rather than by comparing each line with every node before it: the file is parsed again on
 * every reload (every 5 s), and P2P_MAX_NODES lines compared pairwise took seconds. A slot holds
 * a node's index + 1 (0: empty); the tables have twice as many slots as the text has lines (up
 * to the most nodes kept), so kept nodes fill at most half of them. */
#define ADDR_KEY 19

static size_t dup_slots(const char *text, size_t len)
{
    size_t lines = 1, slots = 16;
    for (const char *q = text; len && (q = memchr(q, '\n', (size_t)(text + len - q))) != NULL; q++)
        lines++;
    while (slots < 2 * lines && slots < 2 * P2P_MAX_NODES)
        slots *= 2;
    return slots;
}

/* ND's ip:port as bytes that are equal however the address is written: family, port, IP. */
static void addr_key(const struct p2p_node *nd, uint8_t key[ADDR_KEY])
{
    memset(key, 0, ADDR_KEY);
    key[0] = nd->family == AF_INET6;
    key[1] = (uint8_t)(nd->port >> 8);
    key[2] = (uint8_t)nd->port;
    inet_pton(nd->family, nd->ip, key + 3);
}

int p2p_rootlist_parse(const char *text, size_t len, struct p2p_rootlist *out,
                       p2p_rootlist_warn_fn warn, void *arg)
{
    memset(out, 0, sizeof(*out));
    if (len > P2P_ROOTLIST_MAX_BYTES)
        return -E2BIG;
    unsigned cap = 0, line = 0;
    char why[160];
    int rc = 0;
    uint8_t(*akeys)[ADDR_KEY] = NULL; /* of out->nodes[i], in the order they were kept */
    const size_t mask = dup_slots(text, len) - 1;
    unsigned *by_id = calloc(mask + 1, sizeof(*by_id));
    unsigned *by_addr = calloc(mask + 1, sizeof(*by_addr));
    if (by_id == NULL || by_addr == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    for (size_t pos = 0; pos < len;) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl != NULL);
        line++;
        if (n > P2P_ROOTLIST_MAX_LINE) {
            if (warn)
                warn(arg, line, "line longer than 512 bytes");
            continue;
        }
        const char *hash = memchr(s, '#', n);
        if (hash)
            n = (size_t)(hash - s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
            n--;
        while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
            s++;
            n--;
        }
        if (n == 0)
            continue;
        if (memchr(s, '\0', n) != NULL) {
            if (warn)
                warn(arg, line, "a NUL byte");
            continue;
        }
        struct p2p_node nd;
        memset(&nd, 0, sizeof(nd));
        const char *bad = parse_entry(s, n, &nd);
        if (bad) {
            if (warn) {
                snprintf(why, sizeof(why), "'%.*s': %s", (int)(n > 80 ? 80 : n), s, bad);
                warn(arg, line, why);
            }
            continue;
        }
        nd.line = line;
        uint8_t key[ADDR_KEY];
        addr_key(&nd, key);
        /* the earliest kept node with the id or the address (the id when it has both); the
         * probes end on the empty slots where this node goes if it is kept */
        size_t is = XXH3_64bits(nd.id, strlen(nd.id)) & mask;
        size_t as = XXH3_64bits(key, ADDR_KEY) & mask;
        unsigned first = 0;
        const char *dup = NULL;
        for (; by_id[is]; is = (is + 1) & mask) {
            if (strcmp(out->nodes[by_id[is] - 1].id, nd.id) == 0) {
                first = by_id[is];
                dup = "id";
                break;
            }
        }
        for (; by_addr[as]; as = (as + 1) & mask) {
            if (memcmp(akeys[by_addr[as] - 1], key, ADDR_KEY) == 0) {
                if (dup == NULL || by_addr[as] < first) {
                    first = by_addr[as];
                    dup = "address";
                }
                break;
            }
        }
        if (dup) {
            if (warn) {
                snprintf(why, sizeof(why), "'%s': its %s is already on line %u", nd.name, dup,
                         out->nodes[first - 1].line);
                warn(arg, line, why);
            }
            continue;
        }
        if (out->n == P2P_MAX_NODES) {
            if (warn)
                warn(arg, line, "more than 16384 nodes");
            continue;
        }
        if (out->n == cap) {
            unsigned ncap = cap ? 2 * cap : 16;
            struct p2p_node *nn = realloc(out->nodes, ncap * sizeof(*nn));
            if (nn == NULL) {
                rc = -ENOMEM;
                goto done;
            }
            out->nodes = nn;
            uint8_t(*nk)[ADDR_KEY] = realloc(akeys, ncap * sizeof(*nk));
            if (nk == NULL) {
                rc = -ENOMEM;
                goto done;
            }
            akeys = nk;
            cap = ncap;
        }
        memcpy(akeys[out->n], key, ADDR_KEY);
        out->nodes[out->n++] = nd;
        by_id[is] = by_addr[as] = out->n;
    }
done:
    free(akeys);
    free(by_id);
    free(by_addr);
    if (rc) {
        p2p_rootlist_release(out);
        return rc;
    }
    if (out->n == 0)
        return 0;
    qsort(out->nodes, out->n, sizeof(out->nodes[0]), by_name);
    XXH3_state_t *st = XXH3_createState();
    if (st == NULL) {
        p2p_rootlist_release(out);
        return -ENOMEM;
    }
    XXH3_64bits_reset(st);
    for (unsigned i = 0; i < out->n; i++)
        XXH3_64bits_update(st, out->nodes[i].name, strlen(out->nodes[i].name) + 1);
    out->hash = XXH3_64bits_digest(st);
    if (out->hash == 0)
        out->hash = 1; /* 0 means "no membership" on the wire */
    XXH3_freeState(st);
    return 0;
}

void p2p_rootlist_release(struct p2p_rootlist *rl)
{
    free(rl->nodes);
    memset(rl, 0, sizeof(*rl));
}

uint64_t p2p_score(uint64_t seed, const uint64_t id[2])
{
    /* the identity's bytes in a fixed order, as cache_block_id makes it from its own: nodes of
     * either byte order must agree on every owner */
    uint8_t b[16];
    le_put64(b, id[0]);
    le_put64(b + 8, id[1]);
    return XXH3_64bits_withSeed(b, sizeof(b), seed);
}

/* Whether node A beats node B for ID: a higher score, ties to the smaller name. */
static bool beats(const struct p2p_rootlist *rl, unsigned a, uint64_t sa, unsigned b, uint64_t sb)
{
    return sa > sb || (sa == sb && strcmp(rl->nodes[a].name, rl->nodes[b].name) < 0);
}

int p2p_owner(const struct p2p_rootlist *rl, const unsigned *serving, unsigned n,
              const uint64_t id[2])
{
    return p2p_owner_but(rl, serving, n, id, -1);
}

int p2p_owner_but(const struct p2p_rootlist *rl, const unsigned *serving, unsigned n,
                  const uint64_t id[2], int but)
{
    int best = -1;
    uint64_t top = 0;
    for (unsigned k = 0; k < n; k++) {
        if ((int)serving[k] == but)
            continue;
        uint64_t sc = p2p_score(rl->nodes[serving[k]].seed, id);
        if (best < 0 || beats(rl, serving[k], sc, (unsigned)best, top)) {
            best = (int)serving[k];
            top = sc;
        }
    }
    return best;
}

unsigned p2p_rank(const struct p2p_rootlist *rl, const unsigned *serving, unsigned n,
                  const uint64_t id[2], unsigned node, unsigned limit)
{
    uint64_t mine = p2p_score(rl->nodes[node].seed, id);
    unsigned r = 0;
    bool listed = false;
    for (unsigned k = 0; k < n; k++) {
        if (serving[k] == node)
            listed = true;
        else if (beats(rl, serving[k], p2p_score(rl->nodes[serving[k]].seed, id), node, mine) &&
                 ++r > limit)
            return r;
    }
    return listed ? r : n; /* a node that does not serve ranks after every one that does */
}

unsigned p2p_tree_depth(unsigned rank, unsigned fanout)
{
    unsigned d = 0;
    for (; rank > 0; d++)
        rank = (rank - 1) / fanout;
    return d;
}

struct ranked {
    uint64_t score;
    unsigned node;
};

static int by_rank(const void *x, const void *y, void *arg)
{
    const struct ranked *a = x, *b = y;
    const struct p2p_rootlist *rl = arg;
    return beats(rl, a->node, a->score, b->node, b->score)   ? -1
           : beats(rl, b->node, b->score, a->node, a->score) ? 1
                                                             : 0;
}

int p2p_ranking(const struct p2p_rootlist *rl, const unsigned *serving, unsigned n,
                const uint64_t id[2], unsigned *order)
{
    struct ranked *v = malloc((n ? n : 1) * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    for (unsigned k = 0; k < n; k++)
        v[k] = (struct ranked){p2p_score(rl->nodes[serving[k]].seed, id), serving[k]};
    qsort_r(v, n, sizeof(*v), by_rank, (void *)rl);
    for (unsigned k = 0; k < n; k++)
        order[k] = v[k].node;
    free(v);
    return 0;
}

unsigned p2p_tree_parent_rank(unsigned rank, unsigned n, uint64_t seed, unsigned fanout)
{
    if (rank >= n) /* not serving: under any node but the owner */
        return n > 1 ? 1 + (unsigned)(seed % (n - 1)) : 0;
    return rank ? (rank - 1) / fanout : 0;
}

int p2p_tree_parent(const struct p2p_rootlist *rl, const unsigned *serving, unsigned n,
                    const uint64_t id[2], int node, uint64_t seed, unsigned fanout, unsigned *depth)
{
    if (n < 2 || fanout == 0)
        return -1;
    unsigned q = node >= 0 ? p2p_rank(rl, serving, n, id, (unsigned)node, UINT32_MAX) : n;
    if (q == 0)
        return -1; /* the owner */
    unsigned pr = p2p_tree_parent_rank(q, n, seed, fanout);
    if (depth)
        *depth = q >= n ? p2p_tree_depth(pr, fanout) + 1 : p2p_tree_depth(q, fanout);
    unsigned *order = malloc((size_t)n * sizeof(*order));
    if (order == NULL || p2p_ranking(rl, serving, n, id, order) != 0) {
        free(order);
        return -1;
    }
    unsigned parent = order[pr]; /* n log n: for hot blocks only */
    free(order);
    return (int)parent;
}
