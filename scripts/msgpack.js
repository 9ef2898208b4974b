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
    'nexus-wasm-bridge: building from source needs msgpack-c (the C library) and its header msgpack.h ' +
      `(${cc} could not include it). Install it (Debian/Ubuntu: apt-get install libmsgpack-dev; Alpine: ` +
      'apk add msgpack-c-dev; Fedora: dnf install msgpack-devel) and install again. linux-x64 with glibc ' +
      'needs no build: the package ships a prebuilt binary for it.\n');
  process.exit(1);
}
// msgpack-c 6 renamed the library libmsgpack-c (Alpine, Debian 13);
// 4.x calls it libmsgpackc (Debian 12). -print-file-name prints the bare
// name back when the file is not found.
const found = (file) => execFileSync(cc, [`-print-file-name=${file}`], { encoding: 'utf8' }).trim() !== file;
const lib = ['msgpack-c', 'msgpackc'].find((l) => found(`lib${l}.a`) || found(`lib${l}.so`)) || 'msgpackc';
process.stdout.write(found(`lib${lib}.a`) ? `-Wl,-Bstatic -l${lib} -Wl,-Bdynamic` : `-l${lib}`);
