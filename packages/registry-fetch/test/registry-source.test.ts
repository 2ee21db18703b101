import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, startFaultProxy, startRegistry, type RunningRegistry } from '@clip/testkit';
import { type Digest, LayerNotFoundError, ManifestNotFoundError, PlatformNotFoundError, TimeoutError } from '@clip/shared';
import { openImageSource } from '../src/open.js';
import { RegistrySource } from '../src/registry-source.js';
import { readAll } from '../src/verify-stream.js';
import { blobBytes, buildLayout, filesLayer, type BuiltLayout } from '@clip/testkit';
import { sha256Digest } from '@clip/shared';

const run = promisify(execFile);

let work: string;
let registry: RunningRegistry;
let proxy: FaultProxy;
let built: BuiltLayout[];

const fast = { retries: { retries: 3, baseDelayMs: 10, maxDelayMs: 50 } };

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-registry-source-'));
  registry = await startRegistry();
  proxy = await startFaultProxy({ upstream: { hostname: '127.0.0.1', port: registry.port } });
  const layout = join(work, 'layout');
  built = [
    await buildLayout(layout, {
      tag: 'v1',
      layers: [filesLayer({ 'etc/hello': 'hello\n' }), filesLayer({ 'big.bin': { generate: 'random', size: 300_000, seed: 7 } }, 'none')],
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
  const copy = (from: string, to: string, all = false) =>
    run('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', ...(all ? ['--all'] : []), from, to]);
  await copy(`oci:${layout}:v1`, `docker://${registry.host}/test/img:v1`);
  await copy(`oci:${layout}:multi`, `docker://${registry.host}/test/multi:1`, true);
});

afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

const bigLayer = () => built[0]!.images[0]!.layers[1]!;

describe('RegistrySource against a real registry', () => {
  it('resolves a skopeo-pushed image anonymously, digests intact', async () => {
    const source = await openImageSource(`${registry.host}/test/img:v1`);
    try {
      expect(source.kind).toBe('registry');
      const image = await source.resolve();
      expect(image.manifestDigest).toBe(built[0]!.images[0]!.manifestDigest);
      expect(image.layers.map((l) => [l.digest, l.diffId, l.compression])).toEqual(
        built[0]!.images[0]!.layers.map((l, i) => [l.digest, l.diffId, i === 0 ? 'gzip' : 'none']),
      );
      expect(source.stats().networkBytesReceived).toBeGreaterThan(0);
    } finally {
      await source.close();
    }
  });

  it('reads ranges at start, middle and end equal to the local blob bytes, and whole blobs', async () => {
    const source = await openImageSource(`${registry.host}/test/img:v1`);
    try {
      const [digest, bytes] = [bigLayer().digest, blobBytes(bigLayer())];
      const size = bytes.length;
      const ranges: Array<[number, number]> = [
        [0, 4096],
        [size / 2 - 1000, size / 2 + 77_777],
        [size - 1, size],
      ];
      for (const [start, end] of ranges) {
        expect((await source.readBlobRange(digest as Digest, start, end)).equals(bytes.subarray(start, end))).toBe(true);
      }
      expect(source.stats().rangeRequests).toBe(3);
      expect((await readAll(await source.openBlob(digest as Digest))).equals(bytes)).toBe(true);
      expect(await source.hasBlob(digest as Digest)).toBe(true);
    } finally {
      await source.close();
    }
  });

  it('reports a missing blob as layer not found, naming digest and reference', async () => {
    const source = await openImageSource(`${registry.host}/test/img:v1`);
    try {
      const missing = sha256Digest(Buffer.from('nothing')) as Digest;
      for (const attempt of [() => source.readBlobRange(missing, 0, 10), () => source.openBlob(missing)]) {
        const error = await attempt().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LayerNotFoundError);
        expect((error as Error).message).toContain('layer not found');
        expect((error as Error).message).toContain(missing);
        expect((error as Error).message).toContain(`${registry.host}/test/img:v1`);
      }
      expect(await source.hasBlob(missing)).toBe(false);
      await expect((await openImageSource(`${registry.host}/test/img:nope`)).resolve()).rejects.toBeInstanceOf(ManifestNotFoundError);
    } finally {
      await source.close();
    }
  });

  it('resolves the requested platform of a multi-platform index; unknown lists the available', async () => {
    const source = await openImageSource(`${registry.host}/test/multi:1`, { platform: { os: 'linux', architecture: 'arm64' } });
    try {
      const arm = await source.resolve();
      expect(arm.manifestDigest).toBe(built[1]!.images[1]!.manifestDigest);
      expect(arm.indexDigest).toBe(built[1]!.topDigest);
      const amd = await source.resolve({ platform: { os: 'linux', architecture: 'amd64' } });
      expect(amd.manifestDigest).toBe(built[1]!.images[0]!.manifestDigest);
      const error = await source.resolve({ platform: { os: 'windows', architecture: 'amd64' } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PlatformNotFoundError);
      expect((error as Error).message).toContain('available: linux/amd64, linux/arm64/v8');
    } finally {
      await source.close();
    }
  });
});

