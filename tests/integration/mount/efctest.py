"""tests/integration/mount/efctest.py - the shared harness of the mount tests.

Every test mounts for real: ossemu (tests/ossemu) serves a temporary directory as a bucket, and
`mount -t alinas -o efc,protocol=oss,...` runs /sbin/mount.alinas, which starts the daemon of the
build tree (EFC_DAEMON). Whatever a test starts it registers for cleanup at once (unittest's
addCleanup / addClassCleanup run even when a test fails), and cleanup is itself bounded: umount,
then a lazy unmount, then aborting the FUSE connection; the daemon is waited for and killed by pid
if it lingers; ossemu gets SIGTERM, then SIGKILL. Operations on the mount that could block run in
a child process with a timeout (run_bounded), and a watchdog aborts the test's FUSE connections if
a test overruns, so a daemon bug fails a test instead of hanging it.

Environment (set by ctest): EFC_BUILD_DIR, EFC_SOURCE_DIR, EFC_OSSEMU_DIR. Standard library only.
For a run under valgrind (tests/valgrind.sh): EFC_DAEMON_WRAPPER, a command (shell words) the
daemon that mount.alinas starts runs under, e.g. "valgrind --log-file=/tmp/vg.%p.log"; and
EFC_TIME_SCALE, a factor (>= 1) on the harness's deadlines (wait_for, wait_until, wait_metric,
run_bounded, mount and umount, the per-test watchdog). Deadlines a test asserts itself (a latency
bound) are not scaled.
"""

