// Named fixture images. Together they cover: several layers; gzip (single and multi-member),
// uncompressed and zstd layers; empty/tiny/512-byte/large files; nested and implicit
// directories; symlinks (relative, absolute, dangling, long target); hardlinks (same dir,
// across directories, surviving deletion of the other name); whiteouts and opaque
// directories (same-layer siblings before and after the marker); delete-and-recreate;
// replacing a file by a directory and back; PAX long names and xattrs; setuid/setgid/sticky;
// devices and fifos; non-root owners; mtimes; './' tar names; a multi-platform index.
import { buildLayout, type BuiltLayout, type LayoutSpec } from './layout.js';
import type { EntrySpec } from './layer-spec.js';

export * from './layout.js';
export type { EntrySpec, LayerSpec, LayerCompression } from './layer-spec.js';
export { DEFAULT_MTIME } from './layer-spec.js';
export type { FileContent, GeneratedContent } from './content.js';
export { generateContent, contentBytes } from './content.js';
export { expectedTree } from './overlay.js';

export type FixtureSpec = LayoutSpec & { description: string };

const MiB = 1024 * 1024;

/** `security.capability` v2 value granting cap_net_bind_service (permitted + effective). */
export const CAP_NET_BIND_SERVICE = Uint8Array.from([
  0x01,
  0x00,
  0x00,
  0x02, // magic VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
  0x00,
  0x04,
  0x00,
  0x00, // permitted[0]: bit 10
  0x00,
  0x00,
  0x00,
  0x00, // inheritable[0]
  0x00,
  0x00,
  0x00,
  0x00, // permitted[1]
  0x00,
  0x00,
  0x00,
  0x00, // inheritable[1]
]);

const LONG_DIR = `deep/${'d'.repeat(60)}/${'e'.repeat(60)}`; // > 100 bytes once a file name is added
const LONG_NAME = `${LONG_DIR}/${'f'.repeat(120)}.txt`; // base name alone > 100: needs PAX path

const basicEntries: EntrySpec[] = [
  { type: 'dir', path: 'etc' },
  { type: 'file', path: 'etc/hostname', content: 'clip-fixture\n' },
  { type: 'file', path: 'etc/empty' },
  { type: 'file', path: 'etc/one-byte', content: 'x' },
  { type: 'file', path: 'etc/exactly-512', content: { generate: 'text', size: 512, seed: 7 } },
  { type: 'dir', path: 'usr' },
  { type: 'dir', path: 'usr/bin' },
  { type: 'file', path: 'usr/bin/tool', mode: 0o755, content: '#!/bin/sh\necho tool\n' },
  { type: 'dir', path: 'usr/share' },
  { type: 'dir', path: 'usr/share/doc' },
  { type: 'dir', path: 'usr/share/doc/pkg' },
  { type: 'file', path: 'usr/share/doc/pkg/README', content: { generate: 'text', size: 20_000, seed: 3 } },
  { type: 'symlink', path: 'usr/bin/tool-relative', target: 'tool' },
  { type: 'symlink', path: 'usr/bin/tool-up', target: '../share/doc/pkg/README' },
  { type: 'symlink', path: 'bin', target: 'usr/bin' },
  { type: 'symlink', path: 'etc/absolute', target: '/etc/hostname' },
  { type: 'symlink', path: 'etc/dangling', target: '/does/not/exist' },
  // Parent directories never listed in the tar: must be created implicitly.
  { type: 'file', path: 'implicit/parent/dirs/file.txt', content: 'no parent entries\n' },
  { type: 'dir', path: 'tmp', mode: 0o1777 },
];

export type FixtureName = 'basic' | 'layers' | 'special' | 'large' | 'hardlinks' | 'multiarch';

