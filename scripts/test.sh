#!/usr/bin/env bash
# The whole test suite: what README's second command and .ci/run run.
#   1. setup (idempotent): Debian packages and the test server's npm packages
#   2. a -Werror build and every ctest (unit, fuzz-corpus replays, integration against ossemu,
#      the Debian package built from that build, installed, used and removed: tests/package)
#   3. the unit, integration and mount tests again under ASan+UBSan; under TSan the tests that
#      start threads in the daemon's code (ctest label tsan) and a few mounts of a TSan daemon
#   4. each libFuzzer target for a bounded time (clang), as many at once as there are cores
#   5. ossemu's own tests (node --test) and the s3fs smoke test
# Set EFC_FUZZ_SECONDS to change step 4's time per target (default 6).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${EFC_FUZZ_SECONDS:-6}
failed=()

step() { printf '\n==== %s ====\n' "$*"; }
log=$(mktemp /tmp/efc-test.XXXXXX)
# Runs a stage, echoing its output and keeping it for the summary's counts.
run() { "$@" 2>&1 | tee -a "$log"; return "${PIPESTATUS[0]}"; }

# The sanitizer and fuzzing builds compile in the background, at the lowest priority, while the
# tests of the build before them run (those wait on their servers, the origin's pacing and the
# kernel more than they compute, and keep the CPU first): bg_start NAME CMD... starts one, bg_wait
# NAME prints its output and stops the suite if it failed, as a build in the foreground would.
bgdir=$(mktemp -d /tmp/efc-test-bg.XXXXXX)
declare -A bg_pids
kill_tree() {
  local c
  for c in $(pgrep -P "$1" || true); do kill_tree "$c"; done
  kill "$1" 2>/dev/null || true
}
bg_stop() { # on exit: nothing of ours goes on compiling
  local p
  for p in "${bg_pids[@]}"; do kill_tree "$p"; done
}
trap 'bg_stop; rm -f "$log"; rm -rf "$bgdir"' EXIT
bg_start() {
  local name=$1
  shift
  (
    renice -n 19 -p "$BASHPID" >/dev/null # this subshell and what it starts
    "$@"
  ) >"$bgdir/$name.log" 2>&1 &
  bg_pids[$name]=$!
}
bg_wait() {
  local name=$1 rc=0
  wait "${bg_pids[$name]}" || rc=$?
  unset "bg_pids[$name]"
  cat "$bgdir/$name.log"
  if [ "$rc" -ne 0 ]; then
    echo "the $name build failed (exit $rc)"
    exit "$rc"
  fi
}
build_asan() {
  cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DEFC_WERROR=ON -DEFC_SANITIZE=ON >/dev/null
  cmake --build build/asan -j"$jobs"
}
# TSan: the tests that start threads in the daemon's code, and the daemon itself; then the
# libFuzzer targets (clang).
build_tsan_fuzz() {
  cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DEFC_WERROR=ON -DEFC_TSAN=ON >/dev/null
  cmake --build build/tsan -j"$jobs" --target unit_cache_test_cache unit_cache_test_fill \
    unit_cache_test_stress unit_cache_test_source unit_p2p_test_p2p unit_efc_test_meta \
    unit_efc_test_ns unit_efc_test_journal unit_mgmt_test_server unit_mgmt_test_warmup \
    unit_oss_test_cred unit_util_test_histo it_read it_oss aliyun-alinas-efc mount.alinas
  CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DEFC_FUZZ=ON \
    -DEFC_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
  cmake --build build/fuzz -j"$jobs"
}

step "setup"
bash scripts/setup.sh

step "build (-Werror)"
# The /usr prefix: the package is made from this build (tests/package, in the first ctest below).
cmake -S . -B build/ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEFC_WERROR=ON \
  -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build build/ci -j"$jobs"

step "tests (the ASan build compiles meanwhile)"
bg_start asan build_asan
# Everything but the mounts two at a time (each starts its own servers on ports of its own; the
# package's test replaces /sbin/mount.alinas for a while, so it runs here, before any mount test);
# the mount tests one by one (they drop the page cache and measure what reaches the origin).
run bash -c "cd build/ci && ctest --output-on-failure --timeout 600 -LE mount -j$jobs" ||
  failed+=("ctest")
run bash -c "cd build/ci && ctest --output-on-failure --timeout 600 -L mount" ||
  failed+=("ctest-mount")

step "ASan+UBSan build and tests (the TSan and fuzzing builds compile meanwhile)"
bg_wait asan
bg_start tsan-fuzz build_tsan_fuzz
run bash -c "cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure --timeout 900 \
  -L 'unit|integration' -j$jobs" || failed+=("asan")
# The mount harness points the sanitizers' log_path at a directory it reads after each test
# (a detached daemon has no stderr), so it must not inherit ASAN_OPTIONS from here.
run bash -c 'cd build/asan && ctest --output-on-failure --timeout 900 -L mount' || failed+=("asan-mount")

step "TSan: the tests that start threads in the daemon's code, and the daemon itself"
bg_wait tsan-fuzz
# The label tsan (tests/CMakeLists.txt): the cache's and the P2P cluster's unit tests, the other
# threaded unit tests, the read path's and the OSS client's threaded integration tests, and a few
# mount tests with the daemon under TSan (the harness collects its reports). Two at a time: the
# cache's biggest test takes as long as the others together.
run bash -c "cd build/tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure \
  --timeout 900 -j$jobs -L tsan" || failed+=("tsan")

step "fuzz targets (${fuzz_seconds}s each), beside ossemu's tests and the s3fs smoke test"
# A fuzz target runs for a set time, not a set amount of work: the other two share that time.
(
  rc=0
  node --test tests/ossemu/test/ >"$bgdir/ossemu.log" 2>&1 || rc=$?
  echo "$rc" >"$bgdir/ossemu.rc"
  rc=0
  bash tests/ossemu/s3fs-smoke.sh >"$bgdir/s3fs.log" 2>&1 || rc=$?
  echo "$rc" >"$bgdir/s3fs.rc"
) &
beside=$!
bg_pids[beside]=$beside
run bash -c "cd build/fuzz && ctest --output-on-failure -j$jobs -L fuzz" || failed+=("fuzz")
wait "$beside" || true
unset "bg_pids[beside]"

step "ossemu tests"
run cat "$bgdir/ossemu.log"
[ "$(cat "$bgdir/ossemu.rc" 2>/dev/null)" = 0 ] || failed+=("ossemu")

step "s3fs reads a bucket ossemu serves over SigV4"
run cat "$bgdir/s3fs.log"
[ "$(cat "$bgdir/s3fs.rc" 2>/dev/null)" = 0 ] || failed+=("s3fs-smoke")

# One line for the whole suite: ctest's "N tests failed out of M", node's "# pass"/"# fail",
# and the smoke test's PASS/FAIL.
read -r npass nfail < <(awk '
  / tests passed, [0-9]+ tests failed out of / { pass += $NF - $4; fail += $4 }
  /^# pass [0-9]+$/ { pass += $3 }
  /^# fail [0-9]+$/ { fail += $3 }
  /^s3fs-smoke: PASS/ { pass++ }
  /^s3fs-smoke: FAIL/ { fail++ }
  END { print pass + 0, fail + 0 }' "$log")
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed stages: ${failed[*]}"
  echo "tests: ${npass} passed, ${nfail} failed"
  exit 1
fi
echo "tests: ${npass} passed, ${nfail} failed"
