// Compressed tables (v2.2, header flag bit 1): a writer stores table sections as raw deflate
// and lists each one, with its exact inflated length, in the COMPRESSED section. A reader
// inflates them once on open into one buffer laid out like an uncompressed archive's, so the
// lazy fixed-record decoding in archive-reader.ts runs unchanged over it.
import { promisify } from 'node:util';
import { deflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';

const deflateRawAsync = promisify(deflateRaw);
import { ArchiveFormatError } from '@clip/shared';
import { ByteReader, ByteWriter } from './binary.js';
import {
  COMPRESSED_RECORD as C,
  MAX_DEFLATE_RATIO,
  MAX_INFLATED_TABLES,
  SECTION,
  TABLE_ENCODING_DEFLATE_RAW,
  TABLES_BUT_WINDOWS,
} from './binary-layout.js';

export interface EncodedSection {
  id: number;
  recordSize: number;
  bytes: Uint8Array;
}

/** A section-table entry: where a section's stored bytes lie (absolute offset). */
export interface SectionEntry {
  offset: number;
  length: number;
  recordSize: number;
}

/** Fixed level (as for windows), so equal tables give equal bytes with the same zlib; level 9 saves ~0.3% for ~3× the time. */
const TABLE_DEFLATE_LEVEL = 6;

/** Sections a writer compresses: every table but WINDOWS, whose windows are deflated already. */
const WRITER_COMPRESSES: ReadonlySet<number> = new Set(TABLES_BUT_WINDOWS);

/** Whether a reader accepts section `id` as compressed: the tables (1–9), never DATA or digests. */
function isTableSection(id: number): boolean {
  return id >= SECTION.metadata && id <= SECTION.strings;
}

function corrupt(message: string): never {
  throw new ArchiveFormatError(`corrupt archive: ${message}`);
}

/**
 * Deflates the sections that get smaller by it (in place in the list, same order) and appends
 * the COMPRESSED section that lists them.
 */
export function compressSections(sections: readonly EncodedSection[]): EncodedSection[] {
  return listCompressed(
    sections,
    sections.map((section) => (compresses(section) ? deflateRawSync(section.bytes, { level: TABLE_DEFLATE_LEVEL }) : undefined)),
  );
}

/**
 * compressSections with the sections deflated at once on the libuv thread pool: the same
 * zlib, level and parameters give the same bytes, in a fraction of the time on several cores.
 */
export async function compressSectionsAsync(sections: readonly EncodedSection[]): Promise<EncodedSection[]> {
  // Largest first, so the longest deflate starts first.
  const order = sections.map((_, i) => i).sort((a, b) => sections[b]!.bytes.length - sections[a]!.bytes.length);
  const deflated: Array<Promise<Uint8Array> | undefined> = new Array(sections.length);
  for (const i of order) {
    const section = sections[i]!;
    deflated[i] = compresses(section) ? deflateRawAsync(section.bytes, { level: TABLE_DEFLATE_LEVEL }) : undefined;
  }
  return listCompressed(sections, await Promise.all(deflated));
}

function compresses(section: EncodedSection): boolean {
  return WRITER_COMPRESSES.has(section.id) && section.bytes.length > 0;
}

/** Keeps the deflated form of the sections it makes smaller and appends the COMPRESSED list. */
function listCompressed(sections: readonly EncodedSection[], deflated: ReadonlyArray<Uint8Array | undefined>): EncodedSection[] {
  const out: EncodedSection[] = [];
  const listed: { id: number; recordSize: number; length: number }[] = [];
  sections.forEach((section, i) => {
    const stored = deflated[i];
    if (stored !== undefined && stored.length < section.bytes.length) {
      // A blob in the section table; its records are described in the COMPRESSED list.
      out.push({ id: section.id, recordSize: 0, bytes: stored });
      listed.push({ id: section.id, recordSize: section.recordSize, length: section.bytes.length });
      return;
    }
    out.push(section);
  });
  const list = new ByteWriter(listed.length * C.size);
  listed.forEach(({ id, recordSize, length }, i) => {
    list.u32(i * C.size + C.id, id);
    list.u32(i * C.size + C.recordSize, recordSize);
    list.u64(i * C.size + C.uncompressedLength, length);
    list.u8(i * C.size + C.encoding, TABLE_ENCODING_DEFLATE_RAW);
  });
  out.push({ id: SECTION.compressed, recordSize: C.size, bytes: list.bytes });
  return out;
}

interface Planned {
  id: number;
  /** The stored bytes. */
  entry: SectionEntry;
  recordSize: number;
  length: number;
}

/** Reads and checks the COMPRESSED section's list before anything is allocated. */
function readList(r: ByteReader, sections: ReadonlyMap<number, SectionEntry>, counts: ReadonlyMap<number, number>): Planned[] {
  const list = sections.get(SECTION.compressed);
  if (!list) corrupt('compressed tables without a COMPRESSED section');
  if (list.recordSize < C.size || list.length % list.recordSize !== 0)
    corrupt(`COMPRESSED section of ${list.length} bytes in records of ${list.recordSize}`);
  const planned: Planned[] = [];
  let total = 0;
  for (let at = list.offset; at < list.offset + list.length; at += list.recordSize) {
    const id = r.u32(at + C.id);
    const recordSize = r.u32(at + C.recordSize);
    const length = r.u64(at + C.uncompressedLength, 'uncompressed length');
    const encoding = r.u8(at + C.encoding);
    if (!isTableSection(id)) corrupt(`section ${id} is listed as compressed; only tables (1–9) may be`);
    if (encoding !== TABLE_ENCODING_DEFLATE_RAW) corrupt(`section ${id} uses table encoding ${encoding}, which needs a newer clip`);
    const entry = sections.get(id);
    if (!entry) corrupt(`compressed section ${id} is not in the section table`);
    if (planned.some((p) => p.id === id)) corrupt(`section ${id} is listed as compressed twice`);
    if (entry.recordSize !== 0) corrupt(`compressed section ${id} has record size ${entry.recordSize} in the section table (must be 0)`);
    // Inodes and entries have their record counts in the header: the length must agree.
    const count = counts.get(id);
    if (count !== undefined && length !== count * recordSize)
      corrupt(`section ${id} inflates to ${length} bytes, the header implies ${count} × ${recordSize}`);
    if (length > entry.length * MAX_DEFLATE_RATIO) corrupt(`section ${id} of ${entry.length} bytes cannot inflate to ${length}`);
    total += length;
    if (total > MAX_INFLATED_TABLES) corrupt(`compressed tables inflate to more than ${MAX_INFLATED_TABLES} bytes`);
    planned.push({ id, entry, recordSize, length });
  }
  return planned;
}

/** zlib's smallest chunkSize. */
const MIN_CHUNK = 64;

interface InflateResult {
  buffer: Buffer;
  engine: { bytesWritten: number };
}

function inflateSection(stored: Uint8Array, length: number, id: number): Buffer {
  let result: InflateResult;
  try {
    // One output chunk of the declared size (no piecewise growth and concatenation: about 2×
    // faster on large tables); `info` exposes how much input the stream used, to refuse bytes after it.
    const options = { maxOutputLength: Math.max(1, length), chunkSize: Math.max(MIN_CHUNK, length), info: true };
    result = inflateRawSync(stored, options) as unknown as InflateResult;
  } catch (error) {
    throw new ArchiveFormatError(`corrupt archive: section ${id} does not inflate to ${length} bytes`, { cause: error });
  }
  if (result.buffer.length !== length) corrupt(`section ${id} inflates to ${result.buffer.length} bytes, expected ${length}`);
  if (result.engine.bytesWritten !== stored.length)
    corrupt(`section ${id} has ${stored.length - result.engine.bytesWritten} bytes after its deflate stream`);
  return result.buffer;
}

/**
 * Inflates every section the COMPRESSED section lists. `bytes[0, tablesEnd)` holds the header,
 * section table and tables (entries already checked to lie there); `counts` gives the record
 * counts the header states per section id. Returns a buffer that starts with those bytes and
 * continues with the inflated sections, and the section entries re-pointed into it (lengths
 * and record sizes now the inflated ones). Anything inconsistent → ArchiveFormatError; memory is bounded by the
 * declared lengths, which are bounded by the stored ones.
 */
export function inflateSections(
  bytes: Uint8Array,
  sections: ReadonlyMap<number, SectionEntry>,
  tablesEnd: number,
  counts: ReadonlyMap<number, number>,
): { bytes: Uint8Array; sections: Map<number, SectionEntry> } {
  const r = new ByteReader(bytes);
  const planned = readList(r, sections, counts);
  const out = new Map(sections);
  if (planned.length === 0) return { bytes, sections: out };
  const total = planned.reduce((sum, p) => sum + p.length, 0);
  // Not zero-filled: the prefix and the inflated sections (each checked to be exactly its length) cover every byte.
  const unfilled = Buffer.allocUnsafe(tablesEnd + total);
  // A plain Uint8Array, as the caller's bytes usually are (decoded xattr values are slices of it).
  const joined = new Uint8Array(unfilled.buffer, unfilled.byteOffset, unfilled.byteLength);
  joined.set(r.slice(0, tablesEnd, 'tables'));
  let at = tablesEnd;
  for (const { id, entry, recordSize, length } of planned) {
    joined.set(inflateSection(r.slice(entry.offset, entry.length, `section ${id}`), length, id), at);
    out.set(id, { recordSize, offset: at, length });
    at += length;
  }
  return { bytes: joined, sections: out };
}
