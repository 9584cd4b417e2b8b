"""The Debian package, as a user meets it: built with cpack from the build tree (configured with
CMAKE_INSTALL_PREFIX=/usr), checked by lintian, installed with dpkg on this machine, used (a mount
with `mount -t alinas` and one from an fstab line with _netdev, both with the installed daemon, the
CLI, efc_runtime_ops.py and the service's report), then removed: `dpkg -r` with the mounts still
mounted refuses while one is in use, then unmounts them and leaves no efc process and no file but
the conffile; `dpkg --purge` leaves nothing.

It changes the machine, so it puts things back: whatever was at the package's paths before (the
mount tests' /sbin/mount.alinas, or what `cmake --install` put there, also under /usr/local) is
moved aside before the installation and moved back at the end, also on failure, after the package
is purged. The other mount tests use /sbin/mount.alinas: do not run this one beside them.

Environment (set by ctest): EFC_BUILD_DIR, EFC_SOURCE_DIR, EFC_OSSEMU_DIR. Standard library only.
"""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration", "mount"))
# This test installs the package's own /sbin/mount.alinas: it runs in the host's mount name space,
# not in the private one where efctest bind-mounts the build tree's helper over that file.
os.environ["EFC_TEST_MOUNT_NS"] = "host"
import efctest  # noqa: E402
from efctest import EfcTestCase, pattern  # noqa: E402

PKG = "efc"
DAEMON = "/usr/bin/aliyun-alinas-efc"
CLI = "/usr/bin/aliyun-alinas-efc-cli"
RUNTIME_OPS_PY = "/usr/bin/efc_runtime_ops.py"
SERVICE = "/usr/sbin/aliyun-alinas-efc-service"
UNIT = "/lib/systemd/system/aliyun-alinas-efc.service"
CONFFILE = "/etc/efc/rootlist.example"
WANTS = "/etc/systemd/system/multi-user.target.wants/aliyun-alinas-efc.service"
# Every file the package must hold (it may hold more).
EXPECTED = [DAEMON, "/sbin/mount.alinas", CLI, "/usr/bin/efc_runtime_ops", RUNTIME_OPS_PY,
            SERVICE, UNIT, CONFFILE, "/usr/share/doc/efc/copyright",
            "/usr/share/doc/efc/changelog.gz", "/usr/share/man/man8/aliyun-alinas-efc.8.gz",
            "/usr/share/man/man8/mount.alinas.8.gz", "/usr/share/man/man1/aliyun-alinas-efc-cli.1.gz",
            "/usr/share/man/man8/efc_runtime_ops.8.gz", "/usr/share/man/man8/efc_runtime_ops.py.8.gz",
            "/usr/share/man/man8/aliyun-alinas-efc-service.8.gz"]
FILES = {"a.bin": pattern(700 * 1024 + 3, 61), "d/b.txt": pattern(4000, 62)}
SAVED = ".efc-package-test-saved"


def run(cmd, timeout=120, **kw):
    efctest.log("running: %s" % " ".join(cmd))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def status():
    """dpkg's status of the package: 'install ok installed', 'deinstall ok config-files', or ''
    when dpkg does not know it."""
    r = run(["dpkg-query", "-W", "-f=${Status}", PKG])
    return r.stdout.strip() if r.returncode == 0 else ""


def installed_env():
    """mount(8)'s environment without the harness's EFC_DAEMON: the installed mount.alinas runs
    the daemon it has built in."""
    env = efctest.mount_env()
    env.pop("EFC_DAEMON", None)
    return env


