"""Runtime update and rollback (cli/efc_runtime_ops, efc/handover.c): the daemon hands its mount
to a new process with changed options while an application keeps reading.

- a reader (its own process) reads a large object over and over with small reads, dropping the
  file's pages before each pass so the reads reach the daemon, checks every byte against the
  source, and keeps a second descriptor open that it reads after both updates: no error, every
  byte right; the state file shows the new value and a new pid, the old pid is gone; rollback
  restores the value the same way;
- invalid updates (unknown option, bad value, an option that cannot change while mounted) fail
  with a clear one-line message and exit 1, and the daemon keeps serving with the same pid;
- names looked up before the update, a directory and a file held open, keep working after it
  (the inode table and the handles are restored: with a long attribute timeout the kernel sends
  their inode and handle numbers without looking anything up again);
- with a disk cache, blocks cached before the update are read after it with no origin GET.
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, MIB, pattern, drop_caches, free_port  # noqa: E402

TOOL = os.path.join(efctest.SOURCE_DIR, "cli", "efc_runtime_ops")
BIG = pattern(24 * MIB + 777, 31)
FILES = {
    "big.bin": BIG,
    "cached.bin": pattern(5 * MIB + 3, 32),
    "d/a.txt": b"alpha\n",
    "d/b.txt": b"bravo\n" * 100,
    "d/sub/c.txt": pattern(70000, 33),
    "d/late.txt": b"looked up only after the update\n",
}

# The reader: argv = path, source path, progress file, stop file. Passes over PATH with reads of
# varying small sizes, each pass after dropping the file's pages (so the reads reach the daemon),
# every byte compared with SOURCE; HELD is opened once at the start and read after the stop file
# appears. Progress: the number of passes done, rewritten after each pass. Prints a JSON summary.
READER = r"""
import json, os, random, sys, time
path, source, progress, stop = sys.argv[1:5]
with open(source, "rb") as f:
    want = f.read()
errors, passes, nbytes, slowest = [], 0, 0, 0.0
rnd = random.Random(7)
held = os.open(path, os.O_RDONLY)
def note(msg):
    if len(errors) < 20:
        errors.append(msg)
