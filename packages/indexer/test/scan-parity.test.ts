// The native and portable gzip inflaters feed one checkpoint policy: their LayerScans (spans,
// checkpoint bit offsets, windows, pieces, digests) and outputs must be identical.
import { describe, expect, it } from 'vitest';
import { nativeGzipUnavailable } from '../src/scan/gzip-inflater.js';
import type { LayerScan } from '../src/scan/scan-compressed-layer.js';
import { gzipCli, gzipSync, gzipWithFlushes, layerData, scanBlob } from './scan-helpers.js';

const nativeMissing = nativeGzipUnavailable();
const text = layerData(11, 900_000);
const mixed = layerData(12, 1_100_000);

const blobs: Array<[string, () => Buffer | Promise<Buffer>]> = [
  ['gzip -1', () => gzipCli(mixed, 1)],
  ['gzip -6', () => gzipCli(mixed, 6)],
  ['gzip -9', () => gzipCli(text, 9)],
  ['stored blocks (level 0)', () => gzipSync(mixed.subarray(0, 400_000), { level: 0 })],
  ['sync flushes', () => gzipWithFlushes(text, 6, 3_000)],
  ['full flushes', () => gzipWithFlushes(mixed, 1, 40_001, true)],
  [
    'multi-member with an empty member',
    () =>
      Buffer.concat([gzipCli(Buffer.alloc(0), 6), gzipCli(text.subarray(0, 200_000), 9), gzipCli(Buffer.alloc(0), 1), gzipCli(mixed, 6)]),
  ],
];

/** The scan with windows as base64: the same deep comparison, without element-wise typed-array walks. */
function comparable(scan: LayerScan): unknown {
  return {
    ...scan,
    spans: scan.spans.map((span) => ({
      ...span,
      checkpoint: { ...span.checkpoint, window: Buffer.from(span.checkpoint.window).toString('base64') },
    })),
  };
}

describe.skipIf(nativeMissing !== undefined)(`native vs portable gzip scan${nativeMissing ? ` (skipped: ${nativeMissing})` : ''}`, () => {
  for (const [name, make] of blobs) {
    it(`${name}: identical scans at every chunking`, async () => {
      const blob = await make();
      for (const chunkSize of [997, 65_536, 1 << 22]) {
        const options = { spanSize: 48 * 1024, pieceSize: 7_000, chunkSize };
        const native = await scanBlob(blob, 'gzip', { ...options, gzipInflater: 'native' });
        const portable = await scanBlob(blob, 'gzip', { ...options, gzipInflater: 'portable' });
        expect(native.scan.spans.length).toBeGreaterThan(3);
        expect(comparable(native.scan)).toEqual(comparable(portable.scan));
        expect(native.output.equals(portable.output)).toBe(true);
      }
    });
  }

  it('1-byte chunks: identical scans', async () => {
    const blob = gzipCli(mixed.subarray(0, 150_000), 6);
    const options = { spanSize: 16 * 1024, pieceSize: 3_000, chunkSize: 1 };
    const native = await scanBlob(blob, 'gzip', { ...options, gzipInflater: 'native' });
    const portable = await scanBlob(blob, 'gzip', { ...options, gzipInflater: 'portable' });
    expect(comparable(native.scan)).toEqual(comparable(portable.scan));
  });

  it('both reject truncated, corrupt and trailing-garbage input with LayerFormatError', async () => {
    const blob = gzipCli(text.subarray(0, 300_000), 6);
    const corrupt = Buffer.from(blob);
    corrupt[Math.floor(blob.length / 2)]! ^= 0x5a;
    const badTrailer = Buffer.from(blob);
    badTrailer[blob.length - 6]! ^= 1; // CRC32
    const inputs = [
      blob.subarray(0, blob.length - 7),
      blob.subarray(0, 5),
      corrupt,
      badTrailer,
      Buffer.concat([blob, Buffer.from('garbage!')]),
    ];
    for (const input of inputs) {
      for (const gzipInflater of ['native', 'portable'] as const) {
        await expect(scanBlob(input, 'gzip', { spanSize: 64 * 1024, gzipInflater })).rejects.toMatchObject({ code: 'CLIP_E_LAYER_FORMAT' });
      }
    }
  });
});
