// Runtime side: find the archive published for an image (referrers API or fallback tag),
// download it, verify it (blob digest, opens as an archive, indexes this very manifest) and
// keep it in the local cache.
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { openArchive, type ClipArchive } from '@clip/archive-format';
import { ArchiveFormatError, type Digest, DigestMismatchError, isClipError, type Logger, parseRegistryReference, sha256Digest, silentLogger } from '@clip/shared';
import type { Descriptor, Platform } from '../image-source.js';
import { listReferrers, parseArtifactManifest } from '../referrers.js';
import { RegistrySource } from '../registry-source.js';
import { ARCHIVE_ARTIFACT_TYPE, ARCHIVE_LAYER_MEDIA_TYPE, ArchiveNotPublishedError } from './artifact.js';
import { cachedArchivePath, defaultArchiveCacheDir, writeFileAtomically } from './archive-cache.js';

/** Archives are small (a file table and checkpoints); anything larger is not one of ours. */
const MAX_ARCHIVE_BYTES = 2 * 1024 * 1024 * 1024;

export interface PublishedArchive {
  /** The artifact manifest. */
  artifact: Descriptor;
  /** The archive blob (its one layer). */
  blob: Descriptor;
  via: 'api' | 'tag';
}

/** The newest valid archive artifact that refers to `manifestDigest`, or undefined. */
export async function findPublishedArchive(source: RegistrySource, manifestDigest: Digest, logger: Logger = silentLogger): Promise<PublishedArchive | undefined> {
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

async function download(source: RegistrySource, blob: Descriptor): Promise<Buffer> {
  if (blob.size > MAX_ARCHIVE_BYTES) throw new ArchiveFormatError(`archive blob ${blob.digest} is ${blob.size} bytes: too large for an archive`);
  const chunks: Buffer[] = [];
  // openBlob verifies the digest as it streams; checked again below over what we kept.
  for await (const chunk of await source.openBlob(blob.digest)) chunks.push(chunk as Buffer);
  const bytes = Buffer.concat(chunks);
  const actual = sha256Digest(bytes);
  if (actual !== blob.digest) throw new DigestMismatchError(`archive blob of ${source.reference}`, blob.digest, actual);
  if (bytes.length !== blob.size) throw new ArchiveFormatError(`archive blob ${blob.digest} has ${bytes.length} bytes, its descriptor says ${blob.size}`);
  return bytes;
}

export interface PullArchiveOptions {
  /** Default: defaultArchiveCacheDir(). */
  cacheDir?: string;
  /** Also copy the archive here. */
  output?: string;
  platform?: Platform;
  insecure?: boolean;
  logger?: Logger;
  /** Download again even when the cache has the archive. */
  refresh?: boolean;
}

export interface PullArchiveResult {
  reference: string;
  manifestDigest: Digest;
  /** The verified archive in the cache. */
  path: string;
  output?: string;
  cached: boolean;
  archiveBytes: number;
  artifactDigest?: Digest;
  blobDigest?: Digest;
  via?: 'api' | 'tag';
  networkBytes: number;
}

export async function pullArchive(reference: string, options: PullArchiveOptions = {}): Promise<PullArchiveResult> {
  const logger = options.logger ?? silentLogger;
  const ref = parseRegistryReference(reference);
  const cacheDir = options.cacheDir ?? defaultArchiveCacheDir();
  const source = new RegistrySource(ref, { logger, ...(options.insecure ? { insecure: true } : {}) });
  try {
    const image = await source.resolve(options.platform ? { platform: options.platform } : {});
    const manifestDigest = image.manifestDigest;
    const path = cachedArchivePath(cacheDir, manifestDigest);
    const finish = async (result: Omit<PullArchiveResult, 'networkBytes' | 'output'>): Promise<PullArchiveResult> => {
      if (options.output) {
        await mkdir(dirname(options.output), { recursive: true });
        await copyFile(path, options.output);
      }
      return { ...result, ...(options.output ? { output: options.output } : {}), networkBytes: source.stats().networkBytesReceived };
    };

    if (!options.refresh) {
      const cached = await readFile(path).catch(() => undefined);
      if (cached) {
        try {
          const archive = verifyArchive(cached, manifestDigest, `cached archive ${path}`);
          logger.info('using cached archive', { reference: source.reference, manifest_digest: manifestDigest, path });
          return await finish({ reference: source.reference, manifestDigest, path, cached: true, archiveBytes: archive.byteLength });
        } catch (error) {
          if (!isClipError(error)) throw error;
          logger.warn('cached archive unusable; downloading it again', { path, error: error.message });
        }
      }
    }

    const published = await findPublishedArchive(source, manifestDigest, logger);
    if (!published) {
      throw new ArchiveNotPublishedError(
        `no clip archive is published for ${source.reference} (manifest ${manifestDigest}); ` +
          `looked for ${ARCHIVE_ARTIFACT_TYPE} referrers via the referrers API and the tag ${manifestDigest.replace(':', '-')} — run clip publish`,
      );
    }
    const bytes = await download(source, published.blob);
    const archive = verifyArchive(bytes, manifestDigest, `archive ${published.blob.digest} of ${source.reference}`);
    await writeFileAtomically(path, bytes);
    logger.info('downloaded archive', {
      reference: source.reference,
      manifest_digest: manifestDigest,
      artifact: published.artifact.digest,
      via: published.via,
      bytes: bytes.length,
      path,
    });
    return finish({
      reference: source.reference,
      manifestDigest,
      path,
      cached: false,
      archiveBytes: archive.byteLength,
      artifactDigest: published.artifact.digest,
      blobDigest: published.blob.digest,
      via: published.via,
    });
  } finally {
    await source.close();
  }
}
