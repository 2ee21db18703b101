// Ways a fresh worker can start a container from a registry image, behind one interface so
// each system is one function: prepare/pull + run the workload, timed from the first command
// to the workload's end, with the bytes that crossed the link by then (what a background
// fetch pulls later is not on the start path, the same rule as clip's columns).
import { dirname, join } from 'node:path';
import type { BenchContext, PublishedImage } from '../scenarios/context.js';
import { scratch } from '../scenarios/context.js';
import { run } from '../util/exec.js';
import type { StartMeasurement } from '../scenarios/workers.js';
import type { ClipPublisher, ClipVariant } from './clip-publish.js';
import { stargzSnapshotter, startContainerd, type Containerd, type ProxySnapshotter } from './containerd.js';

export interface StartRunner {
  /** Row label, e.g. "eStargz, no profile". */
  label: string;
  /** The commands measured, for the baseline column. */
  command: string;
  /** One line saying why this runner cannot run here; undefined when it can. */
  unavailable(): Promise<string | undefined>;
  /** One cold start on a fresh worker (fresh daemons, caches and snapshots). */
  start(context: BenchContext, image: PublishedImage): Promise<StartMeasurement>;
}

let containerCounter = 0;

/** Starts a fresh containerd (+ stargz daemon), times `pull` then `ctr run` of the workload, tears down. */
async function containerdStart(
  context: BenchContext,
  image: PublishedImage,
  label: string,
  options: {
    snapshotter?: ProxySnapshotter;
    pull: (containerd: Containerd) => Promise<{ seconds: number }>;
    runArgs: string[];
    ref: string;
  },
): Promise<StartMeasurement> {
  const command = image.bench.workload.command;
  if (!command) throw new Error(`${image.bench.name}: the workload is not a command in the image`);
  const containerd = await startContainerd({
    dir: await scratch(context, `${label}-${image.bench.name}`),
    netns: context.link.netns,
    ...(options.snapshotter ? { snapshotter: options.snapshotter } : {}),
  });
  try {
    await context.link.resetCounters();
    const started = performance.now();
    const pull = await options.pull(containerd);
    const id = `clipbench-${process.pid}-${++containerCounter}`;
    const ran = await containerd.ctr(['run', '--rm', ...options.runArgs, options.ref, id, '/bin/sh', '-c', command]);
    const seconds = (performance.now() - started) / 1000;
    const link = await context.link.resetCounters();
    return { seconds, phases: { pull: pull.seconds, run: ran.seconds }, link };
  } finally {
    await containerd.stop();
  }
}

/** eStargz through containerd + stargz-snapshotter: `ctr-remote image rpull`, then `ctr run`. */
export function estargzRunner(
  label: string,
  ref: string | undefined,
  stargzBinary: string | undefined,
  skip: string | undefined,
  daemonArgs: string[] = [],
): StartRunner {
  return {
    label,
    command: `ctr-remote image rpull + ctr run (stargz snapshotter${daemonArgs.length ? ` ${daemonArgs.join(' ')}` : ''})`,
    unavailable: async () => skip ?? (ref && stargzBinary ? undefined : 'eStargz image or snapshotter not available'),
    start: (context, image) =>
      containerdStart(context, image, 'estargz', {
        snapshotter: stargzSnapshotter(stargzBinary!, daemonArgs),
        ref: ref!,
        pull: (containerd) => containerd.ctr(['image', 'rpull', '--plain-http', '--snapshotter', 'stargz', ref!], { tool: 'ctr-remote' }),
        runArgs: ['--snapshotter', 'stargz'],
      }),
  };
}

/** The baseline through the same runtime: `ctr image pull` (fetch + unpack to overlayfs), then `ctr run`. */
export function containerdPullRunner(): StartRunner {
  return {
    label: 'containerd full pull',
    command: 'ctr image pull + ctr run (overlayfs)',
    unavailable: async () => undefined,
    start: (context, image) =>
      containerdStart(context, image, 'ctr-pull', {
        ref: image.clientRef,
        pull: (containerd) => containerd.ctr(['image', 'pull', '--plain-http', image.clientRef]),
        runArgs: [],
      }),
  };
}

