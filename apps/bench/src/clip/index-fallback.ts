// Stand-in for `clip index` while the CLI command has not landed: calls the indexer library's
// createArchive in its own process (so timings include process start like the CLI would).
//   node index-fallback.js <source> <output> [storageRef]
// `--probe` exits 0 when the library is there; exit code 3 = it is not.
const [source, output, storageRef] = process.argv.slice(2);
const specifier = '@clip/indexer';
let module: Record<string, unknown>;
try {
  module = (await import(specifier)) as Record<string, unknown>;
} catch {
  process.stdout.write(`${specifier} not available\n`);
  process.exit(3);
}
const createArchive = module['createArchive'];
if (typeof createArchive !== 'function') {
  process.stdout.write('no createArchive export\n');
  process.exit(3);
}
if (source === '--probe') process.exit(0);
const summary: unknown = await (createArchive as (options: Record<string, unknown>) => Promise<unknown>)({
  source,
  output,
  ...(storageRef ? { storageRef } : {}),
});
process.stdout.write(`${JSON.stringify(summary, (_key, value: unknown) => (typeof value === 'bigint' ? Number(value) : value))}\n`);
