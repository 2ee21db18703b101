// Referrers against the real registry (distribution 2.8: no referrers API, so the fallback
// tag schema), plus the API path through a proxy that answers the referrers endpoint.
import { execFile } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type RunningRegistry } from '@clip/testkit';
import { parseRegistryReference, sha256Digest } from '@clip/shared';
import type { Descriptor } from '../src/image-source.js';
import { openImageSource } from '../src/open.js';
import { openRegistryTarget, pushImage } from '../src/push.js';
import { EMPTY_CONFIG_DESCRIPTOR, listReferrers, parseArtifactManifest, pushReferrer, referrersTag } from '../src/referrers.js';
import { RegistrySource } from '../src/registry-source.js';
import { buildLayout, filesLayer } from '@clip/testkit';

const run = promisify(execFile);
const TYPE_A = 'application/vnd.example.a';
const TYPE_B = 'application/vnd.example.b';

let work: string;
let registry: RunningRegistry;
let subject: Descriptor;
const repo = () => `${registry.host}/refs/img`;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-referrers-test-'));
  registry = await startRegistry();
  await buildLayout(join(work, 'layout'), { tag: 'v1', layers: [filesLayer({ 'etc/hello': 'hello\n' })] });
  const source = await openImageSource(`oci:${join(work, 'layout')}:v1`);
  try {
    const pushed = await pushImage(source, `${repo()}:v1`);
    const top = await source.topManifest();
    subject = { mediaType: top.mediaType, digest: pushed.digest, size: top.bytes.length };
  } finally {
    await source.close();
  }
});

afterAll(async () => {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('referrers on a registry without the referrers API', () => {
  it('pushes an artifact, lists it through the fallback tag, keeps other referrers, and re-pushes idempotently', async () => {
    const target = openRegistryTarget(`${repo()}:v1`);
    const source = new RegistrySource(parseRegistryReference(`${repo()}:v1`));
    try {
      expect((await listReferrers(source.client, subject.digest)).referrers).toEqual([]);
      const a = await pushReferrer(target, { artifactType: TYPE_A, subject, blob: { bytes: Buffer.from('payload a'), mediaType: TYPE_A } });
      expect(a).toMatchObject({ blobResult: 'uploaded', fallbackTag: referrersTag(subject.digest) });
      expect(a.fallbackTag).toBe(`sha256-${subject.digest.slice('sha256:'.length)}`);
      const b = await pushReferrer(target, { artifactType: TYPE_B, subject, blob: { bytes: Buffer.from('payload b'), mediaType: TYPE_B } });
      const again = await pushReferrer(target, {
        artifactType: TYPE_A,
        subject,
        blob: { bytes: Buffer.from('payload a'), mediaType: TYPE_A },
      });
      expect(again.manifest.digest).toBe(a.manifest.digest);
      expect(again.blobResult).toBe('exists');

      const all = await listReferrers(source.client, subject.digest);
      expect(all.via).toBe('tag');
      expect(all.referrers.map((d) => [d.digest, d.artifactType])).toEqual([
        [b.manifest.digest, TYPE_B],
        [a.manifest.digest, TYPE_A],
      ]);
      const onlyA = await listReferrers(source.client, subject.digest, { artifactType: TYPE_A });
      expect(onlyA.referrers.map((d) => d.digest)).toEqual([a.manifest.digest]);

      // The artifact manifest is an OCI image manifest with artifactType, empty config and subject.
      const manifest = await source.fetchManifest(a.manifest.digest);
      const parsed = parseArtifactManifest(manifest.bytes, 'artifact');
      expect(parsed).toMatchObject({ artifactType: TYPE_A, config: EMPTY_CONFIG_DESCRIPTOR, subject: { digest: subject.digest } });
      expect(parsed.layers).toEqual([{ mediaType: TYPE_A, digest: sha256Digest(Buffer.from('payload a')), size: 9 }]);

      // skopeo reads the fallback tag as an OCI index.
      const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${repo()}:${a.fallbackTag}`]);
      const index = JSON.parse(stdout) as { mediaType: string; manifests: Array<{ digest: string; artifactType?: string }> };
      expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
      expect(index.manifests.map((m) => m.artifactType)).toEqual([TYPE_B, TYPE_A]);
    } finally {
      await target.close();
      await source.close();
    }
  });
});

describe('referrers API', () => {
  it('uses the API when the registry answers it, filtering by artifact type itself', async () => {
    const requests: string[] = [];
    const answer = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256Digest('x'), size: 1, artifactType: TYPE_B },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256Digest('y'), size: 2, artifactType: TYPE_A },
      ],
    });
    // Answers the referrers endpoint (ignoring the filter, as registries may); the rest goes to the real registry.
    const server = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      if (req.url?.includes('/referrers/')) {
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' });
        res.end(answer);
        return;
      }
      const upstream = httpRequest(
        { hostname: '127.0.0.1', port: registry.port, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const source = new RegistrySource(parseRegistryReference(`127.0.0.1:${port}/refs/img:v1`));
    try {
      const found = await listReferrers(source.client, subject.digest, { artifactType: TYPE_A });
      expect(found).toEqual({ via: 'api', referrers: [expect.objectContaining({ digest: sha256Digest('y'), artifactType: TYPE_A })] });
      expect(requests).toEqual([`GET /v2/refs/img/referrers/${subject.digest}?artifactType=${encodeURIComponent(TYPE_A)}`]);
    } finally {
      await source.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
