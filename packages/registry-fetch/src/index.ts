// @clip/registry-fetch: read images from OCI layouts, oci-archives and registries; push to
// registries. Import from subpaths (`@clip/registry-fetch/open`); this barrel is for convenience.
export * from './image-source.js';
export * from './open.js';
export * from './layout-source.js';
export * from './registry-source.js';
export * from './credentials.js';
export * from './platform.js';
export * from './media-types.js';
export * from './errors.js';
export { HostsConfigError, loadHostsConfig, type HostConfig, type LoadedHosts } from './hosts/hosts-config.js';
export { resolveHostsDir, DEFAULT_HOSTS_DIR } from './hosts/hosts-dir.js';
export { MirroredSource, type MirrorOptions } from './hosts/mirrored-source.js';
export type { HostStats } from './hosts/host-set.js';
export { warmMirrors, type WarmOptions, type WarmResult } from './hosts/warm.js';
