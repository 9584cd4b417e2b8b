#define _GNU_SOURCE
/* tests/unit/util/test_opt.c - the option table: defaults, parsing, bounds, relations. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/opt.h"

static void test_defaults_match_the_seed(void **state)
{
    struct opt_set o;
    assert_int_equal(opt_init(&o), 0);
    assert_true(opt_bool(&o, OPT_TIER_ENABLECLUSTERCACHE));
    assert_true(opt_bool(&o, OPT_TIER_DADIISDISTRIBUTED));
    assert_int_equal(opt_int(&o, OPT_TIER_DADIROOTCLIENTTYPE), 0);
    assert_int_equal(opt_int(&o, OPT_TIER_DADIMEMCACHECAPACITYMB), 0);
    assert_int_equal(opt_int(&o, OPT_TIER_DADIDISKCACHECAPACITYMB), 0);
    assert_int_equal(opt_int(&o, OPT_TIER_DADIP2PPORT), 17980);
    assert_int_equal(opt_int(&o, OPT_TIER_DADISDKGETTRAFFICLIMIT), 3LL << 30);
    assert_int_equal(opt_int(&o, OPT_TIER_DADICACHEPAGESIZEKB), 16);
    assert_int_equal(opt_int(&o, OPT_TIER_BLOCKSIZE), 1 << 20);
    assert_false(opt_bool(&o, OPT_METADATA_CACHEENABLE));
    assert_true(opt_bool(&o, OPT_READDIRCACHE_ENABLE));
    assert_int_equal(opt_int(&o, OPT_READDIRCACHE_MAXCOUNT), 20000);
    assert_int_equal(opt_int(&o, OPT_READDIRCACHE_MAXSIZE), 100 << 20);
    assert_int_equal(opt_int(&o, OPT_READDIRCACHE_REMAINTIME), 3600);
    assert_int_equal(opt_int(&o, OPT_SERVER_PORT), 0);
    assert_string_equal(opt_str(&o, OPT_SERVER_BINDADDR), "127.0.0.1");
    assert_int_equal(opt_int(&o, OPT_OSS_SIGNVERSION), 4);
    for (int i = 0; i < OPT__COUNT; i++) {
        assert_non_null(opt_table[i].name);
        assert_false(o.v[i].set);
        assert_int_equal(opt_lookup(opt_table[i].name, strlen(opt_table[i].name)), i);
    }
    assert_int_equal(opt_check(&o, NULL, 0), 0);
    opt_release(&o);
}

static void test_parse(void **state)
{
    struct opt_set o;
    char err[256];
    assert_int_equal(opt_init(&o), 0);
    assert_int_equal(opt_set_kv(&o, "g_tier_DadiMemCacheCapacityMB=1024", err, sizeof(err)), 0);
    assert_int_equal(opt_int(&o, OPT_TIER_DADIMEMCACHECAPACITYMB), 1024);
    assert_true(o.v[OPT_TIER_DADIMEMCACHECAPACITYMB].set);
    assert_int_equal(opt_set_kv(&o, "tier_BlockSize=4M", err, sizeof(err)), 0);
    assert_int_equal(opt_int(&o, OPT_TIER_BLOCKSIZE), 4 << 20);
    assert_string_equal(opt_str(&o, OPT_TIER_BLOCKSIZE), "4194304");
    assert_int_equal(opt_set_kv(&o, "g_readdircache_MaxSize=100MiB", err, sizeof(err)), 0);
    assert_int_equal(opt_set_kv(&o, "g_metadata_CacheEnable=yes", err, sizeof(err)), 0);
    assert_true(opt_bool(&o, OPT_METADATA_CACHEENABLE));
    assert_string_equal(opt_str(&o, OPT_METADATA_CACHEENABLE), "true");
    assert_int_equal(opt_set_kv(&o, "g_oss_PathStyle", err, sizeof(err)), 0);
    assert_true(opt_bool(&o, OPT_OSS_PATHSTYLE));
    assert_int_equal(opt_set_kv(&o, "g_tier_DadiDiskCachePath=/mnt/c1/:/mnt/c2/", err, sizeof(err)),
                     0);

    struct {
        const char *kv;
        int rc;
        const char *in_err;
    } bad[] = {
        {"g_no_SuchOption=1", -ENOENT, "unknown option 'g_no_SuchOption'"},
        {"g_tier_BlockSize=3000000", -EINVAL, "g_tier_BlockSize: must be a power of two"},
        {"g_tier_BlockSize=1K", -EINVAL, "g_tier_BlockSize: must be a size"},
        {"g_tier_DadiRootClientType=3", -EINVAL, "g_tier_DadiRootClientType"},
        {"g_tier_DadiP2PPort=0", -EINVAL, "g_tier_DadiP2PPort"},
        {"g_tier_DadiP2PPort=12ab", -EINVAL, "g_tier_DadiP2PPort"},
        {"g_tier_DadiMemCacheCapacityMB=-1", -EINVAL, "g_tier_DadiMemCacheCapacityMB"},
        {"g_tier_DadiMemCacheCapacityMB=99999999999999999999", -EINVAL, "MemCache"},
        {"g_tier_EnableClusterCache=maybe", -EINVAL, "must be true or false"},
        {"g_tier_DadiDiskCachePath=/mnt/cache", -EINVAL, "ending in '/'"},
        {"g_tier_DadiDiskCachePath=/a/::/b/", -EINVAL, "DadiDiskCachePath"},
        {"g_oss_STSFile=relative/path", -EINVAL, "absolute"},
        {"g_oss_SignVersion=2", -EINVAL, "1 or 4"},
        {"g_server_BindAddr=localhost", -EINVAL, "address"},
        {"g_log_Level=loud", -EINVAL, "g_log_Level"},
        {"g_oss_Endpoint=127.0.0.1:80", -EINVAL, "http://"},
        {"g_server_Port", -EINVAL, "missing value"},
        {"g_oss_Region=a\tb", -EINVAL, "control"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = opt_set_kv(&o, bad[i].kv, err, sizeof(err));
        if (rc != bad[i].rc || strstr(err, bad[i].in_err) == NULL)
            fail_msg("%s: rc %d err '%s'", bad[i].kv, rc, err);
    }
    /* Failed sets leave the old value. */
    assert_int_equal(opt_int(&o, OPT_TIER_BLOCKSIZE), 4 << 20);
    opt_release(&o);
}

