// The table sections of an archive from its in-memory model, one step per table: layers with
// their spans, pieces and checkpoint windows; inodes with their xattrs; directory entries;
// metadata; strings. frame-write.ts puts them into the file. Deterministic: equal contents (up
// to entry order and object key order) give identical bytes.
import { isDigest } from '@clip/shared';
import { ByteWriter } from './binary.js';
import {
  CHECKPOINT_KINDS,
  COMPRESSIONS,
  ENTRY_RECORD as E,
  FILE_TYPES,
  INODE_FLAG_DATA,
  INODE_FLAG_LINK_TARGET,
  INODE_RECORD as I,
  LAYER_RECORD as L,
  LAYER_SOURCE_ARCHIVE,
  LAYER_SOURCE_REGISTRY,
  MAX_WINDOW,
  PIECE_RECORD as P,
  ROOT_INO,
  SECTION,
  SPAN_RECORD as S,
  XATTR_RECORD as X,
} from './binary-layout.js';
import type { EncodedSection } from './compressed-tables.js';
import { orderEntries, type PreparedEntry } from './entry-order.js';
import { fail } from './format-errors.js';
import { encodeMetadata } from './metadata-json.js';
import type { ArchiveContents, ArchiveLayer, DirEntry, Inode, Span } from './model.js';
import { latin1Key, StringHeap } from './string-heap.js';
import { storeWindow } from './window-store.js';

export interface EncodedTables {
  sections: EncodedSection[];
  inodeCount: number;
  entryCount: number;
  /** Whether the sections are to be compressed (compressSections: deflated ones and the COMPRESSED list). */
  compressed: boolean;
  /** The windows are in a separate blob (v2.3, flag bit 2; written by splitWindows). */
  externalWindows?: boolean;
}

type HeapRef = { offset: number; length: number };

const textEncoder = new TextEncoder();
const NO_XATTRS: { name: Uint8Array; value: Uint8Array }[] = [];

export function encodeTables(contents: ArchiveContents, compressTables = true): EncodedTables {
  const { inodes, layers } = contents;
  const inodeCount = checkInodeNumbers(inodes);
  const entries = orderEntries(contents.entries, inodes);
  checkOneNamePerDirectory(contents.entries, inodes);
  // The string heap is filled in this order (layers, inodes, entries): it fixes the bytes.
  const strings = new StringHeap();
  const layerTables = encodeLayers(layers, strings);
  const inodeTables = encodeInodes(inodes, layers.length, childRanges(entries), strings);
  const entryBytes = encodeEntries(entries, strings);
  const sections: EncodedSection[] = [
    { id: SECTION.metadata, recordSize: 0, bytes: encodeMetadata(contents.metadata) },
    { id: SECTION.layers, recordSize: L.size, bytes: layerTables.layers },
    { id: SECTION.spans, recordSize: S.size, bytes: layerTables.spans },
    { id: SECTION.pieces, recordSize: P.size, bytes: layerTables.pieces },
    { id: SECTION.windows, recordSize: 0, bytes: layerTables.windows },
    { id: SECTION.inodes, recordSize: I.size, bytes: inodeTables.inodes },
    { id: SECTION.entries, recordSize: E.size, bytes: entryBytes },
    { id: SECTION.xattrs, recordSize: X.size, bytes: inodeTables.xattrs },
    { id: SECTION.strings, recordSize: 0, bytes: strings.concat() },
  ];
  return { sections, inodeCount, entryCount: entries.length, compressed: compressTables };
}

function checkInodeNumbers(inodes: readonly Inode[]): number {
  const inodeCount = checkU32(inodes.length, 'inode count');
  if (inodeCount < 1) fail('no root inode');
  inodes.forEach((inode, i) => {
    if (inode.ino !== i + 1) fail(`inodes[${i}].ino is ${inode.ino}, expected ${i + 1}`);
  });
  if (inodes[0]!.type !== 'directory') fail('inode 1 (the root) is not a directory');
  return inodeCount;
}

/** Directories cannot be hardlinked: each directory inode has exactly one path. */
function checkOneNamePerDirectory(entries: readonly DirEntry[], inodes: readonly Inode[]): void {
  const directoryOwner = new Map<number, string>();
  for (const entry of entries) {
    if (entry.path !== '/' && inodes[entry.ino - 1]!.type === 'directory') {
      if (entry.ino === ROOT_INO || directoryOwner.has(entry.ino)) fail(`directory inode ${entry.ino} has more than one name`);
      directoryOwner.set(entry.ino, entry.path);
    }
  }
}

