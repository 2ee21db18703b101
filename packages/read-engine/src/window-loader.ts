// Checkpoint windows of archives with external windows (v2.3): fetched by range from the
// windows blob through the reader's FetchRange (the same registry path, auth, retries and
// mirrors as layer ranges), verified against the archive's sha256 before use, inflated, kept in
// a small memory LRU, and their stored bytes persisted in the SpanCache (re-verified on load),
// so a partly decoded span resumed by another process does not fetch its window again. A
// window being fetched is never fetched twice. Optionally (`coalesceBytes`), the following
// windows in the blob ride along in the same request; off by default: a window request runs
// beside its span's piece request, so it saves requests but no round trip, and on a scattered
// workload most neighbours are never used (python-minimal, 1 MiB spans: 435 KB of windows in
// 35 requests without, 740 KB in 20 with a 64 KiB budget; docs/benchmarks.md).
import { type ExternalWindow, type FetchRange, loadExternalWindow } from '@clip/archive-format';
import { ClipError, type Digest, DigestMismatchError, isClipError } from '@clip/shared';

/** What the loader did, for metrics and logs (LayerReader forwards them as ReaderEvents). */
export type WindowEvent =
  | { kind: 'window-fetch'; blob: Digest; start: number; end: number; windows: number }
  | { kind: 'window-mismatch'; blob: Digest; offset: number; attempt: number };

/** The cache the loader persists stored windows in (a SpanCache). */
export interface WindowCache {
  get(key: string, minLength?: number): Buffer | undefined | Promise<Buffer | undefined>;
  set(key: string, value: Buffer): void | Promise<void>;
}

export interface WindowLoaderOptions {
  fetchRange: FetchRange;
  cache?: WindowCache;
  onEvent?: (event: WindowEvent) => void;
  /** Inflated windows kept in memory (default 256, 8 MiB). */
  maxWindows?: number;
  /** Bytes a request may grow to by taking following windows along (default 0: one window per request). */
  coalesceBytes?: number;
}

export const DEFAULT_WINDOW_COALESCE_BYTES = 0;

/** Key of a stored window in a SpanCache. */
export function windowKey(ref: ExternalWindow): string {
  return `${ref.blob}/window/${ref.offset}+${ref.storedLength}`;
}

export class WindowLoader {
  readonly #fetchRange: FetchRange;
  readonly #cache: WindowCache | undefined;
  readonly #onEvent: (event: WindowEvent) => void;
  readonly #maxWindows: number;
  readonly #coalesceBytes: number;
  /** Inflated windows by key; insertion order = recency. */
  readonly #memory = new Map<string, Uint8Array>();
  readonly #inFlight = new Map<string, Promise<Uint8Array>>();
  /** Cache stores still running. */
  readonly #stores = new Set<Promise<void>>();

  constructor(options: WindowLoaderOptions) {
    this.#fetchRange = options.fetchRange;
    this.#cache = options.cache;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#maxWindows = options.maxWindows ?? 256;
    this.#coalesceBytes = options.coalesceBytes ?? DEFAULT_WINDOW_COALESCE_BYTES;
  }

  /**
   * The inflated, verified window `ref`. `following`: windows that come next in the blob (the
   * next spans' of the same layer), fetched in the same request when contiguous and not held.
   * Rejects with DigestMismatchError when the blob's bytes are not the archive's (twice).
   */
  load(ref: ExternalWindow, what: string, following: readonly ExternalWindow[] = []): Promise<Uint8Array> {
    const key = windowKey(ref);
    const held = this.#memory.get(key);
    if (held) {
      this.#memory.delete(key);
      this.#memory.set(key, held);
      return Promise.resolve(held);
    }
    const pending = this.#inFlight.get(key);
    if (pending) return pending;
    const promise = this.#loadMissing(ref, what, following);
    this.#track(key, promise);
    return promise;
  }

