// A private containerd (own root, state, socket; CRI disabled) and, when asked, a remote
// snapshotter daemon (stargz-snapshotter, clip's) as its proxy snapshotter. Both run inside the bench's network namespace
// (nsenter --net only, so their FUSE and overlay mounts stay visible), so every registry
// byte they fetch crosses the shaped link. stop() leaves no process or mount behind.
import type { ChildProcess } from 'node:child_process';
import { access, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { onCleanup } from '../util/cleanup.js';
import { run, startProcess, stopProcess, type RunOptions, type RunResult } from '../util/exec.js';

export const CTR_NAMESPACE = 'clipbench';

export interface Containerd {
  dir: string;
  address: string;
  /** `ctr` (or `ctr-remote`) against this containerd, inside the namespace. */
  ctr(args: string[], options?: RunOptions & { tool?: 'ctr' | 'ctr-remote' }): Promise<RunResult>;
  stop(): Promise<void>;
}

export interface ContainerdOptions {
  dir: string;
  netns: string;
  /** A proxy snapshotter daemon started first (inside the namespace) and registered under `name`. */
  snapshotter?: ProxySnapshotter;
}

export interface ProxySnapshotter {
  name: string;
  /** Command line of the daemon serving containerd's snapshots API on `socket`, keeping its state in `root`. */
  argv(socket: string, root: string): string[];
}

/** stargz-snapshotter (our stargz-grpc build) as proxy snapshotter "stargz". */
export function stargzSnapshotter(binary: string, args: string[] = []): ProxySnapshotter {
  return { name: 'stargz', argv: (socket, root) => [binary, '-address', socket, '-root', root, ...args] };
}

async function waitFor(
  check: () => Promise<boolean>,
  child: ChildProcess,
  what: string,
  output: () => string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited: ${output().slice(-1500)}`);
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms: ${output().slice(-1500)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

function capture(child: ChildProcess): () => string {
  let text = '';
  const keep = (chunk: Buffer) => {
    text = (text + chunk.toString()).slice(-50_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => text;
}

/** Lazily unmounts everything under `dir` (FUSE layers, overlay rootfs), deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  const listed = await run('findmnt', ['-rn', '-o', 'TARGET'], { allowFailure: true });
  const targets = listed.stdout
    .split('\n')
    .map((line) => line.replace(/\\x20/g, ' '))
    .filter((target) => target.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const target of targets) await run('umount', ['-l', target], { allowFailure: true });
}

/**
 * Processes whose command line names `dir`: helpers the daemons spawned detached (clip's
 * snapshotter keeps its image mounts running across its own restarts). All are ours: `dir` is
 * this worker's private directory.
 */
async function processesUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').some((arg) => arg === dir || arg.startsWith(`${dir}/`))) pids.push(Number(entry));
  }
  return pids;
}

async function stopProcessesUnder(dir: string): Promise<void> {
  const signal = (pids: number[], name: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, name);
      } catch {
        // already gone
      }
    }
  };
  signal(await processesUnder(dir), 'SIGTERM');
  for (let i = 0; i < 50; i++) {
    const left = await processesUnder(dir);
    if (left.length === 0) return;
    if (i === 49) signal(left, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A private containerd's config: own root, state, sockets; CRI off; optionally one proxy snapshotter. */
export function containerdConfig(dir: string, address: string, proxy?: { name: string; address: string }): string {
  return [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    '[grpc]',
    `  address = "${address}"`,
    '[ttrpc]',
    `  address = "${address}.ttrpc"`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    '  disable = true',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${join(dir, 'opt')}"`,
    ...(proxy ? [`[proxy_plugins.${proxy.name}]`, '  type = "snapshot"', `  address = "${proxy.address}"`] : []),
    '',
  ].join('\n');
}

export async function startContainerd(options: ContainerdOptions): Promise<Containerd> {
  const { dir, netns } = options;
  await mkdir(dir, { recursive: true });
  const address = join(dir, 'containerd.sock');
  const snapshotter = options.snapshotter;
  const snapshotterSocket = join(dir, 'snapshotter', 'snapshotter.sock');
  const config = containerdConfig(dir, address, snapshotter ? { name: snapshotter.name, address: snapshotterSocket } : undefined);
  await writeFile(join(dir, 'config.toml'), config);

  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of children.reverse()) await stopProcess(child, 5000);
    await unmountUnder(dir);
    await stopProcessesUnder(dir);
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
  };
  const dispose = onCleanup(`stop containerd ${dir}`, stop);
  try {
    if (snapshotter) {
      await mkdir(join(dir, 'snapshotter'), { recursive: true });
      const [command, ...args] = snapshotter.argv(snapshotterSocket, join(dir, 'snapshotter', 'root'));
      const daemon = startProcess(command!, args, { netns });
      children.push(daemon);
      const output = capture(daemon);
      await waitFor(() => exists(snapshotterSocket), daemon, `${snapshotter.name} snapshotter`, output);
    }
    const daemon = startProcess('containerd', ['--config', join(dir, 'config.toml')], { netns });
    children.push(daemon);
    const output = capture(daemon);
    await waitFor(
      async () => (await run('ctr', ['--address', address, 'version'], { allowFailure: true })).code === 0,
      daemon,
      'containerd',
      output,
    );
  } catch (error) {
    dispose();
    await stop();
    throw error;
  }
  return {
    dir,
    address,
    ctr: (args, runOptions = {}) =>
      run(runOptions.tool ?? 'ctr', ['--address', address, '--namespace', CTR_NAMESPACE, ...args], {
        timeoutMs: 30 * 60_000,
        ...runOptions,
        netns,
      }),
    stop: async () => {
      dispose();
      await stop();
    },
  };
}
