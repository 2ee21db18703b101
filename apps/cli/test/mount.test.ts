// `clip mount` end to end: real registry, real indexer output, the built cli serving a real
// FUSE mount in a child process, compared against umoci's unpacked tree.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  childExit,
  diffTrees,
  FIXTURE_NAMES,
  type FixtureName,
  freePort,
  readTree,
  type RunningRegistry,
  startRegistry,
} from '@clip/testkit';
import {
  prepareFixture,
  processGone,
  removeAll,
  runCli,
  servingPid,
  sh,
  startMount,
  tempDir,
  type PreparedImage,
  type RunningMount,
  stopMounts,
} from './mount-harness.js';

const FIXTURES = FIXTURE_NAMES.filter((name): name is Exclude<FixtureName, 'multiarch'> => name !== 'multiarch');

let work: string;
let storageDir: string;
let registry: RunningRegistry | undefined;
let registryPort: number;
const images = new Map<string, PreparedImage>();
const mounts: RunningMount[] = [];

async function newMount(image: PreparedImage, args: string[] = []): Promise<RunningMount> {
  const mountpoint = await tempDir('mnt');
  const mount = await startMount(image.archive, mountpoint, args);
  mounts.push(mount);
  return mount;
}

beforeAll(async () => {
  work = await tempDir('mount-test');
  storageDir = join(work, 'registry-storage');
  registryPort = await freePort();
  registry = await startRegistry({ storageDir, port: registryPort });
  for (const name of FIXTURES) images.set(name, await prepareFixture(registry, work, name));
});

afterEach(() => stopMounts(mounts));

afterAll(async () => {
  await registry?.stop();
  await removeAll(work);
});

describe('clip mount', () => {
  it.each(FIXTURES)('serves fixture %s exactly as umoci unpacks it', async (name) => {
    const image = images.get(name)!;
    const mount = await newMount(image, ['--cache-dir', await tempDir('cache')]);
    const tree = await readTree(mount.mountpoint);
    expect(diffTrees(image.expected, tree)).toEqual([]);
    // Hardlinks report one inode.
    for (const [path, node] of image.expected) {
      if (!node.hardlinkGroup || node.hardlinkGroup === path) continue;
      const inodes = await sh(`stat -c %i '${mount.mountpoint}${node.hardlinkGroup}' '${mount.mountpoint}${path}' | sort -u | wc -l`);
      expect(inodes.stdout.trim()).toBe('1');
    }
  });

  it('fetches at most one span per layer touched to read one small file', async () => {
    const image = images.get('large')!;
    const mount = await newMount(image);
    const small = [...image.expected].find(([, node]) => node.type === 'file' && (node.size ?? 0) > 0 && (node.size ?? 0) < 4096);
    expect(small).toBeDefined();
    const [path, node] = small!;
    const out = await sh(`sha256sum '${mount.mountpoint}${path}'`);
    expect(out.stdout.split(' ')[0]).toBe(node.sha256);
    const metrics = await mount.stop();
    expect(metrics?.['fetchRequests']).toBeGreaterThan(0);
    expect(metrics?.['fetchRequests']).toBeLessThanOrEqual(1);
  });

  it('lets a second mount reuse what the first put in a shared disk cache', async () => {
    const image = images.get('large')!;
    const cache = await tempDir('shared-cache');
    const files = [...image.expected].filter(([, node]) => node.type === 'file').map(([path]) => path);
    const first = await newMount(image, ['--cache-dir', cache]);
    const read = (mount: RunningMount) => sh(`cd '${mount.mountpoint}' && cat ${files.map((f) => `'.${f}'`).join(' ')} | sha256sum`);
    const firstSum = await read(first);
    const firstMetrics = await first.stop();
    expect(firstMetrics?.['fetchRequests']).toBeGreaterThan(0);
    // cat reads sequentially: the span after each read is fetched ahead.
    expect(firstMetrics?.['readaheadSpans']).toBeGreaterThan(0);
    const second = await newMount(image, ['--cache-dir', cache]);
    expect((await read(second)).stdout).toBe(firstSum.stdout);
    const secondMetrics = await second.stop();
    expect(secondMetrics?.['fetchRequests']).toBe(0);
    expect(secondMetrics?.['diskCacheHits']).toBeGreaterThan(0);
  });

  it('answers EIO while the registry is down and recovers when it is back, staying mounted', async () => {
    const image = images.get('large')!;
    const mount = await newMount(image, ['--read-timeout', '3', '--retries', '1']);
    const files = [...image.expected].filter(([, node]) => node.type === 'file' && (node.size ?? 0) > 0);
    const [path, node] = files[files.length - 1]!;
    await registry!.stop();
    registry = undefined;
    const failed = await sh(`cat '${mount.mountpoint}${path}' > /dev/null`, 120_000);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/Input\/output error/);
    expect(mount.alive()).toBe(true);
    registry = await startRegistry({ storageDir, port: registryPort });
    // The mount answers a range that just failed with EIO for a moment (FAILED_RANGE_MS in
    // fuse-ops.ts, so the kernel's retry of a failed page does not wait out another timeout):
    // poll until the read goes through, within a generous bound.
    let ok = await sh(`sha256sum '${mount.mountpoint}${path}'`);
    for (let attempt = 0; ok.code !== 0 && attempt < 20; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      ok = await sh(`sha256sum '${mount.mountpoint}${path}'`);
    }
    expect(ok.stdout.split(' ')[0]).toBe(node.sha256);
    expect(mount.alive()).toBe(true);
    expect(mount.stderr()).toMatch(/read failed/);
  });

  it('exits cleanly, with its metrics, when the mount is detached from outside', async () => {
    const image = images.get('basic')!;
    const mount = await newMount(image);
    expect((await sh(`umount '${mount.mountpoint}'`)).code).toBe(0);
    const { code } = await childExit(mount.child);
    expect(code).toBe(0);
    expect(mount.stderr()).toMatch(/msg="unmounting" .*reason="detached from outside"/);
    expect(mount.stderr()).toMatch(/^\{"metrics":/m);
  });

  it('records first reads, prefetches a list, and serves Prometheus metrics', async () => {
    const image = images.get('basic')!;
    const dir = await tempDir('record');
    const record = join(dir, 'record.txt');
    const port = await freePort();
    const mount = await newMount(image, ['--record', record, '--metrics', `127.0.0.1:${port}`]);
    const files = [...image.expected]
      .filter(([, node]) => node.type === 'file' && (node.size ?? 0) > 0)
      .map(([p]) => p)
      .slice(0, 3);
    for (const file of files) await sh(`cat '${mount.mountpoint}${file}' > /dev/null`);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/^clip_fetch_requests_total [1-9]/m);
    expect(text).toMatch(/^clip_read_latency_seconds_count [1-9]/m);
    await mount.stop();
    // Whole files were read: each line is the path and one range covering the file.
    expect((await readFile(record, 'utf8')).trim().split('\n')).toEqual(
      files.map((file) => `${file}\t0-${image.expected.get(file)!.size}`),
    );

    const prefetched = await newMount(image, ['--prefetch', record]);
    // Wait (bounded) for the background prefetch to finish, then reading fetches nothing new.
    for (let i = 0; i < 600 && !/prefetch finished/.test(prefetched.stderr()); i++) await new Promise((r) => setTimeout(r, 100));
    expect(prefetched.stderr()).toMatch(/prefetch finished" files=3 failed=0/);
    const before = prefetched.stderr();
    for (const file of files) await sh(`cat '${prefetched.mountpoint}${file}' > /dev/null`);
    const metrics = await prefetched.stop();
    expect(before).toMatch(/prefetch finished/);
    expect(metrics?.['prefetchedFiles']).toBe(3);
    expect(metrics?.['readErrors']).toBe(0);
    await removeAll(dir);
  }, 180_000);
});

