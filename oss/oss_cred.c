/* oss/oss_cred.c - credentials from an STS JSON file, a passwd file or the environment.
 *
 * Readers (every request, from many threads) take a snapshot under a read lock: the critical
 * section is a copy of the id, the secret and as much of the token as there is. Loading is
 * serialised by a second mutex, held only by the one thread that loads, so file I/O and parsing
 * never happen under the lock readers wait on. Lock order: load_lock, then lock.
 *
 * Reload: at most every check_ms (CLOCK_MONOTONIC), the first oss_cred_get that notices the
 * interval has passed claims the check with a compare-and-swap and stat()s the file (following
 * symlinks, so a Kubernetes-style swap of a "..data" link counts as a change). If (dev, inode,
 * size, mtime, ctime) differ from the last successful load, the file is read and parsed again;
 * content that fails to parse, e.g. a file caught half-rewritten, leaves the old credentials in
 * force and is retried at the next check. As git's "racy clean" problem shows, a file modified
 * within a timestamp tick of our read can change again without its stat changing, so a file
 * whose mtime was within RACY_SEC of the load is re-read at each check until it settles; the
 * generation only moves when the parsed content really differs. The monotonic clock goes through
 * a pointer so that a test can move it (oss_cred_set_clock_for_test) instead of waiting.
 *
 * Secrets: parse errors name fields, never their content (jansson's own messages quote the input
 * near the error, so they are replaced by a category), files are read into buffers that are
 * wiped before they are freed, and nothing here logs a credential.
 */
#include "oss/oss_cred_i.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/timeutil.h"

#define RACY_SEC        2     /* see the top of the file */
#define WARN_EVERY_MS   60000 /* repeated warnings (reload failures, expiry) at most this often */
#define EXPIRY_WARN_SEC 300

enum cred_kind {
    CRED_ENV,
    CRED_STS,
    CRED_PASSWD,
};

struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim;
    struct timespec ctim;
};

struct oss_cred_src {
    enum cred_kind kind;
    char *path;  /* absolute; NULL for the environment */
    char *label; /* "STS file '<path>'" etc., for messages */
    _Atomic unsigned check_ms;
    _Atomic uint64_t next_check_ms; /* monotonic; the next oss_cred_get after it checks the file */
    uint64_t (*now_ms)(void *arg);  /* the monotonic clock (real_now_ms but in tests) */
    void *now_arg;

    pthread_mutex_t load_lock; /* serialises loads; protects the fields below and cred's writes */
    struct file_id id;         /* of the last successful load */
    bool racy;                 /* re-read at the next check even if id is unchanged */
    uint64_t fail_warned_ms;   /* monotonic time of the last reload-failure warning */
    uint64_t expiry_warned_ms;

    pthread_rwlock_t lock; /* protects cred: written under load_lock + lock, read under lock */
    struct oss_cred cred;
};

static uint64_t real_now_ms(void *arg)
{
    (void)arg;
    return time_mono_ms();
}

