/* util/urlenc.c - percent-encoding; see urlenc.h. */
#include "util/urlenc.h"

#include <errno.h>

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

int url_encode(struct buf *out, const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0;

    while (i < len) {
        size_t run = i;
        while (run < len && (is_unreserved((unsigned char)s[run]) || (keep_slash && s[run] == '/')))
            run++;
        if (run > i) {
            int rc = buf_append(out, s + i, run - i);
            if (rc)
                return rc;
            i = run;
            continue;
        }
        unsigned char c = (unsigned char)s[i++];
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        int rc = buf_append(out, esc, 3);
        if (rc)
            return rc;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int url_decode(struct buf *out, const char *s, size_t len, bool plus_is_space)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (len - i < 3)
                return -EINVAL;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -EINVAL;
            c = (char)(h << 4 | l);
            if (c == '\0')
                return -EINVAL;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        int rc = buf_append(out, &c, 1);
        if (rc)
            return rc;
    }
    return 0;
}
