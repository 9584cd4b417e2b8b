"""The origin misbehaving, one named test a fault (the fault matrix of the README): bursts of 429
and 5xx, connections reset mid-body, short bodies, corrupt bodies, and a server clock far from
ours. Each reads files cold through the mount while ossemu injects the fault on a share of the
requests, and checks every byte (sha256), the retries counted (efc_oss_retries_total), and, where
the fault says something to the log, the line. Then faults that come in the middle of a long
read: an STS token the server calls expired before the credential agent has renewed the file,
and a primary endpoint whose host name does not resolve, then does, then stops again.
The outages (origin down, stalled, 503 on every request) are in test_mount_errors: those end in
EIO within the retry budget."""

import fcntl
import os
import select
import shutil
import subprocess
import sys
import time

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


# Child code: reads a file in 1 MiB pieces, printing "at <bytes> <CLOCK_MONOTONIC>" after each,
# then "sha <hex>", or "ERR <errno name> <bytes>" when a read fails.
PROGRESS_READER = r"""
import errno, hashlib, os, sys, time
h = hashlib.sha256()
n = 0
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
        print("at", n, "%.3f" % time.monotonic(), flush=True)
    print("sha", h.hexdigest(), flush=True)
except OSError as e:
    print("ERR", errno.errorcode.get(e.errno, e.errno), n, flush=True)
"""


