// The one module that writes and reads the `.clip` binary format (v2). Layout constants are
// in layout.ts; docs/archive-format.md is the field-by-field specification.
//
// Opening is cheap: the checksum is verified and the small tables (metadata, layers, spans)
// are decoded, but inodes and directory entries stay in the buffer as fixed-size records and
// are decoded on demand. Lookups binary-search each directory's contiguous, byte-sorted
// children.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { storeWindow } from './window-store.js';
import { compareNames } from './name-order.js';
import { ArchiveFormatError, type Digest, isClipError, isDigest } from '@clip/shared';
import { ByteReader, ByteWriter, compareBytes } from './binary.js';
import { compressSections, compressSectionsAsync, inflateSections, type EncodedSection, type SectionEntry } from './compressed-tables.js';
import {
  CHECKPOINT_KINDS,
  CHECKSUM_SIZE,
  COMPRESSIONS,
  DIRECTORY_TYPE_CODE,
  ENTRY_RECORD as E,
  FILE_TYPES,
  FORMAT_MAJOR,
  FLAG_COMPRESSED_TABLES,
  FLAG_DATA_SECTION,
  FORMAT_MINOR,
  FORMAT_MINOR_COMPRESSED,
  FORMAT_MINOR_DATA,
  FORMAT_MINOR_LATEST,
  H_ENTRY_COUNT,
  H_FLAGS,
  H_INODE_COUNT,
  H_MAJOR,
  H_MINOR,
  H_SECTION_COUNT,
  HEADER_SIZE,
  INODE_FLAG_DATA,
  INODE_FLAG_LINK_TARGET,
  INODE_RECORD as I,
  KNOWN_FLAGS,
  LAYER_RECORD as L,
  LAYER_SOURCE_ARCHIVE,
  LAYER_SOURCE_REGISTRY,
  MAGIC,
  MAX_SECTIONS,
  MAX_WINDOW,
  PIECE_RECORD as P,
  ROOT_INO,
  SECTION,
  SECTION_ENTRY_SIZE,
  SPAN_RECORD as S,
  XATTR_RECORD as X,
} from './layout.js';
import type {
  ArchiveContents,
  ArchiveLayer,
  ArchiveMetadata,
  Checkpoint,
  DirEntry,
  FileType,
  Inode,
  Span,
  SpanPiece,
} from './model.js';

export const ARCHIVE_FORMAT_VERSION = FORMAT_MAJOR;

export interface EncodeOptions {
  /**
   * Store the tables deflate-compressed (v2.2, flag bit 1). Default true; false writes the
   * v2.0 / v2.1 layout, byte for byte as before compressed tables existed.
   */
  compressTables?: boolean;
}

export interface ClipArchive {
  readonly formatVersion: number;
  /** Minor version: 0 = v2.0 (OCI mode), 1 = v2.1 (data-carrying mode), 2 = v2.2 (compressed tables, either mode). */
  readonly minorVersion?: number;
  /** Length of the whole archive file (also when only its head was read). */
  readonly byteLength: number;
  /** Data-carrying archives: where the DATA section lies in the file (absolute offsets). */
  readonly dataSection?: { offset: number; length: number };
  readonly metadata: ArchiveMetadata;
  readonly layers: readonly ArchiveLayer[];
  readonly inodeCount: number;
  /** Number of directory entries (names), not counting the root. */
  readonly entryCount: number;
  /** Inode by 1-based number. */
  inode(ino: number): Inode;
  /** Absolute path, '/' = root; no symlink following; '.'/'..' components never match. */
  lookup(path: string): Inode | undefined;
  /** One name in directory `parentIno` (what FUSE lookup asks); undefined if absent or not a directory. */
  lookupChild(parentIno: number, name: string): Inode | undefined;
  /** undefined if not a directory. */
  readdir(path: string): { name: string; inode: Inode }[] | undefined;
  /** Children of directory `ino` in name-byte order; undefined if not a directory. */
  readdirIno(ino: number): { name: string; inode: Inode }[] | undefined;
  /** Names and inode numbers of directory `ino`'s children, name-byte order, without decoding their inodes. */
  childNames(ino: number): { name: string; ino: number }[] | undefined;
  /** Every entry, the root first, parents before children. */
  walk(): Iterable<{ path: string; inode: Inode }>;
  /** Everything decoded back into the in-memory model (entries in walk order). */
  contents(): ArchiveContents;
}

// ---------------------------------------------------------------------------------------
// Encoding

const textEncoder = new TextEncoder();

/** A deduplicating byte heap for names, link targets, media types and xattrs. */
class StringHeap {
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

function latin1Key(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

function fail(message: string): never {
  throw new ArchiveFormatError(`cannot encode archive: ${message}`);
}

function checkU32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) fail(`${what} = ${value} is not a u32`);
  return value;
}

function isU32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}

const NO_XATTRS: { name: Uint8Array; value: Uint8Array }[] = [];

function checkU64(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) fail(`${what} = ${value} is not a non-negative safe integer`);
  return value;
}

function digestBytes(digest: string, what: string): Uint8Array {
  if (!isDigest(digest)) fail(`${what} ${JSON.stringify(digest)} is not a sha256 digest`);
  return Buffer.from(digest.slice(7), 'hex');
}

/** Why `name` cannot be a directory entry name, or undefined if it can. */
export function invalidNameReason(name: string): string | undefined {
  if (name.length === 0) return 'empty name';
  if (name === '.' || name === '..') return `name ${JSON.stringify(name)} is reserved`;
  if (name.includes('/')) return `name ${JSON.stringify(name)} contains '/'`;
  if (name.includes('\0')) return `name ${JSON.stringify(name)} contains NUL`;
  return undefined;
}

