// An uncompressed layer's archive model, for read-path tests that serve a layer from memory:
// spans of `spanSize` bytes, pieces of `pieceSize`, each with its sha256.
import { createHash } from 'node:crypto';
import type { ArchiveLayer, Span } from '@clip/archive-format';
import type { Digest } from '@clip/shared';

const sha = (data: Uint8Array): Digest => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export function plainLayer(data: Buffer, spanSize: number, pieceSize: number): ArchiveLayer {
  const spans: Span[] = [];
  for (let start = 0; start < data.length; start += spanSize) {
    const end = Math.min(start + spanSize, data.length);
    const pieces = [];
    for (let p = start; p < end; p += pieceSize) {
      const pe = Math.min(p + pieceSize, end);
      pieces.push({ compressedEnd: pe, uncompressedEnd: pe, digest: sha(data.subarray(p, pe)) });
    }
    spans.push({
      checkpoint: { uncompressedOffset: start, compressedBitOffset: start * 8, window: new Uint8Array(), kind: 'plain' },
      uncompressedEnd: end,
      pieces,
    });
  }
  return {
    digest: sha(data),
    mediaType: 'application/vnd.oci.image.layer.v1.tar',
    compression: 'none',
    compressedSize: data.length,
    uncompressedSize: data.length,
    diffId: sha(data),
    spans,
  };
}
