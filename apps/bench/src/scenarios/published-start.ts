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
  /** The archive blob pushed (what a worker downloads before mounting; the tables only when windows are external). */
  archiveBytes: number;
  /** The external windows blob, fetched by range with the spans (absent: windows inline). */
  windowsBytes?: number;
  profileBytes?: number;
  profileFiles?: number;
}

function numberAt(value: unknown, ...path: string[]): number | undefined {
  let at = value;
  for (const key of path) at = at && typeof at === 'object' ? (at as Record<string, unknown>)[key] : undefined;
  return typeof at === 'number' ? at : undefined;
}

/** One line for the row: what the worker downloads first, and how much of the profile's prefetch was used. */
export function describeReference(reference: PublishedReference, runs: readonly StartMeasurement[]): string {
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;
  const parts = [`${reference.ref.split('/').slice(1).join('/')}: archive ${mb(reference.archiveBytes)} fetched before mounting`];
  if (reference.windowsBytes !== undefined) parts.push(`windows blob ${mb(reference.windowsBytes)} (by range)`);
  if (reference.profileBytes !== undefined)
    parts.push(`profile ${(reference.profileBytes / 1e3).toFixed(1)} kB, ${reference.profileFiles ?? '?'} files`);
  const metrics = runs.at(-1)?.metrics;
  const used = numberAt(metrics, 'metrics', 'prefetchUsedBytes');
  const wasted = numberAt(metrics, 'metrics', 'prefetchWastedBytes');
  if (used !== undefined && wasted !== undefined && used + wasted > 0) parts.push(`prefetch used ${mb(used)}, wasted ${mb(wasted)}`);
  return parts.join('; ');
}

/** `--profile-seconds` of the profile run (the bench workloads exit on their own). */
const PROFILE_SECONDS = 180;

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
      // The workload exits by itself: a generous cap, since the default 10 s (meant for servers)
      // cut python-sci's and node-app's profiles short on the loaded machine, reading over the link.
      const extra =
        kind === 'profile'
          ? ['--profile', '--profile-seconds', String(PROFILE_SECONDS), '--', '/bin/sh', '-c', image.bench.workload.command!]
          : [];
      context.log(`  clip publish${kind === 'profile' ? ' --profile' : ''} ${image.bench.name} → ${ref}`);
      const published = await context.clip.publish(image.bench.image.reference, ref, output, context.link.netns, extra);
      await context.link.resetCounters();
      const summary = published.summary;
      const windowsBytes = numberAt(summary, 'archive', 'windows', 'bytes');
      const profileBytes = numberAt(summary, 'archive', 'profile', 'bytes');
      const profileFiles = numberAt(summary, 'archive', 'profile', 'files');
      return {
        ref,
        publishSeconds: published.seconds,
        archiveBytes: numberAt(summary, 'archive', 'bytes') ?? (await stat(output)).size,
        ...(windowsBytes === undefined ? {} : { windowsBytes }),
        ...(profileBytes === undefined ? {} : { profileBytes }),
        ...(profileFiles === undefined ? {} : { profileFiles }),
      };
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