/** JSON with object keys sorted, so equal metadata always encodes to equal bytes. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).filter((key) => (value as Record<string, unknown>)[key] !== undefined).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function splitPath(path: string): { parent: string; name: string } {
  if (!path.startsWith('/') || path.endsWith('/')) fail(`entry path ${JSON.stringify(path)} is not absolute without trailing slash`);
  const cut = path.lastIndexOf('/');
  const parent = cut === 0 ? '/' : path.slice(0, cut);
  const name = path.slice(cut + 1);
  const reason = invalidNameReason(name);
  if (reason) fail(`entry ${JSON.stringify(path)}: ${reason}`);
  return { parent, name };
}

interface PreparedEntry {
  parent: number;
  ino: number;
  name: string;
}

const byParentAndName = (a: PreparedEntry, b: PreparedEntry) => a.parent - b.parent || compareNames(a.name, b.name);

/**
 * The general case: entries in any order, parents resolved through a map of every path, then
 * sorted by (parent, name bytes). Reports what is wrong with invalid entry lists.
 */
function prepareEntries(entries: readonly DirEntry[], inodes: readonly Inode[]): PreparedEntry[] {
  const inoByPath = new Map<string, number>([['/', ROOT_INO]]);
  for (const entry of entries) {
    if (entry.path === '/') {
      if (entry.ino !== ROOT_INO) fail(`root entry names inode ${entry.ino}, expected 1`);
      continue;
    }
    if (inoByPath.has(entry.path)) fail(`duplicate entry ${JSON.stringify(entry.path)}`);
    if (!Number.isInteger(entry.ino) || entry.ino < 1 || entry.ino > inodes.length) fail(`entry ${JSON.stringify(entry.path)} names missing inode ${entry.ino}`);
    inoByPath.set(entry.path, entry.ino);
  }
  const prepared: PreparedEntry[] = [];
  for (const entry of entries) {
    if (entry.path === '/') continue;
    const { parent, name } = splitPath(entry.path);
    const parentIno = inoByPath.get(parent);
    if (parentIno === undefined) fail(`entry ${JSON.stringify(entry.path)} has no parent entry ${JSON.stringify(parent)}`);
    if (inodes[parentIno - 1]!.type !== 'directory') fail(`parent of ${JSON.stringify(entry.path)} is not a directory`);
    prepared.push({ parent: parentIno, ino: entry.ino, name });
  }
  // Indexers hand entries over in this order already: check before sorting.
  let sorted = true;
  for (let i = 1; i < prepared.length && sorted; i++) sorted = byParentAndName(prepared[i - 1]!, prepared[i]!) < 0;
  if (!sorted) prepared.sort(byParentAndName);
  return prepared;
}

/**
 * The common case, in one pass: each directory's entries contiguous and in name-byte order,
 * every directory listed before its own entries, as indexers hand them over (the overlay tree
 * lists directories in path order, so a directory's name comes before its children). Only
 * directories' paths are kept, and consecutive entries of one directory look their parent up
 * once; the runs are then put in parent-inode order, which sorts the whole list without
 * comparing names again. Returns undefined at the first entry that does not fit;
 * prepareEntries then redoes the work and reports any error. Strictly increasing names within
 * a directory, and one run per directory, also rule out duplicates.
 */
function prepareSortedEntries(entries: readonly DirEntry[], inodes: readonly Inode[]): PreparedEntry[] | undefined {
  const inodeCount = inodes.length;
  const prepared: PreparedEntry[] = [];
  const directoryIno = new Map<string, number>([['/', ROOT_INO]]);
  /** Runs of one parent's entries: parent inode, first index; in list order. */
  const runParents: number[] = [];
  const runStarts: number[] = [];
  const hadRun = new Uint8Array(inodeCount + 1);
  let lastParent: string | undefined;
  let lastParentIno = 0;
  let previousName = '';
  let inOrder = true;
  for (const entry of entries) {
    const { path, ino } = entry;
    if (path === '/') {
      if (ino !== ROOT_INO) return undefined;
      continue;
    }
    if (!Number.isInteger(ino) || ino < 1 || ino > inodeCount) return undefined;
    const cut = path.lastIndexOf('/');
    if (cut < 0 || cut === path.length - 1 || path.charCodeAt(0) !== 47) return undefined;
    const parent = cut === 0 ? '/' : path.slice(0, cut);
    const name = path.slice(cut + 1);
    if (invalidNameReason(name) !== undefined) return undefined;
    if (parent === lastParent) {
      if (compareNames(previousName, name) >= 0) return undefined;
    } else {
      const found = directoryIno.get(parent);
      if (found === undefined || hadRun[found] === 1) return undefined;
      hadRun[found] = 1;
      if (runParents.length > 0 && found < runParents[runParents.length - 1]!) inOrder = false;
      runParents.push(found);
      runStarts.push(prepared.length);
      lastParent = parent;
      lastParentIno = found;
    }
    previousName = name;
    if (inodes[ino - 1]!.type === 'directory') directoryIno.set(path, ino);
    prepared.push({ parent: lastParentIno, ino, name });
  }
  if (inOrder) return prepared;
  const order = runParents.map((_, run) => run).sort((a, b) => runParents[a]! - runParents[b]!);
  const sorted: PreparedEntry[] = [];
  for (const run of order) {
    const end = run + 1 < runStarts.length ? runStarts[run + 1]! : prepared.length;
    for (let i = runStarts[run]!; i < end; i++) sorted.push(prepared[i]!);
  }
  return sorted;
}

interface EncodedTables {
  sections: EncodedSection[];
  inodeCount: number;
  entryCount: number;
  /** Whether the sections are to be compressed (compressSections: deflated ones and the COMPRESSED list). */
  compressed: boolean;
}

/**
 * Deterministic: equal contents (up to entry order and object key order) give identical bytes.
 * OCI mode only; data-carrying contents (layers with source 'archive') go through
 * encodeDataArchiveHead / encodeDataArchive.
 */