/** Each directory's [first, first+count) run in the ordered entry table. */
function childRanges(entries: readonly PreparedEntry[]): Map<number, { first: number; count: number }> {
  const ranges = new Map<number, { first: number; count: number }>();
  entries.forEach((entry, index) => {
    const range = ranges.get(entry.parent);
    if (range) range.count++;
    else ranges.set(entry.parent, { first: index, count: 1 });
  });
  return ranges;
}

/** LAYERS, SPANS, PIECES and WINDOWS. */
function encodeLayers(
  layers: readonly ArchiveLayer[],
  strings: StringHeap,
): { layers: Uint8Array; spans: Uint8Array; pieces: Uint8Array; windows: Uint8Array } {
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
  return { layers: layerBytes.bytes, spans: spanBytes.bytes, pieces: pieceBytes.bytes, windows: concatChunks(windowChunks, windowsLength) };
}

/** INODES and XATTRS. */
function encodeInodes(
  inodes: readonly Inode[],
  layerCount: number,
  children: Map<number, { first: number; count: number }>,
  strings: StringHeap,
): { inodes: Uint8Array; xattrs: Uint8Array } {
  const inodeBytes = new ByteWriter(inodes.length * I.size);
  const xattrRecords: { name: HeapRef; value: HeapRef }[] = [];
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
    inodeBytes.u64(
      at + I.size_,
      Number.isSafeInteger(inode.size) && inode.size >= 0 ? inode.size : checkU64(inode.size, `inode ${inode.ino} size`),
    );
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
    const xattrs =
      inode.xattrs === undefined
        ? NO_XATTRS
        : Object.entries(inode.xattrs)
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
      if (!Number.isInteger(inode.data.layer) || inode.data.layer < 0 || inode.data.layer >= layerCount) {
        fail(`inode ${inode.ino} data names missing layer ${inode.data.layer}`);
      }
      inodeBytes.u32(at + I.dataLayer, inode.data.layer);
      inodeBytes.u64(at + I.dataOffset, checkU64(inode.data.offset, `inode ${inode.ino} data offset`));
    }
    const range = children.get(inode.ino);
    if (range) {
      inodeBytes.u32(at + I.firstChild, range.first);
      inodeBytes.u32(at + I.childCount, range.count);
    }
    inodeBytes.u8(at + I.flags, flags);
  });

  const xattrBytes = new ByteWriter(xattrRecords.length * X.size);
  xattrRecords.forEach(({ name, value }, i) => {
    const at = i * X.size;
    xattrBytes.u32(at + X.nameOffset, name.offset);
    xattrBytes.u32(at + X.nameLength, name.length);
    xattrBytes.u32(at + X.valueOffset, value.offset);
    xattrBytes.u32(at + X.valueLength, value.length);
  });
  return { inodes: inodeBytes.bytes, xattrs: xattrBytes.bytes };
}

/** ENTRIES, in table order. */
function encodeEntries(entries: readonly PreparedEntry[], strings: StringHeap): Uint8Array {
  const entryBytes = new ByteWriter(checkU32(entries.length, 'entry count') * E.size);
  entries.forEach((entry, i) => {
    const at = i * E.size;
    const name = strings.addName(entry.name);
    entryBytes.u32(at + E.parent, entry.parent);
    entryBytes.u32(at + E.ino, entry.ino);
    entryBytes.u32(at + E.nameOffset, name.offset);
    entryBytes.u32(at + E.nameLength, name.length);
  });
  return entryBytes.bytes;
}

function concatChunks(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

export function checkU32(value: number, what: string): number {
  if (!isU32(value)) fail(`${what} = ${value} is not a u32`);
  return value;
}

function isU32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}

export function checkU64(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) fail(`${what} = ${value} is not a non-negative safe integer`);
  return value;
}

function digestBytes(digest: string, what: string): Uint8Array {
  if (!isDigest(digest)) fail(`${what} ${JSON.stringify(digest)} is not a sha256 digest`);
  return Buffer.from(digest.slice(7), 'hex');
}
