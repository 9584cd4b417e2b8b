"""bench/cluster.py - the inference fleet, measured: N efc nodes on this machine load one model at
once, with and without the distributed cache, against tests/ossemu with a bucket-wide egress cap.

Driven by bench/cluster.sh (see there for the options). For each N and each mode it mounts N
fresh nodes (each its own daemon, mount, cache directory, management port and loopback address
127.0.0.21.., as the cluster tests do; "cluster off" is g_tier_DadiIsDistributed=false, each node
its own cache), drops the page cache, and:

  model: every node reads every file of the model at once, in 1 MiB reads;
  epoch: then every node reads every small file of a training set at once (8 threads a node);
  churn: (--churn 1) four nodes, three reading the model, while node 3 is added to the rootlist,
         removed from it, or killed a third of the way through.

It reports per run: the time until every node has every byte, the origin's bytes / the data set,
the bytes each node sent to peers (busiest / mean), the p50 and p99 of the 1 MiB reads (or of a
whole small file), and the daemons' CPU seconds per GB the readers got. Everything it starts is
stopped from a finally: (lazy) unmounts first, then the processes it started, by pid.

Standard library only; the mount harness of the tests (tests/integration/mount/efctest.py) does
the mounting and the cleanup, as it does for the tests.
"""

import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration", "mount"))
import efctest  # noqa: E402

MIB = 1 << 20

READER = r"""
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
mode, paths = sys.argv[1], sys.argv[2:]
lat, total = [], 0
def whole(p):
    t = time.monotonic()
    with open(p, "rb", buffering=0) as f:
        n = 0
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            n += len(b)
    return n, time.monotonic() - t
if mode == "stream":
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while True:
                t = time.monotonic()
                b = f.read(1 << 20)
                if not b:
                    break
                lat.append(time.monotonic() - t)
                total += len(b)
else:
    with ThreadPoolExecutor(8) as ex:
        for n, l in ex.map(whole, paths):
            total += n
            lat.append(l)
print(json.dumps({"bytes": total, "lat": lat}))
"""


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def pct(v, q):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def served_bytes(m):
    try:
        return efctest.metrics(m.port).get("efc_p2p_served_bytes_total", 0.0)
    except Exception:
        return 0.0


def read_everywhere(nodes, rels, mode, timeout):
    """Every node reads RELS at once (one reader process a node). Returns (seconds until the
    last finished, bytes read, latencies)."""
    t0 = time.monotonic()
    total, lat = finish_readers(start_readers(nodes, rels, mode), timeout)
    return time.monotonic() - t0, total, lat


def start_readers(nodes, rels, mode="stream"):
    return [subprocess.Popen([sys.executable, "-c", READER, mode] + [m.path(r) for r in rels],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for m in nodes]


def finish_readers(procs, timeout):
    total, lat = 0, []
    end = time.monotonic() + timeout
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1, end - time.monotonic()))
            if p.returncode != 0:
                raise RuntimeError("a reader failed: %s" % err[-500:])
            r = json.loads(out)
            total += r["bytes"]
            lat += r["lat"]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return total, lat


