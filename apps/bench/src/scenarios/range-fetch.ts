// Ranged reads of a layer blob over the link, 4 MiB ranges, 4 in flight: curl (the baseline)
// and clip's registry client, each as a fraction of the link's measured rate. The clip side
// runs `range-client.js` inside the namespace (openImageSource + readBlobRange).
import { fileURLToPath } from 'node:url';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import { run, sh } from '../util/exec.js';
import type { BenchContext, PublishedImage } from './context.js';

const RANGE = 4 << 20;
const PARALLEL = 4;

export function planRanges(size: number, count: number): [number, number][] {
  const ranges: [number, number][] = [];
  for (let start = 0; start + RANGE <= size && ranges.length < count; start += RANGE) ranges.push([start, start + RANGE - 1]);
  return ranges;
}

export async function rangeFetch(context: BenchContext, image: PublishedImage, linkMbit: number | undefined): Promise<ResultRow[]> {
  const layer = [...image.bench.image.layers].sort((a, b) => b.size - a.size)[0]!;
  const ranges = planRanges(layer.size, context.quick ? 4 : 16);
  const base = {
    scenario: 'ranged reads',
    variant: `${ranges.length}×4 MiB, ${PARALLEL} parallel`,
    image: image.bench.name,
    profile: context.link.profile.name,
    unit: 'MB/s' as const,
    better: 'higher' as const,
    baselineLabel: 'curl -r (xargs -P4)',
  };
  if (ranges.length === 0) return [skippedRow(base, `largest layer (${layer.size} B) smaller than one range`)];
  const repository = image.clientRef.slice(context.link.clientHost.length + 1).split(':')[0];
  const url = `http://${context.link.clientHost}/v2/${repository}/blobs/${layer.digest}`;
  const bytes = ranges.length * RANGE;
  await context.link.resetCounters();
  const curl = await sh(
    `printf '%s\\n' ${ranges.map(([s, e]) => `${s}-${e}`).join(' ')} | xargs -P${PARALLEL} -I{} curl -sf -o /dev/null -r {} '${url}'`,
    {
      netns: context.link.netns,
    },
  );
  const curlLink = await context.link.resetCounters();
  const curlMBps = bytes / 1e6 / curl.seconds;
  const linkMBps = linkMbit === undefined ? undefined : linkMbit / 8;
  const row = {
    ...base,
    baseline: curlMBps,
    baselineBytes: curlLink.bytesDown,
    baselineRequests: curlLink.rangeRequests,
    details: { layerDigest: layer.digest, ...(linkMBps ? { linkMBps, curlOfLink: curlMBps / linkMBps } : {}) },
  };
  const client = fileURLToPath(new URL('./range-client.js', import.meta.url));
  const result = await run(process.execPath, [client, image.clientRef, layer.digest, String(PARALLEL), JSON.stringify(ranges)], {
    netns: context.link.netns,
    allowFailure: true,
    timeoutMs: 10 * 60_000,
  });
  if (result.code === 3) return [skippedRow(row, result.stdout.trim() || 'registry range reader not available')];
  if (result.code !== 0) return [skippedRow(row, `range client failed: ${result.stderr.trim().slice(-300)}`)];
  const clipLink = await context.link.resetCounters();
  const clipSeconds = Number(JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}').seconds);
  const clipMBps = bytes / 1e6 / clipSeconds;
  return [
    finishRow({
      ...row,
      clip: clipMBps,
      clipBytes: clipLink.bytesDown,
      clipRangeRequests: clipLink.rangeRequests,
      details: { ...row.details, ...(linkMBps ? { clipOfLink: clipMBps / linkMBps } : {}) },
    }),
  ];
}
