// Entry point of the latency proxy process, started inside the benchmark's network namespace:
//   node proxy-main.js <listenPort> <upstreamPort> <oneWayDelayMs>
// Prints `listening <port>` when ready, then answers `stats` / `reset` lines on stdin with one
// JSON line of counters on stdout. Exits when stdin closes (its parent went away).
import { createInterface } from 'node:readline';
import { startDelayProxy } from './delay-proxy.js';

const [listenPort, upstreamPort, delay] = process.argv.slice(2).map(Number);
const proxy = await startDelayProxy({
  listenHost: '127.0.0.1',
  listenPort: listenPort ?? 0,
  upstreamHost: '127.0.0.1',
  upstreamPort: upstreamPort ?? 0,
  oneWayDelayMs: delay ?? 0,
});
process.stdout.write(`listening ${proxy.port}\n`);

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const command = line.trim();
  if (command === 'stats') process.stdout.write(`${JSON.stringify(proxy.stats())}\n`);
  else if (command === 'reset') process.stdout.write(`${JSON.stringify(proxy.reset())}\n`);
});
lines.on('close', () => {
  void proxy.close().then(() => process.exit(0));
});
