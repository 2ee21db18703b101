// The main thread's half of piece hashing in a worker scan (gzip): the worker records where
// pieces lie (PieceCuts) and gives each compressed chunk's buffer back once it has inflated
// it, with the piece ranges closed so far; this thread, which read those bytes, hashes them.
// That takes ~0.6 ms per MiB off the worker, the longer of the two threads of a layer.
// Buffers are kept only until no piece needs them any more (a piece may span two chunks,
// and the next piece may start one byte before the previous one ends: a mid-byte checkpoint).
import { createHash } from 'node:crypto';
import type { Span } from '@clip/archive-format';
import type { Digest } from '@clip/shared';

interface Held {
  start: number;
  bytes: Uint8Array;
}

export class PieceHasher {
  private readonly held: Held[] = [];
  /** Absolute offset after the last byte received. */
  private received = 0;
  /** Digests of all closed pieces, in order. */
  private readonly digests: Digest[] = [];

  /** `release`: called with each given-back buffer once no piece needs its bytes. */
  constructor(private readonly release: (bytes: Uint8Array) => void) {}

  /** The next compressed bytes, in order (a chunk the worker has finished with). */
  bytes(bytes: Uint8Array): void {
    this.held.push({ start: this.received, bytes });
    this.received += bytes.length;
  }

  /** Flat [start, end) ranges of the next closed pieces; their bytes must have been received. */
  cuts(ranges: readonly number[]): void {
    for (let i = 0; i + 1 < ranges.length; i += 2) {
      const start = ranges[i]!;
      const end = ranges[i + 1]!;
      if (end > this.received || start > end) throw new Error(`internal: piece [${start}, ${end}) but ${this.received} bytes received`);
      const hash = createHash('sha256');
      for (const { start: at, bytes } of this.held) {
        if (at >= end) break;
        const from = Math.max(start, at);
        const to = Math.min(end, at + bytes.length);
        if (from < to) hash.update(bytes.subarray(from - at, to - at));
      }
      if (this.held.length > 0 && start < this.held[0]!.start)
        throw new Error(`internal: piece starts at ${start}, before the bytes still held`);
      this.digests.push(`sha256:${hash.digest('hex')}`);
      // The next piece starts at end - 1 at the earliest.
      while (this.held.length > 0 && this.held[0]!.start + this.held[0]!.bytes.length <= end - 1) this.release(this.held.shift()!.bytes);
    }
  }

  /** Puts the digests into the scan's pieces (`kept` from PieceCuts) and gives back every buffer. */
  finish(spans: Span[], kept: readonly number[]): void {
    let k = 0;
    for (const span of spans) {
      for (const piece of span.pieces) {
        const index = kept[k++];
        const digest = index === undefined ? undefined : this.digests[index];
        if (digest === undefined) throw new Error(`internal: no digest for piece ${k - 1} (${this.digests.length} hashed)`);
        piece.digest = digest;
      }
    }
    if (k !== kept.length) throw new Error(`internal: ${kept.length} pieces kept, ${k} in the spans`);
    for (const { bytes } of this.held.splice(0)) this.release(bytes);
  }
}
