// Every archive version clip has written keeps opening, listing and reading with the current
// code: the checked-in fixtures of each version, read in memory and by range (as a mount of
// a remote archive does), every file's bytes checked against the recorded sha256.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  archiveHeadLength,
  dataSectionFetchRange,
  encodeArchive,
  encodeDataArchive,
  openArchive,
  openArchiveFromSource,
  openArchiveHead,
  type ArchiveByteSource,
  type ClipArchive,
} from '@clip/archive-format';
import { LayerReader } from '../src/layer-reader.js';
import { ArchiveFormatError } from '@clip/shared';
// The fixtures of every format version live with the format (packages/archive-format).
import { v21FixtureContents } from '../../archive-format/test/fixtures/archives/v2.1-contents.js';

const dir = fileURLToPath(new URL('../../archive-format/test/fixtures/archives/', import.meta.url));

interface Expected {
  version: string;
  mode: 'oci' | 'data';
  tree: Array<{
    path: string;
    type: string;
    mode: number;
    uid: number;
    gid: number;
    size: number;
    nlink: number;
    mtimeSec: number;
    mtimeNsec: number;
    ino: number;
    linkTarget?: string;
    rdev?: string;
    xattrs?: Record<string, string>;
    sha256?: string;
  }>;
}

function memorySource(bytes: Uint8Array, reads: Array<[number, number]> = []): ArchiveByteSource {
  return {
    size: bytes.length,
    description: 'memory',
    read: (start, end) => {
      reads.push([start, end]);
      return Promise.resolve(bytes.subarray(start, end));
    },
    close: () => Promise.resolve(),
  };
}

/** What a user sees of an archive: the tree, and each file's content digest when readable here. */
async function describeTree(archive: ClipArchive, reader: LayerReader | undefined): Promise<Expected['tree']> {
  const out: Expected['tree'] = [];
  for (const { path, inode } of archive.walk()) {
    const row: Expected['tree'][number] = {
      path,
      type: inode.type,
      mode: inode.mode,
      uid: inode.uid,
      gid: inode.gid,
      size: inode.size,
      nlink: inode.nlink,
      mtimeSec: inode.mtimeSec,
      mtimeNsec: inode.mtimeNsec,
      ino: inode.ino,
    };
    if (inode.linkTarget !== undefined) row.linkTarget = inode.linkTarget;
    if (inode.type === 'char' || inode.type === 'block') row.rdev = `${inode.rdevMajor}:${inode.rdevMinor}`;
    if (inode.xattrs) row.xattrs = Object.fromEntries(Object.entries(inode.xattrs).map(([k, v]) => [k, Buffer.from(v).toString('hex')]));
    if (reader && inode.type === 'file') {
      row.sha256 = createHash('sha256')
        .update(await reader.readFile(inode, 0, inode.size))
        .digest('hex');
    }
    out.push(row);
  }
  return out;
}

