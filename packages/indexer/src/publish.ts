// The build-worker pipeline behind `clip publish`: index the local layout (no network) and
// push the image at the same time; only once the image is in the registry, push the archive
// as an OCI artifact referring to the image manifest. Anything that fails before that last
// step leaves no archive in the registry; a re-run skips blobs that are already there.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { createArchive, type CreateArchiveOptions, type IndexProgress, type IndexSummary } from './create-archive.js';
import {
  type Digest,
  DigestMismatchError,
  formatImageReference,
  type Logger,
  parseImageReference,
  parseRegistryReference,
  sha256Digest,
  silentLogger,
  UsageError,
} from '@clip/shared';
import {
  ARCHIVE_ARTIFACT_TYPE,
  ARCHIVE_LAYER_MEDIA_TYPE,
  artifactSignature,
  openImageSource,
  openRegistryTarget,
  type Platform,
  pushBoundIndex,
  pushImage,
  type PushProgress,
  pushReferrer,
  type PushResult,
  verifyArchive,
  WINDOWS_LAYER_MEDIA_TYPE,
} from '@clip/registry-fetch';
import { openArchive, splitWindows } from '@clip/archive-format';
import { placeProfileCheckpoints } from './publish-checkpoints.js';
import { profileArtifactParts, type PublishedProfile, recordPublishProfile } from './publish-profile.js';

export interface PublishOptions {
  /** `oci:<dir>[:tag]` or `oci-archive:<file>[:tag]`. */
  source: string;
  /** `registry/repo[:tag]`: where the image goes, and the archive's storage reference. */
  target: string;
  /** Keep the archive here too (default: a temporary file, removed afterwards). */
  output?: string;
  spanSize?: number;
  platform?: Platform;
  /** Blobs uploaded at once. */
  pushConcurrency?: number;
  /** Layers scanned at once. */
  indexConcurrency?: number;
  /** Scan layers on worker threads (default true). */
  workers?: boolean;
  insecure?: boolean;
  /** Put an index binding image and archive at the target tag (default true; see docs/security.md). */
  bind?: boolean;
  /**
   * Push the archive with its checkpoint windows inline (default false: the windows go to a
   * separate blob, v2.3, so workers download only the tables before mounting; docs/archive-format.md).
   */
  inlineWindows?: boolean;
  /** Sign (archive, manifest, repository) with this ed25519 key; stored on the artifact. */
  signKey?: KeyObject;
  /**
   * Records the build-time access profile on the freshly indexed archive (its layers are in the
   * registry by then; `@clip/runtime`'s recordProfile); the text becomes the artifact's profile layer.
   */
  profile?: (archivePath: string) => Promise<Uint8Array>;
  /**
   * With a profile: index again with extra checkpoints where the profile's reads start in gzip
   * layers (publish-checkpoints.ts), so a cold start fetches less. Default true.
   */
  profileCheckpoints?: boolean;
  logger?: Logger;
  /** The image's layers, known before anything starts (for a per-layer display). */
  onPlan?: (layers: Array<{ digest: Digest; size: number }>) => void;
  onIndexProgress?: (progress: IndexProgress) => void;
  onPushProgress?: (progress: PushProgress) => void;
  onStage?: (stage: 'index-done' | 'push-done' | 'archive-push' | 'done') => void;
}

