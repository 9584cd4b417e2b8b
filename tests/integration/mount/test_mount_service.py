"""aliyun-alinas-efc-service, the watchdog of every efc mount on the host (service/), run in the
foreground as systemd would run it: with a NOTIFY_SOCKET of the test's, its lines read from its
stdout. It says which mounts it watches and whether each has its daemon and supervisor (the unit's
STATUS= and one line a mount), reports what a supervisor and a runtime update did, and mounts again
a mount whose daemon died with no supervisor left to replace it.

The service is told to watch only the test's own directory (--mounts-under): other mounts on the
machine are not the test's to report or to remount."""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, pattern, sha256_bytes as sha  # noqa: E402

SERVICE = os.path.join(efctest.BUILD_DIR, "service", "aliyun-alinas-efc-service")
RUNTIME_OPS = os.path.join(efctest.SOURCE_DIR, "cli", "efc_runtime_ops")
FILES = {"a.bin": pattern(300 * 1024 + 7, 91), "d/b.txt": pattern(5000, 92)}
WAIT = efctest.WAIT_TIMEOUT


class ServiceProc:
    """The service in the foreground: its stdout lines and its sd_notify messages, each read by a
    thread into a queue so that every wait has a deadline."""

    def __init__(self, test, *args):
        self.lines, self.notes = [], []
        self._lq, self._nq = queue.Queue(), queue.Queue()
        path = os.path.join(test.h.tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        env = efctest.mount_env()  # a remount runs mount(8) with the build tree's daemon
        env["NOTIFY_SOCKET"] = path
        cmd = [sys.executable, SERVICE, "--interval", "0.2", "--mounts-under", test.h.tmp]
        self.proc = subprocess.Popen(cmd + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     text=True, env=env)
        test.addCleanup(self.stop)
        self._done = False
        self._reader = threading.Thread(target=self._read_lines, daemon=True)
        self._reader.start()
        threading.Thread(target=self._read_notes, daemon=True).start()

    def _read_lines(self):
        for line in self.proc.stdout:
            self._lq.put(line.rstrip("\n"))
        self._lq.put(None)

    def _read_notes(self):
        while not self._done:
            try:
                self._nq.put(self.sock.recv(65536).decode())
            except socket.timeout:
                continue
            except OSError:
                return

    def _wait(self, q, seen, pred, what, timeout):
        end = time.monotonic() + timeout
        for item in seen:
            if pred(item):
                return item
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("after %g s, still waiting for %s; the service said:\n%s"
                                     % (timeout, what, "\n".join(seen[-30:])))
            try:
                item = q.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                raise AssertionError("the service exited (%s) waiting for %s; it said:\n%s"
                                     % (self.proc.wait(), what, "\n".join(seen[-30:])))
            seen.append(item)
            if pred(item):
                return item

    def wait_line(self, pred, what, timeout=WAIT):
        return self._wait(self._lq, self.lines, pred, what, timeout)

    def wait_note(self, pred, what, timeout=WAIT):
        return self._wait(self._nq, self.notes, pred, what, timeout)

    def wait_looks(self, n, timeout=WAIT):
        """Waits for N more looks (the service notifies once a look)."""
        target = len(self.notes) + n
        self.wait_note(lambda _: len(self.notes) >= target, "%d more looks" % n, timeout)

    def stop(self):
        self._done = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)  # it ends at the end of the output
        if not self._reader.is_alive():
            self.proc.stdout.close()
        self.sock.close()


def about(mnt, *words):
    """A predicate: a line about MNT holding every one of WORDS."""
    return lambda line: line.startswith("'%s' " % mnt) and all(w in line for w in words)


