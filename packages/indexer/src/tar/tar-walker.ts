// A push parser for a layer's uncompressed tar stream. It sees every byte once, keeps only
// headers and extended-header records, skips file data, and reports each member with the
// offset of its data in the stream: that offset is all the archive needs to read the file later.
//
// Written by hand rather than on tar-stream because tar-stream decodes PAX values as UTF-8
// text (binary xattrs such as security.capability would be corrupted), maps sparse members to
// an untyped entry, and does not expose PAX mtime/uid/gid.
// Over 400 lines on purpose: one push parser's state machine (header, PAX and pax.ts/tar-header.ts are already apart).
import { LayerFormatError } from '@clip/shared';
import { normaliseEntryPath } from './entry-path.js';
import { parsePaxRecords, paxString, type PaxRecords } from './pax.js';
import { BLOCK_SIZE, checksumMatches, decodeHeader, isZeroBlock, type RawTarHeader } from './tar-header.js';
import type { TarEntry, TarEntryType } from './tar-entry.js';
import { decodeUtf8Name, NonUtf8NameError } from './utf8-name.js';

/** Extended headers up to an eighth of this share slabs of this size (TarWalker.metaBuffer). */
const SLAB_SIZE = 64 * 1024;

/** Upper bound for one PAX or GNU long-name record set; real ones are a few KiB. */
const MAX_META_SIZE = 16 * 1024 * 1024;

const ENTRY_TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  '6': 'fifo',
  // GNU dumpdir: a directory whose data lists its contents (skipped).
  D: 'directory',
};

type MetaKind = 'pax' | 'pax-global' | 'gnu-long-name' | 'gnu-long-link';
const META_TYPES: Record<string, MetaKind> = { x: 'pax', g: 'pax-global', L: 'gnu-long-name', K: 'gnu-long-link' };

type State =
  | { kind: 'header' }
  | { kind: 'meta'; meta: MetaKind; buffer: Uint8Array; filled: number; padding: number }
  | { kind: 'skip'; remaining: number }
  | { kind: 'end' };

function padding(size: number): number {
  const rest = size % BLOCK_SIZE;
  return rest === 0 ? 0 : BLOCK_SIZE - rest;
}

const decoder = new TextDecoder();

function stripNul(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return decodeUtf8Name(end < 0 ? bytes : bytes.subarray(0, end));
}

function parsePaxTime(text: string): { sec: number; nsec: number } | undefined {
  // The usual shape, `<seconds>.<up to 9 digits>`, without a regular expression.
  const dot = text.indexOf('.');
  if (
    dot > 0 &&
    dot <= 15 &&
    text.length - dot - 1 <= 9 &&
    text.length - dot > 1 &&
    allDigits(text, 0, dot) &&
    allDigits(text, dot + 1, text.length)
  ) {
    let nsec = 0;
    for (let i = dot + 1; i < dot + 10; i++) nsec = nsec * 10 + (i < text.length ? text.charCodeAt(i) - 48 : 0);
    return { sec: Number(text.slice(0, dot)), nsec };
  }
  const match = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text);
  if (!match) return undefined;
  const sec = Number(match[2]);
  const nsec = Number((match[3] ?? '').slice(0, 9).padEnd(9, '0'));
  if (match[1] === '-') return nsec === 0 ? { sec: -sec, nsec: 0 } : { sec: -sec - 1, nsec: 1e9 - nsec };
  return { sec, nsec };
}

function allDigits(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code < 48 || code > 57) return false;
  }
  return true;
}

