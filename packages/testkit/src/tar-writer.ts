// A small deterministic tar (ustar + PAX) encoder for fixtures, on raw-tar.ts's writer.
// Why not tar-stream's packer: it writes PAX values as UTF-8 strings, so binary xattr
// values (`SCHILY.xattr.*`, e.g. bytes >= 0x80) cannot be carried, and it decides itself
// when to fall back to PAX. Fixtures need exact control over both.
import { type RawMember, tar } from './raw-tar.js';

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

const TYPEFLAG: Record<TarEntrySpecType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

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

const printable = (text: string) => text.slice(0, 100).replace(/[^\x20-\x7e]/g, '_');

/** The raw member (raw-tar.ts) for one entry, with the PAX records its fields need. */
function rawMember(entry: TarEntrySpec): RawMember {
  const data = entry.type === 'file' ? (entry.data ?? new Uint8Array()) : new Uint8Array();
  const pax: Record<string, Uint8Array | string> = {};
  const split = isAscii(entry.name) ? splitUstarName(entry.name) : undefined;
  if (!split) pax['path'] = entry.name;
  const linkname = entry.linkname ?? '';
  const linkFits = isAscii(linkname) && linkname.length <= 100;
  if (!linkFits) pax['linkpath'] = linkname;
  if (!fitsOctal(entry.uid, 8)) pax['uid'] = String(entry.uid);
  if (!fitsOctal(entry.gid, 8)) pax['gid'] = String(entry.gid);
  if (!fitsOctal(entry.mtime, 12)) pax['mtime'] = String(entry.mtime);
  if (!fitsOctal(data.byteLength, 12)) pax['size'] = String(data.byteLength);
  Object.assign(pax, entry.pax);
  const base = {
    mode: entry.mode & 0o7777,
    uid: fitsOctal(entry.uid, 8) ? entry.uid : 0,
    gid: fitsOctal(entry.gid, 8) ? entry.gid : 0,
    mtime: fitsOctal(entry.mtime, 12) ? entry.mtime : 0,
    uname: entry.uname ?? '',
    gname: entry.gname ?? '',
    devmajor: entry.devmajor ?? 0,
    devminor: entry.devminor ?? 0,
  };
  // Name of the PAX header entry itself, as GNU tar does: <dir>/PaxHeaders/<base>, truncated.
  const baseName = entry.name.replace(/\/$/, '').split('/').pop() ?? 'entry';
  const ustarName = split ?? { prefix: '', name: printable(entry.name) };
  return {
    ...base,
    name: ustarName.name,
    prefix: ustarName.prefix,
    typeflag: TYPEFLAG[entry.type],
    linkname: linkFits ? linkname : printable(linkname),
    data,
    ...(fitsOctal(data.byteLength, 12) ? {} : { sizeField: 0 }),
    ...(Object.keys(pax).length > 0 ? { pax, paxHeader: { ...base, name: printable(`PaxHeaders/${baseName}`) } } : {}),
  };
}

/** A whole tar stream: entries then the two zero blocks that end an archive. */
export function encodeTar(entries: TarEntrySpec[]): Buffer {
  const bytes = tar(entries.map(rawMember));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
