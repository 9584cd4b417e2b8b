/* tests/unit/oss/test_cred.c - credential sources: passwd and STS parsing, the environment,
 * reloading a changed file (and keeping the old credentials when the new file is bad), forced
 * reloads, the permission warning, and readers racing a writer.
 *
 * Every secret and token here contains "Zq9"; the log (sent to a file) must never contain it. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "oss/oss_cred_i.h"
#include "util/log.h"
#include "util/timeutil.h"

#define SECRET_MARK "Zq9"

static char tmpdir[64];
static char logpath[128];

static void path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *content, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    size_t len = strlen(content);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
}

/* Writes a new file and renames it over PATH, as a careful writer (or kubelet) does. */
static void replace_file(const char *path, const char *content)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    write_file(tmp, content, 0600);
    assert_int_equal(rename(tmp, path), 0);
}

/* Moves the file's mtime DELTA seconds from now, so a change is visible whatever the clock's
   granularity. */
static void bump_mtime(const char *path, int delta)
{
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec += delta;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static char *read_log(void)
{
    FILE *f = fopen(logpath, "r");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- passwd ------------------------------------------------------------------------------ */

static void passwd_ok(const char *data, size_t len, const char *id, const char *secret)
{
    struct oss_cred c;
    char err[256] = "";
    memset(&c, 0x55, sizeof(c));
    c.generation = 42;
    int rc = oss_cred_parse_passwd(data, len, &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("passwd rejected: %s", err);
    assert_string_equal(c.access_key_id, id);
    assert_string_equal(c.access_key_secret, secret);
    assert_string_equal(c.security_token, "");
    assert_int_equal(c.expiration, 0);
    assert_int_equal(c.generation, 42);
}

static void passwd_bad(const char *data, size_t len, const char *what)
{
    struct oss_cred c;
    char err[256] = "";
    memset(&c, 0, sizeof(c));
    strcpy(c.access_key_id, "untouched");
    assert_int_equal(oss_cred_parse_passwd(data, len, &c, err, sizeof(err)), -EINVAL);
    assert_true(strncmp(err, "passwd file: ", 13) == 0);
    if (strstr(err, what) == NULL)
        fail_msg("error '%s' does not mention '%s'", err, what);
    assert_null(strstr(err, SECRET_MARK));
    assert_string_equal(c.access_key_id, "untouched");
}

#define PASSWD_OK(s, id, sk) passwd_ok(s, sizeof(s) - 1, id, sk)
#define PASSWD_BAD(s, what)  passwd_bad(s, sizeof(s) - 1, what)

static void test_passwd(void **state)
{
    (void)state;
    PASSWD_OK("LTAI5tAK:" SECRET_MARK "sk", "LTAI5tAK", SECRET_MARK "sk");
    PASSWD_OK("LTAI5tAK:" SECRET_MARK "sk\n", "LTAI5tAK", SECRET_MARK "sk");
    PASSWD_OK("  LTAI5tAK : " SECRET_MARK "sk \r\n", "LTAI5tAK", SECRET_MARK "sk");
    PASSWD_OK("mybucket:LTAI5tAK:" SECRET_MARK "sk\r\n", "LTAI5tAK", SECRET_MARK "sk");
    PASSWD_OK("# ossfs credentials\n\n   \nak1:" SECRET_MARK "1\nbucket2:ak2:" SECRET_MARK "2\n",
              "ak1", SECRET_MARK "1");
    PASSWD_OK("\xef\xbb\xbf"
              "ak:" SECRET_MARK "\n",
              "ak", SECRET_MARK);
    PASSWD_OK("ak:" SECRET_MARK "+/=", "ak", SECRET_MARK "+/=");

    PASSWD_BAD("", "expected 'AccessKeyId:AccessKeySecret'");
    PASSWD_BAD("\n\n# only a comment\n", "expected 'AccessKeyId:AccessKeySecret'");
    PASSWD_BAD("justakey" SECRET_MARK "\n", "expected 'AccessKeyId:AccessKeySecret'");
    PASSWD_BAD("a:b:c:" SECRET_MARK "\n", "expected 'AccessKeyId:AccessKeySecret'");
    PASSWD_BAD("ak:\n", "AccessKeySecret is empty");
    PASSWD_BAD(":" SECRET_MARK "\n", "AccessKeyId is empty");
    PASSWD_BAD("bucket::" SECRET_MARK "\n", "AccessKeyId is empty");
    PASSWD_BAD("a k:" SECRET_MARK, "AccessKeyId contains blanks or control characters");
    PASSWD_BAD("ak:s\x01" SECRET_MARK, "AccessKeySecret contains blanks or control characters");
    PASSWD_BAD("ak:s\0" SECRET_MARK, "AccessKeySecret contains blanks or control characters");
    PASSWD_BAD("ak:s\x7f" SECRET_MARK, "AccessKeySecret contains blanks or control characters");

    char big[300];
    memset(big, 'a', sizeof(big));
    snprintf(big + 256, sizeof(big) - 256, ":" SECRET_MARK);
    passwd_bad(big, strlen(big), "AccessKeyId longer than 255 bytes");
}

static void test_passwd_limits(void **state)
{
    (void)state;
    char line[600];
    memset(line, 'i', 255);
    line[255] = ':';
    memset(line + 256, 's', 255);
    line[511] = '\0';
    struct oss_cred c;
    char err[256];
    assert_int_equal(oss_cred_parse_passwd(line, 511, &c, err, sizeof(err)), 0);
    assert_int_equal(strlen(c.access_key_id), 255);
    assert_int_equal(strlen(c.access_key_secret), 255);
    line[511] = 's';
    line[512] = '\0';
    assert_int_equal(oss_cred_parse_passwd(line, 512, &c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "AccessKeySecret longer than 255 bytes"));

    /* Over OSS_CRED_MAX_FILE, whatever it holds. */
    size_t n = OSS_CRED_MAX_FILE + 1;
    char *huge = malloc(n);
    memset(huge, '#', n);
    memcpy(huge, "ak:sk\n", 6);
    assert_int_equal(oss_cred_parse_passwd(huge, n, &c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "larger than 65536 bytes"));
    free(huge);
}

/* ---- STS --------------------------------------------------------------------------------- */

static int sts_parse(const char *json, struct oss_cred *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    return oss_cred_parse_sts(json, strlen(json), c, err, errlen);
}

static void sts_bad(const char *json, const char *what)
{
    struct oss_cred c;
    char err[256] = "";
    assert_int_equal(sts_parse(json, &c, err, sizeof(err)), -EINVAL);
    assert_true(strncmp(err, "STS file: ", 10) == 0);
    if (strstr(err, what) == NULL)
        fail_msg("error '%s' does not mention '%s'", err, what);
    assert_null(strstr(err, SECRET_MARK));
}

static void test_sts(void **state)
{
    (void)state;
    struct oss_cred c;
    char err[256];

    assert_int_equal(sts_parse("{\n"
                               "  \"AccessKeyId\": \"STS.NUgYrLnoC37mZZCNnAbez2\",\n"
                               "  \"AccessKeySecret\": \"" SECRET_MARK "CtGbUs+8vfzvuqN9n\",\n"
                               "  \"SecurityToken\": \"CAIS" SECRET_MARK "tok==\",\n"
                               "  \"Expiration\": \"2023-12-29T07:45:02Z\",\n"
                               "  \"Code\": \"Success\", \"LastUpdated\": \"x\"\n"
                               "}\n",
                               &c, err, sizeof(err)),
                     0);
    assert_string_equal(c.access_key_id, "STS.NUgYrLnoC37mZZCNnAbez2");
    assert_string_equal(c.access_key_secret, SECRET_MARK "CtGbUs+8vfzvuqN9n");
    assert_string_equal(c.security_token, "CAIS" SECRET_MARK "tok==");
    assert_int_equal(c.expiration, 1703835902);

    assert_int_equal(sts_parse("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"" SECRET_MARK
                               "\",\"SecurityToken\":\"t" SECRET_MARK
                               "\",\"Expiration\":\"2023-12-29T07:45:02.000Z\"}",
                               &c, err, sizeof(err)),
                     0);
    assert_int_equal(c.expiration, 1703835902);
    /* Expiration is optional: absent, null or empty. */
    assert_int_equal(sts_parse("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"" SECRET_MARK
                               "\",\"SecurityToken\":\"t" SECRET_MARK "\"}",
                               &c, err, sizeof(err)),
                     0);
    assert_int_equal(c.expiration, 0);
    assert_int_equal(sts_parse("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"" SECRET_MARK
                               "\",\"SecurityToken\":\"t" SECRET_MARK "\",\"Expiration\":null}",
                               &c, err, sizeof(err)),
                     0);
    assert_int_equal(c.expiration, 0);

    sts_bad("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"" SECRET_MARK "\"}",
            "SecurityToken is missing");
    sts_bad("{\"AccessKeySecret\":\"" SECRET_MARK "\",\"SecurityToken\":\"t\"}",
            "AccessKeyId is missing");
    sts_bad("{\"AccessKeyId\":12,\"AccessKeySecret\":\"" SECRET_MARK "\",\"SecurityToken\":\"t\"}",
            "AccessKeyId is not a string");
    sts_bad("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":null,\"SecurityToken\":\"t\"}",
            "AccessKeySecret is not a string");
    sts_bad("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"" SECRET_MARK
            "\",\"SecurityToken\":[\"t\"]}",
            "SecurityToken is not a string");
    sts_bad("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"" SECRET_MARK
            "\",\"SecurityToken\":\"t\",\"Expiration\":1703835902}",
            "Expiration is not a string");
    sts_bad("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"" SECRET_MARK
            "\",\"SecurityToken\":\"t\",\"Expiration\":\"tomorrow\"}",
            "Expiration is not a time");
    sts_bad("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"" SECRET_MARK
            "\",\"AccessKeySecret\":\"other\",\"SecurityToken\":\"t\"}",
            "duplicate key");
    sts_bad("{\"AccessKeyId\":\"\",\"AccessKeySecret\":\"" SECRET_MARK
            "\",\"SecurityToken\":\"t\"}",
            "AccessKeyId is empty");
    sts_bad("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"x " SECRET_MARK
            "\",\"SecurityToken\":\"t\"}",
            "AccessKeySecret contains blanks");
    sts_bad("garbage " SECRET_MARK, "not valid JSON");
    sts_bad("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"" SECRET_MARK, "truncated JSON");
    sts_bad("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"\x01" SECRET_MARK "\"}", "line 1");
    sts_bad("{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"\\u0000" SECRET_MARK "\"}", "NUL");
    sts_bad("{} " SECRET_MARK, "garbage after");
    sts_bad("[\"" SECRET_MARK "\"]", "expected a JSON object");
    sts_bad("", "JSON");

    /* Token of 4095 bytes is fine, 4096 is not; a 64 KiB + 1 file is refused outright. */
    char *json = malloc(OSS_CRED_MAX_FILE + 2);
    int n = snprintf(json, 200,
                     "{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"" SECRET_MARK
                     "\",\"SecurityToken\":\"");
    memset(json + n, 'T', OSS_CRED_MAX_FIELD);
    strcpy(json + n + OSS_CRED_MAX_FIELD, "\"}");
    assert_int_equal(sts_parse(json, &c, err, sizeof(err)), 0);
    assert_int_equal(strlen(c.security_token), OSS_CRED_MAX_FIELD);
    memset(json + n, 'T', OSS_CRED_MAX_FIELD + 1);
    strcpy(json + n + OSS_CRED_MAX_FIELD + 1, "\"}");
    sts_bad(json, "SecurityToken longer than 4095 bytes");
    memset(json, ' ', OSS_CRED_MAX_FILE + 1);
    json[0] = '{';
    json[OSS_CRED_MAX_FILE - 1] = '}';
    json[OSS_CRED_MAX_FILE + 1] = '\0';
    sts_bad(json, "larger than 65536 bytes");
    free(json);
}

/* ---- sources ----------------------------------------------------------------------------- */

static void test_env(void **state)
{
    (void)state;
    struct oss_cred_src *s = NULL;
    struct oss_cred c;
    char err[256] = "";

    unsetenv("OSS_ACCESS_KEY_ID");
    unsetenv("OSS_ACCESS_KEY_SECRET");
    unsetenv("OSS_SESSION_TOKEN");
    assert_int_equal(oss_cred_src_new(NULL, NULL, &s, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "no credentials: set passwd_file, g_oss_STSFile or "
                             "OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET");
    setenv("OSS_ACCESS_KEY_ID", "envak", 1);
    assert_int_equal(oss_cred_src_new("", "", &s, err, sizeof(err)), -EINVAL);
    setenv("OSS_ACCESS_KEY_SECRET", "env" SECRET_MARK, 1);
    assert_int_equal(oss_cred_src_new(NULL, "", &s, err, sizeof(err)), 0);
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "envak");
    assert_string_equal(c.access_key_secret, "env" SECRET_MARK);
    assert_string_equal(c.security_token, "");
    assert_int_equal(c.generation, 1);
    /* Unchanged environment: nothing new. A new token: a new generation. */
    assert_int_equal(oss_cred_reload(s, 1), 0);
    setenv("OSS_SESSION_TOKEN", "tok" SECRET_MARK, 1);
    assert_int_equal(oss_cred_reload(s, 1), 1);
    oss_cred_get(s, &c);
    assert_string_equal(c.security_token, "tok" SECRET_MARK);
    assert_int_equal(c.generation, 2);
    /* A broken environment keeps the old credentials. */
    setenv("OSS_ACCESS_KEY_ID", "bad id", 1);
    assert_int_equal(oss_cred_reload(s, 2), -EINVAL);
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "envak");
    oss_cred_src_free(s);

    setenv("OSS_ACCESS_KEY_ID", "bad id", 1);
    assert_int_equal(oss_cred_src_new(NULL, NULL, &s, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "environment: OSS_ACCESS_KEY_ID contains blanks or control "
                             "characters");
    unsetenv("OSS_ACCESS_KEY_ID");
    unsetenv("OSS_ACCESS_KEY_SECRET");
    unsetenv("OSS_SESSION_TOKEN");
}

static void test_src_errors(void **state)
{
    (void)state;
    struct oss_cred_src *s = NULL;
    char err[512] = "", path[128], msg[256];

    path_in(path, sizeof(path), "missing");
    assert_int_equal(oss_cred_src_new(NULL, path, &s, err, sizeof(err)), -ENOENT);
    snprintf(msg, sizeof(msg), "cannot open passwd file '%s': No such file or directory", path);
    assert_string_equal(err, msg);

    assert_int_equal(oss_cred_src_new(tmpdir, NULL, &s, err, sizeof(err)), -EINVAL);
    snprintf(msg, sizeof(msg), "STS file '%s' is not a regular file", tmpdir);
    assert_string_equal(err, msg);

    /* A FIFO must not hang the mount. */
    path_in(path, sizeof(path), "fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(oss_cred_src_new(NULL, path, &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "is not a regular file"));
    unlink(path);

    path_in(path, sizeof(path), "badpasswd");
    write_file(path, "nocolon" SECRET_MARK "\n", 0600);
    assert_int_equal(oss_cred_src_new(NULL, path, &s, err, sizeof(err)), -EINVAL);
    snprintf(msg, sizeof(msg), "passwd file '%s': expected 'AccessKeyId:AccessKeySecret'", path);
    assert_string_equal(err, msg);

    /* Too big on disk. */
    path_in(path, sizeof(path), "big");
    char *big = malloc(OSS_CRED_MAX_FILE + 2);
    memset(big, '#', OSS_CRED_MAX_FILE + 1);
    big[OSS_CRED_MAX_FILE + 1] = '\0';
    write_file(path, big, 0600);
    free(big);
    assert_int_equal(oss_cred_src_new(NULL, path, &s, err, sizeof(err)), -EFBIG);
    assert_non_null(strstr(err, "is larger than 65536 bytes"));
    unlink(path);

    /* Both set: the STS file wins (oss.h). */
    char sts[128];
    path_in(sts, sizeof(sts), "both.json");
    write_file(sts,
               "{\"AccessKeyId\":\"stsak\",\"AccessKeySecret\":\"" SECRET_MARK
               "\",\"SecurityToken\":\"t" SECRET_MARK "\"}",
               0600);
    path_in(path, sizeof(path), "badpasswd");
    assert_int_equal(oss_cred_src_new(sts, path, &s, err, sizeof(err)), 0);
    struct oss_cred c;
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "stsak");
    assert_string_equal(c.security_token, "t" SECRET_MARK);
    oss_cred_src_free(s);
    unlink(sts);
    unlink(path);
    oss_cred_src_free(NULL);
}

static void test_relative_path(void **state)
{
    (void)state;
    char cwd[512], path[128], err[256];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    path_in(path, sizeof(path), "rel");
    write_file(path, "relak:" SECRET_MARK "\n", 0600);
    assert_int_equal(chdir(tmpdir), 0);
    struct oss_cred_src *s = NULL;
    assert_int_equal(oss_cred_src_new(NULL, "rel", &s, err, sizeof(err)), 0);
    /* The daemon may chdir away; reloads must still find the file. */
    assert_int_equal(chdir("/"), 0);
    replace_file(path, "relak2:" SECRET_MARK "\n");
    assert_int_equal(oss_cred_reload(s, 1), 1);
    struct oss_cred c;
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "relak2");
    oss_cred_src_free(s);
    assert_int_equal(chdir(cwd), 0);
    unlink(path);
}

/* A clock the test moves: milliseconds, never 0 (0 means "never" to the warning rate limit). */
static uint64_t test_clock_ms;

static uint64_t test_now(void *arg)
{
    (void)arg;
    return test_clock_ms;
}

/* Puts S on the test's clock, which starts at an arbitrary time. */
static void use_test_clock(struct oss_cred_src *s)
{
    test_clock_ms = 1000000;
    oss_cred_set_clock_for_test(s, test_now, NULL);
}

/* The default interval: a change shows OSS_CRED_CHECK_MS after the last check, not a
 * millisecond before. */
static void test_reload_on_change(void **state)
{
    (void)state;
    char path[128], err[256];
    path_in(path, sizeof(path), "passwd");
    write_file(path, "ak1:" SECRET_MARK "1\n", 0600);
    bump_mtime(path, -100);
    struct oss_cred_src *s = NULL;
    assert_int_equal(oss_cred_src_new(NULL, path, &s, err, sizeof(err)), 0);
    use_test_clock(s);
    struct oss_cred c;
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "ak1");
    assert_int_equal(c.generation, 1);

    write_file(path, "ak2:" SECRET_MARK "2\n", 0600); /* same size, in place */
    bump_mtime(path, -50);
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "ak1"); /* not checked yet */
    test_clock_ms += OSS_CRED_CHECK_MS - 1;
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "ak1"); /* still not */
    test_clock_ms += 1;
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "ak2");
    assert_string_equal(c.access_key_secret, SECRET_MARK "2");
    assert_int_equal(c.generation, 2);

    /* Touching the file without changing it: re-read, same generation. */
    bump_mtime(path, -10);
    assert_int_equal(oss_cred_reload(s, 2), 0);
    oss_cred_get(s, &c);
    assert_int_equal(c.generation, 2);
    oss_cred_src_free(s);
    unlink(path);
}