function parsePaxInteger(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

export class TarWalker {
  /** Bytes consumed so far: the uncompressed offset of the next byte. */
  private offset = 0;
  private state: State = { kind: 'header' };
  private readonly header = new Uint8Array(BLOCK_SIZE);
  private headerFilled = 0;
  /** Where the current member's first header (possibly a PAX/GNU one) started. */
  private memberStart: number | undefined;
  private pax: PaxRecords | undefined;
  private paxGlobal: PaxRecords = new Map();
  private longName: string | undefined;
  private longLink: string | undefined;
  private lastName = '';

  /**
   * @param layer names the layer in error messages (its digest).
   * @param onEntry receives each member in stream order.
   */
  constructor(
    private readonly layer: string,
    private readonly onEntry: (entry: TarEntry) => void,
  ) {}

  /** Where small extended headers are collected (see metaBuffer). */
  private slab = new Uint8Array(0);
  private slabUsed = 0;

  /**
   * A buffer for one extended header's bytes. Small ones are carved from a shared 64 KiB slab
   * rather than allocated each (a fresh ArrayBuffer per member costs more than parsing it, and
   * most layers have a PAX header per member). The records' values are views into it: they are
   * read before the slab is replaced, and xattr values are copied out.
   */
  private metaBuffer(size: number): Uint8Array {
    if (size > SLAB_SIZE / 8) return new Uint8Array(size);
    if (this.slabUsed + size > this.slab.length) {
      this.slab = new Uint8Array(SLAB_SIZE);
      this.slabUsed = 0;
    }
    const buffer = this.slab.subarray(this.slabUsed, this.slabUsed + size);
    this.slabUsed += size;
    return buffer;
  }

  /** Feeds the next bytes of the uncompressed stream. Throws LayerFormatError on malformed input. */
  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      const state = this.state;
      const available = chunk.length - at;
      switch (state.kind) {
        case 'end':
          // Anything after the end-of-archive marker is padding to the record size.
          this.offset += available;
          return;
        case 'skip': {
          const n = Math.min(state.remaining, available);
          state.remaining -= n;
          at += n;
          this.offset += n;
          if (state.remaining === 0) this.state = { kind: 'header' };
          break;
        }
        case 'meta': {
          if (state.filled < state.buffer.length) {
            const n = Math.min(state.buffer.length - state.filled, available);
            state.buffer.set(chunk.subarray(at, at + n), state.filled);
            state.filled += n;
            at += n;
            this.offset += n;
            if (state.filled === state.buffer.length) this.applyMeta(state.meta, state.buffer);
          }
          if (state.filled === state.buffer.length) {
            this.state = state.padding > 0 ? { kind: 'skip', remaining: state.padding } : { kind: 'header' };
          }
          break;
        }
        case 'header': {
          const n = Math.min(BLOCK_SIZE - this.headerFilled, available);
          this.header.set(chunk.subarray(at, at + n), this.headerFilled);
          this.headerFilled += n;
          at += n;
          this.offset += n;
          if (this.headerFilled === BLOCK_SIZE) {
            this.headerFilled = 0;
            this.processHeader(this.offset - BLOCK_SIZE);
          }
          break;
        }
      }
    }
  }

  /** Declares the end of the stream; throws if it ended inside a member. */
  end(): void {
    const state = this.state;
    const inside =
      this.headerFilled > 0 ||
      state.kind === 'meta' ||
      (state.kind === 'skip' && state.remaining > 0) ||
      (state.kind === 'header' && this.memberStart !== undefined);
    if (inside) {
      const member = this.memberStart ?? this.offset - this.headerFilled;
      throw this.error(
        `truncated tar stream: it ends at byte ${this.offset} inside the member at byte ${member} (${JSON.stringify(this.lastName)})`,
      );
    }
  }

  private error(message: string): LayerFormatError {
    return new LayerFormatError(`layer ${this.layer}: ${message}`);
  }

  private entryError(name: string, at: number, reason: string): LayerFormatError {
    return this.error(`entry ${JSON.stringify(name)} at byte ${at}: ${reason}`);
  }

  private processHeader(at: number): void {
    const block = this.header;
    if (isZeroBlock(block)) {
      if (this.memberStart !== undefined) throw this.error(`extended header at byte ${this.memberStart} is not followed by a member`);
      this.state = { kind: 'end' };
      return;
    }
    if (!checksumMatches(block)) {
      throw this.error(`bad tar header checksum at byte ${at} (corrupt layer, or not an uncompressed tar stream)`);
    }
    const raw = this.names(at, () => decodeHeader(block));
    if (typeof raw === 'string') throw this.error(`bad tar header at byte ${at}: ${raw}`);
    this.lastName = raw.name;
    this.memberStart ??= at;
    if (raw.size < 0) throw this.entryError(raw.name, at, `negative size ${raw.size}`);

    const meta = META_TYPES[raw.typeflag];
    if (meta !== undefined) {
      if (raw.size > MAX_META_SIZE) throw this.entryError(raw.name, at, `extended header of ${raw.size} bytes is too large`);
      if (raw.size === 0) {
        this.applyMeta(meta, new Uint8Array(0));
        this.state = { kind: 'header' };
      } else {
        this.state = { kind: 'meta', meta, buffer: this.metaBuffer(raw.size), filled: 0, padding: padding(raw.size) };
      }
      return;
    }
    if (raw.typeflag === 'V') {
      // GNU volume label: not a file.
      this.finishMember(raw.size);
      return;
    }
    this.names(this.memberStart ?? at, () => this.emitEntry(raw, at));
  }

  /** Runs a decode of names; a name that is not UTF-8 fails the layer, naming its bytes. */
  private names<T>(at: number, decode: () => T): T {
    try {
      return decode();
    } catch (error) {
      if (!(error instanceof NonUtf8NameError)) throw error;
      throw this.error(
        `entry "${error.escaped}" at byte ${at}: name (or link target) is not valid UTF-8; ` +
          'clip keeps names as UTF-8 text and refuses the layer rather than merge such names',
      );
    }
  }

  private applyMeta(meta: MetaKind, data: Uint8Array): void {
    switch (meta) {
      case 'gnu-long-name':
        this.longName = this.names(this.memberStart ?? 0, () => stripNul(data));
        return;
      case 'gnu-long-link':
        this.longLink = this.names(this.memberStart ?? 0, () => stripNul(data));
        return;
      case 'pax':
      case 'pax-global': {
        const records = parsePaxRecords(data);
        if (typeof records === 'string') throw this.error(`member at byte ${this.memberStart}: ${records}`);
        if (meta === 'pax') {
          this.pax = records;
        } else {
          for (const [key, value] of records) this.paxGlobal.set(key, value);
          // A global header is a member of its own.
          this.memberStart = undefined;
        }
      }
    }
  }

  private emitEntry(raw: RawTarHeader, at: number): void {
    const pax = this.memberPax();
    const name = paxString(pax, 'path') ?? this.longName ?? raw.name;
    const rawLink = paxString(pax, 'linkpath') ?? this.longLink ?? raw.linkname;
    const memberStart = this.memberStart ?? at;
    this.pax = undefined;
    this.longName = undefined;
    this.longLink = undefined;
    this.lastName = name;

    const fail = (reason: string) => this.entryError(name, memberStart, reason);
    if (raw.typeflag === 'S' || hasSparseKey(pax)) {
      throw fail('sparse files are not supported (re-create the layer without --sparse)');
    }
    let type = ENTRY_TYPES[raw.typeflag];
    if (type === undefined) throw fail(`unsupported tar entry type ${JSON.stringify(raw.typeflag)}`);
    // Pre-POSIX tars mark directories only by a trailing slash.
    if (type === 'file' && raw.typeflag !== '7' && name.endsWith('/')) type = 'directory';

    const normalised = normaliseEntryPath(name);
    if (!normalised.ok) throw fail(normalised.reason);

    let size = raw.size;
    const paxSize = paxString(pax, 'size');
    if (paxSize !== undefined) {
      const value = parsePaxInteger(paxSize);
      if (value === undefined) throw fail(`bad PAX size ${JSON.stringify(paxSize)}`);
      size = value;
    }
    const uid = parsePaxInteger(paxString(pax, 'uid')) ?? raw.uid;
    const gid = parsePaxInteger(paxString(pax, 'gid')) ?? raw.gid;
    let mtimeSec = raw.mtime;
    let mtimeNsec = 0;
    const paxMtime = paxString(pax, 'mtime');
    if (paxMtime !== undefined) {
      const parsed = parsePaxTime(paxMtime);
      if (parsed === undefined) throw fail(`bad PAX mtime ${JSON.stringify(paxMtime)}`);
      mtimeSec = parsed.sec;
      mtimeNsec = parsed.nsec;
    }

    const entry: TarEntry = {
      path: normalised.path,
      type,
      mode: raw.mode & 0o7777,
      uid,
      gid,
      size: type === 'file' ? size : 0,
      mtimeSec,
      mtimeNsec,
      devMajor: type === 'char' || type === 'block' ? raw.devMajor : 0,
      devMinor: type === 'char' || type === 'block' ? raw.devMinor : 0,
      dataOffset: this.offset,
      headerOffset: memberStart,
    };
    if (type === 'symlink') {
      if (rawLink === '') throw fail('symlink without a target');
      if (rawLink.includes('\0')) throw fail('symlink target contains a NUL byte');
      entry.linkTarget = rawLink;
    } else if (type === 'hardlink') {
      const target = normaliseEntryPath(rawLink);
      if (!target.ok) throw fail(`hardlink target ${JSON.stringify(rawLink)}: ${target.reason}`);
      if (target.path === '') throw fail('hardlink to the root directory');
      entry.linkTarget = target.path;
    }
    const xattrs = collectXattrs(pax);
    if (xattrs) entry.xattrs = xattrs;
    if (normalised.path === '' && type !== 'directory') throw fail(`the root must be a directory, not a ${type}`);

    this.onEntry(entry);
    this.finishMember(size);
  }

  /** Global records overlaid with this member's own (shared empty map when there are none). */
  private memberPax(): PaxRecords {
    const own = this.pax;
    if (this.paxGlobal.size === 0) return own ?? NO_RECORDS;
    if (own === undefined) return this.paxGlobal;
    return new Map([...this.paxGlobal, ...own]);
  }

  /** Skips the member's data (whatever its type says, the stream holds `size` bytes). */
  private finishMember(size: number): void {
    this.memberStart = undefined;
    const total = size + padding(size);
    this.state = total > 0 ? { kind: 'skip', remaining: total } : { kind: 'header' };
  }
}

