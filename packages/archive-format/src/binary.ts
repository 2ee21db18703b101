// Bounds-checked little-endian reads and writes over a byte buffer. Every read from an
// archive goes through ByteReader so a hostile offset becomes an ArchiveFormatError,
// never a RangeError or a silently wrong value.
import { ArchiveFormatError } from '@clip/shared';

const TWO_32 = 2 ** 32;
/** Largest high word of a u64 whose value is still a safe JS integer. */
const MAX_SAFE_HIGH = Math.floor(Number.MAX_SAFE_INTEGER / TWO_32);

export class ByteReader {
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.bytes.byteLength;
  }

  check(offset: number, length: number, what: string): void {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.bytes.byteLength)) {
      throw new ArchiveFormatError(`${what} out of bounds: [${offset}, ${offset + length}) of ${this.bytes.byteLength} bytes`);
    }
  }

  u8(offset: number): number {
    this.check(offset, 1, 'u8');
    return this.view.getUint8(offset);
  }

  u16(offset: number): number {
    this.check(offset, 2, 'u16');
    return this.view.getUint16(offset, true);
  }

  u32(offset: number): number {
    this.check(offset, 4, 'u32');
    return this.view.getUint32(offset, true);
  }

  /** u64 that must fit a safe JS integer (2^53 - 1). */
  u64(offset: number, what = 'u64'): number {
    this.check(offset, 8, what);
    const low = this.view.getUint32(offset, true);
    const high = this.view.getUint32(offset + 4, true);
    if (high > MAX_SAFE_HIGH) throw new ArchiveFormatError(`${what} at ${offset} is too large`);
    return high * TWO_32 + low;
  }

  /** i64 that must fit a safe JS integer. */
  i64(offset: number, what = 'i64'): number {
    this.check(offset, 8, what);
    const value = this.view.getBigInt64(offset, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new ArchiveFormatError(`${what} at ${offset} is out of range`);
    }
    return Number(value);
  }

  slice(offset: number, length: number, what: string): Uint8Array {
    this.check(offset, length, what);
    return this.bytes.subarray(offset, offset + length);
  }
}

export class ByteWriter {
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(length: number) {
    this.bytes = new Uint8Array(length);
    this.view = new DataView(this.bytes.buffer);
  }

  u8(offset: number, value: number): void {
    this.view.setUint8(offset, value);
  }

  u16(offset: number, value: number): void {
    this.view.setUint16(offset, value, true);
  }

  u32(offset: number, value: number): void {
    this.view.setUint32(offset, value, true);
  }

  u64(offset: number, value: number): void {
    this.view.setUint32(offset, value % TWO_32, true);
    this.view.setUint32(offset + 4, Math.floor(value / TWO_32), true);
  }

  i64(offset: number, value: number): void {
    this.view.setBigInt64(offset, BigInt(value), true);
  }

  set(offset: number, data: Uint8Array): void {
    this.bytes.set(data, offset);
  }
}

/** Byte-wise comparison of a[aStart, aStart+aLen) with b (the order entries are sorted in). */
export function compareBytes(a: Uint8Array, aStart: number, aLen: number, b: Uint8Array): number {
  const n = Math.min(aLen, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[aStart + i]! - b[i]!;
    if (d !== 0) return d;
  }
  return aLen - b.length;
}
