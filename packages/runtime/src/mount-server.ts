// The detached process that serves one image's lazy mount: `clip mount <archive> <dir>`
// started in its own session, so the mount outlives the process that asked for it (a
// container, a bundle, a snapshotter restart). Reusing `clip mount` means every improvement of
// it (e.g. surviving the death of its serving process) applies here too.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { open, readFile, statfs } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isMounted } from '@clip/mounter';
import { MountServerError } from './errors.js';

export interface MountServerSpec {
  /** argv that runs the `clip` CLI, e.g. [process.execPath, '/path/to/cli/dist/main.js']. */
  clipCommand: string[];
  /** Local .clip path or http(s) URL. */
  archive: string;
  mountpoint: string;
  /** stdout+stderr of the server. */
  logFile: string;
  /** Extra `clip mount` options (--cache-dir, --memory-cache, ...). */
  mountArgs: string[];
  /** Serve Prometheus metrics here (host:port), for bytes-fetched figures. */
  metrics?: string;
  timeoutMs?: number;
}

/** argv of the clip CLI: the workspace's @clip/cli when resolvable, else `clip` on PATH. */
export function defaultClipCommand(): string[] {
  try {
    // The CLI package's `bin` (its package.json is resolvable whatever its exports say).
    const manifest = createRequire(import.meta.url).resolve('@clip/cli/package.json');
    const bin = (JSON.parse(readFileSync(manifest, 'utf8')) as { bin?: Record<string, string> }).bin?.['clip'];
    const main = bin ? join(dirname(manifest), bin) : undefined;
    if (main && existsSync(main)) return [process.execPath, main];
  } catch {
    // not installed next to us
  }
  return ['clip'];
}

/** A free loopback port (bound then released; the server binds it a moment later). */
export async function freeLoopbackAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.listen(0, '127.0.0.1', resolve).once('error', reject));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new MountServerError('cannot find a free loopback port for metrics');
  return `127.0.0.1:${address.port}`;
}

async function logTail(path: string): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const lines = text.trim().split('\n').filter(Boolean);
  const error = lines.reverse().find((line) => /level=error|clip: (error|internal error)/.test(line));
  return (error ?? lines[0] ?? '(no output)').slice(0, 2000);
}

/** Starts the server detached and waits until the mount is live; returns its pid. */
export async function startMountServer(spec: MountServerSpec): Promise<number> {
  const [command, ...prefix] = spec.clipCommand;
  if (!command) throw new MountServerError('empty clip command');
  const log = await open(spec.logFile, 'a');
  const args = [...prefix, 'mount', spec.archive, spec.mountpoint, ...spec.mountArgs, ...(spec.metrics ? ['--metrics', spec.metrics] : [])];
  const child = spawn(command, args, { detached: true, stdio: ['ignore', log.fd, log.fd] });
  await log.close();
  let exit: string | undefined;
  child.once('exit', (code, signal) => (exit = signal ? `killed by ${signal}` : `exit code ${code}`));
  child.once('error', (error) => (exit = error.message));
  child.unref();
  const deadline = Date.now() + (spec.timeoutMs ?? 60_000);
  for (;;) {
    if (exit !== undefined) {
      throw new MountServerError(`the mount server for ${spec.archive} stopped (${exit}): ${await logTail(spec.logFile)}`);
    }
    if (await isMounted(spec.mountpoint)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new MountServerError(`the mount server for ${spec.archive} did not mount ${spec.mountpoint} in time`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  if (child.pid === undefined) throw new MountServerError(`cannot start ${command}`);
  return child.pid;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid is alive and is the server of this mountpoint (not a recycled pid). */
async function isServerProcess(pid: number, mountpoint: string): Promise<boolean> {
  if (!pidAlive(pid)) return false;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.split('\0').includes(mountpoint);
}

/** Alive = its process runs, the mount is in the mount table, and the kernel still reaches it (no ENOTCONN). */
export async function mountServerAlive(pid: number, mountpoint: string): Promise<boolean> {
  if (!(await isServerProcess(pid, mountpoint)) || !(await isMounted(mountpoint))) return false;
  // A server that does not answer statfs in time counts as dead too (a hung mount must not
  // hang every acquire behind it).
  let timer: NodeJS.Timeout | undefined;
  const answered = statfs(mountpoint).then(
    () => true,
    () => false,
  );
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), STATFS_TIMEOUT_MS)));
  try {
    return await Promise.race([answered, late]);
  } finally {
    clearTimeout(timer);
  }
}

const STATFS_TIMEOUT_MS = 10_000;

/** SIGTERM (clip mount unmounts and exits), then SIGKILL after `timeoutMs`. */
export async function stopMountServer(pid: number, mountpoint: string, timeoutMs = 10_000): Promise<void> {
  if (!(await isServerProcess(pid, mountpoint))) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
}

/** Compressed bytes the server fetched so far (its Prometheus counter), or undefined. */
export async function fetchedBytes(metrics: string | undefined): Promise<number | undefined> {
  if (!metrics) return undefined;
  try {
    const response = await fetch(`http://${metrics}/metrics`, { signal: AbortSignal.timeout(2000) });
    const text = await response.text();
    const match = /^clip_fetch_bytes_total\s+(\d+(?:\.\d+)?(?:e\+?\d+)?)/m.exec(text);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}