describe('clip mount refuses bad mountpoints', () => {
  it('missing, not a directory, busy', async () => {
    const image = images.get('basic')!;
    const dir = await tempDir('bad-mnt');
    const missing = await runCli(['mount', image.archive, join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/does not exist/);

    const file = join(dir, 'file');
    await writeFile(file, 'x');
    const notDir = await runCli(['mount', image.archive, file]);
    expect(notDir.code).toBe(1);
    expect(notDir.stderr).toMatch(/not a directory/);

    const busy = join(dir, 'busy');
    await mkdir(busy);
    const first = await startMount(image.archive, busy);
    mounts.push(first);
    const second = await runCli(['mount', image.archive, busy]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/busy/);
    expect(first.alive()).toBe(true);
    await first.stop();
    await removeAll(dir);
  });

  it('explains a stale FUSE mount and cleans it with --force-unmount-stale', async () => {
    const image = images.get('basic')!;
    const mountpoint = await tempDir('stale');
    const crashed = await startMount(image.archive, mountpoint);
    // Both processes die at once (the supervisor alone dying makes its server unmount cleanly):
    // the supervisor is stopped first so that it cannot start another server.
    crashed.child.kill('SIGSTOP');
    const server = servingPid(crashed);
    process.kill(server, 'SIGKILL');
    crashed.child.kill('SIGKILL');
    await new Promise((resolve) => crashed.child.once('exit', resolve));
    await processGone(server);
    try {
      const refused = await runCli(['mount', image.archive, mountpoint]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/stale FUSE mount.*fusermount3 -u/);
      const forced = await startMount(image.archive, mountpoint, ['--force-unmount-stale']);
      mounts.push(forced);
      expect((await sh(`ls '${mountpoint}'`)).code).toBe(0);
    } finally {
      // Whatever failed above, leave no stale mount behind.
      await sh(`fusermount3 -uz '${mountpoint}' 2>/dev/null; true`);
    }
  });
});
