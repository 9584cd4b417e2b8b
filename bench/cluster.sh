#!/usr/bin/env bash
# The inference fleet, measured: N efc nodes on this machine load one model at once, with and
# without the distributed cache, against tests/ossemu with a bucket-wide egress cap.
#
#   bench/cluster.sh [--nodes 1,2,4,8] [--files 4] [--file-mib 256] [--small 2000] [--small-kib 16]
#                    [--bw-bucket BYTES] [--bw-per-conn BYTES] [--latency-ms N] [--modes on,off]
#                    [--mem-mb N] [--disk-mb N] [--churn 0|1] [--efc-opts a=1,b=2]
#                    [--build DIR] [--no-build] [--out DIR]
#
# Each node: its own daemon, mount, cache, management port and address (127.0.0.21, ...). Writes
# <out>/cluster-<timestamp>/{results.md,results.json,plot.png} and <out>/cluster-latest.md and
# .png (default out: bench/results). Needs root and /dev/fuse; installs nothing (scripts/setup.sh
# does). What it starts it stops, also on failure or ^C: unmounts, then its processes, by pid.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build="$here/build/release" outroot="$here/bench/results" nobuild=0 args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes|--files|--file-mib|--small|--small-kib|--bw-bucket|--bw-per-conn|--latency-ms|--modes|--mem-mb|--disk-mb|--churn|--efc-opts)
      args+=("$1" "$2"); shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-build) nobuild=1; shift ;;
    --out) outroot=$2; shift 2 ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
if [ "$nobuild" = 0 ]; then
  [ -f "$build/CMakeCache.txt" ] || cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)" >/dev/null
fi
out="$outroot/cluster-$(date -u +%Y%m%d-%H%M%S)"
EFC_BUILD_DIR="$build" EFC_SOURCE_DIR="$here" EFC_OSSEMU_DIR="$here/tests/ossemu" \
  python3 "$here/bench/cluster.py" "${args[@]}" --out "$out"
cp "$out/results.md" "$outroot/cluster-latest.md"
[ -f "$out/plot.png" ] && cp "$out/plot.png" "$outroot/cluster-latest.png"
echo "cluster: wrote $out and $outroot/cluster-latest.md"
