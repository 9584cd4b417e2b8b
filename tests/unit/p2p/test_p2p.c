/* tests/unit/p2p/test_p2p.c - a cluster of nodes in one process: each a real cache over a real
 * P2P layer over its own fake origin (tests/unit/cache/fake_source.h: deterministic bytes, so
 * every node's origin serves the same object), talking over loopback addresses 127.0.0.21...
 * No mounts: the protocol, the owners, single-flight across nodes, failures and fallbacks,
 * authentication, reloads and roles, at a size the thread sanitizer can run.
 */
#define _GNU_SOURCE
#include "../cache/fake_source.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "p2p/p2p.h"
#include "p2p/p2p_i.h"
#include "p2p/wire_i.h"

#define KiB  1024ull
#define MiB  (1024ull * 1024ull)
#define NS   "testbucket.oss-cn-hangzhou.aliyuncs.com"
#define MAXN 8

struct node {
    struct fake origin; /* counts what this node fetched from "the object store" */
    struct p2p *p;
    struct cache *c;
    char ip[32];
    int role;
};

struct env {
    char dir[64], rootlist[128], key[128], key2[128];
    uint16_t port;
    int n;
    unsigned fanout; /* p2p_config.fanout of the nodes started (0: the default) */
    struct node node[MAXN];
};

/* A port free on every address the test uses. */
static uint16_t free_port(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        inet_pton(AF_INET, "127.0.0.21", &a.sin_addr);
        socklen_t l = sizeof(a);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
            getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
            close(fd);
            continue;
        }
        uint16_t port = ntohs(a.sin_port);
        close(fd);
        bool ok = true;
        for (int i = 0; i < MAXN + 1 && ok; i++) {
            char ip[32];
            snprintf(ip, sizeof(ip), "127.0.0.%d", 21 + i);
            int f2 = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in b = {.sin_family = AF_INET, .sin_port = htons(port)};
            inet_pton(AF_INET, ip, &b.sin_addr);
            ok = bind(f2, (struct sockaddr *)&b, sizeof(b)) == 0;
            close(f2);
        }
        if (ok)
            return port;
    }
    fail_msg("no port free on 127.0.0.21..%d", 21 + MAXN);
    return 0;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

/* The rootlist naming nodes 0..N-1 (by their ids 1..N). */
static void write_rootlist(struct env *e, int n)
{
    char text[2048] = "# test cluster\n";
    for (int i = 0; i < n; i++) {
        char line[96];
        snprintf(line, sizeof(line), "%d:127.0.0.%d:%u\n", i + 1, 21 + i, (unsigned)e->port);
        strcat(text, line);
    }
    write_text(e->rootlist, text, 0644);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    strcpy(e->dir, "/tmp/efc-p2p-test-XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    snprintf(e->rootlist, sizeof(e->rootlist), "%s/rootlist", e->dir);
    snprintf(e->key, sizeof(e->key), "%s/key", e->dir);
    snprintf(e->key2, sizeof(e->key2), "%s/key2", e->dir);
    write_text(e->key, "a shared secret of the test cluster\n", 0600);
    write_text(e->key2, "another secret, not the cluster's\n", 0600);
    e->port = free_port();
    *state = e;
    return 0;
}

static void node_stop(struct node *nd)
{
    p2p_stop_server(nd->p);
    cache_free(nd->c);
    nd->c = NULL;
    p2p_free(nd->p);
    nd->p = NULL;
}

static int teardown(void **state)
{
    struct env *e = *state;
    for (int i = 0; i < MAXN; i++)
        if (e->node[i].p)
            node_stop(&e->node[i]);
    rm_rf(e->dir);
    free(e);
    return 0;
}

/* Starts node I (address 127.0.0.21+I) with ROLE and KEY (NULL: no authentication); MEM bytes
 * of memory cache (0 and role 2: none). Returns p2p_new's or p2p_start's error. */
static int node_start(struct env *e, int i, int role, const char *key, uint64_t mem)
{
    struct node *nd = &e->node[i];
    memset(nd, 0, sizeof(*nd));
    nd->origin.block_size = 1 << 20;
    struct blksrc *origin = fake_source(&nd->origin, 1);
    snprintf(nd->ip, sizeof(nd->ip), "127.0.0.%d", 21 + i);
    nd->role = role;
    struct p2p_config pc = {.rootlist = e->rootlist,
                            .self_ip = nd->ip,
                            .port = e->port,
                            .role = role,
                            .key_file = key,
                            .ns = NS,
                            .block_size = 1 << 20,
                            .page_size = 16 * KiB,
                            .origin = origin,
                            .fanout = e->fanout};
    char err[512];
    int rc = p2p_new(&pc, &nd->p, err, sizeof(err));
    if (rc) {
        print_message("p2p_new: %s\n", err);
        return rc;
    }
    if (role != 2 && mem) {
        struct cache_config cc = {.mem_bytes = mem,
                                  .block_size = 1 << 20,
                                  .page_size = 16 * KiB,
                                  .io_threads = 4,
                                  .ns = NS};
        rc = cache_new(&cc, role == 1 ? origin : p2p_src(nd->p), &nd->c, err, sizeof(err));
        assert_int_equal(rc, 0);
    }
    rc = p2p_start(nd->p, nd->c, err, sizeof(err));
    if (rc)
        print_message("p2p_start: %s\n", err);
    return rc;
}

static void cluster(struct env *e, int n, const char *key)
{
    write_rootlist(e, n);
    e->n = n;
    for (int i = 0; i < n; i++)
        assert_int_equal(node_start(e, i, 0, key, 64 * MiB), 0);
}

/* A key of an object of SIZE bytes of which every one of nodes 0..N-1 owns some span in node
 * 0's membership: the nodes' names hold the test's port, so ownership differs from run to run
 * and a fixed key might leave a node out. Returns KEY. */
static const char *spread_key(struct env *e, int n, uint64_t size, char *key, size_t len)
{
    for (int k = 0; k < 1000; k++) {
        snprintf(key, len, "obj-%d.bin", k);
        int owns[MAXN] = {0};
        for (uint64_t b = 0; b * MiB < size; b += 4) {
            char name[128];
            p2p_owner_name(e->node[0].p, key, "\"e1\"", b, name, sizeof(name));
            for (int i = 0; i < n; i++)
                if (e->node[i].ip[0] && strstr(name, e->node[i].ip))
                    owns[i]++;
        }
        int all = 1;
        for (int i = 0; i < n; i++)
            all &= owns[i] > 0;
        if (all)
            return key;
    }
    fail_msg("no key spreads over %d nodes", n);
    return NULL;
}

static uint64_t origin_bytes(struct env *e)
{
    uint64_t b = 0;
    for (int i = 0; i < MAXN; i++)
        b += __atomic_load_n(&e->node[i].origin.bytes, __ATOMIC_RELAXED);
    return b;
}

static void assert_adds_up(struct cache *c)
{
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.read, st.read_hit + st.read_miss + st.direct_read);
    assert_int_equal(st.read_bytes, st.read_hit_bytes + st.read_miss_bytes + st.direct_read_bytes);
}

