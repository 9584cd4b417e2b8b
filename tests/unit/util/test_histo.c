/* tests/unit/util/test_histo.c - the latency histogram and the Prometheus text writers. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/mgmt/promcheck.h"
#include "util/buf.h"
#include "util/histo.h"
#include "util/prom.h"

static void assert_prom_ok(const char *text)
{
    char err[512];
    if (prom_check(text, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n--- text ---\n%s", err, text);
        fail();
    }
}

static void assert_prom_bad(const char *text)
{
    char err[512];
    assert_int_equal(prom_check(text, err, sizeof(err)), -1);
}

static void test_bounds_ascending(void **state)
{
    assert_int_equal(histo_bounds_us[0], 50);
    assert_int_equal(histo_bounds_us[HISTO_NBUCKETS - 1], 60000000);
    for (int i = 1; i < HISTO_NBUCKETS; i++)
        assert_true(histo_bounds_us[i] > histo_bounds_us[i - 1]);
}

static void test_observe_buckets(void **state)
{
    struct histo h;
    struct histo_snap s;
    histo_init(&h);
    histo_observe(&h, 0);        /* bucket 0 */
    histo_observe(&h, 50);       /* a bound is inclusive: bucket 0 */
    histo_observe(&h, 51);       /* bucket 1 (<= 100) */
    histo_observe(&h, 999999);   /* <= 1 s */
    histo_observe(&h, 60000000); /* the last finite bucket */
    histo_observe(&h, 60000001); /* overflow */
    histo_snapshot(&h, &s);
    assert_int_equal(s.count, 6);
    assert_int_equal(s.bucket[0], 2);
    assert_int_equal(s.bucket[1], 1);
    assert_int_equal(s.bucket[13], 1); /* 1000000 us */
    assert_int_equal(histo_bounds_us[13], 1000000);
    assert_int_equal(s.bucket[HISTO_NBUCKETS - 1], 1);
    assert_int_equal(s.bucket[HISTO_NBUCKETS], 1);
    assert_int_equal(s.sum_us, 0 + 50 + 51 + 999999 + 60000000 + 60000001);
}