/**
 * clip's containerd snapshotter (#18): the image published with `clip publish` (archive as a
 * referrer, bound at the tag; `variant` with or without the access profile) through the link,
 * then a fresh containerd + `clip snapshotter` (private root, state directory and cache),
 * `ctr-remote image rpull` (it reads the same remote-snapshot labels as stargz) and `ctr run`.
 */
export function clipSnapshotterRunner(context: BenchContext, publisher: ClipPublisher, variant: ClipVariant): StartRunner {
  const snapshotter: ProxySnapshotter = {
    name: 'clip',
    // Everything under the worker's directory: the mounts outlive the snapshotter process and
    // containerd.stop() ends and unmounts whatever names that directory.
    argv: (socket, root) => [
      // A fresh worker: no archive or profile cached by an earlier start (the default cache is ~/.cache/clip).
      'env',
      `XDG_CACHE_HOME=${join(dirname(root), 'xdg')}`,
      `CLIP_ARCHIVE_CACHE=${join(dirname(root), 'archives')}`,
      process.execPath,
      context.clip.path,
      'snapshotter',
      '--address',
      socket,
      '--root',
      root,
      '--state-dir',
      join(dirname(root), 'state'),
      '--cache-dir',
      join(dirname(root), 'cache'),
    ],
  };
  return {
    label: `clip containerd snapshotter, ${variant}`,
    command: 'ctr-remote image rpull + ctr run (clip snapshotter)',
    unavailable: async () => {
      const reason = (await context.clip.unavailable('snapshotter')) ?? (await publisher.unavailable(variant));
      return reason ? `runner not available: ${reason}` : undefined;
    },
    start: async (ctx, image) => {
      const ref = await publisher.ref(image, variant);
      return containerdStart(ctx, image, 'clip-snap', {
        snapshotter,
        ref,
        pull: (containerd) => containerd.ctr(['image', 'rpull', '--plain-http', '--snapshotter', 'clip', ref], { tool: 'ctr-remote' }),
        runArgs: ['--snapshotter', 'clip'],
      });
    },
  };
}

/**
 * `clip run` (#16) of the published reference (the archive is found and fetched over the link,
 * as the snapshotter does): lazy mount + overlay + runc, fresh state and cache per start.
 */
export function clipRunRunner(context: BenchContext, publisher: ClipPublisher, variant: ClipVariant): StartRunner {
  return {
    label: `clip run, ${variant}`,
    command: 'clip run',
    unavailable: async () => {
      const reason = (await context.clip.unavailable('run')) ?? (await publisher.unavailable(variant));
      return reason ? `runner not available: ${reason}` : undefined;
    },
    start: async (ctx, image) => {
      const command = image.bench.workload.command;
      if (!command) throw new Error(`${image.bench.name}: the workload is not a command in the image`);
      const ref = await publisher.ref(image, variant);
      const dir = await scratch(ctx, `clip-run-${image.bench.name}`);
      const args = [
        'run',
        '--state-dir',
        join(dir, 'state'),
        '--cache-dir',
        join(dir, 'cache'),
        '--json',
        ref,
        '--',
        '/bin/sh',
        '-c',
        command,
      ];
      await ctx.link.resetCounters();
      const started = performance.now();
      // A fresh worker: no archive or profile cached by an earlier start (the default cache is ~/.cache/clip).
      const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'xdg'), CLIP_ARCHIVE_CACHE: join(dir, 'archives') };
      await run(process.execPath, [ctx.clip.path, ...args], { netns: ctx.link.netns, env, timeoutMs: 30 * 60_000 });
      const seconds = (performance.now() - started) / 1000;
      const link = await ctx.link.resetCounters();
      return { seconds, phases: { run: seconds }, link };
    },
  };
}
