// Load and disk-cache sabotage on a real `clip mount` (real registry, built cli):
// - 64 concurrent readers doing random reads; the mount's RSS (VmRSS) stays within the
//   memory-cache budget plus a fixed overhead; every byte is correct.
// - the disk cache is deleted, truncated, corrupted and filled with junk while reads run,
//   and put on a full file system: every byte still correct, the mount never crashes.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, open, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type RunningRegistry } from '@clip/testkit';
import { removeAll, servingPid, startMount, tempDir, type RunningMount } from './mount-harness.js';
import { indexWithCli, prepareReliabilityImage, rssBytes, runRandomReads, type ReliabilityImage } from './reliability-harness.js';

const run = promisify(execFile);
const MiB = 2 ** 20;
/** Smaller than the image (about 40 MiB decoded), so the cache churns. */
export const MEMORY_CACHE = 16 * MiB;
/**
 * Node itself (about 75 MiB at mount), V8 heap headroom, undici, the FUSE addon's thread, in-flight
 * spans and read buffers, on top of the memory cache. Measured: a plateau of about 170 MiB with a
 * 16 MiB cache and 64 readers, flat after 20 s (no growth: not a leak).
 */
export const RSS_OVERHEAD = 200 * MiB;

let work: string;
let registry: RunningRegistry | undefined;
let image: ReliabilityImage;
let archive: string;
const mounts: RunningMount[] = [];
const tmpfsMounts: string[] = [];

beforeAll(async () => {
  work = await tempDir('load');
  registry = await startRegistry();
  image = await prepareReliabilityImage(work, registry.host);
  archive = join(work, 'image.clip');
  await indexWithCli(image.layoutRef, archive, `${registry.host}/reliability/image:reliability`);
}, 240_000);

afterEach(async () => {
  for (const mount of mounts.splice(0)) {
    if (mount.child.exitCode !== null && mount.child.exitCode !== 0) console.log('mount died:', mount.stderr().slice(-3000));
    await mount.stop();
    await removeAll(mount.mountpoint);
  }
  for (const dir of tmpfsMounts.splice(0)) await run('umount', ['-l', dir]).catch(() => {});
});

afterAll(async () => {
  await registry?.stop();
  await removeAll(work);
});

async function newMount(args: string[]): Promise<RunningMount> {
  const mount = await startMount(archive, await tempDir('load-mnt'), args);
  mounts.push(mount);
  return mount;
}

describe('clip mount under load', () => {
  it('64 concurrent random readers: every byte correct, RSS within the memory cache budget + overhead', async () => {
    const mount = await newMount(['--memory-cache', `${MEMORY_CACHE / MiB}MiB`]);
    // The serving process (the supervisor, mount.child, never holds the caches).
    const pid = servingPid(mount);
    let peak = await rssBytes(pid);
    const timeline: number[] = [];
    let ticks = 0;
    const sampler = setInterval(() => {
      rssBytes(pid).then(
        (rss) => {
          peak = Math.max(peak, rss);
          if (ticks++ % 20 === 0) timeline.push(Math.round(rss / MiB));
        },
        () => {},
      );
    }, 100);
    let report;
    try {
      report = await runRandomReads(work, {
        mountpoint: mount.mountpoint,
        rootfs: image.rootfs,
        files: image.files,
        reads: 1_000_000,
        durationMs: 30_000,
        concurrency: 64,
        maxLength: 256 * 1024,
        seed: 64,
      });
    } finally {
      clearInterval(sampler);
    }
    console.log(
      'load run',
      JSON.stringify({
        report,
        peakRssMiB: Math.round(peak / MiB),
        rssTimelineMiB: timeline,
        budgetMiB: (MEMORY_CACHE + RSS_OVERHEAD) / MiB,
      }),
    );
    expect(report.wrong, report.wrongSamples.join('\n')).toBe(0);
    expect(report.eio).toBe(0);
    expect(report.otherErrors).toEqual({});
    expect(report.correct).toBe(report.attempted);
    expect(report.attempted).toBeGreaterThan(1000);
    expect(peak).toBeLessThan(MEMORY_CACHE + RSS_OVERHEAD);
    expect(mount.alive()).toBe(true);
  }, 120_000);
});

/** Every .blk file under the cache directory. */
async function cacheFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const shard of await readdir(dir).catch(() => [] as string[])) {
    for (const name of await readdir(join(dir, shard)).catch(() => [] as string[])) out.push(join(dir, shard, name));
  }
  return out;
}

