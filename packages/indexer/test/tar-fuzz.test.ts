// Property-based fuzzing of the tar walk: hostile mutations of valid layer tars (header
// fields rewritten with garbage, huge, negative or base-256 numbers, names with `..`, NUL or
// a leading `/`, checksums recomputed so the structural checks are what is tested;
// truncations; random byte edits; hostile PAX records) must either walk to safe entries or
// fail with LayerFormatError — never another exception, never a hang, never unbounded memory.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LayerFormatError } from '@clip/shared';
import { walkTar } from '../src/tar/tar-walker.js';
import { chunked, tar, type RawMember } from '@clip/testkit';

const LAYER = `sha256:${'cd'.repeat(32)}`;
const BLOCK = 512;
export const FUZZ_RUNS = { fields: 3000, truncations: 1000, edits: 2000, pax: 1500 };

const BASE: RawMember[] = [
  { name: './', typeflag: '5' },
  { name: 'etc/', typeflag: '5' },
  { name: 'etc/hosts', data: '127.0.0.1 localhost\n' },
  { name: 'usr/bin/tool', data: 'x'.repeat(1500), mode: 0o4755 },
  { name: 'usr/bin/tool2', typeflag: '1', linkname: 'usr/bin/tool' },
  { name: 'etc/localtime', typeflag: '2', linkname: '/usr/share/zoneinfo/UTC' },
  { name: `deep/${'d'.repeat(120)}/file`, data: 'long name', gnuLongName: true },
  { name: 'pax/file', data: 'pax', pax: { path: 'pax/renamed', 'SCHILY.xattr.user.k': 'v', mtime: '1700000000.5' } },
  { name: 'dev/null', typeflag: '3', devmajor: 1, devminor: 3 },
  { name: 'empty', data: '' },
];
const BASE_TAR = tar(BASE);

/** Offsets of header blocks in a tar (blocks whose checksum field matches). */
function headerOffsets(data: Uint8Array): number[] {
  const out: number[] = [];
  for (let at = 0; at + BLOCK <= data.length; at += BLOCK) {
    const block = data.subarray(at, at + BLOCK);
    if (block.every((b) => b === 0)) continue;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
    const stored = parseInt(Buffer.from(block.subarray(148, 156)).toString('latin1').replace(/[\0 ]/g, ''), 8);
    if (stored === sum) out.push(at);
  }
  return out;
}
const HEADERS = headerOffsets(BASE_TAR);

