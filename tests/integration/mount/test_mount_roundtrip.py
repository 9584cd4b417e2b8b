"""Round trips of small files (issue 15, item 2), counted by ossemu (GET /stats): once a
directory is listed, a cold open + read of a small file costs one ranged GET (its answer is the
metadata and the first block, which the read then finds) and no HEAD; a warm reopen under the
default consistency (close-to-open) costs one GET with If-None-Match, answered 304 with no body;
a changed object is one GET that brings its new bytes. An empty object, a large one and a mount
without a block cache read right too. Opens do not wait for one another: N files opened at once
put N GETs in flight at once (ossemu's max_inflight), cold and warm.

Run with EFC_ROUNDTRIP_REPORT=1 to print the counts (what the issue's note quotes)."""

import os
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, MIB, pattern, read_bytes as read  # noqa: E402

N = 12
SMALL = {"small/f%02d.bin" % i: pattern(1000 + 9000 * i, 40 + i) for i in range(N)}
FILES = dict(SMALL)
FILES["small/empty"] = b""
FILES["big/big.bin"] = pattern(3 * MIB + 11, 60)
# Opened by name without a listing first, as a training loader does with an index of its files.
BYNAME = {"byname/s%02d" % i: pattern(2000 + 100 * i, 70 + i) for i in range(30)}
FILES.update(BYNAME)
# Opened all at once by as many threads.
CONC = {"conc/c%02d" % i: pattern(3000 + 700 * i, 80 + i) for i in range(8)}
FILES.update(CONC)
# The latency ossemu adds to each request of conc/: the window in which the opens, started
# together, must all have reached the store. Generous, so a loaded machine that starts the threads
# slowly does not fail the test; a daemon that serializes opens never has two GETs in flight.
CONC_LATENCY_MS = 2500
PROBE_LIST_AFTER = 4  # fs.c's EFC_PROBE_LIST_AFTER


def report(what, st):
    if os.environ.get("EFC_ROUNDTRIP_REPORT"):
        by_status = {k: v for k, v in sorted(st["by_status"].items())}
        heads = sum(k.get("head", 0) for k in st["by_key"].values())
        gets = sum(k.get("get", 0) for k in st["by_key"].values())
        print("%-44s requests %3d  GET %3d  HEAD %3d  LIST %2d  by status %s  body bytes %d" %
              (what, st["total"]["requests"], gets, heads, st["list_requests"], by_status,
               st["total"]["bytes"]), file=sys.stderr)