try:
    while not os.path.exists(stop) and not errors:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            off = 0
            while off < len(want):
                n = rnd.choice((512, 4096, 8192, 65536, 131072 + 17))
                t = time.monotonic()
                b = os.pread(fd, n, off)
                slowest = max(slowest, time.monotonic() - t)
                if b != want[off:off + n]:
                    note("pass %d: bytes at %d differ (%d read)" % (passes, off, len(b)))
                    break
                off += len(b)
                nbytes += len(b)
                if not b:
                    note("pass %d: early EOF at %d" % (passes, off))
                    break
        except OSError as e:
            note("pass %d: %s" % (passes, e))
        finally:
            os.close(fd)
        passes += 1
        with open(progress + ".tmp", "w") as f:
            f.write(str(passes))
        os.replace(progress + ".tmp", progress)
    # the descriptor opened before the updates
    os.posix_fadvise(held, 0, 0, os.POSIX_FADV_DONTNEED)
    for off in (0, 4096 * 3 + 5, len(want) // 2, len(want) - 100):
        try:
            b = os.pread(held, 5000, off)
            if b != want[off:off + 5000]:
                note("held fd: bytes at %d differ" % off)
        except OSError as e:
            note("held fd at %d: %s" % (off, e))
finally:
    os.close(held)
print(json.dumps({"passes": passes, "bytes": nbytes, "errors": errors, "slowest": slowest}))
"""


def read_state(m):
    with open(efctest.state_file(m.mnt)) as f:
        return json.load(f)


class UpdateMount(EfcTestCase):
    BUCKET_FILES = FILES

    def mount_logged(self, extra=()):
        m = self.h.mount(self.emu, log=True, extra=extra)
        # the serving daemon (Mount() may have caught the detaching parent)
        m.pid = read_state(m)["pid"]
        return m

    def tool(self, *args, timeout=200):
        env = dict(os.environ)
        env.pop("EFC_STATE_DIR", None)
        r = subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True,
                           timeout=timeout, env=env)
        efctest.log("efc_runtime_ops %s -> %d\n%s%s" % (" ".join(args), r.returncode, r.stdout,
                                                         r.stderr))
        return r

    def update_ok(self, m, *opts, action="update"):
        """Runs an update (or a rollback) that must succeed; returns the new state and checks
        the pid changed and the old one is gone."""
        old_pid = m.pid
        args = [action, m.mnt]
        for o in opts:
            args += ["-o", o]
        r = self.tool(*args)
        self.assertEqual(r.returncode, 0, "%s failed: %s\nlog:\n%s" % (action, r.stderr,
                                                                      m.log_text()[-3000:]))
        st = read_state(m)
        self.assertEqual(st["update"]["status"], "ok", st.get("update"))
        self.assertNotEqual(st["pid"], old_pid, "the daemon was not restarted")
        self.assertEqual(st["update"]["previous_pid"], old_pid)
        self.assertTrue(efctest.wait_until(lambda: not efctest.pid_alive(old_pid), 10),
                        "the old daemon %d is still running" % old_pid)
        self.assertTrue(efctest.pid_alive(st["pid"]))
        self.assertTrue(efctest.is_mounted(m.mnt), "the update unmounted")
        self.assertEqual(efctest.daemon_pids(m.mnt), [st["pid"]])
        m.pid = st["pid"]
        return st

    def wait_passes(self, progress, at_least, timeout=120):
        def passes():
            try:
                with open(progress) as f:
                    return int(f.read() or 0)
            except (OSError, ValueError):
                return 0
        ok = efctest.wait_until(lambda: passes() >= at_least, timeout, 0.05)
        self.assertTrue(ok, "the reader did only %d passes (wanted %d)" % (passes(), at_least))
        return passes()

    def tier(self, port):
        return self.mgmt_api(port, "/v1/tier")

    # -------------------------------------------------------------------------------- (a), (b)

    def test_update_and_rollback_while_reading(self):
        m = self.mount_logged(["g_fuse_AttrTimeoutSec=1"])
        st0 = read_state(m)
        self.assertEqual(st0["options"]["g_fuse_AttrTimeoutSec"], 1)
        self.assertEqual(st0.get("runtime_update"), 1)
        progress = os.path.join(self.h.tmp, "progress")
        stop = os.path.join(self.h.tmp, "stop")
        reader = subprocess.Popen([sys.executable, "-c", READER, m.path("big.bin"),
                                   os.path.join(self.src, "big.bin"), progress, stop],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: reader.poll() is None and reader.kill())
        # Every origin answer takes a while, so the updates find reads in flight to wait for.
        self.emu.faults({"latency_ms": 40})
        self.addCleanup(self.emu.faults, {})
        try:
            self.wait_passes(progress, 1)
            st1 = self.update_ok(m, "g_fuse_AttrTimeoutSec=5")
            self.assertEqual(st1["options"]["g_fuse_AttrTimeoutSec"], 5)
            self.assertIn("g_fuse_AttrTimeoutSec", st1["explicit"])
            self.assertEqual(st1["start_time"], st0["start_time"], "mount time changed")
            n = self.wait_passes(progress, 1)
            self.wait_passes(progress, n + 1)  # a whole pass served by the new daemon
            with open(efctest.state_file(m.mnt) + ".bak") as f:
                self.assertEqual(json.load(f)["pid"], st0["pid"], "backup is not the old state")

            # (b) rollback restores the old value the same way
            st2 = self.update_ok(m, action="rollback")
            self.assertEqual(st2["options"]["g_fuse_AttrTimeoutSec"], 1)
            self.assertEqual(st2["update"]["id"].split("-")[0], "rollback")
            n = self.wait_passes(progress, 1)
            self.wait_passes(progress, n + 1)
            # a second rollback undoes the first (the backup was swapped)
            st3 = self.update_ok(m, action="rollback")
            self.assertEqual(st3["options"]["g_fuse_AttrTimeoutSec"], 5)
            n = self.wait_passes(progress, 1)
            self.wait_passes(progress, n + 1)
        finally:
            open(stop, "w").close()
        out, err = reader.communicate(timeout=120)
        self.assertEqual(reader.returncode, 0, err[-2000:])
        res = json.loads(out)
        efctest.log("reader: %d passes, %d bytes, slowest read %.3f s" %
                    (res["passes"], res["bytes"], res["slowest"]))
        self.assertEqual(res["errors"], [], "the reader saw errors")
        self.assertGreaterEqual(res["passes"], 4)
        text = m.log_text()
        if os.environ.get("EFC_TEST_LOG"):
            efctest.log("daemon log:\n" + text[-8000:])
        self.assertEqual(text.count("took over from pid"), 3, text[-3000:])
        self.assertEqual(text.count("negotiation as before"), 3, text[-3000:])
        self.assertNotIn("libfuse: ", "\n".join(l for l in text.splitlines() if "error" in l))
        self.assert_unmounts_cleanly(m)
        self.assertFalse(os.path.exists(efctest.state_file(m.mnt) + ".bak"), "backup left")
        self.assertFalse(os.path.exists(efctest.state_file(m.mnt) + ".lock"), "lock file left")

    # -------------------------------------------------------------------------------- (c)

    def test_invalid_updates_keep_serving(self):
        m = self.mount_logged()
        st0 = read_state(m)
        cases = [
            (["g_no_SuchOption=1"], "unknown option 'g_no_SuchOption'"),
            (["fuse_AttrTimeoutSec=abc"], "g_fuse_AttrTimeoutSec"),
            (["g_fuse_AttrTimeoutSec=-3"], "g_fuse_AttrTimeoutSec"),
            (["g_tier_BlockSize=1000"], "g_tier_BlockSize"),
            (["g_tier_DadiMemCacheCapacityMB=128"], "cannot change while mounted"),
            (["g_log_Level=debug,g_tier_DadiDiskCachePath=/tmp/x/"], "g_tier_DadiDiskCachePath"),
        ]
        for opts, fragment in cases:
            args = ["update", m.mnt]
            for o in opts:
                args += ["-o", o]
            r = self.tool(*args)
            self.assertEqual(r.returncode, 1, "%s: %s" % (opts, r.stderr))
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertTrue(lines[0].startswith("efc_runtime_ops: update of '%s' failed: " % m.mnt),
                            lines[0])
            self.assertIn(fragment, lines[0])
            st = read_state(m)
            self.assertEqual(st["pid"], st0["pid"], "the daemon was restarted")
            self.assertEqual(st["options"], st0["options"], "options changed")
            self.assertEqual(st["update"]["status"], "error")
            self.assertTrue(efctest.pid_alive(st0["pid"]))
            with open(m.path("d", "a.txt"), "rb") as f:
                self.assertEqual(f.read(), FILES["d/a.txt"])
        self.assertFalse(os.path.exists(efctest.state_file(m.mnt)[:-5] + ".pending.json"))
        # nothing to roll back to yet
        r = self.tool("rollback", m.mnt)
        self.assertEqual(r.returncode, 1)
        self.assertIn("nothing to roll back to", r.stderr)
        # usage errors and a path that is not an efc mount
        r = self.tool("update", m.mnt)
        self.assertEqual(r.returncode, 1)
        self.assertIn("at least one -o", r.stderr)
        r = self.tool("update", self.h.tmp, "-o", "g_log_Level=debug")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not an efc mount", r.stderr)
        r = self.tool("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("rollback", r.stdout)
        self.assertEqual(read_state(m)["pid"], st0["pid"])
        self.assert_unmounts_cleanly(m)

    def test_failed_new_process_keeps_old(self):
        # Options the table accepts but the new process cannot start with (the store is not
        # reachable there): the old process takes everything back and goes on serving.
        m = self.mount_logged()
        st0 = read_state(m)
        fd = os.open(m.path("d/sub/c.txt"), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 100, 0), FILES["d/sub/c.txt"][:100])
            r = self.tool("update", m.mnt, "-o",
                          "g_oss_Endpoint=http://127.0.0.1:1,g_oss_RetryBudgetMs=300")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("cannot list bucket", r.stderr)
            st = read_state(m)
            self.assertEqual(st["pid"], st0["pid"])
            self.assertEqual(st["options"], st0["options"])
            self.assertEqual(st["update"]["status"], "error")
            self.assertEqual(efctest.daemon_pids(m.mnt), [st0["pid"]])
            # the handle opened before still reads (its reader was reopened), new opens work
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            self.assertEqual(os.pread(fd, 70000, 0), FILES["d/sub/c.txt"])
            with open(m.path("big.bin"), "rb") as f:
                self.assertEqual(f.read(MIB), BIG[:MIB])
            # and a good update still works afterwards
            self.update_ok(m, "g_fuse_AttrTimeoutSec=4")
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            self.assertEqual(os.pread(fd, 70000, 0), FILES["d/sub/c.txt"])
        finally:
            os.close(fd)
        self.assertIn("going on with the current options", m.log_text())
        self.assert_unmounts_cleanly(m)

    # -------------------------------------------------------------------------------- (d)

    def test_names_and_handles_survive(self):
        # A long attribute timeout: the kernel keeps its dentries and sends the old inode numbers
        # straight to the new daemon, which must know them.
        m = self.mount_logged(["g_fuse_AttrTimeoutSec=600"])
        rels = ("d", "d/a.txt", "d/b.txt", "d/sub", "d/sub/c.txt")
        # O_PATH descriptors (no FUSE open) pin the dentries: a drop_caches by anything else on
        # the machine (other trees' mount tests do one) would make the kernel forget the inodes,
        # and a new lookup may then rightly give a new number.
        pins = [os.open(m.path(rel), os.O_PATH) for rel in rels]

        def unpin():
            while pins:
                os.close(pins.pop())
        self.addCleanup(unpin)  # before the unmount (registered earlier), on a failure too
        before = {rel: os.stat(m.path(rel)).st_ino for rel in rels}
        self.assertEqual(sorted(os.listdir(m.path("d"))), ["a.txt", "b.txt", "late.txt", "sub"])
        dfd = os.open(m.path("d"), os.O_RDONLY | os.O_DIRECTORY)
        ffd = os.open(m.path("d/sub/c.txt"), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(ffd, 100, 0), FILES["d/sub/c.txt"][:100])
            self.update_ok(m, "g_log_Level=debug")
            self.assertEqual(read_state(m)["options"]["g_log_Level"], "debug")
            after = {rel: os.stat(m.path(rel)).st_ino for rel in before}
            self.assertEqual(after, before, "inode numbers changed")
            unpin()  # the mount is to unmount at the end
            # requests by old inode numbers: open, opendir, readdir, lookup of a new name
            for rel in ("d/a.txt", "d/b.txt", "d/sub/c.txt"):
                with open(m.path(rel), "rb") as f:
                    self.assertEqual(f.read(), FILES[rel], rel)
            self.assertEqual(sorted(os.listdir(m.path("d"))), ["a.txt", "b.txt", "late.txt", "sub"])
            self.assertEqual(sorted(os.listdir(m.path("d/sub"))), ["c.txt"])
            with open(m.path("d/late.txt"), "rb") as f:
                self.assertEqual(f.read(), FILES["d/late.txt"])
            # the handles opened before: the file's (pages dropped, so it reaches the daemon)
            # and the directory's (a fresh listing under the same handle number)
            os.posix_fadvise(ffd, 0, 0, os.POSIX_FADV_DONTNEED)
            self.assertEqual(os.pread(ffd, 70000, 0), FILES["d/sub/c.txt"])
            self.assertEqual(sorted(os.listdir(dfd)), ["a.txt", "b.txt", "late.txt", "sub"])
        finally:
            os.close(dfd)
            os.close(ffd)
        self.assertIn("inodes restored", m.log_text())
        # two updates of one mount at once: the second waits for the first, both succeed
        env = dict(os.environ)
        env.pop("EFC_STATE_DIR", None)
        procs = [subprocess.Popen([sys.executable, TOOL, "update", m.mnt, "-o",
                                   "g_read_AheadKB=%d" % v], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
                 for v in (1024, 2048)]
        outs = [p.communicate(timeout=200) for p in procs]
        self.assertEqual([p.returncode for p in procs], [0, 0], outs)
        st = read_state(m)
        self.assertIn(st["options"]["g_read_AheadKB"], (1024, 2048))
        self.assertEqual(m.log_text().count("took over from pid"), 3)
        m.pid = st["pid"]
        self.assertEqual(sorted(os.listdir(m.path("d"))), ["a.txt", "b.txt", "late.txt", "sub"])
        self.assert_unmounts_cleanly(m)

    # -------------------------------------------------------------------------------- (e)

    def test_disk_cache_survives(self):
        m = self.mount_logged(efctest.cache_options(self.h.cache_dir("cache")))
        key = "cached.bin"
        with open(m.path(key), "rb") as f:
            self.assertEqual(f.read(), FILES[key])
        self.assertGreater(self.emu.gets(key), 0)
        self.update_ok(m, "g_fuse_AttrTimeoutSec=2")
        drop_caches()
        before = self.emu.gets(key)
        with open(m.path(key), "rb") as f:
            self.assertEqual(f.read(), FILES[key])
        self.assertEqual(self.emu.gets(key), before,
                         "blocks cached before the update went to the origin")
        self.assertRegex(m.log_text(), r"cache: .* [1-9]\d* blocks found on disk")
        self.assert_unmounts_cleanly(m)

    # -------------------------------------------------------------------------------- mgmt

    def test_supervisor_follows_updates(self):
        """The supervisor follows the daemon an update starts, and that daemon watches the
        supervisor in turn: killed, the supervisor is replaced, and the new one restarts the
        daemon when it is killed."""
        m = self.mount_logged()
        sup = efctest.wait_for(lambda: efctest.supervisor_pids(m.mnt), 30, "a supervisor")
        self.update_ok(m, "g_fuse_AttrTimeoutSec=3")
        self.assertEqual(efctest.supervisor_pids(m.mnt), sup)
        efctest.wait_for(lambda: "is served by pid %d now" % m.pid in m.log_text(), 30,
                         "the supervisor to follow pid %d" % m.pid)
        os.kill(sup[0], signal.SIGKILL)
        # the one the daemon says it started (not the first process of it, which forks and ends)
        efctest.wait_for(
            lambda: [p for p in efctest.supervisor_pids(m.mnt) if p != sup[0] and
                     "supervisor pid %d watches '%s' now" % (p, m.mnt) in m.log_text()], 60,
            lambda: "a new supervisor; log:\n%s" % m.log_text()[-3000:])
        os.kill(m.pid, signal.SIGKILL)
        efctest.wait_for(lambda: efctest.serving_pid(m.mnt) not in (None, m.pid), 60,
                         lambda: "a daemon after pid %d; log:\n%s" % (m.pid,
                                                                    m.log_text()[-3000:]))
        with open(os.path.join(m.mnt, "d/sub/c.txt"), "rb") as f:
            self.assertTrue(f.read() == FILES["d/sub/c.txt"])

    def test_log_rotation_and_level(self):
        """The log names every option the mount was given (never the secret); the level changes
        with an update, without a remount; the file rotates at g_log_MaxBytes and keeps
        g_log_FileCount files, the daemon and its supervisor writing it at once."""
        m = self.mount_logged(["g_log_MaxBytes=16384", "g_log_FileCount=3"])
        first = m.log_text()
        opts = [l for l in first.splitlines() if " options: " in l]
        self.assertEqual(len(opts), 1, first)
        self.assertIn(" g_log_MaxBytes=16384 g_log_FileCount=3", opts[0])
        self.assertNotIn(efctest.SK, first)
        self.assertNotIn(" trace ", first)
        self.update_ok(m, "g_log_Level=trace")
        # trace lines (an open is one) fill three files of 16 KiB soon
        for i in range(5000):
            if len(m.log_files()) == 3 and os.path.getsize(m.log_files()[0]) > 8192:
                break
            with open(os.path.join(m.mnt, "d", "a.txt"), "rb"):
                pass
        files = m.log_files()
        self.assertEqual([os.path.basename(p) for p in files],
                         [os.path.basename(m.logf) + s for s in (".2", ".1", "")], files)
        for p in files:
            self.assertLessEqual(os.path.getsize(p), 16384 + 2048, p)
        self.assertIn(" trace ", m.log_text())
        self.assertNotIn(efctest.SK, m.log_text())

    def test_management_port_follows(self):
        port, port2 = free_port(), free_port()
        m = self.mount_logged(["g_server_Port=%d" % port])
        self.assertEqual(self.tier(port)["ErrorCode"], 0)
        self.update_ok(m, "g_fuse_AttrTimeoutSec=3")
        self.assertEqual(self.tier(port)["ErrorCode"], 0, "the port did not come back")
        st = self.update_ok(m, "g_server_Port=%d" % port2)
        self.assertEqual(st["options"]["g_server_Port"], port2)
        self.assertEqual(self.tier(port2)["ErrorCode"], 0)
        with self.assertRaises(OSError):
            efctest.mgmt_get(port, "/v1/tier", timeout=10)
        # SIGTERM to a daemon that took the mount over unmounts, as it would the first one
        # (libfuse leaves a connection it did not mount alone).
        os.kill(m.pid, signal.SIGTERM)
        self.assertTrue(efctest.wait_until(lambda: not efctest.is_mounted(m.mnt), 15),
                        "still mounted after SIGTERM")
        self.assertTrue(efctest.wait_until(lambda: not efctest.pid_alive(m.pid), 15))
        self.assertFalse(os.path.exists(efctest.state_file(m.mnt)), "state file left behind")


if __name__ == "__main__":
    efctest.main()
