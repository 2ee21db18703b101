// Installable `clip` (#16): `npx clip` from the repository root, and the README's one command
// that puts `clip` on PATH (`npm install -g .`), here into a private --prefix so the machine's
// global npm directory is never touched. Both run the built CLI and print its version.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = new URL('../../../', import.meta.url).pathname;
let version: string;
let prefix: string;

beforeAll(async () => {
  version = (JSON.parse(await readFile(join(ROOT, 'apps/cli/package.json'), 'utf8')) as { version: string }).version;
  prefix = await mkdtemp(join(tmpdir(), 'clip-install-'));
});

afterAll(async () => {
  if (prefix) await rm(prefix, { recursive: true, force: true });
});

it('npx clip works from the repository root', async () => {
  // --no: never fetch a package named clip from the registry (only the workspace's bin counts); -- keeps --help from npx.
  const result = await run('npx', ['--no', '--', 'clip', '--version'], { cwd: ROOT });
  expect(result.stdout).toBe(`${version}\n`);
  const help = await run('npx', ['--no', '--', 'clip', '--help'], { cwd: ROOT });
  expect(help.stdout).toMatch(/^\s+run \[options\]/m);
  expect(help.stdout).toMatch(/^\s+bundle \[options\]/m);
});

it('npm install -g . puts clip on PATH; it runs from anywhere', async () => {
  await run('npm', ['install', '-g', '.', '--prefix', prefix, '--no-audit', '--no-fund'], { cwd: ROOT });
  const env = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env['PATH'] ?? ''}` };
  const result = await run('clip', ['--version'], { cwd: prefix, env });
  expect(result.stdout).toBe(`${version}\n`);
  const usage = await run('clip', ['run', '--help'], { cwd: prefix, env });
  expect(usage.stdout).toMatch(/^Usage: clip run \[options\] <image> \[-- command args\.\.\.\]/);
});
