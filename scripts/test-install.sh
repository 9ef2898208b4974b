#!/bin/sh
# Installs the package as a user would, from the tarball `npm pack` makes,
# into fresh projects, and runs a handler that suspends and resumes in each:
#   1. prebuilt: `npm install --ignore-scripts` (npm 11's default for a
#      dependency's install script) with a PATH holding only node and npm:
#      no compiler, make, Python or wasm2c. The prebuilt binary must load.
#   2. source: `npm install --build-from-source` with wasm2c hidden from
#      PATH: node-gyp compiles the shipped engine C (about a minute). The
#      handler then runs on that build, which must have used the shipped
#      engine C and wabt header, not the system's.
# Prints the tarball's files and size, each command and what it printed.
#   sh scripts/test-install.sh [--runtimes] [TARBALL]
#     TARBALL     install that one instead of packing
#     --runtimes  also run scripts/test-runtimes.js (Node 18/22/24, Bun,
#                 Deno) on the prebuilt install
set -e
runtimes=
[ "$1" = --runtimes ] && { runtimes=1; shift; }
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d /tmp/nexus-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The npm cache is shared (dependencies come from it when it has them).
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

say() { printf '\n== %s\n' "$*"; }

# npm install of the tarball once hung for good in CI, half-way through
# extracting it (npm 11, Node 20; not reproduced since). Each npm command is
# bounded and, if it hangs, shown with the end of its debug log and run once
# more into a clean node_modules. timeout is found before PATH is narrowed.
tmo=$(command -v timeout)
npm_bounded() {
  for attempt in 1 2; do
    "$tmo" -k 10 300 npm "$@" && return 0 || rc=$?
    [ "$rc" = 124 ] || [ "$rc" = 137 ] || return "$rc"
    echo "test-install: npm $1 hung for 300 s (attempt $attempt); the end of its debug log:" >&2
    tail -5 "$(ls -t "${npm_config_cache:-$HOME/.npm}"/_logs/*.log | head -1)" >&2 || true
    rm -rf node_modules
  done
  return 1
}

if [ -n "$1" ]; then
  tgz=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
  say "npm pack (prepack: gen/ and the prebuilt binary)"
  npm pack --pack-destination "$work" >"$work/pack.log" 2>&1 || { tail -40 "$work/pack.log"; exit 1; }
  grep '^prepack:' "$work/pack.log"
  tgz=$(ls "$work"/nexus-wasm-bridge-*.tgz)
fi
say "tarball $(basename "$tgz"): $(wc -c <"$tgz") bytes, $(tar tzf "$tgz" | wc -l) files"
tar tzvf "$tgz" | awk '{ printf "%10d  %s\n", $3, $6 }'

# A PATH directory with only node and npm in it.
npm_cli=$(node -p "require('fs').realpathSync(process.argv[1])" "$(command -v npm)")
mkdir -p "$work/bin-min"
ln -s "$(command -v node)" "$work/bin-min/node"
ln -s "$npm_cli" "$work/bin-min/npm"