export interface PublishSummary {
  reference: string;
  /** What the tag points at: the bound index, else the pushed manifest or index. */
  imageDigest: Digest;
  /** The platform manifest the archive indexes and refers to. */
  manifestDigest: Digest;
  archive: {
    /** Local copy (-o), absent when none was kept. */
    path?: string;
    blobDigest: Digest;
    /** Bytes of the archive pushed (the tables only when its windows are external). */
    bytes: number;
    /** The windows blob pushed beside it (v2.3), absent when the windows stayed inline. */
    windows?: { digest: Digest; bytes: number };
    artifactDigest: Digest;
    /** The referrers fallback tag written; absent when the registry indexes referrers itself. */
    fallbackTag?: string;
    /** The index at the tag that binds image and archive (absent with bind: false or a digest target). */
    boundIndexDigest?: Digest;
    /** Fingerprint of the key that signed the archive binding. */
    signedBy?: string;
    /** The access profile layer (`--profile`). */
    profile?: PublishedProfile;
  };
  /** What to deploy: `registry/repo@<bound index digest>` (or the image digest when not bound). */
  deploy: string;
  /** Seconds per stage; index and push overlap, so total < index + push. */
  stages: { indexSeconds: number; pushSeconds: number; archivePushSeconds: number; totalSeconds: number };
  /** Image blob bytes uploaded (blobs already in the registry are not sent again). */
  bytesPushed: number;
  archiveBytesPushed: number;
  blobs: { uploaded: number; skipped: number; mounted: number };
  /** Compressed layer bytes the indexer read (from the local layout). */
  bytesIndexed: number;
  /** Bytes the indexing half received over the network: 0 from a local layout. */
  indexNetworkBytes: number;
  /** Compressed bytes of the indexed platform's layers. */
  layerBytes: number;
  /** bytesPushed / pushSeconds; null when nothing was uploaded. */
  pushRateBytesPerSecond: number | null;
  /** What indexing from the registry would have cost: layerBytes / push rate + index time. */
  estimatedRegistryIndexSeconds: number | null;
  /** (push, then index from the registry, then archive push) minus this run's total. */
  indexingTimeSavedSeconds: number | null;
}

const seconds = (from: number, to: number) => Math.round(to - from) / 1000;

/** Runs `work`, returning its result and the time it finished. */
async function timed<T>(work: Promise<T>): Promise<{ value: T; end: number }> {
  const value = await work;
  return { value, end: performance.now() };
}