/* Reads all of (key, etag) of SIZE through C in 1 MiB reads, checking every byte. */
static void read_all(struct cache *c, const char *key, const char *etag, uint64_t size)
{
    uint8_t *buf = malloc(MiB);
    for (uint64_t off = 0; off < size; off += MiB) {
        uint64_t n = size - off < MiB ? size - off : MiB;
        assert_int_equal(cache_read(c, key, etag, size, off, MiB, buf), (ssize_t)n);
        assert_int_equal(fake_check(key, etag, off, buf, n), -1);
    }
    free(buf);
}

struct reader {
    struct cache *c;
    const char *key;
    uint64_t size;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    read_all(r->c, r->key, "\"e1\"", r->size);
    return NULL;
}

/* Every node reads the same object at once: the origins see it once, every byte is right, the
 * counters add up and the root_read_source bytes of all nodes make the object. */
static void test_read_once(void **state)
{
    struct env *e = *state;
    const uint64_t size = 24 * MiB + 12345;
    cluster(e, 3, NULL);
    char key[32];
    spread_key(e, 3, size, key, sizeof(key));
    pthread_t t[3];
    struct reader r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (struct reader){e->node[i].c, key, size};
        assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(origin_bytes(e), size);
    uint64_t root = 0;
    for (int i = 0; i < 3; i++) {
        struct cache_stats st;
        cache_get_stats(e->node[i].c, &st);
        assert_adds_up(e->node[i].c);
        assert_int_equal(st.read_bytes, size);
        assert_int_equal(st.direct_read, 0);
        root += st.root_read_source_bytes;
        struct p2p_stats ps;
        p2p_get_stats(e->node[i].p, &ps);
        assert_int_equal(ps.fallbacks, 0);
        assert_int_equal(ps.err_corrupt + ps.err_protocol + ps.err_timeout, 0);
    }
    assert_int_equal(root, size);
    /* every node served some of it: the owners are spread */
    for (int i = 0; i < 3; i++) {
        struct p2p_stats ps;
        p2p_get_stats(e->node[i].p, &ps);
        assert_true(ps.served_blocks > 0);
    }
    /* A second reading is served from the caches: no origin byte. */
    read_all(e->node[1].c, key, "\"e1\"", size);
    assert_int_equal(origin_bytes(e), size);
}

