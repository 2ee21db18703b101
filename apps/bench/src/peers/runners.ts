// Ways a fresh worker can start a container from a registry image, behind one interface so
// each system is one function: prepare/pull + run the workload, timed from the first command
// to the workload's end, with the bytes that crossed the link by then (what a background
// fetch pulls later is not on the start path, the same rule as clip's columns).
import { join } from 'node:path';
import type { BenchContext, PublishedImage } from '../scenarios/context.js';
import { scratch } from '../scenarios/context.js';
import { run } from '../util/exec.js';
import type { StartMeasurement } from '../scenarios/workers.js';
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
): StartRunner {
  return {
    label,
    command: 'ctr-remote image rpull + ctr run (stargz snapshotter)',
    unavailable: async () => skip ?? (ref && stargzBinary ? undefined : 'eStargz image or snapshotter not available'),
    start: (context, image) =>
      containerdStart(context, image, 'estargz', {
        snapshotter: stargzSnapshotter(stargzBinary!),
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
 * referrer, found from the reference alone) through the link, then a fresh containerd +
 * `clip snapshotter`, `ctr-remote image rpull` (it reads the same remote-snapshot labels as
 * stargz) and `ctr run`. Skips with one line while `clip snapshotter` is not in the CLI.
 */
export function clipSnapshotterRunner(context: BenchContext): StartRunner {
  const published = new Map<string, Promise<string>>();
  const publish = (image: PublishedImage): Promise<string> => {
    let ref = published.get(image.bench.name);
    if (!ref) {
      const target = `${context.link.clientHost}/bench/${image.bench.name}-clip:latest`;
      ref = context.clip
        .publish(image.bench.image.reference, target, `${context.workDir}/${image.bench.name}-snapshotter.clip`, context.link.netns)
        .then(() => target);
      published.set(image.bench.name, ref);
    }
    return ref;
  };
  const snapshotter: ProxySnapshotter = {
    name: 'clip',
    argv: (socket, root) => [process.execPath, context.clip.path, 'snapshotter', '--address', socket, '--root', root],
  };
  return {
    label: 'clip containerd snapshotter',
    command: 'ctr-remote image rpull + ctr run (clip snapshotter)',
    unavailable: async () => {
      const reason = (await context.clip.unavailable('snapshotter')) ?? (await context.clip.unavailable('publish'));
      return reason ? `runner not available: ${reason}` : undefined;
    },
    start: async (ctx, image) => {
      const ref = await publish(image);
      return containerdStart(ctx, image, 'clip-snapshotter', {
        snapshotter,
        ref,
        pull: (containerd) => containerd.ctr(['image', 'rpull', '--plain-http', '--snapshotter', 'clip', ref], { tool: 'ctr-remote' }),
        runArgs: ['--snapshotter', 'clip'],
      });
    },
  };
}

/** `clip run` (#16) of the worker's archive: lazy mount + overlay + runc, fresh state and cache per start. */
export function clipRunRunner(context: BenchContext): StartRunner {
  return {
    label: 'clip run',
    command: 'clip run',
    unavailable: async () => {
      const reason = await context.clip.unavailable('run');
      return reason ? `runner not available: ${reason}` : undefined;
    },
    start: async (ctx, image) => {
      const command = image.bench.workload.command;
      if (!command || !image.archive) throw new Error(`${image.bench.name}: no workload command or no archive`);
      const dir = await scratch(ctx, `clip-run-${image.bench.name}`);
      const args = [
        'run',
        '--state-dir',
        join(dir, 'state'),
        '--cache-dir',
        join(dir, 'cache'),
        '--json',
        image.archive,
        '--',
        '/bin/sh',
        '-c',
        command,
      ];
      await ctx.link.resetCounters();
      const started = performance.now();
      await run(process.execPath, [ctx.clip.path, ...args], { netns: ctx.link.netns, timeoutMs: 30 * 60_000 });
      const seconds = (performance.now() - started) / 1000;
      const link = await ctx.link.resetCounters();
      return { seconds, phases: { run: seconds }, link };
    },
  };
}
