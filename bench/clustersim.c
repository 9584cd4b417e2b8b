/* bench/clustersim.c - the distributed cache at 100 to 5,000 nodes, simulated with efc's own
 * functions: the rootlist parser, the block identity (cache_block_id), the span that decides an
 * owner (4 MiB of 1 MiB blocks, as p2p_span_id), the owner (p2p_owner), and the fan-out tree of a
 * hot block (p2p_ranking, p2p_tree_parent_rank, p2p_tree_parent). No mounts, no sockets.
 *
 * For each cluster size N it reports:
 *   - owned:  the dataset's spans per node, max / mean (and min / mean): the origin fetches and
 *             the disk each node gives the cluster;
 *   - churn:  the spans whose owner changes when 1, 10 and 100 nodes leave or join, against the
 *             k / N that rendezvous hashing promises, and whether every span that moved came
 *             from a leaver or went to a joiner (it must: nothing else may move);
 *   - load:   a fleet-wide model load (every node reads every span of the model at once): the
 *             origin's GETs (one per span: each owner fetches its spans once, however many ask)
 *             and each node's bytes sent to peers, busiest / mean and busiest / model size,
 *             without a fan-out limit (each owner sends its spans to all N - 1) and with the
 *             fan-out tree (an owner sends to its FANOUT children and the first FANOUT others to
 *             ask; every later asker is answered HOT and gets the span from its parent);
 *   - hot:    one block every node reads at once: the most copies one node sends, and the
 *             tree's depth (the hops the last node waits for).
 *
 * What it does not model: time and bandwidth (who finishes when; a node's link; TCP), arrivals
 * spread over time (an owner serves everyone itself while fewer than FANOUT wait), failures,
 * back-off and fallbacks to the origin, caches too small to keep what a node relays, agents,
 * and rootlists that differ between nodes. bench/cluster.sh measures real daemons for those.
 *
 * --check runs small sizes and exits 1 when a bound is broken (the test in CI):
 *   owned max / mean within the binomial spread's 5 standard deviations, churn exact (all of the
 *   leavers' spans move and no other, only to joiners) and within 5 standard deviations of
 *   k / N, every node's sends bounded by 2 x FANOUT per span with the tree, the tree's depth
 *   ceil(log_FANOUT N) + 1 at most.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "p2p/rootlist_i.h"

#define NS         "dataset.oss-cn-hangzhou.aliyuncs.com"
#define ETAG       "\"5b3e2a1c\""
#define SPAN_BYTES (4ull << 20)
#define FILE_SPANS 64 /* 256 MiB files */

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "clustersim: FAILED: " __VA_ARGS__);                                   \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static uint64_t rng_state = 0x5eed5eed5eedull;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A rootlist of the nodes numbered FROM..TO - 1, as a node would read it (p2p_rootlist_parse):
 * "<id>:10.x.y.z:17980". */
static void members(unsigned from, unsigned to, struct p2p_rootlist *rl)
{
    size_t cap = (size_t)(to - from) * 40 + 64, o = 0;
    char *text = malloc(cap);
    if (text == NULL)
        abort();
    for (unsigned i = from; i < to; i++)
        o += (size_t)snprintf(text + o, cap - o, "node%05u:10.%u.%u.%u:17980\n", i, 1 + i / 65536,
                              i / 256 % 256, i % 256);
    if (p2p_rootlist_parse(text, o, rl, NULL, NULL) != 0 || rl->n != to - from)
        abort();
    free(text);
}

/* The identity that decides the owner of span S of the dataset (file S / FILE_SPANS). */
static void span_id(const char *prefix, uint64_t s, uint64_t id[2])
{
    char key[64];
    snprintf(key, sizeof(key), "%s/part-%06llu.bin", prefix, (unsigned long long)(s / FILE_SPANS));
    cache_block_id(NS, key, ETAG, (s % FILE_SPANS) * (SPAN_BYTES >> 20), id);
}

/* The number of the node at index I of RL (its name is "nodeNNNNN:..."). */
static unsigned num(const struct p2p_rootlist *rl, int i)
{
    return (unsigned)strtoul(rl->nodes[i].name + 4, NULL, 10);
}

