// Worker thread body: scans one layer at a time from chunks the main thread posts, acking
// each chunk once the scanner has taken it (that is the backpressure), and posts the result.
import { parentPort } from 'node:worker_threads';
import { indexLayer } from './index-layer.js';
import type { FromWorker, ToWorker } from './worker-protocol.js';

const port = parentPort;
if (!port) throw new Error('scan-worker must run in a worker thread');

const send = (message: FromWorker) => port.postMessage(message);

let queue: Uint8Array[] = [];
let ended = false;
let wake: (() => void) | undefined;

async function* chunks(): AsyncGenerator<Uint8Array> {
  for (;;) {
    const chunk = queue.shift();
    if (chunk) {
      send({ type: 'ack' });
      yield chunk;
      continue;
    }
    if (ended) return;
    await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
  }
}

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'start':
      queue = [];
      ended = false;
      indexLayer(chunks(), message.options).then(
        (result) => send({ type: 'done', result }),
        (error: unknown) => {
          const { code, message: text } = error as { code?: string; message?: string };
          send({ type: 'error', error: { ...(typeof code === 'string' ? { code } : {}), message: text ?? String(error) } });
        },
      );
      return;
    case 'chunk':
      queue.push(message.data);
      wake?.();
      return;
    case 'end':
      ended = true;
      wake?.();
  }
});
