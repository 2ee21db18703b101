import { describe, expect, it } from 'vitest';
import type { ClipArchive } from '../src/archive.js';
import { layerRangesOf } from '../src/layer-ranges.js';
import type { ArchiveLayer, Inode } from '../src/model.js';

const file = (ino: number, size: number, layer: number, offset: number): Inode => ({
  ino,
  type: 'file',
  mode: 0o644,
  uid: 0,
  gid: 0,
  size,
  mtimeSec: 0,
  mtimeNsec: 0,
  rdevMajor: 0,
  rdevMinor: 0,
  nlink: 1,
  data: { layer, offset },
});
const inodes: Record<string, Inode> = {
  '/a': file(2, 1000, 0, 5000),
  '/b': file(3, 300, 0, 6000),
  '/c': file(4, 100, 1, 0),
  '/dir': { ...file(5, 0, 0, 0), type: 'directory', data: undefined },
};
const archive: Pick<ClipArchive, 'layers' | 'lookup'> = {
  layers: [{} as ArchiveLayer, {} as ArchiveLayer],
  lookup: (path) => inodes[path],
};

describe('layerRangesOf', () => {
  it('maps listed file ranges (whole file when none) to merged layer ranges, clamped at the file end', () => {
    const result = layerRangesOf(archive, [
      { path: '/b', ranges: [[0, 65536]] },
      { path: '/a', ranges: [[900, 1000]] },
      { path: '/a', ranges: [[0, 100]] },
      { path: '/c' },
      { path: '/dir' },
      { path: '/missing' },
    ]);
    expect(result).toEqual({
      byLayer: [
        [
          [5000, 5100],
          [5900, 6300],
        ],
        [[0, 100]],
      ],
      files: 4,
      unresolved: 2,
    });
  });
});
