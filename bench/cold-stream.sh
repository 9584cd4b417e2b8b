#!/usr/bin/env bash
# A cold sequential read through an efc mount with the block cache on against the same read with
# the cache off (g_tier_EnableClusterCache=false), alternating in one run, so that the ratio
# holds on a shared machine whose absolute figures drift. For each read: MB/s (dd bs=1M on a
# fresh mount, the kernel's caches dropped) and the daemon's CPU seconds per GiB (its utime +
# stime from /proc, read before unmounting), which vary much less with the machine's load.
#
#   bench/cold-stream.sh [--size-mib N] [--runs R] [--bw-per-conn BYTES] [--latency-ms N]
#                        [--build DIR] [--mem-mb N] [--disk-mb N] [--opts g_name=value,...]
#                        [--perf DIR]   (perf record -g of each daemon into DIR/<mode>-<run>.data;
#                                        $EFC_PERF_CALLGRAPH replaces -g, e.g. "--call-graph dwarf")
#                        [--warm]       (also the warm read with the page cache dropped, cache on)
#
# Defaults: 512 MiB, 3 runs of each, ossemu capped at 100 MB/s per connection with 5 ms per
# request (as bench/run.sh), the daemon and mount.alinas of build/ci ($EFC_DAEMON, when set, is
# the daemon), a 2 GiB memory and 4 GiB disk cache. Needs root and /dev/fuse. It runs in a
# private mount namespace with the build's mount.alinas bind-mounted over /sbin/mount.alinas
# (nothing is installed), stops only the processes it started, and removes its temporary
# directory.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
size_mib=512 runs=3 bw=100000000 lat=5 build="$here/build/ci" mem_mb=2048 disk_mb=4096 opts=""
perfdir="" warm=0
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
argv=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mib) size_mib=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --bw-per-conn) bw=$2; shift 2 ;;
    --latency-ms) lat=$2; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --mem-mb) mem_mb=$2; shift 2 ;;
    --disk-mb) disk_mb=$2; shift 2 ;;
    --opts) opts=",$2"; shift 2 ;;
    --perf) perfdir=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    --warm) warm=1; shift ;;
    *) usage ;;
  esac
done
case "$size_mib$runs$bw$lat$mem_mb$disk_mb" in *[!0-9]*) usage ;; esac
[ "$(id -u)" -eq 0 ] || { echo "cold-stream.sh: needs root" >&2; exit 1; }
helper="$build/efc/mount.alinas" daemon="${EFC_DAEMON:-$build/efc/aliyun-alinas-efc}"
if [ ! -x "$helper" ] || [ ! -x "$daemon" ]; then
  echo "cold-stream.sh: build $build first" >&2
  exit 1
fi
if [ "${EFC_COLD_STREAM_NS:-}" != 1 ]; then
  # perf's flags are set for the argument list above: re-run as is inside the namespace
  exec env EFC_COLD_STREAM_NS=1 unshare --mount --propagation private -- "$0" "${argv[@]}" --build "$build"
fi
# mount(8) only looks in /sbin: the build's helper there, bound again should another tree's tests
# have replaced the host's file under the bind mount
bind_helper() {
  cmp -s "$helper" /sbin/mount.alinas && return 0
  [ -e /sbin/mount.alinas ] || { cp "$helper" /sbin/mount.alinas; chmod 755 /sbin/mount.alinas; }
  mount --bind "$helper" /sbin/mount.alinas
}

work=$(mktemp -d /tmp/efc-cold-stream.XXXXXX)
data=$(mktemp -d /dev/shm/efc-cold-stream.XXXXXX) # tmpfs: drop_caches cannot evict the origin
mnt="" dpid="" pids=()
# Unmounts, then waits (at most 60 s) for the daemon to have exited, so that its last work
# (writing the memory tier to disk) does not overlap the next read.
unmount() {
  [ -n "$mnt" ] || return 0
  if grep -qs " $mnt " /proc/mounts; then umount "$mnt" 2>/dev/null || umount -l "$mnt"; fi
  for _ in $(seq 1 600); do
    [ -n "$dpid" ] && [ -e "/proc/$dpid" ] || return 0
    sleep 0.1
  done
  echo "cold-stream.sh: daemon $dpid still running 60 s after unmount" >&2
  return 1
}
cleanup() {
  unmount || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$work" "$data"
}
trap cleanup EXIT
head -c $((size_mib << 20)) /dev/urandom > "$data/big.bin"
printf 'testak:testsk\n' > "$work/passwd"
chmod 600 "$work/passwd"
args=(--root "$data" --bucket testbucket --cred testak:testsk --latency-ms "$lat")
[ "$bw" != 0 ] && args+=(--bw-per-conn "$bw")
. "$here/tests/ossemu/start.sh"
ossemu_start "$work" "${args[@]}"
pids+=("$OSSEMU_PID")
port=$OSSEMU_PORT
# ossemu computes the object's CRC64 at its first GET or HEAD: not on a measured read's time
mapfile -t cargs < <(node "$here/tests/ossemu/tools/presign.js" --port "$port" --key big.bin --method HEAD)
curl -sS -m 120 -o /dev/null "${cargs[@]}"

