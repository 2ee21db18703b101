// @clip/indexer: an OCI image (layout, oci-archive or registry) → a .clip archive: one pass
// per layer (tar walk, overlay merge, checkpoints and piece digests), in worker threads.
// Also the data-carrying archive of a directory or tar, and `publish` (index + push + the
// archive pushed as a referrer of the image).
export {
  createArchive,
  CREATED_BY,
  DEFAULT_SPAN_SIZE,
  type CreateArchiveOptions,
  type IndexProgress,
  type IndexSummary,
} from './create-archive.js';
export { createDataArchive, type CreateDataArchiveOptions, type DataArchiveSummary } from './data-archive/create-data-archive.js';
export { publish, type PublishOptions, type PublishSummary } from './publish.js';
export type { PublishedProfile } from './publish-profile.js';
export { republishWithProfile, type RepublishOptions, type RepublishSummary } from './republish-profile.js';
