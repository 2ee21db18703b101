import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { EVENT_BOUNDARY, EVENT_MEMBER_END, EVENT_MEMBER_START, EVENT_STRIDE, loadNativeZran } from '../src/index.js';

const load = loadNativeZran();

describe.skipIf(!load.ok)('GzipBlockInflater (native)', () => {
  const binding = load.ok ? load.binding : undefined;

  it('inflates two members, reporting boundaries, member end and restart', () => {
    const a = Buffer.alloc(300_000, 'abc');
    const b = Buffer.from('second member');
    const blob = Buffer.concat([gzipSync(a), gzipSync(b)]);
    const inflater = new binding!.GzipBlockInflater();
    const out = new Uint8Array(1 << 20);
    const events = new Int32Array(64 * EVENT_STRIDE);
    const ends = new Int32Array(2);
    const count = inflater.run(blob, 0, out, 0, events, ends);
    expect(count).toBeGreaterThan(0);
    expect([...ends]).toEqual([blob.length, a.length + b.length]);
    expect(Buffer.from(out.subarray(0, ends[1])).equals(Buffer.concat([a, b]))).toBe(true);
    const kinds = Array.from({ length: count }, (_, i) => events[i * EVENT_STRIDE]);
    expect(kinds[0]).toBe(EVENT_BOUNDARY); // after the gzip header
    expect(kinds.filter((k) => k === EVENT_MEMBER_END)).toHaveLength(2);
    const restart = kinds.indexOf(EVENT_MEMBER_START);
    expect(events[restart * EVENT_STRIDE + 1]).toBe(gzipSync(a).length);
    expect(inflater.memberEnded()).toBe(true);
    inflater.close();
    inflater.close();
    expect(() => inflater.memberEnded()).toThrow(/closed/);
  });

  it('stops when the output is full and resumes', () => {
    const data = Buffer.alloc(100_000, 'xyz');
    const blob = gzipSync(data);
    const inflater = new binding!.GzipBlockInflater();
    const out = new Uint8Array(40_000);
    const events = new Int32Array(64 * EVENT_STRIDE);
    const ends = new Int32Array(2);
    const parts: Buffer[] = [];
    let inPos = 0;
    while (!inflater.memberEnded()) {
      expect(inflater.run(blob, inPos, out, 0, events, ends)).toBeGreaterThanOrEqual(0);
      inPos = ends[0]!;
      parts.push(Buffer.from(out.subarray(0, ends[1])));
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    inflater.close();
  });

  it('returns a negative code and a message on corrupt input (the CRC-32 is checked by default)', () => {
    const blob = gzipSync(Buffer.alloc(10_000, 'q'));
    blob[blob.length - 5]! ^= 0xff; // CRC32
    const inflater = new binding!.GzipBlockInflater();
    const code = inflater.run(blob, 0, new Uint8Array(20_000), 0, new Int32Array(64), new Int32Array(2));
    expect(code).toBeLessThan(0);
    expect(inflater.message()).toMatch(/check/);
    inflater.close();
  });

  it('validate: false skips the CRC-32 and length checks only, and survives member resets', () => {
    const data = Buffer.alloc(10_000, 'q');
    const bad = (at: number) => {
      const blob = gzipSync(data);
      blob[blob.length - at]! ^= 0xff; // 8: CRC-32, 4: ISIZE
      return blob;
    };
    const inflate = (blob: Uint8Array, options?: { validate?: boolean }) => {
      const inflater = new binding!.GzipBlockInflater(options);
      const out = new Uint8Array(40_000);
      const ends = new Int32Array(2);
      const code = inflater.run(blob, 0, out, 0, new Int32Array(64 * EVENT_STRIDE), ends);
      const result = { code, output: Buffer.from(out.subarray(0, ends[1])), ended: inflater.memberEnded(), message: inflater.message() };
      inflater.close();
      return result;
    };
    for (const at of [8, 4]) {
      expect(inflate(bad(at)).code).toBeLessThan(0);
      expect(inflate(bad(at), { validate: true }).code).toBeLessThan(0);
      const skipped = inflate(bad(at), { validate: false });
      expect(skipped.code).toBeGreaterThan(0);
      expect(skipped.ended).toBe(true);
      expect(skipped.output.equals(data)).toBe(true);
    }
    // A second member's trailer is not checked either (the flag survives inflateReset).
    const two = Buffer.concat([gzipSync(data), bad(8)]);
    const both = inflate(two, { validate: false });
    expect(both.code).toBeGreaterThan(0);
    expect(both.output.equals(Buffer.concat([data, data]))).toBe(true);
    expect(inflate(two).code).toBeLessThan(0);
    // Corrupt deflate data is still refused.
    const corrupt = gzipSync(Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 7919) % 251)));
    corrupt[20]! ^= 0xff;
    expect(inflate(corrupt, { validate: false }).code).toBeLessThan(0);
  });

  it('rejects a bad options argument', () => {
    expect(() => new binding!.GzipBlockInflater({ validate: 'no' as unknown as boolean })).toThrow(TypeError);
    expect(() => new binding!.GzipBlockInflater(42 as unknown as object)).toThrow(TypeError);
    new binding!.GzipBlockInflater({}).close();
    new binding!.GzipBlockInflater({ validate: undefined }).close();
  });

  it('rejects wrong argument types', () => {
    const inflater = new binding!.GzipBlockInflater();
    expect(() => inflater.run(new Uint8Array(4), 5, new Uint8Array(4), 0, new Int32Array(8), new Int32Array(2))).toThrow(TypeError);
    expect(() => inflater.run(new Uint8Array(4), 0, new Uint8Array(4), 0, new Int32Array(8), new Int32Array(1))).toThrow(TypeError);
    expect(() => inflater.run(new Uint8Array(4), 0, new Uint8Array(4), 0, new Int32Array(7), new Int32Array(2))).toThrow(TypeError);
    inflater.close();
  });
});

describe('loadNativeZran', () => {
  it('never throws and explains a failure', () => {
    expect(load.ok || load.reason.length > 0).toBe(true);
  });
});
