import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type RunningRegistry, writeDockerConfig } from '@clip/testkit';
import { AuthError, createLogger } from '@clip/shared';
import { parseChallenge } from '../src/auth.js';
import { resolveCredentials } from '../src/credentials.js';
import { openImageSource } from '../src/open.js';
import { buildLayout, filesLayer, type BuiltLayout } from '@clip/testkit';

const run = promisify(execFile);
const USER = 'alice';
const PASSWORD = 'pw-Zq81-secret';
const WRONG = 'wrong-Xy77-secret';

let work: string;
let registry: RunningRegistry;
let built: BuiltLayout[];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-auth-test-'));
  const { stdout } = await run('htpasswd', ['-nbB', USER, PASSWORD]);
  registry = await startRegistry({ auth: { kind: 'htpasswd', htpasswd: stdout } });
  built = [await buildLayout(join(work, 'layout'), { tag: 'v1', layers: [filesLayer({ a: 'a\n' })] })];
  await run('skopeo', [
    'copy',
    '--quiet',
    '--preserve-digests',
    '--dest-tls-verify=false',
    `--dest-creds=${USER}:${PASSWORD}`,
    `oci:${join(work, 'layout')}:v1`,
    `docker://${registry.host}/private/img:v1`,
  ]);
});

afterAll(async () => {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

const noDockerConfig = () => ({ env: {}, dockerConfigDir: join(work, 'no-docker-config') });

describe('htpasswd (Basic) registry', () => {
  it('reads with explicit credentials', async () => {
    const source = await openImageSource(`${registry.host}/private/img:v1`, {
      ...noDockerConfig(),
      credentials: { username: USER, password: PASSWORD },
    });
    try {
      expect((await source.resolve()).manifestDigest).toBe(built[0]!.topDigest);
    } finally {
      await source.close();
    }
  });

  it('reads with credentials from the environment and from a docker config', async () => {
    const viaEnv = await openImageSource(`${registry.host}/private/img:v1`, {
      env: { CLIP_REGISTRY_USERNAME: USER, CLIP_REGISTRY_PASSWORD: PASSWORD },
      dockerConfigDir: join(work, 'none'),
    });
    const configDir = join(work, 'docker');
    await writeDockerConfig(configDir, registry.host, USER, PASSWORD);
    const viaConfig = await openImageSource(`${registry.host}/private/img:v1`, { env: { DOCKER_CONFIG: configDir } });
    try {
      expect((await viaEnv.resolve()).manifestDigest).toBe(built[0]!.topDigest);
      expect((await viaConfig.resolve()).manifestDigest).toBe(built[0]!.topDigest);
    } finally {
      await viaEnv.close();
      await viaConfig.close();
    }
  });

  it('fails with AuthError for wrong or missing credentials, never showing the password', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (line) => lines.push(line) });
    const wrong = await openImageSource(`${registry.host}/private/img:v1`, {
      ...noDockerConfig(),
      logger,
      credentials: { username: USER, password: WRONG },
    });
    const none = await openImageSource(`${registry.host}/private/img:v1`, { ...noDockerConfig(), logger });
    try {
      const wrongError = await wrong.resolve().catch((e: unknown) => e);
      expect(wrongError).toBeInstanceOf(AuthError);
      expect((wrongError as Error).message).toMatch(/authentication failed \(HTTP 401.*\) with credentials from explicit credentials/);
      expect((wrongError as Error).message).toContain(`registry ${registry.host} repository private/img`);
      const noneError = await none.resolve().catch((e: unknown) => e);
      expect(noneError).toBeInstanceOf(AuthError);
      expect((noneError as Error).message).toMatch(/requires credentials/);
      const everything = [String(wrongError), JSON.stringify(wrongError), (wrongError as Error).stack ?? '', ...lines].join('\n');
      expect(lines.length).toBeGreaterThan(0);
      expect(everything).not.toContain(WRONG);
      expect(everything).not.toContain(Buffer.from(`${USER}:${WRONG}`).toString('base64'));
    } finally {
      await wrong.close();
      await none.close();
    }
  });
});

describe('resolveCredentials', () => {
  it('prefers explicit, then env, then docker config (credHelpers, auths, credsStore)', async () => {
    const dir = join(work, 'creds');
    const bin = join(work, 'bin');
    await mkdir(dir, { recursive: true });
    await mkdir(bin, { recursive: true });
    // A docker credential helper: answers for one host, "not found" for others.
    await writeFile(
      join(bin, 'docker-credential-fake'),
      '#!/bin/sh\nread host\nif [ "$host" = "helper.example.com" ] || [ "$host" = "store.example.com" ]; then\n' +
        '  printf \'{"ServerURL":"%s","Username":"hu","Secret":"hs"}\' "$host"\nelse\n  echo "credentials not found in native keychain"; exit 1\nfi\n',
    );
    await chmod(join(bin, 'docker-credential-fake'), 0o755);
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hubpass').toString('base64') },
          'plain.example.com': { username: 'pu', password: 'pp' },
        },
        credHelpers: { 'helper.example.com': 'fake' },
        credsStore: 'fake',
      }),
    );
    const env = { DOCKER_CONFIG: dir, PATH: `${bin}:${process.env['PATH'] ?? ''}` };
    expect(await resolveCredentials('docker.io', { env })).toMatchObject({ username: 'hubuser', password: 'hubpass' });
    expect(await resolveCredentials('plain.example.com', { env })).toMatchObject({ username: 'pu', password: 'pp' });
    expect(await resolveCredentials('helper.example.com', { env })).toMatchObject({
      username: 'hu',
      password: 'hs',
      source: 'docker credential helper fake',
    });
    expect(await resolveCredentials('store.example.com', { env })).toMatchObject({
      username: 'hu',
      source: 'docker credential store fake',
    });
    expect(await resolveCredentials('unknown.example.com', { env })).toBeUndefined();
    expect(
      await resolveCredentials('plain.example.com', { env: { ...env, CLIP_REGISTRY_USERNAME: 'eu', CLIP_REGISTRY_PASSWORD: 'ep' } }),
    ).toMatchObject({ username: 'eu' });
    expect(await resolveCredentials('plain.example.com', { env, credentials: { username: 'x', password: 'y' } })).toMatchObject({
      username: 'x',
    });
  });

  it('parses WWW-Authenticate challenges', () => {
    expect(
      parseChallenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"'),
    ).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:a/b:pull,push' },
    });
    expect(parseChallenge('Basic realm="clip-test"')).toEqual({ scheme: 'basic', params: { realm: 'clip-test' } });
    expect(parseChallenge('Negotiate abc')).toBeUndefined();
    expect(parseChallenge(undefined)).toBeUndefined();
  });
});
