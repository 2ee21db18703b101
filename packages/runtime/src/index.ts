// @clip/runtime: start containers from lazy mounts. Public surface only; see README.md.
export { ImageMountPool } from './mount-pool.js';
export type { ImageMountPoolOptions, ImageMountLease, PooledMount, ArchiveResolver } from './mount-pool.js';
export { prepareBundle, removeBundle, findInit } from './bundle.js';
export type { PrepareBundleOptions, PreparedBundle, RemoveBundleOptions } from './bundle.js';
export { runContainer, pruneContainers } from './container.js';
export type { RunContainerOptions, ContainerSummary } from './container.js';
export { OciRuntime } from './oci-runtime.js';
export type { OciRuntimeOptions, RunOptions, RunResult } from './oci-runtime.js';
export {
  buildRuntimeSpec,
  parseVolume,
  containerArgs,
  containerEnv,
  DEFAULT_PATH,
  DEFAULT_CAPABILITIES,
  STOP_SIGNAL_ANNOTATION,
} from './oci-spec.js';
export type { ImageRuntimeConfig, ContainerOptions, NetworkMode, VolumeSpec, RuntimeSpec } from './oci-spec.js';
export { resolveUser } from './users.js';
export type { ResolvedUser } from './users.js';
export { ContainerConfigError, StateDirError, OciRuntimeError, MountServerError, OverlayError } from './errors.js';
export { recordProfile, checkProfileRuntime, ProfileInterruptedError, DEFAULT_PROFILE_SECONDS } from './profile.js';
export type { RecordProfileOptions, RecordedProfile } from './profile.js';
