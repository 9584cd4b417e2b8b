/* efc/source.c - the mount source "<bucket>.<host>[:port]:/<prefix>"; see efc.h.
 *
 * The source is what mount(8) shows as the file system's name, so it is kept as given. Parsing
 * is util/mountopt.c's, shared with the mount helper: the bucket is the first dot-separated label,
 * the host the rest; the prefix becomes the root's key prefix, normalised to "" or "a/b/"; a
 * prefix that no visible path could reach (an empty, "." or ".." component) is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "efc/efc.h"
#include "util/mountopt.h"

void efc_source_release(struct efc_source *src)
{
    free(src->text);
    free(src->bucket);
    free(src->host);
    free(src->prefix);
    memset(src, 0, sizeof(*src));
}

int efc_source_parse(const char *text, struct efc_source *src, char *err, size_t errlen)
{
    struct mountopt_source ms;

    memset(src, 0, sizeof(*src));
    /* One grammar for the helper and the daemon: util/mountopt.c owns it. */
    int rc = mountopt_source_parse(text, &ms, err, errlen);
    if (rc)
        return rc;
    src->text = strdup(text);
    src->bucket = strdup(ms.bucket);
    src->host = strdup(ms.host);
    src->prefix = strdup(ms.prefix);
    if (!src->text || !src->bucket || !src->host || !src->prefix) {
        efc_source_release(src);
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}
