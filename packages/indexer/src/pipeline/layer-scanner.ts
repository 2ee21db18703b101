// Runs layer scans either on this thread or in a pool of worker threads. Inflating gzip is
// CPU-bound: a worker decompresses and records checkpoints while the main thread reads the
// compressed bytes, packs them into 1 MiB buffers that are transferred, not copied, and
// walks and hashes (diffId; with several large layers the workers hash instead) the
// uncompressed bytes the worker transfers back, so even one
// layer keeps two cores busy, and several layers' inflates run in parallel. Buffers go back
// and forth for reuse rather than being allocated per MiB.
// Layers under IN_THREAD_MAX_BYTES are scanned on the main thread: starting a worker costs
// more than scanning them.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ArchiveFormatError, ClipError, IoError, LayerFormatError, type Logger, TimeoutError, UsageError } from '@clip/shared';
import { UNHASHED, type LayerScan } from '../scan/scan-layer.js';
import type { TarEntry } from '../tar/tar-entry.js';
import { TarWalker } from '../tar/tar-walker.js';
import { indexLayer, type IndexedLayer, type IndexLayerOptions } from './index-layer.js';
import { isFillable } from './local-blob.js';
import { PieceHasher } from './piece-hasher.js';
import type { FromWorker, ToWorker } from './worker-protocol.js';

export interface LayerScanner {
  /**
   * `size`: the layer's compressed size when known (small layers are scanned in-thread).
   * A FillableBlob (local-blob.ts) is read straight into the buffers sent to the worker.
   */
  scan(compressed: AsyncIterable<Uint8Array>, options: IndexLayerOptions, size?: number): Promise<IndexedLayer>;
  close(): Promise<void>;
}

/** Chunks posted to a worker and not yet consumed by its scanner: bounds memory per layer. */
const MAX_CHUNKS_IN_FLIGHT = 4;
/** Compressed bytes per message to a worker. */
const TRANSFER_SIZE = 1 << 20;
/** Layers smaller than this are scanned on the calling thread (no worker start-up). */
export const IN_THREAD_MAX_BYTES = 1 << 20;

const inThread: LayerScanner = {
  scan: (compressed, options) => indexLayer(compressed, options),
  close: async () => {},
};

/** The compiled worker script; absent when running from TypeScript sources (tests). */
function workerScript(): URL | undefined {
  const url = new URL('./scan-worker.js', import.meta.url);
  return url.protocol === 'file:' && existsSync(fileURLToPath(url)) ? url : undefined;
}

const WORKER_ERRORS: Record<string, new (message: string) => ClipError> = {
  CLIP_E_LAYER_FORMAT: LayerFormatError,
  CLIP_E_ARCHIVE_FORMAT: ArchiveFormatError,
  CLIP_E_IO: IoError,
  CLIP_E_TIMEOUT: TimeoutError,
  CLIP_E_USAGE: UsageError,
};

/** A worker's error as the class it was thrown as (by code); codes without a class stay ClipErrors. */
export function rehydrateError(error: { code?: string; message: string }): Error {
  if (!error.code) return new Error(error.message);
  const Class = WORKER_ERRORS[error.code];
  return Class ? new Class(error.message) : new ClipError(error.code, error.message);
}

class WorkerPool implements LayerScanner {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly waiting: Array<(worker: Worker) => void> = [];

  /**
   * `hashDiffIds`: the workers hash the uncompressed output (diffId). Worth it when several
   * large layers are scanned at once: the main thread walks all of them and is the busier
   * side; with one large layer the worker's inflate is the longer path and the main thread
   * hashes.
   */
  constructor(private readonly script: URL, private readonly size: number, private readonly hashDiffIds: boolean) {}

