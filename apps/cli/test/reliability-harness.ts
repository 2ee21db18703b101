// Shared by the reliability tests (faults, load, cache sabotage): a synthetic image big enough
// that random reads keep missing the page cache, pushed to a real registry and indexed with
// the CLI against a chosen storage host (e.g. a fault proxy), plus a child-process reader
// that does random (file, offset, length) reads on a mount and checks every byte against
// umoci's unpacked copy.
import { spawn } from 'node:child_process';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildLayout, type LayoutSpec, skopeoCopy, umociUnpack } from '@clip/testkit';
import { runCli } from './mount-harness.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** About 40 MiB over a gzip, a multi-frame zstd and an uncompressed layer, plus many small files. */
export const RELIABILITY_IMAGE: LayoutSpec = {
  tag: 'reliability',
  layers: [
    {
      compression: 'gzip',
      entries: [
        { type: 'dir', path: 'gz' },
        ...Array.from({ length: 10 }, (_, i) => ({
          type: 'file' as const,
          path: `gz/file-${i}.bin`,
          content: { generate: (['mixed', 'random', 'text'] as const)[i % 3]!, size: (i + 1) * 380 * KiB + i * 17, seed: 100 + i },
        })),
        { type: 'dir', path: 'small' },
        ...Array.from({ length: 150 }, (_, i) => ({
          type: 'file' as const,
          path: `small/s-${i}.txt`,
          content: { generate: 'text' as const, size: 1 + ((i * 997) % (12 * KiB)), seed: 500 + i },
        })),
      ],
    },
    {
      compression: 'zstd',
      zstdFrameSize: MiB,
      entries: [
        { type: 'dir', path: 'zst' },
        ...Array.from({ length: 5 }, (_, i) => ({
          type: 'file' as const,
          path: `zst/file-${i}.bin`,
          content: { generate: 'mixed' as const, size: (i + 1) * 700 * KiB + 3, seed: 200 + i },
        })),
      ],
    },
    {
      compression: 'none',
      entries: [
        { type: 'dir', path: 'raw' },
        ...Array.from({ length: 4 }, (_, i) => ({
          type: 'file' as const,
          path: `raw/file-${i}.bin`,
          content: { generate: 'random' as const, size: (i + 1) * 800 * KiB + 11, seed: 300 + i },
        })),
      ],
    },
  ],
};

export interface ReliabilityImage {
  layoutRef: string;
  rootfs: string;
  /** Regular files (image path, size), non-empty. */
  files: Array<{ path: string; size: number }>;
  totalBytes: number;
}

/** Builds the image, pushes it to `registryHost`, unpacks it with umoci. */
export async function prepareReliabilityImage(
  work: string,
  registryHost: string,
  repository = 'reliability/image',
): Promise<ReliabilityImage> {
  const layout = await buildLayout(join(work, 'layout'), RELIABILITY_IMAGE);
  await skopeoCopy(layout.ref, `docker://${registryHost}/${repository}:${layout.tag}`);
  const rootfs = await umociUnpack(layout.umociRef, join(work, 'bundle'));
  const files: Array<{ path: string; size: number }> = [];
  const walk = async (dir: string, prefix: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = `${prefix}/${entry.name}`;
      if (entry.isDirectory()) await walk(join(dir, entry.name), path);
      else if (entry.isFile()) {
        const { size } = await stat(join(dir, entry.name));
        if (size > 0) files.push({ path, size });
      }
    }
  };
  await walk(rootfs, '');
  files.sort((a, b) => a.path.localeCompare(b.path));
  return { layoutRef: layout.ref, rootfs, files, totalBytes: files.reduce((sum, file) => sum + file.size, 0) };
}

/** `clip index <layout> -o <output> --storage-ref <storageRef>` with small spans; throws on failure. */
export async function indexWithCli(layoutRef: string, output: string, storageRef: string, spanSize = '64KiB'): Promise<void> {
  const result = await runCli(['index', layoutRef, '-o', output, '--storage-ref', storageRef, '--span-size', spanSize, '--no-progress'], {
    timeoutMs: 120_000,
  });
  if (result.code !== 0) throw new Error(`clip index exited with ${result.code}:\n${result.stderr}`);
}

export interface ReadPlan {
  mountpoint: string;
  rootfs: string;
  files: Array<{ path: string; size: number }>;
  /** Reads in total (across workers); the run also stops at `durationMs`. */
  reads: number;
  durationMs: number;
  concurrency: number;
  maxLength: number;
  seed: number;
}

