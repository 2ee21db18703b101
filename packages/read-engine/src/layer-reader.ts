// The read path: a byte range of a file → a range of a layer's uncompressed stream → the
// spans covering it → only the compressed bytes from each span's checkpoint up to the piece
// that covers the needed end → verified, decompressed, cached, sliced.
//
// Decoded spans are cached by (layer digest, span index). A cached span may hold only the
// start of its span (the pieces a previous read needed). A read that needs more feeds the
// span's live decoder (kept for recently extended spans) only the pieces it lacks; without
// one, the span is decoded again from its checkpoint. The verified compressed pieces of such
// partial spans are kept (a bounded PieceStore in memory, and the SpanCache under
// `compressedKey`), so that decode fetches only the pieces it lacks; a piece being fetched is
// never fetched twice. Cache stores do not hold up reads (`flush` awaits them).
// Over 400 lines on purpose: the read path's coordination (caches, in-flight spans, live decoders, priorities) in one class.
import { type Digest, forEachConcurrent, LayerFormatError, NotAFileError, raceAbort } from '@clip/shared';
import type { ArchiveLayer, FetchRange, Inode } from '@clip/archive-format';
import { defaultSpanCodec, spanDecoderFor, type SpanCodec } from './span-codec.js';
import { PieceStore, type PieceRange } from './piece-store.js';
import { LiveSpan, LiveSpans, StaleDecoderError } from './live-spans.js';
import { WindowLoader, type WindowEvent } from './window-loader.js';
import { deferredDecoder } from './zran/deferred-decoder.js';
import type { SpanDecoder } from './zran/span-decoder.js';
import { FetchScheduler, type FetchSchedulerOptions, type FetchSchedulerStats, Urgency } from './fetch-scheduler.js';

/**
 * Decoded spans by key. `get` and `set` may be sync (memory) or async (disk); a cache that
 * fails to store must not throw (the read still succeeds).
 */
export interface SpanCache {
  /**
   * `minLength`: the length the caller needs; a tiered cache keeps looking (e.g. on disk)
   * when a faster tier holds a shorter span.
   */
  get(key: string, minLength?: number): Buffer | undefined | Promise<Buffer | undefined>;
  set(key: string, value: Buffer): void | Promise<void>;
  /** Drops an entry (optional; used for compressed prefixes a complete span supersedes). */
  delete?(key: string): void | Promise<void>;
}

/** What the reader did, for metrics and logs. */
export type ReaderEvent =
  | { kind: 'cache-hit'; key: string; bytes: number }
  | { kind: 'cache-miss'; key: string }
  | { kind: 'fetch'; layer: Digest; start: number; end: number }
  | { kind: 'digest-mismatch'; layer: Digest; span: number; attempt: number }
  | WindowEvent;

export interface LayerReaderOptions {
  fetchRange: FetchRange;
  cache?: SpanCache;
  /** zran operations; defaults to the real ones (tests may pass hand-made codecs). */
  codec?: SpanCodec;
  onEvent?: (event: ReaderEvent) => void;
  /** Bound on the compressed pieces of partly decoded spans kept in memory (default 64 MiB). */
  pieceCacheBytes?: number;
  /** Live decoders of partly decoded spans kept (default 32, ~200 KiB each; 0: always re-decode). */
  liveDecoders?: number;
  /** External windows (v2.3): bytes a window request may grow to with following windows (default 0: none). */
  windowCoalesceBytes?: number;
  /**
   * Request scheduling: reads before background work (fetch-scheduler.ts). Default on with
   * 8 slots; `false` sends every request at once, in arrival order (for measurements).
   */
  scheduler?: FetchSchedulerOptions | false;
}

/** Following spans whose windows may ride along with a span's window request. */
const WINDOW_NEIGHBOURS = 3;

/** Whether a read blocks a workload (`demand`) or only warms the cache (`background`). */
export type ReadPriority = 'demand' | 'background';

export const DEFAULT_PIECE_CACHE_BYTES = 64 * 2 ** 20;
export const DEFAULT_LIVE_DECODERS = 32;

/** A byte range of a layer's uncompressed stream. */
export interface LayerRange {
  layer: number;
  offset: number;
  length: number;
}

