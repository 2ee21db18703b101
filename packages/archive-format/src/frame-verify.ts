// Reading and verifying the file around the tables: magic and version, the section table, the
// trailing checksum (OCI mode) or TABLES_DIGEST and DATA placement (data-carrying mode), and
// how many leading bytes are needed to open an archive.
import { createHash } from 'node:crypto';
import { ArchiveFormatError } from '@clip/shared';
import { ByteReader } from './binary.js';
import {
  CHECKSUM_SIZE,
  FLAG_DATA_SECTION,
  FORMAT_MAJOR,
  H_FLAGS,
  H_MAJOR,
  H_MINOR,
  H_SECTION_COUNT,
  HEADER_SIZE,
  MAGIC,
  MAX_SECTIONS,
  SECTION,
  SECTION_ENTRY_SIZE,
} from './binary-layout.js';
import type { SectionEntry } from './compressed-tables.js';
import { corrupt, guarded } from './format-errors.js';

/** A section as a table of `recordSize`-byte records (count 0 for byte sections). */
export interface SectionView {
  offset: number;
  length: number;
  recordSize: number;
  count: number;
}

export function checkHeadStart(bytes: Uint8Array): void {
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
export function verifyChecksum(bytes: Uint8Array): void {
  const bodyEnd = bytes.byteLength - CHECKSUM_SIZE;
  const actual = createHash('sha256').update(bytes.subarray(0, bodyEnd)).digest();
  if (!actual.equals(bytes.subarray(bodyEnd))) corrupt('checksum mismatch (truncated or damaged)');
}

/** The section table as stored (a compressed section's length is its stored length). */
export function readSectionTable(r: ByteReader): Map<number, SectionEntry> {
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
export function recordView(id: number, entry: SectionEntry): SectionView {
  const { offset, length, recordSize } = entry;
  if (recordSize > 0 && length % recordSize !== 0) corrupt(`section ${id} length ${length} is not a multiple of ${recordSize}`);
  return { offset, length, recordSize, count: recordSize > 0 ? length / recordSize : 0 };
}

/**
 * Data-carrying mode: checks TABLES_DIGEST (sha256 of every byte before it) and that the DATA
 * section follows it and ends at the trailing checksum of a `fileLength`-byte file. Returns
 * where the tables end (the digest's offset).
 */
export function verifyTablesDigest(r: ByteReader, fileLength: number): number {
  const found = readSectionTable(r);
  const digest = found.get(SECTION.tablesDigest);
  const data = found.get(SECTION.data);
  if (!digest || digest.length !== CHECKSUM_SIZE) corrupt('data-carrying archive without a TABLES_DIGEST section');
  if (!data) corrupt('data-carrying archive without a DATA section');
  if (digest.offset + CHECKSUM_SIZE > r.length)
    corrupt(`truncated: tables end at ${digest.offset + CHECKSUM_SIZE}, only ${r.length} bytes read`);
  const actual = createHash('sha256').update(r.bytes.subarray(0, digest.offset)).digest();
  if (!actual.equals(r.bytes.subarray(digest.offset, digest.offset + CHECKSUM_SIZE)))
    corrupt('tables checksum mismatch (truncated or damaged)');
  if (data.offset !== digest.offset + CHECKSUM_SIZE) corrupt('DATA section does not follow the tables');
  const expected = data.offset + data.length + CHECKSUM_SIZE;
  if (expected !== fileLength) {
    corrupt(
      expected > fileLength
        ? `truncated: the data section needs ${expected} bytes, the file has ${fileLength}`
        : `${fileLength - expected} unexpected bytes after the data section`,
    );
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
