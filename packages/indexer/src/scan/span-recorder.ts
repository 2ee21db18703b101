// Cuts a layer's compressed stream into spans (one per checkpoint) and each span into
// pieces of about pieceSize bytes, hashing every piece as the bytes go by. Each piece also
// records a lower bound on the uncompressed output its bytes guarantee: the uncompressed
// offset of the last block/frame boundary reported at or before the piece's end.
// With PieceCuts the recorder only reports where pieces lie and another thread hashes them
// (the worker scan: the main thread has the compressed bytes too, see piece-hasher.ts).
// `extraPieceEnds` (compressed byte offsets, ascending) also end a piece there: a read that
// ends at such a point (a profiled read, profile-checkpoints.ts) fetches no byte past it.
import { createHash, type Hash } from 'node:crypto';
import type { Checkpoint, Span, SpanPiece } from '@clip/archive-format';

/** A point where decoding is known to have produced `uncompressed` bytes from the first `bit` bits. */
export interface Boundary {
  bit: number;
  uncompressed: number;
}

/**
 * Pieces left for someone else to hash. `ranges`: [start, end) compressed byte offsets of
 * every closed piece, flat and in order, appended as pieces close (a consumer may drain it);
 * pieces of a dropped empty span are included. `kept`: for each piece of `spans` (in order),
 * its index among all closed pieces. Their digests in `spans` are placeholders meanwhile.
 */
export interface PieceCuts {
  ranges: number[];
  kept: number[];
}

/** The digest of a piece whose hash is computed elsewhere (PieceCuts). */
export const UNHASHED_PIECE = `sha256:${'0'.repeat(64)}` as const;

export class SpanRecorder {
  readonly spans: Span[] = [];
  /** Absolute compressed bytes consumed so far. */
  position = 0;
  private current: { checkpoint: Checkpoint; pieces: SpanPiece[]; cutIndexes: number[] } | undefined;
  private pieceStart = 0;
  /** Undefined with PieceCuts: nothing is hashed here. */
  private hash: Hash | undefined;
  private lastBoundary = 0;
  private closedPieces = 0;
  private nextExtraEnd = 0;

  /**
   * @param identity uncompressed layers: the lower bound of a piece is simply its end.
   * @param onWindow e.g. starts compressing the window while the scan goes on.
   */
  constructor(
    private readonly pieceSize: number,
    private readonly identity = false,
    /** Called with every checkpoint that has a window, when its span starts. */
    private readonly onWindow?: (checkpoint: Checkpoint) => void,
    /** Record piece ranges here instead of hashing them. */
    private readonly cuts?: PieceCuts,
    /** Compressed byte offsets (ascending) where a piece ends besides every pieceSize bytes. */
    private readonly extraPieceEnds: readonly number[] = [],
  ) {
    this.hash = cuts ? undefined : createHash('sha256');
  }

  /** Uncompressed offset where the current span starts (undefined before the first). */
  get spanStart(): number | undefined {
    return this.current?.checkpoint.uncompressedOffset;
  }

  /**
   * Ends the current span (if any) at the current position and starts one at `checkpoint`.
   * `sharedByte` is the byte holding a mid-byte checkpoint's first bit, already consumed:
   * it is the last byte of the previous span and the first of this one.
   */
  start(checkpoint: Checkpoint, sharedByte?: number): void {
    this.end(checkpoint.uncompressedOffset, true);
    const startByte = Math.floor(checkpoint.compressedBitOffset / 8);
    this.current = { checkpoint, pieces: [], cutIndexes: [] };
    if (checkpoint.window.length > 0) this.onWindow?.(checkpoint);
    this.pieceStart = startByte;
    if (!this.cuts) this.hash = createHash('sha256');
    this.lastBoundary = checkpoint.uncompressedOffset;
    if (startByte < this.position) {
      if (sharedByte === undefined || this.position - startByte !== 1) {
        throw new Error(`internal: span starts at byte ${startByte} but ${this.position} bytes are consumed`);
      }
      // With cuts the piece's range simply starts one byte early.
      this.hash?.update(Uint8Array.of(sharedByte));
    }
  }

  /** Consumes the next compressed bytes; `boundary`, if given, lies at or before their end. */
  consume(bytes: Uint8Array, boundary?: Boundary): void {
    let offset = 0;
    while (offset < bytes.length) {
      const pieceEnd = Math.min(this.pieceStart + this.pieceSize, this.nextExtraPieceEnd());
      const take = Math.min(bytes.length - offset, pieceEnd - this.position);
      this.hash?.update(bytes.subarray(offset, offset + take));
      this.position += take;
      offset += take;
      if (this.position === pieceEnd && this.current) {
        const bound = this.identity
          ? this.current.checkpoint.uncompressedOffset + (pieceEnd - Math.floor(this.current.checkpoint.compressedBitOffset / 8))
          : boundary && boundary.bit <= pieceEnd * 8
            ? boundary.uncompressed
            : this.lastBoundary;
        this.closePiece(bound);
      }
    }
    if (boundary) this.lastBoundary = boundary.uncompressed;
  }

  /** The first extra piece end past the bytes consumed so far (Infinity when none). */
  private nextExtraPieceEnd(): number {
    const ends = this.extraPieceEnds;
    while (this.nextExtraEnd < ends.length && ends[this.nextExtraEnd]! <= this.position) this.nextExtraEnd++;
    return ends[this.nextExtraEnd] ?? Number.POSITIVE_INFINITY;
  }

  private closePiece(uncompressedEnd: number, span = this.current!): void {
    let digest: SpanPiece['digest'];
    if (this.cuts) {
      this.cuts.ranges.push(this.pieceStart, this.position);
      span.cutIndexes.push(this.closedPieces);
      digest = UNHASHED_PIECE;
    } else {
      digest = `sha256:${this.hash!.digest('hex')}`;
      this.hash = createHash('sha256');
    }
    this.closedPieces++;
    span.pieces.push({ compressedEnd: this.position, uncompressedEnd, digest });
    this.pieceStart = this.position;
  }

  /**
   * Ends the last span at the current position with the given uncompressed end. A span
   * that produced no output is dropped (unless it is the only one): it is never needed.
   */
  finish(uncompressedEnd: number): void {
    this.end(uncompressedEnd, this.spans.length > 0);
  }

  private end(uncompressedEnd: number, dropIfEmpty: boolean): void {
    const span = this.current;
    if (!span) return;
    this.current = undefined;
    if (dropIfEmpty && uncompressedEnd === span.checkpoint.uncompressedOffset) return;
    if (this.position > this.pieceStart || span.pieces.length === 0) this.closePiece(uncompressedEnd, span);
    else span.pieces[span.pieces.length - 1]!.uncompressedEnd = uncompressedEnd;
    this.spans.push({ checkpoint: span.checkpoint, uncompressedEnd, pieces: span.pieces });
    this.cuts?.kept.push(...span.cutIndexes);
  }
}
