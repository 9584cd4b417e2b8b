#define _GNU_SOURCE
/* tests/unit/efc/test_remote.c - the remote (the mount source "<bucket>.<host>:/<prefix>") and the
 * state file (its path and its JSON). */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "efc/efc.h"

static void ok(const char *text, const char *bucket, const char *host, const char *prefix)
{
    struct efc_remote s;
    char err[256] = "";
    int rc = efc_remote_parse(text, &s, err, sizeof(err));
    if (rc != 0) {
        print_error("'%s': %s\n", text, err);
        fail();
    }
    assert_string_equal(s.text, text);
    assert_string_equal(s.bucket, bucket);
    assert_string_equal(s.host, host);
    assert_string_equal(s.prefix, prefix);
    efc_remote_release(&s);
}

static void bad(const char *text, const char *fragment)
{
    struct efc_remote s;
    char err[256] = "";
    int rc = efc_remote_parse(text, &s, err, sizeof(err));
    if (rc != -EINVAL) {
        print_error("'%.80s': got %d, want -EINVAL\n", text, rc);
        fail();
    }
    if (strstr(err, fragment) == NULL) {
        print_error("'%s': reason '%s' lacks '%s'\n", text, err, fragment);
        fail();
    }
    assert_null(s.text);
    assert_null(s.bucket);
}

/* The grammar itself is util/mountopt.c's (tests/unit/util/test_mountopt.c); here, that the
 * daemon's wrapper hands its parts over intact and refuses what the helper refuses. */
static void test_source_parse(void **state)
{
    ok("mybucket.oss-cn-hangzhou.aliyuncs.com:/", "mybucket", "oss-cn-hangzhou.aliyuncs.com", "");
    ok("mybucket.oss-cn-hangzhou.aliyuncs.com:/models/v1", "mybucket",
       "oss-cn-hangzhou.aliyuncs.com", "models/v1/");
    ok("mybucket.oss-cn-hangzhou.aliyuncs.com:/models/v1/", "mybucket",
       "oss-cn-hangzhou.aliyuncs.com", "models/v1/");
    ok("b-1.oss-cn-hangzhou-internal.aliyuncs.com:/a", "b-1",
       "oss-cn-hangzhou-internal.aliyuncs.com", "a/");
    ok("bkt.localhost:9000:/p", "bkt", "localhost:9000", "p/");
    ok("bkt.s3.amazonaws.com:/x y/z\xc3\xa9", "bkt", "s3.amazonaws.com", "x y/z\xc3\xa9/");
    ok("bkt.h:/...", "bkt", "h", ".../");

    bad("mybucket", "expected <bucket>.<host>:/<prefix>");
    bad("mybucket.oss-cn-hangzhou.aliyuncs.com", "expected");
    bad("mybucket.oss-cn-hangzhou.aliyuncs.com:models", "expected");
    bad("b.h:/", "3 to 63");
    bad("Bucket.h:/", "lower-case");
    bad("bkt.h:/a//b", "components");
    bad("bkt.h:/a/./b", "components");
    bad("bkt.h:/../x", "components");
    bad("bkt.h:/a/..", "components");
    char big[1100];
    memcpy(big, "bkt.h:/", 7);
    memset(big + 7, 'k', 1030);
    big[1037] = '\0';
    bad(big, "too long");
}

static void test_state_path(void **state)
{
    char out[4096];
    setenv("EFC_STATE_DIR", "/tmp/efc-state-test", 1);
    assert_int_equal(efc_state_path("/mnt/oss_data", out, sizeof(out)), 0);
    assert_string_equal(out, "/tmp/efc-state-test/_mnt_oss_data.json");
    assert_int_equal(efc_state_path("/mnt/oss_data", out, 20), -ENAMETOOLONG);
    unsetenv("EFC_STATE_DIR");
    assert_string_equal(efc_state_dir(), "/run/efc");
    assert_int_equal(efc_state_path("/a/b", out, sizeof(out)), 0);
    assert_string_equal(out, "/run/efc/_a_b.json");
}

static void test_state_file(void **state)
{
    struct efc e;
    char dir[] = "/tmp/efc-state-XXXXXX", err[256];

    memset(&e, 0, sizeof(e));
    assert_non_null(mkdtemp(dir));
    setenv("EFC_STATE_DIR", dir, 1);
    assert_int_equal(opt_init(&e.opts), 0);
    assert_int_equal(opt_set_kv(&e.opts, "g_oss_Endpoint=http://127.0.0.1:9|http://127.0.0.1:10",
                                err, sizeof(err)),
                     0);
    assert_int_equal(opt_set_kv(&e.opts, "tier_BlockSize=4M", err, sizeof(err)), 0);
    assert_int_equal(
        efc_remote_parse("bkt.oss-cn-hangzhou.aliyuncs.com:/p", &e.remote, err, sizeof(err)), 0);
    e.mountpoint = "/mnt/x";
    e.protocol = OSS_PROTO_S3;
    e.passwd_file = "/etc/passwd-oss";
    e.mount_time = 1765274023;
    assert_int_equal(efc_state_path(e.mountpoint, e.state_path, sizeof(e.state_path)), 0);
    assert_int_equal(efc_state_write(&e, NULL, err, sizeof(err)), 0);

    json_error_t jerr;
    json_t *j = json_load_file(e.state_path, 0, &jerr);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), getpid());
    assert_string_equal(json_string_value(json_object_get(j, "source")),
                        "bkt.oss-cn-hangzhou.aliyuncs.com:/p");
    assert_string_equal(json_string_value(json_object_get(j, "mountpoint")), "/mnt/x");
    assert_string_equal(json_string_value(json_object_get(j, "protocol")), "s3");
    assert_string_equal(json_string_value(json_object_get(j, "passwd_file")), "/etc/passwd-oss");
    json_t *o = json_object_get(j, "options");
    assert_int_equal(json_object_size(o), OPT__COUNT);
    assert_string_equal(json_string_value(json_object_get(o, "g_oss_Endpoint")),
                        "http://127.0.0.1:9|http://127.0.0.1:10");
    assert_int_equal(json_integer_value(json_object_get(o, "g_tier_BlockSize")), 4 << 20);
    assert_true(json_is_true(json_object_get(o, "g_readdircache_Enable")));
    assert_true(json_is_false(json_object_get(o, "g_metadata_CacheEnable")));
    json_t *ex = json_object_get(j, "explicit");
    assert_int_equal(json_array_size(ex), 2);
    json_decref(j);

    /* no temporary file is left beside it */
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", e.state_path, (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0);
    assert_int_equal(unlink(e.state_path), 0);
    assert_int_equal(rmdir(dir), 0);
    unsetenv("EFC_STATE_DIR");
    efc_remote_release(&e.remote);
    opt_release(&e.opts);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_parse),
        cmocka_unit_test(test_state_path),
        cmocka_unit_test(test_state_file),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