/** One random act of sabotage on the cache directory; returns its name. */
async function sabotage(dir: string, random: () => number): Promise<string> {
  const files = await cacheFiles(dir);
  const pick = () => files[Math.floor(random() * files.length)];
  const roll = random();
  const file = pick();
  if (roll < 0.05) {
    // The mount may be writing into it meanwhile: a partial removal is sabotage too.
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    return 'delete-all';
  }
  if (!file) return 'none';
  if (roll < 0.3) {
    await rm(file, { force: true });
    return 'delete';
  }
  if (roll < 0.55) {
    const size = (await stat(file).catch(() => undefined))?.size ?? 0;
    await truncate(file, Math.floor(random() * size)).catch(() => {});
    return 'truncate';
  }
  if (roll < 0.85) {
    const handle = await open(file, 'r+').catch(() => undefined);
    if (handle) {
      const size = (await handle.stat()).size;
      const at = Math.floor(random() * Math.max(1, size));
      await handle.write(Buffer.from([Math.floor(random() * 256)]), 0, 1, at).catch(() => {});
      await handle.close();
    }
    return 'corrupt';
  }
  if (roll < 0.92) {
    // A whole, valid entry of another block under this block's name.
    const other = pick();
    if (other && other !== file) await copyFile(other, file).catch(() => {});
    return 'swap-entries';
  }
  await writeFile(file, Buffer.alloc(Math.floor(random() * 70_000), 0x5a)).catch(() => {});
  return 'replace-with-junk';
}

describe('disk cache sabotage', () => {
  it('deleted, truncated, corrupted and replaced cache files while reads run: every byte correct, no crash', async () => {
    const cacheDir = join(work, 'sabotaged-cache');
    // No memory cache: every read that misses the page cache goes through the disk cache.
    const mount = await newMount(['--memory-cache', '0', '--cache-dir', cacheDir]);
    // Fill the cache first, so sabotage has something to hit.
    await runRandomReads(work, {
      mountpoint: mount.mountpoint,
      rootfs: image.rootfs,
      files: image.files,
      reads: 800,
      durationMs: 20_000,
      concurrency: 8,
      maxLength: 64 * 1024,
      seed: 10,
    });
    // A second mount on the same (sabotaged) cache directory sees no page cache of the first one.
    const second = await newMount(['--memory-cache', '0', '--cache-dir', cacheDir]);
    let seed = 99;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
    const acts: Record<string, number> = {};
    let stopping = false;
    const saboteur = (async () => {
      while (!stopping) {
        const act = await sabotage(cacheDir, random);
        acts[act] = (acts[act] ?? 0) + 1;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    let report;
    try {
      report = await runRandomReads(work, {
        mountpoint: second.mountpoint,
        rootfs: image.rootfs,
        files: image.files,
        reads: 3000,
        durationMs: 40_000,
        concurrency: 16,
        maxLength: 128 * 1024,
        seed: 11,
      });
    } finally {
      stopping = true;
      await saboteur;
    }
    const metrics = await second.stop();
    console.log(
      'sabotage run',
      JSON.stringify({ report, acts, diskCacheCorrupt: metrics?.diskCacheCorrupt, diskCacheHits: metrics?.diskCacheHits }),
    );
    expect(report.wrong, report.wrongSamples.join('\n')).toBe(0);
    expect(report.eio).toBe(0);
    expect(report.otherErrors).toEqual({});
    expect(report.correct).toBe(report.attempted);
    expect(acts['corrupt'] ?? 0).toBeGreaterThan(0);
    expect(metrics?.diskCacheCorrupt ?? 0).toBeGreaterThan(0);
    expect(mount.alive()).toBe(true);
  }, 150_000);

  it('a full disk under the cache: reads still correct, no crash', async () => {
    const cacheDir = join(work, 'full-cache');
    await mkdir(cacheDir, { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', cacheDir]);
    tmpfsMounts.push(cacheDir);
    // Fill it up with something that is not ours.
    await writeFile(join(cacheDir, 'filler'), Buffer.alloc(1024 * 1024 - 8192)).catch(() => {});
    const mount = await newMount(['--memory-cache', '0', '--cache-dir', cacheDir, '--cache-size', '64MiB']);
    const report = await runRandomReads(work, {
      mountpoint: mount.mountpoint,
      rootfs: image.rootfs,
      files: image.files,
      reads: 1000,
      durationMs: 30_000,
      concurrency: 8,
      maxLength: 128 * 1024,
      seed: 12,
    });
    console.log('full disk run', JSON.stringify(report));
    expect(report.wrong, report.wrongSamples.join('\n')).toBe(0);
    expect(report.eio).toBe(0);
    expect(report.correct).toBe(report.attempted);
    expect(mount.alive()).toBe(true);
  }, 90_000);
});
