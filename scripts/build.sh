#!/bin/sh
# Builds the native addon with node-gyp (npm's bundled copy). Uses the Node
# headers installed beside the running node when they match it, so no
# download is needed.
set -e
cd "$(dirname "$0")/.."
prefix=$(node -p "require('path').resolve(process.execPath, '../..')")
nodedir_arg=
if [ -f "$prefix/include/node/node_api.h" ]; then
  nodedir_arg="--nodedir=$prefix"
fi
gyp=$(node -p "try { require.resolve('node-gyp/bin/node-gyp.js', { paths: [require('path').dirname(process.execPath) + '/../lib/node_modules/npm/node_modules'] }) } catch (e) { '' }")
if [ -n "$gyp" ]; then
  exec node "$gyp" rebuild $nodedir_arg -j "$(nproc 2>/dev/null || echo 2)"
fi
exec node-gyp rebuild $nodedir_arg -j "$(nproc 2>/dev/null || echo 2)"
