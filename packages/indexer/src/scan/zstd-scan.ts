// zstd layers: decoded with fzstd's streaming decoder; frame boundaries are found by walking
// frame and block headers. A checkpoint is recorded at a frame start once spanSize bytes of
// output have passed since the last one. A single-frame layer is therefore one span that is
// fetched whole: zstd cannot be resumed inside a frame.
import { Decompress } from 'fzstd';
import { LayerFormatError } from '@clip/shared';
import { ZstdFrameSplitter } from '@clip/read-engine';
import type { SpanRecorder } from './span-recorder.js';
import type { ScanSink } from './scan-sink.js';

export async function scanZstd(
  compressed: AsyncIterable<Uint8Array>,
  spanSize: number,
  recorder: SpanRecorder,
  sink: ScanSink,
): Promise<void> {
  const splitter = new ZstdFrameSplitter();
  let pending: Uint8Array[] = [];
  let uncompressed = 0;
  const decoder = new Decompress((data) => {
    pending.push(data);
    uncompressed += data.length;
  });
  const decode = (bytes: Uint8Array): void => {
    if (bytes.length === 0) return;
    try {
      decoder.push(bytes);
    } catch (error) {
      throw new LayerFormatError(`zstd stream is corrupt: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  };
  let chunkStart = 0;
  recorder.start({ uncompressedOffset: 0, compressedBitOffset: 0, window: new Uint8Array(0), kind: 'zstd-frame' });
  for await (const chunk of compressed) {
    if (chunk.length === 0) continue;
    sink.input(chunk);
    let offset = 0;
    for (const { end } of splitter.push(chunk)) {
      const frame = chunk.subarray(offset, end);
      decode(frame);
      recorder.consume(frame, { bit: (chunkStart + end) * 8, uncompressed });
      offset = end;
      if (uncompressed - recorder.spanStart! >= spanSize) {
        recorder.start({
          uncompressedOffset: uncompressed,
          compressedBitOffset: (chunkStart + end) * 8,
          window: new Uint8Array(0),
          kind: 'zstd-frame',
        });
      }
    }
    const rest = chunk.subarray(offset);
    decode(rest);
    recorder.consume(rest);
    chunkStart += chunk.length;
    const ready = pending;
    pending = [];
    for (const data of ready) await sink.output(data);
  }
  if (!splitter.atFrameBoundary || chunkStart === 0) throw new LayerFormatError(`zstd stream is truncated after ${chunkStart} bytes`);
  recorder.finish(uncompressed);
  sink.uncompressedSize = uncompressed;
}
