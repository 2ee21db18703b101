import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskSpanCache } from '../src/cache/disk-cache.js';
import { MemorySpanCache } from '../src/cache/memory-cache.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  // Skips the shared counter and lock files (`.usage`, `.lock`).
  for (const shard of await readdir(root)) {
    if (shard.startsWith('.')) continue;
    for (const name of await readdir(join(root, shard))) out.push(join(root, shard, name));
  }
  return out;
}

describe('DiskSpanCache', () => {
  it('stores, loads and shares entries between instances', async () => {
    dir = await mkdtemp(join(tmpdir(), 'clip-disk-cache-'));
    const a = new DiskSpanCache(dir, 1 << 20);
    const b = new DiskSpanCache(dir, 1 << 20);
    await a.set('sha256:aa/1', Buffer.from('block one'));
    expect((await b.get('sha256:aa/1'))?.toString()).toBe('block one');
    expect(await b.get('sha256:aa/2')).toBeUndefined();
  });

  it('drops a corrupt entry and reports a miss', async () => {
    dir = await mkdtemp(join(tmpdir(), 'clip-disk-cache-'));
    let corrupt = 0;
    const cache = new DiskSpanCache(dir, 1 << 20, { onCorrupt: () => corrupt++ });
    await cache.set('k', Buffer.from('payload bytes'));
    const [file] = await files(dir);
    const raw = await readFile(file!);
    raw[raw.length - 1] = raw[raw.length - 1]! ^ 0xff;
    await writeFile(file!, raw);
    expect(await cache.get('k')).toBeUndefined();
    expect(corrupt).toBe(1);
    expect(await files(dir)).toEqual([]);
  });

  it('evicts least recently used entries past its bound and keeps a longer entry', async () => {
    dir = await mkdtemp(join(tmpdir(), 'clip-disk-cache-'));
    const cache = new DiskSpanCache(dir, 3000);
    for (let i = 0; i < 5; i++) {
      await cache.set(`k${i}`, Buffer.alloc(900, i));
      await new Promise((resolve) => setTimeout(resolve, 15));
      if (i >= 1) await cache.get('k0'); // keep k0 recently used
    }
    expect(await cache.get('k0')).toBeDefined();
    expect(await cache.get('k1')).toBeUndefined();
    expect(await cache.get('k4')).toBeDefined();
    await cache.set('k4', Buffer.alloc(10));
    expect((await cache.get('k4'))?.length).toBe(900);
  });
});

describe('DiskSpanCache write coalescing and length hints', () => {
  it('sets of one key while a write runs collapse into one write of the longest value', async () => {
    dir = await mkdtemp(join(tmpdir(), 'clip-disk-cache-'));
    const cache = new DiskSpanCache(dir, 1 << 20);
    const sets = [10, 20, 30, 25].map((length) => cache.set('k', Buffer.alloc(length, length)));
    await cache.flush();
    await Promise.all(sets);
    expect((await cache.get('k'))?.length).toBe(30);
    expect((await files(dir)).length).toBe(1);
  });

  it('with a write delay, values set meanwhile are written once; flush ends the wait', async () => {
    dir = await mkdtemp(join(tmpdir(), 'clip-disk-cache-'));
    const cache = new DiskSpanCache(dir, 1 << 20, { writeDelayMs: 60_000 });
    const first = cache.set('k', Buffer.alloc(10, 1));
    await new Promise((resolve) => setTimeout(resolve, 5));
    void cache.set('k', Buffer.alloc(40, 2));
    expect(await files(dir)).toEqual([]);
    const started = Date.now();
    await cache.flush();
    await first;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await cache.get('k'))?.equals(Buffer.alloc(40, 2))).toBe(true);
  });

  it("a delete waits for the key's queued writes, so it is not undone by them", async () => {
    dir = await mkdtemp(join(tmpdir(), 'clip-disk-cache-'));
    const cache = new DiskSpanCache(dir, 1 << 20);
    void cache.set('k', Buffer.alloc(10));
    void cache.set('k', Buffer.alloc(20));
    await cache.delete('k');
    await cache.flush();
    expect(await cache.get('k')).toBeUndefined();
  });

  it('get with minLength misses an entry known to be shorter without reading it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'clip-disk-cache-'));
    const cache = new DiskSpanCache(dir, 1 << 20);
    await cache.set('k', Buffer.alloc(100, 1));
    expect(await cache.get('k', 101)).toBeUndefined();
    expect((await cache.get('k', 100))?.length).toBe(100);
    expect(await cache.get('missing', 1)).toBeUndefined();
  });
});

describe('MemorySpanCache', () => {
  it('charges a view of a larger buffer (a growing partial span) for its whole backing store', () => {
    const cache = new MemorySpanCache(1 << 20);
    cache.set('a', Buffer.alloc(100_000).subarray(0, 10_000));
    expect(cache.bytes).toBe(100_000);
  });

  it('is bounded in bytes and keeps the longer of two blocks', () => {
    const cache = new MemorySpanCache(1000);
    cache.set('a', Buffer.alloc(600));
    cache.set('a', Buffer.alloc(100));
    expect(cache.get('a')?.length).toBe(600);
    cache.set('b', Buffer.alloc(600));
    expect(cache.get('a')).toBeUndefined();
    expect(cache.bytes).toBeLessThanOrEqual(1000);
  });
});

describe('DiskSpanCache directory deleted under it', () => {
  it('makes the directory again and keeps caching', async () => {
    dir = await mkdtemp(join(tmpdir(), 'clip-disk-cache-'));
    const cache = new DiskSpanCache(join(dir, 'cache'), 1 << 20);
    await cache.set('a', Buffer.from('one'));
    await rm(join(dir, 'cache'), { recursive: true, force: true });
    await cache.set('b', Buffer.from('two'));
    expect((await cache.get('b'))?.toString()).toBe('two');
  });
});
