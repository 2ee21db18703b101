// Property-based fuzzing of the archive decoder beyond single edits: counts and lengths
// overwritten with extreme values (the checksum recomputed, so only the structural checks
// stand between a hostile archive and a huge allocation), chunks spliced out or duplicated,
// archives truncated and re-checksummed; for compressed tables (v2.2) also edits aimed at the
// deflate streams and the COMPRESSED list, in memory and through a data-carrying archive's
// head. Outcome: a usable archive or ArchiveFormatError — never another exception — and memory
// stays bounded.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ClipArchive } from '../src/archive.js';
import { openArchive, openArchiveHead } from '../src/archive-reader.js';
import { encodeArchive } from '../src/encode.js';
import { SECTION } from '../src/binary-layout.js';
import { ArchiveFormatError } from '@clip/shared';
import { contentsArb } from './archive-arbitraries.js';
import { archiveContents } from './archive-contents.js';

export const ARCHIVE_FUZZ_RUNS = { extremes: 1500, splices: 1000, truncations: 500, compressed: 800, dataHead: 400 };
/** Memory a single hostile archive may cost the decoder beyond its own bytes. */
const MEMORY_BOUND = 256 * 2 ** 20;

function withChecksum(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  if (out.length < 32) return out;
  out.set(
    createHash('sha256')
      .update(out.subarray(0, out.length - 32))
      .digest(),
    out.length - 32,
  );
  return out;
}

function readEverything(archive: ClipArchive): void {
  for (const { path, inode } of archive.walk()) {
    archive.lookup(path);
    if (inode.type === 'directory') archive.readdir(path);
  }
  for (let ino = 1; ino <= Math.min(archive.inodeCount, 100); ino++) {
    archive.inode(ino);
    for (const child of archive.childNames(ino) ?? []) archive.inode(child.ino);
  }
  for (const layer of archive.layers) for (const span of layer.spans) void span.checkpoint.window;
  archiveContents(archive);
}

let peakGrowth = 0;
function openChecked(bytes: Uint8Array): 'ok' | 'refused' {
  const before = process.memoryUsage().rss;
  try {
    readEverything(openArchive(bytes));
    return 'ok';
  } catch (error) {
    if (error instanceof ArchiveFormatError) return 'refused';
    throw error;
  } finally {
    peakGrowth = Math.max(peakGrowth, process.memoryUsage().rss - before);
  }
}

/** The stored section table: id → [offset, end) of the section's bytes in the file. */
function sectionRanges(bytes: Uint8Array): Map<number, [number, number]> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Map<number, [number, number]>();
  for (let i = 0; i < view.getUint32(16, true); i++) {
    const at = 32 + i * 24;
    const offset = Number(view.getBigUint64(at + 8, true));
    out.set(view.getUint32(at, true), [offset, offset + Number(view.getBigUint64(at + 16, true))]);
  }
  return out;
}

/** Sections the COMPRESSED list names (the deflate streams), and the list itself. */
function compressedRanges(bytes: Uint8Array): [number, number][] {
  const ranges = sectionRanges(bytes);
  const list = ranges.get(SECTION.compressed);
  if (!list) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: [number, number][] = [list];
  for (let at = list[0]; at < list[1]; at += 24) {
    const range = ranges.get(view.getUint32(at, true));
    if (range && range[1] > range[0]) out.push(range);
  }
  return out;
}

const EXTREMES = [0xffffffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0x10000, 0];
const extremeEdit = fc.record({
  at: fc.nat(),
  width: fc.constantFrom(1, 2, 4, 8),
  value: fc.oneof(fc.constantFrom(...EXTREMES), fc.nat()),
  high: fc.constantFrom(0, 0x1fffff, 0xffffffff, 1),
});

