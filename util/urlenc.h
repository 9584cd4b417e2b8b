/* util/urlenc.h - RFC 3986 percent-encoding as the OSS and AWS signers need it.
 *
 * Unreserved bytes (A-Z a-z 0-9 - _ . ~) are kept, every other byte becomes %XX in upper-case
 * hex. keep_slash leaves '/' as is (canonical URIs); otherwise it becomes %2F (query strings).
 */
#ifndef EFC_UTIL_URLENC_H
#define EFC_UTIL_URLENC_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

int url_encode(struct buf *out, const char *s, size_t len, bool keep_slash);
/* Decodes %XX (and, if plus_is_space, '+' as ' ') into OUT. Returns 0, or -EINVAL for a
 * malformed escape or an encoded NUL, or the buf error. */
int url_decode(struct buf *out, const char *s, size_t len, bool plus_is_space);

#endif
