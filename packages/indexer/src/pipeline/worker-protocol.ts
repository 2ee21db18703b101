// Messages between the layer scanner and its worker threads. The worker decompresses and
// records checkpoints; the main thread walks the tar stream and hashes it (diffId; the worker
// does when asked, `start.hashDiffId`, with several large layers at once), so the
// two halves of a layer's work run on two cores and no entry list ever crosses threads.
import type { LayerScan } from '../scan/scan-compressed-layer.js';
import type { IndexLayerOptions } from './index-layer.js';

export type ToWorker =
  /** `hashDiffId`: the worker hashes its output (the diffId) instead of the main thread. */
  | { type: 'start'; options: IndexLayerOptions; hashDiffId: boolean }
  /** Compressed bytes; the ArrayBuffer is transferred. */
  | { type: 'chunk'; data: Uint8Array }
  | { type: 'end' }
  /** The main thread is done with an output; `buffer` (reusable ones) is given back, transferred. */
  | { type: 'free'; buffer?: ArrayBuffer };

export type FromWorker =
  /**
   * A chunk was taken; `buffer`, when present, is an earlier chunk's ArrayBuffer, free for reuse.
   * With `cuts` (gzip: the main thread hashes the pieces) the buffer is the previous chunk's,
   * always given back, its bytes at [offset, offset + length), and `cuts` the [start, end)
   * ranges of the pieces closed since the last message (PieceCuts.ranges).
   */
  | { type: 'ack'; buffer?: ArrayBuffer; offset?: number; length?: number; cuts?: number[] }
  /** The next uncompressed bytes, in order; a view of a transferred buffer to give back with `free` (gzip). */
  | { type: 'output'; data: Uint8Array; reusable: boolean }
  /**
   * The scan without the hashes the main thread computes (digest and diffId are placeholders;
   * with `pieces`, the piece digests too: the last chunk's bytes, the last ranges, PieceCuts.kept).
   */
  | { type: 'done'; scan: LayerScan; pieces?: { buffer: ArrayBuffer; offset: number; length: number; cuts: number[]; kept: number[] } }
  | { type: 'error'; error: { code?: string; message: string } };
