// Runs a Node script in this process and, at exit, writes the process's peak RSS (bytes) to a
// file: `/usr/bin/time -v` is not installed, and reading /proc/<pid>/status from outside
// cannot catch the value at exit.
//   node rss-wrapper.js <rss-file> <script.js> [args…]
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [rssFile, script, ...args] = process.argv.slice(2);
if (!rssFile || !script) {
  process.stderr.write('usage: rss-wrapper.js <rss-file> <script.js> [args…]\n');
  process.exit(2);
}
process.on('exit', () => {
  // maxRSS is in KiB (getrusage ru_maxrss).
  writeFileSync(rssFile, `${process.resourceUsage().maxRSS * 1024}\n`);
});
process.argv = [process.argv[0]!, resolve(script), ...args];
await import(pathToFileURL(resolve(script)).href);
