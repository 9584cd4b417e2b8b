/* tests/unit/util/test_mountopt.c - what mount(8) hands mount.alinas: argv, -o, source, mountinfo.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/mountopt.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static void test_cmd_as_mount_passes_it(void **state)
{
    struct mountopt_cmd c;
    char err[256];
    char *a1[] = {"mount.alinas", "b.h:/", "/mnt", "-o", "rw,efc", "-o", "protocol=oss", NULL};
    assert_int_equal(mountopt_cmd_parse(ARGC(a1), a1, &c, err, sizeof(err)), 0);
    assert_string_equal(c.source, "b.h:/");
    assert_string_equal(c.dir, "/mnt");
    assert_string_equal(c.options, "rw,efc,protocol=oss");
    assert_false(c.fake || c.verbose || c.sloppy || c.nomtab);
    mountopt_cmd_release(&c);

    /* flags first, combined, -o attached, -t and -N with arguments */
    char *a2[] = {"mount.alinas", "-sfnv", "-oefc", "-t", "alinas",
                  "b.h:/p",       "/m",    "-N",    "x",  NULL};
    assert_int_equal(mountopt_cmd_parse(ARGC(a2), a2, &c, err, sizeof(err)), 0);
    assert_true(c.fake && c.verbose && c.sloppy && c.nomtab);
    assert_string_equal(c.options, "efc");
    assert_string_equal(c.type, "alinas");
    assert_string_equal(c.ns, "x");
    assert_string_equal(c.source, "b.h:/p");
    assert_string_equal(c.dir, "/m");
    mountopt_cmd_release(&c);

    char *a3[] = {"mount.alinas", "-vo", "efc", "--", "-src", "/m", NULL};
    assert_int_equal(mountopt_cmd_parse(ARGC(a3), a3, &c, err, sizeof(err)), 0);
    assert_true(c.verbose);
    assert_string_equal(c.options, "efc");
    assert_string_equal(c.source, "-src");
    mountopt_cmd_release(&c);

    char *a4[] = {"mount.alinas", "-o", "", "s", "/m", NULL};
    assert_int_equal(mountopt_cmd_parse(ARGC(a4), a4, &c, err, sizeof(err)), 0);
    assert_string_equal(c.options, "");
    mountopt_cmd_release(&c);
}

