#!/usr/bin/env bash
# tests/valgrind.sh - the integration tests once under valgrind's memcheck (issue 16, item 4).
# Not part of scripts/test.sh or CI: memcheck runs the daemon 20 to 50 times slower.
#
#   1. builds build/valgrind (-DEFC_VALGRIND=ON, RelWithDebInfo: util/vg.h says why)
#   2. runs each C integration test (tests/integration/it_*.c) under memcheck (EFC_TIME_SCALE
#      on their upper bounds of time too: it_scaled_ms)
#   3. runs the mount test files of EFC_VALGRIND_TESTS with the daemon that mount.alinas starts
#      under memcheck (EFC_DAEMON_WRAPPER, tests/integration/mount/efctest.py) and the harness's
#      deadlines times EFC_TIME_SCALE
#   4. reads every valgrind log and exits 1 if a test failed or a log has an error: an error
#      summary above zero, a definitely lost block, or (in the log of a process killed before it
#      could summarise: the survive tests kill daemons on purpose) an error's first line
#
# Only the daemon that mount.alinas starts runs under memcheck. The processes it starts itself
# (the supervisor, a runtime update's successor, a daemon the supervisor starts after a crash) run
# natively: valgrind would have to follow them (--trace-children), and then each one's command line
# would begin with valgrind's, which the supervisor's check of its pid (efc/supervise.c) and the
# harness's process lookups do not expect.
#
# Environment:
#   EFC_VALGRIND_TESTS   mount test files, by the name after test_mount_ (default below); an
#                        entry may name tests: "update:UpdateMount.test_names_and_handles_survive"
#   EFC_VALGRIND_SKIP_C  1: skip the C integration tests
#   EFC_VALGRIND_OUT     where logs go (default build/valgrind/valgrind-logs; emptied first)
#   EFC_TIME_SCALE       the harness's deadline factor (default 20)
#   EFC_VALGRIND_FILE_TIMEOUT  seconds one test file (or C test) may run (default 3600)
#
# Left out of the default list: soak (minutes of load by design, and it asserts RSS stays flat,
# which memcheck's own allocations do not); service (aliyun-alinas-efc-service finds daemons by
# their argv[0], which under valgrind is valgrind's: it reports no mount, and its three tests
# fail waiting for the lines); cluster (fixed loopback addresses shared by every tree on the
# machine, and five daemons under memcheck at once on two cores).
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build/valgrind
out=${EFC_VALGRIND_OUT:-$build/valgrind-logs}
tests=${EFC_VALGRIND_TESTS:-basic cache dircache names errors mgmt update survive cache_trouble origin_faults trybind roundtrip}
scale=${EFC_TIME_SCALE:-20}
file_timeout=${EFC_VALGRIND_FILE_TIMEOUT:-3600}
t0=$(date +%s)

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }

echo "==== build $build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEFC_WERROR=ON -DEFC_VALGRIND=ON \
  -DCMAKE_INSTALL_PREFIX=/usr >/dev/null || exit 2
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null || { echo "valgrind.sh: build failed" >&2; exit 2; }

rm -rf "$out"
mkdir -p "$out"
# Errors in the program under test only: definitely lost blocks count, memory still reachable at
# exit does not (threads and caches torn down by exit). The suppressions are third-party noise.
vg=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --track-fds=no --num-callers=30
    --suppressions="$src/tests/valgrind.supp" --gen-suppressions=all)
failed=()

# Left out of the C tests (tests/select_tests.h's '!'): what measures speed. Memcheck runs one
# thread at a time, so readahead's GETs in parallel cannot beat one connection twice over
# (test_sequential_bandwidth_cap), and a client this slow never reaches the 16 MiB/s origin cap
# that test_origin_rate_cap wants to see holding it back.
declare -A c_args=([it_read]="!test_sequential_bandwidth_cap !test_origin_rate_cap")

if [ "${EFC_VALGRIND_SKIP_C:-0}" != 1 ]; then
  for exe in "$build"/tests/integration/it_*; do
    [ -x "$exe" ] || continue
    name=$(basename "$exe")
    args=()
    IFS=' ' read -r -a args <<<"${c_args[$name]:-}"
    echo "==== $name ($(date +%T))"
    # As ctest runs it (tests/integration/CMakeLists.txt): from its build directory.
    (cd "$(dirname "$exe")" && EFC_TIME_SCALE=$scale timeout -k 30 "$file_timeout" "${vg[@]}" \
        --log-file="$out/c_$name.%p.log" "$exe" "${args[@]}") >"$out/c_$name.out" 2>&1
    rc=$?
    [ $rc -eq 0 ] || failed+=("$name (exit $rc, $out/c_$name.out)")
  done
fi

for entry in $tests; do
  file=${entry%%:*}
  names=()
  [ "$file" = "$entry" ] || IFS=' ' read -r -a names <<<"${entry#*:}"
  py=$src/tests/integration/mount/test_mount_$file.py
  [ -f "$py" ] || { failed+=("$file (no $py)"); continue; }
  echo "==== mount $file ${names[*]:-} ($(date +%T))"
  EFC_BUILD_DIR=$build EFC_SOURCE_DIR=$src EFC_OSSEMU_DIR=$src/tests/ossemu EFC_TIME_SCALE=$scale \
    EFC_DAEMON_WRAPPER="${vg[*]} --log-file=$out/mount_$file.%p.log" \
    timeout -k 60 "$file_timeout" python3 "$py" "${names[@]}" >"$out/mount_$file.out" 2>&1
  rc=$?
  tail -n 3 "$out/mount_$file.out"
  [ $rc -eq 0 ] || failed+=("mount $file (exit $rc, $out/mount_$file.out)")
done

# What memcheck found. A log whose process was killed has no summary: its errors are counted by
# their first lines (memcheck's error kinds).
errors=()
nlogs=0
kinds='(Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|Argument .* of function .* has a fishy|[0-9,]+ bytes in [0-9,]+ blocks are definitely lost)'
for f in "$out"/*.log; do
  [ -e "$f" ] || continue
  nlogs=$((nlogs + 1))
  if grep -qE "ERROR SUMMARY: [1-9]|definitely lost: [1-9]" "$f" ||
    { ! grep -q "ERROR SUMMARY:" "$f" && grep -qE "^==[0-9]+== $kinds" "$f"; }; then
    errors+=("$f")
  fi
done

echo
echo "==== valgrind.sh: $nlogs valgrind logs in $out, $(( $(date +%s) - t0 )) s"
for f in "${errors[@]}"; do
  echo "memcheck error: $f"
  grep -m 5 -E "ERROR SUMMARY|definitely lost:|^==[0-9]+== $kinds" "$f" | sed 's/^/    /'
done
for f in "${failed[@]}"; do echo "test failed: $f"; done
[ $nlogs -gt 0 ] || { echo "valgrind.sh: no valgrind log at all: the wrapper did not run" >&2; exit 1; }
[ ${#errors[@]} -eq 0 ] && [ ${#failed[@]} -eq 0 ] || exit 1
echo "valgrind.sh: no memcheck errors"
