/* oss/oss_url_i.h - parsing of endpoint URLs and of the bucket's host (private to oss/). */
#ifndef EFC_OSS_URL_I_H
#define EFC_OSS_URL_I_H

#include <stdbool.h>
#include <stddef.h>

#define OSS_MAX_HOST_LEN 253
#define OSS_MAX_URL_LEN  512

struct oss_endpoint_url {
    bool https;
    char host[OSS_MAX_HOST_LEN + 1]; /* name or address; IPv6 without brackets */
    bool ipv6;
    int port;                        /* explicit or the scheme's default */
    bool port_given;
};

/* Parses "http[s]://host[:port][/]" (LEN bytes, no NUL needed). Returns 0, or -EINVAL with a
 * one-line reason in ERR. No path, query, user info or fragment is accepted. */
int oss_endpoint_parse(const char *s, size_t len, struct oss_endpoint_url *out, char *err,
                       size_t errlen);

/* Splits a list separated by ',' or '|' (the form a mount option can carry) into at most MAX
 * endpoints; returns how many, or -EINVAL. */
int oss_endpoint_list_parse(const char *s, struct oss_endpoint_url *out, int max, char *err,
                            size_t errlen);

/* Region from an OSS host: "oss-cn-hangzhou.aliyuncs.com", "oss-cn-hangzhou-internal...",
 * "s3.oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou.oss.aliyuncs.com" give "cn-hangzhou".
 * Returns 0, or -ENOENT when the host does not name a region. */
int oss_region_from_host(const char *host, char *out, size_t outlen);

#endif
