/* tests/unit/p2p/test_rootlist.c - the rootlist parser and the owner of a block.
 *
 * The parser: what a hand-written file looks like (comments, blank lines, CRLF, indentation,
 * IPv4 and bracketed IPv6), each malformed form, duplicates, the limits, and the membership hash
 * that nodes compare. Every warning is captured with its line number and text, so a test fails
 * when a line is skipped for the wrong reason or blamed on the wrong line.
 *
 * The owner: rendezvous hashing over p2p_score, picked here as p2p.c picks it, checked for an
 * even share per node and for moving only the blocks of a node that leaves or arrives.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <xxhash.h>

#include <cmocka.h>

#include "p2p/rootlist_i.h"

#define MAX_WARN 64

struct warns {
    unsigned n;
    char line[MAX_WARN][256]; /* "<line>: <why>" */
};

static void warn_cb(void *arg, unsigned line, const char *why)
{
    struct warns *w = arg;
    assert_true(w->n < MAX_WARN);
    snprintf(w->line[w->n++], sizeof(w->line[0]), "%u: %s", line, why);
}

/* Parses the C string TEXT; the warnings go to W (cleared first). */
static void parse(const char *text, struct p2p_rootlist *rl, struct warns *w)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(p2p_rootlist_parse(text, strlen(text), rl, warn_cb, w), 0);
}

/* Asserts that W holds exactly the N warnings EXPECT. */
static void warns_are(const struct warns *w, const char *const *expect, unsigned n)
{
    for (unsigned i = 0; i < w->n || i < n; i++) {
        const char *got = i < w->n ? w->line[i] : "(none)";
        const char *want = i < n ? expect[i] : "(none)";
        if (strcmp(got, want) != 0)
            fail_msg("warning %u: got \"%s\", want \"%s\"", i, got, want);
    }
}

static void node_is(const struct p2p_node *nd, const char *name, const char *id, const char *ip,
                    unsigned port, int family, unsigned line)
{
    assert_string_equal(nd->name, name);
    assert_string_equal(nd->id, id);
    assert_string_equal(nd->ip, ip);
    assert_int_equal(nd->port, port);
    assert_int_equal(nd->family, family);
    assert_int_equal(nd->line, line);
    /* the seed is the name's hash, so every node derives the same one from the name alone */
    assert_int_equal(nd->seed, XXH3_64bits(name, strlen(name)));
}

static void test_parse(void **state)
{
    struct p2p_rootlist rl;
    struct warns w;
    const char *text = "# the cluster\r\n"                 /* 1 */
                       "\r\n"                              /* 2 */
                       "  b:10.0.0.2:7000   # second\r\n"  /* 3 */
                       "a:10.0.0.1:7000\n"                 /* 4 */
                       "\t c.x_y-Z:[fd00::1]:7001 \t\n"    /* 5 */
                       "#a:10.0.0.9:7000\n"                /* 6 */
                       "   \t \n"                          /* 7 */
                       "d:[::ffff:10.0.0.9]:80#no space\n" /* 8 */
                       "e:10.0.0.5:70#00\n"                /* 9: '#' anywhere */
                       "\n"                                /* 10 */
                       "f:255.255.255.255:65535\r\n"       /* 11 */
                       "0:0.0.0.0:1";                      /* 12, no final newline */
    parse(text, &rl, &w);
    warns_are(&w, NULL, 0);
    assert_int_equal(rl.n, 7);
    /* sorted by name ('0' < 'a') */
    node_is(&rl.nodes[0], "0:0.0.0.0:1", "0", "0.0.0.0", 1, AF_INET, 12);
    node_is(&rl.nodes[1], "a:10.0.0.1:7000", "a", "10.0.0.1", 7000, AF_INET, 4);
    node_is(&rl.nodes[2], "b:10.0.0.2:7000", "b", "10.0.0.2", 7000, AF_INET, 3);
    node_is(&rl.nodes[3], "c.x_y-Z:[fd00::1]:7001", "c.x_y-Z", "fd00::1", 7001, AF_INET6, 5);
    node_is(&rl.nodes[4], "d:[::ffff:10.0.0.9]:80", "d", "::ffff:10.0.0.9", 80, AF_INET6, 8);
    node_is(&rl.nodes[5], "e:10.0.0.5:70", "e", "10.0.0.5", 70, AF_INET, 9);
    node_is(&rl.nodes[6], "f:255.255.255.255:65535", "f", "255.255.255.255", 65535, AF_INET, 11);
    assert_int_not_equal(rl.hash, 0);
    p2p_rootlist_release(&rl);
    assert_null(rl.nodes);
    assert_int_equal(rl.n, 0);
    assert_int_equal(rl.hash, 0);
    p2p_rootlist_release(&rl); /* twice is harmless */

    /* the port may have leading zeros; the name has the number */
    parse("x:10.1.2.3:00080\n", &rl, &w);
    warns_are(&w, NULL, 0);
    assert_int_equal(rl.n, 1);
    node_is(&rl.nodes[0], "x:10.1.2.3:80", "x", "10.1.2.3", 80, AF_INET, 1);
    p2p_rootlist_release(&rl);

    /* the longest id */
    char line[128], id[P2P_MAX_ID + 1], name[128];
    memset(id, 'i', P2P_MAX_ID);
    id[P2P_MAX_ID] = '\0';
    snprintf(line, sizeof(line), "%s:[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", id);
    snprintf(name, sizeof(name), "%s", line);
    parse(line, &rl, &w);
    warns_are(&w, NULL, 0);
    assert_int_equal(rl.n, 1);
    node_is(&rl.nodes[0], name, id, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535,
            AF_INET6, 1);
    p2p_rootlist_release(&rl);
}

