"""The block cache under trouble: a working set twice the cache (caps hold, bytes stay right), a
corrupted cache file (detected, dropped, refetched, never served), and a crash (kill -9 of the
daemon: its successor, or a remount on the same disk cache, still finds what was cached).

Origin requests are counted by ossemu (GET /stats, by_key)."""

import errno
import os
import re
import shutil
import signal
import struct
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, MIB, pattern, drop_caches, sha256_bytes as sha  # noqa: E402

BIG = {"set/f%02d.bin" % i: pattern(3 * MIB + 1000 * i, 40 + i) for i in range(10)}  # ~30 MiB
FILES = dict(BIG)
FILES["crash.bin"] = pattern(5 * MIB + 77, 60)
FILES["corrupt.bin"] = pattern(4 * MIB + 5, 61)
SLOTS = "efc-cache-v1.slots"  # the name kept from format 2 (an old file is reformatted in place)
PAGE = 16 << 10  # the cache page (g_tier_DadiCachePageSizeKB's default)


def cache_items(path):
    """(block size, page count, live items) of a cache file (format 3, a log of regions: see
    cache/disk.c), found by walking every region's item headers (the open region has no summary
    yet). An item is (file offset of its page bytes, their length, block length, pages held); a
    block written again has its latest item live. In file order."""
    latest = {}
    with open(path, "rb") as f:
        sb = f.read(64)
        assert sb[:8] == b"EFCCACHE", "not a cache file: %r" % sb[:8]
        assert struct.unpack_from("<I", sb, 8)[0] == 3, "not format 3"
        block_size, page_size, region_size, nregions = struct.unpack_from("<IIII", sb, 16)
        data_off, = struct.unpack_from("<Q", sb, 32)
        npages = block_size // page_size
        words = (npages + 63) // 64
        for r in range(nregions):
            base = data_off + r * region_size
            f.seek(base)
            rh = f.read(64)
            if len(rh) < 64 or rh[:8] != b"EFCREGN1":
                continue
            seq, = struct.unpack_from("<Q", rh, 8)
            off = 512
            while off + 128 <= region_size:
                f.seek(base + off)
                h = f.read(64 + 8 * words)
                if len(h) < 64 + 8 * words or h[:4] != b"EFCI":
                    break
                hdr_len, item_len, item_seq = struct.unpack_from("<IIQ", h, 8)
                if item_seq != seq or item_len == 0:
                    break
                blen, = struct.unpack_from("<I", h, 40)
                valid = 0
                for k in range(words):
                    valid |= struct.unpack_from("<Q", h, 64 + 8 * k)[0] << (64 * k)
                pages = [p for p in range(npages) if valid >> p & 1]
                dlen = sum(min(page_size, blen - p * page_size) for p in pages)
                latest[h[24:40]] = ((seq, off), (base + off + hdr_len, dlen, blen, len(pages)))
                off += item_len
    items = sorted(v[1] for v in latest.values())
    return block_size, npages, items


