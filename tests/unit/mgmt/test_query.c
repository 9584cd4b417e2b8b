/* tests/unit/mgmt/test_query.c - the query parser (mgmt_parse_query) and, without a socket, what
 * mgmt_dispatch answers for bad requests: the limits, escapes, UTF-8 and the checking order. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mgmt/mgmt.h"

static struct mgmt_param P[MGMT_MAX_PARAMS + 4];
static char err[512];

static int parse(const char *q)
{
    memset(P, 0x55, sizeof(P));
    return mgmt_parse_query(q, strlen(q), P, MGMT_MAX_PARAMS, err, sizeof(err));
}

static void test_basic(void **state)
{
    assert_int_equal(parse(""), 0);
    assert_int_equal(parse("a=1"), 1);
    assert_string_equal(P[0].name, "a");
    assert_string_equal(P[0].value, "1");
    assert_int_equal(parse("target_path=x%2Cy&pattern=.*_2%24&z"), 3);
    assert_string_equal(P[0].name, "target_path");
    assert_string_equal(P[0].value, "x,y");
    assert_string_equal(P[1].value, ".*_2$");
    assert_string_equal(P[2].name, "z");
    assert_string_equal(P[2].value, "");
    /* empty segments are skipped; '+' is a space; '=' in a value stays */
    assert_int_equal(parse("&&a=b+c&&d=e=f&"), 2);
    assert_string_equal(P[0].value, "b c");
    assert_string_equal(P[1].name, "d");
    assert_string_equal(P[1].value, "e=f");
    assert_int_equal(parse("target_path="), 1);
    assert_string_equal(P[0].value, "");
    /* hex digits in both cases, %2B is a literal '+' */
    assert_int_equal(parse("p=%2b%2B%41%e4%bd%a0"), 1);
    assert_string_equal(P[0].value, "++A\xe4\xbd\xa0");
    /* repeated names are all returned (the dispatcher refuses them) */
    assert_int_equal(parse("a=1&a=2"), 2);
}

