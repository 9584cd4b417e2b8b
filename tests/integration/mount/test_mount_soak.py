"""A soak: readers in eight threads, each going over several files with random (O_DIRECT, so the
daemon sees every one) and sequential reads, every byte checked, over a working set twice the
cache, for EFC_SOAK_SECONDS (12 in CI; EFC_SOAK_SECONDS=3600 for the long run). The daemon's RSS
and open descriptors are sampled every second and must stay flat once the cache is full, and the
tier counters must add up at the end."""

import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, MIB, drop_caches  # noqa: E402

SECONDS = int(os.environ.get("EFC_SOAK_SECONDS", "12"))
# The harness aborts a test's mounts past TEST_WATCHDOG: a long soak needs more.
efctest.TEST_WATCHDOG = max(efctest.TEST_WATCHDOG, SECONDS + 240)
NFILES = 24
# Sizes that are no multiple of a block or a page: 3 MiB give or take.
SIZES = [3 * MIB + 4099 * (i - NFILES // 2) for i in range(NFILES)]
FILES = {"soak/f%02d.bin" % i: efctest.pattern(SIZES[i], 500 + i) for i in range(NFILES)}
MEM_MB, DISK_MB = 8, 28  # 36 MiB of cache for 72 MiB of data
THREADS = 8
MAX_CONNECTIONS = 16

# Child code: argv = mount root, seconds; reads until the deadline and prints one JSON line.
SOAK_READER = r"""
import json, mmap, os, random, sys, threading, time
root, seconds, nfiles = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
sizes = json.loads(sys.argv[4])
data = [random.Random(500 + i).randbytes(sizes[i]) for i in range(nfiles)]
deadline = time.monotonic() + seconds
lock = threading.Lock()
tot = {"reads": 0, "bytes": 0, "bad": [], "errors": []}

def worker(k):
    rnd = random.Random(k)
    buf = mmap.mmap(-1, 1 << 20)  # page-aligned, for O_DIRECT
    mine = rnd.sample(range(nfiles), 6)
    reads = nbytes = 0
    while time.monotonic() < deadline:
        i = rnd.choice(mine)
        path = os.path.join(root, "soak/f%02d.bin" % i)
        try:
            if rnd.random() < 0.5:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
                try:
                    for _ in range(16):
                        off = rnd.randrange(0, sizes[i]) & ~4095
                        n = os.preadv(fd, [memoryview(buf)[:4096 * rnd.randint(1, 64)]], off)
                        if bytes(buf[:n]) != data[i][off:off + n]:
                            with lock:
                                tot["bad"].append("f%02d at %d+%d" % (i, off, n))
                        reads += 1
                        nbytes += n
                finally:
                    os.close(fd)
            else:
                with open(path, "rb") as f:
                    got = f.read()
                if got != data[i]:
                    with lock:
                        tot["bad"].append("f%02d whole (%d bytes)" % (i, len(got)))
                reads += 1
                nbytes += len(got)
        except OSError as e:
            with lock:
                tot["errors"].append("f%02d: %s" % (i, e))
            if len(tot["errors"]) > 20:
                break
    with lock:
        tot["reads"] += reads
        tot["bytes"] += nbytes

ts = [threading.Thread(target=worker, args=(k,)) for k in range(int(sys.argv[5]))]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps(tot))
"""


def daemon_sample(pid):
    """(RSS in bytes, descriptors other than sockets and io_uring rings, sockets, io_uring rings,
    threads) of PID."""
    with open("/proc/%d/status" % pid) as f:
        st = dict(l.split(":", 1) for l in f if ":" in l)
    rss = int(st["VmRSS"].split()[0]) * 1024
    files = sockets = rings = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:"):
            sockets += 1
        elif target == "anon_inode:[io_uring]":
            rings += 1
        else:
            files += 1
    return rss, files, sockets, rings, int(st["Threads"])


class SoakTest(EfcTestCase):
    BUCKET_FILES = FILES

    def test_soak(self):
        m = self.h.mount(self.emu, log=True, mgmt=True, extra=efctest.cache_options(
            self.h.cache_dir(), mem_mb=MEM_MB, disk_mb=DISK_MB,
            extra=["g_oss_MaxConnections=%d" % MAX_CONNECTIONS]))
        pid = efctest.serving_pid(m.mnt)
        drop_caches()
        proc = subprocess.Popen([sys.executable, "-c", SOAK_READER, m.mnt, str(SECONDS),
                                 str(NFILES), json.dumps(SIZES), str(THREADS)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        samples = []
        end = time.monotonic() + SECONDS + 300
        while proc.poll() is None:
            self.assertLess(time.monotonic(), end, "the readers ran past their time")
            samples.append(daemon_sample(pid))
            drop_caches()  # the sequential reads go to the daemon too, not the page cache
            time.sleep(1)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err[-2000:])
        tot = json.loads(out)
        efctest.log("soak: %d s, %d reads, %.0f MiB, RSS %s MiB, descriptors %s, sockets %s, "
                    "rings %s, threads %s" % (
                        SECONDS, tot["reads"], tot["bytes"] / MIB, [s[0] // MIB for s in samples],
                        [s[1] for s in samples], [s[2] for s in samples],
                        [s[3] for s in samples], [s[4] for s in samples]))
        self.assertEqual(tot["bad"], [], "wrong bytes")
        self.assertEqual(tot["errors"], [], "read errors")
        self.assertGreater(tot["reads"], 0)
        self.assertEqual(efctest.serving_pid(m.mnt), pid, "the daemon was replaced")

        # Flat once the cache is full: the last quarter of the run against its second quarter.
        q = len(samples) // 4
        self.assertGreaterEqual(q, 2, "too few samples: %s" % samples)
        fds_mid = max(s[1] for s in samples[q:2 * q])
        fds_end = max(s[1] for s in samples[-q:])
        self.assertLessEqual(fds_end, fds_mid, "open descriptors grew: %s" % samples)
        # Sockets: the origin's connection pool fills up to its bound as it is needed, at any
        # time of the run; a pooled connection is its TCP socket and the socket pair of the easy
        # handle's own libcurl multi handle (curl_multi_wakeup); then the management port's
        # listener and our query.
        self.assertLessEqual(max(s[2] for s in samples), 3 * MAX_CONNECTIONS + 4, samples)
        # The disk tier's io_uring rings: one per thread that has read or written the disk at
        # most (cache/disk.c), gone with the thread; threads come and go up to their bounds.
        for smp in samples:
            self.assertLessEqual(smp[3], smp[4], "more io_uring rings than threads: %s" % samples)
        if not efctest.SANITIZED:  # ASan's quarantine holds freed memory, by design
            # The daemon still adds FUSE threads (each with a malloc arena) well into a short
            # run: a leak shows as the last quarter's median above everything before it.
            rss_before = max(s[0] for s in samples[:-q])
            rss_end = sorted(s[0] for s in samples[-q:])[q // 2]
            self.assertLessEqual(rss_end, rss_before * 1.15 + 16 * MIB, "RSS grew: %s" % samples)

        t = self.mgmt_api(m.port, "/v1/tier")["Results"][0]
        self.assertEqual(t["tier_read"], t["tier_read_hit"] + t["tier_read_miss"] +
                         t["tier_direct_read"], t)
        self.assertEqual(t["tier_read_bytes"], t["tier_read_hit_bytes"] +
                         t["tier_read_miss_bytes"] + t["tier_direct_read_bytes"], t)
        self.assertGreater(t["tier_read_miss"], 0, t)  # twice the cache: it keeps missing
        self.assert_unmounts_cleanly(m)


if __name__ == "__main__":
    efctest.main()
