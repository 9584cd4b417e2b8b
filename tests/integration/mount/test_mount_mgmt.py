"""The management API and CLI on a real mount: warm-up (a directory, a pattern; the warmed data
then reads with zero origin requests), stat while running and after, cancel, history trimming,
the tier counters moving and clearing, /metrics as Prometheus text, bad parameters and path
escapes answered with JSON errors, the port bound to loopback only, and aliyun-alinas-efc-cli
finding the mount's port by itself."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, MIB, pattern, read_bytes as read  # noqa: E402

FILES = {
    "data/a_1.bin": pattern(2 * MIB + 11, 1),
    "data/a_2.bin": pattern(3 * MIB + 7, 2),
    "data/sub/b_2.bin": pattern(1 * MIB + 3, 3),
    "data/sub/c_3.bin": pattern(700000, 4),
    "slow/big.bin": pattern(24 * MIB, 5),
    "h/f0.txt": b"0", "h/f1.txt": b"1", "h/f2.txt": b"2", "h/f3.txt": b"3", "h/f4.txt": b"4",
    "top.txt": b"top\n",
}
CLI = os.path.join(efctest.BUILD_DIR, "cli", "aliyun-alinas-efc-cli")
TIER = ["tier_read", "tier_read_bytes", "tier_read_hit", "tier_read_hit_bytes", "tier_read_miss",
        "tier_read_miss_bytes", "tier_direct_read", "tier_direct_read_bytes",
        "tier_root_read_source", "tier_root_read_source_bytes"]
PROM_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"'
                       r'(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\})? '
                       r'(-?[0-9.e+-]+|NaN|[+-]Inf)$')


def local_ipv4():
    """The host's non-loopback IPv4 addresses."""
    r = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                       timeout=10)
    out = []
    for line in r.stdout.splitlines():
        m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", line)
        if m and not m.group(1).startswith("127."):
            out.append(m.group(1))
    return out


