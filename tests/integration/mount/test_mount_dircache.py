"""The readdir and metadata caches, against the seed's consistency table:

| Configuration                     | File update visibility            | New file visibility          |
| Metadata cache disabled (default) | Reopen the file to see changes    | Clear readdir cache          |
| Metadata cache enabled            | Clear metadata cache, then reopen | Clear both readdir and meta  |

plus the readdir cache's options (g_readdircache_Enable, MaxCount, RemainTime) and the clearing
endpoints (/v1/action/clear_readdir_cache, /v1/action/clear_metadata_cache). Listing requests are
counted by ossemu (GET /stats list_requests)."""

import errno
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, pattern, read_bytes as read  # noqa: E402

FILES = {
    "d1/a.txt": b"version one\n",
    "d1/b.txt": b"bbb\n",
    "d2/c.txt": b"ccc\n",
    "m/old.bin": pattern(300000, 5),
}


def fuse_ops(port):
    """The daemon's FUSE request counters ({"lookup": n, "open": n, ...}; "forget": inodes the
    kernel forgot). A name the kernel keeps is not looked up again unless the kernel dropped its
    inode (drop_caches by anything else on the machine, memory pressure): a test allows as many
    lookups as inodes forgotten."""
    mt = efctest.metrics(port)
    return {op: mt['efc_fuse_requests_total{op="%s"}' % op] for op in ("lookup", "open", "forget")}