/* Prefetch runs go through the owners, one request per owner per run. */
static void test_prefetch_through_owners(void **state)
{
    struct env *e = *state;
    const uint64_t size = 32 * MiB;
    cluster(e, 3, NULL);
    struct cache *c = e->node[0].c;
    assert_int_equal(cache_prefetch(c, "pf.bin", "\"e1\"", size, 0, size, 0), 0);
    uint8_t *buf = malloc(size);
    double deadline = now_sec() + 60;
    while (cache_read_local(c, "pf.bin", "\"e1\"", size, 0, size, buf) != (ssize_t)size) {
        if (now_sec() > deadline)
            fail_msg("the prefetch of 32 blocks did not land in 60 s");
        usleep(2000);
    }
    assert_int_equal(fake_check("pf.bin", "\"e1\"", 0, buf, size), -1);
    free(buf);
    assert_int_equal(origin_bytes(e), size);
    struct p2p_stats ps;
    p2p_get_stats(e->node[0].p, &ps);
    /* 8 runs of 4 blocks, each owned by one node (4 MiB spans): at most 8 requests to peers */
    assert_true(ps.requests <= 8);
    assert_int_equal(ps.peer_hits + ps.peer_misses + ps.local_owned, 32);
}

/* A peer that is gone: its blocks come from the origin (direct reads), every byte right, and
 * the peer goes into back-off (one failed connect, not one per block). */
static void test_peer_down(void **state)
{
    struct env *e = *state;
    const uint64_t size = 48 * MiB;
    cluster(e, 3, NULL);
    char key[32];
    spread_key(e, 3, size, key, sizeof(key));
    node_stop(&e->node[2]);
    double t0 = now_sec();
    read_all(e->node[0].c, key, "\"e1\"", size);
    double dt = now_sec() - t0;
    struct cache_stats st;
    cache_get_stats(e->node[0].c, &st);
    assert_adds_up(e->node[0].c);
    struct p2p_stats ps;
    p2p_get_stats(e->node[0].p, &ps);
    print_message("peer down: %.2f s, %llu direct reads, %llu fallbacks, %llu connect errors\n", dt,
                  (unsigned long long)st.direct_read, (unsigned long long)ps.fallbacks,
                  (unsigned long long)ps.err_connect);
    assert_true(st.direct_read > 0);
    assert_true(ps.fallbacks > 0);
    /* one failed connect, then one probe per back-off period (1 s, doubling) at most: never a
       connect per block */
    assert_true(ps.err_connect >= 1);
    assert_true(ps.err_connect <= 2 + (uint64_t)dt);
    /* the other peer still served its share */
    assert_true(ps.peer_misses + ps.peer_hits > 0);
    struct p2p_cluster_info ci;
    assert_int_equal(p2p_get_cluster(e->node[0].p, &ci), 0);
    assert_int_equal(ci.nmembers, 3);
    bool seen = false;
    for (unsigned i = 0; i < ci.ninfo; i++) {
        if (strstr(ci.member[i].name, "127.0.0.23")) {
            seen = true;
            /* in back-off, or its back-off over and not tried since */
            assert_true(strcmp(ci.member[i].state, "down") == 0 ||
                        strcmp(ci.member[i].state, "retrying") == 0);
            assert_non_null(strstr(ci.member[i].last_error, "connect"));
        }
    }
    assert_true(seen);
    free(ci.member);
}

/* With a key: nodes that hold it work together; one with another key is refused both ways and
 * read from the origin; one with no key is refused. */
static void test_auth(void **state)
{
    struct env *e = *state;
    const uint64_t size = 48 * MiB;
    write_rootlist(e, 3);
    e->n = 3;
    assert_int_equal(node_start(e, 0, 0, e->key, 64 * MiB), 0);
    assert_int_equal(node_start(e, 1, 0, e->key, 64 * MiB), 0);
    assert_int_equal(node_start(e, 2, 0, e->key2, 64 * MiB), 0);
    char key[32];
    spread_key(e, 3, size, key, sizeof(key));
    read_all(e->node[0].c, key, "\"e1\"", size);
    struct p2p_stats s0, s2;
    p2p_get_stats(e->node[0].p, &s0);
    assert_true(s0.err_auth >= 1);                  /* node 2 failed to prove our key */
    assert_true(s0.peer_hits + s0.peer_misses > 0); /* node 1 did */
    read_all(e->node[2].c, key, "\"e1\"", size);
    p2p_get_stats(e->node[2].p, &s2);
    assert_true(s2.err_auth >= 1);
    assert_int_equal(s2.peer_hits + s2.peer_misses, 0); /* nobody served the impostor */
    assert_true(s2.fallbacks > 0);
    struct p2p_cluster_info ci;
    assert_int_equal(p2p_get_cluster(e->node[0].p, &ci), 0);
    assert_true(ci.auth);
    free(ci.member);
}