static void test_write_prom(void **state)
{
    struct histo h;
    struct buf b;
    histo_init(&h);
    histo_observe(&h, 75);
    histo_observe(&h, 2500000);
    histo_observe(&h, 90000000);
    buf_init(&b, 1 << 20);
    assert_int_equal(histo_write_prom(&h, "x_seconds", "A test.", &b), 0);
    assert_prom_ok(b.data);
    assert_non_null(strstr(b.data, "# TYPE x_seconds histogram\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{le=\"0.00005\"} 0\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{le=\"0.0001\"} 1\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{le=\"2.5\"} 2\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{le=\"60\"} 2\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(b.data, "x_seconds_sum 92.500075\n"));
    assert_non_null(strstr(b.data, "x_seconds_count 3\n"));

    /* Labelled series of one family. */
    buf_reset(&b);
    struct histo_snap s;
    histo_snapshot(&h, &s);
    assert_int_equal(prom_header(&b, "y_seconds", "Two series.", "histogram"), 0);
    assert_int_equal(histo_snap_write_prom(&s, "y_seconds", "op=\"read\"", &b), 0);
    assert_int_equal(histo_snap_write_prom(&s, "y_seconds", "op=\"lookup\"", &b), 0);
    assert_prom_ok(b.data);
    assert_non_null(strstr(b.data, "y_seconds_bucket{op=\"read\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(b.data, "y_seconds_sum{op=\"lookup\"} 92.500075\n"));

    /* A full buffer fails without leaving half a line. */
    struct buf small;
    buf_init(&small, 300);
    assert_int_equal(histo_write_prom(&h, "x_seconds", "A test.", &small), -E2BIG);
    assert_true(small.len == 0 || small.data[small.len - 1] == '\n');
    buf_release(&small);
    buf_release(&b);
}

#define NTHREADS 4
#define PER      100000

static void *observer(void *arg)
{
    struct histo *h = arg;
    for (uint64_t i = 0; i < PER; i++)
        histo_observe(h, i % 3000);
    return NULL;
}

static void test_concurrent_observe(void **state)
{
    static struct histo h; /* zero-filled: valid as is */
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, observer, &h), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    struct histo_snap s;
    histo_snapshot(&h, &s);
    assert_int_equal(s.count, (uint64_t)NTHREADS * PER);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < PER; i++)
        sum += i % 3000;
    assert_int_equal(s.sum_us, sum * NTHREADS);
}

static void test_prom_writers(void **state)
{
    struct buf b, l;
    buf_init(&b, 1 << 16);
    buf_init(&l, 256);
    assert_true(prom_name_ok("efc_a:b_1"));
    assert_false(prom_name_ok("1abc"));
    assert_false(prom_name_ok("a-b"));
    assert_false(prom_name_ok(""));
    assert_true(prom_label_name_ok("tier"));
    assert_false(prom_label_name_ok("__name"));
    assert_false(prom_label_name_ok("a:b"));
    assert_int_equal(prom_counter(&b, "bad-name", "x", 1), -EINVAL);
    assert_int_equal(b.len, 0);

    assert_int_equal(prom_counter(&b, "a_total", "Line one\nback\\slash.", 7), 0);
    assert_non_null(strstr(b.data, "# HELP a_total Line one\\nback\\\\slash.\n"));
    assert_int_equal(prom_gauge(&b, "g", "A gauge.", 0.25), 0);
    assert_non_null(strstr(b.data, "\ng 0.25\n"));
    assert_int_equal(prom_header(&b, "h", "Special values.", "gauge"), 0);
    assert_int_equal(prom_label_escape(&l, "a\"b\\c\nd"), 0);
    assert_string_equal(l.data, "a\\\"b\\\\c\\nd");
    buf_reset(&l);
    buf_puts(&l, "v=\"");
    prom_label_escape(&l, "x\"y");
    buf_puts(&l, "\"");
    assert_int_equal(prom_sample_double(&b, "h", l.data, 1.0 / 0.0), 0);
    assert_int_equal(prom_sample_double(&b, "h", "v=\"2\"", 0.0 / 0.0), 0);
    assert_int_equal(prom_sample_double(&b, "h", "v=\"3\"", 0.1), 0);
    assert_non_null(strstr(b.data, "h{v=\"x\\\"y\"} +Inf\n"));
    assert_non_null(strstr(b.data, "h{v=\"2\"} NaN\n"));
    assert_non_null(strstr(b.data, "h{v=\"3\"} 0.1\n"));
    assert_prom_ok(b.data);
    buf_release(&b);
    buf_release(&l);
}

/* The checker must be able to fail, or the tests that rely on it prove nothing. */
static void test_checker_rejects(void **state)
{
    assert_prom_ok("# HELP a x\n# TYPE a counter\na 1\n");
    assert_prom_bad("a 1\n");                                        /* no HELP/TYPE */
    assert_prom_bad("# HELP a x\n# TYPE a counter\na 1");            /* no final newline */
    assert_prom_bad("# HELP a x\n# TYPE a counter\na -1\n");         /* negative counter */
    assert_prom_bad("# HELP a x\n# TYPE a counter\na  1\n");         /* two spaces */
    assert_prom_bad("# HELP a x\n# TYPE a counter\na{b=\"1\"} x\n"); /* not a float */
    assert_prom_bad("# HELP a x\n# TYPE a counter\na{b=1} 1\n");     /* unquoted */
    assert_prom_bad("# HELP a x\n# TYPE a counter\na{b=\"1\",b=\"2\"} 1\n");
    assert_prom_bad("# HELP a x\n# TYPE a counter\na{b=\"\\x\"} 1\n"); /* bad escape */
    assert_prom_bad("# HELP a x\n# TYPE a counter\na 1\na 2\n");       /* duplicate */
    assert_prom_bad("# HELP a x\n# TYPE a counter\n# HELP b x\n# TYPE b gauge\n"
                    "a 1\nb 1\na{x=\"1\"} 2\n"); /* not contiguous */
    assert_prom_bad("# HELP a x\n# TYPE a counter\na 1\n# TYPE a counter\n");
    assert_prom_bad("# HELP a x\n# TYPE a foo\na 1\n");
    assert_prom_bad("# HELP 1a x\n# TYPE 1a counter\n1a 1\n");
    const char *h = "# HELP h x\n# TYPE h histogram\n";
    char t[512];
    snprintf(t, sizeof(t), "%sh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
             h);
    assert_prom_ok(t);
    snprintf(t, sizeof(t), "%sh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
             h); /* not cumulative */
    assert_prom_bad(t);
    snprintf(t, sizeof(t),
             "%sh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} "
             "2\nh_sum 3\nh_count 2\n",
             h); /* le decreasing */
    assert_prom_bad(t);
    snprintf(t, sizeof(t), "%sh_bucket{le=\"1\"} 1\nh_sum 3\nh_count 1\n", h); /* no +Inf */
    assert_prom_bad(t);
    snprintf(t, sizeof(t), "%sh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 5\n",
             h); /* count != +Inf */
    assert_prom_bad(t);
    snprintf(t, sizeof(t), "%sh_bucket{le=\"+Inf\"} 2\nh_count 2\n", h); /* no sum */
    assert_prom_bad(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds_ascending), cmocka_unit_test(test_observe_buckets),
        cmocka_unit_test(test_write_prom),       cmocka_unit_test(test_concurrent_observe),
        cmocka_unit_test(test_prom_writers),     cmocka_unit_test(test_checker_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
