// v2.3: checkpoint windows in a separate blob. The checked-in fixture (v2.2's small archive
// split) must keep opening to the same tree with the same windows; splitting is deterministic;
// hostile tables (windows outside the blob, wrong digests, flag/section mismatches) are refused.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ArchiveFormatError, DigestMismatchError } from '@clip/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ClipArchive, encodeArchive, loadExternalWindow, openArchive, splitWindows } from '../src/index.js';
import { v2FixtureContents } from './fixtures/archives/v2-contents.js';

const dir = fileURLToPath(new URL('./fixtures/archives/', import.meta.url));
const sha256hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Every checkpoint: where it is and the sha256 of its window (loaded from `windows` when external). */
function checkpoints(archive: ClipArchive, windows?: Uint8Array): unknown[] {
  return archive.layers.flatMap((layer) =>
    layer.spans.map((span) => {
      const { externalWindow, ...rest } = span.checkpoint;
      const window = externalWindow
        ? loadExternalWindow(
            externalWindow,
            windows!.subarray(externalWindow.offset, externalWindow.offset + externalWindow.storedLength),
            'fixture window',
          )
        : span.checkpoint.window;
      return { uncompressedOffset: rest.uncompressedOffset, compressedBitOffset: rest.compressedBitOffset, window: sha256hex(window) };
    }),
  );
}

function tree(archive: ClipArchive): unknown[] {
  return [...archive.walk()].map(({ path, inode }) => ({ path, ...inode }));
}

/** Section table entries: id → [offset, length, recordSize]. */
function sectionTable(bytes: Buffer): Map<number, { offset: number; length: number; recordSize: number }> {
  const out = new Map<number, { offset: number; length: number; recordSize: number }>();
  for (let i = 0; i < bytes.readUInt32LE(16); i++) {
    const at = 32 + i * 24;
    out.set(bytes.readUInt32LE(at), {
      recordSize: bytes.readUInt32LE(at + 4),
      offset: Number(bytes.readBigUInt64LE(at + 8)),
      length: Number(bytes.readBigUInt64LE(at + 16)),
    });
  }
  return out;
}

function rechecksum(bytes: Buffer): Buffer {
  bytes.set(
    createHash('sha256')
      .update(bytes.subarray(0, bytes.length - 32))
      .digest(),
    bytes.length - 32,
  );
  return bytes;
}

/** An uncompressed-tables v2.3 archive (the v2.0 layout split), so tests can patch records in place. */
function plainSplit(): { bytes: Buffer; windows: Uint8Array } {
  const split = splitWindows(encodeArchive(v2FixtureContents(), { compressTables: false }))!;
  return { bytes: Buffer.from(split.archive), windows: split.windows };
}

