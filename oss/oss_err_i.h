/* oss/oss_err_i.h - the one place where HTTP status and OSS/S3 error codes become errno and a
 * retry decision (private to oss/). */
#ifndef EFC_OSS_ERR_I_H
#define EFC_OSS_ERR_I_H

#include <stdbool.h>

enum oss_err_action {
    OSS_ERR_FAIL = 0,    /* give up with the errno */
    OSS_ERR_RETRY,       /* transient: back off and retry (possibly on another endpoint) */
    OSS_ERR_RELOAD_CRED, /* re-read credentials once, then retry if they changed */
    OSS_ERR_RENEW_CRED,  /* the token expired: wait, within the retry budget, for the
                            credentials file to be renewed, then retry */
    OSS_ERR_FIX_CLOCK,   /* correct the clock offset from the answer's Date, then retry */
};

struct oss_err_class {
    int err; /* negative errno */
    enum oss_err_action action;
};

/* STATUS is the HTTP status, CODE the <Code> of the error body or NULL. */
struct oss_err_class oss_err_classify(long status, const char *code);

#endif
