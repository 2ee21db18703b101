// `clip publish --profile`'s last indexing step: where the recorded profile reads from gzip
// layers, list those layers' deflate block boundaries and pick extra checkpoints
// (profile-checkpoints.ts); the caller then indexes again with them. Layers the profile does
// not read, and zstd or plain layers, keep their checkpoints.
import { readArchiveFile } from '@clip/archive-format';
import type { ImageSource } from '@clip/registry-fetch';
import { type Digest, forEachConcurrent, type Logger, parsePrefetchList } from '@clip/shared';
import type { ExtraCuts } from './pipeline/layer-options.js';
import { placeCheckpoints, profiledGzipLayers } from './profile-checkpoints.js';
import { listGzipBoundaries } from './scan/gzip-boundaries.js';
import { createGzipInflater } from './scan/gzip-inflater.js';

export async function placeProfileCheckpoints(options: {
  archivePath: string;
  profile: Uint8Array;
  source: Pick<ImageSource, 'openBlob'>;
  logger: Logger;
  gap?: number;
}): Promise<Map<Digest, ExtraCuts>> {
  const started = performance.now();
  const archive = await readArchiveFile(options.archivePath);
  const entries = parsePrefetchList(new TextDecoder().decode(options.profile));
  const layers = profiledGzipLayers(archive, entries);
  const placed = new Map<Digest, ExtraCuts>();
  // Two layers at a time: listing boundaries is one inflate pass, CPU-bound.
  await forEachConcurrent(layers, 2, async (layer) => {
    const blob = await options.source.openBlob(layer.digest);
    const blocks = await listGzipBoundaries(blob, await createGzipInflater(undefined, { validate: false }));
    const cuts = placeCheckpoints(blocks, layer.ranges, layer.existing, options.gap !== undefined ? { gap: options.gap } : {});
    options.logger.debug('profile checkpoints placed', {
      layer: layer.digest,
      reads: layer.ranges.length,
      blocks: blocks.uncompressed.length,
      checkpoints: layer.existing.uncompressed.length,
      added: cuts.checkpoints.length,
      piece_ends: cuts.pieceEnds.length,
    });
    if (cuts.checkpoints.length + cuts.pieceEnds.length > 0) placed.set(layer.digest, cuts);
  });
  const added = [...placed.values()].reduce((sum, cuts) => sum + cuts.checkpoints.length, 0);
  const pieceEnds = [...placed.values()].reduce((sum, cuts) => sum + cuts.pieceEnds.length, 0);
  options.logger.info('checkpoints placed at the profile reads', {
    layers: placed.size,
    added,
    piece_ends: pieceEnds,
    ms: Math.round(performance.now() - started),
  });
  return placed;
}