static void test_bad_escapes(void **state)
{
    const char *bad[] = {"a=%", "a=%4", "a=%zz",  "a=%4g",  "a=%00", "%=1",  "a%0=1",
                         "=1",  "=",    "a=1&=2", "%00a=1", "a=x%",  "a=%%", "a=%2%41"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(parse(bad[i]), -EINVAL);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(parse("a=1&b=%zz"), -EINVAL);
    assert_non_null(strstr(err, "'b'"));
    assert_int_equal(parse("=1"), -EINVAL);
    assert_non_null(strstr(err, "empty name"));
}

static void test_control_and_utf8(void **state)
{
    char q[] = "a=1\x01";
    assert_int_equal(mgmt_parse_query(q, strlen(q), P, MGMT_MAX_PARAMS, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "control"));
    /* an embedded NUL in the raw bytes */
    assert_int_equal(mgmt_parse_query("a=1\0b=2", 7, P, MGMT_MAX_PARAMS, err, sizeof(err)),
                     -EINVAL);
    /* a decoded control character is fine in a value, not in a name */
    assert_int_equal(parse("a=x%0Ay"), 1);
    assert_string_equal(P[0].value, "x\ny");
    assert_int_equal(parse("a%0A=1"), -EINVAL);
    /* invalid UTF-8: a lone continuation, overlong, surrogate, past U+10FFFF, truncated */
    const char *bad[] = {"a=%80",    "a=%C0%80", "a=%ED%A0%80", "a=%F4%90%80%80",
                         "a=%E4%BD", "a=%FF",    "%C3=1",       "a=\xc3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i]), -EINVAL);
        assert_non_null(strstr(err, "UTF-8"));
    }
    assert_int_equal(parse("a=%F0%9F%98%80&b=\xc3\xa9"), 2);
    assert_string_equal(P[0].value, "\xf0\x9f\x98\x80");
    assert_string_equal(P[1].value, "\xc3\xa9");
}

static void test_limits(void **state)
{
    static char q[3 * MGMT_MAX_QUERY];
    /* names: 63 bytes fit, 64 do not */
    memset(q, 'n', 63);
    strcpy(q + 63, "=1");
    assert_int_equal(parse(q), 1);
    assert_int_equal(strlen(P[0].name), 63);
    memset(q, 'n', 64);
    strcpy(q + 64, "=1");
    assert_int_equal(parse(q), -E2BIG);
    assert_non_null(strstr(err, "too long"));
    /* values: MGMT_MAX_VALUE decoded bytes fit, one more does not; "%41" counts as 1 */
    strcpy(q, "v=");
    memset(q + 2, 'x', MGMT_MAX_VALUE);
    q[2 + MGMT_MAX_VALUE] = '\0';
    assert_int_equal(parse(q), 1);
    assert_int_equal(strlen(P[0].value), MGMT_MAX_VALUE);
    strcat(q, "y");
    assert_int_equal(parse(q), -E2BIG);
    assert_non_null(strstr(err, "'v'"));
    strcpy(q, "v=");
    for (int i = 0; i < 2000; i++)
        strcat(q, "%41");
    assert_int_equal(parse(q), 1);
    assert_int_equal(strlen(P[0].value), 2000);
    /* pairs: MGMT_MAX_PARAMS fit, one more does not; a smaller MAX is honoured */
    q[0] = '\0';
    for (int i = 0; i < MGMT_MAX_PARAMS; i++)
        sprintf(q + strlen(q), "%sp%d=%d", i ? "&" : "", i, i);
    assert_int_equal(parse(q), MGMT_MAX_PARAMS);
    assert_string_equal(P[MGMT_MAX_PARAMS - 1].name, "p15");
    strcat(q, "&x=1");
    assert_int_equal(parse(q), -E2BIG);
    assert_non_null(strstr(err, "too many"));
    assert_int_equal(mgmt_parse_query("a=1&b=2&c=3", 11, P, 2, err, sizeof(err)), -E2BIG);
    assert_int_equal(mgmt_parse_query("a=1&b=2", 7, P, 2, err, sizeof(err)), 2);
    /* the whole query: MGMT_MAX_QUERY bytes are parsed, one more is refused */
    memset(q, 0, sizeof(q));
    strcpy(q, "v=");
    memset(q + 2, '&', MGMT_MAX_QUERY - 2);
    assert_int_equal(strlen(q), MGMT_MAX_QUERY);
    assert_int_equal(parse(q), 1);
    q[MGMT_MAX_QUERY] = '&';
    assert_int_equal(parse(q), -E2BIG);
    assert_non_null(strstr(err, "8192"));
}

/* ---- mgmt_dispatch without a socket -------------------------------------------------------- */

static json_t *dispatch(const char *method, const char *target, unsigned *status)
{
    struct mgmt_reply r;
    assert_int_equal(mgmt_dispatch(NULL, NULL, "127.0.0.1:1", method, target, strlen(target), &r),
                     0);
    assert_non_null(r.body);
    assert_int_equal(strlen(r.body), r.len);
    *status = r.status;
    json_error_t je;
    json_t *j = json_loads(r.body, 0, &je);
    if (j == NULL)
        fail_msg("not JSON (%s): %s", je.text, r.body);
    assert_string_equal(r.content_type, "application/json");
    mgmt_reply_release(&r);
    /* every answer has the three top-level keys, in this order */
    const char *keys[] = {"ErrorCode", "ErrorMessage", "Results"};
    void *it = json_object_iter(j);
    for (int i = 0; i < 3; i++, it = json_object_iter_next(j, it)) {
        assert_non_null(it);
        assert_string_equal(json_object_iter_key(it), keys[i]);
    }
    assert_null(it);
    assert_true(json_is_integer(json_object_get(j, "ErrorCode")));
    assert_true(json_is_array(json_object_get(j, "Results")));
    return j;
}

static void expect_error(const char *method, const char *target, unsigned status, int code,
                         const char *needle)
{
    unsigned st;
    json_t *j = dispatch(method, target, &st);
    const char *msg = json_string_value(json_object_get(j, "ErrorMessage"));
    if (st != status || json_integer_value(json_object_get(j, "ErrorCode")) != code ||
        strstr(msg, needle) == NULL)
        fail_msg("%s %s: %u %lld '%s', expected %u %d '%s'", method, target, st,
                 (long long)json_integer_value(json_object_get(j, "ErrorCode")), msg, status, code,
                 needle);
    json_decref(j);
}

static void test_dispatch_errors(void **state)
{
    expect_error("GET", "/nope", 404, ENOENT, "unknown path '/nope'");
    expect_error("GET", "/v1/tier/", 404, ENOENT, "unknown path");
    expect_error("GET", "/v1/%74ier", 404, ENOENT, "unknown path");
    expect_error("POST", "/v1/tier", 405, EINVAL, "method 'POST'");
    expect_error("DELETE", "/v1/warmup/load?target_path=x", 405, EINVAL, "use GET");
    expect_error("HEAD", "/v1/warmup/load?target_path=x", 405, EINVAL, "use GET");
    expect_error("GET", "/v1/tier?x=1", 400, EINVAL, "unknown parameter 'x'");
    expect_error("GET", "/v1/warmup/load?target_path=a&target_path=b", 400, EINVAL,
                 "'target_path' is given more than once");
    expect_error("GET", "/v1/warmup/load?path=a", 400, EINVAL, "unknown parameter 'path'");
    expect_error("GET", "/v1/warmup/load?target_path=a&preceding_time=1", 400, EINVAL,
                 "unknown parameter 'preceding_time'");
    expect_error("GET", "/v1/warmup/load", 400, EINVAL, "missing parameter 'target_path'");
    expect_error("GET", "/v1/warmup/stat?pattern=x", 400, EINVAL, "unknown parameter 'pattern'");
    expect_error("GET", "/v1/warmup/cancel?", 400, EINVAL, "'target_path'");
    expect_error("GET", "/v1/warmup/stat?target_path=a&preceding_time=abc", 400, EINVAL,
                 "'preceding_time'");
    expect_error("GET", "/v1/warmup/stat?target_path=a&preceding_time=-1", 400, EINVAL,
                 "'preceding_time'");
    expect_error("GET", "/v1/warmup/stat?target_path=a&preceding_time=", 400, EINVAL,
                 "'preceding_time'");
    expect_error("GET", "/v1/warmup/stat?target_path=a&preceding_time=99999999999999999999", 400,
                 EINVAL, "'preceding_time'");
    expect_error("GET", "/v1/warmup/load?target_path=%zz", 400, EINVAL, "'target_path'");
    expect_error("GET", "/v1/warmup/load?target_path=%C0%80", 400, EINVAL, "UTF-8");
    /* well-formed, but the mount has no warm-up (warmup NULL) / no callbacks */
    expect_error("GET", "/v1/warmup/load?target_path=", 501, ENOTSUP, "no block cache");
    expect_error("GET", "/v1/warmup/stat?target_path=a&preceding_time=0", 501, ENOTSUP,
                 "no block cache");
    expect_error("GET", "/v1/tier", 501, ENOTSUP, "not available");
    expect_error("HEAD", "/v1/tier", 501, ENOTSUP, "not available");
    expect_error("GET", "/v1/tier/clear", 501, ENOTSUP, "not available");
    expect_error("GET", "/v1/action/clear_readdir_cache", 501, ENOTSUP, "readdir");
    expect_error("GET", "/v1/action/clear_metadata_cache", 501, ENOTSUP, "metadata");
    expect_error("GET", "/v1/cluster", 501, ENOTSUP,
                 "the distributed cache is not available on this mount");
    expect_error("HEAD", "/v1/cluster", 501, ENOTSUP, "not available");
    expect_error("GET", "/v1/action/reload_rootlist", 501, ENOTSUP,
                 "reloading the rootlist is not available on this mount");
    /* the checking order holds for the new endpoints too: method, then parameters, then 501 */
    expect_error("HEAD", "/v1/action/reload_rootlist", 405, EINVAL, "use GET");
    expect_error("POST", "/v1/cluster", 405, EINVAL, "use GET or HEAD");
    expect_error("GET", "/v1/cluster?members=all", 400, EINVAL, "unknown parameter 'members'");
    expect_error("GET", "/v1/action/reload_rootlist?force", 400, EINVAL,
                 "unknown parameter 'force'");
    expect_error("GET", "/v1/cluster/", 404, ENOENT, "unknown path");
    expect_error("GET", "/v1/action/reload_rootlist/", 404, ENOENT, "unknown path");

    /* too many paths */
    static char q[MGMT_MAX_QUERY];
    strcpy(q, "/v1/warmup/cancel?target_path=");
    for (int i = 0; i < MGMT_MAX_PATHS; i++)
        strcat(q, ",");
    expect_error("GET", q, 400, E2BIG, "more than 256");
    /* an oversized query: 414 */
    static char big[MGMT_MAX_QUERY + 64];
    strcpy(big, "/v1/tier?");
    memset(big + strlen(big), 'a', MGMT_MAX_QUERY + 1);
    expect_error("GET", big, 414, E2BIG, "over the limit");
}

static void test_dispatch_metrics_empty(void **state)
{
    struct mgmt_reply r;
    assert_int_equal(mgmt_dispatch(NULL, NULL, "x", "GET", "/metrics", 8, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(r.body);
    assert_int_equal(r.len, 0); /* nothing to report, but a valid (empty) exposition */
    assert_non_null(strstr(r.content_type, "version=0.0.4"));
    mgmt_reply_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_bad_escapes),
        cmocka_unit_test(test_control_and_utf8),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_dispatch_errors),
        cmocka_unit_test(test_dispatch_metrics_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
