import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decompressSpan } from '@clip/read-engine';
import { sha256Digest } from '@clip/shared';
import { encodeArchive, openArchive } from '@clip/archive-format';
import { nativeGzipUnavailable, type GzipInflaterKind } from '../src/scan/gzip-inflater.js';
import { gzipCli, gzipSync, gzipWithFlushes, layerData, readRange, scanBlob } from './scan-helpers.js';

const SPAN = 64 * 1024;
const PIECE = 8 * 1024;

interface Case {
  name: string;
  data: Buffer;
  blob: () => Promise<Buffer> | Buffer;
}

const text = layerData(1, 1_500_000);
const mixed = layerData(2, 2_000_000);
const cases: Case[] = [
  { name: 'gzip -1 text', data: text, blob: () => gzipCli(text, 1) },
  { name: 'gzip -9 text', data: text, blob: () => gzipCli(text, 9) },
  { name: 'gzip -6 mixed', data: mixed, blob: () => gzipCli(mixed, 6) },
  { name: 'zlib level 1 mixed', data: mixed, blob: () => gzipSync(mixed, { level: 1 }) },
  {
    name: 'zlib level 0 (stored blocks)',
    data: mixed.subarray(0, 600_000),
    blob: () => gzipSync(mixed.subarray(0, 600_000), { level: 0 }),
  },
  { name: 'zlib sync flushes (empty stored blocks)', data: text, blob: () => gzipWithFlushes(text, 6, 5_000) },
  { name: 'zlib full flushes level 9', data: mixed, blob: () => gzipWithFlushes(mixed, 9, 70_001, true) },
  {
    name: 'multi-member (cat a.gz b.gz c.gz)',
    data: Buffer.concat([text.subarray(0, 300_000), Buffer.alloc(0), mixed.subarray(0, 500_000)]),
    blob: () => Buffer.concat([gzipCli(text.subarray(0, 300_000), 6), gzipCli(Buffer.alloc(0), 6), gzipCli(mixed.subarray(0, 500_000), 1)]),
  },
];

// Both inflaters run every test; the native one only when its addon is built.
const nativeMissing = nativeGzipUnavailable();
const inflaters: GzipInflaterKind[] = ['native', 'portable'];

for (const inflater of inflaters)
  describe.skipIf(inflater === 'native' && nativeMissing !== undefined)(
    `scanCompressedLayer gzip (${inflater} inflater) + decompressSpan`,
    () => {
      const residues = new Set<number>();

      for (const c of cases) {
        it(`${c.name}: full output, digests, every span and every piece prefix`, async () => {
          const blob = await c.blob();
          const { scan, layer, output } = await scanBlob(blob, 'gzip', {
            spanSize: SPAN,
            pieceSize: PIECE,
            chunkSize: 50_000,
            gzipInflater: inflater,
          });
          expect(output.equals(c.data)).toBe(true);
          expect(scan.uncompressedSize).toBe(c.data.length);
          expect(scan.compressedSize).toBe(blob.length);
          expect(scan.digest).toBe(sha256Digest(blob));
          expect(scan.diffId).toBe(sha256Digest(c.data));
          expect(scan.spans.length).toBeGreaterThan(1);
          let expectedStart = 0;
          for (const [si, span] of scan.spans.entries()) {
            const cp = span.checkpoint;
            expect(cp.uncompressedOffset).toBe(expectedStart);
            expectedStart = span.uncompressedEnd;
            if (cp.kind === 'deflate-block') residues.add(cp.compressedBitOffset % 8);
            else expect(cp.compressedBitOffset % 8).toBe(0);
            const start = Math.floor(cp.compressedBitOffset / 8);
            const expected = c.data.subarray(cp.uncompressedOffset, span.uncompressedEnd);
            for (const [pi, piece] of span.pieces.entries()) {
              const got = await decompressSpan(layer, si, blob.subarray(start, piece.compressedEnd));
              expect(got.length).toBeGreaterThanOrEqual(piece.uncompressedEnd - cp.uncompressedOffset);
              expect(got.equals(expected.subarray(0, got.length))).toBe(true);
              if (pi === span.pieces.length - 1) expect(got.length).toBe(expected.length);
            }
          }
          expect(expectedStart).toBe(c.data.length);
        });
      }

      it('checkpoints covered every bit residue 0..7', () => {
        expect([...residues].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      });

      it('random reads through compressedRangeFor equal the decompressed layer', async () => {
        const data = layerData(3, 1_200_000);
        for (const level of [1, 6, 9]) {
          const blob = gzipCli(data, level);
          const { layer } = await scanBlob(blob, 'gzip', { spanSize: 100_000, pieceSize: 16_384, gzipInflater: inflater });
          await fc.assert(
            fc.asyncProperty(fc.nat({ max: data.length - 1 }), fc.integer({ min: 1, max: 300_000 }), async (offset, length) => {
              const len = Math.min(length, data.length - offset);
              const got = await readRange(layer, blob, offset, len);
              expect(got.equals(data.subarray(offset, offset + len))).toBe(true);
            }),
            { numRuns: 60 },
          );
        }
      });

      it('spans survive encodeArchive/openArchive: reads through the decoded layer (lazy windows) are exact', async () => {
        const data = layerData(4, 800_000);
        const blob = gzipCli(data, 6);
        const { layer } = await scanBlob(blob, 'gzip', { spanSize: 50_000, pieceSize: 10_000, gzipInflater: inflater });
        const root = {
          ino: 1,
          type: 'directory' as const,
          mode: 0o755,
          uid: 0,
          gid: 0,
          size: 0,
          mtimeSec: 0,
          mtimeNsec: 0,
          rdevMajor: 0,
          rdevMinor: 0,
          nlink: 2,
        };
        const archive = openArchive(
          encodeArchive({
            metadata: { sourceRef: 't', imageConfig: {}, createdBy: 't' },
            layers: [layer],
            inodes: [root],
            entries: [{ path: '/', ino: 1 }],
          }),
        );
        const decoded = archive.layers[0]!;
        expect(decoded.spans.length).toBe(layer.spans.length);
        for (const [offset, length] of [
          [0, 10],
          [49_990, 20],
          [123_457, 300_000],
          [799_000, 1000],
        ] as const) {
          expect((await readRange(decoded, blob, offset, length)).equals(data.subarray(offset, offset + length))).toBe(true);
        }
      });

      it('rejects corrupt and truncated gzip with LayerFormatError', async () => {
        const blob = gzipCli(text.subarray(0, 200_000), 6);
        await expect(
          scanBlob(blob.subarray(0, blob.length - 100), 'gzip', { spanSize: SPAN, gzipInflater: inflater }),
        ).rejects.toMatchObject({ code: 'CLIP_E_LAYER_FORMAT' });
        const bad = Buffer.from(blob);
        bad[0] = 0;
        await expect(scanBlob(bad, 'gzip', { spanSize: SPAN, gzipInflater: inflater })).rejects.toMatchObject({
          code: 'CLIP_E_LAYER_FORMAT',
        });
      });
    },
  );
