import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ARCHIVE_FORMAT_VERSION, type ClipArchive } from '../src/archive.js';
import { openArchive } from '../src/archive-reader.js';
import { encodeArchive, encodeArchiveAsync } from '../src/encode.js';
import type { ArchiveContents, Inode } from '../src/model.js';
import { ArchiveFormatError } from '@clip/shared';
import { contentsArb, normalised } from './archive-arbitraries.js';
import { archiveContents } from './archive-contents.js';

function baseInode(ino: number, type: Inode['type'], extra: Partial<Inode> = {}): Inode {
  return {
    ino,
    type,
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    mtimeSec: 1700000000,
    mtimeNsec: 0,
    rdevMajor: 0,
    rdevMinor: 0,
    nlink: 1,
    ...extra,
  };
}

function smallContents(): ArchiveContents {
  return {
    metadata: { sourceRef: 'oci:/tmp/layout:v1', imageConfig: { cmd: ['/bin/sh'] }, createdBy: 'test' },
    layers: [],
    inodes: [
      baseInode(1, 'directory', { nlink: 3 }),
      baseInode(2, 'directory', { nlink: 2 }),
      baseInode(3, 'file', { size: 5, nlink: 2, mode: 0o4755 }),
      baseInode(4, 'symlink', { linkTarget: '../etc/passwd', size: 13 }),
    ],
    entries: [
      { path: '/', ino: 1 },
      { path: '/etc', ino: 2 },
      { path: '/etc/b', ino: 3 },
      { path: '/etc/a', ino: 3 },
      { path: '/link', ino: 4 },
    ],
  };
}

/** Exercises every read API; returns normally or throws. */
function readEverything(archive: ClipArchive): void {
  for (const { path, inode } of archive.walk()) {
    archive.lookup(path);
    if (inode.type === 'directory') archive.readdir(path);
  }
  for (let ino = 1; ino <= Math.min(archive.inodeCount, 200); ino++) {
    archive.inode(ino);
    for (const child of archive.childNames(ino) ?? []) archive.inode(child.ino);
  }
  for (const layer of archive.layers) for (const span of layer.spans) void span.checkpoint.window;
  archiveContents(archive);
}

function withChecksum(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  out.set(
    createHash('sha256')
      .update(out.subarray(0, out.length - 32))
      .digest(),
    out.length - 32,
  );
  return out;
}

