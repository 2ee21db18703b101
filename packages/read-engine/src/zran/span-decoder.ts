// Incremental decoding of one span: a decoder started at the span's checkpoint is fed the
// span's compressed bytes in order (piece by piece, as reads need them) and returns the new
// output each time, so extending a span costs only the new bytes instead of a re-decode from
// the checkpoint. The concatenated output equals decompressSpan() of the concatenated input.
import { constants, createGunzip, createInflateRaw, type Gunzip, type InflateRaw, type ZlibOptions } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import type { ArchiveLayer, Span } from '@clip/archive-format';
import { LayerFormatError, UsageError } from '@clip/shared';
import { deflateInputAt } from './deflate-prefix.js';
import { completeFramesLength } from './zstd-frames.js';

export interface SpanDecoder {
  /**
   * Decodes the span's next compressed bytes (contiguous with those pushed before, starting
   * at the checkpoint's byte) and resolves to the output they add, never past the span's end.
   * Pushes run in call order. After a rejection the decoder is unusable.
   */
  push(compressed: Uint8Array): Promise<Buffer>;
  /** Compressed bytes pushed so far. */
  readonly consumed: number;
  /** Uncompressed bytes produced so far. */
  readonly produced: number;
  /** Frees the zlib state (pending pushes reject). */
  close(): void;
}

/** Output buffer per zlib round trip: large, so one piece is a few thread-pool trips, not dozens. */
const ZLIB_CHUNK = 128 * 1024;

function spanAt(layer: ArchiveLayer, spanIndex: number): Span {
  const span = layer.spans[spanIndex];
  if (!span) throw new UsageError(`layer ${layer.digest} has no span ${spanIndex} (it has ${layer.spans.length})`);
  return span;
}

/** Uncompressed bytes (from span start) that `compressedLength` bytes from the span's first byte guarantee. */
function guaranteedLength(span: Span, compressedLength: number): number {
  const start = Math.floor(span.checkpoint.compressedBitOffset / 8);
  let end = span.checkpoint.uncompressedOffset;
  for (const piece of span.pieces) {
    if (piece.compressedEnd - start > compressedLength) break;
    end = piece.uncompressedEnd;
  }
  return end - span.checkpoint.uncompressedOffset;
}

/** The codec-specific part: turns the next input into the output it adds (uncapped). */
interface Engine {
  decode(input: Uint8Array, first: boolean): Promise<Buffer>;
  close(): void;
}

class Decoder implements SpanDecoder {
  #consumed = 0;
  #produced = 0;
  #chain: Promise<unknown> = Promise.resolve();
  #failure: unknown;
  readonly #span: Span;
  readonly #spanLength: number;

  constructor(
    span: Span,
    private readonly engine: Engine,
    private readonly what: string,
  ) {
    this.#span = span;
    this.#spanLength = span.uncompressedEnd - span.checkpoint.uncompressedOffset;
  }

  get consumed(): number {
    return this.#consumed;
  }

  get produced(): number {
    return this.#produced;
  }

  push(compressed: Uint8Array): Promise<Buffer> {
    const result = this.#chain.then(() => this.#push(compressed));
    this.#chain = result.catch(() => {});
    return result;
  }

  close(): void {
    this.#failure ??= new UsageError(`${this.what}: decoder closed`);
    this.engine.close();
  }

