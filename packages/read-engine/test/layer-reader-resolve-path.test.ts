import { describe, expect, it } from 'vitest';
import type { Inode } from '@clip/archive-format';
import { PathNotFoundError } from '@clip/shared';
import { resolveImagePath } from '../src/resolve-path.js';

function node(ino: number, type: Inode['type'], linkTarget?: string): Inode {
  return {
    ino,
    type,
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    mtimeSec: 0,
    mtimeNsec: 0,
    rdevMajor: 0,
    rdevMinor: 0,
    nlink: 1,
    ...(linkTarget ? { linkTarget } : {}),
  };
}

const table = new Map<string, Inode>([
  ['/', node(1, 'directory')],
  ['/usr', node(2, 'directory')],
  ['/usr/bin', node(3, 'directory')],
  ['/usr/bin/python3.11', node(4, 'file')],
  ['/usr/bin/python3', node(5, 'symlink', 'python3.11')],
  ['/bin', node(6, 'symlink', 'usr/bin')],
  ['/abs', node(7, 'symlink', '/usr/bin/python3')],
  ['/up', node(8, 'symlink', '../../../usr/bin/python3')],
  ['/loop', node(9, 'symlink', 'loop')],
]);
const archive = { lookup: (path: string) => table.get(path) };

describe('resolveImagePath', () => {
  it('follows relative, absolute and directory symlinks inside the image', () => {
    expect(resolveImagePath(archive, '/bin/python3').path).toBe('/usr/bin/python3.11');
    expect(resolveImagePath(archive, '/abs').inode.ino).toBe(4);
    expect(resolveImagePath(archive, '/up').path).toBe('/usr/bin/python3.11');
    expect(resolveImagePath(archive, '/usr/./bin/../bin/python3').inode.ino).toBe(4);
    expect(resolveImagePath(archive, '/').inode.ino).toBe(1);
  });

  it('fails on missing paths, files used as directories and loops', () => {
    expect(() => resolveImagePath(archive, '/nope')).toThrow(PathNotFoundError);
    expect(() => resolveImagePath(archive, '/usr/bin/python3.11/x')).toThrow(PathNotFoundError);
    expect(() => resolveImagePath(archive, '/loop')).toThrow(/too many levels/);
  });
});