def exe_of(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return None


def efc_processes():
    """Pids of processes running the installed daemon (the daemons and their supervisors), or
    the service."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        exe = exe_of(int(d))
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if exe in (DAEMON, DAEMON + " (deleted)") or SERVICE.encode() in cmd:
            out.append(int(d))
    return out


class PackageTest(EfcTestCase):
    BUCKET_FILES = FILES

    def setUp(self):
        super().setUp()
        self.assertEqual(status(), "", "the %s package is on this machine already: this test "
                         "installs and purges it (dpkg --purge %s first)" % (PKG, PKG))
        for tool in ("cpack", "dpkg-deb", "lintian", "systemd-analyze"):
            self.assertIsNotNone(shutil.which(tool), "%s is needed (scripts/setup.sh)" % tool)
        with open(os.path.join(efctest.BUILD_DIR, "CMakeCache.txt")) as f:
            cache = f.read()
        self.version = re.search(r"^CMAKE_PROJECT_VERSION:STATIC=(.+)$", cache, re.M).group(1)

    # ------------------------------------------------------------------ steps

    def build(self):
        out = self.h.dir("pkg")
        t0 = time.monotonic()
        r = run(["cpack", "-G", "DEB", "-B", out], cwd=efctest.BUILD_DIR, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        debs = glob.glob(os.path.join(out, "*.deb"))
        self.assertEqual([os.path.basename(d) for d in debs], ["efc_%s_amd64.deb" % self.version])
        efctest.log("cpack: %.1f s" % (time.monotonic() - t0))
        deb = debs[0]
        fields = run(["dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends"])
        self.assertEqual(fields.returncode, 0, fields.stderr)
        self.assertIn("Package: efc\nVersion: %s\nArchitecture: amd64\n" % self.version,
                      fields.stdout)
        # dpkg-shlibdeps named the libraries' Debian packages.
        for lib in ("libc6", "libfuse3-3", "libcurl4", "libssl3", "libjansson4", "libmicrohttpd12",
                    "liburing2", "fuse3", "python3"):
            self.assertRegex(fields.stdout, r"Depends:.*\b%s\b" % re.escape(lib))
        return deb

    def lint(self, deb):
        t0 = time.monotonic()
        # Every tag at every level, experimental and pedantic too: only the overridden ones
        # (packaging/deb/lintian-overrides, each with its reason) may remain.
        r = run(["lintian", "--fail-on", "error,warning,info,pedantic,experimental", "-I", "-E",
                 "--pedantic", deb], timeout=300)
        efctest.log("lintian: %.1f s" % (time.monotonic() - t0))
        tags = [l for l in r.stdout.splitlines() if re.match(r"^[EWIPX]: ", l)]
        self.assertEqual(tags, [], "lintian:\n%s" % r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def contents(self, deb):
        """The package's files and links (not its directories), as absolute paths."""
        r = run(["dpkg-deb", "-c", deb])
        self.assertEqual(r.returncode, 0, r.stderr)
        paths = []
        for line in r.stdout.splitlines():
            if line.startswith("d"):
                continue
            name = line.split(None, 5)[5].split(" -> ")[0]
            paths.append(os.path.normpath("/" + name))
        return paths

    def move_aside(self, paths):
        """Moves what is at PATHS (and the /usr/local copies a `cmake --install` with its default
        prefix leaves) aside; puts it back at cleanup."""
        candidates = set(paths)
        for p in paths:
            for a, b in (("/usr/bin/", "/usr/local/bin/"), ("/usr/sbin/", "/usr/local/sbin/"),
                         ("/lib/systemd/system/", "/usr/local/lib/systemd/system/")):
                if p.startswith(a):
                    candidates.add(b + p[len(a):])
        for p in sorted(candidates):
            if not os.path.lexists(p):
                continue
            owner = run(["dpkg", "-S", p])
            self.assertNotEqual(owner.returncode, 0, "%s belongs to a package: %s" %
                                (p, owner.stdout.strip()))
            os.replace(p, p + SAVED)
            self.addCleanup(os.replace, p + SAVED, p)
            efctest.log("moved %s aside" % p)

    def purge_at_cleanup(self):
        def purge():
            if status():
                r = run(["dpkg", "--purge", PKG], timeout=120)
                efctest.log("cleanup: dpkg --purge: %d %s" % (r.returncode, r.stderr.strip()))
        self.addCleanup(purge)

    def mount(self, how, extra=()):
        mnt = self.h.dir("mnt-%s" % how)
        opts = ",".join(efctest.base_options(self.emu, passwd_file=self.h.passwd()) + list(extra))
        src = efctest.source_string()
        if how == "fstab":
            fstab = os.path.join(self.h.tmp, "fstab")
            with open(fstab, "w") as f:
                f.write("# an efc line as an operator writes it\n%s %s alinas %s,_netdev,nofail "
                        "0 0\n" % (src, mnt, opts))
            cmd = ["mount", "--fstab", fstab, mnt]
        else:
            cmd = ["mount", "-t", "alinas", "-o", opts, src, mnt]
        try:
            r = run(cmd, timeout=efctest.MOUNT_TIMEOUT, env=installed_env())
        finally:
            self.addCleanup(efctest.unmount, mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = efctest.Mount(mnt, r, src)
        self.h.mounts.append(m)
        # Served by the installed daemon, supervised by it.
        self.assertEqual(exe_of(m.pid), DAEMON)
        sup = efctest.wait_for(lambda: efctest.supervisor_pids(m.mnt), 30, "a supervisor")[0]
        self.assertEqual(exe_of(sup), DAEMON)
        for rel, data in FILES.items():
            with open(m.path(rel), "rb") as f:
                self.assertTrue(f.read() == data, "content of %s" % rel)
        return m

    # ------------------------------------------------------------------ the test

    def test_build_install_mount_remove(self):
        deb = self.build()
        self.lint(deb)
        paths = self.contents(deb)
        for p in EXPECTED:
            self.assertIn(p, paths)
        self.move_aside(paths)
        self.purge_at_cleanup()

        r = run(["dpkg", "-i", deb])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(status(), "install ok installed")
        conff = run(["dpkg-query", "-W", "-f=${Conffiles}", PKG]).stdout
        self.assertEqual([l.split()[0] for l in conff.splitlines() if l.strip()], [CONFFILE])
        # Registered (enabled for the next boot), not started.
        self.assertEqual(os.readlink(WANTS), UNIT)
        self.assertEqual(efc_processes(), [], "efc processes right after the installation")
        # Offline: its syntax, its ExecStart and its Documentation (the man pages) exist.
        v = run(["systemd-analyze", "verify", UNIT])
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertNotIn("aliyun-alinas-efc.service:", v.stdout + v.stderr)  # a warning about it
        with open(CONFFILE) as f:
            self.assertTrue(all(l.startswith("#") or not l.strip() for l in f), "not all comments")

        port = efctest.free_port()
        m1 = self.mount("t", ["g_server_Port=%d" % port])
        m2 = self.mount("fstab")
        tier = run([CLI, "-m", m1.mnt, "-r", "tier"])
        self.assertEqual(tier.returncode, 0, tier.stderr)
        self.assertRegex(tier.stdout, r"(?m)^tier_read \d+$")
        upd = run([RUNTIME_OPS_PY, "update", m2.mnt, "-o", "g_fuse_AttrTimeoutSec=3"], timeout=150)
        self.assertEqual(upd.returncode, 0, upd.stderr)
        new = efctest.serving_pid(m2.mnt)
        self.assertNotEqual(new, m2.pid)
        self.assertEqual(exe_of(new), DAEMON)
        m2.pid = new
        once = run([SERVICE, "--once", "--mounts-under", self.h.tmp])
        self.assertEqual(once.returncode, 0, once.stdout + once.stderr)
        for m in (m1, m2):
            self.assertRegex(once.stdout, r"(?m)^'%s' ok: .*daemon pid %d, supervisor \d+$"
                             % (re.escape(m.mnt), m.pid))

        # A mount in use stops the removal: the package stays, the mount goes on serving.
        holder = subprocess.Popen([sys.executable, "-c", "import sys; f = open(sys.argv[1], 'rb');"
                                   " print('open', flush=True); sys.stdin.read()", m1.path("a.bin")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        def end_holder():
            if holder.poll() is None:
                holder.kill()
            holder.communicate()
        self.addCleanup(end_holder)
        self.assertEqual(holder.stdout.readline().strip(), "open")
        r = run(["dpkg", "-r", PKG], timeout=180)
        self.assertNotEqual(r.returncode, 0, "dpkg -r went through a mount in use")
        self.assertIn("cannot unmount '%s'" % m1.mnt, r.stderr)
        self.assertEqual(status(), "deinstall ok installed")  # wanted gone, still installed
        self.assertTrue(efctest.is_mounted(m1.mnt))
        self.assertEqual(self.read_sha(m1.path("d/b.txt")), efctest.sha256_bytes(FILES["d/b.txt"]))
        holder.communicate(timeout=30)  # closes its stdin: it exits

        r = run(["dpkg", "-r", PKG], timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(status(), "deinstall ok config-files")
        for m in (m1, m2):
            self.assertFalse(efctest.is_mounted(m.mnt), "%s still mounted" % m.mnt)
        self.assertEqual(efc_processes(), [], "efc processes left after dpkg -r")
        left = [p for p in paths if os.path.lexists(p) and p != CONFFILE]
        self.assertEqual(left, [], "files of the package left after dpkg -r")
        self.assertTrue(os.path.exists(CONFFILE), "dpkg -r removed the conffile")

        r = run(["dpkg", "--purge", PKG], timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(status(), "")
        left = [p for p in ["/etc/efc", WANTS, "/etc/systemd/system/aliyun-alinas-efc.service"] +
                glob.glob("/var/lib/systemd/deb-systemd-*/*aliyun-alinas-efc*") +
                glob.glob("/var/lib/systemd/deb-systemd-*/*/*aliyun-alinas-efc*")
                if os.path.lexists(p)]
        self.assertEqual(left, [], "left after dpkg --purge")


if __name__ == "__main__":
    efctest.main()