  async #push(compressed: Uint8Array): Promise<Buffer> {
    if (this.#failure !== undefined) throw this.#failure;
    if (compressed.length === 0) return Buffer.alloc(0);
    let output: Buffer;
    try {
      output = await this.engine.decode(compressed, this.#consumed === 0);
    } catch (error) {
      this.#failure = new LayerFormatError(
        `${this.what} does not decompress from its checkpoint: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
      throw this.#failure;
    }
    this.#consumed += compressed.length;
    const room = this.#spanLength - this.#produced;
    if (output.length > room) output = output.subarray(0, Math.max(0, room));
    this.#produced += output.length;
    const needed = guaranteedLength(this.#span, this.#consumed);
    if (this.#produced < needed) {
      this.#failure = new LayerFormatError(`${this.what} decompressed to ${this.#produced} bytes, expected at least ${needed}`);
      throw this.#failure;
    }
    return output;
  }
}

/** A zlib stream fed with write + Z_SYNC_FLUSH: each flush yields everything decodable so far. */
class ZlibEngine implements Engine {
  readonly #stream: InflateRaw | Gunzip;
  #chunks: Buffer[] = [];
  #error: Error | undefined;
  #onError: ((error: Error) => void) | undefined;

  constructor(
    kind: 'gzip-member' | 'deflate-block',
    window: Uint8Array,
    private readonly bitResidue: number,
  ) {
    const options: ZlibOptions = { chunkSize: ZLIB_CHUNK, finishFlush: constants.Z_SYNC_FLUSH };
    this.#stream =
      kind === 'gzip-member' ? createGunzip(options) : createInflateRaw(window.length > 0 ? { ...options, dictionary: window } : options);
    this.#stream.on('data', (chunk: Buffer) => this.#chunks.push(chunk));
    this.#stream.on('error', (error: Error) => {
      this.#error ??= error;
      this.#onError?.(error);
    });
  }

  decode(input: Uint8Array, first: boolean): Promise<Buffer> {
    if (this.#error) return Promise.reject(this.#error);
    const bytes = first ? deflateInputAt(input, this.bitResidue) : input;
    return new Promise<Buffer>((resolve, reject) => {
      let settled = false;
      const settle = (error: Error | undefined) => {
        if (settled) return;
        settled = true;
        this.#onError = undefined;
        const chunks = this.#chunks;
        this.#chunks = [];
        if (error) reject(error);
        else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
      };
      this.#onError = settle;
      this.#stream.write(bytes);
      this.#stream.flush(constants.Z_SYNC_FLUSH, () => settle(this.#error));
    });
  }

  close(): void {
    this.#onError?.(new Error('decoder closed'));
    this.#stream.close();
  }
}

/** zstd: only whole frames decode; an incomplete frame's bytes wait for the next push. */
class ZstdEngine implements Engine {
  #pending: Buffer = Buffer.alloc(0);

  async decode(input: Uint8Array): Promise<Buffer> {
    const bytes =
      this.#pending.length === 0 ? Buffer.from(input.buffer, input.byteOffset, input.byteLength) : Buffer.concat([this.#pending, input]);
    const whole = completeFramesLength(bytes);
    // Keep a copy of the tail: `input` belongs to the caller.
    this.#pending = Buffer.from(bytes.subarray(whole));
    return whole === 0 ? Buffer.alloc(0) : Buffer.from(zstdDecompress(bytes.subarray(0, whole)));
  }

  close(): void {
    this.#pending = Buffer.alloc(0);
  }
}

class PlainEngine implements Engine {
  async decode(input: Uint8Array): Promise<Buffer> {
    return Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  }

  close(): void {}
}

/**
 * A decoder positioned at span `spanIndex`'s checkpoint. `window`: the checkpoint's window when
 * it was loaded apart (external windows, v2.3); default `checkpoint.window`.
 */
export function createSpanDecoder(layer: ArchiveLayer, spanIndex: number, window?: Uint8Array): SpanDecoder {
  const span = spanAt(layer, spanIndex);
  const checkpoint = span.checkpoint;
  let engine: Engine;
  switch (checkpoint.kind) {
    case 'gzip-member':
    case 'deflate-block':
      engine = new ZlibEngine(checkpoint.kind, window ?? checkpoint.window, checkpoint.compressedBitOffset % 8);
      break;
    case 'zstd-frame':
      engine = new ZstdEngine();
      break;
    case 'plain':
      engine = new PlainEngine();
      break;
  }
  return new Decoder(span, engine, `layer ${layer.digest} span ${spanIndex}`);
}
