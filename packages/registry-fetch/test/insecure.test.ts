// Plain-HTTP rules: loopback registries are plain HTTP; any other host is HTTPS with verified
// TLS unless `insecure: true`, which skips verification and falls back to plain HTTP.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type RunningRegistry } from '@clip/testkit';
import { RegistryError } from '@clip/shared';
import { openImageSource } from '../src/open.js';
import { buildLayout, filesLayer, type BuiltLayout } from '@clip/testkit';

const run = promisify(execFile);

/** A non-loopback IPv4 address of this machine, if it has one. */
const address = Object.values(networkInterfaces())
  .flat()
  .find((info) => info && info.family === 'IPv4' && !info.internal)?.address;

let work: string;
let registry: RunningRegistry;
let built: BuiltLayout[];

describe.skipIf(!address)('a registry on a non-loopback address', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-insecure-'));
    registry = await startRegistry({ host: address as string });
    built = [await buildLayout(join(work, 'layout'), { tag: 'v1', layers: [filesLayer({ a: 'a' })] })];
    await run('skopeo', [
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      `oci:${join(work, 'layout')}:v1`,
      `docker://${registry.host}/plain/img:v1`,
    ]);
  });

  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('is spoken to over HTTPS by default, so a plain-HTTP registry fails with a RegistryError', async () => {
    const source = await openImageSource(`${registry.host}/plain/img:v1`, { retries: 0, env: {} });
    try {
      const error = await source.resolve().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RegistryError);
      expect((error as Error).message).toContain(`registry ${registry.host} repository plain/img`);
      expect((error as Error).message).toContain('plain HTTP');
    } finally {
      await source.close();
    }
  });

  it('falls back to plain HTTP with insecure: true', async () => {
    const source = await openImageSource(`${registry.host}/plain/img:v1`, { insecure: true, retries: 0, env: {} });
    try {
      expect((await source.resolve()).manifestDigest).toBe(built[0]!.topDigest);
    } finally {
      await source.close();
    }
  });
});
