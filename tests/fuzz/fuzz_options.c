// fuzz-links: efc_util
/* tests/fuzz/fuzz_options.c - mount options as the helper and the daemon receive them:
 * a comma-separated list of name=value pairs, each through the option table, then the
 * relations check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/opt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct opt_set o;
    char err[256];

    if (size > 16384 || opt_init(&o) != 0)
        return 0;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char *save = NULL;
    for (char *kv = strtok_r(s, ",", &save); kv; kv = strtok_r(NULL, ",", &save))
        opt_set_kv(&o, kv, err, sizeof(err));
    opt_check(&o, err, sizeof(err));
    struct opt_set c;
    if (opt_copy(&c, &o) == 0)
        opt_release(&c);
    free(s);
    opt_release(&o);
    return 0;
}