import atexit
import base64
import ctypes
import errno
import hashlib
import json
import os
import random
import select
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("EFC_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BUILD_DIR = os.environ.get("EFC_BUILD_DIR") or os.path.join(SOURCE_DIR, "build", "e")
OSSEMU_DIR = os.environ.get("EFC_OSSEMU_DIR") or os.path.join(SOURCE_DIR, "tests", "ossemu")
HELPER = os.path.join(BUILD_DIR, "efc", "mount.alinas")
FAULTFS = os.path.join(BUILD_DIR, "tests", "tools", "faultfs")  # tests/tools/faultfs.c
DAEMON = os.path.join(BUILD_DIR, "efc", "aliyun-alinas-efc")
SBIN_HELPER = "/sbin/mount.alinas"
FSTYPE = "fuse.aliyun-alinas-efc"
DAEMON_NAME = "aliyun-alinas-efc"
SUPERVISOR_NAME = "aliyun-alinas-efc-supervisor"  # efc/supervise_i.h
BUCKET = "testbucket"
HOST = "oss-cn-hangzhou.aliyuncs.com"
AK, SK = "testak", "testsk"
STATE_DIR = "/run/efc"
MIB = 1 << 20

# Each test process runs in a mount namespace of its own (unshare(1) re-executes it once), where
# /sbin/mount.alinas is its build tree's helper, laid over whatever the host has there:
# tests of several trees at once (CI, a developer's single test, a valgrind run) no longer swap
# each other's helper, and their mounts are not seen (nor wedged on) by the others. A test that
# installs a helper of its own (tests/package) sets EFC_TEST_MOUNT_NS=host before the import.
MOUNT_NS_ENV = "EFC_TEST_MOUNT_NS"


def _enter_private_mount_namespace():
    if os.geteuid() != 0 or os.environ.get(MOUNT_NS_ENV) == HELPER or not os.access(HELPER, os.X_OK):
        return
    if os.environ.get(MOUNT_NS_ENV) is None and shutil.which("unshare"):
        os.environ[MOUNT_NS_ENV] = "entering"
        argv = list(getattr(sys, "orig_argv", [])) or [sys.executable] + sys.argv
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "--"] + argv)
    if os.environ.get(MOUNT_NS_ENV) != "entering":
        return
    # An overlay on the helper's directory, whose upper layer holds the tree's helper: nothing
    # on the host changes, and the host replacing or removing its own helper meanwhile (the
    # package test, another tree) does not reach in. Failing that, a bind mount over the file.
    sbin = os.path.dirname(os.path.realpath(SBIN_HELPER))
    top = tempfile.mkdtemp(prefix="efc-sbin-")
    atexit.register(shutil.rmtree, top, True)
    os.mkdir(os.path.join(top, "upper"))
    os.mkdir(os.path.join(top, "work"))
    shutil.copy2(HELPER, os.path.join(top, "upper", os.path.basename(SBIN_HELPER)))
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s,workdir=%s"
                        % (sbin, os.path.join(top, "upper"), os.path.join(top, "work")), sbin],
                       capture_output=True, text=True)
    if r.returncode != 0:
        if not os.path.exists(SBIN_HELPER):  # a bind mount needs a file to cover
            shutil.copyfile(HELPER, SBIN_HELPER)
            os.chmod(SBIN_HELPER, 0o755)
        r = subprocess.run(["mount", "--bind", HELPER, SBIN_HELPER], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("bind-mounting %s over %s: %s" % (HELPER, SBIN_HELPER, r.stderr.strip()))
    os.environ[MOUNT_NS_ENV] = HELPER


_enter_private_mount_namespace()


def _sanitized():
    try:
        with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
            cache = f.read()
        return "EFC_SANITIZE:BOOL=ON" in cache or "EFC_TSAN:BOOL=ON" in cache
    except OSError:
        return False


SANITIZED = _sanitized()  # an ASan+UBSan or a TSan build: about ten times slower


def _time_scale():
    v = os.environ.get("EFC_TIME_SCALE") or "1"
    try:
        f = float(v)
    except ValueError:
        f = 0
    if not 1 <= f <= 1000:
        raise RuntimeError("EFC_TIME_SCALE=%r: expected a number from 1 to 1000" % v)
    return f


TIME_SCALE = _time_scale()  # valgrind runs the daemon 20 to 50 times slower


def scaled(seconds):
    """SECONDS of a harness deadline, times EFC_TIME_SCALE."""
    return seconds * TIME_SCALE


MOUNT_TIMEOUT = scaled(150)  # the helper itself gives up after 120 s
TEST_WATCHDOG = scaled(240)  # seconds one test may take before its FUSE connections are aborted


def log(msg):
    sys.stderr.write("[efctest %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# ---------------------------------------------------------------- environment checks


def require_environment():
    """Raises SkipTest when the machine cannot mount at all; fails when the build is missing."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("mount tests need root")
    if not os.path.exists("/dev/fuse"):
        raise unittest.SkipTest("mount tests need /dev/fuse")
    for p in (HELPER, DAEMON):
        if not os.access(p, os.X_OK):
            raise AssertionError("not built: %s (build the project first)" % p)
    if shutil.which("node") is None:
        raise AssertionError("node is needed to run tests/ossemu")
    install_helper()


def install_helper():
    """mount(8) only looks in /sbin: make sure the helper there is the one under test."""
    try:
        with open(SBIN_HELPER, "rb") as a, open(HELPER, "rb") as b:
            if a.read() == b.read():
                return
    except OSError:
        pass
    tmp = "%s.tmp.%d" % (SBIN_HELPER, os.getpid())
    shutil.copyfile(HELPER, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, SBIN_HELPER)
    log("installed %s from %s" % (SBIN_HELPER, HELPER))


_SAN_DIR = None


def sanitizer_dir():
    """Where a sanitizer build of the helper or the daemon writes its reports (the daemon's
    stderr is /dev/null once it detaches, so they would otherwise be lost)."""
    global _SAN_DIR
    if _SAN_DIR is None:
        _SAN_DIR = tempfile.mkdtemp(prefix="efc-san-")
        atexit.register(shutil.rmtree, _SAN_DIR, True)
    return _SAN_DIR


def sanitizer_reports():
    """Text of the sanitizer reports written so far; each is read once (then removed)."""
    out = []
    d = sanitizer_dir()
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        try:
            with open(p, errors="replace") as f:
                out.append("%s:\n%s" % (n, f.read()[:6000]))
            os.unlink(p)
        except OSError:
            pass
    return out


_WRAPPED = None


def daemon_command():
    """What mount.alinas is to run as the daemon (EFC_DAEMON): the build's daemon, or with
    EFC_DAEMON_WRAPPER set, a script of ours that runs it under that command."""
    global _WRAPPED
    wrapper = os.environ.get("EFC_DAEMON_WRAPPER", "").strip()
    if not wrapper:
        return DAEMON
    if _WRAPPED is None:
        d = tempfile.mkdtemp(prefix="efc-wrap-")
        atexit.register(shutil.rmtree, d, True)
        path = os.path.join(d, "daemon-wrapper")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n# efctest.py: the daemon under EFC_DAEMON_WRAPPER\n"
                    "exec %s %s \"$@\"\n" % (wrapper, shlex.quote(DAEMON)))
        os.chmod(path, 0o755)
        _WRAPPED = path
    return _WRAPPED


def mount_env():
    env = dict(os.environ)
    env["EFC_DAEMON"] = daemon_command()
    san = os.path.join(sanitizer_dir(), "report")
    env.setdefault("ASAN_OPTIONS", "log_path=%s:abort_on_error=0" % san)
    env.setdefault("UBSAN_OPTIONS", "log_path=%s:print_stacktrace=1" % san)
    # TSan's options from the caller (scripts/test.sh's halt_on_error) are kept, the log moved.
    env["TSAN_OPTIONS"] = ":".join(o for o in (env.get("TSAN_OPTIONS"), "log_path=" + san) if o)
    for k in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"):
        env.pop(k, None)
    return env


# ---------------------------------------------------------------- /proc helpers


def _unescape(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and all(c in "01234567" for c in s[i + 1 : i + 4]):
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def canon(path):
    """realpath of PATH's parent plus its last component: never stats PATH itself, which, on a
    mount whose daemon hangs, would block."""
    path = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def mountinfo():
    """[(mountpoint, fstype, source, options, major:minor)] from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            parts = line.split()
            try:
                sep = parts.index("-", 6)
            except ValueError:
                continue
            out.append((_unescape(parts[4]), parts[sep + 1], _unescape(parts[sep + 2]),
                        parts[5] + "," + parts[sep + 3], parts[2]))
    return out


def mounts_on(path):
    path = canon(path)
    return [m for m in mountinfo() if m[0] == path]


def mounts_under(path):
    path = canon(path)
    return [m for m in mountinfo() if m[0] == path or m[0].startswith(path + "/")]


def is_mounted(path):
    return bool(mounts_on(path))


def _client_argv(argv):
    """ARGV (a command line's words), or of a process valgrind runs (/usr/bin/valgrind.bin
    --opt=v ... prog args: valgrind's options are single words), the program's words."""
    if argv and os.path.basename(argv[0]).startswith(b"valgrind"):
        i = 1
        while i < len(argv) and argv[i].startswith(b"-"):
            i += 1
        return argv[i:]
    return argv


def daemon_pids(mnt, name=DAEMON_NAME):
    """Pids of NAME (aliyun-alinas-efc) processes whose command line names MNT."""
    mnt = canon(mnt)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        argv = _client_argv(argv)
        if argv and os.path.basename(argv[0]).decode(errors="replace") == name:
            if mnt.encode() in argv:
                pids.append(int(d))
    return pids


def helper_pids(mnt):
    return daemon_pids(mnt, "mount.alinas")


def supervisor_pids(mnt):
    """Pids of the supervisors of MNT (efc/supervise.c)."""
    return daemon_pids(mnt, SUPERVISOR_NAME)


def serving_pid(mnt):
    """The pid the state file names as serving MNT, or None."""
    try:
        with open(state_file(mnt)) as f:
            return int(json.load(f)["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def state_file(mnt):
    return os.path.join(STATE_DIR, canon(mnt).replace("/", "_") + ".json")


def wait_until(pred, timeout, interval=0.05):
    """Polls PRED until true or TIMEOUT seconds; returns its last value, quietly even when that is
    false: the caller must assert it (or use wait_for, which fails by itself)."""
    end = time.monotonic() + scaled(timeout)
    n = 0
    while True:
        v = pred()
        if v or time.monotonic() >= end or n > 100000:
            return v
        n += 1
        time.sleep(interval)


def wait_for(pred, timeout, what, interval=0.05):
    """Polls PRED until it returns a true value, and returns that value; raises AssertionError
    naming WHAT (what was waited for; a function returning that text is called at the failure, so
    it can show the last state seen) when TIMEOUT seconds pass first. PRED is called once more
    after the deadline."""
    timeout = scaled(timeout)
    end = time.monotonic() + timeout
    while True:
        late = time.monotonic() >= end
        v = pred()
        if v:
            return v
        if late:
            raise AssertionError("still not so after %g s: %s" % (
                timeout, what() if callable(what) else what))
        time.sleep(interval)


def fuse_abort(majmin):
    """Aborts the FUSE connection of a mount (by the mount's device minor): every request
    pending on it fails with ENOTCONN, which unblocks anything stuck on a hung daemon."""
    conn_dir = "/sys/fs/fuse/connections"
    try:
        if not os.listdir(conn_dir):
            subprocess.run(["mount", "-t", "fusectl", "fusectl", conn_dir], timeout=10,
                           capture_output=True)
    except (OSError, subprocess.SubprocessError):
        pass
    minor = majmin.split(":")[1]
    p = os.path.join(conn_dir, minor, "abort")
    try:
        with open(p, "w") as f:
            f.write("1")
        log("aborted FUSE connection %s" % minor)
        return True
    except OSError as e:
        log("cannot abort FUSE connection %s: %s" % (minor, e))
        return False


def _umount2_detach(path):
    """umount2(PATH, MNT_DETACH) as a bare syscall: no path canonicalisation, so no request to
    a daemon that may be hung."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(path.encode(), 2) != 0:
        return os.strerror(ctypes.get_errno())
    return None


def unmount(mnt, pid=None):
    """Unmounts MNT whatever state the daemon is in, then makes sure PID (the daemon) ends.
    Returns a list of the problems met (empty when a plain umount did it). Bounded: about 40 s
    at worst."""
    problems = []
    mnt = canon(mnt)
    # The daemon given, any other of the mount (a supervisor's restart replaces the first one),
    # and the supervisor, which ends with the mount.
    pids = sorted(set(([pid] if pid else []) + daemon_pids(mnt) + supervisor_pids(mnt)))
    ms = mounts_on(mnt)
    if ms:
        # umount(8) first (it also drops libmount's utab entry of an fstab mount); -c: no
        # canonicalisation, which would stat the mount's root and block on a hung daemon.
        try:
            r = subprocess.run(["umount", "-c", mnt], capture_output=True, text=True,
                               timeout=scaled(15))
            if r.returncode != 0:
                problems.append("umount: %s" % r.stderr.strip())
        except subprocess.TimeoutExpired:
            problems.append("umount timed out")
    for attempt in range(3):
        ms = mounts_on(mnt)
        if not ms:
            break
        # The daemon does not let go: abort its connection (pending requests fail, blocked
        # readers wake up) and detach.
        for m in ms:
            if m[1].startswith("fuse"):
                fuse_abort(m[4])
        err = _umount2_detach(mnt)
        if err:
            problems.append("umount2(MNT_DETACH): %s" % err)
    if is_mounted(mnt):
        problems.append("still mounted: %s" % mnt)
    for p in pids:
        if not wait_until(lambda: not pid_alive(p), 15):
            problems.append("process %d did not exit after unmount; killed it" % p)
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if not wait_until(lambda: not pid_alive(p), 10):
                problems.append("daemon %d still there 10 s after SIGKILL" % p)
    return problems


# ---------------------------------------------------------------- ossemu


def _pdeathsig():
    # The server dies with the test process, so a crashed test leaves no server behind.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Ossemu:
    """A running tests/ossemu serving ROOT as bucket `testbucket`."""

    def __init__(self, root, creds=(AK + ":" + SK,), sts=(), args=(), log_path=None):
        self.root = root
        cmd = ["node", os.path.join(OSSEMU_DIR, "server.js"), "--root", root, "--bucket", BUCKET]
        for c in creds:
            cmd += ["--cred", c]
        for s in sts:
            cmd += ["--sts", s]
        cmd += list(args)
        self.log_path = log_path or os.path.join(os.path.dirname(root), "ossemu.log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log,
                                     stdin=subprocess.DEVNULL, preexec_fn=_pdeathsig)
        try:
            ready = self._ready_line(30)
        except Exception:
            self.stop()
            raise
        self.port = ready["port"]
        self.admin_port = ready["admin_port"]
        self.endpoint = "http://127.0.0.1:%d" % self.port

    def _ready_line(self, timeout):
        end = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("ossemu did not become ready in %d s (log %s)" % (timeout, self.log_path))
            r, _, _ = select.select([fd], [], [], min(left, 1.0))
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise AssertionError("ossemu exited before it was ready (log %s)" % self.log_path)
                buf += chunk
        ready = json.loads(buf.split(b"\n", 1)[0])
        if not ready.get("ready"):
            raise AssertionError("unexpected ossemu ready line %r" % buf)
        return ready

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()

    def admin(self, method, path, body=None, timeout=15):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path), data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise AssertionError("ossemu %s %s: %d %s" % (method, path, e.code, e.read()[:300]))

    def faults(self, spec):
        return self.admin("POST", "/faults", spec)

    def creds(self, spec):
        return self.admin("POST", "/creds", spec)

    def stats(self):
        return self.admin("GET", "/stats")

    def reset_stats(self):
        return self.admin("POST", "/stats/reset", {})

    def key_stats(self, key):
        """The request counters of one object (by_key of GET /stats; {} before any request)."""
        return self.stats()["by_key"].get(key, {})

    def gets(self, key):
        """GET requests for KEY so far that read the object: not those answered 304 (an open's
        revalidation with If-None-Match, which reads nothing)."""
        ks = self.key_stats(key)
        return ks.get("get", 0) - ks.get("not_modified", 0)

    def put_object(self, key, data=None, storage_class=None, restore=None):
        spec = {"key": key}
        if data is not None:
            spec["data_base64"] = base64.b64encode(data).decode()
        if storage_class is not None:
            spec["storage_class"] = storage_class
        if restore is not None:
            spec["restore"] = restore
        return self.admin("POST", "/objects", spec)


# ---------------------------------------------------------------- source trees


def pattern(size, seed):
    """Deterministic bytes (random-looking, so an off-by-a-block read cannot pass)."""
    return random.Random(seed).randbytes(size)


def write_file(root, rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    return p


def write_tree(root, files):
    """FILES: {relative path: bytes}."""
    for rel, data in files.items():
        write_file(root, rel, data)


def drop_caches():
    """Drops the kernel's page, dentry and inode caches (the next read reaches the daemon)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def free_port():
    """A TCP port free on 127.0.0.1 now (for a management port)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                return h.hexdigest()
            h.update(b)


def walk_tree(root):
    """(set of relative dirs, {relative file: size}) under ROOT."""
    dirs, files = set(), {}
    for d, dn, fn in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel != ".":
            dirs.add(rel)
        for n in fn:
            files[os.path.normpath(os.path.join(rel, n))] = os.lstat(os.path.join(d, n)).st_size
    return dirs, files


# ---------------------------------------------------------------- bounded execution


def run_bounded(code, timeout, args=(), stdin_data=None):
    """Runs python CODE in a child with a timeout; returns (returncode, stdout, stderr, seconds).
    returncode None means it timed out (the child is killed)."""
    t0 = time.monotonic()
    timeout = scaled(timeout)
    p = subprocess.Popen([sys.executable, "-c", code] + list(args), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(stdin_data, timeout=timeout)
        return p.returncode, out, err, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        p.kill()
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            out, err = "", "(child stuck even after SIGKILL)"
        return None, out, err, time.monotonic() - t0


# Child code: performs OP on PATH and prints "OK <detail>" or "ERR <errno name>".
ERRNO_PROBE = r"""
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
arg = sys.argv[3] if len(sys.argv) > 3 else None
try:
    if op == "read":
        with open(path, "rb") as f:
            n = len(f.read())
        print("OK", n)
    elif op == "open":
        os.close(os.open(path, os.O_RDONLY))
        print("OK")
    else:
        raise SystemExit("unknown op " + op)
except OSError as e:
    print("ERR", errno.errorcode.get(e.errno, str(e.errno)))
"""


# Child code defining sha_of(path): the sha256 of a file, read in 1 MiB pieces.
SHA_OF = r"""
import hashlib, sys
def sha_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)
"""

# Child code: prints the sha256 of each file named in argv, one a line.
SHA_READER = SHA_OF + r"""
for p in sys.argv[1:]:
    print(sha_of(p))
"""

# The same read with O_DIRECT: every read reaches the daemon, the page cache neither consulted
# nor filled (as after drop_caches, without its cost for the whole machine).
SHA_READER_DIRECT = r"""
import hashlib, mmap, os, sys
buf = mmap.mmap(-1, 1 << 20)  # page-aligned, for O_DIRECT
for p in sys.argv[1:]:
    h = hashlib.sha256()
    fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
    while True:
        n = os.readv(fd, [buf])
        if not n:
            break
        h.update(buf[:n])
    os.close(fd)
    print(h.hexdigest())
"""


def probe(op, path, timeout=30):
    """(result line, seconds) of ERRNO_PROBE; result None when it hung past TIMEOUT."""
    rc, out, err, secs = run_bounded(ERRNO_PROBE, timeout, [op, path])
    if rc is None:
        return None, secs
    return (out.strip() or ("EXIT %s %s" % (rc, err.strip()[-300:]))), secs


# ---------------------------------------------------------------- the management port


def mgmt_get_host(host, port, path, timeout=15):
    """GET PATH from the management port PORT on HOST: (HTTP status, body bytes)."""
    url = "http://%s:%d%s" % (host, port, path)
    try:
        with urllib.request.urlopen(url, timeout=scaled(timeout)) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def mgmt_get(port, path, timeout=15):
    """GET PATH from the management port PORT on 127.0.0.1: (HTTP status, body bytes). Raises
    OSError (URLError) when nothing answers there."""
    url = "http://127.0.0.1:%d%s" % (port, path)
    try:
        with urllib.request.urlopen(url, timeout=scaled(timeout)) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metrics(port):
    """The samples of /metrics on the management port PORT: {name as written, labels included
    (e.g. 'efc_cache_blocks{tier="disk"}'): value}."""
    status, body = mgmt_get(port, "/metrics")
    if status != 200:
        raise AssertionError("/metrics answered %d: %s" % (status, body[:300]))
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


# How long a test waits for the daemon to reach a state (a counter, a task's status) before it
# fails: generous, for a sanitizer build on a loaded machine.
WAIT_TIMEOUT = 60


def wait_metric(port, name, pred, what, timeout=WAIT_TIMEOUT, interval=0.05):
    """Polls the metric NAME (as metrics() keys it) of the management port PORT until PRED(value)
    holds; returns the value. Raises AssertionError naming the metric, its last value and WHAT
    (the state waited for) when TIMEOUT seconds pass first."""
    timeout = scaled(timeout)
    end = time.monotonic() + timeout
    while True:
        late = time.monotonic() >= end
        v = metrics(port).get(name)
        if v is not None and pred(v):
            return v
        if late:
            shown = "missing" if v is None else "%d" % v if v == int(v) else "%g" % v
            raise AssertionError("%s is %s after %g s; waited for %s" % (name, shown, timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------- the mount


class Mount:
    """One efc mount made with mount(8); unmount() is idempotent and always safe to call."""

    def __init__(self, mnt, result, source, logf=None, port=None):
        self.mnt = canon(mnt)
        self.result = result
        self.source = source
        self.logf = logf  # the daemon's log file (Harness.mount(log=True))
        self.port = port  # the management port (Harness.mount(mgmt=True))
        # The state file names the process that serves (written before the daemon says "ok");
        # a scan of /proc may still find the detaching parent, about to exit.
        self.pid = serving_pid(self.mnt)
        if self.pid is None:
            pids = daemon_pids(self.mnt)
            self.pid = pids[-1] if pids else None

    def path(self, *rel):
        return os.path.join(self.mnt, *rel)

    def info(self):
        ms = mounts_on(self.mnt)
        return ms[-1] if ms else None

    def log_files(self):
        """The daemon's log file and the rotated ones (g_log_MaxBytes), oldest first."""
        if not self.logf:
            return []
        rotated = []
        for n in os.listdir(os.path.dirname(self.logf)):
            base, _, num = n.rpartition(".")
            if base == os.path.basename(self.logf) and num.isdigit():
                rotated.append((int(num), os.path.join(os.path.dirname(self.logf), n)))
        return [p for _, p in sorted(rotated, reverse=True)] + [self.logf]

    def log_text(self):
        """What the daemon logged to its files so far, oldest first ("" when it has none)."""
        out = []
        for p in self.log_files():
            try:
                with open(p, errors="replace") as f:
                    out.append(f.read())
            except OSError:
                pass
        return "".join(out)

    def unmount(self):
        problems = unmount(self.mnt, self.pid)
        for p in problems:
            log("unmount %s: %s" % (self.mnt, p))
        return problems


def source_string(prefix=""):
    return "%s.%s:/%s" % (BUCKET, HOST, prefix)


def mount_cmd(source, mnt, options, timeout=MOUNT_TIMEOUT, extra_args=()):
    """Runs `mount -t alinas -o OPTIONS SOURCE MNT`; returns the CompletedProcess."""
    cmd = ["mount", "-t", "alinas"] + list(extra_args) + ["-o", ",".join(options), source, mnt]
    log("running: %s" % " ".join(cmd))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=mount_env())


def base_options(emu, passwd_file=None, sts_file=None, extra=()):
    opts = ["efc", "protocol=oss"]
    if passwd_file:
        opts.append("passwd_file=" + passwd_file)
    if sts_file:
        opts.append("g_oss_STSFile=" + sts_file)
    if emu is not None:
        opts.append("g_oss_Endpoint=" + emu.endpoint)
    opts += list(extra)
    return opts


def cache_options(cache_dir, mem_mb=64, disk_mb=256, extra=()):
    """Options of a single-node block cache: MEM_MB of memory, DISK_MB of disk in CACHE_DIR; EXTRA
    after them (so that they can override them)."""
    return ["g_tier_EnableClusterCache=true", "g_tier_DadiIsDistributed=false",
            "g_tier_DadiMemCacheCapacityMB=%d" % mem_mb,
            "g_tier_DadiDiskCacheCapacityMB=%d" % disk_mb,
            "g_tier_DadiDiskCachePath=" + cache_dir] + list(extra)


# ---------------------------------------------------------------- a failing disk


class Faultfs:
    """tests/tools/faultfs mounted on MNT over the directory BACKING: a file system that fails
    every data operation with EIO while told to (a disk that dies; no device-mapper needed).
    stop() unmounts it (lazily: a daemon may still hold a file of it) and ends the process by
    its pid; bounded."""

    def __init__(self, backing, mnt, log_path, add_cleanup):
        self.backing, self.mnt = backing, canon(mnt)
        self.ctl = os.path.join(self.mnt, ".faultfs")
        with open(log_path, "wb") as logf:
            self.proc = subprocess.Popen([FAULTFS, backing, self.mnt], stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         preexec_fn=_pdeathsig)
        add_cleanup(self.stop)
        wait_for(lambda: is_mounted(self.mnt) or self.proc.poll() is not None, 30,
                 "faultfs mounted on %s" % self.mnt)
        if not is_mounted(self.mnt):
            raise AssertionError("faultfs exited (%s): %s" % (self.proc.returncode,
                                                             read_bytes(log_path)[-500:]))

    def _tell(self, what):
        fd = os.open(self.ctl, os.O_WRONLY)
        try:
            os.write(fd, what)
        finally:
            os.close(fd)

    def fail(self):
        """From now on (when this returns) data operations fail with EIO."""
        self._tell(b"eio")

    def recover(self):
        self._tell(b"ok")

    def failed(self):
        """How many operations it has failed so far."""
        with open(self.ctl) as f:
            return int(f.read().split()[1])

    def stop(self):
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", self.mnt], capture_output=True, timeout=30)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# ---------------------------------------------------------------- clusters

# Several nodes on one machine: node I listens for its peers on 127.0.0.(21+I), all on one port.
def node_ip(i):
    return "127.0.0.%d" % (21 + i)


def free_cluster_port(n):
    """A TCP port free now on the addresses of nodes 0..N-1 (the P2P port of a test cluster)."""
    import socket
    for _ in range(200):
        s = socket.socket()
        s.bind((node_ip(0), 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for i in range(n):
            t = socket.socket()
            try:
                t.bind((node_ip(i), port))
            except OSError:
                ok = False
            finally:
                t.close()
            if not ok:
                break
        if ok:
            return port
    raise AssertionError("no TCP port is free on the addresses of %d nodes" % n)


def rootlist_text(port, nodes, comment="efc test cluster"):
    """A rootlist of NODES (node numbers: node I has id I+1 and address node_ip(I))."""
    return "# %s\n" % comment + "".join("%d:%s:%d\n" % (i + 1, node_ip(i), port) for i in nodes)


def cluster_options(rootlist, i, port, cache_dir, mem_mb=64, disk_mb=256, role=0, extra=()):
    """The options of node I of a cluster (distributed mode is the default): its rootlist, its
    address and port, its role (g_tier_DadiRootClientType), its cache; EXTRA last."""
    opts = ["g_tier_EnableClusterCache=true", "g_tier_DadiAddr=" + rootlist,
            "g_tier_DadiP2PIP=" + node_ip(i), "g_tier_DadiP2PPort=%d" % port,
            "g_tier_DadiRootClientType=%d" % role,
            "g_tier_DadiMemCacheCapacityMB=%d" % mem_mb,
            "g_tier_DadiDiskCacheCapacityMB=%d" % disk_mb,
            "g_tier_DadiDiskCachePath=" + cache_dir]
    return opts + list(extra)


def write_secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def write_sts(path, ak, sk, token, expiration="2099-01-01T00:00:00Z"):
    """Writes the STS file atomically (temporary file + rename), as a credential agent would."""
    tmp = path + ".tmp"
    write_secret(tmp, json.dumps({"SecurityToken": token, "AccessKeyId": ak,
                                  "AccessKeySecret": sk, "Expiration": expiration}, indent=1))
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- test base


class Harness:
    """Owns what a test (or a test class) starts; cleanup runs through the unittest callbacks
    given to it, so it happens even when the test fails or setUp raises."""

    def __init__(self, add_cleanup, tag):
        self._add_cleanup = add_cleanup
        self.tmp = tempfile.mkdtemp(prefix="efc-%s-" % tag)
        self.mounts = []
        add_cleanup(self._remove_tmp)

    def _remove_tmp(self):
        # Never rm -rf through a live mount.
        for m in mounts_under(self.tmp):
            unmount(m[0])
        if mounts_under(self.tmp):
            log("leaving %s: something is still mounted under it" % self.tmp)
            return
        shutil.rmtree(self.tmp, ignore_errors=True)

    def dir(self, name):
        p = os.path.join(self.tmp, name)
        os.makedirs(p, exist_ok=True)
        return p

    def cache_dir(self, name=None):
        """A fresh disk cache directory (named for the next mount unless NAME), with the trailing
        slash g_tier_DadiDiskCachePath wants."""
        return self.dir(name or "cache%d" % len(self.mounts)) + "/"

    def ossemu(self, root, **kw):
        kw.setdefault("log_path", os.path.join(self.tmp, "ossemu-%d.log" % len(os.listdir(self.tmp))))
        emu = Ossemu(root, **kw)
        self._add_cleanup(emu.stop)
        return emu

    def bucket(self, files, name="src", **kw):
        """A source directory NAME holding FILES ({relative path: bytes}) and an ossemu serving it
        (KW: Ossemu's arguments): (directory, Ossemu)."""
        root = self.dir(name)
        write_tree(root, files)
        return root, self.ossemu(root, **kw)

    def faultfs(self, name="faultfs"):
        """A Faultfs mounted on NAME over NAME-backing, stopped at cleanup (after the mounts
        made later, which may keep files on it)."""
        return Faultfs(self.dir(name + "-backing"), self.dir(name),
                       os.path.join(self.tmp, name + ".log"), self._add_cleanup)

    def passwd(self, ak=AK, sk=SK, name="passwd"):
        return write_secret(os.path.join(self.tmp, name), "%s:%s\n" % (ak, sk))

    def mount(self, emu, prefix="", passwd_file=None, sts_file=None, extra=(), mnt=None,
              source=None, check=True, log=False, mgmt=False):
        """Mounts through mount(8). With CHECK, fails the test unless it succeeded. With LOG, the
        daemon logs to a file of its own (m.logf, m.log_text()); with MGMT, its management API
        listens on a free port (m.port)."""
        if mnt is None:
            mnt = self.dir("mnt%d" % len(self.mounts))
        if passwd_file is None and sts_file is None:
            passwd_file = self.passwd()
        src = source or source_string(prefix)
        logf = port = None
        if log:
            logf = os.path.join(self.tmp, "efc%d.log" % len(self.mounts))
            extra = ["g_log_File=" + logf] + list(extra)
        if mgmt:
            port = free_port()
            extra = ["g_server_Port=%d" % port] + list(extra)
        opts = base_options(emu, passwd_file, sts_file, extra)
        try:
            r = mount_cmd(src, mnt, opts)
        finally:
            # Registered before we know the outcome: a mount that half-succeeded is undone too.
            self._add_cleanup(unmount, canon(mnt))
        m = Mount(mnt, r, src, logf, port)
        self.mounts.append(m)
        if check and r.returncode != 0:
            raise AssertionError("mount failed (%d): %s%s" % (r.returncode, r.stderr, r.stdout))
        if check and not is_mounted(mnt):
            raise AssertionError("mount returned 0 but nothing is mounted on %s" % mnt)
        if r.returncode == 0 and m.pid:
            # The detaching parent (efc/main.c) exits after the serving child said "ok"; under
            # valgrind its exit (the leak check) takes a while. Tests count the daemons: wait for
            # it to be gone (quietly: a test that cares asserts the count).
            wait_until(lambda: daemon_pids(m.mnt) in ([m.pid], []), 10)
        return m

    def rootlist(self, port, nodes, name="rootlist", comment="efc test cluster"):
        """Writes a rootlist of NODES (node numbers) as NAME in the test's directory."""
        p = os.path.join(self.tmp, name)
        tmp = p + ".tmp"
        with open(tmp, "w") as f:
            f.write(rootlist_text(port, nodes, comment))
        os.replace(tmp, p)  # as an operator's tool would: a reader sees all or nothing
        return p

    def node(self, emu, i, rootlist, port, role=0, mem_mb=64, disk_mb=256, extra=(), check=True):
        """Mounts node I of a cluster (its own mount point, cache directory, log, management
        port, P2P address). The mount's .node is I, .cache_dir its disk cache directory."""
        cache_dir = self.cache_dir("cache-node%d" % i)
        opts = cluster_options(rootlist, i, port, cache_dir, mem_mb, disk_mb, role, extra)
        m = self.mount(emu, extra=opts, mnt=self.dir("node%d" % i), log=True, mgmt=True,
                       check=check)
        m.node = i
        m.cache_dir = cache_dir
        return m

    def cluster(self, emu, n, port=None, extra=(), roles=None):
        """A cluster of N nodes (0..N-1) on one rootlist: (mounts, rootlist path, port)."""
        port = port or free_cluster_port(n)
        rl = self.rootlist(port, range(n))
        nodes = [self.node(emu, i, rl, port, role=(roles or {}).get(i, 0), extra=extra)
                 for i in range(n)]
        return nodes, rl, port

    def abort_all(self):
        for m in mounts_under(self.tmp):
            if m[1].startswith("fuse"):
                fuse_abort(m[4])

    def leftovers(self):
        """Problems: mounts under our directories or daemons of our mount points still there."""
        problems = ["still mounted: %s (%s)" % (m[0], m[1]) for m in mounts_under(self.tmp)]
        for m in self.mounts:
            for pid in daemon_pids(m.mnt):
                problems.append("daemon %d for %s still running" % (pid, m.mnt))
            for pid in supervisor_pids(m.mnt):
                problems.append("supervisor %d for %s still running" % (pid, m.mnt))
        return problems


class EfcTestCase(unittest.TestCase):
    """Base class: self.h is a per-test Harness, cls.ch a per-class one. A class that sets
    BUCKET_FILES ({relative path: bytes}) gets cls.src holding those files and cls.emu, an ossemu
    serving them, for all its tests."""

    maxDiff = 4000
    BUCKET_FILES = None

    @classmethod
    def setUpClass(cls):
        require_environment()
        cls.ch = Harness(cls.addClassCleanup, cls.__name__.lower())
        # Runs after every other class cleanup (they run last-in first-out) but before the
        # temporary directory goes: whatever the tests did, nothing of theirs may remain.
        cls.addClassCleanup(cls._check_leftovers, cls.ch)
        if cls.BUCKET_FILES is not None:
            cls.src, cls.emu = cls.ch.bucket(cls.BUCKET_FILES)

    def setUp(self):
        self.h = Harness(self.addCleanup, self._testMethodName.replace("test_", "")[:20])
        self.addCleanup(self._check_leftovers, self.h)
        self._t0 = time.monotonic()
        wd = threading.Timer(TEST_WATCHDOG, self._watchdog)
        wd.daemon = True
        wd.start()
        self.addCleanup(wd.cancel)
        self.addCleanup(lambda: log("%s took %.1f s" % (self.id(), time.monotonic() - self._t0)))

    @staticmethod
    def _check_leftovers(h):
        problems = h.leftovers()
        problems += ["sanitizer report %s" % r for r in sanitizer_reports()]
        if problems:
            raise AssertionError("left behind after cleanup: %s" % "; ".join(problems))

    def _watchdog(self):
        log("WATCHDOG: %s ran over %d s; aborting its FUSE connections" % (self.id(), TEST_WATCHDOG))
        self.h.abort_all()
        self.ch.abort_all()

    def read_shas(self, paths, timeout=120, direct=False):
        """The sha256 of each of PATHS, read in a child process (bounded by TIMEOUT); with
        DIRECT, read with O_DIRECT (past the page cache)."""
        paths = list(paths)
        rc, out, err, _ = run_bounded(SHA_READER_DIRECT if direct else SHA_READER, timeout, paths)
        self.assertEqual(rc, 0, "reading %s: %s" % (" ".join(paths), err[-500:]))
        shas = out.split()
        self.assertEqual(len(shas), len(paths), out)
        return shas

    def read_sha(self, path, timeout=60):
        return self.read_shas([path], timeout)[0]

    def mgmt_get(self, port, path, expect_status=200):
        """The body of a GET of PATH from the management port PORT, which must answer
        EXPECT_STATUS."""
        status, body = mgmt_get(port, path)
        self.assertEqual(status, expect_status, "%s: %s" % (path, body[:300]))
        return body

    def mgmt_api(self, port, path, expect_status=200):
        """A management API answer: JSON with ErrorCode and ErrorMessage, status EXPECT_STATUS."""
        body = json.loads(self.mgmt_get(port, path, expect_status))
        self.assertIn("ErrorCode", body)
        self.assertIn("ErrorMessage", body)
        return body

    def assert_no_leftovers(self, h=None):
        problems = (h or self.h).leftovers()
        self.assertEqual(problems, [], "leftovers after unmount")

    def assert_unmounts_cleanly(self, m):
        """Unmounts M with umount(8) and checks the daemon, its supervisor, the state file and the
        mount are gone."""
        pid = m.pid
        r = subprocess.run(["umount", m.mnt], capture_output=True, text=True, timeout=scaled(60))
        self.assertEqual(r.returncode, 0, "umount: %s" % r.stderr)
        self.assertFalse(is_mounted(m.mnt))
        if pid:
            self.assertTrue(wait_until(lambda: not pid_alive(pid), 15),
                            "daemon %d still running 15 s after umount" % pid)
        # PID may be the daemon's pre-detach parent (Mount() can catch it before it exits), so
        # the serving daemon itself is waited for by its command line too.
        wait_until(lambda: not daemon_pids(m.mnt), 15)
        self.assertEqual(daemon_pids(m.mnt), [])
        # The supervisor ends with the mount (a sanitizer build's exit, its leak check, takes a
        # moment).
        self.assertTrue(wait_until(lambda: not supervisor_pids(m.mnt), 30),
                        "supervisor %s still running 30 s after umount" % supervisor_pids(m.mnt))
        self.assertTrue(wait_until(lambda: not os.path.exists(state_file(m.mnt)), 5),
                        "state file %s left behind" % state_file(m.mnt))

    def assert_tree_equal(self, src, mnt, check_attrs=True):
        """The whole tree under MNT equals SRC: the same directories and files, every byte."""
        sdirs, sfiles = walk_tree(src)
        mdirs, mfiles = walk_tree(mnt)
        self.assertEqual(sorted(mdirs), sorted(sdirs), "directories differ")
        self.assertEqual(sorted(mfiles), sorted(sfiles), "file names differ")
        for rel, size in sfiles.items():
            self.assertEqual(mfiles[rel], size, "size of %s" % rel)
            sp, mp = os.path.join(src, rel), os.path.join(mnt, rel)
            if size <= (4 << 20):
                with open(sp, "rb") as a, open(mp, "rb") as b:
                    self.assertTrue(a.read() == b.read(), "content of %s differs" % rel)
            else:
                self.assertEqual(sha256_file(mp), sha256_file(sp), "content of %s differs" % rel)
            if check_attrs:
                st, sst = os.stat(mp), os.stat(sp)
                self.assertEqual(stat.S_IMODE(st.st_mode), 0o444, rel)
                self.assertTrue(stat.S_ISREG(st.st_mode), rel)
                self.assertEqual((st.st_uid, st.st_gid), (0, 0), rel)
                self.assertLessEqual(abs(st.st_mtime - int(sst.st_mtime)), 1.0,
                                     "mtime of %s (Last-Modified)" % rel)
        if check_attrs:
            for rel in list(sdirs)[:200] + ["."]:
                st = os.stat(os.path.join(mnt, rel))
                self.assertTrue(stat.S_ISDIR(st.st_mode), rel)
                self.assertEqual(stat.S_IMODE(st.st_mode), 0o555, rel)
                self.assertEqual((st.st_uid, st.st_gid), (0, 0), rel)

    def assert_mount_failed(self, r, mnt, fragment=None):
        """A failed mount: exit 32, one line on stderr from mount.alinas, nothing mounted, no
        daemon, no state file."""
        self.assertEqual(r.returncode, 32, "exit code (stderr %r)" % r.stderr)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "expected one line on stderr, got %r" % r.stderr)
        self.assertTrue(lines[0].startswith("mount.alinas: "), lines[0])
        if fragment:
            self.assertIn(fragment, lines[0])
        self.assertFalse(is_mounted(mnt), "something is mounted on %s" % mnt)
        self.assertTrue(wait_until(lambda: not daemon_pids(mnt), 10),
                        "a daemon for %s is still running" % mnt)
        self.assertFalse(os.path.exists(state_file(mnt)), "state file left behind")
        return lines[0]


def main():
    unittest.main(verbosity=2)
