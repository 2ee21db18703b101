// Errors of archive trust: an archive that fails a binding check, and a reference that binds
// no archive while the operator has not opted into referrers.
import { ClipError } from '@clip/shared';

/** An archive that does not belong to the image it was found for (kind, storage, manifest, layers). */
export class ArchiveUntrustedError extends ClipError {
  constructor(message: string) {
    super('CLIP_E_ARCHIVE_UNTRUSTED', message);
  }
}

/** The deployed reference pins no archive and no other trust source was configured. */
export class ArchiveUnboundError extends ClipError {
  constructor(message: string) {
    super('CLIP_E_ARCHIVE_UNBOUND', message);
  }
}
