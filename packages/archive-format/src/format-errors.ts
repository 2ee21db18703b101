// The two ways the format fails: an encoder refusing its input, a decoder refusing its bytes.
// Both are ArchiveFormatError; guarded() makes sure nothing else escapes a decoder.
import { ArchiveFormatError, isClipError } from '@clip/shared';

export function fail(message: string): never {
  throw new ArchiveFormatError(`cannot encode archive: ${message}`);
}

export function corrupt(message: string): never {
  throw new ArchiveFormatError(`corrupt archive: ${message}`);
}

/** Runs `fn`, turning any non-clip exception (RangeError, TypeError from bad UTF-8...) into ArchiveFormatError. */
export function guarded<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (isClipError(error)) throw error;
    throw new ArchiveFormatError(`corrupt archive: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}
