"""The origin misbehaving, one named test a fault (the fault matrix of the README): bursts of 429
and 5xx, connections reset mid-body, short bodies, corrupt bodies, and a server clock far from
ours. Each reads files cold through the mount while ossemu injects the fault on a share of the
requests, and checks every byte (sha256), the retries counted (efc_oss_retries_total), and, where
the fault says something to the log, the line. The outages (origin down, stalled, 503 on every
request) are in test_mount_errors: those end in EIO within the retry budget."""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, MIB, pattern, drop_caches, sha256_bytes as sha  # noqa: E402

# One set of files per test, so that every test reads cold (no cache: the mount has none).
TESTS = ["burst429", "burst5xx", "resets", "short", "corrupt", "skew"]
FILES = {"%s/f%d.bin" % (t, i): pattern(2 * MIB + 1000 * i + 7, 900 + 10 * n + i)
         for n, t in enumerate(TESTS) for i in range(4)}
# Objects read whole in one GET, whose CRC64 the answer carries (corrupt bodies: see the test).
FILES.update({"corrupt/f%d.bin" % i: pattern(200 * 1024 + 3 * i, 990 + i) for i in range(4)})


class OriginFaults(EfcTestCase):
    BUCKET_FILES = FILES

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.m = cls.ch.mount(cls.emu, log=True, mgmt=True,
                             extra=["g_oss_RetryBudgetMs=60000", "g_read_AheadKB=4096"])

    def tearDown(self):
        self.emu.faults({})
        self.emu.admin("POST", "/clock", {"skew_ms": 0})

    def retries(self):
        return efctest.metrics(self.m.port).get("efc_oss_retries_total", 0)

    def read_all_under(self, group, fault, first=None):
        """Reads GROUP's files cold with FAULT injected on their requests, the first three of
        them certainly (FIRST, an ossemu `next` entry), the others at FAULT's rates; checks every
        byte. Returns the retries the daemon counted meanwhile."""
        keys = sorted(k for k in FILES if k.startswith(group + "/"))
        before = self.retries()
        fault = dict(fault, match=group + "/")
        if first:
            fault["next"] = [first] * 3
        self.emu.faults(fault)
        drop_caches()
        got = self.read_shas([self.m.path(k) for k in keys], timeout=180)
        self.emu.faults({})
        self.assertEqual(got, [sha(FILES[k]) for k in keys], "%s under %s" % (group, fault))
        return self.retries() - before

    def test_429_bursts(self):
        self.assertGreater(self.read_all_under("burst429", {"error_rate": {"429": 0.4}},
                                              {"kind": "error", "status": 429}), 0)

    def test_5xx_bursts(self):
        self.assertGreater(self.read_all_under(
            "burst5xx", {"error_rate": {"500": 0.2, "502": 0.1, "503": 0.2}},
            {"kind": "error", "status": 502}), 0)

    def test_resets_mid_body(self):
        self.assertGreater(self.read_all_under("resets", {"reset_rate": 0.3}, {"kind": "reset"}), 0)

    def test_short_bodies(self):
        self.assertGreater(self.read_all_under("short", {"truncate_rate": 0.3},
                                              {"kind": "truncate", "after": 4096}), 0)

    def test_corrupt_bodies(self):
        """A whole object's body whose bytes differ from the CRC64 the answer carries: caught,
        fetched again. (A ranged answer carries no checksum OSS or S3 would give: bytes changed
        on the way there only TLS can catch; the README says to use https.)"""
        self.assertGreater(self.read_all_under("corrupt", {"corrupt_rate": 0.3},
                                              {"kind": "corrupt", "at": 100}), 0)

    def test_skewed_clock(self):
        """The server's clock 40 minutes ahead (OSS refuses requests more than 15 minutes off):
        the client learns the offset from the refusal's Date, says so, and signs with it."""
        self.emu.admin("POST", "/clock", {"skew_ms": 40 * 60 * 1000})
        self.read_all_under("skew", {})
        self.assertIn("clock differs from the server's", self.m.log_text())


if __name__ == "__main__":
    efctest.main()
