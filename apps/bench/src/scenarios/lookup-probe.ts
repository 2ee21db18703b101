// Runs in a fresh Node process: times opening a .clip archive and looking up one path
// (readArchiveFile + lookup), or, as the baseline, reading + JSON.parse of the image's path
// list and finding the same path in it. Prints {"ms": …, "found": …}.
//   node lookup-probe.js clip <archive> <path> | json <paths.json> <path>
const [mode, file, path] = process.argv.slice(2);
if ((mode !== 'clip' && mode !== 'json') || !file || !path) {
  process.stderr.write('usage: lookup-probe.js clip|json <file> <path>\n');
  process.exit(2);
}
let found = false;
let ms: number;
if (mode === 'clip') {
  // Imported before the clock starts: module loading is the same for any archive size.
  const { readArchiveFile } = await import('@clip/archive-format');
  const started = performance.now();
  const archive = await readArchiveFile(file);
  found = archive.lookup(path) !== undefined;
  ms = performance.now() - started;
} else {
  const { readFile } = await import('node:fs/promises');
  const started = performance.now();
  const list = JSON.parse(await readFile(file, 'utf8')) as [string, number, number][];
  found = list.some((entry) => entry[0] === path);
  ms = performance.now() - started;
}
process.stdout.write(`${JSON.stringify({ ms, found })}\n`);