export async function publish(options: PublishOptions): Promise<PublishSummary> {
  const started = performance.now();
  const logger = options.logger ?? silentLogger;
  const sourceRef = parseImageReference(options.source);
  if (sourceRef.kind === 'registry') {
    throw new UsageError(
      `clip publish indexes a local image (oci:<dir>[:tag] or oci-archive:<file>[:tag]), got the registry reference ${JSON.stringify(options.source)}; ` +
        'for an image already in a registry use clip push and clip index',
    );
  }
  const targetRef = parseRegistryReference(options.target);
  const target = formatImageReference(targetRef);

  const source = await openImageSource(sourceRef, { logger, ...(options.platform ? { platform: options.platform } : {}) });
  const scratch = options.output ? undefined : await mkdtemp(join(tmpdir(), 'clip-publish-'));
  const output = options.output ?? join(scratch!, 'archive.clip');
  try {
    const image = await source.resolve(options.platform ? { platform: options.platform } : {});
    options.onPlan?.(image.layers.map((layer) => ({ digest: layer.digest, size: layer.size })));
    logger.info('publishing', { source: source.reference, target, manifest_digest: image.manifestDigest, layers: image.layers.length });
    const halves = await indexAndPush(options, source, targetRef, target, output, logger);
    if (halves.indexed.manifestDigest !== image.manifestDigest) {
      throw new DigestMismatchError(`indexed manifest of ${source.reference}`, image.manifestDigest, halves.indexed.manifestDigest);
    }
    // The image is in the registry: a lazy mount of it can record the profile, then the archive goes up.
    const profile = options.profile ? await recordPublishProfile(options.profile, output, logger) : undefined;
    if (profile && options.profileCheckpoints !== false) {
      const extraCuts = await placeProfileCheckpoints({ archivePath: output, profile, source, logger });
      if (extraCuts.size > 0) {
        const again = await createArchive({ ...indexOptions(options, target, output, logger), extraCuts });
        logger.info('archive indexed again with the profile checkpoints', {
          checkpoints: again.checkpoints,
          archive_bytes: again.archiveBytes,
        });
      }
    }
    options.onStage?.('archive-push');
    const archivePushStart = performance.now();
    const published = await pushArchive(options, source, image, targetRef, output, logger, profile);
    const end = performance.now();
    options.onStage?.('done');
    logger.info('archive published', {
      target,
      manifest_digest: image.manifestDigest,
      artifact: published.artifact.manifest.digest,
      fallback_tag: published.artifact.fallbackTag,
    });
    const times = { started, indexEnd: halves.indexEnd, pushEnd: halves.pushEnd, archivePushStart, end };
    return publishSummary(options, targetRef, image, halves, published, times);
  } finally {
    await source.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}

type ImageSource = Awaited<ReturnType<typeof openImageSource>>;
type ResolvedImage = Awaited<ReturnType<ImageSource['resolve']>>;
type RegistryReference = ReturnType<typeof parseRegistryReference>;

interface IndexedAndPushed {
  indexed: IndexSummary;
  indexEnd: number;
  pushed: PushResult;
  pushEnd: number;
}

/** Indexes the local image into `output` while pushing it; both run to the end, and either failure is thrown. */
async function indexAndPush(
  options: PublishOptions,
  source: ImageSource,
  targetRef: RegistryReference,
  target: string,
  output: string,
  logger: Logger,
): Promise<IndexedAndPushed> {
  const indexing = timed(
    createArchive({
      ...indexOptions(options, target, output, logger),
      ...(options.onIndexProgress ? { onProgress: options.onIndexProgress } : {}),
    }),
  ).then((result) => {
    options.onStage?.('index-done');
    return result;
  });
  const pushing = timed(
    pushImage(source, targetRef, {
      logger,
      ...(options.insecure ? { insecure: true } : {}),
      ...(options.pushConcurrency !== undefined ? { concurrency: options.pushConcurrency } : {}),
      ...(options.onPushProgress ? { onProgress: options.onPushProgress } : {}),
    }),
  ).then((result) => {
    options.onStage?.('push-done');
    return result;
  });
  // Both run to the end even if one fails: no upload is left running behind our back.
  const [indexed, pushed] = await Promise.allSettled([indexing, pushing]);
  if (pushed.status === 'rejected') {
    logger.error('image push failed; no archive was published', { target });
    throw pushed.reason;
  }
  if (indexed.status === 'rejected') {
    logger.error('indexing failed; the image was pushed but no archive was published', { target });
    throw indexed.reason;
  }
  return { indexed: indexed.value.value, indexEnd: indexed.value.end, pushed: pushed.value.value, pushEnd: pushed.value.end };
}

/** createArchive's options for this publish (the first index, and again with profile checkpoints). */
function indexOptions(options: PublishOptions, target: string, output: string, logger: Logger): CreateArchiveOptions {
  return {
    source: options.source,
    storageRef: target,
    output,
    logger,
    ...(options.spanSize !== undefined ? { spanSize: options.spanSize } : {}),
    ...(options.platform ? { platform: options.platform } : {}),
    ...(options.indexConcurrency !== undefined ? { concurrency: options.indexConcurrency } : {}),
    ...(options.workers !== undefined ? { workers: options.workers } : {}),
  };
}

interface PublishedArchive {
  bytes: number;
  windows: { digest: Digest; bytes: number } | undefined;
  artifact: Awaited<ReturnType<typeof pushReferrer>>;
  boundIndexDigest: Digest | undefined;
  signedBy: string | undefined;
  profile?: PublishedProfile;
}

/** Verifies the written archive, pushes it as a (signed) referrer of the image, and binds them at the tag. */
export async function pushArchive(
  options: PublishOptions,
  source: ImageSource,
  image: ResolvedImage,
  targetRef: RegistryReference,
  output: string,
  logger: Logger,
  profile?: Uint8Array,
): Promise<PublishedArchive> {
  const written = await readFile(output);
  verifyArchive(written, image.manifestDigest, `archive ${output}`);
  // The tables go as the archive, the windows as a blob beside it in the same repository (where the layers are).
  // An archive pulled from a registry (`clip profile <ref>`) has its windows there already.
  const alreadyExternal = openArchive(written).externalWindows;
  const split = options.inlineWindows || alreadyExternal ? undefined : splitWindows(written);
  const bytes = split?.archive ?? written;
  if (split) {
    verifyArchive(bytes, image.manifestDigest, `archive ${output} with external windows`);
    logger.info('checkpoint windows split from the archive', {
      archive_bytes: bytes.length,
      windows_bytes: split.windows.length,
      windows_blob: split.windowsDigest,
    });
  }
  const destination = openRegistryTarget(targetRef, { logger, ...(options.insecure ? { insecure: true } : {}) });
  const signature = artifactSignature(options.signKey, {
    archiveDigest: sha256Digest(bytes),
    manifestDigest: image.manifestDigest,
    target: targetRef,
  });
  const profileParts = profile ? profileArtifactParts(profile, options.signKey, bytes, image.manifestDigest, targetRef) : undefined;
  const annotations = { ...signature.annotations, ...profileParts?.annotations };
  try {
    const artifact = await pushReferrer(destination, {
      artifactType: ARCHIVE_ARTIFACT_TYPE,
      subject: { mediaType: image.manifestMediaType, digest: image.manifestDigest, size: image.manifestBytes.length },
      blob: { bytes, mediaType: ARCHIVE_LAYER_MEDIA_TYPE, annotations: { 'org.opencontainers.image.title': 'image.clip' } },
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
      ...(split || alreadyExternal || profileParts
        ? {
            extraBlobs: [
              ...(split
                ? [
                    {
                      bytes: split.windows,
                      mediaType: WINDOWS_LAYER_MEDIA_TYPE,
                      annotations: { 'org.opencontainers.image.title': 'image.clip.windows' },
                    },
                  ]
                : []),
              ...(alreadyExternal
                ? [
                    {
                      existing: alreadyExternal,
                      mediaType: WINDOWS_LAYER_MEDIA_TYPE,
                      annotations: { 'org.opencontainers.image.title': 'image.clip.windows' },
                    },
                  ]
                : []),
              ...(profileParts ? [profileParts.blob] : []),
            ],
          }
        : {}),
    });
    const boundIndexDigest =
      options.bind !== false ? await pushBoundIndex(destination, source, image, artifact.manifest, logger) : undefined;
    const windows = split
      ? { digest: split.windowsDigest, bytes: split.windows.length }
      : alreadyExternal
        ? { digest: alreadyExternal.digest, bytes: alreadyExternal.size }
        : undefined;
    return {
      bytes: bytes.length,
      windows,
      artifact,
      boundIndexDigest,
      signedBy: signature.signedBy,
      ...(profileParts ? { profile: profileParts.summary } : {}),
    };
  } finally {
    await destination.close();
  }
}

/** The summary, with the time the overlap saved against indexing from the registry after the push. */
function publishSummary(
  options: PublishOptions,
  targetRef: RegistryReference,
  image: ResolvedImage,
  { indexed: summary, pushed: push }: IndexedAndPushed,
  { bytes, windows, artifact, boundIndexDigest, signedBy, profile }: PublishedArchive,
  times: { started: number; indexEnd: number; pushEnd: number; archivePushStart: number; end: number },
): PublishSummary {
  const layerBytes = image.layers.reduce((sum, layer) => sum + layer.size, 0);
  const indexSeconds = seconds(times.started, times.indexEnd);
  const pushSeconds = seconds(times.started, times.pushEnd);
  const archivePushSeconds = seconds(times.archivePushStart, times.end);
  const totalSeconds = seconds(times.started, times.end);
  const rate = push.bytesUploaded > 0 && pushSeconds > 0 ? push.bytesUploaded / pushSeconds : null;
  const estimated = rate === null ? null : Math.round((layerBytes / rate + indexSeconds) * 1000) / 1000;
  const imageDigest = boundIndexDigest ?? push.digest;
  return {
    reference: push.reference,
    imageDigest,
    deploy: `${targetRef.registry}/${targetRef.repository}@${imageDigest}`,
    manifestDigest: image.manifestDigest,
    archive: {
      ...(options.output ? { path: options.output } : {}),
      blobDigest: artifact.blob.digest,
      bytes,
      ...(windows ? { windows } : {}),
      artifactDigest: artifact.manifest.digest,
      ...(artifact.fallbackTag ? { fallbackTag: artifact.fallbackTag } : {}),
      ...(boundIndexDigest ? { boundIndexDigest } : {}),
      ...(signedBy ? { signedBy } : {}),
      ...(profile ? { profile } : {}),
    },
    stages: { indexSeconds, pushSeconds, archivePushSeconds, totalSeconds },
    bytesPushed: push.bytesUploaded,
    archiveBytesPushed: artifact.bytesUploaded,
    blobs: { uploaded: push.blobsUploaded, skipped: push.blobsSkipped, mounted: push.blobsMounted },
    bytesIndexed: summary.bytesRead,
    indexNetworkBytes: summary.networkBytes,
    layerBytes,
    pushRateBytesPerSecond: rate === null ? null : Math.round(rate),
    estimatedRegistryIndexSeconds: estimated,
    indexingTimeSavedSeconds:
      estimated === null ? null : Math.round((pushSeconds + estimated + archivePushSeconds - totalSeconds) * 1000) / 1000,
  };
}
