// LayerReader over hand-made 'plain' spans (compressed bytes = uncompressed bytes), so the
// read path's range arithmetic, sharing, caching and verification are tested on their own.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Digest, DigestMismatchError } from '@clip/shared';
import type { Inode } from '@clip/archive-format';
import { plainLayer } from '@clip/testkit';
import { LayerReader, spanKey, compressedKey, type SpanCache } from '../src/layer-reader.js';
import type { SpanCodec } from '../src/span-codec.js';

const plainCodec: SpanCodec = {
  spanIndexAt(layer, offset) {
    let lo = 0;
    let hi = layer.spans.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (layer.spans[mid]!.checkpoint.uncompressedOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  },
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
  async decompressSpan(_layer, _index, compressed) {
    return Buffer.from(compressed);
  },
};

function setup(size = 1000, spanSize = 100, pieceSize = 25) {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 0xff;
  const layer = plainLayer(data, spanSize, pieceSize);
  const fetches: Array<[number, number]> = [];
  let corruptNext = 0;
  const fetchRange = async (_digest: Digest, start: number, end: number) => {
    fetches.push([start, end]);
    await new Promise((resolve) => setTimeout(resolve, 1));
    const bytes = Buffer.from(data.subarray(start, end));
    if (corruptNext > 0) {
      corruptNext--;
      bytes[0] = bytes[0]! ^ 0xff;
    }
    return bytes;
  };
  const store = new Map<string, Buffer>();
  const cache: SpanCache = { get: (key) => store.get(key), set: (key, value) => void store.set(key, value) };
  const reader = new LayerReader({ layers: [layer] }, { fetchRange, cache, codec: plainCodec });
  return { data, layer, fetches, store, reader, corrupt: (n: number) => (corruptNext = n) };
}

describe('LayerReader', () => {
  it('a read that joined a fetch which then fails tries once on its own (no EIO after the registry is back)', async () => {
    const data = Buffer.alloc(400);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 1) & 0xff;
    const layer = plainLayer(data, 100, 25);
    let down = true;
    const requests: string[] = [];
    const fetchRange = async (_digest: Digest, start: number, end: number) => {
      requests.push(`${start}-${end}${down ? ' (down)' : ''}`);
      if (down) {
        // Stalls while the registry is down, then fails (the read timeout).
        await new Promise((resolve) => setTimeout(resolve, 50));
        throw new Error('registry unavailable');
      }
      return Buffer.from(data.subarray(start, end));
    };
    const reader = new LayerReader({ layers: [layer] }, { fetchRange, codec: plainCodec });
    const first = reader.read(0, 110, 10);
    first.catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 5));
    down = false; // the registry is back while the first fetch still hangs
    const second = reader.read(0, 110, 10);
    await expect(first).rejects.toThrow(/registry unavailable/);
    expect(await second).toEqual(data.subarray(110, 120));
    expect(requests.filter((r) => !r.endsWith('(down)')).length).toBe(1);
  });

  it('reads ranges across spans and clamps at the layer end', async () => {
    const { data, reader } = setup();
    expect(await reader.read(0, 90, 30)).toEqual(data.subarray(90, 120));
    expect(await reader.read(0, 950, 100)).toEqual(data.subarray(950, 1000));
    expect((await reader.read(0, 1000, 10)).length).toBe(0);
  });

  it('fetches only from the checkpoint to the piece that covers the needed end', async () => {
    const { fetches, reader } = setup();
    await reader.read(0, 210, 10);
    expect(fetches).toEqual([[200, 225]]);
  });

  it('extends a partially cached span by fetching only the pieces it lacks', async () => {
    const { data, fetches, reader, store } = setup();
    await reader.read(0, 200, 10);
    expect(store.get(spanKey(plainLayer(data, 100, 25), 2))?.length).toBe(25);
    await reader.read(0, 205, 10); // covered by the cached block
    expect(fetches.length).toBe(1);
    expect(await reader.read(0, 260, 20)).toEqual(data.subarray(260, 280));
    expect(fetches).toEqual([
      [200, 225],
      [225, 300],
    ]);
  });

  it("keeps a partial span's compressed prefix in the cache, so a new reader extends it without refetching", async () => {
    const { data, layer, fetches, reader, store } = setup();
    await reader.read(0, 200, 10);
    expect(store.get(compressedKey(layer, 2))?.length).toBe(25);
    const fresh = new LayerReader(
      { layers: [layer] },
      {
        fetchRange: async (_d, start, end) => {
          fetches.push([start, end]);
          return Buffer.from(data.subarray(start, end));
        },
        cache: { get: (key) => store.get(key), set: (key, value) => void store.set(key, value) },
        codec: plainCodec,
      },
    );
    expect(await fresh.read(0, 240, 20)).toEqual(data.subarray(240, 260));
    expect(fetches).toEqual([
      [200, 225],
      [225, 275],
    ]);
  });

  it("drops a span's compressed prefix from the cache once the span is decoded whole", async () => {
    const data = Buffer.alloc(400, 7);
    const layer = plainLayer(data, 100, 25);
    const store = new Map<string, Buffer>();
    const cache: SpanCache = {
      get: (key) => store.get(key),
      set: (key, value) => void store.set(key, value),
      delete: (key) => void store.delete(key),
    };
    const reader = new LayerReader(
      { layers: [layer] },
      { fetchRange: async (_d, start, end) => Buffer.from(data.subarray(start, end)), cache, codec: plainCodec },
    );
    await reader.read(0, 100, 10);
    expect(store.has(compressedKey(layer, 1))).toBe(true);
    await reader.read(0, 190, 10);
    expect(store.has(compressedKey(layer, 1))).toBe(false);
    expect(store.get(spanKey(layer, 1))?.length).toBe(100);
    expect(reader.pieceCacheBytes).toBe(0);
  });

  it('archives of one layer with other span sizes can share a cache', async () => {
    const data = Buffer.alloc(1000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    const store = new Map<string, Buffer>();
    const cache: SpanCache = { get: (key) => store.get(key), set: (key, value) => void store.set(key, value) };
    const fetchRange = async (_d: Digest, start: number, end: number) => Buffer.from(data.subarray(start, end));
    const a = new LayerReader({ layers: [plainLayer(data, 100, 25)] }, { fetchRange, cache, codec: plainCodec });
    const b = new LayerReader({ layers: [plainLayer(data, 300, 50)] }, { fetchRange, cache, codec: plainCodec });
    await a.read(0, 0, 1000);
    expect(await b.read(0, 250, 400)).toEqual(data.subarray(250, 650));
  });

  it('never fetches a piece twice, whatever the order and overlap of reads', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(1100), fc.nat(300), fc.boolean()), { minLength: 1, maxLength: 20 }), async (ops) => {
        const { data, fetches, reader } = setup(1000, 100, 25);
        let batch: Promise<unknown>[] = [];
        for (const [offset, length, wait] of ops) {
          batch.push(
            reader
              .read(0, offset, length)
              .then((got) => expect(got).toEqual(data.subarray(Math.min(offset, 1000), Math.min(offset + length, 1000)))),
          );
          if (wait) {
            await Promise.all(batch);
            batch = [];
          }
        }
        await Promise.all(batch);
        const perByte = new Uint8Array(1000);
        for (const [start, end] of fetches) for (let i = start; i < end; i++) perByte[i]!++;
        expect(Math.max(...perByte)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 60 },
    );
  });

  it('a read fetches at most from the checkpoint to the piece covering its end', async () => {
    const { fetches, reader } = setup(1000, 100, 25);
    await reader.read(0, 330, 1);
    expect(fetches).toEqual([[300, 350]]);
    await reader.read(0, 399, 1);
    expect(fetches).toEqual([
      [300, 350],
      [350, 400],
    ]);
  });

  it('shares one fetch among concurrent reads of a span', async () => {
    const { data, fetches, reader } = setup();
    const reads = await Promise.all([reader.read(0, 300, 90), reader.read(0, 310, 50), reader.read(0, 350, 40)]);
    expect(reads[1]).toEqual(data.subarray(310, 360));
    expect(fetches).toEqual([[300, 400]]);
  });

  it('refetches once on a digest mismatch, then fails with DigestMismatchError', async () => {
    const ctx = setup();
    ctx.corrupt(1);
    expect(await ctx.reader.read(0, 0, 10)).toEqual(ctx.data.subarray(0, 10));
    expect(ctx.fetches.length).toBe(2);
    ctx.corrupt(2);
    await expect(ctx.reader.read(0, 500, 10)).rejects.toBeInstanceOf(DigestMismatchError);
    expect(ctx.store.has(spanKey(ctx.layer, 5))).toBe(false);
  });

  it('readFile maps a file range onto its layer', async () => {
    const { data, reader } = setup();
    const inode: Inode = {
      ino: 2,
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: 150,
      mtimeSec: 0,
      mtimeNsec: 0,
      rdevMajor: 0,
      rdevMinor: 0,
      nlink: 1,
      data: { layer: 0, offset: 420 },
    };
    expect(await reader.readFile(inode, 100, 4096)).toEqual(data.subarray(520, 570));
    expect((await reader.readFile({ ...inode, size: 0, data: undefined }, 0, 10)).length).toBe(0);
  });

  it('prefetch fetches what the range needs in each span', async () => {
    const { fetches, reader } = setup();
    await reader.prefetch(0, 150, 100);
    expect(fetches.sort((a, b) => a[0] - b[0])).toEqual([
      [100, 200],
      [200, 250],
    ]);
  });

  it('prefetchRanges merges ranges per span: one fetch per span, to the furthest need', async () => {
    const { fetches, reader, store, layer } = setup();
    const result = await reader.prefetchRanges(
      [
        { layer: 0, offset: 110, length: 5 },
        { layer: 0, offset: 560, length: 5 },
        { layer: 0, offset: 130, length: 20 },
        { layer: 0, offset: 505, length: 1 },
      ],
      { concurrency: 8 },
    );
    expect(result).toEqual({ spans: 2, failed: 0 });
    expect(fetches.sort((a, b) => a[0] - b[0])).toEqual([
      [100, 150],
      [500, 575],
    ]);
    expect(store.get(spanKey(layer, 5))?.length).toBe(75);
  });

  it('any read equals the slice of the layer', async () => {
    const { data, reader } = setup(2000, 128, 32);
    await fc.assert(
      fc.asyncProperty(fc.nat(2100), fc.nat(700), async (offset, length) => {
        const got = await reader.read(0, offset, length);
        expect(got).toEqual(data.subarray(Math.min(offset, 2000), Math.min(offset + length, 2000)));
      }),
      { numRuns: 100 },
    );
  });
});

