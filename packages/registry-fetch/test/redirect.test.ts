// Blob GETs redirected to another origin (as registries do to object storage): followed,
// and the registry's Authorization is never sent to the other host.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '@clip/shared';
import { RegistrySource } from '../src/registry-source.js';
import { readAll } from '../src/verify-stream.js';
import { generateContent } from '@clip/testkit';
import { sha256Digest } from '@clip/shared';

const blob = Buffer.from(generateContent({ generate: 'random', size: 50_000, seed: 11 }));
const digest = sha256Digest(blob) as Digest;
const seenByStorage: IncomingHttpHeaders[] = [];
const seenByRegistry: IncomingHttpHeaders[] = [];
let registry: Server;
let storage: Server;

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

beforeAll(async () => {
  storage = createServer((req, res) => {
    seenByStorage.push(req.headers);
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers['range'] ?? '');
    if (range) {
      const start = Number(range[1]);
      const end = Number(range[2]);
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${blob.length}`, 'content-length': String(end - start + 1) });
      res.end(blob.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { 'content-length': String(blob.length) });
    res.end(blob);
  });
  const storagePort = await listen(storage);
  registry = createServer((req, res) => {
    seenByRegistry.push(req.headers);
    if (req.headers['authorization'] !== `Basic ${Buffer.from('u:p').toString('base64')}`) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' });
      res.end();
      return;
    }
    res.writeHead(307, { location: `http://127.0.0.1:${storagePort}/storage/blob?sig=abc` });
    res.end();
  });
  await listen(registry);
});

afterAll(async () => {
  await new Promise<void>((resolve) => registry.close(() => resolve()));
  await new Promise<void>((resolve) => storage.close(() => resolve()));
});

describe('blob redirects', () => {
  it('follows them for ranges and whole blobs without forwarding Authorization', async () => {
    const host = `127.0.0.1:${(registry.address() as AddressInfo).port}`;
    const source = new RegistrySource(
      { kind: 'registry', registry: host, repository: 'r/x', tag: 'latest' },
      { credentials: { username: 'u', password: 'p' }, env: {} },
    );
    try {
      expect((await source.readBlobRange(digest, 100, 2000)).equals(blob.subarray(100, 2000))).toBe(true);
      expect((await readAll(await source.openBlob(digest))).equals(blob)).toBe(true);
      expect(seenByStorage.length).toBe(2);
      expect(seenByStorage.every((headers) => headers['authorization'] === undefined)).toBe(true);
      expect(seenByRegistry.some((headers) => headers['authorization'] !== undefined)).toBe(true);
    } finally {
      await source.close();
    }
  });
});
