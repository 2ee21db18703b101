// LayerReader over an archive with external windows (v2.3), on hand-made plain spans whose
// checkpoints point into a windows blob: the codec checks that each span is decoded with its
// own window. The window travels with the span's pieces (not after them), neighbours ride
// along, windows are verified (a corrupt one is an error, twice fetched, never used) and
// persisted in the span cache.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type ExternalWindow, storeWindow } from '@clip/archive-format';
import { type Digest, DigestMismatchError } from '@clip/shared';
import { plainLayer } from '@clip/testkit';
import { LayerReader, type ReaderEvent, type SpanCache } from '../src/layer-reader.js';
import type { SpanCodec } from '../src/span-codec.js';
import { windowKey } from '../src/window-loader.js';

const sha = (bytes: Uint8Array): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const SPAN = 100;

/** Plain spans; span i ≥ 1 must be decoded with a window of 64 bytes all equal to i. */
const codec: SpanCodec = {
  spanIndexAt: (layer, offset) => Math.min(Math.floor(offset / SPAN), layer.spans.length - 1),
  compressedRangeFor(layer, index, uncompressedEnd) {
    const span = layer.spans[index]!;
    const start = span.checkpoint.compressedBitOffset / 8;
    let count = 0;
    for (const piece of span.pieces) {
      count++;
      if (piece.uncompressedEnd >= uncompressedEnd) return { start, end: piece.compressedEnd, pieceCount: count };
    }
    return { start, end: span.pieces.at(-1)!.compressedEnd, pieceCount: count };
  },
  async decompressSpan(_layer, index, compressed, window) {
    if (index > 0 && (window?.length !== 64 || window.some((byte) => byte !== index))) throw new Error(`span ${index}: wrong window`);
    return Buffer.from(compressed);
  },
};

function setup(options: { cache?: SpanCache; gate?: boolean; coalesce?: number } = {}) {
  const data = Buffer.alloc(1000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
  const layer = plainLayer(data, SPAN, 25);
  const stored = layer.spans.map((_, i) => (i === 0 ? new Uint8Array(0) : storeWindow(new Uint8Array(64).fill(i))));
  const blob = Buffer.concat(stored);
  const blobDigest = sha(blob);
  let offset = 0;
  layer.spans.forEach((span, i) => {
    if (i > 0) {
      const ref: ExternalWindow = { blob: blobDigest, offset, storedLength: stored[i]!.length, digest: sha(stored[i]!), length: 64 };
      Object.assign(span.checkpoint, { externalWindow: ref });
    }
    offset += stored[i]!.length;
  });
  const fetches: Array<{ blob: boolean; start: number; end: number }> = [];
  let release: () => void = () => {};
  let gate = options.gate ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve();
  const fetchRange = async (digest: Digest, start: number, end: number) => {
    fetches.push({ blob: digest === blobDigest, start, end });
    await gate;
    return Buffer.from((digest === blobDigest ? blob : data).subarray(start, end));
  };
  const events: ReaderEvent[] = [];
  const reader = new LayerReader(
    { layers: [layer] },
    {
      fetchRange,
      codec,
      onEvent: (event) => events.push(event),
      ...(options.cache ? { cache: options.cache } : {}),
      ...(options.coalesce !== undefined ? { windowCoalesceBytes: options.coalesce } : {}),
    },
  );
  return {
    data,
    blob,
    layer,
    reader,
    fetches,
    events,
    open: () => {
      gate = Promise.resolve();
      release();
    },
  };
}

describe('LayerReader with external windows', () => {
  it('requests a span’s window together with its pieces, and decodes with it', async () => {
    const { data, reader, fetches, open } = setup({ gate: true });
    const read = reader.read(0, 310, 20);
    // Both requests are out before either answered: the window does not wait for the pieces.
    while (fetches.length < 2) await new Promise((resolve) => setImmediate(resolve));
    expect(fetches.map((f) => f.blob).sort()).toEqual([false, true]);
    open();
    expect(await read).toEqual(data.subarray(310, 330));
  });

  it('by default fetches one window per request', async () => {
    const { reader, fetches, layer } = setup();
    await reader.read(0, 300, 10);
    const ref = layer.spans[3]!.checkpoint.externalWindow!;
    expect(fetches.filter((f) => f.blob)).toEqual([{ blob: true, start: ref.offset, end: ref.offset + ref.storedLength }]);
  });

  it('with a coalescing budget, takes the following windows along in one request, then needs no window request for them', async () => {
    const { data, reader, fetches, layer, events } = setup({ coalesce: 64 * 1024 });
    await reader.read(0, 300, 10);
    const windowFetches = () => fetches.filter((f) => f.blob);
    const first = layer.spans[3]!.checkpoint.externalWindow!;
    const fourth = layer.spans[6]!.checkpoint.externalWindow!;
    expect(windowFetches()).toEqual([{ blob: true, start: first.offset, end: fourth.offset + fourth.storedLength }]);
    expect(events).toContainEqual(expect.objectContaining({ kind: 'window-fetch', windows: 4 }));
    expect(await reader.read(0, 400, 250)).toEqual(data.subarray(400, 650));
    expect(windowFetches()).toHaveLength(1);
    // Span 7 is beyond what came along: its own request (with its followers).
    await reader.read(0, 700, 1);
    expect(windowFetches()).toHaveLength(2);
  });

  it('a window whose bytes do not match is fetched once more, then fails the read: never decoded with', async () => {
    const { reader, blob, layer, events } = setup();
    const ref = layer.spans[2]!.checkpoint.externalWindow!;
    blob[ref.offset]! ^= 0xff;
    await expect(reader.read(0, 200, 10)).rejects.toThrow(DigestMismatchError);
    await expect(reader.read(0, 200, 10)).rejects.toThrow(/window of layer sha256:[0-9a-f]{64} span 2 \(windows blob/);
    const mismatches = events.filter((e) => e.kind === 'window-mismatch');
    expect(mismatches.slice(0, 2).map((e) => e.kind === 'window-mismatch' && e.attempt)).toEqual([1, 2]);
    // Spans that need no window, or another window, still read.
    expect((await reader.read(0, 0, 10)).length).toBe(10);
    expect((await reader.read(0, 100, 10)).length).toBe(10);
  });

  it('keeps fetched windows in the span cache (re-verified), so another reader does not fetch them', async () => {
    const store = new Map<string, Buffer>();
    // Only windows are kept, so the second reader has to decode the span again.
    const cache: SpanCache = {
      get: (key) => store.get(key),
      set: (key, value) => {
        if (key.includes('/window/')) store.set(key, value);
      },
    };
    const first = setup({ cache });
    await first.reader.read(0, 500, 10);
    await first.reader.flush();
    const ref = first.layer.spans[5]!.checkpoint.externalWindow!;
    expect(store.has(windowKey(ref))).toBe(true);
    const second = setup({ cache });
    expect(await second.reader.read(0, 500, 10)).toEqual(second.data.subarray(500, 510));
    expect(second.fetches.filter((f) => f.blob)).toEqual([]);
    // A damaged cached window is not used: fetched again.
    store.get(windowKey(ref))![0]! ^= 1;
    const third = setup({ cache });
    expect(await third.reader.read(0, 500, 10)).toEqual(third.data.subarray(500, 510));
    expect(third.fetches.filter((f) => f.blob)).toHaveLength(1);
  });
});
