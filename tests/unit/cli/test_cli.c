/* tests/unit/cli/test_cli.c - the CLI's parsers and printers: mountinfo, the state file, the
 * management API's answers, and the text made of them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "util/statefile.h"

/* Captures what a printer writes to a FILE. */
struct capture {
    char *text;
    size_t len;
    FILE *f;
};

static void cap_open(struct capture *c)
{
    c->text = NULL;
    c->len = 0;
    c->f = open_memstream(&c->text, &c->len);
    assert_non_null(c->f);
}

static const char *cap_text(struct capture *c)
{
    fflush(c->f);
    return c->text;
}

static void cap_close(struct capture *c)
{
    fclose(c->f);
    free(c->text);
}

static json_t *parse_ok(const char *s)
{
    char err[256] = "";
    json_t *j = cli_reply_parse(s, strlen(s), err, sizeof(err));
    if (j == NULL)
        fail_msg("cli_reply_parse: %s", err);
    return j;
}

/* ---- mountinfo ---------------------------------------------------------------------------- */

static const char mountinfo[] =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "30 22 0:40 / /mnt rw shared:5 - tmpfs tmpfs rw\n"
    "41 30 0:50 / /mnt/oss\\040data rw,nosuid,nodev shared:7 master:3 - fuse.aliyun-alinas-efc "
    "b.oss-cn-hangzhou.aliyuncs.com:/ rw,user_id=0\n"
    "42 22 0:51 / /data rw - fuse.aliyun-alinas-efc b:/ rw\n"
    "43 42 0:52 / /data rw - tmpfs tmpfs rw\n"
    "garbage line\n"
    "44 22 0:53 / /nodash rw shared:1 fuse.aliyun-alinas-efc x rw\n"
    "45 22 0:54 / /last rw - fuse.aliyun-alinas-efc x rw"; /* no final newline */

static void test_mountinfo_exact_escaped_and_stacked(void **state)
{
    struct cli_mount m;

    assert_int_equal(cli_mountinfo_find(mountinfo, sizeof(mountinfo) - 1, "/mnt/oss data", &m), 0);
    assert_true(m.found);
    assert_string_equal(m.fstype, CLI_FSTYPE);
    assert_string_equal(m.parent, "/mnt");
    assert_string_equal(m.parent_fstype, "tmpfs");

    /* a later mount on the same point covers the efc one */
    assert_int_equal(cli_mountinfo_find(mountinfo, sizeof(mountinfo) - 1, "/data", &m), 0);
    assert_true(m.found);
    assert_string_equal(m.fstype, "tmpfs");

    assert_int_equal(cli_mountinfo_find(mountinfo, sizeof(mountinfo) - 1, "/last", &m), 0);
    assert_true(m.found);
    assert_string_equal(m.fstype, CLI_FSTYPE);

    /* a line without the " - " separator is skipped */
    assert_int_equal(cli_mountinfo_find(mountinfo, sizeof(mountinfo) - 1, "/nodash", &m), 0);
    assert_false(m.found);
    assert_string_equal(m.parent, "/");
}

static void test_mountinfo_enclosing(void **state)
{
    struct cli_mount m;

    assert_int_equal(
        cli_mountinfo_find(mountinfo, sizeof(mountinfo) - 1, "/mnt/oss data/sub/x", &m), 0);
    assert_false(m.found);
    assert_string_equal(m.parent, "/mnt/oss data");
    assert_string_equal(m.parent_fstype, CLI_FSTYPE);
    /* "/mnt/oss" is not inside "/mnt/oss data" and "/mntx" not inside "/mnt" */
    assert_int_equal(cli_mountinfo_find(mountinfo, sizeof(mountinfo) - 1, "/mnt/oss", &m), 0);
    assert_string_equal(m.parent, "/mnt");
    assert_int_equal(cli_mountinfo_find(mountinfo, sizeof(mountinfo) - 1, "/mntx", &m), 0);
    assert_string_equal(m.parent, "/");
    assert_int_equal(cli_mountinfo_find(mountinfo, sizeof(mountinfo) - 1, "relative", &m), -EINVAL);
}

static void test_mountinfo_nul_and_empty(void **state)
{
    static const char nul[] = "41 30 0:50 / /a\0b rw - fuse.aliyun-alinas-efc x rw\n"
                              "42 30 0:50 / /a rw - fuse.aliyun-alinas-efc x rw\n";
    struct cli_mount m;

    assert_int_equal(cli_mountinfo_find(nul, sizeof(nul) - 1, "/a", &m), 0);
    assert_true(m.found);
    assert_int_equal(cli_mountinfo_find("", 0, "/a", &m), 0);
    assert_false(m.found);
    assert_string_equal(m.parent, "");
}

