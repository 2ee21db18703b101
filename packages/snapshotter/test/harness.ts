// Test harness: a private containerd that names clip as its proxy snapshotter, and `clip
// snapshotter` as a child process. (Bytes served are counted by the test kit's proxy log.)
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { mountsUnder, type ProxiedRequest } from '@clip/testkit';

export { mountsUnder };

export const run = promisify(execFile);
export const CLI = new URL('../../../apps/cli/dist/main.js', import.meta.url).pathname;

/** Response body bytes of the blob GETs of `digests` in a fault proxy's log (what crossed the "link"). */
export function blobBytes(log: readonly ProxiedRequest[], digests: readonly string[]): number {
  return log
    .filter((r) => r.method === 'GET' && digests.some((d) => r.url.endsWith(`/blobs/${d}`)))
    .reduce((sum, r) => sum + r.responseBytes, 0);
}

/** Accepts connections (a stale socket file left by a killed process does not). */
function connectable(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForSocket(path: string, child: ChildProcess, what: string, logs: () => string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}): ${logs().slice(-2000)}`);
    if (
      (await stat(path).then(
        (s) => s.isSocket(),
        () => false,
      )) &&
      (await connectable(path))
    )
      return;
    await sleep(100);
  }
  throw new Error(`${what} did not create ${path}: ${logs().slice(-2000)}`);
}

export interface Containerd {
  address: string;
  namespace: string;
  /** Runs ctr (or ctr-remote) against this containerd. */
  ctr(args: string[], options?: { tool?: 'ctr' | 'ctr-remote'; namespace?: string; timeoutMs?: number }): Promise<string>;
  logs(): string;
  stop(): Promise<void>;
}

export async function startContainerd(dir: string, snapshotterSocket: string): Promise<Containerd> {
  await mkdir(dir, { recursive: true });
  const address = join(dir, 'c.sock');
  const config = [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    '[grpc]',
    `  address = "${address}"`,
    '[ttrpc]',
    `  address = "${address}.ttrpc"`,
    '[debug]',
    `  address = "${join(dir, 'debug.sock')}"`,
    '  level = "info"',
    '[metrics]',
    '  address = ""',
    '[plugins."io.containerd.grpc.v1.cri"]',
    '  disable = true',
    '[proxy_plugins.clip]',
    '  type = "snapshot"',
    `  address = "${snapshotterSocket}"`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'config.toml'), config);
  let output = '';
  const child = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  await waitForSocket(address, child, 'containerd', () => output);
  const namespace = 'cliptest';
  return {
    address,
    namespace,
    ctr: async (args, options = {}) => {
      const tool = options.tool ?? 'ctr';
      try {
        const { stdout } = await run(tool, ['--address', address, '--namespace', options.namespace ?? namespace, ...args], {
          timeout: options.timeoutMs ?? 180_000,
          maxBuffer: 64 * 1024 * 1024,
        });
        return stdout;
      } catch (error) {
        const e = error as { stderr?: string; stdout?: string; message: string };
        throw new Error(`${tool} ${args.join(' ')} failed: ${e.stderr || e.message}\n${e.stdout ?? ''}`);
      }
    },
    logs: () => output,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      for (let i = 0; i < 100 && child.exitCode === null; i++) await sleep(100);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

export interface SnapshotterProcess {
  socket: string;
  metricsUrl: string;
  logs(): string;
  metrics(): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startSnapshotter(options: {
  socket: string;
  root: string;
  stateDir: string;
  cacheDir: string;
  metricsPort: number;
  /** More `clip snapshotter` flags. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
}): Promise<SnapshotterProcess> {
  let output = '';
  const metrics = `127.0.0.1:${options.metricsPort}`;
  const child = spawn(
    process.execPath,
    [
      CLI,
      'snapshotter',
      '--address',
      options.socket,
      '--root',
      options.root,
      '--state-dir',
      options.stateDir,
      '--cache-dir',
      options.cacheDir,
      '--metrics',
      metrics,
      ...(options.args ?? []),
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
    },
  );
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  await waitForSocket(options.socket, child, 'clip snapshotter', () => output);
  return {
    socket: options.socket,
    metricsUrl: `http://${metrics}/metrics`,
    logs: () => output,
    metrics: () => fetch(`http://${metrics}/metrics`).then((r) => r.text()),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null) return;
      child.kill(signal);
      for (let i = 0; i < 100 && child.exitCode === null && child.signalCode === null; i++) await sleep(100);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Value of one Prometheus sample, e.g. metric('clip_snapshotter_fallbacks_total{reason="no_archive"}'). */
export function metricValue(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : NaN;
}
