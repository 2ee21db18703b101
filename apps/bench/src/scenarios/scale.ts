// Scale: synthetic images of 10k / 100k / 1M tiny files (one gzip -1 layer each), measuring per
// size: clip index time (vs gzip -dc | tar -t), archive size (vs the uncompressed layer),
// archive open + one deep lookup in a fresh process (vs JSON.parse of the path list), peak RSS
// of the index process (vs the gzip | tar pipeline), and a fixed cold-start workload — read
// one small file — whose bytes should stay flat while a full pull grows with the image.
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { scaleImage, type ScaleImage } from '../images/scale.js';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import { run, sh } from '../util/exec.js';
import { shWithPeakRss } from '../util/rusage.js';
import { median } from '../util/stats.js';
import { scratch, type BenchContext } from './context.js';

const PROBE = fileURLToPath(new URL('./lookup-probe.js', import.meta.url));
const MB = 1e6;

export const QUICK_SCALE = [10_000, 100_000];
export const FULL_SCALE = [10_000, 100_000, 1_000_000];

async function repeat(times: number, fn: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < times; i++) values.push(await fn());
  return median(values);
}

async function probeMs(mode: 'clip' | 'json', file: string, path: string): Promise<number> {
  const result = await run(process.execPath, [PROBE, mode, file, path], { timeoutMs: 10 * 60_000 });
  const parsed = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as { ms?: number; found?: boolean };
  if (!parsed.found) throw new Error(`${mode} lookup did not find ${path}`);
  return Number(parsed.ms);
}

const percent = (part: number, whole: number) => `${((100 * part) / whole).toFixed(2)}%`;

/** Every row of one scale image. */
async function scaleRows(context: BenchContext, image: ScaleImage): Promise<ResultRow[]> {
  const blob = join(image.image.layoutDir, 'blobs', 'sha256', image.image.layers[0]!.digest.slice(7));
  const base = { scenario: 'scale', image: image.name, profile: 'local' };
  const runs = Math.max(context.repetitions, context.quick ? 1 : 3);
  const rows: ResultRow[] = [];

  const tarRuns: { seconds: number; rss: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const listed = await shWithPeakRss(`gzip -dc '${blob}' | tar -t > /dev/null`);
    tarRuns.push({ seconds: listed.seconds, rss: listed.peakRssBytes });
  }
  const tarSeconds = median(tarRuns.map((r) => r.seconds));
  const rows0 = {
    index: {
      ...base,
      variant: `clip index, ${image.files} files`,
      unit: 's' as const,
      better: 'lower' as const,
      baselineLabel: 'gzip -dc | tar -t of the layer',
      baseline: tarSeconds,
    },
    rss: {
      ...base,
      variant: `index peak RSS, ${image.files} files`,
      unit: 'MB' as const,
      better: 'lower' as const,
      baselineLabel: 'gzip -dc | tar -t (largest process)',
      baseline: median(tarRuns.map((r) => r.rss)) / MB,
    },
    size: {
      ...base,
      variant: `archive size, ${image.files} files`,
      unit: 'MB' as const,
      better: 'lower' as const,
      baselineLabel: 'uncompressed layer (tar)',
      baseline: image.tarBytes / MB,
    },
    lookup: {
      ...base,
      variant: `open + lookup of a deep path, ${image.files} files`,
      unit: 'ms' as const,
      better: 'lower' as const,
      baselineLabel: 'readFile + JSON.parse of the path list + find',
      baseline: await repeat(runs, () => probeMs('json', image.pathList, image.deepPath)),
    },
  };
  const reason = await context.clip.unavailable('index');
  if (reason) return Object.values(rows0).map((row) => skippedRow(row, reason));

  const dir = await scratch(context, `scale-${image.name}`);
  const archive = join(dir, 'image.clip');
  const clientRef = `${context.link.clientHost}/bench/${image.name}:latest`;
  const indexRuns: { seconds: number; rss: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const indexed = await context.clip.indexWithPeakRss(image.image.reference, archive, clientRef, join(dir, 'rss'));
    indexRuns.push({ seconds: indexed.seconds, rss: indexed.peakRssBytes });
  }
  const archiveBytes = (await stat(archive)).size;
  const indexSeconds = median(indexRuns.map((r) => r.seconds));
  const peakRss = median(indexRuns.map((r) => r.rss));
  rows.push(
    finishRow({
      ...rows0.index,
      clip: indexSeconds,
      details: {
        files: image.files,
        tarBytes: image.tarBytes,
        layerBytes: image.image.compressedBytes,
        filesPerSecond: image.files / indexSeconds,
      },
    }),
  );
  rows.push(
    finishRow({
      ...rows0.rss,
      clip: peakRss / MB,
      note: `peak / files = ${Math.round(peakRss / image.files)} B`,
      details: {
        files: image.files,
        peakRssBytes: peakRss,
        baselinePeakRssBytes: rows0.rss.baseline * MB,
        bytesPerFile: peakRss / image.files,
      },
    }),
  );
  rows.push(
    finishRow({
      ...rows0.size,
      clip: archiveBytes / MB,
      note: `${percent(archiveBytes, image.tarBytes)} of uncompressed (goal ≤ 0.5%)`,
      details: {
        archiveBytes,
        tarBytes: image.tarBytes,
        percentOfUncompressed: (100 * archiveBytes) / image.tarBytes,
        bytesPerFile: archiveBytes / image.files,
      },
    }),
  );
  rows.push(
    finishRow({
      ...rows0.lookup,
      clip: await repeat(runs, () => probeMs('clip', archive, image.deepPath)),
      details: { path: image.deepPath, pathListBytes: (await stat(image.pathList)).size },
    }),
  );
  rows.push(await coldRead(context, image, archive));
  return rows;
}

