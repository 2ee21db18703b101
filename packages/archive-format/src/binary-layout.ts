// Constants of the `.clip` v2 binary layout: magic, header, section ids, record sizes and
// the field offsets inside each record. docs/archive-format.md documents the same
// numbers field by field; keep the two in step.

export const MAGIC = Uint8Array.of(0x89, 0x43, 0x4c, 0x49, 0x50, 0x0d, 0x0a, 0x1a); // \x89 C L I P \r \n \x1a
export const FORMAT_MAJOR = 2;
export const FORMAT_MINOR = 0;
/** Minor version of data-carrying archives (v2.1: DATA + TABLES_DIGEST sections, flag bit 0). */
export const FORMAT_MINOR_DATA = 1;
/** Minor version of archives with compressed tables (v2.2: COMPRESSED section, flag bit 1), in either mode. */
export const FORMAT_MINOR_COMPRESSED = 2;
/** Minor version of archives whose checkpoint windows live in a separate blob (v2.3: flag bit 2). */
export const FORMAT_MINOR_EXTERNAL_WINDOWS = 3;
/** The newest minor version this code knows (named in "upgrade clip" messages). */
export const FORMAT_MINOR_LATEST = FORMAT_MINOR_EXTERNAL_WINDOWS;

/** Header: magic(8) major(2) minor(2) flags(4) sectionCount(4) inodeCount(4) entryCount(4) reserved(4). */
export const HEADER_SIZE = 32;
export const H_MAJOR = 8;
export const H_MINOR = 10;
export const H_FLAGS = 12;
export const H_SECTION_COUNT = 16;
export const H_INODE_COUNT = 20;
export const H_ENTRY_COUNT = 24;

/**
 * Header flags a reader must understand to read the archive (unknown bits → refuse).
 * Bit 0 = data-carrying mode (v2.1): the archive holds file contents in a DATA section.
 * Bit 1 = compressed tables (v2.2): sections listed in the COMPRESSED section are raw deflate.
 * Bit 2 = external windows (v2.3): no WINDOWS section; span window offsets point into a
 * separate windows blob named by WINDOWS_BLOB, each window verified by WINDOW_DIGESTS.
 */
export const FLAG_DATA_SECTION = 1;
export const FLAG_COMPRESSED_TABLES = 2;
export const FLAG_EXTERNAL_WINDOWS = 4;
export const KNOWN_FLAGS = FLAG_DATA_SECTION | FLAG_COMPRESSED_TABLES | FLAG_EXTERNAL_WINDOWS;

/** Section table entry: id(4) recordSize(4) offset(8) length(8). */
export const SECTION_ENTRY_SIZE = 24;
export const MAX_SECTIONS = 64;

export const SECTION = {
  metadata: 1,
  layers: 2,
  spans: 3,
  pieces: 4,
  windows: 5,
  inodes: 6,
  entries: 7,
  xattrs: 8,
  strings: 9,
  /** Data-carrying mode: compressed blocks of file contents; the last section, up to the checksum. */
  data: 10,
  /** Data-carrying mode: sha256 of every byte before it (header, section table, tables). */
  tablesDigest: 11,
  /** Compressed tables (flag bit 1): which sections are stored deflated, and their inflated lengths. */
  compressed: 12,
  /** External windows (flag bit 2): the windows blob's sha256 and size, one WINDOWS_BLOB_RECORD. */
  windowsBlob: 13,
  /** External windows (flag bit 2): one 32-byte sha256 per span (its stored window; zeros for none). */
  windowDigests: 14,
} as const;

/** The table sections but WINDOWS, in writer order: compressed by v2.2 writers, copied as they are by splitWindows. */
export const TABLES_BUT_WINDOWS = [
  SECTION.metadata,
  SECTION.layers,
  SECTION.spans,
  SECTION.pieces,
  SECTION.inodes,
  SECTION.entries,
  SECTION.xattrs,
  SECTION.strings,
] as const;

/** WINDOWS_BLOB section: exactly one record. */
export const WINDOWS_BLOB_RECORD = {
  size: 40,
  digest: 0, // 32 raw sha256 bytes of the whole windows blob
  length: 32, // u64: its size in bytes
} as const;
/** WINDOW_DIGESTS section: record i = sha256 of span i's stored window bytes. */
export const WINDOW_DIGEST_RECORD_SIZE = 32;

