// Prefetched bytes used vs wasted: ranges fetched ahead against ranges read (the end-to-end
// figures through a real mount are in packages/runtime/test/profile.test.ts).
import { describe, expect, it } from 'vitest';
import type { Inode } from '@clip/archive-format';
import { PrefetchUsage } from '../src/prefetch-usage.js';

const inode = (ino: number, size: number) => ({ ino, size }) as Inode;

describe('PrefetchUsage', () => {
  it('counts read bytes inside prefetched ranges as used, the rest as wasted; other files do not count', () => {
    const usage = new PrefetchUsage();
    const a = inode(2, 1000);
    const b = inode(3, 500);
    usage.planned([
      {
        inode: a,
        ranges: [
          [0, 400],
          [600, 1000],
        ],
      },
      { inode: b, ranges: [[0, 500]] },
    ]);
    usage.read(a, 100, 200); // inside the first range
    usage.read(a, 350, 300); // 50 bytes in the first, 50 in the second
    usage.read(a, 100, 200); // again: counted once
    usage.read(inode(9, 100), 0, 100); // not prefetched
    expect(usage.totals()).toEqual({ prefetchBytes: 1300, prefetchUsedBytes: 300, prefetchWastedBytes: 1000 });
    usage.read(b, 0, 4096); // past the end of the file: clipped
    expect(usage.totals()).toEqual({ prefetchBytes: 1300, prefetchUsedBytes: 800, prefetchWastedBytes: 500 });
  });
});