def churn(h, emu, model, mem_mb, disk_mb, timeout):
    """Four nodes; three read the model while the rootlist changes a third of the way through
    the origin's bytes: node 3 added (it was mounted, unlisted), node 3 removed, node 3 killed
    (SIGKILL). Against the same load without a change: the origin's extra bytes and the longest
    1 MiB read (the stall)."""
    size = sum(os.path.getsize(os.path.join(emu.root, r)) for r in model)
    out = []
    for event in ("none", "add", "remove", "kill"):
        port = efctest.free_cluster_port(4)
        listed = [0, 1, 2] if event == "add" else [0, 1, 2, 3]
        rl = h.rootlist(port, listed, name="rootlist-churn-%s" % event)
        nodes = []
        for i in range(4):
            cache = h.cache_dir("cache-churn-%s-%d" % (event, i))
            opts = efctest.cluster_options(rl, i, port, cache, mem_mb, disk_mb, 0, [])
            nodes.append(h.mount(emu, extra=opts, mnt=h.dir("churn-%s-%d" % (event, i)),
                                 log=True, mgmt=True))
        try:
            emu.reset_stats()
            efctest.drop_caches()
            t0 = time.monotonic()
            procs = start_readers(nodes[:3], model)
            if event != "none":
                efctest.wait_for(lambda: sum(v.get("bytes", 0) for v in
                                             emu.stats()["by_key"].values()) >= size // 3,
                                 timeout, "a third of the model from the origin", 0.02)
                if event == "kill":
                    os.kill(nodes[3].pid, 9)
                else:
                    h.rootlist(port, [0, 1, 2, 3] if event == "add" else [0, 1, 2],
                               name="rootlist-churn-%s" % event)
                    for m in nodes:
                        efctest.mgmt_get(m.port, "/v1/action/reload_rootlist")
            got, lat = finish_readers(procs, timeout)
            secs = time.monotonic() - t0
            if got != 3 * size:
                raise RuntimeError("churn %s: the readers got %d bytes, not %d" % (event, got,
                                                                                  3 * size))
            origin = sum(emu.stats()["by_key"].get(r, {}).get("bytes", 0) for r in model)
            r = {"event": event, "seconds": round(secs, 2), "origin_x": round(origin / size, 3),
                 "max_read_ms": round(max(lat) * 1e3, 1), "p99_ms": round(pct(lat, 0.99) * 1e3, 1)}
            efctest.log("churn %s: %.2f s, origin x%.3f, longest 1 MiB read %.0f ms"
                        % (event, secs, origin / size, r["max_read_ms"]))
            out.append(r)
        finally:
            for m in nodes:
                m.unmount()
    return out


def counter(m, name):
    try:
        return efctest.metrics(m.port).get(name, 0.0)
    except Exception:
        return 0.0


def one_run(h, emu, n, cluster, model, small, mem_mb, disk_mb, timeout, efc_opts=()):
    port = efctest.free_cluster_port(n)
    rl = h.rootlist(port, range(n), name="rootlist-%d-%d" % (n, int(cluster)))
    extra = list(efc_opts) + ([] if cluster else ["g_tier_DadiIsDistributed=false"])
    nodes = []
    for i in range(n):
        cache = h.cache_dir("cache-%d-%d-%d" % (n, int(cluster), i))
        opts = efctest.cluster_options(rl, i, port, cache, mem_mb, disk_mb, 0, extra)
        m = h.mount(emu, extra=opts, mnt=h.dir("node-%d-%d-%d" % (n, int(cluster), i)), log=True,
                    mgmt=True)
        nodes.append(m)
    res = {"nodes": n, "cluster": cluster}
    try:
        for phase, rels, mode in (("model", model, "stream"), ("epoch", small, "whole")):
            size = sum(os.path.getsize(os.path.join(emu.root, r)) for r in rels)
            emu.reset_stats()
            efctest.drop_caches()
            cpu0 = sum(cpu_seconds(m.pid) for m in nodes if m.pid)
            sent0 = [served_bytes(m) for m in nodes]
            hot0 = sum(counter(m, "efc_p2p_served_hot_total") for m in nodes)
            fb0 = sum(counter(m, 'efc_p2p_blocks_total{from="fallback"}') for m in nodes)
            kinds = ("connect", "timeout", "reset", "protocol", "corrupt", "refused", "busy")
            err0 = {k: sum(counter(m, 'efc_p2p_errors_total{kind="%s"}' % k) for m in nodes)
                    for k in kinds}
            secs, got, lat = read_everywhere(nodes, rels, mode, timeout)
            cpu = sum(cpu_seconds(m.pid) for m in nodes if m.pid) - cpu0
            sent = [served_bytes(m) - s for m, s in zip(nodes, sent0)]
            hot = sum(counter(m, "efc_p2p_served_hot_total") for m in nodes) - hot0
            fallbacks = sum(counter(m, 'efc_p2p_blocks_total{from="fallback"}')
                            for m in nodes) - fb0
            errs = {k: int(sum(counter(m, 'efc_p2p_errors_total{kind="%s"}' % k)
                               for m in nodes) - err0[k]) for k in kinds}
            errs = {k: v for k, v in errs.items() if v}
            st = emu.stats()["by_key"]
            origin = sum(st.get(r, {}).get("bytes", 0) for r in rels)
            gets = sum(st.get(r, {}).get("get", 0) - st.get(r, {}).get("not_modified", 0)
                       for r in rels)
            if got != size * n:
                raise RuntimeError("%s: the readers got %d bytes, not %d" % (phase, got, size * n))
            mean = sum(sent) / n
            res[phase] = {
                "seconds": round(secs, 3),
                "dataset_bytes": size,
                "origin_bytes": origin,
                "origin_gets": gets,
                "origin_x": round(origin / size, 3),
                "served_max_mean": round(max(sent) / mean, 3) if mean > 0 else None,
                "p50_ms": round(pct(lat, 0.5) * 1e3, 2),
                "p99_ms": round(pct(lat, 0.99) * 1e3, 2),
                "cpu_s_per_gb": round(cpu / (got / 1e9), 2),
                "gbps": round(got / secs / 1e9, 3),
                "hot_answers": int(hot),
                "fallback_blocks": int(fallbacks),
                "peer_errors": errs,
            }
            efctest.log("%d node(s), cluster %s, %s: %.2f s, origin x%.3f (%d GETs), sent max/mean "
                        "%s, p50 %.1f ms, p99 %.1f ms, %.2f CPU s/GB, %d hot answers, %d blocks "
                        "from the origin after a peer failed %s"
                        % (n, "on" if cluster else "off", phase, secs, origin / size, gets,
                           res[phase]["served_max_mean"], res[phase]["p50_ms"],
                           res[phase]["p99_ms"], res[phase]["cpu_s_per_gb"], hot, fallbacks,
                           errs or ""))
    finally:
        for m in nodes:
            m.unmount()
    return res