/**
 * COMPRESSED section record: one per compressed section. The section-table entry of a
 * compressed section says recordSize 0 (a blob), so a v2.0/v2.1 reader that checks lengths
 * against record sizes before it reads the flags still reaches its "upgrade clip" refusal.
 */
export const COMPRESSED_RECORD = {
  size: 24,
  id: 0, // u32: the compressed section's id (a table section, 1–9)
  recordSize: 4, // u32: record size of the inflated section (0 for blobs)
  uncompressedLength: 8, // u64: exact length after inflating
  encoding: 16, // u8: 1 = raw deflate (RFC 1951); 7 bytes reserved
} as const;
export const TABLE_ENCODING_DEFLATE_RAW = 1;
/** Deflate cannot expand beyond 1032:1, so a larger declared length is a lie (bounds memory). */
export const MAX_DEFLATE_RATIO = 1032;
/** Inflated tables a reader holds at most, in total (about 20 million inodes). */
export const MAX_INFLATED_TABLES = 2 ** 31;

export const CHECKSUM_SIZE = 32;

export const LAYER_RECORD = {
  size: 104,
  digest: 0, // 32 raw sha256 bytes
  diffId: 32, // 32 raw sha256 bytes
  compressedSize: 64, // u64
  uncompressedSize: 72, // u64
  mediaTypeOffset: 80, // u32 into strings
  mediaTypeLength: 84, // u32
  firstSpan: 88, // u32
  spanCount: 92, // u32
  compression: 96, // u8
  source: 97, // u8: 0 = registry blob; 1 = the archive's own DATA section
} as const;
export const LAYER_SOURCE_REGISTRY = 0;
export const LAYER_SOURCE_ARCHIVE = 1;

export const SPAN_RECORD = {
  size: 48,
  uncompressedOffset: 0, // u64
  uncompressedEnd: 8, // u64
  compressedBitOffset: 16, // u64
  firstPiece: 24, // u32
  pieceCount: 28, // u32
  windowOffset: 32, // u32 into windows
  windowStoredLength: 36, // u32
  windowLength: 40, // u32 (uncompressed, ≤ 32768)
  kind: 44, // u8
  windowEncoding: 45, // u8: 0 = none (no window), 1 = raw deflate
} as const;

export const PIECE_RECORD = {
  size: 48,
  compressedEnd: 0, // u64
  uncompressedEnd: 8, // u64
  digest: 16, // 32 raw sha256 bytes
} as const;

export const INODE_RECORD = {
  size: 88,
  type: 0, // u8
  flags: 1, // u8: bit 0 = has data location, bit 1 = has link target
  mode: 4, // u32
  uid: 8, // u32
  gid: 12, // u32
  size_: 16, // u64
  mtimeSec: 24, // i64
  mtimeNsec: 32, // u32
  nlink: 36, // u32
  rdevMajor: 40, // u32
  rdevMinor: 44, // u32
  linkTargetOffset: 48, // u32 into strings
  linkTargetLength: 52, // u32
  firstXattr: 56, // u32
  xattrCount: 60, // u32
  dataOffset: 64, // u64
  dataLayer: 72, // u32
  firstChild: 76, // u32 index into entries (directories)
  childCount: 80, // u32
} as const;
export const INODE_FLAG_DATA = 1;
export const INODE_FLAG_LINK_TARGET = 2;

export const ENTRY_RECORD = {
  size: 16,
  parent: 0, // u32 parent inode
  ino: 4, // u32
  nameOffset: 8, // u32 into strings
  nameLength: 12, // u32
} as const;

export const XATTR_RECORD = {
  size: 16,
  nameOffset: 0,
  nameLength: 4,
  valueOffset: 8,
  valueLength: 12,
} as const;

export const FILE_TYPES = ['file', 'directory', 'symlink', 'char', 'block', 'fifo', 'socket'] as const;
/** Type byte = index in FILE_TYPES + 1 (0 is invalid). */
export const DIRECTORY_TYPE_CODE = 2;
export const COMPRESSIONS = ['none', 'gzip', 'zstd'] as const;
export const CHECKPOINT_KINDS = ['deflate-block', 'gzip-member', 'zstd-frame', 'plain'] as const;
export const ROOT_INO = 1;
export const MAX_WINDOW = 32768;
