// Runs layer scans either on this thread or in a pool of worker threads. Inflating gzip in
// JavaScript is CPU-bound, so with several layers, workers let them use every core; the main
// thread only moves compressed bytes (transferred, not copied twice) and merges results.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ClipError, LayerFormatError } from '@clip/shared/errors';
import type { Logger } from '@clip/shared/log';
import { indexLayer, type IndexedLayer, type IndexLayerOptions } from './index-layer.js';
import type { FromWorker, ToWorker } from './worker-protocol.js';

export interface LayerScanner {
  scan(compressed: AsyncIterable<Uint8Array>, options: IndexLayerOptions): Promise<IndexedLayer>;
  close(): Promise<void>;
}

/** Chunks posted to a worker and not yet consumed by its scanner: bounds memory per layer. */
const MAX_CHUNKS_IN_FLIGHT = 8;

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

  async scan(compressed: AsyncIterable<Uint8Array>, options: IndexLayerOptions): Promise<IndexedLayer> {
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

    post({ type: 'start', options });
    const feed = async () => {
      for await (const chunk of compressed) {
        while (inFlight >= MAX_CHUNKS_IN_FLIGHT && !failed) await new Promise<void>((resolve) => (wakeFeeder = resolve));
        if (failed) return;
        // Stream chunks often share a pooled ArrayBuffer: copy before transferring.
        const copy = new Uint8Array(chunk);
        inFlight++;
        post({ type: 'chunk', data: copy }, [copy.buffer]);
      }
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
      return value;
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

export async function createLayerScanner(options: { workers: boolean; concurrency: number; logger: Logger }): Promise<LayerScanner> {
  if (!options.workers) return inThread;
  const script = workerScript();
  if (!script) {
    options.logger.debug('layer scan workers unavailable (running from sources); scanning on the main thread');
    return inThread;
  }
  return new WorkerPool(script, options.concurrency);
}
