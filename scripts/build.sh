#!/bin/sh
# Builds the native addon with node-gyp (npm's bundled copy), incrementally
# once configured. Uses the Node headers installed beside the running node
# when present, so nothing is downloaded.
set -e
cd "$(dirname "$0")/.."
prefix=$(node -p "require('path').resolve(process.execPath, '../..')")
nodedir_arg=
if [ -f "$prefix/include/node/node_api.h" ]; then
  nodedir_arg="--nodedir=$prefix"
fi
gyp=$(node -p "try { require.resolve('node-gyp/bin/node-gyp.js', { paths: [require('path').dirname(process.execPath) + '/../lib/node_modules/npm/node_modules'] }) } catch (e) { '' }")
if [ -n "$gyp" ]; then gyp="node $gyp"; else gyp="node-gyp"; fi
jobs=$(nproc 2>/dev/null || echo 2)
if [ "$1" = "--rebuild" ] || [ ! -f build/Makefile ] || [ binding.gyp -nt build/Makefile ]; then
  $gyp configure $nodedir_arg
fi
$gyp build -j "$jobs"
