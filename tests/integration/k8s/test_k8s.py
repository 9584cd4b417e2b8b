"""tests/integration/k8s/test_k8s.py - deploy/k8s checked without a cluster and without docker.

What runs (a few seconds, no root):
- yamllint on every manifest (Debian's yamllint; scripts/setup.sh installs it);
- the manifests against the API shapes they use: apiVersion/kind pairs, names, namespaces,
  selectors matching their pod templates, container ports, volumes named by mounts, probes' named
  ports, ConfigMaps, ServiceAccounts and Roles referred to, Bidirectional propagation only in a
  privileged container, the Prometheus port, the paths efc-node.sh is given lying in the volumes
  that hold them, the Role granting what rootlist-sync.sh calls;
- kubectl, when one is on PATH, parsing each file the same as PyYAML (`kubectl label --local`,
  the one thing it does without a cluster; it checks no schema);
- rootlist-sync.sh against a fake kubectl (a stub on PATH that answers from a canned pod list and
  keeps the ConfigMap in a file): the rootlist it writes, no patch when nothing changed, a node
  added, no pod left, kubectl failing;
- efc-node.sh with stub mount/umount/mountpoint: the mount command it builds (every g_ option in
  util/opt.c's table), the container staying while the mount lives, unmounting on SIGTERM, and
  exiting when the mount goes away;
- the Dockerfile: base image, COPY sources present, RUN steps through `bash -n` and shellcheck,
  its Debian packages resolved by `apt-get -s install` (simulation: nothing is installed).
Not run: docker build, the package's installation in the image, anything against an API server.

PyYAML (Debian's python3-yaml) reads the manifests; if this interpreter lacks it the test re-runs
itself with /usr/bin/python3.
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

try:
    import yaml
except ImportError:  # a Python of its own (pyenv) without PyYAML: Debian's has it
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise SystemExit("test_k8s: PyYAML is missing: run scripts/setup.sh (python3-yaml)")

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
K8S = os.path.join(SOURCE_DIR, "deploy", "k8s")
RUN_TIMEOUT = 30
NS = "efc-system"

KINDS = {
    ("v1", "Namespace"): False, ("v1", "ConfigMap"): True, ("v1", "Secret"): True,
    ("v1", "ServiceAccount"): True, ("v1", "Service"): True,
    ("apps/v1", "DaemonSet"): True, ("apps/v1", "Deployment"): True,
    ("batch/v1", "CronJob"): True,
    ("rbac.authorization.k8s.io/v1", "Role"): True,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): True,
}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# p2p/rootlist.c: an id is 1 to 64 of letters, digits, '.', '_', '-'; then an address, a port.
ROOTLIST_LINE = re.compile(r"^[A-Za-z0-9._-]{1,64}:(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):\d{1,5}$")


def run(argv, **kw):
    kw.setdefault("timeout", RUN_TIMEOUT)
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def manifests():
    """[(file, doc)] of every document of deploy/k8s/*.yaml."""
    out = []
    for f in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        with open(f) as fh:
            for doc in yaml.safe_load_all(fh):
                if doc is not None:
                    out.append((os.path.basename(f), doc))
    return out


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for _, d in docs if d["kind"] == kind}


def pod_specs(docs):
    """[(workload name, pod template)] of the DaemonSets, Deployments and CronJobs."""
    out = []
    for _, d in docs:
        if d["kind"] in ("DaemonSet", "Deployment"):
            out.append((d["metadata"]["name"], d["spec"]["template"]))
        elif d["kind"] == "CronJob":
            out.append((d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]))
    return out


def under(path, directory):
    return path == directory or path.startswith(directory.rstrip("/") + "/")


class Manifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = manifests()

    def test_yamllint(self):
        if shutil.which("yamllint") is None:
            self.fail("yamllint is missing: run scripts/setup.sh")
        r = run(["yamllint", "-s", "-c", os.path.join(K8S, ".yamllint"), K8S])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_kinds_names_namespaces(self):
        self.assertGreaterEqual(len(self.docs), 8)
        seen = set()
        for f, d in self.docs:
            key = (d.get("apiVersion"), d.get("kind"))
            self.assertIn(key, KINDS, f"{f}: unknown apiVersion/kind {key}")
            name = d["metadata"]["name"]
            self.assertRegex(name, DNS1123, f"{f}: name {name!r}")
            self.assertLessEqual(len(name), 63, f"{f}: {name}")
            if KINDS[key]:
                self.assertEqual(d["metadata"].get("namespace"), NS, f"{f}: {d['kind']} {name}")
            self.assertNotIn((d["kind"], name), seen, f"{f}: {d['kind']} {name} twice")
            seen.add((d["kind"], name))
            for field in ("labels", "annotations"):
                for k, v in (d["metadata"].get(field) or {}).items():
                    self.assertIsInstance(v, str, f"{f}: {field} {k} is not a string")
            if d["kind"] == "ConfigMap":
                for k, v in d["data"].items():
                    self.assertIsInstance(v, str, f"{f}: ConfigMap {name} data {k} is not a string")
        self.assertIn(NS, by_kind(self.docs, "Namespace"))
        # Files apply in name order: the Namespace first.
        self.assertEqual(self.docs[0][1]["kind"], "Namespace")

    def test_pod_templates(self):
        cms = by_kind(self.docs, "ConfigMap")
        sas = by_kind(self.docs, "ServiceAccount")
        self.assertTrue(pod_specs(self.docs))
        for name, tpl in pod_specs(self.docs):
            w = f"workload {name}"
            spec = tpl["spec"]
            vols = {}
            for v in spec.get("volumes", []):
                self.assertNotIn(v["name"], vols, f"{w}: volume {v['name']} twice")
                sources = [k for k in v if k != "name"]
                self.assertEqual(len(sources), 1, f"{w}: volume {v['name']} has {sources}")
                vols[v["name"]] = v
                if "configMap" in v:
                    self.assertIn(v["configMap"]["name"], cms, f"{w}: volume {v['name']}")
            if "serviceAccountName" in spec:
                self.assertIn(spec["serviceAccountName"], sas, w)
            self.assertTrue(spec["containers"], w)
            for c in spec["containers"]:
                cw = f"{w} container {c['name']}"
                self.assertTrue(c.get("image"), cw)
                ports = {}
                for p in c.get("ports", []):
                    self.assertTrue(1 <= p["containerPort"] <= 65535, cw)
                    self.assertRegex(p["name"], PORT_NAME, cw)
                    self.assertLessEqual(len(p["name"]), 15, cw)
                    self.assertNotIn(p["name"], ports, cw)
                    self.assertIn(p.get("protocol", "TCP"), ("TCP", "UDP", "SCTP"), cw)
                    if spec.get("hostNetwork"):
                        # The API server rejects a hostPort other than the containerPort.
                        self.assertEqual(p.get("hostPort", p["containerPort"]), p["containerPort"], cw)
                    ports[p["name"]] = p["containerPort"]
                privileged = (c.get("securityContext") or {}).get("privileged", False)
                paths = set()
                for m in c.get("volumeMounts", []):
                    self.assertIn(m["name"], vols, f"{cw}: mount of an undefined volume")
                    self.assertTrue(m["mountPath"].startswith("/"), cw)
                    self.assertNotIn(m["mountPath"], paths, cw)
                    paths.add(m["mountPath"])
                    prop = m.get("mountPropagation", "None")
                    self.assertIn(prop, ("None", "HostToContainer", "Bidirectional"), cw)
                    if prop == "Bidirectional":
                        self.assertTrue(privileged, f"{cw}: Bidirectional needs privileged")
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    if probe in c:
                        port = c[probe]["httpGet"]["port"]
                        if isinstance(port, str):
                            self.assertIn(port, ports, f"{cw}: {probe} port {port}")
                for e in c.get("envFrom", []):
                    self.assertIn(e["configMapRef"]["name"], cms, cw)
                for e in c.get("env", []):
                    self.assertTrue(("value" in e) != ("valueFrom" in e), f"{cw}: env {e['name']}")
                    if "value" in e:
                        self.assertIsInstance(e["value"], str, f"{cw}: env {e['name']}")
                ann = tpl["metadata"].get("annotations") or {}
                if ann.get("prometheus.io/scrape") == "true":
                    self.assertIn(int(ann["prometheus.io/port"]), ports.values(), cw)
            # The selector picks this template's pods.
            labels = tpl["metadata"]["labels"]
            sel = None
            for _, d in self.docs:
                if d["metadata"]["name"] == name and d["kind"] in ("DaemonSet", "Deployment"):
                    sel = d["spec"]["selector"]["matchLabels"]
            if sel is not None:
                for k, v in sel.items():
                    self.assertEqual(labels.get(k), v, f"{w}: selector {k}={v} misses its pods")

    def test_node_paths_and_sync_rbac(self):
        """What efc-node.sh is told lies in the volumes that hold it; the Role allows the sync."""
        ds = by_kind(self.docs, "DaemonSet")["efc-node"]
        spec = ds["spec"]["template"]["spec"]
        self.assertTrue(spec.get("hostNetwork"))
        c = spec["containers"][0]
        vols = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        env = by_kind(self.docs, "ConfigMap")["efc-mount"]["data"]
        with open(os.path.join(K8S, "efc-node.sh")) as f:
            node_sh = f.read()
        for k in env:
            self.assertIn("${" + k, node_sh, f"efc-mount's {k} is not read by efc-node.sh")

        def holder(path):
            best = None
            for mp in mounts:
                if under(path, mp) and (best is None or len(mp) > len(best)):
                    best = mp
            self.assertIsNotNone(best, f"{path} is in no volume")
            return mounts[best], vols[mounts[best]["name"]]

        m, v = holder(env["EFC_MOUNTPOINT"])
        self.assertEqual(m.get("mountPropagation"), "Bidirectional")
        self.assertIn("hostPath", v)
        m, v = holder(env["EFC_CACHE_DIR"].rstrip("/"))
        self.assertIn("hostPath", v)
        m, v = holder(env["EFC_ROOTLIST"])
        # Not a subPath: a ConfigMap mounted with subPath is never updated.
        self.assertEqual(v["configMap"]["name"], "efc-rootlist")
        self.assertNotIn("subPath", m)
        self.assertEqual(os.path.basename(env["EFC_ROOTLIST"]), "rootlist")
        self.assertIn("rootlist", by_kind(self.docs, "ConfigMap")["efc-rootlist"]["data"])
        m, v = holder(env["EFC_P2P_KEY"])
        # g_tier_DadiP2PKeyFile is opened with O_NOFOLLOW and must not be readable by others.
        self.assertEqual(m["mountPath"], env["EFC_P2P_KEY"])
        self.assertEqual(m.get("subPath"), os.path.basename(env["EFC_P2P_KEY"]))
        self.assertEqual(v["secret"]["defaultMode"] & 0o077, 0)
        m, v = holder(env["EFC_STS_FILE"])
        self.assertEqual(v["secret"]["defaultMode"] & 0o077, 0)
        self.assertIn("/dev/fuse", mounts)
        self.assertEqual(vols[mounts["/dev/fuse"]["name"]]["hostPath"]["path"], "/dev/fuse")
        pre = c["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre[-1], "--unmount")
        self.assertEqual(int(env["EFC_MGMT_PORT"]),
                         {p["name"]: p["containerPort"] for p in c["ports"]}["mgmt"])

        # The sync: the Role bound to its ServiceAccount lets it list pods and get/patch its map.
        dep = by_kind(self.docs, "Deployment")["efc-rootlist-sync"]
        sa = dep["spec"]["template"]["spec"]["serviceAccountName"]
        sc = dep["spec"]["template"]["spec"]["containers"][0]
        senv = {e["name"]: e["value"] for e in sc["env"]}
        self.assertEqual(senv["EFC_SELECTOR"],
                         ",".join(f"{k}={v}" for k, v in ds["spec"]["selector"]["matchLabels"].items()))
        self.assertEqual(senv["EFC_P2P_PORT"],
                         str({p["name"]: p["containerPort"] for p in c["ports"]}["p2p"]))
        rb = [d for _, d in self.docs if d["kind"] == "RoleBinding"
              and any(s["kind"] == "ServiceAccount" and s["name"] == sa for s in d["subjects"])]
        self.assertEqual(len(rb), 1)
        role = by_kind(self.docs, "Role")[rb[0]["roleRef"]["name"]]

        def allowed(resource, verb, name=None):
            for r in role["rules"]:
                if resource in r["resources"] and verb in r["verbs"] and r["apiGroups"] == [""]:
                    if "resourceNames" not in r or name in r["resourceNames"]:
                        return True
            return False

        self.assertTrue(allowed("pods", "list"))
        self.assertTrue(allowed("configmaps", "get", senv["EFC_CONFIGMAP"]))
        self.assertTrue(allowed("configmaps", "patch", senv["EFC_CONFIGMAP"]))
        self.assertFalse(allowed("configmaps", "patch", "some-other-map"))

    def test_kubectl_parses_the_same(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("no kubectl on PATH: not run (Debian's is the kubernetes-client package)")
        env = dict(os.environ, KUBECONFIG="/nonexistent")
        for f in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
            r = run([kubectl, "label", "--local", "-f", f, "efc-check=1", "-o", "json"], env=env)
            self.assertEqual(r.returncode, 0, f"{f}: {r.stderr}")
            items, dec, pos = [], json.JSONDecoder(), 0
            while r.stdout[pos:].strip():  # one JSON object per document, back to back
                obj, end = dec.raw_decode(r.stdout[pos:].lstrip())
                pos += len(r.stdout[pos:]) - len(r.stdout[pos:].lstrip()) + end
                items += obj["items"] if obj.get("kind") == "List" else [obj]
            with open(f) as fh:
                want = [d for d in yaml.safe_load_all(fh) if d is not None]
            self.assertEqual(len(items), len(want), f)
            for a, b in zip(items, want):
                a["metadata"]["labels"].pop("efc-check")
                if not a["metadata"]["labels"]:
                    del a["metadata"]["labels"]
                self.assertEqual(a, b, f"{f}: kubectl reads {b['kind']} {b['metadata']['name']} otherwise")


# The fake kubectl: answers `get pods -l k=v -o jsonpath=...` from FAKE_PODS (evaluating the
# jsonpath's range, fields and quoted literals), keeps the ConfigMap in FAKE_CM, logs each call.
FAKE_KUBECTL = r'''#!PYTHON -S
import json, os, re, sys
a = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(a) + "\n")
if os.environ.get("FAKE_FAIL"):
    print("error: the server is gone", file=sys.stderr); sys.exit(1)
def opt(name):
    return a[a.index(name) + 1]
def field(obj, path):
    for p in path.strip(".").split("."):
        obj = obj.get(p) if isinstance(obj, dict) else None
    return "" if obj is None else str(obj)
def jsonpath(expr, obj):
    m = re.fullmatch(r"\{range \.items\[\*\]\}(.*)\{end\}", expr)
    body, items = (m.group(1), obj["items"]) if m else (expr, [obj])
    out = []
    for it in items:
        for tok in re.findall(r'\{([^}]*)\}', body):
            out.append(json.loads(tok) if tok.startswith('"') else field(it, tok))
    return "".join(out)
ns = opt("-n")
assert ns == os.environ["FAKE_NS"], ns
out = a[a.index("-o") + 1] if "-o" in a else ""
if a[:2] == ["get", "pods"]:
    k, v = opt("-l").split("=")
    pods = json.load(open(os.environ["FAKE_PODS"]))
    pods = {"items": [p for p in pods["items"] if p["metadata"]["labels"].get(k) == v]}
    sys.stdout.write(jsonpath(out[len("jsonpath="):], pods))
elif a[:3] == ["get", "configmap", "efc-rootlist"]:
    sys.stdout.write(jsonpath(out[len("jsonpath="):], json.load(open(os.environ["FAKE_CM"]))))
elif a[:3] == ["patch", "configmap", "efc-rootlist"]:
    assert opt("--type") == "merge"
    cm = json.load(open(os.environ["FAKE_CM"]))
    cm["data"].update(json.loads(opt("-p"))["data"])
    json.dump(cm, open(os.environ["FAKE_CM"], "w"))
    print("configmap/efc-rootlist patched")
else:
    print("fake kubectl: unexpected %r" % a, file=sys.stderr); sys.exit(2)
'''


def pod(node, ip, phase="Running", app="efc-node", deleting=False):
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "efc-node-" + node[-5:], "labels": {"app.kubernetes.io/name": app}},
         "spec": {"nodeName": node}, "status": {"phase": phase}}
    if ip:
        p["status"]["hostIP"] = ip
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-12-07T15:00:00Z"
    return p


class RootlistSync(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="efc-k8s-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        bindir = os.path.join(self.tmp, "bin")
        os.mkdir(bindir)
        with open(os.path.join(bindir, "kubectl"), "w") as f:
            # This interpreter itself (not a pyenv shim, which costs a shell at each call).
            f.write(FAKE_KUBECTL.replace("PYTHON", sys.executable, 1))
        os.chmod(os.path.join(bindir, "kubectl"), 0o755)
        self.pods = os.path.join(self.tmp, "pods.json")
        self.cm = os.path.join(self.tmp, "cm.json")
        self.log = os.path.join(self.tmp, "kubectl.log")
        docs = manifests()
        with open(self.cm, "w") as f:
            json.dump(by_kind(docs, "ConfigMap")["efc-rootlist"], f)
        self.env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"], FAKE_PODS=self.pods,
                        FAKE_CM=self.cm, FAKE_LOG=self.log, FAKE_NS=NS, EFC_NAMESPACE=NS)
        self.env.pop("FAKE_FAIL", None)

    def sync(self, items, *args, **env):
        with open(self.pods, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
        open(self.log, "w").close()
        return run(["bash", os.path.join(K8S, "rootlist-sync.sh"), *args], env=dict(self.env, **env))

    def calls(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def rootlist(self):
        with open(self.cm) as f:
            return json.load(f)["data"]["rootlist"]

    def test_rootlist_from_pods(self):
        items = [
            pod("node-b.cn-hangzhou", "10.0.0.12"),
            pod("node-a.cn-hangzhou", "10.0.0.11"),
            pod("node-c.cn-hangzhou", "10.0.0.13"),
            pod("node-p", "10.0.0.14", phase="Pending"),
            pod("node-d", "10.0.0.15", deleting=True),
            pod("node-e", ""),
            pod("node-f", "10.0.0.16", app="something-else"),
            pod("node-v6", "fd00::7"),
            pod("n" * 70, "10.0.0.17"),
        ]
        r = self.sync(items)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = ["node-a.cn-hangzhou:10.0.0.11:17980", "node-b.cn-hangzhou:10.0.0.12:17980",
                "node-c.cn-hangzhou:10.0.0.13:17980", "node-v6:[fd00::7]:17980"]
        text = self.rootlist()
        self.assertTrue(text.endswith("\n"))
        lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
        self.assertEqual(lines, want)
        for ln in lines:
            self.assertRegex(ln, ROOTLIST_LINE)
        self.assertIn("not a rootlist id", r.stderr)
        self.assertIn("efc-rootlist: 4 nodes", r.stderr)
        self.assertEqual([c[0] for c in self.calls()], ["get", "get", "patch"])

        # Nothing changed: read, compare, no patch.
        r = self.sync(items)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([c[0] for c in self.calls()], ["get", "get"])
        self.assertEqual(self.rootlist(), text)

        # A node joins: its line is added, the others' lines (ids) stay as they were.
        r = self.sync(items + [pod("node-aa", "10.0.0.20")])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [ln for ln in self.rootlist().splitlines() if not ln.startswith("#")]
        self.assertEqual(lines, [want[0], "node-aa:10.0.0.20:17980"] + want[1:])

        # --print changes nothing.
        r = self.sync(items, "--print")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([ln for ln in r.stdout.splitlines() if not ln.startswith("#")], want)
        self.assertEqual([c[0] for c in self.calls()], ["get"])

        # No pod left: the ConfigMap keeps what it had.
        before = self.rootlist()
        r = self.sync([pod("node-a", "10.0.0.11", phase="Failed")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("left as it is", r.stderr)
        self.assertEqual(self.rootlist(), before)
        self.assertEqual([c[0] for c in self.calls()], ["get"])

    def test_fake_kubectl_matches_kubectl(self):
        """The fake's jsonpath against a real kubectl's, on the same pods (offline: --local)."""
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("no kubectl on PATH: the fake's jsonpath was not compared with one")
        items = [pod("node-a", "10.0.0.11"), pod("node-b", "", phase="Pending"),
                 pod("node-c", "10.0.0.13", deleting=True)]
        r = self.sync(items, "--print")
        self.assertEqual(r.returncode, 0, r.stderr)
        call = [c for c in self.calls() if c[:2] == ["get", "pods"]][0]
        expr = call[call.index("-o") + 1][len("jsonpath="):]
        m = re.fullmatch(r"\{range \.items\[\*\]\}(.*)\{end\}", expr)
        self.assertIsNotNone(m, expr)
        fake = run([os.path.join(self.tmp, "bin", "kubectl"), *call], env=self.env)
        self.assertEqual(fake.returncode, 0, fake.stderr)
        real = run([kubectl, "label", "--local", "-f", self.pods, "efc-check=1",
                    "-o", "jsonpath=" + m.group(1)],
                   env=dict(os.environ, KUBECONFIG="/nonexistent"))
        self.assertEqual(real.returncode, 0, real.stderr)
        self.assertEqual(fake.stdout, real.stdout)

    def test_kubectl_fails(self):
        r = self.sync([pod("node-a", "10.0.0.11")], FAKE_FAIL="1")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("rootlist-sync: cannot list the pods", r.stderr)

    def test_port_from_env(self):
        r = self.sync([pod("node-a", "10.0.0.11")], EFC_P2P_PORT="23456")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("node-a:10.0.0.11:23456\n", self.rootlist())


# mount, umount and mountpoint for efc-node.sh: a mount is a marker file in STUB_DIR.
STUB = r'''#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$STUB_DIR/calls"
case "$(basename "$0")" in
  mount) touch "$STUB_DIR/mounted" ;;
  umount) [ -e "$STUB_DIR/mounted" ] || exit 32; rm -f "$STUB_DIR/mounted" ;;
  mountpoint) [ -e "$STUB_DIR/mounted" ] ;;
esac
'''


class NodeScript(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="efc-k8s-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        bindir = os.path.join(self.tmp, "bin")
        os.mkdir(bindir)
        for n in ("mount", "umount", "mountpoint"):
            with open(os.path.join(bindir, n), "w") as f:
                f.write(STUB)
            os.chmod(os.path.join(bindir, n), 0o755)
        data = by_kind(manifests(), "ConfigMap")["efc-mount"]["data"]
        self.mnt = os.path.join(self.tmp, "mnt", "oss_data")
        self.env = dict(os.environ, **data)
        self.env.update(PATH=bindir + ":" + os.environ["PATH"], STUB_DIR=self.tmp,
                        EFC_STOP_MARK=os.path.join(self.tmp, "stopping"),
                        HOST_IP="10.0.0.11", EFC_POLL_SEC="0.2")
        self.procs = []
        self.addCleanup(self.reap)

    def reap(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(RUN_TIMEOUT)

    def calls(self):
        try:
            with open(os.path.join(self.tmp, "calls")) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def wait_for(self, what, pred, deadline_s=10):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if pred():
                return
            time.sleep(0.05)
        self.fail(f"waited {deadline_s} s for {what}; calls: {self.calls()}")

    def test_mount_command(self):
        r = run(["bash", os.path.join(K8S, "efc-node.sh")], env=dict(self.env, EFC_DRY_RUN="1"))
        self.assertEqual(r.returncode, 0, r.stderr)
        argv = r.stdout.split()
        self.assertEqual(argv[:4], ["mount", "-t", "alinas", "-o"])
        self.assertEqual(argv[5:], [self.env["EFC_SOURCE"], self.env["EFC_MOUNTPOINT"]])
        opts = dict(o.split("=", 1) if "=" in o else (o, None) for o in argv[4].split(","))
        self.assertEqual(opts["protocol"], "oss")
        self.assertIn("efc", opts)
        self.assertEqual(opts["g_tier_DadiAddr"], self.env["EFC_ROOTLIST"])
        self.assertEqual(opts["g_tier_DadiP2PKeyFile"], self.env["EFC_P2P_KEY"])
        self.assertEqual(opts["g_tier_DadiP2PIP"], "10.0.0.11")
        self.assertEqual(opts["g_server_BindAddr"], "10.0.0.11")
        self.assertEqual(opts["g_server_Port"], "17871")
        self.assertEqual(opts["g_oss_STSFile"], self.env["EFC_STS_FILE"])
        with open(os.path.join(SOURCE_DIR, "util", "opt.c")) as f:
            table = f.read()
        for k in opts:
            if k.startswith("g_"):
                self.assertIn('{"' + k[2:] + '"', table, f"{k} is not an efc option")

        r = run(["bash", os.path.join(K8S, "efc-node.sh")],
                env=dict(self.env, EFC_DRY_RUN="1", EFC_SOURCE=""))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("EFC_SOURCE", r.stderr)

    def start(self):
        p = subprocess.Popen(["bash", os.path.join(K8S, "efc-node.sh")],
                             env=dict(self.env, EFC_MOUNTPOINT=self.mnt,
                                      EFC_CACHE_DIR=os.path.join(self.tmp, "cache")),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        self.wait_for("the mount", lambda: os.path.exists(os.path.join(self.tmp, "mounted")))
        return p

    def test_stays_then_unmounts_on_sigterm(self):
        p = self.start()
        mounts = [c for c in self.calls() if c.startswith("mount ")]
        self.assertEqual(len(mounts), 1, self.calls())
        self.assertTrue(mounts[0].startswith("mount -t alinas -o efc,protocol=oss,"), mounts)
        # It stays while the mount does: at least two checks of it go by.
        self.wait_for("two checks", lambda: sum(c.startswith("mountpoint") for c in self.calls()) >= 3)
        self.assertIsNone(p.poll())
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn(f"umount {self.mnt}", self.calls())
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "mounted")))

    def test_exits_when_the_mount_goes(self):
        p = self.start()
        os.unlink(os.path.join(self.tmp, "mounted"))
        out, err = p.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is no longer mounted", err)

    def test_prestop_unmounts(self):
        """The preStop hook unmounts, and the container then ends cleanly (exit 0)."""
        p = self.start()
        r = run(["bash", os.path.join(K8S, "efc-node.sh"), "--unmount"],
                env=dict(self.env, EFC_MOUNTPOINT=self.mnt))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"umount {self.mnt}", self.calls())
        out, err = p.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("unmounted by the preStop hook", err)


class ImageRecipe(unittest.TestCase):
    def setUp(self):
        self.lines = []
        with open(os.path.join(K8S, "Dockerfile")) as f:
            cur = ""
            for ln in f:
                ln = ln.rstrip("\n")
                if not cur and (not ln.strip() or ln.lstrip().startswith("#")):
                    continue
                if ln.endswith("\\"):
                    cur += ln[:-1] + "\n"
                    continue
                self.lines.append(cur + ln)
                cur = ""
        self.instr = [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in self.lines]

    def test_instructions(self):
        self.assertEqual(self.instr[0][0], "FROM")
        self.assertRegex(self.instr[0][1], r"^debian:(12|bookworm)(-slim)?$")
        deb_copied = False
        for op, arg in self.instr:
            self.assertIn(op, ("FROM", "COPY", "RUN", "ENTRYPOINT", "CMD", "ENV", "LABEL", "ARG"))
            if op == "COPY":
                srcs = arg.split()[:-1]
                for s in srcs:
                    if s == "efc_*_amd64.deb":  # the package: efc_<version>_amd64.deb
                        deb_copied = True
                        continue
                    self.assertTrue(os.path.exists(os.path.join(K8S, s)), f"COPY {s}: no such file")
        self.assertTrue(deb_copied, "the recipe does not take the efc package from its context")
        # The manifests' commands are what the image holds.
        copied = {"/usr/local/bin/" + os.path.basename(s) for op, a in self.instr if op == "COPY"
                  for s in a.split()[:-1] if a.split()[-1] == "/usr/local/bin/"}
        for name, tpl in pod_specs(manifests()):
            for c in tpl["spec"]["containers"]:
                for word in c.get("command", []):
                    if word.startswith("/usr/local/bin/"):
                        self.assertIn(word, copied, f"{name}: {word} is not in the image")

    def test_run_steps(self):
        runs = [arg for op, arg in self.instr if op == "RUN"]
        self.assertTrue(runs)
        script = "#!/bin/sh\n" + "\n".join(runs) + "\n"
        path = os.path.join(tempfile.mkdtemp(prefix="efc-k8s-"), "run.sh")
        self.addCleanup(shutil.rmtree, os.path.dirname(path), True)
        with open(path, "w") as f:
            f.write(script)
        r = run(["sh", "-n", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        if shutil.which("shellcheck") is None:
            self.fail("shellcheck is missing: run scripts/setup.sh")
        r = run(["shellcheck", "-s", "sh", path])
        self.assertEqual(r.returncode, 0, r.stdout)
        r = run(["shellcheck", os.path.join(K8S, "efc-node.sh"), os.path.join(K8S, "rootlist-sync.sh")])
        self.assertEqual(r.returncode, 0, r.stdout)

        # The Debian packages it installs are Debian 12's (`apt-cache policy` has a candidate for
        # each; `apt-get -s install` would also resolve them, but takes 3 s of CI's time).
        m = re.search(r"apt-get install -y --no-install-recommends (.*?);", runs[0], re.S)
        self.assertIsNotNone(m)
        pkgs = [w for w in m.group(1).split() if not w.startswith("/tmp/")]
        self.assertIn("tini", pkgs)
        if shutil.which("apt-cache") is None:
            self.skipTest("no apt-cache: the package names were not looked up")
        r = run(["apt-cache", "policy", *pkgs], env=dict(os.environ, LC_ALL="C"))
        self.assertEqual(r.returncode, 0, r.stderr)
        cand = dict(re.findall(r"^(\S+):\n(?:  .*\n)*?  Candidate: (\S+)", r.stdout, re.M))
        for p in pkgs:
            self.assertIn(p, cand, f"{p}: not a Debian package here")
            self.assertNotEqual(cand[p], "(none)", f"{p}: no installation candidate")


if __name__ == "__main__":
    unittest.main(verbosity=2)