static void test_reload_bad_keeps_old(void **state)
{
    (void)state;
    char path[128], err[256];
    path_in(path, sizeof(path), "sts.json");
    const char *good1 = "{\"AccessKeyId\":\"id1\",\"AccessKeySecret\":\"" SECRET_MARK
                        "1\",\"SecurityToken\":\"tok" SECRET_MARK "1\"}";
    const char *good2 = "{\"AccessKeyId\":\"id2\",\"AccessKeySecret\":\"" SECRET_MARK
                        "2\",\"SecurityToken\":\"tok" SECRET_MARK "2\","
                        "\"Expiration\":\"2099-01-01T00:00:00Z\"}";
    write_file(path, good1, 0600);
    struct oss_cred_src *s = NULL;
    assert_int_equal(oss_cred_src_new(path, NULL, &s, err, sizeof(err)), 0);
    use_test_clock(s);
    oss_cred_set_check_interval(s, 20);
    struct oss_cred c;
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "id1");

    /* Half-written: the old credentials stay, reload reports the error. */
    write_file(path, "{\"AccessKeyId\":\"id2\",\"AccessKeySec", 0600);
    bump_mtime(path, 1);
    test_clock_ms += 20; /* the next get checks the file */
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "id1");
    assert_string_equal(c.security_token, "tok" SECRET_MARK "1");
    assert_int_equal(c.generation, 1);
    assert_int_equal(oss_cred_reload(s, 1), -EINVAL);
    /* Empty (truncated, not yet written). */
    write_file(path, "", 0600);
    bump_mtime(path, 2);
    test_clock_ms += 20; /* the next get checks the file */
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "id1");

    /* Finished: picked up at the next check, no remount. */
    write_file(path, good2, 0600);
    bump_mtime(path, 3);
    test_clock_ms += 20; /* the next get checks the file */
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "id2");
    assert_string_equal(c.access_key_secret, SECRET_MARK "2");
    assert_string_equal(c.security_token, "tok" SECRET_MARK "2");
    assert_int_equal(c.expiration, 4070908800);
    assert_int_equal(c.generation, 2);

    /* oss_cred_reload: 1 for a SEEN that is behind, even when the file is bad now. */
    assert_int_equal(oss_cred_reload(s, 2), 0);
    assert_int_equal(oss_cred_reload(s, 1), 1);
    write_file(path, "broken", 0600);
    assert_int_equal(oss_cred_reload(s, 2), -EINVAL);
    assert_int_equal(oss_cred_reload(s, 1), 1);
    replace_file(path, good1);
    assert_int_equal(oss_cred_reload(s, 2), 1);
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "id1");
    assert_int_equal(c.generation, 3);

    /* A deleted file keeps the old credentials too. */
    unlink(path);
    test_clock_ms += 20; /* the next get checks the file */
    oss_cred_get(s, &c);
    assert_string_equal(c.access_key_id, "id1");
    assert_int_equal(oss_cred_reload(s, 3), -ENOENT);
    oss_cred_src_free(s);
}

