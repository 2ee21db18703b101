// The LAYERS, SPANS, PIECES and WINDOWS sections decoded into the model when an archive is
// opened (they are small; inodes and entries stay encoded, see archive-reader.ts). Checkpoint
// windows are inflated on first use; external ones (v2.3) are only located here and loaded by
// the read engine from the windows blob.
import { inflateRawSync } from 'node:zlib';
import { ArchiveFormatError, type Digest } from '@clip/shared';
import type { ByteReader } from './binary.js';
import {
  CHECKPOINT_KINDS,
  COMPRESSIONS,
  LAYER_RECORD as L,
  LAYER_SOURCE_ARCHIVE,
  MAX_WINDOW,
  PIECE_RECORD as P,
  SPAN_RECORD as S,
} from './binary-layout.js';
import { corrupt } from './format-errors.js';
import type { SectionView } from './frame-verify.js';
import type { ArchiveLayer, Checkpoint, ExternalWindow, Span, SpanPiece } from './model.js';

export interface LayerTables {
  r: ByteReader;
  layers: SectionView;
  spans: SectionView;
  pieces: SectionView;
  /** Inline windows (the WINDOWS section), or the windows blob and one digest per span (v2.3). */
  windows: SectionView | ExternalWindowTables;
  dataSection: { offset: number; length: number } | undefined;
  /** A string from the STRINGS section. */
  string(offset: number, length: number, what: string): string;
}

export interface ExternalWindowTables {
  blob: { digest: Digest; size: number };
  /** WINDOW_DIGESTS: 32-byte records, one per span. */
  digests: SectionView;
}

export function decodeLayers(t: LayerTables): ArchiveLayer[] {
  const { r, layers, spans } = t;
  const out: ArchiveLayer[] = [];
  for (let li = 0; li < layers.count; li++) {
    const at = layers.offset + li * layers.recordSize;
    const compression = COMPRESSIONS[r.u8(at + L.compression)];
    if (compression === undefined) corrupt(`layer ${li} has unknown compression ${r.u8(at + L.compression)}`);
    const source = r.u8(at + L.source);
    if (source > LAYER_SOURCE_ARCHIVE) corrupt(`layer ${li} has source ${source}, which needs a newer clip`);
    const compressedSize = r.u64(at + L.compressedSize);
    if (source === LAYER_SOURCE_ARCHIVE) {
      if (!t.dataSection) corrupt(`layer ${li} reads from a DATA section the archive does not have`);
      if (compressedSize !== t.dataSection.length)
        corrupt(`layer ${li} is ${compressedSize} bytes, its DATA section ${t.dataSection.length}`);
    }
    const firstSpan = r.u32(at + L.firstSpan);
    const spanCount = r.u32(at + L.spanCount);
    if (firstSpan + spanCount > spans.count) corrupt(`layer ${li} spans [${firstSpan}, ${firstSpan + spanCount}) exceed ${spans.count}`);
    const layerSpans: Span[] = [];
    for (let si = firstSpan; si < firstSpan + spanCount; si++) {
      layerSpans.push(decodeSpan(t, si));
    }
    out.push({
      digest: hexDigest(r.slice(at + L.digest, 32, 'layer digest')),
      mediaType: t.string(r.u32(at + L.mediaTypeOffset), r.u32(at + L.mediaTypeLength), 'media type'),
      compression,
      compressedSize,
      uncompressedSize: r.u64(at + L.uncompressedSize),
      diffId: hexDigest(r.slice(at + L.diffId, 32, 'layer diffId')),
      spans: layerSpans,
      ...(source === LAYER_SOURCE_ARCHIVE ? { source: 'archive' as const } : {}),
    });
  }
  return out;
}

