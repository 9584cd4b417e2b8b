#!/usr/bin/env bash
# efc against s3fs, rclone and the null-FUSE ceiling, on the same data in the same run.
#
#   bench/run.sh [--quick] [--systems efc,s3fs,rclone,null] [--runs N] [--bw-per-conn BYTES]
#                [--latency-ms N] [--out DIR] [--build DIR] [--no-build] [--epoch-threads N]
#                [--efc-opts OPTS] [--workloads LIST|new] [--small-files N] [--dataset-files N]
#                [--dataset-mem-mb M] [--direct-engine psync|libaio|io_uring]
#   bench/run.sh --cluster N[,N...] [bench/cluster.sh's options]   (the N-node benchmark)
#
# Starts ossemu (tests/ossemu) on a generated data set with a per-connection bandwidth cap and a
# latency per request that resemble OSS (defaults: 100 MB/s, 5 ms), mounts each system in turn on
# its own mount point (a fresh mount with an empty cache for every cold measurement), runs the
# workloads (fio where fio fits, bench/benchlib.py for the rest), unmounts, and writes
# <out>/<timestamp>-<mode>/{results.md,results.json,plot.png,machine.txt,run.log}, and
# <out>/latest.md when every workload ran (default out: bench/results). --workloads picks groups of
# rows (ttfb,seq,epoch,ls,direct,epoch-md,dataset; "new" = direct,epoch,epoch-md,dataset, the rows
# that see past the kernel's page cache). See bench/README.md for what each figure means.
#
# Needs root (mount, drop_caches), /dev/fuse and what scripts/setup.sh installs. Installs nothing.
# Cleanup runs from an EXIT trap whatever happens: a lazy unmount of every mount point this script
# made, then only the processes it started (by pid), then its temporary directories.
set -uo pipefail # not -e: a failing workload is recorded as such and the run goes on
here=$(cd "$(dirname "$0")/.." && pwd)
bench="$here/bench"

quick=0 systems="efc,s3fs,rclone,null" runs="" bw=100000000 lat=5 outroot="$bench/results"
build="$here/build/release" nobuild=0 epoch_threads=16 efc_extra=""
all_groups="ttfb,seq,epoch,ls,direct,epoch-md,dataset" groups=$all_groups
n_small="" n_dataset="" dataset_mem_mb="" direct_engine=psync
usage() {
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
if [ "${1:-}" = --cluster ]; then
  [ $# -ge 2 ] || usage
  nodes=$2
  shift 2
  exec "$bench/cluster.sh" --nodes "$nodes" "$@"
fi
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --systems) systems=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --bw-per-conn) bw=$2; shift 2 ;;
    --latency-ms) lat=$2; shift 2 ;;
    --out) outroot=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-build) nobuild=1; shift ;;
    --epoch-threads) epoch_threads=$2; shift 2 ;;
    --efc-opts) efc_extra=$2; shift 2 ;;
    --workloads) groups=$2; shift 2 ;;
    --small-files) n_small=$2; shift 2 ;;
    --dataset-files) n_dataset=$2; shift 2 ;;
    --dataset-mem-mb) dataset_mem_mb=$2; shift 2 ;;
    --direct-engine) direct_engine=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
  esac
done

if [ "$quick" = 1 ]; then
  mode=quick
  big=$((256 << 20)) ttfb=$((1 << 30)) small=16384 n_many=10000
  rand_runtime=5 wl_timeout=300 efc_mem_mb=512 efc_disk_mb=4096
  : "${runs:=1}" "${n_small:=2000}" "${n_dataset:=5000}" "${dataset_mem_mb:=128}"
else
  mode=full
  big=$((1 << 30)) ttfb=$((1 << 30)) small=16384 n_many=100000
  rand_runtime=15 wl_timeout=1200 efc_mem_mb=2048 efc_disk_mb=8192
  : "${runs:=3}" "${n_small:=20000}" "${n_dataset:=30000}" "${dataset_mem_mb:=2048}"
fi
case "$runs" in ''|*[!0-9]*|0) echo "run.sh: --runs must be a positive integer" >&2; exit 2 ;; esac
case "$bw$lat$epoch_threads$n_small$n_dataset$dataset_mem_mb" in
  *[!0-9]*) echo "run.sh: numeric options expected" >&2; exit 2 ;;
esac
for v in "$n_small" "$n_dataset" "$dataset_mem_mb"; do
  [ "$v" -gt 0 ] || { echo "run.sh: --small-files, --dataset-files and --dataset-mem-mb must be positive" >&2; exit 2; }
done
case "$direct_engine" in psync|libaio|io_uring) ;; *) echo "run.sh: --direct-engine: psync, libaio or io_uring" >&2; exit 2 ;; esac
[ "$groups" = new ] && groups="direct,epoch,epoch-md,dataset"
[ "$groups" = all ] && groups=$all_groups
IFS=, read -r -a group_list <<< "$groups"
for g in "${group_list[@]}"; do
  [[ ",$all_groups," == *",$g,"* ]] || { echo "run.sh: unknown workload group '$g' (one of $all_groups, or new)" >&2; exit 2; }
done
want() { [[ ",$groups," == *",$1,"* ]]; } # is workload group $1 selected?
# Only what the selected groups read is generated (and served by null).
want seq || want direct || big=0
want ttfb || ttfb=0
want epoch || want epoch-md || n_small=0
want ls || n_many=0
want dataset || n_dataset=0
IFS=, read -r -a sys_list <<< "$systems"
for s in "${sys_list[@]}"; do
  case "$s" in efc|s3fs|rclone|null) ;; *) echo "run.sh: unknown system '$s'" >&2; exit 2 ;; esac
