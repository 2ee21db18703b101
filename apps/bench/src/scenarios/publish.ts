// Worker A: push the local layout to the registry (skopeo, straight to the registry, not
// over the emulated link) and index it with clip, storage reference = the runtime address.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchImage } from '../images/catalog.js';
import { run } from '../util/exec.js';
import type { BenchContext, PublishedImage } from './context.js';

export async function publishImage(context: BenchContext, bench: BenchImage): Promise<PublishedImage> {
  const repository = `bench/${bench.name}:latest`;
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', bench.image.reference, `docker://${context.link.registryHost}/${repository}`], {
    netns: context.link.netns,
    timeoutMs: 30 * 60_000,
  });
  const clientRef = `${context.link.clientHost}/${repository}`;
  const published: PublishedImage = { bench, clientRef };
  const reason = await context.clip.unavailable('index');
  if (reason) return { ...published, indexSkipped: reason };
  const archive = join(context.workDir, `${bench.name}.clip`);
  try {
    await context.clip.index(bench.image.reference, archive, clientRef);
    return { ...published, archive, archiveBytes: (await stat(archive)).size };
  } catch (error) {
    return { ...published, indexSkipped: `clip index failed: ${(error as Error).message.slice(0, 300)}` };
  }
}