static void test_relations_and_copy(void **state)
{
    struct opt_set o, c;
    char err[256];
    assert_int_equal(opt_init(&o), 0);
    assert_int_equal(opt_set_kv(&o, "g_tier_BlockSize=65536", err, sizeof(err)), 0);
    assert_int_equal(opt_set_kv(&o, "g_tier_DadiCachePageSizeKB=128", err, sizeof(err)), 0);
    assert_int_equal(opt_check(&o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "g_tier_DadiCachePageSizeKB"));
    assert_int_equal(opt_set_kv(&o, "g_tier_DadiCachePageSizeKB=64", err, sizeof(err)), 0);
    assert_int_equal(opt_check(&o, err, sizeof(err)), 0);
    assert_int_equal(opt_set_kv(&o, "g_tier_DadiDiskCacheCapacityMB=10", err, sizeof(err)), 0);
    assert_int_equal(opt_check(&o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "g_tier_DadiDiskCachePath"));
    assert_int_equal(opt_copy(&c, &o), 0);
    assert_string_equal(opt_str(&c, OPT_TIER_BLOCKSIZE), "65536");
    assert_true(opt_str(&c, OPT_TIER_BLOCKSIZE) != opt_str(&o, OPT_TIER_BLOCKSIZE));
    opt_release(&o);
    opt_release(&c);
}

static void test_help_lists_every_option(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    opt_print_help(f);
    fclose(f);
    for (int i = 0; i < OPT__COUNT; i++) {
        char want[128];
        snprintf(want, sizeof(want), "--%s=", opt_table[i].name);
        assert_non_null(strstr(text, want));
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_the_seed),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_relations_and_copy),
        cmocka_unit_test(test_help_lists_every_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
