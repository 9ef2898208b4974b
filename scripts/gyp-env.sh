# Sourced by build.sh and test-asan.sh: how to run node-gyp here. npm's
# bundled node-gyp, and the Node headers installed beside the running node
# when present (--nodedir), so nothing is downloaded. Sets gyp, nodedir_arg
# and jobs.
prefix=$(node -p "require('path').resolve(process.execPath, '../..')")
nodedir_arg=
if [ -f "$prefix/include/node/node_api.h" ]; then
  nodedir_arg="--nodedir=$prefix"
fi
gyp=$(node -p "try { require.resolve('node-gyp/bin/node-gyp.js', { paths: [require('path').dirname(process.execPath) + '/../lib/node_modules/npm/node_modules'] }) } catch (e) { '' }")
if [ -n "$gyp" ]; then gyp="node $gyp"; else gyp="node-gyp"; fi
jobs=$(nproc 2>/dev/null || echo 2)
