// The read path: a byte range of a file → a range of a layer's uncompressed stream → the
// spans covering it → only the compressed bytes from each span's checkpoint up to the piece
// that covers the needed end → verified, decompressed, cached, sliced.
//
// Decoded spans are cached by (layer digest, span index). A cached block may hold only the
// start of its span (the pieces a previous read needed); a read that needs more decodes the
// span again from its checkpoint, fetching up to the further piece.
import type { Digest } from '../digest.js';
import { ClipError, DigestMismatchError, LayerFormatError } from '../errors.js';
import type { ArchiveLayer, Inode } from './model.js';
import { raceAbort } from '../read/abort.js';
import { defaultSpanCodec, type SpanCodec } from '../read/span-codec.js';

/** Fetches bytes [start, end) of a layer blob (end exclusive). */
export type FetchRange = (layerDigest: Digest, start: number, end: number, signal?: AbortSignal) => Promise<Uint8Array>;

/**
 * Decoded blocks by key. `get` and `set` may be sync (memory) or async (disk); a cache that
 * fails to store must not throw (the read still succeeds).
 */
export interface BlockCache {
  get(key: string): Buffer | undefined | Promise<Buffer | undefined>;
  set(key: string, value: Buffer): void | Promise<void>;
}

/** What the reader did, for metrics and logs. */
export type ReaderEvent =
  | { kind: 'cache-hit'; key: string; bytes: number }
  | { kind: 'cache-miss'; key: string }
  | { kind: 'fetch'; layer: Digest; start: number; end: number }
  | { kind: 'digest-mismatch'; layer: Digest; span: number; attempt: number };

export interface LayerReaderOptions {
  fetchRange: FetchRange;
  cache?: BlockCache;
  /** zran operations; defaults to the real ones (tests may pass hand-made codecs). */
  codec?: SpanCodec;
  onEvent?: (event: ReaderEvent) => void;
}

/** The part of a ClipArchive the reader needs. */
export interface LayerSource {
  readonly layers: readonly ArchiveLayer[];
}

/** Key of a decoded block in a BlockCache. */
export function blockKey(layer: Digest, spanIndex: number): string {
  return `${layer}/${spanIndex}`;
}

interface InFlight {
  /** Uncompressed bytes (from span start) the pending decode will cover at least. */
  covers: number;
  promise: Promise<Buffer>;
}

export class LayerReader {
  readonly #archive: LayerSource;
  readonly #fetchRange: FetchRange;
  readonly #cache: BlockCache | undefined;
  readonly #codec: SpanCodec;
  readonly #onEvent: (event: ReaderEvent) => void;
  readonly #inFlight = new Map<string, InFlight>();

  constructor(archive: LayerSource, options: LayerReaderOptions) {
    this.#archive = archive;
    this.#fetchRange = options.fetchRange;
    this.#cache = options.cache;
    this.#codec = options.codec ?? defaultSpanCodec;
    this.#onEvent = options.onEvent ?? (() => {});
  }