static void test_malformed(void **state)
{
    struct p2p_rootlist rl;
    struct warns w;
    char text[4096];
    char id65[P2P_MAX_ID + 2];
    memset(id65, 'a', P2P_MAX_ID + 1);
    id65[P2P_MAX_ID + 1] = '\0';
    snprintf(text, sizeof(text),
             "nocolon\n"                       /* 1 */
             "a:10.0.0.1\n"                    /* 2 */
             ":10.0.0.1:80\n"                  /* 3 */
             "%s:10.0.0.1:80\n"                /* 4 */
             "a/b:10.0.0.1:80\n"               /* 5 */
             "a b:10.0.0.1:80\n"               /* 6 */
             "\xc3\xa9:10.0.0.1:80\n"          /* 7 */
             "a:node1.example.com:80\n"        /* 8 */
             "a:localhost:80\n"                /* 9 */
             "a:fd00::1:80\n"                  /* 10 */
             "a:[fd00::1:80\n"                 /* 11 */
             "a:[10.0.0.1]:80\n"               /* 12 */
             "a::80\n"                         /* 13 */
             "a:[]:80\n"                       /* 14 */
             "a:10.0.0.256:80\n"               /* 15 */
             "a:10.0.0:80\n"                   /* 16 */
             "a:10.0.0.1:0\n"                  /* 17 */
             "a:10.0.0.1:65536\n"              /* 18 */
             "a:10.0.0.1:8o\n"                 /* 19 */
             "a:10.0.0.1:\n"                   /* 20 */
             "a:10.0.0.1:123456\n"             /* 21 */
             "a:10.0.0.1:-1\n"                 /* 22 */
             "a:10.0.0.1:+80\n"                /* 23 */
             "a:10.0.0.1 :80\n"                /* 24 */
             "a:[fd00::1]\n"                   /* 25 */
             "a:10.0.0.1:80:81\n"              /* 26 */
             "::\n"                            /* 27 */
             "a:[fd00::1%%eth0]:80\n"          /* 28 */
             "a:[fd00::1]:80 b:10.0.0.2:80\n", /* 29 */
             id65);
    parse(text, &rl, &w);
    char l4[256];
    snprintf(l4, sizeof(l4), "4: '%s:10.0.0.1:80': the id must be 1 to 64 characters", id65);
    const char *const want[] = {
        "1: 'nocolon': expected <id>:<ip>:<port>",
        "2: 'a:10.0.0.1': expected <id>:<ip>:<port>",
        "3: ':10.0.0.1:80': the id must be 1 to 64 characters",
        l4,
        "5: 'a/b:10.0.0.1:80': the id may hold only letters, digits, '.', '_' and '-'",
        "6: 'a b:10.0.0.1:80': the id may hold only letters, digits, '.', '_' and '-'",
        "7: '\xc3\xa9:10.0.0.1:80': the id may hold only letters, digits, '.', '_' and '-'",
        "8: 'a:node1.example.com:80': the address is not an IPv4 address (an IPv6 one goes in "
        "brackets)",
        "9: 'a:localhost:80': the address is not an IPv4 address (an IPv6 one goes in brackets)",
        "10: 'a:fd00::1:80': the address is not an IPv4 address (an IPv6 one goes in brackets)",
        "11: 'a:[fd00::1:80': the address is not an IPv4 address (an IPv6 one goes in brackets)",
        "12: 'a:[10.0.0.1]:80': the address is not an IPv6 address",
        "13: 'a::80': the address is not an IP address",
        "14: 'a:[]:80': the address is not an IP address",
        "15: 'a:10.0.0.256:80': the address is not an IPv4 address (an IPv6 one goes in "
        "brackets)",
        "16: 'a:10.0.0:80': the address is not an IPv4 address (an IPv6 one goes in brackets)",
        "17: 'a:10.0.0.1:0': the port must be 1 to 65535",
        "18: 'a:10.0.0.1:65536': the port must be 1 to 65535",
        "19: 'a:10.0.0.1:8o': the port must be 1 to 65535",
        "20: 'a:10.0.0.1:': the port must be 1 to 65535",
        "21: 'a:10.0.0.1:123456': the port must be 1 to 65535",
        "22: 'a:10.0.0.1:-1': the port must be 1 to 65535",
        "23: 'a:10.0.0.1:+80': the port must be 1 to 65535",
        "24: 'a:10.0.0.1 :80': the address is not an IPv4 address (an IPv6 one goes in brackets)",
        "25: 'a:[fd00::1]': the address is not an IPv4 address (an IPv6 one goes in brackets)",
        "26: 'a:10.0.0.1:80:81': the address is not an IPv4 address (an IPv6 one goes in "
        "brackets)",
        "27: '::': the id must be 1 to 64 characters",
        "28: 'a:[fd00::1%eth0]:80': the address is not an IPv6 address",
        "29: 'a:[fd00::1]:80 b:10.0.0.2:80': the address is not an IPv4 address (an IPv6 one goes "
        "in brackets)",
    };
    warns_are(&w, want, sizeof(want) / sizeof(want[0]));
    /* nothing was left: an empty membership */
    assert_int_equal(rl.n, 0);
    assert_null(rl.nodes);
    assert_int_equal(rl.hash, 0);
    p2p_rootlist_release(&rl);

    /* a NUL byte inside an entry; the text around it still counts */
    const char nul[] = "a:10.0.0.1:80\nb:10.0\0.0.2:80\nc:10.0.0.3:80\n";
    memset(&w, 0, sizeof(w));
    assert_int_equal(p2p_rootlist_parse(nul, sizeof(nul) - 1, &rl, warn_cb, &w), 0);
    const char *const want_nul[] = {"2: a NUL byte"};
    warns_are(&w, want_nul, 1);
    assert_int_equal(rl.n, 2);
    assert_string_equal(rl.nodes[0].name, "a:10.0.0.1:80");
    assert_string_equal(rl.nodes[1].name, "c:10.0.0.3:80");
    assert_int_equal(rl.nodes[1].line, 3);
    p2p_rootlist_release(&rl);

    /* a warning quotes at most 80 bytes of the line */
    char longbad[200];
    memset(longbad, 'z', 150);
    longbad[150] = '\0';
    parse(longbad, &rl, &w);
    char want_long[256];
    snprintf(want_long, sizeof(want_long), "1: '%.80s': expected <id>:<ip>:<port>", longbad);
    const char *const want_l[] = {want_long};
    warns_are(&w, want_l, 1);
    p2p_rootlist_release(&rl);

    /* without a callback the same lines are skipped quietly */
    assert_int_equal(p2p_rootlist_parse(text, strlen(text), &rl, NULL, NULL), 0);
    assert_int_equal(rl.n, 0);
    p2p_rootlist_release(&rl);
}

