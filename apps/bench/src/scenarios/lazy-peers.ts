// clip side by side with an established lazy-loading system: eStargz through containerd +
// stargz-snapshotter, on the same images, the same shaped link, in the same run. Worker A
// converts each image to eStargz (plain and with `optimize`'s workload profile) and pushes
// it; fresh workers then start the workload through each peer runner. Rows put the peer in
// the baseline column and clip's matching column (cold cache without a profile, recorded
// prefetch with one) in the clip column: ratio > 1 means clip started faster.
import { convertToEstargz, type EstargzImages } from '../peers/estargz.js';
import { clipRunRunner, clipSnapshotterRunner, containerdPullRunner, estargzRunner, type StartRunner } from '../peers/runners.js';
import { ensureStargzDaemon, type PeerSetup } from '../peers/setup.js';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import { median } from '../util/stats.js';
import type { BenchContext, PublishedImage } from './context.js';
import type { StartMeasurement } from './workers.js';

interface Summary {
  seconds: number;
  bytes?: number;
  requests?: number;
  phases?: Record<string, number>[];
}
/** A measured summary, or the one line saying why there is none. */
type Outcome = Summary | string;

let setup: Promise<PeerSetup> | undefined;

/** Rows of this image measured earlier in the run (the cold start, indexing). */
function find(rows: ResultRow[], scenario: string, variant: string): ResultRow | undefined {
  return rows.find((row) => row.scenario === scenario && row.variant === variant && row.skipped === undefined);
}

/** clip's own column from the headline scenario of this run. */
function fromRow(row: ResultRow | undefined, label: string): Outcome {
  if (row?.clip === undefined) return `${label} was not measured in this run`;
  return {
    seconds: row.clip,
    ...(row.clipBytes === undefined ? {} : { bytes: row.clipBytes }),
    ...(row.clipRequests === undefined ? {} : { requests: row.clipRequests }),
  };
}

/** Cold starts through `runner` (context.repetitions of them, each on a fresh worker), summarised by median. */
async function measure(context: BenchContext, image: PublishedImage, runner: StartRunner): Promise<Outcome> {
  const reason = await runner.unavailable();
  if (reason) return reason;
  try {
    const runs: StartMeasurement[] = [];
    for (let i = 0; i < context.repetitions; i++) {
      context.log(`  ${runner.label} ${image.bench.name} @ ${context.link.profile.name} (${i + 1}/${context.repetitions})`);
      runs.push(await runner.start(context, image));
    }
    return {
      seconds: median(runs.map((run) => run.seconds)),
      bytes: median(runs.map((run) => run.link.bytesDown)),
      requests: median(runs.map((run) => run.link.requests)),
      phases: runs.map((run) => run.phases),
    };
  } catch (error) {
    const message = `${runner.label} failed: ${(error as Error).message.slice(0, 300)}`;
    context.log(message);
    return message;
  }
}

export async function lazyPeers(context: BenchContext, image: PublishedImage, earlier: ResultRow[]): Promise<ResultRow[]> {
  setup ??= ensureStargzDaemon(context.log).then((result) => {
    if ('skip' in result) context.log(result.skip);
    return result;
  });
  const ready = await setup;
  const noCommand = image.bench.workload.command ? undefined : `${image.bench.name}: the workload is not a command in the image`;
  let skip = ('skip' in ready ? ready.skip : undefined) ?? noCommand;
  let converted: EstargzImages | undefined;
  if (!skip) {
    try {
      converted = await convertToEstargz(context, image);
    } catch (error) {
      skip = `eStargz conversion failed: ${(error as Error).message.slice(0, 300)}`;
      context.log(skip);
    }
  }
  const binary = 'binary' in ready ? ready.binary : undefined;
  const fullPull = containerdPullRunner();
  const plain = estargzRunner('eStargz, no profile', converted?.plain.clientRef, binary, skip);
  const optimized = estargzRunner('eStargz, optimize profile', converted?.optimized?.clientRef, binary, skip ?? converted?.optimizeSkipped);
  const peers = new Map<StartRunner, Outcome>();
  for (const peer of [fullPull, plain, optimized]) peers.set(peer, noCommand ?? (await measure(context, image, peer)));

  // clip's columns: the headline scenario's `clip mount` runs, or a runner of their own.
  const sides: { label: string; outcome: () => Promise<Outcome>; against: StartRunner[] }[] = [
    {
      label: 'clip cold cache',
      outcome: async () => fromRow(find(earlier, 'start + workload', 'cold cache'), 'clip cold cache'),
      against: [fullPull, plain],
    },
    {
      label: 'clip prefetch (recorded list)',
      outcome: async () => fromRow(find(earlier, 'start + workload', 'prefetch (recorded list)'), 'clip prefetch'),
      against: [optimized],
    },
    ...[clipSnapshotterRunner(context), clipRunRunner(context)].map((runner) => ({
      label: runner.label,
      outcome: () => measure(context, image, runner),
      against: [plain],
    })),
  ];
  const baseline = find(earlier, 'start + workload', 'cold cache');
  const rows: ResultRow[] = [];
  for (const side of sides) {
    const clip = await side.outcome();
    for (const peer of side.against) rows.push(startRow(context, image, side.label, peer, peers.get(peer)!, clip, baseline));
  }
  return [...rows, ...preparationRows(image, converted, skip, find(earlier, 'indexing', 'local layout'))];
}

