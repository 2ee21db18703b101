// A small busybox image (static busybox from Debian's busybox-static, an /etc/passwd with a
// non-root user) built with the testkit's layout builder, published with the BUILT cli to a
// real registry; the built cli run in child processes; leftovers detected and cleaned up.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildLayout, mountsUnder, startRegistry, type EntrySpec, type RunningRegistry } from '@clip/testkit';
import { pidAlive } from '../src/mount-server.js';

export { mountsUnder };

export const run = promisify(execFile);
export const CLI = new URL('../../../apps/cli/dist/main.js', import.meta.url).pathname;
export const BUSYBOX = '/bin/busybox';

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `clip-${prefix}-`));
}

const APPLETS = ['sh', 'id', 'pwd', 'echo', 'sleep', 'cat', 'env', 'ls', 'touch', 'true', 'hostname'];

export const TEST_IMAGE_CONFIG = {
  Cmd: ['sh', '-c', 'echo "hello from $GREETING in $(pwd) as $(id -un)"'],
  Env: ['GREETING=clip', 'VAR=from-image'],
  WorkingDir: '/work',
  User: 'app',
  Labels: { 'org.example.role': 'test' },
  StopSignal: 'SIGTERM',
};

/** Busybox image layout: Cmd/Env/WorkingDir/User set; user `app` (1000:1000, also in group `extra` 2000). */
export async function buildBusyboxLayout(dir: string, tag = 'v1', labels: Record<string, string> = {}) {
  const busybox = new Uint8Array(await readFile(BUSYBOX));
  const entries: EntrySpec[] = [
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/busybox', mode: 0o755, content: busybox },
    ...APPLETS.map((name): EntrySpec => ({ type: 'symlink', path: `bin/${name}`, target: 'busybox' })),
    { type: 'dir', path: 'etc' },
    { type: 'file', path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' },
    { type: 'file', path: 'etc/group', content: 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n' },
    { type: 'dir', path: 'home/app', uid: 1000, gid: 1000 },
    { type: 'dir', path: 'work', uid: 1000, gid: 1000 },
    { type: 'file', path: 'work/data.txt', content: 'image data\n' },
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    { type: 'dir', path: 'root', mode: 0o700 },
  ];
  return buildLayout(dir, {
    tag,
    layers: [{ compression: 'gzip', entries }],
    config: { ...TEST_IMAGE_CONFIG, Labels: { ...TEST_IMAGE_CONFIG.Labels, ...labels } },
  });
}

/** Builds the busybox image and `clip publish`es it; returns the registry reference. */
export async function publishBusybox(registry: RunningRegistry, work: string, name = 'busybox'): Promise<string> {
  const layout = await buildBusyboxLayout(join(work, `${name}-layout`));
  const ref = `${registry.host}/test/${name}:v1`;
  await run(process.execPath, [CLI, 'publish', layout.ref, ref], { env: { ...process.env, CLIP_LOG_LEVEL: 'warn' } });
  return ref;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  output(): { stdout: string; stderr: string };
  done: Promise<CliResult>;
}

export function startCli(args: string[], env: Record<string, string> = {}, input?: string): RunningCli {
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  if (input !== undefined) child.stdin!.end(input);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<CliResult>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, output: () => ({ stdout, stderr }), done };
}

export async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return startCli(args, env).done;
}

/** Detaches every mount below `dir` (deepest first) and kills mount servers recorded there. */
export async function cleanupStateDir(dir: string): Promise<void> {
  const servers = await run('sh', ['-c', `cat ${dir}/mounts/*/server.json 2>/dev/null || true`]).then((r) => r.stdout);
  const pids = [...servers.matchAll(/"pid": (\d+)/g)].map((match) => Number(match[1]));
  for (const pid of pids) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  // kill() returns before the process is gone: wait, so nothing still writes (a cache block)
  // into the directories the caller removes next.
  for (const deadline = Date.now() + 10_000; pids.some(pidAlive) && Date.now() < deadline; )
    await new Promise((resolve) => setTimeout(resolve, 50));
  const mounts = (await mountsUnder(dir)).sort((a, b) => b.path.length - a.path.length);
  for (const mount of mounts) await run('umount', ['-l', mount.path]).catch(() => undefined);
  await run('sh', [
    '-c',
    `for c in $(runc --root ${dir}/runtime list -q 2>/dev/null); do runc --root ${dir}/runtime delete --force $c; done`,
  ]).catch(() => undefined);
}

export interface RuntimeTestWorld {
  registry: RunningRegistry;
  work: string;
  stateDir: string;
  /** The published busybox image reference. */
  image: string;
  /** Stops everything the tests may have left (mount servers, mounts, containers), removes the work dir. */
  close(): Promise<void>;
}

/** A registry with the busybox image published, a private work dir, state dir and caches. */
export async function startRuntimeWorld(name: string): Promise<RuntimeTestWorld> {
  const registry = await startRegistry();
  const work = await tempDir(name);
  const stateDir = join(work, 'state');
  // Archive and block caches of the CLI children: private to this test.
  process.env['XDG_CACHE_HOME'] = join(work, 'xdg-cache');
  process.env['CLIP_ARCHIVE_CACHE'] = join(work, 'archives');
  const image = await publishBusybox(registry, work);
  return {
    registry,
    work,
    stateDir,
    image,
    close: async () => {
      // Containers the tests ran with runc directly (their own --root under work) first.
      await run('sh', [
        '-c',
        `for c in $(runc --root ${work}/runc-root list -q 2>/dev/null); do runc --root ${work}/runc-root delete --force $c; done`,
      ]).catch(() => undefined);
      await cleanupStateDir(stateDir);
      for (const mount of (await mountsUnder(work)).sort((a, b) => b.path.length - a.path.length))
        await run('umount', ['-l', mount.path]).catch(() => undefined);
      await registry.stop();
      // Retried: a serving process that ended just before may have left a last write landing.
      await rm(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
}
