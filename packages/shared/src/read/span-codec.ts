// The zran operations the LayerReader needs, behind one interface so tests can drive the
// reader with hand-made spans; the default is the real implementation in ../zran.
import type { ArchiveLayer } from '../archive/model.js';
import { compressedRangeFor, decompressSpan, spanIndexAt, verifySpanPieces } from '../zran/decompress-span.js';

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

export const defaultSpanCodec: SpanCodec = { spanIndexAt, compressedRangeFor, verifySpanPieces, decompressSpan };