done

ts=$(date +%Y%m%d-%H%M%S)
resdir="$outroot/$ts-$mode"
[ "$groups" != "$all_groups" ] && resdir+="-${groups//,/+}"
mkdir -p "$resdir" || exit 1
resdir=$(cd "$resdir" && pwd)
raw="$resdir/raw.jsonl"
: > "$raw"

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" | tee -a "$resdir/run.log" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (mount -t alinas, drop_caches)"
[ -e /dev/fuse ] || die "/dev/fuse missing"
for tool in node fio python3 fusermount3 gnuplot curl; do
  command -v "$tool" >/dev/null || die "$tool not found (run scripts/setup.sh)"
done
for s in "${sys_list[@]}"; do
  case "$s" in s3fs|rclone) command -v "$s" >/dev/null || die "$s not found (run scripts/setup.sh)" ;; esac
done
[ -d "$here/tests/ossemu/node_modules" ] || die "ossemu's npm packages missing (run scripts/setup.sh)"
unset AWS_CA_BUNDLE # s3fs and rclone would load it (rclone refuses to start); we talk plain HTTP

# ---------------------------------------------------------------- state and cleanup
work=$(mktemp -d /tmp/efc-bench.XXXXXX) || die "mktemp failed"
data=""
MOUNTS=() # every mount point this script made
PIDS=()   # every process this script started (ossemu, s3fs, rclone, nullfs, efc daemons)
ossemu_pid=""
WPID="" # the running workload (a subshell of this script)

