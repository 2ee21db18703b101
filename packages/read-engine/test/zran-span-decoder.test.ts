// The incremental span decoder against decompressSpan and the plain data: spans made by hand
// from real deflate/gzip/zstd streams (checkpoint at every bit residue, stored blocks, flushes,
// multi-member gzip), fed piece by piece and in random groupings.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, createDeflateRaw, deflateRawSync, gunzipSync, gzipSync, inflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ArchiveLayer, Checkpoint } from '@clip/archive-format';
import { type Digest, LayerFormatError } from '@clip/shared';
import { deflateInputAt } from '../src/zran/deflate-prefix.js';
import { decompressSpan } from '../src/zran/decompress-span.js';
import { createSpanDecoder } from '../src/zran/span-decoder.js';
import { completeFramesLength } from '../src/zran/zstd-frames.js';
import { decompress as zstdDecompress } from 'fzstd';

const sha = (bytes: Uint8Array): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** xorshift32 bytes: text-like, random and repeated runs, so blocks of every kind appear. */
function data(seed: number, size: number): Buffer {
  let x = seed || 1;
  const next = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), x >>> 0);
  const out = Buffer.alloc(size);
  let i = 0;
  while (i < size) {
    const kind = next() % 3;
    const length = Math.min(size - i, 1 + (next() % 20_000));
    for (let j = 0; j < length; j++)
      out[i + j] = kind === 0 ? 97 + (next() % 6) : kind === 1 ? next() & 0xff : out[Math.max(0, i + j - 300)]!;
    i += length;
  }
  return out;
}

/** Raw deflate of `head` then `rest`, with a Z_BLOCK flush between: a block boundary at any bit. */
async function deflateWithBoundary(
  head: Buffer,
  rest: Buffer,
  level: number,
  restLevel: number,
): Promise<{ stream: Buffer; headBytes: number }> {
  const deflate = createDeflateRaw({ level });
  const chunks: Buffer[] = [];
  deflate.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve, reject) => deflate.on('end', resolve).on('error', reject));
  deflate.write(head);
  await new Promise<void>((resolve) => deflate.flush(constants.Z_BLOCK, () => resolve()));
  const headBytes = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  // A level change sync-flushes: an empty stored block right at the boundary, then stored blocks.
  if (restLevel !== level) await new Promise<void>((resolve) => deflate.params(restLevel, constants.Z_DEFAULT_STRATEGY, () => resolve()));
  deflate.end(rest);
  await ended;
  return { stream: Buffer.concat(chunks), headBytes };
}

/**
 * A checkpoint after `head` as the indexer would record it: the blob from the byte holding the
 * boundary bit, the residue, the window. The boundary is the bit (of the ≤ 7 held back by
 * Z_BLOCK) from which `rest` decodes.
 */
async function boundaryCase(seed: number, level: number, restLevel = level) {
  const head = data(seed, 40_000 + (seed % 13) * 777);
  const rest = data(seed + 1000, 300_000);
  const { stream, headBytes } = await deflateWithBoundary(head, rest, level, restLevel);
  const window = head.subarray(head.length - 32_768);
  for (let bit = headBytes * 8; bit < headBytes * 8 + 8; bit++) {
    const blob = stream.subarray(bit >> 3);
    try {
      if (inflateRawSync(deflateInputAt(blob, bit & 7), { dictionary: window }).equals(rest))
        return { blob: Buffer.from(blob), k: bit & 7, window, rest };
    } catch {
      // not the boundary
    }
  }
  throw new Error(`no block boundary found for seed ${seed}`);
}

const OFFSET = 5_000_000;

/**
 * A one-span layer over `blob` (checkpoint at byte 0, bit `k`), pieces ending at `cuts`; each
 * piece's uncompressedEnd is what its prefix decodes to (`decodable`), the last the span's end.
 */
function spanLayer(
  blob: Buffer,
  checkpoint: Omit<Checkpoint, 'uncompressedOffset'>,
  total: number,
  cuts: number[],
  decodable: (prefix: Buffer) => number,
): ArchiveLayer {
  const ends = [...new Set([...cuts.filter((cut) => cut > 0 && cut < blob.length), blob.length])].sort((a, b) => a - b);
  let previous = 0;
  const pieces = ends.map((end, i) => {
    const produced = i === ends.length - 1 ? total : Math.min(total, decodable(blob.subarray(0, end)));
    const piece = { compressedEnd: end, uncompressedEnd: OFFSET + produced, digest: sha(blob.subarray(previous, end)) };
    previous = end;
    return piece;
  });
  return {
    digest: sha(blob),
    diffId: sha(blob),
    mediaType: 'x',
    compression: 'gzip',
    compressedSize: blob.length,
    uncompressedSize: OFFSET + total,
    spans: [{ checkpoint: { ...checkpoint, uncompressedOffset: OFFSET }, uncompressedEnd: OFFSET + total, pieces }],
  };
}

