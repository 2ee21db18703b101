// Runs layer scans either on this thread or in a pool of worker threads. Inflating gzip is
// CPU-bound, so with several layers, workers let them use every core. The main thread reads
// the compressed bytes, hashes them (the layer digest, in parallel with the worker's scan),
// packs them into 1 MiB buffers that are transferred, not copied, and merges results.
// Layers under IN_THREAD_MAX_BYTES are scanned on the main thread: starting a worker costs
// more than scanning them.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ClipError, LayerFormatError } from '@clip/shared/errors';
import type { Logger } from '@clip/shared/log';
import { indexLayer, type IndexedLayer, type IndexLayerOptions } from './index-layer.js';
import type { FromWorker, ToWorker } from './worker-protocol.js';

export interface LayerScanner {
  /** `size`: the layer's compressed size when known (small layers are scanned in-thread). */
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

export function rehydrateError(error: { code?: string; message: string }): Error {
  if (error.code === 'CLIP_E_LAYER_FORMAT') return new LayerFormatError(error.message);
  if (error.code) return new ClipError(error.code, error.message);
  return new Error(error.message);
}

class WorkerPool implements LayerScanner {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly waiting: Array<(worker: Worker) => void> = [];

  constructor(private readonly script: URL, private readonly size: number) {}

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

    const result = new Promise<IndexedLayer>((resolve, reject) => {
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      const onMessage = (message: FromWorker) => {
        if (message.type === 'ack') {
          inFlight--;
          wakeFeeder?.();
          return;
        }
        cleanup();
        failed = message.type === 'error';
        wakeFeeder?.();
        if (message.type === 'done') resolve(message.result);
        else reject(rehydrateError(message.error));
      };
      const onError = (error: Error) => {
        cleanup();
        failed = true;
        wakeFeeder?.();
        reject(error);
      };
      const onExit = (code: number) => onError(new Error(`layer scan worker exited with code ${code}`));
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });

    post({ type: 'start', options: { ...options, hashCompressed: false } });
    const blobHash = createHash('sha256');
    const feed = async () => {
      // Stream chunks often share a pooled ArrayBuffer: they are copied into `pending`,
      // which is transferred whole once full.
      let pending = transferBuffer();
      let filled = 0;
      const flush = async () => {
        while (inFlight >= MAX_CHUNKS_IN_FLIGHT && !failed) await new Promise<void>((resolve) => (wakeFeeder = resolve));
        if (failed) return;
        const data = pending.subarray(0, filled);
        inFlight++;
        post({ type: 'chunk', data }, [data.buffer as ArrayBuffer]);
        pending = transferBuffer();
        filled = 0;
      };
      for await (const chunk of compressed) {
        if (failed) return;
        blobHash.update(chunk);
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
      const value = await result;
      this.release(worker);
      return { ...value, scan: { ...value.scan, digest: `sha256:${blobHash.digest('hex')}` } };
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

/** Not from Buffer's pool: its whole ArrayBuffer is transferred. */
function transferBuffer(): Uint8Array {
  const buffer = Buffer.allocUnsafeSlow(TRANSFER_SIZE);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

export async function createLayerScanner(options: { workers: boolean; concurrency: number; logger: Logger }): Promise<LayerScanner> {
  if (!options.workers) return inThread;
  const script = workerScript();
  if (!script) {
    options.logger.debug('layer scan workers unavailable (running from sources); scanning on the main thread');
    return inThread;
  }
  return new WorkerPool(script, options.concurrency);
}
