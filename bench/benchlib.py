#!/usr/bin/env python3
"""bench/benchlib.py - the measuring and reporting half of bench/run.sh (standard library only).

Subcommands (each prints one JSON object on stdout, or writes the report files):

  ttfb FILE [--expect SRC]          open + read 4 KiB; ms; with SRC, the bytes must equal SRC's
  epoch DIR COUNT SIZE [--threads N] [--fmt f%07u]
                                    read COUNT files DIR/f0000000... to EOF with N threads (a
                                    dataset epoch: the names are known, nothing is listed);
                                    files/s and MB/s; every file must have SIZE bytes
  ls DIR COUNT                      `ls -l DIR` (a stat of every entry); entries/s; ls must print
                                    COUNT entries
  fio JSON [--expect-bytes N]       the figures of one fio --output-format=json run
  report OUTDIR                     OUTDIR/raw.jsonl + meta.json -> results.json, results.md,
                                    plot.dat, plot.gp, plot.png (gnuplot)
  gen ROOT BIG TTFB NSMALL SMALL NMANY [NDATASET]
                                    the origin's data set (sizes in bytes; 0 leaves a part out)
  origin-stats                      ossemu's GET /stats (stdin) -> "REQUESTS BYTES GETS HEADS LISTS"
  record RAW key=value...           append one measurement (run, system, workload, unit, better,
                                    field, result=FILE, rc, stderr=FILE, origin="REQ BYTES GET HEAD LIST",
                                    cpu_ticks, value, error) to the JSON-lines file RAW

Derived in the report: the dataset epoch's hit ratio (1 - origin bytes / bytes read, epoch 2),
the daemon's CPU seconds per GB read (its CPU ticks during a workload / the bytes the workload
read) and the small-file epochs' bound from the origin's latency (threads / (round trips x
latency)).
"""
import concurrent.futures
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------- measurements


def cmd_ttfb(args):
    path = args[0]
    expect = None
    if len(args) >= 3 and args[1] == "--expect":
        expect = args[2]
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    data = os.read(fd, 4096)
    t1 = time.perf_counter()
    os.close(fd)
    res = {"ms": (t1 - t0) * 1e3, "bytes": len(data)}
    if len(data) != 4096:
        res["error"] = "short read: %d bytes" % len(data)
    elif expect is not None:
        with open(expect, "rb") as f:
            if f.read(4096) != data:
                res["error"] = "first 4 KiB differ from the origin's"
    out(res)


def read_whole(path, bufsize=1 << 20):
    fd = os.open(path, os.O_RDONLY)
    try:
        n = 0
        while True:
            b = os.read(fd, bufsize)
            if not b:
                return n
            n += len(b)
    finally:
        os.close(fd)


def cmd_epoch(args):
    d, count, size = args[0], int(args[1]), int(args[2])
    threads, fmt = 16, "f%07u"
    i = 3
    while i < len(args):
        if args[i] == "--threads":
            threads = int(args[i + 1])
        elif args[i] == "--fmt":
            fmt = args[i + 1]
        i += 2
    paths = [os.path.join(d, fmt % k) for k in range(count)]
    bad = []
    total = 0
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as ex:
        for p, n in zip(paths, ex.map(read_whole, paths)):
            total += n
            if n != size:
                bad.append((p, n))
    dt = time.perf_counter() - t0
    res = {"seconds": dt, "files": count, "bytes": total, "files_per_s": count / dt,
           "MBps": total / dt / 1e6, "threads": threads}
    if bad:
        res["error"] = "%d files had the wrong size (e.g. %s: %d bytes)" % (len(bad), bad[0][0], bad[0][1])
    out(res)


