// Indexing cost: clip index of the local layout vs simply decompressing the same layers
// (`gzip -dc`, the floor for any gzip index), and clip index from the registry over the link
// vs downloading + decompressing the layers there.
import { join } from 'node:path';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import { sh } from '../util/exec.js';
import { median } from '../util/stats.js';
import { scratch, type BenchContext, type PublishedImage } from './context.js';

async function repeat(times: number, fn: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < times; i++) values.push(await fn());
  return median(values);
}

export async function indexing(context: BenchContext, image: PublishedImage): Promise<ResultRow[]> {
  const { bench } = image;
  const blobs = bench.image.layers.map((layer) => join(bench.image.layoutDir, 'blobs', 'sha256', layer.digest.slice(7)));
  const mb = bench.uncompressedBytes / 1e6;
  // Both sides read the blobs from the page cache: read them once before timing either.
  await sh(`cat ${blobs.map((b) => `'${b}'`).join(' ')} > /dev/null`);
  const gzipSeconds = await repeat(
    context.repetitions,
    async () => (await sh(`for f in ${blobs.map((b) => `'${b}'`).join(' ')}; do gzip -dc "$f" > /dev/null; done`)).seconds,
  );
  const repository = image.clientRef.slice(context.link.clientHost.length + 1).split(':')[0];
  const curlSeconds = await repeat(context.repetitions, async () => {
    await context.link.resetCounters();
    const urls = bench.image.layers.map((layer) => `http://${context.link.clientHost}/v2/${repository}/blobs/${layer.digest}`);
    return (await sh(urls.map((url) => `curl -sf '${url}' | gzip -dc > /dev/null`).join(' && '), { netns: context.link.netns })).seconds;
  });
  const curlLink = await context.link.resetCounters();

  const local = {
    scenario: 'indexing',
    variant: 'local layout',
    image: bench.name,
    profile: 'local',
    unit: 's' as const,
    better: 'lower' as const,
    baselineLabel: 'gzip -dc of all layers',
    baseline: gzipSeconds,
    details: { uncompressedMB: mb, gzipMBps: mb / gzipSeconds },
  };
  const remote = {
    scenario: 'indexing',
    variant: 'from registry',
    image: bench.name,
    profile: context.link.profile.name,
    unit: 's' as const,
    better: 'lower' as const,
    baselineLabel: 'curl | gzip -dc of all layers over the link',
    baseline: curlSeconds,
    baselineBytes: curlLink.bytesDown,
    baselineRequests: curlLink.requests,
  };
  const reason = await context.clip.unavailable('index');
  if (reason) return [skippedRow(local, reason), skippedRow(remote, reason)];

  const rows: ResultRow[] = [];
  let localSeconds: number | undefined;
  try {
    const dir = await scratch(context, 'index-local');
    localSeconds = await repeat(
      context.repetitions,
      async () => (await context.clip.index(bench.image.reference, join(dir, 'x.clip'), image.clientRef)).seconds,
    );
    rows.push(finishRow({ ...local, clip: localSeconds, details: { ...local.details, clipMBps: mb / localSeconds } }));
  } catch (error) {
    rows.push(skippedRow(local, `clip index failed: ${(error as Error).message.slice(0, 300)}`));
  }
  try {
    const dir = await scratch(context, 'index-remote');
    await context.link.resetCounters();
    const remoteSeconds = await repeat(
      context.repetitions,
      async () => (await context.clip.index(`docker://${image.clientRef}`, join(dir, 'x.clip'), undefined, context.link.netns)).seconds,
    );
    const link = await context.link.resetCounters();
    const runs = context.repetitions;
    rows.push(
      finishRow({
        ...remote,
        clip: remoteSeconds,
        clipBytes: link.bytesDown / runs,
        clipRequests: link.requests / runs,
        clipRangeRequests: link.rangeRequests / runs,
        details: localSeconds ? { registryOverLocal: remoteSeconds / localSeconds } : {},
      }),
    );
    if (localSeconds) {
      // The direct comparison: what indexing over the link costs on top of indexing locally.
      rows.push(
        finishRow({
          scenario: 'indexing',
          variant: 'registry / local',
          image: bench.name,
          profile: context.link.profile.name,
          unit: 's',
          better: 'lower',
          baselineLabel: 'clip index of the local layout',
          baseline: localSeconds,
          clip: remoteSeconds,
          note: `index: registry / local = ${(remoteSeconds / localSeconds).toFixed(2)}×`,
          details: { registryOverLocal: remoteSeconds / localSeconds },
        }),
      );
    }
  } catch (error) {
    rows.push(skippedRow(remote, `clip index from registry failed: ${(error as Error).message.slice(0, 300)}`));
  }
  return rows;
}