export const FIXTURES: Record<FixtureName, FixtureSpec> = {
  basic: {
    description: 'one gzip layer: small files (empty, 1 byte, 512 bytes), nested/implicit dirs, symlinks',
    tag: 'basic',
    config: {
      Entrypoint: ['/usr/bin/tool'],
      Cmd: ['--help'],
      Env: ['PATH=/usr/bin:/bin', 'CLIP_FIXTURE=basic'],
      WorkingDir: '/etc',
      User: '0:0',
      Labels: { 'org.example.fixture': 'basic' },
    },
    layers: [{ compression: 'gzip', entries: basicEntries }],
  },

  layers: {
    description: 'three layers (gzip, uncompressed, zstd): whiteouts, opaque dirs, replace, delete+recreate, hardlinks',
    tag: 'layers',
    layers: [
      {
        compression: 'gzip',
        entries: [
          { type: 'dir', path: 'etc' },
          { type: 'file', path: 'etc/motd', content: 'layer 0 motd\n' },
          { type: 'file', path: 'etc/keep', content: 'kept through all layers\n' },
          { type: 'file', path: 'etc/to-delete', content: 'deleted in layer 1\n' },
          { type: 'dir', path: 'etc/subtree' },
          { type: 'file', path: 'etc/subtree/a', content: 'a\n' },
          { type: 'dir', path: 'etc/subtree/nested' },
          { type: 'file', path: 'etc/subtree/nested/b', content: 'b\n' },
          { type: 'dir', path: 'opq' },
          { type: 'file', path: 'opq/lower-1', content: 'hidden by opaque\n' },
          { type: 'dir', path: 'opq/lower-dir' },
          { type: 'file', path: 'opq/lower-dir/x', content: 'hidden by opaque\n' },
          { type: 'file', path: 'opq/replaced', content: 'lower version\n' },
          { type: 'file', path: 'file-becomes-dir', content: 'was a file\n' },
          { type: 'dir', path: 'dir-becomes-file' },
          { type: 'file', path: 'dir-becomes-file/child', content: 'gone with its dir\n' },
          { type: 'dir', path: 'links' },
          { type: 'file', path: 'links/original', content: 'shared inode\n', mode: 0o640, uid: 1000, gid: 1000 },
          { type: 'hardlink', path: 'links/same-dir', target: 'links/original' },
          { type: 'dir', path: 'other' },
          { type: 'hardlink', path: 'other/across-dirs', target: 'links/original' },
          { type: 'file', path: 'links/pair-a', content: 'pair\n' },
          { type: 'hardlink', path: 'links/pair-b', target: 'links/pair-a' },
          { type: 'dir', path: 'meta', mode: 0o700, mtime: 1_600_000_000 },
        ],
      },
      {
        compression: 'none',
        entries: [
          { type: 'whiteout', path: 'etc/to-delete' },
          { type: 'whiteout', path: 'etc/subtree' },
          { type: 'whiteout', path: 'etc/motd' },
          // Same-layer sibling before the opaque marker...
          { type: 'file', path: 'opq/same-layer-before', content: 'added before the marker\n' },
          { type: 'opaque', path: 'opq' },
          // ...and after it: both survive, lower content does not.
          { type: 'file', path: 'opq/same-layer-after', content: 'added after the marker\n' },
          { type: 'file', path: 'opq/replaced', content: 'upper version\n' },
          { type: 'whiteout', path: 'file-becomes-dir' },
          { type: 'dir', path: 'file-becomes-dir' },
          { type: 'file', path: 'file-becomes-dir/inside', content: 'now a dir\n' },
          { type: 'file', path: 'dir-becomes-file', content: 'now a file\n' },
          // The other names of a hardlinked inode survive deleting one of them.
          { type: 'whiteout', path: 'links/pair-a' },
          // Directory metadata replaced by an upper entry, children kept.
          { type: 'dir', path: 'meta', mode: 0o751, uid: 2, gid: 3, mtime: 1_650_000_000 },
          { type: 'file', path: 'meta/added-later', content: 'child of an updated dir\n' },
        ],
      },
      {
        compression: 'zstd',
        entries: [
          // Deleted in layer 1, re-created here with other content and attributes.
          { type: 'file', path: 'etc/motd', content: 'layer 2 motd, re-created\n', mode: 0o600, uid: 42, gid: 43 },
          { type: 'dir', path: 'etc/subtree' },
          { type: 'file', path: 'etc/subtree/new', content: 'fresh subtree\n' },
          { type: 'file', path: 'zstd-only', content: { generate: 'mixed', size: 300_000, seed: 11 } },
        ],
      },
    ],
  },

  special: {
    description: "PAX long names/targets and xattrs, setuid/setgid/sticky, devices, fifos, owners, mtimes, './' names",
    tag: 'special',
    layers: [
      {
        compression: 'gzip',
        namePrefix: './',
        entries: [
          { type: 'dir', path: '', mode: 0o755, mtime: 1_500_000_000 },
          { type: 'dir', path: 'deep' },
          { type: 'dir', path: `deep/${'d'.repeat(60)}` },
          { type: 'dir', path: LONG_DIR },
          { type: 'file', path: LONG_NAME, content: 'a long name needs a PAX path record\n' },
          { type: 'symlink', path: 'deep/long-target', target: `/${LONG_NAME}` },
          { type: 'hardlink', path: 'deep/hardlink-to-long', target: LONG_NAME },
          { type: 'dir', path: 'usr' },
          { type: 'dir', path: 'usr/bin' },
          { type: 'file', path: 'usr/bin/setuid', mode: 0o4755, content: 'setuid\n' },
          { type: 'file', path: 'usr/bin/setgid', mode: 0o2755, gid: 50, content: 'setgid\n' },
          { type: 'file', path: 'usr/bin/all-bits', mode: 0o7755, content: 'suid+sgid+sticky\n' },
          {
            type: 'file',
            path: 'usr/bin/ping',
            mode: 0o755,
            content: 'pretend ping\n',
            xattrs: { 'security.capability': CAP_NET_BIND_SERVICE },
          },
          {
            type: 'file',
            path: 'usr/bin/tagged',
            content: 'has user xattrs\n',
            xattrs: { 'user.comment': 'hello xattr', 'user.binary': Uint8Array.from([0x00, 0xff, 0x80, 0x7f, 0x0a]) },
          },
          { type: 'dir', path: 'var', xattrs: { 'user.dir-attr': 'on a directory' } },
          { type: 'dir', path: 'var/tmp', mode: 0o1777 },
          { type: 'dir', path: 'home' },
          { type: 'dir', path: 'home/user', mode: 0o750, uid: 1000, gid: 1000, uname: 'user', gname: 'user' },
          { type: 'file', path: 'home/user/.profile', uid: 1000, gid: 1000, content: 'export X=1\n' },
          { type: 'file', path: 'home/user/big-ids', uid: 3_000_000, gid: 2_500_000, content: 'ids above 2^21 need PAX\n' },
          { type: 'symlink', path: 'home/user/link', target: '.profile', uid: 1000, gid: 1000, mtime: 1_400_000_000 },
          { type: 'file', path: 'home/user/old', content: 'old\n', mtime: 86_400 },
          { type: 'file', path: 'home/user/future', content: 'future\n', mtime: 4_102_444_800 },
          { type: 'dir', path: 'dev' },
          { type: 'char', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
          { type: 'char', path: 'dev/tty-big-minor', major: 4, minor: 300, mode: 0o620, gid: 5 },
          { type: 'block', path: 'dev/loop0', major: 7, minor: 0, mode: 0o660, gid: 6 },
          { type: 'fifo', path: 'dev/fifo', mode: 0o600 },
          { type: 'file', path: 'unicode-名前-é.txt', content: 'non-ASCII name needs PAX\n' },
        ],
      },
    ],
  },

  large: {
    description: 'a 9 MiB mixed file spanning several 4 MiB checkpoints (gzip), and a multi-member gzip layer',
    tag: 'large',
    layers: [
      {
        compression: 'gzip',
        entries: [
          { type: 'dir', path: 'data' },
          { type: 'file', path: 'data/small-before', content: 'before the big file\n' },
          { type: 'file', path: 'data/big.bin', content: { generate: 'mixed', size: 9 * MiB + 12_345, seed: 5 } },
          { type: 'file', path: 'data/small-after', content: 'after the big file\n' },
        ],
      },
      {
        compression: 'gzip',
        gzipMemberSize: 1 * MiB,
        gzipLevel: 1,
        entries: [
          { type: 'dir', path: 'members' },
          { type: 'file', path: 'members/text.txt', content: { generate: 'text', size: 2 * MiB + 100, seed: 9 } },
          { type: 'file', path: 'members/random.bin', content: { generate: 'random', size: MiB / 2, seed: 10 } },
          { type: 'file', path: 'members/tail', content: 'tail\n' },
        ],
      },
      {
        compression: 'zstd',
        zstdFrameSize: 1 * MiB,
        entries: [
          { type: 'dir', path: 'frames' },
          { type: 'file', path: 'frames/mixed.bin', content: { generate: 'mixed', size: 3 * MiB + 777, seed: 12 } },
          { type: 'file', path: 'frames/tail', content: 'after several zstd frames\n' },
        ],
      },
    ],
  },

  hardlinks: {
    description: 'hardlinks across layers: link to a lower file, lower name deleted or replaced above, groups of 3',
    tag: 'hardlinks',
    layers: [
      {
        compression: 'gzip',
        entries: [
          { type: 'dir', path: 'lower' },
          { type: 'file', path: 'lower/shared', content: 'linked from the next layer\n', mode: 0o755, uid: 7, gid: 8 },
          { type: 'file', path: 'lower/replaced', content: 'old content, kept by the link\n' },
          { type: 'file', path: 'lower/trio', content: 'three names\n' },
          { type: 'hardlink', path: 'lower/trio-2', target: 'lower/trio' },
          { type: 'hardlink', path: 'lower/trio-3', target: 'lower/trio' },
        ],
      },
      {
        compression: 'gzip',
        entries: [
          { type: 'dir', path: 'upper' },
          // Target in a lower layer.
          { type: 'hardlink', path: 'upper/link-to-lower', target: 'lower/shared' },
          { type: 'hardlink', path: 'upper/keeps-old', target: 'lower/replaced' },
          // A link whose target comes earlier in the same tar.
          { type: 'file', path: 'upper/first', content: 'first\n' },
          { type: 'hardlink', path: 'upper/second', target: 'upper/first' },
        ],
      },
      {
        compression: 'gzip',
        entries: [
          { type: 'whiteout', path: 'lower/shared' }, // upper/link-to-lower survives, nlink 1
          { type: 'file', path: 'lower/replaced', content: 'new content, new inode\n' },
          { type: 'whiteout', path: 'lower/trio-2' }, // trio and trio-3 stay linked, nlink 2
          { type: 'file', path: 'upper/ns-mtime', content: 'PAX mtime with nanoseconds\n', mtime: 1_700_000_001, mtimeNsec: 123_456_789 },
        ],
      },
    ],
  },

  multiarch: {
    description: 'an image index with linux/amd64 and linux/arm64 manifests sharing a base layer',
    tag: 'multi',
    layers: [],
    platforms: [
      {
        platform: { os: 'linux', architecture: 'amd64' },
        layers: [
          { compression: 'gzip', entries: [{ type: 'file', path: 'etc/shared', content: 'same in both\n' }] },
          { compression: 'gzip', entries: [{ type: 'file', path: 'etc/arch', content: 'amd64\n' }] },
        ],
        config: { Cmd: ['/bin/sh'] },
      },
      {
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        layers: [
          { compression: 'gzip', entries: [{ type: 'file', path: 'etc/shared', content: 'same in both\n' }] },
          { compression: 'gzip', entries: [{ type: 'file', path: 'etc/arch', content: 'arm64\n' }] },
        ],
        config: { Cmd: ['/bin/sh'] },
      },
    ],
  },
};

export const FIXTURE_NAMES = Object.keys(FIXTURES) as FixtureName[];

/** Writes fixture `name` into the OCI layout at `dir` (tag = the fixture's tag). */
export async function buildFixture(name: FixtureName, dir: string): Promise<BuiltLayout> {
  const spec: FixtureSpec = FIXTURES[name];
  return buildLayout(dir, spec);
}
