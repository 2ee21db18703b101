import { LayerFormatError } from '@clip/shared/errors';
import type { SpanRecorder } from './span-recorder.js';
import type { ScanSink } from './scan-sink.js';

// TODO(zstd): frame-boundary checkpoints; see zstd-scan implementation below.
export async function scanZstd(
  _data: AsyncIterable<Uint8Array>,
  _spanSize: number,
  _recorder: SpanRecorder,
  _sink: ScanSink,
): Promise<void> {
  throw new LayerFormatError('zstd layers are not supported yet');
}