export function encodeArchive(contents: ArchiveContents, options: EncodeOptions = {}): Uint8Array {
  if (contents.layers.some((layer) => layer.source === 'archive')) fail('layers with source "archive" need the data-carrying encoder');
  const tables = encodeTables(contents, options);
  return writeArchive(tables.compressed ? { ...tables, sections: compressSections(tables.sections) } : tables);
}

/**
 * encodeArchive with the table sections deflated in parallel on the libuv thread pool (the
 * indexer's serial tail); byte-identical to encodeArchive.
 */
export async function encodeArchiveAsync(contents: ArchiveContents, options: EncodeOptions = {}): Promise<Uint8Array> {
  if (contents.layers.some((layer) => layer.source === 'archive')) fail('layers with source "archive" need the data-carrying encoder');
  const tables = encodeTables(contents, options);
  return writeArchive(tables.compressed ? { ...tables, sections: await compressSectionsAsync(tables.sections) } : tables);
}

function writeArchive({ sections, inodeCount, entryCount, compressed }: EncodedTables): Uint8Array {
  const tableEnd = HEADER_SIZE + sections.length * SECTION_ENTRY_SIZE;
  const bodyLength = sections.reduce((sum, s) => sum + s.bytes.length, 0);
  const out = new ByteWriter(tableEnd + bodyLength + CHECKSUM_SIZE);
  const version = compressed ? { minor: FORMAT_MINOR_COMPRESSED, flags: FLAG_COMPRESSED_TABLES } : { minor: FORMAT_MINOR, flags: 0 };
  writeHeader(out, { ...version, sectionCount: sections.length, inodeCount, entryCount });
  const end = writeSections(out, sections, tableEnd);
  out.set(end, createHash('sha256').update(out.bytes.subarray(0, end)).digest());
  return out.bytes;
}

/**
 * The head of a data-carrying archive (v2.1): header, section table, tables and the
 * TABLES_DIGEST section, ending where the DATA section of `dataLength` bytes starts. The
 * caller appends the DATA bytes and then the sha256 of everything before (the trailing
 * checksum). Every layer must have source 'archive' and compressedSize = dataLength.
 */
export function encodeDataArchiveHead(contents: ArchiveContents, dataLength: number, options: EncodeOptions = {}): Uint8Array {
  checkU64(dataLength, 'data section length');
  contents.layers.forEach((layer, li) => {
    if (layer.source !== 'archive') fail(`layers[${li}] of a data-carrying archive must have source "archive"`);
    if (layer.compressedSize !== dataLength) fail(`layers[${li}].compressedSize ${layer.compressedSize} is not the data section length ${dataLength}`);
  });
  const tables = encodeTables(contents, options);
  const { inodeCount, entryCount, compressed } = tables;
  const sections = compressed ? compressSections(tables.sections) : tables.sections;
  const sectionCount = sections.length + 2;
  const tableEnd = HEADER_SIZE + sectionCount * SECTION_ENTRY_SIZE;
  const bodyLength = sections.reduce((sum, s) => sum + s.bytes.length, 0);
  const digestAt = tableEnd + bodyLength;
  const out = new ByteWriter(digestAt + CHECKSUM_SIZE);
  const version = compressed
    ? { minor: FORMAT_MINOR_COMPRESSED, flags: FLAG_DATA_SECTION | FLAG_COMPRESSED_TABLES }
    : { minor: FORMAT_MINOR_DATA, flags: FLAG_DATA_SECTION };
  writeHeader(out, { ...version, sectionCount, inodeCount, entryCount });
  writeSections(out, sections, tableEnd);
  writeSectionEntry(out, sections.length, { id: SECTION.tablesDigest, recordSize: 0, offset: digestAt, length: CHECKSUM_SIZE });
  writeSectionEntry(out, sections.length + 1, { id: SECTION.data, recordSize: 0, offset: digestAt + CHECKSUM_SIZE, length: dataLength });
  out.set(digestAt, createHash('sha256').update(out.bytes.subarray(0, digestAt)).digest());
  return out.bytes;
}

/** A whole data-carrying archive in memory (small archives, fixtures, tests). */
export function encodeDataArchive(contents: ArchiveContents, data: Uint8Array, options: EncodeOptions = {}): Uint8Array {
  const head = encodeDataArchiveHead(contents, data.length, options);
  const out = new Uint8Array(head.length + data.length + CHECKSUM_SIZE);
  out.set(head, 0);
  out.set(data, head.length);
  out.set(createHash('sha256').update(out.subarray(0, head.length + data.length)).digest(), head.length + data.length);
  return out;
}

function writeHeader(
  out: ByteWriter,
  h: { minor: number; flags: number; sectionCount: number; inodeCount: number; entryCount: number },
): void {
  out.set(0, MAGIC);
  out.u16(H_MAJOR, FORMAT_MAJOR);
  out.u16(H_MINOR, h.minor);
  out.u32(H_FLAGS, h.flags);
  out.u32(H_SECTION_COUNT, h.sectionCount);
  out.u32(H_INODE_COUNT, h.inodeCount);
  out.u32(H_ENTRY_COUNT, h.entryCount);
}

function writeSectionEntry(out: ByteWriter, index: number, s: { id: number; recordSize: number; offset: number; length: number }): void {
  const at = HEADER_SIZE + index * SECTION_ENTRY_SIZE;
  out.u32(at, s.id);
  out.u32(at + 4, s.recordSize);
  out.u64(at + 8, s.offset);
  out.u64(at + 16, s.length);
}

/** Writes table entries 0..n-1 and the sections' bytes from `offset`; returns the end offset. */
function writeSections(out: ByteWriter, sections: EncodedSection[], offset: number): number {
  sections.forEach((section, i) => {
    writeSectionEntry(out, i, { id: section.id, recordSize: section.recordSize, offset, length: section.bytes.length });
    out.set(offset, section.bytes);
    offset += section.bytes.length;
  });
  return offset;
}

