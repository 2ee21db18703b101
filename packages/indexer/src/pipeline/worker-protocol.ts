// Messages between the layer scanner and its worker threads.
import type { IndexedLayer, IndexLayerOptions } from './index-layer.js';

export type ToWorker =
  | { type: 'start'; options: IndexLayerOptions }
  | { type: 'chunk'; data: Uint8Array }
  | { type: 'end' };

export type FromWorker =
  | { type: 'ack' }
  | { type: 'done'; result: IndexedLayer }
  | { type: 'error'; error: { code?: string; message: string } };
