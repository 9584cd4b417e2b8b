/* tests/unit/util/test_util.c - CRC64, bounded buffers, percent-encoding, dates. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"
#include "util/crc64.h"
#include "util/timeutil.h"
#include "util/urlenc.h"

/* Bit-at-a-time reference, straight from the CRC-64/XZ definition. */
static uint64_t crc64_ref(const uint8_t *p, size_t n)
{
    uint64_t crc = ~0ULL;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0xC96C5795D7870F42ULL & (0 - (crc & 1)));
    }
    return ~crc;
}

static void test_crc64_vector(void **state)
{
    assert_true(crc64_update(0, "123456789", 9) == 0x995dc9bbdf1939faULL);
    assert_true(crc64_update(0, "", 0) == 0);
}

static void test_crc64_matches_reference_and_combines(void **state)
{
    uint8_t data[10000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(data); i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (uint8_t)(x >> 16);
    }
    size_t lens[] = {1, 7, 8, 15, 16, 63, 64, 65, 255, 1000, 4096, 9999};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
        assert_true(crc64_update(0, data, lens[k]) == crc64_ref(data, lens[k]));
    uint64_t whole = crc64_update(0, data, sizeof(data));
    for (size_t split = 0; split <= sizeof(data); split += 777) {
        uint64_t a = crc64_update(0, data, split);
        uint64_t b = crc64_update(0, data + split, sizeof(data) - split);
        assert_true(crc64_combine(a, b, sizeof(data) - split) == whole);
        assert_true(crc64_update(a, data + split, sizeof(data) - split) == whole);
    }
}

static void test_buf_limits(void **state)
{
    struct buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "hello"), 0);
    assert_int_equal(buf_printf(&b, "%d", 12345), 0);
    assert_string_equal(b.data, "hello12345");
    assert_int_equal(buf_puts(&b, "x"), -E2BIG);
    assert_int_equal(b.len, 10);
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "%s", "01234567890"), -E2BIG);
    assert_int_equal(b.len, 0);
    char big[300];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct buf c;
    buf_init(&c, 1000);
    assert_int_equal(buf_printf(&c, "%s|%s", big, big), 0);
    assert_int_equal(c.len, 2 * 299 + 1);
    size_t n;
    char *p = buf_detach(&c, &n);
    assert_int_equal(n, 599);
    assert_int_equal(c.len, 0);
    free(p);
    buf_release(&b);
    buf_release(&c);
}

static void test_urlenc(void **state)
{
    struct buf b;
    buf_init(&b, 1024);
    const char *s = "a b+c%d~e/f.g_h-i*中";
    assert_int_equal(url_encode(&b, s, strlen(s), true), 0);
    assert_string_equal(b.data, "a%20b%2Bc%25d~e/f.g_h-i%2A%E4%B8%AD");
    buf_reset(&b);
    assert_int_equal(url_encode(&b, s, strlen(s), false), 0);
    assert_string_equal(b.data, "a%20b%2Bc%25d~e%2Ff.g_h-i%2A%E4%B8%AD");
    struct buf d;
    buf_init(&d, 1024);
    assert_int_equal(url_decode(&d, b.data, b.len, false), 0);
    assert_string_equal(d.data, s);
    buf_reset(&d);
    assert_int_equal(url_decode(&d, "a+b", 3, true), 0);
    assert_string_equal(d.data, "a b");
    buf_reset(&d);
    assert_int_equal(url_decode(&d, "%4", 2, false), -EINVAL);
    assert_int_equal(url_decode(&d, "%", 1, false), -EINVAL);
    assert_int_equal(url_decode(&d, "%zz", 3, false), -EINVAL);
    assert_int_equal(url_decode(&d, "%00", 3, false), -EINVAL);
    buf_release(&b);
    buf_release(&d);
}

static void test_time_formats(void **state)
{
    char out[40];
    time_t t = 1703456123; /* 2023-12-24T22:15:23Z, a Sunday */
    time_fmt_rfc1123(t, out, sizeof(out));
    assert_string_equal(out, "Sun, 24 Dec 2023 22:15:23 GMT");
    time_fmt_iso8601_basic(t, out, sizeof(out));
    assert_string_equal(out, "20231224T221523Z");
    time_t p;
    assert_int_equal(time_parse_http("Sun, 24 Dec 2023 22:15:23 GMT", &p), 0);
    assert_true(p == t);
    assert_int_equal(time_parse_http("2023-12-24T22:15:23Z", &p), 0);
    assert_true(p == t);
    assert_int_equal(time_parse_http("2023-12-24T22:15:23.000Z", &p), 0);
    assert_true(p == t);
    assert_int_equal(time_parse_http("2023-13-24T22:15:23Z", &p), -EINVAL);
    assert_int_equal(time_parse_http("Sun, 24 Foo 2023 22:15:23 GMT", &p), -EINVAL);
    assert_int_equal(time_parse_http("2023-12-24T22:15:23", &p), -EINVAL);
    assert_int_equal(time_parse_http("", &p), -EINVAL);
    assert_int_equal(time_parse_http("Sun, 24 Dec 2023 22:15:23 GMTx", &p), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc64_vector),
        cmocka_unit_test(test_crc64_matches_reference_and_combines),
        cmocka_unit_test(test_buf_limits),
        cmocka_unit_test(test_urlenc),
        cmocka_unit_test(test_time_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