/* A key file others can read is refused. */
static void test_key_file_mode(void **state)
{
    struct env *e = *state;
    write_rootlist(e, 1);
    chmod(e->key, 0644);
    struct node *nd = &e->node[0];
    nd->origin.block_size = 1 << 20;
    struct p2p_config pc = {.rootlist = e->rootlist,
                            .self_ip = "127.0.0.21",
                            .port = e->port,
                            .key_file = e->key,
                            .ns = NS,
                            .block_size = 1 << 20,
                            .page_size = 16 * KiB,
                            .origin = fake_source(&nd->origin, 1)};
    char err[512];
    struct p2p *p = NULL;
    assert_int_equal(p2p_new(&pc, &p, err, sizeof(err)), -EPERM);
    assert_null(p);
    assert_non_null(strstr(err, "g_tier_DadiP2PKeyFile"));
    assert_non_null(strstr(err, "chmod 600"));
    chmod(e->key, 0600);
    /* an unreadable rootlist names g_tier_DadiAddr */
    pc.key_file = NULL;
    pc.rootlist = "/nonexistent/rootlist";
    assert_int_equal(p2p_new(&pc, &p, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "g_tier_DadiAddr: cannot read rootlist '/nonexistent/rootlist'"));
}

/* The rootlist changes while a node runs: added and removed members, a malformed line kept out,
 * an emptied file keeping the last membership. */
static void test_reload(void **state)
{
    struct env *e = *state;
    cluster(e, 2, NULL);
    struct p2p *p = e->node[0].p;
    char msg[256];
    struct p2p_cluster_info ci;
    assert_int_equal(p2p_get_cluster(p, &ci), 0);
    uint64_t h2 = ci.members;
    assert_int_equal(ci.nmembers, 2);
    free(ci.member);

    write_rootlist(e, 3);
    assert_int_equal(p2p_reload(p, msg, sizeof(msg)), 0);
    assert_non_null(strstr(msg, "3 members"));
    assert_int_equal(p2p_get_cluster(p, &ci), 0);
    assert_int_equal(ci.nmembers, 3);
    assert_true(ci.members != h2);
    free(ci.member);

    /* a bad line is skipped, the rest applies */
    char text[512];
    snprintf(text, sizeof(text), "1:127.0.0.21:%u\nnot a line\n2:127.0.0.22:%u\n",
             (unsigned)e->port, (unsigned)e->port);
    write_text(e->rootlist, text, 0644);
    assert_int_equal(p2p_reload(p, msg, sizeof(msg)), 0);
    assert_int_equal(p2p_get_cluster(p, &ci), 0);
    assert_int_equal(ci.nmembers, 2);
    assert_int_equal(ci.members, h2);
    free(ci.member);
    struct p2p_stats ps;
    p2p_get_stats(p, &ps);
    assert_true(ps.rootlist_errors >= 1);

    /* emptied, then removed: the last membership stays */
    write_text(e->rootlist, "# nothing\n", 0644);
    assert_true(p2p_reload(p, msg, sizeof(msg)) < 0);
    assert_non_null(strstr(msg, "kept"));
    unlink(e->rootlist);
    assert_true(p2p_reload(p, msg, sizeof(msg)) < 0);
    assert_int_equal(p2p_get_cluster(p, &ci), 0);
    assert_int_equal(ci.nmembers, 2);
    free(ci.member);
    /* and it still works */
    read_all(e->node[0].c, "after.bin", "\"e1\"", 4 * MiB);
}

/* Roles: an agent (2, not in the rootlist, as it should be) stores nothing and owns nothing but
 * reads through the owners; a root (1) serves and reads from its origin itself. */
static void test_roles(void **state)
{
    struct env *e = *state;
    const uint64_t size = 12 * MiB;
    write_rootlist(e, 2);
    e->n = 3;
    assert_int_equal(node_start(e, 0, 0, NULL, 64 * MiB), 0);
    assert_int_equal(node_start(e, 1, 1, NULL, 64 * MiB), 0);
    assert_int_equal(node_start(e, 2, 2, NULL, 0), 0);
    assert_null(e->node[2].c);
    read_all(e->node[0].c, "roles.bin", "\"e1\"", size); /* the owners hold it now */
    uint64_t before = origin_bytes(e);
    /* the agent reads through its source: no cache, no origin */
    struct blksrc *src = p2p_src(e->node[2].p);
    uint8_t *buf = malloc(size);
    struct blkreq rq = {"roles.bin", "\"e1\"", size, 0, 0};
    enum blk_from from;
    assert_int_equal(blksrc_fetch(src, &rq, 0, size, buf, &from), (ssize_t)size);
    assert_int_equal(fake_check("roles.bin", "\"e1\"", 0, buf, size), -1);
    assert_int_equal(from, BLK_FROM_PEER); /* every block an owner held */
    assert_int_equal(origin_bytes(e), before);
    assert_int_equal(__atomic_load_n(&e->node[2].origin.bytes, __ATOMIC_RELAXED), 0);
    /* an unaligned range: whole pages asked, the bytes wanted returned */
    assert_int_equal(blksrc_fetch(src, &rq, 12345, 3 * MiB, buf, &from), (ssize_t)(3 * MiB));
    assert_int_equal(fake_check("roles.bin", "\"e1\"", 12345, buf, 3 * MiB), -1);
    /* the root reads from its own origin, not through node 0 */
    uint64_t f1 = __atomic_load_n(&e->node[1].origin.bytes, __ATOMIC_RELAXED);
    read_all(e->node[1].c, "root.bin", "\"e1\"", 4 * MiB);
    assert_int_equal(__atomic_load_n(&e->node[1].origin.bytes, __ATOMIC_RELAXED), f1 + 4 * MiB);
    free(buf);
}

