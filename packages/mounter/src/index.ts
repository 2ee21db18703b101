export { mount, DEFAULT_DISK_CACHE, DEFAULT_MEMORY_CACHE, DEFAULT_READ_TIMEOUT_MS } from './mount.js';
export type { LayerFetcher, MountHandle, MountOptions } from './mount.js';
export type { MountableArchive } from './archive-view.js';
export type { MetricsSnapshot } from './metrics.js';
export { MountpointError } from './errors.js';