static void test_warnings(void **state)
{
    (void)state;
    char path[128], err[256];
    path_in(path, sizeof(path), "open-sts.json");
    write_file(path,
               "{\"AccessKeyId\":\"warnid\",\"AccessKeySecret\":\"" SECRET_MARK
               "w\",\"SecurityToken\":\"tok" SECRET_MARK "w\","
               "\"Expiration\":\"2020-01-01T00:00:00Z\"}",
               0644);
    struct oss_cred_src *s = NULL;
    assert_int_equal(oss_cred_src_new(path, NULL, &s, err, sizeof(err)), 0);
    struct oss_cred c;
    oss_cred_get(s, &c);
    assert_int_equal(c.expiration, 1577836800); /* expired, still used */
    assert_string_equal(c.access_key_id, "warnid");
    oss_cred_src_free(s);

    const char *log = read_log();
    char want[256];
    snprintf(want, sizeof(want), "STS file '%s' is readable by group or others (mode 0644)", path);
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(log, "expired at 2020-01-01T00:00:00Z"));
    assert_null(strstr(log, SECRET_MARK));
    unlink(path);
}

/* ---- threads ----------------------------------------------------------------------------- */

struct race {
    struct oss_cred_src *s;
    const char *path;
    atomic_bool stop;
    atomic_ulong gets;
    atomic_int bad;
    int final_n;
};

