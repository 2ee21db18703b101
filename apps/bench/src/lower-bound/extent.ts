// The lower bound of a cold start's download: the compressed bytes that hold what the workload
// reads. Pure math over a layer's deflate block boundaries (the finest places decompression
// can resume) and the workload's read ranges; `lower-bound.ts` feeds it real layers.
import { lastAtOrBefore, mergeRanges } from '@clip/shared';

/** Deflate block boundaries of one layer, ascending: compressed byte offset and uncompressed offset. */
export interface BlockBoundaries {
  compressed: number[];
  uncompressed: number[];
  /** Sizes of the whole layer (the last boundary's region ends there). */
  compressedSize: number;
  uncompressedSize: number;
}

/**
 * Compressed position where decompressing up to uncompressed offset `end` can stop: inside the
 * block that holds it, interpolated in proportion (a block's bytes compress about evenly).
 */
function compressedPositionOf(blocks: BlockBoundaries, end: number): number {
  const i = Math.max(0, lastAtOrBefore(blocks.uncompressed, end - 1));
  const u0 = blocks.uncompressed[i] ?? 0;
  const c0 = blocks.compressed[i] ?? 0;
  const u1 = blocks.uncompressed[i + 1] ?? blocks.uncompressedSize;
  const c1 = blocks.compressed[i + 1] ?? blocks.compressedSize;
  if (u1 <= u0) return c1;
  return Math.min(c1, c0 + Math.ceil(((end - u0) / (u1 - u0)) * (c1 - c0)));
}

/**
 * Compressed bytes needed to decode every range (uncompressed, end exclusive) from the block
 * boundary at or before its start to the position covering its end; overlapping extents count once.
 */
export function compressedExtent(blocks: BlockBoundaries, ranges: ReadonlyArray<readonly [number, number]>): number {
  const extents: Array<[number, number]> = [];
  for (const [start, end] of mergeRanges(ranges)) {
    const from = blocks.compressed[Math.max(0, lastAtOrBefore(blocks.uncompressed, start))] ?? 0;
    extents.push([from, compressedPositionOf(blocks, end)]);
  }
  return mergeRanges(extents).reduce((sum, [start, end]) => sum + (end - start), 0);
}

/** Seconds the link needs for `bytes`: transfer at the configured rate plus one round trip. */
export function linkSeconds(bytes: number, profile: { rateMbit?: number; rttMs: number }): number {
  const transfer = profile.rateMbit === undefined ? 0 : (bytes * 8) / (profile.rateMbit * 1e6);
  return transfer + profile.rttMs / 1000;
}