def cmd_ls(args):
    d, count = args[0], int(args[1])
    with tempfile.TemporaryFile() as f:
        t0 = time.perf_counter()
        r = subprocess.run(["ls", "-l", "--color=never", d], stdout=f, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t0
        f.seek(0)
        lines = sum(1 for _ in f) - 1  # "total N"
    res = {"seconds": dt, "entries": lines, "entries_per_s": lines / dt if dt > 0 else 0}
    if r.returncode != 0:
        res["error"] = "ls exited %d: %s" % (r.returncode, r.stderr.decode(errors="replace").strip()[:200])
    elif lines != count:
        res["error"] = "ls listed %d entries, expected %d" % (lines, count)
    out(res)


def cmd_fio(args):
    path = args[0]
    expect = None
    if len(args) >= 3 and args[1] == "--expect-bytes":
        expect = int(args[2])
    try:
        with open(path) as f:
            text = f.read()
        # fio may print warnings before the JSON document
        j = json.loads(text[text.index("{"):])
        job = j["jobs"][0]
        r = job["read"]
        res = {"MBps": r["bw_bytes"] / 1e6, "iops": r["iops"], "io_bytes": r["io_bytes"],
               "runtime_ms": r["runtime"], "clat_p99_us": None}
        try:
            res["clat_p99_us"] = r["clat_ns"]["percentile"]["99.000000"] / 1e3
        except (KeyError, TypeError):
            pass
        if job.get("error"):
            res["error"] = "fio error %s" % job["error"]
        elif expect is not None and r["io_bytes"] != expect:
            res["error"] = "fio read %d bytes, expected %d" % (r["io_bytes"], expect)
        elif r["io_bytes"] == 0:
            res["error"] = "fio read nothing"
    except (OSError, ValueError, KeyError, IndexError) as e:
        res = {"error": "cannot parse fio output: %s" % e}
    out(res)


# ------------------------------------------------------------------------- report

SYSTEMS = ["efc", "s3fs", "rclone", "null"]
PEERS = ["s3fs", "rclone"]


def epoch_bound(meta, round_trips):
    """The most files/s an epoch can reach when each file waits round_trips requests of the
    origin's latency: threads / (round trips x latency). None without latency."""
    lat = meta.get("latency_ms") or 0
    if lat <= 0 or round_trips <= 0:
        return None
    return meta.get("epoch_threads", 16) / (round_trips * lat / 1e3)


def origin_rate(meta, wid):
    """The origin's own rate for what epoch WID waits for per file, measured by bench/run.sh with
    efc-ossget (no FUSE, no cache, as many requests at once as the epoch has readers): its
    revalidations/s for a warm default-consistency epoch, its first-block GETs/s for a cold one.
    None when not measured."""
    r = meta.get("origin_revalidate_per_s" if wid == "epoch-warm" else "origin_get_per_s")
    return r if r and r > 0 else None


def epoch_limit(meta, wid):
    """What epoch WID is held to: the lower of the latency bound at its round trips and the
    origin's own rate (on a small machine the origin's CPU may bind before its latency)."""
    b = epoch_bound(meta, BOUND_ROUND_TRIPS[wid])
    o = origin_rate(meta, wid)
    return min(x for x in (b, o) if x) if (b or o) else None


# Workloads whose figure has no ceiling to divide by (null has no origin or does not apply).
NO_CEILING = ("rss", "dataset-hit")
# Small-file epochs that must wait at least one origin round trip per file: one GET for a cold file
# (metadata and data in one answer), one revalidation for a warm one under the default consistency.
BOUND_ROUND_TRIPS = {"epoch-cold": 1, "epoch-warm": 1, "epoch-md-cold": 1, "dataset-cold": 1}
CPU_MIN_BYTES = 16 << 20  # below this the 10 ms clock tick dominates: no CPU-per-GB figure


def workloads(meta):
    s = meta["sizes"]
    def size(b):
        return "%g GiB" % (b / (1 << 30)) if b >= (1 << 30) else "%g MiB" % (b / (1 << 20))
    big, ttfb = size(s["big_bytes"]), size(s["ttfb_bytes"])
    n_small, n_many = s["small_count"], s["many_count"]
    n_data = s.get("dataset_count", 0)
    kib = s["small_bytes"] >> 10
    b1 = epoch_bound(meta, 1)
    bound = " (origin bound {:,.0f}/s)".format(b1) if b1 else ""
    files = "{:,} × {} KiB files".format(n_small, kib)
    data = "{:,} × {} KiB files, {} MiB memory cache".format(n_data, kib, meta.get("dataset_mem_mb", "?"))
    # id, label, short label (plot), in the plot?
    return [
        ("ttfb-cold", "time to first byte, %s object, cold" % ttfb, "TTFB cold", True),
        ("seq-cold", "seq 1 MiB reads, %s file, cold" % big, "seq cold", True),
        ("seq-warm", "seq 1 MiB reads, warm (second read)", "seq warm", True),
        ("seq-warm-nopc", "seq 1 MiB reads, warm, page cache dropped", "seq warm, pc dropped", True),
        ("rand-warm", "random 4 KiB reads, depth 32, warm", "rand 4K warm", True),
        ("rand-direct", "random 4 KiB reads, O_DIRECT, depth 32, warm (%s file)" % big, "rand 4K direct", True),
        ("epoch-cold", "%s, epoch 1 (cold)%s" % (files, bound), "files cold", True),
        ("epoch-warm", "%s, epoch 2 (warm)%s" % (files, bound), "files warm", True),
        ("epoch-md-cold", "%s, metadata cache on, epoch 1 (cold)%s" % (files, bound), "files md cold", True),
        ("epoch-md-warm", "%s, metadata cache on, epoch 2 (warm)" % files, "files md warm", True),
        ("dataset-cold", "%s, epoch 1 (cold)%s" % (data, bound), "dataset cold", True),
        ("dataset-warm", "%s, epoch 2, page cache dropped" % data, "dataset warm", True),
        ("dataset-hit", "%s, epoch 2 hit ratio (bytes not fetched)" % data, "dataset hit", False),
        ("ls-cold", "ls -l of a {:,}-entry dir, cold".format(n_many), "ls -l cold", True),
        ("ls-warm", "ls -l of a {:,}-entry dir, warm".format(n_many), "ls -l warm", True),
        ("rss", "daemon peak RSS (VmHWM + memfd pages not mapped, max over the mounts of a run)",
         "RSS", False),
    ]


def derive(raw):
    """Records computed from others: the dataset's epoch-2 hit ratio, from the origin's bytes."""
    extra = []
    for r in raw:
        if r["workload"] != "dataset-warm" or r["system"] == "null":
            continue
        d = {"run": r["run"], "system": r["system"], "workload": "dataset-hit", "unit": "%",
             "better": "higher", "value": None, "error": r.get("error"), "origin_requests": None,
             "origin_bytes": None, "cpu_s": None, "bytes_read": None, "detail": None}
        if not d["error"]:
            if r.get("origin_bytes") is None or not r.get("bytes_read"):
                d["error"] = "no origin bytes or no bytes read"
            else:
                d["value"] = 100.0 * max(0.0, 1.0 - r["origin_bytes"] / r["bytes_read"])
        extra.append(d)
    return extra


def ratio(a, b, better):
    """How many times better a is than b (>1: a is better)."""
    if a is None or b is None:
        return None
    if better == "higher":
        return a / b if b > 0 else None
    return b / a if a > 0 else None


def fmt_num(v):
    if v is None:
        return "—"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3g" % v


def fmt_ratio(r):
    if r is None:
        return "—"
    if r == 0:
        return "0×"
    if r >= 100:
        return "%.0f×" % r
    if r >= 10:
        return "%.1f×" % r
    if r >= 0.1:
        return "%.2f×" % r
    return "%s×" % ("%.2g" % r if r >= 1e-4 else "%.1e" % r)


def pct(v):
    return "?" if v is None else "%.0f" % v if v >= 1 or v == 0 else "%.1f" % v


def fmt_count(v):
    return "—" if v is None else "{:,.0f}".format(v)


def fmt_bytes(b):
    if b is None:
        return "—"
    if b < 1 << 20:
        return "%.1f KiB" % (b / 1024) if b else "0"
    return "%.1f MiB" % (b / (1 << 20))


def plain(label):
    """A workload's label without the bound note."""
    return label.split(" (origin bound")[0]


# Issue 15's targets for the rows past the page cache: (workload, what efc's figure is divided by,
# at least). "bound": the lower of the one-round-trip bound and the origin's own rate (bound_section).
TARGETS = [("rand-direct", "ceiling", 0.9), ("epoch-md-warm", "ceiling", 0.8),
           ("epoch-md-warm", "best peer", 5.0), ("epoch-cold", "bound", 0.8),
           ("epoch-warm", "bound", 0.8)]


def targets_section(meta, summary, wls):
    names = {wid: label for wid, label, _, _ in wls}
    L = []
    for wid, against, want in TARGETS:
        if wid not in names or "efc" not in summary[wid]:
            continue
        e = summary[wid]["efc"]
        if against == "ceiling":
            r = e.get("vs_ceiling")
        elif against == "best peer":
            r = e.get("vs_best_peer")
        else:
            r = ratio(e["median"], epoch_limit(meta, wid), "higher")
        verdict = "no figure" if r is None else ("met" if r >= want else "not met")
        L.append("- %s: efc ÷ %s %s, target ≥ %g× — %s" % (plain(names[wid]), against, fmt_ratio(r), want, verdict))
    return ["## Targets (issue 15)", ""] + L + [""] if L else []


def bound_section(meta, summary, wls, systems):
    """The small-file epochs against threads / (round trips x latency)."""
    rows = [(wid, label) for wid, label, _, _ in wls if wid in BOUND_ROUND_TRIPS]
    b1 = epoch_bound(meta, 1)
    if not rows or not b1:
        return []
    peers = [s for s in systems if s != "null"]
    L = ["## Small-file epochs against the origin's latency", ""]
    L.append("With %d reader threads and %s ms per origin request, an epoch that waits for r round "
             "trips per file cannot pass threads ÷ (r × latency) files/s: **{:,.0f} files/s** at one "
             "round trip (a cold file: one GET answering metadata and data; a warm file under the "
             "default consistency: one revalidation), {:,.0f} at two. Each cell: files/s (÷ the "
             "limit below; origin requests per file, by kind)."
             .format(b1, epoch_bound(meta, 2)) % (meta.get("epoch_threads", 16), meta["latency_ms"]))
    L.append("")
    if meta.get("origin_get_per_s"):
        L.append("The origin alone (efc-ossget on this machine, %d requests at once, no FUSE and no "
                 "cache) answered **{:,.0f} first-block GETs/s** and **{:,.0f} revalidations/s** "
                 "(304). An epoch is held to the lower of that and the latency bound (the limit column; "
                 "where the origin alone is slower, its CPU on this machine binds before its "
                 "latency), and its cell is ÷ that limit."
                 .format(meta["origin_get_per_s"], meta.get("origin_revalidate_per_s") or 0)
                 % meta.get("epoch_threads", 16))
        L.append("")
    L.append("| epoch | bound (files/s) | origin alone (files/s) | limit (files/s) | %s |" % " | ".join(peers))
    L.append("|---|--:|--:|--:|%s" % ("--:|" * len(peers)))
    files = {w: meta["sizes"]["dataset_count" if w.startswith("dataset") else "small_count"]
             for w, _ in rows}
    for wid, label in rows:
        b = epoch_bound(meta, BOUND_ROUND_TRIPS[wid])
        lim = epoch_limit(meta, wid)
        cells = []
        for s in peers:
            e = summary[wid][s]
            if e["median"] is None:
                cells.append("n/a")
                continue
            n = files[wid]
            rpf = "—"
            if e["origin_requests"] is not None and n:
                rpf = "%.2f" % (e["origin_requests"] / n)
                if e.get("origin_gets") is not None:
                    rpf += " = %.2f GET + %.2f HEAD + %.2f LIST" % (
                        e["origin_gets"] / n, e["origin_heads"] / n, e["origin_lists"] / n)
            cells.append("%s (%s; %s)" % (fmt_num(e["median"]), fmt_ratio(ratio(e["median"], lim, "higher")), rpf))
        o = origin_rate(meta, wid)
        L.append("| %s | %s | %s | %s | %s |" % (plain(label), fmt_count(b), fmt_count(o) if o else "—",
                                                fmt_count(lim), " | ".join(cells)))
    L.append("")
    return L


def cpu_section(summary, wls, systems):
    """The daemons' CPU seconds per GB read, per workload."""
    rows = [(wid, label) for wid, label, _, _ in wls
            if any(summary[wid][s].get("cpu_s_per_GB") is not None for s in systems)]
    if not rows:
        return []
    L = ["## Daemon CPU seconds per GB read", ""]
    L.append("The FUSE daemon's user + system CPU time (`/proc/PID/stat`, all its threads) during the "
             "workload ÷ the bytes the application read (from the page cache, the daemon or the "
             "origin); lower is better, the median over the runs; workloads that read less than "
             "%d MiB are left out (the clock tick is 10 ms). `efc ÷ best peer` is inverted: above 1, "
             "efc spends less." % (CPU_MIN_BYTES >> 20))
    L.append("")
    hdr = [s if s != "null" else "null (ceiling)" for s in systems]
    L.append("| workload | %s | efc ÷ best peer |" % " | ".join(hdr))
    L.append("|---|%s--:|" % ("--:|" * len(systems)))
    for wid, label in rows:
        vals = {s: summary[wid][s].get("cpu_s_per_GB") for s in systems}
        pv = [vals[p] for p in PEERS if vals.get(p) is not None]
        bp = ratio(vals.get("efc"), min(pv), "lower") if pv else None
        L.append("| %s | %s | %s |" % (plain(label), " | ".join(fmt_num(vals[s]) if vals[s] is not None else "—"
                                                          for s in systems), fmt_ratio(bp)))
    L.append("")
    return L


def cmd_report(args):
    outdir = args[0]
    with open(os.path.join(outdir, "meta.json")) as f:
        meta = json.load(f)
    raw = []
    rawpath = os.path.join(outdir, "raw.jsonl")
    if os.path.exists(rawpath):
        with open(rawpath) as f:
            for line in f:
                line = line.strip()
                if line:
                    raw.append(json.loads(line))
    raw_all = raw + derive(raw)
    systems = [s for s in SYSTEMS if s in meta["systems"]]
    ran = {r["workload"] for r in raw_all}
    wls = [w for w in workloads(meta) if w[0] in ran]
    summary = {}
    for wid, _, _, _ in wls:
        summary[wid] = {}
        for s in systems:
            recs = [r for r in raw_all if r["workload"] == wid and r["system"] == s]
            vals = [r["value"] for r in recs if r.get("value") is not None and not r.get("error")]
            errs = [r["error"] for r in recs if r.get("error")]
            ent = {"n": len(vals), "values": vals, "unit": recs[0]["unit"] if recs else None,
                   "better": recs[0]["better"] if recs else None,
                   "median": statistics.median(vals) if vals else None,
                   "cv": (statistics.pstdev(vals) / statistics.mean(vals)
                          if len(vals) >= 2 and statistics.mean(vals) > 0 else None),
                   "errors": errs, "records": len(recs)}
            for k in ("origin_requests", "origin_bytes", "origin_gets", "origin_heads", "origin_lists"):
                ov = [r[k] for r in recs if r.get(k) is not None and not r.get("error")]
                ent[k] = statistics.median(ov) if ov else None
            # the daemon's CPU seconds per GB the workload read, the median over the runs
            cg = [r["cpu_s"] / (r["bytes_read"] / 1e9) for r in recs
                  if r.get("cpu_s") is not None and (r.get("bytes_read") or 0) >= CPU_MIN_BYTES
                  and not r.get("error")]
            ent["cpu_s_per_GB"] = statistics.median(cg) if cg else None
            summary[wid][s] = ent
        for s in systems:
            e = summary[wid][s]
            better = e["better"] or next((summary[wid][x]["better"] for x in systems if summary[wid][x]["better"]), "higher")
            e["better"] = better
            e["vs_ceiling"] = (ratio(e["median"], summary[wid]["null"]["median"], better)
                               if "null" in summary[wid] and wid not in NO_CEILING else None)
        if "efc" in summary[wid]:
            peers = [summary[wid][p]["median"] for p in PEERS if p in summary[wid] and summary[wid][p]["median"] is not None]
            e = summary[wid]["efc"]
            best = None
            if peers:
                best = max(peers) if e["better"] == "higher" else min(peers)
            e["vs_best_peer"] = ratio(e["median"], best, e["better"])

    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary, "raw": raw}, f, indent=1)

    # ---- markdown
    L = []
    mode = meta["mode"]
    L.append("# efc benchmark — %s mode, %s" % (mode, meta.get("started", "")))
    L.append("")
    L.append("Origin: ossemu on loopback, %s per connection, %s ms per request. %d run%s per figure "
             "(the figure is the median; CV = coefficient of variation over the runs). "
             "`÷ ceiling` is the system's figure over null's (the FUSE ceiling), "
             "`efc ÷ best peer` efc's over the better of s3fs and rclone; both are "
             "\"times better\": above 1 is better, for times and memory too (inverted)."
             % (("%.0f MB/s" % (meta["bw_per_conn"] / 1e6)) if meta["bw_per_conn"] else "no cap",
                meta["latency_ms"], meta["runs"], "" if meta["runs"] == 1 else "s"))
    L.append("")
    for s, why in sorted(meta.get("unavailable", {}).items()):
        L.append("**%s: not available (%s)**" % (s, why.replace("|", "/")))
        L.append("")
    L.append("## At a glance")
    L.append("")
    hdr = [s if s != "null" else "null (ceiling)" for s in systems]
    L.append("| workload | unit | %s | efc ÷ ceiling | efc ÷ best peer |" % " | ".join(hdr))
    L.append("|---|---|%s--:|--:|" % ("--:|" * len(systems)))
    for wid, label, _, _ in wls:
        cells = []
        for s in systems:
            e = summary[wid][s]
            cells.append(("n/a" if e["records"] else "—") if e["median"] is None else fmt_num(e["median"]))
        unit = next((summary[wid][s]["unit"] for s in systems if summary[wid][s]["unit"]), "")
        efc = summary[wid].get("efc", {})
        L.append("| %s | %s | %s | %s | %s |" % (
            label, unit, " | ".join(cells),
            "—" if wid in NO_CEILING else fmt_ratio(efc.get("vs_ceiling")), fmt_ratio(efc.get("vs_best_peer"))))
    L.append("")
    L.extend(targets_section(meta, summary, wls))
    L.extend(bound_section(meta, summary, wls, systems))
    L.extend(cpu_section(summary, wls, systems))
    L.append("## All figures")
    L.append("")
    L.append("| workload | system | figure | unit | CV | ÷ ceiling | efc ÷ best peer | origin requests | origin bytes | daemon CPU s/GB |")
    L.append("|---|---|--:|---|--:|--:|--:|--:|--:|--:|")
    for wid, label, _, _ in wls:
        for s in systems:
            e = summary[wid][s]
            if e["median"] is None and s in meta.get("unavailable", {}):
                fig = "n/a (not available, above)"
            elif e["median"] is None and not e["records"]:
                fig = "—"
            elif e["median"] is None:
                why = e["errors"][0] if e["errors"] else "no figure"
                fig = "n/a (%s)" % why.replace("|", "/")[:120]
            else:
                fig = fmt_num(e["median"])
            cv = "—" if e["cv"] is None else "%.0f%%" % (e["cv"] * 100)
            ceil = "—" if s == "null" else fmt_ratio(e.get("vs_ceiling"))
            bp = fmt_ratio(e.get("vs_best_peer")) if s == "efc" else ""
            oreq = "—" if s == "null" or e["origin_requests"] is None else fmt_count(e["origin_requests"])
            ob = "—" if s == "null" or e["origin_bytes"] is None else fmt_bytes(e["origin_bytes"])
            if wid in NO_CEILING:
                oreq = ob = ""
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, s, fig, e["unit"] or "", cv, ceil, bp, oreq, ob, fmt_num(e.get("cpu_s_per_GB"))))
    L.append("")
    cvs = [summary[w][s]["cv"] for w in summary for s in summary[w] if summary[w][s]["cv"] is not None]
    cvnote = ("median CV over all figures %.0f%%, largest %.0f%%" % (statistics.median(cvs) * 100, max(cvs) * 100)
              if cvs else "one run, so no CV")
    L.append("Noise: %s CPUs (`nproc`); load average %s before, %s after (the latter includes this "
             "benchmark's own load); during the runs other processes used %s%% of the machine's CPU "
             "time and the hypervisor stole %s%% (this benchmark, its daemons and ossemu: %s%%); %s. "
             "Details in machine.txt, every run's figure in results.json."
             % (meta.get("nproc"), meta.get("load_before"), meta.get("load_after"),
                pct(meta.get("cpu_other_pct")), pct(meta.get("cpu_steal_pct")),
                pct(meta.get("cpu_ours_pct")), cvnote))
    bad = [(w, s, e["errors"]) for w in summary for s, e in summary[w].items()
           if e["errors"] and s not in meta.get("unavailable", {})]
    if bad:
        L.append("")
        L.append("Errors:")
        for w, s, errs in bad:
            L.append("- %s / %s: %s" % (w, s, "; ".join(sorted(set(errs)))[:300]))
    md = "\n".join(L) + "\n"
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md)

    # ---- plot: ratio to the ceiling, grouped by workload
    plot_sys = [s for s in systems if s != "null"]
    with open(os.path.join(outdir, "plot.dat"), "w") as f:
        f.write("# workload " + " ".join(plot_sys) + " (figure / null's)\n")
        for wid, _, short, inplot in wls:
            if not inplot:
                continue
            row = []
            for s in plot_sys:
                r = summary[wid][s].get("vs_ceiling")
                row.append("%.6g" % r if r is not None and r > 0 else "?")
            f.write('"%s" %s\n' % (short, " ".join(row)))
    colors = {"efc": "#1f77b4", "s3fs": "#ff7f0e", "rclone": "#2ca02c"}
    cols = " , ".join("'plot.dat' using %d:xtic(1) title '%s' lc rgb '%s'"
                      % (i + 2, s, colors.get(s, "#777777")) if i == 0 else
                      "'' using %d title '%s' lc rgb '%s'" % (i + 2, s, colors.get(s, "#777777"))
                      for i, s in enumerate(plot_sys))
    gp = """set terminal pngcairo size 1400,650 font 'Sans,11'
set output 'plot.png'
set datafile missing '?'
set title "efc benchmark (%s): figure ÷ null FUSE ceiling, higher is better (log scale; times inverted)"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [%g:%g]
set xrange [-0.6:%g]
set ytics ("0.0001" 0.0001, "0.001" 0.001, "0.01" 0.01, "0.1" 0.1, "0.25" 0.25, "0.5" 0.5, "0.75" 0.75, "1" 1, "2" 2, "4" 4)
set grid ytics
set key outside right top
set xtics rotate by -25 nomirror
set ylabel "÷ ceiling (null = 1)"
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb '#d62728' front
set label "ceiling (null)" at graph 0.005, first 1.12 tc rgb '#d62728' front
plot %s
""" % (mode, 0.0005, 4, sum(1 for w in wls if w[3]) - 0.4, cols)
    vals = [summary[w][s].get("vs_ceiling") for w, _, _, p in wls if p for s in plot_sys]
    vals = [v for v in vals if v]
    if vals:
        lo = min(min(vals) / 2, 0.5)
        lo = 10 ** math.floor(math.log10(lo))
        hi = max(max(vals) * 1.5, 2)
        gp = gp.replace("set yrange [0.0005:4]", "set yrange [%g:%g]" % (lo, hi))
        # a system without a single figure would stop gnuplot: plot only the others
        keep = [i for i, s in enumerate(plot_sys)
                if any(summary[w][s].get("vs_ceiling") for w, _, _, p in wls if p)]
        parts = []
        for n, i in enumerate(keep):
            s = plot_sys[i]
            parts.append("'plot.dat' using %d%s title '%s' lc rgb '%s'"
                         % (i + 2, ":xtic(1)" if n == 0 else "", s, colors.get(s, "#777777")))
        gp = gp[:gp.index("plot %s" % cols)] + "plot " + " , ".join(parts) + "\n"
    else:
        gp = gp[:gp.index("set style data histogram")] + (
            "unset border\nunset tics\nunset key\nset yrange [0:1]\n"
            "set label 'no figure to compare with the ceiling (run null and at least one other system)' at graph 0.5, 0.5 center\n"
            "plot 2 notitle\n")
    with open(os.path.join(outdir, "plot.gp"), "w") as f:
        f.write(gp)
    r = subprocess.run(["gnuplot", "plot.gp"], cwd=outdir, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write("benchlib: gnuplot failed: %s\n" % r.stderr)
    sys.stdout.write(md)


def cmd_gen(args):
    """gen ROOT BIG_BYTES TTFB_BYTES N_SMALL SMALL_BYTES N_MANY [N_DATASET]: the origin's data set.
    A size or count of 0 leaves that part out."""
    root = args[0]
    big, ttfb, n_small, small, n_many = (int(a) for a in args[1:6])
    n_dataset = int(args[6]) if len(args) > 6 else 0
    if big:
        with open(os.path.join(root, "big.bin"), "wb") as f:
            chunk = 1 << 20
            left = big
            while left > 0:
                f.write(os.urandom(min(chunk, left)))
                left -= chunk
    if ttfb:
        # time to first byte only needs the object's size: a sparse file costs no memory on tmpfs
        with open(os.path.join(root, "ttfb.bin"), "wb") as f:
            f.truncate(ttfb)
    for sub, count, size in (("small", n_small, small), ("many", n_many, 0), ("dataset", n_dataset, small)):
        if not count:
            continue
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        for k in range(count):
            with open(os.path.join(root, sub, "f%07u" % k), "wb") as f:
                if size:
                    f.write(os.urandom(size))
    out({"ok": True})


def cmd_origin_stats(args):
    """origin-stats: ossemu's /stats JSON on stdin -> "requests bytes gets heads lists" (nothing
    printed if it cannot be read: the workload's origin columns stay empty)."""
    try:
        j = json.load(sys.stdin)
        keys = j.get("by_key", {}).values()
        sys.stdout.write("%d %d %d %d %d\n" % (j["total"]["requests"], j["total"]["bytes"],
                                               sum(k.get("get", 0) for k in keys),
                                               sum(k.get("head", 0) for k in keys),
                                               j.get("list_requests", 0)))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass


def cmd_record(args):
    """record RAW key=value...: appends one measurement to RAW (JSON lines)."""
    raw, kv = args[0], dict(a.split("=", 1) for a in args[1:])
    rec = {"run": int(kv["run"]), "system": kv["system"], "workload": kv["workload"],
           "unit": kv["unit"], "better": kv["better"], "value": None, "error": None,
           "origin_requests": None, "origin_bytes": None, "cpu_s": None, "bytes_read": None,
           "detail": None, "t": time.time()}
    res = {}
    if kv.get("result"):
        try:
            with open(kv["result"]) as f:
                text = f.read().strip()
            res = json.loads(text.splitlines()[-1]) if text else {}
        except (OSError, ValueError, IndexError):
            res = {}
    rec["detail"] = res or None
    err = kv.get("error") or res.get("error")
    rc = int(kv.get("rc", "0") or 0)
    if not err and rc != 0:
        tail = ""
        if kv.get("stderr"):
            try:
                with open(kv["stderr"], errors="replace") as f:
                    lines = [l.strip() for l in f if l.strip()]
                tail = lines[-1][:200] if lines else ""
            except OSError:
                pass
        err = "exit status %d%s%s" % (rc, " (timed out)" if rc in (124, 137) else "",
                                     ": " + tail if tail else "")
    if kv.get("value"):
        rec["value"] = float(kv["value"])
    elif not err:
        v = res.get(kv.get("field", ""))
        if v is None:
            err = "no '%s' in the result" % kv.get("field")
        else:
            rec["value"] = float(v)
    rec["error"] = err or None
    if rec["error"]:
        rec["value"] = None
    o = kv.get("origin", "").split()
    if len(o) >= 2:
        rec["origin_requests"], rec["origin_bytes"] = int(o[0]), int(o[1])
    if len(o) == 5:
        rec["origin_gets"], rec["origin_heads"], rec["origin_lists"] = int(o[2]), int(o[3]), int(o[4])
    if not rec["error"]:
        b = res.get("bytes", res.get("io_bytes"))
        rec["bytes_read"] = int(b) if b is not None else None
        if kv.get("cpu_ticks"):
            rec["cpu_s"] = int(kv["cpu_ticks"]) / os.sysconf("SC_CLK_TCK")
    with open(raw, "a") as f:
        f.write(json.dumps(rec) + "\n")
    v = "%.4g %s" % (rec["value"], rec["unit"]) if rec["value"] is not None else "ERROR: %s" % rec["error"]
    extra = ""
    if rec["origin_requests"] is not None:
        extra = "  (origin: %d requests, %.1f MiB)" % (rec["origin_requests"], rec["origin_bytes"] / 1048576)
        if rec.get("origin_gets") is not None:
            extra = extra[:-1] + "; %d GET, %d HEAD, %d LIST)" % (
                rec["origin_gets"], rec["origin_heads"], rec["origin_lists"])
    if rec["cpu_s"] is not None:
        extra += "  (daemon CPU %.2f s)" % rec["cpu_s"]
    sys.stdout.write("%-7s %-14s %s%s\n" % (rec["system"], rec["workload"], v, extra))


def main():
    cmds = {"ttfb": cmd_ttfb, "epoch": cmd_epoch, "ls": cmd_ls, "fio": cmd_fio, "report": cmd_report,
            "gen": cmd_gen, "record": cmd_record, "origin-stats": cmd_origin_stats}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.stderr.write(__doc__)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    try:
        cmds[cmd](args)
    except OSError as e:
        if cmd in ("report", "gen", "record"):
            raise
        out({"error": "%s: %s" % (e.strerror or e, e.filename or "")})


if __name__ == "__main__":
    main()
