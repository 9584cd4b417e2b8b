"""Names: a 10,000-entry directory listed exactly, unicode and special-character keys, and every
visibility rule of DESIGN.md (keys with '//', a leading '/', '.' or '..' components are not
visible; a file 'a/b' beside 'a/b/...' leaves only the directory; directories need no marker)."""

import os
import stat
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, pattern  # noqa: E402

BIG = 10000

SPECIAL = [
    "with space.txt",
    "plus+sign.txt",
    "percent%20encoded.txt",
    "percent%.txt",
    "tilde~file",
    "中文文件.txt",
    "emoji-😀.bin",
    "mixed 中 + % ~ 😀.dat",
    "quote'single",
    'quote"double',
    "hash#and&amp",
    "question?mark",
    "equals=sign;semi",
    "comma,comma",
    "at@dollar$",
    "paren(1)[2]{3}",
    "back\\slash",
    "tab\there",
    "ünïcödé-Ñ",
    "日本語/ファイル.txt",
    "dir with space/inner file",
    "dir+plus/inner+file",
    "Кириллица/файл",
    "x" * 255,
]


def visible_content(name):
    return ("content of %s\n" % name).encode()


class Names(EfcTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.src = cls.ch.dir("src")
        big = os.path.join(cls.src, "big")
        os.makedirs(big)
        for i in range(BIG):
            with open(os.path.join(big, "entry-%05d" % i), "wb") as f:
                f.write(b"%d\n" % i)
        for n in SPECIAL:
            efctest.write_file(cls.src, os.path.join("special", n), visible_content(n))
        # Directories with no marker object, only deep keys.
        efctest.write_file(cls.src, "inferred/l1/l2/l3/leaf", b"leaf\n")
        efctest.write_file(cls.src, "fresh/p/q/leaf", b"fresh\n")
        efctest.write_file(cls.src, "vis/plain", b"plain\n")
        efctest.write_file(cls.src, "vis/x/ok", b"ok\n")
        cls.emu = cls.ch.ossemu(cls.src)
        # Keys a file system cannot hold, as virtual objects. Added before the mount so that no
        # listing can have been cached without them.
        hidden = ["vis//double", "/leading", "//twice-leading", "vis/./dot", "vis/../dotdot",
                  "vis/.", "vis/..", "vis/x/./y", "vis/x/../z", "vis/x//w", "./top-dot",
                  "../top-dotdot"]
        for k in hidden:
            cls.emu.put_object(k, b"must not be visible: " + k.encode())
        # 'a/b' both a file and a directory: only the directory is visible.
        cls.emu.put_object("vis/ab", b"the file that loses")
        cls.emu.put_object("vis/ab/c", b"the file under the directory")
        # A directory marker object (zero bytes, key ending in '/') is a directory, not a file.
        cls.emu.put_object("vis/marker/", b"")
        cls.emu.put_object("vis/withmarker/", b"")
        cls.emu.put_object("vis/withmarker/in", b"in\n")
        # A hidden name (dot-file) is a plain key and stays visible.
        cls.emu.put_object("vis/.dotfile", b"dotfile\n")
        cls.m = cls.ch.mount(cls.emu)

    def test_big_directory_listed_exactly(self):
        t0 = time.monotonic()
        names = os.listdir(self.m.path("big"))
        t_list = time.monotonic() - t0
        self.assertEqual(len(names), BIG)
        self.assertEqual(sorted(names), ["entry-%05d" % i for i in range(BIG)])
        # readdirplus + stat of every entry, as ls -l does
        t0 = time.monotonic()
        r = subprocess.run(["ls", "-l", self.m.path("big")], capture_output=True, text=True,
                           timeout=120)
        t_ls = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [l for l in r.stdout.splitlines() if l.startswith("-")]
        self.assertEqual(len(lines), BIG)
        self.assertTrue(all(l.startswith("-r--r--r--") for l in lines), lines[:3])
        efctest.log("10,000 entries: os.listdir %.2f s, ls -l %.2f s" % (t_list, t_ls))
        # a second listing (cached or not) is exact too
        self.assertEqual(len(set(os.listdir(self.m.path("big")))), BIG)
        for i in (0, 1, 4999, 9999):
            with open(self.m.path("big", "entry-%05d" % i), "rb") as f:
                self.assertEqual(f.read(), b"%d\n" % i)

    def test_special_and_unicode_keys(self):
        top = sorted({n.split("/")[0] for n in SPECIAL})
        self.assertEqual(sorted(os.listdir(self.m.path("special"))), top)
        for n in SPECIAL:
            p = self.m.path("special", n)
            st = os.stat(p)
            self.assertTrue(stat.S_ISREG(st.st_mode), n)
            self.assertEqual(st.st_size, len(visible_content(n)), n)
            with open(p, "rb") as f:
                self.assertEqual(f.read(), visible_content(n), n)
        self.assert_tree_equal(os.path.join(self.src, "special"), self.m.path("special"))

    def test_invisible_keys(self):
        root = sorted(os.listdir(self.m.mnt))
        self.assertEqual(root, ["big", "fresh", "inferred", "special", "vis"])
        self.assertEqual(sorted(os.listdir(self.m.path("vis"))),
                         [".dotfile", "ab", "marker", "plain", "withmarker", "x"])
        self.assertEqual(sorted(os.listdir(self.m.path("vis", "x"))), ["ok"])
        for bad in ("y", "z", "w"):
            self.assertFalse(os.path.lexists(self.m.path("vis", "x", bad)), bad)
        for bad in ("double", "dot", "dotdot", "top-dot", "top-dotdot", "leading",
                    "twice-leading"):
            self.assertFalse(os.path.lexists(self.m.path(bad)), bad)
            self.assertFalse(os.path.lexists(self.m.path("vis", bad)), bad)
        # '.' and '..' are the kernel's own: vis/. is vis, vis/.. is the root
        self.assertEqual(os.stat(self.m.path("vis", ".")).st_ino, os.stat(self.m.path("vis")).st_ino)
        self.assertEqual(os.stat(self.m.path("vis", "..")).st_ino, os.stat(self.m.mnt).st_ino)
        with open(self.m.path("vis", "plain"), "rb") as f:
            self.assertEqual(f.read(), b"plain\n")
        with open(self.m.path("vis", ".dotfile"), "rb") as f:
            self.assertEqual(f.read(), b"dotfile\n")

    def test_file_and_directory_same_name(self):
        p = self.m.path("vis", "ab")
        self.assertTrue(os.path.isdir(p))
        self.assertFalse(os.path.isfile(p))
        self.assertEqual(os.listdir(p), ["c"])
        with open(os.path.join(p, "c"), "rb") as f:
            self.assertEqual(f.read(), b"the file under the directory")
        with self.assertRaises(IsADirectoryError):
            open(p, "rb").close()
        entries = {e.name: e for e in os.scandir(self.m.path("vis"))}
        self.assertTrue(entries["ab"].is_dir(follow_symlinks=False))

    def test_markers_and_inferred_directories(self):
        for rel in ("inferred", "inferred/l1", "inferred/l1/l2", "inferred/l1/l2/l3"):
            st = os.stat(self.m.path(rel))
            self.assertTrue(stat.S_ISDIR(st.st_mode), rel)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o555, rel)
        self.assertEqual(os.listdir(self.m.path("inferred", "l1", "l2", "l3")), ["leaf"])
        # a marker object alone is an empty directory; its own key is not an entry
        self.assertTrue(os.path.isdir(self.m.path("vis", "marker")))
        self.assertEqual(os.listdir(self.m.path("vis", "marker")), [])
        self.assertEqual(os.listdir(self.m.path("vis", "withmarker")), ["in"])
        # lookups with no readdir of the directory first work too
        with open(self.m.path("fresh", "p", "q", "leaf"), "rb") as f:
            self.assertEqual(f.read(), b"fresh\n")
        self.assertTrue(os.path.isdir(self.m.path("fresh", "p")))

    def test_inodes_stable(self):
        a = os.stat(self.m.path("vis", "plain")).st_ino
        os.listdir(self.m.path("vis"))
        b = os.stat(self.m.path("vis", "plain")).st_ino
        self.assertEqual(a, b)
        ino = {e.name: e.inode() for e in os.scandir(self.m.path("special"))}
        self.assertEqual(len(set(ino.values())), len(ino), "inode numbers collide")


if __name__ == "__main__":
    efctest.main()
