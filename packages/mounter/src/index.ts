// @clip/mounter: the FUSE adapter. Opens an archive (file or https:// URL) and the byte source
// of its layers (registry or the archive itself), hands the metadata table to the native FUSE
// session and answers its reads through the read engine.
export { DEFAULT_DISK_CACHE, DEFAULT_MEMORY_CACHE, DEFAULT_READ_TIMEOUT_MS, mount, mountOptions, userAllowOther } from './mount.js';
export type { MountHandle, MountOptions } from './mount.js';
export type { LayerFetcher } from './layer-fetcher.js';
export type { MountableArchive } from './archive-view.js';
export type { MetricsSnapshot } from './metrics.js';
export { MountFailedError, MountpointError } from './errors.js';
// Commands that start mount servers check the addon first: one clear error, nothing started.
export { loadNativeFuse as checkFuseAddon } from '@clip/native-fuse';
export {
  holdMount,
  SERVER_CONNECTION_FD,
  superviseMount,
  type AttachMessage,
  type PrepareMessage,
  type ServerRole,
  type SupervisorOptions,
} from './supervisor.js';
export { checkMountpoint, forceUnmount, isMounted } from './mountpoint.js';
export { lockMountpoint, type MountLock } from './mount-lock.js';
export { openArchiveFetcher, openArchiveLocation, type OpenedArchive } from './archive-location.js';
export { isArchiveUrl } from './archive-url.js';
export type { HttpSourceOptions } from './http-archive-source.js';
export type { StorageOptions } from './storage-source.js';
export { readPrefetchList, type PrefetchEntry } from './prefetch-list.js';
export { DEFAULT_FIRST_RUN, FIRST_RUN_TECHNIQUES, parseFirstRun, type FirstRunTechniques } from './first-run.js';
export { entrypointProgram, prefetchEntrypoint, type EntrypointPrefetchResult } from './entrypoint-prefetch.js';
export { isElf, librarySearchPath, parseShebang, readElfDependencies, type ElfDependencies, type ReadAt } from './elf.js';
export { SiblingAhead, type SiblingAheadOptions } from './sibling-ahead.js';
