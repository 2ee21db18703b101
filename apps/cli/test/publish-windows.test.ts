// External checkpoint windows (archive v2.3) end to end: `clip publish` pushes the archive's
// tables and its windows blob (an extra artifact layer, in the storage repository); a fresh
// worker mounting by reference downloads only the tables, fetches each window by range, and
// reads the image byte for byte. A window corrupted in the registry is EIO with a log line
// naming the blob, never wrong bytes; an archive published with inline windows still mounts.
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PublishSummary } from '@clip/indexer';
import {
  buildFixture,
  type BuiltLayout,
  diffTrees,
  type FaultProxy,
  readTree,
  type RunningRegistry,
  skopeoInspectRaw,
  startFaultProxy,
  startRegistry,
  type Tree,
  umociUnpack,
} from '@clip/testkit';
import { removeAll, runCli, startMount, tempDir, type RunningMount, stopMounts } from './mount-harness.js';

const WINDOWS_MEDIA_TYPE = 'application/vnd.clip.windows.v1';
const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const MiB = 1024 * 1024;

let work: string;
let registry: RunningRegistry;
let proxy: FaultProxy;
let layout: BuiltLayout;
let expected: Tree;
let rootfs: string;
const mounts: RunningMount[] = [];

function freshWorker(dir: string): void {
  delete process.env['CLIP_ARCHIVE_CACHE'];
  process.env['XDG_CACHE_HOME'] = dir;
}

/**
 * Blobs are shared by every repository of a registry: tests that damage the windows blob
 * publish with their own span size, so theirs is a blob nobody else uses.
 */
async function publish(repo: string, extra: string[] = [], spanSize = '256KiB'): Promise<PublishSummary> {
  const published = await runCli(
    [
      'publish',
      layout.ref,
      `${proxy.host}/${repo}:v1`,
      '--json',
      '--no-progress',
      '--index-concurrency',
      '1',
      '--span-size',
      spanSize,
      ...extra,
    ],
    { timeoutMs: 120_000 },
  );
  expect(published.stderr).not.toMatch(/clip: (internal )?error/);
  expect(published.code).toBe(0);
  return JSON.parse(published.stdout.toString()) as PublishSummary;
}

async function mountFresh(repo: string): Promise<RunningMount> {
  freshWorker(await tempDir('windows-cache'));
  const mount = await startMount(`${proxy.host}/${repo}:v1`, await tempDir('windows-mnt'));
  mounts.push(mount);
  return mount;
}

/** Range requests for blob `digest` seen by the proxy, as [start, end) pairs. */
function rangesOf(digest: string): Array<[number, number]> {
  return proxy.log
    .filter((r) => r.method === 'GET' && r.url.endsWith(`/blobs/${digest}`))
    .map((r) => {
      const match = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '');
      if (!match) throw new Error(`request for ${digest} without a byte range: ${r.range}`);
      return [Number(match[1]), Number(match[2]) + 1];
    });
}

beforeAll(async () => {
  work = await tempDir('publish-windows');
  registry = await startRegistry();
  proxy = await startFaultProxy({ upstream: { hostname: '127.0.0.1', port: registry.port } });
  layout = await buildFixture('large', join(work, 'layout'));
  rootfs = await umociUnpack(layout.umociRef, join(work, 'bundle'));
  const tree = await readTree(rootfs);
  for (const [path, node] of layout.expected) {
    const unpacked = tree.get(path);
    if (node.mtime === undefined && unpacked) delete unpacked.mtime;
  }
  expected = tree;
}, 120_000);

afterEach(() => stopMounts(mounts));

afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  await removeAll(work);
});

