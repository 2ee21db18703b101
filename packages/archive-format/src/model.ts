// The in-memory model of a clip archive: what the indexer produces, what the encoder
// writes, what the decoder gives back. The binary layout lives in binary-layout.ts and is
// specified in docs/archive-format.md; this file is the vocabulary both sides share.
import type { Digest } from '@clip/shared';

export type FileType = 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** Where a regular file's bytes lie: a range of one layer's *uncompressed* tar stream. */
export interface DataLocation {
  /** Index into ArchiveContents.layers. */
  layer: number;
  /** Offset of the first data byte in the layer's uncompressed stream. */
  offset: number;
}

/** One inode: hardlinked paths share one. */
export interface Inode {
  /** 1-based inode number, unique in the archive; 1 is the root directory. */
  ino: number;
  type: FileType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Size in bytes (regular files; symlinks: length of the target). */
  size: number;
  /** Modification time, seconds since the epoch. */
  mtimeSec: number;
  /** Nanoseconds part of the modification time (0 when the tar carried none). */
  mtimeNsec: number;
  /** Device numbers for char/block devices. */
  rdevMajor: number;
  rdevMinor: number;
  /** Number of directory entries that name this inode (directories: 2 + subdirectories). */
  nlink: number;
  /** Symlink target. */
  linkTarget?: string;
  /** Extended attributes (from PAX `SCHILY.xattr.*` records), name → raw value. */
  xattrs?: Record<string, Uint8Array>;
  /** Regular files with size > 0 (in data-carrying archives, an offset in the DATA layer's stream). */
  data?: DataLocation;
}

/** One name in a directory. Entries are sorted by (parent, name) so a directory's children are contiguous. */
export interface DirEntry {
  /** Absolute path, `/` for the root, no trailing slash otherwise. */
  path: string;
  ino: number;
}

/**
 * A resumable position in a layer's compressed stream: decompression can restart here
 * given only the compressed bytes from here on (and the window).
 */
export interface Checkpoint {
  /** Offset in the layer's uncompressed stream where this span starts. */
  uncompressedOffset: number;
  /**
   * Position in the compressed blob, in bits from its start. For gzip inside a deflate stream
   * this is a deflate block boundary (may be mid-byte); at a gzip member start or a zstd frame
   * start it is a multiple of 8 and `window` is empty.
   */
  compressedBitOffset: number;
  /** gzip: up to 32 KiB of uncompressed data that precedes this point (the LZ77 dictionary). */
  window: Uint8Array;
  /**
   * Optional, writers only: `window` already stored as the archive stores it (storeWindow()
   * in window-store.ts), e.g. deflated while the layer was still being scanned. The encoder uses it
   * instead of deflating the window again; it is never read from an archive.
   */
  storedWindow?: Uint8Array;
  /** What decompression starts with here. */
  kind: 'deflate-block' | 'gzip-member' | 'zstd-frame' | 'plain';
  /**
   * Archives with external windows (v2.3): where this checkpoint's window lies in the windows
   * blob. Then `window` is not in the archive (reading it throws): load the bytes by range,
   * check `digest`, inflate (read-engine's window loader does).
   */
  externalWindow?: ExternalWindow;
}

/** A checkpoint window stored in a separate windows blob (v2.3, docs/archive-format.md). */
export interface ExternalWindow {
  /** The windows blob (sha256 of the whole blob; a blob in the storage repository). */
  blob: Digest;
  /** Stored (deflated) window bytes [offset, offset + storedLength) of the blob. */
  offset: number;
  storedLength: number;
  /** sha256 of those stored bytes. */
  digest: Digest;
  /** Inflated length (≤ 32768). */
  length: number;
}

/**
 * A piece of a span: compressed bytes are fetched and verified piece by piece, so a read
 * that needs only the start of a span fetches only the first pieces.
 */
export interface SpanPiece {
  /** End (exclusive) of this piece in the compressed blob, in bytes. The piece starts where the previous ended (the first at floor(checkpoint bit offset / 8)). */
  compressedEnd: number;
  /** Lower bound on the uncompressed offset that can be produced from the compressed bytes up to compressedEnd. */
  uncompressedEnd: number;
  /** sha256 of this piece's compressed bytes. */
  digest: Digest;
}

/** The range between one checkpoint and the next. */
export interface Span {
  checkpoint: Checkpoint;
  /** Uncompressed end (exclusive) of this span = next span's start, or the layer's size. */
  uncompressedEnd: number;
  /** Pieces in order; the last one ends at the span's compressed end. */
  pieces: SpanPiece[];
}

export interface ArchiveLayer {
  digest: Digest;
  mediaType: string;
  compression: LayerCompression;
  compressedSize: number;
  uncompressedSize: number;
  diffId: Digest;
  spans: Span[];
  /**
   * Where the compressed bytes live. Absent = a registry blob named by `digest` (OCI mode);
   * 'archive' = the archive's own DATA section (data-carrying mode: `digest` is the sha256 of
   * that section, spans are its blocks).
   */
  source?: 'archive';
}

/** Where the image's layers can be fetched from at runtime. */
export interface StorageReference {
  /** Registry host[:port], e.g. `registry.example.com` or `127.0.0.1:5000`. */
  registry: string;
  repository: string;
  tag?: string;
  /** The manifest digest the archive was built from (pinned). */
  manifestDigest: Digest;
}

export interface ArchiveMetadata {
  /** Reference the image was indexed from (e.g. `oci:/build/layout:v1`), for logs. */
  sourceRef: string;
  /** Storage reference; absent only for data-carrying (v1-mode) archives. */
  storage?: StorageReference;
  manifestMediaType?: string;
  platform?: { os: string; architecture: string; variant?: string };
  /** Runtime config of the image (entrypoint, cmd, env, workdir, user...). */
  imageConfig: {
    entrypoint?: string[];
    cmd?: string[];
    env?: string[];
    workingDir?: string;
    user?: string;
    labels?: Record<string, string>;
    /** Signal that stops the container (e.g. SIGTERM); a runtime annotation. */
    stopSignal?: string;
  };
  /** Tool and version that wrote the archive. */
  createdBy: string;
}

/** Everything an archive holds, in memory. */
export interface ArchiveContents {
  metadata: ArchiveMetadata;
  layers: ArchiveLayer[];
  /** Index i holds inode number i + 1. */
  inodes: Inode[];
  entries: DirEntry[];
}