  #track(key: string, promise: Promise<Uint8Array>): void {
    this.#inFlight.set(key, promise);
    promise
      .then((window) => this.#remember(key, window))
      .catch(() => {})
      .finally(() => {
        if (this.#inFlight.get(key) === promise) this.#inFlight.delete(key);
      });
  }

  async #loadMissing(ref: ExternalWindow, what: string, following: readonly ExternalWindow[]): Promise<Uint8Array> {
    const fromCache = await this.#fromCache(ref, what);
    if (fromCache) return fromCache;
    const run = this.#run(ref, following);
    for (let attempt = 1; ; attempt++) {
      const start = run[0]!.offset;
      const last = run[run.length - 1]!;
      const end = last.offset + last.storedLength;
      this.#onEvent({ kind: 'window-fetch', blob: ref.blob, start, end, windows: run.length });
      const bytes = await this.#fetchRange(ref.blob, start, end).catch((error: unknown) => {
        // Say which window the failed request was for (the registry's message names the blob as a "layer").
        if (!isClipError(error)) throw error;
        throw new ClipError(error.code, `${what} (windows blob ${ref.blob} bytes ${start}-${end}): ${error.message}`, { cause: error });
      });
      const stored = bytes.subarray(0, ref.storedLength);
      try {
        const window = loadExternalWindow(ref, stored, what);
        this.#persist(ref, stored);
        this.#settleNeighbours(run.slice(1), bytes, start);
        return window;
      } catch (error) {
        if (!(error instanceof DigestMismatchError)) throw error;
        this.#onEvent({ kind: 'window-mismatch', blob: ref.blob, offset: ref.offset, attempt });
        if (attempt >= 2) throw error;
      }
    }
  }

  /** `ref` and the following windows that continue it in the blob, are not held, and fit the budget. */
  #run(ref: ExternalWindow, following: readonly ExternalWindow[]): ExternalWindow[] {
    const run = [ref];
    let end = ref.offset + ref.storedLength;
    for (const next of following) {
      if (next.blob !== ref.blob || next.offset !== end || end + next.storedLength - ref.offset > this.#coalesceBytes) break;
      const key = windowKey(next);
      if (this.#memory.has(key) || this.#inFlight.has(key)) break;
      run.push(next);
      end += next.storedLength;
    }
    return run;
  }

  /** Neighbours that came along: verified like any window; a bad one is simply not kept. */
  #settleNeighbours(neighbours: readonly ExternalWindow[], bytes: Uint8Array, start: number): void {
    for (const next of neighbours) {
      const key = windowKey(next);
      if (this.#memory.has(key) || this.#inFlight.has(key)) continue;
      const stored = bytes.subarray(next.offset - start, next.offset - start + next.storedLength);
      try {
        this.#remember(key, loadExternalWindow(next, stored, `window at ${next.offset}`));
        this.#persist(next, stored);
      } catch {
        // Fetched again (and reported) if a span ever needs it.
      }
    }
  }

  async #fromCache(ref: ExternalWindow, what: string): Promise<Uint8Array | undefined> {
    if (!this.#cache) return undefined;
    try {
      const stored = await this.#cache.get(windowKey(ref));
      return stored ? loadExternalWindow(ref, stored, what) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Settles when every cache store started so far has. */
  async flush(): Promise<void> {
    while (this.#stores.size > 0) await Promise.all([...this.#stores]);
  }

  #persist(ref: ExternalWindow, stored: Uint8Array): void {
    if (!this.#cache) return;
    const copy = Buffer.from(stored);
    const store: Promise<void> = Promise.resolve()
      .then(() => this.#cache!.set(windowKey(ref), copy))
      .catch(() => {})
      .finally(() => this.#stores.delete(store));
    this.#stores.add(store);
  }

  #remember(key: string, window: Uint8Array): void {
    this.#memory.delete(key);
    this.#memory.set(key, window);
    for (const oldest of this.#memory.keys()) {
      if (this.#memory.size <= this.#maxWindows) break;
      this.#memory.delete(oldest);
    }
  }
}
