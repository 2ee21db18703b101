// Runs layer scans either on this thread or in a pool of worker threads. Inflating gzip is
// CPU-bound: a worker decompresses and records checkpoints while the main thread reads the
// compressed bytes, packs them into 1 MiB buffers that are transferred, not copied, and
// walks and hashes (diffId; with several large layers the workers hash instead) the
// uncompressed bytes the worker transfers back, so even one
// layer keeps two cores busy, and several layers' inflates run in parallel. Buffers go back
// and forth for reuse rather than being allocated per MiB.
// Layers under IN_THREAD_MAX_BYTES are scanned on the main thread: starting a worker costs
// more than scanning them.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ArchiveFormatError, ClipError, IoError, LayerFormatError, type Logger, TimeoutError, UsageError } from '@clip/shared';
import { indexLayerInThread, type IndexedLayer, type IndexLayerOptions } from './index-layer.js';
import { WorkerJob } from './worker-job.js';

export interface LayerIndexer {
  /**
   * `size`: the layer's compressed size when known (small layers are scanned in-thread).
   * A FillableBlob (local-blob.ts) is read straight into the buffers sent to the worker.
   */
  index(compressed: AsyncIterable<Uint8Array>, options: IndexLayerOptions, size?: number): Promise<IndexedLayer>;
  close(): Promise<void>;
}

/** Layers smaller than this are scanned on the calling thread (no worker start-up). */
export const IN_THREAD_MAX_BYTES = 1 << 20;

const inThread: LayerIndexer = {
  index: (compressed, options) => indexLayerInThread(compressed, options),
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

class WorkerPool implements LayerIndexer {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly waiting: Array<(worker: Worker) => void> = [];

  /**
   * `hashDiffIds`: the workers hash the uncompressed output (diffId). Worth it when several
   * large layers are scanned at once: the main thread walks all of them and is the busier
   * side; with one large layer the worker's inflate is the longer path and the main thread
   * hashes.
   */
  constructor(
    private readonly script: URL,
    private readonly size: number,
    private readonly hashDiffIds: boolean,
  ) {}

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

  async index(compressed: AsyncIterable<Uint8Array>, options: IndexLayerOptions, size?: number): Promise<IndexedLayer> {
    if (size !== undefined && size < IN_THREAD_MAX_BYTES) return indexLayerInThread(compressed, options);
    const worker = await this.acquire();
    const job = new WorkerJob(worker, options, this.hashDiffIds, rehydrateError);
    try {
      await job.feed(compressed);
    } catch (error) {
      // The source failed: the worker is mid-scan; replace it.
      this.discard(worker);
      throw error;
    }
    try {
      const indexed = await job.finished();
      this.release(worker);
      return indexed;
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

/**
 * `layerSizes`: the compressed sizes of the layers to be scanned, when known; with two or more
 * layers large enough for a worker (and room to run them at once) the workers hash the diffIds.
 */
export async function createLayerIndexer(options: {
  workers: boolean;
  concurrency: number;
  logger: Logger;
  layerSizes?: readonly number[];
}): Promise<LayerIndexer> {
  if (!options.workers) return inThread;
  const script = workerScript();
  if (!script) {
    options.logger.debug('layer scan workers unavailable (running from sources); scanning on the main thread');
    return inThread;
  }
  const large = (options.layerSizes ?? []).filter((size) => size >= IN_THREAD_MAX_BYTES).length;
  return new WorkerPool(script, options.concurrency, options.concurrency > 1 && large > 1);
}
