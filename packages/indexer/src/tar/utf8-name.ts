// Names in clip archives are UTF-8 text. A tar name that is not valid UTF-8 used to be
// decoded with U+FFFD replacements, so `a\xff` and `a\xfe` became one file (the later one's
// content) without a word. Such names are refused: the layer fails with a LayerFormatError
// naming the entry's raw bytes (escaped), never merged.
import { escapeBytes } from '@clip/shared';

const strict = new TextDecoder('utf-8', { fatal: true });

/** Thrown while decoding a header field; the tar walk turns it into a LayerFormatError. */
export class NonUtf8NameError extends Error {
  readonly escaped: string;
  constructor(bytes: Uint8Array) {
    const escaped = escapeBytes(bytes);
    super(`name "${escaped}" is not valid UTF-8`);
    this.escaped = escaped;
  }
}

/** UTF-8 text of a name or link field, or NonUtf8NameError. */
export function decodeUtf8Name(bytes: Uint8Array): string {
  try {
    return strict.decode(bytes);
  } catch {
    throw new NonUtf8NameError(bytes);
  }
}
