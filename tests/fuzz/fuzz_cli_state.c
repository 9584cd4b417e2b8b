// fuzz-links: efc_cli
/* tests/fuzz/fuzz_cli_state.c - the CLI's readers of local files: the daemon's state file
 * (cli_state_parse, then cli_connect_host on its bind address) and mountinfo
 * (cli_mountinfo_find), both fed the same input. What they return must stay within its fields'
 * bounds; a refusal must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const points[] = {"/", "/mnt/oss data", "/data", "/a/b/c"};
    static struct cli_state st;
    static struct cli_mount m;
    char err[256], host[80];

    err[0] = '\0';
    if (cli_state_parse((const char *)data, size, &st, err, sizeof(err)) == 0) {
        if (st.port > 65535 || st.pid < 0 || strlen(st.bind_addr) >= sizeof(st.bind_addr) ||
            strlen(st.mountpoint) >= sizeof(st.mountpoint))
            abort();
        if (cli_connect_host(st.bind_addr, host, sizeof(host)) == 0 && strlen(host) >= 48)
            abort(); /* an IPv6 literal and brackets at most */
    } else if (err[0] == '\0') {
        abort();
    }
    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
        if (cli_mountinfo_find((const char *)data, size, points[i], &m) != 0)
            abort();
        if (strlen(m.fstype) >= sizeof(m.fstype) || strlen(m.parent) >= sizeof(m.parent))
            abort();
        /* a parent encloses the point */
        if (m.parent[0] && (strncmp(m.parent, points[i], strlen(m.parent)) != 0 ||
                            strcmp(m.parent, points[i]) == 0))
            abort();
    }
    return 0;
}
