// Credentials never leak: push, index, inspect, cat and mount against an htpasswd registry,
// with the right password and with a wrong one, through environment variables and a docker
// config file. Everything the commands print (stdout, stderr, logs, errors, the JSON metrics
// summary, the Prometheus endpoint) and the archive they write are searched for the password,
// its base64 and the base64 of user:password.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFixture, type BuiltLayout, freePort, type RunningRegistry, startRegistry, writeDockerConfig } from '@clip/testkit';
import { removeAll, runCli, sh, startMount, tempDir } from './mount-harness.js';

const USER = 'clip-secret-user';
const PASSWORD = 'Pw-7Zq9xW-unguessable-4Kt2';
const WRONG = 'Wrong-8Hh3-also-secret-1Xy';
const SECRETS = [
  PASSWORD,
  WRONG,
  ...[PASSWORD, WRONG].flatMap((p) => [Buffer.from(p).toString('base64'), Buffer.from(`${USER}:${p}`).toString('base64')]),
];

let work: string;
let registry: RunningRegistry | undefined;
let layout: BuiltLayout;
let filePath: string;
const captured: Array<{ what: string; text: string }> = [];

function capture(what: string, text: string | Buffer): void {
  captured.push({ what, text: Buffer.isBuffer(text) ? text.toString('latin1') : text });
}

function useCredentials(password: string | undefined): void {
  if (password === undefined) {
    delete process.env.CLIP_REGISTRY_USERNAME;
    delete process.env.CLIP_REGISTRY_PASSWORD;
  } else {
    process.env.CLIP_REGISTRY_USERNAME = USER;
    process.env.CLIP_REGISTRY_PASSWORD = password;
  }
}

async function cli(what: string, args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  const result = await runCli(args, { timeoutMs: 90_000 });
  capture(`${what} stdout`, result.stdout);
  capture(`${what} stderr`, result.stderr);
  expect(result.stderr, what).not.toMatch(/internal error/);
  return result;
}

beforeAll(async () => {
  work = await tempDir('secrets');
  // No docker config from the machine: only what this test sets up.
  process.env.DOCKER_CONFIG = join(work, 'no-docker-config');
  registry = await startRegistry({ auth: { kind: 'htpasswd', users: [{ username: USER, password: PASSWORD }] } });
  layout = await buildFixture('basic', join(work, 'layout'));
  filePath = [...layout.expected].find(([, node]) => node.type === 'file' && (node.size ?? 0) > 0)![0];
}, 180_000);

afterAll(async () => {
  useCredentials(undefined);
  await registry?.stop();
  await removeAll(work);
});

describe('credentials never appear in output, errors, metrics or archives', () => {
  it('push, index, inspect, cat and mount, with the right and a wrong password', async () => {
    const target = `${registry!.host}/secret/basic:v1`;
    const archive = join(work, 'basic.clip');

    useCredentials(WRONG);
    expect((await cli('push wrong', ['push', layout.ref, target])).code).toBe(1);
    expect((await cli('index wrong', ['index', target, '-o', join(work, 'wrong.clip'), '--no-progress'])).code).toBe(1);
    useCredentials(undefined);
    expect((await cli('index anonymous', ['index', target, '-o', join(work, 'anon.clip'), '--no-progress'])).code).toBe(1);

    useCredentials(PASSWORD);
    expect((await cli('push', ['push', layout.ref, target])).code).toBe(0);
    expect((await cli('index', ['index', target, '-o', archive, '--no-progress', '--json'])).code).toBe(0);
    capture('archive', await readFile(archive));
    expect((await cli('inspect', ['inspect', archive])).code).toBe(0);
    const cat = await cli('cat', ['cat', archive, filePath]);
    expect(cat.code).toBe(0);

    useCredentials(WRONG);
    expect((await cli('cat wrong', ['cat', archive, filePath])).code).toBe(1);

    // The same credentials from a docker config file (base64 user:password).
    useCredentials(undefined);
    const dockerConfig = join(work, 'docker');
    await mkdir(dockerConfig, { recursive: true });
    await writeDockerConfig(dockerConfig, registry!.host, USER, WRONG);
    process.env.DOCKER_CONFIG = dockerConfig;
    expect((await cli('cat docker-config wrong', ['cat', archive, filePath])).code).toBe(1);
    await writeDockerConfig(dockerConfig, registry!.host, USER, PASSWORD);
    expect((await cli('cat docker-config', ['cat', archive, filePath])).code).toBe(0);
    process.env.DOCKER_CONFIG = join(work, 'no-docker-config');

    // Mounts: a good one (metrics endpoint scraped) and one with the wrong password (reads fail).
    for (const [label, password] of [
      ['mount', PASSWORD],
      ['mount wrong', WRONG],
    ] as const) {
      useCredentials(password);
      const port = await freePort();
      const mount = await startMount(archive, await tempDir('secrets-mnt'), ['--metrics', `127.0.0.1:${port}`, '--read-timeout', '10']);
      try {
        const read = await sh(`cat '${mount.mountpoint}${filePath}' | wc -c`);
        capture(`${label} read`, `${read.stdout}${read.stderr}`);
        if (password === PASSWORD) expect(read.code).toBe(0);
        const metrics = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
        capture(`${label} prometheus`, metrics);
      } finally {
        const summary = await mount.stop();
        capture(`${label} summary`, JSON.stringify(summary ?? {}));
        capture(`${label} stderr`, mount.stderr());
        await removeAll(mount.mountpoint);
      }
    }
    useCredentials(undefined);

    // The wrong-password runs really failed on authentication, and said so.
    expect(
      captured
        .filter((c) => c.what.endsWith('wrong stderr'))
        .map((c) => c.text)
        .join('\n'),
    ).toMatch(/auth|401|denied|CLIP_E_AUTH/i);
    for (const { what, text } of captured) {
      for (const secret of SECRETS) expect(text.includes(secret), `${what} contains a secret`).toBe(false);
    }
    console.log(
      'secrets',
      JSON.stringify({ outputsSearched: captured.length, bytesSearched: captured.reduce((n, c) => n + c.text.length, 0) }),
    );
  }, 240_000);
});
