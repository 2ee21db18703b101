// Uncompressed layers: a 'plain' checkpoint every spanSize bytes; pieces still let every
// fetched byte be verified.
import type { SpanRecorder } from './span-recorder.js';
import type { ScanSink } from './scan-sink.js';

export async function scanPlain(data: AsyncIterable<Uint8Array>, spanSize: number, recorder: SpanRecorder, sink: ScanSink): Promise<void> {
  let position = 0;
  recorder.start({ uncompressedOffset: 0, compressedBitOffset: 0, window: new Uint8Array(0), kind: 'plain' });
  for await (const chunk of data) {
    sink.input(chunk);
    let offset = 0;
    while (offset < chunk.length) {
      const spanEnd = recorder.spanStart! + spanSize;
      const take = Math.min(chunk.length - offset, spanEnd - position);
      recorder.consume(chunk.subarray(offset, offset + take));
      offset += take;
      position += take;
      if (position === spanEnd) {
        recorder.start({ uncompressedOffset: position, compressedBitOffset: position * 8, window: new Uint8Array(0), kind: 'plain' });
      }
    }
    await sink.output(chunk);
  }
  recorder.finish(position);
  sink.uncompressedSize = position;
}
