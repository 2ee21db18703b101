// @clip/archive-format: the .clip archive (docs/archive-format.md) — its model, the one
// encoder/decoder of its bytes, data-carrying archives, and the byte-range interface layers
// are read through.
export type {
  ArchiveContents,
  ArchiveLayer,
  ArchiveMetadata,
  Checkpoint,
  DataLocation,
  DirEntry,
  ExternalWindow,
  FileType,
  Inode,
  LayerCompression,
  Span,
  SpanPiece,
  StorageReference,
} from './model.js';
export type { FetchRange } from './byte-range.js';
export { ARCHIVE_FORMAT_VERSION, type ClipArchive, type EncodeOptions } from './archive.js';
export { encodeArchive, encodeArchiveAsync, encodeDataArchive, encodeDataArchiveHead } from './encode.js';
export { openArchive, openArchiveHead, readArchiveFile } from './archive-reader.js';
export { archiveHeadLength } from './frame-verify.js';
export { compareNames, invalidNameReason } from './name-order.js';
export { storeWindow, storeWindowAsync } from './window-store.js';
export { splitWindows, type SplitArchive } from './external-windows.js';
export { loadExternalWindow } from './external-window-load.js';
export { dataSectionFetchRange, FIRST_READ_BYTES, openArchiveFromSource, type ArchiveByteSource } from './data-archive.js';
export { openFileByteSource } from './data-archive-file.js';
/** The first 8 bytes of every archive: lets a reader refuse other blobs before downloading them. */
export { MAGIC as ARCHIVE_MAGIC } from './binary-layout.js';
export { layerRangesOf, type LayerRanges } from './layer-ranges.js';
