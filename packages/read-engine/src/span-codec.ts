// The zran operations the LayerReader needs, behind one interface so tests can drive the
// reader with hand-made spans; the default is the real implementation in ./zran. Pieces are
// verified by the PieceStore as they arrive, not by the codec.
import type { ArchiveLayer } from '@clip/archive-format';
import { compressedRangeFor, decompressSpan, spanIndexAt } from './zran/decompress-span.js';
import { createSpanDecoder, type SpanDecoder } from './zran/span-decoder.js';

export interface SpanCodec {
  /** Index of the span that holds uncompressed `offset`. */
  spanIndexAt(layer: ArchiveLayer, offset: number): number;
  /** Compressed bytes [start, end) to fetch to decode span `spanIndex` up to `uncompressedEnd` (absolute). */
  compressedRangeFor(layer: ArchiveLayer, spanIndex: number, uncompressedEnd: number): { start: number; end: number; pieceCount: number };
  /** Uncompressed bytes from the span start, at least up to the last fetched piece's uncompressedEnd. */
  /** `window`: the checkpoint's window when loaded apart (external windows); default `checkpoint.window`. */
  decompressSpan(layer: ArchiveLayer, spanIndex: number, compressed: Uint8Array, window?: Uint8Array): Promise<Buffer>;
  /** An incremental decoder at the span's checkpoint (optional: without it, decompressSpan re-decodes). */
  createSpanDecoder?(layer: ArchiveLayer, spanIndex: number, window?: Uint8Array): SpanDecoder;
}

export const defaultSpanCodec: SpanCodec = { spanIndexAt, compressedRangeFor, decompressSpan, createSpanDecoder };

/** The codec's decoder, or one that keeps every pushed byte and re-decodes them all with decompressSpan. */
export function spanDecoderFor(codec: SpanCodec, layer: ArchiveLayer, spanIndex: number, window?: Uint8Array): SpanDecoder {
  if (codec.createSpanDecoder) return codec.createSpanDecoder(layer, spanIndex, window);
  let input: Buffer = Buffer.alloc(0);
  let produced = 0;
  return {
    get consumed() {
      return input.length;
    },
    get produced() {
      return produced;
    },
    async push(compressed) {
      input = Buffer.concat([input, compressed]);
      const all = await codec.decompressSpan(layer, spanIndex, input, window);
      const added = all.subarray(produced);
      produced = all.length;
      return added;
    },
    close() {},
  };
}