static unsigned *all_serving(unsigned n)
{
    unsigned *v = malloc((n ? n : 1) * sizeof(*v));
    if (v == NULL)
        abort();
    for (unsigned i = 0; i < n; i++)
        v[i] = i;
    return v;
}

struct spread {
    double max_mean, min_mean;
};

static struct spread spread_of(const uint64_t *v, unsigned n)
{
    uint64_t mx = 0, mn = UINT64_MAX, sum = 0;
    for (unsigned i = 0; i < n; i++) {
        sum += v[i];
        mx = v[i] > mx ? v[i] : mx;
        mn = v[i] < mn ? v[i] : mn;
    }
    double mean = (double)sum / n;
    return (struct spread){mean > 0 ? mx / mean : 0, mean > 0 ? mn / mean : 0};
}

struct result {
    unsigned n;
    uint64_t spans;
    struct spread owned;
    double moved_leave[3], moved_join[3]; /* spans moved / (k / N) */
    unsigned ks[3];
    uint64_t model_spans, origin_gets, origin_gets_nocluster;
    struct spread served_flat, served_tree;
    double busiest_flat, busiest_tree; /* busiest node's bytes sent / model bytes */
    unsigned hot_flat, hot_tree, hot_depth;
};

/* Owners of SAMPLE spans under RL; the owner's node number per span into OUT. */
static void owners(const struct p2p_rootlist *rl, uint64_t sample, unsigned *out)
{
    unsigned *serving = all_serving(rl->n);
    for (uint64_t s = 0; s < sample; s++) {
        uint64_t id[2];
        span_id("train", s, id);
        out[s] = num(rl, p2p_owner(rl, serving, rl->n, id));
    }
    free(serving);
}

static void churn(struct result *r, const struct p2p_rootlist *rl, uint64_t sample,
                  const unsigned *before, bool check)
{
    unsigned n = r->n;
    unsigned *after = malloc(sample * sizeof(*after));
    if (after == NULL)
        abort();
    for (unsigned t = 0; t < 3; t++) {
        unsigned k = r->ks[t];
        if (k == 0)
            continue;
        /* the first K nodes leave */
        struct p2p_rootlist less;
        members(k, n, &less);
        owners(&less, sample, after);
        uint64_t moved = 0, wrong = 0, theirs = 0;
        for (uint64_t s = 0; s < sample; s++) {
            if (after[s] != before[s])
                moved++;
            if (after[s] != before[s] && before[s] >= k)
                wrong++; /* a span of a node that stayed moved */
            theirs += before[s] < k;
        }
        p2p_rootlist_release(&less);
        r->moved_leave[t] = (double)moved / sample / ((double)k / n);
        CHECK(wrong == 0, "%u of %u leave: %llu spans of staying nodes moved", k, n,
              (unsigned long long)wrong);
        CHECK(moved == theirs, "%u of %u leave: %llu of their %llu spans moved", k, n,
              (unsigned long long)moved, (unsigned long long)theirs);
        double e = (double)sample * k / n; /* spans expected to move: Poisson-like spread */
        double tol = (5 * sqrt(e) + 1) / e;
        /* K nodes join */
        struct p2p_rootlist more;
        members(0, n + k, &more);
        owners(&more, sample, after);
        moved = wrong = 0;
        for (uint64_t s = 0; s < sample; s++) {
            if (after[s] != before[s])
                moved++;
            if (after[s] != before[s] && after[s] < n)
                wrong++; /* moved to a node that was there already */
        }
        p2p_rootlist_release(&more);
        r->moved_join[t] = (double)moved / sample / ((double)k / (n + k));
        CHECK(wrong == 0, "%u join %u: %llu spans moved between old nodes", k, n,
              (unsigned long long)wrong);
        if (check) {
            CHECK(fabs(r->moved_leave[t] - 1) < tol, "%u of %u leave: moved %.2f x k/N", k, n,
                  r->moved_leave[t]);
            double ej = (double)sample * k / (n + k), tj = (5 * sqrt(ej) + 1) / ej;
            CHECK(fabs(r->moved_join[t] - 1) < tj, "%u join %u: moved %.2f x k/N", k, n,
                  r->moved_join[t]);
        }
    }
    free(after);
}

