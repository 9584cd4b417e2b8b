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
SLOTS = "efc-cache-v1.slots"


def used_slots(path):
    """(data offset, block size, [(slot index, block length)]) of the slots in use."""
    with open(path, "rb") as f:
        sb = f.read(64)
        assert sb[:8] == b"EFCCACHE", "not a slot file: %r" % sb[:8]
        block_size, page_size, nslots, hdr_size = struct.unpack_from("<IIII", sb, 16)
        data_off, = struct.unpack_from("<Q", sb, 32)
        f.seek(4096)
        hdrs = f.read(nslots * hdr_size)
    used = []
    for i in range(nslots):
        h = hdrs[i * hdr_size:(i + 1) * hdr_size]
        if h[:4] == b"EFCS":
            used.append((i, struct.unpack_from("<I", h, 40)[0]))
    return data_off, block_size, used


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
        data_off, bs, used = used_slots(slots)
        self.assertGreaterEqual(len(used), 4, "expected the object's blocks on disk")
        with open(slots, "r+b") as f:
            for i, length in used:
                for off in (0, length // 2, length - 1):
                    f.seek(data_off + i * bs + off)
                    b = f.read(1)
                    f.seek(data_off + i * bs + off)
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
