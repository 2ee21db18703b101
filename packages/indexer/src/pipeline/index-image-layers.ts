// Every layer of one image: opened (a local layout's blob file directly, else the source's
// stream), indexed at most `concurrency` at once by the LayerIndexer, checked against the
// manifest, and merged into the overlay tree strictly in layer order as each one is in.
import type { ArchiveLayer } from '@clip/archive-format';
import { DigestMismatchError, type ImageReference, LayerFormatError, type Logger } from '@clip/shared';
import type { ImageSource, LayerDescriptor, ResolvedImage } from '@clip/registry-fetch';
import { OverlayTree } from '../overlay/overlay-tree.js';
import { UNHASHED } from '../scan/scan-compressed-layer.js';
import type { IndexedLayer } from './index-layer.js';
import type { LayerIndexer } from './layer-indexer.js';
import type { ExtraCuts } from './layer-options.js';
import { openLocalBlob } from './local-blob.js';

/** Debug-level timing of the indexing phases. */
export interface PhaseTimer {
  done(phase: string, fields?: Record<string, number>): void;
}

export interface ImageLayersJob {
  image: ResolvedImage;
  source: ImageSource;
  sourceRef: ImageReference;
  indexer: LayerIndexer;
  concurrency: number;
  spanSize: number;
  /** Layers by digest: checkpoints and piece ends besides the regular ones. */
  extraCuts?: ReadonlyMap<string, ExtraCuts>;
  phases: PhaseTimer;
  logger: Logger;
  /** Compressed bytes read from the source (per chunk). */
  onBytesRead(count: number): void;
  onLayerDone(): void;
}

export async function indexImageLayers(job: ImageLayersJob): Promise<{ layers: ArchiveLayer[]; tree: OverlayTree }> {
  const { image, source, sourceRef, indexer, spanSize, phases, logger } = job;
  // Set when the archive cannot be made: layers still streaming stop at their next chunk.
  let abandoned: Error | undefined;
  const counting = (count: number) => {
    if (abandoned) throw abandoned;
    job.onBytesRead(count);
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
  const scans = boundedAll(image.layers, job.concurrency, async (layer) => {
    if (abandoned) throw abandoned;
    const counted = (await openLocal(layer)) ?? (await openFromSource(layer));
    // hashCompressed false: ImageSource.openBlob's stream, and a local blob read directly,
    // already fail on a digest mismatch, so the blob is not hashed twice. digestVerified:
    // for the same reason (and the diffId check) gzip's CRC-32 is not checked.
    const extra = job.extraCuts?.get(layer.digest);
    const options = {
      digest: layer.digest,
      compression: layer.compression,
      spanSize,
      hashCompressed: false,
      digestVerified: true,
      ...(extra ? { extraCheckpoints: extra.checkpoints, extraPieceEnds: extra.pieceEnds } : {}),
    } as const;
    const indexed = await indexer.index(counted, options, layer.size).catch((error: unknown) => {
      throw nameLayer(error, layer.digest);
    });
    job.onLayerDone();
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
  return { layers, tree };
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

/** Decompression errors (gzip/zstd) come without the layer: add its digest, once. */
function nameLayer(error: unknown, digest: string): unknown {
  if (!(error instanceof LayerFormatError) || error.message.includes(digest)) return error;
  return new LayerFormatError(`layer ${digest}: ${error.message}`, { cause: error });
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
