// `npm run demo`: clip end to end on this machine, one step at a time with timings. Starts a
// throwaway registry on 127.0.0.1, builds a fixture image into a local OCI layout, publishes
// it with `clip publish` (index the local layout + push, in parallel, then the archive as a
// referrer), cross-checks the pushed image with skopeo, then plays a fresh runtime worker:
// `clip mount <registry ref>` with an empty cache, reads every file through the mount and
// compares it with the fixture's expected bytes, and reports what was fetched. Everything
// it started is stopped and removed at the end, also on failure or Ctrl-C.
//
// Extending: append to STEPS. Each step gets the shared context (add fields as needed) and
// returns a one-line summary. To avoid a workspace dependency cycle (indexer/mounter tests
// depend on this package), later steps should drive the built CLI as a child process
// (`node apps/cli/dist/main.js ...`) rather than import those packages.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatSize } from '@clip/shared';
import { buildFixture, FIXTURE_NAMES, FIXTURES, type BuiltLayout, type FixtureName } from './fixtures.js';
import { freePort, startRegistry, type RunningRegistry } from './registry.js';
import { runTool, skopeoInspect } from './tools.js';

export interface DemoContext {
  /** Temporary directory for everything the demo writes. */
  work: string;
  fixture: FixtureName;
  registry?: RunningRegistry;
  layout?: BuiltLayout;
  /** `docker://127.0.0.1:<port>/demo/<fixture>:<tag>` once pushed. */
  remoteRef?: string;
  /** The running `clip mount` of the fresh worker, with its Prometheus metrics address. */
  mount?: { child: ChildProcess; mountpoint: string; stderr(): string; metricsUrl?: string };
  /** Runs at cleanup, last registered first. */
  defer(cleanup: () => Promise<void>): void;
}

export interface DemoStep {
  title: string;
  run(ctx: DemoContext): Promise<string>;
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`demo step needs ${what} from an earlier step`);
  return value;
}

export const STEPS: DemoStep[] = [
  {
    title: 'start a registry on 127.0.0.1 (temporary storage)',
    async run(ctx) {
      const registry = await startRegistry();
      ctx.registry = registry;
      ctx.defer(() => registry.stop());
      return `docker-registry serving ${registry.url}`;
    },
  },
  {
    title: 'build the fixture image into a local OCI layout',
    async run(ctx) {
      const layout = await buildFixture(ctx.fixture, join(ctx.work, 'layout'));
      ctx.layout = layout;
      const layers = layout.image.layers
        .map((l) => `${l.compression} ${formatSize(l.size)} (tar ${formatSize(l.uncompressedSize)})`)
        .join(', ');
      return `${layout.ref}: ${layout.expected.size} paths; layers: ${layers}`;
    },
  },
  {
    title: 'clip publish: index the local layout and push the image in parallel, then the archive',
    async run(ctx) {
      const layout = need(ctx.layout, 'a layout');
      const registry = need(ctx.registry, 'a registry');
      const target = `${registry.host}/demo/${ctx.fixture}:${layout.tag}`;
      ctx.remoteRef = `docker://${target}`;
      const { stdout } = await runClip(['publish', layout.ref, target, '-o', join(ctx.work, 'image.clip'), '--json', '--no-progress']);
      const summary = JSON.parse(stdout) as Record<string, unknown>;
      return `published ${target}: ${JSON.stringify(pick(summary, ['archiveBytes', 'bytesPushed', 'indexNetworkBytes', 'seconds', 'stages']))}`;
    },
  },
  {
    title: 'cross-check the pushed image with skopeo',
    async run(ctx) {
      const layout = need(ctx.layout, 'a layout');
      const summary = await skopeoInspect(need(ctx.remoteRef, 'a pushed image'));
      const same = summary.Layers.join() === layout.image.layers.map((l) => l.digest).join();
      if (!same) throw new Error(`registry serves layers ${summary.Layers.join(', ')}, expected the layout's`);
      return `manifest ${summary.Digest}, ${summary.Layers.length} layers, digests identical to the layout`;
    },
  },
  {
    title: 'fresh worker: clip mount <registry ref> with an empty cache (archive bound by the index at the tag)',
    async run(ctx) {
      const ref = need(ctx.remoteRef, 'a pushed image').replace(/^docker:\/\//, '');
      const mountpoint = join(ctx.work, 'mnt');
      const worker = join(ctx.work, 'worker');
      await mkdir(mountpoint, { recursive: true });
      await mkdir(worker, { recursive: true });
      const metricsAddress = `127.0.0.1:${await freePort()}`;
      const mount = await startClipMount(ref, mountpoint, ['--cache-dir', join(worker, 'cache'), '--metrics', metricsAddress], {
        ...process.env,
        CLIP_ARCHIVE_CACHE: join(worker, 'archives'),
      });
      ctx.mount = { ...mount, metricsUrl: `http://${metricsAddress}/metrics` };
      ctx.defer(async () => {
        await stopClipMount(mount);
      });
      const line = mount
        .stderr()
        .split('\n')
        .find((l) => l.includes('cached source image reference from metadata'));
      return `mounted at ${mountpoint}; ${line ? line.replace(/^.*msg=/, 'log: ') : 'storage reference read from the archive'}`;
    },
  },
  {
    title: 'read one small file: only the bytes it needs cross the network',
    async run(ctx) {
      const layout = need(ctx.layout, 'a layout');
      const mount = need(ctx.mount, 'a mount');
      const files = [...layout.expected].filter(([, node]) => node.type === 'file' && node.sha256 !== undefined && (node.size ?? 0) > 0);
      const smallest = files.sort(([, a], [, b]) => (a.size ?? 0) - (b.size ?? 0))[0];
      if (!smallest) return 'no regular file in this image';
      const [path, node] = smallest;
      const data = await readFile(join(mount.mountpoint, path));
      const sha256 = createHash('sha256').update(data).digest('hex');
      if (sha256 !== node.sha256) throw new Error(`${path}: read ${sha256} through the mount, expected ${node.sha256}`);
      const fetched = mount.metricsUrl ? await fetchedBytes(mount.metricsUrl) : undefined;
      const imageBytes = layout.image.layers.reduce((sum, layer) => sum + layer.size, 0);
      return `${path} (${formatSize(data.length)}) correct; fetched ${fetched === undefined ? '?' : formatSize(fetched)} of the ${formatSize(imageBytes)} image`;
    },
  },
  {
    title: 'read every file through the mount and compare with the image',
    async run(ctx) {
      const layout = need(ctx.layout, 'a layout');
      const mount = need(ctx.mount, 'a mount');
      let files = 0;
      let bytes = 0;
      for (const [path, node] of layout.expected) {
        if (node.type !== 'file' || node.sha256 === undefined) continue;
        // Async reads from this process: the FUSE server is another process.
        const data = await readFile(join(mount.mountpoint, path));
        const sha256 = createHash('sha256').update(data).digest('hex');
        if (sha256 !== node.sha256) throw new Error(`${path}: read ${sha256} through the mount, expected ${node.sha256}`);
        files++;
        bytes += data.length;
      }
      return `${files} files, ${formatSize(bytes)}, byte-for-byte identical`;
    },
  },
  {
    title: 'unmount and report what the fresh worker fetched',
    async run(ctx) {
      const mount = need(ctx.mount, 'a mount');
      const metrics = await stopClipMount(mount);
      ctx.mount = undefined;
      if (!metrics) return 'unmounted (no metrics printed)';
      const keys = ['fetchRequests', 'fetchBytes', 'readBytes', 'memoryCacheHits', 'memoryCacheMisses', 'digestMismatches', 'readErrors'];
      return `unmounted; ${keys.map((key) => `${key}=${String(metrics[key])}`).join(' ')}`;
    },
  },
];

/** The built `clip` command (apps/cli/dist/main.js), driven as a child process. */
const CLIP = fileURLToPath(new URL('../../../apps/cli/dist/main.js', import.meta.url));

function pick(record: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((key) => key in record).map((key) => [key, record[key]]));
}

