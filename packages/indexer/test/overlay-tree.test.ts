import { describe, expect, it } from 'vitest';
import { LayerFormatError } from '@clip/shared';
import type { Inode } from '@clip/archive-format';
import { OverlayTree, type ArchiveTables } from '../src/overlay/overlay-tree.js';
import type { TarEntry, TarEntryType } from '../src/tar/tar-entry.js';

let offset = 0;
function e(path: string, type: TarEntryType = 'file', extra: Partial<TarEntry> = {}): TarEntry {
  offset += 1024;
  return {
    path,
    type,
    mode: type === 'directory' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    size: type === 'file' ? 10 : 0,
    mtimeSec: 1_700_000_000,
    mtimeNsec: 0,
    devMajor: 0,
    devMinor: 0,
    dataOffset: offset,
    headerOffset: offset - 512,
    ...extra,
  };
}
const dir = (path: string, extra: Partial<TarEntry> = {}) => e(path, 'directory', extra);
const link = (path: string, target: string) => e(path, 'hardlink', { linkTarget: target });
const sym = (path: string, target: string) => e(path, 'symlink', { linkTarget: target });

function build(...layers: TarEntry[][]): ArchiveTables {
  const tree = new OverlayTree();
  layers.forEach((entries, index) => {
    tree.applyLayer(index, `sha256:layer${index}`, entries);
  });
  return tree.toTables();
}

function view(tables: ArchiveTables): Map<string, Inode> {
  return new Map(tables.entries.map((entry) => [entry.path, tables.inodes[entry.ino - 1]!]));
}

function paths(tables: ArchiveTables): string[] {
  return tables.entries.map((entry) => entry.path);
}

