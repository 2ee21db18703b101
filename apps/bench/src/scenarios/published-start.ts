// Cold starts of an image as a user gets it: published by `clip publish` (with a build-time
// access profile, or without), then a fresh worker mounts the *reference* with no prefetch
// flags, so the archive (and profile) download is on the start path and in the bytes.
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { scratch, type BenchContext, type PublishedImage } from './context.js';
import { clipStart, type StartMeasurement } from './workers.js';

export type PublishKind = 'profile' | 'no-profile';

export interface PublishedReference {
  /** The tag's reference through the proxy (what workers mount). */
  ref: string;
  publishSeconds: number;
  archiveBytes: number;
}

/** One publish per image and kind, shared by every link profile of the run. */
const publications = new Map<string, Promise<PublishedReference>>();

/** Why the kind cannot run with this build of clip, or undefined. */
export async function publishUnavailable(context: BenchContext, image: PublishedImage, kind: PublishKind): Promise<string | undefined> {
  const reason = await context.clip.unavailable('publish');
  if (reason) return reason;
  if (kind === 'no-profile') return undefined;
  if (!image.bench.workload.command) return `${image.bench.name}'s workload is not a command in the image: nothing to profile`;
  return context.clip.optionUnavailable('publish', '--profile');
}

/**
 * `clip publish` of the local layout to `bench/<image>:<kind>` through the link (the layers
 * are already in the repository, so only the archive and index cross it). The profile run
 * is the bench workload itself (`--profile -- /bin/sh -c <workload>`).
 */
export function publishReference(context: BenchContext, image: PublishedImage, kind: PublishKind): Promise<PublishedReference> {
  const key = `${image.bench.name} ${kind}`;
  let publication = publications.get(key);
  if (!publication) {
    publication = (async () => {
      const ref = image.clientRef.replace(/:[^:/]+$/, `:${kind === 'profile' ? 'profiled' : 'no-profile'}`);
      const output = join(context.workDir, `${image.bench.name}-${kind}.clip`);
      const extra = kind === 'profile' ? ['--profile', '--', '/bin/sh', '-c', image.bench.workload.command!] : [];
      context.log(`  clip publish${kind === 'profile' ? ' --profile' : ''} ${image.bench.name} → ${ref}`);
      const published = await context.clip.publish(image.bench.image.reference, ref, output, context.link.netns, extra);
      await context.link.resetCounters();
      return { ref, publishSeconds: published.seconds, archiveBytes: (await stat(output)).size };
    })();
    publications.set(key, publication);
    // A failed publish is retried by the next profile rather than remembered.
    publication.catch(() => publications.delete(key));
  }
  return publication;
}

/** Fresh workers (empty span cache, empty archive cache) mounting the reference with no prefetch flags. */
export async function referenceStarts(
  context: BenchContext,
  image: PublishedImage,
  kind: PublishKind,
  reference: PublishedReference,
): Promise<StartMeasurement[]> {
  const runs: StartMeasurement[] = [];
  for (let i = 0; i < context.repetitions; i++) {
    context.log(
      `  clip ${kind === 'profile' ? 'default (profile published)' : 'no profile'} ${image.bench.name} (${i + 1}/${context.repetitions})`,
    );
    const worker = await scratch(context, 'worker');
    await mkdir(join(worker, 'xdg'), { recursive: true });
    // XDG_CACHE_HOME and CLIP_ARCHIVE_CACHE: nothing from an earlier start (archive, profile) is found.
    const env = { XDG_CACHE_HOME: join(worker, 'xdg'), CLIP_ARCHIVE_CACHE: join(worker, 'archives') };
    runs.push(await clipStart(context, image, { cacheDir: join(worker, 'cache'), archive: reference.ref, env }));
  }
  return runs;
}
