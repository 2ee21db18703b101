// A whole-blob read (`openBlob`: index, pull-archive, configs; `clip warm`) whose stream breaks
// mid-body moves on: to the next host, resuming with a Range from the byte it broke at, or from
// the start when that host ignores ranges; the digest of what was delivered is verified. Real
// registry, testkit fault proxies as the mirrors.
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '@clip/shared';
import {
  blobBytes,
  buildLayout,
  type BuiltLayout,
  type FaultProxy,
  filesLayer,
  freePort,
  startFaultProxy,
  startRegistry,
  type RunningRegistry,
} from '@clip/testkit';
import type { MirroredSource } from '../src/hosts/mirrored-source.js';
import { warmMirrors } from '../src/hosts/warm.js';
import { openImageSource } from '../src/open.js';

const run = promisify(execFile);
let work: string;
let origin: RunningRegistry;
let built: BuiltLayout;
const stopAfter: Array<{ stop(): Promise<void> }> = [];
const fast = { retries: { retries: 1, baseDelayMs: 10, maxDelayMs: 50 } };
const CUT = 3_000_000;

const layer = () => built.images[0]!.layers[0]!;
const blobPath = () => `/v2/test/img/blobs/${layer().digest}`;

async function hostsDirFor(name: string, mirrors: string[], server = origin.host): Promise<string> {
  const dir = join(work, name, `127.0.0.1_${origin.port}_`);
  await mkdir(dir, { recursive: true });
  const lines = [`server = "http://${server}"`, ''];
  for (const mirror of mirrors) lines.push(`[host."http://${mirror}"]`, '  capabilities = ["pull", "resolve"]', '');
  await writeFile(join(dir, 'hosts.toml'), lines.join('\n'));
  return join(work, name);
}

/** A fault proxy in front of the origin whose first whole GET of the big blob breaks after CUT bytes. */
async function breakingMirror(): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ upstream: { hostname: '127.0.0.1', port: origin.port } });
  stopAfter.push(proxy);
  proxy.script([{ kind: 'reset-mid-body', afterBytes: CUT }], (method, url) => method === 'GET' && url.startsWith(blobPath()));
  return proxy;
}

async function readAll(source: MirroredSource): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await source.openBlob(layer().digest as Digest)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-whole-blob-'));
  origin = await startRegistry();
  built = await buildLayout(join(work, 'layout'), {
    tag: 'v1',
    layers: [filesLayer({ 'big.bin': { generate: 'random', size: 8_000_000, seed: 7 } }, 'none')],
  });
  await run('skopeo', [
    'copy',
    '--quiet',
    '--preserve-digests',
    '--dest-tls-verify=false',
    `oci:${join(work, 'layout')}:v1`,
    `docker://${origin.host}/test/img:v1`,
  ]);
}, 60_000);

afterAll(async () => {
  for (const s of stopAfter.reverse()) await s.stop().catch(() => {});
  await origin?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('whole blob across hosts', () => {
  it('a mirror breaking mid-blob: the server resumes with a Range from where it broke', async () => {
    const mirror = await breakingMirror();
    const source = (await openImageSource(`${origin.host}/test/img:v1`, {
      ...fast,
      hostsDir: await hostsDirFor('resume', [mirror.host]),
    })) as MirroredSource;
    const bytes = await readAll(source);
    const [m, s] = source.hostStats();
    await source.close();
    expect(sha(bytes)).toBe(layer().digest.slice('sha256:'.length));
    expect(mirror.log.filter((r) => r.url.startsWith(blobPath())).map((r) => r.fault)).toEqual(['reset-mid-body']);
    expect(m).toMatchObject({ fallbacks: 1, errors: 1 });
    expect(s).toMatchObject({ fallbacks: 0, errors: 0 });
    // The origin sent only the rest: one 206 of (size - CUT) bytes for this blob.
    const rest = layer().size - CUT;
    const answers = [...origin.logs().matchAll(new RegExp(`"GET ${blobPath()} HTTP/1\\.1" (\\d+) (\\d+)`, 'g'))].map(
      (a) => `${a[1]} ${a[2]}`,
    );
    expect(answers).toContain(`206 ${rest}`);
  }, 30_000);

  it('the next host ignores ranges (200): read from the start, the delivered bytes skipped', async () => {
    const first = await breakingMirror();
    const ignoring = await startFaultProxy({
      upstream: { hostname: '127.0.0.1', port: origin.port },
      rates: { 'ignore-range': 1 },
      match: (req) => typeof req.headers.range === 'string' && /\/blobs\//.test(req.url ?? ''),
    });
    stopAfter.push(ignoring);
    const source = (await openImageSource(`${origin.host}/test/img:v1`, {
      ...fast,
      hostsDir: await hostsDirFor('restart', [first.host, ignoring.host]),
    })) as MirroredSource;
    const bytes = await readAll(source);
    const [m1, m2, s] = source.hostStats();
    await source.close();
    expect(bytes.equals(blobBytes(layer()))).toBe(true);
    expect(m1).toMatchObject({ fallbacks: 1 });
    expect(m2).toMatchObject({ fallbacks: 0, errors: 0 });
    expect(s).toMatchObject({ errors: 0 });
    expect(ignoring.log.filter((r) => r.url.startsWith(blobPath())).map((r) => [r.range, r.fault])).toEqual([
      [`bytes=${CUT}-`, 'ignore-range'],
    ]);
  }, 30_000);

  it('no host left after the break: a clear error naming the blob, no wrong bytes', async () => {
    const mirror = await breakingMirror();
    const down = await freePort();
    const source = (await openImageSource(`${origin.host}/test/img:v1`, {
      ...fast,
      hostsDir: await hostsDirFor('nohost', [mirror.host], `127.0.0.1:${down}`),
    })) as MirroredSource;
    // Resolving goes through the mirror (the server is down); only the blob read breaks.
    await expect(readAll(source)).rejects.toThrow(
      new RegExp(`127\\.0\\.0\\.1:${down}.*${layer().digest}|${layer().digest}.*127\\.0\\.0\\.1:${down}`),
    );
    await source.close();
  }, 30_000);

  it('clip warm --read-through: a pull-through mirror breaking mid-blob is resumed on the same mirror', async () => {
    // The fault proxy sits in front of a real (cold) proxy-mode cache of the origin.
    const cache = await startRegistry({ proxy: { remoteUrl: origin.url } });
    stopAfter.push(cache);
    const mirror = await startFaultProxy({ upstream: { hostname: '127.0.0.1', port: cache.port } });
    stopAfter.push(mirror);
    mirror.script([{ kind: 'reset-mid-body', afterBytes: CUT }], (method, url) => method === 'GET' && url.startsWith(blobPath()));
    const result = await warmMirrors(`${origin.host}/test/img:v1`, {
      ...fast,
      hostsDir: await hostsDirFor('warm', [mirror.host]),
      readThrough: true,
    });
    expect(result.mirrors).toEqual([expect.objectContaining({ mirror: `http://${mirror.host}`, blobs: 2, failed: [] })]);
    expect(result.mirrors[0]!.bytes).toBe(layer().size + built.images[0]!.configSize);
    // The resume asked the same mirror from the byte it broke at; the cache answered it with
    // 206 (stored by then) or 200 (still filling: read from the start, the first CUT bytes skipped).
    const reads = mirror.log.filter((r) => r.url.startsWith(blobPath()));
    expect(reads.map((r) => [r.range, r.fault])).toEqual([
      [undefined, 'reset-mid-body'],
      [`bytes=${CUT}-`, 'none'],
    ]);
    expect([200, 206]).toContain(reads[1]!.status);
  }, 30_000);
});
