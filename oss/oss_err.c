/* oss/oss_err.c - the one place where an HTTP status and an OSS/S3 error code become an errno
 * and a retry decision. Everything else in efc sees only the errno.
 *
 * The code, when the server sent one, wins over the status: OSS answers 403 for both a bad
 * signature (worth a credential reload) and an archived object (not worth anything). Without a
 * code (HEAD answers carry no body, S3 sends none) the status decides.
 */
#include "oss/oss_err_i.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

struct code_map {
    const char *code;
    int err;
    enum oss_err_action action;
};

static const struct code_map code_table[] = {
    {"NoSuchKey", -ENOENT, OSS_ERR_FAIL},
    {"NoSuchBucket", -ENOENT, OSS_ERR_FAIL},
    {"NotFound", -ENOENT, OSS_ERR_FAIL},
    {"SymlinkTargetNotExist", -ENOENT, OSS_ERR_FAIL},
    {"AccessDenied", -EACCES, OSS_ERR_FAIL},
    {"AllAccessDisabled", -EACCES, OSS_ERR_FAIL},
    {"InvalidObjectState", -EACCES, OSS_ERR_FAIL},
    {"ObjectNotAppendable", -EACCES, OSS_ERR_FAIL},
    /* Credentials that may have been rotated under us: re-read the file once. */
    {"InvalidAccessKeyId", -EACCES, OSS_ERR_RELOAD_CRED},
    {"InvalidSecurityToken", -EACCES, OSS_ERR_RELOAD_CRED},
    /* A token past its time: its renewal is due, though the agent that writes it may lag. */
    {"SecurityTokenExpired", -EACCES, OSS_ERR_RENEW_CRED},
    {"ExpiredToken", -EACCES, OSS_ERR_RENEW_CRED},
    {"InvalidToken", -EACCES, OSS_ERR_RELOAD_CRED},
    {"SignatureDoesNotMatch", -EACCES, OSS_ERR_RELOAD_CRED},
    {"RequestTimeTooSkewed", -EACCES, OSS_ERR_FIX_CLOCK},
    {"InvalidRange", -EINVAL, OSS_ERR_FAIL},
    {"PreconditionFailed", -ESTALE, OSS_ERR_FAIL},
    {"InvalidArgument", -EINVAL, OSS_ERR_FAIL},
    {"InvalidBucketName", -EINVAL, OSS_ERR_FAIL},
    {"InvalidObjectName", -EINVAL, OSS_ERR_FAIL},
    {"KeyTooLong", -ENAMETOOLONG, OSS_ERR_FAIL},
    {"NotImplemented", -ENOTSUP, OSS_ERR_FAIL},
    {"MethodNotAllowed", -ENOTSUP, OSS_ERR_FAIL},
    {"RequestTimeout", -ETIMEDOUT, OSS_ERR_RETRY},
    {"InternalError", -EIO, OSS_ERR_RETRY},
    {"ServiceUnavailable", -EIO, OSS_ERR_RETRY},
    {"SlowDown", -EIO, OSS_ERR_RETRY},
    {"QpsLimitExceeded", -EIO, OSS_ERR_RETRY},
    {"DownloadTrafficRateLimitExceeded", -EIO, OSS_ERR_RETRY},
    {"UploadTrafficRateLimitExceeded", -EIO, OSS_ERR_RETRY},
    {"RequestTimeTooSkewedError", -EACCES, OSS_ERR_FIX_CLOCK},
};

struct oss_err_class oss_err_classify(long status, const char *code)
{
    struct oss_err_class c = {0, OSS_ERR_FAIL};

    if (status >= 200 && status < 300)
        return c;
    if (code != NULL && code[0] != '\0') {
        for (size_t i = 0; i < sizeof(code_table) / sizeof(code_table[0]); i++) {
            if (strcmp(code, code_table[i].code) == 0) {
                c.err = code_table[i].err;
                c.action = code_table[i].action;
                return c;
            }
        }
        /* Throttles come under many names ("...LimitExceeded"). */
        size_t n = strlen(code);
        if (n > 13 && strcmp(code + n - 13, "LimitExceeded") == 0) {
            c.err = -EIO;
            c.action = OSS_ERR_RETRY;
            return c;
        }
    }
    if (status == 501) {
        c.err = -ENOTSUP; /* NotImplemented is not transient */
    } else if (status >= 500 || status == 429 || status == 408) {
        c.err = status == 408 ? -ETIMEDOUT : -EIO;
        c.action = OSS_ERR_RETRY;
    } else if (status == 404) {
        c.err = -ENOENT;
    } else if (status == 403) {
        c.err = -EACCES;
        /* A code-less 403 (a HEAD, or S3) may be a rotated key: worth one reload. */
        c.action = (code == NULL || code[0] == '\0') ? OSS_ERR_RELOAD_CRED : OSS_ERR_FAIL;
    } else if (status == 401) {
        c.err = -EACCES;
        c.action = OSS_ERR_RELOAD_CRED;
    } else if (status == 412) {
        c.err = -ESTALE;
    } else if (status == 416) {
        c.err = -EINVAL;
    } else if (status == 405) {
        c.err = -ENOTSUP;
    } else if (status == 400) {
        c.err = -EINVAL;
    } else {
        c.err = -EIO;
    }
    return c;
}
