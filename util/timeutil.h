/* util/timeutil.h - clocks and HTTP date formats. */
#ifndef EFC_UTIL_TIMEUTIL_H
#define EFC_UTIL_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

uint64_t time_mono_ns(void);
static inline uint64_t time_mono_ms(void)
{
    return time_mono_ns() / 1000000u;
}
uint64_t time_real_us(void);

/* "Wed, 28 Dec 2022 10:27:41 GMT" (RFC 1123); OUT should hold 30 bytes. */
void time_fmt_rfc1123(time_t t, char *out, size_t outlen);
/* "20231216T162057Z" (ISO 8601 basic); OUT should hold 17 bytes. */
void time_fmt_iso8601_basic(time_t t, char *out, size_t outlen);
/* Parses RFC 1123 ("Wed, 28 Dec 2022 10:27:41 GMT") or ISO 8601 ("2023-12-29T07:45:02Z",
 * "2023-12-29T07:45:02.000Z"). Returns 0 and sets *T, or -EINVAL. */
int time_parse_http(const char *s, time_t *t);

#endif