describe('LayerReader live decoders', () => {
  /** plainCodec with an incremental decoder that counts the compressed bytes it is fed. */
  function countingCodec() {
    const counts = { pushed: 0, decoders: 0 };
    const codec: SpanCodec = {
      ...plainCodec,
      createSpanDecoder() {
        counts.decoders++;
        let consumed = 0;
        return {
          get consumed() {
            return consumed;
          },
          get produced() {
            return consumed;
          },
          async push(compressed) {
            await new Promise((resolve) => setTimeout(resolve, 1));
            counts.pushed += compressed.length;
            consumed += compressed.length;
            return Buffer.from(compressed);
          },
          close() {},
        };
      },
    };
    return { codec, counts };
  }

  function liveSetup(liveDecoders?: number, fail?: (start: number) => boolean) {
    const data = Buffer.alloc(1000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 29 + 3) & 0xff;
    const layer = plainLayer(data, 100, 10);
    const { codec, counts } = countingCodec();
    const fetches: Array<[number, number]> = [];
    const fetchRange = async (_d: Digest, start: number, end: number) => {
      fetches.push([start, end]);
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (fail?.(start)) throw new Error('registry down');
      return Buffer.from(data.subarray(start, end));
    };
    const store = new Map<string, Buffer>();
    const cache: SpanCache = {
      get: (key) => store.get(key),
      set: (key, value) => void store.set(key, value),
      delete: (key) => void store.delete(key),
    };
    const reader = new LayerReader(
      { layers: [layer] },
      { fetchRange, cache, codec, ...(liveDecoders !== undefined ? { liveDecoders } : {}) },
    );
    return { data, layer, counts, fetches, reader, store };
  }

  it('extending a span piece by piece feeds each compressed byte to one decoder once', async () => {
    const { data, counts, reader } = liveSetup();
    for (let at = 200; at < 300; at += 10) expect(await reader.read(0, at, 10)).toEqual(data.subarray(at, at + 10));
    expect(counts).toEqual({ pushed: 100, decoders: 1 });
  });

  it('concurrent, overlapping extensions of one span: right bytes, each byte fed once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(99), fc.nat(60)), { minLength: 1, maxLength: 12 }), async (reads) => {
        const { data, counts, reader } = liveSetup();
        const got = await Promise.all(
          reads.map(([offset, length]) => reader.read(0, 300 + offset, length).then((bytes) => ({ bytes, offset, length }))),
        );
        for (const { bytes, offset, length } of got)
          expect(bytes).toEqual(data.subarray(300 + offset, Math.min(300 + offset + length, 1000)));
        // A zero-length read needs no bytes, so only reads with a length start a decoder.
        expect(counts.decoders).toBeGreaterThanOrEqual(reads.some(([, length]) => length > 0) ? 1 : 0);
        if (reads.every(([, length]) => length === 0)) expect(counts.pushed).toBe(0);
        expect(counts.pushed).toBeLessThanOrEqual(400);
      }),
      { numRuns: 40 },
    );
  });

  it('an evicted decoder is replaced by a decode from the checkpoint, without refetching', async () => {
    const { data, counts, fetches, reader } = liveSetup(1);
    await reader.read(0, 100, 10);
    await reader.read(0, 200, 10); // evicts span 1's decoder
    expect(await reader.read(0, 120, 30)).toEqual(data.subarray(120, 150));
    expect(counts.decoders).toBe(3);
    expect(fetches).toEqual([
      [100, 110],
      [200, 210],
      [110, 150],
    ]);
  });

  it('liveDecoders 0 still reads right (decoding from the checkpoint each time)', async () => {
    const { data, counts, reader } = liveSetup(0);
    for (let at = 0; at < 50; at += 10) expect(await reader.read(0, at, 10)).toEqual(data.subarray(at, at + 10));
    expect(counts.decoders).toBe(5);
    expect(counts.pushed).toBe(10 + 20 + 30 + 40 + 50);
  });

  it('a failed extension fails its read; the next read of the span starts a fresh decoder', async () => {
    let failing = true;
    const { data, counts, reader } = liveSetup(undefined, (start) => failing && start >= 410);
    expect(await reader.read(0, 400, 10)).toEqual(data.subarray(400, 410));
    await expect(reader.read(0, 400, 40)).rejects.toThrow('registry down');
    failing = false;
    expect(await reader.read(0, 400, 60)).toEqual(data.subarray(400, 460));
    expect(counts.decoders).toBe(2);
  });

  it('flush waits for cache stores, which never hold up the read', async () => {
    const data = Buffer.alloc(300, 5);
    const layer = plainLayer(data, 100, 25);
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const stored: string[] = [];
    const cache: SpanCache = {
      get: () => undefined,
      set: async (key) => {
        await gate;
        stored.push(key);
      },
    };
    const reader = new LayerReader(
      { layers: [layer] },
      { fetchRange: async (_d, start, end) => Buffer.from(data.subarray(start, end)), cache, codec: plainCodec },
    );
    expect((await reader.read(0, 0, 10)).length).toBe(10);
    expect(stored).toEqual([]);
    const flushed = reader.flush();
    release();
    await flushed;
    expect(stored).toEqual([spanKey(layer, 0), compressedKey(layer, 0)]);
  });
});