/* Scratch for one span's reading. */
struct herd {
    unsigned n, fanout;
    unsigned *serving, *order, *rank, *arrive;
    uint64_t *flat, *tree; /* bytes each node sends, without and with the fan-out tree */
};

static void herd_init(struct herd *h, unsigned n, unsigned fanout)
{
    h->n = n;
    h->fanout = fanout;
    h->serving = all_serving(n);
    h->order = malloc(n * sizeof(unsigned));
    h->rank = malloc(n * sizeof(unsigned));
    h->arrive = malloc(n * sizeof(unsigned));
    h->flat = calloc(n, sizeof(uint64_t));
    h->tree = calloc(n, sizeof(uint64_t));
    if (!h->order || !h->rank || !h->arrive || !h->flat || !h->tree)
        abort();
}

static void herd_free(struct herd *h)
{
    free(h->serving);
    free(h->order);
    free(h->rank);
    free(h->arrive);
    free(h->flat);
    free(h->tree);
}

/* Every node but the owner reads the span of identity ID (BYTES long) at once, in a random
 * order: the owner serves its children in the span's tree and the first FANOUT others (as
 * server.c's classify does); every later one is answered HOT and gets the span from its parent
 * (as p2p.c's relay does). Adds each node's sends to h->flat and h->tree. Returns the depth of
 * the deepest node served (1: the owner served everyone). VERIFY: check the daemon's own
 * functions give the same owner and parents. */
static unsigned herd_read(struct herd *h, const struct p2p_rootlist *rl, const uint64_t id[2],
                          uint64_t bytes, bool verify)
{
    unsigned n = h->n, k = h->fanout;
    if (p2p_ranking(rl, h->serving, n, id, h->order) != 0)
        abort();
    for (unsigned q = 0; q < n; q++)
        h->rank[h->order[q]] = q;
    unsigned owner = h->order[0];
    if (verify)
        CHECK(p2p_owner(rl, h->serving, n, id) == (int)owner, "owner differs");
    h->flat[owner] += (uint64_t)(n - 1) * bytes;
    unsigned na = 0;
    for (unsigned i = 0; i < n; i++)
        if (i != owner)
            h->arrive[na++] = i;
    for (unsigned i = na; i > 1; i--) {
        unsigned j = (unsigned)(rng() % i), t = h->arrive[i - 1];
        h->arrive[i - 1] = h->arrive[j];
        h->arrive[j] = t;
    }
    unsigned others = 0, depth = 1;
    for (unsigned a = 0; a < na; a++) {
        unsigned q = h->rank[h->arrive[a]];
        if (q <= k || others < k) {
            h->tree[owner] += bytes;
            others += q > k;
            continue;
        }
        unsigned pr = p2p_tree_parent_rank(q, n, 0, k);
        if (verify && a < 8) {
            int par = p2p_tree_parent(rl, h->serving, n, id, (int)h->arrive[a], 0, k, NULL);
            CHECK(par == (int)h->order[pr], "tree parent differs");
        }
        h->tree[h->order[pr]] += bytes;
        unsigned d = p2p_tree_depth(q, k);
        depth = d > depth ? d : depth;
    }
    return depth;
}

/* Every node reads the model's SPANS spans at once. */
static void model_load(struct result *r, const struct p2p_rootlist *rl, unsigned fanout,
                       uint64_t spans, bool check)
{
    unsigned n = rl->n;
    struct herd h;
    herd_init(&h, n, fanout);
    for (uint64_t s = 0; s < spans; s++) {
        uint64_t id[2];
        span_id("model", s, id);
        herd_read(&h, rl, id, SPAN_BYTES, s < 2);
    }
    r->model_spans = spans;
    r->origin_gets = spans; /* one GET per span, at its owner (single-flight) */
    r->origin_gets_nocluster = spans * n;
    r->served_flat = spread_of(h.flat, n);
    r->served_tree = spread_of(h.tree, n);
    uint64_t bf = 0, bt = 0;
    for (unsigned i = 0; i < n; i++) {
        bf = h.flat[i] > bf ? h.flat[i] : bf;
        bt = h.tree[i] > bt ? h.tree[i] : bt;
    }
    r->busiest_flat = (double)bf / (spans * SPAN_BYTES);
    r->busiest_tree = (double)bt / (spans * SPAN_BYTES);
    if (check)
        CHECK(bt <= 2 * fanout * spans * SPAN_BYTES, "a node sent %.1f x the model with the tree",
              r->busiest_tree);
    herd_free(&h);
}

