// The fast paths of the tar walk and the overlay sort agree with the plain definitions.
import { describe, expect, it } from 'vitest';
import { compareNames } from '@clip/archive-format';
import { normaliseEntryPath } from '../src/tar/entry-path.js';
import { BLOCK_SIZE, checksumMatches } from '../src/tar/tar-header.js';

const sign = (n: number) => Math.sign(n);

describe('fast paths', () => {
  it('compareNames is UTF-8 byte order, astral characters included', () => {
    const names = ['a', 'b', 'ab', '', 'é', '\u{1F600}', '\uFFFD', '\uE000', 'z\u{10000}', 'z\uFFFF', 'Z', '.wh.x'];
    for (const a of names) {
      for (const b of names) expect(sign(compareNames(a, b))).toBe(sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
    }
  });

  it('normaliseEntryPath keeps normal names and cleans the rest', () => {
    expect(normaliseEntryPath('usr/bin/python3')).toEqual({ ok: true, path: 'usr/bin/python3' });
    expect(normaliseEntryPath('./usr//bin/')).toEqual({ ok: true, path: 'usr/bin' });
    expect(normaliseEntryPath('.hidden/..x/...')).toEqual({ ok: true, path: '.hidden/..x/...' });
    expect(normaliseEntryPath('a/../b').ok).toBe(false);
    expect(normaliseEntryPath('a\0b').ok).toBe(false);
  });

  it('checksumMatches: unsigned and signed sums, aligned or not', () => {
    const block = new Uint8Array(BLOCK_SIZE);
    for (let i = 0; i < BLOCK_SIZE; i++) block[i] = i < 64 ? 0xc0 + (i & 0x3f) : 0x41 + (i % 26);
    let unsigned = 8 * 0x20;
    let signed = 8 * 0x20;
    for (let i = 0; i < BLOCK_SIZE; i++) {
      if (i >= 148 && i < 156) continue;
      unsigned += block[i]!;
      signed += block[i]! > 127 ? block[i]! - 256 : block[i]!;
    }
    const withSum = (sum: number) => {
      const copy = block.slice();
      copy.set(Buffer.from(`${(sum >>> 0).toString(8).padStart(6, '0')}\0 `, 'latin1'), 148);
      return copy;
    };
    expect(checksumMatches(withSum(unsigned))).toBe(true);
    expect(checksumMatches(withSum(unsigned + 1))).toBe(false);
    expect(signed).toBeGreaterThan(0);
    expect(checksumMatches(withSum(signed))).toBe(true);
    // Not 4-byte aligned: the byte loop.
    const shifted = new Uint8Array(BLOCK_SIZE + 1);
    shifted.set(withSum(unsigned), 1);
    expect(checksumMatches(shifted.subarray(1))).toBe(true);
  });
});