function encodeTables(contents: ArchiveContents, options: EncodeOptions): EncodedTables {
  const { inodes, layers } = contents;
  const inodeCount = checkU32(inodes.length, 'inode count');
  if (inodeCount < 1) fail('no root inode');
  inodes.forEach((inode, i) => {
    if (inode.ino !== i + 1) fail(`inodes[${i}].ino is ${inode.ino}, expected ${i + 1}`);
  });
  if (inodes[0]!.type !== 'directory') fail('inode 1 (the root) is not a directory');

  // Directory entries: resolve parents, validate names, sort by (parent, name bytes).
  const prepared = prepareSortedEntries(contents.entries, inodes) ?? prepareEntries(contents.entries, inodes);
  const childRange = new Map<number, { first: number; count: number }>();
  prepared.forEach((entry, index) => {
    const range = childRange.get(entry.parent);
    if (range) range.count++;
    else childRange.set(entry.parent, { first: index, count: 1 });
  });
  const directoryOwner = new Map<number, string>();
  for (const entry of contents.entries) {
    if (entry.path !== '/' && inodes[entry.ino - 1]!.type === 'directory') {
      if (entry.ino === ROOT_INO || directoryOwner.has(entry.ino)) fail(`directory inode ${entry.ino} has more than one name`);
      directoryOwner.set(entry.ino, entry.path);
    }
  }

  const strings = new StringHeap();

  // Layers, spans, pieces, windows.
  const layerBytes = new ByteWriter(layers.length * L.size);
  const spanList: { span: Span; windowOffset: number; windowStored: number }[] = [];
  const windowChunks: Uint8Array[] = [];
  let windowsLength = 0;
  let pieceCount = 0;
  layers.forEach((layer, li) => {
    const at = li * L.size;
    layerBytes.set(at + L.digest, digestBytes(layer.digest, `layers[${li}].digest`));
    layerBytes.set(at + L.diffId, digestBytes(layer.diffId, `layers[${li}].diffId`));
    layerBytes.u64(at + L.compressedSize, checkU64(layer.compressedSize, `layers[${li}].compressedSize`));
    layerBytes.u64(at + L.uncompressedSize, checkU64(layer.uncompressedSize, `layers[${li}].uncompressedSize`));
    const mediaType = strings.addString(layer.mediaType);
    layerBytes.u32(at + L.mediaTypeOffset, mediaType.offset);
    layerBytes.u32(at + L.mediaTypeLength, mediaType.length);
    layerBytes.u32(at + L.firstSpan, checkU32(spanList.length, 'span count'));
    layerBytes.u32(at + L.spanCount, checkU32(layer.spans.length, `layers[${li}] span count`));
    const compression = COMPRESSIONS.indexOf(layer.compression);
    if (compression < 0) fail(`layers[${li}].compression ${JSON.stringify(layer.compression)} is unknown`);
    layerBytes.u8(at + L.compression, compression);
    if (layer.source !== undefined && layer.source !== 'archive') fail(`layers[${li}].source ${JSON.stringify(layer.source)} is unknown`);
    layerBytes.u8(at + L.source, layer.source === 'archive' ? LAYER_SOURCE_ARCHIVE : LAYER_SOURCE_REGISTRY);
    for (const span of layer.spans) {
      const window = span.checkpoint.window;
      if (window.length > MAX_WINDOW) fail(`layers[${li}] has a checkpoint window of ${window.length} bytes (max ${MAX_WINDOW})`);
      let windowStored = 0;
      const windowOffset = windowsLength;
      if (window.length > 0) {
        const stored = span.checkpoint.storedWindow ?? storeWindow(window);
        windowChunks.push(stored);
        windowsLength += stored.length;
        windowStored = stored.length;
        checkU32(windowsLength, 'windows section length');
      }
      spanList.push({ span, windowOffset, windowStored });
      pieceCount += span.pieces.length;
    }
  });

  const spanBytes = new ByteWriter(spanList.length * S.size);
  const pieceBytes = new ByteWriter(checkU32(pieceCount, 'piece count') * P.size);
  let pieceIndex = 0;
  spanList.forEach(({ span, windowOffset, windowStored }, si) => {
    const at = si * S.size;
    const cp = span.checkpoint;
    spanBytes.u64(at + S.uncompressedOffset, checkU64(cp.uncompressedOffset, `spans[${si}].uncompressedOffset`));
    spanBytes.u64(at + S.uncompressedEnd, checkU64(span.uncompressedEnd, `spans[${si}].uncompressedEnd`));
    spanBytes.u64(at + S.compressedBitOffset, checkU64(cp.compressedBitOffset, `spans[${si}].compressedBitOffset`));
    spanBytes.u32(at + S.firstPiece, pieceIndex);
    spanBytes.u32(at + S.pieceCount, span.pieces.length);
    spanBytes.u32(at + S.windowOffset, windowOffset);
    spanBytes.u32(at + S.windowStoredLength, windowStored);
    spanBytes.u32(at + S.windowLength, cp.window.length);
    const kind = CHECKPOINT_KINDS.indexOf(cp.kind);
    if (kind < 0) fail(`spans[${si}] has unknown checkpoint kind ${JSON.stringify(cp.kind)}`);
    spanBytes.u8(at + S.kind, kind);
    spanBytes.u8(at + S.windowEncoding, cp.window.length > 0 ? 1 : 0);
    for (const piece of span.pieces) {
      const pat = pieceIndex * P.size;
      pieceBytes.u64(pat + P.compressedEnd, checkU64(piece.compressedEnd, `piece ${pieceIndex} compressedEnd`));
      pieceBytes.u64(pat + P.uncompressedEnd, checkU64(piece.uncompressedEnd, `piece ${pieceIndex} uncompressedEnd`));
      pieceBytes.set(pat + P.digest, digestBytes(piece.digest, `piece ${pieceIndex} digest`));
      pieceIndex++;
    }
  });

  // Inodes and xattrs.
  const inodeBytes = new ByteWriter(inodeCount * I.size);
  const xattrRecords: { name: { offset: number; length: number }; value: { offset: number; length: number } }[] = [];
  // Field checks build their messages only on failure: this loop runs once per inode.
  const inodeU32 = (inode: Inode, field: 'mode' | 'uid' | 'gid' | 'mtimeNsec' | 'nlink' | 'rdevMajor' | 'rdevMinor'): number =>
    isU32(inode[field]) ? inode[field] : checkU32(inode[field], `inode ${inode.ino} ${field}`);
  inodes.forEach((inode, i) => {
    const at = i * I.size;
    const type = FILE_TYPES.indexOf(inode.type);
    if (type < 0) fail(`inode ${inode.ino} has unknown type ${JSON.stringify(inode.type)}`);
    inodeBytes.u8(at + I.type, type + 1);
    let flags = 0;
    inodeBytes.u32(at + I.mode, inodeU32(inode, 'mode'));
    inodeBytes.u32(at + I.uid, inodeU32(inode, 'uid'));
    inodeBytes.u32(at + I.gid, inodeU32(inode, 'gid'));
    inodeBytes.u64(at + I.size_, Number.isSafeInteger(inode.size) && inode.size >= 0 ? inode.size : checkU64(inode.size, `inode ${inode.ino} size`));
    if (!Number.isSafeInteger(inode.mtimeSec)) fail(`inode ${inode.ino} mtimeSec is not a safe integer`);
    // Same bytes as i64 for non-negative times, without a BigInt per inode.
    if (inode.mtimeSec >= 0) inodeBytes.u64(at + I.mtimeSec, inode.mtimeSec);
    else inodeBytes.i64(at + I.mtimeSec, inode.mtimeSec);
    inodeBytes.u32(at + I.mtimeNsec, inodeU32(inode, 'mtimeNsec'));
    inodeBytes.u32(at + I.nlink, inodeU32(inode, 'nlink'));
    inodeBytes.u32(at + I.rdevMajor, inodeU32(inode, 'rdevMajor'));
    inodeBytes.u32(at + I.rdevMinor, inodeU32(inode, 'rdevMinor'));
    if (inode.linkTarget !== undefined) {
      flags |= INODE_FLAG_LINK_TARGET;
      const target = strings.addString(inode.linkTarget);
      inodeBytes.u32(at + I.linkTargetOffset, target.offset);
      inodeBytes.u32(at + I.linkTargetLength, target.length);
    }
    const xattrs = inode.xattrs === undefined ? NO_XATTRS : Object.entries(inode.xattrs)
      .map(([name, value]) => ({ name: textEncoder.encode(name), value }))
      .sort((a, b) => Buffer.compare(a.name, b.name));
    inodeBytes.u32(at + I.firstXattr, checkU32(xattrRecords.length, 'xattr count'));
    inodeBytes.u32(at + I.xattrCount, xattrs.length);
    for (const { name, value } of xattrs) {
      if (name.length === 0) fail(`inode ${inode.ino} has an xattr with an empty name`);
      xattrRecords.push({ name: strings.addBytes(name, latin1Key(name)), value: strings.addBytes(value) });
    }
    if (inode.data !== undefined) {
      flags |= INODE_FLAG_DATA;
      if (!Number.isInteger(inode.data.layer) || inode.data.layer < 0 || inode.data.layer >= layers.length) {
        fail(`inode ${inode.ino} data names missing layer ${inode.data.layer}`);
      }
      inodeBytes.u32(at + I.dataLayer, inode.data.layer);
      inodeBytes.u64(at + I.dataOffset, checkU64(inode.data.offset, `inode ${inode.ino} data offset`));
    }
    const children = childRange.get(inode.ino);
    if (children) {
      inodeBytes.u32(at + I.firstChild, children.first);
      inodeBytes.u32(at + I.childCount, children.count);
    }
    inodeBytes.u8(at + I.flags, flags);
  });

  const entryBytes = new ByteWriter(checkU32(prepared.length, 'entry count') * E.size);
  prepared.forEach((entry, i) => {
    const at = i * E.size;
    const name = strings.addName(entry.name);
    entryBytes.u32(at + E.parent, entry.parent);
    entryBytes.u32(at + E.ino, entry.ino);
    entryBytes.u32(at + E.nameOffset, name.offset);
    entryBytes.u32(at + E.nameLength, name.length);
  });

  const xattrBytes = new ByteWriter(xattrRecords.length * X.size);
  xattrRecords.forEach(({ name, value }, i) => {
    const at = i * X.size;
    xattrBytes.u32(at + X.nameOffset, name.offset);
    xattrBytes.u32(at + X.nameLength, name.length);
    xattrBytes.u32(at + X.valueOffset, value.offset);
    xattrBytes.u32(at + X.valueLength, value.length);
  });

  const windows = new Uint8Array(windowsLength);
  let windowAt = 0;
  for (const chunk of windowChunks) {
    windows.set(chunk, windowAt);
    windowAt += chunk.length;
  }

  const sections: EncodedSection[] = [
    { id: SECTION.metadata, recordSize: 0, bytes: textEncoder.encode(canonicalJson(contents.metadata)) },
    { id: SECTION.layers, recordSize: L.size, bytes: layerBytes.bytes },
    { id: SECTION.spans, recordSize: S.size, bytes: spanBytes.bytes },
    { id: SECTION.pieces, recordSize: P.size, bytes: pieceBytes.bytes },
    { id: SECTION.windows, recordSize: 0, bytes: windows },
    { id: SECTION.inodes, recordSize: I.size, bytes: inodeBytes.bytes },
    { id: SECTION.entries, recordSize: E.size, bytes: entryBytes.bytes },
    { id: SECTION.xattrs, recordSize: X.size, bytes: xattrBytes.bytes },
    { id: SECTION.strings, recordSize: 0, bytes: strings.concat() },
  ];

  const compressed = options.compressTables ?? true;
  return { sections, inodeCount, entryCount: prepared.length, compressed };
}

