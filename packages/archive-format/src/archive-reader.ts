// Opening an archive and answering queries on it (ClipArchive). Opening is cheap: the
// checksum is verified and the small tables (metadata, layers, spans) are decoded, but inodes
// and directory entries stay in the buffer as fixed-size records and are decoded on demand.
// Lookups binary-search each directory's contiguous, byte-sorted children.
import { readFile } from 'node:fs/promises';
import { ArchiveFormatError, type Digest } from '@clip/shared';
import type { ClipArchive } from './archive.js';
import { ByteReader, compareBytes } from './binary.js';
import {
  CHECKSUM_SIZE,
  DIRECTORY_TYPE_CODE,
  ENTRY_RECORD as E,
  FILE_TYPES,
  FLAG_COMPRESSED_TABLES,
  FLAG_DATA_SECTION,
  FLAG_EXTERNAL_WINDOWS,
  FORMAT_MAJOR,
  FORMAT_MINOR_LATEST,
  H_ENTRY_COUNT,
  H_FLAGS,
  H_INODE_COUNT,
  H_MAJOR,
  H_MINOR,
  INODE_FLAG_DATA,
  INODE_FLAG_LINK_TARGET,
  INODE_RECORD as I,
  KNOWN_FLAGS,
  LAYER_RECORD as L,
  PIECE_RECORD as P,
  ROOT_INO,
  SECTION,
  SPAN_RECORD as S,
  WINDOW_DIGEST_RECORD_SIZE,
  WINDOWS_BLOB_RECORD as WB,
  XATTR_RECORD as X,
} from './binary-layout.js';
import { inflateSections, type SectionEntry } from './compressed-tables.js';
import { decodeLayers, type ExternalWindowTables, hexDigest } from './decode-layers.js';
import { corrupt, guarded } from './format-errors.js';
import { checkHeadStart, readSectionTable, recordView, type SectionView, verifyChecksum, verifyTablesDigest } from './frame-verify.js';
import { decodeMetadata } from './metadata-json.js';
import type { ArchiveLayer, ArchiveMetadata, FileType, Inode } from './model.js';
import { invalidNameReason } from './name-order.js';

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Opens an archive held in memory. Throws ArchiveFormatError (only) for anything wrong with it. */
export function openArchive(bytes: Uint8Array): ClipArchive {
  return guarded(() => new ArchiveReader(bytes));
}

/**
 * Opens a data-carrying archive from its head only (`archiveHeadLength` bytes) and the length
 * of the whole file: the tables are verified by their TABLES_DIGEST, file contents are read
 * later from the DATA section by range.
 */
export function openArchiveHead(head: Uint8Array, fileLength: number): ClipArchive {
  return guarded(() => new ArchiveReader(head, fileLength));
}

export async function readArchiveFile(path: string): Promise<ClipArchive> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new ArchiveFormatError(`cannot read archive ${path}: ${code}`, { cause: error });
  }
  return openArchive(bytes);
}

/** The verified frame of an archive: versions, counts, and its table sections (inflated if stored compressed). */
export interface VerifiedFrame {
  major: number;
  minor: number;
  flags: number;
  inodeCount: number;
  entryCount: number;
  dataSection: { offset: number; length: number } | undefined;
  tables: { bytes: Uint8Array; sections: Map<number, SectionEntry> };
}

