/* util/statefile.c - the state file's path; see statefile.h. */
#include "util/statefile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *statefile_dir(void)
{
    const char *d = getenv("EFC_STATE_DIR");
    return d && d[0] == '/' ? d : "/run/efc";
}

int statefile_path(const char *dir, const char *mountpoint, char *out, size_t outlen)
{
    size_t dl = strlen(dir), ml = strlen(mountpoint);

    if (dl + 1 + ml + sizeof(".json") > outlen)
        return -ENAMETOOLONG;
    memcpy(out, dir, dl);
    out[dl] = '/';
    for (size_t i = 0; i < ml; i++)
        out[dl + 1 + i] = mountpoint[i] == '/' ? '_' : mountpoint[i];
    memcpy(out + dl + 1 + ml, ".json", sizeof(".json"));
    return 0;
}
