// One layer indexed on one worker thread (layer-indexer.ts's WorkerPool runs these): the
// worker decompresses and records checkpoints; this thread feeds it the compressed bytes in
// transferred 1 MiB buffers (at most MAX_CHUNKS_IN_FLIGHT at a time), walks and hashes the
// uncompressed bytes it sends back, hashes gzip pieces, and recycles the buffers both ways.
import { createHash, type Hash } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { UNHASHED, type LayerScan } from '../scan/scan-compressed-layer.js';
import type { TarEntry } from '../tar/tar-entry.js';
import { TarWalker } from '../tar/tar-walker.js';
import type { IndexedLayer, IndexLayerOptions } from './index-layer.js';
import { type FillableBlob, isFillable } from './local-blob.js';
import { PieceHasher } from './piece-hasher.js';
import type { FromWorker, ToWorker } from './worker-protocol.js';

/** Chunks posted to a worker and not yet consumed by its scanner: bounds memory per layer. */
const MAX_CHUNKS_IN_FLIGHT = 4;
/** Compressed bytes per message to a worker. */
export const TRANSFER_SIZE = 1 << 20;

export class WorkerJob {
  private inFlight = 0;
  private wakeFeeder: (() => void) | undefined;
  private failed = false;
  private readonly entries: TarEntry[] = [];
  private readonly walker: TarWalker;
  private readonly diffHash: Hash | undefined;
  private readonly blobHash: Hash | undefined;
  /** Transfer buffers the worker gave back. */
  private readonly freeChunks: ArrayBuffer[] = [];
  /** gzip: the worker leaves the piece hashes to this thread (piece-hasher.ts). */
  private readonly pieces = new PieceHasher((bytes) => this.recycle(bytes.buffer as ArrayBuffer));
  private readonly result: Promise<LayerScan>;

  /** `hashDiffId`: the worker hashes the uncompressed output; otherwise this thread does. */
  constructor(
    private readonly worker: Worker,
    options: IndexLayerOptions,
    hashDiffId: boolean,
    rehydrate: (error: { code?: string; message: string }) => Error,
  ) {
    this.walker = new TarWalker(options.digest, (entry) => this.entries.push(entry));
    this.diffHash = hashDiffId ? undefined : createHash('sha256');
    this.blobHash = options.hashCompressed === false ? undefined : createHash('sha256');
    this.result = this.listen(rehydrate);
    this.post({ type: 'start', options: { ...options, hashCompressed: false }, hashDiffId });
  }

  /** Sends every compressed byte; throws if the source fails (the worker is then mid-scan: discard it). */
  async feed(compressed: AsyncIterable<Uint8Array>): Promise<void> {
    try {
      if (isFillable(compressed)) await this.feedFillable(compressed);
      else await this.feedStream(compressed);
    } catch (error) {
      this.result.catch(() => {});
      throw error;
    }
  }

  /** The indexed layer, once the worker is done. */
  async finished(): Promise<IndexedLayer> {
    const scan = await this.result;
    const { blobHash, diffHash } = this;
    return {
      scan: {
        ...scan,
        digest: blobHash ? `sha256:${blobHash.digest('hex')}` : UNHASHED,
        diffId: diffHash ? `sha256:${diffHash.digest('hex')}` : scan.diffId,
      },
      entries: this.entries,
    };
  }

  private post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  private recycle(buffer: ArrayBuffer | undefined): void {
    if (buffer?.byteLength === TRANSFER_SIZE && this.freeChunks.length < MAX_CHUNKS_IN_FLIGHT) this.freeChunks.push(buffer);
  }

