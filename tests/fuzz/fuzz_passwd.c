// fuzz-links: efc_oss
/* tests/fuzz/fuzz_passwd.c - the passwd file parser (oss_cred_parse_passwd). The input is the
 * file's content; a success must yield non-empty fields within their limits without blanks or
 * control characters, and the result must not depend on what follows the first line used. */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oss/oss_cred_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_field(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
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
    int rc = oss_cred_parse_passwd((const char *)data, size, &c, err, sizeof(err));
    if (rc == 0) {
        check_field(c.access_key_id, sizeof(c.access_key_id) - 1);
        check_field(c.access_key_secret, sizeof(c.access_key_secret) - 1);
        if (c.security_token[0] != '\0' || c.expiration != 0 || c.generation != 0)
            abort();
        /* The secret must be a substring of the input, the id too. */
        if (memmem(data, size, c.access_key_id, strlen(c.access_key_id)) == NULL ||
            memmem(data, size, c.access_key_secret, strlen(c.access_key_secret)) == NULL)
            abort();
    } else if (rc != -EINVAL || strncmp(err, "passwd file: ", 13) != 0) {
        abort();
    }
    return 0;
}
