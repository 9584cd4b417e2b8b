/* oss/oss_cred_i.h - credentials: passwd_file, an STS JSON file reloaded when it changes, or the
 * environment (private to oss/).
 *
 * A request takes a snapshot (oss_cred_get) and signs with it, so a reload never changes what a
 * request in flight was signed with. Reloads are driven by oss_cred_get noticing that the file's
 * (mtime, size, inode) changed (checked at most every OSS_CRED_CHECK_MS), or forced by
 * oss_cred_reload after the server answered SecurityTokenExpired or InvalidAccessKeyId (after
 * SecurityTokenExpired, again and again while the file still holds the expired token: see run()
 * in oss_client.c).
 */
#ifndef EFC_OSS_CRED_I_H
#define EFC_OSS_CRED_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define OSS_CRED_MAX_FILE  (64u << 10) /* a credentials file larger than this is refused */
#define OSS_CRED_MAX_FIELD 4095        /* any one of id, secret, token */
#define OSS_CRED_CHECK_MS  1000

struct oss_cred {
    char access_key_id[256];
    char access_key_secret[256];
    char security_token[OSS_CRED_MAX_FIELD + 1]; /* "" when not STS */
    time_t expiration;                           /* 0 when unknown */
    uint64_t generation;                         /* bumps at each successful (re)load */
};

struct oss_cred_src;

/* Sources: exactly one of STS_FILE or PASSWD_FILE, or neither for the environment.
 * Loads now; on failure returns -errno and a one-line reason in ERR. A file that others can read
 * draws a warning in the log. */
int oss_cred_src_new(const char *sts_file, const char *passwd_file, struct oss_cred_src **out,
                     char *err, size_t errlen);
void oss_cred_src_free(struct oss_cred_src *s);

/* Copies the current credentials into OUT, reloading first if the file changed. */
void oss_cred_get(struct oss_cred_src *s, struct oss_cred *out);

/* How often oss_cred_get looks at the file: OSS_CRED_CHECK_MS unless set here (0 restores it);
 * tests shorten it. */
void oss_cred_set_check_interval(struct oss_cred_src *s, unsigned ms);

/* Replaces CLOCK_MONOTONIC (milliseconds) for when oss_cred_get checks the file and how often a
 * warning may repeat, so that a test moves time rather than waits for it; the next check is then
 * due the check interval after NOW's time. Call before the source is shared between threads.
 * NOW NULL restores the real clock. */
void oss_cred_set_clock_for_test(struct oss_cred_src *s, uint64_t (*now)(void *arg), void *arg);

/* Re-reads the source now. Returns 1 if the credentials differ from generation SEEN (a retry
 * with them may help), 0 if unchanged, -errno if the file cannot be read or parsed (the old
 * credentials stay in force). */
int oss_cred_reload(struct oss_cred_src *s, uint64_t seen);

/* Whether the credentials come from a file that can be renewed (not the environment), and what
 * to call the source in a message ("STS file '<path>'"). */
bool oss_cred_from_file(const struct oss_cred_src *s);
const char *oss_cred_label(const struct oss_cred_src *s);

/* Parsers, exposed for tests and fuzzing. Each fills OUT (generation untouched) or returns
 * -EINVAL with a reason in ERR. Inputs are not NUL-terminated. */
int oss_cred_parse_passwd(const char *data, size_t len, struct oss_cred *out, char *err,
                          size_t errlen);
int oss_cred_parse_sts(const char *data, size_t len, struct oss_cred *out, char *err,
                       size_t errlen);

#endif