  private listen(rehydrate: (error: { code?: string; message: string }) => Error): Promise<LayerScan> {
    const worker = this.worker;
    return new Promise<LayerScan>((resolve, reject) => {
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      const onError = (error: unknown) => {
        cleanup();
        this.failed = true;
        this.wakeFeeder?.();
        reject(error);
      };
      const onMessage = (message: FromWorker) => {
        try {
          if (message.type === 'error') return onError(rehydrate(message.error));
          if (message.type !== 'done') return this.onProgress(message);
          this.onDone(message);
        } catch (error) {
          onError(error);
          return;
        }
        cleanup();
        this.wakeFeeder?.();
        resolve(message.scan);
      };
      const onExit = (code: number) => onError(new Error(`layer scan worker exited with code ${code}`));
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  /** A chunk consumed (its buffer back, with piece cuts for gzip) or uncompressed output to walk. */
  private onProgress(message: Extract<FromWorker, { type: 'ack' | 'output' }>): void {
    if (message.type === 'ack') {
      this.inFlight--;
      if (message.cuts && message.buffer) {
        this.pieces.bytes(new Uint8Array(message.buffer, message.offset, message.length));
        this.pieces.cuts(message.cuts);
      } else {
        this.recycle(message.buffer);
      }
      this.wakeFeeder?.();
      return;
    }
    const { data } = message;
    this.diffHash?.update(data);
    this.walker.push(data);
    if (message.reusable) this.post({ type: 'free', buffer: data.buffer as ArrayBuffer }, [data.buffer as ArrayBuffer]);
    else this.post({ type: 'free' });
  }

  private onDone(message: Extract<FromWorker, { type: 'done' }>): void {
    this.walker.end();
    if (message.pieces) {
      const { buffer, offset, length, cuts, kept } = message.pieces;
      this.pieces.bytes(new Uint8Array(buffer, offset, length));
      this.pieces.cuts(cuts);
      this.pieces.finish(message.scan.spans, kept);
    }
  }

  /** Waits while MAX_CHUNKS_IN_FLIGHT chunks are with the worker; false once the job failed. */
  private async roomForChunk(): Promise<boolean> {
    while (this.inFlight >= MAX_CHUNKS_IN_FLIGHT && !this.failed) await new Promise<void>((resolve) => (this.wakeFeeder = resolve));
    return !this.failed;
  }

  private sendChunk(data: Uint8Array): void {
    this.inFlight++;
    this.post({ type: 'chunk', data }, [data.buffer as ArrayBuffer]);
  }

  /** Reads straight into the buffers that are transferred (a local layout's blob file). */
  private async feedFillable(compressed: FillableBlob): Promise<void> {
    for (;;) {
      if (!(await this.roomForChunk())) return;
      const buffer = transferBuffer(this.freeChunks);
      const count = await compressed.fill(buffer);
      if (this.failed) return;
      if (count === 0) break;
      this.blobHash?.update(buffer.subarray(0, count));
      this.sendChunk(buffer.subarray(0, count));
    }
    this.post({ type: 'end' });
  }

  /**
   * Stream chunks often share a pooled ArrayBuffer: they are copied into `pending`, which is
   * transferred whole once full (and comes back with a later ack).
   */
  private async feedStream(compressed: AsyncIterable<Uint8Array>): Promise<void> {
    let pending = transferBuffer(this.freeChunks);
    let filled = 0;
    const flush = async () => {
      if (!(await this.roomForChunk())) return;
      this.sendChunk(pending.subarray(0, filled));
      pending = transferBuffer(this.freeChunks);
      filled = 0;
    };
    for await (const chunk of compressed) {
      if (this.failed) return;
      this.blobHash?.update(chunk);
      let at = 0;
      while (at < chunk.length) {
        const take = Math.min(chunk.length - at, pending.length - filled);
        pending.set(chunk.subarray(at, at + take), filled);
        filled += take;
        at += take;
        if (filled === pending.length) await flush();
        if (this.failed) return;
      }
    }
    if (filled > 0) await flush();
    if (!this.failed) this.post({ type: 'end' });
  }
}

/** A given-back buffer, or a new one not from Buffer's pool: its whole ArrayBuffer is transferred. */
function transferBuffer(free: ArrayBuffer[]): Uint8Array {
  const reused = free.pop();
  if (reused) return new Uint8Array(reused);
  const buffer = Buffer.allocUnsafeSlow(TRANSFER_SIZE);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}