static void test_cmd_errors(void **state)
{
    struct mountopt_cmd c;
    char err[256];
    char *a1[] = {"mount.alinas", "s", NULL};
    assert_int_equal(mountopt_cmd_parse(ARGC(a1), a1, &c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "missing mount point");
    mountopt_cmd_release(&c);
    char *a2[] = {"mount.alinas", "s", "/m", "-o", NULL};
    assert_int_equal(mountopt_cmd_parse(ARGC(a2), a2, &c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "flag '-o' needs an argument");
    mountopt_cmd_release(&c);
    char *a3[] = {"mount.alinas", "s", "/m", "-x", NULL};
    assert_int_equal(mountopt_cmd_parse(ARGC(a3), a3, &c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "unknown flag '-x'");
    mountopt_cmd_release(&c);
    char *a4[] = {"mount.alinas", "s", "/m", "extra", NULL};
    assert_int_equal(mountopt_cmd_parse(ARGC(a4), a4, &c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "unexpected argument 'extra'");
    mountopt_cmd_release(&c);
    char *a5[] = {"mount.alinas", "-h", NULL};
    assert_int_equal(mountopt_cmd_parse(ARGC(a5), a5, &c, err, sizeof(err)), 0);
    assert_true(c.help);
    mountopt_cmd_release(&c);
    char *a6[] = {"mount.alinas", NULL};
    assert_int_equal(mountopt_cmd_parse(0, a6, &c, err, sizeof(err)), -EINVAL);
    mountopt_cmd_release(&c);
}

static void test_next_splits_like_libmount(void **state)
{
    const char *cur = ",a,b=1,,c=,comment=\"x,y=z\",d=\"q\"r";
    char n[32], v[32];
    bool hv;
    assert_int_equal(mountopt_next(&cur, n, sizeof(n), v, sizeof(v), &hv), 1);
    assert_string_equal(n, "a");
    assert_false(hv);
    assert_int_equal(mountopt_next(&cur, n, sizeof(n), v, sizeof(v), &hv), 1);
    assert_string_equal(n, "b");
    assert_string_equal(v, "1");
    assert_true(hv);
    assert_int_equal(mountopt_next(&cur, n, sizeof(n), v, sizeof(v), &hv), 1);
    assert_string_equal(n, "c");
    assert_string_equal(v, "");
    assert_true(hv);
    assert_int_equal(mountopt_next(&cur, n, sizeof(n), v, sizeof(v), &hv), 1);
    assert_string_equal(n, "comment");
    assert_string_equal(v, "x,y=z");
    assert_int_equal(mountopt_next(&cur, n, sizeof(n), v, sizeof(v), &hv), 1);
    assert_string_equal(n, "d");
    assert_string_equal(v, "qr");
    assert_int_equal(mountopt_next(&cur, n, sizeof(n), v, sizeof(v), &hv), 0);
    assert_int_equal(mountopt_next(&cur, n, sizeof(n), v, sizeof(v), &hv), 0);

    cur = "a=\"open";
    assert_int_equal(mountopt_next(&cur, n, sizeof(n), v, sizeof(v), &hv), -EINVAL);
    cur = "a=0123456789";
    assert_int_equal(mountopt_next(&cur, n, sizeof(n), v, 8, &hv), -ENAMETOOLONG);
    cur = "0123456789";
    assert_int_equal(mountopt_next(&cur, n, 4, v, sizeof(v), &hv), -ENAMETOOLONG);
}

static void test_generic(void **state)
{
    const char *ok[] = {
        "ro",           "rw",          "defaults",   "_netdev", "nofail", "auto",
        "noauto",       "user",        "nouser",     "users",   "exec",   "noexec",
        "suid",         "nosuid",      "dev",        "nodev",   "atime",  "noatime",
        "relatime",     "strictatime", "nodiratime", "sync",    "async",  "x-systemd.automount",
        "x-mount.mkdir"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(mountopt_is_generic(ok[i], false));
    assert_true(mountopt_is_generic("comment", true));
    assert_true(mountopt_is_generic("x-systemd.requires", true));
    assert_true(mountopt_is_generic("user", true));
    assert_false(mountopt_is_generic("ro", true));
    assert_false(mountopt_is_generic("x-", false));
    assert_false(mountopt_is_generic("loop", false));
    assert_false(mountopt_is_generic("", false));
}

static int parse(struct mountopt *m, const char *s, bool sloppy, char *err)
{
    assert_int_equal(mountopt_init(m), 0);
    err[0] = '\0';
    return mountopt_parse(m, s, sloppy, err, 256);
}

static void test_parse_options(void **state)
{
    struct mountopt m;
    char err[256];

    assert_int_equal(parse(&m,
                           "rw,efc,protocol=oss,passwd_file=/etc/passwd-oss,trybind=no,_netdev,"
                           "g_tier_DadiMemCacheCapacityMB=1024,g_tier_DadiIsDistributed=false,"
                           "g_oss_Endpoint=http://a:1|http://b:2,"
                           "g_oss_PathStyle,comment=hi,x-systemd.automount",
                           false, err),
                     0);
    assert_true(m.efc);
    assert_string_equal(m.protocol, "oss");
    assert_string_equal(m.passwd_file, "/etc/passwd-oss");
    assert_false(m.trybind);
    assert_int_equal(opt_int(&m.opts, OPT_TIER_DADIMEMCACHECAPACITYMB), 1024);
    assert_string_equal(opt_str(&m.opts, OPT_OSS_ENDPOINT), "http://a:1|http://b:2");
    assert_true(opt_bool(&m.opts, OPT_OSS_PATHSTYLE));
    assert_false(m.opts.v[OPT_OSS_SIGNVERSION].set);
    assert_string_equal(m.ignored, "");
    mountopt_release(&m);

    assert_int_equal(parse(&m, "efc,protocol=S3", false, err), 0);
    assert_string_equal(m.protocol, "s3");
    assert_true(m.trybind);
    assert_null(m.passwd_file);
    mountopt_release(&m);
}

static void test_parse_errors(void **state)
{
    static const struct {
        const char *opts;
        bool sloppy;
        int rc;
        const char *err;
    } cases[] = {
        {"efc,protocol=oss,g_foo=1", false, -ENOENT, "unknown option 'g_foo'"},
        {"efc,protocol=oss,g_foo=1", true, -ENOENT, "unknown option 'g_foo'"},
        {"efc,protocol=oss,foo", false, -ENOENT, "unknown option 'foo'"},
        {"efc,protocol=oss,oss_Endpoint=http://x", false, -ENOENT, "unknown option 'oss_Endpoint'"},
        {"protocol=oss", false, -EINVAL,
         "missing option 'efc' (mount -t alinas -o efc,protocol=oss,...)"},
        {"efc", false, -EINVAL, "missing option 'protocol' (protocol=oss or s3)"},
        {"", false, -EINVAL, "missing option 'efc' (mount -t alinas -o efc,protocol=oss,...)"},
        {"efc,protocol=nfs", false, -EINVAL, "protocol: must be oss or s3, not 'nfs'"},
        {"efc=1,protocol=oss", false, -EINVAL, "option 'efc' takes no value"},
        {"efc,protocol=oss,ro=1", false, -EINVAL, "option 'ro' takes no value"},
        {"efc,protocol=oss,passwd_file=rel", false, -EINVAL,
         "passwd_file: must be an absolute path"},
        {"efc,protocol=oss,trybind=maybe", false, -EINVAL,
         "trybind: must be yes or no, not 'maybe'"},
        {"efc,protocol=oss,g_tier_BlockSize=100000", false, -EINVAL,
         "g_tier_BlockSize: must be a power of two"},
        {"efc,protocol=oss,g_tier_DadiDiskCacheCapacityMB=10", false, -EINVAL,
         "g_tier_DadiDiskCachePath: required when g_tier_DadiDiskCacheCapacityMB is not 0"},
        {"efc,protocol=oss,g_oss_SignVersion=2", false, -EINVAL,
         "g_oss_SignVersion: must be 1 or 4"},
        /* distributed is the default: a cache needs a rootlist, or IsDistributed=false */
        {"efc,protocol=oss,g_tier_DadiMemCacheCapacityMB=64", false, -EINVAL,
         "g_tier_DadiAddr: required in distributed mode (g_tier_DadiIsDistributed=true, the "
         "default): give the rootlist file, or set g_tier_DadiIsDistributed=false for a "
         "single-node cache"},
        {"efc,protocol=oss,g_tier_DadiRootClientType=2", false, -EINVAL,
         "g_tier_DadiAddr: required in distributed mode (g_tier_DadiIsDistributed=true, the "
         "default): give the rootlist file, or set g_tier_DadiIsDistributed=false for a "
         "single-node cache"},
        {"efc,protocol=oss,g_tier_DadiRootClientType=2,g_tier_DadiIsDistributed=false", false,
         -EINVAL,
         "g_tier_DadiRootClientType: 2 (an agent) reads through the cluster: it needs "
         "g_tier_DadiIsDistributed=true"},
        {"efc,protocol=oss,g_tier_DadiAddr=etc/rootlist,g_tier_DadiMemCacheCapacityMB=64", false,
         -EINVAL, "g_tier_DadiAddr: must be an absolute path"},
        {"efc,protocol=oss,=x", false, -EINVAL, "option '=x' has no name"},
        {"efc,protocol=oss,comment=\"x", false, -EINVAL, "unterminated quote in the options"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mountopt m;
        char err[256];
        int rc = parse(&m, cases[i].opts, cases[i].sloppy, err);
        if (rc != cases[i].rc || strcmp(err, cases[i].err) != 0)
            fail_msg("'%s': got %d '%s', want %d '%s'", cases[i].opts, rc, err, cases[i].rc,
                     cases[i].err);
        mountopt_release(&m);
    }

    struct mountopt m;
    char err[256];
    assert_int_equal(parse(&m, "efc,protocol=oss,foo,bar=1,ro", true, err), 0);
    assert_string_equal(m.ignored, "'foo', 'bar'");
    mountopt_release(&m);

    /* a value longer than the option table allows */
    size_t n = OPT_MAX_VALUE + 64;
    char *big = malloc(n + 64);
    strcpy(big, "efc,protocol=oss,g_oss_Region=");
    size_t l = strlen(big);
    memset(big + l, 'a', n);
    big[l + n] = '\0';
    assert_int_equal(parse(&m, big, false, err), -EINVAL);
    assert_non_null(strstr(err, "too long"));
    mountopt_release(&m);
    free(big);
}

static void test_source(void **state)
{
    struct mountopt_source s;
    char err[256];

    assert_int_equal(
        mountopt_source_parse("mybucket.oss-cn-hangzhou.aliyuncs.com:/", &s, err, sizeof(err)), 0);
    assert_string_equal(s.bucket, "mybucket");
    assert_string_equal(s.host, "oss-cn-hangzhou.aliyuncs.com");
    assert_string_equal(s.prefix, "");

    assert_int_equal(mountopt_source_parse("mybucket.oss-cn-hangzhou.aliyuncs.com:/models/v1", &s,
                                           err, sizeof(err)),
                     0);
    assert_string_equal(s.prefix, "models/v1/");
    assert_int_equal(
        mountopt_source_parse("my-bucket.s3.amazonaws.com:/models/v1/", &s, err, sizeof(err)), 0);
    assert_string_equal(s.prefix, "models/v1/");
    assert_int_equal(mountopt_source_parse("b01.127.0.0.1:9000:/x y/中文", &s, err, sizeof(err)),
                     0);
    assert_string_equal(s.bucket, "b01");
    assert_string_equal(s.host, "127.0.0.1:9000");
    assert_string_equal(s.prefix, "x y/中文/");

    static const char *const bad[] = {
        "bucket.host",      "bucket.host:",    "buckethost:/",  ".host:/",
        "ab.host:/",        "Bucket.host:/",   "-bkt.host:/",   "bkt-.host:/",
        "bkt.:/",           "bkt.host..com:/", "bkt.ho_st:/",   "bkt.host:0:/",
        "bkt.host:65536:/", "bkt.host:x:/",    "bkt.host::/",   "bkt.-host:/",
        "bkt.host:/a//b",   "bkt.host://a",    "bkt.host:/./a", "bkt.host:/a/..",
        "bkt.host:/a/../b", "bkt.host:/a\nb",  "bkt.host:/a/.", "bkt.host:/..",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (mountopt_source_parse(bad[i], &s, err, sizeof(err)) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);

    /* components that merely start with dots are fine */
    assert_int_equal(mountopt_source_parse("bkt.host:/.a/..b/...", &s, err, sizeof(err)), 0);
    assert_string_equal(s.prefix, ".a/..b/.../");
}

static void test_mountinfo(void **state)
{
    struct mountopt_mountinfo mi;
    char l1[] = "36 35 98:0 /mnt1 /mnt/my\\040dir rw,noatime master:1 - ext3 /dev/root "
                "rw,errors=continue\n";
    assert_int_equal(mountopt_mountinfo_parse(l1, &mi), 0);
    assert_string_equal(mi.mountpoint, "/mnt/my dir");
    assert_string_equal(mi.majmin, "98:0");
    assert_string_equal(mi.root, "/mnt1");
    assert_string_equal(mi.fstype, "ext3");
    assert_string_equal(mi.source, "/dev/root");

    char l2[] = "90 30 0:50 / /tmp/m rw,nosuid,nodev,relatime - fuse.aliyun-alinas-efc "
                "b.oss-cn-hangzhou.aliyuncs.com:/ ro,user_id=0,group_id=0,allow_other";
    assert_int_equal(mountopt_mountinfo_parse(l2, &mi), 0);
    assert_string_equal(mi.mountpoint, "/tmp/m");
    assert_string_equal(mi.majmin, "0:50");
    assert_string_equal(mi.root, "/");
    assert_string_equal(mi.fstype, "fuse.aliyun-alinas-efc");
    assert_string_equal(mi.source, "b.oss-cn-hangzhou.aliyuncs.com:/");

    char l3[] = "36 35 98:0 /mnt1 /mnt2 rw - ext3";
    assert_int_equal(mountopt_mountinfo_parse(l3, &mi), -EINVAL);
    char l4[] = "36 35 98:0";
    assert_int_equal(mountopt_mountinfo_parse(l4, &mi), -EINVAL);
    char l5[] = "";
    assert_int_equal(mountopt_mountinfo_parse(l5, &mi), -EINVAL);
    char l6[] = "1 2 3 4 /a\\134b\\9 o - t s\\04";
    assert_int_equal(mountopt_mountinfo_parse(l6, &mi), 0);
    assert_string_equal(mi.mountpoint, "/a\\b\\9");
    assert_string_equal(mi.source, "s\\04");
}

static void test_bind_differs(void **state)
{
    struct opt_set a, b;
    char err[256];
    assert_int_equal(opt_init(&a), 0);
    assert_int_equal(opt_init(&b), 0);
    assert_int_equal(mountopt_bind_differs(&a, &b), -1);
    /* where and how much the daemon logs does not count */
    assert_int_equal(opt_set_kv(&a, "g_log_File=/tmp/x.log", err, sizeof(err)), 0);
    assert_int_equal(opt_set_kv(&b, "g_log_Level=debug", err, sizeof(err)), 0);
    assert_int_equal(opt_set_kv(&b, "g_log_MaxBytes=4096", err, sizeof(err)), 0);
    assert_int_equal(opt_set_kv(&a, "g_log_FileCount=2", err, sizeof(err)), 0);
    assert_int_equal(mountopt_bind_differs(&a, &b), -1);
    assert_true(mountopt_bind_ignores(OPT_LOG_FILE));
    assert_false(mountopt_bind_ignores(OPT_OSS_ENDPOINT));
    /* a value given that equals the default is the same option */
    assert_int_equal(opt_set_kv(&a, "g_tier_BlockSize=1M", err, sizeof(err)), 0);
    assert_int_equal(opt_set_kv(&b, "g_tier_BlockSize=1048576", err, sizeof(err)), 0);
    assert_int_equal(mountopt_bind_differs(&a, &b), -1);
    /* anything else does */
    assert_int_equal(opt_set_kv(&a, "g_tier_DadiMemCacheCapacityMB=64", err, sizeof(err)), 0);
    assert_int_equal(mountopt_bind_differs(&a, &b), OPT_TIER_DADIMEMCACHECAPACITYMB);
    assert_int_equal(opt_set_kv(&b, "g_tier_DadiMemCacheCapacityMB=64", err, sizeof(err)), 0);
    assert_int_equal(opt_set_kv(&b, "g_oss_Endpoint=http://127.0.0.1:9", err, sizeof(err)), 0);
    assert_int_equal(mountopt_bind_differs(&a, &b), OPT_OSS_ENDPOINT);
    opt_release(&a);
    opt_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_as_mount_passes_it),
        cmocka_unit_test(test_cmd_errors),
        cmocka_unit_test(test_next_splits_like_libmount),
        cmocka_unit_test(test_generic),
        cmocka_unit_test(test_parse_options),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_source),
        cmocka_unit_test(test_mountinfo),
        cmocka_unit_test(test_bind_differs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