static void test_duplicates(void **state)
{
    struct p2p_rootlist rl;
    struct warns w;
    parse("a:10.0.0.1:7000\n"             /* 1 */
          "b:10.0.0.2:7000\n"             /* 2 */
          "a:10.0.0.3:7000\n"             /* 3: id of 1 */
          "c:10.0.0.1:7000\n"             /* 4: address of 1 */
          "d:10.0.0.1:7001\n"             /* 5: another port: another node */
          "# e:[fd00::1]:7000\n"          /* 6 */
          "e:[fd00::1]:7000\n"            /* 7 */
          "f:[fd00:0:0:0:0:0:0:1]:7000\n" /* 8: address of 7 */
          "g:[FD00::0001]:7000\n"         /* 9: address of 7 */
          "h:[fd00:0000::0:1]:7000\n"     /* 10: address of 7 */
          "b:10.0.0.2:7000\n"             /* 11: the same line as 2 */
          "d:10.0.0.2:7000\n"             /* 12: address of 2, id of 5 */
          "i:[0:0:0:0:0:0:0:1]:7000\n"    /* 13 */
          "j:[::1]:7000\n"                /* 14: address of 13 */
          "i:[fd00::2]:7000\n",           /* 15: id of 13 */
          &rl, &w);
    const char *const want[] = {
        "3: 'a:10.0.0.3:7000': its id is already on line 1",
        "4: 'c:10.0.0.1:7000': its address is already on line 1",
        "8: 'f:[fd00:0:0:0:0:0:0:1]:7000': its address is already on line 7",
        "9: 'g:[FD00::0001]:7000': its address is already on line 7",
        "10: 'h:[fd00:0000::0:1]:7000': its address is already on line 7",
        "11: 'b:10.0.0.2:7000': its id is already on line 2",
        /* the earliest line it clashes with */
        "12: 'd:10.0.0.2:7000': its address is already on line 2",
        "14: 'j:[::1]:7000': its address is already on line 13",
        "15: 'i:[fd00::2]:7000': its id is already on line 13",
    };
    warns_are(&w, want, sizeof(want) / sizeof(want[0]));
    assert_int_equal(rl.n, 5);
    assert_string_equal(rl.nodes[0].name, "a:10.0.0.1:7000");
    assert_int_equal(rl.nodes[0].line, 1);
    assert_string_equal(rl.nodes[1].name, "b:10.0.0.2:7000");
    assert_int_equal(rl.nodes[1].line, 2);
    assert_string_equal(rl.nodes[2].name, "d:10.0.0.1:7001");
    assert_int_equal(rl.nodes[2].line, 5);
    assert_string_equal(rl.nodes[3].name, "e:[fd00::1]:7000");
    assert_int_equal(rl.nodes[3].line, 7);
    assert_string_equal(rl.nodes[4].name, "i:[0:0:0:0:0:0:0:1]:7000");
    assert_int_equal(rl.nodes[4].line, 13);
    p2p_rootlist_release(&rl);
}

