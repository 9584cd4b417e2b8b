"""tests/integration/cli/test_cli.py - aliyun-alinas-efc-cli against a fake management server.

No mount and no root: the "mount point" is a temporary directory, a fake mountinfo file (the CLI's
test hook EFC_CLI_MOUNTINFO) says it is a fuse.aliyun-alinas-efc mount, a fake state file in a
temporary EFC_STATE_DIR gives the port of an http.server bound by the test to 127.0.0.1 (random
port). The server answers in the seed's JSON shapes and records every query, so the tests check
both what the CLI sends (parameters, their encoding) and what it prints and exits with. The
progress display is driven through a pseudo-terminal. End-to-end tests against a real mount live
with the mount tests.

Environment: EFC_CLI (the binary; ctest sets it), else build/hE/cli/aliyun-alinas-efc-cli.
Standard library only.
"""

import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import fcntl
import threading
import time
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
CLI = os.path.abspath(os.environ.get("EFC_CLI") or os.path.join(SOURCE_DIR, "build", "hE", "cli", "aliyun-alinas-efc-cli"))
FSTYPE = "fuse.aliyun-alinas-efc"
RUN_TIMEOUT = 30

TIER_NAMES = [
    "tier_read", "tier_read_bytes", "tier_read_hit", "tier_read_hit_bytes", "tier_read_miss",
    "tier_read_miss_bytes", "tier_direct_read", "tier_direct_read_bytes", "tier_root_read_source",
    "tier_root_read_source_bytes",
]


def envelope(results, code=0, message="Request processed"):
    return {"ErrorCode": code, "ErrorMessage": message, "Results": results}


def member(name, state, role="root+agent", rootlist_hash="0123456789abcdef", matches=True,
           latency=0.0, requests=0, errors=0, nbytes=0, last_error="", self=False):
    """A member of /v1/cluster, keys in mgmt/api.c's order."""
    node_id, _, address = name.partition(":")
    return {"Name": name, "Id": node_id, "Address": address, "Self": self, "Role": role,
            "State": state, "RootlistHash": rootlist_hash, "RootlistMatches": matches,
            "LatencyMs": latency, "Requests": requests, "Errors": errors, "Bytes": nbytes,
            "LastError": last_error}


def cluster_result(location, members, **over):
    r = {"ErrorCode": 0, "ErrorMessage": "", "Location": location, "Rootlist": "/etc/efc/rootlist",
         "RootlistHash": "0123456789abcdef", "LoadedTime": 1765274000,
         "Self": "2:127.0.0.22:17980", "Role": "root+agent", "Authentication": True,
         "MemberCount": len(members),
         "MismatchedPeers": sum(1 for m in members if not m["RootlistMatches"]), "Members": members}
    r.update(over)
    return r


# What the daemon answers on a mount that is not distributed (mgmt/api.c).
NOT_DISTRIBUTED = (501, envelope([], 95, "this mount is not in distributed mode "
                                 "(g_tier_DadiIsDistributed with a cache capacity, or "
                                 "g_tier_DadiRootClientType=2)"))