describe('RegistrySource through a fault-injecting proxy', () => {
  const isBlob = (_method: string, url: string) => url.includes('/blobs/');

  it('survives a reset, a 503 and a 429 with Retry-After, ending with the right bytes', async () => {
    const source = await openImageSource(`${proxy.host}/test/img:v1`, fast);
    try {
      const [digest, bytes] = [bigLayer().digest, blobBytes(bigLayer())];
      proxy.script(
        [{ kind: 'reset' }, { kind: 'status', status: 503 }, { kind: 'status', status: 429, headers: { 'retry-after': '1' } }],
        isBlob,
      );
      const before = proxy.log.length;
      const range = await source.readBlobRange(digest as Digest, 1000, 200_000);
      expect(range.equals(bytes.subarray(1000, 200_000))).toBe(true);
      expect(proxy.log.slice(before).map((entry) => entry.fault)).toEqual(['reset', 'status', 'status', 'none']);
    } finally {
      await source.close();
    }
  });

  it('takes the range out of a 200 answer when the server ignores Range', async () => {
    const source = await openImageSource(`${proxy.host}/test/img:v1`, fast);
    try {
      const [digest, bytes] = [bigLayer().digest, blobBytes(bigLayer())];
      for (const [start, end] of [
        [0, 10],
        [150_000, 150_100],
        [bytes.length - 100, bytes.length],
      ] as const) {
        proxy.script([{ kind: 'ignore-range' }], isBlob);
        expect((await source.readBlobRange(digest as Digest, start, end)).equals(bytes.subarray(start, end))).toBe(true);
      }
    } finally {
      await source.close();
    }
  });

  it('resumes a whole-blob stream cut mid-body with a Range request', async () => {
    const source = await openImageSource(`${proxy.host}/test/img:v1`, fast);
    try {
      const [digest, bytes] = [bigLayer().digest, blobBytes(bigLayer())];
      proxy.script([{ kind: 'reset-mid-body', afterBytes: 100_000 }], isBlob);
      const before = proxy.log.length;
      expect((await readAll(await source.openBlob(digest as Digest))).equals(bytes)).toBe(true);
      const resumed = proxy.log.slice(before).find((entry) => entry.range !== undefined);
      expect(resumed?.range).toMatch(/^bytes=\d+-$/);
    } finally {
      await source.close();
    }
  });

  it('gives up after the bounded retries with a RegistryError naming the registry and blob', async () => {
    const source = await openImageSource(`${proxy.host}/test/img:v1`, { retries: { retries: 2, baseDelayMs: 5 } });
    try {
      const { digest } = bigLayer();
      proxy.script(
        Array.from({ length: 3 }, () => ({ kind: 'status' as const, status: 500 })),
        isBlob,
      );
      const error = await source.readBlobRange(digest as Digest, 0, 10).catch((e: unknown) => e);
      expect((error as Error).message).toMatch(
        new RegExp(`registry ${proxy.host} repository test/img: GET blob ${digest}.*HTTP 500.*after 3 attempts`),
      );
    } finally {
      proxy.script([]);
      await source.close();
    }
  });
});

describe('timeouts', () => {
  let server: Server;
  let host: string;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    // Never answers manifest requests; for blob ranges sends headers and 10 bytes, then stalls.
    server = createServer((req, res) => {
      if (!req.url?.includes('/blobs/')) return;
      res.writeHead(206, { 'content-range': 'bytes 0-999/5000', 'content-length': '1000' });
      res.write(Buffer.alloc(10));
    });
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('a server that never answers gives TimeoutError naming the registry', async () => {
    const source = new RegistrySource(
      { kind: 'registry', registry: host, repository: 'silent/repo', tag: 'latest' },
      { timeouts: { headersMs: 300 }, retries: { retries: 1, baseDelayMs: 10 } },
    );
    try {
      const error = await source.resolve().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TimeoutError);
      expect((error as Error).message).toContain(`registry ${host} repository silent/repo`);
      expect((error as Error).message).toContain('no response within 300 ms');
    } finally {
      await source.close();
    }
  });

  it('a body that stalls gives TimeoutError', async () => {
    const source = new RegistrySource(
      { kind: 'registry', registry: host, repository: 'silent/repo', tag: 'latest' },
      { timeouts: { bodyMs: 300 }, retries: 0 },
    );
    try {
      const digest = sha256Digest(Buffer.from('whatever')) as Digest;
      const error = await source.readBlobRange(digest, 0, 1000).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TimeoutError);
      expect((error as Error).message).toContain(
        `registry ${host} repository silent/repo: GET blob ${digest} bytes 0-999: response body stalled for 300 ms`,
      );
    } finally {
      await source.close();
    }
  });
});
