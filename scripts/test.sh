#!/usr/bin/env bash
# The whole test suite: what README's second command and .ci/run run.
#   1. setup (idempotent): Debian packages and the test server's npm packages
#   2. a -Werror build and every ctest (unit, fuzz-corpus replays, integration against ossemu)
#   3. the unit and integration tests again under ASan+UBSan
#   4. each libFuzzer target for a bounded time (clang)
#   5. ossemu's own tests (node --test) and the s3fs smoke test
# Set EFC_FUZZ_SECONDS to change step 4's time per target (default 15).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${EFC_FUZZ_SECONDS:-15}
failed=()

step() { printf '\n==== %s ====\n' "$*"; }

step "setup"
bash scripts/setup.sh

step "build (-Werror)"
cmake -S . -B build/ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEFC_WERROR=ON >/dev/null
cmake --build build/ci -j"$jobs"

step "tests"
(cd build/ci && ctest --output-on-failure --timeout 600) || failed+=("ctest")

step "ASan+UBSan build and tests"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DEFC_WERROR=ON -DEFC_SANITIZE=ON >/dev/null
cmake --build build/asan -j"$jobs"
(cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure --timeout 900 -L 'unit|integration') || failed+=("asan")

step "fuzz targets (${fuzz_seconds}s each)"
CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DEFC_FUZZ=ON \
  -DEFC_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
cmake --build build/fuzz -j"$jobs"
(cd build/fuzz && ctest --output-on-failure -L fuzz) || failed+=("fuzz")

step "ossemu tests"
node --test tests/ossemu/test/ || failed+=("ossemu")

step "s3fs reads a bucket ossemu serves over SigV4"
bash tests/ossemu/s3fs-smoke.sh || failed+=("s3fs-smoke")

if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo
echo "all test stages passed"
