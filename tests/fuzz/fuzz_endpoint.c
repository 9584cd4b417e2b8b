// fuzz-links: efc_oss
/* tests/fuzz/fuzz_endpoint.c - endpoint URL lists and bucket hosts, as given in mount options. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oss/oss_url_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct oss_endpoint_url u[8];
    char err[256], region[64];

    if (size > 4096)
        return 0;
    oss_endpoint_parse((const char *)data, size, &u[0], err, sizeof(err));
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    oss_endpoint_list_parse(s, u, 8, err, sizeof(err));
    oss_region_from_host(s, region, sizeof(region));
    free(s);
    return 0;
}