describe('archive compatibility: every version still reads', () => {
  it.runIf(process.env.CLIP_WRITE_FIXTURES === '1')('writes the v2.1 and v2.2 (data-carrying) fixtures', async () => {
    // v2.1 is the uncompressed-tables layout; v2.2 the same contents with compressed tables.
    for (const [version, compressTables] of [
      ['2.1', false],
      ['2.2', true],
    ] as const) {
      const { contents, data } = v21FixtureContents();
      const bytes = encodeDataArchive(contents, data, { compressTables });
      mkdirSync(`${dir}v${version}`, { recursive: true });
      writeFileSync(`${dir}v${version}/data.clip`, bytes);
      const archive = openArchive(bytes);
      const reader = new LayerReader(archive, { fetchRange: dataSectionFetchRange(archive, memorySource(bytes)) });
      const expected: Expected = { version, mode: 'data', tree: await describeTree(archive, reader) };
      writeFileSync(`${dir}v${version}/data.expected.json`, `${JSON.stringify(expected, null, 2)}\n`);
    }
  });

  it('v2.0 (OCI mode) opens, lists and looks up by range as in memory', async () => {
    const bytes = readFileSync(`${dir}v2/small.clip`);
    const archive = await openArchiveFromSource(memorySource(bytes));
    expect(archive.dataSection).toBeUndefined();
    expect(archive.minorVersion).toBe(0);
    expect(await describeTree(archive, undefined)).toEqual(await describeTree(openArchive(bytes), undefined));
    expect(archive.readdir('/tmp')?.map((e) => e.name)).toEqual(['empty', 'fifo', '日本語 file.txt']);
  });

  it.each(['2.1', '2.2'])(
    'v%s (data-carrying) opens from its head only and reads every file with the recorded digests',
    async (version) => {
      const bytes = readFileSync(`${dir}v${version}/data.clip`);
      const expected = JSON.parse(readFileSync(`${dir}v${version}/data.expected.json`, 'utf8')) as Expected;
      const reads: Array<[number, number]> = [];
      const source = memorySource(bytes, reads);
      // Read as a remote mount would: a head of the tables only, then blocks.
      let headLength = 64;
      for (
        let need = archiveHeadLength(bytes.subarray(0, headLength), bytes.length);
        need > headLength;
        need = archiveHeadLength(bytes.subarray(0, headLength), bytes.length)
      ) {
        headLength = need;
      }
      const archive = openArchiveHead(bytes.subarray(0, headLength), bytes.length);
      expect(archive.dataSection!.offset).toBe(headLength);
      expect(`${archive.formatVersion}.${archive.minorVersion}`).toBe(expected.version);
      const reader = new LayerReader(archive, { fetchRange: dataSectionFetchRange(archive, source) });
      expect(await describeTree(archive, reader)).toEqual(expected.tree);
      expect(reads.every(([start]) => start >= headLength)).toBe(true);
      // The whole-file path agrees, and the range path through openArchiveFromSource too.
      expect(await describeTree(openArchive(bytes), undefined)).toEqual(expected.tree.map(({ sha256: _, ...row }) => row));
      expect((await openArchiveFromSource(memorySource(bytes))).inodeCount).toBe(archive.inodeCount);
    },
  );

  it('v2.1: a damaged data block fails with a digest mismatch, never wrong bytes', async () => {
    const bytes = Buffer.from(readFileSync(`${dir}v2.1/data.clip`));
    const archive = openArchive(bytes);
    const at = archive.dataSection!.offset + archive.layers[0]!.spans[1]!.pieces[0]!.compressedEnd - 5;
    bytes[at] = bytes[at]! ^ 0x40;
    const head = openArchiveHead(bytes.subarray(0, archive.dataSection!.offset), bytes.length);
    const reader = new LayerReader(head, { fetchRange: dataSectionFetchRange(head, memorySource(bytes)) });
    const big = head.lookup('/tmp/big')!;
    await expect(reader.readFile(big, 0, big.size)).rejects.toMatchObject({ code: 'CLIP_E_DIGEST_MISMATCH' });
    // The whole file's checksum catches it too.
    expect(() => openArchive(bytes)).toThrow(/checksum mismatch/);
  });

  it('v2.1: truncation and damaged tables are typed errors', () => {
    const bytes = readFileSync(`${dir}v2.1/data.clip`);
    const archive = openArchive(bytes);
    const headLength = archive.dataSection!.offset;
    expect(() => openArchiveHead(bytes.subarray(0, headLength), bytes.length - 1)).toThrow(/truncated/);
    expect(() => openArchiveHead(bytes.subarray(0, headLength - 40), bytes.length)).toThrow(ArchiveFormatError);
    const damaged = Buffer.from(bytes.subarray(0, headLength));
    damaged[headLength - 100] = damaged[headLength - 100]! ^ 1;
    expect(() => openArchiveHead(damaged, bytes.length)).toThrow(/tables checksum mismatch/);
  });

  it('a reader meeting a newer major version names both versions', () => {
    const bytes = Buffer.from(readFileSync(`${dir}v2.1/data.clip`));
    bytes.writeUInt16LE(3, 8);
    expect(() => openArchive(bytes)).toThrow(/version 3\.1 is newer than this clip supports \(version 2\)/);
    expect(() => archiveHeadLength(bytes, bytes.length)).toThrow(/version 3\.1 is newer/);
  });

  it('v2.2 (OCI mode, compressed tables) opens by range as in memory', async () => {
    const bytes = readFileSync(`${dir}v2.2/small.clip`);
    const archive = await openArchiveFromSource(memorySource(bytes));
    expect(archive.minorVersion).toBe(2);
    expect(await describeTree(archive, undefined)).toEqual(await describeTree(openArchive(readFileSync(`${dir}v2/small.clip`)), undefined));
  });

  it('v2.3 (OCI mode, external windows) opens by range as in memory, the same tree as v2.0', async () => {
    const bytes = readFileSync(`${dir}v2.3/small.clip`);
    const archive = await openArchiveFromSource(memorySource(bytes));
    expect(archive.minorVersion).toBe(3);
    expect(archive.externalWindows?.size).toBe(readFileSync(`${dir}v2.3/small.windows`).length);
    expect(await describeTree(archive, undefined)).toEqual(await describeTree(openArchive(readFileSync(`${dir}v2/small.clip`)), undefined));
  });

  it('v2.2 data-carrying: the same tree and file digests as v2.1, a smaller head, flags 0b11', () => {
    const v21 = readFileSync(`${dir}v2.1/data.clip`);
    const v22 = readFileSync(`${dir}v2.2/data.clip`);
    expect(v22.readUInt32LE(12)).toBe(3);
    const tree = (version: string) => (JSON.parse(readFileSync(`${dir}v${version}/data.expected.json`, 'utf8')) as Expected).tree;
    expect(tree('2.2')).toEqual(tree('2.1'));
    expect(openArchive(v22).dataSection!.offset).toBeLessThan(openArchive(v21).dataSection!.offset);
    expect(Buffer.from(encodeDataArchive(v21FixtureContents().contents, v21FixtureContents().data)).equals(v22)).toBe(true);
    expect(
      Buffer.from(encodeDataArchive(v21FixtureContents().contents, v21FixtureContents().data, { compressTables: false })).equals(v21),
    ).toBe(true);
  });

  it('v2.2 archives stay refusable by v2.0/v2.1 readers: compressed sections are blobs in the section table', () => {
    // Older readers check length % recordSize while reading the section table, before the
    // flags; a compressed INODES section with recordSize 88 would fail there as "corrupt"
    // instead of reaching "upgrade clip".
    for (const name of ['v2.2/small.clip', 'v2.2/data.clip']) {
      const bytes = readFileSync(`${dir}${name}`);
      const ids: number[] = [];
      for (let i = 0; i < bytes.readUInt32LE(16); i++) {
        const at = 32 + i * 24;
        const recordSize = bytes.readUInt32LE(at + 4);
        ids.push(bytes.readUInt32LE(at));
        if (recordSize > 0) expect(Number(bytes.readBigUInt64LE(at + 16)) % recordSize).toBe(0);
      }
      expect(ids).toContain(12);
    }
  });

  it('a reader meeting an unknown flag names the archive version and its own', () => {
    const bytes = Buffer.from(readFileSync(`${dir}v2.2/small.clip`));
    bytes.writeUInt16LE(4, 10);
    bytes.writeUInt32LE(2 | 8, 12);
    bytes.set(
      createHash('sha256')
        .update(bytes.subarray(0, bytes.length - 32))
        .digest(),
      bytes.length - 32,
    );
    expect(() => openArchive(bytes)).toThrow(
      /version 2\.4 uses features this clip does not support \(flags 0xa; this clip reads up to version 2\.3\); upgrade clip/,
    );
  });

  it('OCI-mode encoding refuses data-carrying layers', () => {
    expect(() => encodeArchive(v21FixtureContents().contents)).toThrow(ArchiveFormatError);
  });
});
