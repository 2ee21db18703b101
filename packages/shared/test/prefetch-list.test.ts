import { describe, expect, it } from 'vitest';
import { parsePrefetchList } from '../src/index.js';

describe('parsePrefetchList', () => {
  it('parses --record lists (whole files and ranges, tabs in names)', () => {
    expect(parsePrefetchList('# comment\n/a\n/b c\t0-65536,131072-140000\n\n/d\te\t5-6\n')).toEqual([
      { path: '/a' },
      {
        path: '/b c',
        ranges: [
          [0, 65536],
          [131072, 140000],
        ],
      },
      { path: '/d\te', ranges: [[5, 6]] },
    ]);
  });

  it('takes a line whose ranges do not parse as a path', () => {
    expect(parsePrefetchList('/x\tnot-ranges\n')).toEqual([{ path: '/x\tnot-ranges' }]);
  });
});