def table(results, args):
    rows = ["| nodes | cluster | model: all done (s) | origin ÷ data | sent to peers max/mean "
            "| p50 / p99 1 MiB read (ms) | CPU s/GB | hot answers | epoch: all done (s) "
            "| origin ÷ data | p50 / p99 file (ms) | CPU s/GB |",
            "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|"]
    for r in results:
        a, b = r["model"], r["epoch"]
        mm = "-" if a["served_max_mean"] is None else "%.2f" % a["served_max_mean"]
        rows.append("| %d | %s | %.2f | %.3f | %s | %.1f / %.1f | %.2f | %d | %.2f | %.3f "
                    "| %.1f / %.1f | %.2f |"
                    % (r["nodes"], "on" if r["cluster"] else "off", a["seconds"], a["origin_x"],
                       mm, a["p50_ms"], a["p99_ms"], a["cpu_s_per_gb"], a.get("hot_answers", 0),
                       b["seconds"], b["origin_x"], b["p50_ms"], b["p99_ms"], b["cpu_s_per_gb"]))
    return "\n".join(rows)


def plot(results, outdir):
    dat = os.path.join(outdir, "plot.dat")
    with open(dat, "w") as f:
        f.write("# nodes model_on model_off originx_on originx_off\n")
        ns = sorted({r["nodes"] for r in results})
        for n in ns:
            on = [r for r in results if r["nodes"] == n and r["cluster"]]
            off = [r for r in results if r["nodes"] == n and not r["cluster"]]
            f.write("%d %s %s %s %s\n" % (
                n, on[0]["model"]["seconds"] if on else "?", off[0]["model"]["seconds"] if off else "?",
                on[0]["model"]["origin_x"] if on else "?", off[0]["model"]["origin_x"] if off else "?"))
    gp = """set terminal pngcairo size 1200,480 font 'Sans,11'
set output 'plot.png'
set datafile missing '?'
set multiplot layout 1,2
set grid
set key top left
set xlabel "nodes"
set xtics (1, 2, 4, 8, 16)
set title "Time until every node has the model"
set ylabel "seconds"
plot 'plot.dat' using 1:2 with linespoints lw 2 title 'cluster on', '' using 1:3 with linespoints lw 2 title 'cluster off'
set title "Origin bytes ÷ model size"
set ylabel "× model"
plot 'plot.dat' using 1:4 with linespoints lw 2 title 'cluster on', '' using 1:5 with linespoints lw 2 title 'cluster off'
unset multiplot
"""
    subprocess.run(["gnuplot"], input=gp, text=True, cwd=outdir, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", default="1,2,4,8")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--file-mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--small-kib", type=int, default=16)
    ap.add_argument("--bw-bucket", type=int, default=100000000)
    ap.add_argument("--bw-per-conn", type=int, default=100000000)
    ap.add_argument("--latency-ms", type=int, default=5)
    ap.add_argument("--mem-mb", type=int, default=0)
    ap.add_argument("--disk-mb", type=int, default=0)
    ap.add_argument("--churn", type=int, default=1)
    ap.add_argument("--efc-opts", default="", help="more mount options for every node, a,b,c")
    ap.add_argument("--out", required=True)
    ap.add_argument("--modes", default="on,off")
    args = ap.parse_args()
    ns = [int(x) for x in args.nodes.split(",")]
    if any(n < 1 or n > 16 for n in ns):
        ap.error("--nodes: 1..16 each")
    efctest.require_environment()
    cleanups = []
    h = efctest.Harness(lambda fn, *a: cleanups.append((fn, a)), "bench-cluster")
    results, churned = [], []
    try:
        root = h.dir("bucket")
        model, small = [], []
        chunk = os.urandom(MIB)
        for i in range(args.files):
            rel = "model/shard-%02d.safetensors" % i
            os.makedirs(os.path.join(root, "model"), exist_ok=True)
            with open(os.path.join(root, rel), "wb") as f:
                for k in range(args.file_mib):
                    f.write(bytes([k & 0xff, i & 0xff]) + chunk[2:])
            model.append(rel)
        os.makedirs(os.path.join(root, "train"), exist_ok=True)
        for i in range(args.small):
            rel = "train/%02d/img-%06d.jpg" % (i % 50, i)
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(root, rel), "wb") as f:
                f.write(os.urandom(args.small_kib * 1024))
            small.append(rel)
        emu = h.ossemu(root, args=["--latency-ms", str(args.latency_ms),
                                   "--bw-per-conn", str(args.bw_per_conn),
                                   "--bw-bucket", str(args.bw_bucket)])
        data = args.files * args.file_mib * MIB + args.small * args.small_kib * 1024
        mem_mb = args.mem_mb or (data >> 20) + 128
        # A first pass warms what every run then finds warm (ossemu's JIT, its files' pages
        # in memory once read); not reported: the first run measured otherwise pays for it.
        efctest.log("warm-up pass (not reported)")
        one_run(h, emu, 1, False, model, small, mem_mb, args.disk_mb, timeout=1800)
        for n in ns:
            for mode in args.modes.split(","):
                results.append(one_run(h, emu, n, mode == "on", model, small, mem_mb,
                                       args.disk_mb, 1800,
                                       [o for o in args.efc_opts.split(",") if o]))
        churned = churn(h, emu, model, mem_mb, args.disk_mb, 1800) if args.churn else []
    finally:
        for fn, a in reversed(cleanups):
            try:
                fn(*a)
            except Exception as e:  # cleanup goes on whatever one step says
                efctest.log("cleanup: %s" % e)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "results": results, "churn": churned}, f, indent=1)
    head = ("Model: %d files of %d MiB read by every node at once; epoch: %d files of %d KiB read "
            "by every node at once (8 threads a node). ossemu: %d ms a request, %d MB/s a "
            "connection, the bucket capped at %d MB/s for all nodes together. Each run starts "
            "with empty caches and a dropped page cache, after one unreported warm-up pass.\n"
            % (args.files, args.file_mib, args.small, args.small_kib, args.latency_ms,
               args.bw_per_conn // 1000000, args.bw_bucket // 1000000))
    ct = ""
    if churned:
        ct = ("\nChurn: 4 nodes, 3 of them reading the model; a third of the way through the "
              "origin's bytes node 3 is added to the rootlist (it was mounted, unlisted), removed "
              "from it, or killed (SIGKILL); every node reloads the rootlist at once.\n\n"
              "| event | all done (s) | origin ÷ data | longest 1 MiB read (ms) | p99 (ms) |\n"
              "|---|---:|---:|---:|---:|\n" +
              "".join("| %s | %.2f | %.3f | %.0f | %.0f |\n" % (c["event"], c["seconds"],
                                                               c["origin_x"], c["max_read_ms"],
                                                               c["p99_ms"]) for c in churned))
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(head + "\n" + table(results, args) + "\n" + ct)
    plot(results, args.out)
    print(head)
    print(table(results, args))
    print(ct)


if __name__ == "__main__":
    main()