bytes=$((size_mib << 20))
nmount=0
do_mount() { # $1: on|off
  nmount=$((nmount + 1))
  local cdir="$work/cache$nmount/" o
  mnt="$work/mnt$nmount"
  mkdir -p "$cdir" "$mnt"
  o="efc,protocol=oss,passwd_file=$work/passwd,g_oss_Endpoint=http://127.0.0.1:$port"
  if [ "$1" = on ]; then
    o+=",g_tier_EnableClusterCache=true,g_tier_DadiIsDistributed=false"
    o+=",g_tier_DadiMemCacheCapacityMB=$mem_mb,g_tier_DadiDiskCacheCapacityMB=$disk_mb"
    o+=",g_tier_DadiDiskCachePath=$cdir"
  else
    o+=",g_tier_EnableClusterCache=false"
  fi
  bind_helper
  EFC_DAEMON="$daemon" mount -t alinas -o "$o$opts" testbucket.oss-cn-hangzhou.aliyuncs.com:/ "$mnt"
  # the daemon's command line: <daemon> --ready-fd=3 ... <source> <mount point>
  dpid=$(pgrep -f -- "--ready-fd=.* $mnt\$" | head -n1 || true)
  [ -n "$dpid" ] || { echo "cold-stream.sh: no daemon for $mnt" >&2; exit 1; }
  stat "$mnt" > /dev/null
}
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"; }
now() { date +%s.%N; }
# one dd of big.bin; prints "MB/s cpu_s_per_GiB"
read_once() { # $1: label for perf
  local c0 t0 t1 c1 pp=""
  if [ -n "$perfdir" ]; then
    # shellcheck disable=SC2086 # EFC_PERF_CALLGRAPH: perf's options, e.g. "--call-graph dwarf"
    perf record -q ${EFC_PERF_CALLGRAPH:--g} -F 999 -p "$dpid" -o "$perfdir/$1.data" > /dev/null 2>&1 &
    pp=$!
    sleep 0.5 # perf attaches (not a measurement: the read has not begun)
  fi
  c0=$(cpu_s "$dpid")
  t0=$(now)
  dd if="$mnt/big.bin" of=/dev/null bs=1M status=none
  t1=$(now)
  c1=$(cpu_s "$dpid")
  if [ -n "$pp" ]; then kill -INT "$pp"; wait "$pp" || true; fi
  awk -v b="$bytes" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
    'BEGIN { printf "%.1f %.3f", b / (t1 - t0) / 1e6, (c1 - c0) / (b / 1073741824) }'
}

declare -A mbps cpu
for r in $(seq 1 "$runs"); do
  for mode in on off; do
    do_mount "$mode"
    sync
    echo 3 > /proc/sys/vm/drop_caches
    read -r m c <<< "$(read_once "$mode-$r")"
    mbps[$mode]+="$m " cpu[$mode]+="$c "
    if [ "$mode" = on ] && [ "$warm" = 1 ]; then
      echo 1 > /proc/sys/vm/drop_caches
      read -r m c <<< "$(read_once "warm-$r")"
      mbps[warm]+="$m " cpu[warm]+="$c "
    fi
    unmount
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "Cold sequential read of ${size_mib} MiB, $runs runs each, alternating; ossemu $bw B/s per connection, $lat ms per request${opts:+; options$opts}"
echo
echo "| read | MB/s (median) | runs | daemon CPU s/GiB (median) | runs |"
echo "|---|--:|---|--:|---|"
for mode in on off warm; do
  [ -n "${mbps[$mode]:-}" ] || continue
  printf '| %s | %s | %s | %s | %s |\n' "$mode" "$(median <<< "${mbps[$mode]}")" "${mbps[$mode]}" \
    "$(median <<< "${cpu[$mode]}")" "${cpu[$mode]}"
done
on=$(median <<< "${mbps[on]}") off=$(median <<< "${mbps[off]}")
echo
awk -v a="$on" -v b="$off" 'BEGIN { printf "cache on / cache off: %.2f\n", a / b }'
read -r -a on_r <<< "${mbps[on]}"
read -r -a off_r <<< "${mbps[off]}"
for r in $(seq 1 "$runs"); do
  awk -v a="${on_r[r - 1]}" -v b="${off_r[r - 1]}" -v r="$r" 'BEGIN { printf "  run %d: %.2f\n", r, a / b }'
done
