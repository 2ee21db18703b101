// Ways a fresh worker can start a container from a registry image, behind one interface so
// each system is one function: prepare/pull + run the workload, timed from the first command
// to the workload's end, with the bytes that crossed the link by then (what a background
// fetch pulls later is not on the start path, the same rule as clip's columns).
import type { BenchContext, PublishedImage } from '../scenarios/context.js';
import { scratch } from '../scenarios/context.js';
import type { StartMeasurement } from '../scenarios/workers.js';
import { startContainerd, type Containerd } from './containerd.js';

export interface StartRunner {
  /** Row label, e.g. "eStargz, no profile". */
  label: string;
  /** The commands measured, for the baseline column. */
  command: string;
  /** Whether the runner uses a recorded workload profile (eStargz optimize, clip --record/--prefetch). */
  profiled: boolean;
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
  options: { stargzBinary?: string; pull: (containerd: Containerd) => Promise<{ seconds: number }>; runArgs: string[]; ref: string },
): Promise<StartMeasurement> {
  const command = image.bench.workload.command;
  if (!command) throw new Error(`${image.bench.name}: the workload is not a command in the image`);
  const containerd = await startContainerd({
    dir: await scratch(context, `${label}-${image.bench.name}`),
    netns: context.link.netns,
    ...(options.stargzBinary ? { stargzBinary: options.stargzBinary } : {}),
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
export function estargzRunner(label: string, profiled: boolean, ref: string | undefined, stargzBinary: string | undefined, skip: string | undefined): StartRunner {
  return {
    label,
    command: 'ctr-remote image rpull + ctr run (stargz snapshotter)',
    profiled,
    unavailable: async () => skip ?? (ref && stargzBinary ? undefined : 'eStargz image or snapshotter not available'),
    start: (context, image) =>
      containerdStart(context, image, 'estargz', {
        stargzBinary: stargzBinary!,
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
    profiled: false,
    unavailable: async () => undefined,
    start: (context, image) =>
      containerdStart(context, image, 'ctr-pull', {
        ref: image.clientRef,
        pull: (containerd) => containerd.ctr(['image', 'pull', '--plain-http', image.clientRef]),
        runArgs: [],
      }),
  };
}

/** A runner whose implementation lives on a branch not merged here: skips with one line. */
function notAvailable(label: string, command: string, reason: string): StartRunner {
  return {
    label,
    command,
    profiled: false,
    unavailable: async () => reason,
    start: async () => {
      throw new Error(reason);
    },
  };
}

/** clip's containerd snapshotter (#18): containerd + clip snapshotter, `ctr run`. */
export function clipSnapshotterRunner(): StartRunner {
  return notAvailable('clip containerd snapshotter', 'ctr run (clip snapshotter)', "runner not available: clip's containerd snapshotter (#18) is not merged into this branch");
}

/** `clip run` (#16). */
export function clipRunRunner(): StartRunner {
  return notAvailable('clip run', 'clip run', 'runner not available: `clip run` (#16) is not merged into this branch');
}
