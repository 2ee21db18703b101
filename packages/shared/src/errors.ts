// Typed errors with stable codes (modelled on undici's errors): callers branch on
// `code`, users read `message`. Messages name what failed (registry, repository,
// digest, path) but never credentials.

export class ClipError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A reference string (image, layout, archive) that cannot be parsed. */
export class InvalidReferenceError extends ClipError {
  constructor(message: string) {
    super('CLIP_E_REFERENCE', message);
  }
}

/** Bad command-line or API arguments. */
export class UsageError extends ClipError {
  constructor(message: string) {
    super('CLIP_E_USAGE', message);
  }
}

/** A registry answered with an error or could not be reached. */
export class RegistryError extends ClipError {
  readonly status: number | undefined;
  constructor(message: string, options?: { status?: number; cause?: unknown }) {
    super('CLIP_E_REGISTRY', message, options);
    this.status = options?.status;
  }
}

/** Authentication or authorization with a registry failed. */
export class AuthError extends ClipError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLIP_E_AUTH', message, options);
  }
}

/**
 * A blob (layer) the image needs is not in the storage location. At runtime this is
 * the symptom of a wrong storage reference, so the message names digest and reference.
 */
export class LayerNotFoundError extends ClipError {
  readonly digest: string;
  readonly reference: string;
  constructor(digest: string, reference: string) {
    super('CLIP_E_LAYER_NOT_FOUND', `layer not found: ${digest} in ${reference} (is the storage reference right?)`);
    this.digest = digest;
    this.reference = reference;
  }
}

/** A manifest or tag that does not exist. */
export class ManifestNotFoundError extends ClipError {
  constructor(reference: string, detail?: string) {
    super('CLIP_E_MANIFEST_NOT_FOUND', `manifest not found: ${reference}${detail ? ` (${detail})` : ''}`);
  }
}

/** Content whose digest does not match the one it was addressed by or recorded with. */
export class DigestMismatchError extends ClipError {
  constructor(what: string, expected: string, actual: string) {
    super('CLIP_E_DIGEST_MISMATCH', `digest mismatch for ${what}: expected ${expected}, got ${actual}`);
  }
}

/** An operation that did not finish within its time bound. */
export class TimeoutError extends ClipError {
  constructor(message: string) {
    super('CLIP_E_TIMEOUT', message);
  }
}

/** A `.clip` archive that is corrupt, truncated, or of an unsupported version. */
export class ArchiveFormatError extends ClipError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLIP_E_ARCHIVE_FORMAT', message, options);
  }
}

/** A layer whose tar or compressed stream is malformed or hostile. */
export class LayerFormatError extends ClipError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLIP_E_LAYER_FORMAT', message, options);
  }
}

/** An image platform that the image index does not contain. */
export class PlatformNotFoundError extends ClipError {
  constructor(requested: string, available: string[]) {
    super('CLIP_E_PLATFORM', `platform ${requested} not found in image index; available: ${available.join(', ') || '(none)'}`);
  }
}

/** A path that does not exist in an archive. */
export class PathNotFoundError extends ClipError {
  constructor(path: string) {
    super('CLIP_E_PATH_NOT_FOUND', `no such file in archive: ${path}`);
  }
}

/** Reading or writing a local file or stream failed (the message names it; `cause` keeps the system error). */
export class IoError extends ClipError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLIP_E_IO', message, options);
  }
}

/** A path inside the image that must be a regular file is not. */
export class NotAFileError extends ClipError {
  constructor(message: string) {
    super('CLIP_E_NOT_FILE', message);
  }
}

/** Symbolic links inside the image loop (or nest too deep). */
export class SymlinkLoopError extends ClipError {
  constructor(path: string) {
    super('CLIP_E_SYMLINK_LOOP', `too many levels of symbolic links: ${path}`);
  }
}

/** A disk cache directory that cannot be created or used. */
export class CacheDirError extends ClipError {
  constructor(dir: string, reason: string) {
    super('CLIP_E_CACHE_DIR', `cannot use disk cache directory ${dir}: ${reason}`);
  }
}

export function isClipError(error: unknown): error is ClipError {
  return error instanceof ClipError;
}
