// A span decoder that cannot start yet: its checkpoint's window (external windows, v2.3) is
// still being fetched. Pushes wait for the window, then go to the real decoder in call order;
// a window that fails to load fails every push (the LiveSpan then reports it).
import type { SpanDecoder } from './span-decoder.js';

export function deferredDecoder(window: Promise<Uint8Array>, create: (window: Uint8Array) => SpanDecoder): SpanDecoder {
  let inner: SpanDecoder | undefined;
  let closed = false;
  // Nobody may push (e.g. the span's fetch failed first): the window's failure is not unhandled.
  window.catch(() => {});
  const ready = (): Promise<SpanDecoder> =>
    window.then((loaded) => {
      if (closed) throw new Error('decoder closed');
      inner ??= create(loaded);
      return inner;
    });
  return {
    get consumed() {
      return inner?.consumed ?? 0;
    },
    get produced() {
      return inner?.produced ?? 0;
    },
    push: (compressed) => ready().then((decoder) => decoder.push(compressed)),
    close() {
      closed = true;
      inner?.close();
    },
  };
}
