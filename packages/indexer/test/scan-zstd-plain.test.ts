import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sha256Digest } from '@clip/shared';
import { decompressSpan, ZstdFrameSplitter } from '@clip/read-engine';
import { layerData, readRange, scanBlob, zstdCli } from './scan-helpers.js';

const SPAN = 64 * 1024;
const PIECE = 8 * 1024;

/** Every span decodes from its start; every piece prefix gives at least its lower bound, correctly. */
async function checkSpans(blob: Buffer, data: Buffer, compression: 'zstd' | 'none', spanSize = SPAN): Promise<number> {
  const { scan, layer, output } = await scanBlob(blob, compression, { spanSize, pieceSize: PIECE, chunkSize: 40_000 });
  expect(output.equals(data)).toBe(true);
  expect(scan.digest).toBe(sha256Digest(blob));
  expect(scan.diffId).toBe(sha256Digest(data));
  expect(scan.compressedSize).toBe(blob.length);
  expect(scan.uncompressedSize).toBe(data.length);
  let start = 0;
  for (const [si, span] of scan.spans.entries()) {
    const cp = span.checkpoint;
    expect(cp.uncompressedOffset).toBe(start);
    expect(cp.kind).toBe(compression === 'zstd' ? 'zstd-frame' : 'plain');
    start = span.uncompressedEnd;
    const from = cp.compressedBitOffset / 8;
    for (const [pi, piece] of span.pieces.entries()) {
      const got = await decompressSpan(layer, si, blob.subarray(from, piece.compressedEnd));
      expect(got.length).toBeGreaterThanOrEqual(piece.uncompressedEnd - cp.uncompressedOffset);
      expect(got.equals(data.subarray(cp.uncompressedOffset, cp.uncompressedOffset + got.length))).toBe(true);
      if (pi === span.pieces.length - 1) expect(got.length).toBe(span.uncompressedEnd - cp.uncompressedOffset);
    }
  }
  expect(start).toBe(data.length);
  return scan.spans.length;
}

describe('scanCompressedLayer zstd', () => {
  const data = layerData(7, 900_000);

  it('single-frame layer: one span, fetched whole', async () => {
    expect(await checkSpans(zstdCli(data), data, 'zstd')).toBe(1);
  });

  it('multi-frame layer (concatenated zstd outputs, a skippable frame): a checkpoint at frame starts', async () => {
    const parts = [0, 150_000, 300_000, 420_000, 600_000, 900_000];
    const frames: Buffer[] = [];
    for (let i = 0; i + 1 < parts.length; i++) {
      frames.push(zstdCli(data.subarray(parts[i], parts[i + 1]), [i % 2 ? '-19' : '-1', '--no-check']));
      if (i === 2) frames.push(Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]));
    }
    frames.push(zstdCli(Buffer.alloc(0)));
    const spans = await checkSpans(Buffer.concat(frames), data, 'zstd');
    expect(spans).toBe(5);
  });

  it('random reads equal the decompressed layer', async () => {
    const frames: Buffer[] = [];
    for (let at = 0; at < data.length; at += 50_000) frames.push(zstdCli(data.subarray(at, at + 50_000)));
    const blob = Buffer.concat(frames);
    const { layer } = await scanBlob(blob, 'zstd', { spanSize: 100_000, pieceSize: 16_384 });
    expect(layer.spans.length).toBeGreaterThan(4);
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: data.length - 1 }), fc.integer({ min: 1, max: 250_000 }), async (offset, length) => {
        const len = Math.min(length, data.length - offset);
        expect((await readRange(layer, blob, offset, len)).equals(data.subarray(offset, offset + len))).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it('frame splitter finds the same boundaries whatever the chunking', () => {
    const frames = [
      zstdCli(data.subarray(0, 1000)),
      Buffer.from([0x5f, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]),
      zstdCli(Buffer.alloc(0)),
      zstdCli(data.subarray(0, 70_000), ['--no-check']),
    ];
    const blob = Buffer.concat(frames);
    const expected: number[] = [];
    frames.reduce((at, f) => (expected.push(at + f.length), at + f.length), 0);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 40 }), (cuts) => {
        const splitter = new ZstdFrameSplitter();
        const found: number[] = [];
        let at = 0;
        for (const size of [...cuts, blob.length]) {
          const chunk = blob.subarray(at, at + size);
          for (const end of splitter.push(chunk)) found.push(at + end.end);
          at += chunk.length;
          if (at >= blob.length) break;
        }
        expect(found).toEqual(expected);
        expect(splitter.atFrameBoundary).toBe(true);
      }),
    );
  });

  it('rejects truncated and corrupt zstd with LayerFormatError', async () => {
    const blob = zstdCli(data.subarray(0, 100_000));
    await expect(scanBlob(blob.subarray(0, blob.length - 10), 'zstd', { spanSize: SPAN })).rejects.toMatchObject({
      code: 'CLIP_E_LAYER_FORMAT',
    });
    await expect(scanBlob(Buffer.from('not zstd at all'), 'zstd', { spanSize: SPAN })).rejects.toMatchObject({
      code: 'CLIP_E_LAYER_FORMAT',
    });
  });
});

describe('scanCompressedLayer uncompressed', () => {
  it('spans of spanSize, pieces verify, reads equal the data', async () => {
    const data = layerData(9, 300_000);
    expect(await checkSpans(data, data, 'none', 50_000)).toBe(6);
    const { layer } = await scanBlob(data, 'none', { spanSize: 50_000, pieceSize: 7_000 });
    for (const [offset, length] of [
      [0, 1],
      [49_999, 2],
      [123_456, 100_000],
      [299_999, 1],
    ] as const) {
      expect((await readRange(layer, data, offset, length)).equals(data.subarray(offset, offset + length))).toBe(true);
    }
  });
});

describe('scanCompressedLayer edge cases', () => {
  it('empty layers scan to one empty span in every compression', async () => {
    const empty = Buffer.alloc(0);
    const { gzipCli } = await import('./scan-helpers.js');
    for (const [compression, blob] of [
      ['gzip', gzipCli(empty, 6)],
      ['zstd', zstdCli(empty)],
      ['none', empty],
    ] as const) {
      const { scan, output } = await scanBlob(blob, compression, { spanSize: 1000 });
      expect(output.length).toBe(0);
      expect(scan.uncompressedSize).toBe(0);
      expect(scan.spans.length).toBe(1);
      expect(scan.spans[0]!.uncompressedEnd).toBe(0);
      expect(scan.spans[0]!.pieces.at(-1)!.compressedEnd).toBe(blob.length);
    }
  });

  it('tiny input chunks (1 byte) give the same spans as large ones', async () => {
    const { gzipCli } = await import('./scan-helpers.js');
    const data = layerData(11, 200_000);
    const blob = gzipCli(data, 6);
    const big = await scanBlob(blob, 'gzip', { spanSize: 20_000, pieceSize: 3000, chunkSize: 1 << 20 });
    const small = await scanBlob(blob, 'gzip', { spanSize: 20_000, pieceSize: 3000, chunkSize: 1 });
    expect(small.output.equals(data)).toBe(true);
    expect(small.scan.spans).toEqual(big.scan.spans);
  });
});
