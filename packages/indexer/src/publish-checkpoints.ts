// `clip publish --profile`'s last indexing step: where the recorded profile reads from gzip
// layers, list those layers' deflate block boundaries and pick extra checkpoints
// (profile-checkpoints.ts); the caller then indexes again with them. Layers the profile does
// not read, and zstd or plain layers, keep their checkpoints.
import { readArchiveFile } from '@clip/archive-format';
import type { ImageSource } from '@clip/registry-fetch';
import { type Digest, type Logger, parsePrefetchList } from '@clip/shared';
import { placeCheckpoints, profiledGzipLayers } from './profile-checkpoints.js';
import { listGzipBoundaries } from './scan/gzip-boundaries.js';
import { createGzipInflater } from './scan/gzip-inflater.js';
import { DEFAULT_PIECE_SIZE } from './scan/scan-compressed-layer.js';

export async function placeProfileCheckpoints(options: {
  archivePath: string;
  profile: Uint8Array;
  source: Pick<ImageSource, 'openBlob'>;
  logger: Logger;
  gap?: number;
}): Promise<Map<Digest, number[]>> {
  const started = performance.now();
  const archive = await readArchiveFile(options.archivePath);
  const entries = parsePrefetchList(new TextDecoder().decode(options.profile));
  const layers = profiledGzipLayers(archive, entries);
  const placed = new Map<Digest, number[]>();
  // Two layers at a time: listing boundaries is one inflate pass, CPU-bound.
  const queue = [...layers];
  const worker = async () => {
    for (let layer = queue.shift(); layer; layer = queue.shift()) {
      const blob = await options.source.openBlob(layer.digest);
      const blocks = await listGzipBoundaries(blob, await createGzipInflater(undefined, { validate: false }));
      const offsets = placeCheckpoints(blocks, layer.ranges, layer.existing, {
        pieceSize: DEFAULT_PIECE_SIZE,
        ...(options.gap !== undefined ? { gap: options.gap } : {}),
      });
      options.logger.debug('profile checkpoints placed', {
        layer: layer.digest,
        reads: layer.ranges.length,
        blocks: blocks.uncompressed.length,
        checkpoints: layer.existing.uncompressed.length,
        added: offsets.length,
      });
      if (offsets.length > 0) placed.set(layer.digest, offsets);
    }
  };
  await Promise.all([worker(), worker()]);
  const added = [...placed.values()].reduce((sum, list) => sum + list.length, 0);
  options.logger.info('checkpoints placed at the profile reads', {
    layers: placed.size,
    added,
    ms: Math.round(performance.now() - started),
  });
  return placed;
}
