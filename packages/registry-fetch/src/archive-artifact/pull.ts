// Runtime side: the archive a worker may serve for an image reference, downloaded, verified
// and cached (archive-trust/load.ts decides which one and checks it).
import { copyFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { openArchive, type ClipArchive } from '@clip/archive-format';
import { ArchiveFormatError, type Digest, type Logger, makeDirectories, silentLogger } from '@clip/shared';
import { listArchiveCandidates, loadArchiveForReference, type LoadArchiveOptions, type LoadedArchive } from '../archive-trust/load.js';
import type { Descriptor } from '../image-source.js';
import { listReferrers, parseArtifactManifest } from '../referrers.js';
import type { RegistrySource } from '../registry-source.js';
import { ARCHIVE_ARTIFACT_TYPE, ARCHIVE_LAYER_MEDIA_TYPE } from './artifact.js';
import { profileSidecarPath, storeProfileSidecar } from './profile.js';

export interface PublishedArchive {
  /** The artifact manifest. */
  artifact: Descriptor;
  /** The archive blob (its one layer). */
  blob: Descriptor;
  via: 'api' | 'tag';
}

/** The newest archive artifact that refers to `manifestDigest` (not yet trusted: for messages), or undefined. */
export async function findPublishedArchive(
  source: RegistrySource,
  manifestDigest: Digest,
  logger: Logger = silentLogger,
): Promise<PublishedArchive | undefined> {
  const lookup = await listReferrers(source.client, manifestDigest, { artifactType: ARCHIVE_ARTIFACT_TYPE });
  // Later entries were added later (fallback index appends): try the newest first.
  for (const candidate of [...lookup.referrers].reverse()) {
    const raw = await source.fetchManifest(candidate.digest);
    const manifest = parseArtifactManifest(raw.bytes, `archive artifact ${candidate.digest}`);
    const layer = manifest.layers.find((l) => l.mediaType === ARCHIVE_LAYER_MEDIA_TYPE);
    if (manifest.artifactType !== ARCHIVE_ARTIFACT_TYPE || manifest.subject?.digest !== manifestDigest || !layer) {
      logger.warn('ignoring referrer that is not an archive of this image', { artifact: candidate.digest });
      continue;
    }
    return { artifact: candidate, blob: layer, via: lookup.via };
  }
  return undefined;
}

/** Opens archive bytes and checks that they index `manifestDigest`. */
export function verifyArchive(bytes: Uint8Array, manifestDigest: Digest, what: string): ClipArchive {
  const archive = openArchive(bytes);
  const indexed = archive.metadata.storage?.manifestDigest;
  if (indexed !== manifestDigest) {
    throw new ArchiveFormatError(`${what} indexes manifest ${indexed ?? '(none)'}, not the image's ${manifestDigest}`);
  }
  return archive;
}

export interface PullArchiveOptions extends LoadArchiveOptions {
  /** Also copy the archive here. */
  output?: string;
  /** containerd hosts directory: the whole load is tried on each host it lists, in order (pull-hosts.ts). */
  hostsDir?: string;
}

export interface PullArchiveResult extends LoadedArchive {
  output?: string;
}

export async function pullArchive(reference: string, options: PullArchiveOptions = {}): Promise<PullArchiveResult> {
  if (options.hostsDir) {
    const { pullArchiveViaHosts } = await import('./pull-hosts.js');
    return pullArchiveViaHosts(reference, { ...options, hostsDir: options.hostsDir }, pullArchive);
  }
  // Which archive may be served, and every check on it, live in archive-trust/load.ts.
  const loaded = await loadArchiveForReference(reference, options);
  if (options.output) {
    await makeDirectories(dirname(options.output));
    await copyFile(loaded.path, options.output);
    // The profile travels with the archive: `clip mount <output>` applies it.
    await storeProfileSidecar(options.output, undefined);
    if (loaded.profile) await copyFile(loaded.profile.path, profileSidecarPath(options.output));
  }
  return { ...loaded, ...(options.output ? { output: options.output } : {}) };
}

/** `pull-archive --list`: every candidate, each checked, read through hosts.toml mirrors like pullArchive. */
export async function listPullCandidates(reference: string, options: LoadArchiveOptions & { hostsDir?: string } = {}) {
  if (options.hostsDir) {
    const { pullArchiveViaHosts } = await import('./pull-hosts.js');
    return pullArchiveViaHosts(reference, { ...options, hostsDir: options.hostsDir }, listArchiveCandidates);
  }
  return listArchiveCandidates(reference, options);
}
