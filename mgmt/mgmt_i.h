/* mgmt/mgmt_i.h - private helpers shared by the files of mgmt/. */
#ifndef EFC_MGMT_MGMT_I_H
#define EFC_MGMT_MGMT_I_H

#include <stdbool.h>
#include <stddef.h>

/* Whether S[0..N) is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
bool mgmt_utf8_ok(const unsigned char *s, size_t n);
/* A printable, bounded rendering of S[0..N) for messages and logs: printable ASCII kept (quotes
 * and backslashes escaped), other bytes as \xNN, "..." when cut. */
void mgmt_shown(const char *s, size_t n, char *out, size_t outlen);

#endif
