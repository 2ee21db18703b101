// The headline: time from "start the container" to "workload done" on a worker that does not
// have the image, clip vs full pull + unpack: the image published with a build-time profile
// (the default a user gets) and without one, both mounted by reference with no flags; the
// local archive cold, warm and with a hand-recorded prefetch list; and the lower bound (the
// link time of the compressed bytes the workload reads). Baseline and clip run back to back
// on the same link.
import { join } from 'node:path';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import { median } from '../util/stats.js';
import { DENSE_SPAN_SIZE, scratch, type BenchContext, type PublishedImage } from './context.js';
import { annotateWithLowerBound, lowerBoundRow } from './lower-bound-row.js';
import { describeReference, type PublishKind, publishReference, publishUnavailable, referenceStarts } from './published-start.js';
import { baselineStart, clipStart, type StartMeasurement } from './workers.js';

/** Variant names of the cold-start table (report/cold-start-table.ts reads them). */
export const VARIANT = {
  profiled: 'default (profile published)',
  noProfile: 'no profile',
  cold: 'cold cache',
  warm: 'warm cache',
  recorded: 'prefetch (recorded list)',
  lowerBound: 'lower bound',
} as const;

export interface ColdStartOutcome {
  rows: ResultRow[];
  /** An unpacked tree from the baseline, reused by the mount I/O scenario. */
  unpackedRoot?: string;
}

function summarize(runs: StartMeasurement[]) {
  return {
    seconds: median(runs.map((run) => run.seconds)),
    bytes: median(runs.map((run) => run.link.bytesDown)),
    requests: median(runs.map((run) => run.link.requests)),
    rangeRequests: median(runs.map((run) => run.link.rangeRequests)),
    phases: runs.map((run) => run.phases),
    ...(runs.at(-1)?.metrics ? { metrics: runs.at(-1)!.metrics } : {}),
  };
}

