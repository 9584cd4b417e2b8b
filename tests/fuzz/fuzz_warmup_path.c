// fuzz-links: efc_mgmt
/* tests/fuzz/fuzz_warmup_path.c - the warm-up's checks of what a user sends: warmup_normalize
 * (target_path) and warmup_pattern_check (pattern), both fed the input up to its first NUL.
 *
 * Invariants: a normalized path is at most WARMUP_PATH_MAX bytes, not absolute, without empty,
 * "." or ".." components, without a trailing '/', and normalizing it again gives it unchanged; a
 * refusal says why. A pattern the check accepts is compiled with regcomp() as warmup_load does:
 * the fuzzer's memory and time limits catch a pattern whose cost the check underestimates. */
#include <errno.h>
#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt/warmup.h"
#include "mgmt/warmup_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const char *p)
{
    char out[WARMUP_PATH_MAX + 1], again[WARMUP_PATH_MAX + 1], err[256] = "";
    int rc = warmup_normalize(p, out, sizeof(out), err, sizeof(err));
    if (rc != 0) {
        if (rc != -EINVAL || err[0] == '\0')
            abort();
        return;
    }
    size_t len = strlen(out);
    if (len > WARMUP_PATH_MAX || out[0] == '/' || (len && out[len - 1] == '/'))
        abort();
    for (const char *c = out; len;) {
        const char *s = strchr(c, '/');
        size_t n = s ? (size_t)(s - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            abort();
        if (!s)
            break;
        c = s + 1;
    }
    if (warmup_normalize(out, again, sizeof(again), err, sizeof(err)) != 0 ||
        strcmp(out, again) != 0)
        abort();
}

static void check_pattern(const char *p)
{
    char err[256] = "";
    int rc = warmup_pattern_check(p, err, sizeof(err));
    if (rc != 0) {
        if (rc != -EINVAL || err[0] == '\0')
            abort();
        return;
    }
    regex_t re;
    if (regcomp(&re, p, REG_EXTENDED | REG_NOSUB) == 0) {
        regexec(&re, "model-00001-of-00002.safetensors", 0, NULL, 0);
        regfree(&re);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > WARMUP_PATTERN_MAX + 64)
        return 0;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    check_path(s);
    check_pattern(s);
    free(s);
    return 0;
}
