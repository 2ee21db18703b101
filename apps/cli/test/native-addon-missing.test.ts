// Without the FUSE addon (e.g. `npm ci && npm run build` instead of the bootstrap), `clip mount`
// is a set-up error: one line saying how to build the addon, exit 1, no stack trace. The BUILT
// cli runs against a node_modules where @clip/native-fuse has no build/ (symlinks preserved, so
// the real addon next to the sources is never found).
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run } from './mount-harness.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const NOT_BUILT =
  /^clip: error: the FUSE addon cannot be loaded \(.*\); build it with `npm run build:native -w @clip\/native-fuse`.* \[CLIP_E_FUSE_NOT_BUILT\]$/;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-no-addon-'));
  const modules = join(work, 'node_modules');
  await mkdir(join(modules, '@clip'), { recursive: true });
  for (const name of await readdir(join(ROOT, 'node_modules'))) {
    if (name !== '@clip' && name !== '.bin') await symlink(join(ROOT, 'node_modules', name), join(modules, name));
  }
  for (const name of await readdir(join(ROOT, 'node_modules', '@clip'))) {
    if (name !== 'native-fuse') await symlink(join(ROOT, 'node_modules', '@clip', name), join(modules, '@clip', name));
  }
  const fuse = join(ROOT, 'packages', 'native-fuse');
  await cp(join(fuse, 'package.json'), join(modules, '@clip', 'native-fuse', 'package.json'));
  await cp(join(fuse, 'dist'), join(modules, '@clip', 'native-fuse', 'dist'), { recursive: true });
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

it('clip mount without the FUSE addon: one line, how to build it, exit 1', async () => {
  const cli = join(work, 'node_modules', '@clip', 'cli', 'dist', 'main.js');
  const archive = join(work, 'tiny.clip');
  const node = [process.execPath, '--preserve-symlinks', '--preserve-symlinks-main'];
  await run(node[0]!, [...node.slice(1), cli, 'archive', join(ROOT, 'apps', 'cli', 'src', 'commands'), '-o', archive]);
  const mountpoint = join(work, 'mnt');
  await mkdir(mountpoint);
  const result = await run(node[0]!, [...node.slice(1), cli, 'mount', archive, mountpoint]).then(
    () => ({ code: 0, stderr: '' }),
    (error: { code: number; stderr: string }) => error,
  );
  expect(result.code).toBe(1);
  const lines = result.stderr
    .trim()
    .split('\n')
    .filter((line) => line.startsWith('clip:'));
  expect(lines).toEqual([expect.stringMatching(NOT_BUILT)]);
  expect(result.stderr).not.toMatch(/\n\s+at /);
});

it('clip run and clip bundle without the FUSE addon: the same one line before anything is started', async () => {
  const cli = join(work, 'node_modules', '@clip', 'cli', 'dist', 'main.js');
  const archive = join(work, 'tiny.clip');
  const stateDir = join(work, 'state');
  // Children (a mount server would be one) keep the symlinked node_modules too.
  const env = { ...process.env, NODE_OPTIONS: '--preserve-symlinks --preserve-symlinks-main' };
  for (const args of [
    ['run', '--state-dir', stateDir, archive, '--', 'true'],
    ['bundle', '--state-dir', stateDir, archive, join(work, 'bundle')],
  ]) {
    const result = await run(process.execPath, [cli, ...args], { env }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(NOT_BUILT)]);
  }
  expect(existsSync(join(stateDir, 'mounts'))).toBe(false);
  expect(existsSync(join(work, 'bundle'))).toBe(false);
});

it('an addon that cannot be loaded (not a shared object): the same one line, exit 1', async () => {
  const release = join(work, 'node_modules', '@clip', 'native-fuse', 'build', 'Release');
  await mkdir(release, { recursive: true });
  await writeFile(join(release, 'clip_fuse.node'), 'not an ELF file\n');
  const cli = join(work, 'node_modules', '@clip', 'cli', 'dist', 'main.js');
  const mountpoint = join(work, 'mnt-broken');
  await mkdir(mountpoint);
  const result = await run(process.execPath, [
    '--preserve-symlinks',
    '--preserve-symlinks-main',
    cli,
    'mount',
    join(work, 'tiny.clip'),
    mountpoint,
  ]).then(
    () => ({ code: 0, stderr: '' }),
    (error: { code: number; stderr: string }) => error,
  );
  expect(result.code).toBe(1);
  expect(result.stderr.split('\n').filter((line) => line.startsWith('clip:'))).toEqual([expect.stringMatching(NOT_BUILT)]);
  expect(result.stderr).toMatch(/cannot be loaded \(\S+\/clip_fuse\.node: /);
  expect(result.stderr).not.toMatch(/\n\s+at /);
});