describe('OverlayTree', () => {
  it('creates missing parents as root-owned 0755 directories and counts directory links', () => {
    const tables = build([e('a/b/c/file', 'file', { uid: 5, mode: 0o600 }), dir('a/x')]);
    const v = view(tables);
    expect(paths(tables)).toEqual(['/', '/a', '/a/b', '/a/x', '/a/b/c', '/a/b/c/file']);
    expect(v.get('/a/b')).toMatchObject({ type: 'directory', mode: 0o755, uid: 0, gid: 0 });
    expect(v.get('/')!.nlink).toBe(3);
    expect(v.get('/a')!.nlink).toBe(4);
    expect(v.get('/a/b/c')!.nlink).toBe(2);
    expect(v.get('/a/b/c/file')).toMatchObject({ nlink: 1, uid: 5, mode: 0o600, size: 10, data: { layer: 0 } });
  });

  it('the root entry sets the root metadata', () => {
    const v = view(build([dir('', { mode: 0o700, uid: 1 }), e('f')]));
    expect(v.get('/')).toMatchObject({ ino: 1, mode: 0o700, uid: 1, type: 'directory' });
  });

  it('later entries replace earlier ones; directory over directory keeps children', () => {
    const v = view(
      build(
        [dir('d', { mode: 0o700 }), e('d/keep'), e('f', 'file', { size: 1 }), dir('gone'), e('gone/child'), e('becomes-dir')],
        [dir('d', { mode: 0o750, uid: 7 }), e('f', 'file', { size: 2 }), e('gone', 'symlink', { linkTarget: 'x' }), dir('becomes-dir')],
      ),
    );
    expect(v.get('/d')).toMatchObject({ mode: 0o750, uid: 7 });
    expect(v.has('/d/keep')).toBe(true);
    expect(v.get('/f')).toMatchObject({ size: 2, data: { layer: 1 } });
    expect(v.get('/gone')).toMatchObject({ type: 'symlink', linkTarget: 'x', size: 1, mode: 0o777 });
    expect(v.has('/gone/child')).toBe(false);
    expect(v.get('/becomes-dir')!.type).toBe('directory');
  });

  it('a whiteout deletes the lower path and its subtree, never a same-layer entry', () => {
    const v = view(
      build(
        [dir('etc'), e('etc/a'), dir('etc/sub'), e('etc/sub/x'), e('etc/b'), e('top')],
        [e('etc/b'), e('etc/.wh.b'), e('etc/.wh.sub'), e('etc/.wh.a'), e('.wh.top'), e('.wh.never-existed')],
      ),
    );
    expect([...v.keys()]).toEqual(['/', '/etc', '/etc/b']);
    expect(v.get('/etc/b')!.data!.layer).toBe(1);
  });

  it('an opaque marker hides lower content but not same-layer entries, whatever the tar order', () => {
    const v = view(
      build(
        [dir('o'), e('o/lower1'), dir('o/sub', { mode: 0o700 }), e('o/sub/lower2'), dir('o/deep'), e('o/deep/lower3'), e('outside')],
        [e('o/before'), e('o/.wh..wh..opq'), e('o/after'), e('o/sub/new')],
      ),
    );
    expect([...v.keys()]).toEqual(['/', '/o', '/outside', '/o/after', '/o/before', '/o/sub', '/o/sub/new']);
    // A lower directory that holds a same-layer entry stays, with its metadata.
    expect(v.get('/o/sub')!.mode).toBe(0o700);
  });

  it('an opaque marker for a directory that does not exist yet creates it', () => {
    const v = view(build([e('x')], [e('new/.wh..wh..opq')]));
    expect(v.get('/new')!.type).toBe('directory');
  });

  it('hardlinks share one inode with the right nlink, within and across layers', () => {
    const tables = build(
      [dir('bin'), e('bin/python3.11', 'file', { size: 100 }), link('bin/python3', 'bin/python3.11')],
      [link('usr-python', 'bin/python3.11'), link('bin/.wh.nothing', 'bin/python3')].slice(0, 1),
    );
    const v = view(tables);
    const ino = v.get('/bin/python3.11')!.ino;
    expect(v.get('/bin/python3')!.ino).toBe(ino);
    expect(v.get('/usr-python')!.ino).toBe(ino);
    expect(v.get('/bin/python3')).toMatchObject({ nlink: 3, size: 100, data: { layer: 0 } });
    expect(tables.inodes).toHaveLength(3);
  });

  it('a hardlink keeps the old content when its target name is later replaced or whited out', () => {
    const v = view(
      build(
        [e('orig', 'file', { size: 1 }), link('alias', 'orig'), link('alias2', 'orig')],
        [e('orig', 'file', { size: 2 }), e('.wh.alias2')],
      ),
    );
    expect(v.get('/alias')).toMatchObject({ size: 1, nlink: 1, data: { layer: 0 } });
    expect(v.get('/orig')).toMatchObject({ size: 2, nlink: 1, data: { layer: 1 } });
    expect(v.has('/alias2')).toBe(false);
  });

  it('a hardlink to a member later in the same tar is resolved at the end of the layer', () => {
    const v = view(build([link('early', 'late'), e('late')]));
    expect(v.get('/early')!.ino).toBe(v.get('/late')!.ino);
    expect(v.get('/late')!.nlink).toBe(2);
  });

  it('refuses hardlinks to missing targets and to directories', () => {
    expect(() => build([link('x', 'missing')])).toThrow(LayerFormatError);
    expect(() => build([link('x', 'missing')])).toThrow(/sha256:layer0.*"x".*missing/);
    expect(() => build([dir('d'), link('x', 'd')])).toThrow(/hardlink to directory/);
  });

  it('resolves parent symlinks inside the root (usrmerge: bin -> usr/bin)', () => {
    const v = view(
      build(
        [dir('usr'), dir('usr/bin'), sym('bin', 'usr/bin'), sym('lib', '/usr/lib')],
        [e('bin/tool'), e('lib/x/y'), e('.wh.bin')].slice(0, 2),
      ),
    );
    expect(v.has('/usr/bin/tool')).toBe(true);
    expect(v.has('/usr/lib/x/y')).toBe(true);
    expect(v.get('/bin')!.type).toBe('symlink');
    expect(v.has('/bin/tool')).toBe(false);
  });

  it('symlinks escaping with .. stay inside the root', () => {
    const v = view(build([sym('up', '../../../../etc')], [e('up/passwd')]));
    expect(v.has('/etc/passwd')).toBe(true);
  });

  it('refuses an entry whose parent is a file', () => {
    expect(() => build([e('f')], [e('f/child')])).toThrow(/parent "f" is a file/);
  });

  it('numbers inodes in sorted path order, deterministically', () => {
    const layers = () => [[e('z'), dir('a'), e('a/2'), e('a/1'), link('b', 'z'), e('m')]];
    const first = build(...layers());
    offset = 0;
    const second = build(...layers());
    expect(paths(first)).toEqual(['/', '/a', '/b', '/m', '/z', '/a/1', '/a/2']);
    expect(first.entries.map((entry) => entry.ino)).toEqual([1, 2, 3, 4, 3, 5, 6]);
    expect(first.inodes.map((inode) => inode.ino)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(JSON.stringify(second.entries)).toBe(JSON.stringify(first.entries));
  });

  it('sorts names byte-wise', () => {
    expect(paths(build([e('b'), e('B'), e('a-b'), dir('a'), e('a/x'), e('é'), e('_')]))).toEqual([
      '/',
      '/B',
      '/_',
      '/a',
      '/a-b',
      '/b',
      '/é',
      '/a/x',
    ]);
  });
});