// ---------------------------------------------------------------------------------------
// Decoding

const textDecoder = new TextDecoder('utf-8', { fatal: true });

function corrupt(message: string): never {
  throw new ArchiveFormatError(`corrupt archive: ${message}`);
}

/** Runs `fn`, turning any non-clip exception (RangeError, TypeError from bad UTF-8...) into ArchiveFormatError. */
function guarded<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (isClipError(error)) throw error;
    throw new ArchiveFormatError(`corrupt archive: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

interface SectionView {
  offset: number;
  length: number;
  recordSize: number;
  count: number;
}

function hexDigest(bytes: Uint8Array): Digest {
  return `sha256:${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`;
}

function decodeMetadata(bytes: Uint8Array): ArchiveMetadata {
  let value: unknown;
  try {
    value = JSON.parse(textDecoder.decode(bytes));
  } catch (error) {
    throw new ArchiveFormatError('corrupt archive: metadata is not valid UTF-8 JSON', { cause: error });
  }
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObject(value)) corrupt('metadata is not an object');
  if (typeof value.sourceRef !== 'string') corrupt('metadata.sourceRef is not a string');
  if (typeof value.createdBy !== 'string') corrupt('metadata.createdBy is not a string');
  if (!isObject(value.imageConfig)) corrupt('metadata.imageConfig is not an object');
  if (value.storage !== undefined) {
    const storage = value.storage;
    if (!isObject(storage) || typeof storage.registry !== 'string' || typeof storage.repository !== 'string'
      || typeof storage.manifestDigest !== 'string' || !isDigest(storage.manifestDigest)
      || (storage.tag !== undefined && typeof storage.tag !== 'string')) {
      corrupt('metadata.storage is malformed');
    }
  }
  return value as unknown as ArchiveMetadata;
}

function checkHeadStart(bytes: Uint8Array): void {
  if (bytes.byteLength < MAGIC.length || !MAGIC.every((b, i) => bytes[i] === b)) {
    throw new ArchiveFormatError('not a clip archive (bad magic)');
  }
  if (bytes.byteLength < HEADER_SIZE + CHECKSUM_SIZE) corrupt(`truncated: ${bytes.byteLength} bytes`);
  const r = new ByteReader(bytes);
  const major = r.u16(H_MAJOR);
  const minor = r.u16(H_MINOR);
  if (major !== FORMAT_MAJOR) {
    throw new ArchiveFormatError(
      major > FORMAT_MAJOR
        ? `archive format version ${major}.${minor} is newer than this clip supports (version ${FORMAT_MAJOR}); upgrade clip`
        : `archive format version ${major} is no longer supported (this clip reads version ${FORMAT_MAJOR}); re-index the image`,
    );
  }
}

/** The trailing sha256 over everything before it. */
function verifyChecksum(bytes: Uint8Array): void {
  const bodyEnd = bytes.byteLength - CHECKSUM_SIZE;
  const actual = createHash('sha256').update(bytes.subarray(0, bodyEnd)).digest();
  if (!actual.equals(bytes.subarray(bodyEnd))) corrupt('checksum mismatch (truncated or damaged)');
}

/** The section table as stored (a compressed section's length is its stored length). */
function readSectionTable(r: ByteReader): Map<number, SectionEntry> {
  const sectionCount = r.u32(H_SECTION_COUNT);
  if (sectionCount > MAX_SECTIONS) corrupt(`${sectionCount} sections`);
  const found = new Map<number, SectionEntry>();
  for (let i = 0; i < sectionCount; i++) {
    const at = HEADER_SIZE + i * SECTION_ENTRY_SIZE;
    const id = r.u32(at);
    const recordSize = r.u32(at + 4);
    const offset = r.u64(at + 8, 'section offset');
    const length = r.u64(at + 16, 'section length');
    if (found.has(id)) corrupt(`section ${id} appears twice`);
    found.set(id, { offset, length, recordSize });
  }
  return found;
}

/** A section (inflated, if it was compressed) as a table of `recordSize`-byte records. */
function recordView(id: number, entry: SectionEntry): SectionView {
  const { offset, length, recordSize } = entry;
  if (recordSize > 0 && length % recordSize !== 0) corrupt(`section ${id} length ${length} is not a multiple of ${recordSize}`);
  return { offset, length, recordSize, count: recordSize > 0 ? length / recordSize : 0 };
}

/**
 * Data-carrying mode: checks TABLES_DIGEST (sha256 of every byte before it) and that the DATA
 * section follows it and ends at the trailing checksum of a `fileLength`-byte file. Returns
 * where the tables end (the digest's offset).
 */
function verifyTablesDigest(r: ByteReader, fileLength: number): number {
  const found = readSectionTable(r);
  const digest = found.get(SECTION.tablesDigest);
  const data = found.get(SECTION.data);
  if (!digest || digest.length !== CHECKSUM_SIZE) corrupt('data-carrying archive without a TABLES_DIGEST section');
  if (!data) corrupt('data-carrying archive without a DATA section');
  if (digest.offset + CHECKSUM_SIZE > r.length) corrupt(`truncated: tables end at ${digest.offset + CHECKSUM_SIZE}, only ${r.length} bytes read`);
  const actual = createHash('sha256').update(r.bytes.subarray(0, digest.offset)).digest();
  if (!actual.equals(r.bytes.subarray(digest.offset, digest.offset + CHECKSUM_SIZE))) corrupt('tables checksum mismatch (truncated or damaged)');
  if (data.offset !== digest.offset + CHECKSUM_SIZE) corrupt('DATA section does not follow the tables');
  const expected = data.offset + data.length + CHECKSUM_SIZE;
  if (expected !== fileLength) {
    corrupt(expected > fileLength ? `truncated: the data section needs ${expected} bytes, the file has ${fileLength}` : `${fileLength - expected} unexpected bytes after the data section`);
  }
  return digest.offset;
}

/**
 * How many bytes from the start of an archive are needed to open it (its "head"), given the
 * first bytes read. Returns a larger number than `bytes.length` when more must be read to
 * decide (then call again with at least that many). OCI-mode archives need the whole file; a
 * data-carrying archive needs everything up to its DATA section.
 */
export function archiveHeadLength(bytes: Uint8Array, fileLength: number): number {
  return guarded(() => {
    if (bytes.byteLength < HEADER_SIZE && bytes.byteLength < fileLength) return Math.min(HEADER_SIZE, fileLength);
    checkHeadStart(bytes);
    const r = new ByteReader(bytes);
    if ((r.u32(H_FLAGS) & FLAG_DATA_SECTION) === 0) return fileLength;
    const sectionCount = r.u32(H_SECTION_COUNT);
    if (sectionCount > MAX_SECTIONS) corrupt(`${sectionCount} sections`);
    const tableEnd = HEADER_SIZE + sectionCount * SECTION_ENTRY_SIZE;
    if (tableEnd > fileLength) corrupt(`truncated: ${fileLength} bytes`);
    if (bytes.byteLength < tableEnd) return tableEnd;
    const digest = readSectionTable(r).get(SECTION.tablesDigest);
    if (!digest) corrupt('data-carrying archive without a TABLES_DIGEST section');
    const headLength = digest.offset + CHECKSUM_SIZE;
    if (headLength > fileLength) corrupt(`truncated: tables end at ${headLength}, the file has ${fileLength} bytes`);
    return headLength;
  });
}

class ArchiveReader implements ClipArchive {
  readonly formatVersion: number;
  readonly minorVersion: number;
  readonly byteLength: number;
  readonly dataSection: { offset: number; length: number } | undefined;
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
    const stored = new ByteReader(bytes);
    this.byteLength = fileLength;
    checkHeadStart(bytes);
    const major = stored.u16(H_MAJOR);
    this.minorVersion = stored.u16(H_MINOR);
    this.formatVersion = major;
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
        `archive format version ${major}.${this.minorVersion} uses features this clip does not support `
          + `(flags 0x${flags.toString(16)}; this clip reads up to version ${FORMAT_MAJOR}.${FORMAT_MINOR_LATEST}); upgrade clip`,
      );
    }
    this.inodeCount = stored.u32(H_INODE_COUNT);
    this.entryCount = stored.u32(H_ENTRY_COUNT);

    const storedSections = readSectionTable(stored);
    for (const [id, section] of storedSections) {
      if (id === SECTION.data || id === SECTION.tablesDigest) continue;
      if (section.offset + section.length > tablesEnd) corrupt(`section ${id} [${section.offset}, ${section.offset + section.length}) runs past the end`);
    }
    if (dataMode) {
      const data = storedSections.get(SECTION.data)!;
      this.dataSection = { offset: data.offset, length: data.length };
      // The whole file is here: check the trailing checksum too.
      if (bytes.byteLength === fileLength) verifyChecksum(bytes);
    } else if (storedSections.has(SECTION.data)) {
      corrupt('DATA section without the data-carrying flag');
    }
    let tables = { bytes, sections: storedSections };
    if ((flags & FLAG_COMPRESSED_TABLES) !== 0) {
      const counts = new Map([[SECTION.inodes, this.inodeCount], [SECTION.entries, this.entryCount]]);
      tables = inflateSections(bytes, storedSections, tablesEnd, counts);
    } else if (storedSections.has(SECTION.compressed)) {
      corrupt('COMPRESSED section without the compressed-tables flag');
    }
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
    const windows = need(SECTION.windows, 'windows');
    this.inodes = need(SECTION.inodes, 'inodes', I.size);
    this.entries = need(SECTION.entries, 'entries', E.size);
    this.xattrs = need(SECTION.xattrs, 'xattrs', X.size);
    this.strings = need(SECTION.strings, 'strings');
    if (this.inodes.count !== this.inodeCount) corrupt(`header says ${this.inodeCount} inodes, section holds ${this.inodes.count}`);
    if (this.entries.count !== this.entryCount) corrupt(`header says ${this.entryCount} entries, section holds ${this.entries.count}`);
    if (this.inodeCount < 1 || r.u8(this.inodes.offset + I.type) !== DIRECTORY_TYPE_CODE) corrupt('inode 1 (the root) is not a directory');

    this.metadata = decodeMetadata(r.slice(metadata.offset, metadata.length, 'metadata'));
    this.layers = this.decodeLayers(layers, spans, pieces, windows);
  }

  private string(offset: number, length: number, what: string): string {
    if (offset + length > this.strings.length) corrupt(`${what} string [${offset}, ${offset + length}) is outside the string table`);
    return textDecoder.decode(this.r.slice(this.strings.offset + offset, length, what));
  }

  private stringBytes(offset: number, length: number, what: string): Uint8Array {
    if (offset + length > this.strings.length) corrupt(`${what} [${offset}, ${offset + length}) is outside the string table`);
    return this.r.slice(this.strings.offset + offset, length, what);
  }

  private decodeLayers(layers: SectionView, spans: SectionView, pieces: SectionView, windows: SectionView): ArchiveLayer[] {
    const r = this.r;
    const out: ArchiveLayer[] = [];
    for (let li = 0; li < layers.count; li++) {
      const at = layers.offset + li * layers.recordSize;
      const compression = COMPRESSIONS[r.u8(at + L.compression)];
      if (compression === undefined) corrupt(`layer ${li} has unknown compression ${r.u8(at + L.compression)}`);
      const source = r.u8(at + L.source);
      if (source > LAYER_SOURCE_ARCHIVE) corrupt(`layer ${li} has source ${source}, which needs a newer clip`);
      const compressedSize = r.u64(at + L.compressedSize);
      if (source === LAYER_SOURCE_ARCHIVE) {
        if (!this.dataSection) corrupt(`layer ${li} reads from a DATA section the archive does not have`);
        if (compressedSize !== this.dataSection.length) corrupt(`layer ${li} is ${compressedSize} bytes, its DATA section ${this.dataSection.length}`);
      }
      const firstSpan = r.u32(at + L.firstSpan);
      const spanCount = r.u32(at + L.spanCount);
      if (firstSpan + spanCount > spans.count) corrupt(`layer ${li} spans [${firstSpan}, ${firstSpan + spanCount}) exceed ${spans.count}`);
      const layerSpans: Span[] = [];
      for (let si = firstSpan; si < firstSpan + spanCount; si++) {
        layerSpans.push(this.decodeSpan(spans, pieces, windows, si));
      }
      out.push({
        digest: hexDigest(r.slice(at + L.digest, 32, 'layer digest')),
        mediaType: this.string(r.u32(at + L.mediaTypeOffset), r.u32(at + L.mediaTypeLength), 'media type'),
        compression,
        compressedSize,
        uncompressedSize: r.u64(at + L.uncompressedSize),
        diffId: hexDigest(r.slice(at + L.diffId, 32, 'layer diffId')),
        spans: layerSpans,
        ...(source === LAYER_SOURCE_ARCHIVE ? { source: 'archive' as const } : {}),
      });
    }
    return out;
  }

  private decodeSpan(spans: SectionView, pieces: SectionView, windows: SectionView, si: number): Span {
    const r = this.r;
    const at = spans.offset + si * spans.recordSize;
    const kind = CHECKPOINT_KINDS[r.u8(at + S.kind)];
    if (kind === undefined) corrupt(`span ${si} has unknown checkpoint kind ${r.u8(at + S.kind)}`);
    const firstPiece = r.u32(at + S.firstPiece);
    const pieceCount = r.u32(at + S.pieceCount);
    if (firstPiece + pieceCount > pieces.count) corrupt(`span ${si} pieces exceed the piece table`);
    const spanPieces: SpanPiece[] = [];
    for (let pi = firstPiece; pi < firstPiece + pieceCount; pi++) {
      const pat = pieces.offset + pi * pieces.recordSize;
      spanPieces.push({
        compressedEnd: r.u64(pat + P.compressedEnd),
        uncompressedEnd: r.u64(pat + P.uncompressedEnd),
        digest: hexDigest(r.slice(pat + P.digest, 32, 'piece digest')),
      });
    }
    const windowLength = r.u32(at + S.windowLength);
    const windowOffset = r.u32(at + S.windowOffset);
    const windowStored = r.u32(at + S.windowStoredLength);
    const encoding = r.u8(at + S.windowEncoding);
    if (windowLength > MAX_WINDOW) corrupt(`span ${si} window of ${windowLength} bytes`);
    if (encoding > 1 || (encoding === 0) !== (windowLength === 0)) corrupt(`span ${si} window encoding ${encoding}`);
    if (windowOffset + windowStored > windows.length) corrupt(`span ${si} window is outside the windows section`);
    const stored = r.slice(windows.offset + windowOffset, windowStored, 'window');
    const checkpoint = lazyCheckpoint(
      {
        uncompressedOffset: r.u64(at + S.uncompressedOffset),
        compressedBitOffset: r.u64(at + S.compressedBitOffset),
        kind,
      },
      stored,
      windowLength,
      si,
    );
    return { checkpoint, uncompressedEnd: r.u64(at + S.uncompressedEnd), pieces: spanPieces };
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
    if (first + count > this.entryCount) corrupt(`directory ${ino} children [${first}, ${first + count}) exceed ${this.entryCount} entries`);
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

  lookupChild(parentIno: number, name: string): Inode | undefined {
    return guarded(() => {
      const ino = this.findChild(parentIno, textEncoder.encode(name));
      return ino === undefined ? undefined : this.decodeInode(ino);
    });
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

  readdirIno(ino: number): { name: string; inode: Inode }[] | undefined {
    return guarded(() => this.listChildren(ino));
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

  contents(): ArchiveContents {
    const entries: DirEntry[] = [];
    for (const { path, inode } of this.walk()) entries.push({ path, ino: inode.ino });
    const inodes: Inode[] = [];
    for (let ino = 1; ino <= this.inodeCount; ino++) inodes.push(this.inode(ino));
    return {
      metadata: this.metadata,
      layers: this.layers.map((layer) => ({ ...layer, spans: layer.spans.map((span) => ({ ...span })) })),
      inodes,
      entries,
    };
  }
}

/** A checkpoint whose window is inflated from the archive on first use (most are never needed). */
function lazyCheckpoint(base: Omit<Checkpoint, 'window'>, stored: Uint8Array, windowLength: number, si: number): Checkpoint {
  let window: Uint8Array | undefined = windowLength === 0 ? new Uint8Array(0) : undefined;
  const checkpoint = { ...base } as Checkpoint;
  Object.defineProperty(checkpoint, 'window', {
    enumerable: true,
    get(): Uint8Array {
      if (window === undefined) {
        let inflated: Buffer;
        try {
          inflated = inflateRawSync(stored, { maxOutputLength: MAX_WINDOW });
        } catch (error) {
          throw new ArchiveFormatError(`corrupt archive: window of span ${si} does not inflate`, { cause: error });
        }
        if (inflated.length !== windowLength) corrupt(`window of span ${si} is ${inflated.length} bytes, expected ${windowLength}`);
        window = new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength);
      }
      return window;
    },
  });
  return checkpoint;
}

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
