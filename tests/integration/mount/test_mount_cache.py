"""The block cache on the read path (Configuration 2, single-node cache): a warm re-read makes no
origin request, also after the kernel's caches are dropped and after an unmount + remount on the
same disk cache directory; concurrent cold readers of one object pull it from the origin about
once; a changed object serves its new bytes; O_DIRECT reads reach the daemon through the kernel's
own O_DIRECT path (a MAP_SHARED mapping of such a descriptor works); a disk cache directory that fills up, or does not
exist, still lets every read succeed.

Origin requests are counted by ossemu (GET /stats, by_key). Every mount has its own disk cache
directory unless a test shares one on purpose."""

import errno
import mmap
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, MIB, pattern, drop_caches, sha256_bytes as sha  # noqa: E402

FILES = {
    "warm.bin": pattern(9 * MIB + 123, 11),
    "persist.bin": pattern(6 * MIB + 5, 12),
    "shared.bin": pattern(16 * MIB, 13),
    "change.bin": pattern(3 * MIB + 7, 14),
    "tiny.txt": b"tiny\n",
    "odirect.bin": pattern(4 * MIB + 4096 + 17, 15),
}

# Reads PATH with N threads at once (each its own open file), prints one sha256 per thread.
CONCURRENT = efctest.SHA_OF + r"""
import threading
path, n = sys.argv[1], int(sys.argv[2])
out = [None] * n
def rd(i):
    out[i] = sha_of(path)
ts = [threading.Thread(target=rd, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print("\n".join(str(x) for x in out))
"""


