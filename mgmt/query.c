/* mgmt/query.c - the URL query parser of the management server (mgmt_parse_query).
 *
 * The server hands it the raw query, as the client sent it, before libmicrohttpd decodes
 * anything: the bytes served are exactly the bytes fuzzed (tests/fuzz/fuzz_mgmt_query.c). It
 * decodes in one pass into fixed-size output slots, so its memory is bounded by the caller's
 * array whatever the input; every limit (query length, pair count, name and value length)
 * fails with a reason instead of truncating, so that a parameter is never silently cut into a
 * different path. Decoded names and values are valid UTF-8 without NUL bytes (they become JSON
 * strings and object keys), and names have no control characters (they appear in messages).
 */
#include "mgmt/mgmt.h"
#include "mgmt/mgmt_i.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Whether S[0..N) is valid UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
bool mgmt_utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/* A printable, bounded rendering of raw bytes for an error message. */
void mgmt_shown(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '"' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        if (o + 5 >= outlen && i + 1 < n) {
            snprintf(out + o, outlen - o, "...");
            return;
        }
    }
    out[o] = '\0';
}

/* Decodes S[0..N) into OUT (room for CAP bytes plus the NUL). Returns the decoded length, or
 * -EINVAL for a bad escape or a NUL, -E2BIG when it does not fit. */
static long decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3 || hexval((unsigned char)s[i + 1]) < 0 ||
                hexval((unsigned char)s[i + 2]) < 0)
                return -EINVAL;
            c = (unsigned char)(hexval((unsigned char)s[i + 1]) * 16 +
                                hexval((unsigned char)s[i + 2]));
            if (c == 0)
                return -EINVAL;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o >= cap)
            return -E2BIG;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

int mgmt_parse_query(const char *query, size_t len, struct mgmt_param *out, size_t max, char *err,
                     size_t errlen)
{
    char what[80];
    size_t np = 0;

    if (errlen)
        err[0] = '\0';
    if (len > MGMT_MAX_QUERY) {
        snprintf(err, errlen, "query is %zu bytes, over the limit of %d", len, MGMT_MAX_QUERY);
        return -E2BIG;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)query[i];
        if (c < 0x20 || c == 0x7f) {
            snprintf(err, errlen, "query has a control byte 0x%02x at offset %zu", c, i);
            return -EINVAL;
        }
    }

    size_t pos = 0;
    while (pos < len) {
        const char *seg = query + pos;
        const char *amp = memchr(seg, '&', len - pos);
        size_t seglen = amp ? (size_t)(amp - seg) : len - pos;
        pos += seglen + (amp ? 1 : 0);
        if (seglen == 0)
            continue; /* "a=1&&b=2", a trailing '&' */

        const char *eq = memchr(seg, '=', seglen);
        size_t nlen = eq ? (size_t)(eq - seg) : seglen;
        const char *val = eq ? eq + 1 : seg + seglen;
        size_t vlen = eq ? seglen - nlen - 1 : 0;

        mgmt_shown(seg, nlen, what, sizeof(what));
        if (np >= max || np >= MGMT_MAX_PARAMS) {
            snprintf(err, errlen, "too many parameters: more than %zu",
                     max < MGMT_MAX_PARAMS ? max : (size_t)MGMT_MAX_PARAMS);
            return -E2BIG;
        }
        struct mgmt_param *p = &out[np];
        long rc = decode(seg, nlen, p->name, sizeof(p->name) - 1);
        if (rc == -E2BIG) {
            snprintf(err, errlen, "parameter name '%s' is too long (limit %zu bytes)", what,
                     sizeof(p->name) - 1);
            return -E2BIG;
        }
        if (rc < 0) {
            snprintf(err, errlen, "parameter name '%s' has a bad percent-escape", what);
            return -EINVAL;
        }
        if (rc == 0) {
            snprintf(err, errlen, "a parameter has an empty name");
            return -EINVAL;
        }
        for (long j = 0; j < rc; j++) {
            unsigned char c = (unsigned char)p->name[j];
            if (c < 0x20 || c == 0x7f) {
                snprintf(err, errlen, "parameter name '%s' has a control character", what);
                return -EINVAL;
            }
        }
        if (!mgmt_utf8_ok((const unsigned char *)p->name, (size_t)rc)) {
            snprintf(err, errlen, "parameter name '%s' is not valid UTF-8", what);
            return -EINVAL;
        }
        /* The name is clean from here: messages quote it as decoded. */
        rc = decode(val, vlen, p->value, MGMT_MAX_VALUE);
        if (rc == -E2BIG) {
            snprintf(err, errlen, "parameter '%s' is too long (limit %d bytes)", p->name,
                     MGMT_MAX_VALUE);
            return -E2BIG;
        }
        if (rc < 0) {
            snprintf(err, errlen, "parameter '%s' has a bad percent-escape or an encoded NUL",
                     p->name);
            return -EINVAL;
        }
        if (!mgmt_utf8_ok((const unsigned char *)p->value, (size_t)rc)) {
            snprintf(err, errlen, "parameter '%s' is not valid UTF-8", p->name);
            return -EINVAL;
        }
        np++;
    }
    return (int)np;
}
