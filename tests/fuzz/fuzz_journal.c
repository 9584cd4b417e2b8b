// fuzz-links: efc_core
/* tests/fuzz/fuzz_journal.c - the crash journal's reader (efc_journal_replay, efc_journal_blob,
 * efc/journal.c). The supervisor reads the journal of a daemon that died at any instruction, and
 * reads it as outside input: whatever the bytes, a replay must refuse them before any callback or
 * hand out only records within their limits, in order, and the hand-over blob made from an
 * accepted journal must parse.
 *
 * A journal is at least 64 KiB of header and two halves of 64 KiB, which random inputs would
 * almost never be. So the input is not the mapping: a valid mapping is built around it, the
 * input giving a few header fields and the active half's records, so that nearly every run
 * reaches the record parser:
 *
 *     0  flags: 1 active half 1, 2|4 state (3: invalid), 8 a valid FUSE_INIT, 16 the next 128
 *        bytes are XORed over the header's first 128 (reaching its own checks)
 *     1  argc    2  argv length N    3  unused
 *     4  N bytes of argv, [128 bytes of header XOR], then the records (used = their length)
 */
#include <errno.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "efc/hoblob_i.h"
#include "efc/journal_i.h"
#include "efc/ns_i.h"
#include "util/buf.h"
#include "util/le.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HALF EFC_JNL_MIN_HALF

struct ctx {
    uint64_t nodes, handles, last_ino, last_num;
};

static int on_node(void *arg, const struct efc_journal_node *n)
{
    struct ctx *c = arg;
    if (n->ino == 0 || n->ino == EFC_ROOT_INO || n->parent == 0 || n->keylen > OSS_MAX_KEY_LEN ||
        strlen(n->key) != n->keylen || n->namelen == 0 || n->namelen > n->keylen ||
        n->namelen > 255 || c->handles != 0 || (c->nodes && n->ino <= c->last_ino))
        abort();
    c->last_ino = n->ino;
    c->nodes++;
    return 0;
}

static int on_handle(void *arg, const struct efc_fh_record *r)
{
    struct ctx *c = arg;
    if ((r->num >> 32) == 0 || r->ino == 0 || strlen(r->key) > OSS_MAX_KEY_LEN ||
        strlen(r->etag) > OSS_MAX_ETAG_LEN || (c->handles && r->num <= c->last_num))
        abort();
    c->last_num = r->num;
    c->handles++;
    return 0;
}

static int count_node(void *arg, const struct efc_ns_record *r)
{
    struct ctx *c = arg;
    if (!r->lookups_unknown || r->nlookup != 1 || r->attr.fetched_ms != 0)
        abort();
    c->nodes++;
    return 0;
}

static int count_handle(void *arg, const struct efc_fh_record *r)
{
    struct ctx *c = arg;
    c->handles++;
    return 0;
}

/* Replays MEM and makes a blob of it; INIT_OK: the header holds a valid FUSE_INIT. */
static void check(const uint8_t *mem, size_t len, bool init_ok)
{
    static const struct efc_journal_visitor v = {.node = on_node, .handle = on_handle};
    static const struct efc_ho_visitor hv = {.node = count_node, .handle = count_handle};
    struct ctx c, p;
    struct buf b;
    char err[256];

    memset(&c, 0, sizeof(c));
    err[0] = '\0';
    int rc = efc_journal_replay(mem, len, &v, &c, err, sizeof(err));
    if (rc != 0) {
        /* a refused journal is refused before any record reaches a callback */
        if ((rc != -EINVAL && rc != -ENOMEM) || strncmp(err, "crash journal: ", 15) != 0 ||
            c.nodes != 0 || c.handles != 0)
            abort();
        if (efc_journal_blob(mem, len, 1, 2, 0, "crash-1", efc_ns_seq_after, &b, err,
                             sizeof(err)) == 0)
            abort();
        return;
    }
    rc = efc_journal_blob(mem, len, 1765274023, 4242, 0, "crash-1", efc_ns_seq_after, &b, err,
                          sizeof(err));
    if (rc == -ENOMEM)
        return;
    if (!init_ok) {
        if (rc != -EINVAL || b.len != 0)
            abort();
        return;
    }
    if (rc != 0) /* every record the replay accepts fits the blob's limits */
        abort();
    memset(&p, 0, sizeof(p));
    rc = efc_ho_parse(b.data, b.len, &hv, &p, err, sizeof(err));
    if (rc != 0 || p.nodes != c.nodes || p.handles != c.handles)
        abort();
    buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t len = EFC_JNL_HEADER_SIZE + 2 * HALF;

    /* the input itself, as a mapping far too short */
    check(data, size, false);
    if (size < 4)
        return 0;
    uint8_t flags = data[0], argc = data[1], alen = data[2];
    data += 4;
    size -= 4;
    if (alen > size)
        alen = (uint8_t)size;

    uint8_t *mem = calloc(1, len);
    if (mem == NULL)
        return 0;
    memcpy(mem, EFC_JNL_MAGIC, sizeof(EFC_JNL_MAGIC));
    le_put32(mem + 8, EFC_JNL_VERSION);
    le_put32(mem + 12, EFC_JNL_HEADER_SIZE);
    le_put64(mem + 16, HALF);
    uint32_t active = flags & 1;
    le_put32(mem + 24, active);
    le_put32(mem + 28, 4242);
    le_put32(mem + 48, (flags >> 1) & 3);
    le_put64(mem + 64, 7);
    if (flags & 8) {
        struct fuse_in_header in = {
            .len = sizeof(in) + sizeof(struct fuse_init_in), .opcode = FUSE_INIT, .unique = 2};
        struct fuse_init_in ii = {.major = 7, .minor = 38};
        memcpy(mem + EFC_JNL_INIT_OFF, &in, sizeof(in));
        memcpy(mem + EFC_JNL_INIT_OFF + sizeof(in), &ii, sizeof(ii));
        le_put32(mem + 52, in.len);
        memset(mem + EFC_JNL_REPLY_OFF, 0x21, 64);
        le_put32(mem + 56, 64);
    }
    memcpy(mem + EFC_JNL_ARGV_OFF, data, alen);
    le_put32(mem + 60, alen);
    le_put32(mem + 72, argc);
    data += alen;
    size -= alen;
    const uint8_t *mask = NULL;
    if (flags & 16) {
        size_t n = size < 128 ? size : 128;
        mask = data;
        data += n;
        size -= n;
    }
    if (size > HALF)
        size = HALF;
    memcpy(mem + EFC_JNL_HEADER_SIZE + active * HALF, data, size);
    le_put64(mem + 32 + 8 * active, size);
    for (size_t i = 0; mask && mask + i < data; i++)
        mem[i] ^= mask[i];
    uint32_t init_len = le_get32(mem + 52);
    bool init_ok = init_len >= EFC_HO_MIN_INIT && init_len == le_get32(mem + EFC_JNL_INIT_OFF) &&
                   le_get32(mem + EFC_JNL_INIT_OFF + 4) == FUSE_INIT;
    check(mem, len, init_ok);
    free(mem);
    return 0;
}