export async function coldStart(context: BenchContext, image: PublishedImage): Promise<ColdStartOutcome> {
  const profile = context.link.profile.name;
  const base = {
    scenario: 'start + workload',
    image: image.bench.name,
    profile,
    unit: 's' as const,
    better: 'lower' as const,
    baselineLabel: 'skopeo copy + umoci unpack + chroot',
  };
  const baselineRuns: StartMeasurement[] = [];
  for (let i = 0; i < context.repetitions; i++) {
    context.log(`  baseline pull+unpack ${image.bench.name} @ ${profile} (${i + 1}/${context.repetitions})`);
    baselineRuns.push(await baselineStart(context, image));
  }
  const baseline = summarize(baselineRuns);
  const unpackedRoot = baselineRuns.at(-1)?.rootfs;
  const baselineFields = {
    baseline: baseline.seconds,
    baselineBytes: baseline.bytes,
    baselineRequests: baseline.requests,
    details: { baselinePhases: baseline.phases },
  };
  const variants = [VARIANT.profiled, VARIANT.noProfile, VARIANT.cold, VARIANT.warm, VARIANT.recorded, VARIANT.lowerBound];
  const skipReason = image.indexSkipped ?? (await context.clip.unavailable('mount'));
  if (skipReason || !image.archive) {
    return {
      rows: variants.map((variant) => skippedRow({ ...base, variant, ...baselineFields }, skipReason ?? 'no archive')),
      ...(unpackedRoot ? { unpackedRoot } : {}),
    };
  }

  const row = (variant: string, runs: StartMeasurement[], note?: string): ResultRow => {
    const clip = summarize(runs);
    return finishRow({
      ...base,
      variant,
      ...(note ? { note } : {}),
      ...baselineFields,
      clip: clip.seconds,
      clipBytes: clip.bytes,
      clipRequests: clip.requests,
      clipRangeRequests: clip.rangeRequests,
      details: { baselinePhases: baseline.phases, clipPhases: clip.phases, ...(clip.metrics ? { mountMetrics: clip.metrics } : {}) },
    });
  };
  const guarded = async (variant: string, measure: () => Promise<StartMeasurement[]>, note?: string): Promise<ResultRow> => {
    try {
      return row(variant, await measure(), note);
    } catch (error) {
      return skippedRow({ ...base, variant, ...baselineFields }, `clip run failed: ${(error as Error).message.slice(0, 400)}`);
    }
  };

  /** Fresh cache directories each run; `caches` collects them (the warm runs reuse them). */
  const coldRuns = async (label: string, archive?: string, caches?: string[]): Promise<StartMeasurement[]> => {
    const runs: StartMeasurement[] = [];
    for (let i = 0; i < context.repetitions; i++) {
      context.log(`  clip ${label} ${image.bench.name} @ ${profile} (${i + 1}/${context.repetitions})`);
      const cacheDir = join(await scratch(context, 'cache'), 'cache');
      caches?.push(cacheDir);
      runs.push(await clipStart(context, image, { cacheDir, ...(archive ? { archive } : {}) }));
    }
    return runs;
  };
  const rows: ResultRow[] = [];
  /** The image as users get it: `clip publish [--profile]`, a fresh worker mounts the reference, no flags. */
  const published = async (kind: PublishKind, variant: string): Promise<ResultRow> => {
    const reason = await publishUnavailable(context, image, kind);
    if (reason) {
      context.log(`  ${variant} skipped: ${reason}`);
      return skippedRow({ ...base, variant, ...baselineFields }, reason);
    }
    try {
      const reference = await publishReference(context, image, kind);
      const runs = await referenceStarts(context, image, kind, reference);
      return row(variant, runs, describeReference(reference, runs));
    } catch (error) {
      return skippedRow({ ...base, variant, ...baselineFields }, `clip publish/mount failed: ${(error as Error).message.slice(0, 400)}`);
    }
  };
  // Not applicable (no row) when the workload is not a command in the image (the synthetic images).
  if (image.bench.workload.command) rows.push(await published('profile', VARIANT.profiled));
  rows.push(await published('no-profile', VARIANT.noProfile));
  const warmCaches: string[] = [];
  rows.push(await guarded('cold cache', () => coldRuns('cold', undefined, warmCaches)));
  rows.push(...(await firstRunVariants(context, image, guarded)));
  rows.push(
    await guarded('warm cache', async () => {
      const runs: StartMeasurement[] = [];
      for (let i = 0; i < context.repetitions; i++) {
        context.log(`  clip warm ${image.bench.name} @ ${profile} (${i + 1}/${context.repetitions})`);
        runs.push(await clipStart(context, image, { cacheDir: warmCaches[i] ?? join(await scratch(context, 'cache'), 'cache') }));
      }
      return runs;
    }),
  );
  // Worker A records the workload's reads once: the hand-made prefetch list and the lower bound's input.
  const recordDir = await scratch(context, 'record');
  const list = join(recordDir, 'prefetch.txt');
  let recorded: string | undefined;
  try {
    context.log(`  clip record ${image.bench.name} @ ${profile}`);
    await clipStart(context, image, { cacheDir: join(recordDir, 'cache'), record: list });
    recorded = list;
  } catch (error) {
    context.log(`  clip record failed: ${(error as Error).message.slice(0, 300)}`);
  }
  /** Fresh workers prefetch the recorded list. */
  const prefetchRuns = async (label: string, archive?: string): Promise<StartMeasurement[]> => {
    if (!recorded) throw new Error('recording the workload failed');
    const runs: StartMeasurement[] = [];
    for (let i = 0; i < context.repetitions; i++) {
      context.log(`  clip prefetch ${label} ${image.bench.name} @ ${profile} (${i + 1}/${context.repetitions})`);
      runs.push(
        await clipStart(context, image, {
          cacheDir: join(await scratch(context, 'cache'), 'cache'),
          prefetch: recorded,
          ...(archive ? { archive } : {}),
        }),
      );
    }
    return runs;
  };
  rows.push(await guarded(VARIANT.recorded, () => prefetchRuns('')));
  if (image.denseArchive) {
    const dense = image.denseArchive;
    const share = ((100 * (image.denseArchiveBytes ?? 0)) / image.bench.uncompressedBytes).toFixed(2);
    const note = `archive ${((image.denseArchiveBytes ?? 0) / 1e6).toFixed(1)} MB (${share}% of uncompressed)`;
    rows.push(await guarded(`cold cache, ${DENSE_SPAN_SIZE} spans`, () => coldRuns(`cold ${DENSE_SPAN_SIZE}`, dense), note));
    rows.push(await guarded(`prefetch (recorded list), ${DENSE_SPAN_SIZE} spans`, () => prefetchRuns(DENSE_SPAN_SIZE, dense), note));
  }
  const bound = await lowerBoundRow(context, image, recorded, { ...base, variant: VARIANT.lowerBound, ...baselineFields });
  rows.push(bound);
  return { rows: annotateWithLowerBound(rows, bound, [VARIANT.warm]), ...(unpackedRoot ? { unpackedRoot } : {}) };
}

/**
 * `CLIP_BENCH_FIRST_RUN="none;priority;priority,entrypoint"`: extra cold-cache rows, one per
 * `CLIP_FIRST_RUN` setting of `clip mount` (docs/benchmarks.md, "First run without a
 * profile"), the settings' runs interleaved so machine load hits them alike.
 */
async function firstRunVariants(
  context: BenchContext,
  image: PublishedImage,
  guarded: (variant: string, measure: () => Promise<StartMeasurement[]>) => Promise<ResultRow>,
): Promise<ResultRow[]> {
  const settings = (process.env['CLIP_BENCH_FIRST_RUN'] ?? '')
    .split(';')
    .map((setting) => setting.trim())
    .filter(Boolean);
  const runs = new Map<string, StartMeasurement[]>(settings.map((setting) => [setting, []]));
  const failures = new Map<string, Error>();
  for (let i = 0; i < context.repetitions; i++) {
    for (const setting of settings) {
      if (failures.has(setting)) continue;
      context.log(`  clip cold, CLIP_FIRST_RUN=${setting} ${image.bench.name} (${i + 1}/${context.repetitions})`);
      try {
        const cacheDir = join(await scratch(context, 'cache'), 'cache');
        runs.get(setting)!.push(await clipStart(context, image, { cacheDir, env: { CLIP_FIRST_RUN: setting } }));
      } catch (error) {
        failures.set(setting, error as Error);
      }
    }
  }
  const rows: ResultRow[] = [];
  for (const setting of settings) {
    rows.push(
      await guarded(`cold cache, first run: ${setting}`, async () => {
        const failure = failures.get(setting);
        if (failure) throw failure;
        return runs.get(setting)!;
      }),
    );
  }
  return rows;
}
