// @clip/read-engine: random access into unmodified layers. A file range becomes layer spans,
// the compressed bytes from each span's checkpoint are fetched (FetchRange), verified piece
// by piece, decoded (zran for gzip, frames for zstd) and cached (memory and disk LRU).
export {
  spanKey,
  compressedKey,
  DEFAULT_LIVE_DECODERS,
  DEFAULT_PIECE_CACHE_BYTES,
  LayerReader,
  type SpanCache,
  type LayerRange,
  type LayerReaderOptions,
  type LayerSource,
  type ReaderEvent,
  type ReadPriority,
} from './layer-reader.js';
export {
  FetchScheduler,
  Urgency,
  DEFAULT_FETCH_SLOTS,
  type FetchSchedulerOptions,
  type FetchSchedulerStats,
} from './fetch-scheduler.js';
export { resolveImagePath, type PathLookup, type ResolvedPath } from './resolve-path.js';
export { MemorySpanCache } from './cache/memory-cache.js';
export { DiskSpanCache, type DiskCacheEvents, type DiskCacheOptions } from './cache/disk-cache.js';
export { compressedRangeFor, decompressSpan, spanIndexAt, verifySpanPieces } from './zran/decompress-span.js';
export { completeFramesLength, ZstdFrameSplitter, type FrameEnd } from './zran/zstd-frames.js';
export { createSpanDecoder, type SpanDecoder } from './zran/span-decoder.js';
