// Checked-in archives of every format version must keep opening and reading the same.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ARCHIVE_FORMAT_VERSION, encodeArchive, openArchive, type ClipArchive } from '../src/index.js';
import { v2FixtureContents } from './fixtures/archives/v2-contents.js';

const dir = fileURLToPath(new URL('./fixtures/archives/', import.meta.url));

/** A JSON-friendly description of everything an archive says, for the expected-tree files. */
function describeArchive(archive: ClipArchive): unknown {
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
  return {
    formatVersion: archive.formatVersion,
    ...(archive.minorVersion ? { minorVersion: archive.minorVersion } : {}),
    inodeCount: archive.inodeCount,
    entryCount: archive.entryCount,
    metadata: archive.metadata,
    layers: archive.layers.map((layer) => ({
      ...layer,
      spans: layer.spans.map((span) => ({
        ...span,
        checkpoint: {
          ...span.checkpoint,
          window: createHash('sha256').update(span.checkpoint.window).digest('hex'),
          windowLength: span.checkpoint.window.length,
        },
      })),
    })),
    tree: [...archive.walk()].map(({ path, inode }) => ({
      path,
      ...inode,
      ...(inode.xattrs ? { xattrs: Object.fromEntries(Object.entries(inode.xattrs).map(([k, v]) => [k, hex(v)])) } : {}),
    })),
  };
}

describe('checked-in archive fixtures', () => {
  it.runIf(process.env.CLIP_WRITE_FIXTURES === '1' && ARCHIVE_FORMAT_VERSION === 2)('writes the v2 and v2.2 fixtures', () => {
    // v2.0 is the uncompressed layout; v2.2 the same contents with compressed tables.
    for (const [name, compressTables] of [
      ['v2/small', false],
      ['v2.2/small', true],
    ] as const) {
      const bytes = encodeArchive(v2FixtureContents(), { compressTables });
      mkdirSync(`${dir}${name.split('/')[0]}`, { recursive: true });
      writeFileSync(`${dir}${name}.clip`, bytes);
      writeFileSync(`${dir}${name}.expected.json`, `${JSON.stringify(describeArchive(openArchive(bytes)), null, 2)}\n`);
    }
  });

  it('v2/small.clip opens and reads as its expected tree', () => {
    const bytes = readFileSync(`${dir}v2/small.clip`);
    const expected: unknown = JSON.parse(readFileSync(`${dir}v2/small.expected.json`, 'utf8'));
    const archive = openArchive(bytes);
    expect(describeArchive(archive)).toEqual(expected);
    expect(archive.lookup('/bin/hardlink')?.ino).toBe(3);
    expect(archive.lookup('/tmp/日本語 file.txt')?.data).toEqual({ layer: 1, offset: 1024 });
    expect(archive.readdir('/tmp')?.map((e) => e.name)).toEqual(['empty', 'fifo', '日本語 file.txt']);
  });

  it.runIf(ARCHIVE_FORMAT_VERSION === 2)('the v2 encoder still produces the checked-in bytes (uncompressed-tables layout)', () => {
    expect(existsSync(`${dir}v2/small.clip`)).toBe(true);
    const bytes = readFileSync(`${dir}v2/small.clip`);
    expect(Buffer.from(encodeArchive(v2FixtureContents(), { compressTables: false })).equals(bytes)).toBe(true);
  });

  it('v2.2/small.clip (compressed tables) opens and reads as its expected tree, the same tree as v2.0', () => {
    const bytes = readFileSync(`${dir}v2.2/small.clip`);
    const expected = JSON.parse(readFileSync(`${dir}v2.2/small.expected.json`, 'utf8')) as Record<string, unknown>;
    const archive = openArchive(bytes);
    expect(`${archive.formatVersion}.${archive.minorVersion}`).toBe('2.2');
    expect(bytes.readUInt32LE(12)).toBe(2);
    expect(describeArchive(archive)).toEqual(expected);
    const v20 = JSON.parse(readFileSync(`${dir}v2/small.expected.json`, 'utf8')) as Record<string, unknown>;
    expect({ ...expected, minorVersion: undefined }).toEqual({ ...v20, minorVersion: undefined });
    expect(archive.lookup('/tmp/日本語 file.txt')?.data).toEqual({ layer: 1, offset: 1024 });
    expect(bytes.length).toBeLessThan(readFileSync(`${dir}v2/small.clip`).length);
  });

  it.runIf(ARCHIVE_FORMAT_VERSION === 2)('the encoder produces the checked-in v2.2 bytes by default', () => {
    const bytes = readFileSync(`${dir}v2.2/small.clip`);
    expect(Buffer.from(encodeArchive(v2FixtureContents())).equals(bytes)).toBe(true);
  });
});