/* One block every node reads at once. */
static void hot_block(struct result *r, const struct p2p_rootlist *rl, unsigned fanout, bool check)
{
    unsigned n = rl->n;
    struct herd h;
    herd_init(&h, n, fanout);
    uint64_t id[2];
    cache_block_id(NS, "model/tokenizer.json", ETAG, 0, id);
    unsigned depth = herd_read(&h, rl, id, 1, true);
    uint64_t mx = 0;
    for (unsigned i = 0; i < n; i++)
        mx = h.tree[i] > mx ? h.tree[i] : mx;
    r->hot_flat = n - 1;
    r->hot_tree = (unsigned)mx;
    r->hot_depth = depth;
    if (check) {
        unsigned bound = 1;
        for (uint64_t c = 1; c < n; c *= fanout)
            bound++;
        CHECK(mx <= 2 * fanout, "hot block: a node sent %llu copies", (unsigned long long)mx);
        CHECK(depth <= bound, "hot block: depth %u over %u", depth, bound);
    }
    herd_free(&h);
}

static void run(struct result *r, unsigned n, unsigned per_node, uint64_t churn_sample,
                unsigned fanout, uint64_t model_spans, bool check)
{
    memset(r, 0, sizeof(*r));
    r->n = n;
    struct p2p_rootlist rl;
    members(0, n, &rl);
    r->spans = (uint64_t)per_node * n;
    uint64_t *owned = calloc(n, sizeof(*owned));
    unsigned *own = malloc(r->spans * sizeof(*own));
    if (owned == NULL || own == NULL)
        abort();
    owners(&rl, r->spans, own);
    for (uint64_t s = 0; s < r->spans; s++)
        owned[own[s]]++;
    r->owned = spread_of(owned, n);
    if (check) {
        /* the binomial spread: mean m, deviation about sqrt(m) */
        double m = per_node, bound = 1 + 5 * sqrt(m) / m;
        CHECK(r->owned.max_mean <= bound, "N=%u: owned max/mean %.2f over %.2f", n,
              r->owned.max_mean, bound);
    }
    static const unsigned ks[3] = {1, 10, 100};
    for (unsigned t = 0; t < 3; t++)
        r->ks[t] = ks[t] < n / 2 ? ks[t] : 0;
    churn(r, &rl, churn_sample < r->spans ? churn_sample : r->spans, own, check);
    model_load(r, &rl, fanout, model_spans, check);
    hot_block(r, &rl, fanout, check);
    free(owned);
    free(own);
    p2p_rootlist_release(&rl);
}

