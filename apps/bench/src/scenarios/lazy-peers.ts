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
  bytes: number;
  requests: number;
  phases: Record<string, number>[];
}

function summarize(runs: StartMeasurement[]): Summary {
  return {
    seconds: median(runs.map((run) => run.seconds)),
    bytes: median(runs.map((run) => run.link.bytesDown)),
    requests: median(runs.map((run) => run.link.requests)),
    phases: runs.map((run) => run.phases),
  };
}

let setup: Promise<PeerSetup> | undefined;

/** Rows of this image measured earlier in the run (the cold start, indexing). */
function find(rows: ResultRow[], scenario: string, variant: string): ResultRow | undefined {
  return rows.find((row) => row.scenario === scenario && row.variant === variant && row.skipped === undefined);
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

export async function lazyPeers(context: BenchContext, image: PublishedImage, earlier: ResultRow[]): Promise<ResultRow[]> {
  const profile = context.link.profile.name;
  const start = { scenario: 'peers: start + workload', image: image.bench.name, profile, unit: 's' as const, better: 'lower' as const };
  const prep = { scenario: 'peers: preparation', image: image.bench.name, profile: 'local', better: 'lower' as const };
  setup ??= ensureStargzDaemon(context.log).then((result) => {
    if ('skip' in result) context.log(result.skip);
    return result;
  });
  const ready = await setup;
  const noCommand = image.bench.workload.command ? undefined : `${image.bench.name}: the workload is not a command in the image`;
  const skip = ('skip' in ready ? ready.skip : undefined) ?? noCommand;

  let converted: EstargzImages | undefined;
  let convertSkip = skip;
  if (!skip) {
    try {
      converted = await convertToEstargz(context, image);
    } catch (error) {
      convertSkip = `eStargz conversion failed: ${(error as Error).message.slice(0, 300)}`;
      context.log(convertSkip);
    }
  }
  const binary = 'binary' in ready ? ready.binary : undefined;
  const plain = estargzRunner('eStargz, no profile', false, converted?.plain.clientRef, binary, convertSkip);
  const optimized = estargzRunner('eStargz, optimize profile', true, converted?.optimized?.clientRef, binary, convertSkip ?? converted?.optimizeSkipped);
  const peers: StartRunner[] = [containerdPullRunner(), plain, optimized];

  const measured = new Map<StartRunner, Summary | string>();
  for (const peer of peers) {
    const reason = noCommand ?? (await peer.unavailable());
    if (reason) {
      measured.set(peer, reason);
      continue;
    }
    try {
      const runs: StartMeasurement[] = [];
      for (let i = 0; i < context.repetitions; i++) {
        context.log(`  ${peer.label} ${image.bench.name} @ ${profile} (${i + 1}/${context.repetitions})`);
        runs.push(await peer.start(context, image));
      }
      measured.set(peer, summarize(runs));
    } catch (error) {
      const message = `${peer.label} failed: ${(error as Error).message.slice(0, 300)}`;
      context.log(message);
      measured.set(peer, message);
    }
  }

  const fullPull = find(earlier, 'start + workload', 'cold cache') ?? earlier.find((row) => row.scenario === 'start + workload' && row.baseline !== undefined);
  const peerNote = (peer: Summary): string =>
    fullPull?.baseline ? `peer ${peer.seconds.toFixed(2)} s = ${(fullPull.baseline / peer.seconds).toFixed(2)}× full pull + unpack (${fullPull.baseline.toFixed(2)} s)` : '';
  /** clip-side columns: measured earlier in the run (clip mount) or by a runner of their own. */
  const clipSides: { label: string; against: StartRunner[]; row?: ResultRow; runner?: StartRunner }[] = [
    { label: 'clip cold cache', against: [peers[0]!, plain], ...withRow(find(earlier, 'start + workload', 'cold cache')) },
    { label: 'clip prefetch (recorded list)', against: [optimized], ...withRow(find(earlier, 'start + workload', 'prefetch (recorded list)')) },
    { label: 'clip containerd snapshotter', against: [plain], runner: clipSnapshotterRunner(context) },
    { label: 'clip run', against: [plain], runner: clipRunRunner(context) },
  ];
  const rows: ResultRow[] = [];
  for (const side of clipSides) {
    let clip: { seconds: number; bytes?: number; requests?: number } | string;
    if (side.row?.clip !== undefined) clip = { seconds: side.row.clip, ...(side.row.clipBytes === undefined ? {} : { bytes: side.row.clipBytes }), ...(side.row.clipRequests === undefined ? {} : { requests: side.row.clipRequests }) };
    else if (side.runner) clip = (await side.runner.unavailable()) ?? (await measureSide(context, image, side.runner));
    else clip = `${side.label} was not measured in this run`;
    for (const peer of side.against) {
      const base = { ...start, variant: `${side.label} vs ${peer.label}`, baselineLabel: peer.command };
      const value = measured.get(peer)!;
      if (typeof value === 'string') rows.push(skippedRow(base, value));
      else if (typeof clip === 'string') rows.push(skippedRow({ ...base, baseline: value.seconds, baselineBytes: value.bytes, note: peerNote(value) }, clip));
      else
        rows.push(
          finishRow({
            ...base,
            baseline: value.seconds,
            baselineBytes: value.bytes,
            baselineRequests: value.requests,
            clip: clip.seconds,
            ...(clip.bytes === undefined ? {} : { clipBytes: clip.bytes }),
            ...(clip.requests === undefined ? {} : { clipRequests: clip.requests }),
            note: peerNote(value),
            details: { peerPhases: value.phases, ...(fullPull?.baseline ? { fullPullSeconds: fullPull.baseline, fullPullBytes: fullPull.baselineBytes } : {}) },
          }),
        );
    }
  }

  // Preparation: what each system needs before a worker can start lazily.
  const index = find(earlier, 'indexing', 'local layout');
  const archiveMb = image.archiveBytes === undefined ? undefined : image.archiveBytes / 1e6;
  for (const [label, variant] of [
    ['eStargz convert', converted?.plain],
    ['eStargz optimize', converted?.optimized],
  ] as const) {
    const timeBase = { ...prep, unit: 's' as const, variant: `${label} vs clip index (local layout)`, baselineLabel: `ctr-remote image ${label.split(' ')[1]}` };
    const sizeBase = { ...prep, unit: 'MB' as const, variant: `extra registry storage: ${label} vs clip archive`, baselineLabel: 'eStargz copy of every layer + config + manifest' };
    const reason = variant ? undefined : label.endsWith('optimize') ? (convertSkip ?? converted?.optimizeSkipped ?? 'not converted') : (convertSkip ?? 'not converted');
    if (!variant) {
      rows.push(skippedRow(timeBase, reason!), skippedRow(sizeBase, reason!));
      continue;
    }
    const note = label.endsWith('optimize') ? 'optimize runs the workload (up to --period 10 s); clip records it on any worker with --record' : 'clip needs no conversion: the original layers are served';
    rows.push(
      index?.clip === undefined
        ? skippedRow({ ...timeBase, baseline: variant.convertSeconds }, 'clip index was not measured in this run')
        : finishRow({ ...timeBase, baseline: variant.convertSeconds, clip: index.clip, note }),
    );
    const share = `${((100 * variant.extraBytes) / image.bench.image.compressedBytes).toFixed(0)}% of the ${mb(image.bench.image.compressedBytes)} image`;
    rows.push(
      archiveMb === undefined
        ? skippedRow({ ...sizeBase, baseline: variant.extraBytes / 1e6 }, 'no clip archive in this run')
        : finishRow({ ...sizeBase, baseline: variant.extraBytes / 1e6, clip: archiveMb, note: `eStargz adds ${mb(variant.extraBytes)} (${share}); clip adds its archive` }),
    );
  }
  return rows;
}

function withRow(row: ResultRow | undefined): { row?: ResultRow } {
  return row ? { row } : {};
}

async function measureSide(context: BenchContext, image: PublishedImage, runner: StartRunner): Promise<{ seconds: number; bytes: number; requests: number } | string> {
  try {
    const runs: StartMeasurement[] = [];
    for (let i = 0; i < context.repetitions; i++) runs.push(await runner.start(context, image));
    const summary = summarize(runs);
    return { seconds: summary.seconds, bytes: summary.bytes, requests: summary.requests };
  } catch (error) {
    return `${runner.label} failed: ${(error as Error).message.slice(0, 300)}`;
  }
}