describe('external windows (v2.3)', () => {
  it.runIf(process.env.CLIP_WRITE_FIXTURES === '1')('writes the v2.3 fixture', () => {
    const split = splitWindows(readFileSync(`${dir}v2.2/small.clip`))!;
    mkdirSync(`${dir}v2.3`, { recursive: true });
    writeFileSync(`${dir}v2.3/small.clip`, split.archive);
    writeFileSync(`${dir}v2.3/small.windows`, split.windows);
  });

  it('v2.3/small.clip opens to the same tree and, with its windows blob, the same checkpoints as v2.2', () => {
    const bytes = readFileSync(`${dir}v2.3/small.clip`);
    const windows = readFileSync(`${dir}v2.3/small.windows`);
    const archive = openArchive(bytes);
    const v22 = openArchive(readFileSync(`${dir}v2.2/small.clip`));
    expect(`${archive.formatVersion}.${archive.minorVersion}`).toBe('2.3');
    expect(bytes.readUInt32LE(12)).toBe(2 | 4);
    expect(archive.externalWindows).toEqual({ digest: `sha256:${sha256hex(windows)}`, size: windows.length });
    expect(archive.metadata).toEqual(v22.metadata);
    expect(tree(archive)).toEqual(tree(v22));
    expect(checkpoints(archive, windows)).toEqual(checkpoints(v22));
    // The fixture has a window to move: the archive shrank by at least its stored bytes.
    expect(windows.length).toBeGreaterThan(0);
    expect(bytes.length).toBeLessThan(readFileSync(`${dir}v2.2/small.clip`).length - windows.length + 200);
    const external = archive.layers.flatMap((l) => l.spans).find((s) => s.checkpoint.externalWindow)!;
    expect(() => external.checkpoint.window).toThrow(/is in windows blob sha256:[0-9a-f]{64}: load it by range/);
  });

  it('splitting is deterministic and reproduces the checked-in bytes; older fixtures are untouched by it', () => {
    const v22 = readFileSync(`${dir}v2.2/small.clip`);
    const before = Buffer.from(v22);
    const split = splitWindows(v22)!;
    expect(Buffer.from(split.archive).equals(readFileSync(`${dir}v2.3/small.clip`))).toBe(true);
    expect(Buffer.from(split.windows).equals(readFileSync(`${dir}v2.3/small.windows`))).toBe(true);
    expect(split.windowsDigest).toBe(`sha256:${sha256hex(split.windows)}`);
    expect(v22.equals(before)).toBe(true);
    // The v2.0 layout splits too (tables stay uncompressed) and opens to the same checkpoints.
    const plain = plainSplit();
    expect(plain.bytes.readUInt16LE(10)).toBe(3);
    expect(plain.bytes.readUInt32LE(12)).toBe(4);
    expect(checkpoints(openArchive(plain.bytes), plain.windows)).toEqual(checkpoints(openArchive(v22)));
  });

  it('refuses to split twice, a data-carrying archive, and has nothing to split without windows', () => {
    expect(() => splitWindows(readFileSync(`${dir}v2.3/small.clip`))).toThrow(/windows are external already/);
    expect(() => splitWindows(readFileSync(`${dir}v2.2/data.clip`))).toThrow(/data-carrying archive has no windows/);
    const contents = v2FixtureContents();
    for (const layer of contents.layers)
      for (const span of layer.spans) Object.assign(span.checkpoint, { window: new Uint8Array(0), kind: 'gzip-member' });
    expect(splitWindows(encodeArchive(contents))).toBeUndefined();
  });

  it('a window whose bytes are not the archive’s is a digest mismatch, never a window', () => {
    const { bytes, windows } = plainSplit();
    const archive = openArchive(bytes);
    const ref = archive.layers.flatMap((l) => l.spans).find((s) => s.checkpoint.externalWindow)!.checkpoint.externalWindow!;
    const stored = Buffer.from(windows.subarray(ref.offset, ref.offset + ref.storedLength));
    expect(loadExternalWindow(ref, stored, 'w').length).toBe(ref.length);
    stored[0]! ^= 1;
    expect(() => loadExternalWindow(ref, stored, 'window of span 1')).toThrow(DigestMismatchError);
    expect(() => loadExternalWindow(ref, stored, 'window of span 1')).toThrow(
      /window of span 1 \(windows blob sha256:[0-9a-f]{64} bytes 0\+/,
    );
    expect(() => loadExternalWindow(ref, stored.subarray(1), 'w')).toThrow(DigestMismatchError);
    // Bytes that match their digest but are not a window (a hostile archive): refused too.
    const junk = Buffer.from('not deflate at all');
    const lying = { ...ref, storedLength: junk.length, digest: `sha256:${sha256hex(junk)}` as const };
    expect(() => loadExternalWindow(lying, junk, 'w')).toThrow(ArchiveFormatError);
  });

  it('hostile tables: windows outside the blob, a short blob, missing or extra sections, flag mismatches', () => {
    const spanWith = (bytes: Buffer) => {
      const spans = sectionTable(bytes).get(3)!;
      for (let at = spans.offset; at < spans.offset + spans.length; at += spans.recordSize) if (bytes.readUInt32LE(at + 40) > 0) return at;
      throw new Error('no span with a window');
    };
    const outside = plainSplit().bytes;
    outside.writeUInt32LE(outside.readUInt32LE(spanWith(outside) + 32) + 1, spanWith(outside) + 32);
    expect(() => openArchive(rechecksum(outside))).toThrow(/span \d+ window is outside the windows blob/);

    const short = plainSplit().bytes;
    const blob = sectionTable(short).get(13)!;
    short.writeBigUInt64LE(BigInt(short.readUInt32LE(spanWith(short) + 36) - 1), blob.offset + 32);
    expect(() => openArchive(rechecksum(short))).toThrow(/outside the windows blob/);

    const noDigests = plainSplit().bytes;
    const digestsEntry = [...sectionTable(noDigests).keys()].indexOf(14);
    noDigests.writeUInt32LE(99, 32 + digestsEntry * 24);
    expect(() => openArchive(rechecksum(noDigests))).toThrow(/missing window digests section/);

    const fewer = plainSplit().bytes;
    const digests = sectionTable(fewer).get(14)!;
    fewer.writeBigUInt64LE(BigInt(digests.length - 32), 32 + [...sectionTable(fewer).keys()].indexOf(14) * 24 + 16);
    expect(() => openArchive(rechecksum(fewer))).toThrow(/window digests for \d+ spans/);

    // The flag without the sections (a v2.0 archive with bit 2), and the sections without the flag.
    const flagOnly = Buffer.from(encodeArchive(v2FixtureContents(), { compressTables: false }));
    flagOnly.writeUInt32LE(4, 12);
    expect(() => openArchive(rechecksum(flagOnly))).toThrow(/WINDOWS section in an archive with external windows/);
    const sectionsOnly = plainSplit().bytes;
    sectionsOnly.writeUInt32LE(0, 12);
    expect(() => openArchive(rechecksum(sectionsOnly))).toThrow(/without the external-windows flag|missing windows section/);
    const withData = plainSplit().bytes;
    withData.writeUInt32LE(4 | 1, 12);
    expect(() => openArchive(rechecksum(withData))).toThrow(ArchiveFormatError);
  });

  it('random edits of a v2.3 archive (checksum recomputed) open or are refused as ArchiveFormatError; windows stay inside the blob', () => {
    const { bytes } = plainSplit();
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(bytes.length - 33), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (edits) => {
          const copy = Buffer.from(bytes);
          for (const [at, value] of edits) copy[at] = value;
          let archive: ClipArchive;
          try {
            archive = openArchive(rechecksum(copy));
          } catch (error) {
            expect(error).toBeInstanceOf(ArchiveFormatError);
            return;
          }
          for (const layer of archive.layers)
            for (const span of layer.spans) {
              const ref = span.checkpoint.externalWindow;
              if (ref) expect(ref.offset + ref.storedLength).toBeLessThanOrEqual(archive.externalWindows!.size);
            }
        },
      ),
      { numRuns: 400 },
    );
  });
});
