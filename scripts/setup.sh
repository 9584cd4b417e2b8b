#!/usr/bin/env bash
# Installs everything efc's build, tests and benchmarks need on Debian 12, then the test
# server's npm packages from the committed package-lock.json. Idempotent: safe to run again.
# The Debian package (packaging/deb.cmake) needs dpkg-dev (dpkg-shlibdeps) and help2man (its man
# pages); its test, lintian and systemd (systemd-analyze verify of the unit; nothing is started).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(
  build-essential cmake pkg-config git ca-certificates curl
  clang libclang-rt-14-dev llvm
  libfuse3-dev fuse3
  libcurl4-openssl-dev libssl-dev libjansson-dev libmicrohttpd-dev liburing-dev
  libexpat1-dev libcmocka-dev libisal-dev libxxhash-dev
  s3fs rclone fio gnuplot-nox jq procps psmisc iproute2 util-linux
  dpkg-dev help2man lintian systemd
  yamllint python3-yaml shellcheck
)

missing=()
# Node may come from elsewhere (its own npm included); Debian's npm conflicts with such a nodejs.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present"
fi

if [ -f "$here/tests/ossemu/package-lock.json" ]; then
  if [ ! -d "$here/tests/ossemu/node_modules" ] || \
     [ "$here/tests/ossemu/package-lock.json" -nt "$here/tests/ossemu/node_modules/.package-lock.json" ]; then
    echo "setup: installing ossemu's npm packages"
    (cd "$here/tests/ossemu" && npm ci --no-audit --no-fund --loglevel=error)
  else
    echo "setup: ossemu's npm packages present"
  fi
fi
