'use strict';
// Installs the pinned peers into bench/peers/node_modules when one is missing
// or its installed version differs from bench/peers/package.json. Only this
// script does it: the root `npm ci` and CI never install the peers.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const DIR = __dirname;

// Packages with a native part and the file their install script builds: an
// install whose script did not run (npm's allowScripts, an interrupted
// build) counts as missing.
const BUILT = { 'isolated-vm': 'out/isolated_vm.node' };

function outOfDate() {
  const { dependencies } = JSON.parse(fs.readFileSync(path.join(DIR, 'package.json'), 'utf8'));
  return Object.entries(dependencies).filter(([name, want]) => {
    try {
      const pkg = path.join(DIR, 'node_modules', name);
      if (BUILT[name] && !fs.existsSync(path.join(pkg, BUILT[name]))) return true;
      return JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).version !== want;
    } catch {
      return true;
    }
  }).map(([name, want]) => `${name}@${want}`);
}

function ensurePeers() {
  const missing = outOfDate();
  if (missing.length === 0) return;
  console.log(`installing peers into bench/peers (${missing.join(', ')}) ...`);
  // isolated-vm builds from source when no prebuilt binary can be fetched;
  // point node-gyp at the headers installed beside node, as
  // scripts/build.sh does, so that nothing but the npm registry is needed.
  const env = { ...process.env };
  const prefix = path.resolve(process.execPath, '../..');
  if (!env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include/node/node_api.h'))) env.npm_config_nodedir = prefix;
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const npmRun = (args) => {
    const r = spawnSync(npm, [...args, '--prefix', DIR, '--no-audit', '--no-fund'], { stdio: 'inherit', env });
    if (r.status !== 0) throw new Error(`npm ${args.join(' ')} --prefix bench/peers failed (${r.error?.message ?? `exit ${r.status}`})`);
  };
  npmRun(['install']);
  // Installed at the right version but never built: build it.
  const unbuilt = outOfDate().map((spec) => spec.slice(0, spec.lastIndexOf('@'))).filter((name) => BUILT[name]);
  if (unbuilt.length) npmRun(['rebuild', ...unbuilt]);
  const still = outOfDate();
  if (still.length) throw new Error(`peers still missing after npm install: ${still.join(', ')}`);
}

module.exports = { ensurePeers };
