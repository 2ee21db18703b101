// Partly decoded spans whose decoder is still alive, so a read that needs more of the span
// feeds it only the pieces it lacks instead of decoding again from the checkpoint (the kernel
// reads a big file 128 KiB at a time: without this a 4 MiB span is decoded up to 32 times).
// Bounded: least recently used decoders are dropped (a later extension of their span then
// decodes from the checkpoint again).
import type { SpanDecoder } from './zran/span-decoder.js';

/** The live decoder was dropped or failed before this extension ran: decode from the checkpoint instead. */
export class StaleDecoderError extends Error {
  constructor(readonly reason?: unknown) {
    super('span decoder is no longer usable');
  }
}

/** Smallest buffer a growing decoded span starts with (it then doubles, up to the span's length). */
const MIN_CAPACITY = 256 * 1024;

export class LiveSpan {
  /** Pieces handed to the decoder, including those of extensions still queued. */
  #claimed = 0;
  #buffer: Buffer = Buffer.alloc(0);
  #length = 0;
  #chain: Promise<void> = Promise.resolve();
  #stale: unknown;
  /** Closed, or about to be once queued extensions finish: takes no new ones. */
  #retired = false;

  constructor(
    private readonly decoder: SpanDecoder,
    readonly spanLength: number,
  ) {}

  /** Uncompressed bytes decoded so far (a view; later extensions never rewrite it). */
  get decoded(): Buffer {
    return this.#buffer.subarray(0, this.#length);
  }

  get complete(): boolean {
    return this.#length >= this.spanLength;
  }

  /** False once it failed or was closed: callers start a new one. */
  get usable(): boolean {
    return this.#stale === undefined && !this.#retired;
  }

  /**
   * Decodes pieces [claimed, count) once `fetch(claimed)` has their bytes, after every
   * extension queued before; resolves to the span decoded so far. Rejects with StaleDecoderError
   * when an earlier extension failed (the caller restarts from the checkpoint).
   */
  extend(count: number, fetch: (fromPiece: number) => Promise<Uint8Array>): Promise<Buffer> {
    if (!this.usable) return Promise.reject(new StaleDecoderError(this.#stale));
    const from = this.#claimed;
    if (count <= from) return this.#chain.then(() => this.#decodedIfUsable());
    this.#claimed = count;
    const bytes = fetch(from);
    bytes.catch(() => {});
    const link = this.#chain.then(async () => {
      if (this.#stale !== undefined) throw new StaleDecoderError(this.#stale);
      try {
        this.#append(await this.decoder.push(await bytes));
      } catch (error) {
        this.#stale ??= error;
        throw error;
      }
    });
    this.#chain = link.catch(() => {});
    return link.then(() => this.decoded);
  }

  /** Frees the decoder once queued extensions are done. */
  close(): void {
    if (this.#retired) return;
    this.#retired = true;
    void this.#chain.then(() => this.decoder.close());
  }

  #decodedIfUsable(): Buffer {
    if (this.#stale !== undefined) throw new StaleDecoderError(this.#stale);
    return this.decoded;
  }

  #append(output: Buffer): void {
    if (output.length > this.spanLength - this.#length) output = output.subarray(0, this.spanLength - this.#length);
    if (output.length === 0) return;
    const needed = this.#length + output.length;
    if (this.#length === 0 && needed === this.spanLength) {
      // Decoded whole in one go: keep zlib's buffer, no copy.
      this.#buffer = output;
      this.#length = needed;
      return;
    }
    if (needed > this.#buffer.length) {
      const capacity = Math.min(this.spanLength, Math.max(needed, this.#buffer.length * 2, MIN_CAPACITY));
      const grown = Buffer.allocUnsafe(Math.max(capacity, needed));
      this.#buffer.copy(grown, 0, 0, this.#length);
      this.#buffer = grown;
    }
    output.copy(this.#buffer, this.#length);
    this.#length = needed;
  }
}

/** Live spans by span key, least recently used first out. */
export class LiveSpans {
  readonly #spans = new Map<string, LiveSpan>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.#spans.size;
  }

  /** The usable live span of `key` (marked as just used), if any. */
  get(key: string): LiveSpan | undefined {
    const live = this.#spans.get(key);
    if (!live) return undefined;
    this.#spans.delete(key);
    if (!live.usable) {
      live.close();
      return undefined;
    }
    this.#spans.set(key, live);
    return live;
  }

  add(key: string, live: LiveSpan): void {
    this.#spans.get(key)?.close();
    this.#spans.delete(key);
    if (this.max <= 0) return;
    this.#spans.set(key, live);
    for (const [oldest, span] of this.#spans) {
      if (this.#spans.size <= this.max) break;
      this.#spans.delete(oldest);
      span.close();
    }
  }

  /** Drops `key` if it still maps to `live` (a finished or failed span). */
  remove(key: string, live: LiveSpan): void {
    if (this.#spans.get(key) !== live) return;
    this.#spans.delete(key);
    live.close();
  }
}
