// The zran operations the LayerReader needs, behind one interface so tests can drive the
// reader with hand-made spans; the default is the real implementation in ../zran.
import type { ArchiveLayer } from '../archive/model.js';
import { verifyDigest } from '../digest.js';

export interface SpanCodec {
  /** Index of the span that holds uncompressed `offset`. */
  spanIndexAt(layer: ArchiveLayer, offset: number): number;
  /** Compressed bytes [start, end) to fetch to decode span `spanIndex` up to `uncompressedEnd` (absolute). */
  compressedRangeFor(layer: ArchiveLayer, spanIndex: number, uncompressedEnd: number): { start: number; end: number; pieceCount: number };
  /** Throws DigestMismatchError when a piece's bytes do not match the archive. */
  verifySpanPieces(layer: ArchiveLayer, spanIndex: number, compressed: Uint8Array): void;
  /** Uncompressed bytes from the span start, at least up to the last fetched piece's uncompressedEnd. */
  decompressSpan(layer: ArchiveLayer, spanIndex: number, compressed: Uint8Array): Promise<Buffer>;
}

// TODO(wire): replace with the real functions from ../zran/decompress-span.js once they land;
// until then only uncompressed ('plain') layers can be read.
function spanIndexAt(layer: ArchiveLayer, offset: number): number {
  let lo = 0;
  let hi = layer.spans.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (layer.spans[mid]!.checkpoint.uncompressedOffset <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function compressedRangeFor(layer: ArchiveLayer, spanIndex: number, uncompressedEnd: number) {
  const span = layer.spans[spanIndex]!;
  const start = Math.floor(span.checkpoint.compressedBitOffset / 8);
  let pieceCount = 0;
  for (const piece of span.pieces) {
    pieceCount++;
    if (piece.uncompressedEnd >= uncompressedEnd) return { start, end: piece.compressedEnd, pieceCount };
  }
  return { start, end: span.pieces.at(-1)?.compressedEnd ?? start, pieceCount };
}

function verifySpanPieces(layer: ArchiveLayer, spanIndex: number, compressed: Uint8Array): void {
  const span = layer.spans[spanIndex]!;
  const base = Math.floor(span.checkpoint.compressedBitOffset / 8);
  let at = base;
  for (const piece of span.pieces) {
    if (piece.compressedEnd - base > compressed.length) break;
    verifyDigest(`layer ${layer.digest} span ${spanIndex} piece`, compressed.subarray(at - base, piece.compressedEnd - base), piece.digest);
    at = piece.compressedEnd;
  }
}

async function decompressSpan(layer: ArchiveLayer, spanIndex: number, compressed: Uint8Array): Promise<Buffer> {
  if (layer.spans[spanIndex]?.checkpoint.kind !== 'plain') throw new Error('zran span codec not available yet');
  return Buffer.from(compressed.buffer, compressed.byteOffset, compressed.byteLength);
}

export const defaultSpanCodec: SpanCodec = { spanIndexAt, compressedRangeFor, verifySpanPieces, decompressSpan };
