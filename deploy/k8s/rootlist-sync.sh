#!/usr/bin/env bash
# rootlist-sync.sh - writes the efc rootlist from the efc-node DaemonSet's pods into the
# efc-rootlist ConfigMap, so that the cluster is the node pool: a node added gets a pod, the pod
# gets a line; a node drained loses both. Every daemon re-reads the ConfigMap's file every 5 s
# once the kubelet has refreshed it (within about a minute).
#
#   rootlist-sync.sh            once (a CronJob)
#   rootlist-sync.sh --loop N   every N seconds (the efc-rootlist-sync Deployment)
#   rootlist-sync.sh --print    print the rootlist it would write, change nothing
#
# A pod counts when it is Running, not being deleted, and has a node and a host IP; one line per
# node, `<node name>:<host IP>:<port>`, sorted by node name: the id is the node's name, so a node's
# line (and the blocks it owns) does not change when others come and go. When no pod counts, the
# ConfigMap is left as it is (a daemon keeps its membership when the rootlist empties anyway). The
# ConfigMap is patched only when its text changes.
#
# Environment: EFC_NAMESPACE (the pod's own namespace, else efc-system), EFC_SELECTOR
# (app.kubernetes.io/name=efc-node), EFC_CONFIGMAP (efc-rootlist), EFC_P2P_PORT (17980).
set -euo pipefail

sa_ns=/var/run/secrets/kubernetes.io/serviceaccount/namespace
ns=${EFC_NAMESPACE:-}
[ -z "$ns" ] && [ -r "$sa_ns" ] && ns=$(cat "$sa_ns")
ns=${ns:-efc-system}
selector=${EFC_SELECTOR:-app.kubernetes.io/name=efc-node}
cm=${EFC_CONFIGMAP:-efc-rootlist}
port=${EFC_P2P_PORT:-17980}

log() { printf 'rootlist-sync: %s\n' "$*" >&2; }

# The rootlist's text from the pods, on stdout; nothing when no pod counts.
render() {
  local pods
  pods=$(kubectl get pods -n "$ns" -l "$selector" -o \
    'jsonpath={range .items[*]}{.spec.nodeName}{"\t"}{.status.hostIP}{"\t"}{.status.phase}{"\t"}{.metadata.deletionTimestamp}{"\n"}{end}') ||
    { log "cannot list the pods ($selector in $ns)"; return 1; }
  local lines
  lines=$(printf '%s\n' "$pods" | awk -F'\t' -v port="$port" '
    $1 != "" && $2 != "" && $3 == "Running" && $4 == "" {
      id = $1
      if (length(id) > 64 || id !~ /^[A-Za-z0-9._-]+$/) {
        print "rootlist-sync: node name \"" $1 "\" is not a rootlist id (64 letters, digits, . _ -): skipped" > "/dev/stderr"
        next
      }
      addr = ($2 ~ /:/) ? "[" $2 "]" : $2
      if (!(id in seen)) { seen[id] = 1; print id ":" addr ":" port }
    }' | LC_ALL=C sort)
  [ -n "$lines" ] || return 0
  printf '# efc rootlist: written by rootlist-sync.sh from the pods %s in %s; do not edit\n' \
    "$selector" "$ns"
  printf '%s\n' "$lines"
}

sync_once() {
  local text current n
  text=$(render) || return 1
  if [ -z "$text" ]; then
    log "no running pod matches $selector in $ns: $cm left as it is"
    return 0
  fi
  current=$(kubectl get configmap "$cm" -n "$ns" -o 'jsonpath={.data.rootlist}') ||
    { log "cannot read configmap $cm in $ns"; return 1; }
  if [ "$current" = "$text" ]; then
    return 0
  fi
  # The text holds only letters, digits, '.', ':', '_', '-', '#', '[', ']', ',', '/', '=' and
  # spaces: JSON needs only its newlines escaped.
  local json
  json=$(printf '%s\n' "$text" | awk '{ printf "%s\\n", $0 }')
  kubectl patch configmap "$cm" -n "$ns" --type merge \
    -p "{\"data\":{\"rootlist\":\"$json\"}}" >/dev/null ||
    { log "cannot patch configmap $cm in $ns"; return 1; }
  n=$(printf '%s\n' "$text" | grep -vc '^#')
  log "$cm: $n nodes"
}

case "${1:-}" in
  --print)
    render
    ;;
  --loop)
    every=${2:?usage: rootlist-sync.sh --loop SECONDS}
    trap 'exit 0' TERM INT
    while :; do
      sync_once || true
      sleep "$every" &
      wait $!
    done
    ;;
  "")
    sync_once
    ;;
  *)
    echo "usage: rootlist-sync.sh [--print | --loop SECONDS]" >&2
    exit 2
    ;;
esac