function fixChecksum(data: Uint8Array, at: number): void {
  const block = data.subarray(at, at + BLOCK);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.set(Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `, 'latin1'), 148);
}

const FIELDS = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 8],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const;

const hostileName = fc.constantFrom(
  '../../etc/passwd',
  '/etc/shadow',
  'a/../../b',
  'a\0b',
  '..',
  '.',
  '',
  '//',
  'ok/./../..',
  'x'.repeat(100),
  'etc/hosts',
  'usr/bin/tool',
);
const numberField = (length: number) =>
  fc.oneof(
    fc.constant('7'.repeat(length - 1)), // largest octal
    fc.constant(`${'7'.repeat(length - 1)}7`), // no terminator
    fc.constant('-1'),
    fc.constant('0x10'),
    fc.constant('99999999'),
    fc.constant(' 12 34 '),
    fc.stringMatching(/^[0-7]{1,11}$/).map((s) => s.slice(0, length - 1)),
    fc.string({ maxLength: length }),
  );
const base256 = (length: number) =>
  fc
    .tuple(fc.constantFrom(0x80, 0xff, 0xc0), fc.uint8Array({ minLength: length - 1, maxLength: length - 1 }))
    .map(([first, rest]) => Uint8Array.from([first, ...rest]));

function fieldValue(field: keyof typeof FIELDS): fc.Arbitrary<Uint8Array> {
  const length = FIELDS[field][1];
  const text = (arb: fc.Arbitrary<string>) => arb.map((s) => Buffer.from(s, 'latin1').subarray(0, length));
  switch (field) {
    case 'name':
    case 'linkname':
    case 'prefix':
      return fc.oneof(text(hostileName), fc.uint8Array({ maxLength: length }));
    case 'typeflag':
      return fc.oneof(
        text(fc.constantFrom('0', '1', '2', '3', '4', '5', '6', '7', 'x', 'g', 'L', 'K', 'S', 'V', 'Z', '\0')),
        fc.uint8Array({ minLength: 1, maxLength: 1 }),
      );
    case 'magic':
      return fc.oneof(text(fc.constantFrom('ustar\u000000', 'ustar  \0', 'garbage!')), fc.uint8Array({ maxLength: length }));
    default:
      return fc.oneof(text(numberField(length)), base256(length), fc.uint8Array({ maxLength: length }));
  }
}

const mutationArb = fc
  .record({
    header: fc.nat(),
    field: fc.constantFrom(...(Object.keys(FIELDS) as Array<keyof typeof FIELDS>)),
    fix: fc.boolean(),
  })
  .chain((m) => fieldValue(m.field).map((value) => ({ ...m, value })));

/** Walks and checks the outcome: safe entries, or LayerFormatError. */
function walkChecked(data: Uint8Array, chunk: number): 'ok' | 'refused' {
  let entries;
  try {
    entries = walkTar(LAYER, chunked(data, chunk));
  } catch (error) {
    if (error instanceof LayerFormatError) return 'refused';
    throw error;
  }
  for (const entry of entries) {
    expect(entry.path.includes('\0')).toBe(false);
    expect(entry.path.startsWith('/')).toBe(false);
    expect(entry.path.split('/')).not.toContain('..');
    expect(entry.size).toBeGreaterThanOrEqual(0);
    expect(entry.dataOffset + entry.size).toBeLessThanOrEqual(data.length);
    if (entry.type === 'hardlink') {
      expect(entry.linkTarget!.startsWith('/')).toBe(false);
      expect(entry.linkTarget!.split('/')).not.toContain('..');
    }
  }
  return 'ok';
}

const outcomes = { ok: 0, refused: 0 };

describe('tar walk fuzzing', () => {
  it('mutated header fields (checksum recomputed or not): safe entries or LayerFormatError', () => {
    fc.assert(
      fc.property(mutationArb, fc.integer({ min: 1, max: 2048 }), ({ header, field, fix, value }, chunk) => {
        const data = BASE_TAR.slice();
        const at = HEADERS[header % HEADERS.length]!;
        const [offset, length] = FIELDS[field];
        data.fill(0, at + offset, at + offset + length);
        data.set(value.subarray(0, length), at + offset);
        if (fix) fixChecksum(data, at);
        outcomes[walkChecked(data, chunk)]++;
      }),
      { numRuns: FUZZ_RUNS.fields },
    );
    // Both outcomes happen: the fuzzer reaches past the checksum into the structure.
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
  });

  it('every truncation: safe entries or LayerFormatError', () => {
    fc.assert(
      fc.property(fc.nat(BASE_TAR.length), fc.integer({ min: 1, max: 4096 }), (cut, chunk) => {
        walkChecked(BASE_TAR.subarray(0, cut), chunk);
      }),
      { numRuns: FUZZ_RUNS.truncations },
    );
  });

  it('random byte edits anywhere: safe entries or LayerFormatError', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        (edits, fix) => {
          const data = BASE_TAR.slice();
          for (const [at, value] of edits) data[at % data.length] = value;
          if (fix) for (const at of HEADERS) fixChecksum(data, at);
          walkChecked(data, 700);
        },
      ),
      { numRuns: FUZZ_RUNS.edits },
    );
  });

  it('hostile PAX records (paths, link paths, sizes, mtimes): safe entries or LayerFormatError', () => {
    const paxValue = fc.oneof(
      fc.constantFrom('../x', '/abs/x', 'a\0b', '', '-5', '99999999999999999999', '1e3', '0x20', 'NaN', '1.5', '1700000000.999999999999'),
      fc.string({ maxLength: 20 }),
    );
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom('path', 'linkpath', 'size', 'mtime', 'uid', 'gid', 'GNU.sparse.major', 'SCHILY.xattr.a'), paxValue, {
          maxKeys: 4,
        }),
        fc.constantFrom('0', '1', '2', '5'),
        (pax, typeflag) => {
          const members: RawMember[] = [
            { name: 'a/', typeflag: '5' },
            { name: 'a/target', data: 'target' },
            { name: 'a/m', typeflag, linkname: 'a/target', data: typeflag === '0' ? 'data' : '', pax },
          ];
          walkChecked(tar(members), 333);
        },
      ),
      { numRuns: FUZZ_RUNS.pax },
    );
  });

  it('a huge declared size is skipped, not allocated, and the truncation is reported', () => {
    const before = process.memoryUsage().rss;
    const data = tar([{ name: 'big', data: 'abc', sizeField: 0o77777777777 }]);
    expect(() => walkTar(LAYER, [data])).toThrow(LayerFormatError);
    const extended = tar([{ name: 'PaxHeader', typeflag: 'x', sizeField: 0o77777777777 }]);
    expect(() => walkTar(LAYER, [extended])).toThrow(LayerFormatError);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 2 ** 20);
  });
});
