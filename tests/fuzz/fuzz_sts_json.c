// fuzz-links: efc_oss
/* tests/fuzz/fuzz_sts_json.c - the STS credentials file parser (oss_cred_parse_sts). The input
 * is the file's content; a success must yield fields within their limits, and an error string
 * must never quote the input (it could be a secret). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oss/oss_cred_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_field(const char *s, size_t max, int allow_empty)
{
    size_t n = strlen(s);
    if (n > max || (!allow_empty && n == 0))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct oss_cred c;
    char err[256];
    memset(&c, 0, sizeof(c));
    err[0] = '\0';
    int rc = oss_cred_parse_sts((const char *)data, size, &c, err, sizeof(err));
    if (rc == 0) {
        check_field(c.access_key_id, sizeof(c.access_key_id) - 1, 0);
        check_field(c.access_key_secret, sizeof(c.access_key_secret) - 1, 0);
        check_field(c.security_token, OSS_CRED_MAX_FIELD, 0);
        if (c.generation != 0)
            abort();
    } else if (rc != -EINVAL || strncmp(err, "STS file: ", 10) != 0 || strlen(err) >= sizeof(err) ||
               strchr(err, '\'') != NULL) {
        /* Our messages name fields without quotes; a quote means input was echoed. */
        abort();
    }
    return 0;
}
