#!/usr/bin/env bash
# README's first command: installs every dependency, builds and installs efc (the daemon to
# /usr/local/bin, mount.alinas to /sbin), then runs the main job on an embedded default: a local
# test bucket served by tests/ossemu, mounted with mount -t alinas and a single-node cache, read
# through the mount twice (cold, then warm with the page cache dropped) with every byte compared,
# the origin's and the cache's counters shown, and unmounted; then three nodes of a distributed
# cache on 127.0.0.21-23 read the model at once and the origin's counter shows one copy sent.
# Leaves nothing running.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
jobs=$(nproc 2>/dev/null || echo 2)

bash scripts/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEFC_TESTS=OFF >/dev/null
cmake --build build/release -j"$jobs"
cmake --install build/release >/dev/null

work=$(mktemp -d /tmp/efc-demo.XXXXXX)
emu_pid=""
cleanup() {
  [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "demo: building a test bucket in $work/bucket"
mkdir -p "$work/bucket/models" "$work/bucket/datasets/train"
head -c $((64 << 20)) /dev/urandom > "$work/bucket/models/weights.bin"
for i in $(seq -w 1 50); do head -c 16384 /dev/urandom > "$work/bucket/datasets/train/sample-$i.bin"; done
echo "demo-ak:demo-secret" > "$work/passwd"; chmod 600 "$work/passwd"

. tests/ossemu/start.sh
ossemu_start "$work" --root "$work/bucket" --bucket demo --cred demo-ak:demo-secret \
  --region cn-hangzhou || { echo "demo: ossemu did not start" >&2; exit 1; }
emu_pid=$OSSEMU_PID port=$OSSEMU_PORT admin=$OSSEMU_ADMIN
echo "demo: ossemu serves bucket 'demo' on 127.0.0.1:$port (as demo.oss-cn-hangzhou.aliyuncs.com)"

mnt="$work/mnt"
mkdir -p "$mnt"
cleanup_mount() {
  if grep -qs " $mnt " /proc/mounts; then umount "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt"; fi
}
trap 'cleanup_mount; cleanup' EXIT

opts="efc,protocol=oss,passwd_file=$work/passwd,g_oss_Endpoint=http://127.0.0.1:$port"
# Configuration 2 of the guide, single-node cache: memory and disk tiers.
mkdir -p "$work/cache"
opts="$opts,g_tier_EnableClusterCache=true,g_tier_DadiIsDistributed=false"
opts="$opts,g_tier_DadiMemCacheCapacityMB=256,g_tier_DadiDiskCacheCapacityMB=1024"
opts="$opts,g_tier_DadiDiskCachePath=$work/cache/,g_log_File=$work/efc.log"
# The management API (warm-up, metrics), on a free loopback port.
mport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
opts="$opts,g_server_Port=$mport"
echo "demo: mount -t alinas -o efc,protocol=oss,passwd_file=...,g_oss_Endpoint=http://127.0.0.1:$port,g_tier_...(single-node cache) demo.oss-cn-hangzhou.aliyuncs.com:/ $mnt"
mount -t alinas -o "$opts" demo.oss-cn-hangzhou.aliyuncs.com:/ "$mnt"
df -h "$mnt"
echo "demo: ls -l $mnt/models $mnt/datasets/train | head"
ls -l "$mnt/models"
ls -l "$mnt/datasets/train" | head -5
origin_gets() { curl -s "http://127.0.0.1:$admin/stats" | jq '[.by_key[].get] | add // 0'; }
compare() {
  local start end before after
  before=$(origin_gets); start=$(date +%s.%N)
  diff -r "$work/bucket" "$mnt" && echo "demo: every byte matches"
  end=$(date +%s.%N); after=$(origin_gets)
  awk -v s="$start" -v e="$end" -v n=$((after - before)) -v what="$1" \
    'BEGIN { printf "demo: %s: %.1f MiB in %.2f s, %d GET requests to the origin\n", what, 64 + 50 * 16 / 1024, e - s, n }'
}
echo "demo: warming up models/ before anyone reads it: aliyun-alinas-efc-cli -m $mnt -r warmup/load --path models"
aliyun-alinas-efc-cli -m "$mnt" -r warmup/load --path models --no-wait
for _ in $(seq 1 300); do
  aliyun-alinas-efc-cli -m "$mnt" -r warmup/stat --path models | grep -q running || break
  sleep 0.2
done
aliyun-alinas-efc-cli -m "$mnt" -r warmup/stat --path models
echo "demo: reading every file through the mount and comparing it with the bucket's source:"
compare "first read (models/ warmed up, datasets/ fetched from the origin)"
sync; echo 3 > /proc/sys/vm/drop_caches
compare "warm read, kernel page cache dropped (served by efc's cache)"
echo "demo: what the origin counted (requests and body bytes):"
curl -s "http://127.0.0.1:$admin/stats" | jq '{total, list_requests}'
echo "demo: the cache's counters: aliyun-alinas-efc-cli -m $mnt -r tier"
aliyun-alinas-efc-cli -m "$mnt" -r tier
echo "demo: a few of the Prometheus metrics (curl http://127.0.0.1:$mport/metrics):"
curl -s "http://127.0.0.1:$mport/metrics" |
  grep -E '^efc_(cache_hit_ratio|cache_used_bytes|oss_requests_total|oss_get_duration_seconds_count|fuse_read_duration_seconds_count|readdir_cache_dirs|warmup_tasks)' || true
umount "$mnt"
echo "demo: unmounted; the daemon has exited: $(pgrep -fc "aliyun-alinas-efc.*$mnt" || true) left"

# The guide's Configuration 3: a distributed cache of three nodes. On one machine each node has
# its own loopback address (127.0.0.21, .22, .23), mount, cache and management port; all listen
# for their peers on one P2P port. All three read the model at once: the origin sends it once.
echo
echo "demo: a three-node cluster on 127.0.0.21-23, one rootlist:"
p2p=$(python3 -c '
import socket
for _ in range(100):
    s = socket.socket(); s.bind(("127.0.0.21", 0)); p = s.getsockname()[1]; s.close()
    try:
        for a in ("127.0.0.21", "127.0.0.22", "127.0.0.23"):
            t = socket.socket(); t.bind((a, p)); t.close()
        print(p); break
    except OSError:
        pass')
{ echo "# <id>:<ip>:<p2p port>"; for i in 1 2 3; do echo "$i:127.0.0.2$i:$p2p"; done; } > "$work/rootlist"
cat "$work/rootlist"
nodes=()
cleanup_nodes() {
  for n in "${nodes[@]}"; do
    if grep -qs " $n " /proc/mounts; then umount "$n" 2>/dev/null || fusermount3 -u -z "$n"; fi
  done
}
trap 'cleanup_nodes; cleanup_mount; cleanup' EXIT
ports=()
for i in 1 2 3; do
  n="$work/node$i"; mkdir -p "$n" "$work/cache$i"
  np=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mount -t alinas -o "efc,protocol=oss,passwd_file=$work/passwd,g_oss_Endpoint=http://127.0.0.1:$port,\
g_tier_EnableClusterCache=true,g_tier_DadiIsDistributed=true,g_tier_DadiAddr=$work/rootlist,\
g_tier_DadiP2PIP=127.0.0.2$i,g_tier_DadiP2PPort=$p2p,g_tier_DadiMemCacheCapacityMB=256,\
g_tier_DadiDiskCacheCapacityMB=1024,g_tier_DadiDiskCachePath=$work/cache$i/,\
g_server_Port=$np,g_log_File=$work/node$i.log" demo.oss-cn-hangzhou.aliyuncs.com:/ "$n"
  nodes+=("$n"); ports+=("$np")
  echo "demo: node $i mounted on $n (P2P 127.0.0.2$i:$p2p, management port $np)"
done
curl -s -X POST "http://127.0.0.1:$admin/stats/reset" -d '{}' >/dev/null
sync; echo 3 > /proc/sys/vm/drop_caches
echo "demo: the three nodes read models/weights.bin at once:"
readers=()
for n in "${nodes[@]}"; do cmp "$work/bucket/models/weights.bin" "$n/models/weights.bin" & readers+=($!); done
for r in "${readers[@]}"; do wait "$r" || { echo "demo: a node read wrong bytes" >&2; exit 1; }; done
echo "demo: every byte matches on every node"
curl -s "http://127.0.0.1:$admin/stats" |
  jq -r '.by_key["models/weights.bin"] | "demo: the origin sent models/weights.bin \(.bytes) bytes in \(.get) GETs (the file is \(64 * 1048576) bytes): one copy for three nodes"'
for i in 1 2 3; do
  echo "demo: node $i: aliyun-alinas-efc-cli -m ${nodes[$((i-1))]} -r tier"
  aliyun-alinas-efc-cli -m "${nodes[$((i-1))]}" -r tier | grep -E 'tier_read |tier_read_hit |tier_read_miss |tier_direct_read |tier_root_read_source_bytes'
done
echo "demo: the cluster as node 1 sees it: aliyun-alinas-efc-cli -m ${nodes[0]} -r cluster"
aliyun-alinas-efc-cli -m "${nodes[0]}" -r cluster
cleanup_nodes
echo "demo: the object client alone, without FUSE (build/release/bench/efc-ossget):"
build/release/bench/efc-ossget --endpoint "http://127.0.0.1:$port" --bucket demo \
  --passwd "$work/passwd" --sign 4 models/weights.bin
echo "demo: done."
