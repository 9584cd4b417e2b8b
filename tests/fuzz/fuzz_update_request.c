// fuzz-links: efc_core
/* tests/fuzz/fuzz_update_request.c - efc_runtime_ops's update request (<state>.pending.json) as
 * the daemon parses it (efc_update_parse, efc/handover.c): JSON written by a tool, read with a
 * size limit and checked against the option table. Whatever the bytes, the result is a refusal
 * with a one-line reason or an option set that passes opt_check and changes no option the table
 * does not mark runtime. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "efc/handover_i.h"
#include "util/opt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct opt_set cur;
    static int ready;
    struct opt_set out;
    struct efc_update_req req;
    char err[512];

    if (!ready) {
        if (opt_init(&cur) != 0)
            return 0;
        opt_set_kv(&cur, "g_tier_DadiMemCacheCapacityMB=64", err, sizeof(err));
        ready = 1;
    }
    err[0] = '\0';
    int rc = efc_update_parse((const char *)data, size, &cur, &req, &out, err, sizeof(err));
    if (strlen(req.id) > EFC_HO_MAX_ID)
        abort();
    if (rc == 0) {
        char e2[512];
        if (opt_check(&out, e2, sizeof(e2)) != 0)
            abort();
        for (int i = 0; i < OPT__COUNT; i++)
            if (!opt_table[i].runtime && strcmp(out.v[i].s, cur.v[i].s) != 0)
                abort();
        opt_release(&out);
    } else if (rc != -EINVAL || err[0] == '\0' || strchr(err, '\n') != NULL) {
        abort();
    }
    return 0;
}
