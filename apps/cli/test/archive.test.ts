// `clip archive` (data-carrying archives) end to end: a directory with every file type, the
// same tree as a tar, and a umoci-unpacked fixture are archived by the built cli, mounted
// from a file and from a local HTTP server, and compared with the source tree.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildFixture, diffTrees, type RangeServer, readTree, startRangeServer, type Tree, umociUnpack } from '@clip/testkit';
import { removeAll, runCli, sh, startMount, tempDir, type RunningMount, stopMounts } from './mount-harness.js';

const BLOCK = 64 * 1024;
let work: string;
let src: string;
let expected: Tree;
let dirArchive: string;
let server: RangeServer;
const mounts: RunningMount[] = [];

async function mountArchive(location: string): Promise<RunningMount> {
  const mountpoint = await tempDir('arch-mnt');
  const mount = await startMount(location, mountpoint);
  mounts.push(mount);
  return mount;
}

async function archive(input: string, output: string, args: string[] = []): Promise<void> {
  const result = await runCli(['archive', input, '-o', output, '--block-size', String(BLOCK), ...args]);
  expect(result.code, result.stderr).toBe(0);
}

/** Every kind of node: setuid/setgid/sticky, hardlinks, symlinks, devices, fifo, xattrs, ns mtimes, multi-block files. */
async function buildSourceTree(dir: string): Promise<void> {
  const script = [
    `cd '${dir}'`,
    'mkdir -p bin etc/sub empty-dir "sp ace/日本"',
    'printf "hello\\n" > etc/small.txt',
    'head -c 300000 /dev/urandom > bin/big',
    'head -c 70000 /dev/zero | tr "\\0" a > etc/one-block-plus',
    ': > etc/empty',
    'printf "#!/bin/sh\\necho hi\\n" > bin/tool && chmod 4755 bin/tool',
    'ln bin/tool bin/tool-link && ln bin/big etc/sub/big-link',
    'ln -s ../etc/small.txt bin/small-link && ln -s /nowhere dangling',
    'mknod chr c 1 3 && mknod blk b 7 0 && mkfifo fifo',
    'chmod 2750 etc/sub && chmod 1777 empty-dir && chown 1000:1000 etc/small.txt && chown 12:34 bin/big',
    'setfattr -n user.note -v hello etc/small.txt && setfattr -n user.bin -v 0x00ff10 bin/big && setfattr -n user.dir -v yes etc',
    'printf x > "sp ace/日本/file"',
    "touch -h -d '2021-03-04 05:06:07.123456789' etc/small.txt dangling bin/big",
  ].join(' && ');
  const result = await sh(script);
  expect(result.code, result.stderr).toBe(0);
}

beforeAll(async () => {
  work = await tempDir('archive-test');
  src = join(work, 'src');
  await sh(`mkdir -p '${src}'`);
  await buildSourceTree(src);
  expected = await readTree(src);
  dirArchive = join(work, 'dir.clip');
  await archive(src, dirArchive);
  server = await startRangeServer(new Map([['dir.clip', dirArchive]]));
}, 120_000);

afterEach(() => stopMounts(mounts));

afterAll(async () => {
  await server?.close();
  await removeAll(work);
});

