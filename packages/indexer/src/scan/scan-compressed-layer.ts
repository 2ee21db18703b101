// The one-pass layer scanner: decompresses a layer once, hands every uncompressed chunk to
// the caller (the tar indexer) and records the spans/checkpoints/pieces that later let the
// mounter fetch and decompress only the ranges it needs.
import { createHash } from 'node:crypto';
import { type Checkpoint, type LayerCompression, type Span, storeWindowAsync } from '@clip/archive-format';
import { type Digest, UsageError } from '@clip/shared';
import { createGzipInflater, type GzipInflaterKind } from './gzip-inflater.js';
import { scanGzip } from './gzip-scan.js';
import { scanPlain } from './plain-scan.js';
import { SpanRecorder, type PieceCuts } from './span-recorder.js';
import type { ScanSink } from './scan-sink.js';

/** As create-archive.ts's DEFAULT_SPAN_SIZE (why: there). */
export const DEFAULT_SPAN_SIZE = 1024 * 1024;
/** 128 KiB: python-minimal import workload fetches 16.9 MB instead of 20.8 MB (512 KiB) for +1% archive size (docs/benchmarks.md). */
export const DEFAULT_PIECE_SIZE = 128 * 1024;

/** The `digest` of a scan whose caller hashes the compressed bytes. */
export const UNHASHED: Digest = `sha256:${'0'.repeat(64)}`;

export interface LayerScan {
  spans: Span[];
  compressedSize: number;
  uncompressedSize: number;
  /** sha256 of the compressed bytes (the blob digest). */
  digest: Digest;
  /** sha256 of the uncompressed bytes (UNHASHED when the caller hashes them). */
  diffId: Digest;
}

/**
 * One pass over a layer's compressed bytes: decompresses, calls onUncompressed with every
 * uncompressed chunk in order (awaiting it = backpressure), records checkpoints about every
 * spanSize bytes of uncompressed output (gzip: at deflate block boundaries; zstd: at frame
 * starts; none: exactly), and pieces of about pieceSize compressed bytes each with a sha256.
 * Chunks passed to onUncompressed are the callee's to keep (they may be views of a larger
 * buffer the scanner no longer writes). Only with gzip and `outputBuffer` may the callee
 * transfer a chunk's ArrayBuffer: each is then one whole buffer from `outputBuffer`.
 */
export async function scanCompressedLayer(
  compressed: AsyncIterable<Uint8Array>,
  compression: LayerCompression,
  options: {
    spanSize: number;
    pieceSize?: number;
    /** gzip: which inflater finds block boundaries (default: native when built); results are identical. */
    gzipInflater?: GzipInflaterKind;
    /**
     * false: the caller hashes the compressed bytes itself (e.g. on another thread) and the
     * returned `digest` is only a placeholder; default true.
     */
    hashCompressed?: boolean;
    /** false: the caller hashes the uncompressed chunks itself (`diffId` is a placeholder); default true. */
    hashUncompressed?: boolean;
    /**
     * gzip: false skips zlib's CRC-32 and length checks of each member's trailer (native
     * inflater). Only when the compressed bytes' digest is verified (and the diffId checked):
     * that catches what the CRC would, and a corrupt deflate stream still fails. Default true.
     */
    gzipValidate?: boolean;
    /**
     * gzip: supplies the output buffers (GZIP_OUTPUT_BUFFER_SIZE bytes, contents irrelevant),
     * e.g. from a pool of buffers the callee gave back; each is emitted whole, exactly once.
     */
    outputBuffer?: () => Uint8Array;
    /**
     * Deflate each checkpoint window on the thread pool during the scan and keep the result
     * as `checkpoint.storedWindow` (the encoder then has nothing left to compress); default false.
     */
    storeWindows?: boolean;
    /**
     * Record where pieces lie here instead of hashing them (their digests in `spans` are
     * placeholders until the caller fills them in; see PieceCuts).
     */
    pieceCuts?: PieceCuts;
    /**
     * gzip: uncompressed offsets of deflate block boundaries (ascending) that get a checkpoint
     * besides the spanSize rule, e.g. where a profiled read starts (profile-checkpoints.ts).
     */
    extraCheckpoints?: readonly number[];
    /** Compressed byte offsets (ascending) where a piece also ends, e.g. where a profiled read's block ends. */
    extraPieceEnds?: readonly number[];
  },
  onUncompressed: (chunk: Uint8Array) => void | Promise<void>,
): Promise<LayerScan> {
  const spanSize = options.spanSize;
  const pieceSize = options.pieceSize ?? DEFAULT_PIECE_SIZE;
  if (!(Number.isInteger(spanSize) && spanSize > 0)) throw new UsageError(`invalid span size ${spanSize}`);
  if (!(Number.isInteger(pieceSize) && pieceSize > 0)) throw new UsageError(`invalid piece size ${pieceSize}`);
  const blobHash = options.hashCompressed === false ? undefined : createHash('sha256');
  const diffHash = options.hashUncompressed === false ? undefined : createHash('sha256');
  let compressedSize = 0;
  const sink: ScanSink = {
    input(chunk) {
      blobHash?.update(chunk);
      compressedSize += chunk.length;
    },
    async output(chunk) {
      diffHash?.update(chunk);
      await onUncompressed(chunk);
    },
    uncompressedSize: 0,
  };
  const storing: Promise<void>[] = [];
  const onWindow = options.storeWindows
    ? (checkpoint: Checkpoint) => {
        const stored = storeWindowAsync(checkpoint.window).then((bytes) => {
          checkpoint.storedWindow = new Uint8Array(bytes);
        });
        stored.catch(() => {}); // awaited below, unless the scan fails first
        storing.push(stored);
      }
    : undefined;
  const recorder = new SpanRecorder(pieceSize, compression === 'none', onWindow, options.pieceCuts, options.extraPieceEnds);
  switch (compression) {
    case 'gzip':
      await scanGzip(
        compressed,
        spanSize,
        recorder,
        sink,
        await createGzipInflater(options.gzipInflater, { validate: options.gzipValidate !== false }),
        options.outputBuffer,
        options.extraCheckpoints,
      );
      break;
    case 'zstd': {
      // Loaded on first use: most layers are gzip, and a scan worker starts faster without fzstd.
      const { scanZstd } = await import('./zstd-scan.js');
      await scanZstd(compressed, spanSize, recorder, sink);
      break;
    }
    case 'none':
      await scanPlain(compressed, spanSize, recorder, sink);
      break;
    default:
      throw new UsageError(`unknown layer compression ${JSON.stringify(compression)}`);
  }
  await Promise.all(storing);
  return {
    spans: recorder.spans,
    compressedSize,
    uncompressedSize: sink.uncompressedSize,
    digest: blobHash ? `sha256:${blobHash.digest('hex')}` : UNHASHED,
    diffId: diffHash ? `sha256:${diffHash.digest('hex')}` : UNHASHED,
  };
}