/** The part of a ClipArchive the reader needs. */
export interface LayerSource {
  readonly layers: readonly ArchiveLayer[];
}

/**
 * Key of a decoded span in a SpanCache: the layer and the span's uncompressed range, so
 * caches shared by archives of one image indexed with other span sizes never mix blocks.
 */
export function spanKey(layer: ArchiveLayer, spanIndex: number): string {
  const span = layer.spans[spanIndex];
  if (!span) throw new LayerFormatError(`layer ${layer.digest} has no span ${spanIndex}`);
  return `${layer.digest}/${span.checkpoint.uncompressedOffset}-${span.uncompressedEnd}`;
}

/** Key of a partial span's verified compressed prefix in a SpanCache (pieces are re-verified on load). */
export function compressedKey(layer: ArchiveLayer, spanIndex: number): string {
  return `${spanKey(layer, spanIndex)}/z`;
}

interface InFlight {
  /** Uncompressed bytes (from span start) the pending decode will cover at least. */
  covers: number;
  promise: Promise<Buffer>;
}

export class LayerReader {
  readonly #archive: LayerSource;
  readonly #fetchRange: FetchRange;
  readonly #cache: SpanCache | undefined;
  readonly #codec: SpanCodec;
  readonly #onEvent: (event: ReaderEvent) => void;
  readonly #inFlight = new Map<string, InFlight>();
  readonly #pieces: PieceStore;
  /** Compressed-prefix keys this reader stored, dropped once their span is decoded whole. */
  readonly #storedPrefixes = new Set<string>();
  readonly #live: LiveSpans;
  /** Cache stores still running (reads do not wait for them). */
  readonly #stores = new Set<Promise<void>>();
  readonly #windows: WindowLoader;
  readonly #scheduler: FetchScheduler | undefined;
  /** Urgency of the decodes in flight per span key (shared by concurrent decodes of one span). */
  readonly #urgencies = new Map<string, { urgency: Urgency; users: number }>();

