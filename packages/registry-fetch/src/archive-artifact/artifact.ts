// How a .clip archive is stored in a registry: an OCI artifact (image manifest with
// artifactType, the empty config, one layer = the archive) whose subject is the image
// manifest the archive indexes. Runtime workers find it through the referrers API or the
// fallback tag `sha256-<hex of the image manifest digest>`. Archives with external windows
// (v2.3) add a second layer, the windows blob; layers are found by media type.
import { ClipError } from '@clip/shared';

export const ARCHIVE_ARTIFACT_TYPE = 'application/vnd.clip.archive.v2';
/** Media type of the archive layer (the .clip bytes). */
export const ARCHIVE_LAYER_MEDIA_TYPE = 'application/vnd.clip.archive.v2';
/**
 * Media type of the archive's windows blob (v2.3 archives with external windows): an extra
 * layer of the artifact, after the archive, so registry GC keeps it; the same blob is what
 * workers read windows from by range in the storage repository.
 */
export const WINDOWS_LAYER_MEDIA_TYPE = 'application/vnd.clip.windows.v1';

/** No archive has been published for an image (or none that verifies). */
export class ArchiveNotPublishedError extends ClipError {
  constructor(message: string) {
    super('CLIP_E_ARCHIVE_NOT_PUBLISHED', message);
  }
}
