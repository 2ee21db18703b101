// One pass over a gzip layer with pako's low-level inflate in Z_BLOCK mode (as zlib's zran.c):
// inflate stops at every deflate block boundary, where we may record a checkpoint (bit offset,
// uncompressed offset, the 32 KiB window before it). Each gzip member start is a checkpoint too.
import { ZStream, Z_BLOCK, Z_STREAM_END, zlibInflate, zlibInflateInit2, zlibInflateReset } from 'pako';
import { LayerFormatError } from '@clip/shared/errors';
import { SpanRecorder } from './span-recorder.js';
import type { ScanSink } from './scan-sink.js';

const WINDOW = 32768;
const OUTPUT_CHUNK = 1 << 20;
/** data_type bits after inflate(): 128 = stopped at a block boundary, 64 = that block was the last, 0-7 = unused bits. */
const END_OF_BLOCK = 128;
const LAST_BLOCK = 64;

export async function scanGzip(
  compressed: AsyncIterable<Uint8Array>,
  spanSize: number,
  recorder: SpanRecorder,
  sink: ScanSink,
): Promise<void> {
  const strm = new ZStream();
  // 15 + 16: gzip wrapper only, 32 KiB window.
  if (zlibInflateInit2(strm, 15 + 16) !== 0) throw new LayerFormatError('cannot initialise inflate');
  // Output goes to `out`; its first WINDOW bytes keep the tail of the previous chunk so the
  // window before a checkpoint is always contiguous at out[next_out - WINDOW, next_out).
  const out = new Uint8Array(WINDOW + OUTPUT_CHUNK);
  strm.output = out as Uint8Array<ArrayBuffer>;
  strm.next_out = 0;
  strm.avail_out = out.length;
  let emitFrom = 0;
  let uncompressed = 0;
  let memberOutput = 0;
  let memberEnded = false;
  let chunkStart = 0; // absolute offset of the current input chunk
  let previousChunk: Uint8Array | undefined;

  const emit = async (): Promise<void> => {
    if (strm.next_out > emitFrom) await sink.output(out.slice(emitFrom, strm.next_out));
    emitFrom = strm.next_out;
  };

  recorder.start({ uncompressedOffset: 0, compressedBitOffset: 0, window: new Uint8Array(0), kind: 'gzip-member' });
  for await (const chunk of compressed) {
    if (chunk.length === 0) continue;
    sink.input(chunk);
    strm.input = chunk;
    strm.next_in = 0;
    strm.avail_in = chunk.length;
    while (strm.avail_in > 0) {
      if (memberEnded) {
        // Another gzip member follows: inflation restarts from scratch, with an empty window.
        memberEnded = false;
        memberOutput = 0;
        zlibInflateReset(strm);
        const at = chunkStart + strm.next_in;
        recorder.start({ uncompressedOffset: uncompressed, compressedBitOffset: at * 8, window: new Uint8Array(0), kind: 'gzip-member' });
      }
      const inBefore = strm.next_in;
      const outBefore = strm.next_out;
      const ret = zlibInflate(strm, Z_BLOCK);
      if (ret < 0 && ret !== -5) {
        throw new LayerFormatError(`gzip stream is corrupt at byte ${chunkStart + strm.next_in}: ${strm.msg || `inflate error ${ret}`}`);
      }
      if (ret === -5 && strm.next_in === inBefore && strm.next_out === outBefore) {
        throw new LayerFormatError(`gzip stream stalls at byte ${chunkStart + strm.next_in}`);
      }
      const produced = strm.next_out - outBefore;
      uncompressed += produced;
      memberOutput += produced;
      const consumed = chunk.subarray(inBefore, strm.next_in);
      const position = chunkStart + strm.next_in;
      const dataType = strm.data_type;
      const atBoundary = (dataType & END_OF_BLOCK) !== 0 && (dataType & LAST_BLOCK) === 0 && ret !== Z_STREAM_END;
      const bit = position * 8 - (dataType & 7);
      recorder.consume(consumed, atBoundary ? { bit, uncompressed } : undefined);
      if (atBoundary && uncompressed - recorder.spanStart! >= spanSize) {
        const windowLength = Math.min(WINDOW, memberOutput);
        const window = out.slice(strm.next_out - windowLength, strm.next_out);
        const sharedByte = bit % 8 === 0 ? undefined : byteAt(position - 1, chunk, chunkStart, previousChunk);
        recorder.start({ uncompressedOffset: uncompressed, compressedBitOffset: bit, window, kind: 'deflate-block' }, sharedByte);
      }
      if (ret === Z_STREAM_END) memberEnded = true;
      if (strm.avail_out === 0) {
        await emit();
        out.copyWithin(0, out.length - WINDOW);
        strm.next_out = WINDOW;
        strm.avail_out = OUTPUT_CHUNK;
        emitFrom = WINDOW;
      }
    }
    chunkStart += chunk.length;
    previousChunk = chunk;
    await emit();
  }
  if (!memberEnded) throw new LayerFormatError(`gzip stream is truncated after ${chunkStart} bytes`);
  await emit();
  recorder.finish(uncompressed);
  sink.uncompressedSize = uncompressed;
}

function byteAt(position: number, chunk: Uint8Array, chunkStart: number, previous: Uint8Array | undefined): number {
  if (position >= chunkStart) return chunk[position - chunkStart]!;
  const value = previous?.[previous.length - (chunkStart - position)];
  if (value === undefined) throw new Error(`internal: byte ${position} is no longer available`);
  return value;
}