static void print_table(FILE *f, const struct result *r, unsigned nr, unsigned fanout,
                        uint64_t model_spans)
{
    fprintf(f,
            "| nodes | spans owned: max/mean (min/mean) | moved when 1 / 10 / 100 leave (x k/N) "
            "| ... join (x k/N) | origin GETs, model load (cluster off) | sends per node, "
            "max/mean: flat / tree | busiest node sends (x model): flat / tree | hot block: most "
            "copies one node sends, flat / tree (depth) |\n");
    fprintf(f, "|---:|---|---|---|---|---|---|---|\n");
    for (unsigned i = 0; i < nr; i++) {
        const struct result *x = &r[i];
        char lv[64] = "", jn[64] = "";
        for (unsigned t = 0; t < 3; t++) {
            char a[16], b[16];
            snprintf(a, sizeof(a), x->ks[t] ? "%.2f" : "-", x->moved_leave[t]);
            snprintf(b, sizeof(b), x->ks[t] ? "%.2f" : "-", x->moved_join[t]);
            strcat(lv, a);
            strcat(jn, b);
            if (t < 2) {
                strcat(lv, " / ");
                strcat(jn, " / ");
            }
        }
        fprintf(f,
                "| %u | %.2f (%.2f) | %s | %s | %llu (%llu) | %.2f / %.2f | %.1f / %.2f | %u / %u "
                "(%u) |\n",
                x->n, x->owned.max_mean, x->owned.min_mean, lv, jn,
                (unsigned long long)x->origin_gets, (unsigned long long)x->origin_gets_nocluster,
                x->served_flat.max_mean, x->served_tree.max_mean, x->busiest_flat, x->busiest_tree,
                x->hot_flat, x->hot_tree, x->hot_depth);
    }
    fprintf(f,
            "\nSpans of 4 MiB (the unit of ownership); %u spans per node for the balance; the "
            "model is %llu spans (%llu MiB) read by every node at once; fan-out %u.\n",
            r[0].spans ? (unsigned)(r[0].spans / r[0].n) : 0, (unsigned long long)model_spans,
            (unsigned long long)(model_spans * (SPAN_BYTES >> 20)), fanout);
}

static void write_dat(const char *path, const struct result *r, unsigned nr)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "clustersim: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    fprintf(f, "# nodes owned_max_mean sends_flat_max_mean sends_tree_max_mean busiest_flat "
               "busiest_tree hot_flat hot_tree hot_depth\n");
    for (unsigned i = 0; i < nr; i++)
        fprintf(f, "%u %.4f %.4f %.4f %.4f %.4f %u %u %u\n", r[i].n, r[i].owned.max_mean,
                r[i].served_flat.max_mean, r[i].served_tree.max_mean, r[i].busiest_flat,
                r[i].busiest_tree, r[i].hot_flat, r[i].hot_tree, r[i].hot_depth);
    fclose(f);
}

static void usage(void)
{
    fprintf(stderr, "usage: efc-clustersim [--nodes N,N,...] [--spans-per-node K] [--fanout F]\n"
                    "                      [--model-spans S] [--dat FILE] [--check]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned nodes[16] = {100, 1000, 5000}, nn = 3, per_node = 64, fanout = 4;
    uint64_t model_spans = 256, churn_sample = 20000;
    const char *dat = NULL;
    bool check = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--check") == 0) {
            check = true;
            nodes[0] = 100, nodes[1] = 1000, nn = 2;
            per_node = 40, model_spans = 16, churn_sample = 10000;
        } else if (v && strcmp(a, "--nodes") == 0) {
            nn = 0;
            for (char *p = argv[++i]; *p && nn < 16;) {
                unsigned long x = strtoul(p, &p, 10);
                if (x < 2 || x > P2P_MAX_NODES - 100)
                    usage();
                nodes[nn++] = (unsigned)x;
                if (*p == ',')
                    p++;
                else if (*p)
                    usage();
            }
        } else if (v && strcmp(a, "--spans-per-node") == 0) {
            per_node = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (v && strcmp(a, "--fanout") == 0) {
            fanout = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (v && strcmp(a, "--model-spans") == 0) {
            model_spans = strtoull(argv[++i], NULL, 10);
        } else if (v && strcmp(a, "--dat") == 0) {
            dat = argv[++i];
        } else {
            usage();
        }
    }
    if (per_node == 0 || fanout == 0 || fanout > 16 || model_spans == 0)
        usage();
    struct result r[16];
    for (unsigned i = 0; i < nn; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        run(&r[i], nodes[i], per_node, churn_sample, fanout, model_spans, check);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fprintf(stderr, "clustersim: %u nodes simulated in %.1f s\n", nodes[i],
                (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    print_table(stdout, r, nn, fanout, model_spans);
    if (dat)
        write_dat(dat, r, nn);
    if (failures) {
        fprintf(stderr, "clustersim: %d bound(s) broken\n", failures);
        return 1;
    }
    return 0;
}