class CacheTrouble(EfcTestCase):
    BUCKET_FILES = FILES

    def mount_cached(self, cache_dir, mem_mb=16, disk_mb=64, mgmt=False, extra=()):
        return self.h.mount(self.emu, log=True, mgmt=mgmt,
                            extra=efctest.cache_options(cache_dir, mem_mb, disk_mb, extra))

    def test_working_set_twice_the_cache(self):
        # 4 MiB of memory and 12 MiB of disk for 30 MiB of data, read three times over.
        cache_dir = self.h.cache_dir("small")
        m = self.mount_cached(cache_dir, mem_mb=4, disk_mb=12)
        keys = sorted(BIG)
        want = [sha(BIG[k]) for k in keys]
        for i in range(3):
            drop_caches()
            self.assertEqual(self.read_shas(m.path(k) for k in keys), want, "pass %d" % i)
            st = os.stat(os.path.join(cache_dir, SLOTS))
            self.assertLessEqual(st.st_size, 12 * MIB, "the slot file outgrew its cap")
            self.assertLessEqual(st.st_blocks * 512, 12 * MIB, "the slot file uses more disk")
        self.assert_unmounts_cleanly(m)
        line = re.search(r"memory (\d+)/(\d+) MiB, disk (\d+)/(\d+) MiB", m.log_text())
        self.assertIsNotNone(line, "no cache summary in the log")
        mem_used, mem_cap, disk_used, disk_cap = map(int, line.groups())
        self.assertLessEqual(mem_cap, 4)
        self.assertLessEqual(mem_used, mem_cap)
        self.assertLessEqual(disk_cap, 12)
        self.assertLessEqual(disk_used, disk_cap)

    def test_corrupted_cache_file(self):
        cache_dir = self.h.cache_dir("corrupt")
        key = "corrupt.bin"
        m = self.mount_cached(cache_dir)
        self.assertEqual(self.read_shas([m.path(key)]), [sha(FILES[key])])
        self.assert_unmounts_cleanly(m)
        # Flip bytes inside every cached block's data: each is caught by its page's CRC64.
        slots = os.path.join(cache_dir, SLOTS)
        _, _, used = cache_items(slots)
        self.assertGreaterEqual(len(used), 4, "expected the object's blocks on disk")
        with open(slots, "r+b") as f:
            for start, length, _, _ in used:
                for off in (0, length // 2, length - 1):
                    f.seek(start + off)
                    b = f.read(1)
                    f.seek(start + off)
                    f.write(bytes([b[0] ^ 0xFF]))
        m2 = self.mount_cached(cache_dir)
        before = self.emu.gets(key)
        self.assertEqual(self.read_shas([m2.path(key)]), [sha(FILES[key])],
                         "served corrupted cache bytes")
        self.assertGreater(self.emu.gets(key), before, "corrupted blocks were not refetched")
        # once refetched, the blocks are good again
        drop_caches()
        before = self.emu.gets(key)
        self.assertEqual(self.read_shas([m2.path(key)]), [sha(FILES[key])])
        self.assertEqual(self.emu.gets(key), before, "the refetched blocks were not cached")
        self.assert_unmounts_cleanly(m2)

        # A garbage superblock: the file is not trusted at all, the cache starts afresh.
        with open(slots, "r+b") as f:
            f.write(b"GARBAGE!" * 8)
        m3 = self.mount_cached(cache_dir)
        self.assertEqual(self.read_shas([m3.path(key)]), [sha(FILES[key])])
        self.assert_unmounts_cleanly(m3)

    def test_disk_full_read_only_and_removed(self):
        """The cache's file system fills up, turns read-only, and loses the cache file while
        mounted: every read stays right (from memory and the origin), the failures are counted
        and logged, and the disk tier takes writes again once the file system does."""
        fs = self.h.dir("cachefs")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "efc-test-cachefs", fs],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(subprocess.run, ["umount", "-l", fs], capture_output=True, timeout=30)
        cache_dir = os.path.join(fs, "cache") + "/"
        os.mkdir(cache_dir)
        m = self.mount_cached(cache_dir, mem_mb=4, disk_mb=32, mgmt=True)
        keys = sorted(BIG)
        want = [sha(BIG[k]) for k in keys]

        def metric(name):
            return efctest.metrics(m.port).get(name, 0)

        # Full: a filler takes every free byte the cache file has not written yet.
        fd = os.open(os.path.join(fs, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for _ in range(1000):  # 48 MiB at most: bounded
                os.write(fd, b"\1" * MIB)
            self.fail("the 48 MiB file system never filled up")
        except OSError as e:
            self.assertEqual(e.errno, errno.ENOSPC)
        finally:
            os.close(fd)
        drop_caches()
        self.assertEqual(self.read_shas(m.path(k) for k in keys), want, "reading on a full disk")
        efctest.wait_metric(m.port, "efc_cache_disk_errors_total", lambda v: v > 0,
                            "disk errors counted on a full file system")
        fails = m.log_text().count("disk cache write failed")
        efctest.log("full disk: %d 'write failed' lines, %d errors counted" %
                    (fails, metric("efc_cache_disk_errors_total")))
        self.assertGreater(fails, 0)

        # Room again: the disk tier takes blocks again (after its back-off).
        os.unlink(os.path.join(fs, "filler"))
        writes = metric("efc_cache_disk_writes_total")

        def disk_takes_writes():
            drop_caches()
            self.assertEqual(self.read_shas(m.path(k) for k in keys), want)
            return metric("efc_cache_disk_writes_total") > writes
        efctest.wait_for(disk_takes_writes, efctest.WAIT_TIMEOUT,
                         "disk writes after the file system is writable again", interval=1)

        # The cache file removed under the daemon: its open descriptor still works; reads stay
        # right.
        shutil.rmtree(cache_dir)
        drop_caches()
        self.assertEqual(self.read_shas(m.path(k) for k in keys), want, "cache file removed")
        self.assert_unmounts_cleanly(m)

        # A read-only file system (as after an ext4 error): the mount serves from memory and the
        # origin and says why the disk tier is off.
        os.mkdir(cache_dir)
        r = subprocess.run(["mount", "-o", "remount,ro", fs], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = self.mount_cached(cache_dir, mem_mb=4, disk_mb=32, mgmt=True)
        drop_caches()
        self.assertEqual(self.read_shas(m.path(k) for k in keys), want, "disk read-only")
        self.assert_unmounts_cleanly(m)
        log = m.log_text()
        self.assertIn("Read-only file system; the disk tier goes on without it", log)
        self.assertIn("no usable directory; the disk tier is off", log)

    def gets(self, keys):
        return sum(self.emu.gets(k) for k in keys)

    def warm_disk(self, m, keys):
        """Reads KEYS through M (no memory tier) until they are on its disk tier: a read past the
        page cache then makes no origin request."""
        want = [sha(FILES[k]) for k in keys]
        self.assertEqual(self.read_shas((m.path(k) for k in keys), direct=True), want)
        # The disk writes run in the background (whole pages: at least the objects' bytes).
        efctest.wait_metric(m.port, "efc_cache_disk_write_bytes_total",
                            lambda v: v >= sum(len(FILES[k]) for k in keys),
                            "%s on the disk tier" % " ".join(keys))
        self.assert_reads_from_disk(m, keys)

    def assert_reads_from_disk(self, m, keys, what="read from the disk tier"):
        """Reads KEYS past the page cache (O_DIRECT) until a read makes no origin request (the
        disk writes of blocks just fetched run in the background); every read's bytes right."""
        want = [sha(FILES[k]) for k in keys]

        def from_disk():
            before = self.gets(keys)
            self.assertEqual(self.read_shas((m.path(k) for k in keys), direct=True), want)
            return self.gets(keys) == before
        efctest.wait_for(from_disk, efctest.WAIT_TIMEOUT, what, interval=0.2)

    def test_cache_file_scribbled_while_running(self):
        """While mounted, the cache file is cut short in the middle of one block's data and garbage
        is written over another's: the next reads (O_DIRECT, no memory tier: every one reaches
        the disk) get the right bytes; the bad pages are caught, counted, fetched again and
        written back, after which the disk serves them again. A file cut short is not a failing
        disk: the disk tier does not rest."""
        keys = ["set/f00.bin", "set/f01.bin", "set/f02.bin"]
        want = [sha(FILES[k]) for k in keys]
        cache_dir = self.h.cache_dir("scribble")
        m = self.mount_cached(cache_dir, mem_mb=0, disk_mb=32, mgmt=True)
        self.warm_disk(m, keys)

        def metric(name):
            return efctest.metrics(m.port).get(name, 0)
        corrupt0 = metric("efc_cache_corrupt_pages_dropped_total")
        slots = os.path.join(cache_dir, SLOTS)
        bs, npages, used = cache_items(slots)
        self.assertGreaterEqual(len(used), 9, "expected the objects' blocks on disk")
        # Garbage over 40 KiB in the middle of the first whole block's item (three 16 KiB
        # pages), and the file cut in the middle of a later item's data: the items after it are
        # gone too.
        at = next(i for i, u in enumerate(used) if u[2] == bs and u[3] == npages)
        scribbled = used[at]
        cut = used[max(at + 1, len(used) // 2)]
        with open(slots, "r+b") as f:
            f.seek(scribbled[0] + scribbled[1] // 2)
            f.write(b"\xa5\x5a" * (20 << 10))
            f.truncate(cut[0] + cut[1] // 2)
        before = self.gets(keys)
        self.assertEqual(self.read_shas((m.path(k) for k in keys), direct=True), want,
                         "served scribbled or missing cache bytes")
        self.assertGreater(self.gets(keys), before, "the bad blocks were not fetched again")
        lost = [length for start, length, _, _ in used if start > cut[0]]
        corrupt = metric("efc_cache_corrupt_pages_dropped_total") - corrupt0
        efctest.log("%d items lost to the cut, %d pages dropped" % (len(lost), corrupt))
        # At least the scribbled pages, one of the cut slot's and every later slot's pages.
        self.assertGreaterEqual(corrupt, 3 + 1 + sum((n + PAGE - 1) // PAGE for n in lost))
        self.assertIn("missing or failed their CRC; refetching", m.log_text())
        self.assertEqual(metric("efc_cache_disk_errors_total"), 0,
                         "a file cut short counted as a failing disk")
        self.assertNotIn("reads go on from memory and the origin", m.log_text())
        # Written back: the disk serves every block again.
        self.assert_reads_from_disk(m, keys, "the refetched blocks read from the disk tier")
        self.assert_unmounts_cleanly(m)

    def test_device_eio(self):
        """The cache's device fails every read and write with EIO while mounted (faultfs under
        the cache directory), then recovers: every read stays right, served from the origin (no
        memory tier here), the failures are counted and said once in the log (not once per
        failure, nor once per retry of the resting disk), and once the device works again new
        blocks are written to the disk tier and read back from it."""
        ff = self.h.faultfs("eiofs")
        cache_dir = os.path.join(ff.mnt, "cache") + "/"
        os.mkdir(cache_dir)
        keys = ["set/f03.bin", "set/f04.bin", "set/f05.bin"]
        fresh = ["set/f06.bin"]
        want = [sha(FILES[k]) for k in keys]
        m = self.mount_cached(cache_dir, mem_mb=0, disk_mb=32, mgmt=True)
        self.warm_disk(m, keys)

        def metric(name):
            return efctest.metrics(m.port).get(name, 0)

        def failing_lines():
            return m.log_text().count("reads go on from memory and the origin")
        self.assertEqual(metric("efc_cache_disk_errors_total"), 0)
        ff.fail()
        before = self.gets(keys)
        self.assertEqual(self.read_shas((m.path(k) for k in keys), direct=True), want,
                         "reading on a failing disk")
        self.assertGreater(self.gets(keys), before, "the blocks did not come from the origin")
        self.assertGreater(ff.failed(), 0, "the daemon never reached the failing disk")
        efctest.wait_for(lambda: failing_lines() == 1, 10, "the failing disk in the log")
        self.assertIn("disk cache read failed on '%s" % cache_dir, m.log_text())

        # The disk is tried again after its rest, and fails again: counted, not logged again.
        def retried():
            self.assertEqual(self.read_shas((m.path(k) for k in keys + fresh), direct=True),
                             want + [sha(FILES[k]) for k in fresh])
            return metric("efc_cache_disk_errors_total") >= 2
        efctest.wait_for(retried, efctest.WAIT_TIMEOUT, "a second disk error", interval=0.2)
        efctest.log("failing disk: %d errors counted, %d operations failed by faultfs" %
                    (metric("efc_cache_disk_errors_total"), ff.failed()))
        self.assertEqual(failing_lines(), 1, "a log line per failure")

        # The device recovers: blocks fetched now are written to the disk tier and read from it.
        ff.recover()
        self.assert_reads_from_disk(m, ["set/f07.bin"], "new blocks read from the recovered disk")
        self.assert_reads_from_disk(m, fresh, "blocks first read while failing, from disk")
        self.assert_reads_from_disk(m, keys, "the blocks read from the recovered disk")
        self.assertEqual(m.log_text().count("works again"), 1)
        self.assertEqual(failing_lines(), 1)
        self.assert_unmounts_cleanly(m)

    def test_crash_keeps_the_disk_cache(self):
        """kill -9 of the daemon: the supervisor's new daemon takes the mount and the disk cache
        over, and a read after the crash (the page cache dropped) does not go to the origin. And
        without the supervisor, a remount on the same cache directory finds the blocks too."""
        cache_dir = self.h.cache_dir("crash")
        key = "crash.bin"
        m = self.mount_cached(cache_dir, mgmt=True)
        self.assertEqual(self.read_shas([m.path(key)]), [sha(FILES[key])])
        self.assertGreater(self.emu.gets(key), 0)
        # The disk writes run in the background: crash once every byte of the object is written
        # (whole pages, so at least its size).
        efctest.wait_metric(m.port, "efc_cache_disk_write_bytes_total",
                            lambda v: v >= len(FILES[key]), "all of %s on the disk tier" % key)
        pids = efctest.daemon_pids(m.mnt)
        self.assertEqual(len(pids), 1, pids)
        os.kill(pids[0], signal.SIGKILL)
        efctest.wait_for(lambda: efctest.serving_pid(m.mnt) not in (None, pids[0]) and
                         efctest.pid_alive(efctest.serving_pid(m.mnt)), 60,
                         "a new daemon for %s" % m.mnt)
        drop_caches()
        before = self.emu.gets(key)
        self.assertEqual(self.read_shas([m.path(key)]), [sha(FILES[key])])
        self.assertEqual(self.emu.gets(key), before, "the read after the crash went to the origin")
        self.assert_unmounts_cleanly(m)

        # Unsupervised: the mount dies with its daemon; a remount finds the blocks.
        m = self.mount_cached(cache_dir, extra=["g_supervisor_Enable=false"])
        pid = efctest.daemon_pids(m.mnt)[0]
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(efctest.wait_until(lambda: not efctest.pid_alive(pid), 10))
        efctest.unmount(efctest.canon(m.mnt))  # the dead mount: lazily detached
        self.assertFalse(efctest.is_mounted(m.mnt))
        try:
            os.unlink(efctest.state_file(m.mnt))  # a crashed daemon leaves its state file
        except FileNotFoundError:
            pass
        m2 = self.mount_cached(cache_dir)
        drop_caches()
        before = self.emu.gets(key)
        self.assertEqual(self.read_shas([m2.path(key)]), [sha(FILES[key])])
        self.assertEqual(self.emu.gets(key), before, "the read after the remount went to the origin")
        self.assert_unmounts_cleanly(m2)


if __name__ == "__main__":
    efctest.main()
