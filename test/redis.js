'use strict';
// A real redis-server for the tests: one per startRedis(), on a free
// loopback port, in a fresh temporary directory, persisting nothing. The
// tests never use a server of the system's (the Debian package may run one
// on 6379). A missing redis-server fails the caller's test: scripts/setup.sh
// installs it.
//
//   const { port, url, stop } = await startRedis();   ...   await stop();
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn, spawnSync } = require('child_process');

const READY_MS = 10_000;
const STOP_MS = 5_000;
const running = new Set();

// A server left running by a test that threw before stop(): it must not
// outlive the test process.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function checkInstalled() {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.error && r.error.code === 'ENOENT') {
    throw new Error('redis-server is not installed (the suspension store tests need it): run sh scripts/setup.sh');
  }
  if (r.error) throw r.error;
}

// A port nothing listens on now (the kernel's pick for port 0). Another
// process may take it before redis-server does: startRedis retries.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Resolves true when the server on port answers PING with +PONG.
function ping(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
  });
}

async function startOnce(port) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-redis-'));
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', 'no',
    '--daemonize', 'no',
    '--loglevel', 'warning',
  ];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let gone = null;
  exited.then((e) => {
    gone = e;
    running.delete(child);
  });

  const stop = async () => {
    if (!gone) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_MS);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + READY_MS;
  while (!gone && Date.now() < deadline) {
    if (await ping(port)) return { port, url: `redis://127.0.0.1:${port}`, stop };
    await new Promise((r) => setTimeout(r, 20));
  }
  await stop();
  const why = gone ? `exited (${gone.code ?? gone.signal})` : `did not answer PING within ${READY_MS} ms`;
  const err = new Error(`redis-server on port ${port} ${why}: ${output.trim().slice(-2000)}`);
  err.portTaken = /address already in use/i.test(output);
  throw err;
}

async function startRedis() {
  checkInstalled();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(await freePort());
    } catch (err) {
      if (!err.portTaken || attempt === 3) throw err;
    }
  }
}

module.exports = { startRedis, freePort };