mounted() { grep -qs " $1 fuse" /proc/mounts; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
# Waits up to $2 tenths of a second for pid $1 to end.
wait_gone() {
  local i
  for ((i = 0; i < $2; i++)); do alive "$1" || return 0; sleep 0.1; done
  ! alive "$1"
}
stop_pid() {
  local p=$1
  if alive "$p"; then
    kill "$p" 2>/dev/null
    wait_gone "$p" 50 || { kill -9 "$p" 2>/dev/null; wait_gone "$p" 30; }
  fi
  wait "$p" 2>/dev/null
  forget_pid "$p"
  return 0
}
# A pid that has ended leaves PIDS at once: it may be reused by someone else's process later.
forget_pid() {
  local keep=() q
  for q in "${PIDS[@]}"; do [ "$q" = "$1" ] || keep+=("$q"); done
  PIDS=("${keep[@]}")
}

cleanup() {
  local rc=$? m p i
  trap - EXIT INT TERM
  if alive "$WPID"; then # a workload still running: its tools (timeout passes TERM on), then it
    pkill -TERM -P "$WPID" 2>/dev/null
    wait_gone "$WPID" 50 || kill "$WPID" 2>/dev/null
  fi
  for m in "${MOUNTS[@]}"; do
    if mounted "$m"; then fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; fi
  done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do # newest first: the daemons, then ossemu
    p=${PIDS[i]}
    alive "$p" && stop_pid "$p"
  done
  # never rm -rf through a live mount
  if grep -qs " $work/" /proc/mounts; then
    echo "run.sh: mounts left under $work, not removing it" >&2
  else
    rm -rf "$work"
  fi
  [ -n "$data" ] && [ -d "$data" ] && rm -rf "$data"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "mode $mode, systems ${sys_list[*]}, $runs run(s), origin $bw B/s per connection, $lat ms per request"
log "results in $resdir, work dir $work"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# Noise: the CPU time the whole machine spent during the runs (/proc/stat) against the CPU time of
# this script and everything it started (its waited-for children, the efc daemons that mount(8)
# detached, ossemu): the rest is other people's work, shown as a share of the machine's time.
cpu_stat() { awk '/^cpu /{print $2+$3+$4+$7+$8, $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; } # busy steal all
proc_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
self_ticks() { awk '{print $14+$15+$16+$17}' "/proc/$$/stat"; }
ext_ticks=0 # CPU ticks of processes of ours that are not our children (efc daemons)

# ---------------------------------------------------------------- binaries
build_log="$resdir/build.log"
nullfs_bin=""
efc_daemon=""
if [ "$nobuild" = 0 ]; then
  if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEFC_TESTS=OFF >>"$build_log" 2>&1 ||
      log "cmake configure of $build failed (see build.log)"
  fi
  if [ -f "$build/CMakeCache.txt" ]; then
    cmake --build "$build" -j"$(nproc)" --target efc-nullfs efc-ossget >>"$build_log" 2>&1 ||
      log "building efc-nullfs and efc-ossget in $build failed (see build.log)"
    if [[ ",$systems," == *,efc,* ]]; then
      cmake --build "$build" -j"$(nproc)" --target aliyun-alinas-efc >>"$build_log" 2>&1 ||
        log "building aliyun-alinas-efc in $build failed (see build.log)"
    fi
  fi
fi
if [[ ",$systems," == *,null,* ]]; then
  if [ -x "$build/bench/efc-nullfs" ]; then
    nullfs_bin="$build/bench/efc-nullfs"
  else
    log "no $build/bench/efc-nullfs: compiling bench/nullfs.c by hand"
    # shellcheck disable=SC2046
    gcc -O2 -g -Wall -Wextra -DFUSE_USE_VERSION=314 "$bench/nullfs.c" $(pkg-config --cflags --libs fuse3) \
      -o "$work/efc-nullfs" >>"$build_log" 2>&1 || die "cannot build bench/nullfs.c (see $build_log)"
    nullfs_bin="$work/efc-nullfs"
  fi
fi
# The efc daemon: $EFC_DAEMON, else the build's, else the newest of a non-sanitized build tree,
# else the installed one (mount.alinas's default).
is_plain_build() { ! grep -qsE '^EFC_(SANITIZE|FUZZ):BOOL=ON' "$1/CMakeCache.txt"; }
if [ -n "${EFC_DAEMON:-}" ]; then
  efc_daemon=$EFC_DAEMON
elif [ -x "$build/efc/aliyun-alinas-efc" ]; then
  efc_daemon="$build/efc/aliyun-alinas-efc"
else
  # shellcheck disable=SC2045 # build paths have no spaces; newest first
  for d in $(ls -t "$here"/build/*/efc/aliyun-alinas-efc 2>/dev/null); do
    if is_plain_build "$(dirname "$(dirname "$d")")"; then efc_daemon=$d; break; fi
  done
  [ -z "$efc_daemon" ] && [ -x /usr/local/bin/aliyun-alinas-efc ] && efc_daemon=/usr/local/bin/aliyun-alinas-efc
fi

# ---------------------------------------------------------------- data and origin
need=$((big + (n_small + n_dataset) * small + (256 << 20)))
shm_free=$(df -B1 --output=avail /dev/shm 2>/dev/null | tail -n1 | tr -d ' ')
if [ -n "$shm_free" ] && [ "$shm_free" -gt $((need * 2)) ]; then
  # on tmpfs, drop_caches cannot evict the origin's data: the origin is modelled by ossemu's
  # bandwidth cap and latency, not by this machine's disk
  data=$(mktemp -d /dev/shm/efc-bench-data.XXXXXX)
else
  data="$work/root"
  mkdir -p "$data"
fi
log "generating the data set in $data: big.bin $((big >> 20)) MiB, ttfb.bin $((ttfb >> 20)) MiB (sparse), small/ $n_small x $small B, many/ $n_many x 0 B, dataset/ $n_dataset x $small B"
python3 "$bench/benchlib.py" gen "$data" "$big" "$ttfb" "$n_small" "$small" "$n_many" "$n_dataset" >/dev/null ||
  die "cannot generate the data set"

printf 'testak:testsk\n' > "$work/passwd"
chmod 600 "$work/passwd"
emu_args=(--root "$data" --bucket testbucket --cred testak:testsk --latency-ms "$lat")
[ "$bw" != 0 ] && emu_args+=(--bw-per-conn "$bw")
. "$here/tests/ossemu/start.sh"
ossemu_start "$work" "${emu_args[@]}" || die "ossemu did not start"
ossemu_pid=$OSSEMU_PID port=$OSSEMU_PORT admin=$OSSEMU_ADMIN
PIDS+=("$ossemu_pid")
log "ossemu on port $port (admin $admin), pid $ossemu_pid"
# ossemu computes an object's CRC64 once, at its first GET or HEAD: do it now for the big
# objects, so that whichever system goes first does not pay for it
for key in big.bin ttfb.bin; do
  [ -e "$data/$key" ] || continue
  mapfile -t cargs < <(node "$here/tests/ossemu/tools/presign.js" --port "$port" --key "$key" --method HEAD)
  curl -sS -m 120 -o /dev/null "${cargs[@]}" || log "warning: HEAD $key failed"
done

# The origin's own rate for the small-file epochs: efc-ossget sends what an open sends (the first
# block's GET, then a revalidation answered 304) for every file, as many at once as the epochs'
# readers, with no FUSE and no cache: on a small machine the origin's CPU, not its latency, may be
# what bounds an epoch. The first pass over each data set computes ossemu's CRC64s (once an
# object), so that whichever system goes first does not pay for them; the rates are from a
# second pass over small/.
origin_get_rate="" origin_304_rate=""
if want epoch || want epoch-md || want dataset; then
  ossget_bin="$build/bench/efc-ossget"
  if [ -x "$ossget_bin" ]; then
    for sub in dataset small small; do
      n=$n_dataset
      [ "$sub" = small ] && n=$n_small
      [ "$n" -gt 0 ] || continue
      seq 0 $((n - 1)) | awk -v d="$sub" '{printf "%s/f%07u\n", d, $1}' > "$work/keys"
      out=$(timeout 600 "$ossget_bin" --endpoint "http://127.0.0.1:$port" --bucket testbucket \
        --passwd "$work/passwd" --parallel "$epoch_threads" --many "$work/keys" 2>>"$work/ossget.log") ||
        { log "warning: efc-ossget on $sub/ failed (see ossget.log)"; continue; }
      origin_get_rate=$(sed -n 's/.*"get_per_s":\([0-9]*\).*/\1/p' <<<"$out")
      origin_304_rate=$(sed -n 's/.*"revalidate_per_s":\([0-9]*\).*/\1/p' <<<"$out")
    done
    [ -n "$origin_get_rate" ] &&
      log "the origin alone, $epoch_threads at once: $origin_get_rate first-block GETs/s, $origin_304_rate revalidations/s"
  else
    log "no $ossget_bin: the origin's own rate is not measured"
  fi
fi

stats_reset() { curl -sS -m 10 -X POST "http://127.0.0.1:$admin/stats/reset" >/dev/null 2>&1; }
stats_total() { # "requests bytes GETs HEADs LISTs"
  curl -sS -m 30 "http://127.0.0.1:$admin/stats" 2>/dev/null | python3 "$bench/benchlib.py" origin-stats
}

drop_caches() { # 3: page cache, dentries and inodes (cold); 1: page cache only
  timeout 120 sh -c "echo $1 > /proc/sys/vm/drop_caches" || log "warning: drop_caches failed"
}

# ---------------------------------------------------------------- mounting
# Each mount_* sets MNT, DPID (the FUSE daemon's pid) and returns 0, or sets MOUNT_ERR.
MNT="" DPID="" MOUNT_ERR="" cycle=0
unavailable=() # "system:reason"

new_mountpoint() {
  cycle=$((cycle + 1))
  MNT="$work/mnt/$1-$cycle"
  CACHE="$work/cache/$1-$cycle"
  mkdir -p "$MNT" "$CACHE"
  MOUNTS+=("$MNT")
}

# Waits until MNT is a FUSE mount that answers, while pid $1 lives (0: no pid to watch).
wait_mounted() {
  local pid=$1 i
  for i in $(seq 1 300); do
    mounted "$MNT" && break
    if [ "$pid" != 0 ] && ! alive "$pid"; then MOUNT_ERR="the daemon exited before mounting"; return 1; fi
    sleep 0.1
  done
  mounted "$MNT" || { MOUNT_ERR="not mounted after 30 s"; return 1; }
  # only the root: anything below would warm the daemon's caches before a cold measurement
  timeout 30 stat "$MNT" >/dev/null 2>&1 || { MOUNT_ERR="mounted, but stat of the root fails"; return 1; }
}

# Every daemon runs in a session of its own (setsid; pids stay those of $!, since a background job
# of this script is no process group leader), as efc's does once it detaches: with the kernel's
# autogroup scheduling (sched_autogroup_enabled) a session is one scheduling group, so a daemon
# left in this script's session would share the workload's group and, on a busy machine, take
# twice the CPU share of one in its own (random 4 KiB O_DIRECT reads: null 75k IOPS in fio's
# session against 30k in its own, with 3 other benchmarks running).
NULLFS_SHAPE=()
mount_null() {
  NULLFS_SHAPE=()
  [ "$big" != 0 ] && NULLFS_SHAPE+=(--file "big.bin:$big")
  [ "$ttfb" != 0 ] && NULLFS_SHAPE+=(--file "ttfb.bin:$ttfb")
  [ "$n_small" != 0 ] && NULLFS_SHAPE+=(--dir "small:$n_small:$small")
  [ "$n_many" != 0 ] && NULLFS_SHAPE+=(--dir "many:$n_many:0")
  [ "$n_dataset" != 0 ] && NULLFS_SHAPE+=(--dir "dataset:$n_dataset:$small")
  setsid "$nullfs_bin" "${NULLFS_SHAPE[@]}" "$MNT" >>"$work/null.log" 2>&1 &
  DPID=$!
  PIDS+=("$DPID")
  wait_mounted "$DPID"
}

S3FS_OPTS=""
mount_s3fs() {
  # the best s3fs configuration for reads we know (see bench/README.md)
  S3FS_OPTS="url=http://127.0.0.1:$port,use_path_request_style,sigv4,endpoint=cn-hangzhou"
  S3FS_OPTS+=",passwd_file=$work/passwd,ro,retries=2,connect_timeout=5,readwrite_timeout=30,dbglevel=warn"
  S3FS_OPTS+=",use_cache=$CACHE,parallel_count=8,multipart_size=16,multireq_max=32"
  S3FS_OPTS+=",max_stat_cache_size=400000,stat_cache_expire=3600,enable_noobj_cache"
  S3FS_OPTS+=",kernel_cache,entry_timeout=3600,attr_timeout=3600"
  setsid s3fs testbucket "$MNT" -f -o "$S3FS_OPTS" >>"$work/s3fs.log" 2>&1 &
  DPID=$!
  PIDS+=("$DPID")
  wait_mounted "$DPID"
}

RCLONE_ARGS=()
mount_rclone() {
  cat > "$work/rclone.conf" <<EOF
[ossemu]
type = s3
provider = Other
endpoint = http://127.0.0.1:$port
region = cn-hangzhou
force_path_style = true
env_auth = false
EOF
  RCLONE_ARGS=(--read-only --vfs-cache-mode full --cache-dir "$CACHE" --vfs-cache-max-size 64G
    --vfs-cache-max-age 24h --vfs-read-chunk-size 32M --vfs-read-chunk-size-limit off
    --buffer-size 32M --vfs-read-ahead 128M --dir-cache-time 1h --attr-timeout 1h --poll-interval 0
    --use-server-modtime --vfs-fast-fingerprint --no-checksum --log-level NOTICE)
  RCLONE_CONFIG="$work/rclone.conf" RCLONE_CONFIG_OSSEMU_ACCESS_KEY_ID=testak \
    RCLONE_CONFIG_OSSEMU_SECRET_ACCESS_KEY=testsk \
    setsid rclone mount ossemu:testbucket "$MNT" "${RCLONE_ARGS[@]}" >>"$work/rclone.log" 2>&1 &
  DPID=$!
  PIDS+=("$DPID")
  wait_mounted "$DPID"
}

EFC_OPTS=""
EFC_ALL_OPTS=() # every distinct efc mount option string of the run (machine.txt)
# A cycle whose rows need another efc configuration sets these around its cycle call: the memory
# and disk tiers (MB) and more options (the peers' and null's mounts do not change).
efc_cycle_mem="" efc_cycle_disk="" efc_cycle_opts=""
mount_efc() {
  if [ ! -x /sbin/mount.alinas ]; then MOUNT_ERR="no /sbin/mount.alinas"; return 1; fi
  if [ -z "$efc_daemon" ]; then MOUNT_ERR="no aliyun-alinas-efc daemon built or installed"; return 1; fi
  EFC_OPTS="efc,protocol=oss,passwd_file=$work/passwd,g_oss_Endpoint=http://127.0.0.1:$port"
  EFC_OPTS+=",g_tier_EnableClusterCache=true,g_tier_DadiIsDistributed=false"
  EFC_OPTS+=",g_tier_DadiMemCacheCapacityMB=${efc_cycle_mem:-$efc_mem_mb}"
  EFC_OPTS+=",g_tier_DadiDiskCacheCapacityMB=${efc_cycle_disk:-$efc_disk_mb}"
  EFC_OPTS+=",g_tier_DadiDiskCachePath=$CACHE/"
  [ -n "$efc_cycle_opts" ] && EFC_OPTS+=",$efc_cycle_opts"
  [ -n "$efc_extra" ] && EFC_OPTS+=",$efc_extra"
  local seen=${EFC_OPTS//$CACHE/CACHEDIR} o
  for o in "${EFC_ALL_OPTS[@]}"; do [ "$o" = "$seen" ] && seen=""; done
  [ -n "$seen" ] && EFC_ALL_OPTS+=("$seen")
  local out rc
  out=$(EFC_DAEMON="$efc_daemon" timeout -k 10 150 mount -t alinas -o "$EFC_OPTS" \
        testbucket.oss-cn-hangzhou.aliyuncs.com:/ "$MNT" 2>&1)
  rc=$?
  # whatever happened, a daemon of this mount point is ours to stop
  DPID=$(pgrep -f "aliyun-alinas-efc .*$MNT\$" | head -n1)
  [ -n "$DPID" ] && PIDS+=("$DPID")
  if [ $rc -ne 0 ]; then
    MOUNT_ERR=$(printf '%s' "$out" | grep -v '^\s*$' | tail -n1)
    MOUNT_ERR="${MOUNT_ERR:-mount exited $rc}"
    return 1
  fi
  if [ -z "$DPID" ]; then MOUNT_ERR="mounted, but no aliyun-alinas-efc process found"; return 1; fi
  wait_mounted "$DPID"
}

mount_sys() { # system
  MOUNT_ERR="" DPID=""
  new_mountpoint "$1"
  "mount_$1" && return 0
  log "$1: mount failed: $MOUNT_ERR"
  return 1
}

unmount_sys() {
  if mounted "$MNT"; then
    fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null ||
      fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
  fi
  if [ "$sys" = efc ] && [ -n "$DPID" ]; then ext_ticks=$((ext_ticks + $(proc_ticks "$DPID"))); fi
  if [ -n "$DPID" ]; then
    wait_gone "$DPID" 150 || log "warning: daemon $DPID still running 15 s after unmount; stopping it"
    stop_pid "$DPID"
  fi
  rm -rf "$CACHE"
}

# The daemon's peak memory in KiB: VmHWM, plus the pages of its memfds that no mapping of it has
# touched (efc's memory tier is a memfd filled by pwrite: a page counts in RSS, as RssShmem, only
# once mapped). The tier's memfd never shrinks (its slots are reused), so its size before the
# unmount is its peak; what RssShmem already counts of it is not counted twice.
vmhwm_kib() {
  local st hwm shm memfd=0 f
  st=$(cat "/proc/$1/status" 2>/dev/null) || return 0
  hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' <<<"$st")
  shm=$(sed -n 's/^RssShmem:[[:space:]]*\([0-9]*\) kB/\1/p' <<<"$st")
  [ -n "$hwm" ] || return 0
  for f in /proc/"$1"/fd/*; do
    case "$(readlink "$f" 2>/dev/null)" in
      /memfd:*) memfd=$((memfd + $(stat -L -c '%b * %B' "$f" 2>/dev/null || echo 0) / 1024)) ;;
    esac
  done
  [ "$memfd" -gt "${shm:-0}" ] && hwm=$((hwm + memfd - ${shm:-0}))
  echo "$hwm"
}

# ---------------------------------------------------------------- workloads
# Each w_* prints one JSON line (benchlib's) on stdout; measure() records it.
w_ttfb() {
  local expect=()
  [ "$sys" != null ] && expect=(--expect "$data/ttfb.bin")
  timeout -k 10 "$wl_timeout" python3 "$bench/benchlib.py" ttfb "$MNT/ttfb.bin" "${expect[@]}"
}
w_fio() { # name expected-bytes (0: any) buffered|direct fio-args...
  local name=$1 want=$2 direct=0
  [ "$3" = direct ] && direct=1
  shift 3
  timeout -k 10 "$wl_timeout" fio --name="$name" --readonly --direct="$direct" --invalidate=0 \
    --allow_file_create=0 --output-format=json --output="$work/fio.json" "$@" >/dev/null 2>"$work/fio.err"
  local rc=$?
  if [ $rc -ne 0 ]; then cat "$work/fio.err" >&2; return $rc; fi
  if [ "$want" = 0 ]; then python3 "$bench/benchlib.py" fio "$work/fio.json"
  else python3 "$bench/benchlib.py" fio "$work/fio.json" --expect-bytes "$want"; fi
}
w_seq() {
  w_fio seq "$big" buffered --filename="$MNT/big.bin" --size="$big" --rw=read --bs=1M --ioengine=psync --numjobs=1
}
w_rand() {
  # buffered libaio would submit synchronously, so the depth of 32 comes from 32 psync threads
  w_fio rand 0 buffered --filename="$MNT/big.bin" --size="$big" --rw=randread --bs=4k --ioengine=psync \
    --numjobs=32 --thread --group_reporting --time_based --runtime="$rand_runtime" --norandommap --randrepeat=0
}
w_direct() {
  # O_DIRECT: every read reaches the daemon (its own IOPS, not the page cache's). Depth 32 from 32
  # psync threads by default (on this 2-CPU machine one libaio or io_uring thread submitting 32
  # gave null less than half as many IOPS: the submitting thread is the bottleneck)
  local eng=(--ioengine=psync --numjobs=32 --thread --group_reporting)
  [ "$direct_engine" != psync ] && eng=(--ioengine="$direct_engine" --iodepth=32 --numjobs=1)
  w_fio direct 0 direct --filename="$MNT/big.bin" --size="$big" --rw=randread --bs=4k "${eng[@]}" \
    --time_based --runtime="$rand_runtime" --norandommap --randrepeat=0
}
w_epoch() {
  timeout -k 10 "$wl_timeout" python3 "$bench/benchlib.py" epoch "$MNT/small" "$n_small" "$small" \
    --threads "$epoch_threads"
}
w_dataset() {
  timeout -k 10 "$wl_timeout" python3 "$bench/benchlib.py" epoch "$MNT/dataset" "$n_dataset" "$small" \
    --threads "$epoch_threads"
}
# Reads file $1 once through the mount, not measured (fills the daemon's cache); $2: its size.
w_fill() {
  local n
  n=$(timeout -k 10 "$wl_timeout" cat "$MNT/$1" | wc -c)
  [ "$n" = "$2" ] || { echo "filling the cache: read $n bytes of $1, expected $2" >&2; return 1; }
}
w_fill_big() { w_fill big.bin "$big"; }
w_ls() { timeout -k 10 "$wl_timeout" python3 "$bench/benchlib.py" ls "$MNT/many" "$n_many"; }

record() { python3 "$bench/benchlib.py" record "$raw" run="$run" system="$sys" "$@" | tee -a "$resdir/run.log"; }

measure() { # workload unit better field function
  local wl=$1 unit=$2 better=$3 field=$4 fn=$5 rc origin="" t0="" cpu=""
  [ "$sys" != null ] && stats_reset
  # the daemon's CPU time (all its threads, user + system) across the workload: CPU s per GB read
  alive "$DPID" && t0=$(proc_ticks "$DPID")
  # in the background, so that a signal is acted on at once (bash runs traps only between
  # foreground commands), not when the workload ends
  "$fn" > "$work/m.json" 2> "$work/m.err" &
  WPID=$!
  wait "$WPID"
  rc=$?
  WPID=""
  [ -n "$t0" ] && alive "$DPID" && cpu=$(($(proc_ticks "$DPID") - t0))
  [ "$sys" != null ] && origin=$(stats_total)
  record workload="$wl" unit="$unit" better="$better" field="$field" result="$work/m.json" \
    rc="$rc" stderr="$work/m.err" origin="$origin" cpu_ticks="$cpu"
}

# An unmeasured step of a cycle (w_fill), in the background like measure's workloads; on failure
# it records error $2 for the workloads after it ($3...) and returns 1.
step() { # function error-prefix workloads...
  local fn=$1 pre=$2 rc
  shift 2
  "$fn" 2> "$work/step.err" &
  WPID=$!
  wait "$WPID"
  rc=$?
  WPID=""
  [ $rc -eq 0 ] && return 0
  fail_all "$pre: $(tail -n1 "$work/step.err" 2>/dev/null) (exit $rc)" "$@"
  return 1
}

fail_all() { # error workload...
  local err=$1 wl
  shift
  for wl in "$@"; do
    local unit better
    case "$wl" in
      ttfb-cold) unit=ms better=lower ;;
      seq-*) unit=MB/s better=higher ;;
      rand-*) unit=IOPS better=higher ;;
      epoch-*|dataset-*) unit=files/s better=higher ;;
      ls-*) unit=entries/s better=higher ;;
      rss) unit=MiB better=lower ;;
    esac
    record workload="$wl" unit="$unit" better="$better" error="$err"
  done
}

is_unavailable() { local u; for u in "${unavailable[@]}"; do [ "${u%%:*}" = "$1" ] && return 0; done; return 1; }
why_unavailable() { local u; for u in "${unavailable[@]}"; do [ "${u%%:*}" = "$1" ] && { echo "${u#*:}"; return; }; done; }

hwm=0
note_rss() {
  local k
  k=$(vmhwm_kib "$DPID")
  [ -n "$k" ] && [ "$k" -gt "$hwm" ] && hwm=$k
}

# One mount cycle: mount, drop caches, the workloads, note RSS, unmount.
cycle() { # workloads-on-failure... -- body-function
  local wls=()
  while [ "$1" != -- ]; do wls+=("$1"); shift; done
  shift
  if is_unavailable "$sys"; then fail_all "$(why_unavailable "$sys")" "${wls[@]}"; return; fi
  if ! mount_sys "$sys"; then
    local why="mount failed: $MOUNT_ERR"
    if [ "$sys" = efc ]; then
      unavailable+=("efc:$why")
      log "efc: not available ($why)"
    fi
    fail_all "$why" "${wls[@]}"
    unmount_sys
    return
  fi
  drop_caches 3
  "$1"
  note_rss
  unmount_sys
}

body_ttfb() { measure ttfb-cold ms lower ms w_ttfb; }
body_seq() {
  measure seq-cold MB/s higher MBps w_seq
  measure seq-warm MB/s higher MBps w_seq
  drop_caches 1
  measure seq-warm-nopc MB/s higher MBps w_seq
  measure rand-warm IOPS higher iops w_rand
}
body_epoch() {
  measure epoch-cold files/s higher files_per_s w_epoch
  measure epoch-warm files/s higher files_per_s w_epoch
}
body_direct() {
  step w_fill_big "reading big.bin once to fill the cache failed" rand-direct || return
  drop_caches 1
  measure rand-direct IOPS higher iops w_direct
}
body_epoch_md() {
  measure epoch-md-cold files/s higher files_per_s w_epoch
  measure epoch-md-warm files/s higher files_per_s w_epoch
}
body_dataset() {
  measure dataset-cold files/s higher files_per_s w_dataset
  drop_caches 1 # epoch 2 from the daemon's cache, not the kernel's
  measure dataset-warm files/s higher files_per_s w_dataset
}
body_ls() {
  measure ls-cold entries/s higher entries_per_s w_ls
  measure ls-warm entries/s higher entries_per_s w_ls
}

# ---------------------------------------------------------------- the runs
selected_wls=()
want ttfb && selected_wls+=(ttfb-cold)
want seq && selected_wls+=(seq-cold seq-warm seq-warm-nopc rand-warm)
want direct && selected_wls+=(rand-direct)
want epoch && selected_wls+=(epoch-cold epoch-warm)
want epoch-md && selected_wls+=(epoch-md-cold epoch-md-warm)
want dataset && selected_wls+=(dataset-cold dataset-warm)
want ls && selected_wls+=(ls-cold ls-warm)
loads=()
read -r cpu_busy0 cpu_steal0 cpu_all0 < <(cpu_stat)
self0=$(self_ticks)
emu0=$(proc_ticks "$ossemu_pid")
for run in $(seq 1 "$runs"); do
  loads+=("$(cut -d' ' -f1 /proc/loadavg)")
  for sys in "${sys_list[@]}"; do
    is_unavailable "$sys" && { fail_all "$(why_unavailable "$sys")" "${selected_wls[@]}" rss; continue; }
    log "run $run/$runs: $sys"
    hwm=0
    want ttfb && cycle ttfb-cold -- body_ttfb
    want seq && cycle seq-cold seq-warm seq-warm-nopc rand-warm -- body_seq
    want direct && cycle rand-direct -- body_direct
    want epoch && cycle epoch-cold epoch-warm -- body_epoch
    if want epoch-md; then
      efc_cycle_opts=g_metadata_CacheEnable=true
      cycle epoch-md-cold epoch-md-warm -- body_epoch_md
      efc_cycle_opts=""
    fi
    if want dataset; then
      # more objects than the memory tier has 1 MiB slots, fewer bytes than it holds
      efc_cycle_opts=g_metadata_CacheEnable=true efc_cycle_mem=$dataset_mem_mb efc_cycle_disk=0
      cycle dataset-cold dataset-warm -- body_dataset
      efc_cycle_opts="" efc_cycle_mem="" efc_cycle_disk=""
    fi
    want ls && cycle ls-cold ls-warm -- body_ls
    if is_unavailable "$sys"; then
      fail_all "$(why_unavailable "$sys")" rss
    elif [ "$hwm" -gt 0 ]; then
      record workload=rss unit=MiB better=lower value="$(awk -v k="$hwm" 'BEGIN{printf "%.1f", k/1024}')"
    else
      record workload=rss unit=MiB better=lower error="no VmHWM read"
    fi
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
read -r cpu_busy1 cpu_steal1 cpu_all1 < <(cpu_stat)
ours=$(( $(self_ticks) - self0 + $(proc_ticks "$ossemu_pid") - emu0 + ext_ticks ))
cpu_other=$(awk -v b=$((cpu_busy1 - cpu_busy0)) -v o="$ours" -v a=$((cpu_all1 - cpu_all0)) \
  'BEGIN{v = a > 0 ? (b - o) * 100 / a : 0; if (v < 0) v = 0; printf "%.0f", v}')
cpu_steal=$(awk -v s=$((cpu_steal1 - cpu_steal0)) -v a=$((cpu_all1 - cpu_all0)) \
  'BEGIN{printf "%.1f", (a > 0 ? s * 100 / a : 0)}')
cpu_ours=$(awk -v o="$ours" -v a=$((cpu_all1 - cpu_all0)) 'BEGIN{printf "%.0f", (a > 0 ? o * 100 / a : 0)}')
log "CPU during the runs: this benchmark ${cpu_ours}%, other processes ${cpu_other}%, steal ${cpu_steal}% of $(nproc) CPUs"

# ---------------------------------------------------------------- machine and report
{
  echo "# machine"
  echo "date: $(date -Is)"
  echo "kernel: $(uname -srvm)"
  # shellcheck source=/dev/null
  echo "os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "nproc: $(nproc)"
  lscpu | grep -E '^(Architecture|CPU\(s\)|Model name|Thread|Core|Socket|CPU max MHz|CPU MHz|L1d|L2|L3|Hypervisor|Virtualization)' | sed 's/  */ /g'
  free -m | sed 's/^/mem: /'
  echo "load average before: $load_before; after: $load_after (includes this benchmark's own load); 1-min load at the start of each run: ${loads[*]}"
  echo "CPU time during the runs, share of all $(nproc) CPUs: this benchmark (and its daemons, ossemu) ${cpu_ours}%, other processes ${cpu_other}%, hypervisor steal ${cpu_steal}%"
  echo
  echo "# versions"
  echo "efc git: $(git -C "$here" rev-parse --short HEAD 2>/dev/null) ($(GIT_OPTIONAL_LOCKS=0 git -C "$here" status --porcelain 2>/dev/null | wc -l) paths modified or untracked)"
  echo "efc daemon: ${efc_daemon:-none} $( [ -n "$efc_daemon" ] && stat -c '(built %y)' "$efc_daemon" 2>/dev/null)"
  echo "mount.alinas: $(stat -c '/sbin/mount.alinas (installed %y)' /sbin/mount.alinas 2>/dev/null || echo none)"
  echo "nullfs: ${nullfs_bin:-none}"
  echo "s3fs: $(s3fs --version 2>/dev/null | head -n1)"
  echo "rclone: $(rclone version 2>/dev/null | head -n1)"
  echo "fio: $(fio --version 2>/dev/null)"
  echo "libfuse3: $(pkg-config --modversion fuse3 2>/dev/null); fusermount3: $(fusermount3 --version 2>&1 | head -n1)"
  echo "node: $(node --version)"
  echo "gnuplot: $(gnuplot --version)"
  echo
  echo "# configuration"
  echo "mode: $mode, runs: $runs, systems: ${sys_list[*]}, workload groups: $groups"
  echo "origin: ossemu, --bw-per-conn $bw, --latency-ms $lat, data on $data"
  echo "data: big.bin $big B, ttfb.bin $ttfb B (sparse), small/ $n_small x $small B, many/ $n_many x 0 B, dataset/ $n_dataset x $small B"
  echo "epoch reader threads: $epoch_threads; random reads: 32 psync threads x 4 KiB for $rand_runtime s; O_DIRECT random reads: engine $direct_engine, depth 32, for $rand_runtime s"
  echo "efc's tiers: ${efc_mem_mb} MB memory + ${efc_disk_mb} MB disk; dataset rows: ${dataset_mem_mb} MB memory, no disk"
  for o in "${EFC_ALL_OPTS[@]}"; do
    echo "efc: mount -t alinas -o $o testbucket.oss-cn-hangzhou.aliyuncs.com:/ MNT"
  done
  echo "s3fs: s3fs testbucket MNT -f -o ${S3FS_OPTS:-...}"
  echo "rclone: rclone mount ossemu:testbucket MNT ${RCLONE_ARGS[*]}"
  echo "null: efc-nullfs ${NULLFS_SHAPE[*]} MNT"
} > "$resdir/machine.txt"

for u in "${unavailable[@]}"; do printf '%s\n' "$u"; done > "$work/unavailable"
MODE=$mode RUNS=$runs SYSTEMS=$systems BW=$bw LAT=$lat TS=$ts LOAD_BEFORE=$load_before \
LOAD_AFTER=$load_after LOADS="${loads[*]}" CPU_OTHER=$cpu_other CPU_STEAL=$cpu_steal CPU_OURS=$cpu_ours BIG=$big TTFB=$ttfb NSMALL=$n_small SMALL=$small \
NMANY=$n_many NDATASET=$n_dataset DATASET_MEM_MB=$dataset_mem_mb DIRECT_ENGINE=$direct_engine \
GROUPS_RUN=$groups EFC_MEM_MB=$efc_mem_mb EFC_DISK_MB=$efc_disk_mb \
EPOCH_THREADS=$epoch_threads RAND_RT=$rand_runtime ORIGIN_GET=$origin_get_rate ORIGIN_304=$origin_304_rate \
python3 - "$work/unavailable" "$resdir/meta.json" <<'EOF'
import json, os, sys
e = os.environ
unav = {}
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if ":" in line:
        k, v = line.split(":", 1)
        unav.setdefault(k, v)
def num(k):
    try:
        return float(e.get(k, ""))
    except ValueError:
        return None
json.dump({"mode": e["MODE"], "runs": int(e["RUNS"]), "systems": e["SYSTEMS"].split(","),
           "bw_per_conn": int(e["BW"]), "latency_ms": int(e["LAT"]), "started": e["TS"],
           "nproc": os.cpu_count(), "load_before": e["LOAD_BEFORE"], "load_after": e["LOAD_AFTER"],
           "loads_per_run": e["LOADS"].split(),
           "cpu_other_pct": num("CPU_OTHER"), "cpu_steal_pct": num("CPU_STEAL"),
           "cpu_ours_pct": num("CPU_OURS"),
           "sizes": {"big_bytes": int(e["BIG"]), "ttfb_bytes": int(e["TTFB"]),
                     "small_count": int(e["NSMALL"]), "small_bytes": int(e["SMALL"]),
                     "many_count": int(e["NMANY"]), "dataset_count": int(e["NDATASET"])},
           "efc_mem_mb": int(e["EFC_MEM_MB"]), "efc_disk_mb": int(e["EFC_DISK_MB"]),
           "dataset_mem_mb": int(e["DATASET_MEM_MB"]), "direct_engine": e["DIRECT_ENGINE"],
           "workload_groups": e["GROUPS_RUN"].split(","),
           "epoch_threads": int(e["EPOCH_THREADS"]), "rand_runtime_s": int(e["RAND_RT"]),
           "origin_get_per_s": num("ORIGIN_GET"), "origin_revalidate_per_s": num("ORIGIN_304"),
           "unavailable": unav},
          open(sys.argv[2], "w"), indent=1)
EOF
python3 "$bench/benchlib.py" report "$resdir" > /dev/null || log "report failed"
if [ "$groups" = "$all_groups" ]; then
  cp "$resdir/results.md" "$outroot/latest.md" 2>/dev/null
else
  log "not every workload ran: $outroot/latest.md left as it was"
fi
echo
cat "$resdir/results.md"
echo
log "results: $resdir (results.md, results.json, plot.png, machine.txt); latest: $outroot/latest.md"
