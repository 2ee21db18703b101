// Random access into a layer's compressed blob: which span holds an offset, which compressed
// range to fetch for it, verifying fetched pieces, and decompressing from a span's checkpoint.
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { constants, gunzip, inflateRaw, type ZlibOptions } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import type { ArchiveLayer, Span } from '@clip/archive-format';
import { DigestMismatchError, LayerFormatError, UsageError } from '@clip/shared';
import { deflateInputAt } from './deflate-prefix.js';
import { completeFramesLength } from './zstd-frames.js';

const inflateRawAsync = promisify<Uint8Array, ZlibOptions, Buffer>(inflateRaw);
const gunzipAsync = promisify<Uint8Array, ZlibOptions, Buffer>(gunzip);

function spanAt(layer: ArchiveLayer, spanIndex: number): Span {
  const span = layer.spans[spanIndex];
  if (!span) throw new UsageError(`layer ${layer.digest} has no span ${spanIndex} (it has ${layer.spans.length})`);
  return span;
}

/** First compressed byte of a span: the byte holding its checkpoint's first bit. */
export function spanCompressedStart(span: Span): number {
  return Math.floor(span.checkpoint.compressedBitOffset / 8);
}

/** Which span contains uncompressed offset `offset` (binary search). */
export function spanIndexAt(layer: ArchiveLayer, offset: number): number {
  const spans = layer.spans;
  if (!(offset >= 0 && offset < layer.uncompressedSize) || spans.length === 0) {
    throw new UsageError(`offset ${offset} is outside layer ${layer.digest} (${layer.uncompressedSize} bytes)`);
  }
  let lo = 0;
  let hi = spans.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (spans[mid]!.checkpoint.uncompressedOffset <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The compressed byte range [start, end) to fetch so that span `spanIndex` yields uncompressed
 * data up to `uncompressedEnd` (whole pieces, so each can be verified), plus how many pieces that is.
 */
export function compressedRangeFor(
  layer: ArchiveLayer,
  spanIndex: number,
  uncompressedEnd: number,
): { start: number; end: number; pieceCount: number } {
  const span = spanAt(layer, spanIndex);
  const target = Math.min(uncompressedEnd, span.uncompressedEnd);
  const start = spanCompressedStart(span);
  const pieces = span.pieces;
  if (pieces.length === 0) return { start, end: start, pieceCount: 0 };
  let index = pieces.findIndex((piece) => piece.uncompressedEnd >= target);
  if (index < 0) index = pieces.length - 1;
  return { start, end: pieces[index]!.compressedEnd, pieceCount: index + 1 };
}

/** Verify fetched bytes (from the span's start, whole pieces) against the recorded sha256s. */
export function verifySpanPieces(layer: ArchiveLayer, spanIndex: number, compressed: Uint8Array): void {
  const span = spanAt(layer, spanIndex);
  const start = spanCompressedStart(span);
  let pieceStart = start;
  for (let i = 0; i < span.pieces.length && pieceStart - start < compressed.length; i++) {
    const piece = span.pieces[i]!;
    const what = `layer ${layer.digest} span ${spanIndex} piece ${i}`;
    const from = pieceStart - start;
    const to = piece.compressedEnd - start;
    const bytes = compressed.subarray(from, to);
    const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (to > compressed.length) {
      throw new DigestMismatchError(`${what} (only ${compressed.length - from} of ${to - from} bytes fetched)`, piece.digest, actual);
    }
    if (actual !== piece.digest) throw new DigestMismatchError(what, piece.digest, actual);
    pieceStart = piece.compressedEnd;
  }
  if (pieceStart - start < compressed.length) {
    throw new LayerFormatError(
      `layer ${layer.digest} span ${spanIndex}: ${compressed.length} bytes fetched, but its pieces end after ${pieceStart - start}`,
    );
  }
}

/** The lower bound of uncompressed output guaranteed by `compressedLength` bytes from the span start. */
function guaranteedEnd(span: Span, compressedLength: number): number {
  const start = spanCompressedStart(span);
  let end = span.checkpoint.uncompressedOffset;
  for (const piece of span.pieces) {
    if (piece.compressedEnd - start > compressedLength) break;
    end = piece.uncompressedEnd;
  }
  return end;
}

async function inflateSpan(span: Span, compressed: Uint8Array, maxOutput: number, loadedWindow?: Uint8Array): Promise<Buffer> {
  const checkpoint = span.checkpoint;
  // Z_SYNC_FLUSH as finishFlush: input that ends at a piece boundary (mid-block) returns what
  // it decoded instead of failing with "unexpected end of file".
  const options: ZlibOptions = { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: Math.max(maxOutput, 1) + 65536 };
  switch (checkpoint.kind) {
    case 'gzip-member':
      return gunzipAsync(compressed, options);
    case 'deflate-block': {
      const input = deflateInputAt(compressed, checkpoint.compressedBitOffset % 8);
      const window = loadedWindow ?? checkpoint.window;
      return inflateRawAsync(input, window.length > 0 ? { ...options, dictionary: window } : options);
    }
    case 'zstd-frame': {
      // Only whole frames can be decoded; a piece boundary inside a frame guarantees nothing more.
      const whole = completeFramesLength(compressed);
      return whole === 0 ? Buffer.alloc(0) : Buffer.from(zstdDecompress(compressed.subarray(0, whole)));
    }
    case 'plain':
      return Buffer.from(compressed.buffer, compressed.byteOffset, compressed.byteLength);
  }
}

/**
 * Decompress from span `spanIndex`'s checkpoint. `compressed` = the blob's bytes starting at
 * floor(checkpoint.compressedBitOffset / 8), up to the end of some piece of the span (or the
 * whole span). Returns the uncompressed bytes from span start up to at least that piece's
 * uncompressedEnd (may return more if decodable), never past span.uncompressedEnd.
 */
export async function decompressSpan(
  layer: ArchiveLayer,
  spanIndex: number,
  compressed: Uint8Array,
  /** The checkpoint's window when it was loaded apart (external windows); default `checkpoint.window`. */
  window?: Uint8Array,
): Promise<Buffer> {
  const span = spanAt(layer, spanIndex);
  const spanStart = span.checkpoint.uncompressedOffset;
  const spanLength = span.uncompressedEnd - spanStart;
  const what = `layer ${layer.digest} span ${spanIndex}`;
  if (compressed.length === 0) {
    if (span.checkpoint.kind === 'plain' || spanLength === 0) return Buffer.alloc(0);
    throw new UsageError(`${what}: no compressed bytes given`);
  }
  let output: Buffer;
  try {
    output = await inflateSpan(span, compressed, spanLength, window);
  } catch (error) {
    throw new LayerFormatError(
      `${what} does not decompress from its checkpoint: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  const needed = guaranteedEnd(span, compressed.length) - spanStart;
  if (output.length < needed) {
    throw new LayerFormatError(`${what} decompressed to ${output.length} bytes, expected at least ${needed}`);
  }
  return output.length > spanLength ? output.subarray(0, spanLength) : output;
}