describe('archive decoder fuzzing', () => {
  it('counts/lengths/offsets overwritten with extreme values (checksum recomputed): ArchiveFormatError only, bounded memory', () => {
    const outcomes = { ok: 0, refused: 0 };
    fc.assert(
      fc.property(contentsArb, fc.array(extremeEdit, { minLength: 1, maxLength: 4 }), fc.boolean(), (contents, edits, compressTables) => {
        const bytes = encodeArchive(contents, { compressTables }).slice();
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        // Keep the magic and version (12 bytes) so the structure is what is exercised.
        const editable = bytes.length - 32 - 12 - 8;
        if (editable <= 0) return;
        for (const edit of edits) {
          const at = 12 + (edit.at % editable);
          if (edit.width === 1) view.setUint8(at, edit.value & 0xff);
          else if (edit.width === 2) view.setUint16(at, edit.value & 0xffff, true);
          else if (edit.width === 4) view.setUint32(at, edit.value >>> 0, true);
          else {
            view.setUint32(at, edit.value >>> 0, true);
            view.setUint32(at + 4, edit.high >>> 0, true);
          }
        }
        outcomes[openChecked(withChecksum(bytes))]++;
      }),
      { numRuns: ARCHIVE_FUZZ_RUNS.extremes },
    );
    expect(outcomes.refused).toBeGreaterThan(0);
    expect(peakGrowth).toBeLessThan(MEMORY_BOUND);
  });

  it('chunks removed or duplicated (checksum recomputed): ArchiveFormatError only', () => {
    fc.assert(
      fc.property(
        contentsArb,
        fc.nat(),
        fc.integer({ min: 1, max: 64 }),
        fc.boolean(),
        fc.boolean(),
        (contents, from, length, duplicate, compressTables) => {
          const bytes = encodeArchive(contents, { compressTables });
          const body = bytes.subarray(0, bytes.length - 32);
          const start = 12 + (from % Math.max(1, body.length - 12));
          const end = Math.min(body.length, start + length);
          const spliced = duplicate
            ? Buffer.concat([body.subarray(0, end), body.subarray(start, end), body.subarray(end), Buffer.alloc(32)])
            : Buffer.concat([body.subarray(0, start), body.subarray(end), Buffer.alloc(32)]);
          openChecked(withChecksum(spliced));
        },
      ),
      { numRuns: ARCHIVE_FUZZ_RUNS.splices },
    );
    expect(peakGrowth).toBeLessThan(MEMORY_BOUND);
  });

  it('truncations with a recomputed checksum: ArchiveFormatError', () => {
    fc.assert(
      fc.property(contentsArb, fc.nat(), fc.boolean(), (contents, cut, compressTables) => {
        const bytes = encodeArchive(contents, { compressTables });
        const keep = cut % (bytes.length - 32);
        const truncated = Buffer.concat([bytes.subarray(0, keep), Buffer.alloc(32)]);
        expect(openChecked(withChecksum(truncated))).toBe('refused');
      }),
      { numRuns: ARCHIVE_FUZZ_RUNS.truncations },
    );
  });

  it('compressed tables: bit flips and extreme values inside the deflate streams and the COMPRESSED list, with and without a recomputed checksum: ArchiveFormatError only', () => {
    const outcomes = { ok: 0, refused: 0 };
    fc.assert(
      fc.property(
        contentsArb,
        fc.array(fc.tuple(fc.nat(), fc.nat(), fc.oneof(fc.integer({ min: 0, max: 7 }), fc.constantFrom(...EXTREMES))), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.boolean(),
        (contents, edits, recompute) => {
          const bytes = encodeArchive(contents).slice();
          const targets = compressedRanges(bytes);
          if (targets.length === 0) return;
          const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
          for (const [which, at, change] of edits) {
            const [start, end] = targets[which % targets.length]!;
            const pos = start + (at % (end - start));
            // Small values flip one bit; large ones overwrite a u32 (lengths, ids) where it fits.
            if (change < 8) bytes[pos]! ^= 1 << change;
            else if (pos + 4 <= end) view.setUint32(pos, change >>> 0, true);
            else bytes[pos] = change & 0xff;
          }
          if (Buffer.from(bytes).equals(encodeArchive(contents))) return; // the edit wrote what was there
          const outcome = openChecked(recompute ? withChecksum(bytes) : bytes);
          if (!recompute) expect(outcome).toBe('refused');
          outcomes[outcome]++;
        },
      ),
      { numRuns: ARCHIVE_FUZZ_RUNS.compressed },
    );
    expect(outcomes.refused).toBeGreaterThan(0);
    expect(peakGrowth).toBeLessThan(MEMORY_BOUND);
  });

  it('compressed tables of a data-carrying archive: edited or truncated heads (tables digest recomputed or not): ArchiveFormatError only', () => {
    const bytes = readFileSync(fileURLToPath(new URL('./fixtures/archives/v2.2/data.clip', import.meta.url)));
    const headLength = openArchive(bytes).dataSection!.offset;
    const digestAt = headLength - 32;
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), fc.nat(), (at, xor, recompute, cut) => {
        const head = Buffer.from(bytes.subarray(0, headLength));
        const pos = 12 + (at % (digestAt - 12));
        head[pos]! ^= xor;
        const edited = cut % 4 === 0 ? head.subarray(0, cut % headLength) : head;
        if (recompute && edited.length === headLength) head.set(createHash('sha256').update(head.subarray(0, digestAt)).digest(), digestAt);
        try {
          readEverything(openArchiveHead(edited, bytes.length));
          expect(recompute).toBe(true);
        } catch (error) {
          if (!(error instanceof ArchiveFormatError)) throw error;
        }
      }),
      { numRuns: ARCHIVE_FUZZ_RUNS.dataHead },
    );
  });
});
