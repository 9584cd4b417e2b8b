#!/usr/bin/env python3
"""bench/benchlib.py's bookkeeping, without mounts: what `record` keeps of a measurement (the
daemon's CPU time, the bytes read, the origin's requests by kind), `origin-stats` over ossemu's
/stats, and the figures `report` derives (the dataset epoch's hit ratio, CPU seconds per GB, the
bound the origin's latency sets on small-file epochs, issue 15's targets, only the rows that ran)."""
import contextlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHLIB = os.path.join(HERE, "..", "..", "bench", "benchlib.py")
TCK = os.sysconf("SC_CLK_TCK")
_spec = importlib.util.spec_from_file_location("benchlib", BENCHLIB)
benchlib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchlib)


def run(*args, stdin=None):
    """benchlib's subcommand args[0] with args[1:], in this process; returns what it printed."""
    cmds = {"record": benchlib.cmd_record, "report": benchlib.cmd_report,
            "origin-stats": benchlib.cmd_origin_stats}
    out = io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(out):
            cmds[args[0]](list(args[1:]))
    finally:
        sys.stdin = saved
    return out.getvalue()


class BenchlibTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="efc-test-benchlib.")
        self.dir = self.tmp.name
        self.raw = os.path.join(self.dir, "raw.jsonl")

    def tearDown(self):
        self.tmp.cleanup()

    def record(self, system, workload, unit, field, result, cpu_ticks="", origin="", run_no=1):
        path = os.path.join(self.dir, "m.json")
        with open(path, "w") as f:
            f.write(json.dumps(result) + "\n")
        better = "lower" if workload in ("rss", "ttfb-cold") else "higher"
        run("record", self.raw, "run=%d" % run_no, "system=" + system, "workload=" + workload,
            "unit=" + unit, "better=" + better, "field=" + field, "result=" + path, "rc=0",
            "cpu_ticks=%s" % cpu_ticks, "origin=" + origin)

    def test_origin_stats(self):
        stats = {"total": {"requests": 7, "bytes": 4096}, "list_requests": 2,
                 "by_key": {"a": {"requests": 3, "get": 2, "head": 1, "bytes": 4096},
                            "b": {"requests": 2, "get": 0, "head": 2, "bytes": 0}}}
        self.assertEqual(run("origin-stats", stdin=json.dumps(stats)).split(), ["7", "4096", "2", "3", "2"])
        self.assertEqual(run("origin-stats", stdin="not json"), "")

    def test_record_keeps_cpu_bytes_and_origin_kinds(self):
        self.record("efc", "epoch-cold", "files/s", "files_per_s",
                    {"files_per_s": 100.0, "bytes": 1 << 30}, cpu_ticks=3 * TCK, origin="20 1000 10 4 6")
        with open(self.raw) as f:
            rec = json.loads(f.readline())
        self.assertEqual(rec["value"], 100.0)
        self.assertAlmostEqual(rec["cpu_s"], 3.0)
        self.assertEqual(rec["bytes_read"], 1 << 30)
        self.assertEqual((rec["origin_requests"], rec["origin_bytes"]), (20, 1000))
        self.assertEqual((rec["origin_gets"], rec["origin_heads"], rec["origin_lists"]), (10, 4, 6))

    def test_report_derives_the_new_rows(self):
        n, size = 1000, 16384
        meta = {"mode": "quick", "runs": 1, "systems": ["efc", "s3fs", "rclone", "null"],
                "bw_per_conn": 0, "latency_ms": 5, "started": "t", "nproc": 2, "epoch_threads": 16,
                "dataset_mem_mb": 16, "sizes": {"big_bytes": 1 << 28, "ttfb_bytes": 0, "small_count": n,
                                                "small_bytes": size, "many_count": 0, "dataset_count": n}}
        with open(os.path.join(self.dir, "meta.json"), "w") as f:
            json.dump(meta, f)
        gb = 10 ** 9
        # O_DIRECT: efc 0.95 of null (target met); CPU: 2 s over 1 GB
        self.record("efc", "rand-direct", "IOPS", "iops", {"iops": 95000, "io_bytes": gb}, cpu_ticks=2 * TCK,
                    origin="0 0 0 0 0")
        self.record("null", "rand-direct", "IOPS", "iops", {"iops": 100000, "io_bytes": gb}, cpu_ticks=TCK)
        # a cold epoch at 1,600 files/s: half the one-round-trip bound of 16 / 5 ms = 3,200
        for s, v in (("efc", 1600.0), ("s3fs", 100.0), ("rclone", 200.0), ("null", 9000.0)):
            self.record(s, "epoch-cold", "files/s", "files_per_s", {"files_per_s": v, "bytes": n * size},
                        origin="" if s == "null" else "%d %d %d %d %d" % (2 * n, n * size, n, 0, n))
        # epoch 2 of the dataset: a quarter of the bytes fetched again -> 75% hit ratio
        for s, ob in (("efc", n * size // 4), ("s3fs", 0)):
            self.record(s, "dataset-warm", "files/s", "files_per_s", {"files_per_s": 500.0, "bytes": n * size},
                        origin="%d %d %d 0 0" % (n, ob, n))
        self.record("null", "dataset-warm", "files/s", "files_per_s", {"files_per_s": 5000.0, "bytes": n * size})
        run("report", self.dir)
        with open(os.path.join(self.dir, "results.json")) as f:
            summary = json.load(f)["summary"]
        with open(os.path.join(self.dir, "results.md")) as f:
            md = f.read()
        self.assertAlmostEqual(summary["dataset-hit"]["efc"]["median"], 75.0)
        self.assertAlmostEqual(summary["dataset-hit"]["s3fs"]["median"], 100.0)
        self.assertIsNone(summary["dataset-hit"]["null"]["median"])
        self.assertAlmostEqual(summary["rand-direct"]["efc"]["cpu_s_per_GB"], 2.0)
        self.assertAlmostEqual(summary["rand-direct"]["null"]["cpu_s_per_GB"], 1.0)
        # 16 KiB x 1,000 files is under the 16 MiB a CPU figure needs
        self.assertIsNone(summary["epoch-cold"]["efc"]["cpu_s_per_GB"])
        self.assertIn("**3,200 files/s** at one round trip", md)
        self.assertIn("1,600 at two", md)
        self.assertIn("1,600 (0.50×; 2.00 = 1.00 GET + 0.00 HEAD + 1.00 LIST)", md)
        self.assertIn("O_DIRECT, depth 32, warm (256 MiB file): efc ÷ ceiling 0.95×, target ≥ 0.9× — met", md)
        self.assertIn("epoch 1 (cold): efc ÷ bound 0.50×, target ≥ 0.8× — not met", md)
        self.assertIn("## Daemon CPU seconds per GB read", md)
        # rows that did not run are left out
        self.assertNotIn("ls -l", md)
        self.assertNotIn("seq 1 MiB", md)

    def test_origin_rate_limits_the_epochs(self):
        """When the origin alone (efc-ossget) answers fewer requests/s than the latency bound, an
        epoch is held to that rate: cold epochs to its GETs/s, the warm one to its 304s/s."""
        n, size = 1000, 16384
        meta = {"mode": "quick", "runs": 1, "systems": ["efc", "null"], "bw_per_conn": 0,
                "latency_ms": 5, "started": "t", "nproc": 2, "epoch_threads": 16,
                "origin_get_per_s": 1000.0, "origin_revalidate_per_s": 4000.0,
                "sizes": {"big_bytes": 1 << 28, "ttfb_bytes": 0, "small_count": n,
                          "small_bytes": size, "many_count": 0, "dataset_count": 0}}
        with open(os.path.join(self.dir, "meta.json"), "w") as f:
            json.dump(meta, f)
        for wid, v in (("epoch-cold", 900.0), ("epoch-warm", 1600.0)):
            for s in ("efc", "null"):
                self.record(s, wid, "files/s", "files_per_s", {"files_per_s": v if s == "efc" else 9000.0,
                                                                "bytes": n * size},
                            origin="" if s == "null" else "%d %d %d 0 0" % (n, n * size, n))
        run("report", self.dir)
        with open(os.path.join(self.dir, "results.md")) as f:
            md = f.read()
        self.assertIn("**1,000 first-block GETs/s** and **4,000 revalidations/s**", md)
        # cold: the origin's 1,000/s is below 3,200; warm: the latency's 3,200 is below 4,000
        self.assertIn("| 3,200 | 1,000 | 1,000 | 900 (0.90×;", md)
        self.assertIn("| 3,200 | 4,000 | 3,200 | 1,600 (0.50×;", md)
        self.assertIn("epoch 1 (cold): efc ÷ bound 0.90×, target ≥ 0.8× — met", md)
        self.assertIn("epoch 2 (warm): efc ÷ bound 0.50×, target ≥ 0.8× — not met", md)


if __name__ == "__main__":
    unittest.main()