static void test_limits(void **state)
{
    struct p2p_rootlist rl;
    struct warns w;

    /* a line of 512 bytes is read, one of 513 is skipped whole (and its entry with it) */
    static char text[4096];
    const char *e1 = "a:10.0.0.1:1 #", *e2 = "b:10.0.0.2:2 #";
    size_t o = 0;
    o += (size_t)sprintf(text + o, "%s", e1);
    memset(text + o, '-', P2P_ROOTLIST_MAX_LINE - strlen(e1));
    o += P2P_ROOTLIST_MAX_LINE - strlen(e1);
    text[o++] = '\n';
    o += (size_t)sprintf(text + o, "%s", e2);
    memset(text + o, '-', P2P_ROOTLIST_MAX_LINE + 1 - strlen(e2));
    o += P2P_ROOTLIST_MAX_LINE + 1 - strlen(e2);
    text[o++] = '\n';
    o += (size_t)sprintf(text + o, "c:10.0.0.3:3");
    text[o] = '\0';
    parse(text, &rl, &w);
    const char *const want_line[] = {"2: line longer than 512 bytes"};
    warns_are(&w, want_line, 1);
    assert_int_equal(rl.n, 2);
    assert_string_equal(rl.nodes[0].name, "a:10.0.0.1:1");
    assert_string_equal(rl.nodes[1].name, "c:10.0.0.3:3");
    assert_int_equal(rl.nodes[1].line, 3);
    p2p_rootlist_release(&rl);

    /* P2P_MAX_NODES entries are kept; the rest are reported and skipped, a duplicate as one.
     * All on one port, as a real cluster is: each address differs only in its IP. */
    size_t cap = (P2P_MAX_NODES + 4) * 32;
    char *big = malloc(cap);
    assert_non_null(big);
    o = 0;
    for (unsigned i = 0; i < P2P_MAX_NODES + 2; i++)
        o += (size_t)snprintf(big + o, cap - o, "n%05u:10.0.%u.%u:7000\n", i, i >> 8, i & 255);
    o += (size_t)snprintf(big + o, cap - o, "n00005:10.9.9.9:7000\nz:10.0.0.5:7000\n");
    memset(&w, 0, sizeof(w));
    assert_int_equal(p2p_rootlist_parse(big, o, &rl, warn_cb, &w), 0);
    const char *const want_max[] = {
        "16385: more than 16384 nodes",
        "16386: more than 16384 nodes",
        "16387: 'n00005:10.9.9.9:7000': its id is already on line 6",
        "16388: 'z:10.0.0.5:7000': its address is already on line 6",
    };
    warns_are(&w, want_max, 4);
    assert_int_equal(rl.n, P2P_MAX_NODES);
    for (unsigned i = 0; i < P2P_MAX_NODES; i++) {
        char name[64];
        snprintf(name, sizeof(name), "n%05u:10.0.%u.%u:7000", i, i >> 8, i & 255);
        assert_string_equal(rl.nodes[i].name, name);
        assert_int_equal(rl.nodes[i].line, i + 1);
    }
    p2p_rootlist_release(&rl);
    free(big);

    /* the text's size: up to 1 MiB; over it, nothing is read */
    big = malloc(P2P_ROOTLIST_MAX_BYTES + 1);
    assert_non_null(big);
    memset(big, '\n', P2P_ROOTLIST_MAX_BYTES + 1);
    memcpy(big, "a:10.0.0.1:1", 12);
    memset(&w, 0, sizeof(w));
    assert_int_equal(p2p_rootlist_parse(big, P2P_ROOTLIST_MAX_BYTES, &rl, warn_cb, &w), 0);
    assert_int_equal(w.n, 0);
    assert_int_equal(rl.n, 1);
    p2p_rootlist_release(&rl);
    rl.n = 7;
    rl.hash = 7;
    assert_int_equal(p2p_rootlist_parse(big, P2P_ROOTLIST_MAX_BYTES + 1, &rl, warn_cb, &w), -E2BIG);
    assert_int_equal(w.n, 0);
    assert_int_equal(rl.n, 0);
    assert_null(rl.nodes);
    assert_int_equal(rl.hash, 0);
    free(big);

    /* an empty text, and one of comments only */
    assert_int_equal(p2p_rootlist_parse(NULL, 0, &rl, warn_cb, &w), 0);
    assert_int_equal(rl.n, 0);
    assert_int_equal(rl.hash, 0);
    parse("# nobody yet\n\n   \n", &rl, &w);
    assert_int_equal(w.n, 0);
    assert_int_equal(rl.n, 0);
    assert_null(rl.nodes);
    assert_int_equal(rl.hash, 0);
}