/* An agent listed in the rootlist: its peers learn at the handshake that it owns nothing, take
 * it out of their owners, and every byte still comes right. */
static void test_agent_listed(void **state)
{
    struct env *e = *state;
    const uint64_t size = 24 * MiB;
    write_rootlist(e, 3);
    e->n = 3;
    assert_int_equal(node_start(e, 0, 0, NULL, 64 * MiB), 0);
    assert_int_equal(node_start(e, 1, 0, NULL, 64 * MiB), 0);
    assert_int_equal(node_start(e, 2, 2, NULL, 0), 0);
    char key[32];
    spread_key(e, 3, size, key, sizeof(key)); /* node 2 too, before its peers learn */
    read_all(e->node[0].c, key, "\"e1\"", size);
    struct p2p_cluster_info ci;
    assert_int_equal(p2p_get_cluster(e->node[0].p, &ci), 0);
    for (unsigned i = 0; i < ci.ninfo; i++)
        if (strstr(ci.member[i].name, "127.0.0.23"))
            assert_int_equal(ci.member[i].role, 2);
    free(ci.member);
    struct p2p_stats ps;
    p2p_get_stats(e->node[2].p, &ps);
    assert_int_equal(ps.served_blocks, 0);
    /* afterwards nobody asks it: a second object needs no fallback */
    p2p_get_stats(e->node[0].p, &ps);
    uint64_t fb = ps.fallbacks;
    read_all(e->node[0].c, "agent2.bin", "\"e1\"", size);
    p2p_get_stats(e->node[0].p, &ps);
    assert_int_equal(ps.fallbacks, fb);
}

/* Warm-up in a cluster: each block loaded at its owner (a FILL GET: nothing sent back), and
 * with ALSO_LOCAL on the caller too; afterwards no node needs the origin for it. */
static void test_fill_at_owners(void **state)
{
    struct env *e = *state;
    const uint64_t size = 24 * MiB + 5;
    cluster(e, 3, NULL);
    char key[32];
    spread_key(e, 3, size, key, sizeof(key));
    for (uint64_t i = 0; i * MiB < size; i++)
        assert_int_equal(p2p_fill(e->node[0].p, e->node[0].c, key, "\"e1\"", size, i, false), 0);
    assert_int_equal(origin_bytes(e), size); /* each block once, at its owner */
    struct p2p_stats ps;
    p2p_get_stats(e->node[1].p, &ps);
    assert_true(ps.served_blocks > 0);
    assert_int_equal(ps.served_bytes, 0); /* a FILL answers no data */
    p2p_get_stats(e->node[0].p, &ps);
    assert_int_equal(ps.fallbacks + ps.err_protocol, 0);
    /* node 0 holds only its own blocks; reading costs its peers, not the origin */
    read_all(e->node[2].c, key, "\"e1\"", size);
    assert_int_equal(origin_bytes(e), size);
    /* with a copy here too: node 0's cache then holds everything */
    for (uint64_t i = 0; i * MiB < size; i++)
        assert_int_equal(p2p_fill(e->node[0].p, e->node[0].c, key, "\"e1\"", size, i, true), 0);
    uint8_t *buf = malloc(size);
    assert_int_equal(cache_read_local(e->node[0].c, key, "\"e1\"", size, 0, size, buf),
                     (ssize_t)size);
    assert_int_equal(fake_check(key, "\"e1\"", 0, buf, size), -1);
    free(buf);
    assert_int_equal(origin_bytes(e), size);
    /* past the end is refused */
    assert_int_equal(p2p_fill(e->node[0].p, e->node[0].c, key, "\"e1\"", size, 25, false), -EINVAL);
}

