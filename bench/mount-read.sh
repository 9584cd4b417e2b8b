#!/usr/bin/env bash
# Cold sequential read of one large object through an efc mount, against curl fetching the same
# object from the same ossemu in the same run; and `ls -l` of a 10,000-entry directory.
#
#   bench/mount-read.sh [--size-mib N] [--runs R] [--bw-per-conn BYTES] [--latency-ms N]
#                       [--files N] [--opts g_name=value,...]   (extra mount options for efc)
#
# --latency-ms adds that much to every request ossemu answers (run.sh uses 5, like OSS's first
# byte); 0 (the default) measures the client alone.
#
# Each cold read is on a fresh mount with the kernel's caches dropped. In --opts, @CACHEDIR@
# stands for a new empty directory per mount (g_tier_DadiDiskCachePath=@CACHEDIR@), so that a
# disk cache starts cold every time; it is removed with the rest. Uses the installed
# mount.alinas (scripts/demo.sh or cmake --install installs it). Prints a markdown table.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
size_mib=1024 runs=3 bw=0 lat=0 nfiles=10000 opts=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mib) size_mib=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --bw-per-conn) bw=$2; shift 2 ;;
    --latency-ms) lat=$2; shift 2 ;;
    --files) nfiles=$2; shift 2 ;;
    --opts) opts=",$2"; shift 2 ;;
    *) echo "usage: $0 [--size-mib N] [--runs R] [--bw-per-conn BYTES] [--latency-ms N] [--files N] [--opts O]" >&2; exit 2 ;;
  esac
done
[ -x /sbin/mount.alinas ] || { echo "mount.alinas is not installed (run scripts/demo.sh)" >&2; exit 1; }

work=$(mktemp -d /tmp/efc-bench-mount.XXXXXX)
mnt="$work/mnt" pid=""
unmount() { if grep -qs " $mnt " /proc/mounts; then umount "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt"; fi; }
cleanup() { unmount; [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/root/many" "$mnt"
head -c $((size_mib << 20)) /dev/urandom > "$work/root/big.bin"
for i in $(seq 1 "$nfiles"); do : > "$work/root/many/f$i"; done
printf 'testak:testsk\n' > "$work/passwd"; chmod 600 "$work/passwd"
args=(--root "$work/root" --bucket testbucket --cred testak:testsk)
[ "$bw" != 0 ] && args+=(--bw-per-conn "$bw")
[ "$lat" != 0 ] && args+=(--latency-ms "$lat")
. "$here/tests/ossemu/start.sh"
ossemu_start "$work" "${args[@]}" || exit 1
pid=$OSSEMU_PID port=$OSSEMU_PORT
nmount=0
do_mount() {
  nmount=$((nmount + 1))
  local cdir="$work/cache$nmount/"
  mkdir -p "$cdir"
  mount -t alinas -o "efc,protocol=oss,passwd_file=$work/passwd,g_oss_Endpoint=http://127.0.0.1:$port${opts//@CACHEDIR@/$cdir}" \
    testbucket.oss-cn-hangzhou.aliyuncs.com:/ "$mnt"
}
bytes=$((size_mib << 20))
mbps() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.1f", b / t / 1e6 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# Warm ossemu's CRC and the origin's page cache so both contenders start equal.
mapfile -t cargs < <(node "$here/tests/ossemu/tools/presign.js" --port "$port" --key big.bin)
curl -sS -o /dev/null "${cargs[@]}"

curl_r=() efc_r=() ls_cold=() ls_warm=()
for _ in $(seq 1 "$runs"); do
  mapfile -t cargs < <(node "$here/tests/ossemu/tools/presign.js" --port "$port" --key big.bin)
  curl_r+=("$(mbps "$(curl -sS -o /dev/null -w '%{time_total}' "${cargs[@]}")")")
  do_mount
  sync; echo 3 > /proc/sys/vm/drop_caches
  t0=$(date +%s.%N); dd if="$mnt/big.bin" of=/dev/null bs=1M status=none; t1=$(date +%s.%N)
  efc_r+=("$(mbps "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")")
  t0=$(date +%s.%N); n=$(ls -l "$mnt/many" | tail -n +2 | wc -l); t1=$(date +%s.%N)
  [ "$n" = "$nfiles" ] || { echo "ls -l saw $n entries, want $nfiles" >&2; exit 1; }
  ls_cold+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
  t0=$(date +%s.%N); ls -l "$mnt/many" > /dev/null; t1=$(date +%s.%N)
  ls_warm+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
  unmount
done
c=$(printf '%s\n' "${curl_r[@]}" | median)
e=$(printf '%s\n' "${efc_r[@]}" | median)
echo "Cold sequential read of a ${size_mib} MiB object, median of $runs runs$([ "$bw" != 0 ] && echo ", ossemu capped at $bw B/s per connection")$([ "$lat" != 0 ] && echo ", ${lat} ms per request")${opts:+, mount options${opts}}"
echo
echo "| what | median | ratio to curl | runs |"
echo "|---|---|---|---|"
printf '| curl, one GET (MB/s) | %s | 1.00 | %s |\n' "$c" "${curl_r[*]}"
printf '| efc mount, dd bs=1M, cold (MB/s) | %s | %s | %s |\n' "$e" \
  "$(awk -v a="$e" -v b="$c" 'BEGIN { printf "%.2f", a / b }')" "${efc_r[*]}"
printf '| ls -l of %s entries, first after mount (s) | %s | | %s |\n' "$nfiles" \
  "$(printf '%s\n' "${ls_cold[@]}" | median)" "${ls_cold[*]}"
printf '| ls -l of %s entries, again (s) | %s | | %s |\n' "$nfiles" \
  "$(printf '%s\n' "${ls_warm[@]}" | median)" "${ls_warm[*]}"