class Mgmt(EfcTestCase):
    BUCKET_FILES = FILES

    def mount(self, extra=()):
        opts = efctest.cache_options(self.h.cache_dir(), disk_mb=128, extra=extra)
        m = self.h.mount(self.emu, mgmt=True, extra=opts)
        self.port = m.port
        return m

    def api(self, path, expect_status=200):
        return self.mgmt_api(self.port, path, expect_status)

    def tasks(self, path, preceding=None):
        q = "/v1/warmup/stat?target_path=" + urllib.request.quote(path)
        if preceding is not None:
            q += "&preceding_time=%d" % preceding
        return self.api(q)["Results"][0].get("TaskInfos", [])

    def wait_done(self, path, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.tasks(path)
            if t and t[0]["Status"] != "running":
                return t[0]
            time.sleep(0.1)
        self.fail("warm-up of %r still running after %d s" % (path, timeout))

    def test_warmup_pattern_then_directory(self):
        m = self.mount()
        body = self.api("/v1/warmup/load?target_path=data&pattern=.*_2%5C.bin%24")
        self.assertEqual(body["ErrorCode"], 0, body)
        r = body["Results"][0]
        self.assertEqual((r["ErrorCode"], r["Path"]), (0, "data"))
        self.assertEqual(r["Location"], "127.0.0.1:%d" % self.port)
        t = self.wait_done("data")
        matching = ["data/a_2.bin", "data/sub/b_2.bin"]
        total = sum(len(FILES[k]) for k in matching)
        self.assertEqual((t["Status"], t["TotalSize"], t["CompletedSize"]),
                         ("completed", total, total), t)
        self.assertEqual(t["Pattern"], r".*_2\.bin$")
        self.assertTrue(t["IsDir"])
        self.assertLess(abs(t["SubmitTime"] / 1e6 - time.time()), 120, "SubmitTime is not in µs")
        for k in matching:
            before = self.emu.gets(k)
            self.assertEqual(read(m.path(k)), FILES[k])
            self.assertEqual(self.emu.gets(k), before, "%s was not warm" % k)
        before = self.emu.gets("data/a_1.bin")
        self.assertEqual(read(m.path("data/a_1.bin")), FILES["data/a_1.bin"])
        self.assertGreater(self.emu.gets("data/a_1.bin"), before, "the pattern did not filter")

        # the whole directory, and a file and the root's file as several paths
        body = self.api("/v1/warmup/load?target_path=data%2Ctop.txt")
        self.assertEqual([x["ErrorCode"] for x in body["Results"]], [0, 0])
        self.wait_done("data")
        t = self.wait_done("top.txt")
        self.assertFalse(t["IsDir"])
        for k in ("data/sub/c_3.bin", "top.txt"):
            before = self.emu.gets(k)
            self.assertEqual(read(m.path(k)), FILES[k])
            self.assertEqual(self.emu.gets(k), before, "%s was not warm" % k)
        self.assertEqual(len(self.tasks("data")), 2, "stat shows every task of the path")
        self.assert_unmounts_cleanly(m)

    def test_stat_progress_and_cancel(self):
        m = self.mount()
        self.emu.faults({"match": "slow/", "bw_per_conn": 2 * MIB})
        self.addCleanup(self.emu.faults, {})
        self.api("/v1/warmup/load?target_path=slow")
        t = {}

        def progressing():
            t.update(self.tasks("slow")[0])
            return t["CompletedSize"] > 0
        efctest.wait_for(progressing, efctest.WAIT_TIMEOUT,
                         lambda: "progress of the warm-up of slow/ (last: %r)" % t, 0.1)
        self.assertEqual(t["Status"], "running", t)
        self.assertEqual(t["TotalSize"], len(FILES["slow/big.bin"]))
        self.assertLess(t["CompletedSize"], t["TotalSize"])
        body = self.api("/v1/warmup/cancel?target_path=slow")
        self.assertEqual(body["Results"][0]["ErrorCode"], 0, body)
        t = self.wait_done("slow", 15)
        self.assertEqual(t["Status"], "canceled")
        done = t["CompletedSize"]
        # Time is the state here: a canceled task must not go on (by more than the fills that
        # were running), which only a while of watching it can show.
        time.sleep(1.0)
        self.assertLessEqual(self.tasks("slow")[0]["CompletedSize"], done + 16 * MIB)
        # finished tasks cannot be canceled; unknown paths have no task
        body = self.api("/v1/warmup/cancel?target_path=slow")
        self.assertNotEqual(body["Results"][0]["ErrorCode"], 0, body)
        body = self.api("/v1/warmup/cancel?target_path=nothing-here")
        self.assertNotEqual(body["Results"][0]["ErrorCode"], 0, body)
        self.emu.faults({})
        self.api("/v1/warmup/load?target_path=top.txt")
        self.assertEqual(self.wait_done("top.txt")["Status"], "completed")
        body = self.api("/v1/warmup/cancel?target_path=top.txt")
        self.assertNotEqual(body["Results"][0]["ErrorCode"], 0, "canceled a completed task")
        # a path that does not exist fails
        self.api("/v1/warmup/load?target_path=no/such/dir")
        t = self.wait_done("no/such/dir")
        self.assertEqual(t["Status"], "failed")
        self.assertNotEqual(t["ErrorMessage"], "")
        self.assert_unmounts_cleanly(m)

    def test_history_trimming(self):
        m = self.mount(["g_warmup_MaxTasks=3"])
        for i in range(5):
            self.api("/v1/warmup/load?target_path=h/f%d.txt" % i)
            self.assertEqual(self.wait_done("h/f%d.txt" % i)["Status"], "completed")
        self.assertEqual(self.tasks("h/f0.txt"), [], "the oldest task outlived g_warmup_MaxTasks")
        self.assertEqual(len(self.tasks("h/f4.txt")), 1)
        self.assertEqual(len(self.tasks("h/f2.txt")), 1)
        # preceding_time filters by age: the tasks must grow older than 1 s (time is the state)
        time.sleep(1.1)
        self.assertEqual(self.tasks("h/f4.txt", preceding=1), [])
        self.assertEqual(len(self.tasks("h/f4.txt", preceding=100)), 1)
        self.assert_unmounts_cleanly(m)

    def test_tier_counters_and_metrics(self):
        m = self.mount()
        zero = self.api("/v1/tier")["Results"][0]
        for name in TIER:
            self.assertIsInstance(zero[name], int, name)
        self.assertEqual(read(m.path("data/a_1.bin")), FILES["data/a_1.bin"])
        t = self.api("/v1/tier")["Results"][0]
        self.assertGreater(t["tier_read"], zero["tier_read"])
        self.assertGreaterEqual(t["tier_read_bytes"], len(FILES["data/a_1.bin"]))
        self.assertGreater(t["tier_read_miss"], 0)
        self.assertGreater(t["tier_root_read_source_bytes"], 0)
        self.assertEqual(self.api("/v1/tier/clear")["ErrorCode"], 0)
        t = self.api("/v1/tier")["Results"][0]
        self.assertEqual([t[n] for n in TIER], [0] * 10, "clear left counters")
        efctest.drop_caches()
        self.assertEqual(read(m.path("data/a_1.bin")), FILES["data/a_1.bin"])
        t = self.api("/v1/tier")["Results"][0]
        self.assertGreater(t["tier_read_hit"], 0)
        self.assertEqual(t["tier_read_miss"], 0)

        text = self.mgmt_get(self.port, "/metrics").decode()
        names = set()
        for line in text.splitlines():
            if not line or line.startswith("#"):
                self.assertTrue(line == "" or re.match(r"^# (HELP|TYPE) [a-zA-Z_:]", line), line)
                continue
            self.assertRegex(line, PROM_LINE)
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
        for want in ("efc_tier_read", "efc_oss_get_duration_seconds_bucket",
                     "efc_fuse_read_duration_seconds_count", "efc_readdir_cache_dirs"):
            self.assertTrue(any(n.startswith(want) for n in names), "no %s in /metrics" % want)
        self.assert_unmounts_cleanly(m)

    def test_bad_parameters_and_escapes(self):
        m = self.mount()
        body = self.api("/v1/warmup/load", 400)
        self.assertNotEqual(body["ErrorCode"], 0)
        self.assertIn("target_path", body["ErrorMessage"])
        body = self.api("/v1/warmup/stat?target_path=data&preceding_time=soon", 400)
        self.assertIn("preceding_time", body["ErrorMessage"])
        for bad in ("../etc", "/etc/passwd", "data/../../x", "a//b"):
            body = self.api("/v1/warmup/load?target_path=" + urllib.request.quote(bad, safe=""))
            res = body["Results"][0]
            self.assertNotEqual(res["ErrorCode"], 0, "%r accepted: %s" % (bad, body))
        body = self.api("/v1/warmup/load?target_path=data&pattern=%28unclosed")
        self.assertNotEqual(body["Results"][0]["ErrorCode"], 0, body)
        body = self.api("/v1/no/such/endpoint", 404)
        self.assertNotEqual(body["ErrorCode"], 0)
        self.assert_unmounts_cleanly(m)

    def test_loopback_only(self):
        m = self.mount()
        self.api("/v1/tier")
        for addr in ["127.0.0.2"] + local_ipv4():
            s = socket.socket()
            s.settimeout(3)
            try:
                with self.assertRaises(OSError, msg="port answered on %s" % addr):
                    s.connect((addr, self.port))
            finally:
                s.close()
        self.assert_unmounts_cleanly(m)

    def cli(self, *args, ok=True):
        r = subprocess.run([CLI] + list(args), capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if ok:
            self.assertEqual(r.returncode, 0, "%s: %s%s" % (args, r.stdout, r.stderr))
        return r

    def test_cli(self):
        m = self.mount()
        self.assertEqual(read(m.path("top.txt")), FILES["top.txt"])
        out = self.cli("-m", m.mnt, "-r", "tier").stdout.splitlines()
        self.assertEqual([line.split()[0] for line in out], TIER)
        vals = dict(line.split() for line in out)
        self.assertGreater(int(vals["tier_read"]), 0)
        self.cli("-m", m.mnt, "-r", "tier", "-c")
        vals = dict(line.split() for line in self.cli("-m", m.mnt, "-r", "tier").stdout.splitlines())
        self.assertEqual(set(vals.values()), {"0"})

        self.cli("-m", m.mnt, "-r", "warmup/load", "--path", "data/sub", "--pattern", ".*_3\\.bin$")
        self.wait_done("data/sub")
        out = self.cli("-m", m.mnt, "-r", "warmup/stat", "--path", "data/sub").stdout
        self.assertIn("completed", out)
        self.assertIn("data/sub", out)
        before = self.emu.gets("data/sub/c_3.bin")
        self.assertEqual(read(m.path("data/sub/c_3.bin")), FILES["data/sub/c_3.bin"])
        self.assertEqual(self.emu.gets("data/sub/c_3.bin"), before)
        # the root: --path ""
        r = self.cli("-m", m.mnt, "-r", "warmup/load", "--path", "")
        self.wait_done("")
        out = self.cli("-m", m.mnt, "-r", "action", "-k", "clear_readdir_cache").stdout
        self.assertIn("readdir", out)
        self.cli("-m", m.mnt, "-r", "action", "-k", "clear_metadata_cache")
        # escapes are refused, with the reason and a non-zero exit
        r = self.cli("-m", m.mnt, "-r", "warmup/load", "--path", "../x", ok=False)
        self.assertNotEqual(r.returncode, 0)
        # a directory that is not an efc mount
        r = self.cli("-m", self.h.tmp, "-r", "tier", ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("mount", r.stderr)
        self.assert_unmounts_cleanly(m)
        # the mount is gone: the CLI says so
        r = self.cli("-m", m.mnt, "-r", "tier", ok=False)
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    efctest.main()
