// @clip/shared: the vocabulary every package speaks — typed errors, logfmt logging, digests,
// sizes, image references, atomic file writes, byte ranges, bounded concurrency. Nothing here
// knows about archives or layers.
export {
  ArchiveFormatError,
  AuthError,
  CacheDirError,
  ClipError,
  DigestMismatchError,
  InvalidReferenceError,
  IoError,
  isClipError,
  LayerFormatError,
  LayerNotFoundError,
  ManifestNotFoundError,
  NotAFileError,
  PathNotFoundError,
  PlatformNotFoundError,
  RegistryError,
  SymlinkLoopError,
  TimeoutError,
  UsageError,
} from './errors.js';
export { createLogger, formatLogfmt, silentLogger, type LogFields, type Logger, type LoggerOptions, type LogLevel } from './log.js';
export { isDigest, sha256Digest, verifyDigest, type Digest } from './digest.js';
export { formatSize, parseSize } from './size.js';
export {
  DOCKER_HUB,
  formatImageReference,
  isLoopbackRegistry,
  parseImageReference,
  parseRegistryReference,
  registryEndpointHost,
  type ImageReference,
  type OciArchiveReference,
  type OciLayoutReference,
  type RegistryReference,
} from './reference.js';
export { makeDirectories, writeFileAtomically } from './fs-atomic.js';
export { redactUserinfo } from './redact.js';
export { raceAbort } from './abort.js';
export { escapeBytes, escapeName } from './printable.js';
export { formatPlatform, parsePlatform, type Platform } from './platform.js';
export { DEFAULT_HOSTS_DIR, resolveHostsDir } from './hosts-dir.js';
export { parsePrefetchList, type PrefetchEntry } from './prefetch-list.js';
export { lastAtOrBefore, mergeRanges } from './ranges.js';
export { forEachConcurrent } from './concurrency.js';