describe('archive format v2', () => {
  it('round-trips a small tree and answers lookups', () => {
    const archive = openArchive(encodeArchive(smallContents()));
    expect(archive.formatVersion).toBe(ARCHIVE_FORMAT_VERSION);
    expect(archive.inodeCount).toBe(4);
    expect(archive.entryCount).toBe(4);
    expect(archive.lookup('/')?.ino).toBe(1);
    expect(archive.lookup('/etc/a')?.ino).toBe(3);
    expect(archive.lookup('/etc/b')?.mode).toBe(0o4755);
    expect(archive.lookup('//etc//a/')?.ino).toBe(3);
    expect(archive.lookup('/etc/../link')).toBeUndefined();
    expect(archive.lookup('/link/x')).toBeUndefined();
    expect(archive.lookup('etc')).toBeUndefined();
    expect(archive.lookup('/nope')).toBeUndefined();
    expect(archive.lookup('/link')?.linkTarget).toBe('../etc/passwd');
    expect(archive.readdir('/etc')?.map((e) => e.name)).toEqual(['a', 'b']);
    expect(archive.readdir('/link')).toBeUndefined();
    expect(archive.childNames(2)?.find((child) => child.name === 'b')?.ino).toBe(3);
    expect([...archive.walk()].map((e) => e.path)).toEqual(['/', '/etc', '/link', '/etc/a', '/etc/b']);
    expect(() => archive.inode(5)).toThrow(ArchiveFormatError);
  });

  it('is deterministic regardless of entry order and object key order', () => {
    const a = smallContents();
    const b = smallContents();
    b.entries.reverse();
    b.metadata = { createdBy: 'test', imageConfig: { cmd: ['/bin/sh'] }, sourceRef: 'oci:/tmp/layout:v1' };
    expect(Buffer.from(encodeArchive(a)).equals(Buffer.from(encodeArchive(b)))).toBe(true);
  });

  it('refuses to encode invalid trees', () => {
    const bad = (mutate: (c: ArchiveContents) => void): void => {
      const c = smallContents();
      mutate(c);
      expect(() => encodeArchive(c)).toThrow(ArchiveFormatError);
    };
    bad((c) => c.entries.push({ path: '/etc/..', ino: 3 }));
    bad((c) => c.entries.push({ path: '/etc/.', ino: 3 }));
    bad((c) => c.entries.push({ path: '/x\0y', ino: 3 }));
    bad((c) => c.entries.push({ path: '/missing/x', ino: 3 }));
    bad((c) => c.entries.push({ path: '/link/x', ino: 3 }));
    bad((c) => c.entries.push({ path: '/etc/a', ino: 3 }));
    bad((c) => c.entries.push({ path: '/x', ino: 99 }));
    bad((c) => c.entries.push({ path: '/etc2', ino: 2 }));
    bad((c) => (c.inodes[2]!.ino = 7));
    bad((c) => (c.inodes[2]!.size = -1));
    bad((c) => (c.inodes[2]!.data = { layer: 0, offset: 0 }));
  });

  it('round-trips random contents exactly, with and without compressed tables', () => {
    fc.assert(
      fc.property(contentsArb, fc.boolean(), (contents, compressTables) => {
        const bytes = encodeArchive(contents, { compressTables });
        expect(Buffer.from(encodeArchive(contents, { compressTables })).equals(Buffer.from(bytes))).toBe(true);
        const archive = openArchive(bytes);
        expect(archive.minorVersion).toBe(compressTables ? 2 : 0);
        expect(normalised(archiveContents(archive))).toEqual(normalised(contents));
        for (const entry of contents.entries) expect(archive.lookup(entry.path)?.ino).toBe(entry.ino);
      }),
      { numRuns: 150 },
    );
  });

  it('rejects every truncation with ArchiveFormatError', () => {
    fc.assert(
      fc.property(contentsArb, fc.nat(), fc.boolean(), (contents, cut, compressTables) => {
        const bytes = encodeArchive(contents, { compressTables });
        const truncated = bytes.subarray(0, cut % bytes.length);
        expect(() => openArchive(truncated)).toThrow(ArchiveFormatError);
      }),
      { numRuns: 150 },
    );
  });

  it('rejects every bit flip with ArchiveFormatError', () => {
    fc.assert(
      fc.property(contentsArb, fc.nat(), fc.integer({ min: 0, max: 7 }), fc.boolean(), (contents, at, bit, compressTables) => {
        const bytes = encodeArchive(contents, { compressTables }).slice();
        bytes[at % bytes.length]! ^= 1 << bit;
        expect(() => openArchive(bytes)).toThrow(ArchiveFormatError);
      }),
      { numRuns: 200 },
    );
  });

  it('hostile archives with a valid checksum fail only with ArchiveFormatError', () => {
    // Corrupt bytes past the magic/version, then fix the checksum so the structure checks are what is tested.
    fc.assert(
      fc.property(
        contentsArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        (contents, edits, compressTables) => {
          const bytes = encodeArchive(contents, { compressTables }).slice();
          const editable = bytes.length - 32 - 12;
          for (const [at, value] of edits) bytes[12 + (at % editable)] = value;
          try {
            readEverything(openArchive(withChecksum(bytes)));
          } catch (error) {
            if (!(error instanceof ArchiveFormatError)) throw error;
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('names the version it found and the one it supports', () => {
    expect(() => openArchive(Buffer.from(encodeArchive(smallContents())).fill(3, 8, 9))).toThrow(/version 3\.2 is newer .*version 2/);
    const bytes = encodeArchive(smallContents(), { compressTables: false }).slice();
    bytes[8] = 3;
    expect(() => openArchive(bytes)).toThrow(/version 3\.0 is newer .*version 2/);
    bytes[8] = 1;
    expect(() => openArchive(bytes)).toThrow(/version 1 is no longer supported/);
    expect(() => openArchive(new TextEncoder().encode('hello'))).toThrow(/bad magic/);
    expect(() => openArchive(new Uint8Array(0))).toThrow(ArchiveFormatError);
  });

  it('opens a 100k-file archive and looks paths up', () => {
    const inodes: Inode[] = [baseInode(1, 'directory')];
    const entries: ArchiveContents['entries'] = [{ path: '/', ino: 1 }];
    for (let d = 0; d < 500; d++) {
      const dirIno = inodes.length + 1;
      inodes.push(baseInode(dirIno, 'directory'));
      entries.push({ path: `/usr/d${d}`, ino: dirIno });
      for (let f = 0; f < 200; f++) {
        const ino = inodes.length + 1;
        inodes.push(baseInode(ino, 'file', { size: f, data: { layer: 0, offset: ino * 512 } }));
        entries.push({ path: `/usr/d${d}/file-${f}.py`, ino });
      }
    }
    inodes.push(baseInode(inodes.length + 1, 'directory'));
    entries.push({ path: '/usr', ino: inodes.length });
    const layer = {
      digest: `sha256:${'a'.repeat(64)}`,
      diffId: `sha256:${'b'.repeat(64)}`,
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      compression: 'gzip',
      compressedSize: 1,
      uncompressedSize: 1,
      spans: [],
    } as const;
    const bytes = encodeArchive({
      metadata: { sourceRef: 'x', imageConfig: {}, createdBy: 't' },
      layers: [{ ...layer, spans: [] }],
      inodes,
      entries,
    });
    const started = performance.now();
    const archive = openArchive(bytes);
    if (process.env.CLIP_REPORT_TIMES === '1')
      console.log(`opened a ${bytes.length}-byte 100k-file archive in ${(performance.now() - started).toFixed(1)} ms`);
    expect(archive.minorVersion).toBe(2);
    expect(archive.entryCount).toBe(100_501);
    const hit = archive.lookup('/usr/d321/file-123.py');
    expect(hit?.type).toBe('file');
    expect(hit?.size).toBe(123);
    expect(hit?.data).toEqual({ layer: 0, offset: hit!.ino * 512 });
    expect(archive.lookup('/usr/d321/file-123.pyc')).toBeUndefined();
    expect(archive.readdir('/usr')?.length).toBe(500);
  });
});

describe('entry order handed to the encoder', () => {
  /** A tree whose directories are numbered breadth-first but listed in path order, like the indexer's. */
  function deepContents(): ArchiveContents {
    const inodes: Inode[] = [baseInode(1, 'directory')];
    const entries: ArchiveContents['entries'] = [{ path: '/', ino: 1 }];
    const add = (type: Inode['type']) => {
      inodes.push(baseInode(inodes.length + 1, type, type === 'file' ? { size: 1 } : {}));
      return inodes.length;
    };
    // Root: b (dir), a (dir), z (file), é (file, non-ASCII); a: x (dir), y (file); x: q (file); b: c (file).
    const b = add('directory');
    const a = add('directory');
    const z = add('file');
    const accent = add('file');
    const x = add('directory');
    const y = add('file');
    const q = add('file');
    const c = add('file');
    // Path order of directories: /, /a, /a/x, /b; children in name-byte order.
    entries.push({ path: '/a', ino: a }, { path: '/b', ino: b }, { path: '/z', ino: z }, { path: '/é', ino: accent });
    entries.push({ path: '/a/x', ino: x }, { path: '/a/y', ino: y });
    entries.push({ path: '/a/x/q', ino: q });
    entries.push({ path: '/b/c', ino: c }, { path: '/b/hard', ino: c });
    inodes[c - 1]!.nlink = 2;
    return { metadata: smallContents().metadata, layers: [], inodes, entries };
  }

  it('path-ordered runs, shuffled entries and the async encoder give the same bytes', async () => {
    const contents = deepContents();
    const expected = Buffer.from(encodeArchive(contents));
    const shuffled = { ...contents, entries: [...contents.entries].reverse() };
    expect(Buffer.from(encodeArchive(shuffled)).equals(expected)).toBe(true);
    expect(Buffer.from(await encodeArchiveAsync(contents)).equals(expected)).toBe(true);
    expect(
      Buffer.from(await encodeArchiveAsync(contents, { compressTables: false })).equals(
        Buffer.from(encodeArchive(contents, { compressTables: false })),
      ),
    ).toBe(true);
    const archive = openArchive(expected);
    expect(archive.childNames(1)!.map((child) => child.name)).toEqual(['a', 'b', 'z', 'é']);
    expect(archive.lookup('/a/x/q')?.type).toBe('file');
    expect(archive.lookup('/b/hard')?.ino).toBe(archive.lookup('/b/c')?.ino);
  });

  it('the fast path leaves errors to the general one', async () => {
    const contents = deepContents();
    const duplicate = { ...contents, entries: [...contents.entries, { path: '/b/c', ino: 9 }] };
    expect(() => encodeArchive(duplicate)).toThrow(/duplicate entry "\/b\/c"/);
    const orphan = { ...contents, entries: [...contents.entries, { path: '/nowhere/f', ino: 9 }] };
    expect(() => encodeArchive(orphan)).toThrow(/has no parent entry "\/nowhere"/);
    const underFile = { ...contents, entries: [...contents.entries, { path: '/z/f', ino: 9 }] };
    await expect(encodeArchiveAsync(underFile)).rejects.toThrow(/parent of "\/z\/f" is not a directory/);
    const unsorted = {
      ...contents,
      entries: contents.entries.map((entry) => (entry.path === '/a/y' ? { path: '/a/w', ino: entry.ino } : entry)),
    };
    expect(
      openArchive(encodeArchive(unsorted))
        .childNames(2 + 1)!
        .map((child) => child.name),
    ).toEqual(['w', 'x']);
  });
});
