// Checkpoints placed where a profile's reads start: the block boundaries are listed with the
// scan's own inflater events, a scan given some of them puts a checkpoint exactly there, reads
// through those spans are exact, and the placement only adds checkpoints that save bytes.
import { describe, expect, it } from 'vitest';
import { listGzipBoundaries } from '../src/scan/gzip-boundaries.js';
import { createGzipInflater, type GzipInflaterKind, nativeGzipUnavailable } from '../src/scan/gzip-inflater.js';
import { placeCheckpoints } from '../src/profile-checkpoints.js';
import { scanCompressedLayer } from '../src/scan/scan-compressed-layer.js';
import { chunked, gzipCli, gzipWithFlushes, layerData, readRange } from './scan-helpers.js';
import type { ArchiveLayer } from '@clip/archive-format';

const data = layerData(11, 3_000_000);
const SPAN = 1 << 20;
const PIECE = 32 * 1024;

async function scanWith(
  blob: Buffer,
  inflater: GzipInflaterKind,
  extraCheckpoints: number[],
  extraPieceEnds: number[] = [],
): Promise<ArchiveLayer> {
  const scan = await scanCompressedLayer(
    chunked(blob, 40_000),
    'gzip',
    { spanSize: SPAN, pieceSize: PIECE, gzipInflater: inflater, extraCheckpoints, extraPieceEnds },
    () => {},
  );
  return {
    digest: scan.digest,
    diffId: scan.diffId,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    compression: 'gzip',
    compressedSize: scan.compressedSize,
    uncompressedSize: scan.uncompressedSize,
    spans: scan.spans,
  };
}

const nativeMissing = nativeGzipUnavailable();
for (const inflater of ['native', 'portable'] as const)
  describe.skipIf(inflater === 'native' && nativeMissing !== undefined)(`profile checkpoints (${inflater} inflater)`, () => {
    for (const [name, blob] of [
      ['gzip -6', () => gzipCli(data, 6)],
      ['zlib sync flushes', () => gzipWithFlushes(data, 6, 50_000)],
    ] as const) {
      it(`${name}: a scan puts a checkpoint at exactly the listed boundaries, and reads stay exact`, async () => {
        const bytes = await blob();
        const blocks = await listGzipBoundaries(chunked(bytes, 70_000), await createGzipInflater(inflater));
        expect(blocks.uncompressedSize).toBe(data.length);
        expect(blocks.compressedSize).toBe(bytes.length);
        expect(blocks.uncompressed.length).toBeGreaterThan(20);
        // Every third boundary past the first MiB's, and one that is not a boundary (ignored).
        const wanted = blocks.uncompressed.filter((u, i) => i % 3 === 1 && u > 0);
        const layer = await scanWith(
          bytes,
          inflater,
          [...wanted, wanted[0]! + 1].sort((a, b) => a - b),
        );
        const starts = new Set(layer.spans.map((span) => span.checkpoint.uncompressedOffset));
        for (const u of wanted) expect(starts.has(u)).toBe(true);
        expect(starts.has(wanted[0]! + 1)).toBe(false);
        const plain = await scanWith(bytes, inflater, []);
        // Piece ends at listed boundaries: a piece ends exactly there and guarantees the boundary's output.
        const ends = blocks.compressed.filter((_, i) => i % 4 === 2);
        const cut = await scanWith(bytes, inflater, [], ends);
        const pieces = cut.spans.flatMap((span) => span.pieces);
        for (const [i, end] of ends.entries()) {
          const piece = pieces.find((p) => p.compressedEnd === end);
          expect(piece, `piece ending at ${end}`).toBeDefined();
          expect(piece!.uncompressedEnd).toBe(blocks.uncompressed[blocks.compressed.indexOf(end)]);
          if (i < 3) {
            const u = piece!.uncompressedEnd;
            expect((await readRange(cut, bytes, u - 500, 500)).equals(data.subarray(u - 500, u))).toBe(true);
          }
        }
        expect(layer.spans.length).toBeGreaterThan(plain.spans.length);
        for (const [offset, length] of [
          [0, 100],
          [wanted[2]!, 5000],
          [wanted[5]! - 10, 300_000],
          [data.length - 1000, 1000],
        ] as const) {
          expect((await readRange(layer, bytes, offset, length)).equals(data.subarray(offset, offset + length))).toBe(true);
        }
      });
    }
  });

describe('placeCheckpoints', () => {
  // Blocks every 10 000 uncompressed / 4 000 compressed bytes; one checkpoint at 0.
  const blocks = {
    uncompressed: Array.from({ length: 100 }, (_, i) => i * 10_000),
    compressed: Array.from({ length: 100 }, (_, i) => i * 4_000),
    uncompressedSize: 1_000_000,
    compressedSize: 400_000,
  };
  const existing = { uncompressed: [0], compressed: [0] };

  it('adds the boundary before a read far from the checkpoint, not one close to it', () => {
    expect(placeCheckpoints(blocks, [[15_000, 16_000]], existing, { gap: 32_768 }).checkpoints).toEqual([]);
    expect(placeCheckpoints(blocks, [[505_000, 506_000]], existing, { gap: 32_768 })).toEqual({
      checkpoints: [500_000],
      // The read's fetch ends at the block boundary after it.
      pieceEnds: [204_000],
    });
  });

  it('counts bytes an earlier read fetches anyway, and never duplicates an existing checkpoint', () => {
    // The second read starts where the first one's fetch already reaches: no checkpoint for it.
    expect(
      placeCheckpoints(
        blocks,
        [
          [505_000, 700_000],
          [701_000, 702_000],
        ],
        existing,
        { gap: 32_768 },
      ).checkpoints,
    ).toEqual([500_000]);
    expect(
      placeCheckpoints(blocks, [[505_000, 506_000]], { uncompressed: [0, 500_000], compressed: [0, 200_000] }, { gap: 32_768 }).checkpoints,
    ).toEqual([]);
  });
});
