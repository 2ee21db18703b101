// Piece hashing split across threads (worker scans of gzip layers): the worker's SpanRecorder
// records piece ranges (PieceCuts) and the main thread's PieceHasher hashes the compressed
// bytes it gets back. The digests must equal those the recorder computes itself, with small
// pieces, mid-byte checkpoints (a shared byte), multi-member streams and odd chunk sizes.
import { describe, expect, it } from 'vitest';
import { PieceHasher } from '../src/pipeline/piece-hasher.js';
import { scanCompressedLayer } from '../src/scan/scan-compressed-layer.js';
import type { PieceCuts } from '../src/scan/span-recorder.js';
import { chunked, gzipCli, gzipWithFlushes, layerData } from './scan-helpers.js';

describe('PieceHasher with PieceCuts', () => {
  const data = layerData(7, 1_500_000);
  const cases: Array<[string, () => Buffer | Promise<Buffer>]> = [
    ['gzip -6', () => gzipCli(data, 6)],
    ['sync flushes', () => gzipWithFlushes(data, 1, 20_011)],
    [
      'multi-member with an empty member',
      () => Buffer.concat([gzipCli(data.subarray(0, 600_000), 6), gzipCli(Buffer.alloc(0), 1), gzipCli(data.subarray(600_000), 9)]),
    ],
  ];
  for (const [name, make] of cases) {
    it(`${name}: the same spans and digests as hashing in the recorder`, async () => {
      const blob = await make();
      const options = { spanSize: 64 * 1024, pieceSize: 4099 };
      const expected = await scanCompressedLayer(chunked(blob, 65_536), 'gzip', options, () => {});
      const cuts: PieceCuts = { ranges: [], kept: [] };
      const scan = await scanCompressedLayer(chunked(blob, 65_536), 'gzip', { ...options, pieceCuts: cuts }, () => {});
      expect(scan.spans.flatMap((span) => span.pieces).every((piece) => piece.digest === `sha256:${'0'.repeat(64)}`)).toBe(true);
      const released: Uint8Array[] = [];
      const hasher = new PieceHasher((bytes) => released.push(bytes));
      // Bytes in odd-sized chunks, each followed by the ranges whose bytes have all arrived.
      const ranges = cuts.ranges;
      let next = 0;
      for (let at = 0; at < blob.length; at += 77_777) {
        const bytes = blob.subarray(at, Math.min(blob.length, at + 77_777));
        hasher.bytes(bytes);
        const ready: number[] = [];
        while (next < ranges.length && ranges[next + 1]! <= at + bytes.length) ready.push(ranges[next]!, ranges[next + 1]!), (next += 2);
        hasher.cuts(ready);
      }
      expect(next).toBe(ranges.length);
      hasher.finish(scan.spans, cuts.kept);
      expect(scan).toEqual(expected);
      expect(released.reduce((sum, bytes) => sum + bytes.length, 0)).toBe(blob.length);
      // Mid-byte checkpoints happen here: some piece starts one byte before the previous one ends.
      const shared = scan.spans.some((span) => span.checkpoint.compressedBitOffset % 8 !== 0);
      if (name !== 'multi-member with an empty member') expect(shared).toBe(true);
    });
  }

  it('refuses ranges beyond the bytes received and digests it does not have', () => {
    const hasher = new PieceHasher(() => {});
    hasher.bytes(new Uint8Array(10));
    expect(() => hasher.cuts([0, 11])).toThrow(/internal/);
    expect(() =>
      hasher.finish(
        [
          {
            checkpoint: { uncompressedOffset: 0, compressedBitOffset: 0, window: new Uint8Array(0), kind: 'gzip-member' },
            uncompressedEnd: 1,
            pieces: [{ compressedEnd: 10, uncompressedEnd: 1, digest: `sha256:${'0'.repeat(64)}` }],
          },
        ],
        [0],
      ),
    ).toThrow(/internal/);
  });
});