class DirCache(EfcTestCase):
    def setUp(self):
        super().setUp()
        # Each test changes the bucket: each gets its own copy.
        self.src, self.emu = self.h.bucket(FILES)

    def mount(self, extra=()):
        m = self.h.mount(self.emu, mgmt=True, extra=extra)
        self.port = m.port
        return m

    def api(self, path):
        body = self.mgmt_api(self.port, path)
        self.assertEqual(body["ErrorCode"], 0, body)
        return body

    def lists(self):
        return self.emu.stats()["list_requests"]

    def test_default_tables_row(self):
        # Metadata cache off: a changed file shows on reopen; a new file is openable at once
        # but shows in ls only once the readdir cache is cleared.
        m = self.mount()
        self.assertEqual(sorted(os.listdir(m.path("d1"))), ["a.txt", "b.txt"])
        n = self.lists()
        self.assertEqual(sorted(os.listdir(m.path("d1"))), ["a.txt", "b.txt"])
        self.assertEqual(self.lists(), n, "a second ls listed the bucket again")

        efctest.write_file(self.src, "d1/new.txt", b"new\n")
        efctest.write_file(self.src, "d1/a.txt", b"version two, longer\n")
        self.assertEqual(read(m.path("d1", "a.txt")), b"version two, longer\n")
        self.assertEqual(read(m.path("d1", "new.txt")), b"new\n")  # no negative caching
        self.assertEqual(sorted(os.listdir(m.path("d1"))), ["a.txt", "b.txt"])

        self.api("/v1/action/clear_readdir_cache")
        self.assertEqual(sorted(os.listdir(m.path("d1"))), ["a.txt", "b.txt", "new.txt"])
        # clearing the metadata cache while it is off is harmless
        self.api("/v1/action/clear_metadata_cache")
        self.assert_unmounts_cleanly(m)

    def test_open_after_lookup(self):
        # Close-to-open: an open asks the store whatever a lookup said before it, even a lookup
        # made a moment ago for a stat(2) of the old version (FUSE does not tell which lookup an
        # open follows; taking the lookup's answer once served the old bytes here).
        m = self.mount()
        self.assertEqual(read(m.path("d2", "c.txt")), b"ccc\n")
        efctest.write_file(self.src, "d2/c.txt", b"cccc, changed\n")
        self.assertEqual(read(m.path("d2", "c.txt")), b"cccc, changed\n")

        os.stat(m.path("d1", "b.txt"))  # a lookup of the old version, answered just now
        efctest.write_file(self.src, "d1/b.txt", b"b, changed\n")
        self.assertEqual(read(m.path("d1", "b.txt")), b"b, changed\n")
        self.assert_unmounts_cleanly(m)

    def test_metadata_cache_row(self):
        # Metadata cache on: neither a change nor a new file is seen until it is cleared (with
        # the block cache holding the old version, a reopen reads the old version whole).
        m = self.mount(["g_metadata_CacheEnable=true"] +
                       efctest.cache_options(self.h.cache_dir("cache"), mem_mb=16, disk_mb=64))
        old = FILES["m/old.bin"]
        self.assertEqual(os.listdir(m.path("m")), ["old.bin"])
        self.assertEqual(read(m.path("m", "old.bin")), old)
        with self.assertRaises(FileNotFoundError):
            os.stat(m.path("m", "ghost.txt"))
        new = pattern(len(old) + 100, 6)
        efctest.write_file(self.src, "m/old.bin", new)
        efctest.write_file(self.src, "m/ghost.txt", b"boo\n")
        time.sleep(1.2)  # past the kernel's attribute and entry timeouts (1 s): time is the state
        heads = self.emu.key_stats("m/old.bin").get("head", 0)
        self.assertEqual(os.stat(m.path("m", "old.bin")).st_size, len(old))
        self.assertEqual(read(m.path("m", "old.bin")), old, "the metadata cache did not hold")
        self.assertEqual(self.emu.key_stats("m/old.bin").get("head", 0), heads,
                         "open asked the origin despite the metadata cache")
        with self.assertRaises(FileNotFoundError):
            os.stat(m.path("m", "ghost.txt"))  # the negative entry holds

        self.api("/v1/action/clear_metadata_cache")
        time.sleep(1.2)  # past the kernel's attribute and entry timeouts (1 s): time is the state
        self.assertEqual(read(m.path("m", "old.bin")), new)
        # a new file needs both caches cleared: the cached listing still lacks it
        self.assertEqual(sorted(os.listdir(m.path("m"))), ["old.bin"])
        with self.assertRaises(FileNotFoundError):
            os.stat(m.path("m", "ghost.txt"))
        self.api("/v1/action/clear_readdir_cache")
        self.api("/v1/action/clear_metadata_cache")
        time.sleep(1.2)  # past the kernel's attribute and entry timeouts (1 s): time is the state
        self.assertEqual(sorted(os.listdir(m.path("m"))), ["ghost.txt", "old.bin"])
        self.assertEqual(read(m.path("m", "ghost.txt")), b"boo\n")
        self.assert_unmounts_cleanly(m)

    def test_readdir_cache_off(self):
        m = self.mount(["g_readdircache_Enable=false"])
        self.assertEqual(sorted(os.listdir(m.path("d1"))), ["a.txt", "b.txt"])
        efctest.write_file(self.src, "d1/new.txt", b"new\n")
        self.assertEqual(sorted(os.listdir(m.path("d1"))), ["a.txt", "b.txt", "new.txt"])
        n = self.lists()
        os.listdir(m.path("d1"))
        self.assertGreater(self.lists(), n, "ls did not list with the readdir cache off")
        self.assert_unmounts_cleanly(m)

    def test_remain_time_and_max_count(self):
        m = self.mount(["g_readdircache_RemainTime=2", "g_readdircache_MaxCount=1"])
        self.assertEqual(sorted(os.listdir(m.path("d1"))), ["a.txt", "b.txt"])
        efctest.write_file(self.src, "d1/new.txt", b"new\n")
        self.assertEqual(sorted(os.listdir(m.path("d1"))), ["a.txt", "b.txt"])
        time.sleep(2.5)  # past g_readdircache_RemainTime=2: time is the state
        self.assertEqual(sorted(os.listdir(m.path("d1"))), ["a.txt", "b.txt", "new.txt"],
                         "the listing outlived g_readdircache_RemainTime")
        # MaxCount=1: listing d2 pushes d1 out
        efctest.write_file(self.src, "d1/newer.txt", b"newer\n")
        self.assertEqual(os.listdir(m.path("d2")), ["c.txt"])
        self.assertIn("newer.txt", os.listdir(m.path("d1")),
                      "g_readdircache_MaxCount=1 kept two listings")
        self.assert_unmounts_cleanly(m)

    def test_deleted_file_is_gone_on_open(self):
        # A name the cached listing still shows, deleted at the origin: open says ENOENT.
        m = self.mount()
        self.assertIn("b.txt", os.listdir(m.path("d1")))
        os.unlink(os.path.join(self.src, "d1", "b.txt"))
        time.sleep(1.2)  # past the kernel's attribute and entry timeouts (1 s): time is the state
        with self.assertRaises(OSError) as cm:
            read(m.path("d1", "b.txt"))
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assert_unmounts_cleanly(m)

    def test_lookups_wait_for_the_listing(self):
        # Many names of one directory looked up at once: the 4th probe lists the directory
        # whole, and the lookups that come meanwhile wait for that listing instead of each
        # probing its own name (the 20,000-file epoch sent 400 to 600 such probes).
        names = ["f%03d" % i for i in range(64)]
        for n in names:
            efctest.write_file(self.src, "e/" + n, n.encode())
        m = self.mount()
        os.stat(m.path("e"))  # the directory's own lookup, not counted
        self.emu.faults({"latency_ms": 100})  # the probes would race a listing this slow
        n0 = self.lists()
        errors = []

        def reader(k):
            try:
                for n in names[k::16]:
                    self.assertEqual(read(m.path("e", n)), n.encode())
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)
        threads = [threading.Thread(target=reader, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(efctest.scaled(60))
        self.assertFalse(any(t.is_alive() for t in threads), "readers still running")
        self.assertEqual(errors, [])
        self.emu.faults({})
        # 3 probes, then one listing of one page (EFC_PROBE_LIST_AFTER is 4)
        self.assertLessEqual(self.lists() - n0, 4, "lookups probed while the directory was listed")
        self.assert_unmounts_cleanly(m)

    def test_metadata_cache_kernel_keeps_names(self):
        # With the metadata cache on, the kernel keeps the names and attributes it was given
        # (even with g_fuse_AttrTimeoutSec=0), so a second pass over the files sends no lookup:
        # an open and a release a file. Clearing both caches takes them back: stat then shows
        # the object's new size at once (clearing only the metadata cache leaves the readdir
        # cache's listing to answer the lookup, as before).
        names = ["g%d" % i for i in range(8)]
        for n in names:
            efctest.write_file(self.src, "k/" + n, n.encode())
        m = self.mount(["g_metadata_CacheEnable=true", "g_fuse_AttrTimeoutSec=0"])
        for n in names:
            self.assertEqual(read(m.path("k", n)), n.encode())
        first = fuse_ops(self.port)
        for n in names:
            self.assertEqual(read(m.path("k", n)), n.encode())
        second = fuse_ops(self.port)
        self.assertEqual(second["open"] - first["open"], len(names))
        self.assertLessEqual(second["lookup"] - first["lookup"], second["forget"],
                             "the kernel looked the names up again: it did not keep them")

        efctest.write_file(self.src, "k/g0", b"g0, now longer\n")
        self.assertEqual(os.stat(m.path("k", "g0")).st_size, 2)  # the metadata cache holds
        self.api("/v1/action/clear_readdir_cache")
        self.api("/v1/action/clear_metadata_cache")
        self.assertEqual(os.stat(m.path("k", "g0")).st_size, len(b"g0, now longer\n"),
                         "the kernel kept the attributes past clear_metadata_cache")
        self.assertEqual(read(m.path("k", "g0")), b"g0, now longer\n")
        self.assert_unmounts_cleanly(m)


if __name__ == "__main__":
    efctest.main()
