// A real FUSE mount of a small hand-made tree: metadata answered by the addon, reads by JS.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isClipError } from '@clip/shared';
import { buildMetadataTable, FuseSession, type NativeFuseError, type TableNode } from '../src/index.js';

const run = promisify(execFile);
const sh = async (command: string) => (await run('sh', ['-c', command])).stdout.trimEnd();
const shFails = async (command: string) =>
  run('sh', ['-c', command]).then(
    () => '',
    (error: { stderr: string }) => error.stderr,
  );

const DIR = 0o040000;
const FILE = 0o100000;
const LINK = 0o120000;
const CHAR = 0o020000;
const content = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7 + 3) & 0xff));

/** ino → node: / (1) with a/ (2), a/data (3), link → a/data (4), null device (5), a/copy = hardlink of 3. */
const nodes: Record<number, TableNode> = {
  1: {
    mode: DIR | 0o755,
    uid: 0,
    gid: 0,
    size: 4096,
    nlink: 3,
    rdev: 0,
    mtimeSec: 1_700_000_000,
    mtimeNsec: 5,
    blocks: 0,
    children: [
      { name: 'null', ino: 5 },
      { name: 'link', ino: 4 },
      { name: 'a', ino: 2 },
    ],
  },
  2: {
    mode: DIR | 0o1777,
    uid: 1000,
    gid: 100,
    size: 4096,
    nlink: 2,
    rdev: 0,
    mtimeSec: 1_700_000_001,
    mtimeNsec: 0,
    blocks: 0,
    children: [
      { name: 'data', ino: 3 },
      { name: 'copy', ino: 3 },
    ],
  },
  3: {
    mode: FILE | 0o4755,
    uid: 0,
    gid: 0,
    size: content.length,
    nlink: 2,
    rdev: 0,
    mtimeSec: 1_700_000_002,
    mtimeNsec: 123_456_789,
    blocks: Math.ceil(content.length / 512),
    xattrs: { 'user.note': Buffer.from('hello'), 'user.empty': Buffer.alloc(0) },
  },
  4: {
    mode: LINK | 0o777,
    uid: 0,
    gid: 0,
    size: 6,
    nlink: 1,
    rdev: 0,
    mtimeSec: 1_700_000_003,
    mtimeNsec: 0,
    blocks: 0,
    linkTarget: 'a/data',
  },
  5: { mode: CHAR | 0o666, uid: 0, gid: 0, size: 0, nlink: 1, rdev: (1 << 8) | 3, mtimeSec: 1_700_000_004, mtimeNsec: 0, blocks: 0 },
};

let dir: string;
let session: FuseSession | undefined;
let reads: Array<[number, number, number]>;
let failReads = false;

async function mountTree(): Promise<FuseSession> {
  return FuseSession.mount({
    mountpoint: dir,
    options: ['ro', 'default_permissions', 'fsname=clip-test', 'subtype=clip', 'allow_other', 'suid', 'dev'],
    table: buildMetadataTable(5, (ino) => nodes[ino]!),
    statfs: { bsize: 4096, frsize: 4096, blocks: 100, bfree: 0, bavail: 0, files: 5, ffree: 0, favail: 0, fsid: 0, flag: 1, namemax: 255 },
    cacheSeconds: 60,
    read: async (ino, offset, size) => {
      reads.push([ino, offset, size]);
      if (failReads) throw Object.assign(new Error('registry down'), { errno: 5 });
      await new Promise((resolve) => setTimeout(resolve, 1));
      return content.subarray(offset, offset + size);
    },
  });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-native-fuse-'));
  reads = [];
  failReads = false;
  session = await mountTree();
});

