#!/bin/sh
# One-time setup for `npm run fuzz` on a Debian machine: clang and its
# libFuzzer / sanitizer runtimes, installed with apt only when clang cannot
# already link a -fsanitize=fuzzer program. Safe to run again.
set -e
cd "$(dirname "$0")/.."

probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe_dir/p.c"

if command -v clang >/dev/null 2>&1 &&
   clang -fsanitize=fuzzer,address,undefined "$probe_dir/p.c" -o "$probe_dir/p" >/dev/null 2>&1; then
  echo "setup-fuzz: clang links libFuzzer already"
  exit 0
fi

echo "setup-fuzz: installing clang libclang-rt-14-dev"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null

if ! clang -fsanitize=fuzzer,address,undefined "$probe_dir/p.c" -o "$probe_dir/p"; then
  echo "setup-fuzz: clang still cannot link with -fsanitize=fuzzer" >&2
  exit 1
fi
echo "setup-fuzz: done"
