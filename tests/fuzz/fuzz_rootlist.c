// fuzz-links: efc_p2p
/* tests/fuzz/fuzz_rootlist.c - the rootlist parser (p2p_rootlist_parse) on any bytes, as an
 * operator's editor, a half-written file or a bad deploy could leave them.
 *
 * What it keeps must be a membership every node agrees on: each node named "<id>:<ip>:<port>"
 * from a valid id, an address inet_pton reads and a port 1..65535, seeded by the hash of that
 * name; sorted by name; no id and no address twice; at most P2P_MAX_NODES; a hash of the sorted
 * names, 0 only when empty. Each line is a member, a warning (in line order, a duplicate naming
 * an earlier member's line) or neither, never both. The names, written back in reverse order,
 * parse to the same membership without a warning.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <xxhash.h>

#include "p2p/rootlist_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

struct seen {
    unsigned lines; /* in the input */
    unsigned last;  /* the line of the last warning */
    unsigned ndup;  /* duplicate warnings: their line and the line they name */
    unsigned (*dup)[2];
    uint8_t *warned; /* per line */
};

static void on_warn(void *arg, unsigned line, const char *why)
{
    struct seen *s = arg;
    check(line >= 1 && line <= s->lines && line > s->last);
    check(why != NULL && why[0] != '\0' && strlen(why) < 160);
    s->last = line;
    s->warned[line] = 1;
    /* "'<name>': its id is already on line N": a malformed line's warning quotes the line, but
     * ends with a fixed text, never with " on line N" */
    const char *tag = " is already on line ", *p = NULL;
    for (const char *q = strstr(why, tag); q; q = strstr(q + 1, tag))
        p = q;
    if (p != NULL) {
        char *end;
        unsigned long first = strtoul(p + strlen(tag), &end, 10);
        if (*end == '\0' && end > p + strlen(tag)) {
            s->dup[s->ndup][0] = line;
            s->dup[s->ndup][1] = (unsigned)first;
            s->ndup++;
        }
    }
}

static void no_warn(void *arg, unsigned line, const char *why)
{
    abort();
}

static int id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

struct addr {
    uint8_t bin[16];
    int family;
    uint16_t port;
};

static int by_addr(const void *a, const void *b)
{
    const struct addr *x = a, *y = b;
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    if (x->port != y->port)
        return x->port < y->port ? -1 : 1;
    return memcmp(x->bin, y->bin, 16);
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void check_list(const struct p2p_rootlist *rl, struct seen *s)
{
    check(rl->n <= P2P_MAX_NODES);
    if (rl->n == 0) {
        check(rl->nodes == NULL && rl->hash == 0);
        return;
    }
    check(rl->hash != 0);
    struct addr *addrs = calloc(rl->n, sizeof(*addrs));
    const char **ids = calloc(rl->n, sizeof(*ids));
    uint8_t *member = calloc(s->lines + 1, 1);
    check(addrs && ids && member);
    XXH3_state_t *st = XXH3_createState();
    check(st != NULL);
    XXH3_64bits_reset(st);
    for (unsigned i = 0; i < rl->n; i++) {
        const struct p2p_node *nd = &rl->nodes[i];
        size_t il = strnlen(nd->id, sizeof(nd->id));
        check(il >= 1 && il <= P2P_MAX_ID);
        for (size_t k = 0; k < il; k++)
            check(id_char(nd->id[k]));
        check(nd->family == AF_INET || nd->family == AF_INET6);
        check(strnlen(nd->ip, sizeof(nd->ip)) < sizeof(nd->ip));
        check(inet_pton(nd->family, nd->ip, addrs[i].bin) == 1);
        check(nd->port >= 1);
        char name[sizeof(nd->name)];
        int nl = snprintf(name, sizeof(name), nd->family == AF_INET6 ? "%s:[%s]:%u" : "%s:%s:%u",
                          nd->id, nd->ip, (unsigned)nd->port);
        check(nl > 0 && (size_t)nl < sizeof(name) && strcmp(name, nd->name) == 0);
        check(nd->seed == XXH3_64bits(nd->name, strlen(nd->name)));
        check(nd->line >= 1 && nd->line <= s->lines && !s->warned[nd->line] && !member[nd->line]);
        member[nd->line] = 1;
        if (i > 0)
            check(strcmp(rl->nodes[i - 1].name, nd->name) < 0);
        addrs[i].family = nd->family;
        addrs[i].port = nd->port;
        ids[i] = nd->id;
        XXH3_64bits_update(st, nd->name, strlen(nd->name) + 1);
    }
    uint64_t h = XXH3_64bits_digest(st);
    check(rl->hash == (h ? h : 1));
    XXH3_freeState(st);

    qsort(ids, rl->n, sizeof(*ids), by_str);
    qsort(addrs, rl->n, sizeof(*addrs), by_addr);
    for (unsigned i = 1; i < rl->n; i++)
        check(strcmp(ids[i - 1], ids[i]) != 0 && by_addr(&addrs[i - 1], &addrs[i]) != 0);
    /* a duplicate names the line of a member before it */
    for (unsigned i = 0; i < s->ndup; i++)
        check(s->dup[i][1] < s->dup[i][0] && member[s->dup[i][1]]);
    free(member);
    free(ids);
    free(addrs);
}

/* The names of RL, one a line, last first, parse to RL again. */
static void check_reparse(const struct p2p_rootlist *rl)
{
    if (rl->n == 0)
        return;
    size_t cap = (size_t)rl->n * sizeof(rl->nodes[0].name), o = 0;
    char *text = malloc(cap);
    check(text != NULL);
    for (unsigned i = rl->n; i-- > 0;)
        o += (size_t)snprintf(text + o, cap - o, "%s\n", rl->nodes[i].name);
    struct p2p_rootlist again;
    check(p2p_rootlist_parse(text, o, &again, no_warn, NULL) == 0);
    check(again.n == rl->n && again.hash == rl->hash);
    for (unsigned i = 0; i < rl->n; i++) {
        check(strcmp(again.nodes[i].name, rl->nodes[i].name) == 0);
        check(again.nodes[i].seed == rl->nodes[i].seed);
        check(again.nodes[i].line == rl->n - i);
    }
    p2p_rootlist_release(&again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact copy: a read past the input is caught in the replay build too */
    char *text = malloc(size ? size : 1);
    check(text != NULL);
    memcpy(text, data, size);

    struct seen s;
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < size; i++)
        s.lines += text[i] == '\n';
    if (size && text[size - 1] != '\n')
        s.lines++;
    s.warned = calloc(s.lines + 1, 1);
    s.dup = calloc(s.lines + 1, sizeof(*s.dup));
    check(s.warned && s.dup);

    struct p2p_rootlist rl;
    int rc = p2p_rootlist_parse(text, size, &rl, on_warn, &s);
    if (size > P2P_ROOTLIST_MAX_BYTES)
        check(rc == -E2BIG && s.last == 0);
    else
        check(rc == 0 || rc == -ENOMEM);
    if (rc == 0) {
        check_list(&rl, &s);
        check_reparse(&rl);
    } else {
        check(rl.n == 0 && rl.nodes == NULL && rl.hash == 0);
    }
    p2p_rootlist_release(&rl);
    check(rl.n == 0 && rl.nodes == NULL);
    free(s.dup);
    free(s.warned);
    free(text);
    return 0;
}
