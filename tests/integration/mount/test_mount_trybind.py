"""trybind (efc/mount_alinas.c): a second mount of a source efc already mounts, with the same
options, is a bind mount of the first: one daemon, one cache.

- the second mount is a bind mount (the same device in /proc/self/mountinfo, the same serving pid,
  no daemon of its own, its state file a symlink to the daemon's, its own g_log_File never
  written: the log file does not count as an option); reads through both are right, and a block
  read through one is served to the other by the one cache (no second origin GET);
- the CLI and efc_runtime_ops reach the daemon through the second mount point; an update through
  it updates the shared daemon and says so;
- unmounting the first mount point leaves the second working (the same daemon), and an update
  through it still works; the daemon, its supervisor, its state file and the link end with the
  last unmount;
- with the first mount point unmounted, the supervisor's watchdog probes through the second: a
  daemon that stops answering is still replaced, and a reader blocked on it gets its bytes;
- the first mount point mounted again: with the same options it is a bind mount of the daemon it
  was started for (its state file stays the daemon's own); with other options it gets a daemon of
  its own, and efc_runtime_ops refuses to update through the remaining bind mount rather than
  reach that other daemon;
- different options, or trybind=no, give a daemon of its own.
"""

import json
import os
import signal
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, MIB, pattern, drop_caches, read_bytes as read  # noqa: E402

FSTYPE = "fuse.aliyun-alinas-efc"
TOOL = os.path.join(efctest.SOURCE_DIR, "cli", "efc_runtime_ops")
CLI = os.path.join(efctest.BUILD_DIR, "cli", "aliyun-alinas-efc-cli")
FILES = {
    "one.bin": pattern(3 * MIB + 5, 41),
    "d/a.txt": b"alpha\n",
    "d/sub/b.bin": pattern(70000, 42),
}


def read_state(mnt):
    with open(efctest.state_file(mnt)) as f:
        return json.load(f)