static uint64_t mono_ms(const struct oss_cred_src *s)
{
    return s->now_ms(s->now_arg);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Checks one credential field and copies it into DST (CAP bytes, NUL included). Bytes below
 * 0x21 and DEL are refused: ids and tokens travel in HTTP headers, and a stray blank or CR in
 * a file is far likelier than a key that really contains one. */
static int put_field(const char *label, const char *name, const char *s, size_t len, char *dst,
                     size_t cap, char *err, size_t errlen)
{
    if (len == 0) {
        set_err(err, errlen, "%s: %s is empty", label, name);
        return -EINVAL;
    }
    if (len >= cap) {
        set_err(err, errlen, "%s: %s longer than %zu bytes", label, name, cap - 1);
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f) {
            set_err(err, errlen, "%s: %s contains blanks or control characters", label, name);
            return -EINVAL;
        }
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

static void cred_clear(struct oss_cred *c)
{
    explicit_bzero(c, sizeof(*c));
}

/* The public parsers write OUT only on success, and never its generation. */
static void cred_set_fields(struct oss_cred *dst, const struct oss_cred *src)
{
    uint64_t gen = dst->generation;
    memcpy(dst, src, sizeof(*dst));
    dst->generation = gen;
}

/* ---- passwd file ------------------------------------------------------------------------- */

static int parse_passwd(const char *label, const char *data, size_t len, struct oss_cred *out,
                        char *err, size_t errlen)
{
    static const char expected[] = "expected 'AccessKeyId:AccessKeySecret'";

    if (len > OSS_CRED_MAX_FILE) {
        set_err(err, errlen, "%s: larger than %u bytes", label, OSS_CRED_MAX_FILE);
        return -EINVAL;
    }
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0) { /* a UTF-8 BOM from an editor */
        data += 3;
        len -= 3;
    }
    /* The first line that is neither blank nor a # comment is the one. ossfs allows several
       "bucket:id:secret" lines and picks its bucket's; we take the first. */
    const char *line = NULL, *end = NULL;
    for (const char *p = data, *stop = data + len; p < stop;) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        const char *e = nl ? nl : stop;
        const char *b = p;
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        if (b < e && *b != '#') {
            line = b;
            end = e;
            break;
        }
        p = nl ? nl + 1 : stop;
    }
    if (line == NULL) {
        set_err(err, errlen, "%s: no credentials line, %s", label, expected);
        return -EINVAL;
    }

    const char *field[3];
    size_t flen[3];
    int n = 0;
    for (const char *p = line;;) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *e = colon ? colon : end;
        if (n == 3) {
            set_err(err, errlen, "%s: %s", label, expected);
            return -EINVAL;
        }
        const char *b = p;
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        field[n] = b;
        flen[n] = (size_t)(e - b);
        n++;
        if (colon == NULL)
            break;
        p = colon + 1;
    }
    if (n < 2) {
        set_err(err, errlen, "%s: %s", label, expected);
        return -EINVAL;
    }
    int first = n - 2; /* "bucket:id:secret" (ossfs): the bucket is not checked */
    int rc = put_field(label, "AccessKeyId", field[first], flen[first], out->access_key_id,
                       sizeof(out->access_key_id), err, errlen);
    if (rc == 0)
        rc = put_field(label, "AccessKeySecret", field[first + 1], flen[first + 1],
                       out->access_key_secret, sizeof(out->access_key_secret), err, errlen);
    if (rc)
        return rc;
    out->security_token[0] = '\0';
    out->expiration = 0;
    return 0;
}

int oss_cred_parse_passwd(const char *data, size_t len, struct oss_cred *out, char *err,
                          size_t errlen)
{
    struct oss_cred tmp;
    memset(&tmp, 0, sizeof(tmp));
    int rc = parse_passwd("passwd file", data, len, &tmp, err, errlen);
    if (rc == 0)
        cred_set_fields(out, &tmp);
    cred_clear(&tmp);
    return rc;
}

/* ---- STS JSON ---------------------------------------------------------------------------- */

/* jansson's messages quote the input around the error, which may be part of a secret: only the
   position and a category are reported. */
static const char *json_problem(const json_error_t *je)
{
    switch (json_error_code(je)) {
    case json_error_duplicate_key:
        return "duplicate key";
    case json_error_premature_end_of_input:
        return "truncated JSON";
    case json_error_end_of_input_expected:
        return "garbage after the JSON object";
    case json_error_invalid_utf8:
        return "invalid UTF-8";
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return "NUL character";
    case json_error_stack_overflow:
        return "JSON nested too deeply";
    case json_error_out_of_memory:
        return "out of memory";
    default:
        return "not valid JSON";
    }
}

static int sts_string(const char *label, json_t *root, const char *name, bool required,
                      const char **s, size_t *len, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, name);
    *s = NULL;
    *len = 0;
    if (v == NULL || (!required && json_is_null(v)))
        goto absent;
    if (!json_is_string(v)) {
        set_err(err, errlen, "%s: %s is not a string", label, name);
        return -EINVAL;
    }
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
absent:
    if (required) {
        set_err(err, errlen, "%s: %s is missing", label, name);
        return -EINVAL;
    }
    return 0;
}

