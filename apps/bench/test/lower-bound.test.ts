// The cold-start lower bound: the extent math, and the whole computation on a real gzip layer
// (tar + gzip, `clip index` from the built CLI, clip's native inflater for the block list).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { writeOciLayout } from '../src/images/oci-layout.js';
import { mergeRanges } from '@clip/shared';
import { compressedExtent, linkSeconds } from '../src/lower-bound/extent.js';
import { computeLowerBound } from '../src/lower-bound/lower-bound.js';

const work = mkdtempSync(join(tmpdir(), 'clipbench-lb-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('extent math', () => {
  // Blocks: uncompressed 0,100,200,300 (end 400) ↔ compressed 10,60,70,170 (end 180).
  const blocks = { compressed: [10, 60, 70, 170], uncompressed: [0, 100, 200, 300], compressedSize: 180, uncompressedSize: 400 };

  it('merges overlapping and touching ranges', () => {
    expect(
      mergeRanges([
        [5, 10],
        [0, 3],
        [3, 4],
        [8, 12],
        [20, 20],
      ]),
    ).toEqual([
      [0, 4],
      [5, 12],
    ]);
  });

  it('fetches from the block boundary before a range to the interpolated position of its end', () => {
    // 150..200: block 1 starts at compressed 60; the end (200) is the end of block 1 → 70.
    expect(compressedExtent(blocks, [[150, 200]])).toBe(10);
    // 210..250: block 2 (70..170 for 200..300), end at half of it → 120; from 70.
    expect(compressedExtent(blocks, [[210, 250]])).toBe(50);
    // Both ranges share no bytes: 10 + 50.
    expect(
      compressedExtent(blocks, [
        [150, 200],
        [210, 250],
      ]),
    ).toBe(60);
    // Two reads in one block count its start once: 220..230 and 240..250 → 70..120.
    expect(
      compressedExtent(blocks, [
        [220, 230],
        [240, 250],
      ]),
    ).toBe(50);
    // The last block runs to the layer's end: 300..400 → 170..180.
    expect(compressedExtent(blocks, [[300, 400]])).toBe(10);
    expect(compressedExtent(blocks, [])).toBe(0);
  });

  it('link time is transfer at the configured rate plus one round trip', () => {
    expect(linkSeconds(12_500_000, { rateMbit: 100, rttMs: 10 })).toBeCloseTo(1.01, 6);
    expect(linkSeconds(12_500_000, { rttMs: 50 })).toBeCloseTo(0.05, 6);
  });
});

const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));

describe.skipIf(!existsSync(cli))('lower bound of a real gzip layer', () => {
  it('is about the compressed size of what was read: all of an incompressible file, a slice of it, a text file', () => {
    process.env['CLIP_BENCH_CACHE'] = join(work, 'cache');
    const root = join(work, 'root');
    mkdirSync(join(root, 'data'), { recursive: true });
    const random = randomBytes(3 << 20);
    writeFileSync(join(root, 'data', 'random.bin'), random);
    writeFileSync(join(root, 'data', 'text.txt'), 'clip '.repeat(200_000));
    return (async () => {
      const image = await writeOciLayout(join(work, 'layout'), 'v1', [{ root }]);
      const archive = join(work, 'a.clip');
      execFileSync(process.execPath, [cli, 'index', image.reference, '-o', archive, '--storage-ref', '127.0.0.1:9/lb/test:v1']);
      const record = join(work, 'record.txt');

      writeFileSync(record, '/data/random.bin\n/not/there\n');
      const whole = await computeLowerBound(image, archive, record);
      expect(whole.files).toBe(1);
      expect(whole.unresolved).toBe(1);
      expect(whole.readBytes).toBe(3 << 20);
      // Incompressible: about the file's size (the end is interpolated inside a block that also
      // holds the compressible text file, so it may come out a little under).
      expect(Math.abs(whole.bytes - (3 << 20))).toBeLessThan(64 * 1024);

      writeFileSync(record, `/data/random.bin\t${1 << 20}-${(1 << 20) + 65536}\n`);
      const slice = await computeLowerBound(image, archive, record);
      expect(slice.readBytes).toBe(65536);
      // From the block boundary before the slice: at least the slice, at most one more block or two.
      expect(slice.bytes).toBeGreaterThanOrEqual(65536 - 1024);
      expect(slice.bytes).toBeLessThan(65536 + 2 * 80 * 1024);

      writeFileSync(record, '/data/text.txt\n');
      const text = await computeLowerBound(image, archive, record);
      expect(text.readBytes).toBe(1_000_000);
      // A megabyte of one repeated word compresses to a few kilobytes.
      expect(text.bytes).toBeGreaterThan(0);
      expect(text.bytes).toBeLessThan(50_000);
    })();
  }, 60_000);
});
