/* oss/oss_url.c - endpoint URLs and region names. Bytes here come from mount options, so every
 * field has a hard length and a strict character set, and errors say what was wrong. */
#include "oss/oss_url_i.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *msg, const char *s, size_t len)
{
    if (err && errlen)
        snprintf(err, errlen, "bad endpoint '%.*s': %s", (int)(len > 200 ? 200 : len), s, msg);
    return -EINVAL;
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

int oss_endpoint_parse(const char *s, size_t len, struct oss_endpoint_url *out, char *err,
                       size_t errlen)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    if (len == 0)
        return fail(err, errlen, "empty", s, len);
    if (len > OSS_MAX_URL_LEN)
        return fail(err, errlen, "too long", s, len);
    if (len >= 8 && strncasecmp(s, "https://", 8) == 0) {
        out->https = true;
        i = 8;
    } else if (len >= 7 && strncasecmp(s, "http://", 7) == 0) {
        i = 7;
    } else {
        return fail(err, errlen, "expected http:// or https://", s, len);
    }
    size_t hs = i, he;
    if (i < len && s[i] == '[') {
        hs = ++i;
        while (i < len && s[i] != ']') {
            char c = s[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                  c == ':' || c == '.'))
                return fail(err, errlen, "bad IPv6 address", s, len);
            i++;
        }
        if (i >= len)
            return fail(err, errlen, "missing ']'", s, len);
        he = i++;
        out->ipv6 = true;
    } else {
        while (i < len && host_char(s[i]))
            i++;
        he = i;
    }
    if (he == hs)
        return fail(err, errlen, "missing host", s, len);
    if (he - hs > OSS_MAX_HOST_LEN)
        return fail(err, errlen, "host too long", s, len);
    memcpy(out->host, s + hs, he - hs);
    out->host[he - hs] = '\0';
    out->port = out->https ? 443 : 80;
    if (i < len && s[i] == ':') {
        long port = 0;
        size_t ps = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - ps < 6)
            port = port * 10 + (s[i++] - '0');
        if (i == ps || port < 1 || port > 65535)
            return fail(err, errlen, "bad port", s, len);
        out->port = (int)port;
        out->port_given = true;
    }
    if (i < len && s[i] == '/')
        i++;
    if (i != len)
        return fail(err, errlen, "unexpected characters after host[:port]", s, len);
    return 0;
}

int oss_endpoint_list_parse(const char *s, struct oss_endpoint_url *out, int max, char *err,
                            size_t errlen)
{
    int n = 0;
    const char *p = s;

    for (;;) {
        const char *comma = strpbrk(p, ",|");
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (n == max) {
            if (err && errlen)
                snprintf(err, errlen, "too many endpoints (at most %d)", max);
            return -EINVAL;
        }
        int rc = oss_endpoint_parse(p, len, &out[n], err, errlen);
        if (rc)
            return rc;
        n++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return n;
}

int oss_region_from_host(const char *host, char *out, size_t outlen)
{
    const char *p = host;
    const char *suffix = ".aliyuncs.com";
    size_t hl = strlen(host), sl = strlen(suffix);

    if (hl <= sl || strcasecmp(host + hl - sl, suffix) != 0)
        return -ENOENT;
    if (strncasecmp(p, "s3.", 3) == 0)
        p += 3;
    size_t end = (size_t)(host + hl - sl - p); /* part before ".aliyuncs.com" */
    char part[128];
    if (end == 0 || end >= sizeof(part))
        return -ENOENT;
    memcpy(part, p, end);
    part[end] = '\0';
    const char *r;
    if (strncasecmp(part, "oss-", 4) == 0) {
        r = part + 4; /* oss-cn-hangzhou[-internal] */
        size_t rl = strlen(r);
        if (rl > 9 && strcasecmp(r + rl - 9, "-internal") == 0)
            part[4 + rl - 9] = '\0';
    } else {
        size_t pl = strlen(part); /* cn-hangzhou.oss */
        if (pl <= 4 || strcasecmp(part + pl - 4, ".oss") != 0)
            return -ENOENT;
        part[pl - 4] = '\0';
        r = part;
    }
    if (*r == '\0' || strchr(r, '.') != NULL || strcasecmp(r, "accelerate") == 0 ||
        strncasecmp(r, "accelerate-", 11) == 0)
        return -ENOENT;
    if (strlen(r) + 1 > outlen)
        return -ENOENT;
    strcpy(out, r);
    return 0;
}
