// Shared by the mount and cat tests: images pushed to a real registry and indexed into
// .clip archives (copied alone into a fresh directory, so nothing can read the layout), the
// BUILT cli run in child processes, and cleanup that survives failures.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll } from 'vitest';
import { createArchive } from '@clip/indexer';
import {
  buildFixture,
  childExit,
  type FixtureName,
  mountsUnder,
  readTree,
  type RunningRegistry,
  skopeoCopy,
  type Tree,
  umociUnpack,
} from '@clip/testkit';

export const run = promisify(execFile);
export const CLI = new URL('../dist/main.js', import.meta.url).pathname;

const created: string[] = [];

/** A fresh directory under the system temp dir, removed after the test file (see below). */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `clip-${prefix}-`));
  created.push(dir);
  return dir;
}

// Registered when a test file imports this module, so it runs after that file's own afterAll
// hooks (stack order): whatever temp directory a test did not remove itself (caches, mountpoints
// of failed tests) goes, unless something is still mounted in it (never delete through a mount).
afterAll(async () => {
  for (const dir of created.splice(0)) {
    if ((await mountsUnder(dir).catch(() => [])).length > 0) continue;
    await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 200 }).catch(() => {});
  }
});

export interface PreparedImage {
  /** The .clip, alone in its own directory. */
  archive: string;
  /** umoci's unpacked rootfs of the same image. */
  rootfs: string;
  /** readTree(rootfs). */
  expected: Tree;
  storageRef: string;
}

/** Pushes a layout to the registry, indexes it with that storage reference, unpacks it with umoci. */
export async function prepareLayout(
  registry: RunningRegistry,
  work: string,
  name: string,
  layout: { ref: string; umociRef: string; tag: string },
  spanSize = 64 * 1024,
): Promise<PreparedImage> {
  const storageRef = `${registry.host}/images/${name}:${layout.tag}`;
  await skopeoCopy(layout.ref, `docker://${storageRef}`);
  const built = join(work, `${name}-build.clip`);
  await createArchive({ source: layout.ref, storageRef, output: built, spanSize, workers: false });
  const fresh = join(work, `${name}-worker`);
  await mkdir(fresh, { recursive: true });
  const archive = join(fresh, `${name}.clip`);
  await copyFile(built, archive);
  const rootfs = await umociUnpack(layout.umociRef, join(work, `${name}-bundle`));
  return { archive, rootfs, expected: await readTree(rootfs), storageRef };
}

export async function prepareFixture(registry: RunningRegistry, work: string, name: FixtureName): Promise<PreparedImage> {
  const layout = await buildFixture(name, join(work, `${name}-layout`));
  const prepared = await prepareLayout(registry, work, name, layout);
  // Directories the layers only imply get umoci's unpack time: no mtime to compare there.
  for (const [path, node] of layout.expected) {
    const unpacked = prepared.expected.get(path);
    if (node.mtime === undefined && unpacked) delete unpacked.mtime;
  }
  return prepared;
}

export interface RunningMount {
  child: ChildProcess;
  mountpoint: string;
  stderr(): string;
  alive(): boolean;
  /** SIGTERM, wait for exit, return the JSON metrics summary printed on exit. */
  stop(): Promise<Record<string, number> | undefined>;
}

/** Starts `clip mount <archive> <mountpoint> ...args` and waits for its `mounted` log line. */
export async function startMount(
  archive: string,
  mountpoint: string,
  args: string[] = [],
  options: { env?: NodeJS.ProcessEnv } = {},
): Promise<RunningMount> {
  const child = spawn(process.execPath, [CLI, 'mount', archive, mountpoint, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const handle: RunningMount = {
    child,
    mountpoint,
    stderr: () => stderr,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (handle.alive()) child.kill('SIGTERM');
      await childExit(child, { killAfterMs: 15_000 });
      await run('fusermount3', ['-uz', mountpoint]).catch(() => {});
      const line = stderr.split('\n').find((l) => l.startsWith('{"metrics"'));
      return line ? (JSON.parse(line) as { metrics: Record<string, number> }).metrics : undefined;
    },
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`mount did not come up in time:\n${stderr}`)), 60_000);
      child.stderr!.on('data', () => {
        // The first serving process logs `serving reads` (its pid) right after `mounted`.
        if (/msg="mounted"/.test(stderr) && /msg="serving reads"/.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`clip mount exited with ${code}:\n${stderr}`));
      });
    });
  } catch (error) {
    await handle.stop();
    throw error;
  }
  return handle;
}

/** The pid of the process serving a `clip mount` now: its latest `serving reads pid=…` line. */
export function servingPid(mount: RunningMount): number {
  const pids = [...mount.stderr().matchAll(/msg="serving reads" pid=(\d+)/g)].map((match) => Number(match[1]));
  if (pids.length === 0) throw new Error(`no "serving reads" line yet:\n${mount.stderr()}`);
  return pids[pids.length - 1]!;
}

/** Waits until `pid` has exited (a zombie has closed its files already: that counts). */
export async function processGone(pid: number): Promise<void> {
  for (;;) {
    try {
      if (/^\d+ \(.*\) Z/.test(await readFile(`/proc/${pid}/stat`, 'utf8'))) return;
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Runs the built cli; never throws on a non-zero exit. */
export async function runCli(
  args: string[],
  options: { timeoutMs?: number; env?: Record<string, string | undefined> } = {},
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = { ...process.env, ...options.env };
    for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    const out: Buffer[] = [];
    let err = '';
    child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/** Runs a shell command (a child process: never touch the mount synchronously from here). */
export async function sh(script: string, timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('sh', ['-c', script], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

export async function removeAll(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true }).catch(() => {});
}

/** Stops the mounts a test started and removes their mountpoints (an afterEach). */
export async function stopMounts(mounts: RunningMount[]): Promise<void> {
  for (const mount of mounts.splice(0)) {
    await mount.stop();
    await removeAll(mount.mountpoint);
  }
}
