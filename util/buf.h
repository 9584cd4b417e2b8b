/* util/buf.h - a growable byte buffer with a hard maximum, as curl's dynbuf.
 *
 * Every buffer that holds bytes from outside names its limit at init; growing past it fails
 * with -E2BIG instead of allocating without bound. The contents are always NUL-terminated
 * (the terminator is not counted in len) so text can be used in place.
 */
#ifndef EFC_UTIL_BUF_H
#define EFC_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* hard limit on len */
};

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
void buf_reset(struct buf *b); /* len = 0, memory kept */
/* Return 0, or -E2BIG past the limit, or -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (free() them) and leaves B empty. */
char *buf_detach(struct buf *b, size_t *len);

#endif
