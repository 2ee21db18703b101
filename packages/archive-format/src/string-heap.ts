// The STRINGS section while encoding: names, link targets, media types and xattrs, each
// stored once.
import { ArchiveFormatError } from '@clip/shared';

const textEncoder = new TextEncoder();

/** A deduplicating byte heap for names, link targets, media types and xattrs. */
export class StringHeap {
  /** Byte chunks, and ASCII text kept as strings until concat() (no encoding per name). */
  private readonly chunks: Array<Uint8Array | string> = [];
  private readonly seen = new Map<string, number>();
  length = 0;

  addString(text: string): { offset: number; length: number } {
    if (isAscii(text)) return this.addAscii(text);
    return this.addBytes(textEncoder.encode(text), text);
  }

  /**
   * A directory entry or xattr name, keyed by the Latin-1 reading of its UTF-8 bytes (for
   * ASCII, the text itself).
   */
  addName(text: string): { offset: number; length: number } {
    if (isAscii(text)) return this.addAscii(text);
    const encoded = textEncoder.encode(text);
    return this.addBytes(encoded, latin1Key(encoded));
  }

  /** ASCII text: one byte per character, keyed by itself. */
  private addAscii(text: string): { offset: number; length: number } {
    const known = this.seen.get(text);
    if (known !== undefined) return { offset: known, length: text.length };
    const offset = this.length;
    this.chunks.push(text);
    this.length += text.length;
    this.seen.set(text, offset);
    if (this.length > 0xffffffff) throw new ArchiveFormatError('cannot encode: string table exceeds 4 GiB');
    return { offset, length: text.length };
  }

  addBytes(bytes: Uint8Array, key?: string): { offset: number; length: number } {
    if (key !== undefined) {
      const known = this.seen.get(key);
      if (known !== undefined) return { offset: known, length: bytes.length };
    }
    const offset = this.length;
    this.chunks.push(bytes);
    this.length += bytes.length;
    if (key !== undefined) this.seen.set(key, offset);
    if (this.length > 0xffffffff) throw new ArchiveFormatError('cannot encode: string table exceeds 4 GiB');
    return { offset, length: bytes.length };
  }

  concat(): Uint8Array {
    const out = Buffer.alloc(this.length);
    let at = 0;
    let text = '';
    const flushText = () => {
      if (text.length === 0) return;
      at += out.write(text, at, 'latin1');
      text = '';
    };
    for (const chunk of this.chunks) {
      if (typeof chunk === 'string') {
        // Consecutive strings are written in one call.
        text += chunk;
        if (text.length >= 1 << 16) flushText();
        continue;
      }
      flushText();
      out.set(chunk, at);
      at += chunk.length;
    }
    flushText();
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

export function latin1Key(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
