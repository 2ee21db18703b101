// Helpers for the scanner tests: deterministic layer data, compression with real tools,
// and a reference reader that goes through the same calls the mounter makes.
import { execFileSync } from 'node:child_process';
import { constants, createGzip, deflateRawSync, gzipSync } from 'node:zlib';
import type { ArchiveLayer, LayerCompression } from '@clip/archive-format';
import { compressedRangeFor, decompressSpan, spanIndexAt, verifySpanPieces } from '@clip/read-engine';
import type { GzipInflaterKind } from '../src/scan/gzip-inflater.js';
import { scanCompressedLayer, type LayerScan } from '../src/scan/scan-compressed-layer.js';

/** xorshift32: deterministic bytes without depending on Math.random. */
export function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const WORDS =
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there one all we their def return import class self none true false usr lib bin etc'.split(
    ' ',
  );

/** A mix of text, random bytes, zero runs and repeats, the kinds of content tar layers hold. */
export function layerData(seed: number, size: number): Buffer {
  const next = rng(seed);
  const parts: Buffer[] = [];
  let total = 0;
  while (total < size) {
    const kind = next() % 4;
    const length = 1 + (next() % 150_000);
    let part: Buffer;
    if (kind === 0) {
      const words: string[] = [];
      let n = 0;
      while (n < length) {
        const w = WORDS[next() % WORDS.length]!;
        words.push(next() % 11 === 0 ? `${w}\n` : w);
        n += w.length + 1;
      }
      part = Buffer.from(words.join(' '));
    } else if (kind === 1) {
      part = Buffer.alloc(length);
      for (let i = 0; i < length; i++) part[i] = next() & 0xff;
    } else if (kind === 2) {
      part = Buffer.alloc(length, next() % 3 === 0 ? 0 : 0x41);
    } else {
      const source = parts[next() % Math.max(parts.length, 1)] ?? Buffer.from('seed');
      part = source.subarray(0, length);
    }
    parts.push(part);
    total += part.length;
  }
  return Buffer.concat(parts).subarray(0, size);
}

export function gzipCli(data: Buffer, level: number): Buffer {
  return execFileSync('gzip', [`-${level}`, '-c', '-n'], { input: data, maxBuffer: 1 << 30 });
}

export function zstdCli(data: Buffer, args: string[] = []): Buffer {
  return execFileSync('zstd', ['-q', '-c', ...args], { input: data, maxBuffer: 1 << 30 });
}

/** gzip via zlib with sync/full flushes every `flushEvery` bytes: empty stored blocks, byte-aligned restarts. */
export async function gzipWithFlushes(data: Buffer, level: number, flushEvery: number, full = false): Promise<Buffer> {
  const gz = createGzip({ level });
  const chunks: Buffer[] = [];
  gz.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => {
    gz.on('end', resolve);
    gz.on('error', reject);
  });
  for (let at = 0; at < data.length; at += flushEvery) {
    gz.write(data.subarray(at, at + flushEvery));
    await new Promise<void>((resolve) => gz.flush(full ? constants.Z_FULL_FLUSH : constants.Z_SYNC_FLUSH, () => resolve()));
  }
  gz.end();
  await done;
  return Buffer.concat(chunks);
}

export { deflateRawSync, gzipSync };

export async function* chunked(data: Uint8Array, chunkSize: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.length; at += chunkSize) yield data.subarray(at, at + chunkSize);
}

export async function scanBlob(
  blob: Buffer,
  compression: LayerCompression,
  options: { spanSize: number; pieceSize?: number; chunkSize?: number; gzipInflater?: GzipInflaterKind },
): Promise<{ scan: LayerScan; layer: ArchiveLayer; output: Buffer }> {
  const out: Uint8Array[] = [];
  const scan = await scanCompressedLayer(chunked(blob, options.chunkSize ?? 65536), compression, options, (chunk) => {
    out.push(chunk);
  });
  const layer: ArchiveLayer = {
    digest: scan.digest,
    diffId: scan.diffId,
    mediaType: 'application/vnd.oci.image.layer.v1.tar',
    compression,
    compressedSize: scan.compressedSize,
    uncompressedSize: scan.uncompressedSize,
    spans: scan.spans,
  };
  return { scan, layer, output: Buffer.concat(out) };
}

/** Reads [offset, offset+length) the way the mounter does: per span, fetch a range, verify, decompress. */
export async function readRange(layer: ArchiveLayer, blob: Buffer, offset: number, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let position = offset;
  const end = offset + length;
  while (position < end) {
    const si = spanIndexAt(layer, position);
    const span = layer.spans[si]!;
    const want = Math.min(end, span.uncompressedEnd);
    const range = compressedRangeFor(layer, si, want);
    // Never more than needed: the piece before the last one fetched did not already cover `want`.
    if (range.pieceCount > 1 && span.pieces[range.pieceCount - 2]!.uncompressedEnd >= want) throw new Error('fetched an unneeded piece');
    if (range.start !== Math.floor(span.checkpoint.compressedBitOffset / 8)) throw new Error('range does not start at the checkpoint');
    const bytes = blob.subarray(range.start, range.end);
    verifySpanPieces(layer, si, bytes);
    const data = await decompressSpan(layer, si, bytes);
    const from = position - span.checkpoint.uncompressedOffset;
    const to = want - span.checkpoint.uncompressedOffset;
    if (data.length < to) throw new Error(`span ${si} gave ${data.length} bytes, needed ${to}`);
    parts.push(data.subarray(from, to));
    position = want;
  }
  return Buffer.concat(parts);
}
