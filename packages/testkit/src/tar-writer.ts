// A small deterministic tar (ustar + PAX) encoder for fixtures.
// Why not tar-stream's packer: it writes PAX values as UTF-8 strings, so binary xattr
// values (`SCHILY.xattr.*`, e.g. bytes >= 0x80) cannot be carried, and it decides itself
// when to fall back to PAX. Fixtures need exact control over both.

export type TarEntrySpecType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

export interface TarEntrySpec {
  /** Name as written (no leading slash; directories may end with `/`). */
  name: string;
  type: TarEntrySpecType;
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  /** Seconds since the epoch. */
  mtime: number;
  /** Regular files only. */
  data?: Uint8Array;
  /** Symlink target or hardlink target name. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extra PAX records (key → raw value), e.g. `SCHILY.xattr.user.x`. Forces a PAX header. */
  pax?: Record<string, Uint8Array | string>;
}

const BLOCK = 512;
const TYPEFLAG: Record<TarEntrySpecType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

function octal(value: number, width: number): string {
  // width includes the terminating NUL
  return value.toString(8).padStart(width - 1, '0');
}

function fitsOctal(value: number, width: number): boolean {
  return value >= 0 && value < 8 ** (width - 1);
}

function isAscii(text: string): boolean {
  return /^[\x20-\x7e]*$/.test(text);
}

/** Splits a long name into ustar prefix (<= 155) + name (<= 100), or undefined if impossible. */
function splitUstarName(name: string): { prefix: string; name: string } | undefined {
  if (name.length <= 100) return { prefix: '', name };
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (prefix.length <= 155 && rest.length <= 100 && rest.length > 0) return { prefix, name: rest };
  }
  return undefined;
}

function header(fields: {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}): Buffer {
  const buf = Buffer.alloc(BLOCK);
  const put = (text: string, offset: number, width: number) => {
    buf.write(text.slice(0, width), offset, 'latin1');
  };
  put(fields.name, 0, 100);
  put(octal(fields.mode & 0o7777, 8), 100, 8);
  put(octal(fitsOctal(fields.uid, 8) ? fields.uid : 0, 8), 108, 8);
  put(octal(fitsOctal(fields.gid, 8) ? fields.gid : 0, 8), 116, 8);
  put(octal(fields.size, 12), 124, 12);
  put(octal(fitsOctal(fields.mtime, 12) ? fields.mtime : 0, 12), 136, 12);
  buf.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  put(fields.typeflag, 156, 1);
  put(fields.linkname, 157, 100);
  put('ustar\u0000', 257, 6);
  put('00', 263, 2);
  put(fields.uname, 265, 32);
  put(fields.gname, 297, 32);
  put(octal(fields.devmajor, 8), 329, 8);
  put(octal(fields.devminor, 8), 337, 8);
  put(fields.prefix, 345, 155);
  let sum = 0;
  for (const byte of buf) sum += byte;
  put(`${octal(sum, 7)}\u0000 `, 148, 8);
  return buf;
}

function paxRecord(key: string, value: Uint8Array | string): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** Encodes one entry (with a PAX extended header when needed). */
export function encodeTarEntry(entry: TarEntrySpec): Buffer[] {
  const data = entry.type === 'file' ? (entry.data ?? new Uint8Array()) : new Uint8Array();
  const records: Buffer[] = [];
  const split = isAscii(entry.name) ? splitUstarName(entry.name) : undefined;
  if (!split) records.push(paxRecord('path', entry.name));
  const linkname = entry.linkname ?? '';
  const linkFits = isAscii(linkname) && linkname.length <= 100;
  if (!linkFits) records.push(paxRecord('linkpath', linkname));
  if (!fitsOctal(entry.uid, 8)) records.push(paxRecord('uid', String(entry.uid)));
  if (!fitsOctal(entry.gid, 8)) records.push(paxRecord('gid', String(entry.gid)));
  if (!fitsOctal(entry.mtime, 12)) records.push(paxRecord('mtime', String(entry.mtime)));
  if (!fitsOctal(data.byteLength, 12)) records.push(paxRecord('size', String(data.byteLength)));
  for (const [key, value] of Object.entries(entry.pax ?? {})) records.push(paxRecord(key, value));

  const out: Buffer[] = [];
  const base = {
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    mtime: entry.mtime,
    uname: entry.uname ?? '',
    gname: entry.gname ?? '',
    devmajor: entry.devmajor ?? 0,
    devminor: entry.devminor ?? 0,
  };
  if (records.length > 0) {
    const paxData = Buffer.concat(records);
    // Name of the PAX header entry itself, as GNU tar does: <dir>/PaxHeaders/<base>, truncated.
    const baseName = entry.name.replace(/\/$/, '').split('/').pop() ?? 'entry';
    const paxName = `PaxHeaders/${baseName}`.slice(0, 100).replace(/[^\x20-\x7e]/g, '_');
    out.push(header({ ...base, name: paxName, prefix: '', size: paxData.length, typeflag: 'x', linkname: '' }));
    out.push(paxData, padding(paxData.length));
  }
  const ustarName = split ?? { prefix: '', name: entry.name.slice(0, 100).replace(/[^\x20-\x7e]/g, '_') };
  out.push(
    header({
      ...base,
      name: ustarName.name,
      prefix: ustarName.prefix,
      size: fitsOctal(data.byteLength, 12) ? data.byteLength : 0,
      typeflag: TYPEFLAG[entry.type],
      linkname: linkFits ? linkname : linkname.slice(0, 100).replace(/[^\x20-\x7e]/g, '_'),
    }),
  );
  if (data.byteLength > 0) out.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength), padding(data.byteLength));
  return out;
}

/** A whole tar stream: entries then the two zero blocks that end an archive. */
export function encodeTar(entries: TarEntrySpec[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) parts.push(...encodeTarEntry(entry));
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}