class FakeServer:
    """A management API on 127.0.0.1: ROUTES maps a path to fn(query) -> (status, body)."""

    def __init__(self, host="127.0.0.1"):
        self.requests = []  # (path, raw query, parsed query)
        self.lock = threading.Lock()
        self.routes = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
                with outer.lock:
                    outer.requests.append((parts.path, parts.query, q))
                    fn = outer.routes.get(parts.path)
                if fn is None:
                    status, body = 404, envelope([], 404, "unknown endpoint")
                else:
                    status, body = fn(q)
                if not isinstance(body, (bytes, str)):
                    body = json.dumps(body)
                if isinstance(body, str):
                    body = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        server_class = ThreadingHTTPServer
        if ":" in host:
            server_class = type("Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        self.httpd = server_class((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.location = ("[%s]:%d" if ":" in host else "%s:%d") % (host, self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def paths(self):
        with self.lock:
            return [r[0] for r in self.requests]

    def queries(self, path):
        with self.lock:
            return [r for r in self.requests if r[0] == path]


def mountinfo_escape(path):
    return (path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")
            .replace("\n", "\\012"))


class CliTest(unittest.TestCase):
    def setUp(self):
        self.assertTrue(os.access(CLI, os.X_OK), "no CLI binary at %s (set EFC_CLI)" % CLI)
        self.tmp = tempfile.TemporaryDirectory(prefix="efc-cli-test-")
        self.addCleanup(self.tmp.cleanup)
        self.server = FakeServer()
        self.addCleanup(self.server.stop)
        self.state_dir = os.path.join(self.tmp.name, "state")
        os.mkdir(self.state_dir)
        self.mnt = os.path.join(self.tmp.name, "mnt oss")  # a space: mountinfo escapes it
        os.mkdir(self.mnt)
        self.mountinfo = os.path.join(self.tmp.name, "mountinfo")
        self.write_mountinfo([("/", "ext4"), (self.mnt, FSTYPE)])
        self.write_state()
        self.install_default_routes()

    # ---- fixtures

    def write_mountinfo(self, mounts):
        with open(self.mountinfo, "w") as f:
            for i, (mp, fstype) in enumerate(mounts):
                f.write("%d 1 0:%d / %s rw,relatime shared:%d - %s src rw\n"
                        % (20 + i, 40 + i, mountinfo_escape(mp), i + 1, fstype))

    def state_path(self, mp=None):
        return os.path.join(self.state_dir, (mp or self.mnt).replace("/", "_") + ".json")

    def write_state(self, port=None, bind="127.0.0.1", pid=None, mountpoint=None, raw=None):
        with open(self.state_path(), "w") as f:
            if raw is not None:
                f.write(raw)
                return
            json.dump({
                "version": 1, "pid": os.getpid() if pid is None else pid,
                "source": "testbucket.oss-cn-hangzhou.aliyuncs.com:/",
                "mountpoint": self.mnt if mountpoint is None else mountpoint, "protocol": "oss",
                "passwd_file": "/etc/passwd-oss", "start_time": 1765274000,
                "options": {"g_server_Port": self.server.port if port is None else port,
                            "g_server_BindAddr": bind, "g_tier_EnableClusterCache": True},
                "explicit": ["g_server_Port"],
            }, f, indent=2)

    def install_default_routes(self):
        loc = self.server.location

        def per_path(msg):
            def fn(q):
                paths = q["target_path"][0].split(",")
                return 200, envelope([{"ErrorCode": 0, "ErrorMessage": msg % p, "Location": loc,
                                       "Path": p} for p in paths])
            return fn

        def tier(q):
            r = {"ErrorCode": 0, "ErrorMessage": "", "Location": loc}
            for i, n in enumerate(TIER_NAMES):
                r[n] = (i + 1) * 1000 + i
            return 200, envelope([r])

        ok = (200, envelope([{"ErrorCode": 0, "ErrorMessage": "", "Location": loc}]))
        self.server.routes.update({
            "/v1/warmup/load": per_path("The warm up (%s) is processing in the background."),
            "/v1/warmup/cancel": per_path("canceled %s"),
            "/v1/warmup/stat": lambda q: (200, envelope([
                {"ErrorCode": 2, "ErrorMessage": "no warm-up task for path '%s'" % p, "Location": loc,
                 "Path": p, "TaskInfos": []} for p in q["target_path"][0].split(",")])),
            "/v1/tier": tier,
            "/v1/tier/clear": lambda q: ok,
            "/v1/action/clear_readdir_cache": lambda q: ok,
            "/v1/action/clear_metadata_cache": lambda q: ok,
            "/v1/cluster": lambda q: (200, envelope([cluster_result(loc, [
                member("1:127.0.0.21:17980", "up", latency=1.25, requests=120, errors=1,
                       nbytes=3 << 20, last_error="timeout after 2000 ms"),
                member("2:127.0.0.22:17980", "self", self=True),
                member("3:127.0.0.23:17980", "down", role="unknown", rootlist_hash="",
                       requests=5, errors=5,
                       last_error="connect to 127.0.0.23:17980: Connection refused"),
                member("4:127.0.0.24:17980", "up", role="agent", rootlist_hash="00000000deadbeef",
                       matches=False, latency=0.5, requests=7, nbytes=7 << 20),
            ])])),
            "/v1/action/reload_rootlist": lambda q: (200, envelope([{
                "ErrorCode": 0, "Location": loc,
                "ErrorMessage": "4 members, hash 0123456789abcdef, this node 2:127.0.0.22:17980"}])),
        })

    def env(self, **extra):
        e = dict(os.environ)
        for k in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
            e.pop(k, None)
        e["http_proxy"] = "http://127.0.0.1:9"  # must be ignored: loopback goes direct
        e.update(EFC_STATE_DIR=self.state_dir, EFC_CLI_MOUNTINFO=self.mountinfo, TZ="UTC")
        e.update(extra)
        return e

    def cli(self, *args, env=None, cwd=None):
        p = subprocess.run([CLI] + list(args), env=env or self.env(), cwd=cwd,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=RUN_TIMEOUT)
        return p.returncode, p.stdout, p.stderr

    def m(self, *args, **kw):
        return self.cli("-m", self.mnt, *args, **kw)

    # ---- command line

    def test_help_and_version(self):
        for flag in ("--help", "-h"):
            rc, out, err = self.cli(flag)
            self.assertEqual(rc, 0, err)
            for word in ("-m MOUNTPOINT", "-r warmup/load", "warmup/stat", "warmup/cancel",
                         "--path", "--pattern", "--preceding_time", "-r tier", "-c",
                         "clear_readdir_cache", "clear_metadata_cache", "-r cluster",
                         "reload_rootlist", "Exit status"):
                self.assertIn(word, out)
        rc, out, err = self.cli("--version")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^aliyun-alinas-efc-cli \d+\.\d+")
        self.assertEqual(self.server.paths(), [])

    def test_usage_errors(self):
        cases = [
            ([], "-m MOUNTPOINT is required"),
            (["-m", self.mnt], "-r REQUEST is required"),
            (["-m", self.mnt, "-r", "warmup/bogus", "--path", "a"], "unknown request"),
            (["-m", self.mnt, "-r", "bogus"], "unknown request 'bogus'"),
            (["-m", self.mnt, "-r", "clusters"], "tier, cluster, action)"),
            (["-m", self.mnt, "-r", "warmup/load"], "needs --path"),
            (["-m", self.mnt, "-r", "tier", "--path", "a"], "--path applies"),
            (["-m", self.mnt, "-r", "warmup/stat", "--path", "a", "--pattern", "x"], "--pattern applies"),
            (["-m", self.mnt, "-r", "warmup/load", "--path", "a", "--preceding_time", "5"], "--preceding_time applies"),
            (["-m", self.mnt, "-r", "warmup/stat", "--path", "a", "--preceding_time", "5s"], "not a number"),
            (["-m", self.mnt, "-r", "warmup/stat", "--path", "a", "-c"], "-c applies"),
            (["-m", self.mnt, "-r", "action"], "needs -k"),
            (["-m", self.mnt, "-r", "action", "-k", "drop_everything"],
             "unknown action 'drop_everything' (clear_readdir_cache, clear_metadata_cache, "
             "reload_rootlist)"),
            (["-m", self.mnt, "-r", "action"], "or -k reload_rootlist"),
            (["-m", self.mnt, "-r", "cluster", "-k", "reload_rootlist"], "-k applies"),
            (["-m", self.mnt, "-r", "cluster", "-c"], "-c applies"),
            (["-m", self.mnt, "-r", "cluster", "--path", "a"], "--path applies"),
            (["-m", self.mnt, "-r", "tier", "-k", "clear_readdir_cache"], "-k applies"),
            (["-m", self.mnt, "-r", "tier", "extra"], "unexpected argument 'extra'"),
            (["-m", self.mnt, "-r", "tier", "--bogus"], "unknown option '--bogus'"),
            (["-m", self.mnt, "-r", "tier", "-x"], "unknown option '-x'"),
            (["-m", self.mnt, "-r"], "needs a value"),
            (["-m", self.mnt, "-r", "warmup/stat", "--path", "a", "--path", "b"], "given twice"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                rc, out, err = self.cli(*args)
                self.assertEqual(rc, 2, (out, err))
                self.assertIn(msg, err)
                self.assertIn("--help", err)
        self.assertEqual(self.server.paths(), [])

    # ---- tier and action

    def test_tier_plain_text(self):
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 0, err)
        expect = "".join("%s %d\n" % (n, (i + 1) * 1000 + i) for i, n in enumerate(TIER_NAMES))
        self.assertEqual(out, expect)
        self.assertEqual(self.server.paths(), ["/v1/tier"])

    def test_tier_counters_at_top_level_and_missing(self):
        self.server.routes["/v1/tier"] = lambda q: (200, dict(envelope([]), **{n: 7 for n in TIER_NAMES}))
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines()[0], "tier_read 7")
        body = envelope([{"ErrorCode": 0, "tier_read": 1}])
        self.server.routes["/v1/tier"] = lambda q: (200, body)
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 3)
        self.assertEqual(out, "")
        self.assertIn("'tier_read_bytes'", err)

    def test_tier_clear(self):
        rc, out, err = self.m("-r", "tier", "-c")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "cleared the tier counters\n")
        self.assertEqual(self.server.paths(), ["/v1/tier/clear"])

    def test_actions(self):
        for k, word in (("clear_readdir_cache", "readdir"), ("clear_metadata_cache", "metadata")):
            rc, out, err = self.m("-r", "action", "-k", k)
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, "cleared the %s cache\n" % word)
            self.assertEqual(self.server.paths()[-1], "/v1/action/" + k)

    def test_action_error(self):
        self.server.routes["/v1/action/clear_metadata_cache"] = lambda q: (
            200, envelope([{"ErrorCode": 22, "ErrorMessage": "metadata cache is disabled"}], 22, "failed"))
        rc, out, err = self.m("-r", "action", "-k", "clear_metadata_cache")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("cannot clear_metadata_cache: metadata cache is disabled", err)

    # ---- the distributed cache

    def test_cluster(self):
        rc, out, err = self.m("-r", "cluster")
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "")
        self.assertEqual(self.server.paths(), ["/v1/cluster"])
        self.assertEqual(self.server.queries("/v1/cluster")[0][1], "")  # no parameters
        lines = out.splitlines()
        self.assertEqual(lines[:9], [
            "rootlist        /etc/efc/rootlist",
            "hash            0123456789abcdef",
            "loaded          2025-12-09 09:53:20",  # TZ=UTC
            "self            2:127.0.0.22:17980",
            "role            root+agent",
            "authentication  on",
            "members         4",
            "mismatched      1 (see the Rootlist column)",
            "",
        ])
        header = lines[9]
        for col in ("Name", "Role", "State", "Latency", "Requests", "Errors", "Bytes", "Rootlist",
                    "Last error"):
            self.assertIn(col, header)
        rows = {l.split()[0]: l for l in lines[10:]}
        self.assertEqual(len(lines), 14)
        self.assertEqual(rows["1:127.0.0.21:17980"].split()[1:9],
                         ["root+agent", "up", "1.25", "ms", "120", "1", "3.0", "MiB"])
        self.assertTrue(rows["1:127.0.0.21:17980"].endswith("same                        "
                                                            "timeout after 2000 ms"))
        self.assertEqual(rows["2:127.0.0.22:17980"].split()[1:],
                         ["root+agent", "self", "-", "-", "-", "-", "same"])
        self.assertEqual(rows["3:127.0.0.23:17980"].split()[1:8],
                         ["unknown", "down", "-", "5", "5", "0", "B"])
        self.assertTrue(rows["3:127.0.0.23:17980"].endswith(
            "-                           connect to 127.0.0.23:17980: Connection refused"))
        self.assertEqual(rows["4:127.0.0.24:17980"].split()[1:],
                         ["agent", "up", "0.50", "ms", "7", "0", "7.0", "MiB", "differs",
                          "(00000000deadbeef)"])
        # the columns line up: each row's State starts where the header's does
        col = header.index("State")
        for l in lines[10:]:
            self.assertEqual(l[col - 2:col], "  ")
            self.assertNotEqual(l[col], " ")

    def test_cluster_json(self):
        rc, out, err = self.m("-r", "cluster", "--json")
        self.assertEqual(rc, 0, err)
        j = json.loads(out)
        self.assertEqual(j["Results"][0]["MemberCount"], 4)
        self.assertEqual(list(j["Results"][0])[:4], ["ErrorCode", "ErrorMessage", "Location",
                                                     "Rootlist"])  # the daemon's order kept

    def test_cluster_not_distributed(self):
        self.server.routes["/v1/cluster"] = lambda q: NOT_DISTRIBUTED
        rc, out, err = self.m("-r", "cluster")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertEqual(err, "aliyun-alinas-efc-cli: cannot show the cluster: this mount is not in "
                              "distributed mode (g_tier_DadiIsDistributed with a cache capacity, or "
                              "g_tier_DadiRootClientType=2)\n")
        rc, out, err = self.m("-r", "cluster", "--json")
        self.assertEqual(rc, 1)
        self.assertEqual(json.loads(out)["ErrorCode"], 95)

    def test_cluster_older_daemon(self):
        # a daemon without /v1/cluster answers 404 with ErrorCode ENOENT: said, not a crash
        self.server.routes["/v1/cluster"] = lambda q: (404, envelope(
            [], 2, "unknown path '/v1/cluster': the endpoints are /v1/warmup/load, /v1/tier"))
        rc, out, err = self.m("-r", "cluster")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("cannot show the cluster: unknown path '/v1/cluster'", err)
        self.assertEqual(len(err.splitlines()), 1)

    def test_cluster_malformed_and_hostile(self):
        loc = self.server.location
        self.server.routes["/v1/cluster"] = lambda q: (200, envelope([cluster_result(loc, [
            member("1:127.0.0.21:17980", "up", requests="many")])]))
        rc, out, err = self.m("-r", "cluster")
        self.assertEqual(rc, 3)
        self.assertEqual(out, "")
        self.assertIn("unexpected answer from 127.0.0.1:%d/v1/cluster: answer's "
                      "'Members[0].Requests' is not a non-negative integer" % self.server.port, err)
        self.server.routes["/v1/cluster"] = lambda q: (200, envelope([{"ErrorCode": 0}]))
        rc, out, err = self.m("-r", "cluster")
        self.assertEqual(rc, 3)
        self.assertIn("answer has no array 'Members'", err)
        self.server.routes["/v1/cluster"] = lambda q: (200, envelope([cluster_result(loc, [
            member("evil\x1b[2J\u009b:127.0.0.21:17980", "up\x07",
                   last_error="line\nbreak\x1b]0;title\x07")], Rootlist="/etc/\x1b[31mrl")]))
        rc, out, err = self.m("-r", "cluster")
        self.assertEqual(rc, 0, err)
        for bad in ("\x1b", "\x07", "\u009b"):
            self.assertNotIn(bad, out)
        self.assertIn("rootlist        /etc/?[31mrl\n", out)
        self.assertIn("evil?[2J?:127.0.0.21:17980", out)
        self.assertIn("line?break?]0;title?\n", out)

    def test_reload_rootlist(self):
        rc, out, err = self.m("-r", "action", "-k", "reload_rootlist")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "reloaded the rootlist: 4 members, hash 0123456789abcdef, this node "
                              "2:127.0.0.22:17980\n")
        self.assertEqual(self.server.paths(), ["/v1/action/reload_rootlist"])
        self.assertEqual(self.server.queries("/v1/action/reload_rootlist")[0][1], "")

    def test_reload_rootlist_not_distributed_and_failed(self):
        self.server.routes["/v1/action/reload_rootlist"] = lambda q: (
            501, envelope([], 95, "this mount is not in distributed mode: it has no rootlist"))
        rc, out, err = self.m("-r", "action", "-k", "reload_rootlist")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertEqual(err, "aliyun-alinas-efc-cli: cannot reload the rootlist: this mount is not "
                              "in distributed mode: it has no rootlist\n")
        self.server.routes["/v1/action/reload_rootlist"] = lambda q: (500, envelope(
            [], 13, "reloading the rootlist failed: cannot open rootlist '/etc/efc/rootlist': "
                    "Permission denied: the last membership is kept"))
        rc, out, err = self.m("-r", "action", "-k", "reload_rootlist")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertEqual(len(err.splitlines()), 1)
        self.assertIn("cannot reload the rootlist: reloading the rootlist failed: cannot open "
                      "rootlist '/etc/efc/rootlist': Permission denied", err)

    # ---- warm-up

    def test_load_passes_path_and_pattern(self):
        rc, out, err = self.m("-r", "warmup/load", "--path", "testDir", "--pattern", ".*_2$")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "warm-up of 'testDir' started\n")
        (path, raw, q), = self.server.queries("/v1/warmup/load")
        self.assertEqual(q, {"target_path": ["testDir"], "pattern": [".*_2$"]})
        self.assertIn("pattern=.%2A_2%24", raw)  # percent-encoded on the wire
        # not a terminal: no progress display, no polling
        self.assertEqual(self.server.paths(), ["/v1/warmup/load"])

    def test_load_several_paths_root_and_odd_characters(self):
        rc, out, err = self.m("-r", "warmup/load", "--path", "a b,c&d=e,x+y%z")
        self.assertEqual(rc, 0, err)
        (path, raw, q), = self.server.queries("/v1/warmup/load")
        self.assertEqual(q, {"target_path": ["a b,c&d=e,x+y%z"]})
        self.assertNotIn("&d=", raw)
        self.assertEqual(out.splitlines(), ["warm-up of 'a b' started", "warm-up of 'c&d=e' started",
                                            "warm-up of 'x+y%z' started"])
        rc, out, err = self.m("-r", "warmup/load", "--path", "")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.server.queries("/v1/warmup/load")[-1][2], {"target_path": [""]})
        self.assertEqual(out, "warm-up of the root started\n")

    def test_load_partial_failure(self):
        loc = self.server.location
        self.server.routes["/v1/warmup/load"] = lambda q: (200, envelope([
            {"ErrorCode": 0, "ErrorMessage": "ok", "Location": loc, "Path": "good"},
            {"ErrorCode": 22, "ErrorMessage": "path '/abs' is absolute: give a path relative to the mount",
             "Location": loc, "Path": "/abs"}]))
        rc, out, err = self.m("-r", "warmup/load", "--path", "good,/abs")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "warm-up of 'good' started\n")
        self.assertIn("cannot start the warm-up of '/abs': path '/abs' is absolute", err)

    def test_server_error_json_http_400(self):
        self.server.routes["/v1/warmup/load"] = lambda q: (
            400, envelope([], 400, "bad parameter 'pattern': unmatched ( or \\("))
        rc, out, err = self.m("-r", "warmup/load", "--path", "d", "--pattern", "(")
        self.assertEqual(rc, 1)
        self.assertIn("error 400: bad parameter 'pattern'", err)

    def test_stat_table(self):
        loc = self.server.location
        submit = 1765274023424073
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(submit // 1000000))
        self.server.routes["/v1/warmup/stat"] = lambda q: (200, envelope([
            {"ErrorCode": 0, "ErrorMessage": "Successfully stat the warm up", "Location": loc,
             "Path": "file100G", "TaskInfos": [
                 {"CompletedSize": 13898874880, "ErrorCode": 0, "ErrorMessage": "", "IsDir": False,
                  "Path": "file100G", "Pattern": "", "Status": "running", "SubmitTime": submit,
                  "TotalSize": 107374182400}]},
            {"ErrorCode": 0, "ErrorMessage": "ok", "Location": loc, "Path": "testDir", "TaskInfos": [
                {"CompletedSize": 2048, "ErrorCode": 0, "ErrorMessage": "", "IsDir": True,
                 "Path": "testDir", "Pattern": ".*_2$", "Status": "completed",
                 "SubmitTime": submit + 1000000, "TotalSize": 2048},
                {"CompletedSize": 0, "ErrorCode": 0, "ErrorMessage": "no such file or directory",
                 "IsDir": False, "Path": "testDir", "Pattern": "", "Status": "failed",
                 "SubmitTime": submit - 5000000, "TotalSize": 0}]},
            {"ErrorCode": 0, "ErrorMessage": "ok", "Location": loc, "Path": "", "TaskInfos": [
                {"CompletedSize": 0, "ErrorCode": 0, "ErrorMessage": "", "IsDir": True, "Path": "",
                 "Pattern": "", "Status": "canceled", "SubmitTime": submit, "TotalSize": 0}]},
            # the daemon's answer for a path without a task in the window
            {"ErrorCode": 2, "ErrorMessage": "no warm-up task for path 'none' in the last 3600 seconds",
             "Location": loc, "Path": "none", "TaskInfos": []},
        ]))
        rc, out, err = self.m("-r", "warmup/stat", "--path", "file100G,testDir,,none",
                              "--preceding_time", "3600")
        self.assertEqual(rc, 1, err)  # a path had no task: a script can tell
        self.assertEqual(err, "")
        (path, raw, q), = self.server.queries("/v1/warmup/stat")
        self.assertEqual(q, {"target_path": ["file100G,testDir,,none"], "preceding_time": ["3600"]})
        lines = out.splitlines()
        header = lines[0].split()
        self.assertEqual(lines[0].split("  ")[0], "Path")
        for col in ("Path", "Status", "Completed", "Total", "Progress", "Submit", "Pattern", "Error"):
            self.assertIn(col, header)
        row = lines[1]
        for cell in ("file100G", "running", "12.9 GiB / 100.0 GiB", "12.9%", when, "-"):
            self.assertIn(cell, row)
        self.assertIn("testDir/", lines[2])
        self.assertIn("2.0 KiB / 2.0 KiB", lines[2])
        self.assertIn("100.0%", lines[2])
        self.assertIn(".*_2$", lines[2])
        self.assertIn("failed", lines[3])
        self.assertTrue(lines[3].endswith("no such file or directory"), lines[3])
        self.assertIn("(root)", lines[4])
        self.assertIn("canceled", lines[4])
        # columns line up: every row's Status starts where the header's does
        col = lines[0].index("Status")
        for l in lines[1:5]:
            self.assertEqual(l[col - 2:col], "  ")
            self.assertNotEqual(l[col], " ")
        self.assertEqual(lines[5], "no warm-up task of 'none' submitted in the last 3600 s")
        self.assertEqual(len(lines), 6)

    def test_stat_default_window_and_path_error(self):
        self.server.routes["/v1/warmup/stat"] = lambda q: (200, envelope([
            {"ErrorCode": 22, "ErrorMessage": "path '../x' escapes the mount", "Path": "../x"}], 22, "failed"))
        rc, out, err = self.m("-r", "warmup/stat", "--path", "../x")
        self.assertEqual(rc, 1)
        self.assertIn("cannot stat the warm-up of '../x': path '../x' escapes the mount", err)
        (path, raw, q), = self.server.queries("/v1/warmup/stat")
        self.assertEqual(q, {"target_path": ["../x"]})  # the daemon's default (86400) applies

    def test_stat_no_task(self):
        rc, out, err = self.m("-r", "warmup/stat", "--path", "a,b", "--preceding_time", "0")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "no warm-up task of 'a'\nno warm-up task of 'b'\n")
        self.assertEqual(err, "")
        self.assertEqual(self.server.queries("/v1/warmup/stat")[0][2],
                         {"target_path": ["a,b"], "preceding_time": ["0"]})

    def test_cancel(self):
        rc, out, err = self.m("-r", "warmup/cancel", "--path", "testDir")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "warm-up of 'testDir' canceled\n")
        self.assertEqual(self.server.queries("/v1/warmup/cancel")[0][2], {"target_path": ["testDir"]})
        self.server.routes["/v1/warmup/cancel"] = lambda q: (200, envelope([
            {"ErrorCode": 114, "ErrorMessage": "the warm-up of 'testDir' is completed: it cannot be canceled",
             "Path": "testDir"}], 114, "failed"))
        rc, out, err = self.m("-r", "warmup/cancel", "--path", "testDir")
        self.assertEqual(rc, 1)
        self.assertIn("cannot cancel the warm-up of 'testDir': the warm-up of 'testDir' is completed", err)

    def test_json_flag(self):
        rc, out, err = self.m("-r", "tier", "--json")
        self.assertEqual(rc, 0, err)
        j = json.loads(out)
        self.assertEqual(j["Results"][0]["tier_read"], 1000)
        self.server.routes["/v1/tier"] = lambda q: (500, envelope([], 5, "internal"))
        rc, out, err = self.m("-r", "tier", "--json")
        self.assertEqual(rc, 1)
        self.assertEqual(json.loads(out)["ErrorCode"], 5)

    def test_daemon_text_is_sanitized(self):
        self.server.routes["/v1/warmup/load"] = lambda q: (200, envelope([
            {"ErrorCode": 0, "ErrorMessage": "", "Path": "evil\x1b[2J\x07\u009bname"}]))
        rc, out, err = self.m("-r", "warmup/load", "--path", "x")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\x07", out)
        self.assertNotIn("\u009b", out)
        self.assertIn("evil?[2J??name", out)

    # ---- reaching the daemon

    def test_not_json_answer(self):
        self.server.routes["/v1/tier"] = lambda q: (200, b"<html>hello</html>")
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("unexpected answer from 127.0.0.1:%d/v1/tier (HTTP 200)" % self.server.port, err)
        self.server.routes["/v1/tier"] = lambda q: (200, {"Results": []})
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("no integer 'ErrorCode'", err)

    def test_answer_size_limit(self):
        big = json.dumps(envelope([{"ErrorCode": 0, "ErrorMessage": "x" * (17 << 20)}]))
        self.server.routes["/v1/tier"] = lambda q: (200, big)
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("larger than 16 MiB", err)

    def test_server_down_and_stale_pid(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
        s.close()  # nothing listens there now
        self.write_state(port=dead_port)
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("does not answer on 127.0.0.1:%d" % dead_port, err)
        self.assertNotIn("stale", err)
        p = subprocess.Popen(["true"])
        p.wait()
        self.write_state(port=dead_port, pid=p.pid)
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("pid %d is not running" % p.pid, err)

    def test_wildcard_bind_address_means_loopback(self):
        self.write_state(bind="0.0.0.0")
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 0, err)
        self.write_state(bind="not-an-ip")
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("g_server_BindAddr 'not-an-ip' is not an IP address", err)

    def test_ipv6_wildcard_bind_address(self):
        try:
            six = FakeServer("::1")
        except OSError as e:
            self.skipTest("no IPv6 loopback: %s" % e)
        self.addCleanup(six.stop)
        six.routes = self.server.routes
        self.write_state(port=six.port, bind="::")
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 0, err)
        self.assertEqual(six.paths(), ["/v1/tier"])

    def test_port_off(self):
        self.write_state(port=0)
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("management port of '%s' is off" % self.mnt, err)
        self.assertIn("-o g_server_Port=17871", err)

    def test_no_state_file(self):
        os.unlink(self.state_path())
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("no state file '%s'" % self.state_path(), err)

    def test_bad_state_files(self):
        for raw, msg in (("{", "not JSON"), ("[]", "not a JSON object"), ('{"pid": 1}', "no 'options'"),
                         ('{"options": {}}', "no 'g_server_Port'"),
                         ('{"options": {"g_server_Port": 70000}}', "not a port number")):
            with self.subTest(raw=raw):
                self.write_state(raw=raw)
                rc, out, err = self.m("-r", "tier")
                self.assertEqual(rc, 3)
                self.assertIn(msg, err)
        # a port kept as a string works
        self.write_state(raw=json.dumps({"options": {"g_server_Port": str(self.server.port)}}))
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 0, err)

    def test_state_file_of_another_mount(self):
        self.write_state(mountpoint="/elsewhere")
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("is for '/elsewhere', not '%s'" % self.mnt, err)

    def test_not_a_mount_point(self):
        sub = os.path.join(self.mnt, "sub")
        os.mkdir(sub)
        rc, out, err = self.cli("-m", sub, "-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("'%s' is not a mount point: it is inside the efc mount '%s'" % (sub, self.mnt), err)
        rc, out, err = self.cli("-m", self.tmp.name, "-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("'%s' is not a mount point\n" % self.tmp.name, err)
        rc, out, err = self.cli("-m", os.path.join(self.tmp.name, "nope"), "-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("cannot resolve mount point", err)
        self.assertEqual(self.server.paths(), [])

    def test_not_an_efc_mount(self):
        # the efc mount is covered by a later tmpfs: the topmost mount decides
        self.write_mountinfo([("/", "ext4"), (self.mnt, FSTYPE), (self.mnt, "tmpfs")])
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 3)
        self.assertIn("is not an efc mount (its file system type is 'tmpfs'", err)
        self.write_mountinfo([("/", "ext4"), (self.mnt, "tmpfs"), (self.mnt, FSTYPE)])
        rc, out, err = self.m("-r", "tier")
        self.assertEqual(rc, 0, err)

    def test_mount_point_spellings(self):
        link = os.path.join(self.tmp.name, "link")
        os.symlink(self.mnt, link)
        for arg, cwd in ((link, None), (self.mnt + "//./", None), ("mnt oss", self.tmp.name),
                         ("../mnt oss", self.state_dir)):
            with self.subTest(arg=arg):
                rc, out, err = self.cli("-m", arg, "-r", "tier", cwd=cwd)
                self.assertEqual(rc, 0, err)

    # ---- the progress display (a pseudo-terminal)

    def run_tty(self, args, interrupt_after=None):
        """Runs the CLI with stdout on a pty; returns (rc, output). INTERRUPT_AFTER: send SIGINT
        once that many warmup/stat requests arrived."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        p = subprocess.Popen([CLI, "-m", self.mnt] + args, env=self.env(), stdin=subprocess.DEVNULL,
                             stdout=slave, stderr=slave)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + RUN_TIMEOUT
        sent = False
        try:
            while time.monotonic() < deadline:
                if (interrupt_after is not None and not sent
                        and len(self.server.queries("/v1/warmup/stat")) >= interrupt_after):
                    p.send_signal(signal.SIGINT)
                    sent = True
                r, _, _ = select.select([master], [], [], 0.1)
                if r:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: the child closed the pty
                        break
                    if not chunk:
                        break
                    out += chunk
                # No break when the child is seen to have exited: a pty passes what the child
                # wrote on to the master a moment later, so its last lines may still be on the
                # way. The master reads EIO once they are read and the child's end is closed.
            rc = p.wait(timeout=RUN_TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(master)
        return rc, out.decode("utf-8", "replace")

    def progress_route(self, steps, status_at_end="completed", total=10 << 20):
        calls = {"n": 0}

        def fn(q):
            calls["n"] += 1
            n = calls["n"]
            now = int(time.time() * 1e6)
            results = []
            for p in q["target_path"][0].split(","):
                done = min(total, total * n // steps)
                st = status_at_end if n >= steps else "running"
                results.append({"ErrorCode": 0, "ErrorMessage": "", "Path": p, "TaskInfos": [
                    {"CompletedSize": done, "TotalSize": total, "Status": st, "Path": p,
                     "Pattern": q.get("pattern", [""])[0], "IsDir": True, "SubmitTime": now,
                     "ErrorMessage": "boom" if st == "failed" else "", "ErrorCode": 0},
                    # an older task of the same path: not ours
                    {"CompletedSize": 1, "TotalSize": 1, "Status": "completed", "Path": p,
                     "Pattern": "", "IsDir": True, "SubmitTime": now - 3600 * 10**6}]})
            return 200, envelope(results)
        return fn

    def test_progress_until_done(self):
        self.server.routes["/v1/warmup/stat"] = self.progress_route(4)
        t0 = time.monotonic()
        rc, out = self.run_tty(["-r", "warmup/load", "--path", "d1,d2"])
        self.assertEqual(rc, 0, out)
        self.assertIn("warm-up of 'd1' started", out)
        self.assertIn("\x1b[2A", out)  # two lines rewritten in place
        self.assertIn("d1/  completed  10.0 MiB / 10.0 MiB  100.0%", out)
        self.assertIn("d2/  running", out)
        self.assertRegex(out, r"25\.0%|50\.0%")
        self.assertRegex(out, r"MiB/s")
        stats = self.server.queries("/v1/warmup/stat")
        self.assertEqual(len(stats), 4)
        self.assertEqual(stats[0][2]["target_path"], ["d1,d2"])
        self.assertIn("preceding_time", stats[0][2])
        # polled every 0.5 s: 4 polls take at least 1.5 s
        self.assertGreaterEqual(time.monotonic() - t0, 1.4)

    def test_progress_more_paths_than_rows(self):
        # the pty has 24 rows: 21 paths get a line, one line sums up the other 9
        self.server.routes["/v1/warmup/stat"] = self.progress_route(2)
        paths = ",".join("p%02d" % i for i in range(30))
        rc, out = self.run_tty(["-r", "warmup/load", "--path", paths])
        self.assertEqual(rc, 0, out)
        self.assertIn("\x1b[22A", out)
        self.assertNotIn("\x1b[30A", out)
        self.assertIn("p20/  completed", out)
        self.assertNotIn("p21/", out)
        self.assertIn("... and 9 more paths (30 of 30 tasks finished)", out)

    def test_progress_failed_task_exits_1(self):
        self.server.routes["/v1/warmup/stat"] = self.progress_route(2, "failed")
        rc, out = self.run_tty(["-r", "warmup/load", "--path", "d1"])
        self.assertEqual(rc, 1, out)
        self.assertIn("failed", out)
        self.assertIn("boom", out)

    def test_progress_ctrl_c_only_stops_watching(self):
        self.server.routes["/v1/warmup/stat"] = self.progress_route(10**9)
        rc, out = self.run_tty(["-r", "warmup/load", "--path", "big"], interrupt_after=2)
        self.assertEqual(rc, 0, out)
        self.assertIn("stopped watching", out)
        self.assertIn("warm-up goes on in the background", out)
        self.assertEqual(self.server.queries("/v1/warmup/cancel"), [])

    def test_no_wait_on_a_terminal(self):
        self.server.routes["/v1/warmup/stat"] = self.progress_route(10**9)
        rc, out = self.run_tty(["-r", "warmup/load", "--path", "d", "--no-wait"])
        self.assertEqual(rc, 0, out)
        self.assertIn("warm-up of 'd' started", out)
        self.assertEqual(self.server.queries("/v1/warmup/stat"), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
