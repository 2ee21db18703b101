import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type RunningRegistry, writeDockerConfig } from '@clip/testkit';
import { AuthError } from '@clip/shared';
import { openImageSource } from '../src/open.js';
import { pushImage } from '../src/push.js';
import { buildLayout, filesLayer, type BuiltLayout } from '@clip/testkit';
import { startTokenServer, type TokenServer } from './helpers/token-server.js';

const USER = 'bob';
const PASSWORD = 'tok-Pw-4471';

let work: string;
let tokens: TokenServer;
let registry: RunningRegistry;
let built: BuiltLayout[];
const isolated = () => ({ env: {}, dockerConfigDir: join(work, 'no-docker') });

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-bearer-test-'));
  tokens = await startTokenServer({ username: USER, password: PASSWORD });
  registry = await startRegistry({
    auth: { kind: 'token', realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.rootCertBundle },
  });
  built = [await buildLayout(join(work, 'layout'), { tag: 'v1', layers: [filesLayer({ a: 'a\n' }), filesLayer({ b: 'b\n' })] })];
});

afterAll(async () => {
  await registry?.stop();
  await tokens?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('bearer token auth against the real registry', () => {
  it('pushes with credentials, pulls anonymously, caches tokens per scope', async () => {
    const layout = await openImageSource(`oci:${join(work, 'layout')}:v1`);
    try {
      const pushed = await pushImage(layout, `${registry.host}/tok/img:v1`, {
        ...isolated(),
        credentials: { username: USER, password: PASSWORD },
      });
      expect(pushed.blobsUploaded).toBe(3);
    } finally {
      await layout.close();
    }
    const pushTokenLog = tokens.log.filter((entry) => entry.user === USER);
    // One token for the push scope, reused for every blob and manifest (the log says which scopes if not).
    expect(pushTokenLog.length, JSON.stringify(pushTokenLog)).toBe(1);

    const before = tokens.log.length;
    const source = await openImageSource(`${registry.host}/tok/img:v1`, isolated());
    try {
      const image = await source.resolve();
      expect(image.manifestDigest).toBe(built[0]!.topDigest);
      const layer = image.layers[0]!;
      await source.readBlobRange(layer.digest, 0, 10);
      await source.readBlobRange(layer.digest, 5, 20);
      const anonymous = tokens.log.slice(before);
      expect(anonymous).toEqual([{ user: 'anonymous', scopes: ['repository:tok/img:pull'], granted: true }]);
    } finally {
      await source.close();
    }
  });

  it('anonymous push is denied with AuthError; wrong password is refused by the token server', async () => {
    const layout = await openImageSource(`oci:${join(work, 'layout')}:v1`);
    try {
      const anonymous = await pushImage(layout, `${registry.host}/tok/other:v1`, isolated()).catch((e: unknown) => e);
      expect(anonymous).toBeInstanceOf(AuthError);
      const wrong = await pushImage(layout, `${registry.host}/tok/other:v1`, {
        ...isolated(),
        credentials: { username: USER, password: 'nope-wrong-9' },
      }).catch((e: unknown) => e);
      expect(wrong).toBeInstanceOf(AuthError);
      expect((wrong as Error).message).toMatch(/token server .* refused credentials from explicit credentials/);
      expect((wrong as Error).message).not.toContain('nope-wrong-9');
    } finally {
      await layout.close();
    }
  });

  it('requests started together before the challenge is known share one token', async () => {
    // Eight blob checks go out at once and all meet the 401 challenge; each learns it, and
    // only a request refused *with* a token may throw the fetched token away.
    const layers = Array.from({ length: 8 }, (_, i) => filesLayer({ [`f${i}`]: `${i}\n` }));
    await buildLayout(join(work, 'wide'), { tag: 'v1', layers });
    for (let round = 0; round < 3; round++) {
      const layout = await openImageSource(`oci:${join(work, 'wide')}:v1`);
      const before = tokens.log.length;
      try {
        await pushImage(layout, `${registry.host}/tok/wide${round}:v1`, {
          ...isolated(),
          credentials: { username: USER, password: PASSWORD },
          concurrency: 8,
        });
      } finally {
        await layout.close();
      }
      const issued = tokens.log.slice(before);
      expect(issued.length, JSON.stringify(issued)).toBe(1);
    }
  });

  it('a token refused mid-rotation waits once for the rewritten credentials file, then reads', async () => {
    // A private token server (no anonymous pulls) whose password changes a moment before the
    // docker config is rewritten, as a rotation does.
    const strict = await startTokenServer({ username: USER, password: PASSWORD, anonymous: false });
    const reg = await startRegistry({
      auth: { kind: 'token', realm: strict.realm, service: strict.service, issuer: strict.issuer, rootCertBundle: strict.rootCertBundle },
    });
    const dockerConfigDir = join(work, 'rotating');
    try {
      await writeDockerConfig(dockerConfigDir, reg.host, USER, PASSWORD);
      const layout = await openImageSource(`oci:${join(work, 'layout')}:v1`);
      try {
        await pushImage(layout, `${reg.host}/tok/private:v1`, { env: {}, dockerConfigDir });
      } finally {
        await layout.close();
      }
      strict.setPassword('tok-Pw-rotated-2');
      const rewritten = new Promise((resolve) => setTimeout(resolve, 300)).then(() =>
        writeDockerConfig(dockerConfigDir, reg.host, USER, 'tok-Pw-rotated-2'),
      );
      // A fresh worker: its first token request uses the old password and is refused.
      const source = await openImageSource(`${reg.host}/tok/private:v1`, { env: {}, dockerConfigDir });
      try {
        const image = await source.resolve();
        expect(image.manifestDigest).toBe(built[0]!.topDigest);
      } finally {
        await source.close();
        await rewritten;
      }
      const log = strict.log.filter((entry) => entry.user === USER);
      expect(log.some((entry) => !entry.granted)).toBe(true);
      expect(log.at(-1)).toMatchObject({ granted: true });
    } finally {
      await reg.stop();
      await strict.stop();
    }
  });
});
