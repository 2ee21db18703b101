// One process writing to (and reading back from) a shared disk cache, for the cross-process
// bound test. Uses the built package: run `npx turbo run build` first.
// argv: <dir> <maxBytes> <entries> <entryBytes> <name>
// Prints one JSON line: { written, readBack, wrong, warnings }.
import { createHash } from 'node:crypto';
import { DiskSpanCache } from '../dist/index.js';

const [dir, maxBytes, entries, entryBytes, name] = process.argv.slice(2);
let warnings = 0;
const logger = {
  debug() {},
  info() {},
  warn(msg, fields) {
    warnings++;
    process.stderr.write(`${msg} ${JSON.stringify(fields)}\n`);
  },
  error() {},
  child() {
    return logger;
  },
};
const cache = new DiskSpanCache(dir, Number(maxBytes), { logger });
/** Deterministic content per key, so any process can check what it reads. */
function content(key) {
  const out = Buffer.alloc(Number(entryBytes));
  let seed = createHash('sha256').update(key).digest();
  for (let at = 0; at < out.length; at += 32) {
    seed.copy(out, at);
    seed = createHash('sha256').update(seed).digest();
  }
  return out;
}
let readBack = 0;
let wrong = 0;
const keys = [];
for (let i = 0; i < Number(entries); i += 3) {
  // Three writes in flight at once, as a mount's reads produce them.
  const batch = [i, i + 1, i + 2].filter((j) => j < Number(entries)).map((j) => `sha256:${name}/${j}`);
  keys.push(...batch);
  await Promise.all(batch.map((key) => cache.set(key, content(key))));
  // Read back a random earlier key: present or evicted, never wrong.
  const probe = keys[Math.floor(Math.random() * keys.length)];
  const got = await cache.get(probe);
  if (got) {
    readBack++;
    if (!got.equals(content(probe))) wrong++;
  }
}
await cache.flush();
process.stdout.write(`${JSON.stringify({ written: keys.length, readBack, wrong, warnings })}\n`);
