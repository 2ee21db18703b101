// `clip index`: turns an OCI image (local layout, oci-archive or registry) into a .clip
// archive. Layers are scanned concurrently (bounded), merged in layer order, and the archive
// is written atomically. A local layout with a storage reference is indexed without any
// network request: the storage reference is only recorded, never contacted.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { type ArchiveMetadata, type DirEntry, encodeArchiveAsync, type Inode, type StorageReference } from '@clip/archive-format';
import {
  type ClipError,
  formatImageReference,
  type ImageReference,
  IoError,
  type Logger,
  parseImageReference,
  PlatformNotFoundError,
  type RegistryReference,
  silentLogger,
  UsageError,
  writeFileAtomically,
} from '@clip/shared';
import { type ImageSource, LayoutSource, OciArchiveSource, type Platform, type ResolvedImage } from '@clip/registry-fetch';
import { indexImageLayers, type PhaseTimer } from './pipeline/index-image-layers.js';
import { createLayerIndexer, type LayerIndexer } from './pipeline/layer-indexer.js';
import type { ExtraCuts } from './pipeline/layer-options.js';

export const CREATED_BY = 'clip 0.1.0';
/**
 * 1 MiB (was 4 MiB): a first touch of a span fetches from its checkpoint, so denser checkpoints
 * fetch less (python-minimal's import workload: 12.1 instead of 19.5 MB). Published archives keep
 * their windows in a ranged blob (v2.3), so the start-up download stays ~0.09% of the image
 * (docs/benchmarks.md, "Checkpoint windows out of the mount-time download").
 */
export const DEFAULT_SPAN_SIZE = 1024 * 1024;

export interface IndexProgress {
  layersDone: number;
  layersTotal: number;
  /** Compressed bytes read from the source so far. */
  bytesRead: number;
  /** Sum of the layers' compressed sizes. */
  bytesTotal: number;
}

export interface CreateArchiveOptions {
  /** Image reference: `oci:<dir>[:tag]`, `oci-archive:<file>[:tag]` or `registry/repo[:tag][@digest]`. */
  source: string;
  /** Registry reference the runtime fetches layers from. Required for local sources. */
  storageRef?: string;
  /** Path of the .clip file to write (atomically). */
  output: string;
  /** Uncompressed bytes between checkpoints; default 1 MiB (DEFAULT_SPAN_SIZE). */
  spanSize?: number;
  platform?: Platform;
  /** Layers scanned at once; default the number of CPUs. */
  concurrency?: number;
  /** Scan layers in worker threads (default true when the compiled worker is available). */
  workers?: boolean;
  /** Registry options passed to the source. */
  insecure?: boolean;
  /** containerd hosts directory: a registry source reads through the mirrors it lists. */
  hostsDir?: string;
  /**
   * Layers by digest: checkpoints (gzip block boundaries) and piece ends besides the regular
   * ones, e.g. where a profile's reads start and end (profile-checkpoints.ts).
   */
  extraCuts?: ReadonlyMap<string, ExtraCuts>;
  onProgress?: (progress: IndexProgress) => void;
  logger?: Logger;
}

export interface IndexSummary {
  /** Names of regular files (hardlinks count once per name). */
  files: number;
  directories: number;
  layers: number;
  /** Decompression checkpoints (spans) over all layers. */
  checkpoints: number;
  archiveBytes: number;
  seconds: number;
  /** Compressed layer bytes read from the source. */
  bytesRead: number;
  /** Bytes received over the network (0 for a local layout). */
  networkBytes: number;
  manifestDigest: string;
  output: string;
}

const LOCAL_KINDS = new Set(['oci-layout', 'oci-archive']);

/** The registry reference layers will be fetched from at runtime; checked before any I/O. */
function storageReferenceFor(sourceRef: ImageReference, storageRef: string | undefined): RegistryReference {
  if (storageRef !== undefined) {
    const parsed = parseImageReference(storageRef);
    if (parsed.kind !== 'registry') {
      throw new UsageError(`--storage-ref must be a registry reference (registry/repository[:tag]), got ${JSON.stringify(storageRef)}`);
    }
    return parsed;
  }
  if (sourceRef.kind === 'registry') return sourceRef;
  throw new UsageError(
    `indexing a local OCI layout (${formatImageReference(sourceRef)}) needs --storage-ref <registry/repository:tag>: ` +
      'the registry the image is (or will be) pushed to, where the runtime fetches its layers',
  );
}