static uint64_t hash_of(const char *text)
{
    struct p2p_rootlist rl;
    struct warns w;
    parse(text, &rl, &w);
    uint64_t h = rl.hash;
    p2p_rootlist_release(&rl);
    return h;
}

static void test_hash(void **state)
{
    const char *base = "a:10.0.0.1:7000\nb:10.0.0.2:7000\nc:[fd00::3]:7000\n";
    uint64_t h = hash_of(base);

    /* the hash of the sorted names, each with its NUL, so a peer can recompute it */
    const char cat[] = "a:10.0.0.1:7000\0b:10.0.0.2:7000\0c:[fd00::3]:7000";
    assert_int_equal(h, XXH3_64bits(cat, sizeof(cat)));

    /* the same entries in another order, with other comments, blanks, CRLF and indentation;
     * also with skipped lines, which are not members */
    assert_int_equal(hash_of("c:[fd00::3]:7000\na:10.0.0.1:7000\nb:10.0.0.2:7000"), h);
    assert_int_equal(hash_of("# cluster A\r\n\r\n  b:10.0.0.2:7000 # b\r\n"
                             "\tc:[fd00::3]:7000\r\n#x:10.0.0.4:7000\r\na:10.0.0.1:7000\r\n"),
                     h);
    assert_int_equal(hash_of("a:10.0.0.1:7000\nbad line\nb:10.0.0.2:7000\nb:10.0.0.9:1\n"
                             "c:[fd00::3]:7000\n"),
                     h);
    assert_int_equal(hash_of(base), h);
    assert_int_equal(hash_of("a:10.0.0.1:07000\nb:10.0.0.2:7000\nc:[fd00::3]:7000\n"), h);

    /* any change of a member changes it */
    const char *other[] = {
        "a:10.0.0.1:7001\nb:10.0.0.2:7000\nc:[fd00::3]:7000\n",                  /* a port */
        "a:10.0.0.9:7000\nb:10.0.0.2:7000\nc:[fd00::3]:7000\n",                  /* an address */
        "x:10.0.0.1:7000\nb:10.0.0.2:7000\nc:[fd00::3]:7000\n",                  /* an id */
        "a:10.0.0.1:7000\nb:10.0.0.2:7000\n",                                    /* one less */
        "a:10.0.0.1:7000\nb:10.0.0.2:7000\nc:[fd00::3]:7000\nd:10.0.0.4:7000\n", /* one more */
        "a:10.0.0.1:7000\nb:10.0.0.2:7000\nc:[fd00::0:3]:7000\n", /* written otherwise */
        "ab:10.0.0.1:7000\nb:10.0.0.2:7000\nc:[fd00::3]:7000\n",
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        uint64_t o = hash_of(other[i]);
        if (o == h || o == 0)
            fail_msg("entry set %zu hashes to %#llx", i, (unsigned long long)o);
    }

    /* no member: 0, which the wire reads as "no membership" */
    assert_int_equal(hash_of(""), 0);
    assert_int_equal(hash_of("# only comments\n"), 0);
    assert_int_equal(hash_of("bad\n"), 0);
}