/* A GET for another bucket is refused and the requester reads the origin. */
static void test_other_bucket(void **state)
{
    struct env *e = *state;
    write_rootlist(e, 2);
    e->n = 2;
    assert_int_equal(node_start(e, 0, 0, NULL, 64 * MiB), 0);
    /* node 1 mounts another bucket: same addresses, another name space */
    struct node *nd = &e->node[1];
    memset(nd, 0, sizeof(*nd));
    snprintf(nd->ip, sizeof(nd->ip), "127.0.0.22");
    nd->origin.block_size = 1 << 20;
    struct blksrc *origin = fake_source(&nd->origin, 1);
    struct p2p_config pc = {.rootlist = e->rootlist,
                            .self_ip = "127.0.0.22",
                            .port = e->port,
                            .ns = "otherbucket.oss-cn-hangzhou.aliyuncs.com",
                            .block_size = 1 << 20,
                            .page_size = 16 * KiB,
                            .origin = origin,
                            .fanout = e->fanout};
    char err[512];
    assert_int_equal(p2p_new(&pc, &nd->p, err, sizeof(err)), 0);
    struct cache_config cc = {.mem_bytes = 64 * MiB,
                              .block_size = 1 << 20,
                              .ns = "otherbucket.oss-cn-hangzhou.aliyuncs.com"};
    assert_int_equal(cache_new(&cc, p2p_src(nd->p), &nd->c, err, sizeof(err)), 0);
    assert_int_equal(p2p_start(nd->p, nd->c, err, sizeof(err)), 0);
    char key[32];
    spread_key(e, 2, 16 * MiB, key, sizeof(key));
    read_all(e->node[0].c, key, "\"e1\"", 16 * MiB);
    struct p2p_stats ps;
    p2p_get_stats(e->node[0].p, &ps);
    assert_true(ps.err_refused >= 1);
    assert_true(ps.fallbacks > 0);
    assert_int_equal(__atomic_load_n(&nd->origin.bytes, __ATOMIC_RELAXED), 0);
}

