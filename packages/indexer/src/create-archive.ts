// `clip index`: turns an OCI image (local layout, oci-archive or registry) into a .clip
// archive. Layers are scanned concurrently (bounded), merged in layer order, and the archive
// is written atomically. A local layout with a storage reference is indexed without any
// network request: the storage reference is only recorded, never contacted.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { type ArchiveLayer, type ArchiveMetadata, encodeArchiveAsync, type StorageReference } from '@clip/archive-format';
import {
  type ClipError,
  DigestMismatchError,
  formatImageReference,
  type ImageReference,
  IoError,
  LayerFormatError,
  type Logger,
  parseImageReference,
  PlatformNotFoundError,
  type RegistryReference,
  silentLogger,
  UsageError,
  writeFileAtomically,
} from '@clip/shared';
import {
  type ImageSource,
  type LayerDescriptor,
  LayoutSource,
  OciArchiveSource,
  type Platform,
  type ResolvedImage,
} from '@clip/registry-fetch';
import { OverlayTree } from './overlay/overlay-tree.js';
import { createLayerIndexer, type LayerIndexer } from './pipeline/layer-indexer.js';
import { openLocalBlob } from './pipeline/local-blob.js';
import type { IndexedLayer } from './pipeline/index-layer.js';
import { UNHASHED } from './scan/scan-compressed-layer.js';

export const CREATED_BY = 'clip 0.1.0';
export const DEFAULT_SPAN_SIZE = 4 * 1024 * 1024;

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
  /** Uncompressed bytes between checkpoints; default 4 MiB. */
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

