'use strict';
// Loads the compiled addon. Kept apart so a missing build says what to run.
// NEXUS_WASM_BRIDGE_ADDON (an absolute path) loads another build of it
// instead, e.g. the sanitizer build of scripts/test-asan.sh.
const path = require('path');

const override = process.env.NEXUS_WASM_BRIDGE_ADDON;
let binding;
if (override) {
  if (!path.isAbsolute(override)) {
    throw new Error(`nexus-wasm-bridge: NEXUS_WASM_BRIDGE_ADDON must be an absolute path, got ${JSON.stringify(override)}`);
  }
  try {
    binding = require(override);
  } catch (err) {
    err.message = `nexus-wasm-bridge: cannot load the addon named by NEXUS_WASM_BRIDGE_ADDON (${override}): ${err.message}`;
    throw err;
  }
} else {
  try {
    binding = require(path.join(__dirname, '..', 'build', 'Release', 'nexus_wasm_bridge.node'));
  } catch (err) {
    err.message = `nexus-wasm-bridge: native addon not built (run \`npm run build\`): ${err.message}`;
    throw err;
  }
}

module.exports = binding;