/* ---- owners ------------------------------------------------------------------------------- */

#define NBLOCKS 1000000

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The owner of block ID among RL's nodes: the highest score, ties to the lower name (as
 * owner_of in p2p.c; RL is sorted by name, so to the lower index). */
static unsigned owner(const struct p2p_rootlist *rl, const uint64_t id[2])
{
    unsigned best = 0;
    uint64_t top = p2p_score(rl->nodes[0].seed, id);
    for (unsigned i = 1; i < rl->n; i++) {
        uint64_t s = p2p_score(rl->nodes[i].seed, id);
        if (s > top) {
            best = i;
            top = s;
        }
    }
    return best;
}

/* A rootlist of the nodes numbered FROM..TO (inclusive) but SKIP. */
static void cluster(struct p2p_rootlist *rl, unsigned from, unsigned to, unsigned skip)
{
    char text[8192];
    size_t o = 0;
    struct warns w;
    for (unsigned i = from; i <= to; i++)
        if (i != skip)
            o +=
                (size_t)snprintf(text + o, sizeof(text) - o, "node%02u:10.1.0.%u:7000\n", i, i + 1);
    parse(text, rl, &w);
    assert_int_equal(w.n, 0);
}

/* Index of the node named NAME in RL. */
static unsigned index_of(const struct p2p_rootlist *rl, const char *name)
{
    for (unsigned i = 0; i < rl->n; i++)
        if (strcmp(rl->nodes[i].name, name) == 0)
            return i;
    fail_msg("no node '%s'", name);
    return 0;
}

