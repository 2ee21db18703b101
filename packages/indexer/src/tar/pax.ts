// PAX extended header records: `<len> <key>=<value>\n`, where len counts the whole record
// in bytes. Values stay raw bytes because xattrs (e.g. security.capability) are binary.
//
// Most layers carry a PAX header per member (buildkit writes mtime, atime and ctime with
// nanoseconds), so the common shapes are decoded without TextDecoder: decimal lengths, ASCII
// keys and values. Anything else takes the general path, with the same results.
import { decodeUtf8Name } from './utf8-name.js';

export type PaxRecords = Map<string, Uint8Array>;

const decoder = new TextDecoder();

/**
 * `data` must not be reused by the caller: the values are views into it (the tar walk
 * allocates one buffer per extended header).
 */
export function parsePaxRecords(data: Uint8Array): PaxRecords | string {
  const records: PaxRecords = new Map();
  let at = 0;
  while (at < data.length) {
    // Some writers pad the record block with NULs.
    if (data[at] === 0) break;
    let space = at;
    let length = 0;
    let decimal = true;
    for (; space < data.length; space++) {
      const byte = data[space]!;
      if (byte === 0x20) break;
      if (byte < 0x30 || byte > 0x39) decimal = false;
      else length = length * 10 + (byte - 0x30);
    }
    // Not plain digits (or too many of them): read it as before, with Number().
    if (!decimal || space === at || space - at > 15) length = Number(decoder.decode(data.subarray(at, space)));
    if (!Number.isInteger(length) || length <= space - at + 1 || at + length > data.length) {
      return `malformed PAX record at byte ${at}`;
    }
    const end = at + length;
    if (data[end - 1] !== 0x0a) return `PAX record at byte ${at} does not end in a newline`;
    const equals = data.indexOf(0x3d, space + 1);
    if (equals < 0 || equals >= end) return `PAX record at byte ${at} has no "="`;
    const key = asciiText(data, space + 1, equals) ?? decoder.decode(data.subarray(space + 1, equals));
    records.set(key, data.subarray(equals + 1, end - 1));
    at = end;
  }
  return records;
}

export function paxString(records: PaxRecords, key: string): string | undefined {
  const value = records.get(key);
  return value === undefined ? undefined : (asciiText(value, 0, value.length) ?? decodeUtf8Name(value));
}

/** Short ASCII text without TextDecoder; undefined when longer than 64 bytes or not ASCII. */
function asciiText(bytes: Uint8Array, start: number, end: number): string | undefined {
  if (end - start > 64) return undefined;
  let text = '';
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    if (byte > 0x7f) return undefined;
    text += String.fromCharCode(byte);
  }
  return text;
}