  constructor(archive: LayerSource, options: LayerReaderOptions) {
    this.#archive = archive;
    this.#fetchRange = options.fetchRange;
    this.#cache = options.cache;
    this.#codec = options.codec ?? defaultSpanCodec;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#pieces = new PieceStore(options.pieceCacheBytes ?? DEFAULT_PIECE_CACHE_BYTES);
    this.#live = new LiveSpans(options.liveDecoders ?? DEFAULT_LIVE_DECODERS);
    this.#windows = new WindowLoader({
      fetchRange: this.#fetchRange,
      ...(this.#cache ? { cache: this.#cache } : {}),
      onEvent: this.#onEvent,
      ...(options.windowCoalesceBytes !== undefined ? { coalesceBytes: options.windowCoalesceBytes } : {}),
    });
    this.#scheduler = options.scheduler === false ? undefined : new FetchScheduler(this.#fetchRange, options.scheduler ?? {});
  }

  /** Requests by class, promotions and merges (zeros without a scheduler). */
  get schedulerStats(): Readonly<FetchSchedulerStats> {
    return this.#scheduler?.stats ?? { demandRequests: 0, backgroundRequests: 0, promoted: 0, coalesced: 0 };
  }

  /** Settles when every cache store started so far has (e.g. before unmounting). */
  async flush(): Promise<void> {
    while (this.#stores.size > 0) await Promise.all([...this.#stores]);
    await this.#windows.flush();
  }

  /** Stops fetching: queued and later range requests fail (requests in flight finish). */
  close(): void {
    this.#scheduler?.close();
  }

  /** Compressed bytes of partial spans held in memory. */
  get pieceCacheBytes(): number {
    return this.#pieces.bytes;
  }

  /** Reads `length` bytes at `offset` of a layer's uncompressed stream (short at the layer's end). */
  async read(layerIndex: number, offset: number, length: number, signal?: AbortSignal, priority: ReadPriority = 'demand'): Promise<Buffer> {
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
      parts.push(this.#decodedSpan(layer, index, to, signal, priority).then((decoded) => decoded.subarray(from, to)));
    }
    const slices = await Promise.all(parts);
    const result = slices.length === 1 ? slices[0]! : Buffer.concat(slices);
    if (result.length !== end - offset) {
      throw new LayerFormatError(`layer ${layer.digest}: read at ${offset} produced ${result.length} of ${end - offset} bytes`);
    }
    return result;
  }

  /** Reads `length` bytes at `offset` of a regular file (short or empty past its end). */
  async readFile(inode: Inode, offset: number, length: number, signal?: AbortSignal, priority: ReadPriority = 'demand'): Promise<Buffer> {
    if (inode.type !== 'file') throw new NotAFileError(`inode ${inode.ino} is a ${inode.type}, not a regular file`);
    const end = Math.min(offset + length, inode.size);
    if (end <= offset) return Buffer.alloc(0);
    if (!inode.data) throw new LayerFormatError(`inode ${inode.ino} has ${inode.size} bytes but no data location`);
    return this.read(inode.data.layer, inode.data.offset + offset, end - offset, signal, priority);
  }

  /**
   * Fetches and decodes what a layer range needs (from each span's checkpoint to the piece
   * covering the range's end in that span), without returning it: readahead and prefetch.
   */
  async prefetch(layerIndex: number, offset: number, length: number, signal?: AbortSignal): Promise<void> {
    let failure: unknown;
    const { failed } = await this.prefetchRanges([{ layer: layerIndex, offset, length }], {
      concurrency: 4,
      ...(signal ? { signal } : {}),
      onError: (error) => (failure ??= error),
    });
    if (failed > 0) throw failure;
  }

  /**
   * Fetches what many ranges need, merged per span first (one decode per span, to the furthest
   * byte any range needs in it), at most `concurrency` spans at a time, in the order the ranges
   * first touch them. Never rejects: failed spans are counted (and passed to `onError`);
   * an abort stops starting new spans. Background priority unless told otherwise.
   */
  async prefetchRanges(
    ranges: readonly LayerRange[],
    options: { concurrency?: number; signal?: AbortSignal; onError?: (error: unknown) => void; priority?: ReadPriority } = {},
  ): Promise<{ spans: number; failed: number }> {
    const needs = new Map<string, { layer: ArchiveLayer; index: number; need: number }>();
    for (const range of ranges) {
      const layer = this.#layer(range.layer);
      const end = Math.min(range.offset + range.length, layer.uncompressedSize);
      if (range.offset < 0 || end <= range.offset) continue;
      for (let index = this.#codec.spanIndexAt(layer, range.offset); index < layer.spans.length; index++) {
        const span = layer.spans[index]!;
        const spanStart = span.checkpoint.uncompressedOffset;
        if (spanStart >= end) break;
        const need = Math.min(end, span.uncompressedEnd) - spanStart;
        const key = spanKey(layer, index);
        const known = needs.get(key);
        if (!known) needs.set(key, { layer, index, need });
        else known.need = Math.max(known.need, need);
      }
    }
    const { signal } = options;
    let spans = 0;
    let failed = 0;
    const fetchSpan = async (item: { layer: ArchiveLayer; index: number; need: number }) => {
      try {
        await this.#decodedSpan(item.layer, item.index, item.need, signal, options.priority ?? 'background');
        spans++;
      } catch (error) {
        failed++;
        options.onError?.(error);
      }
    };
    await forEachConcurrent(needs.values(), options.concurrency ?? 1, fetchSpan, signal ? { signal } : {});
    return { spans, failed };
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

  /** The decoded span `index`, or its first part, holding at least `need` bytes from the span's start. */
  async #decodedSpan(
    layer: ArchiveLayer,
    index: number,
    need: number,
    signal: AbortSignal | undefined,
    priority: ReadPriority,
    mayRejoin = true,
  ): Promise<Buffer> {
    const key = spanKey(layer, index);
    // A read blocked on a span whose fetches are queued as background work: they go first now.
    if (priority === 'demand') this.#urgencies.get(key)?.urgency.promote();
    // A decode this read joins may have started long before (e.g. while the registry was down,
    // and stalled): if it fails, this read tries once more itself instead of failing with it.
    const join = (promise: Promise<Buffer>) =>
      raceAbort(mayRejoin ? promise.catch(() => this.#decodedSpan(layer, index, need, signal, priority, false)) : promise, signal);
    const pending = this.#inFlight.get(key);
    if (pending && pending.covers >= need) return join(pending.promise);

    let cachedLength = 0;
    if (this.#cache) {
      const cached = await this.#cache.get(key, need);
      cachedLength = cached?.length ?? 0;
      if (cached && cached.length >= need) {
        this.#onEvent({ kind: 'cache-hit', key, bytes: cached.length });
        return cached;
      }
      this.#onEvent({ kind: 'cache-miss', key });
      // Another reader may have started the decode while we looked at an async cache.
      const raced = this.#inFlight.get(key);
      if (raced && raced.covers >= need) return join(raced.promise);
    }

    const partial = cachedLength > 0;
    const covers = this.#coverage(layer, index, need);
    // The decode is shared by everyone who joins, so it runs without any one caller's signal;
    // each caller stops waiting on its own abort. Fetch timeouts bound the decode itself.
    const urgency = this.#acquireUrgency(key, priority === 'demand');
    const entry: InFlight = { covers, promise: this.#decodeAndStore(key, layer, index, covers, partial, urgency) };
    this.#inFlight.set(key, entry);
    entry.promise
      .finally(() => {
        if (this.#inFlight.get(key) === entry) this.#inFlight.delete(key);
        this.#releaseUrgency(key);
      })
      .catch(() => {});
    return raceAbort(entry.promise, signal);
  }

  #acquireUrgency(key: string, demand: boolean): Urgency {
    let held = this.#urgencies.get(key);
    if (!held) {
      held = { urgency: this.#scheduler?.urgency(demand) ?? new Urgency(demand), users: 0 };
      this.#urgencies.set(key, held);
    }
    held.users++;
    if (demand) held.urgency.promote();
    return held.urgency;
  }

  #releaseUrgency(key: string): void {
    const held = this.#urgencies.get(key);
    if (held && --held.users <= 0) this.#urgencies.delete(key);
  }

  async #decodeAndStore(
    key: string,
    layer: ArchiveLayer,
    index: number,
    covers: number,
    partial: boolean,
    urgency: Urgency,
  ): Promise<Buffer> {
    const { decoded, pieceCount } = await this.#decode(layer, index, covers, partial, urgency);
    const span = layer.spans[index]!;
    const complete = decoded.length >= span.uncompressedEnd - span.checkpoint.uncompressedOffset;
    if (complete) this.#pieces.discard(key);
    if (this.#cache) this.#background(this.#store(key, layer, index, decoded, complete, pieceCount));
    return decoded;
  }

  async #store(key: string, layer: ArchiveLayer, index: number, decoded: Buffer, complete: boolean, pieceCount: number): Promise<void> {
    await this.#storeQuietly(key, decoded);
    // A partial span's pieces outlive the memory store (and the process) in the cache.
    const prefixKey = compressedKey(layer, index);
    if (!complete) {
      const compressed = this.#pieces.held(key, pieceCount);
      if (!compressed) return;
      await this.#storeQuietly(prefixKey, compressed);
      this.#storedPrefixes.add(prefixKey);
    } else if (this.#storedPrefixes.delete(prefixKey)) {
      await Promise.resolve(this.#cache!.delete?.(prefixKey)).catch(() => {});
    }
  }

  #background(work: Promise<void>): void {
    const tracked = work.catch(() => {}).finally(() => this.#stores.delete(tracked));
    this.#stores.add(tracked);
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

  /** Compressed pieces [0, count) of span `index`: where each lies and its digest. */
  #pieceRanges(layer: ArchiveLayer, index: number, start: number, count: number): PieceRange[] {
    const pieces = layer.spans[index]!.pieces;
    const ranges: PieceRange[] = [];
    let at = start;
    for (let i = 0; i < count; i++) {
      const piece = pieces[i]!;
      ranges.push({ start: at, end: piece.compressedEnd, digest: piece.digest });
      at = piece.compressedEnd;
    }
    return ranges;
  }

  /**
   * Span `index` decoded at least to `covers`: its live decoder fed the pieces it lacks, or a
   * new decoder fed every piece from the checkpoint. `partial`: the cache holds a shorter
   * decoded span, so it may hold the compressed prefix too.
   */
  async #decode(
    layer: ArchiveLayer,
    index: number,
    covers: number,
    partial: boolean,
    urgency: Urgency,
  ): Promise<{ decoded: Buffer; pieceCount: number }> {
    const span = layer.spans[index]!;
    const spanStart = span.checkpoint.uncompressedOffset;
    const spanLength = span.uncompressedEnd - spanStart;
    const range = this.#codec.compressedRangeFor(layer, index, spanStart + covers);
    const pieces = this.#pieceRanges(layer, index, range.start, range.pieceCount);
    const key = spanKey(layer, index);
    const source = {
      what: `layer ${layer.digest} span ${index}`,
      fetch: (start: number, end: number) => {
        this.#onEvent({ kind: 'fetch', layer: layer.digest, start, end });
        return this.#scheduler ? this.#scheduler.fetch(layer.digest, start, end, urgency) : this.#fetchRange(layer.digest, start, end);
      },
      onMismatch: (attempt: number) => this.#onEvent({ kind: 'digest-mismatch', layer: layer.digest, span: index, attempt }),
    };
    const fetchFrom = (from: number) => this.#pieces.prefix(key, pieces, source, from);
    let decoded: Buffer | undefined;
    // A live decoder that failed under an earlier read is replaced; at most twice in a row.
    for (let attempt = 0; !decoded; attempt++) {
      let live = this.#live.get(key);
      if (!live) {
        if (partial && this.#cache && pieces.length > 0 && this.#pieces.heldPrefix(key) < pieces.length)
          await this.#seedFromCache(layer, index, key);
        live = this.#live.get(key) ?? new LiveSpan(this.#decoderFor(layer, index), spanLength);
        this.#live.add(key, live);
      }
      try {
        decoded = await live.extend(pieces.length, fetchFrom);
      } catch (error) {
        if (!(error instanceof StaleDecoderError) || attempt >= 2)
          throw error instanceof StaleDecoderError && error.reason !== undefined ? error.reason : error;
      } finally {
        if (live.complete || !live.usable) this.#live.remove(key, live);
      }
    }
    if (decoded.length < covers) {
      throw new LayerFormatError(`layer ${layer.digest} span ${index}: decoded ${decoded.length} bytes, expected at least ${covers}`);
    }
    return { decoded, pieceCount: pieces.length };
  }

  /**
   * A decoder at span `index`'s checkpoint. An external window (v2.3) is requested now, so it
   * travels while the span's pieces are fetched; the decoder waits for it before its first push.
   */
  #decoderFor(layer: ArchiveLayer, index: number): SpanDecoder {
    const external = layer.spans[index]!.checkpoint.externalWindow;
    if (!external) return spanDecoderFor(this.#codec, layer, index);
    const following = layer.spans
      .slice(index + 1, index + 1 + WINDOW_NEIGHBOURS)
      .flatMap((span) => (span.checkpoint.externalWindow ? [span.checkpoint.externalWindow] : []));
    const window = this.#windows.load(external, `window of layer ${layer.digest} span ${index}`, following);
    return deferredDecoder(window, (loaded) => spanDecoderFor(this.#codec, layer, index, loaded));
  }

  /** Loads a persisted compressed prefix of a partial span into the piece store (each piece re-verified). */
  async #seedFromCache(layer: ArchiveLayer, index: number, key: string): Promise<void> {
    let stored: Buffer | undefined;
    try {
      stored = await this.#cache!.get(compressedKey(layer, index));
    } catch {
      return;
    }
    if (!stored || stored.length === 0) return;
    const span = layer.spans[index]!;
    const start = this.#codec.compressedRangeFor(layer, index, span.checkpoint.uncompressedOffset).start;
    this.#pieces.seed(key, this.#pieceRanges(layer, index, start, span.pieces.length), stored);
  }

  async #storeQuietly(key: string, decoded: Buffer): Promise<void> {
    try {
      await this.#cache!.set(key, decoded);
    } catch {
      // A cache that cannot store (full disk) must not fail the read.
    }
  }
}
