'use strict';
// Configure step (binding.gyp): how to link msgpack-c, the one library the
// addon needs besides libc. Its static archive when the system has one
// (Debian's libmsgpack-dev does), so the addon depends on libc alone and the
// prebuilt binary runs where msgpack-c is not installed; the shared library
// otherwise. Stops the build with the packages to install when msgpack-c's
// header is missing, instead of a compiler error deep in src/.
// Prints the linker arguments.
const { execFileSync } = require('child_process');

const cc = process.env.CC || 'cc';
try {
  execFileSync(cc, ['-E', '-x', 'c', '-', '-o', '/dev/null'], { input: '#include <msgpack.h>\n', stdio: ['pipe', 'ignore', 'pipe'] });
} catch (err) {
  process.stderr.write(
    'nexus-wasm-bridge: building from source needs msgpack-c (the C library, 4.x) and its header msgpack.h ' +
      `(${cc} could not include it). Install it (Debian/Ubuntu: apt-get install libmsgpack-dev; Alpine: ` +
      'apk add msgpack-c-dev; Fedora: dnf install msgpack-devel) and install again. linux-x64 with glibc ' +
      'needs no build: the package ships a prebuilt binary for it.\n');
  process.exit(1);
}
// -print-file-name prints the bare name back when the file is not found.
const archive = execFileSync(cc, ['-print-file-name=libmsgpackc.a'], { encoding: 'utf8' }).trim();
process.stdout.write(archive !== 'libmsgpackc.a' ? '-Wl,-Bstatic -lmsgpackc -Wl,-Bdynamic' : '-lmsgpackc');
