// fuzz-links: efc_util
/* tests/fuzz/fuzz_mount_args.c - what mount(8) hands mount.alinas, all of it untrusted text.
 *
 * The input is read two ways: as a whole (an option string, a source, a mountinfo line) and split
 * at NUL bytes into an argv, whose -o options and source then go through the same parsers, as in
 * the helper. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/mountopt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_all(const char *opts, const char *source, bool sloppy)
{
    struct mountopt m;
    struct mountopt_source s;
    char err[256];

    if (mountopt_init(&m) == 0) {
        mountopt_parse(&m, opts, sloppy, err, sizeof(err));
        mountopt_release(&m);
    }
    if (source)
        mountopt_source_parse(source, &s, err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    /* as a whole */
    parse_all(s, s, size > 0 && (data[0] & 1));
    char *line = strdup(s);
    struct mountopt_mountinfo mi;
    mountopt_mountinfo_parse(line, &mi);
    free(line);

    /* as an argv split at NULs */
    char *argv[66];
    int argc = 0;
    argv[argc++] = "mount.alinas";
    for (size_t i = 0; i <= size && argc < 64;) {
        argv[argc++] = s + i;
        i += strlen(s + i) + 1;
    }
    argv[argc] = NULL;
    struct mountopt_cmd cmd;
    char err[256];
    if (mountopt_cmd_parse(argc, argv, &cmd, err, sizeof(err)) == 0 && !cmd.help)
        parse_all(cmd.options, cmd.source, cmd.sloppy);
    mountopt_cmd_release(&cmd);
    free(s);
    return 0;
}