/* Wipes the copy jansson made of a secret before the object is freed. */
static void sts_wipe(json_t *root, const char *name)
{
    json_t *v = json_object_get(root, name);
    if (json_is_string(v))
        explicit_bzero((char *)json_string_value(v), json_string_length(v));
}

static int parse_sts(const char *label, const char *data, size_t len, struct oss_cred *out,
                     char *err, size_t errlen)
{
    if (len > OSS_CRED_MAX_FILE) {
        set_err(err, errlen, "%s: larger than %u bytes", label, OSS_CRED_MAX_FILE);
        return -EINVAL;
    }
    json_error_t je;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        set_err(err, errlen, "%s: %s at line %d, column %d", label, json_problem(&je), je.line,
                je.column);
        return -EINVAL;
    }
    int rc = -EINVAL;
    const char *id, *secret, *token, *exp;
    size_t id_len, secret_len, token_len, exp_len;
    if (!json_is_object(root)) {
        set_err(err, errlen, "%s: expected a JSON object", label);
        goto out;
    }
    if (sts_string(label, root, "AccessKeyId", true, &id, &id_len, err, errlen) ||
        sts_string(label, root, "AccessKeySecret", true, &secret, &secret_len, err, errlen) ||
        sts_string(label, root, "SecurityToken", true, &token, &token_len, err, errlen) ||
        sts_string(label, root, "Expiration", false, &exp, &exp_len, err, errlen))
        goto out;
    if (put_field(label, "AccessKeyId", id, id_len, out->access_key_id, sizeof(out->access_key_id),
                  err, errlen) ||
        put_field(label, "AccessKeySecret", secret, secret_len, out->access_key_secret,
                  sizeof(out->access_key_secret), err, errlen) ||
        put_field(label, "SecurityToken", token, token_len, out->security_token,
                  sizeof(out->security_token), err, errlen))
        goto out;
    out->expiration = 0;
    if (exp != NULL && exp_len > 0 &&
        (strlen(exp) != exp_len || time_parse_http(exp, &out->expiration) != 0)) {
        set_err(err, errlen, "%s: Expiration is not a time like 2023-12-29T07:45:02Z", label);
        goto out;
    }
    rc = 0;
out:
    sts_wipe(root, "AccessKeySecret");
    sts_wipe(root, "SecurityToken");
    json_decref(root);
    return rc;
}

int oss_cred_parse_sts(const char *data, size_t len, struct oss_cred *out, char *err, size_t errlen)
{
    struct oss_cred tmp;
    memset(&tmp, 0, sizeof(tmp));
    int rc = parse_sts("STS file", data, len, &tmp, err, errlen);
    if (rc == 0)
        cred_set_fields(out, &tmp);
    cred_clear(&tmp);
    return rc;
}

/* ---- environment ------------------------------------------------------------------------- */

static int parse_env(struct oss_cred *out, char *err, size_t errlen)
{
    const char *id = getenv("OSS_ACCESS_KEY_ID");
    const char *secret = getenv("OSS_ACCESS_KEY_SECRET");
    const char *token = getenv("OSS_SESSION_TOKEN");
    const char *label = "environment";

    if (id == NULL || *id == '\0' || secret == NULL || *secret == '\0') {
        set_err(err, errlen,
                "no credentials: set passwd_file, g_oss_STSFile or "
                "OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET");
        return -EINVAL;
    }
    int rc = put_field(label, "OSS_ACCESS_KEY_ID", id, strlen(id), out->access_key_id,
                       sizeof(out->access_key_id), err, errlen);
    if (rc == 0)
        rc = put_field(label, "OSS_ACCESS_KEY_SECRET", secret, strlen(secret),
                       out->access_key_secret, sizeof(out->access_key_secret), err, errlen);
    out->security_token[0] = '\0';
    if (rc == 0 && token != NULL && *token != '\0')
        rc = put_field(label, "OSS_SESSION_TOKEN", token, strlen(token), out->security_token,
                       sizeof(out->security_token), err, errlen);
    out->expiration = 0;
    return rc;
}

