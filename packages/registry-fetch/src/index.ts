// @clip/registry-fetch: images in and out of registries and OCI layouts — open an image
// source (layout, oci-archive, registry) and read its manifests and blob ranges; push images;
// referrers; and the .clip archive as a registry artifact (published by `clip publish`,
// found and pulled by `clip mount <ref>`, `clip pull-archive`, `clip index --reuse`).
export { openImageSource, type OpenImageSourceOptions } from './open.js';
export type {
  Descriptor,
  ImageConfig,
  ImageRuntimeConfig,
  ImageSource,
  LayerDescriptor,
  Platform,
  RangeOptions,
  RawManifest,
  ResolvedImage,
  ResolveOptions,
  SourceStats,
} from './image-source.js';
export { LayoutSource, OciArchiveSource, REF_NAME_ANNOTATION } from './layout-source.js';
export { RegistrySource } from './registry-source.js';
export { hostPlatform, selectPlatform } from './platform.js';
/** Re-exported from @clip/shared (where the CLI parses flags without loading HTTP clients). */
export { DEFAULT_HOSTS_DIR, formatPlatform, parsePlatform, resolveHostsDir } from '@clip/shared';
export { MEDIA_TYPE } from './media-types.js';
export { ImageFormatError } from './errors.js';
export { resolveCredentials, type CredentialOptions, type Credentials, type ResolvedCredentials } from './credentials.js';
export {
  backoffDelay,
  isRetryableError,
  isRetryableStatus,
  retryPolicy,
  sleep,
  type RetryOptions,
  type RetryPolicy,
} from './retry.js';
export {
  openRegistryTarget,
  pushBlob,
  pushImage,
  pushManifest,
  type PushOptions,
  type PushProgress,
  type PushResult,
  type RegistryTarget,
} from './push.js';
export {
  listReferrers,
  parseArtifactManifest,
  pushReferrer,
  referrersTag,
  type PushedReferrer,
  type ReferrerArtifact,
} from './referrers.js';
// The .clip archive as an OCI artifact.
export {
  ARCHIVE_ARTIFACT_TYPE,
  ARCHIVE_LAYER_MEDIA_TYPE,
  ArchiveNotPublishedError,
  WINDOWS_LAYER_MEDIA_TYPE,
} from './archive-artifact/artifact.js';
export {
  findPublishedArchive,
  listPullCandidates,
  pullArchive,
  verifyArchive,
  type PublishedArchive,
  type PullArchiveOptions,
  type PullArchiveResult,
} from './archive-artifact/pull.js';
export { isRegistryArgument, resolveArchiveArgument, type ResolveArchiveOptions } from './archive-artifact/resolve-argument.js';
export { reusePublishedArchive, type ReuseOptions } from './archive-artifact/reuse.js';
export { cachedArchivePath, defaultArchiveCacheDir } from './archive-artifact/archive-cache.js';
// The build-time access profile: a second layer of the archive artifact.
export {
  checkProfileSize,
  countProfileFiles,
  MAX_PROFILE_BYTES,
  PROFILE_LAYER_MEDIA_TYPE,
  profileLayer,
  profileSidecarPath,
  signProfile,
  type LoadedProfile,
} from './archive-artifact/profile.js';
// Which archive a worker may serve for a reference, and every check on it (docs/security.md).
export {
  listArchiveCandidates,
  loadArchiveForReference,
  type CandidateReport,
  type LoadArchiveOptions,
  type LoadedArchive,
  type TrustBasis,
  type TrustOptions,
} from './archive-trust/load.js';
export { verifyArchiveBinding, type BindingExpectation, type RepositoryName } from './archive-trust/verify-archive-binding.js';
export { ArchiveUnboundError, ArchiveUntrustedError } from './archive-trust/errors.js';
export { BOUND_MANIFEST_ANNOTATION, bindIndexBytes, boundArtifacts } from './archive-trust/bound-index.js';
export { archiveSizeLimit } from './archive-trust/fetch-archive.js';
export { artifactSignature, pushBoundIndex } from './archive-trust/publish-binding.js';
export { bindingPayload, checkSignature, keyFingerprint, loadSigningKey, loadVerifyKey, signBinding } from './archive-trust/signature.js';
// Mirrors and pull-through caches configured by containerd hosts.toml (docs/fleet.md).
export {
  HostsConfigError,
  loadHostsConfig,
  parseHostsToml,
  type HostCapability,
  type HostConfig,
  type LoadedHosts,
} from './hosts/hosts-config.js';
export { DEFAULT_MIRROR_STALL_MS, MirroredSource, type MirrorOptions } from './hosts/mirrored-source.js';
export type { HostStats } from './hosts/host-set.js';
export { hostStatsPrometheus } from './hosts/host-metrics.js';
export { openHostSources } from './hosts/host-sources.js';
export { warmMirrors, type WarmedMirror, type WarmOptions, type WarmResult } from './hosts/warm.js';
