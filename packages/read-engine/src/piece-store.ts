// Verified compressed pieces of spans, kept so that a read needing more of a partly fetched
// span fetches only the pieces it lacks (when its live decoder is gone, the span is decoded
// again from its checkpoint, locally). Consecutive missing pieces go out as one range request; a piece already being
// fetched is awaited, never fetched twice. Bounded in bytes: whole spans leave, least
// recently used first (spans with fetches in flight stay).
import { createHash } from 'node:crypto';
import { DigestMismatchError } from '@clip/shared';

/** One piece: compressed bytes [start, end) of the blob and the sha256 they must have. */
export interface PieceRange {
  start: number;
  end: number;
  digest: string;
}

/**
 * One span's view of a FetchRange (the layer digest already bound), with the hooks the piece
 * verifier needs. Not a second byte source: LayerReader builds it from its FetchRange.
 */
export interface PieceFetch {
  /** Fetches compressed bytes [start, end) of the blob. */
  fetch(start: number, end: number): Promise<Uint8Array>;
  /** A fetched piece did not match its digest (attempt 1 is refetched once). */
  onMismatch?(attempt: number): void;
  /** Names the span in error messages. */
  what: string;
}

interface SpanPieces {
  parts: Array<Buffer | undefined>;
  pending: Array<Promise<Buffer> | undefined>;
  bytes: number;
  inFlight: number;
}

export function pieceDigest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export class PieceStore {
  readonly #maxBytes: number;
  /** Insertion order = recency (a use re-inserts). */
  readonly #spans = new Map<string, SpanPieces>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = Math.max(0, maxBytes);
  }

  /** Compressed bytes held (verified pieces). */
  get bytes(): number {
    return this.#bytes;
  }

  /** How many leading pieces of `key` are held (verified, not in flight). */
  heldPrefix(key: string): number {
    const state = this.#spans.get(key);
    if (!state) return 0;
    let count = 0;
    while (state.parts[count]) count++;
    return count;
  }

  /**
   * Adds already-verified-elsewhere bytes (e.g. a persisted prefix): each whole piece in
   * `bytes` (starting at pieces[0].start) is checked against its digest and kept.
   */
  seed(key: string, pieces: readonly PieceRange[], bytes: Uint8Array): void {
    const base = pieces[0]?.start ?? 0;
    const state = this.#state(key);
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (piece.end - base > bytes.length) break;
      if (state.parts[i] || state.pending[i]) continue;
      const slice = Buffer.from(bytes.subarray(piece.start - base, piece.end - base));
      if (pieceDigest(slice) !== piece.digest) break;
      this.#keep(state, i, slice);
    }
    this.#evict();
  }

  /** The held bytes of pieces [0, count), or undefined when one of them is not held. */
  held(key: string, count: number): Buffer | undefined {
    const state = this.#spans.get(key);
    if (!state || count <= 0) return undefined;
    const parts: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const part = state.parts[i];
      if (!part) return undefined;
      parts.push(part);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /**
   * The verified bytes of pieces [from, pieces.length) (`pieces` lists the span's pieces from
   * its first), fetching only the missing ones.
   */
  async prefix(key: string, pieces: readonly PieceRange[], source: PieceFetch, from = 0): Promise<Buffer> {
    const state = this.#state(key);
    const waits: Array<Buffer | Promise<Buffer>> = [];
    // Pieces another read is already fetching: if that fetch fails (it may have started while
    // the registry was down, and stalled), this read tries once on its own instead of failing too.
    const joined = new Set<number>();
    let runStart = -1;
    const flush = (runEnd: number) => {
      if (runStart < 0) return;
      this.#fetchRun(state, pieces, runStart, runEnd, source);
      runStart = -1;
    };
    for (let i = from; i < pieces.length; i++) {
      if (state.parts[i] || state.pending[i]) {
        if (!state.parts[i]) joined.add(i);
        flush(i);
        continue;
      }
      if (runStart < 0) runStart = i;
    }
    flush(pieces.length);
    for (let i = from; i < pieces.length; i++) {
      const held = state.parts[i];
      const pending = state.pending[i]!;
      waits.push(held ?? (joined.has(i) ? pending.catch(() => this.#ownAttempt(state, pieces, i, source)) : pending));
    }
    const parts = await Promise.all(waits);
    this.#evict();
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Piece `index` after a joined fetch of it failed: held by now, being fetched again, or fetched here. */
  #ownAttempt(state: SpanPieces, pieces: readonly PieceRange[], index: number, source: PieceFetch): Buffer | Promise<Buffer> {
    const held = state.parts[index];
    if (held) return held;
    if (!state.pending[index]) this.#fetchRun(state, pieces, index, index + 1, source);
    return state.pending[index]!;
  }

  /** Forgets a span's pieces (the span is complete, decoded, elsewhere). */
  discard(key: string): void {
    const state = this.#spans.get(key);
    if (!state || state.inFlight > 0) return;
    this.#bytes -= state.bytes;
    this.#spans.delete(key);
  }

  #state(key: string): SpanPieces {
    let state = this.#spans.get(key);
    if (state) {
      this.#spans.delete(key);
    } else {
      state = { parts: [], pending: [], bytes: 0, inFlight: 0 };
    }
    this.#spans.set(key, state);
    return state;
  }

  #keep(state: SpanPieces, index: number, bytes: Buffer): void {
    state.parts[index] = bytes;
    state.bytes += bytes.length;
    this.#bytes += bytes.length;
  }

  #fetchRun(state: SpanPieces, pieces: readonly PieceRange[], first: number, end: number, source: PieceFetch): void {
    const run = (async () => {
      const start = pieces[first]!.start;
      const stop = pieces[end - 1]!.end;
      for (let attempt = 1; ; attempt++) {
        const bytes = await source.fetch(start, stop);
        const parts: Buffer[] = [];
        let mismatch: DigestMismatchError | undefined;
        for (let i = first; i < end; i++) {
          const piece = pieces[i]!;
          const slice = Buffer.from(bytes.subarray(piece.start - start, piece.end - start));
          const actual = pieceDigest(slice);
          if (slice.length !== piece.end - piece.start || actual !== piece.digest) {
            const short =
              slice.length !== piece.end - piece.start ? ` (only ${slice.length} of ${piece.end - piece.start} bytes fetched)` : '';
            mismatch = new DigestMismatchError(`${source.what} piece ${i}${short}`, piece.digest, actual);
            break;
          }
          parts.push(slice);
        }
        if (!mismatch) return parts;
        source.onMismatch?.(attempt);
        // One refetch: a proxy or a torn response may have handed us bad bytes once.
        if (attempt >= 2) throw mismatch;
      }
    })();
    state.inFlight++;
    for (let i = first; i < end; i++) {
      const index = i;
      const promise = run.then((parts) => parts[index - first]!);
      promise.catch(() => {});
      state.pending[index] = promise;
    }
    run
      .then(
        (parts) => {
          for (let i = first; i < end; i++) {
            state.pending[i] = undefined;
            if (!state.parts[i]) this.#keep(state, i, parts[i - first]!);
          }
        },
        () => {
          for (let i = first; i < end; i++) state.pending[i] = undefined;
        },
      )
      .finally(() => {
        state.inFlight--;
      });
  }

  #evict(): void {
    for (const [key, state] of this.#spans) {
      if (this.#bytes <= this.#maxBytes) break;
      if (state.inFlight > 0) continue;
      this.#bytes -= state.bytes;
      this.#spans.delete(key);
    }
  }
}
