// Worker A: push the local layout to the registry (skopeo, straight to the registry, not
// over the emulated link) and index it with clip, storage reference = the runtime address.
// Also the publish scenario: `clip publish` vs `clip push` then `clip index`.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchImage } from '../images/catalog.js';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import { run } from '../util/exec.js';
import { median } from '../util/stats.js';
import { scratch, DENSE_SPAN_SIZE, type BenchContext, type PublishedImage } from './context.js';

export async function publishImage(context: BenchContext, bench: BenchImage): Promise<PublishedImage> {
  const repository = `bench/${bench.name}:latest`;
  await run(
    'skopeo',
    ['copy', '--quiet', '--dest-tls-verify=false', bench.image.reference, `docker://${context.link.registryHost}/${repository}`],
    {
      netns: context.link.netns,
      timeoutMs: 30 * 60_000,
    },
  );
  const clientRef = `${context.link.clientHost}/${repository}`;
  const published: PublishedImage = { bench, clientRef };
  const reason = await context.clip.unavailable('index');
  if (reason) return { ...published, indexSkipped: reason };
  const archive = join(context.workDir, `${bench.name}.clip`);
  try {
    await context.clip.index(bench.image.reference, archive, clientRef);
    const indexed = { ...published, archive, archiveBytes: (await stat(archive)).size };
    // No dense variant in quick runs, nor when the default already is that span size.
    if (context.quick || (await context.clip.defaultSpanSize()) === DENSE_SPAN_SIZE) return indexed;
    // Same local layout and storage reference, denser checkpoints: no second push needed.
    const denseArchive = join(context.workDir, `${bench.name}-dense.clip`);
    await context.clip.index(bench.image.reference, denseArchive, clientRef, undefined, DENSE_SPAN_SIZE);
    return { ...indexed, denseArchive, denseArchiveBytes: (await stat(denseArchive)).size };
  } catch (error) {
    return { ...published, indexSkipped: `clip index failed: ${(error as Error).message.slice(0, 300)}` };
  }
}

/**
 * `clip publish` (index and push at once) vs `clip push` then `clip index` of the same local
 * layout, pushing through the shaped link to fresh repositories (so no blob is skipped).
 * Goal: publish ≤ max(push, index) × 1.1.
 */
export async function publishScenario(context: BenchContext, image: PublishedImage): Promise<ResultRow[]> {
  const { bench } = image;
  const base = { scenario: 'publish', image: bench.name, profile: context.link.profile.name, unit: 's' as const, better: 'lower' as const };
  const rowSeq = {
    ...base,
    variant: 'clip publish vs clip push then clip index',
    baselineLabel: 'clip push, then clip index (sequential)',
  };
  const rowMax = { ...base, variant: 'clip publish vs max(push, index)', baselineLabel: 'max(clip push, clip index) (perfect overlap)' };
  for (const command of ['push', 'publish', 'index'] as const) {
    const reason = await context.clip.unavailable(command);
    if (reason) return [skippedRow(rowSeq, reason), skippedRow(rowMax, reason)];
  }
  const target = (kind: string, i: number) => `${context.link.clientHost}/bench/${kind}-${bench.name}-${i}-${process.pid}:latest`;
  const dir = await scratch(context, `publish-${bench.name}`);
  const runs: { push: number; index: number; publish: number; pushUp: number; publishUp: number }[] = [];
  for (let i = 0; i < context.repetitions; i++) {
    await context.link.resetCounters();
    const push = await context.clip.push(bench.image.reference, target('seq', i), context.link.netns);
    const pushLink = await context.link.resetCounters();
    const index = await context.clip.index(bench.image.reference, join(dir, `seq-${i}.clip`), target('seq', i));
    const published = await context.clip.publish(bench.image.reference, target('par', i), join(dir, `par-${i}.clip`), context.link.netns);
    const publishLink = await context.link.resetCounters();
    runs.push({
      push: push.seconds,
      index: index.seconds,
      publish: published.seconds,
      pushUp: pushLink.bytesUp,
      publishUp: publishLink.bytesUp,
    });
  }
  const pick = (key: keyof (typeof runs)[number]) => median(runs.map((run) => run[key]));
  const push = pick('push');
  const index = pick('index');
  const publish = pick('publish');
  const ideal = Math.max(push, index);
  const details = {
    pushSeconds: push,
    indexSeconds: index,
    publishSeconds: publish,
    pushBytesUp: pick('pushUp'),
    publishBytesUp: pick('publishUp'),
    compressedBytes: bench.image.compressedBytes,
  };
  return [
    finishRow({
      ...rowSeq,
      baseline: push + index,
      clip: publish,
      note: `push ${push.toFixed(2)} s + index ${index.toFixed(2)} s`,
      details,
    }),
    finishRow({ ...rowMax, baseline: ideal, clip: publish, note: `publish / max = ${(publish / ideal).toFixed(2)} (goal ≤ 1.1)`, details }),
  ];
}
