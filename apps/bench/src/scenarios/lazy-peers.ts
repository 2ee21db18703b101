// clip side by side with an established lazy-loading system: eStargz through containerd +
// stargz-snapshotter, on the same images, the same shaped link, in the same run. Worker A
// converts each image to eStargz (plain and with `optimize`'s workload profile) and pushes
// it; fresh workers then start the workload through each peer runner. Rows put the peer in
// the baseline column and clip's matching column in the clip column (without a profile: clip
// cold cache, the clip snapshotter, `clip run`; with one: the recorded prefetch list and both
// runners on an image published with `clip publish --profile`): ratio > 1 means clip started faster.
import { convertToEstargz, type EstargzImages } from '../peers/estargz.js';
import { clipPublisher, type ClipPublisher } from '../peers/clip-publish.js';
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

/** `CLIP_BENCH_PEERS=clip` measures only clip's runners (checking them without minutes of conversion). */
const onlyClip = () => process.env['CLIP_BENCH_PEERS'] === 'clip';

export async function lazyPeers(context: BenchContext, image: PublishedImage, earlier: ResultRow[]): Promise<ResultRow[]> {
  if (!onlyClip())
    setup ??= ensureStargzDaemon(context.log).then((result) => {
      if ('skip' in result) context.log(result.skip);
      return result;
    });
  const ready: PeerSetup = onlyClip() ? { skip: 'eStargz left out (CLIP_BENCH_PEERS=clip)' } : await setup!;
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
  // stargz fetches whole layers in the background while the workload runs (on a slow run, much
  // of the image): this variant shows the bytes the workload itself needed.
  const quiet = estargzRunner('eStargz, no profile, no background fetch', converted?.plain.clientRef, binary, skip, [
    '-no-background-fetch',
  ]);
  const peers = new Map<StartRunner, Outcome>();
  for (const peer of [fullPull, plain, quiet, optimized]) {
    const left = onlyClip() && peer !== fullPull ? 'eStargz left out (CLIP_BENCH_PEERS=clip)' : undefined;
    peers.set(peer, noCommand ?? left ?? (await measure(context, image, peer)));
  }

  // clip's columns: the headline scenario's `clip mount` runs, and runners of their own on the
  // published reference, without a profile (against eStargz without one) and with the profile
  // `clip publish --profile` records (against `optimize`), when this build has it.
  const publisher = clipPublisher(context);
  const noProfile = [clipSnapshotterRunner(context, publisher, 'no profile'), clipRunRunner(context, publisher, 'no profile')];
  const profiled = [clipSnapshotterRunner(context, publisher, 'profile'), clipRunRunner(context, publisher, 'profile')];
  const profileMissing = await publisher.unavailable('profile');
  if (profileMissing) context.log(`  ${profileMissing}`);
  const sides: { label: string; outcome: () => Promise<Outcome>; against: StartRunner[] }[] = [
    {
      label: 'clip cold cache',
      outcome: async () => fromRow(find(earlier, 'start + workload', 'cold cache'), 'clip cold cache'),
      against: [fullPull, plain, quiet],
    },
    {
      label: 'clip prefetch (recorded list)',
      outcome: async () => fromRow(find(earlier, 'start + workload', 'prefetch (recorded list)'), 'clip prefetch'),
      against: [optimized],
    },
    ...noProfile.map((runner, i) => ({
      label: runner.label,
      outcome: () => measure(context, image, runner),
      against: i === 0 ? [fullPull, plain] : [plain],
    })),
    ...profiled.map((runner) => ({
      label: runner.label,
      outcome: () => measure(context, image, runner),
      against: [optimized],
    })),
  ];
  const baseline = find(earlier, 'start + workload', 'cold cache');
  const rows: ResultRow[] = [];
  for (const side of sides) {
    const clip = await side.outcome();
    for (const peer of side.against) rows.push(startRow(context, image, side.label, peer, peers.get(peer)!, clip, baseline));
  }
  return [...rows, ...preparationRows(image, converted, skip, find(earlier, 'indexing', 'local layout'), publisher)];
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
  const clipFields =
    typeof clip === 'string'
      ? {}
      : {
          clip: clip.seconds,
          ...(clip.bytes === undefined ? {} : { clipBytes: clip.bytes }),
          ...(clip.requests === undefined ? {} : { clipRequests: clip.requests }),
        };
  // A peer left out still shows clip's measurement (e.g. CLIP_BENCH_PEERS=clip).
  if (typeof value === 'string')
    return skippedRow({ ...base, ...clipFields, details: { clipPhases: typeof clip === 'string' ? clip : clip.phases } }, value);
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
    ...clipFields,
    details: {
      peerPhases: value.phases,
      clipPhases: clip.phases,
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
  publisher: ClipPublisher,
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
      (command === 'optimize'
        ? 'optimize runs the workload (up to --period 10 s); clip records it on any worker with --record'
        : 'clip needs no conversion: the original layers are served') + (variant.note ? `; ${variant.note}` : '');
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
    // The whole build-side step of each system's lazy image, for reference: clip publish
    // (index + push of every layer through the shaped link; with the profile, also one run of
    // the workload) against the conversion alone (its push was unshaped and is not counted).
    const clipVariant = command === 'optimize' ? 'profile' : 'no profile';
    const published = publisher.seconds.get(`${image.bench.name} ${clipVariant}`);
    if (published !== undefined)
      rows.push(
        finishRow({
          ...timeBase,
          variant: `eStargz ${command} vs clip publish, ${clipVariant} (index + push through the link)`,
          baseline: variant.convertSeconds,
          clip: published,
          note: 'eStargz: conversion only (push not counted); clip: index + upload of every layer at the link rate',
        }),
      );
  }
  return rows;
}
