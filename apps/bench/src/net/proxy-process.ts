// Runs the latency proxy as its own process inside the namespace and reads its counters over
// a line protocol on stdin/stdout.
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface, type Interface } from 'node:readline';
import { onCleanup } from '../util/cleanup.js';
import { startProcess, stopProcess, waitForOutput } from '../util/exec.js';
import type { ProxyStats } from './delay-proxy.js';

export interface ProxyProcess {
  port: number;
  oneWayDelayMs: number;
  stats(): Promise<ProxyStats>;
  reset(): Promise<ProxyStats>;
  stop(): Promise<void>;
}

export async function startProxyProcess(
  netns: string,
  listenPort: number,
  upstreamPort: number,
  oneWayDelayMs: number,
): Promise<ProxyProcess> {
  const script = fileURLToPath(new URL('./proxy-main.js', import.meta.url));
  const child: ChildProcess = startProcess(process.execPath, [script, String(listenPort), String(upstreamPort), String(oneWayDelayMs)], {
    netns,
  });
  const dispose = onCleanup('stop proxy', () => stopProcess(child, 1000));
  const ready = await waitForOutput(child, (text) => /listening \d+/.test(text), 10_000);
  const port = Number(/listening (\d+)/.exec(ready)?.[1]);
  const lines: Interface = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => {
    if (line.startsWith('{')) waiting.shift()?.(line);
  });
  const ask = (command: string) =>
    new Promise<ProxyStats>((resolve, reject) => {
      if (child.exitCode !== null) return reject(new Error('proxy process exited'));
      waiting.push((line) => resolve(JSON.parse(line) as ProxyStats));
      child.stdin!.write(`${command}\n`);
    });
  return {
    port,
    oneWayDelayMs,
    stats: () => ask('stats'),
    reset: () => ask('reset'),
    stop: async () => {
      dispose();
      child.stdin?.end();
      await stopProcess(child, 1000);
    },
  };
}