describe('clip archive (data-carrying)', () => {
  it('mounts from a local file exactly as the source directory', async () => {
    const mount = await mountArchive(dirArchive);
    expect(diffTrees(expected, await readTree(mount.mountpoint))).toEqual([]);
    // The archive keeps nanoseconds and the FUSE addon serves them: both stat lines are the same.
    const times = await sh(`stat -c %y '${mount.mountpoint}/etc/small.txt' '${src}/etc/small.txt' | sort -u`);
    expect(times.stdout.trim()).toMatch(/^2021-03-04 05:06:07\.123\d{6} [+-]\d{4}$/);
  });

  it('mounts from an HTTP URL by range requests only', async () => {
    server.reset();
    const mount = await mountArchive(server.url('dir.clip'));
    expect(diffTrees(expected, await readTree(mount.mountpoint))).toEqual([]);
    const size = (await stat(dirArchive)).size;
    expect(server.stats.ranges.every((range) => range !== `0-${size - 1}`)).toBe(true);
    // Each block fetched at most once (the block cache), plus the head.
    expect(server.stats.bytes).toBeLessThan(2 * size);
  });

  it('reads one small file over HTTP fetching only the head and its block', async () => {
    const size = (await stat(dirArchive)).size;
    expect(size).toBeGreaterThan(4 * 64 * 1024);
    server.reset();
    const result = await runCli(['cat', server.url('dir.clip'), '/etc/small.txt']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.toString()).toBe('hello\n');
    expect(server.stats.requests).toBeLessThanOrEqual(2);
    expect(server.stats.bytes).toBeLessThan(64 * 1024 + BLOCK);
    expect(server.stats.bytes).toBeLessThan(size / 2);
  });

  it('is deterministic', async () => {
    const again = join(work, 'again.clip');
    await archive(src, again);
    expect((await readFile(again)).equals(await readFile(dirArchive))).toBe(true);
  });

  it('archives the same tree from a tar to the same file tree', async () => {
    const tar = join(work, 'rootfs.tar');
    const packed = await sh(`tar --xattrs --xattrs-include='*' --numeric-owner -C '${src}' -cpf '${tar}' .`);
    expect(packed.code, packed.stderr).toBe(0);
    const fromTar = join(work, 'tar.clip');
    await archive(tar, fromTar);
    const mount = await mountArchive(fromTar);
    // tar keeps whole-second mtimes for directories it only implies; compare everything else.
    expect(diffTrees(expected, await readTree(mount.mountpoint), { ignore: ['mtime'] })).toEqual([]);
  });

  it('archives a umoci-unpacked fixture rootfs', async () => {
    const layout = await buildFixture('special', join(work, 'special-layout'));
    const rootfs = await umociUnpack(layout.umociRef, join(work, 'special-bundle'));
    const out = join(work, 'special.clip');
    await archive(rootfs, out);
    const mount = await mountArchive(out);
    expect(diffTrees(await readTree(rootfs), await readTree(mount.mountpoint))).toEqual([]);
  });

  it('inspect names the mode', async () => {
    const result = await runCli(['inspect', dirArchive, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout.toString()) as { mode: string; version: string; metadata: { storage?: unknown } };
    expect(report).toMatchObject({ mode: 'data', version: '2.2' });
    expect(report.metadata.storage).toBeUndefined();
  });

  it('refuses a truncated archive with a typed error, from a file and over HTTP', async () => {
    const bytes = await readFile(dirArchive);
    const truncated = join(work, 'truncated.clip');
    await writeFile(truncated, bytes.subarray(0, bytes.length - 1000));
    const local = await runCli(['ls', truncated]);
    expect(local.code).toBe(1);
    expect(local.stderr).toMatch(/truncated.*\[CLIP_E_ARCHIVE_FORMAT\]/);
    const headOnly = join(work, 'head-only.clip');
    await writeFile(headOnly, bytes.subarray(0, 200));
    const remote = await startRangeServer(
      new Map([
        ['t.clip', truncated],
        ['h.clip', headOnly],
      ]),
    );
    try {
      for (const name of ['t.clip', 'h.clip']) {
        const result = await runCli(['ls', remote.url(name)]);
        expect(result.code).toBe(1);
        expect(result.stderr).toMatch(/\[CLIP_E_ARCHIVE_FORMAT\]/);
      }
    } finally {
      await remote.close();
    }
  });

  it('answers EIO for a file in a corrupted block and still serves the others', async () => {
    const bytes = Buffer.from(await readFile(dirArchive));
    const info = await runCli(['inspect', dirArchive, '--json']);
    const report = JSON.parse(info.stdout.toString()) as { archiveBytes: number; layers: Array<{ compressedSize: number }> };
    // The DATA section ends 32 bytes before the end; bin/big (300 kB of random data) fills its middle.
    const dataStart = report.archiveBytes - 32 - report.layers[0]!.compressedSize;
    const corrupt = join(work, 'corrupt-worker');
    await sh(`mkdir -p '${corrupt}'`);
    const file = join(corrupt, 'corrupt.clip');
    bytes[dataStart + 100_000] = bytes[dataStart + 100_000]! ^ 0xff;
    await writeFile(file, bytes);
    const mount = await mountArchive(file);
    const big = await sh(`cat '${mount.mountpoint}/bin/big' > /dev/null`);
    expect(big.code).not.toBe(0);
    expect(big.stderr).toMatch(/Input\/output error/);
    const small = await sh(`cat '${mount.mountpoint}/etc/small.txt'`);
    expect(small.stdout).toBe('hello\n');
  });
});
