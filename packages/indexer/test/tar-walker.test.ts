import { execFileSync } from 'node:child_process';
import {
  mkdtempSync,
  rmSync,
  writeFileSync,
  mkdirSync,
  symlinkSync,
  linkSync,
  chmodSync,
  readFileSync,
  truncateSync,
  openSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import tarStream from 'tar-stream';
import { LayerFormatError } from '@clip/shared';
import { walkTar, TarWalker } from '../src/tar/tar-walker.js';
import type { TarEntry } from '../src/tar/tar-entry.js';
import { chunked, tar, type RawMember } from '@clip/testkit';

const LAYER = `sha256:${'ab'.repeat(32)}`;
const text = new TextEncoder();

function walk(data: Uint8Array, chunkSize = 100_000): TarEntry[] {
  return walkTar(LAYER, chunked(data, chunkSize));
}

function byPath(entries: TarEntry[]): Map<string, TarEntry> {
  return new Map(entries.map((entry) => [entry.path, entry]));
}

function expectLayerError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(LayerFormatError);
  expect((caught as Error).message).toContain(LAYER);
  expect((caught as Error).message).toMatch(pattern);
}

const scratch = mkdtempSync(join(tmpdir(), 'clip-tar-walker-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('TarWalker on hand-built streams', () => {
  const members: RawMember[] = [
    { name: './', typeflag: '5', mode: 0o755 },
    { name: './etc/', typeflag: '5', mode: 0o755 },
    { name: './etc/hosts', data: '127.0.0.1 localhost\n', mode: 0o644, uid: 1000, gid: 1001 },
    { name: 'usr/bin/su', data: 'x'.repeat(1000), mode: 0o4755 },
    { name: 'tmp/', typeflag: '5', mode: 0o1777 },
    { name: 'usr/bin/wall', data: '', mode: 0o2755 },
    { name: 'etc/localtime', typeflag: '2', linkname: '/usr/share/zoneinfo/UTC', mode: 0o777 },
    { name: 'usr/bin/su2', typeflag: '1', linkname: './usr/bin/su' },
    { name: 'dev/null', typeflag: '3', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/sda', typeflag: '4', devmajor: 8, devminor: 0, mode: 0o660 },
    { name: 'run/fifo', typeflag: '6', mode: 0o600 },
    { name: 'old-style-dir/', typeflag: '\0', mode: 0o755 },
  ];
  const data = tar(members);

  it.each([1, 7, 511, 512, 513, 4096, 1 << 20])('reports every member with exact data offsets (chunks of %i bytes)', (size) => {
    const entries = walk(data, size);
    expect(entries.map((entry) => `${entry.type} ${entry.path}`)).toEqual([
      'directory ',
      'directory etc',
      'file etc/hosts',
      'file usr/bin/su',
      'directory tmp',
      'file usr/bin/wall',
      'symlink etc/localtime',
      'hardlink usr/bin/su2',
      'char dev/null',
      'block dev/sda',
      'fifo run/fifo',
      'directory old-style-dir',
    ]);
    const map = byPath(entries);
    const hosts = map.get('etc/hosts')!;
    expect(new TextDecoder().decode(data.subarray(hosts.dataOffset, hosts.dataOffset + hosts.size))).toBe('127.0.0.1 localhost\n');
    expect([hosts.uid, hosts.gid, hosts.mode]).toEqual([1000, 1001, 0o644]);
    const su = map.get('usr/bin/su')!;
    expect(su.size).toBe(1000);
    expect(data.subarray(su.dataOffset, su.dataOffset + 1000).every((b) => b === 0x78)).toBe(true);
    expect(su.mode).toBe(0o4755);
    expect(map.get('tmp')!.mode).toBe(0o1777);
    expect(map.get('usr/bin/wall')!.mode).toBe(0o2755);
    expect(map.get('etc/localtime')!.linkTarget).toBe('/usr/share/zoneinfo/UTC');
    expect(map.get('usr/bin/su2')!.linkTarget).toBe('usr/bin/su');
    expect([map.get('dev/null')!.devMajor, map.get('dev/null')!.devMinor]).toEqual([1, 3]);
    expect([map.get('dev/sda')!.devMajor, map.get('dev/sda')!.devMinor]).toEqual([8, 0]);
    expect(hosts.mtimeSec).toBe(1_700_000_000);
    expect(hosts.mtimeNsec).toBe(0);
  });

  it('a PAX header per member (shared slabs, fast paths): same values as the general parse, xattrs kept whole', () => {
    const members: RawMember[] = [];
    for (let i = 0; i < 1500; i++) {
      const pax: Record<string, string | Uint8Array> = {
        mtime: i % 3 === 0 ? `${1_700_000_000 + i}.${String(i).padStart(9, '0')}` : i % 3 === 1 ? `${i}.5` : `${i}`,
        atime: '1700000000.1',
        ctime: '1700000000.123456789012',
      };
      if (i % 500 === 0) pax[`SCHILY.xattr.user.n${i}`] = new Uint8Array([i & 0xff, 0, 0xff, 0x80]);
      if (i === 7) pax.path = `p/${'é'.repeat(40)}`;
      members.push({ name: `m${i}`, data: '', pax });
    }
    const entries = walk(tar(members), 4096);
    expect(entries).toHaveLength(1500);
    expect([entries[0]!.mtimeSec, entries[0]!.mtimeNsec]).toEqual([1_700_000_000, 0]);
    expect([entries[3]!.mtimeSec, entries[3]!.mtimeNsec]).toEqual([1_700_000_003, 3]);
    expect([entries[4]!.mtimeSec, entries[4]!.mtimeNsec]).toEqual([4, 500_000_000]);
    expect([entries[5]!.mtimeSec, entries[5]!.mtimeNsec]).toEqual([5, 0]);
    expect(entries[7]!.path).toBe(`p/${'é'.repeat(40)}`);
    for (const i of [0, 500, 1000]) expect(entries[i]!.xattrs![`user.n${i}`]).toEqual(new Uint8Array([i & 0xff, 0, 0xff, 0x80]));
    // Copies: a later slab, or the walk's own buffers, cannot change them.
    expect(entries[0]!.xattrs!['user.n0']!.buffer.byteLength).toBe(4);
  });

  it('reads PAX long names, link names, uid/gid, nanosecond mtimes and binary xattrs', () => {
    const longName = `${'deep/'.repeat(40)}file-with-a-long-name.txt`;
    const longTarget = `${'t/'.repeat(80)}target`;
    const capability = new Uint8Array([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xff, 0x80, 0x00]);
    const entries = walk(
      tar([
        {
          name: 'short',
          data: 'pax data',
          pax: {
            path: longName,
            uid: '3000000',
            gid: '4000000',
            mtime: '1700000000.123456789',
            'SCHILY.xattr.security.capability': capability,
            'SCHILY.xattr.user.comment': 'héllo',
          },
        },
        { name: 'link', typeflag: '2', linkname: 'x', pax: { linkpath: longTarget, mtime: '-1.25' } },
      ]),
      300,
    );
    const [file, link] = entries;
    expect(file!.path).toBe(longName);
    expect([file!.uid, file!.gid]).toEqual([3_000_000, 4_000_000]);
    expect([file!.mtimeSec, file!.mtimeNsec]).toEqual([1_700_000_000, 123_456_789]);
    expect(file!.xattrs!['security.capability']).toEqual(capability);
    expect(new TextDecoder().decode(file!.xattrs!['user.comment'])).toBe('héllo');
    expect(link!.linkTarget).toBe(longTarget);
    expect([link!.mtimeSec, link!.mtimeNsec]).toEqual([-2, 750_000_000]);
  });

  it('reads GNU long names and long link names', () => {
    const longName = `${'gnu/'.repeat(50)}name`;
    const longLink = `${'l/'.repeat(70)}dest`;
    const entries = walk(
      tar([
        { name: longName, data: 'abc', gnuLongName: true, magic: 'gnu' },
        { name: 'hl', typeflag: '1', linkname: longName, gnuLongLink: true, magic: 'gnu' },
        { name: `${longName}-sym`, typeflag: '2', linkname: longLink, gnuLongName: true, gnuLongLink: true, magic: 'gnu' },
      ]),
      64,
    );
    expect(entries.map((e) => [e.path, e.linkTarget])).toEqual([
      [longName, undefined],
      ['hl', longName],
      [`${longName}-sym`, longLink],
    ]);
  });

  it('applies PAX global headers to later members', () => {
    const entries = walk(
      tar([
        { name: 'g', typeflag: 'g', data: '13 uid=12345\n' },
        { name: 'a', data: 'x' },
        { name: 'b', data: 'y' },
      ]),
    );
    expect(entries.map((e) => [e.path, e.uid])).toEqual([
      ['a', 12345],
      ['b', 12345],
    ]);
  });

  it('normalises leading ./ and / and doubled slashes', () => {
    const entries = walk(tar([{ name: '/abs/path' }, { name: './a//b/./c' }, { name: '.', typeflag: '5' }]));
    expect(entries.map((e) => e.path)).toEqual(['abs/path', 'a/b/c', '']);
  });

  it('accepts a stream without the end-of-archive marker that ends between members', () => {
    expect(walk(tar([{ name: 'a', data: 'x' }], { endMarker: false }))).toHaveLength(1);
  });

  it('accepts an empty stream (an empty layer)', () => {
    expect(walkTar(LAYER, [])).toEqual([]);
  });

  it('ignores bytes after the end-of-archive marker', () => {
    const data = tar([{ name: 'a', data: 'x' }]);
    const padded = new Uint8Array(data.length + 10240);
    padded.set(data);
    padded.fill(0x41, data.length + 1024);
    expect(walk(padded)).toHaveLength(1);
  });
});

describe('TarWalker refuses malformed or hostile layers with LayerFormatError naming the layer', () => {
  it('bad header checksum', () => {
    expectLayerError(
      () =>
        walk(
          tar([
            { name: 'ok', data: 'x' },
            { name: 'bad', badChecksum: true },
          ]),
        ),
      /checksum at byte 1024/,
    );
  });

  it('not a tar at all (e.g. still compressed)', () => {
    expectLayerError(() => walk(new Uint8Array(2048).fill(0x1f)), /checksum/);
  });

  it('truncated member data', () => {
    const data = tar([{ name: 'big', data: 'y'.repeat(5000) }], { endMarker: false });
    expectLayerError(() => walk(data.subarray(0, 3000)), /truncated tar stream.*"big"/);
  });

  it('truncated header', () => {
    const data = tar(
      [
        { name: 'a', data: 'x' },
        { name: 'b', data: 'y' },
      ],
      { endMarker: false },
    );
    expectLayerError(() => walk(data.subarray(0, 1024 + 100)), /truncated/);
  });

  it('PAX header without a member', () => {
    const data = tar([{ name: 'a', pax: { path: 'long' } }], { endMarker: false });
    expectLayerError(() => walk(data.subarray(0, 1024)), /truncated/);
  });

  it.each([['../escape'], ['a/../../b'], ['./..'], ['x/..']])('a ".." component: %s', (name) => {
    expectLayerError(() => walk(tar([{ name }])), /entry ".*" at byte 0: name has a "\.\." component/);
  });

  it('a ".." hidden in a PAX path', () => {
    expectLayerError(() => walk(tar([{ name: 'innocent', pax: { path: 'etc/../../root/.ssh/authorized_keys' } }])), /"\.\." component/);
  });

  it('a NUL byte in a PAX path', () => {
    expectLayerError(() => walk(tar([{ name: 'innocent', pax: { path: 'a\0b' } }])), /NUL/);
  });

  it('a hardlink escaping the root', () => {
    expectLayerError(() => walk(tar([{ name: 'h', typeflag: '1', linkname: '../../etc/shadow' }])), /hardlink target/);
  });

  it('GNU sparse members', () => {
    expectLayerError(() => walk(tar([{ name: 'sparse', typeflag: 'S', magic: 'gnu' }])), /sparse/);
  });

  it('PAX sparse members', () => {
    expectLayerError(
      () =>
        walk(
          tar([
            { name: 'GNUSparseFile.0/s', data: 'x', pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 's' } },
          ]),
        ),
      /sparse/,
    );
  });

  it('unknown entry types', () => {
    expectLayerError(() => walk(tar([{ name: 'weird', typeflag: 'Q' }])), /unsupported tar entry type "Q"/);
  });

  it('a non-directory root', () => {
    expectLayerError(() => walk(tar([{ name: './', typeflag: '2', linkname: 'x' }])), /root must be a directory/);
  });

  it('a streaming walker throws from push() at the bad header, not later', () => {
    const walker = new TarWalker(LAYER, () => {});
    const data = tar([{ name: 'bad', badChecksum: true }]);
    expect(() => walker.push(data.subarray(0, 512))).toThrow(LayerFormatError);
  });
});

