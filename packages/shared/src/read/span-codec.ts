// The zran operations the LayerReader needs, behind one interface so tests can drive the
// reader with hand-made spans; the default is the real implementation in ../zran.
import type { ArchiveLayer } from '../archive/model.js';

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

// TODO(wire): replace with the real functions from ../zran/decompress-span.js once they land.
const notYet = (): never => {
  throw new Error('zran span codec not available yet');
};
export const defaultSpanCodec: SpanCodec = {
  spanIndexAt: notYet,
  compressedRangeFor: notYet,
  verifySpanPieces: notYet,
  decompressSpan: notYet,
};