function archiveLayer(descriptor: LayerDescriptor, indexed: IndexedLayer): ArchiveLayer {
  const { scan } = indexed;
  if (scan.digest !== UNHASHED && scan.digest !== descriptor.digest)
    throw new DigestMismatchError(`layer ${descriptor.digest}`, descriptor.digest, scan.digest);
  if (scan.diffId !== descriptor.diffId)
    throw new DigestMismatchError(`uncompressed layer ${descriptor.digest} (diff_id)`, descriptor.diffId, scan.diffId);
  return {
    digest: descriptor.digest,
    mediaType: descriptor.mediaType,
    compression: descriptor.compression,
    compressedSize: scan.compressedSize,
    uncompressedSize: scan.uncompressedSize,
    diffId: descriptor.diffId,
    spans: scan.spans,
  };
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
function phaseTimer(logger: Logger): { done(phase: string, fields?: Record<string, number>): void } {
  let last = performance.now();
  return {
    done(phase, fields = {}) {
      const now = performance.now();
      logger.debug('indexing phase done', { phase, ms: Math.round(now - last), ...fields });
      last = now;
    },
  };
}

/** Runs `task` over `items` with at most `limit` in flight; results in item order. */
function boundedAll<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R>[] {
  const results: Promise<R>[] = [];
  let active = 0;
  const waiting: Array<() => void> = [];
  const slot = async (): Promise<void> => {
    if (active < limit) {
      active++;
      return;
    }
    await new Promise<void>((resolve) => waiting.push(resolve));
  };
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  items.forEach((item, index) => {
    results.push(
      (async () => {
        await slot();
        try {
          return await task(item, index);
        } finally {
          release();
        }
      })(),
    );
  });
  return results;
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
    const image = await source.resolve(options.platform ? { platform: options.platform } : {});
    phases.done('resolve');
    checkPlatform(options.platform, image);
    const storage = storageFor(storageRef, image);
    if (storageRef.digest !== undefined && storageRef.digest !== image.manifestDigest) {
      logger.warn('storage reference digest differs from the indexed manifest; recording the indexed one', {
        storage_ref: formatImageReference(storageRef),
        manifest_digest: image.manifestDigest,
      });
    }
    const metadata = metadataFor(source, storage, image);
    logger.info('indexing image', {
      source_ref: source.reference,
      manifest_digest: image.manifestDigest,
      layers: image.layers.length,
      span_size: spanSize,
    });

    const layersTotal = image.layers.length;
    const bytesTotal = image.layers.reduce((sum, layer) => sum + layer.size, 0);
    let bytesRead = 0;
    let layersDone = 0;
    const report = () => options.onProgress?.({ layersDone, layersTotal, bytesRead, bytesTotal });
    report();

    const concurrency = Math.max(1, options.concurrency ?? availableParallelism());
    indexer = await createLayerIndexer({
      workers: options.workers ?? true,
      concurrency,
      logger,
      layerSizes: image.layers.map((layer) => layer.size),
    });
    const activeIndexer = indexer;
    // Set when the archive cannot be made: layers still streaming stop at their next chunk.
    let abandoned: Error | undefined;
    const counting = (count: number) => {
      if (abandoned) throw abandoned;
      bytesRead += count;
      report();
    };
    /** A local layout's blob file, read directly (see local-blob.ts); undefined for other sources. */
    const openLocal = (layer: LayerDescriptor) =>
      sourceRef.kind === 'oci-layout'
        ? openLocalBlob(sourceRef.dir, layer, `blob in ${source.reference}`, counting)
        : Promise.resolve(undefined);
    const openFromSource = async (layer: LayerDescriptor) => {
      const blob = await source.openBlob(layer.digest);
      return (async function* () {
        for await (const chunk of blob as AsyncIterable<Uint8Array>) {
          counting(chunk.length);
          yield chunk;
        }
      })();
    };
    const scans = boundedAll(image.layers, concurrency, async (layer) => {
      if (abandoned) throw abandoned;
      const counted = (await openLocal(layer)) ?? (await openFromSource(layer));
      // hashCompressed false: ImageSource.openBlob's stream, and a local blob read directly,
      // already fail on a digest mismatch, so the blob is not hashed twice. digestVerified:
      // for the same reason (and the diffId check) gzip's CRC-32 is not checked.
      const options = {
        digest: layer.digest,
        compression: layer.compression,
        spanSize,
        hashCompressed: false,
        digestVerified: true,
      } as const;
      const indexed = await activeIndexer.index(counted, options, layer.size).catch((error: unknown) => {
        throw nameLayer(error, layer.digest);
      });
      layersDone++;
      report();
      logger.debug('layer scanned', { digest: layer.digest, entries: indexed.entries.length, spans: indexed.scan.spans.length });
      return indexed;
    });
    // Failures of later layers must not go unobserved while we wait for earlier ones.
    for (const scan of scans) scan.catch(() => {});

    // Merge strictly in layer order, as soon as each layer's scan is in.
    const tree = new OverlayTree();
    const layers: ArchiveLayer[] = [];
    try {
      for (let index = 0; index < scans.length; index++) {
        const indexed = await scans[index]!;
        const descriptor = image.layers[index]!;
        layers.push(archiveLayer(descriptor, indexed));
        phases.done('scan', { layer: index });
        tree.applyLayer(index, descriptor.digest, indexed.entries);
        const count = indexed.entries.length;
        // The tree holds what it needs: let the layer's entry list go.
        indexed.entries.length = 0;
        phases.done('merge', { layer: index, entries: count });
      }
    } catch (error) {
      abandoned = new Error('indexing abandoned');
      await Promise.allSettled(scans);
      throw error;
    }
    const { inodes, entries } = tree.toTables();
    phases.done('tables', { inodes: inodes.length, entries: entries.length });
    const bytes = await encodeArchiveAsync({ metadata, layers, inodes, entries });
    phases.done('encode', { archive_bytes: bytes.length });
    await writeAtomically(options.output, bytes);
    phases.done('write');

    let files = 0;
    let directories = 0;
    for (const entry of entries) {
      const type = inodes[entry.ino - 1]!.type;
      if (type === 'file') files++;
      else if (type === 'directory') directories++;
    }
    const stats = source.stats();
    const summary: IndexSummary = {
      files,
      directories,
      layers: layers.length,
      checkpoints: layers.reduce((sum, layer) => sum + layer.spans.length, 0),
      archiveBytes: bytes.length,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      bytesRead,
      networkBytes: stats.networkBytesReceived,
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

/** Decompression errors (gzip/zstd) come without the layer: add its digest, once. */
function nameLayer(error: unknown, digest: string): unknown {
  if (!(error instanceof LayerFormatError) || error.message.includes(digest)) return error;
  return new LayerFormatError(`layer ${digest}: ${error.message}`, { cause: error });
}