/* ---- files ------------------------------------------------------------------------------- */

static void file_id_of(const struct stat *st, struct file_id *id)
{
    memset(id, 0, sizeof(*id));
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtim = st->st_mtim;
    id->ctim = st->st_ctim;
}

static bool ts_equal(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool file_id_equal(const struct file_id *a, const struct file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           ts_equal(a->mtim, b->mtim) && ts_equal(a->ctim, b->ctim);
}

/* Reads at most OSS_CRED_MAX_FILE bytes of PATH into a fresh buffer (wipe and free it). */
static int read_file(const char *path, const char *label, char **out, size_t *outlen,
                     struct stat *st, char *err, size_t errlen)
{
    /* O_NONBLOCK: a FIFO put in the file's place must not hang the mount; it is refused below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        set_err(err, errlen, "cannot open %s: %s", label, strerror(e));
        return -e;
    }
    int rc = 0;
    char *data = NULL;
    size_t len = 0;
    if (fstat(fd, st) != 0) {
        rc = -errno;
        set_err(err, errlen, "cannot stat %s: %s", label, strerror(-rc));
        goto out;
    }
    if (!S_ISREG(st->st_mode)) {
        rc = -EINVAL;
        set_err(err, errlen, "%s is not a regular file", label);
        goto out;
    }
    if (st->st_size > (off_t)OSS_CRED_MAX_FILE) {
        rc = -EFBIG;
        set_err(err, errlen, "%s is larger than %u bytes", label, OSS_CRED_MAX_FILE);
        goto out;
    }
    data = malloc(OSS_CRED_MAX_FILE + 1);
    if (data == NULL) {
        rc = -ENOMEM;
        set_err(err, errlen, "cannot read %s: out of memory", label);
        goto out;
    }
    /* The file may grow between fstat and read: read to EOF, bounded. */
    while (len <= OSS_CRED_MAX_FILE) {
        ssize_t n = read(fd, data + len, OSS_CRED_MAX_FILE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            set_err(err, errlen, "cannot read %s: %s", label, strerror(-rc));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > OSS_CRED_MAX_FILE) {
        rc = -EFBIG;
        set_err(err, errlen, "%s is larger than %u bytes", label, OSS_CRED_MAX_FILE);
        goto out;
    }
out:
    close(fd);
    if (rc) {
        if (data)
            explicit_bzero(data, len);
        free(data);
        return rc;
    }
    *out = data;
    *outlen = len;
    return 0;
}

static bool same_content(const struct oss_cred *a, const struct oss_cred *b)
{
    return strcmp(a->access_key_id, b->access_key_id) == 0 &&
           strcmp(a->access_key_secret, b->access_key_secret) == 0 &&
           strcmp(a->security_token, b->security_token) == 0 && a->expiration == b->expiration;
}

/* Copies only the bytes in use: the token area is 4 KiB and often empty. */
static void cred_copy(struct oss_cred *dst, const struct oss_cred *src)
{
    memcpy(dst->access_key_id, src->access_key_id, sizeof(dst->access_key_id));
    memcpy(dst->access_key_secret, src->access_key_secret, sizeof(dst->access_key_secret));
    size_t n = strnlen(src->security_token, sizeof(src->security_token) - 1);
    memcpy(dst->security_token, src->security_token, n);
    dst->security_token[n] = '\0';
    dst->expiration = src->expiration;
    dst->generation = src->generation;
}

/* Loads the source; under load_lock. Returns 1 if the credentials changed (new generation),
 * 0 if the content is the same, -errno (old credentials kept). */
static int load(struct oss_cred_src *s, char *err, size_t errlen)
{
    struct oss_cred tmp;
    struct stat st;
    int rc;

    memset(&tmp, 0, sizeof(tmp));
    memset(&st, 0, sizeof(st));
    if (s->kind == CRED_ENV) {
        rc = parse_env(&tmp, err, errlen);
    } else {
        char *data = NULL;
        size_t len = 0;
        rc = read_file(s->path, s->label, &data, &len, &st, err, errlen);
        if (rc == 0) {
            rc = s->kind == CRED_STS ? parse_sts(s->label, data, len, &tmp, err, errlen)
                                     : parse_passwd(s->label, data, len, &tmp, err, errlen);
            explicit_bzero(data, len);
            free(data);
        }
    }
    if (rc) {
        cred_clear(&tmp);
        return rc;
    }

    bool changed = s->cred.generation == 0 || !same_content(&tmp, &s->cred);
    if (changed) {
        tmp.generation = s->cred.generation + 1;
        pthread_rwlock_wrlock(&s->lock);
        s->cred = tmp; /* whole: no tail of a longer old token stays behind */
        pthread_rwlock_unlock(&s->lock);
        if (s->kind != CRED_ENV && (st.st_mode & (S_IRGRP | S_IROTH)))
            log_warn("%s is readable by group or others (mode %04o); chmod 600 it", s->label,
                     (unsigned)(st.st_mode & 07777));
    }
    if (s->kind != CRED_ENV) {
        file_id_of(&st, &s->id);
        time_t now = time(NULL);
        s->racy = st.st_mtim.tv_sec >= now - RACY_SEC;
    }
    cred_clear(&tmp);
    return changed ? 1 : 0;
}

/* Whether a rate-limited warning may go out now; updates *LAST. Under load_lock. */
static bool warn_due(uint64_t *last, uint64_t now)
{
    if (*last != 0 && now - *last < WARN_EVERY_MS)
        return false;
    *last = now ? now : 1;
    return true;
}

static void warn_expiry(struct oss_cred_src *s, uint64_t now_ms)
{
    time_t exp = s->cred.expiration;
    if (exp == 0)
        return;
    time_t now = time(NULL);
    if (exp - now > EXPIRY_WARN_SEC || !warn_due(&s->expiry_warned_ms, now_ms))
        return;
    struct tm tm;
    char when[32];
    gmtime_r(&exp, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (exp <= now)
        log_warn("credentials in %s expired at %s; still using them until the file is renewed",
                 s->label, when);
    else
        log_warn("credentials in %s expire at %s, in %lld s", s->label, when,
                 (long long)(exp - now));
}

/* The periodic check, by the one thread that claimed it. */
static void check(struct oss_cred_src *s, uint64_t now_ms)
{
    pthread_mutex_lock(&s->load_lock);
    struct stat st;
    struct file_id id;
    if (stat(s->path, &st) != 0) {
        int e = errno;
        if (warn_due(&s->fail_warned_ms, now_ms))
            log_warn("cannot stat %s: %s; keeping the previous credentials", s->label, strerror(e));
    } else {
        file_id_of(&st, &id);
        if (s->racy || !file_id_equal(&id, &s->id)) {
            char err[256];
            int rc = load(s, err, sizeof(err));
            if (rc < 0 && warn_due(&s->fail_warned_ms, now_ms))
                log_warn("%s; keeping the previous credentials", err);
            else if (rc > 0)
                log_info("reloaded credentials from %s", s->label);
        }
    }
    warn_expiry(s, now_ms);
    pthread_mutex_unlock(&s->load_lock);
}

static char *absolute_path(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    /* The daemon may chdir("/") after start-up; keep reloads pointing at the same file. Not
       realpath(): a symlink swapped later must still be followed. */
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    size_t n = strlen(cwd) + 1 + strlen(path) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
    return p;
}

int oss_cred_src_new(const char *sts_file, const char *passwd_file, struct oss_cred_src **out,
                     char *err, size_t errlen)
{
    if (sts_file && *sts_file == '\0')
        sts_file = NULL;
    if (passwd_file && *passwd_file == '\0')
        passwd_file = NULL;

    struct oss_cred_src *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* oss.h: the first that is set wins, sts_file before passwd_file. */
    if (sts_file && passwd_file)
        log_info("passwd_file '%s' is ignored: g_oss_STSFile is set", passwd_file);
    s->kind = sts_file ? CRED_STS : passwd_file ? CRED_PASSWD : CRED_ENV;
    const char *path = sts_file ? sts_file : passwd_file;
    s->check_ms = OSS_CRED_CHECK_MS;
    s->now_ms = real_now_ms;
    pthread_mutex_init(&s->load_lock, NULL);
    pthread_rwlock_init(&s->lock, NULL);

    if (path) {
        s->path = absolute_path(path);
        size_t n = strlen(path) + 32;
        s->label = malloc(n);
        if (s->path == NULL || s->label == NULL) {
            set_err(err, errlen, "out of memory");
            oss_cred_src_free(s);
            return -ENOMEM;
        }
        snprintf(s->label, n, "%s '%s'", s->kind == CRED_STS ? "STS file" : "passwd file", path);
    } else {
        s->label = strdup("the environment");
        if (s->label == NULL) {
            set_err(err, errlen, "out of memory");
            oss_cred_src_free(s);
            return -ENOMEM;
        }
    }

    pthread_mutex_lock(&s->load_lock);
    int rc = load(s, err, errlen);
    if (rc >= 0 && s->kind == CRED_STS)
        warn_expiry(s, mono_ms(s));
    pthread_mutex_unlock(&s->load_lock);
    if (rc < 0) {
        oss_cred_src_free(s);
        return rc;
    }
    s->next_check_ms = mono_ms(s) + s->check_ms;
    *out = s;
    return 0;
}

void oss_cred_src_free(struct oss_cred_src *s)
{
    if (s == NULL)
        return;
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->load_lock);
    cred_clear(&s->cred);
    free(s->path);
    free(s->label);
    free(s);
}

void oss_cred_set_check_interval(struct oss_cred_src *s, unsigned ms)
{
    s->check_ms = ms ? ms : OSS_CRED_CHECK_MS;
    s->next_check_ms = mono_ms(s) + s->check_ms;
}

void oss_cred_set_clock_for_test(struct oss_cred_src *s, uint64_t (*now_ms)(void *arg), void *arg)
{
    s->now_ms = now_ms ? now_ms : real_now_ms;
    s->now_arg = now_ms ? arg : NULL;
    s->next_check_ms = mono_ms(s) + s->check_ms;
}

void oss_cred_get(struct oss_cred_src *s, struct oss_cred *out)
{
    if (s->kind != CRED_ENV) {
        uint64_t now = mono_ms(s);
        uint64_t due = atomic_load_explicit(&s->next_check_ms, memory_order_relaxed);
        /* Only the thread that moves the deadline checks; the others use what is loaded. */
        if (now >= due &&
            atomic_compare_exchange_strong(&s->next_check_ms, &due, now + s->check_ms))
            check(s, now);
    }
    pthread_rwlock_rdlock(&s->lock);
    cred_copy(out, &s->cred);
    pthread_rwlock_unlock(&s->lock);
}

bool oss_cred_from_file(const struct oss_cred_src *s)
{
    return s->kind != CRED_ENV;
}

const char *oss_cred_label(const struct oss_cred_src *s)
{
    return s->label;
}

int oss_cred_reload(struct oss_cred_src *s, uint64_t seen)
{
    char err[256];
    pthread_mutex_lock(&s->load_lock);
    int rc = load(s, err, sizeof(err));
    uint64_t now = mono_ms(s);
    if (rc < 0 && warn_due(&s->fail_warned_ms, now))
        log_warn("%s; keeping the previous credentials", err);
    else if (rc > 0)
        log_info("reloaded credentials from %s", s->label);
    if (rc >= 0 && s->kind == CRED_STS)
        warn_expiry(s, now);
    uint64_t gen = s->cred.generation;
    pthread_mutex_unlock(&s->load_lock);
    if (s->kind != CRED_ENV)
        s->next_check_ms = now + s->check_ms;
    /* Another thread's reload since SEEN counts too: a retry with the new credentials may help
       even if the file is unreadable right now. */
    if (gen > seen)
        return 1;
    return rc < 0 ? rc : 0;
}
