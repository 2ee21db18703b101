// @clip/snapshotter: containerd remote snapshotter (`clip snapshotter`). Public surface only;
// see docs/snapshotter.md.
export { startSnapshotterServer } from './server.js';
export type { SnapshotterServer, SnapshotterServerOptions } from './server.js';
export type { ArchiveResolver, ResolvedImage, FallbackReason } from './decision.js';
export { loadSnapshotsService } from './grpc-service.js';
export {
  SnapshotError,
  SnapshotNotFoundError,
  SnapshotExistsError,
  SnapshotPreconditionError,
  SnapshotArgumentError,
  ImageMountError,
} from './errors.js';
