// What every format scanner reports to: compressed input as it arrives (for the blob digest),
// uncompressed output in order (diffId, the caller's callback), and the uncompressed size.
export interface ScanSink {
  input(chunk: Uint8Array): void;
  output(chunk: Uint8Array): Promise<void>;
  uncompressedSize: number;
}
