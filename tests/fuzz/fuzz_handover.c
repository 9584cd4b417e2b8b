// fuzz-links: efc_core
/* tests/fuzz/fuzz_handover.c - the runtime update's blob parser (efc_ho_parse, efc/handover.c)
 * and the inode table's import of its records. The blob is written by the previous daemon
 * process, but it is still bytes from outside this process: whatever they are, the parser must
 * refuse or accept them without reading out of bounds, every record it hands out must be within
 * its limits, and an accepted blob must import into a fresh table without crashing. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "efc/handover_i.h"
#include "efc/ns_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
    struct efc_ns *ns;
    uint64_t next_seq;
    uint64_t nodes, handles;
};

static int on_header(void *arg, const struct efc_ho_header *h)
{
    struct ctx *c = arg;
    if (h->init_len < EFC_HO_MIN_INIT || h->init_len > EFC_HO_MAX_INIT || h->init == NULL ||
        h->nodes > EFC_HO_MAX_NODES || h->handles > EFC_HO_MAX_HANDLES ||
        strlen(h->id) > EFC_HO_MAX_ID || h->next_seq == 0)
        abort();
    c->next_seq = h->next_seq;
    return 0;
}

static int on_node(void *arg, const struct efc_ns_record *r)
{
    struct ctx *c = arg;
    if (r->keylen > OSS_MAX_KEY_LEN || strlen(r->key) != r->keylen || r->namelen > r->keylen ||
        strlen(r->attr.etag) > OSS_MAX_ETAG_LEN || strlen(r->open_etag) > OSS_MAX_ETAG_LEN ||
        r->ino == 0)
        abort();
    c->nodes++;
    int rc = efc_ns_import(c->ns, r); /* an inconsistent record is refused, never a crash */
    if (rc != 0 && rc != -EINVAL && rc != -ENOMEM)
        abort();
    return 0;
}

static int on_handle(void *arg, const struct efc_fh_record *r)
{
    struct ctx *c = arg;
    if (strlen(r->key) > OSS_MAX_KEY_LEN || strlen(r->etag) > OSS_MAX_ETAG_LEN ||
        (r->num >> 32) == 0)
        abort();
    c->handles++;
    return 0;
}

static void parse_one(const uint8_t *data, size_t size)
{
    static const struct efc_ho_visitor v = {
        .header = on_header, .node = on_node, .handle = on_handle};
    struct ctx c;
    char err[256];

    memset(&c, 0, sizeof(c));
    if (efc_ns_new("", &c.ns) != 0)
        return;
    err[0] = '\0';
    int rc = efc_ho_parse(data, size, &v, &c, err, sizeof(err));
    if (rc == 0) {
        efc_ns_import_done(c.ns, c.next_seq);
    } else if ((rc != -EINVAL && rc != -EBADMSG) || strncmp(err, "handover blob: ", 15) != 0 ||
               c.nodes != 0 || c.handles != 0) {
        /* a refused blob is refused before any record reaches a callback */
        abort();
    }
    efc_ns_free(c.ns);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_one(data, size);
    /* Again with the checksum made right, so the fuzzer gets past it to the records. */
    if (size >= EFC_HO_HEADER_SIZE) {
        uint8_t *copy = malloc(size);
        if (copy == NULL)
            return 0;
        memcpy(copy, data, size);
        uint64_t crc = efc_ho_checksum(copy, size);
        for (int i = 0; i < 8; i++)
            copy[24 + i] = (uint8_t)(crc >> (8 * i));
        parse_one(copy, size);
        free(copy);
    }
    return 0;
}
