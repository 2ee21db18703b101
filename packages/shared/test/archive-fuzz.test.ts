// Property-based fuzzing of the archive decoder beyond single edits: counts and lengths
// overwritten with extreme values (the checksum recomputed, so only the structural checks
// stand between a hostile archive and a huge allocation), chunks spliced out or duplicated,
// archives truncated and re-checksummed. Outcome: a usable archive or ArchiveFormatError —
// never another exception — and memory stays bounded.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeArchive, openArchive, type ClipArchive } from '../src/archive/format.js';
import { ArchiveFormatError } from '../src/errors.js';
import { contentsArb } from './archive-arbitraries.js';

export const ARCHIVE_FUZZ_RUNS = { extremes: 1500, splices: 1000, truncations: 500 };
/** Memory a single hostile archive may cost the decoder beyond its own bytes. */
const MEMORY_BOUND = 256 * 2 ** 20;

function withChecksum(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  if (out.length < 32) return out;
  out.set(createHash('sha256').update(out.subarray(0, out.length - 32)).digest(), out.length - 32);
  return out;
}

function readEverything(archive: ClipArchive): void {
  for (const { path, inode } of archive.walk()) {
    archive.lookup(path);
    if (inode.type === 'directory') archive.readdir(path);
  }
  for (let ino = 1; ino <= Math.min(archive.inodeCount, 100); ino++) {
    archive.inode(ino);
    archive.readdirIno(ino);
  }
  for (const layer of archive.layers) for (const span of layer.spans) void span.checkpoint.window;
  archive.contents();
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
      fc.property(contentsArb, fc.array(extremeEdit, { minLength: 1, maxLength: 4 }), (contents, edits) => {
        const bytes = encodeArchive(contents).slice();
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
      fc.property(contentsArb, fc.nat(), fc.integer({ min: 1, max: 64 }), fc.boolean(), (contents, from, length, duplicate) => {
        const bytes = encodeArchive(contents);
        const body = bytes.subarray(0, bytes.length - 32);
        const start = 12 + (from % Math.max(1, body.length - 12));
        const end = Math.min(body.length, start + length);
        const spliced = duplicate
          ? Buffer.concat([body.subarray(0, end), body.subarray(start, end), body.subarray(end), Buffer.alloc(32)])
          : Buffer.concat([body.subarray(0, start), body.subarray(end), Buffer.alloc(32)]);
        openChecked(withChecksum(spliced));
      }),
      { numRuns: ARCHIVE_FUZZ_RUNS.splices },
    );
    expect(peakGrowth).toBeLessThan(MEMORY_BOUND);
  });

  it('truncations with a recomputed checksum: ArchiveFormatError', () => {
    fc.assert(
      fc.property(contentsArb, fc.nat(), (contents, cut) => {
        const bytes = encodeArchive(contents);
        const keep = cut % (bytes.length - 32);
        const truncated = Buffer.concat([bytes.subarray(0, keep), Buffer.alloc(32)]);
        expect(openChecked(withChecksum(truncated))).toBe('refused');
      }),
      { numRuns: ARCHIVE_FUZZ_RUNS.truncations },
    );
  });
});
