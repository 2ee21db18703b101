// Worker thread body: decompresses one layer at a time from chunks the main thread posts and
// records its checkpoints, acking each chunk once the scanner has taken it (backpressure
// towards the reader) and posting the uncompressed output back in order, for the main
// thread's tar walk and diffId. At most MAX_OUTPUT_IN_FLIGHT output buffers are out at once
// (backpressure towards the main thread); gzip output buffers come back to be reused, and so
// do the compressed chunks' buffers, so a layer scan touches only a few MiB of fresh memory.
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { GZIP_OUTPUT_BUFFER_SIZE } from '../scan/gzip-scan.js';
import { scanCompressedLayer } from '../scan/scan-compressed-layer.js';
import type { PieceCuts } from '../scan/span-recorder.js';
import { scanOptionsFor } from './layer-options.js';
import type { Digest } from '@clip/shared';
import type { FromWorker, ToWorker } from './worker-protocol.js';

const port = parentPort;
if (!port) throw new Error('scan-worker must run in a worker thread');

/** Output buffers (1 MiB each) posted and not yet given back. */
const MAX_OUTPUT_IN_FLIGHT = 8;

const send = (message: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

let queue: Uint8Array[] = [];
let ended = false;
let wake: (() => void) | undefined;
/** Given-back gzip output buffers. */
const freeOutput: ArrayBuffer[] = [];
let outputInFlight = 0;
/** The layer's diffId, hashed here as the output is posted when the main thread asked (`start.hashDiffId`). */
let diffHash: Hash | undefined;
let wakeOutput: (() => void) | undefined;

/** The layer's last chunk, once the scanner is done with it (given back with the pieces' cuts). */
let last: Uint8Array | undefined;

/**
 * `recycle`: the previous chunk's buffer goes back to the main thread once the next one is
 * taken. With `cuts` it always goes back, with the piece ranges closed so far: the scanner
 * is done with the previous chunk when it asks for the next one, so every piece ending in
 * it is closed (a piece ending exactly at its end may close later, with the next chunk).
 */
async function* chunks(recycle: boolean, cuts?: PieceCuts): AsyncGenerator<Uint8Array> {
  let previous: Uint8Array | undefined;
  last = undefined;
  for (;;) {
    const chunk = queue.shift();
    if (chunk) {
      if (cuts && previous) {
        const buffer = previous.buffer as ArrayBuffer;
        send({ type: 'ack', buffer, offset: previous.byteOffset, length: previous.byteLength, cuts: cuts.ranges.splice(0) }, [buffer]);
      } else {
        const buffer = recycle && previous && previous.byteOffset === 0 ? (previous.buffer as ArrayBuffer) : undefined;
        if (buffer) send({ type: 'ack', buffer }, [buffer]);
        else send({ type: 'ack' });
      }
      previous = chunk;
      yield chunk;
      continue;
    }
    if (ended) {
      last = previous;
      return;
    }
    await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
  }
}

function outputBuffer(): Uint8Array {
  const buffer = freeOutput.pop();
  if (buffer) return new Uint8Array(buffer);
  const fresh = Buffer.allocUnsafeSlow(GZIP_OUTPUT_BUFFER_SIZE);
  return new Uint8Array(fresh.buffer, fresh.byteOffset, fresh.length);
}

async function output(chunk: Uint8Array, reusable: boolean): Promise<void> {
  while (outputInFlight >= MAX_OUTPUT_IN_FLIGHT) await new Promise<void>((resolve) => (wakeOutput = resolve));
  outputInFlight++;
  diffHash?.update(chunk);
  if (reusable) {
    send({ type: 'output', data: chunk, reusable }, [chunk.buffer as ArrayBuffer]);
  } else {
    // A view of a buffer the scanner may share (zstd, plain): post a copy.
    const copy = chunk.slice();
    send({ type: 'output', data: copy, reusable }, [copy.buffer]);
  }
}

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'start': {
      queue = [];
      ended = false;
      outputInFlight = 0;
      diffHash = message.hashDiffId ? createHash('sha256') : undefined;
      const { options } = message;
      const gzip = options.compression === 'gzip';
      // gzip: the main thread hashes the pieces (it has the compressed bytes back anyway).
      const cuts: PieceCuts | undefined = gzip ? { ranges: [], kept: [] } : undefined;
      scanCompressedLayer(
        chunks(gzip, cuts),
        options.compression,
        {
          ...scanOptionsFor(options),
          hashCompressed: false,
          hashUncompressed: false,
          storeWindows: true,
          ...(gzip ? { outputBuffer, pieceCuts: cuts } : {}),
        },
        (chunk) => output(chunk, gzip),
      ).then(
        (result) => {
          const scan = diffHash ? { ...result, diffId: `sha256:${diffHash.digest('hex')}` as Digest } : result;
          diffHash = undefined;
          if (!cuts) {
            send({ type: 'done', scan });
            return;
          }
          const bytes = last ?? new Uint8Array(0);
          const buffer = bytes.buffer as ArrayBuffer;
          last = undefined;
          const pieces = { buffer, offset: bytes.byteOffset, length: bytes.byteLength, cuts: cuts.ranges.splice(0), kept: cuts.kept };
          send({ type: 'done', scan, pieces }, bytes.byteLength > 0 ? [buffer] : []);
        },
        (error: unknown) => {
          const { code, message: text } = error as { code?: string; message?: string };
          send({ type: 'error', error: { ...(typeof code === 'string' ? { code } : {}), message: text ?? String(error) } });
        },
      );
      return;
    }
    case 'chunk':
      queue.push(message.data);
      wake?.();
      return;
    case 'end':
      ended = true;
      wake?.();
      return;
    case 'free':
      if (message.buffer?.byteLength === GZIP_OUTPUT_BUFFER_SIZE && freeOutput.length < MAX_OUTPUT_IN_FLIGHT + 2)
        freeOutput.push(message.buffer);
      outputInFlight--;
      wakeOutput?.();
      wakeOutput = undefined;
  }
});