static void test_path_lexical(void **state)
{
    char out[64];

    assert_int_equal(cli_path_lexical("/mnt//oss/./data/", out, sizeof(out)), 0);
    assert_string_equal(out, "/mnt/oss/data");
    assert_int_equal(cli_path_lexical("///", out, sizeof(out)), 0);
    assert_string_equal(out, "/");
    assert_int_equal(cli_path_lexical("/a/../b", out, sizeof(out)), -EINVAL);
    assert_int_equal(cli_path_lexical("a/b", out, sizeof(out)), -EINVAL);
    assert_int_equal(cli_path_lexical("/abcdefgh", out, 6), -ENAMETOOLONG);
    assert_int_equal(cli_path_lexical("/a..", out, sizeof(out)), 0);
    assert_string_equal(out, "/a..");
}

/* ---- the state file ----------------------------------------------------------------------- */

static void test_state_path(void **state)
{
    char out[64];
    assert_int_equal(statefile_path("/run/efc", "/mnt/oss_data", out, sizeof(out)), 0);
    assert_string_equal(out, "/run/efc/_mnt_oss_data.json");
    assert_int_equal(statefile_path("/run/efc", "/mnt/oss_data", out, 20), -ENAMETOOLONG);
}

static void test_state_parse(void **state)
{
    struct cli_state st;
    char err[256];
    const char *ok = "{\"version\": 1, \"pid\": 1234, \"mountpoint\": \"/mnt/oss\", \"options\": "
                     "{\"g_server_Port\": 17871, \"g_server_BindAddr\": \"::\"}}";

    assert_int_equal(cli_state_parse(ok, strlen(ok), &st, err, sizeof(err)), 0);
    assert_int_equal(st.pid, 1234);
    assert_int_equal(st.port, 17871);
    assert_string_equal(st.bind_addr, "::");
    assert_string_equal(st.mountpoint, "/mnt/oss");

    static const struct {
        const char *text, *err;
    } bad[] = {
        {"", "not JSON"},
        {"[1]", "not a JSON object"},
        {"{\"pid\": \"x\", \"options\": {\"g_server_Port\": 1}}", "'pid'"},
        {"{\"pid\": -1, \"options\": {\"g_server_Port\": 1}}", "'pid'"},
        {"{\"mountpoint\": 5, \"options\": {\"g_server_Port\": 1}}", "'mountpoint'"},
        {"{\"options\": 5}", "no 'options'"},
        {"{\"options\": {}}", "no 'g_server_Port'"},
        {"{\"options\": {\"g_server_Port\": 65536}}", "not a port"},
        {"{\"options\": {\"g_server_Port\": -1}}", "not a port"},
        {"{\"options\": {\"g_server_Port\": \"99999\"}}", "not a port"},
        {"{\"options\": {\"g_server_Port\": \"12a\"}}", "not a port"},
        {"{\"options\": {\"g_server_Port\": 1, \"g_server_BindAddr\": 7}}", "BindAddr"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(cli_state_parse(bad[i].text, strlen(bad[i].text), &st, err, sizeof(err)),
                         -EINVAL);
        if (strstr(err, bad[i].err) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].err);
    }
    const char *s = "{\"options\": {\"g_server_Port\": \"8080\"}}";
    assert_int_equal(cli_state_parse(s, strlen(s), &st, err, sizeof(err)), 0);
    assert_int_equal(st.port, 8080);
    assert_string_equal(st.bind_addr, "");
    assert_int_equal(st.pid, 0);
}