  /** Reads `length` bytes at `offset` of a layer's uncompressed stream (short at the layer's end). */
  async read(layerIndex: number, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const layer = this.#layer(layerIndex);
    const end = Math.min(offset + length, layer.uncompressedSize);
    if (offset < 0 || length < 0) throw new RangeError(`bad read range offset=${offset} length=${length}`);
    if (end <= offset) return Buffer.alloc(0);

    const parts: Promise<Buffer>[] = [];
    for (let index = this.#codec.spanIndexAt(layer, offset); index < layer.spans.length; index++) {
      const span = layer.spans[index]!;
      const spanStart = span.checkpoint.uncompressedOffset;
      if (spanStart >= end) break;
      const from = Math.max(offset, spanStart) - spanStart;
      const to = Math.min(end, span.uncompressedEnd) - spanStart;
      parts.push(this.#block(layer, index, to, signal).then((block) => block.subarray(from, to)));
    }
    const slices = await Promise.all(parts);
    const result = slices.length === 1 ? slices[0]! : Buffer.concat(slices);
    if (result.length !== end - offset) {
      throw new LayerFormatError(`layer ${layer.digest}: read at ${offset} produced ${result.length} of ${end - offset} bytes`);
    }
    return result;
  }

  /** Reads `length` bytes at `offset` of a regular file (short or empty past its end). */
  async readFile(inode: Inode, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    if (inode.type !== 'file') throw new ClipError('CLIP_E_NOT_FILE', `inode ${inode.ino} is a ${inode.type}, not a regular file`);
    const end = Math.min(offset + length, inode.size);
    if (end <= offset) return Buffer.alloc(0);
    if (!inode.data) throw new LayerFormatError(`inode ${inode.ino} has ${inode.size} bytes but no data location`);
    return this.read(inode.data.layer, inode.data.offset + offset, end - offset, signal);
  }

  /** Decodes whole spans covering a layer range in the background (readahead, prefetch). */
  async prefetch(layerIndex: number, offset: number, length: number, signal?: AbortSignal): Promise<void> {
    const layer = this.#layer(layerIndex);
    const end = Math.min(offset + length, layer.uncompressedSize);
    const pending: Promise<Buffer>[] = [];
    for (let index = this.#codec.spanIndexAt(layer, offset); index < layer.spans.length; index++) {
      const span = layer.spans[index]!;
      if (span.checkpoint.uncompressedOffset >= end) break;
      pending.push(this.#block(layer, index, span.uncompressedEnd - span.checkpoint.uncompressedOffset, signal));
    }
    await Promise.all(pending);
  }

  /** Index of the span holding a layer offset (for readahead). */
  spanAt(layerIndex: number, offset: number): { index: number; start: number; end: number } | undefined {
    const layer = this.#layer(layerIndex);
    if (offset >= layer.uncompressedSize) return undefined;
    const index = this.#codec.spanIndexAt(layer, offset);
    const span = layer.spans[index];
    return span ? { index, start: span.checkpoint.uncompressedOffset, end: span.uncompressedEnd } : undefined;
  }

  #layer(index: number): ArchiveLayer {
    const layer = this.#archive.layers[index];
    if (!layer) throw new LayerFormatError(`archive has no layer ${index}`);
    return layer;
  }

  /** A decoded block of span `index` holding at least `need` bytes from the span's start. */
  async #block(layer: ArchiveLayer, index: number, need: number, signal?: AbortSignal): Promise<Buffer> {
    const key = blockKey(layer.digest, index);
    const pending = this.#inFlight.get(key);
    if (pending && pending.covers >= need) return raceAbort(pending.promise, signal);

    if (this.#cache) {
      const cached = await this.#cache.get(key);
      if (cached && cached.length >= need) {
        this.#onEvent({ kind: 'cache-hit', key, bytes: cached.length });
        return cached;
      }
      this.#onEvent({ kind: 'cache-miss', key });
      // Another reader may have started the decode while we looked at an async cache.
      const raced = this.#inFlight.get(key);
      if (raced && raced.covers >= need) return raceAbort(raced.promise, signal);
    }

    const covers = this.#coverage(layer, index, need);
    // The decode is shared by everyone who joins, so it runs without any one caller's signal;
    // each caller stops waiting on its own abort. Fetch timeouts bound the decode itself.
    const entry: InFlight = { covers, promise: this.#decodeAndStore(key, layer, index, covers) };
    this.#inFlight.set(key, entry);
    entry.promise
      .finally(() => {
        if (this.#inFlight.get(key) === entry) this.#inFlight.delete(key);
      })
      .catch(() => {});
    return raceAbort(entry.promise, signal);
  }

  async #decodeAndStore(key: string, layer: ArchiveLayer, index: number, covers: number): Promise<Buffer> {
    const block = await this.#decode(layer, index, covers);
    if (this.#cache) await this.#storeQuietly(key, block);
    return block;
  }

  /** Uncompressed bytes (from span start) the pieces needed for `need` bytes will give. */
  #coverage(layer: ArchiveLayer, index: number, need: number): number {
    const span = layer.spans[index]!;
    const spanStart = span.checkpoint.uncompressedOffset;
    const spanLength = span.uncompressedEnd - spanStart;
    for (const piece of span.pieces) {
      const produced = piece.uncompressedEnd - spanStart;
      if (produced >= need) return Math.min(produced, spanLength);
    }
    return spanLength;
  }

  async #decode(layer: ArchiveLayer, index: number, covers: number): Promise<Buffer> {
    const span = layer.spans[index]!;
    const spanStart = span.checkpoint.uncompressedOffset;
    const range = this.#codec.compressedRangeFor(layer, index, spanStart + covers);
    let compressed: Uint8Array | undefined;
    for (let attempt = 1; ; attempt++) {
      this.#onEvent({ kind: 'fetch', layer: layer.digest, start: range.start, end: range.end });
      compressed = await this.#fetchRange(layer.digest, range.start, range.end);
      try {
        this.#codec.verifySpanPieces(layer, index, compressed);
        break;
      } catch (error) {
        if (!(error instanceof DigestMismatchError)) throw error;
        this.#onEvent({ kind: 'digest-mismatch', layer: layer.digest, span: index, attempt });
        // One refetch: a proxy or a torn response may have handed us bad bytes once.
        if (attempt >= 2) throw error;
      }
    }
    const decoded = await this.#codec.decompressSpan(layer, index, compressed);
    const spanLength = span.uncompressedEnd - spanStart;
    const block = decoded.length > spanLength ? decoded.subarray(0, spanLength) : decoded;
    if (block.length < covers) {
      throw new LayerFormatError(
        `layer ${layer.digest} span ${index}: decoded ${block.length} bytes, expected at least ${covers}`,
      );
    }
    return block;
  }

  async #storeQuietly(key: string, block: Buffer): Promise<void> {
    try {
      await this.#cache!.set(key, block);
    } catch {
      // A cache that cannot store (full disk) must not fail the read.
    }
  }
}