static void test_score(void **state)
{
    /* the score is XXH3-64 of the identity's 16 bytes, little-endian, seeded with the node's
     * seed: every node must compute the very same function, whatever its build or byte order */
    const uint64_t id[2] = {0x0123456789abcdefull, 0xfedcba9876543210ull};
    const uint8_t le[16] = {0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01,
                            0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe};
    assert_int_equal(p2p_score(42, id), XXH3_64bits_withSeed(le, 16, 42));
    /* and the values themselves: a change would split a cluster of old and new nodes */
    assert_int_equal(p2p_score(42, id), 0x41ffc43dd086b0ceull);
    assert_int_equal(p2p_score(0, (const uint64_t[2]){0, 0}), 0xd0a66a65c7528968ull);
    assert_int_equal(p2p_score(42, id), p2p_score(42, id));
    assert_int_not_equal(p2p_score(42, id), p2p_score(43, id));
    const uint64_t id2[2] = {id[0], id[1] ^ 1};
    assert_int_not_equal(p2p_score(42, id), p2p_score(42, id2));
}

static void test_owners(void **state)
{
    struct p2p_rootlist ten, nine, eleven;
    cluster(&ten, 0, 9, 99);
    cluster(&nine, 0, 9, 3); /* node03 leaves */
    cluster(&eleven, 0, 10, 99);
    assert_int_equal(ten.n, 10);
    assert_int_equal(nine.n, 9);
    assert_int_equal(eleven.n, 11);
    const unsigned gone = index_of(&ten, "node03:10.1.0.4:7000");
    const unsigned added = index_of(&eleven, "node10:10.1.0.11:7000");

    /* where each node of TEN is in NINE and ELEVEN */
    unsigned in_nine[10], in_eleven[10];
    for (unsigned i = 0; i < 10; i++) {
        in_nine[i] = i == gone ? 99 : index_of(&nine, ten.nodes[i].name);
        in_eleven[i] = index_of(&eleven, ten.nodes[i].name);
    }

    unsigned owned[10] = {0};
    unsigned moved_leave = 0, moved_join = 0;
    uint64_t rng = 0x5eed;
    for (unsigned b = 0; b < NBLOCKS; b++) {
        uint64_t id[2] = {splitmix64(&rng), splitmix64(&rng)};
        unsigned o10 = owner(&ten, id);
        owned[o10]++;

        /* a node leaves: only its blocks move, each to someone else */
        unsigned o9 = owner(&nine, id);
        if (o10 == gone) {
            moved_leave++;
        } else if (o9 != in_nine[o10]) {
            fail_msg("block %u moved from %s to %s when %s left", b, ten.nodes[o10].name,
                     nine.nodes[o9].name, ten.nodes[gone].name);
        }

        /* a node joins: the blocks that move all go to it */
        unsigned o11 = owner(&eleven, id);
        if (o11 != in_eleven[o10]) {
            if (o11 != added)
                fail_msg("block %u moved from %s to %s when %s joined", b, ten.nodes[o10].name,
                         eleven.nodes[o11].name, eleven.nodes[added].name);
            moved_join++;
        }
    }

    /* each of 10 nodes owns 10% +- 1% */
    for (unsigned i = 0; i < 10; i++)
        if (owned[i] < NBLOCKS / 100 * 9 || owned[i] > NBLOCKS / 100 * 11)
            fail_msg("%s owns %u of %u blocks", ten.nodes[i].name, owned[i], NBLOCKS);
    assert_int_equal(moved_leave, owned[gone]);
    /* the 11th node takes 1/11 of the blocks, +- 1% of them */
    if (moved_join < NBLOCKS / 11 - NBLOCKS / 100 || moved_join > NBLOCKS / 11 + NBLOCKS / 100)
        fail_msg("%u of %u blocks moved to the new node", moved_join, NBLOCKS);

    p2p_rootlist_release(&ten);
    p2p_rootlist_release(&nine);
    p2p_rootlist_release(&eleven);
}

