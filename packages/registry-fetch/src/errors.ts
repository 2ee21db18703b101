// Errors specific to reading images; the common ones live in @clip/shared.
import { ClipError } from '@clip/shared';

/** A manifest, index or config that is malformed or of a kind we do not read. */
export class ImageFormatError extends ClipError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLIP_E_IMAGE_FORMAT', message, options);
  }
}