export interface ReadReport {
  attempted: number;
  correct: number;
  eio: number;
  wrong: number;
  /** Errors other than EIO: code → count. */
  otherErrors: Record<string, number>;
  /** Slowest open/read.../close sequence of one random read. */
  worstMs: number;
  /** Slowest single read() system call. */
  worstSyscallMs: number;
  p50Ms: number;
  p99Ms: number;
  /** First few wrong reads, for the failure message. */
  wrongSamples: string[];
  elapsedMs: number;
}

// Plain ESM, run by node in a child process: the test process must never touch a FUSE mount
// it serves or shares a machine with synchronously.
const READER_SCRIPT = `
import { open, readFile } from 'node:fs/promises';
const plan = JSON.parse(await readFile(process.argv[2], 'utf8'));
const reference = new Map();
for (const f of plan.files) reference.set(f.path, await readFile(plan.rootfs + f.path));
let s = plan.seed | 0;
const random = () => { s = (s + 0x6d2b79f5) | 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32; };
const report = { attempted: 0, correct: 0, eio: 0, wrong: 0, otherErrors: {}, worstMs: 0, worstSyscallMs: 0, p50Ms: 0, p99Ms: 0, wrongSamples: [], elapsedMs: 0 };
const latencies = [];
const started = performance.now();
let issued = 0;
async function one() {
  const file = plan.files[Math.floor(random() * plan.files.length)];
  const offset = Math.floor(random() * file.size);
  const length = 1 + Math.floor(random() * plan.maxLength);
  const expected = reference.get(file.path).subarray(offset, Math.min(file.size, offset + length));
  const buffer = Buffer.alloc(length);
  const t0 = performance.now();
  let handle;
  try {
    handle = await open(plan.mountpoint + file.path, 'r');
    let got = 0;
    // A read may be short; read on until EOF or the asked length, like cat does.
    for (;;) {
      const c0 = performance.now();
      let bytesRead;
      try {
        ({ bytesRead } = await handle.read(buffer, got, length - got, offset + got));
      } finally {
        report.worstSyscallMs = Math.max(report.worstSyscallMs, Math.round(performance.now() - c0));
      }
      if (bytesRead === 0) break;
      got += bytesRead;
      if (got === length) break;
    }
    const ok = got === expected.length && buffer.subarray(0, got).equals(expected);
    if (ok) report.correct++;
    else {
      report.wrong++;
      if (report.wrongSamples.length < 5) report.wrongSamples.push(file.path + ' @' + offset + '+' + length + ': got ' + got + ' bytes, expected ' + expected.length);
    }
  } catch (error) {
    if (error.code === 'EIO') report.eio++;
    else report.otherErrors[error.code ?? String(error)] = (report.otherErrors[error.code ?? String(error)] ?? 0) + 1;
  } finally {
    await handle?.close().catch(() => {});
  }
  const ms = performance.now() - t0;
  latencies.push(ms);
  report.attempted++;
}
async function worker() {
  while (issued < plan.reads && performance.now() - started < plan.durationMs) {
    issued++;
    await one();
  }
}
await Promise.all(Array.from({ length: plan.concurrency }, worker));
latencies.sort((a, b) => a - b);
report.worstMs = Math.round(latencies.at(-1) ?? 0);
report.p50Ms = Math.round(latencies[Math.floor(latencies.length * 0.5)] ?? 0);
report.p99Ms = Math.round(latencies[Math.floor(latencies.length * 0.99)] ?? 0);
report.elapsedMs = Math.round(performance.now() - started);
process.stdout.write(JSON.stringify(report));
`;

/** Runs the random-read checker in a child process; kills it after `durationMs` + `graceMs`. */
export async function runRandomReads(work: string, plan: ReadPlan, graceMs = 60_000): Promise<ReadReport> {
  const script = join(work, 'random-reader.mjs');
  const planFile = join(work, `plan-${plan.seed}-${Math.random().toString(16).slice(2)}.json`);
  await writeFile(script, READER_SCRIPT);
  await writeFile(planFile, JSON.stringify(plan));
  return new Promise((resolve, reject) => {
    // Every reader may block in read() for the read timeout: with libuv's default 4 threads,
    // opens and closes of other readers would queue behind them and count as read latency.
    const threads = String(Math.min(1024, plan.concurrency * 2 + 4));
    const child = spawn(process.execPath, [script, planFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, UV_THREADPOOL_SIZE: threads },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), plan.durationMs + graceMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0)
        return reject(new Error(`reader exited with ${code ?? signal} (hung reads are killed after the grace period):\n${err}`));
      resolve(JSON.parse(out) as ReadReport);
    });
  });
}

/** VmRSS of a process in bytes (from /proc/<pid>/status). */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}