describe('external checkpoint windows', () => {
  it('publish pushes tables + windows blob; a fresh worker fetches windows by range and reads every byte', async () => {
    const repo = 'win/large';
    const summary = await publish(repo);
    const windows = summary.archive.windows!;
    expect(windows.bytes).toBeGreaterThan(0);
    // The artifact lists the windows blob after the archive (registry GC keeps it).
    const artifact = JSON.parse(
      (await skopeoInspectRaw(`docker://${registry.host}/${repo}@${summary.archive.artifactDigest}`)).toString(),
    ) as {
      layers: Array<{ mediaType: string; digest: string; size: number }>;
    };
    expect(artifact.layers).toEqual([
      expect.objectContaining({ digest: summary.archive.blobDigest, size: summary.archive.bytes }),
      expect.objectContaining({ mediaType: WINDOWS_MEDIA_TYPE, digest: windows.digest, size: windows.bytes }),
    ]);
    // The tables alone are what the worker downloads: smaller than the windows they point at.
    expect(summary.archive.bytes).toBeLessThan(windows.bytes);

    proxy.log.length = 0;
    const mount = await mountFresh(repo);
    expect(rangesOf(windows.digest)).toEqual([]);
    // One read in the middle of the big file: one window range, not the whole blob.
    const handle = await open(join(mount.mountpoint, 'data/big.bin'), 'r');
    const slice = Buffer.alloc(4096);
    try {
      await handle.read(slice, 0, slice.length, 5 * MiB + 3);
    } finally {
      await handle.close();
    }
    const first = rangesOf(windows.digest);
    expect(first.length).toBeGreaterThanOrEqual(1);
    for (const [start, end] of first) expect(end - start).toBeLessThan(windows.bytes);

    expect(diffTrees(expected, await readTree(mount.mountpoint))).toEqual([]);
    for (const [, end] of rangesOf(windows.digest)) expect(end).toBeLessThanOrEqual(windows.bytes);
    const metrics = await mounts.pop()!.stop();
    await removeAll(mount.mountpoint);
    expect(metrics?.['windowFetchBytes']).toBeGreaterThan(0);
    expect(metrics?.['digestMismatches']).toBe(0);

    // inspect says where the windows are; pull-archive's output is the v2.3 tables and mounts.
    const inspected = await runCli(['inspect', `${proxy.host}/${repo}:v1`]);
    expect(inspected.code).toBe(0);
    expect(inspected.stdout.toString()).toMatch(new RegExp(`windows\\s+external: \\d+ in blob ${windows.digest}`));
    expect(inspected.stdout.toString()).toMatch(/format v2\.3/);
    const pulled = join(work, 'pulled.clip');
    expect((await runCli(['pull-archive', `${proxy.host}/${repo}:v1`, '-o', pulled])).code).toBe(0);
    expect(sha256(await readFile(pulled))).toBe(summary.archive.blobDigest);
    const fromFile = await startMount(pulled, await tempDir('windows-file-mnt'));
    mounts.push(fromFile);
    const big = await readFile(join(fromFile.mountpoint, 'data/big.bin'));
    expect(big.equals(await readFile(join(rootfs, 'data/big.bin')))).toBe(true);
  });

  it('a corrupted window in the registry is EIO with a log naming the windows blob, never wrong bytes', async () => {
    const repo = 'win/corrupt';
    const summary = await publish(repo, [], '192KiB');
    const windows = summary.archive.windows!;
    // Flip a byte of the first stored window in the registry's own storage.
    const hex = windows.digest.slice('sha256:'.length);
    const file = join(registry.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const blob = await readFile(file);
    blob[0] = blob[0]! ^ 0x55;
    await writeFile(file, blob);

    const mount = await mountFresh(repo);
    // Before the first window: the first span needs none and reads fine.
    const head = await open(join(mount.mountpoint, 'data/big.bin'), 'r');
    try {
      const first = Buffer.alloc(1000);
      expect((await head.read(first, 0, first.length, 0)).bytesRead).toBe(first.length);
      expect(first.equals((await readFile(join(rootfs, 'data/big.bin'))).subarray(0, 1000))).toBe(true);
    } finally {
      await head.close();
    }
    await expect(readFile(join(mount.mountpoint, 'data/big.bin'))).rejects.toMatchObject({ code: 'EIO' });
    const log = mount.stderr();
    expect(log).toMatch(new RegExp(`msg="window digest mismatch".*windows_blob=${windows.digest}.*attempt=2`));
    expect(log).toMatch(/msg="read failed".*digest mismatch for window of layer sha256:[0-9a-f]{64} span \d+ \(windows blob/);
  });

  it('windows are read through a hosts.toml mirror like layers', async () => {
    const repo = 'win/mirrored';
    const summary = await publish(repo);
    const mirror = await startRegistry({ proxy: { remoteUrl: registry.url } });
    try {
      const hostsDir = join(work, 'certs.d');
      const dir = join(hostsDir, `${proxy.host.replace(':', '_')}_`);
      await mkdir(dir, { recursive: true });
      await writeFile(
        join(dir, 'hosts.toml'),
        `server = "http://${proxy.host}"\n\n[host."http://${mirror.host}"]\n  capabilities = ["pull", "resolve"]\n`,
      );
      freshWorker(await tempDir('windows-cache'));
      const mount = await startMount(`${proxy.host}/${repo}:v1`, await tempDir('windows-mnt'), ['--hosts-dir', hostsDir]);
      mounts.push(mount);
      expect((await readFile(join(mount.mountpoint, 'data/big.bin'))).equals(await readFile(join(rootfs, 'data/big.bin')))).toBe(true);
      expect(mirror.logs()).toContain(`GET /v2/${repo}/blobs/${summary.archive.windows!.digest}`);
    } finally {
      for (const mount of mounts.splice(0)) {
        await mount.stop();
        await removeAll(mount.mountpoint);
      }
      await mirror.stop();
    }
  });

  it('a windows blob missing from the registry is EIO with a log naming the blob, never wrong bytes', async () => {
    const repo = 'win/missing';
    const summary = await publish(repo, [], '320KiB');
    const hex = summary.archive.windows!.digest.slice('sha256:'.length);
    await rm(join(registry.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex), { recursive: true, force: true });
    const mount = await mountFresh(repo);
    await expect(readFile(join(mount.mountpoint, 'data/big.bin'))).rejects.toMatchObject({ code: 'EIO' });
    expect(mount.stderr()).toMatch(
      new RegExp(
        `msg="read failed".*window of layer sha256:[0-9a-f]{64} span \\d+ \\(windows blob ${summary.archive.windows!.digest} bytes \\d+-\\d+\\): layer not found`,
      ),
    );
    expect((await readFile(join(mount.mountpoint, 'data/small-before'))).toString()).toBe('before the big file\n');
  });

  it('an archive published with --inline-windows (v2.2) still mounts, and no windows blob is pushed', async () => {
    const repo = 'win/inline';
    const summary = await publish(repo, ['--inline-windows']);
    expect(summary.archive.windows).toBeUndefined();
    const mount = await mountFresh(repo);
    const inspected = await runCli(['inspect', `${proxy.host}/${repo}:v1`]);
    expect(inspected.stdout.toString()).toMatch(/format v2\.2/);
    expect(inspected.stdout.toString()).toMatch(/windows\s+inline/);
    expect(diffTrees(expected, await readTree(mount.mountpoint))).toEqual([]);
  });
});
