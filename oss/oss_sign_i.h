/* oss/oss_sign_i.h - request signers: OSS V1, OSS V4 and AWS SigV4 (private to oss/).
 *
 * Signers are pure functions of their input: the caller builds the complete list of headers it
 * will send (including Date / x-oss-date / x-amz-date, x-oss-content-sha256 or
 * x-amz-content-sha256, the security token header and Host where it is signed) and passes the
 * raw, unencoded key and query parameters. The signer returns the Authorization header value.
 * No clock is read here, so tests are exact.
 */
#ifndef EFC_OSS_SIGN_I_H
#define EFC_OSS_SIGN_I_H

#include <stddef.h>
#include <time.h>

#include "util/buf.h"

struct oss_kv {
    const char *k;
    const char *v; /* NULL: a bare query parameter ("?acl") */
};

struct oss_sign_req {
    const char *method;         /* "GET", "HEAD", ... */
    const char *bucket;         /* NULL or "" for service-level requests */
    const char *key;            /* raw UTF-8 object key, NULL or "" for bucket-level requests */
    const char *uri_path;       /* AWS only: the raw (unencoded) request path, e.g. "/bucket/a b" */
    const struct oss_kv *query; /* raw (unencoded) parameters, any order */
    size_t nquery;
    const struct oss_kv *headers; /* as sent, any case, any order */
    size_t nheaders;
    const char *additional_headers; /* V4: lower-case names joined by ';' (e.g. "host;range"), or NULL */
    const char *region;
    const char *service;        /* AWS: "s3" (default when NULL) */
    time_t now;                 /* the time in x-oss-date / x-amz-date */
    const char *access_key_id;
    const char *access_key_secret;
};

/* Each returns 0 and writes the Authorization header value into OUT (reset first), or -errno. */
int oss_sign_v1(const struct oss_sign_req *r, struct buf *out);
int oss_sign_v4(const struct oss_sign_req *r, struct buf *out);
int oss_sign_aws4(const struct oss_sign_req *r, struct buf *out);

/* The intermediate strings, for tests and debug logs (into OUT, reset first). */
int oss_v1_string_to_sign(const struct oss_sign_req *r, struct buf *out);
int oss_v4_canonical_request(const struct oss_sign_req *r, struct buf *out);
int oss_aws4_canonical_request(const struct oss_sign_req *r, struct buf *out);

#endif
