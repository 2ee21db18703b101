// The mounter's read path without a kernel: the FUSE read handler driven directly over an
// archive of hand-made plain spans, counting the bytes and requests each read costs; the tiered
// cache; readahead bounds; prefetch lists; the metadata table the FUSE addon serves.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readArchiveFile, type ClipArchive } from '@clip/archive-format';
import { DiskSpanCache, LayerReader, MemorySpanCache } from '@clip/read-engine';
import { type Digest, silentLogger } from '@clip/shared';
import { createReadHandler } from '../src/read-handler.js';
import { archiveTable, pathOf } from '../src/metadata-table.js';
import { TieredSpanCache } from '../src/tiered-cache.js';
import { MountMetrics } from '../src/metrics.js';
import { addRange, prefetchFiles, readPrefetchList, ReadRecorder, RANGE_GRAIN } from '../src/prefetch-list.js';
import { writeTestArchive, type FileSpec } from './helpers.js';

const SPAN = 64 * 1024;
const PIECE = 16 * 1024;

function content(size: number, seed: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + seed * 17) & 0xff;
  return data;
}

const files: FileSpec[] = [
  { path: '/d', type: 'directory', mode: 0o755 },
  ...Array.from(
    { length: 20 },
    (_, i): FileSpec => ({ path: `/d/f${String(i).padStart(2, '0')}`, type: 'file', mode: 0o644, content: content(5000 + i * 997, i) }),
  ),
  { path: '/big', type: 'file', mode: 0o644, content: content(5 * SPAN + 1234, 99) },
];

let dir: string;
let archive: ClipArchive;
let layerBytes: Buffer;
let fetches: Array<[number, number]>;

function reader(cache = new TieredSpanCache(new MemorySpanCache(64 << 20), undefined, new MountMetrics())): LayerReader {
  return new LayerReader(archive, {
    fetchRange: async (_digest: Digest, start: number, end: number) => {
      fetches.push([start, end]);
      await new Promise((resolve) => setTimeout(resolve, 1));
      return Buffer.from(layerBytes.subarray(start, end));
    },
    cache,
  });
}

/** open() resolves a path to its inode number; read() clamps to the file size as the FUSE addon does. */
function fsOps(layerReader: LayerReader) {
  const metrics = new MountMetrics();
  const handler = createReadHandler({ archive, reader: layerReader, metrics, logger: silentLogger, readTimeoutMs: 10_000 });
  const open = async (path: string) => archive.lookup(path)!.ino;
  const read = async (_path: string, ino: number, position: number, length: number) => {
    const size = archive.inode(ino).size;
    if (position >= size) return Buffer.alloc(0);
    return handler(ino, position, Math.min(length, size - position));
  };
  return { metrics, open, read };
}

function maxFetchesPerByte(): number {
  const perByte = new Uint8Array(layerBytes.length);
  for (const [start, end] of fetches) for (let i = start; i < end; i++) perByte[i]!++;
  return perByte.reduce((max, value) => Math.max(max, value), 0);
}

const fetchedBytes = () => fetches.reduce((sum, [start, end]) => sum + end - start, 0);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-readpath-'));
  const written = await writeTestArchive(dir, files, SPAN);
  archive = await readArchiveFile(written.archivePath);
  layerBytes = await readFile(join(written.layersDir, archive.layers[0]!.digest.slice('sha256:'.length)));
  fetches = [];
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Bytes from the checkpoint of the span holding `end - 1` to the end of the piece covering `end` (plain spans). */
function boundFor(offset: number, end: number): number {
  const spanStart = Math.floor(offset / SPAN) * SPAN;
  const layerEnd = archive.layers[0]!.uncompressedSize;
  return Math.min(Math.ceil((end - spanStart) / PIECE) * PIECE + spanStart, layerEnd) - spanStart;
}