export function verifyFrame(bytes: Uint8Array, fileLength: number): VerifiedFrame {
  const stored = new ByteReader(bytes);
  checkHeadStart(bytes);
  const major = stored.u16(H_MAJOR);
  const minor = stored.u16(H_MINOR);
  const flags = stored.u32(H_FLAGS);
  const dataMode = (flags & FLAG_DATA_SECTION) !== 0;
  // Sections other than DATA must end before `tablesEnd`.
  let tablesEnd: number;
  if (dataMode) {
    tablesEnd = verifyTablesDigest(stored, fileLength);
  } else {
    if (fileLength !== bytes.byteLength) corrupt('only the head of an archive without a data section was read');
    tablesEnd = bytes.byteLength - CHECKSUM_SIZE;
    verifyChecksum(bytes);
  }
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new ArchiveFormatError(
      `archive format version ${major}.${minor} uses features this clip does not support ` +
        `(flags 0x${flags.toString(16)}; this clip reads up to version ${FORMAT_MAJOR}.${FORMAT_MINOR_LATEST}); upgrade clip`,
    );
  }
  const inodeCount = stored.u32(H_INODE_COUNT);
  const entryCount = stored.u32(H_ENTRY_COUNT);

  const storedSections = readSectionTable(stored);
  for (const [id, section] of storedSections) {
    if (id === SECTION.data || id === SECTION.tablesDigest) continue;
    if (section.offset + section.length > tablesEnd)
      corrupt(`section ${id} [${section.offset}, ${section.offset + section.length}) runs past the end`);
  }
  let dataSection: { offset: number; length: number } | undefined;
  if (dataMode) {
    const data = storedSections.get(SECTION.data)!;
    dataSection = { offset: data.offset, length: data.length };
    // The whole file is here: check the trailing checksum too.
    if (bytes.byteLength === fileLength) verifyChecksum(bytes);
  } else if (storedSections.has(SECTION.data)) {
    corrupt('DATA section without the data-carrying flag');
  }
  let tables = { bytes, sections: storedSections };
  if ((flags & FLAG_COMPRESSED_TABLES) !== 0) {
    const counts = new Map([
      [SECTION.inodes, inodeCount],
      [SECTION.entries, entryCount],
    ]);
    tables = inflateSections(bytes, storedSections, tablesEnd, counts);
  } else if (storedSections.has(SECTION.compressed)) {
    corrupt('COMPRESSED section without the compressed-tables flag');
  }
  return { major, minor, flags, inodeCount, entryCount, dataSection, tables };
}

class ArchiveReader implements ClipArchive {
  readonly formatVersion: number;
  readonly minorVersion: number;
  readonly byteLength: number;
  readonly dataSection: { offset: number; length: number } | undefined;
  readonly externalWindows: { digest: Digest; size: number } | undefined;
  readonly metadata: ArchiveMetadata;
  readonly layers: readonly ArchiveLayer[];
  readonly inodeCount: number;
  readonly entryCount: number;
  /** Header, section table and tables, compressed ones inflated (see compressed-tables.ts). */
  private readonly r: ByteReader;
  private readonly inodes: SectionView;
  private readonly entries: SectionView;
  private readonly xattrs: SectionView;
  private readonly strings: SectionView;

  constructor(bytes: Uint8Array, fileLength: number = bytes.byteLength) {
    this.byteLength = fileLength;
    const { major, minor, flags, inodeCount, entryCount, dataSection, tables } = verifyFrame(bytes, fileLength);
    this.formatVersion = major;
    this.minorVersion = minor;
    this.inodeCount = inodeCount;
    this.entryCount = entryCount;
    this.dataSection = dataSection;
    const r = new ByteReader(tables.bytes);
    this.r = r;
    const need = (id: number, name: string, minRecord = 0): SectionView => {
      const section = tables.sections.get(id);
      if (!section) corrupt(`missing ${name} section`);
      if (minRecord > 0 && section.recordSize < minRecord) corrupt(`${name} records of ${section.recordSize} bytes (need ${minRecord})`);
      return recordView(id, section);
    };
    const metadata = need(SECTION.metadata, 'metadata');
    const layers = need(SECTION.layers, 'layers', L.size);
    const spans = need(SECTION.spans, 'spans', S.size);
    const pieces = need(SECTION.pieces, 'pieces', P.size);
    const external = (flags & FLAG_EXTERNAL_WINDOWS) !== 0;
    let windows: SectionView | ExternalWindowTables;
    if (external) {
      if (dataSection) corrupt('external windows in a data-carrying archive');
      if (tables.sections.has(SECTION.windows)) corrupt('WINDOWS section in an archive with external windows');
      const blob = need(SECTION.windowsBlob, 'windows blob', WB.size);
      if (blob.count !== 1) corrupt(`WINDOWS_BLOB holds ${blob.count} records, expected 1`);
      const digests = need(SECTION.windowDigests, 'window digests', WINDOW_DIGEST_RECORD_SIZE);
      if (digests.count !== spans.count) corrupt(`${digests.count} window digests for ${spans.count} spans`);
      windows = {
        blob: { digest: hexDigest(r.slice(blob.offset + WB.digest, 32, 'windows blob digest')), size: r.u64(blob.offset + WB.length) },
        digests,
      };
      this.externalWindows = windows.blob;
    } else {
      for (const id of [SECTION.windowsBlob, SECTION.windowDigests])
        if (tables.sections.has(id)) corrupt(`section ${id} (external windows) without the external-windows flag`);
      windows = need(SECTION.windows, 'windows');
      this.externalWindows = undefined;
    }
    this.inodes = need(SECTION.inodes, 'inodes', I.size);
    this.entries = need(SECTION.entries, 'entries', E.size);
    this.xattrs = need(SECTION.xattrs, 'xattrs', X.size);
    this.strings = need(SECTION.strings, 'strings');
    if (this.inodes.count !== this.inodeCount) corrupt(`header says ${this.inodeCount} inodes, section holds ${this.inodes.count}`);
    if (this.entries.count !== this.entryCount) corrupt(`header says ${this.entryCount} entries, section holds ${this.entries.count}`);
    if (this.inodeCount < 1 || r.u8(this.inodes.offset + I.type) !== DIRECTORY_TYPE_CODE) corrupt('inode 1 (the root) is not a directory');

    this.metadata = decodeMetadata(r.slice(metadata.offset, metadata.length, 'metadata'));
    this.layers = decodeLayers({
      r,
      layers,
      spans,
      pieces,
      windows,
      dataSection,
      string: (offset, length, what) => this.string(offset, length, what),
    });
  }

