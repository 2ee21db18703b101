// Checkpoints where a profile's reads start. With checkpoints only every spanSize bytes, a cold
// read inflates from the checkpoint before it, fetching on average half a span of compressed
// bytes it does not need (python-fat: 1.8× the lower bound's bytes). Publishing with a profile
// knows which reads come first, so it lists the gzip layers' deflate block boundaries
// (gzip-boundaries.ts) and asks the scan for one more checkpoint at the last boundary before
// each profiled read that would otherwise drag a gap of unread bytes along. A checkpoint costs
// its window (~11 KB fetched by range) and a table entry, so it is placed only when it saves more.
// Each read also ends a piece at the first boundary after it, so its fetch stops there instead of
// at the next 128 KiB piece boundary.
import { type ClipArchive, layerRangesOf } from '@clip/archive-format';
import { type Digest, lastAtOrBefore, type PrefetchEntry } from '@clip/shared';
import type { ExtraCuts } from './pipeline/layer-options.js';
import type { BlockBoundaries } from './scan/gzip-boundaries.js';

/** A checkpoint is added when it saves more compressed bytes than this (its window is ~11 KB). */
export const DEFAULT_CHECKPOINT_GAP = 32 * 1024;

/**
 * Uncompressed offsets of the block boundaries that get an extra checkpoint, ascending.
 * `existing`: the checkpoints the layer has without a profile (uncompressed and compressed byte
 * offsets, ascending). Walking the reads in order, a read's bytes are fetched from the last
 * checkpoint before it, or from where the previous read's fetch ended if that is later; when the
 * boundary before the read lies more than `gap` compressed bytes beyond that, a checkpoint there
 * saves those bytes.
 */
export function placeCheckpoints(
  blocks: BlockBoundaries,
  ranges: ReadonlyArray<readonly [number, number]>,
  existing: { uncompressed: readonly number[]; compressed: readonly number[] },
  options: { gap?: number },
): ExtraCuts {
  const gap = options.gap ?? DEFAULT_CHECKPOINT_GAP;
  const checkpointsU = [...existing.uncompressed];
  const checkpointsC = [...existing.compressed];
  const placed: number[] = [];
  const pieceEnds: number[] = [];
  let fetchedTo = 0; // compressed offset up to which earlier reads' fetches reach
  for (const [start, end] of ranges) {
    const b = lastAtOrBefore(blocks.uncompressed, start);
    let k = lastAtOrBefore(checkpointsU, start);
    if (b >= 0 && k >= 0 && blocks.uncompressed[b]! > checkpointsU[k]!) {
      const from = Math.max(checkpointsC[k]!, fetchedTo);
      if (blocks.compressed[b]! - from > gap) {
        // Keep the checkpoint lists sorted: the new one goes right after checkpoint k.
        checkpointsU.splice(k + 1, 0, blocks.uncompressed[b]!);
        checkpointsC.splice(k + 1, 0, blocks.compressed[b]!);
        placed.push(blocks.uncompressed[b]!);
        k++;
      }
    }
    if (k < 0) continue;
    // The fetch of this read stops at the first boundary at or after its end: a piece ends there.
    const after = lastAtOrBefore(blocks.uncompressed, end - 1) + 1;
    const stop = after < blocks.compressed.length ? blocks.compressed[after]! : blocks.compressedSize;
    if (after < blocks.compressed.length) pieceEnds.push(stop);
    fetchedTo = Math.max(fetchedTo, stop);
  }
  return { checkpoints: placed.sort((a, b) => a - b), pieceEnds: [...new Set(pieceEnds)].sort((a, b) => a - b) };
}

/** The layers of `archive` a profile reads from, by digest, with the reads' uncompressed ranges. */
export function profiledGzipLayers(
  archive: ClipArchive,
  entries: readonly PrefetchEntry[],
): Array<{ digest: Digest; ranges: Array<[number, number]>; existing: { uncompressed: number[]; compressed: number[] } }> {
  const result = [];
  for (const [index, ranges] of layerRangesOf(archive, entries).byLayer.entries()) {
    const layer = archive.layers[index]!;
    if (layer.compression !== 'gzip' || ranges.length === 0) continue;
    result.push({
      digest: layer.digest,
      ranges,
      existing: {
        uncompressed: layer.spans.map((span) => span.checkpoint.uncompressedOffset),
        compressed: layer.spans.map((span) => Math.floor(span.checkpoint.compressedBitOffset / 8)),
      },
    });
  }
  return result;
}