class Child:
    """A python child running CODE with ARGS; its stdout lines are taken as they come (read
    straight from the pipe: no buffer between select and read hides one). Killed at cleanup."""

    def __init__(self, test, code, args):
        self.proc = subprocess.Popen([sys.executable, "-c", code] + list(args),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        test.addCleanup(self.kill)
        self.buf, self.eof = b"", False

    def lines(self, timeout):
        """The lines printed since the last call, waiting up to TIMEOUT for one if there is none
        yet; at EOF, what is left (and .eof is set)."""
        end = time.monotonic() + timeout
        out = []
        while not out and not self.eof:
            left = end - time.monotonic()
            if select.select([self.proc.stdout], [], [], max(left, 0))[0]:
                data = os.read(self.proc.stdout.fileno(), 65536)
                self.eof = not data
                self.buf += data
            *done, self.buf = self.buf.split(b"\n")
            out += [line.decode() for line in done]
            if left <= 0:
                break
        if self.eof and self.buf:
            out.append(self.buf.decode())
            self.buf = b""
        return out

    def stop(self, timeout=30):
        """Closes the child's stdin and returns the lines it printed until it ended."""
        self.proc.stdin.close()
        out, end = [], time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() >= end:
                raise AssertionError("the reader did not end %d s after its stdin closed" %
                                     timeout)
            out += self.lines(end - time.monotonic())
        self.proc.wait(timeout)
        return out

    def stderr(self):
        return self.proc.stderr.read().decode(errors="replace")[-500:] if self.eof else ""

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()


class Reader(Child):
    """A PROGRESS_READER child of PATH: .at (bytes read), .times ([(bytes, monotonic time)]),
    .sha once it is done, .err if a read failed."""

    def __init__(self, test, path):
        super().__init__(test, PROGRESS_READER, [path])
        self.at, self.times, self.sha, self.err = 0, [(0, time.monotonic())], None, None

    def done(self):
        return self.sha is not None or self.err is not None

    def wait(self, pred, timeout, what):
        """Takes the reader's lines until PRED() holds; fails on a read error, at EOF or after
        TIMEOUT."""
        def check():
            for line in self.lines(0.05):
                word, *rest = line.split()
                if word == "at":
                    self.at = int(rest[0])
                    self.times.append((self.at, float(rest[1])))
                elif word == "sha":
                    self.sha = rest[0]
                else:
                    self.err = line
            if self.eof and not self.done():
                self.err = "the reader ended without a result: %s" % self.stderr()
            if self.err:
                raise AssertionError("reader: %s (waiting for %s)" % (self.err, what))
            return pred()
        return efctest.wait_for(check, timeout, lambda: "%s (reader at %d)" % (what, self.at),
                                interval=0)


STS_SIZE = 32 * MIB

# Child code: reads the files named in argv over and over (O_DIRECT: each read reaches the
# daemon), printing "ok <n> <sha256>" a file, or "ERR <errno name> <name>"; stops when its stdin
# is closed or after 100000 reads.
LOOP_READER = r"""
import errno, hashlib, os, select, sys
for n in range(100000):
    if select.select([sys.stdin], [], [], 0)[0]:
        break
    name = sys.argv[1 + n % (len(sys.argv) - 1)]
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECT)
        try:
            data = os.read(fd, 1 << 20)
        finally:
            os.close(fd)
    except OSError as e:
        print("ERR", errno.errorcode.get(e.errno, e.errno), name, flush=True)
        break
    print("ok", n, hashlib.sha256(data).hexdigest(), flush=True)
"""

# Child code: reads the files named in argv all at once, a thread each (O_DIRECT), and prints
# their sha256 in argv's order.
BURST_READER = r"""
import hashlib, os, sys, threading
shas = {}
def read(name):
    fd = os.open(name, os.O_RDONLY | os.O_DIRECT)
    try:
        shas[name] = hashlib.sha256(os.read(fd, 1 << 20)).hexdigest()
    finally:
        os.close(fd)
threads = [threading.Thread(target=read, args=(n,)) for n in sys.argv[1:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(" ".join(shas.get(n, "-") for n in sys.argv[1:]))
"""

HOSTS = "/etc/hosts"
HOSTS_LOCK = "/run/efc-test-etc-hosts.lock"


class HostsFile:
    """/etc/hosts as the machine has it, plus the lines a test adds (add) and takes back (clear):
    a copy of it in the test's directory is bind-mounted over it until cleanup, which umounts it
    also when the test fails. glibc reads /etc/hosts at every lookup, so the daemon sees each
    change at its next one; everybody else on the machine sees every name they saw before. A
    lock keeps two test runs from stacking their copies."""

    def __init__(self, test, tmp):
        fd = os.open(HOSTS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        test.addCleanup(os.close, fd)  # closing it lets the lock go

        def locked():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
        efctest.wait_for(locked, efctest.WAIT_TIMEOUT, "the lock %s (another test run using "
                         "its own %s)" % (HOSTS_LOCK, HOSTS), interval=0.2)
        with open(HOSTS, "rb") as f:
            self.base = f.read()
        if self.base and not self.base.endswith(b"\n"):
            self.base += b"\n"
        self.path = os.path.join(tmp, "hosts")
        with open(self.path, "wb") as f:
            f.write(self.base)
        shutil.copymode(HOSTS, self.path)
        self.stacked = len(efctest.mounts_on(HOSTS))
        test.addCleanup(self.restore)
        r = subprocess.run(["mount", "--bind", self.path, HOSTS], capture_output=True, text=True,
                           timeout=30)
        test.assertEqual(r.returncode, 0, "mount --bind %s %s: %s" % (self.path, HOSTS, r.stderr))

    def add(self, line):
        # Appended in place (the bind mount holds this inode): a reader sees the file without
        # the line or with it.
        with open(self.path, "ab") as f:
            f.write(line.encode() + b"\n")

    def clear(self):
        os.truncate(self.path, len(self.base))

    def restore(self):
        if len(efctest.mounts_on(HOSTS)) > self.stacked:
            subprocess.run(["umount", HOSTS], capture_output=True, timeout=30)
        if len(efctest.mounts_on(HOSTS)) > self.stacked:
            raise AssertionError("%s is still the test's copy %s" % (HOSTS, self.path))


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

    def read_all_under(self, group, fault, first=None, direct=False):
        """Reads GROUP's files cold with FAULT injected on their requests, the first three of
        them certainly (FIRST, an ossemu `next` entry), the others at FAULT's rates; checks every
        byte (with DIRECT, in 1 MiB O_DIRECT reads). Returns the retries the daemon counted
        meanwhile."""
        keys = sorted(k for k in FILES if k.startswith(group + "/"))
        before = self.retries()
        fault = dict(fault, match=group + "/")
        if first:
            fault["next"] = [first] * 3
        self.emu.faults(fault)
        drop_caches()
        got = self.read_shas([self.m.path(k) for k in keys], timeout=180, direct=direct)
        self.emu.faults({})
        self.assertEqual(got, [sha(FILES[k]) for k in keys], "%s under %s" % (group, fault))
        return self.retries() - before

    # The rates: the daemon makes at most 10 attempts a request (as mountpoint-s3 does), and
    # the first request of a test meets three certain faults, so a fault rate r fails it with
    # r^7 and the others with r^10. At 0.5 the first failed one run in 128; at 0.2 to 0.25
    # fewer than one in 10^4, while every test still retries (the three certain faults).
    def test_429_bursts(self):
        self.assertGreater(self.read_all_under("burst429", {"error_rate": {"429": 0.25}},
                                              {"kind": "error", "status": 429}), 0)

    def test_5xx_bursts(self):
        self.assertGreater(self.read_all_under(
            "burst5xx", {"error_rate": {"500": 0.1, "502": 0.05, "503": 0.1}},
            {"kind": "error", "status": 502}), 0)

    def test_resets_mid_body(self):
        self.assertGreater(self.read_all_under("resets", {"reset_rate": 0.2}, {"kind": "reset"}), 0)

    def test_short_bodies(self):
        self.assertGreater(self.read_all_under("short", {"truncate_rate": 0.2},
                                              {"kind": "truncate", "after": 4096}), 0)

    def test_corrupt_bodies(self):
        """A whole object's body whose bytes differ from the CRC64 the answer carries: caught,
        fetched again. (A ranged answer carries no checksum OSS or S3 would give: bytes changed
        on the way there only TLS can catch; the README says to use https.) Each file, under
        1 MiB, is read in one O_DIRECT read: one GET of the whole object, whatever way the kernel
        would have split a buffered read (a first read of 128 KiB is a ranged GET)."""
        self.assertGreater(self.read_all_under("corrupt", {"corrupt_rate": 0.2},
                                              {"kind": "corrupt", "at": 100}, direct=True), 0)

    def test_skewed_clock(self):
        """The server's clock 40 minutes ahead (OSS refuses requests more than 15 minutes off):
        the client learns the offset from the refusal's Date, says so, and signs with it."""
        self.emu.admin("POST", "/clock", {"skew_ms": 40 * 60 * 1000})
        self.read_all_under("skew", {})
        self.assertIn("clock differs from the server's", self.m.log_text())

    def test_sts_expires_mid_read(self):
        """A reader in the middle of a big file when the server starts calling the STS token
        expired, and the credential agent rewrites the file only a while later: the calls the
        server refused wait for the renewed file (within g_oss_RetryBudgetMs, re-reading it),
        then go on with the new token. The reader gets every byte and no error; it stalls only
        until the file is renewed; one line says the mount waits, one that it reloaded."""
        data = pattern(STS_SIZE, 977)
        _, emu = self.h.bucket({"big.bin": data}, "stssrc", creds=(),
                               sts=("STSAK1:stssk1:TOKEN-ONE",))
        sts = efctest.write_sts(os.path.join(self.h.tmp, "passwd-sts"), "STSAK1", "stssk1",
                                "TOKEN-ONE")
        # Small readahead GETs, so that the reader soon needs one sent after the expiry.
        m = self.h.mount(emu, sts_file=sts, log=True, mgmt=True, extra=["g_read_AheadKB=2048"])
        emu.faults({"bw_bucket": 8 * MIB})  # 4 s for the whole file
        reader = Reader(self, m.path("big.bin"))
        reader.wait(lambda: reader.at >= 8 * MIB, efctest.WAIT_TIMEOUT, "8 MiB read")

        # The token expires: the server refuses it from now on and takes the renewed one.
        emu.creds({"sts": ["STSAK1:stssk1:TOKEN-ONE", "STSAK2:stssk2:TOKEN-TWO"],
                   "expired_tokens": ["TOKEN-ONE"]})
        # The agent lags: the file is rewritten once the mount has been refused and the reader
        # has been stalled for LAG seconds.
        lag = 1.0
        reader.wait(lambda: emu.stats()["auth_failures"] > 0 and
                    time.monotonic() - reader.times[-1][1] >= lag,
                    efctest.WAIT_TIMEOUT, "a refusal and the reader stalled for %g s" % lag)
        self.assertLess(reader.at, STS_SIZE, "the reader finished before the token expired")
        refused = emu.stats()["auth_failures"]
        renewed = time.monotonic()
        efctest.write_sts(sts, "STSAK2", "stssk2", "TOKEN-TWO")

        reader.wait(reader.done, efctest.WAIT_TIMEOUT, "the reader to finish")
        self.assertEqual(reader.proc.wait(30), 0)  # and its file closed
        self.assertIsNone(reader.err)
        self.assertEqual(reader.sha, sha(data), "content of big.bin")
        # Bounded stall: the reader resumes within moments of the renewal.
        resumed = min(t for _, t in reader.times if t > renewed) - renewed
        self.assertLess(resumed, 10 if efctest.SANITIZED else 3,
                        "the reader resumed %.1f s after the renewal" % resumed)
        # While waiting, the mount re-read the file rather than asked the server again.
        self.assertEqual(emu.stats()["auth_failures"], refused)
        self.assertGreaterEqual(efctest.metrics(m.port)["efc_oss_credential_reloads_total"], 1)
        log = m.log_text()
        self.assertEqual(log.count("refused the token of STS file"), 1, log[-3000:])
        self.assertEqual(log.count("reloaded credentials from STS file"), 1, log[-3000:])
        self.assertNotIn("not renewed", log)
        efctest.log("stalled %.1f s in all, %d refusals, resumed %.2f s after the renewal" % (
            max(b[1] - a[1] for a, b in zip(reader.times, reader.times[1:])), refused, resumed))
        self.assert_unmounts_cleanly(m)

    def test_endpoint_name_stops_resolving(self):
        """g_oss_Endpoint=<primary by host name>|<backup>: while the name does not resolve,
        reads go to the backup (efc_oss_failovers_total counts them); once it resolves, back to
        the primary within its down period, which the log says ("healthy again"); when it
        stops resolving again, reads stay on the primary, whose address still answers: libcurl
        keeps a resolved name 60 s (CURLOPT_DNS_CACHE_TIMEOUT) and its connections open, and
        an address that stops answering fails over by itself. Every byte right throughout.
        Two ossemu serve the same directory; their counters say where each request went."""
        files = {"ep/f%d.bin" % i: pattern(64 * 1024 + 17 * i, 930 + i) for i in range(6)}
        root, backup = self.h.bucket(files, "epsrc")
        primary = self.h.ossemu(root)
        for emu in (primary, backup):
            emu.faults({"latency_ms": 10})  # the reader's pace
        name = "oss-primary.efc.test"  # RFC 2606: resolves nowhere but here
        hosts = HostsFile(self, self.h.tmp)
        m = self.h.mount(backup, log=True, mgmt=True, extra=[
            "g_oss_Endpoint=http://%s:%d|%s" % (name, primary.port, backup.endpoint),
            "g_oss_ConnectTimeoutMs=1000"])

        def failovers():
            return efctest.metrics(m.port).get("efc_oss_failovers_total", 0)

        def requests(emu):
            return emu.stats()["total"]["requests"]

        keys = sorted(files)
        want = [sha(files[k]) for k in keys]
        loop = Child(self, LOOP_READER, [m.path(k) for k in keys])
        reads = []

        def take(line, what):
            word, *rest = line.split() or ["(nothing)"]
            self.assertEqual(word, "ok", "reader: %s (%s)" % (line, what))
            self.assertEqual(rest[1], want[int(rest[0]) % len(keys)], "read %s" % rest[0])
            reads.append(rest[0])

        def reading(pred, what, timeout=efctest.WAIT_TIMEOUT):
            """Takes the reader's lines until PRED() holds; every read must be right."""
            def check():
                for line in loop.lines(0.02):
                    take(line, "waiting for %s" % what)
                self.assertFalse(loop.eof, "the reader ended: %s" % loop.stderr())
                return pred()
            t0 = time.monotonic()
            efctest.wait_for(check, timeout, what, interval=0)
            return time.monotonic() - t0

        # The name does not resolve: the mount came up through the backup and reads go on there.
        f0 = failovers()
        self.assertGreater(f0, 0)
        reading(lambda: len(reads) >= 10 and failovers() > f0, "reads through the backup")
        self.assertEqual(requests(primary), 0)
        self.assertIn("endpoint %s:%d failed (Couldn't resolve host name)" % (name, primary.port),
                      m.log_text())

        # It resolves: once its down period is over, the primary is tried and taken again.
        hosts.add("127.0.0.1 %s" % name)
        took = reading(lambda: requests(primary) > 0 and "healthy again" in m.log_text(),
                       "requests back on the primary")
        # Its down period was 2 s at first, doubled at each probe that failed meanwhile (one
        # more at most, unless this machine is very slow).
        self.assertLess(took, 10, "the primary was taken again %.1f s after it resolved" % took)
        self.assertIn("endpoint %s:%d is healthy again" % (name, primary.port), m.log_text())
        reading(lambda: requests(primary) >= 5, "the primary serving")  # in flight elsewhere: done
        b, f = requests(backup), failovers()
        n = requests(primary)
        reading(lambda: requests(primary) >= n + 20, "20 more requests to the primary")
        self.assertEqual((requests(backup), failovers()), (b, f), "requests went to the backup")

        # It stops resolving again: the address is cached and answers, so nothing changes, also
        # for reads in parallel, which take new connections (a lookup each).
        hosts.clear()
        n = requests(primary)
        reading(lambda: requests(primary) >= n + 20, "20 requests after the name went")
        rc, out, err, _ = efctest.run_bounded(BURST_READER, efctest.WAIT_TIMEOUT,
                                              [m.path(k) for k in keys])
        self.assertEqual(rc, 0, err[-500:])
        self.assertEqual(out.split(), want)
        self.assertEqual((requests(backup), failovers()), (b, f), "requests went to the backup")
        for line in loop.stop():
            take(line, "at the end")
        self.assertEqual(loop.proc.returncode, 0, loop.stderr())
        efctest.log("%d reads; the primary back %.1f s after its name resolved" % (len(reads), took))
        self.assert_unmounts_cleanly(m)


if __name__ == "__main__":
    efctest.main()
