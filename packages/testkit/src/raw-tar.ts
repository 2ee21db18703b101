// The testkit's one tar writer, byte-exact: every field, dialect and checksum is under the
// test's control, so malformed and exotic members (GNU long names, binary PAX xattrs, sparse
// markers, bad checksums) can be built on purpose. tar-writer.ts builds well-formed fixture
// tars on top of it (deciding PAX and ustar name splits itself).

const BLOCK = 512;
const encoder = new TextEncoder();

export interface RawMember {
  name: string;
  /** Typeflag character, default '0'. */
  typeflag?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  uname?: string;
  gname?: string;
  /** ustar name prefix (the part of a long name before its last '/' written in `name`). */
  prefix?: string;
  devmajor?: number;
  devminor?: number;
  data?: Uint8Array | string;
  /** PAX records written in an 'x' header before the member. */
  pax?: Record<string, Uint8Array | string>;
  /** Fields of that 'x' header (default: named `PaxHeader`). */
  paxHeader?: Omit<RawMember, 'typeflag' | 'data' | 'pax' | 'paxHeader'>;
  /** Write the name / link name as GNU 'L' / 'K' members first (header gets a truncated name). */
  gnuLongName?: boolean;
  gnuLongLink?: boolean;
  /** 'ustar' (POSIX, default) or 'gnu' magic. */
  magic?: 'ustar' | 'gnu';
  /** Damage the header checksum. */
  badChecksum?: boolean;
  /** Override the size field (data written is still `data`). */
  sizeField?: number;
}

function bytes(value: Uint8Array | string): Uint8Array {
  return typeof value === 'string' ? encoder.encode(value) : value;
}

function writeString(block: Uint8Array, offset: number, length: number, text: string): void {
  block.set(encoder.encode(text).subarray(0, length), offset);
}

function writeOctal(block: Uint8Array, offset: number, length: number, value: number): void {
  writeString(block, offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
}

function pad(size: number): Uint8Array {
  const rest = size % BLOCK;
  return new Uint8Array(rest === 0 ? 0 : BLOCK - rest);
}

export function header(member: RawMember, name: string, size: number): Uint8Array {
  const block = new Uint8Array(BLOCK);
  writeString(block, 0, 100, name);
  writeOctal(block, 100, 8, member.mode ?? 0o644);
  writeOctal(block, 108, 8, member.uid ?? 0);
  writeOctal(block, 116, 8, member.gid ?? 0);
  writeOctal(block, 124, 12, member.sizeField ?? size);
  writeOctal(block, 136, 12, member.mtime ?? 1_700_000_000);
  block[156] = (member.typeflag ?? '0').charCodeAt(0);
  writeString(block, 157, 100, member.linkname ?? '');
  if (member.magic === 'gnu') writeString(block, 257, 8, 'ustar  \0');
  else writeString(block, 257, 8, 'ustar\u000000');
  writeString(block, 265, 32, member.uname ?? '');
  writeString(block, 297, 32, member.gname ?? '');
  writeOctal(block, 329, 8, member.devmajor ?? 0);
  writeOctal(block, 337, 8, member.devminor ?? 0);
  writeString(block, 345, 155, member.prefix ?? '');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  if (member.badChecksum) sum += 1;
  writeString(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const body = new Uint8Array([...encoder.encode(` ${key}=`), ...value, 0x0a]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length++;
  return new Uint8Array([...encoder.encode(String(length)), ...body]);
}

/** One member and whatever extended headers it needs. */
export function member(member: RawMember): Uint8Array[] {
  const parts: Uint8Array[] = [];
  const data = bytes(member.data ?? '');
  let name = member.name;
  let linkname = member.linkname;
  if (member.pax) {
    const records = Object.entries(member.pax).map(([key, value]) => paxRecord(key, bytes(value)));
    const body = new Uint8Array(records.reduce((n, r) => n + r.length, 0));
    let at = 0;
    for (const record of records) {
      body.set(record, at);
      at += record.length;
    }
    const paxHeader = { name: 'PaxHeader', ...member.paxHeader, typeflag: 'x' };
    parts.push(header(paxHeader, paxHeader.name, body.length), body, pad(body.length));
  }
  if (member.gnuLongName) {
    const body = encoder.encode(`${name}\0`);
    parts.push(header({ name: '././@LongLink', typeflag: 'L', magic: 'gnu' }, '././@LongLink', body.length), body, pad(body.length));
    name = name.slice(0, 100);
  }
  if (member.gnuLongLink && linkname !== undefined) {
    const body = encoder.encode(`${linkname}\0`);
    parts.push(header({ name: '././@LongLink', typeflag: 'K', magic: 'gnu' }, '././@LongLink', body.length), body, pad(body.length));
    linkname = linkname.slice(0, 100);
  }
  parts.push(header({ ...member, ...(linkname !== undefined ? { linkname } : {}) }, name, data.length), data, pad(data.length));
  return parts;
}

/** A whole tar stream: members followed by the two zero blocks. */
export function tar(members: RawMember[], options: { endMarker?: boolean } = {}): Uint8Array {
  const parts = members.flatMap(member);
  if (options.endMarker !== false) parts.push(new Uint8Array(BLOCK * 2));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Splits bytes into chunks of `size` (to exercise headers straddling chunk boundaries). */
export function chunked(data: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += size) chunks.push(data.subarray(at, at + size));
  return chunks;
}