  private string(offset: number, length: number, what: string): string {
    if (offset + length > this.strings.length) corrupt(`${what} string [${offset}, ${offset + length}) is outside the string table`);
    return textDecoder.decode(this.r.slice(this.strings.offset + offset, length, what));
  }

  private stringBytes(offset: number, length: number, what: string): Uint8Array {
    if (offset + length > this.strings.length) corrupt(`${what} [${offset}, ${offset + length}) is outside the string table`);
    return this.r.slice(this.strings.offset + offset, length, what);
  }

  private inodeAt(ino: number): number {
    if (!Number.isInteger(ino) || ino < 1 || ino > this.inodeCount) {
      throw new ArchiveFormatError(`inode ${ino} does not exist (archive has ${this.inodeCount})`);
    }
    return this.inodes.offset + (ino - 1) * this.inodes.recordSize;
  }

  /** [first, first+count) child entries of directory `ino`, or undefined if not a directory. */
  private childRange(ino: number): { first: number; count: number } | undefined {
    const at = this.inodeAt(ino);
    if (this.r.u8(at + I.type) !== DIRECTORY_TYPE_CODE) return undefined;
    const first = this.r.u32(at + I.firstChild);
    const count = this.r.u32(at + I.childCount);
    if (first + count > this.entryCount)
      corrupt(`directory ${ino} children [${first}, ${first + count}) exceed ${this.entryCount} entries`);
    return { first, count };
  }

  private entry(index: number, parent: number): { ino: number; nameOffset: number; nameLength: number } {
    const at = this.entries.offset + index * this.entries.recordSize;
    if (this.r.u32(at + E.parent) !== parent) corrupt(`entry ${index} is listed under directory ${parent} but names another parent`);
    const nameOffset = this.r.u32(at + E.nameOffset);
    const nameLength = this.r.u32(at + E.nameLength);
    if (nameOffset + nameLength > this.strings.length) corrupt(`entry ${index} name is outside the string table`);
    return { ino: this.r.u32(at + E.ino), nameOffset: this.strings.offset + nameOffset, nameLength };
  }

  private entryName(index: number, parent: number): { ino: number; name: string } {
    const e = this.entry(index, parent);
    const name = textDecoder.decode(this.r.slice(e.nameOffset, e.nameLength, 'entry name'));
    const reason = invalidNameReason(name);
    if (reason) corrupt(`entry ${index}: ${reason}`);
    return { ino: e.ino, name };
  }

  inode(ino: number): Inode {
    return guarded(() => this.decodeInode(ino));
  }

