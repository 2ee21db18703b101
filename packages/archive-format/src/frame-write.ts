// The file around the tables, written once for both modes: header (magic, version, flags,
// counts), section table, the sections' bytes, then a sha256 of everything before it. In OCI
// mode that sha256 is the trailing checksum and the file ends there; in data-carrying mode
// (v2.1) it is the TABLES_DIGEST section, the table also lists DATA, and the caller appends
// the DATA bytes and the trailing checksum.
import { createHash } from 'node:crypto';
import { ByteWriter } from './binary.js';
import {
  CHECKSUM_SIZE,
  FLAG_COMPRESSED_TABLES,
  FLAG_DATA_SECTION,
  FLAG_EXTERNAL_WINDOWS,
  FORMAT_MAJOR,
  FORMAT_MINOR,
  FORMAT_MINOR_COMPRESSED,
  FORMAT_MINOR_DATA,
  FORMAT_MINOR_EXTERNAL_WINDOWS,
  H_ENTRY_COUNT,
  H_FLAGS,
  H_INODE_COUNT,
  H_MAJOR,
  H_MINOR,
  H_SECTION_COUNT,
  HEADER_SIZE,
  MAGIC,
  SECTION,
  SECTION_ENTRY_SIZE,
} from './binary-layout.js';
import type { EncodedSection } from './compressed-tables.js';
import type { EncodedTables } from './encode-tables.js';

/**
 * `tables` (their sections already compressed if `tables.compressed`) framed as an archive;
 * with `dataLength`, the head of a data-carrying archive whose DATA section follows.
 */
export function writeFrame(tables: EncodedTables, dataLength?: number): Uint8Array {
  const { sections, inodeCount, entryCount, compressed } = tables;
  const dataMode = dataLength !== undefined;
  const sectionCount = sections.length + (dataMode ? 2 : 0);
  const tableEnd = HEADER_SIZE + sectionCount * SECTION_ENTRY_SIZE;
  const bodyLength = sections.reduce((sum, s) => sum + s.bytes.length, 0);
  const digestAt = tableEnd + bodyLength;
  const out = new ByteWriter(digestAt + CHECKSUM_SIZE);
  const version = tables.externalWindows
    ? { minor: FORMAT_MINOR_EXTERNAL_WINDOWS, flags: formatVersion(compressed, dataMode).flags | FLAG_EXTERNAL_WINDOWS }
    : formatVersion(compressed, dataMode);
  writeHeader(out, { ...version, sectionCount, inodeCount, entryCount });
  writeSections(out, sections, tableEnd);
  if (dataLength !== undefined) {
    writeSectionEntry(out, sections.length, { id: SECTION.tablesDigest, recordSize: 0, offset: digestAt, length: CHECKSUM_SIZE });
    writeSectionEntry(out, sections.length + 1, { id: SECTION.data, recordSize: 0, offset: digestAt + CHECKSUM_SIZE, length: dataLength });
  }
  out.set(digestAt, createHash('sha256').update(out.bytes.subarray(0, digestAt)).digest());
  return out.bytes;
}

/** The minor version and flags each kind of archive is written with (docs/archive-format.md). */
function formatVersion(compressed: boolean, dataMode: boolean): { minor: number; flags: number } {
  const dataFlag = dataMode ? FLAG_DATA_SECTION : 0;
  if (compressed) return { minor: FORMAT_MINOR_COMPRESSED, flags: dataFlag | FLAG_COMPRESSED_TABLES };
  return { minor: dataMode ? FORMAT_MINOR_DATA : FORMAT_MINOR, flags: dataFlag };
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

/** Writes table entries 0..n-1 and the sections' bytes from `offset`. */
function writeSections(out: ByteWriter, sections: readonly EncodedSection[], offset: number): void {
  sections.forEach((section, i) => {
    writeSectionEntry(out, i, { id: section.id, recordSize: section.recordSize, offset, length: section.bytes.length });
    out.set(offset, section.bytes);
    offset += section.bytes.length;
  });
}