/** Pushes the pieces in groups (sizes from `groups`), checking each step against decompressSpan. */
async function feed(layer: ArchiveLayer, blob: Buffer, expected: Buffer, groups: number[]): Promise<void> {
  const pieces = layer.spans[0]!.pieces;
  const decoder = createSpanDecoder(layer, 0);
  const outputs: Buffer[] = [];
  let done = 0;
  let g = 0;
  try {
    while (done < pieces.length) {
      const count = Math.min(pieces.length - done, Math.max(1, groups[g++ % Math.max(groups.length, 1)] ?? 1));
      const from = done === 0 ? 0 : pieces[done - 1]!.compressedEnd;
      done += count;
      const to = pieces[done - 1]!.compressedEnd;
      outputs.push(await decoder.push(blob.subarray(from, to)));
      const sofar = Buffer.concat(outputs);
      const reference = await decompressSpan(layer, 0, blob.subarray(0, to));
      expect(sofar.length).toBe(reference.length);
      expect(sofar.equals(reference)).toBe(true);
      expect(sofar.equals(expected.subarray(0, sofar.length))).toBe(true);
      expect(decoder.produced).toBe(sofar.length);
      expect(decoder.consumed).toBe(to);
    }
    expect(Buffer.concat(outputs).equals(expected)).toBe(true);
  } finally {
    decoder.close();
  }
}

const syncFlush = { finishFlush: constants.Z_SYNC_FLUSH };

type DeflateCase = Awaited<ReturnType<typeof boundaryCase>> & { layer(cuts: number[]): ArchiveLayer };

/** Boundary cases until every bit residue 0..7 has one (data with random runs: stored blocks follow too). */
async function casesByResidue(level: number, restLevel = level): Promise<DeflateCase[]> {
  const found: DeflateCase[] = [];
  for (let seed = 1; found.filter(Boolean).length < 8 && seed < 400; seed++) {
    const c = await boundaryCase(seed, level, restLevel);
    if (found[c.k]) continue;
    const decodable = (prefix: Buffer) => inflateRawSync(deflateInputAt(prefix, c.k), { ...syncFlush, dictionary: c.window }).length;
    found[c.k] = {
      ...c,
      layer: (cuts) =>
        spanLayer(c.blob, { compressedBitOffset: c.k, window: c.window, kind: 'deflate-block' }, c.rest.length, cuts, decodable),
    };
  }
  return found;
}

function evenCuts(length: number, size: number): number[] {
  const cuts: number[] = [];
  for (let at = size; at < length; at += size) cuts.push(at);
  return cuts;
}