afterEach(async () => {
  await session?.unmount();
  session = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('native FUSE session', () => {
  it('lists directories with . and .., children in any order given', async () => {
    expect((await sh(`ls -a ${dir}`)).split('\n')).toEqual(['.', '..', 'a', 'link', 'null']);
    expect((await sh(`ls -a ${dir}/a`)).split('\n')).toEqual(['.', '..', 'copy', 'data']);
    expect(await sh(`find ${dir} | sort | sed 's#${dir}##'`)).toBe(['', '/a', '/a/copy', '/a/data', '/link', '/null'].join('\n'));
  });

  it('reports the table stat fields, with nanosecond times, hardlinks sharing an inode', async () => {
    expect(await sh(`stat -c '%i %f %u %g %s %h %t:%T %Y %y' ${dir}/a/data ${dir}/a/copy ${dir}/a ${dir}/null ${dir}/link`)).toBe(
      [
        `3 89ed 0 0 ${content.length} 2 0:0 1700000002 ${await sh('date -u -d @1700000002 "+%Y-%m-%d %H:%M:%S"')}.123456789 +0000`,
        `3 89ed 0 0 ${content.length} 2 0:0 1700000002 ${await sh('date -u -d @1700000002 "+%Y-%m-%d %H:%M:%S"')}.123456789 +0000`,
        `2 43ff 1000 100 4096 2 0:0 1700000001 ${await sh('date -u -d @1700000001 "+%Y-%m-%d %H:%M:%S"')}.000000000 +0000`,
        `5 21b6 0 0 0 1 1:3 1700000004 ${await sh('date -u -d @1700000004 "+%Y-%m-%d %H:%M:%S"')}.000000000 +0000`,
        `4 a1ff 0 0 6 1 0:0 1700000003 ${await sh('date -u -d @1700000003 "+%Y-%m-%d %H:%M:%S"')}.000000000 +0000`,
      ].join('\n'),
    );
  });

  it('reads file data through the JS handler, byte for byte, and serves EOF itself', async () => {
    const copy = join(tmpdir(), `clip-native-fuse-copy-${process.pid}`);
    await run('cp', [`${dir}/link`, copy]);
    expect((await readFile(copy)).equals(content)).toBe(true);
    await rm(copy);
    expect(reads.length).toBeGreaterThan(0);
    for (const [ino, offset, size] of reads) {
      expect(ino).toBe(3);
      expect(offset + size).toBeLessThanOrEqual(content.length);
    }
  });

  it('answers readlink, xattrs (with size probes) and statfs', async () => {
    expect(await sh(`readlink ${dir}/link`)).toBe('a/data');
    expect(await sh(`getfattr --absolute-names -d -m - ${dir}/a/data | tail -n +2`)).toBe('user.empty=""\nuser.note="hello"');
    expect(await shFails(`getfattr --absolute-names -n user.missing ${dir}/a/data`)).toMatch(/No such attribute/);
    expect(await sh(`stat -f -c '%S %b %c' ${dir}`)).toBe('4096 100 5');
  });

  it('refuses writes with EROFS and unknown names with ENOENT', async () => {
    expect(await shFails(`touch ${dir}/new`)).toMatch(/Read-only file system/);
    expect(await shFails(`sh -c 'echo x >> ${dir}/a/data'`)).toMatch(/Read-only file system/);
    expect(await shFails(`stat ${dir}/a/missing`)).toMatch(/No such file or directory/);
    expect(await shFails(`ls ${dir}/a/data/x`)).toMatch(/Not a directory/);
  });

  it('a failing read handler gives EIO, the mount stays up', async () => {
    failReads = true;
    expect(await shFails(`cat ${dir}/a/data > /dev/null`)).toMatch(/Input\/output error/);
    failReads = false;
    expect(await sh(`ls ${dir}/a`)).toBe('copy\ndata');
  });

  it('counts the requests it answered itself', async () => {
    await sh(`ls -l ${dir}/a`);
    const counters = session!.counters();
    expect(counters.readdirs).toBeGreaterThan(0);
    expect(counters.reads).toBe(0);
  });

  it('unmount ends the session, even while a process keeps a file open', async () => {
    const holder = spawn('sh', ['-c', `exec 3<${dir}/a/data; sleep 30`], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await session!.unmount();
    session = undefined;
    holder.kill();
    expect(await sh(`grep -c ' ${dir} ' /proc/mounts || true`)).toBe('0');
  });
});

describe('failures reach callers as typed clip errors', () => {
  it('a refused mount is a ClipError with a CLIP_E_FUSE_ code naming the mountpoint', async () => {
    const missing = join(tmpdir(), `clip-no-such-dir-${process.pid}`, 'mnt');
    const error = await FuseSession.mount({
      mountpoint: missing,
      options: ['ro'],
      table: buildMetadataTable(5, (ino) => nodes[ino]!),
      statfs: {
        bsize: 4096,
        frsize: 4096,
        blocks: 100,
        bfree: 0,
        bavail: 0,
        files: 5,
        ffree: 0,
        favail: 0,
        fsid: 0,
        flag: 1,
        namemax: 255,
      },
      cacheSeconds: 1,
      read: async () => Buffer.alloc(0),
    }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(isClipError(error)).toBe(true);
    expect((error as NativeFuseError).code).toMatch(/^CLIP_E_FUSE_/);
    expect((error as Error).message).toContain(missing);
  });
});
