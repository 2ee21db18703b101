// Argument checks shared by every readBlobRange implementation.
import { UsageError } from '@clip/shared';

/** Throws unless [start, end) is a valid range (end exclusive), within `size` when known. */
export function checkRange(what: string, start: number, end: number, size?: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new UsageError(`bad byte range [${start}, ${end}) for ${what}`);
  }
  if (size !== undefined && end > size) {
    throw new UsageError(`byte range [${start}, ${end}) is outside ${what} of size ${size}`);
  }
}