class ServiceTest(EfcTestCase):
    BUCKET_FILES = FILES

    def supervised(self, extra=()):
        m = self.h.mount(self.emu, extra=list(extra), log=True)
        sup = efctest.wait_for(lambda: efctest.supervisor_pids(m.mnt), 30,
                               "a supervisor for %s" % m.mnt)[0]
        return m, sup

    def assert_reads(self, m):
        self.assertEqual(self.read_sha(m.path("a.bin")), sha(FILES["a.bin"]))

    def new_pid(self, m, old):
        return efctest.wait_for(
            lambda: (lambda p: p if p and p != old and efctest.pid_alive(p) else None)(
                efctest.serving_pid(m.mnt)), WAIT, "a daemon of %s other than %d" % (m.mnt, old))

    def test_lists_the_mounts_and_mounts_a_dead_one_again(self):
        """Each mount's line and the unit's status; a mount that loses its supervisor (while its
        daemon is stopped, so that it does not start another) is reported, and when its daemon
        dies too the service mounts it again from its state file."""
        m1, sup1 = self.supervised()
        m2 = self.h.mount(self.emu, extra=["g_supervisor_Enable=false"])
        svc = ServiceProc(self)
        svc.wait_line(about(m1.mnt, "ok:", "daemon pid %d" % m1.pid, "supervisor %d" % sup1),
                      "a line saying %s is served and supervised" % m1.mnt)
        svc.wait_line(about(m2.mnt, "ok:", "daemon pid %d" % m2.pid, "unsupervised"),
                      "a line saying %s is served without a supervisor" % m2.mnt)
        svc.wait_note(lambda n: "READY=1" in n, "READY=1")
        svc.wait_note(lambda n: "STATUS=watching 2 efc mounts: %s ok, %s ok" % tuple(
            sorted([m1.mnt, m2.mnt])) in n, "a status naming both mounts")

        # The daemon would start another supervisor at once (supervise.c): stopped, it cannot.
        os.kill(m1.pid, signal.SIGSTOP)
        self.addCleanup(lambda: efctest.pid_alive(m1.pid) and os.kill(m1.pid, signal.SIGCONT))
        os.kill(sup1, signal.SIGKILL)
        svc.wait_line(about(m1.mnt, "no supervisor", "daemon pid %d" % m1.pid),
                      "the supervisor's death reported")
        svc.wait_note(lambda n: "(1 needs attention)" in n, "a status saying one mount is wrong")
        once = subprocess.run([sys.executable, SERVICE, "--once", "--mounts-under", m1.mnt],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(once.returncode, 1, once.stdout + once.stderr)
        self.assertIn("'%s' no supervisor" % m1.mnt, once.stdout)

        os.kill(m1.pid, signal.SIGKILL)
        svc.wait_line(about(m1.mnt, "dead:", "no supervisor"), "the dead mount reported")
        line = svc.wait_line(about(m1.mnt, "is mounted again: daemon pid"),
                             "the dead mount mounted again")
        pid = int(line.rsplit(" ", 1)[1])
        self.assertNotEqual(pid, m1.pid)
        self.assertEqual(efctest.serving_pid(m1.mnt), pid)
        self.assert_reads(m1)
        # The new daemon, with the same options, started a supervisor of its own.
        sup = efctest.wait_for(lambda: efctest.supervisor_pids(m1.mnt), 30, "a new supervisor")[0]
        svc.wait_line(about(m1.mnt, "ok:", "daemon pid %d" % pid, "supervisor %d" % sup,
                            "1 remount"), "the mount served again")
        svc.wait_note(lambda n: "STATUS=watching 2 efc mounts: " in n and
                      "last: mounted %s again" % m1.mnt in n, "a status saying what it did")
        m1.pid = pid
        self.assert_unmounts_cleanly(m1)
        svc.wait_line(lambda l: l == "'%s' is unmounted: no longer watched" % m1.mnt,
                      "the unmounted mount dropped")

    def test_reports_a_restart_and_an_update(self):
        """A daemon killed and replaced by its supervisor, then a runtime update: the service says
        which did what, with the pids, and counts them on the mount's line."""
        m, sup = self.supervised()
        svc = ServiceProc(self, "--no-remount")
        svc.wait_line(about(m.mnt, "ok:", "daemon pid %d" % m.pid), "the mount's line")
        os.kill(m.pid, signal.SIGKILL)
        pid = self.new_pid(m, m.pid)
        svc.wait_line(lambda l: l == "'%s': its supervisor replaced daemon pid %d with pid %d"
                      % (m.mnt, m.pid, pid), "the restart reported")
        svc.wait_line(about(m.mnt, "ok:", "daemon pid %d" % pid, "1 restart"),
                      "the restart counted")
        r = subprocess.run([sys.executable, RUNTIME_OPS, "update", m.mnt, "-o",
                            "g_fuse_AttrTimeoutSec=3"], capture_output=True, text=True,
                           timeout=150, env=efctest.mount_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        upd = self.new_pid(m, pid)
        svc.wait_line(lambda l: l == "'%s': daemon pid %d handed the mount to pid %d (a runtime "
                      "update)" % (m.mnt, pid, upd), "the update reported")
        svc.wait_line(about(m.mnt, "ok:", "daemon pid %d" % upd, "1 restart, 1 update"),
                      "the update counted")
        self.assert_reads(m)
        m.pid = upd

    def test_no_remount_only_reports(self):
        """--no-remount: a dead mount is reported and left as it is (ENOTCONN)."""
        m = self.h.mount(self.emu, extra=["g_supervisor_Enable=false"])
        svc = ServiceProc(self, "--no-remount")
        svc.wait_line(about(m.mnt, "ok:", "unsupervised"), "the mount's line")
        os.kill(m.pid, signal.SIGKILL)
        svc.wait_line(about(m.mnt, "dead:"), "the dead mount reported")
        svc.wait_looks(10)  # 0.2 s apart: with remounts on, the second would have acted
        self.assertFalse(any("mounting it again" in l for l in svc.lines), svc.lines)
        res, _ = efctest.probe("read", m.path("d/b.txt"), timeout=60)
        self.assertEqual(res, "ERR ENOTCONN")
        self.assertEqual(m.unmount(), [])


if __name__ == "__main__":
    efctest.main()
