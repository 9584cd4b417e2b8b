"""The distributed cache with real daemons: nodes on one machine, each its own mount, cache
directory, management port and P2P address (127.0.0.21, .22, ... on one port), over one ossemu
bucket that counts what the origin serves.

A dataset read on every node at once costs the origin one copy; the nodes' counters add up;
a node killed mid-transfer, nodes added and removed while readers run, an agent, a root that
reads for itself, a peer sending damaged pages (through a relay that flips a byte) or stalling,
a wrong key and differing rootlists: every byte read stays right, and each case shows in the
counters and /v1/cluster. Options that cannot work fail the mount with one line."""

import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efctest  # noqa: E402
from efctest import EfcTestCase, MIB, pattern, sha256_bytes  # noqa: E402

FILES = {
    "models/model.bin": pattern(24 * MIB + 12345, 1),
    "models/config.json": pattern(3000, 2),
    "models/tokenizer.bin": pattern(700 * 1024, 3),
    "big/a.bin": pattern(48 * MIB, 4),  # 12 spans of 4 MiB: any node of two owns some
    "big/b.bin": pattern(48 * MIB + 7, 5),
    "big/c.bin": pattern(48 * MIB + 11, 6),
    "warm/w.bin": pattern(16 * MIB + 3, 7),
}
MODEL = ["models/model.bin", "models/config.json", "models/tokenizer.bin"]
TIER = ["tier_read", "tier_read_bytes", "tier_read_hit", "tier_read_hit_bytes", "tier_read_miss",
        "tier_read_miss_bytes", "tier_direct_read", "tier_direct_read_bytes",
        "tier_root_read_source", "tier_root_read_source_bytes"]
CLI = os.path.join(efctest.BUILD_DIR, "cli", "aliyun-alinas-efc-cli")
READ_TIMEOUT = 300  # a sanitizer build on a loaded machine


# ------------------------------------------------------------------------------ helpers

