#!/usr/bin/env python3
"""contrib/grafana/make-dashboard.py - writes efc-cluster.json, the Grafana dashboard of a fleet
of efc nodes (import it in Grafana: Dashboards > New > Import; pick the Prometheus data source
that scrapes every node's /metrics on its g_server_Port).

The panels are listed here once, as (title, unit, [(PromQL, legend)]); the JSON is generated so
that every panel has the same shape. tests/integration/mount/test_mount_cluster.py loads the JSON
and checks that every metric a query names is one a real node's /metrics has.
Run: python3 contrib/grafana/make-dashboard.py (standard library only).
"""
import json
import os

SEL = '{instance=~"$instance"}'
R = "[$__rate_interval]"

ROWS = [
    ("The cluster", [
        ("Origin traffic, all nodes (bytes/s)", "Bps", [
            ("sum(rate(efc_origin_bytes_total%s%s))" % (SEL, R), "origin"),
            ("sum(rate(efc_tier_read_bytes_total%s%s))" % (SEL, R), "read by applications")]),
        ("Hit ratio per node (this node's or a peer's tiers)", "percentunit", [
            ("sum by (instance) (rate(efc_tier_read_hit_total%s%s)) / "
             "sum by (instance) (rate(efc_tier_read_total%s%s))" % (SEL, R, SEL, R), "{{instance}}")]),
        ("Members, mismatched rootlists, peers up", "short", [
            ("max(efc_p2p_members%s)" % SEL, "members"),
            ("max(efc_p2p_membership_mismatched_peers%s)" % SEL, "peers with another rootlist"),
            ("min by (instance) (sum by (instance) (efc_p2p_peer_up%s))" % SEL,
             "peers up ({{instance}})")]),
    ]),
    ("Peers", [
        ("Bytes sent to peers per node (bytes/s)", "Bps", [
            ("rate(efc_p2p_served_bytes_total%s%s)" % (SEL, R), "{{instance}}")]),
        ("Serving balance: busiest node / mean", "short", [
            ("max(rate(efc_p2p_served_bytes_total%s%s)) / avg(rate(efc_p2p_served_bytes_total%s%s))"
             % (SEL, R, SEL, R), "max / mean")]),
        ("Blocks by where they came from (blocks/s)", "short", [
            ("sum by (from) (rate(efc_p2p_blocks_total%s%s))" % (SEL, R), "{{from}}")]),
        ("Peer errors by kind (/s)", "short", [
            ("sum by (kind) (rate(efc_p2p_errors_total%s%s))" % (SEL, R), "{{kind}}"),
            ("sum(rate(efc_tier_direct_read_total%s%s))" % (SEL, R), "reads sent to the origin")]),
        ("Peer GET latency (p50, p99)", "s", [
            ("histogram_quantile(0.5, sum by (le) (rate(efc_p2p_request_duration_seconds_bucket%s%s)))"
             % (SEL, R), "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(efc_p2p_request_duration_seconds_bucket%s%s)))"
             % (SEL, R), "p99")]),
        ("Hot blocks: answered hot, relayed down the tree (/s)", "short", [
            ("sum(rate(efc_p2p_served_hot_total%s%s))" % (SEL, R), "answered hot"),
            ("sum(rate(efc_p2p_served_relays_total%s%s))" % (SEL, R), "relays served"),
            ("sum(rate(efc_p2p_served_busy_total%s%s))" % (SEL, R), "answered busy")]),
    ]),
    ("Nodes", [
        ("Application read latency (p99)", "s", [
            ("histogram_quantile(0.99, sum by (le, instance) (rate(efc_fuse_read_duration_seconds_bucket%s%s)))"
             % (SEL, R), "{{instance}}")]),
        ("Cache used per node", "bytes", [
            ("sum by (instance) (efc_cache_used_bytes%s)" % SEL, "{{instance}}")]),
        ("Origin fetches per node (/s)", "short", [
            ("rate(efc_origin_fetches_total%s%s)" % (SEL, R), "{{instance}}"),
            ("sum(rate(efc_origin_errors_total%s%s))" % (SEL, R), "origin errors")]),
    ]),
]


def panel(pid, title, unit, targets, x, y):
    return {
        "id": pid, "type": "timeseries", "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi"}},
        "targets": [{"refId": chr(ord("A") + i), "expr": e, "legendFormat": l,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for i, (e, l) in enumerate(targets)],
    }


def dashboard():
    panels, pid, y = [], 1, 0
    for row, items in ROWS:
        panels.append({"id": pid, "type": "row", "title": row, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid += 1
        y += 1
        for i, (title, unit, targets) in enumerate(items):
            panels.append(panel(pid, title, unit, targets, (i % 3) * 8, y + (i // 3) * 8))
            pid += 1
        y += ((len(items) + 2) // 3) * 8
    return {
        "title": "efc: distributed cache fleet",
        "uid": "efc-cluster",
        "description": "Every efc node of a cluster: hit ratios, origin bytes, bytes sent to peers "
                       "and their balance, peer errors and latency, hot blocks.",
        "tags": ["efc", "fuse", "cache"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus",
             "label": "Prometheus"},
            {"name": "instance", "type": "query", "label": "node", "multi": True,
             "includeAll": True, "allValue": ".*",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(efc_start_time_seconds, instance)",
                       "refId": "nodes"},
             "definition": "label_values(efc_start_time_seconds, instance)", "refresh": 2},
        ]},
        "panels": panels,
    }


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "efc-cluster.json")
    with open(out, "w") as f:
        json.dump(dashboard(), f, indent=1)
        f.write("\n")
    print("wrote %s" % out)
