# tests/ossemu/start.sh - sourced by the shell scripts that need an ossemu (scripts/demo.sh,
# bench/*.sh). One way to start it and wait for it:
#
#   ossemu_start WORKDIR [server.js options...]
#
# Starts `node server.js OPTIONS` in the background, logging to WORKDIR/ossemu.log, and waits at
# most 20 s for its ready line. On success it sets OSSEMU_PID, OSSEMU_PORT and OSSEMU_ADMIN and
# returns 0; the caller stops the server (kill "$OSSEMU_PID"). On failure it stops the server it
# started, prints the log's tail on stderr and returns 1.
ossemu_start() {
  local work=$1 dir
  shift
  dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  OSSEMU_PORT="" OSSEMU_ADMIN=""
  node "$dir/server.js" "$@" > "$work/ossemu.ready" 2> "$work/ossemu.log" &
  OSSEMU_PID=$!
  for _ in $(seq 1 200); do
    if grep -q '"ready":true' "$work/ossemu.ready" 2>/dev/null; then
      OSSEMU_PORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$work/ossemu.ready")
      OSSEMU_ADMIN=$(sed -n 's/.*"admin_port":\([0-9]*\).*/\1/p' "$work/ossemu.ready")
      return 0
    fi
    kill -0 "$OSSEMU_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill "$OSSEMU_PID" 2>/dev/null && wait "$OSSEMU_PID" 2>/dev/null
  echo "ossemu did not start; the end of its log:" >&2
  tail -n 20 "$work/ossemu.log" >&2
  return 1
}