function storageFor(ref: RegistryReference, image: ResolvedImage): StorageReference {
  return {
    registry: ref.registry,
    repository: ref.repository,
    ...(ref.tag !== undefined ? { tag: ref.tag } : {}),
    manifestDigest: image.manifestDigest,
  };
}

function metadataFor(source: ImageSource, storage: StorageReference, image: ResolvedImage): ArchiveMetadata {
  const config = image.config.config ?? {};
  const imageConfig: ArchiveMetadata['imageConfig'] = {};
  if (config.Entrypoint) imageConfig.entrypoint = config.Entrypoint;
  if (config.Cmd) imageConfig.cmd = config.Cmd;
  if (config.Env) imageConfig.env = config.Env;
  if (config.WorkingDir) imageConfig.workingDir = config.WorkingDir;
  if (config.User) imageConfig.user = config.User;
  if (config.Labels && Object.keys(config.Labels).length > 0) imageConfig.labels = config.Labels;
  if (config.StopSignal) imageConfig.stopSignal = config.StopSignal;
  const platform =
    image.platform ??
    (image.config.os && image.config.architecture
      ? { os: image.config.os, architecture: image.config.architecture, ...(image.config.variant ? { variant: image.config.variant } : {}) }
      : undefined);
  return {
    sourceRef: source.reference,
    storage,
    manifestMediaType: image.manifestMediaType,
    ...(platform
      ? { platform: { os: platform.os, architecture: platform.architecture, ...(platform.variant ? { variant: platform.variant } : {}) } }
      : {}),
    imageConfig,
    createdBy: CREATED_BY,
  };
}

function checkPlatform(wanted: Platform | undefined, image: ResolvedImage): void {
  const actual = image.platform;
  if (!wanted || !actual) return;
  if (wanted.os !== actual.os || wanted.architecture !== actual.architecture) {
    const show = (p: Platform) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
    throw new PlatformNotFoundError(show(wanted), [show(actual)]);
  }
}