describe('mounter read path', () => {
  it('a small file read fetches at most checkpoint → piece covering its end, and a second read of it nothing', async () => {
    const { open, read } = fsOps(reader());
    for (const name of ['f03', 'f11', 'f17']) {
      const inode = archive.lookup(`/d/${name}`)!;
      const before = fetchedBytes();
      const fd = await open(`/d/${name}`);
      const got = await read(`/d/${name}`, fd, 0, 128 * 1024);
      expect(got.length).toBe(inode.size);
      const start = inode.data!.offset;
      // Within one span in this layout, or the next span from its own checkpoint.
      const bound =
        Math.floor(start / SPAN) === Math.floor((start + inode.size - 1) / SPAN)
          ? boundFor(start, start + inode.size)
          : SPAN + boundFor(start + inode.size - 1, start + inode.size);
      expect(fetchedBytes() - before).toBeLessThanOrEqual(bound);
    }
    const total = fetches.length;
    const fd = await open('/d/f11');
    await read('/d/f11', fd, 0, 128 * 1024);
    expect(fetches.length).toBe(total);
  });

  it('reading every small file fetches each compressed byte at most once', async () => {
    const { open, read } = fsOps(reader());
    for (const spec of files.filter((f) => f.type === 'file' && f.path.startsWith('/d/')).reverse()) {
      const fd = await open(spec.path);
      expect(await read(spec.path, fd, 0, 128 * 1024)).toEqual(spec.content);
    }
    expect(maxFetchesPerByte()).toBe(1);
  });

  it('kernel-sized sequential reads of a big file read ahead no further than the file', async () => {
    const r = reader();
    const { open, read } = fsOps(r);
    const inode = archive.lookup('/big')!;
    const fd = await open('/big');
    const chunk = 128 * 1024;
    for (let position = 0; position < inode.size; position += chunk) {
      expect(await read('/big', fd, position, chunk)).toEqual(files.at(-1)!.content!.subarray(position, position + chunk));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    const fileEnd = inode.data!.offset + inode.size;
    for (const [, end] of fetches) expect(end).toBeLessThanOrEqual(Math.ceil(fileEnd / PIECE) * PIECE);
    expect(maxFetchesPerByte()).toBe(1);
  });

  it('a shorter block in memory does not hide a longer one on disk', async () => {
    const metrics = new MountMetrics();
    const memory = new MemorySpanCache(1 << 20);
    const disk = new DiskSpanCache(join(dir, 'cache'), 1 << 30);
    const tiered = new TieredSpanCache(memory, disk, metrics);
    await disk.set('k', Buffer.alloc(100, 1));
    memory.set('k', Buffer.alloc(10, 2));
    expect((await tiered.get('k', 5))?.length).toBe(10);
    expect((await tiered.get('k', 50))?.length).toBe(100);
    // Promoted: memory now has the longer block.
    expect(memory.get('k')?.length).toBe(100);
  });

  it('a prefetch list fetches each needed span once, only up to the listed files', async () => {
    const r = reader();
    const paths = ['/d/f02', '/d/f05', '/d/f03', '/d/f09', '/missing'];
    const result = await prefetchFiles({
      archive,
      reader: r,
      entries: paths.map((path) => ({ path })),
      logger: silentLogger,
      concurrency: 8,
    });
    expect(result).toEqual({ files: 4, failed: 0 });
    const furthest = Math.max(
      ...paths
        .slice(0, 4)
        .map((p) => archive.lookup(p)!)
        .map((i) => i.data!.offset + i.size),
    );
    for (const [, end] of fetches) expect(end).toBeLessThanOrEqual(Math.ceil(furthest / PIECE) * PIECE);
    expect(maxFetchesPerByte()).toBe(1);
    // The workload then reads them from the cache.
    const before = fetches.length;
    const { open, read } = fsOps(r);
    for (const path of paths.slice(0, 4)) await read(path, await open(path), 0, 128 * 1024);
    expect(fetches.length).toBe(before);
  });
});

describe('record and prefetch lists', () => {
  it('merges recorded reads into grain-aligned ranges, writes them in first-read order, and reads them back', async () => {
    const big = archive.lookup('/big')!;
    const small = archive.lookup('/d/f01')!;
    const file = join(dir, 'record.txt');
    const recorder = new ReadRecorder(file, silentLogger, (inode) => (inode.ino === big.ino ? '/big' : '/d/f01'));
    recorder.record(big, 3 * RANGE_GRAIN + 10, 100);
    recorder.record(small, 0, small.size);
    recorder.record(big, 0, 4096);
    recorder.record(big, RANGE_GRAIN, 1);
    await recorder.flush();
    expect(await readFile(file, 'utf8')).toBe(
      `/big\t0-${2 * RANGE_GRAIN},${3 * RANGE_GRAIN}-${4 * RANGE_GRAIN}\n/d/f01\t0-${small.size}\n`,
    );
    expect(await readPrefetchList(file)).toEqual([
      {
        path: '/big',
        ranges: [
          [0, 2 * RANGE_GRAIN],
          [3 * RANGE_GRAIN, 4 * RANGE_GRAIN],
        ],
      },
      { path: '/d/f01', ranges: [[0, small.size]] },
    ]);
  });

  it('addRange keeps ranges sorted and disjoint', () => {
    const ranges: Array<[number, number]> = [];
    for (const [start, end] of [
      [50, 60],
      [10, 20],
      [30, 40],
      [15, 35],
      [60, 70],
      [0, 5],
    ] as const)
      addRange(ranges, start, end);
    expect(ranges).toEqual([
      [0, 5],
      [10, 40],
      [50, 70],
    ]);
  });

  it('a ranged prefetch fetches only up to the listed part of a file', async () => {
    const r = reader();
    const big = archive.lookup('/big')!;
    await prefetchFiles({ archive, reader: r, entries: [{ path: '/big', ranges: [[0, PIECE]] }], logger: silentLogger });
    expect(fetches.length).toBeGreaterThan(0);
    for (const [, end] of fetches) expect(end).toBeLessThanOrEqual(Math.ceil((big.data!.offset + PIECE) / PIECE) * PIECE);
  });
});

describe('metadata table', () => {
  it("lists every directory's children sorted by name bytes and leads each inode back to its path", () => {
    const table = archiveTable(archive);
    for (const { path, inode } of archive.walk()) {
      if (path !== '/') expect(pathOf(archive, table, inode.ino)).toBe(path);
      const row = (inode.ino - 1) * 7;
      const children = archive.childNames(inode.ino) ?? [];
      expect(table.index[row + 2]).toBe(children.length);
      const names = [];
      for (let i = 0; i < children.length; i++) {
        const [offset, length] = table.children.subarray((table.index[row + 1]! + i) * 3, (table.index[row + 1]! + i) * 3 + 2);
        names.push(Buffer.from(table.blob.subarray(offset!, offset! + length!)).toString());
      }
      expect(names).toEqual(children.map((child) => child.name).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
      expect(table.attrs[(inode.ino - 1) * 9 + 3]).toBe(inode.type === 'directory' ? 4096 : inode.size);
    }
  });
});
