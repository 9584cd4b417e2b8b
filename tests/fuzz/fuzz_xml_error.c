// fuzz-links: efc_oss
/* tests/fuzz/fuzz_xml_error.c - Error and BucketStat parsing (OSS_XML_ERROR, OSS_XML_STAT).
 *
 * The input is the body, parsed as each kind, whole and in chunks whose size comes from the
 * input's last byte (1..64); the two parses must agree. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oss/oss_xml_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct oss_xml *parse(enum oss_xml_kind kind, const uint8_t *data, size_t size, size_t chunk,
                             int *rc)
{
    struct oss_xml *x = oss_xml_new(kind);
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
    if ((*rc != 0) != (oss_xml_error(x)[0] != '\0'))
        abort();
    return x;
}

static void same_field(const char *a, const char *b)
{
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"ServerTime", "HostId", "EC", "StringToSign", "Code"};
    size_t chunk = size ? 1 + data[size - 1] % 64 : 1;
    int rc1, rc2;

    struct oss_xml *a = parse(OSS_XML_ERROR, data, size, 0, &rc1);
    struct oss_xml *b = parse(OSS_XML_ERROR, data, size, chunk, &rc2);
    if (rc1 != rc2)
        abort();
    if (strcmp(oss_xml_error_code(a), oss_xml_error_code(b)) != 0 ||
        strcmp(oss_xml_error_message(a), oss_xml_error_message(b)) != 0 ||
        strcmp(oss_xml_error_request_id(a), oss_xml_error_request_id(b)) != 0)
        abort();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        same_field(oss_xml_error_field(a, names[i]), oss_xml_error_field(b, names[i]));
    if (rc1 != 0 && (oss_xml_error_code(a)[0] || oss_xml_error_field(a, "Code")))
        abort();
    oss_xml_free(a);
    oss_xml_free(b);

    a = parse(OSS_XML_STAT, data, size, 0, &rc1);
    b = parse(OSS_XML_STAT, data, size, chunk, &rc2);
    if (rc1 != rc2)
        abort();
    struct oss_bucket_stat sa, sb;
    oss_xml_stat(a, &sa);
    oss_xml_stat(b, &sb);
    if (sa.storage != sb.storage || sa.object_count != sb.object_count)
        abort();
    oss_xml_free(a);
    oss_xml_free(b);
    return 0;
}
