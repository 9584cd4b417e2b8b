#!/usr/bin/env bash
# s3fs-smoke.sh - mount a bucket served by ossemu with Debian's s3fs (S3 API, SigV4, path style)
# and compare every byte with the directory it serves.
#
# Creates a temporary tree (small files, an empty file, a 5 MiB file, awkward names, nested
# directories), starts ossemu on it, mounts it read-only with s3fs in the foreground (in the
# background of this script, so its pid is known), runs `diff -r`, and prints one PASS/FAIL line.
# Cleanup runs from an EXIT trap whatever happens: lazy unmount, then only the processes this
# script started (by pid), then the temporary directory. Every wait is bounded.
#
# Usage: tests/ossemu/s3fs-smoke.sh      (needs node, s3fs, fusermount3 and /dev/fuse; root is fine)
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
unset AWS_CA_BUNDLE # s3fs/libcurl would try to load it; we talk plain HTTP to 127.0.0.1

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ossemu-s3fs-XXXXXX")"
SRC="$WORK/src"
MNT="$WORK/mnt"
PASSWD="$WORK/passwd"
OSSEMU_PID=""
S3FS_PID=""
RESULT="FAIL"
REASON="did not finish"

mounted() { grep -qs " $MNT fuse" /proc/mounts; }

cleanup() {
    local rc=$?
    if mounted; then fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null; fi
    if [ -n "$S3FS_PID" ] && kill -0 "$S3FS_PID" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$S3FS_PID" 2>/dev/null || break; sleep 0.1; done
        kill "$S3FS_PID" 2>/dev/null
    fi
    if [ -n "$OSSEMU_PID" ] && kill -0 "$OSSEMU_PID" 2>/dev/null; then
        kill "$OSSEMU_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$OSSEMU_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$OSSEMU_PID" 2>/dev/null
    fi
    if [ "$RESULT" != PASS ]; then
        echo "--- ossemu log (tail) ---" >&2; tail -n 30 "$WORK/ossemu.log" >&2 2>/dev/null
        echo "--- s3fs log (tail) ---" >&2; tail -n 30 "$WORK/s3fs.log" >&2 2>/dev/null
    fi
    rm -rf "$WORK"
    echo "s3fs-smoke: $RESULT${REASON:+ ($REASON)}"
    [ "$RESULT" = PASS ] && exit 0
    [ "$rc" -ne 0 ] && exit "$rc"
    exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { REASON="$1"; exit 1; }

for tool in node s3fs fusermount3 diff; do
    command -v "$tool" >/dev/null || fail "$tool not found"
done
[ -e /dev/fuse ] || fail "/dev/fuse missing"

# ---- the data ----
mkdir -p "$SRC/nested/deeper/deepest" "$SRC/other" "$MNT"
printf 'hello, world\n' > "$SRC/hello.txt"
: > "$SRC/empty"
head -c $((5 * 1024 * 1024)) /dev/urandom > "$SRC/five-mib.bin"
head -c 123457 /dev/urandom > "$SRC/nested/odd-size.bin"
printf 'deep\n' > "$SRC/nested/deeper/deepest/file"
printf 'space\n' > "$SRC/other/with space.txt"
printf 'plus\n' > "$SRC/other/a+b=c.txt"
printf 'percent\n' > "$SRC/other/100%.txt"
printf 'tilde\n' > "$SRC/other/~tilde"
printf 'unicode\n' > "$SRC/other/中文.txt"
for i in $(seq 1 30); do printf 'file %d\n' "$i" > "$SRC/nested/n$i"; done

# ---- ossemu ----
node "$HERE/server.js" --root "$SRC" --cred smokeak:smokesk >"$WORK/ready" 2>"$WORK/ossemu.log" &
OSSEMU_PID=$!
PORT=""
for _ in $(seq 100); do
    if [ -s "$WORK/ready" ]; then
        PORT="$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$WORK/ready" | head -n1)"
        break
    fi
    kill -0 "$OSSEMU_PID" 2>/dev/null || fail "ossemu exited"
    sleep 0.1
done
[ -n "$PORT" ] || fail "ossemu did not print its ready line"

# ---- s3fs ----
printf 'smokeak:smokesk\n' > "$PASSWD"
chmod 600 "$PASSWD"
S3FS_OPTS="url=http://127.0.0.1:$PORT,use_path_request_style,sigv4,endpoint=cn-hangzhou"
S3FS_OPTS="$S3FS_OPTS,passwd_file=$PASSWD,ro,retries=2,connect_timeout=5,readwrite_timeout=30,dbglevel=warn"
s3fs testbucket "$MNT" -f -o "$S3FS_OPTS" >"$WORK/s3fs.log" 2>&1 &
S3FS_PID=$!
for _ in $(seq 100); do
    mounted && break
    kill -0 "$S3FS_PID" 2>/dev/null || fail "s3fs exited before mounting"
    sleep 0.1
done
mounted || fail "s3fs did not mount within 10 s"

# ---- compare ----
if ! timeout 120 diff -r "$SRC" "$MNT" >"$WORK/diff.out" 2>&1; then
    head -n 20 "$WORK/diff.out" >&2
    fail "diff -r found differences"
fi
# A ranged read in the middle of the big file, through the page cache-free path.
want="$(dd if="$SRC/five-mib.bin" bs=4096 skip=777 count=3 2>/dev/null | od -An -tx1 | tr -d ' \n')"
got="$(timeout 30 dd if="$MNT/five-mib.bin" bs=4096 skip=777 count=3 2>/dev/null | od -An -tx1 | tr -d ' \n')"
[ -n "$want" ] && [ "$want" = "$got" ] || fail "ranged read differs"

RESULT=PASS
REASON=""