async function runClip(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIP, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`clip ${args[0]} exited with ${code}:\n${stderr}`));
    });
  });
}

interface ClipMount {
  child: ChildProcess;
  mountpoint: string;
  stderr(): string;
}

async function startClipMount(ref: string, mountpoint: string, args: string[], env: NodeJS.ProcessEnv): Promise<ClipMount> {
  const child = spawn(process.execPath, [CLIP, 'mount', ref, mountpoint, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const mount = { child, mountpoint, stderr: () => stderr };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`clip mount did not come up within 60 s:\n${stderr}`)), 60_000);
    child.stderr.on('data', () => {
      if (/msg="mounted"/.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`clip mount exited with ${code}:\n${stderr}`));
    });
  }).catch(async (error: unknown) => {
    await stopClipMount(mount);
    throw error;
  });
  return mount;
}

/** Bytes fetched so far, from the mount's Prometheus endpoint. */
async function fetchedBytes(metricsUrl: string): Promise<number | undefined> {
  const text = await (await fetch(metricsUrl)).text();
  const match = /^clip_fetch_bytes_total (\d+)/m.exec(text);
  return match ? Number(match[1]) : undefined;
}

/** SIGTERM (clean unmount), wait, and return the metrics summary the mount prints on exit. */
async function stopClipMount(mount: ClipMount): Promise<Record<string, unknown> | undefined> {
  const { child } = mount;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
  // A mount process that had to be killed leaves a stale mount behind: detach it.
  await runTool('fusermount3', ['-uz', mount.mountpoint]).catch(() => {});
  const line = mount
    .stderr()
    .split('\n')
    .find((l) => l.startsWith('{"metrics"'));
  return line ? (JSON.parse(line) as { metrics: Record<string, unknown> }).metrics : undefined;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

export async function runDemo(fixture: FixtureName, out: (line: string) => void = console.log): Promise<void> {
  const cleanups: Array<() => Promise<void>> = [];
  const work = await mkdtemp(join(tmpdir(), 'clip-demo-'));
  // maxRetries: a step interrupted by Ctrl-C may still be writing into work.
  cleanups.push(() => rm(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }));
  const ctx: DemoContext = { work, fixture, defer: (cleanup) => cleanups.push(cleanup) };

  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const fn of cleanups.reverse()) await fn().catch((error: Error) => out(`cleanup failed: ${error.message}`));
    })());
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    out(`\n${signal}: cleaning up`);
    void cleanup().then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  out(`clip demo: fixture "${fixture}" — ${FIXTURES[fixture].description}`);
  const started = Date.now();
  try {
    for (const [i, step] of STEPS.entries()) {
      if (interrupted) return;
      out(`[${i + 1}/${STEPS.length}] ${step.title}`);
      const t = Date.now();
      const summary = await step.run(ctx);
      if (interrupted) return;
      out(`      ${summary} (${seconds(Date.now() - t)})`);
    }
    out(`done in ${seconds(Date.now() - started)}`);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  const fixture = (process.argv[2] ?? 'layers') as FixtureName;
  if (!FIXTURE_NAMES.includes(fixture)) {
    console.error(`unknown fixture ${fixture}; one of: ${FIXTURE_NAMES.join(', ')}`);
    process.exit(2);
  }
  runDemo(fixture).catch((error: Error) => {
    console.error(`demo failed: ${error.message}`);
    process.exitCode = 1;
  });
}