/** Fixed workload (read one small file) on a fresh worker: full pull vs clip mount + read. */
async function coldRead(context: BenchContext, image: ScaleImage, archive: string): Promise<ResultRow> {
  const layer = image.image.layers[0]!;
  const url = `http://${context.link.clientHost}/v2/bench/${image.name}/blobs/${layer.digest}`;
  const member = image.smallFile.slice(1);
  await run(
    'skopeo',
    [
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      image.image.reference,
      `docker://${context.link.registryHost}/bench/${image.name}:latest`,
    ],
    {
      netns: context.link.netns,
      timeoutMs: 30 * 60_000,
    },
  );
  await context.link.resetCounters();
  // Streamed pull + extract of just that file: the cheapest thing a full pull can do.
  const pulled = await sh(`curl -sf '${url}' | tar -xzO '${member}' > /dev/null`, { netns: context.link.netns });
  const pullLink = await context.link.resetCounters();
  const row = {
    scenario: 'scale',
    variant: `cold start: read one small file, ${image.files} files`,
    image: image.name,
    profile: context.link.profile.name,
    unit: 's' as const,
    better: 'lower' as const,
    baselineLabel: 'curl | tar -xzO of the layer (full pull, streamed)',
    baseline: pulled.seconds,
    baselineBytes: pullLink.bytesDown,
    baselineRequests: pullLink.requests,
  };
  const reason = await context.clip.unavailable('mount');
  if (reason) return skippedRow(row, reason);
  const dir = await scratch(context, `scale-read-${image.name}`);
  const mountpoint = join(dir, 'image');
  await run('mkdir', ['-p', mountpoint]);
  const started = performance.now();
  const mount = await context.clip.mount(archive, mountpoint, { cacheDir: join(dir, 'cache'), netns: context.link.netns });
  try {
    await run('cat', [join(mountpoint, member)]);
    const seconds = (performance.now() - started) / 1000;
    const link = await context.link.resetCounters();
    const archiveBytes = (await stat(archive)).size;
    return finishRow({
      ...row,
      clip: seconds,
      clipBytes: link.bytesDown,
      clipRequests: link.requests,
      clipRangeRequests: link.rangeRequests,
      note: `archive (local here) ${(archiveBytes / MB).toFixed(1)} MB`,
      details: { archiveBytes, layerBytes: layer.size, file: image.smallFile },
    });
  } finally {
    await mount.stop();
  }
}

export async function scale(context: BenchContext, sizes: number[]): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  for (const files of sizes) {
    context.log(`scale: ${files} files`);
    const image = await scaleImage(files);
    try {
      rows.push(...(await scaleRows(context, image)));
    } catch (error) {
      context.log(`scale ${image.name} failed: ${(error as Error).message}`);
      rows.push(
        skippedRow(
          {
            scenario: 'scale',
            variant: `${files} files`,
            image: image.name,
            profile: 'local',
            unit: 's',
            better: 'lower',
            baselineLabel: '–',
          },
          `scale failed: ${(error as Error).message.slice(0, 300)}`,
        ),
      );
    }
  }
  return withMarginalRss(rows);
}

/**
 * Peak RSS / files includes the Node runtime and the CLI (~100 MB), which swamps small images;
 * the growth between two sizes is the real per-file cost, added to each larger size's row.
 */
function withMarginalRss(rows: ResultRow[]): ResultRow[] {
  const rss = rows.filter((row) => row.variant.startsWith('index peak RSS') && row.clip !== undefined);
  const files = (row: ResultRow) => Number(row.details?.['files'] ?? Number.NaN);
  return rows.map((row) => {
    const index = rss.indexOf(row);
    if (index <= 0) return row;
    const previous = rss[index - 1]!;
    const perFile = ((row.clip! - previous.clip!) * MB) / (files(row) - files(previous));
    if (!Number.isFinite(perFile)) return row;
    return {
      ...row,
      note: `${row.note ?? ''}; growth from ${previous.image}: ${Math.round(perFile)} B per file`,
      details: { ...row.details, marginalBytesPerFile: perFile },
    };
  });
}