describe('TarWalker on tars written by real tools', () => {
  it('GNU tar (posix format with xattrs): offsets point at the file bytes, metadata matches', () => {
    const root = join(scratch, 'gnu-root');
    mkdirSync(join(root, 'dir/sub'), { recursive: true });
    writeFileSync(join(root, 'dir/file.txt'), 'hello from gnu tar\n');
    writeFileSync(join(root, 'dir/big.bin'), Buffer.alloc(70_000, 7));
    chmodSync(join(root, 'dir/big.bin'), 0o4711);
    linkSync(join(root, 'dir/file.txt'), join(root, 'dir/hardlink.txt'));
    symlinkSync('../dir/file.txt', join(root, 'dir/sub/sym'));
    const longName = `${'n'.repeat(120)}.txt`;
    writeFileSync(join(root, 'dir/sub', longName), 'long');
    execFileSync('mkfifo', [join(root, 'dir/fifo')]);
    execFileSync('mknod', [join(root, 'dir/null'), 'c', '1', '3']);
    execFileSync('setfattr', ['-n', 'user.note', '-v', '0x00ff10', join(root, 'dir/file.txt')]);
    const archive = join(scratch, 'gnu.tar');
    execFileSync('tar', ['--format=posix', '--xattrs', '--xattrs-include=*', '-C', root, '-cf', archive, 'dir']);
    const data = new Uint8Array(readFileSync(archive));
    const entries = byPath(walk(data, 10_000));

    // Which of the two names tar stores as the file depends on readdir order.
    const pair = [entries.get('dir/file.txt')!, entries.get('dir/hardlink.txt')!];
    const file = pair.find((entry) => entry.type === 'file')!;
    const link = pair.find((entry) => entry.type === 'hardlink')!;
    expect(Buffer.from(data.subarray(file.dataOffset, file.dataOffset + file.size)).toString()).toBe('hello from gnu tar\n');
    expect(file.xattrs?.['user.note']).toEqual(new Uint8Array([0x00, 0xff, 0x10]));
    expect(link.linkTarget).toBe(file.path);
    const big = entries.get('dir/big.bin')!;
    expect(big.mode).toBe(0o4711);
    expect(data.subarray(big.dataOffset, big.dataOffset + big.size).every((b) => b === 7)).toBe(true);
    expect(entries.get(`dir/sub/${longName}`)!.size).toBe(4);
    expect(entries.get('dir/sub/sym')!.linkTarget).toBe('../dir/file.txt');
    expect(entries.get('dir/fifo')!.type).toBe('fifo');
    expect(entries.get('dir/null')!).toMatchObject({ type: 'char', devMajor: 1, devMinor: 3 });
    expect(entries.get('dir/sub')!.type).toBe('directory');
  });

  it('GNU tar (gnu format) long names', () => {
    const root = join(scratch, 'gnu-format');
    const longDir = 'd'.repeat(150);
    mkdirSync(join(root, longDir), { recursive: true });
    writeFileSync(join(root, longDir, `${'f'.repeat(120)}`), 'gnu long');
    const archive = join(scratch, 'gnu-format.tar');
    execFileSync('tar', ['--format=gnu', '-C', root, '-cf', archive, '.']);
    const data = new Uint8Array(readFileSync(archive));
    const file = walk(data).find((entry) => entry.type === 'file')!;
    expect(file.path).toBe(`${longDir}/${'f'.repeat(120)}`);
    expect(Buffer.from(data.subarray(file.dataOffset, file.dataOffset + file.size)).toString()).toBe('gnu long');
  });

  it('GNU tar --sparse output is refused as sparse', () => {
    const root = join(scratch, 'sparse');
    mkdirSync(root, { recursive: true });
    const path = join(root, 'holes');
    const fd = openSync(path, 'w');
    writeSync(fd, 'start');
    closeSync(fd);
    truncateSync(path, 8 << 20);
    const fd2 = openSync(path, 'r+');
    writeSync(fd2, 'end', 8 << 20);
    closeSync(fd2);
    for (const format of ['gnu', 'posix']) {
      const archive = join(scratch, `sparse-${format}.tar`);
      execFileSync('tar', [`--format=${format}`, '--sparse', '-C', root, '-cf', archive, 'holes']);
      expectLayerError(() => walk(new Uint8Array(readFileSync(archive))), /sparse/);
    }
  });

  it('agrees with tar-stream on data offsets (tar-stream sets header.byteOffset to the data start)', async () => {
    const pack = tarStream.pack();
    const names: string[] = [];
    for (let i = 0; i < 20; i++) {
      const name = i % 3 === 0 ? `long/${'x'.repeat(110 + i)}/${i}` : `f${i}`;
      names.push(name);
      pack.entry({ name, mode: 0o644 }, Buffer.alloc(i * 300, i));
    }
    pack.entry({ name: 'empty-dir', type: 'directory' });
    pack.finalize();
    const packed: Buffer[] = [];
    for await (const chunk of pack as unknown as AsyncIterable<Buffer>) packed.push(chunk);
    const data = new Uint8Array(Buffer.concat(packed));

    const theirs = new Map<string, number>();
    const extract = tarStream.extract();
    const done = new Promise<void>((resolve, reject) => {
      extract.on('entry', (header, stream, next) => {
        theirs.set(header.name, (header as unknown as { byteOffset: number }).byteOffset);
        stream.resume();
        stream.on('end', next);
      });
      extract.on('finish', resolve);
      extract.on('error', reject);
    });
    Readable.from(chunked(data, 333)).pipe(extract);
    await done;

    for (const entry of walk(data, 257)) {
      if (entry.type !== 'file') continue;
      expect(entry.dataOffset, entry.path).toBe(theirs.get(entry.path));
    }
    expect(text.encode('x')).toHaveLength(1);
  });
});
