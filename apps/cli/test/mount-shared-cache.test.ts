// Issue #19 part 4 end to end: two real `clip mount`s of two images share one --cache-dir on
// a 20 MiB file system with an 8 MiB --cache-size (each process used to count only its own
// writes: 12 MB were left), then with the 4 GiB default on that disk (it used to fill up and
// never evict). Every byte read through both mounts is compared.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createArchive } from '@clip/indexer';
import { writeRawLayout } from '@clip/testkit';
import { tar } from '@clip/testkit';
import { startRegistry, type RunningRegistry } from '@clip/testkit';
import { skopeoCopy } from '@clip/testkit';
import { removeAll, sh, startMount, tempDir, type RunningMount } from './mount-harness.js';

const run = promisify(execFile);
const MiB = 2 ** 20;
const FILES = 6;
const FILE_SIZE = 2 * MiB;

let work: string;
let registry: RunningRegistry | undefined;
const images: Array<{ archive: string; hashes: string[] }> = [];
let fs: string | undefined;
const mounts: RunningMount[] = [];

/** Bytes of cache entries under dir (the shared counter and lock files excluded). */
async function entryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const shard of await readdir(dir)) {
    if (shard.startsWith('.')) continue;
    for (const name of await readdir(join(dir, shard)).catch(() => [] as string[])) total += (await stat(join(dir, shard, name))).size;
  }
  return total;
}

/**
 * entryBytes taken while holding the cache's own lock (`.lock`, cache-ledger.ts), so no write
 * or eviction runs during the walk: a walk without it can count an entry an eviction then
 * deletes and also the entry written after it, more than was ever there at once. 0 when the
 * lock is busy or the directory is not there yet.
 */
async function lockedEntryBytes(dir: string): Promise<number> {
  const lock = join(dir, '.lock');
  const handle = await open(lock, 'wx').catch(() => undefined);
  if (!handle) return 0;
  try {
    await handle.close();
    return await entryBytes(dir).catch(() => 0);
  } finally {
    await unlink(lock).catch(() => {});
  }
}

beforeAll(async () => {
  work = await tempDir('shared-cache');
  registry = await startRegistry();
  for (const name of ['one', 'two']) {
    const files = Array.from({ length: FILES }, () => randomBytes(FILE_SIZE));
    const layer = tar([{ name: 'data/', typeflag: '5' }, ...files.map((data, i) => ({ name: `data/f${i}`, data }))]);
    const layout = await writeRawLayout(join(work, `${name}-layout`), 'v1', [layer]);
    const storageRef = `${registry.host}/shared/${name}:v1`;
    await skopeoCopy(layout.ref, `docker://${storageRef}`);
    await mkdir(join(work, name));
    const archive = join(work, name, `${name}.clip`);
    await createArchive({ source: layout.ref, storageRef, output: archive, spanSize: 256 * 1024, workers: false });
    images.push({ archive, hashes: files.map((data) => createHash('sha256').update(data).digest('hex')) });
  }
}, 120_000);

afterEach(async () => {
  for (const mount of mounts.splice(0)) {
    await mount.stop();
    await removeAll(mount.mountpoint);
  }
  if (fs) {
    await run('umount', ['-l', fs]).catch(() => {});
    await removeAll(fs);
    fs = undefined;
  }
});

afterAll(async () => {
  await registry?.stop();
  await removeAll(work);
});

/** Reads everything through both mounts twice; returns the most cache entry bytes seen meanwhile. */
async function readBothTwice(cache: string, args: string[]): Promise<number> {
  for (const image of images)
    mounts.push(await startMount(image.archive, await tempDir('mnt'), ['--cache-dir', cache, '--memory-cache', '0', ...args]));
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await lockedEntryBytes(cache));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const stopped: Array<{ mount: RunningMount; metrics: Record<string, number> | undefined }> = [];
  try {
    for (let pass = 0; pass < 2; pass++) {
      // Both mounts read all their files at once.
      const outs = await Promise.all(
        mounts.map((mount) =>
          sh(`cd '${mount.mountpoint}/data' && for i in $(seq 0 ${FILES - 1}); do sha256sum f$i | cut -d' ' -f1; done`),
        ),
      );
      outs.forEach((out, i) => {
        expect(out.stdout.trim().split('\n')).toEqual(images[i]!.hashes);
      });
    }
    // Stop both before asserting on them, so a failure cannot leave one mounted.
    for (const mount of mounts.splice(0)) {
      stopped.push({ mount, metrics: await mount.stop() });
      await removeAll(mount.mountpoint);
    }
  } finally {
    sampling = false;
    await sampler;
  }
  for (const { mount, metrics } of stopped) {
    expect(metrics?.['readErrors']).toBe(0);
    expect(mount.stderr()).not.toMatch(/disk cache write failed/);
  }
  return Math.max(peak, await entryBytes(cache));
}

describe('one disk cache shared by two mounts', () => {
  it('keeps an 8 MiB --cache-size across both processes on a 20 MiB disk', async () => {
    fs = await tempDir('cache-fs');
    await run('mount', ['-t', 'tmpfs', '-o', `size=${20 * MiB}`, 'clip-cache-test', fs]);
    const cache = join(fs, 'cache');
    const peak = await readBothTwice(cache, ['--cache-size', '8MiB']);
    const bytes = await entryBytes(cache);
    console.info(`two mounts, 8 MiB bound, 24 MiB read: at most ${peak} bytes of cache entries, ${bytes} at the end`);
    expect(peak).toBeLessThanOrEqual(8 * MiB);
    expect(bytes).toBeGreaterThan(2 * MiB);
  }, 120_000);

  it('evicts when the default 4 GiB bound meets a 20 MiB disk', async () => {
    fs = await tempDir('cache-fs');
    await run('mount', ['-t', 'tmpfs', '-o', `size=${20 * MiB}`, 'clip-cache-test', fs]);
    const cache = join(fs, 'cache');
    const peak = await readBothTwice(cache, []);
    const bytes = await entryBytes(cache);
    console.info(`two mounts, 4 GiB bound, 20 MiB disk: at most ${peak} bytes of cache entries, ${bytes} at the end`);
    expect(bytes).toBeGreaterThan(2 * MiB);
  }, 120_000);
});
