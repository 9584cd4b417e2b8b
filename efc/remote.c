/* efc/remote.c - the remote: the mount source "<bucket>.<host>[:port]:/<prefix>"; see efc.h.
 *
 * It is what mount(8) shows as the file system's name, so it is kept as given. Parsing
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

void efc_remote_release(struct efc_remote *rm)
{
    free(rm->text);
    free(rm->bucket);
    free(rm->host);
    free(rm->prefix);
    memset(rm, 0, sizeof(*rm));
}

int efc_remote_parse(const char *text, struct efc_remote *rm, char *err, size_t errlen)
{
    struct mountopt_source ms;

    memset(rm, 0, sizeof(*rm));
    /* One grammar for the helper and the daemon: util/mountopt.c owns it. */
    int rc = mountopt_source_parse(text, &ms, err, errlen);
    if (rc)
        return rc;
    rm->text = strdup(text);
    rm->bucket = strdup(ms.bucket);
    rm->host = strdup(ms.host);
    rm->prefix = strdup(ms.prefix);
    if (!rm->text || !rm->bucket || !rm->host || !rm->prefix) {
        efc_remote_release(rm);
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}