def start_reader(paths):
    """A child process that prints the sha256 of each of PATHS (read in 1 MiB pieces)."""
    return subprocess.Popen([sys.executable, "-c", efctest.SHA_READER] + list(paths),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_reader(test, proc, paths, timeout=READ_TIMEOUT):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("reading %s took over %d s" % (paths, timeout))
    test.assertEqual(proc.returncode, 0, "reading %s: %s" % (paths, err[-800:]))
    shas = out.split()
    test.assertEqual(len(shas), len(paths), out)
    for p, sha in zip(paths, shas):
        rel = p.split("/node", 1)[1].split("/", 1)[1]
        test.assertEqual(sha, sha256_bytes(FILES[rel]), "content of %s" % p)


def read_at_once(test, path_lists):
    """Reads each list of PATH_LISTS in a process of its own, all at once; checks every byte."""
    procs = [(start_reader(paths), paths) for paths in path_lists]
    for proc, paths in procs:
        finish_reader(test, proc, paths)


class Relay:
    """A TCP relay between a node and a peer, in front of the peer's address: frames from the
    peer are parsed (32-byte header: type at 5, meta and data lengths at 16 and 20) and, in mode
    "corrupt", the first byte of every DATA frame's data is flipped (its page CRC then fails at
    the node); in mode "stall", nothing the peer sends after its HELLO_OK is passed on."""

    def __init__(self, listen_ip, port, target_ip, mode):
        self.mode = mode
        self.target = (target_ip, port)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((listen_ip, port))
        self.lsock.listen(16)
        self.flipped = 0
        self.stalled = 0
        self.stop_flag = False
        self.socks = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop_flag:
            r, _, _ = select.select([self.lsock], [], [], 0.2)
            if not r:
                continue
            try:
                c, _ = self.lsock.accept()
                s = socket.create_connection(self.target, timeout=5)
            except OSError:
                continue
            self.socks += [c, s]
            threading.Thread(target=self._pipe, args=(c, s), daemon=True).start()
            threading.Thread(target=self._frames, args=(s, c), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass

    def _read(self, s, n):
        buf = b""
        while len(buf) < n:
            d = s.recv(n - len(buf))
            if not d:
                raise OSError("closed")
            buf += d
        return buf

    def _frames(self, s, c):
        try:
            while True:
                hdr = self._read(s, 32)
                ftype = hdr[5]
                meta_len, data_len = struct.unpack_from("<II", hdr, 16)
                meta = self._read(s, meta_len)
                data = self._read(s, data_len) if data_len else b""
                if self.mode == "stall" and ftype == 5:
                    self.stalled += 1
                    continue  # swallowed: the node waits for an answer that never comes
                if self.mode == "corrupt" and ftype == 5 and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                    self.flipped += 1
                c.sendall(hdr + meta + data)
        except OSError:
            pass

    def stop(self):
        self.stop_flag = True
        for x in self.socks + [self.lsock]:
            try:
                x.close()
            except OSError:
                pass
        self.thread.join(5)


class Cluster(EfcTestCase):
    BUCKET_FILES = FILES

    def tier(self, m):
        body = self.mgmt_api(m.port, "/v1/tier")
        r = body["Results"][0]
        return {k: r[k] for k in TIER}

    def assert_tier_adds_up(self, m):
        t = self.tier(m)
        self.assertEqual(t["tier_read"], t["tier_read_hit"] + t["tier_read_miss"]
                         + t["tier_direct_read"], "%s: %s" % (m.mnt, t))
        self.assertEqual(t["tier_read_bytes"], t["tier_read_hit_bytes"] + t["tier_read_miss_bytes"]
                         + t["tier_direct_read_bytes"], "%s: %s" % (m.mnt, t))
        return t

    def cluster_info(self, m):
        return self.mgmt_api(m.port, "/v1/cluster")["Results"][0]

    def origin_gets(self, keys):
        """(GETs that read KEYS, not the revalidations answered 304; the bytes they sent)."""
        st = self.emu.stats()["by_key"]
        return (sum(st.get(k, {}).get("get", 0) - st.get(k, {}).get("not_modified", 0)
                    for k in keys),
                sum(st.get(k, {}).get("bytes", 0) for k in keys))

    def read_model_everywhere(self, nodes):
        """Every node of NODES reads the model at once, from cold kernel caches, every byte
        checked. Returns (the model's size, the origin's GETs of it, the bytes it sent)."""
        self.emu.reset_stats()
        efctest.drop_caches()
        read_at_once(self, [[m.path(f) for f in MODEL] for m in nodes])
        return (sum(len(FILES[f]) for f in MODEL),) + self.origin_gets(MODEL)

    def metric(self, m, name):
        return efctest.metrics(m.port).get(name, 0)

    def relayed_pair(self, mode):
        """Node 0, and node 1 as node 0 knows it: by the address of a Relay (127.0.0.24) in MODE
        in front of node 1's own (node 1's rootlist names itself). Returns (node 0, the relay)."""
        port = efctest.free_cluster_port(4)
        rl0 = self.h.rootlist(port, [0], name="rootlist0")
        with open(rl0, "a") as f:
            f.write("2:%s:%d\n" % (efctest.node_ip(3), port))
        rl1 = self.h.rootlist(port, [0, 1], name="rootlist1")
        a = self.h.node(self.emu, 0, rl0, port)
        self.h.node(self.emu, 1, rl1, port)
        relay = Relay(efctest.node_ip(3), port, efctest.node_ip(1), mode)
        self.addCleanup(relay.stop)
        return a, relay

    def check_open_asks_one_byte(self, nodes):
        """A cluster node's open asks the origin (close-to-open) for one byte: its blocks come
        through the P2P layer, so a first block fetched at open would be thrown away. A new
        object (its lookup names its ETag: the opens are 304s), then the same object changed
        (200s): each node's open costs one GET of at most one byte, and the reads that follow
        see the new bytes on every node."""
        key = "opens/changed.bin"
        for version, seed in ((1, 71), (2, 72)):
            data = efctest.pattern(300 * 1024 + version, seed)
            self.emu.put_object(key, data)
            self.emu.reset_stats()
            for m in nodes:
                os.close(os.open(m.path(key), os.O_RDONLY))
            ks = self.emu.key_stats(key)
            self.assertEqual(ks.get("get", 0), len(nodes), "version %d: %s" % (version, ks))
            self.assertLessEqual(ks.get("bytes", 0), len(nodes),
                                 "version %d: the opens fetched bytes: %s" % (version, ks))
            for m in nodes:
                with open(m.path(key), "rb") as f:
                    self.assertEqual(f.read(), data, "version %d on %s" % (version, m.mnt))

    # -------------------------------------------------------------------------- the cluster

    def test_read_everywhere_once(self):
        """Three nodes read a model at once: the origin serves it once, every byte right, the
        counters add up and show where the bytes came from."""
        nodes, rl, port = self.h.cluster(self.emu, 3)
        size, gets, sent = self.read_model_everywhere(nodes)
        efctest.log("3 nodes read %d bytes: the origin sent %d in %d GETs (x%.3f)"
                    % (size, sent, gets, sent / size))
        self.assertLessEqual(sent, size * 1.05)
        root = 0
        for m in nodes:
            t = self.assert_tier_adds_up(m)
            # At least every byte, as in test_agent_and_root: the counters count the reads FUSE
            # sends, and on a loaded machine the kernel has sent a piece twice (not yet
            # explained; here once 4 KiB more than the model, in CI while the ASan build
            # compiled). What reached the origin is checked exactly below.
            self.assertGreaterEqual(t["tier_read_bytes"], size, "%s: %s" % (m.mnt, t))
            self.assertEqual(t["tier_direct_read"], 0, t)
            root += t["tier_root_read_source_bytes"]
        self.assertEqual(root, sent, "the nodes' origin fetches are what the origin sent")
        # /v1/cluster: the same membership everywhere, every peer up, roles known
        hashes = set()
        for m in nodes:
            ci = self.cluster_info(m)
            hashes.add(ci["RootlistHash"])
            self.assertEqual(ci["MemberCount"], 3)
            self.assertEqual(ci["MismatchedPeers"], 0)
            self.assertEqual(ci["Self"], "%d:%s:%d" % (m.node + 1, efctest.node_ip(m.node), port))
            states = {x["Name"]: x["State"] for x in ci["Members"]}
            self.assertEqual(sorted(states.values()).count("self"), 1)
            for x in ci["Members"]:
                self.assertIn(x["State"], ("self", "up", "unknown"), x)
                self.assertTrue(x["RootlistMatches"], x)
        self.assertEqual(len(hashes), 1)
        # a second reading on one node: from its own cache, no origin request
        self.emu.reset_stats()
        efctest.drop_caches()
        read_at_once(self, [[nodes[1].path(f) for f in MODEL]])
        self.assertEqual(self.origin_gets(MODEL)[0], 0)
        self.check_open_asks_one_byte(nodes)
        # the CLI shows the same
        r = subprocess.run([CLI, "-m", nodes[0].mnt, "-r", "cluster"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("members         3", r.stdout)
        for m in nodes:
            self.assertIn("%d:%s:%d" % (m.node + 1, efctest.node_ip(m.node), port), r.stdout)
        # the metrics of the P2P layer are there
        mt = efctest.metrics(nodes[0].port)
        self.assertIn("efc_p2p_members", mt)
        self.assertEqual(mt["efc_p2p_members"], 3)
        self.assertIn('efc_p2p_errors_total{kind="corrupt"}', mt)

    def test_dashboard_metrics(self):
        """contrib/grafana/efc-cluster.json (the fleet's Grafana dashboard) is what its generator
        writes, and every metric its queries name is in a real node's /metrics, with every label
        it groups by."""
        import importlib.util
        import re
        gdir = os.path.join(efctest.SOURCE_DIR, "contrib", "grafana")
        spec = importlib.util.spec_from_file_location("mkdash",
                                                      os.path.join(gdir, "make-dashboard.py"))
        mk = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mk)
        with open(os.path.join(gdir, "efc-cluster.json")) as f:
            dash = json.load(f)
        self.assertEqual(dash, json.loads(json.dumps(mk.dashboard())),
                         "efc-cluster.json is stale: run contrib/grafana/make-dashboard.py")
        nodes, rl, port = self.h.cluster(self.emu, 2)
        read_at_once(self, [[m.path("models/config.json")] for m in nodes])
        samples = efctest.metrics(nodes[0].port)
        names = {k.split("{", 1)[0] for k in samples}
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
        self.assertGreater(len(exprs), 10)
        for e in exprs:
            for name in re.findall(r"\befc_[a-z0-9_]+", e):
                self.assertIn(name, names, "the dashboard's %s is not in /metrics (%s)" % (name, e))
                for group in re.findall(r"by \(([^)]*)\)", e):
                    for label in (x.strip() for x in group.split(",")):
                        if label in ("instance", "le"):
                            continue  # Prometheus's own, and every histogram's
                        self.assertTrue(any(k.startswith(name + "{") and label + '="' in k
                                            for k in samples),
                                        "%s has no label %s (%s)" % (name, label, e))

    def test_cluster_off_reads_n_times(self):
        """The control of the test above: the same three nodes with g_tier_DadiIsDistributed=false
        each fetch the whole model from the origin (so the test server's counter does tell one
        copy from three)."""
        nodes, rl, port = self.h.cluster(self.emu, 3, extra=["g_tier_DadiIsDistributed=false"])
        size, gets, sent = self.read_model_everywhere(nodes)
        efctest.log("cluster off: 3 nodes read %d bytes: the origin sent %d in %d GETs (x%.3f)"
                    % (size, sent, gets, sent / size))
        self.assertGreaterEqual(sent, size * 3)
        for m in nodes:
            t = self.assert_tier_adds_up(m)
            self.assertEqual(t["tier_root_read_source_bytes"], size, t)
            self.assertNotIn("efc_p2p_members", efctest.metrics(m.port))

    def warm_up(self, m):
        """Warms up the directory 'warm' from node M, waits for the task to complete and checks
        that the origin sent its file once."""
        self.emu.reset_stats()
        body = self.mgmt_api(m.port, "/v1/warmup/load?target_path=warm")
        self.assertEqual(body["Results"][0]["ErrorCode"], 0, body)

        def done():
            r = self.mgmt_api(m.port, "/v1/warmup/stat?target_path=warm")["Results"][0]
            ti = r.get("TaskInfos") or [{}]
            return ti[0] if ti[0].get("Status") in ("completed", "failed") else None
        ti = efctest.wait_for(done, efctest.WAIT_TIMEOUT, "the warm-up of 'warm' to end")
        self.assertEqual(ti["Status"], "completed", ti)
        self.assertEqual(ti["CompletedSize"], len(FILES["warm/w.bin"]))
        self.assertEqual(ti["TotalSize"], len(FILES["warm/w.bin"]))
        gets, sent = self.origin_gets(["warm/w.bin"])
        self.assertEqual(sent, len(FILES["warm/w.bin"]))

    def test_warmup_at_owners(self):
        """A warm-up on one node loads each block at its owner: afterwards every node reads the
        file without an origin request, and the warm-up's progress covers the whole file."""
        nodes, rl, port = self.h.cluster(self.emu, 3)
        self.warm_up(nodes[0])
        # held by the owners, not (all) by node 0: another node's reading costs no origin GET
        self.emu.reset_stats()
        for m in nodes:
            read_at_once(self, [[m.path("warm/w.bin")]])
        self.assertEqual(self.origin_gets(["warm/w.bin"])[0], 0)

    def test_warmup_local_copy(self):
        """With g_warmup_LocalCopy=true the node that asked for the warm-up keeps a copy too
        (taken from the owners: the origin still sends the file once): with its peers gone it
        reads the file from its own cache, asking neither a peer nor the origin."""
        nodes, rl, port = self.h.cluster(self.emu, 3, extra=["g_warmup_LocalCopy=true"])
        self.warm_up(nodes[0])
        for m in nodes[1:]:
            m.unmount()
        before = efctest.metrics(nodes[0].port)
        self.emu.reset_stats()
        efctest.drop_caches()
        read_at_once(self, [[nodes[0].path("warm/w.bin")]])
        self.assertEqual(self.origin_gets(["warm/w.bin"])[0], 0)
        after = efctest.metrics(nodes[0].port)
        for k in ('efc_p2p_blocks_total{from="peer_hit"}', 'efc_p2p_blocks_total{from="peer_miss"}',
                  'efc_p2p_blocks_total{from="fallback"}'):
            self.assertEqual(after.get(k, 0), before.get(k, 0), k)
        t = self.assert_tier_adds_up(nodes[0])
        self.assertEqual(t["tier_direct_read"], 0, t)

    def test_kill_owner_mid_read(self):
        """A node killed (SIGKILL) while it sends blocks: the reader on the other node gets every
        byte right, the blocks the dead node owned come from the origin (direct reads)."""
        port = efctest.free_cluster_port(2)
        rl = self.h.rootlist(port, [0, 1])
        a = self.h.node(self.emu, 0, rl, port)
        b = self.h.node(self.emu, 1, rl, port)
        self.emu.faults({"bw_per_conn": 20000000})  # slow enough to be caught mid-read
        efctest.drop_caches()
        paths = [a.path("big/a.bin")]
        proc = start_reader(paths)
        efctest.wait_metric(b.port, 'efc_p2p_served_blocks_total{result="miss"}', lambda v: v > 0,
                            "node 1 sending blocks to node 0")
        os.kill(b.pid, signal.SIGKILL)
        finish_reader(self, proc, paths)
        self.emu.faults({})
        t = self.assert_tier_adds_up(a)
        self.assertGreater(t["tier_direct_read"], 0, t)
        mt = efctest.metrics(a.port)
        self.assertGreater(mt['efc_p2p_blocks_total{from="fallback"}'], 0)
        errs = sum(v for k, v in mt.items() if k.startswith("efc_p2p_errors_total"))
        self.assertGreater(errs, 0)
        b.unmount()

    def test_membership_changes_under_load(self):
        """Readers go on while a node is added to the rootlist and another removed from it (the
        rootlist reloaded on each node): no read fails, every byte is right."""
        port = efctest.free_cluster_port(4)
        rl = self.h.rootlist(port, [0, 1, 2])
        nodes = [self.h.node(self.emu, i, rl, port) for i in range(3)]
        efctest.drop_caches()
        jobs = [(start_reader([nodes[0].path("big/b.bin")]), [nodes[0].path("big/b.bin")]),
                (start_reader([nodes[1].path("big/c.bin")]), [nodes[1].path("big/c.bin")])]
        # scale out: node 3 joins, everyone reloads
        d = self.h.node(self.emu, 3, rl, port)
        self.h.rootlist(port, [0, 1, 2, 3])
        for m in nodes + [d]:
            body = self.mgmt_api(m.port, "/v1/action/reload_rootlist")
            self.assertIn("4 members", body["Results"][0]["ErrorMessage"])
        # scale in: node 2 leaves
        self.h.rootlist(port, [0, 1, 3])
        for m in nodes + [d]:
            self.mgmt_api(m.port, "/v1/action/reload_rootlist")
        for p, paths in jobs:
            finish_reader(self, p, paths)
        for m in (nodes[0], nodes[1], d):
            ci = self.cluster_info(m)
            self.assertEqual(ci["MemberCount"], 3)
            self.assert_tier_adds_up(m)
        # the node that left is not in it any more but still reads (through the cluster)
        ci = self.cluster_info(nodes[2])
        self.assertEqual(ci["Self"], "")
        read_at_once(self, [[nodes[2].path("models/model.bin")]])

    def test_agent_and_root(self):
        """An agent (g_tier_DadiRootClientType=2) reads through the owners, stores nothing (its
        cache directory stays empty) and does not touch the origin; a root (1) serves its peers
        but reads from the origin itself."""
        port = efctest.free_cluster_port(3)
        rl = self.h.rootlist(port, [0, 1])
        a = self.h.node(self.emu, 0, rl, port)
        r = self.h.node(self.emu, 1, rl, port, role=1)
        agent = self.h.node(self.emu, 2, rl, port, role=2)
        # node 0 reads the model: the owners (node 0 and the root) hold it afterwards
        read_at_once(self, [[a.path(f) for f in MODEL]])
        # (Twice in loaded CI runs the root had served nothing here: node 0's p2p lines say why.)
        self.assertGreater(self.metric(r, 'efc_p2p_served_blocks_total{result="miss"}'), 0,
                           "\n".join(l for l in a.log_text().splitlines() if "p2p" in l)[-3000:])
        self.emu.reset_stats()
        efctest.drop_caches()
        read_at_once(self, [[agent.path(f) for f in MODEL]])
        self.assertEqual(self.origin_gets(MODEL)[0], 0, "the agent made the origin send")
        self.assertEqual(os.listdir(agent.cache_dir), [], "the agent stored something")
        t = self.assert_tier_adds_up(agent)
        # At least every byte: the counters count the reads FUSE sends, and once, on a loaded
        # machine, the kernel sent 152 KiB of a 25 MB model twice (not yet explained).
        self.assertGreaterEqual(t["tier_read_bytes"], sum(len(FILES[f]) for f in MODEL))
        self.assertEqual(t["tier_read_hit"], t["tier_read"], t)  # every byte a peer's hit
        self.assertEqual(t["tier_root_read_source"], 0)
        ci = self.cluster_info(agent)
        self.assertEqual(ci["Role"], "agent")
        # the root: its reads go to the origin, not to node 0
        req0 = self.metric(r, "efc_p2p_requests_total")
        self.emu.reset_stats()
        read_at_once(self, [[r.path("big/a.bin")]])
        self.assertEqual(self.metric(r, "efc_p2p_requests_total"), req0)
        self.assertEqual(self.origin_gets(["big/a.bin"])[1], len(FILES["big/a.bin"]))

    def test_corrupt_pages_caught(self):
        """A peer whose pages arrive damaged (a relay flips a byte of each DATA frame): every
        damaged block is caught by its CRC, counted, and read from the origin instead; no
        damaged byte reaches the reader or the cache."""
        a, relay = self.relayed_pair("corrupt")
        efctest.drop_caches()
        read_at_once(self, [[a.path("big/a.bin")]])
        self.assertGreater(relay.flipped, 0, "nothing went through the relay")
        mt = efctest.metrics(a.port)
        self.assertGreater(mt['efc_p2p_errors_total{kind="corrupt"}'], 0)
        self.assertGreater(mt['efc_p2p_blocks_total{from="fallback"}'], 0)
        self.assertGreater(self.tier(a)["tier_direct_read"], 0)
        # what the cache kept is right too: read again from memory/disk with no page cache
        efctest.drop_caches()
        read_at_once(self, [[a.path("big/a.bin")]])

    def test_stalled_peer_deadline(self):
        """A peer that accepts GETs and never answers: each waits its deadline (derived from the
        peer's latency, not 30 s), the block comes from the origin, the peer goes into back-off;
        the read ends, every byte right."""
        a, relay = self.relayed_pair("stall")
        efctest.drop_caches()
        t0 = time.monotonic()
        read_at_once(self, [[a.path("big/a.bin")]])
        secs = time.monotonic() - t0
        self.assertGreater(relay.stalled, 0)
        mt = efctest.metrics(a.port)
        timeouts = mt['efc_p2p_errors_total{kind="timeout"}']
        efctest.log("a stalled peer: the read took %.1f s, %d timeouts" % (secs, timeouts))
        self.assertGreater(timeouts, 0)
        self.assertGreater(mt['efc_p2p_blocks_total{from="fallback"}'], 0)
        ci = self.cluster_info(a)
        peer = [x for x in ci["Members"] if not x["Self"]][0]
        self.assertIn("timeout", peer["LastError"])

    def test_wrong_key_refused(self):
        """Peer authentication: nodes holding the key serve each other; one with another key is
        refused both ways (counted, said in /v1/cluster) and reads from the origin."""
        key = efctest.write_secret(os.path.join(self.h.tmp, "key"), "the cluster's secret key\n")
        bad = efctest.write_secret(os.path.join(self.h.tmp, "bad"), "not the cluster's key!!\n")
        port = efctest.free_cluster_port(3)
        rl = self.h.rootlist(port, [0, 1, 2])
        a = self.h.node(self.emu, 0, rl, port, extra=["g_tier_DadiP2PKeyFile=" + key])
        self.h.node(self.emu, 1, rl, port, extra=["g_tier_DadiP2PKeyFile=" + key])
        c = self.h.node(self.emu, 2, rl, port, extra=["g_tier_DadiP2PKeyFile=" + bad])
        for m in (a, c):
            read_at_once(self, [[m.path("big/a.bin")]])
        self.assertGreater(self.metric(a, 'efc_p2p_errors_total{kind="auth"}'), 0)
        self.assertGreater(self.metric(c, 'efc_p2p_errors_total{kind="auth"}'), 0)
        self.assertTrue(self.cluster_info(a)["Authentication"])
        peers = {x["Id"]: x for x in self.cluster_info(c)["Members"]}
        self.assertIn("authentication", peers["1"]["LastError"] + peers["2"]["LastError"])
        self.assertEqual(self.metric(c, 'efc_p2p_blocks_total{from="peer_hit"}')
                         + self.metric(c, 'efc_p2p_blocks_total{from="peer_miss"}'), 0)
        self.assertNotIn("the cluster's secret", a.log_text() + c.log_text())

    def test_secrets_nowhere(self):
        """The object-store secret and the cluster's key appear in no output of a node: its log
        at debug level, every /v1 answer and /metrics, its state file, its command line and
        environment, after reads through the cluster, a warm-up and a rootlist reload."""
        key_text = "a P2P key nobody may see 7f3c9"
        key = efctest.write_secret(os.path.join(self.h.tmp, "key"), key_text + "\n")
        secrets = [efctest.SK, key_text]
        port = efctest.free_cluster_port(2)
        rl = self.h.rootlist(port, [0, 1])
        extra = ["g_tier_DadiP2PKeyFile=" + key, "g_log_Level=debug"]
        nodes = [self.h.node(self.emu, i, rl, port, extra=extra) for i in range(2)]
        read_at_once(self, [[m.path(f) for f in MODEL] for m in nodes])
        self.warm_up(nodes[0])
        for m in nodes:
            self.mgmt_api(m.port, "/v1/action/reload_rootlist")
        outputs = {}
        for m in nodes:
            for path in ("/v1/tier", "/v1/cluster", "/v1/warmup/stat?target_path=warm",
                         "/metrics", "/v1/warmup/load?target_path=nothing-here"):
                status, body = efctest.mgmt_get(m.port, path)
                outputs["%s %s" % (m.mnt, path)] = body.decode("utf-8", "replace")
            outputs[m.mnt + " log"] = m.log_text()
            with open(efctest.state_file(m.mnt)) as f:
                outputs[m.mnt + " state file"] = f.read()
            for proc in ("cmdline", "environ"):
                with open("/proc/%d/%s" % (m.pid, proc), "rb") as f:
                    outputs["%s %s" % (m.mnt, proc)] = f.read().decode("utf-8", "replace")
        self.assertGreater(len(outputs[nodes[0].mnt + " log"]), 1000)  # debug logging was on
        for what, text in outputs.items():
            for secret in secrets:
                self.assertFalse(secret in text, "the secret %r is in %s" % (secret, what))

    def test_rootlists_differ(self):
        """A node whose rootlist differs from its peers' is reported: counted, logged and shown
        in /v1/cluster (MismatchedPeers, RootlistMatches)."""
        port = efctest.free_cluster_port(3)
        rl = self.h.rootlist(port, [0, 1, 2])
        other = self.h.rootlist(port, [0, 2], name="rootlist-other")
        a = self.h.node(self.emu, 0, rl, port)
        self.h.node(self.emu, 1, rl, port)
        c = self.h.node(self.emu, 2, other, port)
        for m in (a, c):
            read_at_once(self, [[m.path("big/b.bin")]])
        ci = self.cluster_info(a)
        self.assertGreaterEqual(ci["MismatchedPeers"], 1, ci)
        bad = [x for x in ci["Members"] if x["Id"] == "3"][0]
        self.assertFalse(bad["RootlistMatches"], bad)
        self.assertGreaterEqual(self.metric(a, "efc_p2p_membership_mismatched_peers"), 1)
        self.assertIn("another membership", a.log_text() + c.log_text())

    def test_runtime_update(self):
        """efc_runtime_ops update of a cluster node: the new process takes the mount and its
        P2P address over (the old one lets go of it first), peers are served again, and the
        node's own reads go on through the cluster."""
        nodes, rl, port = self.h.cluster(self.emu, 2)
        a, b = nodes
        tool = os.path.join(efctest.SOURCE_DIR, "cli", "efc_runtime_ops")
        env = dict(os.environ)
        env.pop("EFC_STATE_DIR", None)
        pid0 = a.pid
        r = subprocess.run([sys.executable, tool, "update", a.mnt, "-o", "g_fuse_AttrTimeoutSec=2"],
                           capture_output=True, text=True, timeout=200, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        a.pid = efctest.wait_for(lambda: [p for p in efctest.daemon_pids(a.mnt) if p != pid0],
                                 efctest.WAIT_TIMEOUT, "the new daemon of node 0")[0]
        ci = self.cluster_info(a)
        self.assertEqual(ci["Self"], "1:%s:%d" % (efctest.node_ip(0), port))
        # node 1 reads a file of which node 0 owns spans: node 0 serves again, or its blocks
        # come from the origin; either way nothing fails and node 0's server is back
        read_at_once(self, [[b.path("big/c.bin")]])
        efctest.wait_for(lambda: self.metric(a, "efc_p2p_served_requests_total") > 0,
                         efctest.WAIT_TIMEOUT, "node 0 serving node 1 after its update")
        read_at_once(self, [[a.path("big/b.bin")]])
        self.assert_tier_adds_up(a)

    # -------------------------------------------------------------------------- options

    def test_options_refused(self):
        """What cannot work fails the mount with one line naming the option."""
        port = efctest.free_cluster_port(1)
        cache = self.h.cache_dir()
        cases = [
            (["g_tier_EnableClusterCache=true", "g_tier_DadiMemCacheCapacityMB=64"],
             "g_tier_DadiAddr: required in distributed mode"),
            (["g_tier_DadiMemCacheCapacityMB=64", "g_tier_DadiAddr=/nonexistent/rootlist"],
             "g_tier_DadiAddr: cannot read rootlist '/nonexistent/rootlist'"),
            (["g_tier_DadiRootClientType=2", "g_tier_DadiIsDistributed=false"],
             "g_tier_DadiRootClientType: 2 (an agent) reads through the cluster"),
        ]
        loose = efctest.write_secret(os.path.join(self.h.tmp, "loose"), "a key others can read\n")
        os.chmod(loose, 0o644)
        rl = self.h.rootlist(port, [0])
        cases.append((efctest.cluster_options(rl, 0, port, cache, extra=[
            "g_tier_DadiP2PKeyFile=" + loose]), "g_tier_DadiP2PKeyFile: '%s' may be read by "
            "others" % loose))
        blocker = socket.socket()
        blocker.bind((efctest.node_ip(0), port))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        cases.append((efctest.cluster_options(rl, 0, port, cache),
                      "g_tier_DadiP2PPort: cannot listen on %s:%d" % (efctest.node_ip(0), port)))
        for i, (opts, fragment) in enumerate(cases):
            mnt = self.h.dir("refused%d" % i)
            m = self.h.mount(self.emu, extra=opts, mnt=mnt, check=False)
            line = self.assert_mount_failed(m.result, mnt, fragment)
            efctest.log("refused: %s" % line)
        # the guide's basic mount (no cache option) needs no rootlist
        m = self.h.mount(self.emu)
        self.assertEqual(efctest.read_bytes(m.path("models/config.json")),
                         FILES["models/config.json"])


class ClusterNetns(EfcTestCase):
    """Two nodes with a real network between them: node 1 in a network namespace of its own,
    joined to the host by a veth pair the test creates and removes. Its link is cut while node 0
    reads (no reset, no refusal: packets just stop) and restored afterwards."""

    def setUp(self):
        super().setUp()
        if shutil.which("ip") is None or shutil.which("nsenter") is None:
            self.fail("ip (iproute2) and nsenter (util-linux) are needed; scripts/setup.sh "
                      "installs them")
        n = 10 + os.getpid() % 200
        self.ns = "efct%d" % os.getpid()
        self.veth = "efcv%d" % (os.getpid() % 100000)
        self.host_ip, self.ns_ip = "10.201.%d.1" % n, "10.201.%d.2" % n
        self.run_ip("netns", "add", self.ns)
        self.addCleanup(self.run_ip, "netns", "del", self.ns, check=False)
        self.run_ip("link", "add", self.veth, "type", "veth", "peer", "name", self.veth + "n")
        self.addCleanup(self.run_ip, "link", "del", self.veth, check=False)
        self.run_ip("link", "set", self.veth + "n", "netns", self.ns)
        self.run_ip("addr", "add", self.host_ip + "/24", "dev", self.veth)
        self.run_ip("link", "set", self.veth, "up")
        self.run_ip("-n", self.ns, "addr", "add", self.ns_ip + "/24", "dev", self.veth + "n")
        self.run_ip("-n", self.ns, "link", "set", self.veth + "n", "up")
        self.run_ip("-n", self.ns, "link", "set", "lo", "up")

    def run_ip(self, *args, check=True):
        r = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("ip %s: %s" % (" ".join(args), r.stderr.strip()))

    def test_link_cut_mid_read(self):
        src = self.h.dir("src")
        # big/a.bin read across the cut; fresh/* read one after another once the link is back,
        # each uncached, until node 1 has served one (its back-off runs up to 30 s)
        fresh = {"fresh/f%d.bin" % i: pattern(8 * MIB + i, 100 + i) for i in range(12)}
        efctest.write_tree(src, dict(fresh, **{"big/a.bin": FILES["big/a.bin"]}))
        # the origin on the host's end of the link, so both nodes reach it
        emu = self.h.ossemu(src, args=["--host", self.host_ip])
        emu.endpoint = "http://%s:%d" % (self.host_ip, emu.port)
        with socket.socket() as probe:  # a port free on the host's end (the namespace is new)
            probe.bind((self.host_ip, 0))
            port = probe.getsockname()[1]
        rl = os.path.join(self.h.tmp, "rootlist")
        with open(rl, "w") as f:
            f.write("1:%s:%d\n2:%s:%d\n" % (self.host_ip, port, self.ns_ip, port))
        common = ["g_tier_EnableClusterCache=true", "g_tier_DadiAddr=" + rl,
                  "g_tier_DadiP2PPort=%d" % port, "g_tier_DadiMemCacheCapacityMB=64",
                  "g_tier_DadiDiskCacheCapacityMB=256"]
        a = self.h.mount(emu, mnt=self.h.dir("node0"), log=True, mgmt=True, extra=common + [
            "g_tier_DadiP2PIP=" + self.host_ip, "g_tier_DadiDiskCachePath=" + self.h.cache_dir()])
        # node 1: its daemon in the namespace (its mount in the host's mount namespace)
        mnt1 = self.h.dir("node1")
        mport = efctest.free_port()
        opts = efctest.base_options(emu, self.h.passwd(), None, common + [
            "g_tier_DadiP2PIP=" + self.ns_ip, "g_tier_DadiDiskCachePath=" + self.h.cache_dir("c1"),
            "g_server_Port=%d" % mport, "g_server_BindAddr=" + self.ns_ip,
            "g_log_File=" + os.path.join(self.h.tmp, "node1.log")])
        self.addCleanup(efctest.unmount, efctest.canon(mnt1))
        r = subprocess.run(["nsenter", "--net=/var/run/netns/" + self.ns, "mount", "-t",
                            "alinas", "-o", ",".join(opts), efctest.source_string(), mnt1],
                           capture_output=True, text=True, timeout=efctest.MOUNT_TIMEOUT,
                           env=efctest.mount_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        b = efctest.Mount(mnt1, r, efctest.source_string(), None, None)
        self.h.mounts.append(b)

        def b_metric(name):
            status, body = efctest.mgmt_get_host(self.ns_ip, mport, "/metrics")
            for line in body.decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.rsplit(" ", 1)[1])
            return 0

        emu.faults({"bw_per_conn": 20000000})  # slow enough to cut mid-read
        efctest.drop_caches()
        paths = [a.path("big/a.bin")]
        proc = start_reader(paths)
        efctest.wait_for(lambda: b_metric('efc_p2p_served_blocks_total{result="miss"}') > 0,
                         efctest.WAIT_TIMEOUT, "node 1 serving node 0")
        self.run_ip("link", "set", self.veth, "down")  # packets stop: no reset, no refusal
        t0 = time.monotonic()
        finish_reader(self, proc, paths)
        efctest.log("link cut mid-read: the rest took %.1f s" % (time.monotonic() - t0))
        mt = efctest.metrics(a.port)
        self.assertGreater(mt['efc_p2p_errors_total{kind="timeout"}']
                           + mt['efc_p2p_errors_total{kind="reset"}'], 0)
        self.assertGreater(mt['efc_p2p_blocks_total{from="fallback"}'], 0)
        # the link back: once its back-off is over, node 1 serves node 0 again
        self.run_ip("link", "set", self.veth, "up")
        emu.faults({})
        served = b_metric("efc_p2p_served_requests_total")
        names = sorted(fresh)

        def read_next():
            if not names:
                return False
            f = names.pop(0)
            p = a.path(f)
            proc = subprocess.run([sys.executable, "-c", efctest.SHA_READER, p],
                                  capture_output=True, text=True, timeout=READ_TIMEOUT)
            self.assertEqual(proc.stdout.split(), [sha256_bytes(fresh[f])], proc.stderr)
            return b_metric("efc_p2p_served_requests_total") > served
        efctest.wait_for(read_next, efctest.WAIT_TIMEOUT, lambda: "node 1 serving node 0 again; "
                         "node 0 sees %s" % [(x["Name"], x["State"], x["LastError"]) for x in
                                             self.mgmt_api(a.port, "/v1/cluster")["Results"][0]
                                             ["Members"]], interval=2)


if __name__ == "__main__":
    efctest.main()
