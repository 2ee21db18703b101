import { execFile } from 'node:child_process';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, startFaultProxy, startRegistry, type RunningRegistry } from '@clip/testkit';
import type { Digest } from '@clip/shared';
import { openImageSource } from '../src/open.js';
import { openRegistryTarget, pushBlob, pushImage, pushManifest, type PushProgress } from '../src/push.js';
import { readAll } from '../src/verify-stream.js';
import { blobBytes, buildLayout, filesLayer, type BuiltLayout } from '@clip/testkit';
import { sha256Digest } from '@clip/shared';

const run = promisify(execFile);

let work: string;
let layout: string;
let registry: RunningRegistry;
let proxy: FaultProxy;
let built: BuiltLayout[];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-push-test-'));
  registry = await startRegistry();
  proxy = await startFaultProxy({ upstream: { hostname: '127.0.0.1', port: registry.port } });
  layout = join(work, 'layout');
  built = [
    await buildLayout(layout, {
      tag: 'v1',
      layers: [filesLayer({ 'etc/hello': 'hello\n' }), filesLayer({ 'big.bin': { generate: 'random', size: 300_000, seed: 3 } }, 'none')],
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
});

afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

async function skopeoRawDigest(reference: string): Promise<Digest> {
  const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reference}`], { encoding: 'buffer' });
  return sha256Digest(stdout as unknown as Buffer) as Digest;
}

describe('pushImage', () => {
  it('pushes a layout so that skopeo sees identical digests, and a second push uploads nothing', async () => {
    const source = await openImageSource(`oci:${layout}:v1`);
    const events: PushProgress[] = [];
    try {
      const first = await pushImage(source, `${registry.host}/pushed/img:v1`, { onProgress: (p) => events.push(p) });
      const image = built[0]!.images[0]!;
      expect(first).toMatchObject({ digest: image.manifestDigest, blobsUploaded: 3, blobsSkipped: 0, manifestsPushed: 1 });
      expect(first.bytesUploaded).toBe(image.configSize + image.layers.reduce((sum, l) => sum + l.size, 0));
      expect(events.at(-1)).toMatchObject({ event: 'done', blobsDone: 3, bytesDone: first.bytesUploaded });
      expect(await skopeoRawDigest(`${registry.host}/pushed/img:v1`)).toBe(image.manifestDigest);

      // skopeo copies it back into a layout: the same manifest, config and layer bytes.
      const back = join(work, 'back');
      await run('skopeo', [
        'copy',
        '--quiet',
        '--preserve-digests',
        '--src-tls-verify=false',
        `docker://${registry.host}/pushed/img:v1`,
        `oci:${back}:v1`,
      ]);
      const index = JSON.parse(await readFile(join(back, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      expect(index.manifests[0]!.digest).toBe(image.manifestDigest);
      for (const blob of [{ digest: image.configDigest }, ...image.layers]) {
        expect(sha256Digest(await readFile(join(back, 'blobs', 'sha256', blob.digest.slice(7))))).toBe(blob.digest);
      }

      const second = await pushImage(source, `${registry.host}/pushed/img:v1`);
      expect(second).toMatchObject({ blobsUploaded: 0, blobsSkipped: 3, bytesUploaded: 0 });
    } finally {
      await source.close();
    }
  });

  it('pushes every platform of an index, readable per platform', async () => {
    const source = await openImageSource(`oci:${layout}:multi`);
    try {
      const result = await pushImage(source, `${registry.host}/pushed/multi:1`);
      expect(result).toMatchObject({ digest: built[1]!.topDigest, manifestsPushed: 3, blobsUploaded: 4 });
      expect(await skopeoRawDigest(`${registry.host}/pushed/multi:1`)).toBe(built[1]!.topDigest);
      const remote = await openImageSource(`${registry.host}/pushed/multi:1`);
      try {
        const arm = await remote.resolve({ platform: { os: 'linux', architecture: 'arm64' } });
        expect(arm.manifestDigest).toBe(built[1]!.images[1]!.manifestDigest);
      } finally {
        await remote.close();
      }
    } finally {
      await source.close();
    }
  });

  it('uploads large blobs in PATCH chunks', async () => {
    const source = await openImageSource(`oci:${layout}:v1`);
    try {
      const result = await pushImage(source, `${registry.host}/chunked/img:v1`, { monolithicLimit: 64 * 1024, chunkSize: 50_000 });
      expect(result.blobsUploaded).toBe(3);
      const remote = await openImageSource(`${registry.host}/chunked/img:v1`);
      try {
        const big = built[0]!.images[0]!.layers[1]!;
        expect((await readAll(await remote.openBlob(big.digest as Digest))).equals(blobBytes(big))).toBe(true);
      } finally {
        await remote.close();
      }
    } finally {
      await source.close();
    }
  });

  it('mounts blobs across repositories of the same registry instead of uploading', async () => {
    const source = await openImageSource(`${registry.host}/pushed/img:v1`);
    try {
      const result = await pushImage(source, `${registry.host}/mounted/img:v1`);
      expect(result).toMatchObject({ blobsMounted: 3, blobsUploaded: 0, bytesUploaded: 0 });
      expect(await skopeoRawDigest(`${registry.host}/mounted/img:v1`)).toBe(built[0]!.images[0]!.manifestDigest);
    } finally {
      await source.close();
    }
  });

  it('restarts a blob upload that failed with a 503 or a reset', async () => {
    const source = await openImageSource(`oci:${layout}:v1`);
    try {
      proxy.script([{ kind: 'status', status: 503 }, { kind: 'reset' }], (method) => method === 'PUT' || method === 'PATCH');
      const before = proxy.log.length;
      const result = await pushImage(source, `${proxy.host}/flaky/img:v1`, { concurrency: 1, retries: { retries: 3, baseDelayMs: 10 } });
      expect(result.blobsUploaded).toBe(3);
      expect(
        proxy.log
          .slice(before)
          .map((entry) => entry.fault)
          .filter((fault) => fault !== 'none'),
      ).toEqual(['status', 'reset']);
      expect(await skopeoRawDigest(`${registry.host}/flaky/img:v1`)).toBe(built[0]!.images[0]!.manifestDigest);
    } finally {
      proxy.script([]);
      await source.close();
    }
  });

  it('pushBlob and pushManifest push an artifact by hand', async () => {
    const target = openRegistryTarget(`${registry.host}/artifacts/thing:v1`);
    try {
      const data = Buffer.from('clip archive bytes');
      const config = Buffer.from('{}');
      expect(await pushBlob(target, { digest: sha256Digest(data) as Digest, size: data.length, content: data })).toBe('uploaded');
      expect(await pushBlob(target, { digest: sha256Digest(config) as Digest, size: config.length, content: config })).toBe('uploaded');
      expect(await pushBlob(target, { digest: sha256Digest(data) as Digest, size: data.length, content: data })).toBe('exists');
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          artifactType: 'application/vnd.clip.archive.v1',
          config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256Digest(config), size: config.length },
          layers: [{ mediaType: 'application/vnd.clip.archive.v1', digest: sha256Digest(data), size: data.length }],
        }),
      );
      const digest = await pushManifest(target, { bytes: manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json' }, 'v1');
      expect(digest).toBe(sha256Digest(manifest));
      expect(await skopeoRawDigest(`${registry.host}/artifacts/thing:v1`)).toBe(digest);
    } finally {
      await target.close();
    }
  });
});
