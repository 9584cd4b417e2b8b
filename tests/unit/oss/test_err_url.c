/* tests/unit/oss/test_err_url.c - the error table and endpoint/region parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "oss/oss_err_i.h"
#include "oss/oss_url_i.h"

static void expect(long status, const char *code, int err, enum oss_err_action action)
{
    struct oss_err_class c = oss_err_classify(status, code);
    if (c.err != err || c.action != action)
        fail_msg("%ld %s: got (%d, %d), want (%d, %d)", status, code ? code : "(none)", c.err,
                 c.action, err, action);
}

static void test_err_table(void **state)
{
    expect(200, NULL, 0, OSS_ERR_FAIL);
    expect(206, NULL, 0, OSS_ERR_FAIL);
    expect(404, "NoSuchKey", -ENOENT, OSS_ERR_FAIL);
    expect(404, "NoSuchBucket", -ENOENT, OSS_ERR_FAIL);
    expect(404, NULL, -ENOENT, OSS_ERR_FAIL);
    expect(403, "AccessDenied", -EACCES, OSS_ERR_FAIL);
    expect(403, "InvalidObjectState", -EACCES, OSS_ERR_FAIL);
    expect(403, "InvalidAccessKeyId", -EACCES, OSS_ERR_RELOAD_CRED);
    expect(403, "SecurityTokenExpired", -EACCES, OSS_ERR_RENEW_CRED);
    expect(400, "ExpiredToken", -EACCES, OSS_ERR_RENEW_CRED);
    expect(403, "SignatureDoesNotMatch", -EACCES, OSS_ERR_RELOAD_CRED);
    expect(403, NULL, -EACCES, OSS_ERR_RELOAD_CRED);
    expect(403, "RequestTimeTooSkewed", -EACCES, OSS_ERR_FIX_CLOCK);
    expect(416, "InvalidRange", -EINVAL, OSS_ERR_FAIL);
    expect(412, "PreconditionFailed", -ESTALE, OSS_ERR_FAIL);
    expect(412, NULL, -ESTALE, OSS_ERR_FAIL);
    expect(429, "QpsLimitExceeded", -EIO, OSS_ERR_RETRY);
    expect(503, "ServiceUnavailable", -EIO, OSS_ERR_RETRY);
    expect(503, "BucketQpsLimitExceeded", -EIO, OSS_ERR_RETRY);
    expect(503, "SomethingNew", -EIO, OSS_ERR_RETRY);
    expect(500, NULL, -EIO, OSS_ERR_RETRY);
    expect(502, NULL, -EIO, OSS_ERR_RETRY);
    expect(408, NULL, -ETIMEDOUT, OSS_ERR_RETRY);
    expect(400, "InvalidArgument", -EINVAL, OSS_ERR_FAIL);
    expect(501, NULL, -ENOTSUP, OSS_ERR_FAIL);
    expect(418, NULL, -EIO, OSS_ERR_FAIL);
}

static void test_endpoint_parse(void **state)
{
    struct oss_endpoint_url u;
    char err[200];
    const char *s;

    s = "http://127.0.0.1:9000";
    assert_int_equal(oss_endpoint_parse(s, strlen(s), &u, err, sizeof(err)), 0);
    assert_false(u.https);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 9000);
    s = "https://oss-cn-hangzhou-internal.aliyuncs.com/";
    assert_int_equal(oss_endpoint_parse(s, strlen(s), &u, err, sizeof(err)), 0);
    assert_true(u.https);
    assert_int_equal(u.port, 443);
    s = "http://[::1]:8080";
    assert_int_equal(oss_endpoint_parse(s, strlen(s), &u, err, sizeof(err)), 0);
    assert_true(u.ipv6);
    assert_string_equal(u.host, "::1");
    const char *bad[] = {"",           "127.0.0.1:80",   "ftp://x",      "http://",
                         "http://h:0", "http://h:65536", "http://h:12x", "http://h/path",
                         "http://u@h", "http://[::1",    "http://h?q",   "http://h:99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(oss_endpoint_parse(bad[i], strlen(bad[i]), &u, err, sizeof(err)), -EINVAL);
        assert_true(err[0] != '\0');
    }
    struct oss_endpoint_url l[8];
    assert_int_equal(oss_endpoint_list_parse("http://a:1, http://b:2", l, 8, err, sizeof(err)), 2);
    assert_string_equal(l[1].host, "b");
    assert_int_equal(oss_endpoint_list_parse("http://a:1|https://b:2", l, 8, err, sizeof(err)), 2);
    assert_true(l[1].https);
    assert_int_equal(oss_endpoint_list_parse("http://a:1,", l, 8, err, sizeof(err)), -EINVAL);
    assert_int_equal(oss_endpoint_list_parse("http://a,http://b,http://c", l, 2, err, sizeof(err)),
                     -EINVAL);
}

static void test_region(void **state)
{
    char r[64];
    assert_int_equal(oss_region_from_host("oss-cn-hangzhou.aliyuncs.com", r, sizeof(r)), 0);
    assert_string_equal(r, "cn-hangzhou");
    assert_int_equal(oss_region_from_host("oss-cn-beijing-internal.aliyuncs.com", r, sizeof(r)), 0);
    assert_string_equal(r, "cn-beijing");
    assert_int_equal(oss_region_from_host("s3.oss-ap-southeast-1.aliyuncs.com", r, sizeof(r)), 0);
    assert_string_equal(r, "ap-southeast-1");
    assert_int_equal(oss_region_from_host("cn-shanghai.oss.aliyuncs.com", r, sizeof(r)), 0);
    assert_string_equal(r, "cn-shanghai");
    assert_int_equal(oss_region_from_host("oss-accelerate.aliyuncs.com", r, sizeof(r)), -ENOENT);
    assert_int_equal(oss_region_from_host("example.com", r, sizeof(r)), -ENOENT);
    assert_int_equal(oss_region_from_host(".aliyuncs.com", r, sizeof(r)), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_table),
        cmocka_unit_test(test_endpoint_parse),
        cmocka_unit_test(test_region),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