static void sts_json(char *out, size_t n, int i)
{
    snprintf(out, n,
             "{\"AccessKeyId\":\"AK%d\",\"AccessKeySecret\":\"" SECRET_MARK "%d\","
             "\"SecurityToken\":\"TOKEN%d-" SECRET_MARK "-%0*d\"}",
             i, i, i, i % 7 * 100 + 1, i);
}

static void *reader(void *arg)
{
    struct race *r = arg;
    uint64_t last_gen = 0;
    struct oss_cred c;
    while (!atomic_load(&r->stop)) {
        oss_cred_get(r->s, &c);
        int a = -1, b = -2, t = -3;
        sscanf(c.access_key_id, "AK%d", &a);
        sscanf(c.access_key_secret, SECRET_MARK "%d", &b);
        sscanf(c.security_token, "TOKEN%d-", &t);
        char want[4096];
        sts_json(want, sizeof(want), a);
        char *tok = strstr(want, "TOKEN");
        if (a != b || a != t || c.generation < last_gen || tok == NULL ||
            strncmp(c.security_token, tok, strlen(c.security_token)) != 0 ||
            tok[strlen(c.security_token)] != '"')
            atomic_fetch_add(&r->bad, 1);
        last_gen = c.generation;
        atomic_fetch_add(&r->gets, 1);
    }
    return NULL;
}