  private async acquire(): Promise<Worker> {
    const worker = this.idle.pop();
    if (worker) return worker;
    if (this.all.length < this.size) {
      const created = new Worker(this.script);
      created.unref();
      this.all.push(created);
      return created;
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(worker: Worker): void {
    const next = this.waiting.shift();
    if (next) next(worker);
    else this.idle.push(worker);
  }

  private discard(worker: Worker): void {
    this.all.splice(this.all.indexOf(worker), 1);
    void worker.terminate();
    // Someone waiting for a worker can now create one.
    const next = this.waiting.shift();
    if (next) void this.acquire().then(next);
  }

  async scan(compressed: AsyncIterable<Uint8Array>, options: IndexLayerOptions, size?: number): Promise<IndexedLayer> {
    if (size !== undefined && size < IN_THREAD_MAX_BYTES) return indexLayer(compressed, options);
    const worker = await this.acquire();
    let inFlight = 0;
    let wakeFeeder: (() => void) | undefined;
    let failed = false;
    const post = (message: ToWorker, transfer: ArrayBuffer[] = []) => worker.postMessage(message, transfer);
    // The worker decompresses; this thread walks the tar stream and hashes it as it comes back.
    const entries: TarEntry[] = [];
    const walker = new TarWalker(options.digest, (entry) => entries.push(entry));
    const diffHash = this.hashDiffIds ? undefined : createHash('sha256');
    /** Transfer buffers the worker gave back. */
    const freeChunks: ArrayBuffer[] = [];
    const recycle = (buffer: ArrayBuffer | undefined) => {
      if (buffer?.byteLength === TRANSFER_SIZE && freeChunks.length < MAX_CHUNKS_IN_FLIGHT) freeChunks.push(buffer);
    };
    // gzip: the worker leaves the piece hashes to this thread (piece-hasher.ts).
    const pieces = new PieceHasher((bytes) => recycle(bytes.buffer as ArrayBuffer));

    const result = new Promise<LayerScan>((resolve, reject) => {
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      const onError = (error: unknown) => {
        cleanup();
        failed = true;
        wakeFeeder?.();
        reject(error);
      };
      const onMessage = (message: FromWorker) => {
        switch (message.type) {
          case 'ack':
            inFlight--;
            if (message.cuts && message.buffer) {
              try {
                pieces.bytes(new Uint8Array(message.buffer, message.offset, message.length));
                pieces.cuts(message.cuts);
              } catch (error) {
                onError(error);
                return;
              }
            } else {
              recycle(message.buffer);
            }
            wakeFeeder?.();
            return;
          case 'output': {
            const { data } = message;
            try {
              diffHash?.update(data);
              walker.push(data);
            } catch (error) {
              onError(error);
              return;
            }
            if (message.reusable) post({ type: 'free', buffer: data.buffer as ArrayBuffer }, [data.buffer as ArrayBuffer]);
            else post({ type: 'free' });
            return;
          }
          case 'done':
            try {
              walker.end();
              if (message.pieces) {
                const { buffer, offset, length, cuts, kept } = message.pieces;
                pieces.bytes(new Uint8Array(buffer, offset, length));
                pieces.cuts(cuts);
                pieces.finish(message.scan.spans, kept);
              }
            } catch (error) {
              onError(error);
              return;
            }
            cleanup();
            wakeFeeder?.();
            resolve(message.scan);
            return;
          case 'error':
            onError(rehydrateError(message.error));
        }
      };
      const onExit = (code: number) => onError(new Error(`layer scan worker exited with code ${code}`));
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });

    post({ type: 'start', options: { ...options, hashCompressed: false }, hashDiffId: this.hashDiffIds });
    const blobHash = options.hashCompressed === false ? undefined : createHash('sha256');
    const feed = async () => {
      if (isFillable(compressed)) {
        // Read straight into the buffers that are transferred (a local layout's blob file).
        for (;;) {
          while (inFlight >= MAX_CHUNKS_IN_FLIGHT && !failed) await new Promise<void>((resolve) => (wakeFeeder = resolve));
          if (failed) return;
          const buffer = transferBuffer(freeChunks);
          const count = await compressed.fill(buffer);
          if (failed) return;
          if (count === 0) break;
          blobHash?.update(buffer.subarray(0, count));
          inFlight++;
          post({ type: 'chunk', data: buffer.subarray(0, count) }, [buffer.buffer as ArrayBuffer]);
        }
        post({ type: 'end' });
        return;
      }
      // Stream chunks often share a pooled ArrayBuffer: they are copied into `pending`,
      // which is transferred whole once full (and comes back with a later ack).
      let pending = transferBuffer(freeChunks);
      let filled = 0;
      const flush = async () => {
        while (inFlight >= MAX_CHUNKS_IN_FLIGHT && !failed) await new Promise<void>((resolve) => (wakeFeeder = resolve));
        if (failed) return;
        const data = pending.subarray(0, filled);
        inFlight++;
        post({ type: 'chunk', data }, [data.buffer as ArrayBuffer]);
        pending = transferBuffer(freeChunks);
        filled = 0;
      };
      for await (const chunk of compressed) {
        if (failed) return;
        blobHash?.update(chunk);
        let at = 0;
        while (at < chunk.length) {
          const take = Math.min(chunk.length - at, pending.length - filled);
          pending.set(chunk.subarray(at, at + take), filled);
          filled += take;
          at += take;
          if (filled === pending.length) await flush();
          if (failed) return;
        }
      }
      if (filled > 0) await flush();
      if (!failed) post({ type: 'end' });
    };
    const fed = feed();
    try {
      await fed;
    } catch (error) {
      // The source failed: the worker is mid-scan; replace it.
      this.discard(worker);
      result.catch(() => {});
      throw error;
    }
    try {
      const scan = await result;
      this.release(worker);
      return {
        scan: { ...scan, digest: blobHash ? `sha256:${blobHash.digest('hex')}` : UNHASHED, diffId: diffHash ? `sha256:${diffHash.digest('hex')}` : scan.diffId },
        entries,
      };
    } catch (error) {
      this.discard(worker);
      throw error;
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((worker) => worker.terminate()));
    this.all.length = 0;
    this.idle.length = 0;
  }
}

/** A given-back buffer, or a new one not from Buffer's pool: its whole ArrayBuffer is transferred. */
function transferBuffer(free: ArrayBuffer[]): Uint8Array {
  const reused = free.pop();
  if (reused) return new Uint8Array(reused);
  const buffer = Buffer.allocUnsafeSlow(TRANSFER_SIZE);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

/**
 * `layerSizes`: the compressed sizes of the layers to be scanned, when known; with two or more
 * layers large enough for a worker (and room to run them at once) the workers hash the diffIds.
 */
export async function createLayerScanner(options: {
  workers: boolean;
  concurrency: number;
  logger: Logger;
  layerSizes?: readonly number[];
}): Promise<LayerScanner> {
  if (!options.workers) return inThread;
  const script = workerScript();
  if (!script) {
    options.logger.debug('layer scan workers unavailable (running from sources); scanning on the main thread');
    return inThread;
  }
  const large = (options.layerSizes ?? []).filter((size) => size >= IN_THREAD_MAX_BYTES).length;
  return new WorkerPool(script, options.concurrency, options.concurrency > 1 && large > 1);
}
