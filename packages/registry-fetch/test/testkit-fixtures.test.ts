// Every testkit fixture (gzip, zstd and uncompressed layers; a multi-platform index) resolves
// through LayoutSource to the layers the fixture builder wrote.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFixture, type FixtureName } from '@clip/testkit';
import { openImageSource } from '../src/open.js';

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-fixtures-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const names: FixtureName[] = ['basic', 'layers', 'special', 'multiarch'];

describe.each(names)('testkit fixture %s', (name) => {
  it('resolves every platform to the built manifest and layers', async () => {
    const built = await buildFixture(name, join(work, name));
    const source = await openImageSource(built.ref);
    try {
      for (const image of built.images) {
        const resolved = await source.resolve({ platform: image.platform });
        expect(resolved.manifestDigest).toBe(image.manifestDigest);
        expect(resolved.configDescriptor.digest).toBe(image.configDigest);
        expect(resolved.layers.map((l) => [l.digest, l.diffId, l.size, l.compression])).toEqual(
          image.layers.map((l) => [l.digest, l.diffId, l.size, l.compression]),
        );
        if (built.images.length > 1) expect(resolved.indexDigest).toBe(built.topDigest);
      }
    } finally {
      await source.close();
    }
  });
});