static void *writer(void *arg)
{
    struct race *r = arg;
    char json[4096];
    int i = 1;
    /* The real clock on purpose: the race between this writer and the readers is what is under
       test, so it runs for a time (1.2 s of rewrites) rather than up to a state. */
    uint64_t end = time_mono_ms() + 1200;
    while (time_mono_ms() < end) {
        i++;
        sts_json(json, sizeof(json), i);
        if (i % 2) {
            replace_file(r->path, json);
        } else {
            /* In place and in two steps: readers may see it empty or cut short. */
            int fd = open(r->path, O_WRONLY | O_TRUNC | O_CLOEXEC);
            assert_true(fd >= 0);
            size_t half = strlen(json) / 2;
            assert_int_equal(write(fd, json, half), (ssize_t)half);
            usleep(1000); /* a window in which readers find the file half written */
            assert_int_equal(write(fd, json + half, strlen(json) - half),
                             (ssize_t)(strlen(json) - half));
            close(fd);
        }
        usleep(3000); /* pacing: readers get checks in between the rewrites */
    }
    r->final_n = i;
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char path[128], err[256], json[4096];
    path_in(path, sizeof(path), "race.json");
    sts_json(json, sizeof(json), 1);
    write_file(path, json, 0600);
    struct race r = {.path = path};
    assert_int_equal(oss_cred_src_new(path, NULL, &r.s, err, sizeof(err)), 0);
    oss_cred_set_check_interval(r.s, 1);

    pthread_t th[9];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &r), 0);
    assert_int_equal(pthread_create(&th[8], NULL, writer, &r), 0);
    pthread_join(th[8], NULL);
    atomic_store(&r.stop, true);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);

    assert_int_equal(atomic_load(&r.bad), 0);
    assert_true(atomic_load(&r.gets) > 100);
    /* The writer is done: the last content wins. */
    struct oss_cred c;
    oss_cred_get(r.s, &c);
    int seen = oss_cred_reload(r.s, c.generation);
    assert_true(seen == 0 || seen == 1);
    oss_cred_get(r.s, &c);
    char want[32];
    snprintf(want, sizeof(want), "AK%d", r.final_n);
    assert_string_equal(c.access_key_id, want);
    assert_true(c.generation > 2);
    oss_cred_src_free(r.s);
    unlink(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/efc_test_cred.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
    return log_open_file(logpath);
}

static int teardown(void **state)
{
    (void)state;
    /* Nothing logged, ever, may hold a secret. */
    const char *log = read_log();
    int leaked = strstr(log, SECRET_MARK) != NULL;
    if (leaked)
        fprintf(stderr, "secret leaked into the log:\n%s\n", log);
    unlink(logpath);
    rmdir(tmpdir);
    return leaked ? -1 : 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passwd),
        cmocka_unit_test(test_passwd_limits),
        cmocka_unit_test(test_sts),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_src_errors),
        cmocka_unit_test(test_relative_path),
        cmocka_unit_test(test_reload_on_change),
        cmocka_unit_test(test_reload_bad_keeps_old),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
