"""Basic mounts through mount(8): signature V1 and V4, STS with the token rotated mid-run, an
fstab line with _netdev, a prefix as the root, df, and unmount leaving nothing behind.

Each mount compares the whole tree with the source directory: names, sizes, every byte, modes,
owners and mtimes."""

import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, pattern  # noqa: E402


def source_files():
    files = {
        "empty": b"",
        "one": b"x",
        "hello.txt": b"hello, efc\n",
        "page+1": pattern(4097, 1),
        "block-1": pattern((1 << 20) - 1, 2),
        "block+7": pattern((1 << 20) + 7, 3),
        "two-blocks": pattern(2 << 20, 4),
        "big.bin": pattern(9 << 20, 5),  # several readahead ranges in flight
        "a/b/c/d/e/deep.txt": b"deep\n",
        "a/b/sibling": pattern(10000, 6),
        "a/top": b"top\n",
        "sub/dir/inner.bin": pattern(70000, 7),
        "sub/dir/nested/leaf": b"leaf\n",
        "sub/other": b"other\n",
        "sub/dir2/x": b"x2\n",
    }
    for i in range(250):  # more than one ListObjectsV2 page at OSS's default of 100
        files["many/f%03d" % i] = pattern(i * 13, 100 + i)
    return files


class BasicMount(EfcTestCase):
    BUCKET_FILES = source_files()

    def check_mount_entry(self, m, source):
        info = m.info()
        self.assertIsNotNone(info, "not in mountinfo")
        mnt, fstype, src, opts, _ = info
        self.assertEqual(fstype, efctest.FSTYPE)
        self.assertEqual(src, source)
        optset = set(opts.split(","))
        # Not "ro": the daemon refuses writes itself (EROFS) so chmod/chown can answer EPERM.
        for o in ("nosuid", "nodev", "allow_other", "default_permissions"):
            if o == "default_permissions" and o not in optset:
                continue  # shown only by newer kernels in the super options
            self.assertIn(o, optset, "mount option %s missing: %s" % (o, opts))
        # /proc/mounts, as df and scripts read it
        with open("/proc/mounts") as f:
            self.assertTrue(any(l.split()[1] == m.mnt and l.split()[2] == efctest.FSTYPE
                                for l in f), "not in /proc/mounts")

    def check_df(self, m):
        st = os.statvfs(m.mnt)
        self.assertGreater(st.f_bsize, 0)
        r = subprocess.run(["df", "-h", m.mnt], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(m.mnt, r.stdout)
        r = subprocess.run(["df", "-i", m.mnt], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def check_state_file(self, m, protocol="oss"):
        with open(efctest.state_file(m.mnt)) as f:
            st = json.load(f)
        self.assertEqual(st.get("mountpoint"), m.mnt)
        self.assertEqual(st.get("source"), m.source)
        self.assertEqual(st.get("protocol"), protocol)
        self.assertIn(int(st.get("pid")), efctest.daemon_pids(m.mnt))

    def mount_and_compare(self, sign_version):
        m = self.h.mount(self.emu, extra=["g_oss_SignVersion=%d" % sign_version])
        self.check_mount_entry(m, efctest.source_string())
        # the helper is gone once mount(8) returns; one daemon process serves the mount
        self.assertEqual(efctest.helper_pids(m.mnt), [])
        self.assertIsNotNone(m.pid, "no daemon process found for %s" % m.mnt)
        self.assertEqual(efctest.daemon_pids(m.mnt), [m.pid])
        self.check_state_file(m)
        self.assert_tree_equal(self.src, m.mnt)
        self.check_df(m)
        self.assert_unmounts_cleanly(m)
        self.assert_no_leftovers()

    def test_v1(self):
        self.mount_and_compare(1)

    def test_v4(self):
        self.mount_and_compare(4)

    def test_sts_rotation(self):
        """STS credentials from g_oss_STSFile; the token is rotated while mounted (the old one is
        then refused by the server) and reads go on without a remount."""
        files = {"r%02d.bin" % i: pattern(300000 + i, 500 + i) for i in range(12)}
        _, emu = self.h.bucket(files, "stssrc", creds=(), sts=("STSAK1:stssk1:TOKEN-ONE",))
        sts = efctest.write_sts(os.path.join(self.h.tmp, "passwd-sts"), "STSAK1", "stssk1",
                                "TOKEN-ONE")
        m = self.h.mount(emu, sts_file=sts)
        names = sorted(files)
        self.assertEqual(sorted(os.listdir(m.mnt)), names)
        for n in names[:6]:
            with open(m.path(n), "rb") as f:
                self.assertTrue(f.read() == files[n], n)

        # Rotate: the server takes only the new key and token and calls the old token expired;
        # then the credential agent rewrites the file (atomically).
        emu.creds({"sts": ["STSAK2:stssk2:TOKEN-TWO"], "expired_tokens": ["TOKEN-ONE"]})
        efctest.write_sts(sts, "STSAK2", "stssk2", "TOKEN-TWO")
        emu.reset_stats()
        for n in names[6:]:
            with open(m.path(n), "rb") as f:
                self.assertTrue(f.read() == files[n], "%s after rotation" % n)
        # files read before the rotation: a reopen revalidates with the origin
        for n in names[:6]:
            fd = os.open(m.path(n), os.O_RDONLY | os.O_DIRECT)
            try:
                data = b""
                while True:
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        break
                    data += chunk
            finally:
                os.close(fd)
            self.assertTrue(data == files[n], "%s reread after rotation" % n)
        st = emu.stats()
        self.assertGreater(st["by_status"].get("200", 0) + st["by_status"].get("206", 0), 0,
                           "no successful origin request after the rotation: %s" % st)
        self.assert_unmounts_cleanly(m)
        self.assert_no_leftovers()

    def test_s3_protocol(self):
        """protocol=s3 (AWS SigV4), virtual-hosted and path-style requests."""
        for extra in ([], ["g_oss_PathStyle=true"]):
            with self.subTest(extra=extra):
                src = "%s.s3.cn-hangzhou.amazonaws.com:/" % efctest.BUCKET
                mnt = self.h.dir("s3mnt%d" % len(extra))
                opts = ["efc", "protocol=s3", "passwd_file=" + self.h.passwd(),
                        "g_oss_Endpoint=" + self.emu.endpoint, "g_oss_Region=cn-hangzhou"] + extra
                try:
                    r = efctest.mount_cmd(src, mnt, opts)
                finally:
                    self.addCleanup(efctest.unmount, mnt)
                self.assertEqual(r.returncode, 0, r.stderr)
                m = efctest.Mount(mnt, r, src)
                self.h.mounts.append(m)
                self.check_mount_entry(m, src)
                self.assert_tree_equal(self.src, m.mnt)
                self.check_df(m)
                self.assert_unmounts_cleanly(m)
        self.assert_no_leftovers()

    def test_fstab_netdev(self):
        """`mount --fstab FILE DIR` with an fstab line carrying _netdev and other generic options."""
        mnt = self.h.dir("fstabmnt")
        pw = self.h.passwd()
        fstab = os.path.join(self.h.tmp, "fstab")
        opts = ",".join(efctest.base_options(self.emu, passwd_file=pw) +
                        ["_netdev", "nofail", "noatime", "x-systemd.automount", "trybind=no"])
        with open(fstab, "w") as f:
            f.write("# efc test fstab\n%s %s alinas %s 0 0\n" % (efctest.source_string(), mnt, opts))
        try:
            r = subprocess.run(["mount", "--fstab", fstab, mnt], capture_output=True, text=True,
                               timeout=efctest.MOUNT_TIMEOUT, env=efctest.mount_env())
        finally:
            self.addCleanup(efctest.unmount, mnt)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = efctest.Mount(mnt, r, efctest.source_string())
        self.h.mounts.append(m)
        self.check_mount_entry(m, efctest.source_string())
        with open(m.path("hello.txt"), "rb") as f:
            self.assertEqual(f.read(), b"hello, efc\n")
        with open(m.path("big.bin"), "rb") as f:
            self.assertTrue(f.read() == pattern(9 << 20, 5))
        self.assert_unmounts_cleanly(m)
        self.assert_no_leftovers()

    def test_prefix_is_root(self):
        for prefix in ("sub/dir", "sub/dir/"):
            with self.subTest(prefix=prefix):
                m = self.h.mount(self.emu, prefix=prefix)
                self.check_mount_entry(m, efctest.source_string(prefix))
                self.assertEqual(sorted(os.listdir(m.mnt)), ["inner.bin", "nested"])
                self.assert_tree_equal(os.path.join(self.src, "sub", "dir"), m.mnt)
                self.assertFalse(os.path.exists(m.path("other")))
                self.assertFalse(os.path.exists(m.path("sub")))
                self.assert_unmounts_cleanly(m)
        self.assert_no_leftovers()

    def test_verbose_and_fake(self):
        """mount -f (fake) validates only; -v shows the daemon's command line."""
        mnt = self.h.dir("fakemnt")
        pw = self.h.passwd()
        r = efctest.mount_cmd(efctest.source_string(), mnt,
                              efctest.base_options(self.emu, passwd_file=pw,
                                                   extra=["g_tier_BlockSize=4M"]),
                              extra_args=["-f", "-v"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(efctest.is_mounted(mnt))
        self.assertEqual(efctest.daemon_pids(mnt), [])
        # the daemon of the build tree: mount(8) passed EFC_DAEMON on to the helper
        self.assertRegex(r.stdout, r"mount.alinas: running %s --ready-fd=\d+ --protocol=oss "
                                   r"--passwd_file=%s " % (re.escape(efctest.daemon_command()), re.escape(pw)))
        self.assertIn("--tier_BlockSize=4194304", r.stdout)
        self.assertIn("--oss_Endpoint=%s" % self.emu.endpoint, r.stdout)
        self.assertIn(" %s %s" % (efctest.source_string(), os.path.realpath(mnt)), r.stdout)

    def test_already_mounted(self):
        m = self.h.mount(self.emu)
        r = efctest.mount_cmd(efctest.source_string(), m.mnt,
                              efctest.base_options(self.emu, passwd_file=self.h.passwd()))
        self.assertEqual(r.returncode, 32, r.stderr)
        self.assertIn("mount.alinas: '%s' is already mounted" % m.mnt, r.stderr)
        self.assertEqual(len(efctest.mounts_on(m.mnt)), 1)
        self.assertEqual(len(efctest.daemon_pids(m.mnt)), 1)
        self.assert_unmounts_cleanly(m)
        self.assert_no_leftovers()


if __name__ == "__main__":
    efctest.main()