/* A peer speaking another version is refused with a message naming ours. */
static void test_other_version(void **state)
{
    struct env *e = *state;
    cluster(e, 1, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(e->port)};
    inet_pton(AF_INET, "127.0.0.21", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    uint8_t f[P2P_HDR + 512];
    struct p2p_hello h;
    memset(&h, 0, sizeof(h));
    size_t n = p2p_enc_hello(f, P2P_HELLO, 0, &h);
    f[4] = 9; /* version 9 */
    assert_int_equal(send(fd, f, n, 0), (ssize_t)n);
    uint8_t in[P2P_HDR + 300];
    size_t got = 0;
    for (int i = 0; i < 1000 && got < sizeof(in); i++) {
        ssize_t r = recv(fd, in + got, sizeof(in) - got, 0);
        if (r <= 0)
            break; /* closed after the answer */
        got += (size_t)r;
    }
    close(fd);
    struct p2p_hdr hd;
    assert_true(got >= P2P_HDR);
    assert_int_equal(p2p_dec_hdr(in, &hd), 0);
    assert_int_equal(hd.type, P2P_ERROR);
    int st;
    char msg[300];
    assert_int_equal(p2p_dec_error(in + P2P_HDR, hd.meta_len, &st, msg, sizeof(msg)), 0);
    assert_string_equal(msg, "this node speaks version 1");
}

/* Calls in flight when a peer fails fail together: that is one outage, one step of back-off
 * (eight timeouts at once must not skip the peer for 30 s). A failure after the back-off is
 * over (the probe's) is a second step. */
/* Many requesters missing at once at one owner: it fetches from the origin at most
 * P2P_ORIGIN_FETCHES blocks at a time (the others wait their turn, counted), though it has more
 * workers serving peers; every byte still right. */
static void test_origin_cap(void **state)
{
    struct env *e = *state;
    enum { READERS = 24 };
    cluster(e, 2, NULL);
    __atomic_store_n(&e->node[0].origin.latency_us, 100000, __ATOMIC_RELAXED);
    /* one-block objects owned by node 0, one per reader on node 1 */
    char keys[READERS][32];
    for (int r = 0, k = 0; r < READERS; k++) {
        assert_true(k < 10000);
        char name[128];
        snprintf(keys[r], sizeof(keys[r]), "cap-%d.bin", k);
        p2p_owner_name(e->node[1].p, keys[r], "\"e1\"", 0, name, sizeof(name));
        if (strstr(name, e->node[0].ip))
            r++;
    }
    pthread_t t[READERS];
    struct reader rd[READERS];
    for (int r = 0; r < READERS; r++) {
        rd[r] = (struct reader){e->node[1].c, keys[r], MiB};
        assert_int_equal(pthread_create(&t[r], NULL, reader_main, &rd[r]), 0);
    }
    for (int r = 0; r < READERS; r++)
        pthread_join(t[r], NULL);
    struct p2p_stats ps;
    p2p_get_stats(e->node[0].p, &ps);
    unsigned top = __atomic_load_n(&e->node[0].origin.max_inflight, __ATOMIC_RELAXED);
    print_message("origin cap: at most %u origin fetches at once at the owner, %llu waited\n", top,
                  (unsigned long long)ps.origin_cap_waits);
    assert_true(top >= 2);                  /* the owner did fetch in parallel ... */
    assert_true(top <= P2P_ORIGIN_FETCHES); /* ... within its cap */
    assert_true(ps.origin_cap_waits > 0);
    assert_adds_up(e->node[1].c);
}

/* A hot block: every node of eight loads the same file at once (the owner's origin held until
 * the owner has turned a peer away). With a fan-out of 2 the owner serves its two children in
 * the file's tree and two others; the rest are answered HOT and get the file from their
 * parents, which pass it on: the origin still sends it once, no node reads it from the origin
 * behind a peer's back, every byte is right. */
static void test_hot_fanout(void **state)
{
    struct env *e = *state;
    enum { N = 8 };
    const uint64_t size = 4 * MiB;
    const char *key = "model/first-shard.bin";
    e->fanout = 2;
    cluster(e, N, NULL);
    char name[128];
    p2p_owner_name(e->node[0].p, key, "\"e1\"", 0, name, sizeof(name));
    int o = -1;
    for (int i = 0; i < N; i++) {
        char ip[40];
        snprintf(ip, sizeof(ip), ":%s:", e->node[i].ip);
        if (strstr(name, ip))
            o = i;
    }
    assert_true(o >= 0);
    for (int i = 0; i < N; i++)
        __atomic_store_n(&e->node[i].origin.hold, 1, __ATOMIC_RELEASE);
    pthread_t t[N];
    struct reader r[N];
    for (int i = 0; i < N; i++) {
        r[i] = (struct reader){e->node[i].c, key, size};
        assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
    }
    /* the state the test needs: the owner has answered a peer HOT (its fan-out full) */
    double deadline = now_sec() + 60;
    struct p2p_stats ps;
    for (;;) {
        p2p_get_stats(e->node[o].p, &ps);
        if (ps.served_hot > 0)
            break;
        if (now_sec() > deadline) {
            for (int i = 0; i < N; i++)
                __atomic_store_n(&e->node[i].origin.hold, 0, __ATOMIC_RELEASE);
            fail_msg("the owner answered no GET hot within 60 s (served %llu requests)",
                     (unsigned long long)ps.served_requests);
        }
        usleep(2000);
    }
    for (int i = 0; i < N; i++)
        __atomic_store_n(&e->node[i].origin.hold, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(origin_bytes(e), size);
    uint64_t relayed = 0, relays = 0, hot = 0;
    for (int i = 0; i < N; i++) {
        p2p_get_stats(e->node[i].p, &ps);
        assert_int_equal(ps.fallbacks, 0);
        assert_int_equal(ps.err_timeout + ps.err_refused + ps.err_busy + ps.err_corrupt, 0);
        relayed += ps.relayed;
        relays += ps.served_relays;
        hot += ps.served_hot;
        assert_adds_up(e->node[i].c);
        if (i == o)
            assert_true(ps.fanout_max <= 2); /* its fan-out, children aside */
        else
            assert_int_equal(ps.served_hot, 0); /* only the owner answers HOT */
    }
    print_message("hot block: the owner answered %llu GETs hot; %llu relays served, %llu blocks "
                  "relayed\n",
                  (unsigned long long)hot, (unsigned long long)relays, (unsigned long long)relayed);
    assert_true(relayed > 0);
    assert_true(relays > 0);
}

/* The peer that node I knows as node J (in back-off or not). */
static struct p2p_peer *peer_of(struct env *e, int i, int j)
{
    struct p2p_members *m = p2p_members_get(e->node[i].p);
    struct p2p_peer *pe = NULL;
    for (unsigned k = 0; k < m->rl.n; k++)
        if (strstr(m->rl.nodes[k].name, e->node[j].ip))
            pe = m->peer[k];
    p2p_members_put(e->node[i].p, m);
    return pe;
}

/* A node dies: while it is in back-off its blocks are asked of their next owner (the node that
 * owns them once it leaves the rootlist), which fetches them from the origin once for everyone:
 * two nodes reading the object one after the other cost the origin one copy, not one plus the
 * dead node's share per reader. */
static void test_failover_next_owner(void **state)
{
    struct env *e = *state;
    const uint64_t size = 48 * MiB;
    cluster(e, 3, NULL);
    char key[32];
    spread_key(e, 3, size, key, sizeof(key));
    node_stop(&e->node[2]);
    for (int i = 0; i < 2; i++) {
        struct p2p_peer *pe = peer_of(e, i, 2);
        assert_non_null(pe);
        p2p_peer_fail(e->node[i].p, pe, PE_CONNECT, "test: the node is gone");
    }
    /* the dead node's share: what each reader would fetch again without the failover */
    uint64_t share = 0;
    for (uint64_t b = 0; b * MiB < size; b++) {
        char name[128];
        p2p_owner_name(e->node[0].p, key, "\"e1\"", b, name, sizeof(name));
        if (strstr(name, e->node[2].ip))
            share += MiB;
    }
    read_all(e->node[0].c, key, "\"e1\"", size);
    read_all(e->node[1].c, key, "\"e1\"", size);
    uint64_t failovers = 0, fallbacks = 0;
    for (int i = 0; i < 2; i++) {
        struct p2p_stats ps;
        p2p_get_stats(e->node[i].p, &ps);
        failovers += ps.failovers;
        fallbacks += ps.fallbacks;
        assert_adds_up(e->node[i].c);
    }
    uint64_t extra = origin_bytes(e) - size;
    print_message("failover: the dead node owned %llu MiB; the origin sent %llu MiB more than the "
                  "object (%llu blocks fell back); %llu blocks asked of their next owner\n",
                  (unsigned long long)(share >> 20), (unsigned long long)(extra >> 20),
                  (unsigned long long)fallbacks, (unsigned long long)failovers);
    assert_true(share > 0);
    assert_true(failovers > 0);
    /* one copy; a block over only where a peer timed out (a slow sanitizer build) */
    assert_true(extra <= fallbacks * MiB);
    assert_true(extra < share);
}

/* An owner whose origin is slower than the deadline its requester sets (a capped bucket, a
 * long queue for origin slots) is not taken for a stalled peer: it says PENDING while it works,
 * the requester waits on, and the block comes from the owner, not from the origin again. */
static void test_pending_keeps_waiting(void **state)
{
    struct env *e = *state;
    cluster(e, 2, NULL);
    /* a few blocks first: node 1 learns how fast node 0 answers (its deadline shrinks) */
    char keys[12][32];
    for (int r = 0, k = 0; r < 12; k++) {
        assert_true(k < 10000);
        char name[128];
        snprintf(keys[r], sizeof(keys[r]), "slow-%d.bin", k);
        p2p_owner_name(e->node[1].p, keys[r], "\"e1\"", 0, name, sizeof(name));
        if (strstr(name, e->node[0].ip))
            r++;
    }
    for (int r = 0; r < 10; r++)
        read_all(e->node[1].c, keys[r], "\"e1\"", MiB);
    struct p2p_peer *pe = peer_of(e, 1, 0);
    uint64_t deadline = p2p_deadline_ns(pe, MiB);
    /* the owner's origin now takes twice that (at least 1.5 s) */
    uint64_t lat = 2 * deadline / 1000 > 1500000 ? 2 * deadline / 1000 : 1500000;
    __atomic_store_n(&e->node[0].origin.latency_us, (unsigned)lat, __ATOMIC_RELAXED);
    struct p2p_stats before, after;
    p2p_get_stats(e->node[1].p, &before);
    read_all(e->node[1].c, keys[10], "\"e1\"", MiB);
    p2p_get_stats(e->node[1].p, &after);
    print_message("pending: deadline %.2f s, the owner's origin %.2f s\n", deadline / 1e9,
                  lat / 1e6);
    assert_int_equal(after.fallbacks, before.fallbacks);
    assert_int_equal(after.err_timeout, before.err_timeout);
    assert_int_equal(after.peer_misses, before.peer_misses + 1);
    assert_int_equal(__atomic_load_n(&e->node[1].origin.fetches, __ATOMIC_RELAXED), 0);
}

static void test_backoff_per_outage(void **state)
{
    struct env *e = *state;
    cluster(e, 2, NULL);
    struct p2p *p = e->node[0].p;
    struct p2p_members *m = p2p_members_get(p);
    struct p2p_peer *peer = m->peer[m->self == 0 ? 1 : 0];
    assert_non_null(peer);
    uint64_t t0 = p2p_now_ns();
    for (int i = 0; i < 8; i++)
        p2p_peer_fail(p, peer, PE_TIMEOUT, "test");
    /* read under the lock, asserted after it (a failed assertion must not leave it held) */
    pthread_mutex_lock(&peer->lock);
    unsigned fails = peer->fails;
    uint64_t until = peer->down_until;
    peer->down_until = t0; /* the back-off is over: the next failure is the probe's */
    pthread_mutex_unlock(&peer->lock);
    assert_int_equal(fails, 1);
    assert_true(until <= p2p_now_ns() + P2P_BACKOFF_MIN_MS * 1000000ull);
    p2p_peer_fail(p, peer, PE_TIMEOUT, "probe");
    pthread_mutex_lock(&peer->lock);
    fails = peer->fails;
    until = peer->down_until;
    pthread_mutex_unlock(&peer->lock);
    assert_int_equal(fails, 2);
    assert_true(until > p2p_now_ns() + P2P_BACKOFF_MIN_MS * 1000000ull);
    p2p_members_put(p, m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefetch_through_owners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff_per_outage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_origin_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hot_fanout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_next_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_keeps_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_listed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_at_owners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_bucket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_version, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
