import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Digest, DigestMismatchError, LayerNotFoundError, ManifestNotFoundError, PlatformNotFoundError } from '@clip/shared';
import { LayoutSource, OciArchiveSource } from '../src/layout-source.js';
import type { ImageSource } from '../src/image-source.js';
import { readAll } from '../src/verify-stream.js';
import { archiveLayout, blobBytes, buildLayout, filesLayer, type BuiltLayout } from '@clip/testkit';
import { sha256Digest } from '@clip/shared';

const run = promisify(execFile);

let work: string;
let layout: string;
let built: BuiltLayout[];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-layout-test-'));
  layout = join(work, 'layout');
  built = [
    await buildLayout(layout, {
      tag: 'v1',
      layers: [filesLayer({ 'etc/hello': 'hello\n' }), filesLayer({ 'big.bin': { generate: 'random', size: 200_000 } }, 'none')],
      config: { Cmd: ['/bin/sh'], Env: ['PATH=/usr/bin:/bin'] },
    }),
    await buildLayout(layout, {
      tag: 'multi',
      layers: [],
      platforms: [
        { layers: [filesLayer({ arch: 'amd64\n' })], platform: { os: 'linux', architecture: 'amd64' } },
        { layers: [filesLayer({ arch: 'arm64\n' })], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    }),
  ];
  await archiveLayout(layout, join(work, 'image.tar'));
  // A second archive without the './' name prefix, as other tools write them.
  await run('tar', ['-C', layout, '-cf', join(work, 'plain.tar'), 'oci-layout', 'index.json', 'blobs']);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const sources: Array<[string, (tag?: string) => ImageSource]> = [
  ['oci layout', (tag) => new LayoutSource({ kind: 'oci-layout', dir: layout, ...(tag ? { tag } : {}) })],
  ['oci archive', (tag) => new OciArchiveSource({ kind: 'oci-archive', file: join(work, 'image.tar'), ...(tag ? { tag } : {}) })],
  [
    'oci archive without ./',
    (tag) => new OciArchiveSource({ kind: 'oci-archive', file: join(work, 'plain.tar'), ...(tag ? { tag } : {}) }),
  ],
];

describe.each(sources)('%s', (_name, open) => {
  it('resolves a tag to manifest, config and layers with diffIds and compression', async () => {
    const source = open('v1');
    try {
      const image = await source.resolve();
      const expected = built[0]!.images[0]!;
      expect(image.manifestDigest).toBe(expected.manifestDigest);
      expect(sha256Digest(image.manifestBytes)).toBe(image.manifestDigest);
      expect(image.configDescriptor.digest).toBe(expected.configDigest);
      expect(image.indexDigest).toBeUndefined();
      expect(image.layers.map((l) => [l.digest, l.size, l.diffId, l.compression])).toEqual(
        expected.layers.map((l, i) => [l.digest, l.size, l.diffId, i === 0 ? 'gzip' : 'none']),
      );
      expect(image.platform).toEqual({ os: 'linux', architecture: 'amd64' });
      expect(image.config.config?.Cmd).toEqual(['/bin/sh']);
      expect(source.stats().networkBytesReceived).toBe(0);
    } finally {
      await source.close();
    }
  });

  it('reads ranges at start, middle and end, and whole blobs, equal to the blob bytes', async () => {
    const source = open('v1');
    try {
      const blob = built[0]!.images[0]!.layers[1]!;
      const size = blob.size;
      for (const [start, end] of [
        [0, 1000],
        [size / 2 - 17, size / 2 + 4099],
        [size - 513, size],
        [5, 5],
      ] as const) {
        expect((await source.readBlobRange(blob.digest, start, end)).equals(blobBytes(blob).subarray(start, end))).toBe(true);
      }
      expect((await readAll(await source.openBlob(blob.digest))).equals(blobBytes(blob))).toBe(true);
      expect(source.stats().rangeRequests).toBe(3);
      expect(await source.hasBlob(blob.digest)).toBe(true);
      await expect(source.readBlobRange(blob.digest, 0, size + 1)).rejects.toThrow(/outside/);
    } finally {
      await source.close();
    }
  });

  it('resolves the requested platform of an index and lists the available ones otherwise', async () => {
    const source = open('multi');
    try {
      const amd = await source.resolve({ platform: { os: 'linux', architecture: 'amd64' } });
      expect(amd.indexDigest).toBe(built[1]!.topDigest);
      expect(amd.manifestDigest).toBe(built[1]!.images[0]!.manifestDigest);
      const arm = await source.resolve({ platform: { os: 'linux', architecture: 'arm64' } });
      expect(arm.manifestDigest).toBe(built[1]!.images[1]!.manifestDigest);
      expect(arm.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
      const error = await source.resolve({ platform: { os: 'linux', architecture: 's390x' } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PlatformNotFoundError);
      expect((error as Error).message).toMatch(/linux\/s390x.*available: linux\/amd64, linux\/arm64\/v8/);
    } finally {
      await source.close();
    }
  });

  it('names the available tags for an unknown tag, and wants a tag when several exist', async () => {
    for (const [tag, message] of [
      ['nope', /no manifest tagged nope; tags: v1, multi/],
      [undefined, /pick a tag: v1, multi/],
    ] as const) {
      const source = open(tag);
      try {
        const error = await source.resolve().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ManifestNotFoundError);
        expect((error as Error).message).toMatch(message);
      } finally {
        await source.close();
      }
    }
  });

  it('throws LayerNotFoundError naming digest and reference for a missing blob', async () => {
    const source = open('v1');
    try {
      const missing = sha256Digest(Buffer.from('not there')) as Digest;
      const error = await source.readBlobRange(missing, 0, 1).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LayerNotFoundError);
      expect((error as Error).message).toContain('layer not found');
      expect((error as Error).message).toContain(missing);
      expect((error as Error).message).toContain(source.reference);
      expect(await source.hasBlob(missing)).toBe(false);
    } finally {
      await source.close();
    }
  });
});

describe('layout edge cases', () => {
  it('defaults to the only manifest, resolves by digest, and detects tampered blobs', async () => {
    const dir = join(work, 'single');
    const [entry] = [await buildLayout(dir, { tag: 'only', layers: [filesLayer({ a: 'a' })] })];
    const byDefault = new LayoutSource({ kind: 'oci-layout', dir });
    expect((await byDefault.resolve()).manifestDigest).toBe(entry!.topDigest);
    const byDigest = new LayoutSource({ kind: 'oci-layout', dir, digest: entry!.topDigest as Digest });
    expect((await byDigest.resolve()).manifestDigest).toBe(entry!.topDigest);

    const layer = entry!.images[0]!.layers[0]!;
    await writeFile(join(dir, 'blobs', 'sha256', layer.digest.slice(7)), Buffer.concat([blobBytes(layer), Buffer.from('x')]));
    await expect(readAll(await byDefault.openBlob(layer.digest as Digest))).rejects.toBeInstanceOf(DigestMismatchError);
    await byDefault.close();
    await byDigest.close();
  });

  it('reads a layout written by skopeo from an oci-archive written by skopeo', async () => {
    const archive = join(work, 'skopeo.tar');
    await run('skopeo', ['copy', '--quiet', `oci:${layout}:v1`, `oci-archive:${archive}:copied`]);
    const source = new OciArchiveSource({ kind: 'oci-archive', file: archive, tag: 'copied' });
    try {
      const image = await source.resolve();
      expect(image.layers.map((l) => l.diffId)).toEqual(built[0]!.images[0]!.layers.map((l) => l.diffId));
      const layer = image.layers[0]!;
      expect(sha256Digest(await readAll(await source.openBlob(layer.digest)))).toBe(layer.digest);
    } finally {
      await source.close();
    }
  });

  it('reports a directory that is not a layout', async () => {
    const source = new LayoutSource({ kind: 'oci-layout', dir: join(work, 'nothing-here') });
    await expect(source.resolve()).rejects.toThrow(/no index.json/);
  });
});
