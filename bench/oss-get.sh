#!/usr/bin/env bash
# One large GET through efc's oss/ client against curl on the same ossemu object, in one run.
#
#   bench/oss-get.sh [--size-mib N] [--runs R] [--bw-per-conn BYTES] [--build DIR]
#
# Prints a markdown table: curl (one stream), efc-ossget one stream (sink, CRC64 checked), and
# efc-ossget with 8 parallel ranged GETs; each the median of R runs, with the ratio to curl.
# Needs scripts/setup.sh to have run and a build (default build/release, made if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
size_mib=1024 runs=5 bw=0 build="$here/build/release"
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mib) size_mib=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --bw-per-conn) bw=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--size-mib N] [--runs R] [--bw-per-conn BYTES] [--build DIR]" >&2; exit 2 ;;
  esac
done
if [ ! -x "$build/bench/efc-ossget" ]; then
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEFC_TESTS=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target efc-ossget >/dev/null
fi

work=$(mktemp -d /tmp/efc-bench-get.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/root"
head -c $((size_mib << 20)) /dev/urandom > "$work/root/big.bin"
printf 'testak:testsk\n' > "$work/passwd"; chmod 600 "$work/passwd"
args=(--root "$work/root" --bucket testbucket --cred testak:testsk)
[ "$bw" != 0 ] && args+=(--bw-per-conn "$bw")
. "$here/tests/ossemu/start.sh"
ossemu_start "$work" "${args[@]}" || exit 1
pid=$OSSEMU_PID port=$OSSEMU_PORT
# Warm ossemu's CRC64 cache and the page cache so every contender starts equal.
"$build/bench/efc-ossget" --endpoint "http://127.0.0.1:$port" --bucket testbucket \
  --passwd "$work/passwd" big.bin > /dev/null

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
bytes=$((size_mib << 20))
curl_runs=() one_runs=() par_runs=()
for _ in $(seq 1 "$runs"); do
  mapfile -t cargs < <(node "$here/tests/ossemu/tools/presign.js" --port "$port" --key big.bin)
  t=$(curl -sS -o /dev/null -w '%{time_total}' "${cargs[@]}")
  curl_runs+=("$(awk -v b="$bytes" -v t="$t" 'BEGIN{printf "%.1f", b/t/1e6}')")
  one_runs+=("$("$build/bench/efc-ossget" --endpoint "http://127.0.0.1:$port" --bucket testbucket \
     --passwd "$work/passwd" big.bin | sed -n 's/.*"best_MBps":\([0-9.]*\).*/\1/p')")
  par_runs+=("$("$build/bench/efc-ossget" --endpoint "http://127.0.0.1:$port" --bucket testbucket \
     --passwd "$work/passwd" --parallel 8 --part-mib 8 big.bin | sed -n 's/.*"best_MBps":\([0-9.]*\).*/\1/p')")
done
c=$(printf '%s\n' "${curl_runs[@]}" | median)
o=$(printf '%s\n' "${one_runs[@]}" | median)
p=$(printf '%s\n' "${par_runs[@]}" | median)
echo "GET of a ${size_mib} MiB object from ossemu on loopback, median of $runs runs$([ "$bw" != 0 ] && echo ", ossemu capped at $bw B/s per connection")"
echo
echo "| client | MB/s | ratio to curl | runs (MB/s) |"
echo "|---|---|---|---|"
printf '| curl, one GET | %s | 1.00 | %s |\n' "$c" "${curl_runs[*]}"
printf '| efc oss/, one GET (CRC64 checked) | %s | %s | %s |\n' "$o" "$(awk -v a="$o" -v b="$c" 'BEGIN{printf "%.2f", a/b}')" "${one_runs[*]}"
printf '| efc oss/, 8 ranged GETs in parallel | %s | %s | %s |\n' "$p" "$(awk -v a="$p" -v b="$c" 'BEGIN{printf "%.2f", a/b}')" "${par_runs[*]}"
