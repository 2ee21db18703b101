// fast-check generators of valid ArchiveContents, shared by the archive tests.
import fc from 'fast-check';
import type { ArchiveContents, ArchiveLayer, ArchiveMetadata, DirEntry, Inode, Span } from '../src/model.js';
import type { Digest } from '@clip/shared';

export const digestArb: fc.Arbitrary<Digest> = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((bytes) => `sha256:${Buffer.from(bytes).toString('hex')}` as Digest);

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.oneof(fc.integer({ min: 0, max: 1 << 20 }), fc.maxSafeNat());

const nameArb = fc
  .string({
    unit: fc.oneof(
      fc.constantFrom('a', 'b', 'Z', '.', '-', ' ', 'é', '日', '\u{1F600}', '\n'),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
    ),
    minLength: 1,
    maxLength: 12,
  })
  .filter((name) => name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0'));

const metadataArb: fc.Arbitrary<ArchiveMetadata> = fc.record(
  {
    sourceRef: fc.string(),
    storage: fc.record(
      { registry: fc.string(), repository: fc.string(), tag: fc.string(), manifestDigest: digestArb },
      { requiredKeys: ['registry', 'repository', 'manifestDigest'] },
    ),
    manifestMediaType: fc.string(),
    platform: fc.record({ os: fc.string(), architecture: fc.string(), variant: fc.string() }, { requiredKeys: ['os', 'architecture'] }),
    imageConfig: fc.record(
      {
        entrypoint: fc.array(fc.string()),
        cmd: fc.array(fc.string()),
        env: fc.array(fc.string()),
        workingDir: fc.string(),
        user: fc.string(),
        labels: fc.dictionary(fc.string(), fc.string()),
      },
      { requiredKeys: [] },
    ),
    createdBy: fc.string(),
  },
  { requiredKeys: ['sourceRef', 'imageConfig', 'createdBy'] },
);

const spanArb: fc.Arbitrary<Span> = fc.record({
  checkpoint: fc.record({
    uncompressedOffset: u64,
    compressedBitOffset: u64,
    window: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 300 }), fc.constant(new Uint8Array(32768).fill(7))),
    kind: fc.constantFrom('deflate-block', 'gzip-member', 'zstd-frame', 'plain'),
  }),
  uncompressedEnd: u64,
  pieces: fc.array(fc.record({ compressedEnd: u64, uncompressedEnd: u64, digest: digestArb }), { maxLength: 4 }),
});

const layerArb: fc.Arbitrary<ArchiveLayer> = fc.record({
  digest: digestArb,
  mediaType: fc.constantFrom('application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+zstd', 'x'),
  compression: fc.constantFrom('gzip', 'zstd', 'none'),
  compressedSize: u64,
  uncompressedSize: u64,
  diffId: digestArb,
  spans: fc.array(spanArb, { maxLength: 4 }),
});

const attrsArb = fc.record({
  mode: fc.integer({ min: 0, max: 0o7777 }),
  uid: u32,
  gid: u32,
  size: u64,
  mtimeSec: fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
  mtimeNsec: fc.integer({ min: 0, max: 999_999_999 }),
  rdevMajor: u32,
  rdevMinor: u32,
  nlink: u32,
  xattrs: fc.option(fc.dictionary(nameArb, fc.uint8Array({ maxLength: 20 }), { minKeys: 1, maxKeys: 3 }), { nil: undefined }),
  linkTarget: fc.option(fc.string({ maxLength: 30 }), { nil: undefined }),
  dataOffset: fc.option(u64, { nil: undefined }),
});

const nodeArb = fc.record({
  parentPick: fc.nat(),
  name: nameArb,
  type: fc.constantFrom('file', 'directory', 'symlink', 'char', 'block', 'fifo', 'socket', 'hardlink'),
  attrs: attrsArb,
  linkPick: fc.nat(),
});

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** Random valid contents: a tree with every file type, hardlinks, xattrs, unicode names. */
export const contentsArb: fc.Arbitrary<ArchiveContents> = fc
  .tuple(metadataArb, fc.array(layerArb, { maxLength: 3 }), attrsArb, fc.array(nodeArb, { maxLength: 40 }))
  .map(([metadata, layers, rootAttrs, nodes]) => {
    const toInode = (ino: number, type: Inode['type'], attrs: typeof rootAttrs): Inode => {
      const { xattrs, linkTarget, dataOffset, ...rest } = attrs;
      return stripUndefined({
        ino,
        type,
        ...rest,
        xattrs,
        linkTarget,
        data: dataOffset !== undefined && layers.length > 0 ? { layer: dataOffset % layers.length, offset: dataOffset } : undefined,
      });
    };
    const inodes: Inode[] = [toInode(1, 'directory', rootAttrs)];
    const entries: DirEntry[] = [{ path: '/', ino: 1 }];
    const dirs: { ino: number; path: string }[] = [{ ino: 1, path: '/' }];
    const files: number[] = [];
    const taken = new Set<string>(['/']);
    for (const node of nodes) {
      const parent = dirs[node.parentPick % dirs.length]!;
      const path = parent.path === '/' ? `/${node.name}` : `${parent.path}/${node.name}`;
      if (taken.has(path)) continue;
      taken.add(path);
      if (node.type === 'hardlink') {
        if (files.length === 0) continue;
        entries.push({ path, ino: files[node.linkPick % files.length]! });
        continue;
      }
      const ino = inodes.length + 1;
      inodes.push(toInode(ino, node.type as Inode['type'], node.attrs));
      entries.push({ path, ino });
      if (node.type === 'directory') dirs.push({ ino, path });
      else files.push(ino);
    }
    return { metadata: stripUndefined(metadata), layers, inodes, entries };
  });

/** Contents as archiveContents(openArchive(...)) gives them back: entries sorted by path. */
export function normalised(contents: ArchiveContents): ArchiveContents {
  return { ...contents, entries: [...contents.entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)) };
}