function ioError(what: string, error: unknown): ClipError {
  return new IoError(`${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

/** Fails before any scanning if the archive could not be written anyway. */
async function checkOutputDirectory(path: string): Promise<void> {
  try {
    await access(dirname(path), constants.W_OK);
  } catch (error) {
    throw ioError(`cannot write the archive to ${path}`, error);
  }
}

/** Atomic write (temp file + rename); failures name the archive being written. */
async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  try {
    await writeFileAtomically(path, bytes);
  } catch (error) {
    throw ioError(`cannot write the archive to ${path}`, error);
  }
}

/**
 * Local layouts and archives are opened directly: the registry client (and its HTTP stack,
 * a tenth of a second to load) is imported only for registry references.
 */
async function openSource(ref: ImageReference, options: CreateArchiveOptions, logger: Logger): Promise<ImageSource> {
  if (ref.kind === 'oci-layout') return new LayoutSource(ref);
  if (ref.kind === 'oci-archive') return new OciArchiveSource(ref);
  const { openImageSource } = await import('@clip/registry-fetch');
  return openImageSource(ref, {
    logger,
    ...(options.platform ? { platform: options.platform } : {}),
    ...(options.insecure ? { insecure: true } : {}),
    ...(options.hostsDir ? { hostsDir: options.hostsDir } : {}),
  });
}

/** Debug-level timing of the indexing phases (milliseconds since the previous mark). */
function phaseTimer(logger: Logger): PhaseTimer {
  let last = performance.now();
  return {
    done(phase, fields = {}) {
      const now = performance.now();
      logger.debug('indexing phase done', { phase, ms: Math.round(now - last), ...fields });
      last = now;
    },
  };
}

export async function createArchive(options: CreateArchiveOptions): Promise<IndexSummary> {
  const started = process.hrtime.bigint();
  const logger = options.logger ?? silentLogger;
  const spanSize = options.spanSize ?? DEFAULT_SPAN_SIZE;
  if (!Number.isSafeInteger(spanSize) || spanSize < 64 * 1024) throw new UsageError(`span size must be at least 64 KiB, got ${spanSize}`);
  const sourceRef = parseImageReference(options.source);
  const storageRef = storageReferenceFor(sourceRef, options.storageRef);
  await checkOutputDirectory(options.output);
  if (LOCAL_KINDS.has(sourceRef.kind)) {
    // Users grep for this line to confirm the local layout was used and nothing was pulled.
    logger.info('indexing from local OCI layout with remote storage reference', {
      source_ref: formatImageReference(sourceRef),
      storage_ref: formatImageReference(storageRef),
    });
  }

  const source = await openSource(sourceRef, options, logger);
  const phases = phaseTimer(logger);
  let indexer: LayerIndexer | undefined;
  try {
    const { image, metadata } = await resolveImage(source, storageRef, options.platform, phases, logger);
    logger.info('indexing image', {
      source_ref: source.reference,
      manifest_digest: image.manifestDigest,
      layers: image.layers.length,
      span_size: spanSize,
    });
    const progress = progressReporter(image, options.onProgress);
    const concurrency = Math.max(1, options.concurrency ?? availableParallelism());
    indexer = await createLayerIndexer({
      workers: options.workers ?? true,
      concurrency,
      logger,
      layerSizes: image.layers.map((layer) => layer.size),
    });
    const { layers, tree } = await indexImageLayers({
      image,
      source,
      sourceRef,
      indexer,
      concurrency,
      spanSize,
      ...(options.extraCuts ? { extraCuts: options.extraCuts } : {}),
      phases,
      logger,
      onBytesRead: progress.bytesRead,
      onLayerDone: progress.layerDone,
    });
    const { inodes, entries } = tree.toTables();
    phases.done('tables', { inodes: inodes.length, entries: entries.length });
    const bytes = await encodeArchiveAsync({ metadata, layers, inodes, entries });
    phases.done('encode', { archive_bytes: bytes.length });
    await writeAtomically(options.output, bytes);
    phases.done('write');

    const { files, directories } = countNames(inodes, entries);
    const summary: IndexSummary = {
      files,
      directories,
      layers: layers.length,
      checkpoints: layers.reduce((sum, layer) => sum + layer.spans.length, 0),
      archiveBytes: bytes.length,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      bytesRead: progress.total(),
      networkBytes: source.stats().networkBytesReceived,
      manifestDigest: image.manifestDigest,
      output: options.output,
    };
    logger.info('archive written', { output: options.output, files, directories, layers: layers.length, archive_bytes: bytes.length });
    return summary;
  } finally {
    await indexer?.close();
    await source.close();
  }
}

/** The manifest and config (platform checked) and the archive metadata recorded for them. */
async function resolveImage(
  source: ImageSource,
  storageRef: RegistryReference,
  platform: Platform | undefined,
  phases: PhaseTimer,
  logger: Logger,
): Promise<{ image: ResolvedImage; metadata: ArchiveMetadata }> {
  const image = await source.resolve(platform ? { platform } : {});
  phases.done('resolve');
  checkPlatform(platform, image);
  const storage = storageFor(storageRef, image);
  if (storageRef.digest !== undefined && storageRef.digest !== image.manifestDigest) {
    logger.warn('storage reference digest differs from the indexed manifest; recording the indexed one', {
      storage_ref: formatImageReference(storageRef),
      manifest_digest: image.manifestDigest,
    });
  }
  return { image, metadata: metadataFor(source, storage, image) };
}

/** Counts bytes read and layers done, reporting each change (and the start) to onProgress. */
function progressReporter(image: ResolvedImage, onProgress: ((progress: IndexProgress) => void) | undefined) {
  const layersTotal = image.layers.length;
  const bytesTotal = image.layers.reduce((sum, layer) => sum + layer.size, 0);
  let bytesRead = 0;
  let layersDone = 0;
  const report = () => onProgress?.({ layersDone, layersTotal, bytesRead, bytesTotal });
  report();
  return {
    bytesRead(count: number) {
      bytesRead += count;
      report();
    },
    layerDone() {
      layersDone++;
      report();
    },
    total: () => bytesRead,
  };
}

/** Regular files and directories among the archive's names (a hardlink counts once per name). */
function countNames(inodes: readonly Inode[], entries: readonly DirEntry[]): { files: number; directories: number } {
  let files = 0;
  let directories = 0;
  for (const entry of entries) {
    const type = inodes[entry.ino - 1]!.type;
    if (type === 'file') files++;
    else if (type === 'directory') directories++;
  }
  return { files, directories };
}
