// Decoding of one 512-byte tar header block (ustar, GNU and old-GNU dialects).
import { decodeUtf8Name } from './utf8-name.js';

export const BLOCK_SIZE = 512;

export interface RawTarHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** The typeflag character; `'\0'` for old-style regular files. */
  typeflag: string;
  linkname: string;
  devMajor: number;
  devMinor: number;
}

export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** A NUL-terminated string field; pure-ASCII names (nearly all) skip the UTF-8 decoder. */
function readString(block: Uint8Array, start: number, length: number): string {
  const limit = start + length;
  let end = start;
  let ascii = true;
  for (; end < limit; end++) {
    const byte = block[end]!;
    if (byte === 0) break;
    if (byte > 0x7f) ascii = false;
  }
  if (end === start) return '';
  if (ascii) return latin1(block, start, end);
  return decodeUtf8Name(block.subarray(start, end));
}

/** Node's native Latin-1 decoder (Buffer.prototype.latin1Slice), which takes any Uint8Array. */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }).latin1Slice;

/** ASCII bytes as a string. */
function latin1(block: Uint8Array, start: number, end: number): string {
  return latin1Slice.call(block, start, end);
}

/** An octal field (space/NUL padded) or a GNU base-256 field (high bit of the first byte set). */
export function readNumber(block: Uint8Array, start: number, length: number): number | undefined {
  const end = start + length;
  const first = block[start] ?? 0;
  if (first & 0x80) {
    // Base-256, two's complement when the first byte is 0xff.
    const negative = first === 0xff;
    let value = 0;
    for (let i = start; i < end; i++) {
      let byte = block[i]!;
      if (i === start) byte &= 0x7f;
      value = value * 256 + (negative ? 0xff - block[i]! : byte);
    }
    const result = negative ? -(value + 1) : value;
    return Number.isSafeInteger(result) ? result : undefined;
  }
  let i = start;
  while (i < end && block[i] === 0x20) i++;
  let value = 0;
  let digits = 0;
  for (; i < end; i++) {
    const byte = block[i]!;
    if (byte === 0 || byte === 0x20) break;
    if (byte < 0x30 || byte > 0x37) return undefined;
    value = value * 8 + (byte - 0x30);
    digits++;
  }
  // Trailing bytes after the terminator must be padding.
  for (; i < end; i++) if (block[i] !== 0 && block[i] !== 0x20) return undefined;
  return digits === 0 ? 0 : value;
}

/** Whether the stored checksum matches, computed unsigned (POSIX) or signed (old Sun tars). */
export function checksumMatches(block: Uint8Array): boolean {
  const stored = readNumber(block, 148, 8);
  if (stored === undefined) return false;
  return stored === unsignedChecksum(block) || stored === signedChecksum(block);
}

/** Sum of the bytes with the checksum field (148..156) counted as spaces. */
function unsignedChecksum(block: Uint8Array): number {
  if (block.byteOffset % 4 !== 0 || block.length !== BLOCK_SIZE) {
    let sum = 8 * 0x20;
    for (let i = 0; i < BLOCK_SIZE; i++) if (i < 148 || i >= 156) sum += block[i]!;
    return sum;
  }
  // Four bytes at a time, in two 16-bit lanes each (128 words cannot overflow a lane).
  const words = new Uint32Array(block.buffer, block.byteOffset, BLOCK_SIZE / 4);
  let even = 0;
  let odd = 0;
  for (let i = 0; i < BLOCK_SIZE / 4; i++) {
    if (i === 37) {
      i = 38; // skip words 37 and 38: bytes 148..156
      continue;
    }
    const word = words[i]!;
    even += word & 0x00ff00ff;
    odd += (word >>> 8) & 0x00ff00ff;
  }
  return 8 * 0x20 + (even & 0xffff) + (even >>> 16) + (odd & 0xffff) + (odd >>> 16);
}

/** The same sum with bytes read as signed (old Sun tars). */
function signedChecksum(block: Uint8Array): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    if (i >= 148 && i < 156) continue;
    const byte = block[i]!;
    sum += byte > 127 ? byte - 256 : byte;
  }
  return sum;
}

function isUstar(block: Uint8Array): boolean {
  // "ustar\0" (POSIX); GNU writes "ustar  \0" and uses the prefix area for other fields.
  return (
    block[257] === 0x75 && block[258] === 0x73 && block[259] === 0x74 && block[260] === 0x61 && block[261] === 0x72 && block[262] === 0
  );
}

/** Decodes a header block, or returns why it cannot be decoded. The checksum is checked by the caller. */
export function decodeHeader(block: Uint8Array): RawTarHeader | string {
  const mode = readNumber(block, 100, 8);
  if (mode === undefined) return 'invalid mode field';
  const uid = readNumber(block, 108, 8);
  if (uid === undefined) return 'invalid uid field';
  const gid = readNumber(block, 116, 8);
  if (gid === undefined) return 'invalid gid field';
  const size = readNumber(block, 124, 12);
  if (size === undefined) return 'invalid size field';
  const mtime = readNumber(block, 136, 12);
  if (mtime === undefined) return 'invalid mtime field';
  let name = readString(block, 0, 100);
  if (isUstar(block)) {
    const prefix = readString(block, 345, 155);
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  const typeflag = String.fromCharCode(block[156]!);
  const isDevice = typeflag === '3' || typeflag === '4';
  return {
    name,
    mode,
    uid,
    gid,
    size,
    mtime,
    typeflag,
    linkname: block[157] === 0 ? '' : readString(block, 157, 100),
    devMajor: isDevice ? (readNumber(block, 329, 8) ?? 0) : 0,
    devMinor: isDevice ? (readNumber(block, 337, 8) ?? 0) : 0,
  };
}