static void test_connect_host(void **state)
{
    char h[80];
    assert_int_equal(cli_connect_host("", h, sizeof(h)), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(cli_connect_host("0.0.0.0", h, sizeof(h)), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(cli_connect_host("10.1.2.3", h, sizeof(h)), 0);
    assert_string_equal(h, "10.1.2.3");
    assert_int_equal(cli_connect_host("::", h, sizeof(h)), 0);
    assert_string_equal(h, "[::1]");
    assert_int_equal(cli_connect_host("0:0::0", h, sizeof(h)), 0);
    assert_string_equal(h, "[::1]");
    assert_int_equal(cli_connect_host("fe80::1", h, sizeof(h)), 0);
    assert_string_equal(h, "[fe80::1]");
    assert_int_equal(cli_connect_host("localhost", h, sizeof(h)), -EINVAL);
    assert_int_equal(cli_connect_host("1.2.3.4/8", h, sizeof(h)), -EINVAL);
}

/* ---- answers ------------------------------------------------------------------------------ */

static void test_reply_parse(void **state)
{
    char err[256];
    static const struct {
        const char *text, *err;
    } bad[] = {
        {"<html>", "not JSON"},
        {"[]", "not a JSON object"},
        {"{}", "'ErrorCode'"},
        {"{\"ErrorCode\": \"0\"}", "'ErrorCode'"},
        {"{\"ErrorCode\": 0, \"ErrorMessage\": 1}", "'ErrorMessage'"},
        {"{\"ErrorCode\": 0, \"Results\": {}}", "'Results'"},
        {"{\"ErrorCode\": 0, \"Results\": [1]}", "Results[0]"},
        {"{\"ErrorCode\": 0, \"Results\": [{}, {\"ErrorCode\": \"x\"}]}", "Results[1]"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_null(cli_reply_parse(bad[i].text, strlen(bad[i].text), err, sizeof(err)));
        if (strstr(err, bad[i].err) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].err);
    }
    json_t *j = parse_ok("{\"ErrorCode\": 0, \"Results\": [{\"ErrorCode\": 0}, {}]}");
    assert_false(cli_reply_failed(j));
    json_decref(j);
    j = parse_ok("{\"ErrorCode\": 0, \"Results\": [{\"ErrorCode\": 0}, {\"ErrorCode\": 2}]}");
    assert_true(cli_reply_failed(j));
    json_decref(j);
    j = parse_ok("{\"ErrorCode\": 1}");
    assert_true(cli_reply_failed(j));
    json_decref(j);
}

static void test_sanitize(void **state)
{
    char out[32];
    cli_sanitize("a\x1b[2Jb\x7f\tc", out, sizeof(out));
    assert_string_equal(out, "a?[2Jb??c");
    cli_sanitize("x\xc2\x9b"
                 "31m",
                 out, sizeof(out));
    assert_string_equal(out, "x?31m");
    cli_sanitize("caf\xc3\xa9", out, sizeof(out));
    assert_string_equal(out, "caf\xc3\xa9");
    /* a cut never leaves half of a UTF-8 sequence */
    cli_sanitize("caf\xc3\xa9", out, 5);
    assert_string_equal(out, "caf");
    cli_sanitize("abcdef", out, 4);
    assert_string_equal(out, "abc");
    cli_sanitize(NULL, out, sizeof(out));
    assert_string_equal(out, "");
}

static void test_human_size(void **state)
{
    char out[32];
    cli_human_size(0, out, sizeof(out));
    assert_string_equal(out, "0 B");
    cli_human_size(1023, out, sizeof(out));
    assert_string_equal(out, "1023 B");
    cli_human_size(1536, out, sizeof(out));
    assert_string_equal(out, "1.5 KiB");
    cli_human_size(107374182400ULL, out, sizeof(out));
    assert_string_equal(out, "100.0 GiB");
    cli_human_size(UINT64_MAX, out, sizeof(out));
    assert_string_equal(out, "16.0 EiB");
}

static void test_print_tier(void **state)
{
    struct capture c;
    char err[256];
    json_t *j = parse_ok(
        "{\"ErrorCode\": 0, \"ErrorMessage\": \"\", \"Results\": [{\"ErrorCode\": 0, \"Location\": "
        "\"127.0.0.1:17871\", \"tier_root_read_source_bytes\": 10, \"tier_root_read_source\": 9, "
        "\"tier_direct_read_bytes\": 8, \"tier_direct_read\": 7, \"tier_read_miss_bytes\": 6, "
        "\"tier_read_miss\": 5, \"tier_read_hit_bytes\": 4, \"tier_read_hit\": 3, "
        "\"tier_read_bytes\": 2, \"tier_read\": 1}]}");

    cap_open(&c);
    assert_int_equal(cli_print_tier(c.f, j, err, sizeof(err)), 0);
    /* the seed's order, whatever the answer's */
    assert_string_equal(cap_text(&c), "tier_read 1\ntier_read_bytes 2\ntier_read_hit 3\n"
                                      "tier_read_hit_bytes 4\ntier_read_miss 5\n"
                                      "tier_read_miss_bytes 6\ntier_direct_read 7\n"
                                      "tier_direct_read_bytes 8\ntier_root_read_source 9\n"
                                      "tier_root_read_source_bytes 10\n");
    cap_close(&c);
    json_decref(j);

    j = parse_ok("{\"ErrorCode\": 0, \"Results\": [{\"tier_read\": 1, \"tier_read_bytes\": 2.5}]}");
    cap_open(&c);
    assert_int_equal(cli_print_tier(c.f, j, err, sizeof(err)), -EINVAL);
    assert_string_equal(cap_text(&c), "");
    assert_non_null(strstr(err, "'tier_read_bytes'"));
    cap_close(&c);
    json_decref(j);
}

static void test_print_results(void **state)
{
    struct capture o, e;
    json_t *j = parse_ok("{\"ErrorCode\": 0, \"Results\": [{\"ErrorCode\": 0, \"Path\": \"a\"}, "
                         "{\"ErrorCode\": 0, \"Path\": \"\"}, {\"ErrorCode\": 22, \"Path\": "
                         "\"/x\", \"ErrorMessage\": \"absolute\"}]}");
    cap_open(&o);
    cap_open(&e);
    assert_int_equal(cli_print_results(o.f, e.f, j, "load"), 1);
    assert_string_equal(cap_text(&o), "warm-up of 'a' started\nwarm-up of the root started\n");
    assert_string_equal(cap_text(&e), CLI_PROGRAM ": cannot start the warm-up of '/x': absolute\n");
    cap_close(&o);
    cap_close(&e);
    json_decref(j);

    /* a top-level error alone is printed too */
    j = parse_ok("{\"ErrorCode\": 3, \"ErrorMessage\": \"no block cache\", \"Results\": []}");
    cap_open(&o);
    cap_open(&e);
    assert_int_equal(cli_print_results(o.f, e.f, j, "cancel"), 1);
    assert_string_equal(cap_text(&o), "");
    assert_string_equal(cap_text(&e),
                        CLI_PROGRAM ": the daemon answered error 3: no block cache\n");
    cap_close(&o);
    cap_close(&e);
    json_decref(j);
}

static const char stat_answer[] =
    "{\"ErrorCode\": 0, \"ErrorMessage\": \"Request processed\", \"Results\": ["
    "{\"ErrorCode\": 0, \"Path\": \"file100G\", \"TaskInfos\": [{\"CompletedSize\": 13898874880, "
    "\"ErrorCode\": 0, \"ErrorMessage\": \"\", \"IsDir\": false, \"Path\": \"file100G\", "
    "\"Pattern\": \"\", \"Status\": \"running\", \"SubmitTime\": 1765274023424073, "
    "\"TotalSize\": 107374182400}]},"
    "{\"ErrorCode\": 0, \"Path\": \"d\", \"TaskInfos\": [{\"CompletedSize\": 0, \"IsDir\": true, "
    "\"Pattern\": \"x$\", \"Status\": \"failed\", \"SubmitTime\": 1765274024000000, "
    "\"TotalSize\": 0, \"ErrorMessage\": \"not found\"}]},"
    "{\"ErrorCode\": 0, \"Path\": \"none\", \"TaskInfos\": []},"
    "{\"ErrorCode\": 2, \"Path\": \"gone\", \"ErrorMessage\": \"no task\", \"TaskInfos\": []},"
    "{\"ErrorCode\": 22, \"Path\": \"../x\", \"ErrorMessage\": \"escapes\"}]}";

static void test_print_stat(void **state)
{
    struct capture o, e;
    char err[256];
    json_t *j = parse_ok(stat_answer);

    setenv("TZ", "UTC", 1);
    tzset();
    cap_open(&o);
    cap_open(&e);
    assert_int_equal(cli_print_stat(o.f, e.f, j, "600", err, sizeof(err)), 0);
    assert_string_equal(
        cap_text(&o),
        "Path      Status   Completed / Total     Progress  Submit time          Pattern  Error\n"
        "file100G  running  12.9 GiB / 100.0 GiB  12.9%     2025-12-09 09:53:43  -\n"
        "d/        failed   0 B / 0 B             -         2025-12-09 09:53:44  x$       not "
        "found\n"
        "no warm-up task of 'none' submitted in the last 600 s\n"
        "no warm-up task of 'gone' submitted in the last 600 s\n");
    assert_string_equal(cap_text(&e), CLI_PROGRAM ": cannot stat the warm-up of '../x': escapes\n");
    cap_close(&o);
    cap_close(&e);

    struct cli_task *t;
    long n = cli_stat_tasks(j, &t, err, sizeof(err));
    assert_int_equal(n, 2);
    assert_string_equal(t[0].path, "file100G");
    assert_string_equal(t[1].path, "d"); /* from the result when the task does not say */
    assert_true(t[1].is_dir);
    assert_int_equal(t[0].submit_us, 1765274023424073ULL);
    assert_false(cli_task_finished(t[0].status));
    assert_true(cli_task_finished(t[1].status));
    free(t);
    json_decref(j);

    j = parse_ok("{\"ErrorCode\": 0, \"Results\": [{\"TaskInfos\": [{\"TotalSize\": -1}]}]}");
    assert_int_equal(cli_stat_tasks(j, &t, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "'TotalSize'"));
    cap_open(&o);
    cap_open(&e);
    assert_int_equal(cli_print_stat(o.f, e.f, j, NULL, err, sizeof(err)), -EINVAL);
    cap_close(&o);
    cap_close(&e);
    json_decref(j);
    j = parse_ok("{\"ErrorCode\": 0, \"Results\": [{\"TaskInfos\": {}}]}");
    assert_int_equal(cli_stat_tasks(j, &t, err, sizeof(err)), -EINVAL);
    json_decref(j);
}

static void test_task_progress(void **state)
{
    struct cli_task t = {.completed = 50, .total = 200};
    char sizes[64], pct[16];
    strcpy(t.status, "running");
    cli_task_progress(&t, sizes, sizeof(sizes), pct, sizeof(pct));
    assert_string_equal(sizes, "50 B / 200 B");
    assert_string_equal(pct, "25.0%");
    t.completed = 300; /* never above 100% */
    cli_task_progress(&t, sizes, sizeof(sizes), pct, sizeof(pct));
    assert_string_equal(pct, "100.0%");
    t.total = t.completed = 0;
    cli_task_progress(&t, sizes, sizeof(sizes), pct, sizeof(pct));
    assert_string_equal(pct, "-");
    strcpy(t.status, "completed");
    cli_task_progress(&t, sizes, sizeof(sizes), pct, sizeof(pct));
    assert_string_equal(pct, "100.0%");
}

/* ---- /v1/cluster -------------------------------------------------------------------------- */

/* What mgmt/api.c answers for a cluster of four seen from node 2 (keys in its order). */
static const char cluster_answer[] =
    "{\"ErrorCode\": 0, \"ErrorMessage\": \"Request processed\", \"Results\": [{"
    "\"ErrorCode\": 0, \"ErrorMessage\": \"\", \"Location\": \"127.0.0.1:17871\", "
    "\"Rootlist\": \"/etc/efc/rootlist\", \"RootlistHash\": \"0123456789abcdef\", "
    "\"LoadedTime\": 1765274000, \"Self\": \"2:127.0.0.22:17980\", \"Role\": \"root+agent\", "
    "\"Authentication\": true, \"MemberCount\": 4, \"MismatchedPeers\": 1, \"Members\": ["
    "{\"Name\": \"1:127.0.0.21:17980\", \"Id\": \"1\", \"Address\": \"127.0.0.21:17980\", "
    "\"Self\": false, \"Role\": \"root+agent\", \"State\": \"up\", "
    "\"RootlistHash\": \"0123456789abcdef\", \"RootlistMatches\": true, \"LatencyMs\": 1.25, "
    "\"Requests\": 120, \"Errors\": 1, \"Bytes\": 3145728, \"LastError\": \"timeout\"},"
    "{\"Name\": \"2:127.0.0.22:17980\", \"Id\": \"2\", \"Address\": \"127.0.0.22:17980\", "
    "\"Self\": true, \"Role\": \"root+agent\", \"State\": \"self\", "
    "\"RootlistHash\": \"0123456789abcdef\", \"RootlistMatches\": true, \"LatencyMs\": 0.0, "
    "\"Requests\": 0, \"Errors\": 0, \"Bytes\": 0, \"LastError\": \"\"},"
    "{\"Name\": \"3:127.0.0.23:17980\", \"Id\": \"3\", \"Address\": \"127.0.0.23:17980\", "
    "\"Self\": false, \"Role\": \"unknown\", \"State\": \"down\", \"RootlistHash\": \"\", "
    "\"RootlistMatches\": true, \"LatencyMs\": 0.0, \"Requests\": 5, \"Errors\": 5, "
    "\"Bytes\": 0, \"LastError\": \"connect: Connection refused\"},"
    "{\"Name\": \"4:127.0.0.24:17980\", \"Id\": \"4\", \"Address\": \"127.0.0.24:17980\", "
    "\"Self\": false, \"Role\": \"agent\", \"State\": \"up\", "
    "\"RootlistHash\": \"00000000deadbeef\", \"RootlistMatches\": false, \"LatencyMs\": 250, "
    "\"Requests\": 7, \"Errors\": 0, \"Bytes\": 7340032, \"LastError\": \"\"}]}]}";

static void test_print_cluster(void **state)
{
    struct capture c;
    char err[256];
    json_t *j = parse_ok(cluster_answer);

    setenv("TZ", "UTC", 1);
    tzset();
    cap_open(&c);
    assert_int_equal(cli_print_cluster(c.f, j, err, sizeof(err)), 0);
    assert_string_equal(
        cap_text(&c), "rootlist        /etc/efc/rootlist\n"
                      "hash            0123456789abcdef\n"
                      "loaded          2025-12-09 09:53:20\n"
                      "self            2:127.0.0.22:17980\n"
                      "role            root+agent\n"
                      "authentication  on\n"
                      "members         4\n"
                      "mismatched      1 (see the Rootlist column)\n"
                      "\n"
                      "Name                Role        State  Latency   Requests  Errors  Bytes    "
                      "Rootlist                    Last error\n"
                      "1:127.0.0.21:17980  root+agent  up     1.25 ms   120       1       3.0 MiB  "
                      "same                        timeout\n"
                      "2:127.0.0.22:17980  root+agent  self   -         -         -       -        "
                      "same\n"
                      "3:127.0.0.23:17980  unknown     down   -         5         5       0 B      "
                      "-                           connect: Connection refused\n"
                      "4:127.0.0.24:17980  agent       up     250.0 ms  7         0       7.0 MiB  "
                      "differs (00000000deadbeef)\n");
    cap_close(&c);
    json_decref(j);
}

/* An answer of one result around MEMBERS (a JSON array, or anything for the wrong-type cases)
 * and the result's other fields EXTRA (", \"Key\": value..." or ""). */
static json_t *cluster_with(const char *extra, const char *members)
{
    char text[8192];
    snprintf(text, sizeof(text), "{\"ErrorCode\": 0, \"Results\": [{\"ErrorCode\": 0%s%s%s}]}",
             extra, members ? ", \"Members\": " : "", members ? members : "");
    return parse_ok(text);
}

static void test_print_cluster_missing_fields(void **state)
{
    struct capture c;
    char err[256];

    /* a member with nothing said: every cell "-", the result's fields too */
    json_t *j = cluster_with("", "[{}]");
    cap_open(&c);
    assert_int_equal(cli_print_cluster(c.f, j, err, sizeof(err)), 0);
    assert_string_equal(cap_text(&c),
                        "rootlist        -\n"
                        "hash            -\n"
                        "loaded          -\n"
                        "self            -\n"
                        "role            -\n"
                        "authentication  -\n"
                        "members         1\n"
                        "mismatched      0\n"
                        "\n"
                        "Name  Role  State  Latency  Requests  Errors  Bytes  Rootlist  "
                        "Last error\n"
                        "-     -     -      -        -         -       -      -\n");
    cap_close(&c);
    json_decref(j);

    /* no members; this node not listed; authentication off */
    j = cluster_with(", \"Self\": \"\", \"Authentication\": false, \"MemberCount\": 0", "[]");
    cap_open(&c);
    assert_int_equal(cli_print_cluster(c.f, j, err, sizeof(err)), 0);
    assert_non_null(
        strstr(cap_text(&c), "self            none (this node is not in the rootlist)\n"));
    assert_non_null(strstr(cap_text(&c), "authentication  off\n"));
    assert_non_null(strstr(cap_text(&c), "members         0\nmismatched      0\n\nno members\n"));
    cap_close(&c);
    json_decref(j);

    /* an answer without RootlistMatches (an older daemon): judged by the hashes, and counted
       as mismatched when MismatchedPeers is absent; the daemon listed 2 of 5000 members;
       integer and huge latencies */
    j = cluster_with(", \"RootlistHash\": \"aaaa\", \"MemberCount\": 5000",
                     "[{\"Name\": \"p\", \"RootlistHash\": \"bbbb\", \"LatencyMs\": 3}, "
                     "{\"Name\": \"q\", \"RootlistHash\": \"aaaa\", \"LatencyMs\": 2e7}]");
    cap_open(&c);
    assert_int_equal(cli_print_cluster(c.f, j, err, sizeof(err)), 0);
    assert_non_null(strstr(cap_text(&c), "members         5000\n"));
    assert_non_null(strstr(cap_text(&c), "mismatched      1 (see the Rootlist column)\n"));
    assert_non_null(strstr(cap_text(&c), "p     -     -      3.00 ms   -         -       -      "
                                         "differs (bbbb)\n"));
    assert_non_null(strstr(cap_text(&c), "q     -     -      2e+07 ms  -         -       -      "
                                         "same\n"));
    assert_non_null(strstr(cap_text(&c), "\n... and 4998 more members not shown\n"));
    cap_close(&c);
    json_decref(j);

    /* the fields at the top level, as cli_print_tier accepts its counters */
    j = parse_ok("{\"ErrorCode\": 0, \"Role\": \"agent\", \"Members\": []}");
    cap_open(&c);
    assert_int_equal(cli_print_cluster(c.f, j, err, sizeof(err)), 0);
    assert_non_null(strstr(cap_text(&c), "role            agent\n"));
    cap_close(&c);
    json_decref(j);
}

static void test_print_cluster_wrong_types(void **state)
{
    static const struct {
        const char *extra, *members, *err;
    } bad[] = {
        {"", NULL, "no array 'Members'"},
        {"", "{}", "no array 'Members'"},
        {"", "null", "no array 'Members'"},
        {", \"Rootlist\": [\"/etc/efc/rootlist\"]", "[]", "'Rootlist' is not a string"},
        {", \"RootlistHash\": 81985529216486895", "[]", "'RootlistHash' is not a string"},
        {", \"Self\": null", "[]", "'Self' is not a string"},
        {", \"Role\": 0", "[]", "'Role' is not a string"},
        {", \"Authentication\": \"on\"", "[]", "'Authentication' is not a boolean"},
        {", \"LoadedTime\": 1.5", "[]", "'LoadedTime' is not a non-negative integer"},
        {", \"MemberCount\": -1", "[]", "'MemberCount' is not a non-negative integer"},
        {", \"MismatchedPeers\": \"1\"", "[]", "'MismatchedPeers' is not a non-negative"},
        {"", "[1]", "'Members[0]' is not an object"},
        {"", "[{}, {\"Requests\": \"7\"}]", "'Members[1].Requests' is not a non-negative integer"},
        {"", "[{\"Errors\": -2}]", "'Members[0].Errors' is not a non-negative integer"},
        {"", "[{\"Bytes\": 1e3}]", "'Members[0].Bytes' is not a non-negative integer"},
        {"", "[{\"LatencyMs\": \"fast\"}]", "'Members[0].LatencyMs' is not a non-negative number"},
        {"", "[{\"LatencyMs\": -0.5}]", "'Members[0].LatencyMs' is not a non-negative number"},
        {"", "[{\"Name\": 5}]", "'Members[0].Name' is not a string"},
        {"", "[{\"State\": {}}]", "'Members[0].State' is not a string"},
        {"", "[{\"Self\": 1}]", "'Members[0].Self' is not a boolean"},
        {"", "[{\"RootlistMatches\": \"true\"}]", "'Members[0].RootlistMatches' is not a boolean"},
        {"", "[{\"LastError\": false}]", "'Members[0].LastError' is not a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct capture c;
        char err[256] = "";
        json_t *j = cluster_with(bad[i].extra, bad[i].members);
        cap_open(&c);
        assert_int_equal(cli_print_cluster(c.f, j, err, sizeof(err)), -EINVAL);
        if (strstr(err, bad[i].err) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].err);
        if (strcmp(cap_text(&c), "") != 0)
            fail_msg("case %zu: printed '%s'", i, cap_text(&c));
        cap_close(&c);
        json_decref(j);
    }
}

static void test_print_cluster_hostile_strings(void **state)
{
    struct capture c;
    char err[256];

    /* terminal escapes (C0, DEL, C1) in every string the daemon sends become '?' */
    json_t *j = cluster_with(", \"Rootlist\": \"/etc/\\u001b[2Jrl\", \"Self\": \"a\\nb\", "
                             "\"Role\": \"x\\u0007\", \"RootlistHash\": \"h\\u007f\"",
                             "[{\"Name\": \"evil\\u009b31mname\\\"q\\\\\", \"Role\": \"\\r\", "
                             "\"State\": \"up\\u0001\", \"RootlistHash\": \"h\\u007f\", "
                             "\"LastError\": \"line1\\nline2\\t\\u001b]0;title\\u0007\"}]");
    cap_open(&c);
    assert_int_equal(cli_print_cluster(c.f, j, err, sizeof(err)), 0);
    const char *t = cap_text(&c);
    for (const char *p = t; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\n') || *p == 0x7f ||
            ((unsigned char)p[0] == 0xc2 && (unsigned char)p[1] >= 0x80 &&
             (unsigned char)p[1] <= 0x9f))
            fail_msg("control byte 0x%02x at %zu in '%s'", (unsigned char)*p, (size_t)(p - t), t);
    assert_non_null(strstr(t, "rootlist        /etc/?[2Jrl\n"));
    assert_non_null(strstr(t, "self            a?b\n"));
    assert_non_null(strstr(t, "role            x?\n"));
    assert_non_null(strstr(t, "evil?31mname\"q\\  ?     up?  "));
    assert_non_null(strstr(t, "line1?line2??]0;title?\n"));
    assert_int_equal(strcmp(strrchr(t, '\n') - 1, "?\n"), 0);
    cap_close(&c);
    json_decref(j);

    /* strings are cut at CLI_MAX_FIELD bytes, never inside a UTF-8 sequence */
    size_t n = 3 * CLI_MAX_FIELD;
    char *big = malloc(n * 2 + 256), *name = malloc(n + 1);
    assert_non_null(big);
    assert_non_null(name);
    memset(name, 'n', n);
    name[n] = '\0';
    name[CLI_MAX_FIELD - 2] = '\xc3'; /* an e-acute straddling the cut */
    name[CLI_MAX_FIELD - 1] = '\xa9';
    snprintf(big, n * 2 + 256,
             "{\"ErrorCode\": 0, \"Results\": [{\"Rootlist\": \"%s\", \"Members\": [{\"Name\": "
             "\"%s\"}]}]}",
             name, name);
    j = parse_ok(big);
    cap_open(&c);
    assert_int_equal(cli_print_cluster(c.f, j, err, sizeof(err)), 0);
    t = cap_text(&c);
    const char *line = strstr(t, "rootlist        ");
    assert_non_null(line);
    /* 16 columns of label, then CLI_MAX_FIELD - 2 bytes of 'n' (the e-acute did not fit) */
    assert_int_equal(strchr(line, '\n') - line, 16 + CLI_MAX_FIELD - 2);
    const char *row = strstr(t, "\nnnnn");
    assert_non_null(row);
    assert_int_equal(strspn(row + 1, "n"), CLI_MAX_FIELD - 2);
    assert_int_equal(row[1 + CLI_MAX_FIELD - 2], ' ');
    cap_close(&c);
    json_decref(j);
    free(big);
    free(name);

    /* past CLI_MAX_MEMBERS members, the rest is counted, not shown */
    size_t many = CLI_MAX_MEMBERS + 4;
    json_t *members = json_array();
    for (size_t i = 0; i < many; i++) {
        char nm[32];
        snprintf(nm, sizeof(nm), "%zu:10.0.%zu.%zu:17980", i, i / 256, i % 256);
        json_array_append_new(members, json_pack("{s:s, s:s}", "Name", nm, "State", "up"));
    }
    j = json_pack("{s:i, s:[{s:o}]}", "ErrorCode", 0, "Results", "Members", members);
    assert_non_null(j);
    cap_open(&c);
    assert_int_equal(cli_print_cluster(c.f, j, err, sizeof(err)), 0);
    t = cap_text(&c);
    size_t lines = 0;
    for (const char *p = t; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 9 + 1 + CLI_MAX_MEMBERS + 1);
    assert_non_null(strstr(t, "members         4100\n"));
    assert_non_null(strstr(t, "\n4095:10.0.15.255:17980 "));
    assert_null(strstr(t, "\n4096:"));
    assert_non_null(strstr(t, "\n... and 4 more members not shown\n"));
    cap_close(&c);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mountinfo_exact_escaped_and_stacked),
        cmocka_unit_test(test_mountinfo_enclosing),
        cmocka_unit_test(test_mountinfo_nul_and_empty),
        cmocka_unit_test(test_path_lexical),
        cmocka_unit_test(test_state_path),
        cmocka_unit_test(test_state_parse),
        cmocka_unit_test(test_connect_host),
        cmocka_unit_test(test_reply_parse),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_human_size),
        cmocka_unit_test(test_print_tier),
        cmocka_unit_test(test_print_results),
        cmocka_unit_test(test_print_stat),
        cmocka_unit_test(test_task_progress),
        cmocka_unit_test(test_print_cluster),
        cmocka_unit_test(test_print_cluster_missing_fields),
        cmocka_unit_test(test_print_cluster_wrong_types),
        cmocka_unit_test(test_print_cluster_hostile_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
