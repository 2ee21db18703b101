// A real FUSE mount (served by a child process) of a hand-made archive over an uncompressed
// layer: metadata, bytes, hardlinks, devices, xattrs, read-only behaviour, disk cache reuse.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, startChildMount, writeTestArchive, type ChildMount, type FileSpec } from './helpers.js';

const big = Buffer.alloc(300_000);
for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
const files: FileSpec[] = [
  { path: '/bin', type: 'directory', mode: 0o755 },
  { path: '/bin/tool', type: 'file', mode: 0o4755, content: Buffer.from('#!/bin/sh\necho tool\n') },
  { path: '/bin/tool2', type: 'file', mode: 0, hardlinkOf: '/bin/tool' },
  { path: '/etc', type: 'directory', mode: 0o755 },
  {
    path: '/etc/hello',
    type: 'file',
    mode: 0o640,
    uid: 1000,
    gid: 1001,
    content: Buffer.from('hello world\n'),
    xattrs: {
      'user.note': Buffer.from('hi'),
      'security.capability': Buffer.from([1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    },
  },
  { path: '/etc/empty', type: 'file', mode: 0o644 },
  { path: '/tmp', type: 'directory', mode: 0o1777 },
  { path: '/link', type: 'symlink', mode: 0o777, linkTarget: 'etc/hello' },
  { path: '/dev', type: 'directory', mode: 0o755 },
  { path: '/dev/null', type: 'char', mode: 0o666, rdev: [1, 3] },
  { path: '/dev/sda', type: 'block', mode: 0o660, rdev: [8, 0] },
  { path: '/fifo', type: 'fifo', mode: 0o644 },
  { path: '/big', type: 'file', mode: 0o644, content: big },
];

let dir: string;
let mountpoint: string;
let mounted: ChildMount | undefined;

const sh = async (script: string) => (await run('sh', ['-c', script], { encoding: 'utf8' })).stdout.trim();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-mounter-'));
  mountpoint = join(dir, 'mnt');
  await mkdir(mountpoint);
  const { archivePath, layersDir } = await writeTestArchive(dir, files);
  mounted = await startChildMount([archivePath, mountpoint, layersDir, join(dir, 'cache')]);
});

afterAll(async () => {
  await mounted?.stop();
  await run('fusermount3', ['-uz', mountpoint]).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

describe('FUSE mount of an archive', () => {
  it('lists directories', async () => {
    expect((await sh(`ls -a ${mountpoint}`)).split('\n')).toEqual(['.', '..', 'big', 'bin', 'dev', 'etc', 'fifo', 'link', 'tmp']);
    expect(await sh(`cd ${mountpoint} && find . | sort | tr '\\n' ' '`)).toBe(
      '. ./big ./bin ./bin/tool ./bin/tool2 ./dev ./dev/null ./dev/sda ./etc ./etc/empty ./etc/hello ./fifo ./link ./tmp',
    );
  });

  it('reports modes, owners, types, devices and times', async () => {
    const stat = await sh(
      `cd ${mountpoint} && stat -c '%n %A %u %g %s %t:%T %Y' bin/tool etc/hello etc/empty tmp dev/null dev/sda fifo link`,
    );
    expect(stat.split('\n')).toEqual([
      'bin/tool -rwsr-xr-x 0 0 20 0:0 1700000000',
      'etc/hello -rw-r----- 1000 1001 12 0:0 1700000000',
      'etc/empty -rw-r--r-- 0 0 0 0:0 1700000000',
      'tmp drwxrwxrwt 0 0 4096 0:0 1700000000',
      'dev/null crw-rw-rw- 0 0 0 1:3 1700000000',
      'dev/sda brw-rw---- 0 0 0 8:0 1700000000',
      'fifo prw-r--r-- 0 0 0 0:0 1700000000',
      'link lrwxrwxrwx 0 0 9 0:0 1700000000',
    ]);
  });

  it('gives hardlinks one inode and the right link count', async () => {
    const [a, b] = (await sh(`stat -c '%i %h' ${mountpoint}/bin/tool ${mountpoint}/bin/tool2`)).split('\n');
    expect(a).toBe(b);
    expect(a!.split(' ')[1]).toBe('2');
  });

  it('reads file contents and symlinks', async () => {
    expect(await sh(`cat ${mountpoint}/link`)).toBe('hello world');
    expect(await sh(`readlink ${mountpoint}/link`)).toBe('etc/hello');
    const digest = createHash('sha256').update(big).digest('hex');
    expect(await sh(`sha256sum ${mountpoint}/big | cut -d' ' -f1`)).toBe(digest);
    expect(await sh(`dd if=${mountpoint}/big bs=1000 skip=150 count=1 2>/dev/null | sha256sum | cut -d' ' -f1`)).toBe(
      createHash('sha256').update(big.subarray(150_000, 151_000)).digest('hex'),
    );
    expect(await readFile(join(mountpoint, 'etc/hello'), 'utf8')).toBe('hello world\n');
  });

  it('returns xattrs', async () => {
    const dump = await sh(`getfattr -d -m - -e hex ${mountpoint}/etc/hello 2>/dev/null`);
    expect(dump).toContain('user.note=0x6869');
    expect(dump).toContain('security.capability=0x0100000200200000');
    expect(await sh(`getfattr -n user.missing ${mountpoint}/etc/hello 2>&1 || true`)).toContain('No such attribute');
  });

  it('refuses writes with EROFS', async () => {
    for (const cmd of [
      `touch ${mountpoint}/new`,
      `rm ${mountpoint}/etc/hello`,
      `mkdir ${mountpoint}/d`,
      `chmod 600 ${mountpoint}/etc/hello`,
      `sh -c 'echo x >> ${mountpoint}/etc/hello'`,
      `setfattr -n user.x -v 1 ${mountpoint}/etc/hello`,
    ]) {
      expect(await sh(`${cmd} 2>&1 || true`)).toMatch(/Read-only file system/);
    }
  });

  it('answers statfs', async () => {
    expect(await sh(`stat -f -c '%T %b' ${mountpoint}`)).toMatch(/^fuseblk|^fuse/);
  });
});
