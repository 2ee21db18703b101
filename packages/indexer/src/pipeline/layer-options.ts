// What the layer indexer is told about one layer, and the scanCompressedLayer options that follow from
// it: one place for the in-thread scan and the worker (which does not load the tar walker).
import type { LayerCompression } from '@clip/archive-format';

/** Checkpoints and piece ends a layer gets besides the regular ones (profile-checkpoints.ts). */
export interface ExtraCuts {
  /** gzip: uncompressed offsets of block boundaries (ascending). */
  checkpoints: readonly number[];
  /** Compressed byte offsets (ascending). */
  pieceEnds: readonly number[];
}

export interface IndexLayerOptions {
  digest: string;
  compression: LayerCompression;
  spanSize: number;
  /** false: the caller hashes the compressed bytes (scan.digest is a placeholder). */
  hashCompressed?: boolean;
  /**
   * true: whoever reads the blob verifies its sha256 (ImageSource.openBlob, a local blob
   * read directly, or scan.digest compared by the caller), so gzip's own CRC-32 check is
   * redundant and skipped (about 50 ms of inflate time per 200 MB). Default false.
   */
  digestVerified?: boolean;
  /** gzip: extra checkpoints at these block boundaries (uncompressed offsets, ascending). */
  extraCheckpoints?: readonly number[];
  /** Extra piece ends at these compressed byte offsets (ascending). */
  extraPieceEnds?: readonly number[];
}

/** scanCompressedLayer's options that follow from IndexLayerOptions (shared by the in-thread and worker scans). */
export function scanOptionsFor(options: IndexLayerOptions): {
  spanSize: number;
  hashCompressed?: false;
  gzipValidate?: false;
  extraCheckpoints?: readonly number[];
  extraPieceEnds?: readonly number[];
} {
  return {
    spanSize: options.spanSize,
    ...(options.extraCheckpoints?.length ? { extraCheckpoints: options.extraCheckpoints } : {}),
    ...(options.extraPieceEnds?.length ? { extraPieceEnds: options.extraPieceEnds } : {}),
    ...(options.hashCompressed === false ? { hashCompressed: false as const } : {}),
    ...(options.digestVerified === true ? { gzipValidate: false as const } : {}),
  };
}