function decodeSpan({ r, spans, pieces, windows }: LayerTables, si: number): Span {
  const at = spans.offset + si * spans.recordSize;
  const kind = CHECKPOINT_KINDS[r.u8(at + S.kind)];
  if (kind === undefined) corrupt(`span ${si} has unknown checkpoint kind ${r.u8(at + S.kind)}`);
  const firstPiece = r.u32(at + S.firstPiece);
  const pieceCount = r.u32(at + S.pieceCount);
  if (firstPiece + pieceCount > pieces.count) corrupt(`span ${si} pieces exceed the piece table`);
  const spanPieces: SpanPiece[] = [];
  for (let pi = firstPiece; pi < firstPiece + pieceCount; pi++) {
    const pat = pieces.offset + pi * pieces.recordSize;
    spanPieces.push({
      compressedEnd: r.u64(pat + P.compressedEnd),
      uncompressedEnd: r.u64(pat + P.uncompressedEnd),
      digest: hexDigest(r.slice(pat + P.digest, 32, 'piece digest')),
    });
  }
  const windowLength = r.u32(at + S.windowLength);
  const windowOffset = r.u32(at + S.windowOffset);
  const windowStored = r.u32(at + S.windowStoredLength);
  const encoding = r.u8(at + S.windowEncoding);
  if (windowLength > MAX_WINDOW) corrupt(`span ${si} window of ${windowLength} bytes`);
  if (encoding > 1 || (encoding === 0) !== (windowLength === 0)) corrupt(`span ${si} window encoding ${encoding}`);
  const base = { uncompressedOffset: r.u64(at + S.uncompressedOffset), compressedBitOffset: r.u64(at + S.compressedBitOffset), kind };
  let checkpoint: Checkpoint;
  if ('blob' in windows) {
    if (windowLength > 0 && windowStored === 0) corrupt(`span ${si} has a window of ${windowLength} bytes stored in 0`);
    if (windowOffset + windowStored > windows.blob.size) corrupt(`span ${si} window is outside the windows blob`);
    const external: ExternalWindow = {
      blob: windows.blob.digest,
      offset: windowOffset,
      storedLength: windowStored,
      digest: hexDigest(r.slice(windows.digests.offset + si * windows.digests.recordSize, 32, 'window digest')),
      length: windowLength,
    };
    checkpoint = windowLength === 0 ? { ...base, window: new Uint8Array(0) } : externalCheckpoint(base, external, si);
  } else {
    if (windowOffset + windowStored > windows.length) corrupt(`span ${si} window is outside the windows section`);
    const stored = r.slice(windows.offset + windowOffset, windowStored, 'window');
    checkpoint = lazyCheckpoint(base, stored, windowLength, si);
  }
  return { checkpoint, uncompressedEnd: r.u64(at + S.uncompressedEnd), pieces: spanPieces };
}

/** A checkpoint whose window is inflated from the archive on first use (most are never needed). */
function lazyCheckpoint(base: Omit<Checkpoint, 'window'>, stored: Uint8Array, windowLength: number, si: number): Checkpoint {
  let window: Uint8Array | undefined = windowLength === 0 ? new Uint8Array(0) : undefined;
  const checkpoint = { ...base } as Checkpoint;
  Object.defineProperty(checkpoint, 'window', {
    enumerable: true,
    get(): Uint8Array {
      if (window === undefined) {
        let inflated: Buffer;
        try {
          inflated = inflateRawSync(stored, { maxOutputLength: MAX_WINDOW });
        } catch (error) {
          throw new ArchiveFormatError(`corrupt archive: window of span ${si} does not inflate`, { cause: error });
        }
        if (inflated.length !== windowLength) corrupt(`window of span ${si} is ${inflated.length} bytes, expected ${windowLength}`);
        window = new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength);
      }
      return window;
    },
  });
  return checkpoint;
}
/** A checkpoint whose window is in the windows blob: `window` is not here (a sync read is a bug). */
function externalCheckpoint(base: Omit<Checkpoint, 'window'>, externalWindow: ExternalWindow, si: number): Checkpoint {
  const checkpoint = { ...base, externalWindow } as Checkpoint;
  Object.defineProperty(checkpoint, 'window', {
    enumerable: false,
    get(): Uint8Array {
      throw new ArchiveFormatError(
        `window of span ${si} is in windows blob ${externalWindow.blob}: load it by range (read-engine) before decoding`,
      );
    },
  });
  return checkpoint;
}

export function hexDigest(bytes: Uint8Array): Digest {
  return `sha256:${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`;
}
