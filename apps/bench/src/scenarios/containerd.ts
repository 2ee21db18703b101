// containerd end to end, from "pull" to the workload's output, same image and shaped link:
// containerd's default overlayfs snapshotter (ctr image pull: full download + unpack, then
// ctr run) versus `clip snapshotter` (ctr-remote image rpull: no layer download, then ctr run
// on the lazy mount). containerd and the snapshotter join the link's network namespace only
// (nsenter --net), so the image mounts stay visible to containerd.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultCliPath } from '../clip/cli.js';
import { containerdConfig } from '../peers/containerd.js';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import { inNetns, run } from '../util/exec.js';
import { median } from '../util/stats.js';
import type { BenchContext, PublishedImage } from './context.js';

const NAMESPACE = 'clipbench';

interface Daemons {
  ctr(args: string[], tool?: 'ctr' | 'ctr-remote'): Promise<string>;
  stop(): Promise<void>;
}

async function waitForSocket(path: string, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    if (
      await stat(path).then(
        (s) => s.isSocket(),
        () => false,
      )
    )
      return;
    await sleep(100);
  }
  throw new Error(`${what} did not create ${path}`);
}

function start(netns: string, command: string, args: string[]): ChildProcess {
  const [cmd, argv] = inNetns(netns, command, args);
  return spawn(cmd, argv, { stdio: 'ignore' });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  for (let i = 0; i < 100 && child.exitCode === null && child.signalCode === null; i++) await sleep(100);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** A private containerd (root, state, socket in `dir`), optionally with clip as proxy snapshotter. */
async function startDaemons(context: BenchContext, dir: string, withClip: boolean): Promise<Daemons> {
  const address = join(dir, 'c.sock');
  const clipSocket = join(dir, 'clip.sock');
  const children: ChildProcess[] = [];
  if (withClip) {
    const snap = start(context.link.netns, process.execPath, [
      defaultCliPath(),
      'snapshotter',
      '--address',
      clipSocket,
      '--root',
      join(dir, 'clip'),
      '--state-dir',
      join(dir, 'mounts'),
    ]);
    children.push(snap);
    await waitForSocket(clipSocket, snap, 'clip snapshotter');
  }
  const config = containerdConfig(dir, address, withClip ? { name: 'clip', address: clipSocket } : undefined);
  await writeFile(join(dir, 'config.toml'), config);
  const containerd = start(context.link.netns, 'containerd', ['--config', join(dir, 'config.toml')]);
  children.push(containerd);
  await waitForSocket(address, containerd, 'containerd');
  return {
    ctr: async (args, tool = 'ctr') =>
      (await run(tool, ['--address', address, '--namespace', NAMESPACE, ...args], { netns: context.link.netns, timeoutMs: 60 * 60_000 }))
        .stdout,
    stop: async () => {
      for (const child of children.reverse()) await stopChild(child);
      // Image mounts outlive the snapshotter by design: stop them and anything left mounted.
      const keys = await readdir(join(dir, 'mounts', 'mounts')).catch(() => [] as string[]);
      for (const key of keys) {
        const server = await readFile(join(dir, 'mounts', 'mounts', key, 'server.json'), 'utf8').then(
          (t) => JSON.parse(t) as { pid: number },
          () => undefined,
        );
        try {
          if (server) process.kill(server.pid, 'SIGTERM');
        } catch {
          // gone already
        }
      }
      await sleep(500);
      const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((l) => l.split(' ')[4] ?? '');
      for (const point of mounts.filter((p) => p.startsWith(`${dir}/`)).reverse())
        await run('umount', ['-l', point]).catch(() => undefined);
    },
  };
}

interface Measurement {
  seconds: number;
  pullSeconds: number;
  bytes: number;
}

async function measure(context: BenchContext, image: PublishedImage, command: string, withClip: boolean): Promise<Measurement> {
  // Short paths: unix socket names are limited to 108 bytes.
  const dir = await mkdtemp(join(tmpdir(), withClip ? 'cb-clip-' : 'cb-ovl-'));
  const daemons = await startDaemons(context, dir, withClip);
  try {
    await context.link.resetCounters();
    const started = performance.now();
    if (withClip) await daemons.ctr(['image', 'rpull', '--plain-http', '--snapshotter', 'clip', image.clientRef], 'ctr-remote');
    else await daemons.ctr(['image', 'pull', '--plain-http', image.clientRef]);
    const pullSeconds = (performance.now() - started) / 1000;
    await daemons.ctr([
      'run',
      '--rm',
      ...(withClip ? ['--snapshotter', 'clip'] : []),
      image.clientRef,
      `bench-${process.pid}`,
      'sh',
      '-c',
      command,
    ]);
    const seconds = (performance.now() - started) / 1000;
    const link = await context.link.resetCounters();
    return { seconds, pullSeconds, bytes: link.bytesDown };
  } finally {
    await daemons.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function containerdStart(context: BenchContext, image: PublishedImage): Promise<ResultRow[]> {
  const base = {
    scenario: 'containerd start + workload',
    variant: 'clip snapshotter (rpull + ctr run)',
    image: image.bench.name,
    profile: context.link.profile.name,
    unit: 's' as const,
    better: 'lower' as const,
    baselineLabel: 'containerd overlayfs (ctr image pull + ctr run)',
  };
  const command = image.bench.workload.command;
  if (!command) {
    // Not applicable (not a failure): the workload runs on the host (the synthetic images' file walks).
    context.log(`  containerd: ${image.bench.name} has no command to run inside a container; not applicable`);
    return [];
  }
  for (const tool of ['containerd', 'ctr', 'ctr-remote', 'runc']) {
    if (
      !(await run('sh', ['-c', `command -v ${tool}`]).then(
        () => true,
        () => false,
      ))
    )
      return [skippedRow(base, `${tool} not installed`)];
  }
  const reason = await context.clip.unavailable('publish');
  if (reason) return [skippedRow(base, reason)];
  // The archive must be findable by the runtime: publish it (referrer) to the image's own repository.
  const scratchArchive = join(context.workDir, `${image.bench.name}-containerd.clip`);
  await context.clip.publish(image.bench.image.reference, image.clientRef, scratchArchive, context.link.netns);

  const baselineRuns: Measurement[] = [];
  const clipRuns: Measurement[] = [];
  for (let i = 0; i < context.repetitions; i++) {
    context.log(`  containerd overlayfs ${image.bench.name} (${i + 1}/${context.repetitions})`);
    baselineRuns.push(await measure(context, image, command, false));
    context.log(`  containerd + clip snapshotter ${image.bench.name} (${i + 1}/${context.repetitions})`);
    clipRuns.push(await measure(context, image, command, true));
  }
  const pick = (runs: Measurement[], key: keyof Measurement) => median(runs.map((r) => r[key]));
  return [
    finishRow({
      ...base,
      baseline: pick(baselineRuns, 'seconds'),
      clip: pick(clipRuns, 'seconds'),
      baselineBytes: pick(baselineRuns, 'bytes'),
      clipBytes: pick(clipRuns, 'bytes'),
      note: `pull phase: ${pick(baselineRuns, 'pullSeconds').toFixed(1)} s vs rpull ${pick(clipRuns, 'pullSeconds').toFixed(1)} s`,
      details: { baselineRuns, clipRuns },
    }),
  ];
}