/** Never written to: members without any PAX records share it. */
const NO_RECORDS: PaxRecords = new Map();

function hasSparseKey(pax: PaxRecords): boolean {
  if (pax.size === 0) return false;
  for (const key of pax.keys()) if (key.startsWith('GNU.sparse.')) return true;
  return false;
}

const SCHILY_XATTR = 'SCHILY.xattr.';
const LIBARCHIVE_XATTR = 'LIBARCHIVE.xattr.';

function collectXattrs(pax: PaxRecords): Record<string, Uint8Array> | undefined {
  if (pax.size === 0) return undefined;
  let xattrs: Record<string, Uint8Array> | undefined;
  for (const [key, value] of pax) {
    if (key.startsWith(SCHILY_XATTR)) {
      xattrs ??= {};
      // A copy: the value is a view into the walker's shared extended-header slab.
      xattrs[key.slice(SCHILY_XATTR.length)] = value.slice();
    }
  }
  for (const [key, value] of pax) {
    // libarchive: URL-encoded name, base64 value; SCHILY wins when both are present.
    if (!key.startsWith(LIBARCHIVE_XATTR)) continue;
    let name: string;
    try {
      name = decodeURIComponent(key.slice(LIBARCHIVE_XATTR.length));
    } catch {
      continue;
    }
    xattrs ??= {};
    if (!(name in xattrs)) xattrs[name] = new Uint8Array(Buffer.from(decoder.decode(value), 'base64'));
  }
  return xattrs;
}

/** Parses a whole in-memory tar stream: convenient for tests and small layers. */
export function walkTar(layer: string, chunks: Iterable<Uint8Array>): TarEntry[] {
  const entries: TarEntry[] = [];
  const walker = new TarWalker(layer, (entry) => entries.push(entry));
  for (const chunk of chunks) walker.push(chunk);
  walker.end();
  return entries;
}