class CacheMount(EfcTestCase):
    BUCKET_FILES = FILES

    def mount_cached(self, cache_dir=None, extra=(), check=True, mgmt=False):
        opts = efctest.cache_options(cache_dir or self.h.cache_dir(), extra=extra)
        return self.h.mount(self.emu, log=True, extra=opts, check=check, mgmt=mgmt)

    def test_warm_reread_no_origin(self):
        m = self.mount_cached(mgmt=True)
        key = "warm.bin"
        self.assertEqual(self.read_sha(m.path(key)), sha(FILES[key]))
        cold = self.emu.gets(key)
        self.assertGreater(cold, 0, "the cold read made no GET?")
        # The fills finish with the reads; the disk writer works behind them: wait until it has
        # written every byte of the object (it writes whole pages, so at least its size).
        efctest.wait_metric(m.port, "efc_cache_disk_write_bytes_total",
                            lambda v: v >= len(FILES[key]), "all of %s on the disk tier" % key)
        for i in range(2):
            drop_caches()
            before = self.emu.gets(key)
            self.assertEqual(self.read_sha(m.path(key)), sha(FILES[key]), "warm read %d" % i)
            self.assertEqual(self.emu.gets(key), before, "warm read %d went to the origin" % i)
        # random reads inside the cached object hit too
        before = self.emu.gets(key)
        with open(m.path(key), "rb") as f:
            for off in (0, 4097, 3 * MIB - 5, 7 * MIB + 999, 9 * MIB + 100):
                f.seek(off)
                self.assertEqual(f.read(5000), FILES[key][off:off + 5000], "at %d" % off)
        self.assertEqual(self.emu.gets(key), before, "random warm reads went to the origin")
        self.assert_unmounts_cleanly(m)
        self.assertRegex(m.log_text(), r"cache: tier_read \d+ .*hit \d+")

    def test_remount_same_disk_cache(self):
        cache_dir = self.h.cache_dir("pcache")
        key = "persist.bin"
        m = self.mount_cached(cache_dir)
        self.assertEqual(self.read_sha(m.path(key)), sha(FILES[key]))
        self.assertGreater(self.emu.gets(key), 0)
        self.assert_unmounts_cleanly(m)  # cache_free waits for the disk writes
        m2 = self.mount_cached(cache_dir)
        drop_caches()
        before = self.emu.gets(key)
        self.assertEqual(self.read_sha(m2.path(key)), sha(FILES[key]))
        self.assertEqual(self.emu.gets(key), before, "the read after a remount went to the origin")
        self.assert_unmounts_cleanly(m2)
        self.assertRegex(m2.log_text(), r"cache: .* [1-9]\d* blocks found on disk")

    def test_concurrent_cold_readers(self):
        m = self.mount_cached()
        key = "shared.bin"
        b0 = self.emu.key_stats(key).get("bytes", 0)
        rc, out, err, _ = efctest.run_bounded(CONCURRENT, 120, [m.path(key), "8"])
        self.assertEqual(rc, 0, err[-500:])
        sums = out.split()
        self.assertEqual(sums, [sha(FILES[key])] * 8)
        pulled = self.emu.key_stats(key)["bytes"] - b0
        self.assertLessEqual(pulled, 1.25 * len(FILES[key]),
                             "8 readers pulled %d bytes of a %d-byte object" % (pulled, len(FILES[key])))
        self.assert_unmounts_cleanly(m)

    def test_changed_object_new_bytes(self):
        m = self.mount_cached()
        key = "change.bin"
        path = os.path.join(self.src, key)
        old = FILES[key]
        self.assertEqual(self.read_sha(m.path(key)), sha(old))
        new = pattern(len(old), 99)  # same size: only the ETag tells the versions apart
        try:
            # A handle of the old version on a second mount (its own, cold cache) reads a part
            # of the object its cache does not hold after the change: the miss's If-Match
            # fails and the reader gets ESTALE, never bytes of the new version. Its readahead
            # is off: the first read must not bring in the tail before the change (a race the
            # readahead sometimes won, and the test then read the old bytes, rightly).
            m2 = self.mount_cached(extra=["g_read_AheadKB=0"])
            f = open(m2.path(key), "rb")
            try:
                self.assertEqual(f.read(4096), old[:4096])
                efctest.write_file(self.src, key, new)
                f.seek(len(old) - 10000)
                with self.assertRaises(OSError) as cm:
                    f.read(10000)
                self.assertEqual(cm.exception.errno, errno.ESTALE)
            finally:
                f.close()
            self.assert_unmounts_cleanly(m2)
            self.assertEqual(self.read_sha(m.path(key)), sha(new), "served the old version")
            drop_caches()
            self.assertEqual(self.read_sha(m.path(key)), sha(new), "old version after a drop")
            # and back to different content of another size
            newer = pattern(len(old) + 4096, 100)
            efctest.write_file(self.src, key, newer)
            self.assertEqual(self.read_sha(m.path(key)), sha(newer))
        finally:
            efctest.write_file(self.src, key, old)
        self.assert_unmounts_cleanly(m)

    def test_o_direct_open(self):
        """An O_DIRECT open is read through the kernel's own O_DIRECT path, as the null FUSE
        ceiling of bench/ is (fs.c sets no FOPEN_DIRECT_IO): every read reaches the daemon with
        the right bytes, a MAP_SHARED mapping of the descriptor works (FOPEN_DIRECT_IO refuses it
        with ENODEV), and a reopen after the object grew reads up to its new end."""
        m = self.mount_cached(mgmt=True)
        key = "odirect.bin"
        old = FILES[key]
        self.assertEqual(self.read_sha(m.path(key)), sha(old))  # in the block cache and page cache

        def direct_read(expect):
            """The object read with O_DIRECT 64 KiB at a time, then mapped: (bytes, reads made)."""
            fd = os.open(m.path(key), os.O_RDONLY | os.O_DIRECT)
            buf = mmap.mmap(-1, 64 * 1024)  # O_DIRECT wants an aligned buffer
            out, off, reads = [], 0, 0
            try:
                while off <= len(expect) and reads < 1000:
                    n = os.preadv(fd, [buf], off)
                    reads += 1
                    if n == 0:
                        break
                    out.append(buf[:n])
                    off += n
                mapped = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
                try:
                    self.assertEqual(len(mapped), len(expect), "the mapping's size")
                    self.assertEqual(mapped[-4096:], expect[-4096:], "a MAP_SHARED mapping")
                finally:
                    mapped.close()
            finally:
                buf.close()
                os.close(fd)
            return b"".join(out), reads

        before = efctest.metrics(m.port)["efc_read_requests_total"]
        got, reads = direct_read(old)
        self.assertEqual(sha(got), sha(old), "O_DIRECT bytes")
        served = efctest.metrics(m.port)["efc_read_requests_total"] - before
        # the page cache holds the whole object, yet every read with data went to the daemon
        self.assertGreaterEqual(served, reads - 1, "O_DIRECT reads the page cache answered")
        new = pattern(len(old) + 3 * MIB + 5, 16)
        try:
            efctest.write_file(self.src, key, new)
            got, _ = direct_read(new)
            self.assertEqual(len(got), len(new), "an O_DIRECT reopen after the object grew")
            self.assertEqual(sha(got), sha(new), "the new bytes with O_DIRECT")
        finally:
            efctest.write_file(self.src, key, old)
        self.assert_unmounts_cleanly(m)

    def test_full_cache_disk_still_reads(self):
        cache_dir = self.h.dir("smalldisk")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", cache_dir],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        # registered before the efc mount: cleanups run last-in first-out, so after its unmount
        self.addCleanup(subprocess.run, ["umount", "-l", cache_dir], capture_output=True,
                        timeout=30)
        m = self.mount_cached(cache_dir + "/", extra=["g_tier_DadiMemCacheCapacityMB=4"])
        for key in ("warm.bin", "shared.bin", "tiny.txt"):
            self.assertEqual(self.read_sha(m.path(key)), sha(FILES[key]), key)
        drop_caches()
        for key in ("warm.bin", "shared.bin", "tiny.txt"):
            self.assertEqual(self.read_sha(m.path(key)), sha(FILES[key]), "%s again" % key)
        self.assert_unmounts_cleanly(m)

    def test_bad_cache_path_degrades(self):
        # The cache module skips a directory it cannot use with a warning; the mount goes on
        # (memory tier only) and names the option in its log.
        m = self.mount_cached("/nonexistent/efc-cache-dir/")
        key = "warm.bin"
        self.assertEqual(self.read_sha(m.path(key)), sha(FILES[key]))
        drop_caches()
        before = self.emu.gets(key)
        self.assertEqual(self.read_sha(m.path(key)), sha(FILES[key]))
        self.assertEqual(self.emu.gets(key), before, "the memory tier did not serve the re-read")
        self.assert_unmounts_cleanly(m)
        self.assertIn("g_tier_DadiDiskCachePath", m.log_text())
        self.assertFalse(os.path.exists("/nonexistent/efc-cache-dir"))

    def test_bad_page_size_fails_mount(self):
        # A geometry the cache refuses fails the mount with one line naming the option.
        m = self.mount_cached(extra=["g_tier_DadiCachePageSizeKB=12"], check=False)
        self.assertNotEqual(m.result.returncode, 0)
        self.assertIn("g_tier_DadiCachePageSizeKB", m.result.stderr)
        self.assertFalse(efctest.is_mounted(m.mnt))


if __name__ == "__main__":
    efctest.main()
