// One pass over a gzip layer (as zlib's zran.c): an inflater stopping at every deflate block
// boundary reports where blocks and members end; this file is the one checkpoint policy for
// both inflaters (native addon, pako), so either gives byte-identical spans. A checkpoint is
// recorded at a block boundary once spanSize bytes of output have passed since the last one
// (bit offset, uncompressed offset, the 32 KiB window before it); every member start is one too.
// `extraCheckpoints` (uncompressed offsets of block boundaries, ascending; see
// profile-checkpoints.ts) adds one exactly at each of those boundaries as well.
import { EVENT_BOUNDARY, EVENT_MEMBER_START, EVENT_STRIDE, type GzipBlockInflater } from '@clip/native-zran';
import { LayerFormatError } from '@clip/shared';
import { inflateError } from './gzip-inflater.js';
import type { SpanRecorder } from './span-recorder.js';
import type { ScanSink } from './scan-sink.js';

const WINDOW = 32768;
const OUTPUT_CHUNK = 1 << 20;
/** Bytes of every output buffer scanGzip uses: the previous window, then 1 MiB of new output. */
export const GZIP_OUTPUT_BUFFER_SIZE = WINDOW + OUTPUT_CHUNK;
/** Room for many boundaries per call: streams with frequent flushes have tiny blocks. */
const MAX_EVENTS = 1024;

export async function scanGzip(
  compressed: AsyncIterable<Uint8Array>,
  spanSize: number,
  recorder: SpanRecorder,
  sink: ScanSink,
  inflater: GzipBlockInflater,
  newOutputBuffer: () => Uint8Array = outputBuffer,
  extraCheckpoints: readonly number[] = [],
): Promise<void> {
  // Output goes to `out`; its first WINDOW bytes keep the tail of the previous buffer so the
  // window before a checkpoint is always contiguous at out[at - WINDOW, at). A buffer is
  // emitted once, when it is full (or at the end), and never read or written again: the
  // callee may keep it or transfer its ArrayBuffer (newOutputBuffer may hand it out again
  // once the callee has given it back).
  let out = newOutputBuffer();
  if (out.length !== GZIP_OUTPUT_BUFFER_SIZE) throw new Error(`internal: gzip output buffers must be ${GZIP_OUTPUT_BUFFER_SIZE} bytes`);
  const events = new Int32Array(MAX_EVENTS * EVENT_STRIDE);
  const ends = new Int32Array(2);
  let outPos = 0;
  let outBase = 0; // uncompressed offset of out[0]
  let emitFrom = 0;
  let memberStart = 0; // uncompressed offset where the current member's output starts
  let chunkStart = 0; // absolute offset of the current input chunk
  let previousLastByte = -1; // the last byte of the previous input chunk
  let nextExtra = 0; // index of the next extra checkpoint not yet passed

  const emit = async (): Promise<void> => {
    if (outPos > emitFrom) await sink.output(out.subarray(emitFrom, outPos));
    emitFrom = outPos;
  };

  try {
    recorder.start({ uncompressedOffset: 0, compressedBitOffset: 0, window: new Uint8Array(0), kind: 'gzip-member' });
    for await (const chunk of compressed) {
      if (chunk.length === 0) continue;
      sink.input(chunk);
      let inPos = 0;
      while (inPos < chunk.length) {
        const count = inflater.run(chunk, inPos, out, outPos, events, ends);
        if (count < 0) throw inflateError(count, chunkStart + ends[0]!, inflater);
        let consumedTo = inPos;
        for (let e = 0; e < count * EVENT_STRIDE; e += EVENT_STRIDE) {
          const kind = events[e]!;
          const inAt = events[e + 1]!;
          const outAt = events[e + 2]!;
          const uncompressed = outBase + outAt;
          if (kind === EVENT_MEMBER_START) {
            // Another gzip member: inflation restarts from scratch, with an empty window.
            recorder.consume(chunk.subarray(consumedTo, inAt));
            consumedTo = inAt;
            memberStart = uncompressed;
            recorder.start({
              uncompressedOffset: uncompressed,
              compressedBitOffset: (chunkStart + inAt) * 8,
              window: new Uint8Array(0),
              kind: 'gzip-member',
            });
          } else if (kind === EVENT_BOUNDARY) {
            const position = chunkStart + inAt;
            const bit = position * 8 - events[e + 3]!;
            recorder.consume(chunk.subarray(consumedTo, inAt), { bit, uncompressed });
            consumedTo = inAt;
            while (nextExtra < extraCheckpoints.length && extraCheckpoints[nextExtra]! < uncompressed) nextExtra++;
            const extra = extraCheckpoints[nextExtra] === uncompressed && uncompressed > recorder.spanStart!;
            if (extra) nextExtra++;
            if (extra || uncompressed - recorder.spanStart! >= spanSize) {
              const windowLength = Math.min(WINDOW, uncompressed - memberStart);
              const window = out.slice(outAt - windowLength, outAt);
              const sharedByte = bit % 8 === 0 ? undefined : byteAt(position - 1, chunk, chunkStart, previousLastByte);
              recorder.start({ uncompressedOffset: uncompressed, compressedBitOffset: bit, window, kind: 'deflate-block' }, sharedByte);
            }
          }
          // EVENT_MEMBER_END needs nothing: the next member (if any) starts with EVENT_MEMBER_START.
        }
        recorder.consume(chunk.subarray(consumedTo, ends[0]));
        inPos = ends[0]!;
        outPos = ends[1]!;
        if (outPos === out.length) {
          // Copy the window out of the full buffer before it is handed over.
          const next = newOutputBuffer();
          if (next.length !== GZIP_OUTPUT_BUFFER_SIZE)
            throw new Error(`internal: gzip output buffers must be ${GZIP_OUTPUT_BUFFER_SIZE} bytes`);
          next.set(out.subarray(out.length - WINDOW));
          await emit();
          out = next;
          outBase += OUTPUT_CHUNK;
          outPos = WINDOW;
          emitFrom = WINDOW;
        }
      }
      chunkStart += chunk.length;
      previousLastByte = chunk[chunk.length - 1]!;
    }
    await emit();
    if (!inflater.memberEnded()) throw new LayerFormatError(`gzip stream is truncated after ${chunkStart} bytes`);
  } finally {
    inflater.close();
  }
  const uncompressed = outBase + outPos;
  recorder.finish(uncompressed);
  sink.uncompressedSize = uncompressed;
}

/** Uninitialised (only written bytes are ever read or emitted): saves zero-filling 1 MiB per buffer. */
function outputBuffer(): Uint8Array {
  const buffer = Buffer.allocUnsafeSlow(WINDOW + OUTPUT_CHUNK);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

function byteAt(position: number, chunk: Uint8Array, chunkStart: number, previousLastByte: number): number {
  if (position >= chunkStart) return chunk[position - chunkStart]!;
  if (position !== chunkStart - 1 || previousLastByte < 0) throw new Error(`internal: byte ${position} is no longer available`);
  return previousLastByte;
}