class Trybind(EfcTestCase):
    BUCKET_FILES = FILES

    def run_cmd(self, argv, timeout=120):
        env = dict(os.environ)
        env.pop("EFC_STATE_DIR", None)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        efctest.log("%s -> %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    def update(self, mnt, opt):
        """efc_runtime_ops update MNT -o OPT, which must succeed: (its stdout, the new state)."""
        old = read_state(mnt)["pid"]
        r = self.run_cmd([sys.executable, TOOL, "update", mnt, "-o", opt, "--timeout", "30"])
        self.assertEqual(r.returncode, 0, "update through %s: %s" % (mnt, r.stderr))
        st = read_state(mnt)
        self.assertEqual(st["update"]["status"], "ok", st.get("update"))
        self.assertEqual(st["update"]["previous_pid"], old)
        efctest.wait_for(lambda: not efctest.pid_alive(old), 15,
                         "the daemon before the update (%d) to end" % old)
        return r.stdout, st

    def umount(self, mnt):
        r = subprocess.run(["umount", mnt], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, "umount %s: %s" % (mnt, r.stderr))
        self.assertFalse(efctest.is_mounted(mnt))

    def test_same_source_and_options_share_one_daemon(self):
        port = efctest.free_port()
        opts = efctest.cache_options(self.h.cache_dir("cache"), disk_mb=64,
                                     extra=["g_server_Port=%d" % port])
        a = self.h.mount(self.emu, log=True, extra=opts)
        b = self.h.mount(self.emu, log=True, extra=opts)  # another log file: still the same
        pid = efctest.serving_pid(a.mnt)
        self.assertIsNotNone(pid)
        # a bind mount of the first: the same FUSE connection, no daemon of its own
        ia, ib = a.info(), b.info()
        self.assertEqual(ib[1], FSTYPE)
        self.assertEqual(ib[4], ia[4], "not the same device: %s vs %s" % (ia, ib))
        self.assertEqual(ib[3], ia[3], "the bind mount's flags differ")
        self.assertEqual(efctest.serving_pid(b.mnt), pid)
        self.assertEqual(efctest.daemon_pids(b.mnt), [])
        self.assertEqual(efctest.daemon_pids(a.mnt), [pid])
        self.assertTrue(os.path.islink(efctest.state_file(b.mnt)))
        self.assertFalse(os.path.exists(b.logf), "a daemon of the second mount wrote its log")
        # reads right through both, from the one cache
        want = efctest.sha256_bytes(FILES["one.bin"])
        self.assertEqual(self.read_sha(a.path("one.bin")), want)
        gets = self.emu.gets("one.bin")
        self.assertGreater(gets, 0)
        drop_caches()
        self.assertEqual(self.read_sha(b.path("one.bin")), want)
        self.assertEqual(self.emu.gets("one.bin"), gets, "the second mount has a cache of its own")
        self.assert_tree_equal(self.src, b.mnt)
        # the CLI finds the daemon's management port through the second mount point
        r = self.run_cmd([CLI, "-m", b.mnt, "-r", "tier"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("tier_read", r.stdout)

        # an update through the second mount point updates the shared daemon, and says so
        out, st = self.update(b.mnt, "g_fuse_AttrTimeoutSec=3")
        self.assertIn("shared by the bind mounts '%s', '%s'" % tuple(sorted((a.mnt, b.mnt))), out)
        self.assertEqual(st["options"]["g_fuse_AttrTimeoutSec"], 3)
        pid = st["pid"]
        self.assertEqual(efctest.serving_pid(a.mnt), pid)
        self.assertEqual(read(a.path("d/a.txt")), FILES["d/a.txt"])
        self.assertEqual(read(b.path("d/sub/b.bin")), FILES["d/sub/b.bin"])

        # the first mount point goes: the second keeps working, served by the same daemon
        self.umount(a.mnt)
        self.assertTrue(efctest.pid_alive(pid), "the daemon ended with the first unmount")
        drop_caches()
        self.assertEqual(self.read_sha(b.path("one.bin")), want)
        r = self.run_cmd([sys.executable, TOOL, "update", a.mnt, "-o", "g_fuse_AttrTimeoutSec=4"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("not an efc mount", r.stderr)
        out, st = self.update(b.mnt, "g_fuse_AttrTimeoutSec=5")
        self.assertEqual(st["options"]["g_fuse_AttrTimeoutSec"], 5)
        pid = st["pid"]
        self.assertEqual(read(b.path("d/a.txt")), FILES["d/a.txt"])

        # the last one: the daemon, its supervisor and the state files end with it
        self.umount(b.mnt)
        efctest.wait_for(lambda: not efctest.pid_alive(pid), 15,
                         "the daemon %d to end after the last unmount" % pid)
        efctest.wait_for(lambda: not efctest.supervisor_pids(a.mnt), 30,
                         lambda: "the supervisor %s to end" % efctest.supervisor_pids(a.mnt))
        for m in (a, b):
            self.assertFalse(os.path.lexists(efctest.state_file(m.mnt)),
                             "state file %s left behind" % efctest.state_file(m.mnt))
        self.assert_no_leftovers()

    def test_watchdog_probes_through_a_remaining_bind_mount(self):
        opts = ["g_supervisor_WatchdogSec=2"]
        a = self.h.mount(self.emu, extra=opts, log=True)  # the daemon's and supervisor's log
        b = self.h.mount(self.emu, extra=opts, log=True)
        old = efctest.serving_pid(a.mnt)
        self.assertEqual(efctest.serving_pid(b.mnt), old)
        self.umount(a.mnt)
        os.kill(old, signal.SIGSTOP)
        try:
            proc = subprocess.Popen([sys.executable, "-c", efctest.SHA_READER,
                                     b.path("d/sub/b.bin")], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            self.addCleanup(lambda: proc.poll() is None and proc.kill())
            new = efctest.wait_for(
                lambda: efctest.serving_pid(b.mnt) not in (None, old) and efctest.serving_pid(b.mnt),
                30, "the watchdog to replace the stopped daemon %d" % old)
        finally:
            try:
                os.kill(old, signal.SIGCONT)  # if it is still there at all
            except ProcessLookupError:
                pass
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, err[-800:])
        self.assertEqual(out.split(), [efctest.sha256_bytes(FILES["d/sub/b.bin"])])
        efctest.wait_for(lambda: not efctest.pid_alive(old), 15, "the stopped daemon to end")
        log = a.log_text()
        self.assertIn("watching its daemon through '%s'" % b.mnt, log)
        self.assertIn("killed by the watchdog", log)
        self.umount(b.mnt)
        efctest.wait_for(lambda: not efctest.pid_alive(new), 15,
                         "the daemon %d to end after the last unmount" % new)

    def test_first_mount_point_mounted_again(self):
        a = self.h.mount(self.emu)
        b = self.h.mount(self.emu)
        pid = efctest.serving_pid(a.mnt)
        self.umount(a.mnt)
        # the same options: a bind mount of the daemon it was started for
        a2 = self.h.mount(self.emu, mnt=a.mnt)
        self.assertEqual(a2.info()[4], b.info()[4])
        self.assertFalse(os.path.islink(efctest.state_file(a.mnt)))
        self.assertEqual(efctest.serving_pid(a.mnt), pid)
        self.assertEqual(efctest.serving_pid(b.mnt), pid)
        self.assertEqual(read(a.path("d/a.txt")), FILES["d/a.txt"])
        self.umount(a.mnt)
        # other options: a daemon of its own, which takes the name of the state file
        a3 = self.h.mount(self.emu, mnt=a.mnt, extra=["g_fuse_AttrTimeoutSec=9"])
        self.assertNotEqual(a3.info()[4], b.info()[4])
        pid3 = efctest.serving_pid(a.mnt)
        self.assertNotIn(pid3, (None, pid))
        r = self.run_cmd([sys.executable, TOOL, "update", b.mnt, "-o", "g_fuse_AttrTimeoutSec=4"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("now another mount", r.stderr)
        self.assertTrue(efctest.pid_alive(pid))
        self.assertEqual(read(b.path("d/a.txt")), FILES["d/a.txt"])
        # (not assert_unmounts_cleanly: the shared daemon names that mount point too)
        self.umount(a3.mnt)
        efctest.wait_for(lambda: not efctest.pid_alive(pid3), 15, "the daemon %d to end" % pid3)
        self.assertTrue(efctest.pid_alive(pid))
        self.umount(b.mnt)
        efctest.wait_for(lambda: not efctest.pid_alive(pid), 15,
                         "the daemon %d to end after the last unmount" % pid)
        for m in (a, b):
            self.assertFalse(os.path.lexists(efctest.state_file(m.mnt)),
                             "state file %s left behind" % efctest.state_file(m.mnt))

    def test_other_options_or_trybind_no_get_a_daemon_of_their_own(self):
        a = self.h.mount(self.emu)
        b = self.h.mount(self.emu, extra=["g_fuse_AttrTimeoutSec=7"])
        c = self.h.mount(self.emu, extra=["trybind=no"])
        ms = (a, b, c)
        pids = [efctest.serving_pid(m.mnt) for m in ms]
        self.assertNotIn(None, pids)
        self.assertEqual(len(set(pids)), 3, "pids %s" % pids)
        devs = [m.info()[4] for m in ms]
        self.assertEqual(len(set(devs)), 3, "devices %s" % devs)
        for m, pid in zip(ms, pids):
            self.assertFalse(os.path.islink(efctest.state_file(m.mnt)), m.mnt)
            self.assertEqual(efctest.daemon_pids(m.mnt), [pid])
            self.assertEqual(read(m.path("d/a.txt")), FILES["d/a.txt"])
        for m in ms:
            self.assert_unmounts_cleanly(m)


if __name__ == "__main__":
    efctest.main()