class RoundTrip(EfcTestCase):
    def setUp(self):
        super().setUp()
        # One test changes an object: each test gets its own bucket.
        self.src, self.emu = self.h.bucket(FILES)

    def read_all(self, m, names):
        for k in names:
            self.assertEqual(read(m.path(k)), FILES[k], k)

    def per_key(self, st, names, field):
        return {k: st["by_key"].get(k, {}).get(field, 0) for k in names}

    def test_cached_cold_warm_changed(self):
        m = self.h.mount(self.emu, mgmt=True,
                         extra=efctest.cache_options(self.h.cache_dir("cache"), mem_mb=32,
                                                     disk_mb=64))
        # Listings of the root and of small/ answer every lookup below for the readdir cache's
        # hour, however long the kernel keeps its entries.
        self.assertEqual(sorted(os.listdir(m.path())), ["big", "byname", "conc", "small"])
        self.assertEqual(sorted(os.listdir(m.path("small"))),
                         sorted([os.path.basename(k) for k in SMALL] + ["empty"]))
        names = sorted(SMALL)

        # Cold: one GET each (the first block; the read hits the cache), no HEAD, no LIST.
        self.emu.reset_stats()
        self.read_all(m, names)
        st = self.emu.stats()
        report("cold open+read of %d small files" % N, st)
        self.assertEqual(self.per_key(st, names, "get"), {k: 1 for k in names})
        self.assertEqual(self.per_key(st, names, "head"), {k: 0 for k in names})
        self.assertEqual(st["list_requests"], 0)
        self.assertEqual(st["total"]["requests"], N)
        # Every first block went to the cache: the layer holds none (its prefetch runs behind
        # the open, so it may lag the reads a moment).
        efctest.wait_metric(m.port, "efc_first_block_bytes", lambda v: v == 0,
                            "every first block taken by the cache")
        mt = efctest.metrics(m.port)
        self.assertEqual(mt["efc_first_block_puts_total"], N)
        self.assertGreaterEqual(mt["efc_first_block_served_total"], N)
        self.assertEqual(mt["efc_first_block_dropped_total"], 0)

        # Warm: one conditional GET each, answered 304 with no body.
        self.emu.reset_stats()
        self.read_all(m, names)
        st = self.emu.stats()
        report("warm reopen+read of %d small files" % N, st)
        self.assertEqual(self.per_key(st, names, "get"), {k: 1 for k in names})
        self.assertEqual(st["by_status"], {"304": N})
        self.assertEqual(st["total"]["bytes"], 0)

        # An empty object: one conditional GET (its size and ETag came with the listing).
        self.emu.reset_stats()
        self.assertEqual(read(m.path("small", "empty")), b"")
        st = self.emu.stats()
        self.assertEqual(st["total"]["requests"], 1, st)
        self.assertEqual(st["by_status"], {"304": 1})

        # Changed: the same one GET brings the new version (close-to-open), no HEAD.
        new = pattern(5000, 99)
        efctest.write_file(self.src, "small/f03.bin", new)
        self.emu.reset_stats()
        self.assertEqual(read(m.path("small", "f03.bin")), new)
        st = self.emu.stats()
        report("reopen+read of 1 changed small file", st)
        self.assertEqual(st["total"]["requests"], 1, st)
        self.assertEqual(st["by_key"]["small/f03.bin"].get("get"), 1)
        # Grown past what the open expected (its buffer grows as the bytes come), and past a block.
        for name, size in (("f04.bin", 300000), ("f05.bin", 3 * MIB // 2)):
            new = pattern(size, 100 + size % 7)
            efctest.write_file(self.src, "small/" + name, new)
            self.emu.reset_stats()
            self.assertEqual(read(m.path("small", name)), new, name)
            st = self.emu.stats()
            self.assertEqual(st["by_key"]["small/" + name].get("get"), 1 if size < MIB else 2, st)

        # Larger than a block: a conditional GET, then the blocks through the cache.
        self.assertEqual(read(m.path("big", "big.bin")), FILES["big/big.bin"])
        self.emu.reset_stats()
        self.assertEqual(read(m.path("big", "big.bin")), FILES["big/big.bin"])
        st = self.emu.stats()
        self.assertEqual(st["by_status"], {"304": 1}, "a warm big file was read again")
        self.assert_unmounts_cleanly(m)

    def test_names_of_one_directory_by_one_listing(self):
        # Names of one directory opened one by one, never listed by the application: after a few
        # lookups have probed single names, one listing of the directory answers the rest; each
        # file then costs its one GET.
        m = self.h.mount(self.emu, extra=efctest.cache_options(self.h.cache_dir("cache"), mem_mb=32,
                                                               disk_mb=64))
        names = sorted(BYNAME)
        os.listdir(m.path())  # the root's listing answers the lookups of byname/ itself
        self.emu.reset_stats()
        self.read_all(m, names)
        st = self.emu.stats()
        report("open+read of %d files by name, no ls" % len(names), st)
        self.assertEqual(self.per_key(st, names, "get"), {k: 1 for k in names})
        self.assertEqual(self.per_key(st, names, "head"), {k: 0 for k in names})
        # The probes of names in byname/ before the listing, then the listing.
        self.assertEqual(st["list_requests"], PROBE_LIST_AFTER, st)
        self.assert_unmounts_cleanly(m)

    def open_at_once(self, m, names):
        """Opens (and closes) NAMES, each from its own thread, all started together; the errors.
        No read: a read racing the cache's prefetch of the first block may cost a GET of its own
        (the serial tests above count those)."""
        barrier = threading.Barrier(len(names))
        errors = []

        def one(k):
            try:
                barrier.wait(timeout=efctest.scaled(30))
                os.close(os.open(m.path(k), os.O_RDONLY))
            except Exception as ex:  # reported below: a thread's exception would be lost
                errors.append("%s: %r" % (k, ex))

        threads = [threading.Thread(target=one, args=(k,)) for k in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(efctest.scaled(120))
        self.assertFalse([t for t in threads if t.is_alive()], "opens still running")
        return errors

    def test_opens_in_flight_at_once(self):
        m = self.h.mount(self.emu, mgmt=True,
                         extra=efctest.cache_options(self.h.cache_dir("cache"), mem_mb=32,
                                                     disk_mb=64))
        names = sorted(CONC)
        os.listdir(m.path())
        os.listdir(m.path("conc"))  # the lookups below are answered from this listing
        self.emu.faults({"latency_ms": efctest.scaled(CONC_LATENCY_MS), "match": "conc/"})
        for what, status in (("cold", "206"), ("warm", "304")):
            self.emu.reset_stats()
            self.assertEqual(self.open_at_once(m, names), [], what)
            st = self.emu.stats()
            report("%s opens of %d files at once" % (what, len(names)), st)
            self.assertEqual(self.per_key(st, names, "get"), {k: 1 for k in names},
                             "%s: %s" % (what, st))
            self.assertEqual(st["by_status"], {status: len(names)}, "%s: %s" % (what, st))
            self.assertEqual(st["max_inflight"], len(names), "%s: GETs in flight at once" % what)
            # The next opens revalidate what the cache holds: every first block in it.
            efctest.wait_metric(m.port, "efc_first_block_bytes", lambda v: v == 0,
                                "every first block taken by the cache")
        self.emu.faults({})
        self.read_all(m, names)
        self.assert_unmounts_cleanly(m)

    def test_without_cache(self):
        # No block cache: the first block waits in the first-block layer for the reader.
        m = self.h.mount(self.emu)
        os.listdir(m.path())
        os.listdir(m.path("small"))
        names = sorted(SMALL)
        self.emu.reset_stats()
        self.read_all(m, names)
        st = self.emu.stats()
        report("cold open+read, no block cache", st)
        self.assertEqual(self.per_key(st, names, "get"), {k: 1 for k in names})
        self.assertEqual(st["total"]["requests"], N)
        self.assertEqual(read(m.path("small", "empty")), b"")
        self.assertEqual(read(m.path("big", "big.bin")), FILES["big/big.bin"])
        self.assert_unmounts_cleanly(m)


if __name__ == "__main__":
    efctest.main()