/* The fan-out tree of a hot block: the nodes ranked by score from the owner down, each with at
 * most FANOUT children, every parent ranked before its child, the depth log_FANOUT(n); a node
 * outside the rootlist hangs under any node but the owner, spread by its seed. */
static void test_tree(void **state)
{
    enum { N = 100, FAN = 4, IDS = 300 };
    struct p2p_rootlist rl;
    cluster(&rl, 0, N - 1, 999);
    assert_int_equal(rl.n, N);
    unsigned serving[N];
    for (unsigned i = 0; i < N; i++)
        serving[i] = i;
    uint64_t rng = 0x7eee;
    unsigned agent_parents[N] = {0};
    for (unsigned b = 0; b < IDS; b++) {
        uint64_t id[2] = {splitmix64(&rng), splitmix64(&rng)};
        unsigned o = owner(&rl, id);
        assert_int_equal(p2p_owner(&rl, serving, N, id), (int)o);
        assert_int_equal(p2p_owner(&rl, serving, 0, id), -1);
        unsigned rank[N], children[N] = {0}, seen[N] = {0};
        for (unsigned i = 0; i < N; i++) {
            rank[i] = p2p_rank(&rl, serving, N, id, i, UINT32_MAX);
            assert_true(rank[i] < N);
            assert_int_equal(seen[rank[i]]++, 0); /* a permutation */
            /* with a limit: exact up to it, over it past it */
            unsigned lim = p2p_rank(&rl, serving, N, id, i, FAN);
            if (rank[i] <= FAN)
                assert_int_equal(lim, rank[i]);
            else
                assert_true(lim > FAN);
        }
        assert_int_equal(rank[o], 0);
        unsigned order[N];
        assert_int_equal(p2p_ranking(&rl, serving, N, id, order), 0);
        for (unsigned i = 0; i < N; i++)
            assert_int_equal(order[rank[i]], i);
        for (unsigned i = 0; i < N; i++) {
            unsigned depth = 99;
            int par = p2p_tree_parent(&rl, serving, N, id, (int)i, 0, FAN, &depth);
            if (i == o) {
                assert_int_equal(par, -1);
                continue;
            }
            assert_true(par >= 0 && par < N);
            assert_int_equal(rank[par], (rank[i] - 1) / FAN);
            assert_int_equal(depth, p2p_tree_depth(rank[i], FAN));
            assert_true(depth >= 1 && depth <= 4); /* 1 + 4 + 16 + 64 >= 100 */
            children[par]++;
        }
        for (unsigned i = 0; i < N; i++)
            assert_true(children[i] <= FAN);
        /* a node outside the rootlist: never under the owner, one level below its parent */
        for (uint64_t seed = 0; seed < 8; seed++) {
            unsigned depth = 0;
            int par = p2p_tree_parent(&rl, serving, N, id, -1, seed * 7919 + b, FAN, &depth);
            assert_true(par >= 0 && (unsigned)par != o);
            assert_int_equal(depth, p2p_tree_depth(rank[par], FAN) + 1);
            agent_parents[par]++;
        }
    }
    unsigned used = 0;
    for (unsigned i = 0; i < N; i++)
        used += agent_parents[i] > 0;
    assert_true(used > N / 2); /* spread over the cluster */
    /* no tree: one node, or no fan-out */
    assert_int_equal(p2p_tree_parent(&rl, serving, 1, (uint64_t[2]){1, 2}, 0, 0, FAN, NULL), -1);
    assert_int_equal(p2p_tree_parent(&rl, serving, N, (uint64_t[2]){1, 2}, 5, 0, 0, NULL), -1);
    assert_int_equal(p2p_tree_depth(0, FAN), 0);
    assert_int_equal(p2p_tree_depth(4, FAN), 1);
    assert_int_equal(p2p_tree_depth(5, FAN), 2);
    assert_int_equal(p2p_tree_depth(20, FAN), 2);
    assert_int_equal(p2p_tree_depth(21, FAN), 3);
    p2p_rootlist_release(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),      cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_duplicates), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_hash),       cmocka_unit_test(test_score),
        cmocka_unit_test(test_owners),     cmocka_unit_test(test_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