describe('createSpanDecoder (deflate-block)', () => {
  const byLevel = new Map<string, DeflateCase[]>();
  beforeAll(async () => {
    for (const [level, restLevel] of [
      [1, 1],
      [6, 6],
      [9, 9],
      [6, 0],
    ] as const)
      byLevel.set(`${level}/${restLevel}`, await casesByResidue(level, restLevel));
  });

  it('boundary cases exist at every bit residue', () => {
    for (const cases of byLevel.values()) expect(cases.map((c) => c.k)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  for (let k = 0; k < 8; k++) {
    it(`bit residue ${k}: piece by piece and all at once equal decompressSpan and the data`, async () => {
      for (const cases of byLevel.values()) {
        const c = cases[k]!;
        const layer = c.layer(evenCuts(c.blob.length, 16_384));
        await feed(layer, c.blob, c.rest, [1]);
        await feed(layer, c.blob, c.rest, [1000]);
      }
    });
  }

  it('stored blocks right at the checkpoint, pieces cut inside block headers and contents', async () => {
    for (const c of byLevel.get('6/0')!)
      await feed(c.layer([1, 2, 3, 4, 5, 6, ...evenCuts(c.blob.length, 9_999)]), c.blob, c.rest, [1, 2, 3]);
  });

  it('random cuts and groupings (fast-check)', async () => {
    const all = [...byLevel.values()].flat();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: all.length - 1 }),
        fc.array(fc.integer({ min: 1, max: 200_000 }), { minLength: 0, maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 6 }),
        async (which, cuts, groups) => {
          const c = all[which]!;
          await feed(c.layer(cuts), c.blob, c.rest, groups);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a span whose last piece holds the member trailer, cut right at the final block end', async () => {
    const rest = data(3, 100_000);
    const stream = deflateRawSync(rest, { level: 6 });
    const blob = Buffer.concat([stream, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8])]);
    const decodable = (prefix: Buffer) => inflateRawSync(prefix, syncFlush).length;
    const layer = spanLayer(
      blob,
      { compressedBitOffset: 0, window: new Uint8Array(0), kind: 'deflate-block' },
      rest.length,
      [...evenCuts(stream.length, 20_000), stream.length],
      decodable,
    );
    await feed(layer, blob, rest, [1]);
  });

  it('corrupt input rejects with LayerFormatError and the decoder stays failed', async () => {
    const c = byLevel.get('6/6')![3]!;
    const layer = c.layer(evenCuts(c.blob.length, 16_384));
    const bad = Buffer.from(c.blob);
    bad[0] = 0xff; // the block header after bit 3: BTYPE 11, invalid
    const decoder = createSpanDecoder(layer, 0);
    await expect(decoder.push(bad.subarray(0, 16_384))).rejects.toThrow(LayerFormatError);
    await expect(decoder.push(bad.subarray(16_384, 32_768))).rejects.toThrow(LayerFormatError);
    decoder.close();
  });
});

describe('createSpanDecoder (gzip-member)', () => {
  const parts = [data(21, 150_000), Buffer.alloc(0), data(22, 90_000), data(23, 10)];
  const blob = Buffer.concat([
    gzipSync(parts[0]!, { level: 6 }),
    gzipSync(parts[1]!),
    gzipSync(parts[2]!, { level: 1 }),
    gzipSync(parts[3]!, { level: 0 }),
  ]);
  const all = Buffer.concat(parts);
  const decodable = (prefix: Buffer) => gunzipSync(prefix, syncFlush).length;
  const layerFor = (cuts: number[]) =>
    spanLayer(blob, { compressedBitOffset: 0, window: new Uint8Array(0), kind: 'gzip-member' }, all.length, cuts, decodable);

  it('multi-member (with an empty member) piece by piece, cuts in headers and trailers', async () => {
    await feed(layerFor(evenCuts(blob.length, 997)), blob, all, [1]);
    await feed(layerFor(evenCuts(blob.length, 20_000)), blob, all, [2, 1]);
  });

  it('random cuts and groupings (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: blob.length - 1 }), { maxLength: 25 }),
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 5 }),
        async (cuts, groups) => feed(layerFor(cuts), blob, all, groups),
      ),
      { numRuns: 30 },
    );
  });
});

describe('createSpanDecoder (zstd-frame, plain)', () => {
  const hasZstd = (() => {
    try {
      execFileSync('zstd', ['--version']);
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!hasZstd)('zstd frames decode once whole, whatever the cuts', async () => {
    const parts = [data(31, 120_000), data(32, 50_000), data(33, 1)];
    const blob = Buffer.concat(parts.map((part) => execFileSync('zstd', ['-q', '-c'], { input: part })));
    const all = Buffer.concat(parts);
    const decodable = (prefix: Buffer) => {
      const whole = completeFramesLength(prefix);
      return whole === 0 ? 0 : zstdDecompress(prefix.subarray(0, whole)).length;
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: blob.length - 1 }), { maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1 }),
        async (cuts, groups) => {
          await feed(
            spanLayer(blob, { compressedBitOffset: 0, window: new Uint8Array(0), kind: 'zstd-frame' }, all.length, cuts, decodable),
            blob,
            all,
            groups,
          );
        },
      ),
      { numRuns: 20 },
    );
  });

  it('plain spans return their input', async () => {
    const all = data(41, 50_000);
    await feed(
      spanLayer(
        all,
        { compressedBitOffset: 0, window: new Uint8Array(0), kind: 'plain' },
        all.length,
        [1, 999, 30_000],
        (prefix) => prefix.length,
      ),
      all,
      all,
      [1],
    );
  });
});
