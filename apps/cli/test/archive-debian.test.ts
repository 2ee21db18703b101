// `clip archive` on the realistic image: Debian bookworm minbase + python3 unpacked by umoci
// (~10k entries: hardlinks, setuid/setgid, non-root owners, device nodes, ~700 symlinks; no
// xattrs in this image, though they are compared) is archived by the built cli, mounted from
// the file and from a local HTTP server and compared with the rootfs; one small file is read
// with only the head and that file's block fetched; python3 runs in a chroot of an overlayfs
// over the URL mount.
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDebianImage, diffTrees, type RangeServer, readTree, startRangeServer, type Tree, umociUnpack } from '@clip/testkit';
import { removeAll, run, runCli, sh, startMount, tempDir, type RunningMount } from './mount-harness.js';

/** `clip archive`'s default block size (uncompressed bytes per gzip member). */
const BLOCK = 1024 * 1024;
/** The HTTP source's first request (FIRST_READ_BYTES): it may reach past a shorter head. */
const FIRST_READ = 64 * 1024;

let work: string;
let rootfs: string;
let expected: Tree;
let archivePath: string;
let archiveSize: number;
/** Bytes before the DATA section: header, section table, tables, TABLES_DIGEST. */
let headLength: number;
let server: RangeServer | undefined;
let overlay: string | undefined;
const mounts: RunningMount[] = [];

async function mountArchive(location: string, name: string): Promise<RunningMount> {
  const mount = await startMount(location, await tempDir(`arch-deb-${name}`), ['--cache-dir', join(work, `cache-${name}`)]);
  mounts.push(mount);
  return mount;
}

async function unmount(mount: RunningMount): Promise<void> {
  mounts.splice(mounts.indexOf(mount), 1);
  await mount.stop();
  await removeAll(mount.mountpoint);
}

beforeAll(async () => {
  work = await tempDir('archive-debian');
  const debian = await buildDebianImage();
  rootfs = await umociUnpack(debian.umociRef, join(work, 'bundle'));
  expected = await readTree(rootfs, { concurrency: 4 });
  archivePath = join(work, 'debian.clip');
  const archived = await runCli(['archive', rootfs, '-o', archivePath], { timeoutMs: 600_000 });
  expect(archived.code, archived.stderr).toBe(0);
  archiveSize = (await stat(archivePath)).size;
  const info = await runCli(['inspect', archivePath, '--json']);
  expect(info.code, info.stderr).toBe(0);
  const report = JSON.parse(info.stdout.toString()) as { mode: string; archiveBytes: number; layers: Array<{ compressedSize: number }> };
  expect(report.mode).toBe('data');
  expect(report.layers).toHaveLength(1);
  headLength = report.archiveBytes - 32 - report.layers[0]!.compressedSize;
  server = await startRangeServer(new Map([['debian.clip', archivePath]]));
}, 900_000);

afterAll(async () => {
  if (overlay) await run('umount', ['-l', overlay]).catch(() => {});
  for (const mount of mounts.splice(0)) {
    await mount.stop().catch(() => undefined);
    await removeAll(mount.mountpoint);
  }
  await server?.close();
  await removeAll(work);
}, 120_000);

describe('clip archive of Debian + python3', () => {
  it('mounts from the local file exactly as umoci unpacks it', async () => {
    expect(expected.size).toBeGreaterThan(5000);
    const mount = await mountArchive(archivePath, 'file');
    const tree = await readTree(mount.mountpoint, { concurrency: 4 });
    expect(diffTrees(expected, tree)).toEqual([]);
    await unmount(mount);
  }, 600_000);

  it('mounts from an HTTP URL by range requests only, exactly as umoci unpacks it', async () => {
    server!.reset();
    const mount = await mountArchive(server!.url('debian.clip'), 'url');
    const tree = await readTree(mount.mountpoint, { concurrency: 4 });
    expect(diffTrees(expected, tree)).toEqual([]);
    await unmount(mount);
    expect(server!.stats.ranges.every((range) => range !== `0-${archiveSize - 1}`)).toBe(true);
    // Each block fetched at most once (the block cache), plus the head.
    expect(server!.stats.bytes).toBeLessThan(2 * archiveSize);
  }, 600_000);

  it('reads /etc/debian_version on a fresh URL mount fetching only the head and its block', async () => {
    server!.reset();
    const mount = await mountArchive(server!.url('debian.clip'), 'one');
    const read = await sh(`cat '${mount.mountpoint}/etc/debian_version'`);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).toBe(await readFile(join(rootfs, 'etc/debian_version'), 'utf8'));
    await unmount(mount);
    const { requests, bytes, ranges } = server!.stats;
    const data = ranges.filter((range) => Number(range.split('-')[0]) >= headLength);
    console.log(
      `debian.clip: ${archiveSize} bytes, head ${headLength}; one-file read: ${requests} requests, ${bytes} bytes (${ranges.join(', ')})`,
    );
    // The head (first read, then the rest of the tables), then one range for the file's block.
    expect(data).toHaveLength(1);
    const [start, end] = data[0]!.split('-').map(Number) as [number, number];
    // A compressed block of incompressible bytes is a little longer than BLOCK (gzip framing).
    expect(end - start + 1).toBeLessThanOrEqual(BLOCK + 1024);
    expect(requests).toBeLessThanOrEqual(4);
    expect(bytes).toBeLessThanOrEqual(Math.max(headLength, FIRST_READ) + BLOCK + 1024);
    expect(bytes).toBeLessThan(archiveSize / 4);
  }, 120_000);

  it('runs python3 in a chroot of an overlayfs over the URL mount', async () => {
    const mount = await mountArchive(server!.url('debian.clip'), 'chroot');
    overlay = join(work, 'merged');
    const upper = join(work, 'upper');
    const workdir = join(work, 'ovl-work');
    for (const dir of [overlay, upper, workdir]) await mkdir(dir, { recursive: true });
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${mount.mountpoint},upperdir=${upper},workdir=${workdir}`, overlay]);
    const result = await sh(`chroot '${overlay}' /usr/bin/python3 -c 'import json; print(1)'`, 120_000);
    expect(result).toMatchObject({ code: 0, stdout: '1\n' });
    await run('umount', [overlay]);
    overlay = undefined;
    await unmount(mount);
  }, 180_000);
});
