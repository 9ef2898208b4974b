#!/bin/sh
# One-time setup on a fresh Debian machine: system packages the build and the
# tests need (prometheus only for its promtool; redis-server, >= 6.2, for the
# suspension store tests, which start their own servers on free ports: a
# system server the package may start on 6379 is never used), installed with
# apt only when missing, npm dependencies, then the addon.
# Safe to run again: it skips what is already there.
set -e
cd "$(dirname "$0")/.."

need=""
command -v wasm2c >/dev/null 2>&1 || need="$need wabt"
command -v make >/dev/null 2>&1 || need="$need make"
command -v gcc >/dev/null 2>&1 || need="$need gcc"
command -v python3 >/dev/null 2>&1 || need="$need python3"
command -v promtool >/dev/null 2>&1 || need="$need prometheus"
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
if [ -n "$need" ]; then
  echo "setup: installing$need"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ ! -d node_modules/quickjs-wasi ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  npm ci --ignore-scripts --no-audit --no-fund >/dev/null
fi

echo "setup: building the native addon"
sh scripts/build.sh >build.log 2>&1 || { tail -40 build.log; exit 1; }
echo "setup: done"
