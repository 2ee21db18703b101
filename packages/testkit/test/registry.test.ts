import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFixture } from '../src/fixtures.js';
import { htpasswdLine, startRegistry, type RunningRegistry } from '../src/registry.js';
import { skopeoCopy, skopeoInspectRaw } from '../src/tools.js';

describe('startRegistry', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('serves the distribution v2 API on loopback', async () => {
    const response = await fetch(`${registry.url}/v2/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });

  it('answers 404 for an unknown repository manifest', async () => {
    const response = await fetch(`${registry.url}/v2/nope/manifests/latest`);
    expect(response.status).toBe(404);
  });
});

describe('startRegistry with htpasswd users', () => {
  const alice = { username: 'alice', password: 'correct horse: battery $taple' };
  let registry: RunningRegistry;
  let work: string;
  beforeAll(async () => {
    registry = await startRegistry({ auth: { kind: 'htpasswd', users: [alice, { username: 'bob', password: 'b' }] } });
    work = await mkdtemp(join(tmpdir(), 'clip-testkit-auth-'));
  });
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

  it('challenges anonymous requests and accepts each user (bcrypt)', async () => {
    const anonymous = await fetch(`${registry.url}/v2/`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    expect((await fetch(`${registry.url}/v2/`, { headers: { authorization: basic(alice.username, alice.password) } })).status).toBe(200);
    expect((await fetch(`${registry.url}/v2/`, { headers: { authorization: basic('bob', 'b') } })).status).toBe(200);
    expect((await fetch(`${registry.url}/v2/`, { headers: { authorization: basic('bob', 'wrong') } })).status).toBe(401);
  });

  it('lets skopeo push with credentials and refuses it without', async () => {
    const layout = await buildFixture('basic', join(work, 'layout'));
    const remote = `docker://${registry.host}/auth/basic:v1`;
    await expect(skopeoCopy(layout.ref, remote)).rejects.toThrow(/unauthorized|authentication required/i);
    await skopeoCopy(layout.ref, remote, { destCreds: alice });
    const raw = await skopeoInspectRaw(remote, { creds: alice });
    expect(createHash('sha256').update(raw).digest('hex')).toBe(layout.topDigest.slice(7));
  });

  it('keeps accepting raw htpasswd text', async () => {
    const line = await htpasswdLine({ username: 'carol', password: 'c' });
    const raw = await startRegistry({ auth: { kind: 'htpasswd', htpasswd: `${line}\n` } });
    try {
      expect((await fetch(`${raw.url}/v2/`, { headers: { authorization: basic('carol', 'c') } })).status).toBe(200);
    } finally {
      await raw.stop();
    }
  });
});
