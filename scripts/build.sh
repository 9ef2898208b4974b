#!/bin/sh
# Builds the native addon with node-gyp (npm's bundled copy), incrementally
# once configured. Uses the Node headers installed beside the running node
# when present, so nothing is downloaded.
set -e
cd "$(dirname "$0")/.."
. scripts/gyp-env.sh
if [ "$1" = "--rebuild" ] || [ ! -f build/Makefile ] || [ binding.gyp -nt build/Makefile ]; then
  $gyp configure $nodedir_arg
fi
$gyp build -j "$jobs"
