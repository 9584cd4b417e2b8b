// fuzz-links: efc_oss
/* tests/fuzz/fuzz_xml_list.c - ListBucketResult parsing (OSS_XML_LIST).
 *
 * The input is the body. It is parsed twice: whole, and in chunks whose size comes from the
 * input's last byte (1..64), so seeds stay real documents. Both parses must agree (the parser
 * must not depend on where expat's buffers end), and a successful one must honour the limits
 * oss_xml_i.h promises. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oss/oss_xml_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct oss_xml *parse(const uint8_t *data, size_t size, size_t chunk, int *rc)
{
    struct oss_xml *x = oss_xml_new(OSS_XML_LIST);
    if (x == NULL)
        abort();
    const char *p = (const char *)data;
    size_t off = 0;
    *rc = 0;
    if (chunk)
        while (*rc == 0 && size - off > chunk) {
            *rc = oss_xml_feed(x, p + off, chunk, false);
            off += chunk;
        }
    if (*rc == 0)
        *rc = oss_xml_feed(x, p + off, size - off, true);
    if (*rc != 0 && *rc != -EBADMSG)
        abort();
    if (oss_xml_error(x) == NULL || (*rc != 0) != (oss_xml_error(x)[0] != '\0'))
        abort();
    return x;
}

static void check(const struct oss_xml *x)
{
    size_t n = oss_xml_list_count(x);
    if (n > OSS_XML_MAX_ENTRIES)
        abort();
    for (size_t i = 0; i < n; i++) {
        const struct oss_list_entry *e = oss_xml_list_entry(x, i);
        size_t len = strlen(e->key);
        if (len == 0 || len > OSS_MAX_KEY_LEN || strlen(e->etag) > OSS_MAX_ETAG_LEN)
            abort();
        if ((unsigned)e->storage_class > OSS_SC_OTHER)
            abort();
    }
    if (oss_xml_list_entry(x, n) != NULL)
        abort();
    const char *tok = oss_xml_list_next_token(x);
    if (strlen(tok) > OSS_MAX_TOKEN_LEN || (oss_xml_list_truncated(x) != (tok[0] != '\0')))
        abort();
}

static void same(const struct oss_xml *a, const struct oss_xml *b)
{
    size_t n = oss_xml_list_count(a);
    if (n != oss_xml_list_count(b) || oss_xml_list_truncated(a) != oss_xml_list_truncated(b) ||
        strcmp(oss_xml_list_next_token(a), oss_xml_list_next_token(b)) != 0)
        abort();
    for (size_t i = 0; i < n; i++) {
        const struct oss_list_entry *x = oss_xml_list_entry(a, i), *y = oss_xml_list_entry(b, i);
        if (strcmp(x->key, y->key) != 0 || strcmp(x->etag, y->etag) != 0 ||
            x->is_prefix != y->is_prefix || x->size != y->size || x->mtime != y->mtime ||
            x->storage_class != y->storage_class)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc1, rc2;
    struct oss_xml *whole = parse(data, size, 0, &rc1);
    struct oss_xml *chunked = parse(data, size, size ? 1 + data[size - 1] % 64 : 1, &rc2);
    if (rc1 != rc2)
        abort();
    if (rc1 == 0) {
        check(whole);
        same(whole, chunked);
    }
    oss_xml_free(whole);
    oss_xml_free(chunked);
    return 0;
}
