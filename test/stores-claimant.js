'use strict';
// One claimant process of test/stores.test.js's cross-process race:
//   node test/stores-claimant.js <redis url> <prefix>
// Connects, prints "ready", then for each stdin line "<round> <id>" claims
// id at once and prints {"round", "id", "got"} (got: the blob's sha256, null,
// or "error: ..."). Exits when stdin ends.
const crypto = require('crypto');
const readline = require('readline');
const { RedisSuspensionStore } = require('../lib/stores');

const [url, prefix] = process.argv.slice(2);
const store = new RedisSuspensionStore({ url, prefix });

async function main() {
  await store.delete('0'.repeat(32)); // connected before the race starts
  process.stdout.write('ready\n');
  const pending = [];
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const [round, id] = line.split(' ');
    pending.push(
      store.claim(id).then(
        (b) => (b === null ? null : crypto.createHash('sha256').update(b).digest('hex')),
        (err) => `error: ${err.message}`,
      ).then((got) => process.stdout.write(JSON.stringify({ round: Number(round), id, got }) + '\n')),
    );
  }
  await Promise.all(pending);
  await store.close();
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
