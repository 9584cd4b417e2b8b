#!/usr/bin/env bash
# efc-node.sh - the DaemonSet's container: mount one bucket on this node, keep the container alive
# while the mount lives, unmount on SIGTERM (and in the preStop hook: efc-node.sh --unmount).
#
# Everything comes from the environment (the efc-mount ConfigMap, the downward API, the Secrets):
#   EFC_SOURCE         bucket endpoint and path, e.g. your-bucket.oss-cn-hangzhou.aliyuncs.com:/
#   EFC_MOUNTPOINT     where to mount, under the hostPath propagated to the node (/mnt/efc/oss_data)
#   EFC_PROTOCOL       oss or s3 (oss)
#   EFC_STS_FILE       g_oss_STSFile (a Secret); or EFC_PASSWD_FILE for passwd_file
#   EFC_CACHE_DIR      g_tier_DadiDiskCachePath (a hostPath: the cache survives the pod)
#   EFC_MEM_MB, EFC_DISK_MB   g_tier_DadiMemCacheCapacityMB, g_tier_DadiDiskCacheCapacityMB
#   EFC_ROOTLIST       g_tier_DadiAddr (the efc-rootlist ConfigMap, mounted as a directory)
#   EFC_P2P_KEY        g_tier_DadiP2PKeyFile (a Secret key mounted with subPath: a regular file)
#   EFC_MGMT_PORT      g_server_Port (17871), served on HOST_IP for the probes and Prometheus
#   HOST_IP            this node's address (status.hostIP): g_tier_DadiP2PIP, g_server_BindAddr
#   EFC_EXTRA_OPTS     more -o options, comma-separated (g_tier_DadiRootClientType=2, ...)
#   EFC_POLL_SEC       how often the mount is checked (5)
# EFC_DRY_RUN=1 prints the mount command instead of running it (the CI check uses it).
set -euo pipefail

log() { printf 'efc-node: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

mnt=${EFC_MOUNTPOINT:-/mnt/efc/oss_data}
# Left by the preStop hook, so that the mount it removed ends the container cleanly (exit 0).
stop_mark=${EFC_STOP_MARK:-/tmp/efc-node.stopping}

# Unmounts MNT if it is mounted (also a dead FUSE mount left by a killed container: umount -l).
unmount() {
  if mountpoint -q "$mnt" 2>/dev/null || ! stat "$mnt" >/dev/null 2>&1; then
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  fi
}

if [ "${1:-}" = "--unmount" ]; then
  touch "$stop_mark"
  unmount
  exit 0
fi

: "${EFC_SOURCE:?set EFC_SOURCE (bucket endpoint:/path) in the efc-mount ConfigMap}"
: "${HOST_IP:?set HOST_IP from the downward API (status.hostIP)}"

opts="efc,protocol=${EFC_PROTOCOL:-oss}"
if [ -n "${EFC_STS_FILE:-}" ]; then
  opts+=",g_oss_STSFile=${EFC_STS_FILE}"
elif [ -n "${EFC_PASSWD_FILE:-}" ]; then
  opts+=",passwd_file=${EFC_PASSWD_FILE}"
else
  die "set EFC_STS_FILE or EFC_PASSWD_FILE (a Secret mounted into the pod)"
fi
opts+=",g_tier_EnableClusterCache=true,g_tier_DadiIsDistributed=true"
opts+=",g_tier_DadiAddr=${EFC_ROOTLIST:-/etc/efc/cluster/rootlist}"
opts+=",g_tier_DadiP2PIP=${HOST_IP}"
opts+=",g_tier_DadiMemCacheCapacityMB=${EFC_MEM_MB:-1024}"
opts+=",g_tier_DadiDiskCacheCapacityMB=${EFC_DISK_MB:-10240}"
opts+=",g_tier_DadiDiskCachePath=${EFC_CACHE_DIR:-/mnt/efc-cache/}"
[ -n "${EFC_P2P_KEY:-}" ] && opts+=",g_tier_DadiP2PKeyFile=${EFC_P2P_KEY}"
opts+=",g_server_Port=${EFC_MGMT_PORT:-17871},g_server_BindAddr=${HOST_IP}"
[ -n "${EFC_EXTRA_OPTS:-}" ] && opts+=",${EFC_EXTRA_OPTS}"

cmd=(mount -t alinas -o "$opts" "$EFC_SOURCE" "$mnt")
if [ "${EFC_DRY_RUN:-0}" = 1 ]; then
  printf '%s\n' "${cmd[*]}"
  exit 0
fi

mkdir -p "$mnt" "${EFC_CACHE_DIR:-/mnt/efc-cache/}"
rm -f "$stop_mark"
unmount # a mount the previous container left (its daemon died with it)
log "mounting $EFC_SOURCE on $mnt"
"${cmd[@]}"

stopping=0
trap 'stopping=1' TERM INT
# The daemon detached (its supervisor restarts it if it dies); this process stays while the mount
# does, so that a mount that is gone restarts the container and one that is there keeps it.
while [ "$stopping" = 0 ]; do
  if ! mountpoint -q "$mnt"; then
    [ -e "$stop_mark" ] && { log "unmounted by the preStop hook"; exit 0; }
    die "$mnt is no longer mounted"
  fi
  sleep "${EFC_POLL_SEC:-5}" &
  wait $! || true
done
log "stopping: unmounting $mnt"
unmount
