import { createHash } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { ArchiveLayer } from '@clip/archive-format';
import { DigestMismatchError } from '@clip/shared';
import { deflateInputAt, prefixBitLength } from '../src/zran/deflate-prefix.js';
import { compressedRangeFor, decompressSpan, spanIndexAt, verifySpanPieces } from '../src/zran/decompress-span.js';

const text = Buffer.from(Array.from({ length: 4000 }, (_, i) => `line ${i} of some text ${i % 7}\n`).join(''));

/** `stream` re-positioned to start at bit k of its first byte (the low k bits are junk). */
function shiftBits(stream: Uint8Array, k: number, junk: number): Uint8Array {
  const out = new Uint8Array(stream.length + 1);
  for (let i = 0; i < stream.length; i++) {
    out[i]! |= (stream[i]! << k) & 0xff;
    out[i + 1]! |= stream[i]! >> (8 - k);
  }
  out[0] = (out[0]! & ~((1 << k) - 1)) | (junk & ((1 << k) - 1));
  return out;
}

const sha = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}` as const;

describe('deflate bit-offset prefix', () => {
  it('has length ≡ k (mod 8) for every residue', () => {
    for (let k = 0; k < 8; k++) expect(prefixBitLength(k) % 8).toBe(k);
  });

  for (const level of [1, 6, 9]) {
    it(`resumes a level-${level} stream starting at every bit residue`, () => {
      const stream = deflateRawSync(text, { level });
      for (let k = 0; k < 8; k++) {
        const input = deflateInputAt(shiftBits(stream, k, 0b10110101), k);
        expect(inflateRawSync(input).equals(text)).toBe(true);
      }
    });
  }

  it('the window is used as the dictionary: back-references into it resolve', () => {
    const window = text.subarray(0, 32768);
    const rest = text.subarray(32768, 60000);
    const stream = deflateRawSync(rest, { dictionary: window, level: 9 });
    for (let k = 0; k < 8; k++) {
      const out = inflateRawSync(deflateInputAt(shiftBits(stream, k, 0xff), k), { dictionary: window });
      expect(out.equals(rest)).toBe(true);
    }
  });
});

describe('span navigation and verification', () => {
  const blob = Buffer.from(text.subarray(0, 30_000));
  const layer: ArchiveLayer = {
    digest: sha(blob),
    diffId: sha(blob),
    mediaType: 'x',
    compression: 'none',
    compressedSize: blob.length,
    uncompressedSize: blob.length,
    spans: [0, 10_000, 20_000].map((start) => ({
      checkpoint: { uncompressedOffset: start, compressedBitOffset: start * 8, window: new Uint8Array(0), kind: 'plain' as const },
      uncompressedEnd: start + 10_000,
      pieces: [4000, 8000, 10_000].map((end) => ({
        compressedEnd: start + end,
        uncompressedEnd: start + end,
        digest: sha(blob.subarray(start + end - (end === 4000 ? 4000 : end === 8000 ? 4000 : 2000), start + end)),
      })),
    })),
  };

  it('spanIndexAt finds the enclosing span', () => {
    expect(spanIndexAt(layer, 0)).toBe(0);
    expect(spanIndexAt(layer, 9_999)).toBe(0);
    expect(spanIndexAt(layer, 10_000)).toBe(1);
    expect(spanIndexAt(layer, 29_999)).toBe(2);
    expect(() => spanIndexAt(layer, 30_000)).toThrow();
  });

  it('compressedRangeFor fetches whole pieces up to the one covering the end', () => {
    expect(compressedRangeFor(layer, 1, 10_001)).toEqual({ start: 10_000, end: 14_000, pieceCount: 1 });
    expect(compressedRangeFor(layer, 1, 14_000)).toEqual({ start: 10_000, end: 14_000, pieceCount: 1 });
    expect(compressedRangeFor(layer, 1, 14_001)).toEqual({ start: 10_000, end: 18_000, pieceCount: 2 });
    expect(compressedRangeFor(layer, 1, 99_999)).toEqual({ start: 10_000, end: 20_000, pieceCount: 3 });
  });

  it('verifySpanPieces names layer, span and piece on mismatch', async () => {
    verifySpanPieces(layer, 1, blob.subarray(10_000, 18_000));
    const bad = Buffer.from(blob.subarray(10_000, 18_000));
    bad[5000] = bad[5000]! ^ 1;
    expect(() => verifySpanPieces(layer, 1, bad)).toThrow(DigestMismatchError);
    expect(() => verifySpanPieces(layer, 1, bad)).toThrow(/span 1 piece 1/);
    expect(() => verifySpanPieces(layer, 1, blob.subarray(10_000, 15_000))).toThrow(/piece 1 \(only 1000 of 4000 bytes/);
    expect((await decompressSpan(layer, 2, blob.subarray(20_000, 24_000))).equals(blob.subarray(20_000, 24_000))).toBe(true);
  });
});
