#!/bin/sh
# npm pack / npm publish (the prepack script): adds to the package what a
# checkout does not have, so that installing it needs no wasm2c, and on
# linux-x64 with glibc no compiler either:
#   gen/qjs_wasm.c, gen/qjs_wasm.h, gen/wabt/wasm-rt.h
#       the engine's C, exactly the files this build compiled (stamped by
#       scripts/engine-c.js with the wabt and quickjs-wasi versions and the
#       SHA-256 of quickjs.wasm)
#   prebuilds/linux-x64/nexus-wasm-bridge.glibc.node (this platform's)
#       the addon, N-API (one binary for every Node version), stripped: it
#       needs only libc
#   PREBUILDS_FROM=DIR adds the prebuilds made on other platforms.
# The addon is this checkout's build (scripts/build.sh, incremental: in CI,
# after setup.sh, nothing is recompiled); prebuildify names, strips and
# places it (its node-gyp is scripts/prebuild-gyp.sh, the same build). The
# postpack script removes gen/ and prebuilds/ again.
set -e
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/gyp-env.sh

sh scripts/build.sh >build.log 2>&1 || { tail -40 build.log; exit 1; }
out=build/Release/obj/gen/nexus
rm -rf gen prebuilds
mkdir -p gen/wabt
cp "$out/qjs_wasm.c" "$out/qjs_wasm.h" gen/
cp "$out/wabt/wasm-rt.h" gen/wabt/
wasm=$(node -p "require.resolve('quickjs-wasi/quickjs.wasm')")
echo "prepack: gen/ $(node scripts/engine-c.js --check gen "$wasm")"

# prebuildify passes --target (irrelevant for N-API) and --devdir; node-gyp
# reads the headers from nodedir when set, so nothing is downloaded.
[ -n "$nodedir_arg" ] && export npm_config_nodedir="${nodedir_arg#--nodedir=}"
node node_modules/prebuildify/bin.js --napi --strip --tag-libc --node-gyp "$root/scripts/prebuild-gyp.sh" >>build.log 2>&1 ||
  { tail -20 build.log; exit 1; }
libc=glibc
[ -f /etc/alpine-release ] && libc=musl
addon=prebuilds/$(node -p "process.platform + '-' + process.arch")/nexus-wasm-bridge.$libc.node
[ -f "$addon" ] || { echo "prepack: prebuildify did not write $addon" >&2; exit 1; }
# A release adds the prebuilds made on other platforms (README, "Releasing"):
# PREBUILDS_FROM=DIR holds their prebuilds/ trees (PLATFORM-ARCH/*.node).
if [ -n "$PREBUILDS_FROM" ]; then
  (cd "$PREBUILDS_FROM" && find . -name '*.node') | while read -r f; do
    if [ -e "prebuilds/$f" ]; then echo "prepack: $PREBUILDS_FROM/$f: this platform's own, not replaced" >&2; continue; fi
    mkdir -p "prebuilds/$(dirname "$f")"
    cp "$PREBUILDS_FROM/$f" "prebuilds/$f"
  done
fi
# What each binary needs from the system: libc's libraries and libgcc_s
# (which every glibc system and Node itself have), nothing else.
for bin in prebuilds/*/*.node; do
  needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  echo "prepack: $bin, $(wc -c <"$bin") bytes, needs: $needed"
  for lib in $needed; do
    case "$lib" in
      libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|libgcc_s.so.*|ld-linux*|libc.musl-*) ;;
      *) echo "prepack: $bin needs $lib; only libc's libraries are allowed" >&2; exit 1 ;;
    esac
  done
done
# prebuildify moved the build's .node away: link it again for the checkout.
sh scripts/build.sh >>build.log 2>&1 || { tail -40 build.log; exit 1; }
