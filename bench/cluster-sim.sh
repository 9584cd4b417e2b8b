#!/usr/bin/env bash
# The distributed cache at 100, 1,000 and 5,000 nodes, simulated with efc's own owner and
# fan-out-tree functions (bench/clustersim.c; no mounts, no root):
#
#   bench/cluster-sim.sh [--nodes 100,1000,5000] [--fanout 4] [--spans-per-node 64]
#                        [--model-spans 256] [--build DIR] [--out DIR]
#
# Writes <out>/cluster-sim.md (the table and what it shows) and <out>/cluster-sim.png (gnuplot);
# default out: bench/results. Builds efc-clustersim in DIR (default build/release) first.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build="$here/build/release" out="$here/bench/results" args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes|--fanout|--spans-per-node|--model-spans) args+=("$1" "$2"); shift 2 ;;
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
[ -f "$build/CMakeCache.txt" ] || cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target efc-clustersim -j"$(nproc)" >/dev/null
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/bench/efc-clustersim" "${args[@]}" --dat "$tmp/sim.dat" > "$tmp/table.md"
{
  echo "# The distributed cache at scale, simulated"
  echo
  echo "\`bench/cluster-sim.sh${args[*]:+ ${args[*]}}\` on $(date -u +%Y-%m-%d): efc's own rootlist parser, block"
  echo "identity, owner function (rendezvous hashing over 4 MiB spans) and fan-out tree of hot blocks"
  echo "(bench/clustersim.c), no mounts. \"flat\" is each owner sending its spans to every node that"
  echo "asks; \"tree\" is what efc does: an owner sends a span to its children in the span's tree and"
  echo "to as many others as the fan-out allows, the rest get it from their parents."
  echo
  cat "$tmp/table.md"
  echo
  echo "Churn is measured on 20,000 sampled spans: where k/N of them is a handful (1 node of 1,000 or"
  echo "5,000) the ratio is that handful's noise. What is exact, and checked in CI (\`efc-clustersim"
  echo "--check\`): every span of the nodes that leave moves and no other, and moved spans go only to"
  echo "nodes that join."
  echo
  echo "Not modelled: time and link bandwidth, arrivals spread over time, failures and fallbacks,"
  echo "caches too small to keep what a node relays, agents, rootlists that differ between nodes."
} > "$out/cluster-sim.md"
cd "$tmp"
gnuplot <<'GP'
set terminal pngcairo size 1200,500 font 'Sans,11'
set output 'cluster-sim.png'
set multiplot layout 1,2
set logscale x
set xlabel "nodes"
set grid
set key top left
set title "Per-node balance (max ÷ mean)"
set ylabel "max ÷ mean"
plot 'sim.dat' using 1:2 with linespoints lw 2 title 'spans owned', \
     '' using 1:4 with linespoints lw 2 title 'bytes sent, model load (tree)'
set title "Busiest node's sends in a fleet-wide model load (× model)"
set logscale y
set ylabel "× model size"
plot 'sim.dat' using 1:5 with linespoints lw 2 title 'flat: owner sends to all', \
     '' using 1:6 with linespoints lw 2 title 'efc: fan-out tree'
unset multiplot
GP
cp cluster-sim.png "$out/cluster-sim.png"
echo "cluster-sim: wrote $out/cluster-sim.md and $out/cluster-sim.png"
