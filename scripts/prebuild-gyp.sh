#!/bin/sh
# The node-gyp that scripts/prepack.sh gives prebuildify: prebuildify runs
# `node-gyp rebuild --target=VERSION ...` and takes build/Release/*.node. The
# addon is N-API, so the target changes nothing, and this checkout's
# incremental build is that binary: rebuilding would compile the 8 MB of
# engine C a second time for the same result.
exec sh "$(dirname "$0")/build.sh"
