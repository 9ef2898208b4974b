'use strict';
// Loads the compiled addon. Kept apart so a missing build says what to run.
const path = require('path');

let binding;
try {
  binding = require(path.join(__dirname, '..', 'build', 'Release', 'nexus_wasm_bridge.node'));
} catch (err) {
  err.message = `nexus-wasm-bridge: native addon not built (run \`npm run build\`): ${err.message}`;
  throw err;
}

module.exports = binding;
