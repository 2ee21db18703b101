// Decoding of one 512-byte tar header block (ustar, GNU and old-GNU dialects).

export const BLOCK_SIZE = 512;

const decoder = new TextDecoder();

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

/** A NUL-terminated string field. */
function readString(block: Uint8Array, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return decoder.decode(end < 0 ? field : field.subarray(0, end));
}

/** An octal field (space/NUL padded) or a GNU base-256 field (high bit of the first byte set). */
export function readNumber(block: Uint8Array, start: number, length: number): number | undefined {
  const field = block.subarray(start, start + length);
  const first = field[0] ?? 0;
  if (first & 0x80) {
    // Base-256, two's complement when the first byte is 0xff.
    const negative = first === 0xff;
    let value = 0;
    for (let i = 0; i < field.length; i++) {
      let byte = field[i]!;
      if (i === 0) byte &= 0x7f;
      value = value * 256 + (negative ? 0xff - field[i]! : byte);
    }
    const result = negative ? -(value + 1) : value;
    return Number.isSafeInteger(result) ? result : undefined;
  }
  let i = 0;
  while (i < field.length && field[i] === 0x20) i++;
  let value = 0;
  let digits = 0;
  for (; i < field.length; i++) {
    const byte = field[i]!;
    if (byte === 0 || byte === 0x20) break;
    if (byte < 0x30 || byte > 0x37) return undefined;
    value = value * 8 + (byte - 0x30);
    digits++;
  }
  // Trailing bytes after the terminator must be padding.
  for (; i < field.length; i++) if (field[i] !== 0 && field[i] !== 0x20) return undefined;
  return digits === 0 ? 0 : value;
}

/** Whether the stored checksum matches, computed unsigned (POSIX) or signed (old Sun tars). */
export function checksumMatches(block: Uint8Array): boolean {
  const stored = readNumber(block, 148, 8);
  if (stored === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

function isUstar(block: Uint8Array): boolean {
  // "ustar\0" (POSIX); GNU writes "ustar  \0" and uses the prefix area for other fields.
  return block[257] === 0x75 && block[258] === 0x73 && block[259] === 0x74 && block[260] === 0x61 &&
    block[261] === 0x72 && block[262] === 0;
}

/** Decodes a header block, or returns why it cannot be decoded. The checksum is checked by the caller. */
export function decodeHeader(block: Uint8Array): RawTarHeader | string {
  const fields: Array<[string, number, number]> = [
    ['mode', 100, 8], ['uid', 108, 8], ['gid', 116, 8], ['size', 124, 12], ['mtime', 136, 12],
  ];
  const numbers: Record<string, number> = {};
  for (const [field, start, length] of fields) {
    const value = readNumber(block, start, length);
    if (value === undefined) return `invalid ${field} field`;
    numbers[field] = value;
  }
  let name = readString(block, 0, 100);
  if (isUstar(block)) {
    const prefix = readString(block, 345, 155);
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  const typeflag = String.fromCharCode(block[156]!);
  const isDevice = typeflag === '3' || typeflag === '4';
  return {
    name,
    mode: numbers['mode']!,
    uid: numbers['uid']!,
    gid: numbers['gid']!,
    size: numbers['size']!,
    mtime: numbers['mtime']!,
    typeflag,
    linkname: readString(block, 157, 100),
    devMajor: isDevice ? (readNumber(block, 329, 8) ?? 0) : 0,
    devMinor: isDevice ? (readNumber(block, 337, 8) ?? 0) : 0,
  };
}