# A PATH directory with everything on PATH but wasm2c.
mkdir -p "$work/bin-nowasm2c"
for dir in $(echo "$PATH" | tr ':' ' '); do
  [ -d "$dir" ] || continue
  for f in "$dir"/*; do
    name=$(basename "$f")
    [ "$name" = wasm2c ] && continue
    [ -x "$f" ] && [ ! -e "$work/bin-nowasm2c/$name" ] && ln -s "$f" "$work/bin-nowasm2c/$name"
  done
done

# The check both installs run: a handler that suspends on an extension call
# and is resumed, and which addon file the process loaded.
cat > "$work/check.js" <<'EOF'
const fs = require('fs');
const { NexusRuntime } = require('nexus-wasm-bridge');
(async () => {
  const rt = new NexusRuntime({ workers: 1 });
  const context = {
    panelId: 'p', handlerName: 'h', stateSnapshot: { n: 1 }, args: {}, scope: {},
    capabilities: ['state:read:*', 'state:write:*', 'ext:kv'], extensionRegistry: { kv: ['get'] },
  };
  const r = await rt.executeHandler('$state.n = 2; const v = await $ext.kv.get("a"); return v + $state.n', context);
  if (r.status !== 'suspended') throw new Error(`expected a suspension, got ${JSON.stringify(r)}`);
  const done = await rt.resumeHandler(r.suspension.suspensionId, { success: true, value: 40 });
  await rt.shutdown();
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\n');
  const loaded = [...new Set(maps.map((l) => l.split(/\s+/)[5]).filter((f) => f && /\.node$/.test(f)))];
  console.log(`suspended on ${r.suspension.extensionName}.${r.suspension.method}(${JSON.stringify(r.suspension.args)}), ` +
    `resumed: ${done.status} ${JSON.stringify(done.returnValue)}`);
  console.log(`mapped: ${loaded.join(', ')}`);
  if (done.status !== 'success' || done.returnValue !== 42) throw new Error(`resume gave ${JSON.stringify(done)}`);
  if (!loaded.some((f) => f.endsWith(process.env.EXPECT_ADDON))) throw new Error(`expected ${process.env.EXPECT_ADDON} to be loaded`);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
EOF

project() {
  mkdir -p "$work/$1"
  printf '{ "name": "try-%s", "version": "1.0.0", "private": true }\n' "$1" > "$work/$1/package.json"
  cp "$work/check.js" "$work/$1/"
}

# --- 1. prebuilt, no install scripts, no toolchain -------------------------
project prebuilt
for tool in cc gcc clang make python3 wasm2c; do
  if PATH="$work/bin-min" command -v $tool >/dev/null 2>&1; then echo "test-install: $tool is on the minimal PATH" >&2; exit 1; fi
done
say "1. prebuilt: PATH=$work/bin-min ($(ls "$work/bin-min" | tr '\n' ' ')), npm install --ignore-scripts $(basename "$tgz")"
(cd "$work/prebuilt" && PATH="$work/bin-min" npm_bounded install --ignore-scripts --no-package-lock "$tgz" 2>&1)
pkg="$work/prebuilt/node_modules/nexus-wasm-bridge"
[ ! -e "$pkg/build" ] || { echo "test-install: $pkg/build exists: something was built" >&2; exit 1; }
say "1. prebuilt: node check.js"
(cd "$work/prebuilt" && PATH="$work/bin-min" EXPECT_ADDON=prebuilds/linux-x64/nexus-wasm-bridge.glibc.node "$tmo" 120 node check.js)
if [ -n "$runtimes" ]; then
  say "1. prebuilt: node scripts/test-runtimes.js --package <the prebuilt install>"
  node scripts/test-runtimes.js --package "$pkg"
fi

# --- 2. source build from the shipped C, wasm2c hidden ---------------------
project source
if PATH="$work/bin-nowasm2c" command -v wasm2c >/dev/null 2>&1; then echo "test-install: wasm2c is on PATH" >&2; exit 1; fi
# node-gyp takes the Node headers from beside the running node when they are
# there (as scripts/gyp-env.sh does): nothing to download.
. "$root/scripts/gyp-env.sh"
[ -n "$nodedir_arg" ] && export npm_config_nodedir="${nodedir_arg#--nodedir=}"
say "2. source: PATH without wasm2c, npm install --ignore-scripts $(basename "$tgz"), then npm_config_build_from_source=true npm rebuild nexus-wasm-bridge${npm_config_nodedir:+ (npm_config_nodedir=$npm_config_nodedir)}"
# The rebuild runs the package's install step (node-gyp-build) alone, with
# build-from-source set so it compiles instead of taking the prebuild; set on
# the install it would also rebuild dependencies (msgpackr's optional one).
start=$(date +%s)
(cd "$work/source" && export PATH="$work/bin-nowasm2c" &&
  npm_bounded install --ignore-scripts --no-package-lock "$tgz" &&
  npm_config_build_from_source=true npm_bounded rebuild --foreground-scripts nexus-wasm-bridge) >"$work/source.log" 2>&1 ||
  { tail -60 "$work/source.log"; exit 1; }
grep -vE '^gyp info|^  (CC|CXX|ACTION|SOLINK|COPY|LINK|AR|TOUCH)' "$work/source.log" || true
echo "(build and install: $(( $(date +%s) - start )) s)"
pkg="$work/source/node_modules/nexus-wasm-bridge"
addon="$pkg/build/Release/nexus_wasm_bridge.node"
[ -f "$addon" ] || { echo "test-install: $addon was not built" >&2; exit 1; }
say "2. source: the engine's C and headers came from the package"
head -c 160 "$pkg/build/Release/obj/gen/nexus/qjs_wasm.c" | head -1
# The engine is compiled twice (src/wasm_rt/qjs_variant.c, once per
# memoryCheck mode): both compiles must have read the shipped header.
for variant in qjs_bounds qjs_guard; do
  deps="$pkg/build/Release/.deps/Release/obj.target/$variant/src/wasm_rt/qjs_variant.o.d"
  [ -f "$deps" ] || { echo "test-install: no dependency file $deps" >&2; exit 1; }
  echo "$variant: $(grep -o '[^ ]*wasm-rt\.h' "$deps" | sort -u | tr '\n' ' ')"
  if grep -q '/usr/include/wasm-rt\.h' "$deps"; then echo "test-install: the build used the system's wasm-rt.h" >&2; exit 1; fi
  grep -q 'gen/nexus/wabt/wasm-rt\.h' "$deps" || { echo "test-install: the shipped wasm-rt.h was not used" >&2; exit 1; }
done
cmp "$pkg/gen/qjs_wasm.c" "$pkg/build/Release/obj/gen/nexus/qjs_wasm.c"
say "2. source: node check.js (the loader takes the local build over the prebuild)"
(cd "$work/source" && EXPECT_ADDON=build/Release/nexus_wasm_bridge.node "$tmo" 120 node check.js)
say "test-install: both installs work"