  private decodeInode(ino: number): Inode {
    const r = this.r;
    const at = this.inodeAt(ino);
    const type: FileType | undefined = FILE_TYPES[r.u8(at + I.type) - 1];
    if (type === undefined) corrupt(`inode ${ino} has unknown type ${r.u8(at + I.type)}`);
    const flags = r.u8(at + I.flags);
    if (flags > 3) corrupt(`inode ${ino} has unknown flags ${flags}`);
    const inode: Inode = {
      ino,
      type,
      mode: r.u32(at + I.mode),
      uid: r.u32(at + I.uid),
      gid: r.u32(at + I.gid),
      size: r.u64(at + I.size_, 'inode size'),
      mtimeSec: r.i64(at + I.mtimeSec, 'inode mtime'),
      mtimeNsec: r.u32(at + I.mtimeNsec),
      rdevMajor: r.u32(at + I.rdevMajor),
      rdevMinor: r.u32(at + I.rdevMinor),
      nlink: r.u32(at + I.nlink),
    };
    if (flags & INODE_FLAG_LINK_TARGET) {
      inode.linkTarget = this.string(r.u32(at + I.linkTargetOffset), r.u32(at + I.linkTargetLength), 'link target');
    }
    const xattrCount = r.u32(at + I.xattrCount);
    if (xattrCount > 0) {
      const first = r.u32(at + I.firstXattr);
      if (first + xattrCount > this.xattrs.count) corrupt(`inode ${ino} xattrs exceed the xattr table`);
      const xattrs: Record<string, Uint8Array> = {};
      for (let i = first; i < first + xattrCount; i++) {
        const xat = this.xattrs.offset + i * this.xattrs.recordSize;
        const name = this.string(r.u32(xat + X.nameOffset), r.u32(xat + X.nameLength), 'xattr name');
        const value = this.stringBytes(r.u32(xat + X.valueOffset), r.u32(xat + X.valueLength), 'xattr value').slice();
        // defineProperty, not assignment: an xattr named "__proto__" must be an own key, not the prototype.
        Object.defineProperty(xattrs, name, { value, enumerable: true, writable: true, configurable: true });
      }
      inode.xattrs = xattrs;
    }
    if (flags & INODE_FLAG_DATA) {
      const layer = r.u32(at + I.dataLayer);
      if (layer >= this.layers.length) corrupt(`inode ${ino} data names missing layer ${layer}`);
      inode.data = { layer, offset: r.u64(at + I.dataOffset, 'data offset') };
    }
    return inode;
  }

  /** Binary search of directory `parentIno`'s children for `name`; its inode number or undefined. */
  private findChild(parentIno: number, name: Uint8Array): number | undefined {
    const range = this.childRange(parentIno);
    if (!range) return undefined;
    const bytes = this.r.bytes;
    let lo = range.first;
    let hi = range.first + range.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.entry(mid, parentIno);
      const order = compareBytes(bytes, e.nameOffset, e.nameLength, name);
      if (order === 0) return e.ino;
      if (order < 0) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  private resolve(path: string): number | undefined {
    if (!path.startsWith('/')) return undefined;
    let ino = ROOT_INO;
    for (const component of path.split('/')) {
      if (component === '') continue;
      if (component === '.' || component === '..') return undefined;
      const next = this.findChild(ino, textEncoder.encode(component));
      if (next === undefined) return undefined;
      ino = next;
    }
    return ino;
  }

  lookup(path: string): Inode | undefined {
    return guarded(() => {
      const ino = this.resolve(path);
      return ino === undefined ? undefined : this.decodeInode(ino);
    });
  }

  readdir(path: string): { name: string; inode: Inode }[] | undefined {
    return guarded(() => {
      const ino = this.resolve(path);
      return ino === undefined ? undefined : this.listChildren(ino);
    });
  }

  childNames(ino: number): { name: string; ino: number }[] | undefined {
    return guarded(() => {
      const range = this.childRange(ino);
      if (!range) return undefined;
      const out: { name: string; ino: number }[] = [];
      for (let i = range.first; i < range.first + range.count; i++) out.push(this.entryName(i, ino));
      return out;
    });
  }

  private listChildren(ino: number): { name: string; inode: Inode }[] | undefined {
    const range = this.childRange(ino);
    if (!range) return undefined;
    const out: { name: string; inode: Inode }[] = [];
    for (let i = range.first; i < range.first + range.count; i++) {
      const { ino: child, name } = this.entryName(i, ino);
      out.push({ name, inode: this.decodeInode(child) });
    }
    return out;
  }

  walk(): Iterable<{ path: string; inode: Inode }> {
    return { [Symbol.iterator]: () => this.walkEntries() };
  }

  private *walkEntries(): Generator<{ path: string; inode: Inode }> {
    // Each directory is expanded once: a hostile archive with a directory cycle ends in an error, not a loop.
    const expanded = new Uint8Array(this.inodeCount + 1);
    const stack: { ino: number; path: string }[] = [{ ino: ROOT_INO, path: '/' }];
    yield { path: '/', inode: this.inode(ROOT_INO) };
    while (stack.length > 0) {
      const dir = stack.pop()!;
      if (expanded[dir.ino]) corrupt(`directory inode ${dir.ino} is reachable twice`);
      expanded[dir.ino] = 1;
      const children = guarded(() => this.listChildren(dir.ino)) ?? [];
      const subdirs: { ino: number; path: string }[] = [];
      for (const { name, inode } of children) {
        const path = dir.path === '/' ? `/${name}` : `${dir.path}/${name}`;
        yield { path, inode };
        if (inode.type === 'directory') subdirs.push({ ino: inode.ino, path });
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
    }
  }
}
