'use strict';
// Loads the compiled addon. Kept apart so a missing build says what to do.
// node-gyp-build picks the file: a local build in build/Release when there is
// one, else the prebuilt binary in prebuilds/ matching this platform, arch
// and libc (the published package ships linux-x64 glibc). An installed
// package has a local build only when its install step made one on purpose
// (no prebuild loaded, or --build-from-source), so that one wins; a
// checkout has only its build.
// NEXUS_WASM_BRIDGE_ADDON (an absolute path) loads another build of it
// instead, e.g. the sanitizer build of scripts/test-asan.sh.
const path = require('path');
const nodeGypBuild = require('node-gyp-build');

const ROOT = path.join(__dirname, '..');

function load() {
  const override = process.env.NEXUS_WASM_BRIDGE_ADDON;
  if (override) {
    if (!path.isAbsolute(override)) {
      throw new Error(`nexus-wasm-bridge: NEXUS_WASM_BRIDGE_ADDON must be an absolute path, got ${JSON.stringify(override)}`);
    }
    try {
      const addon = require(override);
      Object.defineProperty(addon, 'file', { value: override });
      return addon;
    } catch (err) {
      err.message = `nexus-wasm-bridge: cannot load the addon named by NEXUS_WASM_BRIDGE_ADDON (${override}): ${err.message}`;
      throw err;
    }
  }
  let file;
  try {
    file = nodeGypBuild.resolve(ROOT);
  } catch (err) {
    err.message = 'nexus-wasm-bridge: no native addon here. In a checkout run `npm run build`; in an installed ' +
      'package `npm rebuild nexus-wasm-bridge` builds one (a C compiler and Python; README "Install"). ' +
      err.message;
    throw err;
  }
  try {
    const addon = require(file);
    // Exported suspensions name the addon build they came from (lib/index.js).
    Object.defineProperty(addon, 'file', { value: file });
    return addon;
  } catch (err) {
    err.message = `nexus-wasm-bridge: cannot load ${file}: ${err.message}`;
    throw err;
  }
}

module.exports = load();
