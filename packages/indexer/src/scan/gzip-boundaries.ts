// Every deflate block boundary of a gzip layer (the finest places decompression can resume),
// found with the same inflater events gzip-scan.ts uses, so an offset listed here is exactly
// where a scan with that offset in `extraCheckpoints` puts a checkpoint. Output is discarded.
import { EVENT_BOUNDARY, EVENT_MEMBER_START, EVENT_STRIDE, type GzipBlockInflater } from '@clip/native-zran';
import { LayerFormatError } from '@clip/shared';
import { inflateError } from './gzip-inflater.js';

export interface BlockBoundaries {
  /**
   * Compressed bytes that hold everything before each boundary (the byte position of the
   * inflater's event: a piece ending here guarantees the boundary's output), ascending.
   */
  compressed: number[];
  /** Uncompressed offset of each boundary, ascending. */
  uncompressed: number[];
  compressedSize: number;
  uncompressedSize: number;
}

const OUTPUT = 1 << 20;
const MAX_EVENTS = 1024;

export async function listGzipBoundaries(compressed: AsyncIterable<Uint8Array>, inflater: GzipBlockInflater): Promise<BlockBoundaries> {
  const result: BlockBoundaries = { compressed: [], uncompressed: [], compressedSize: 0, uncompressedSize: 0 };
  // zlib keeps its own 32 KiB window, so the output buffer is simply reused.
  const out = new Uint8Array(OUTPUT);
  const events = new Int32Array(MAX_EVENTS * EVENT_STRIDE);
  const ends = new Int32Array(2);
  let outBase = 0;
  let outPos = 0;
  let chunkStart = 0;
  try {
    for await (const chunk of compressed) {
      let inPos = 0;
      while (inPos < chunk.length) {
        const count = inflater.run(chunk, inPos, out, outPos, events, ends);
        if (count < 0) throw inflateError(count, chunkStart + ends[0]!, inflater);
        for (let e = 0; e < count * EVENT_STRIDE; e += EVENT_STRIDE) {
          const kind = events[e]!;
          if (kind !== EVENT_BOUNDARY && kind !== EVENT_MEMBER_START) continue;
          result.compressed.push(chunkStart + events[e + 1]!);
          result.uncompressed.push(outBase + events[e + 2]!);
        }
        inPos = ends[0]!;
        outPos = ends[1]!;
        if (outPos === out.length) {
          outBase += out.length;
          outPos = 0;
        }
      }
      chunkStart += chunk.length;
    }
    if (!inflater.memberEnded()) throw new LayerFormatError(`gzip stream is truncated after ${chunkStart} bytes`);
  } finally {
    inflater.close();
  }
  result.compressedSize = chunkStart;
  result.uncompressedSize = outBase + outPos;
  return result;
}