function startRow(
  context: BenchContext,
  image: PublishedImage,
  label: string,
  peer: StartRunner,
  value: Outcome,
  clip: Outcome,
  fullPull: ResultRow | undefined,
): ResultRow {
  const base = {
    scenario: 'peers: start + workload',
    variant: `${label} vs ${peer.label}`,
    image: image.bench.name,
    profile: context.link.profile.name,
    unit: 's' as const,
    better: 'lower' as const,
    baselineLabel: peer.command,
  };
  if (typeof value === 'string') return skippedRow(base, value);
  const note = fullPull?.baseline
    ? `peer ${value.seconds.toFixed(2)} s = ${(fullPull.baseline / value.seconds).toFixed(2)}× full pull + unpack (${fullPull.baseline.toFixed(2)} s)`
    : '';
  const peerFields = {
    baseline: value.seconds,
    ...(value.bytes === undefined ? {} : { baselineBytes: value.bytes }),
    ...(value.requests === undefined ? {} : { baselineRequests: value.requests }),
    note,
  };
  if (typeof clip === 'string') return skippedRow({ ...base, ...peerFields }, clip);
  return finishRow({
    ...base,
    ...peerFields,
    clip: clip.seconds,
    ...(clip.bytes === undefined ? {} : { clipBytes: clip.bytes }),
    ...(clip.requests === undefined ? {} : { clipRequests: clip.requests }),
    details: {
      peerPhases: value.phases,
      ...(fullPull?.baseline ? { fullPullSeconds: fullPull.baseline, fullPullBytes: fullPull.baselineBytes } : {}),
    },
  });
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** What each system needs before a worker can start lazily: conversion vs indexing time, extra registry storage vs the archive. */
function preparationRows(
  image: PublishedImage,
  converted: EstargzImages | undefined,
  skip: string | undefined,
  index: ResultRow | undefined,
): ResultRow[] {
  const prep = { scenario: 'peers: preparation', image: image.bench.name, profile: 'local', better: 'lower' as const };
  const rows: ResultRow[] = [];
  for (const [command, variant] of [
    ['convert', converted?.plain],
    ['optimize', converted?.optimized],
  ] as const) {
    const timeBase = {
      ...prep,
      unit: 's' as const,
      variant: `eStargz ${command} vs clip index (local layout)`,
      baselineLabel: `ctr-remote image ${command}`,
    };
    const sizeBase = {
      ...prep,
      unit: 'MB' as const,
      variant: `extra registry storage: eStargz ${command} vs clip archive`,
      baselineLabel: 'eStargz copy of every layer + config + manifest',
    };
    if (!variant) {
      const reason = skip ?? (command === 'optimize' ? converted?.optimizeSkipped : undefined) ?? 'not converted';
      rows.push(skippedRow(timeBase, reason), skippedRow(sizeBase, reason));
      continue;
    }
    const note =
      command === 'optimize'
        ? 'optimize runs the workload (up to --period 10 s); clip records it on any worker with --record'
        : 'clip needs no conversion: the original layers are served';
    rows.push(
      index?.clip === undefined
        ? skippedRow({ ...timeBase, baseline: variant.convertSeconds }, 'clip index was not measured in this run')
        : finishRow({ ...timeBase, baseline: variant.convertSeconds, clip: index.clip, note }),
    );
    const compressed = image.bench.image.compressedBytes;
    const share = `${((100 * variant.extraBytes) / compressed).toFixed(0)}% of the ${mb(compressed)} image`;
    rows.push(
      image.archiveBytes === undefined
        ? skippedRow({ ...sizeBase, baseline: variant.extraBytes / 1e6 }, 'no clip archive in this run')
        : finishRow({
            ...sizeBase,
            baseline: variant.extraBytes / 1e6,
            clip: image.archiveBytes / 1e6,
            note: `eStargz adds ${mb(variant.extraBytes)} (${share}); clip adds its archive`,
          }),
    );
  }
  return rows;
}
