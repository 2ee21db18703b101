// The bytes of one external window (v2.3), fetched from the windows blob by whoever holds a
// byte source, turned into the window: checked against its sha256 from the archive first (a
// wrong window would silently decode wrong bytes), then inflated (storeWindow()'s encoding)
// to exactly its declared length.
import { createHash } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { ArchiveFormatError, DigestMismatchError } from '@clip/shared';
import { MAX_WINDOW } from './binary-layout.js';
import type { ExternalWindow } from './model.js';

/**
 * `stored` = bytes [offset, offset + storedLength) of the windows blob. Throws
 * DigestMismatchError (bytes not the archive's) or ArchiveFormatError (they match but do not
 * inflate to the window: a broken archive).
 */
export function loadExternalWindow(ref: ExternalWindow, stored: Uint8Array, what: string): Uint8Array {
  const actual = `sha256:${createHash('sha256').update(stored).digest('hex')}`;
  if (stored.length !== ref.storedLength || actual !== ref.digest) {
    throw new DigestMismatchError(`${what} (windows blob ${ref.blob} bytes ${ref.offset}+${ref.storedLength})`, ref.digest, actual);
  }
  let inflated: Buffer;
  try {
    inflated = inflateRawSync(stored, { maxOutputLength: MAX_WINDOW });
  } catch (error) {
    throw new ArchiveFormatError(`corrupt archive: ${what} does not inflate`, { cause: error });
  }
  if (inflated.length !== ref.length)
    throw new ArchiveFormatError(`corrupt archive: ${what} is ${inflated.length} bytes, expected ${ref.length}`);
  return new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength);
}
