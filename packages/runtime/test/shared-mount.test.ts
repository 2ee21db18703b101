// One FUSE mount per image per worker: concurrent `clip run`s share it, bundles hold it, a
// dead mount server is replaced (never reused), the last release unmounts. Real registry,
// FUSE, overlayfs and runc.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageMountPool } from '../src/mount-pool.js';
import { buildBusyboxLayout, CLI, cli, mountsUnder, run, startCli, startRuntimeWorld, type RuntimeTestWorld } from './helpers.js';

let work: string;
let stateDir: string;
let image: string;

let world: RuntimeTestWorld | undefined;

beforeAll(async () => {
  world = await startRuntimeWorld('shared');
  ({ work, stateDir, image } = world);
});

afterAll(async () => {
  await world?.close();
});

async function expectNothingLeft(): Promise<void> {
  expect(await mountsUnder(stateDir)).toEqual([]);
  expect((await run('runc', ['--root', join(stateDir, 'runtime'), 'list', '-q']).catch(() => ({ stdout: '' }))).stdout.trim()).toBe('');
  expect(await readdir(join(stateDir, 'mounts')).catch(() => [])).toEqual([]);
}

describe('shared image mounts', () => {
  it('two concurrent clip runs of one image use exactly one FUSE mount', async () => {
    const args = ['run', '--state-dir', stateDir, image, '--', 'sh', '-c', 'cat /work/data.txt; sleep 3; echo done'];
    const runs = [startCli(args), startCli(args)];
    const bothStarted = () => runs.every((r) => /container started/.test(r.output().stderr));
    for (let i = 0; i < 600 && !bothStarted(); i++) await new Promise((r) => setTimeout(r, 25));
    expect(bothStarted()).toBe(true);
    const mounts = await mountsUnder(stateDir);
    expect(mounts.filter((m) => m.type.startsWith('fuse'))).toHaveLength(1);
    expect(mounts.filter((m) => m.type === 'overlay')).toHaveLength(2);

    const results = await Promise.all(runs.map((r) => r.done));
    for (const result of results) {
      expect(result.code).toBe(0);
      expect(result.stdout).toBe('image data\ndone\n');
    }
    const reused = results.map((r) => /mount_reused=true/.test(r.stderr)).sort();
    expect(reused).toEqual([false, true]);
    await expectNothingLeft();
  });

  it('clip bundle prepares config.json + rootfs for runc run --bundle; --remove cleans up', async () => {
    const bundle = join(work, 'bundle');
    const prepared = await cli([
      'bundle',
      '--state-dir',
      stateDir,
      '--json',
      image,
      bundle,
      '--',
      'sh',
      '-c',
      'cat /work/data.txt; id -un',
    ]);
    expect(prepared.code).toBe(0);
    expect(JSON.parse(prepared.stdout)).toMatchObject({ dir: bundle, rootfs: join(bundle, 'rootfs'), mountReused: false });
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as {
      process: { user: { uid: number }; cwd: string; env: string[] };
      annotations: Record<string, string>;
    };
    expect(spec.process.user.uid).toBe(1000);
    expect(spec.process.cwd).toBe('/work');
    expect(spec.process.env).toContain('GREETING=clip');
    expect(spec.annotations).toMatchObject({ 'org.example.role': 'test', 'org.opencontainers.image.stopSignal': 'SIGTERM' });

    // Mountpoint/state problems: the directory already holds a bundle; the directory is a file.
    const twice = await cli(['bundle', '--state-dir', stateDir, image, bundle]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/clip: error: \S+bundle already holds a bundle .*\[CLIP_E_STATE_DIR\]/);
    const file = join(work, 'a-file');
    await run('touch', [file]);
    const onFile = await cli(['bundle', '--state-dir', stateDir, image, file]);
    expect(onFile.code).toBe(1);
    expect(onFile.stderr).toMatch(/clip: error: cannot create the bundle directory \S+a-file: .*\[CLIP_E_STATE_DIR\]/);

    const runtimeRoot = join(work, 'runc-root');
    const ran = await run('runc', ['--root', runtimeRoot, 'run', '--bundle', bundle, 'bundle-test']);
    expect(ran.stdout).toBe('image data\napp\n');
    await run('runc', ['--root', runtimeRoot, 'delete', '--force', 'bundle-test']).catch(() => undefined);

    // A second bundle of the same image reuses the mount.
    const second = await cli(['bundle', '--state-dir', stateDir, '--json', image, join(work, 'bundle2'), '--', 'sleep', '60']);
    expect(JSON.parse(second.stdout)).toMatchObject({ mountReused: true });
    expect((await mountsUnder(stateDir)).filter((m) => m.type.startsWith('fuse'))).toHaveLength(1);

    expect((await cli(['bundle', '--remove', bundle, '--state-dir', stateDir])).code).toBe(0);
    expect(existsSync(join(bundle, 'config.json'))).toBe(false);
    expect((await mountsUnder(stateDir)).filter((m) => m.type.startsWith('fuse'))).toHaveLength(1);
    // A container still running in a bundle keeps it: --remove refuses instead of pulling the root away.
    // (stdio to /dev/null: the detached container would hold our pipes open)
    await run('sh', ['-c', `runc --root ${runtimeRoot} run --detach --bundle ${join(work, 'bundle2')} busy </dev/null >/dev/null 2>&1`]);
    const busy = await cli(['bundle', '--remove', join(work, 'bundle2'), '--state-dir', stateDir]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(
      /clip: error: cannot unmount the root \S+bundle2\/rootfs \(is a container still running in it\?\): process(es)? [\d, ]+ uses? it as root \[CLIP_E_OVERLAY\]/,
    );
    await run('runc', ['--root', runtimeRoot, 'delete', '--force', 'busy']);
    expect((await cli(['bundle', '--remove', join(work, 'bundle2'), '--state-dir', stateDir])).code).toBe(0);
    await expectNothingLeft();
    expect(await mountsUnder(work)).toEqual([]);

    const again = await cli(['bundle', '--remove', bundle, '--state-dir', stateDir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/is not a bundle prepared by clip/);
  });

  it('different images share the disk cache: what one image fetched, another with the same layer reads from disk', async () => {
    // Another image (its own manifest: other labels) with the same layer, in another repository.
    const layout = await buildBusyboxLayout(join(work, 'other-layout'), 'v1', { 'org.example.variant': 'other' });
    const other = image.replace('test/busybox:v1', 'test/other:v1');
    await run(process.execPath, [CLI, 'publish', layout.ref, other], { env: { ...process.env, CLIP_LOG_LEVEL: 'warn' } });
    const cacheDir = join(work, 'shared-span-cache');
    const runJson = async (ref: string, cache: string) => {
      const result = await cli([
        'run',
        '--state-dir',
        stateDir,
        '--cache-dir',
        cache,
        '--no-prefetch',
        '--json',
        ref,
        '--',
        'cat',
        '/work/data.txt',
      ]);
      expect(result.stdout).toBe('image data\n');
      return JSON.parse(result.stderr.trim().split('\n').pop()!) as { imageKey: string; fetchedBytes: number };
    };
    const first = await runJson(image, cacheDir);
    const second = await runJson(other, cacheDir);
    const alone = await runJson(other, join(work, 'private-span-cache'));
    expect(second.imageKey).not.toBe(first.imageKey);
    expect(first.fetchedBytes).toBeGreaterThan(0);
    expect(alone.fetchedBytes).toBeGreaterThan(0);
    expect(second.fetchedBytes).toBe(0);
    await expectNothingLeft();
  });

  it('the pool replaces a dead mount server and unmounts when the last holder releases', async () => {
    const pool = new ImageMountPool({ stateDir });
    const first = await pool.acquire(image, 'snapshot:a');
    expect(first.reused).toBe(false);
    expect(await readFile(join(first.mountpoint, 'work/data.txt'), 'utf8')).toBe('image data\n');
    // A second pool object (another process, after a restart) sees the same mount and holders.
    const second = await new ImageMountPool({ stateDir }).acquire(image, 'snapshot:b');
    expect(second.reused).toBe(true);
    const [listed] = await pool.list();
    expect(listed).toMatchObject({ imageKey: first.imageKey, holders: ['snapshot:a', 'snapshot:b'], alive: true });

    process.kill(listed!.pid, 'SIGKILL');
    for (const deadline = Date.now() + 30_000; (await pool.list())[0]?.alive && Date.now() < deadline; )
      await new Promise((r) => setTimeout(r, 20));
    expect((await pool.list())[0]?.alive).toBe(false);
    const third = await pool.acquire(image, 'snapshot:c');
    expect(third.reused).toBe(false);
    expect(await readFile(join(third.mountpoint, 'work/data.txt'), 'utf8')).toBe('image data\n');
    expect((await pool.list())[0]?.pid).not.toBe(listed!.pid);

    await first.release();
    await pool.release(second.imageKey, 'snapshot:b');
    expect((await mountsUnder(stateDir)).filter((m) => m.type.startsWith('fuse'))).toHaveLength(1);
    await third.release();
    await expectNothingLeft();
  });
});
