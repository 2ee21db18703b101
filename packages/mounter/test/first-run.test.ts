// First-run switches, `#!` parsing and sibling fetch-ahead over a hand-made archive (plain
// spans): which siblings are fetched, within which bounds, and that the bytes are right.
// (The ELF and scheduling tests through a real registry are in apps/cli/test/first-run.test.ts.)
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClipArchive, readArchiveFile } from '@clip/archive-format';
import { LayerReader, MemorySpanCache } from '@clip/read-engine';
import { type Digest, silentLogger, UsageError } from '@clip/shared';
import { parseFirstRun } from '../src/first-run.js';
import { parseShebang } from '../src/elf.js';
import { SiblingAhead } from '../src/sibling-ahead.js';
import { archiveTable } from '../src/metadata-table.js';
import { parentOf } from '@clip/native-fuse';
import { writeTestArchive, type FileSpec } from './helpers.js';

function content(size: number, seed: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 13 + seed * 7) & 0xff;
  return data;
}

const files: FileSpec[] = [
  { path: '/pkg', type: 'directory', mode: 0o755 },
  ...Array.from(
    { length: 30 },
    (_, i): FileSpec => ({
      path: `/pkg/m${String(i).padStart(2, '0')}.pyc`,
      type: 'file',
      mode: 0o644,
      content: content(3000 + i * 100, i),
    }),
  ),
  { path: '/pkg/huge.bin', type: 'file', mode: 0o644, content: content(300_000, 77) },
  { path: '/other', type: 'directory', mode: 0o755 },
  { path: '/other/x', type: 'file', mode: 0o644, content: content(5000, 5) },
  { path: '/other/y', type: 'file', mode: 0o644, content: content(9000, 6) },
];

let dir: string;
let archive: ClipArchive;
let layerBytes: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-first-run-'));
  const written = await writeTestArchive(dir, files, 64 * 1024);
  archive = await readArchiveFile(written.archivePath);
  layerBytes = await readFile(join(written.layersDir, archive.layers[0]!.digest.slice('sha256:'.length)));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CLIP_FIRST_RUN', () => {
  it('defaults, on/off words, none and all', () => {
    expect(parseFirstRun(undefined)).toEqual({ priority: true, coalesce: false, entrypoint: true, siblings: false, libraries: false });
    expect(parseFirstRun('none,entrypoint')).toEqual({
      priority: false,
      coalesce: false,
      entrypoint: true,
      siblings: false,
      libraries: false,
    });
    expect(parseFirstRun('all,-coalesce')).toEqual({ priority: true, coalesce: false, entrypoint: true, siblings: true, libraries: true });
    expect(parseFirstRun('-priority,+siblings')).toEqual({
      priority: false,
      coalesce: false,
      entrypoint: true,
      siblings: true,
      libraries: false,
    });
    expect(() => parseFirstRun('turbo')).toThrow(UsageError);
    expect(() => parseFirstRun('turbo')).toThrow(/unknown technique "turbo"/);
  });
});

describe('#! lines', () => {
  it('interpreter and argument; not a script', () => {
    expect(parseShebang(Buffer.from('#!/bin/sh\necho'))).toEqual({ interpreter: '/bin/sh' });
    expect(parseShebang(Buffer.from('#! /usr/bin/python3.11 -E\n'))).toEqual({ interpreter: '/usr/bin/python3.11', argument: '-E' });
    expect(parseShebang(Buffer.from('#!/usr/bin/env python3\n'))).toEqual({ interpreter: '/usr/bin/env', argument: 'python3' });
    expect(parseShebang(Buffer.from('\x7fELF'))).toBeUndefined();
    expect(parseShebang(Buffer.from('#!'))).toBeUndefined();
  });
});

describe('sibling fetch-ahead', () => {
  const setup = (options: { maxDirBytes?: number; maxTotalBytes?: number } = {}) => {
    const fetches: Array<[number, number]> = [];
    const reader = new LayerReader(archive, {
      fetchRange: async (_digest: Digest, start: number, end: number) => {
        fetches.push([start, end]);
        return Buffer.from(layerBytes.subarray(start, end));
      },
      cache: new MemorySpanCache(64 << 20),
    });
    const table = archiveTable(archive);
    const ahead = new SiblingAhead({ archive, reader, parentOf: (ino) => parentOf(table, ino), logger: silentLogger, ...options });
    return { reader, ahead, fetches };
  };

  it('warms the nearest small siblings once per directory, within the bound; their bytes are right', async () => {
    const { reader, ahead, fetches } = setup({ maxDirBytes: 17_000 });
    const first = archive.lookup('/pkg/m10.pyc')!;
    ahead.observe(first);
    ahead.observe(archive.lookup('/pkg/m11.pyc')!);
    await ahead.settled();
    expect(ahead.stats.directories).toBe(1);
    expect(ahead.stats.bytes).toBeLessThanOrEqual(17_000);
    expect(ahead.stats.files).toBe(4);
    expect(fetches.length).toBeGreaterThan(0);
    // The nearest ones (m09, m11, m08, m12 by layer offset) are local now; bytes equal the layer's.
    fetches.length = 0;
    for (const name of ['m08', 'm09', 'm11', 'm12']) {
      const inode = archive.lookup(`/pkg/${name}.pyc`)!;
      const data = await reader.readFile(inode, 0, inode.size);
      expect(Buffer.compare(data, layerBytes.subarray(inode.data!.offset, inode.data!.offset + inode.size))).toBe(0);
    }
    expect(fetches).toEqual([]);
  });

  it('skips large siblings and stops at the per-mount bound', async () => {
    const { ahead } = setup({ maxDirBytes: 10 ** 9, maxTotalBytes: 50_000 });
    ahead.observe(archive.lookup('/pkg/m00.pyc')!);
    ahead.observe(archive.lookup('/other/x')!);
    await ahead.settled();
    // huge.bin (300 kB) is never a candidate; the 50 kB mount budget ends /pkg's list (files of
    // 3.0-5.9 kB), and what is left is too little for /other/y (9 kB).
    expect(ahead.stats.bytes).toBeLessThanOrEqual(50_000);
    expect(ahead.stats.bytes).toBeGreaterThan(50_000 - 6000);
    expect(ahead.stats.directories).toBe(1);
  });
});
