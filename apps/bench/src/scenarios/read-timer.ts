// Times whole-file reads in this process (open + read + close per path), so a small file's
// latency is not buried under the cost of spawning `cat`. Prints {"ms": [..]}.
//   node read-timer.js <path>…
import { readFile } from 'node:fs/promises';

const ms: number[] = [];
for (const path of process.argv.slice(2)) {
  const started = performance.now();
  await readFile(path);
  ms.push(performance.now() - started);
}
process.stdout.write(`${JSON.stringify({ ms })}\n`);
