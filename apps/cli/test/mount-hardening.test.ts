// Issue #19 part 5, the mount defects found by trying clip as an attacker would: SIGHUP,
// a busy --metrics port, an unwritable --record path, two mounts of one mountpoint started
// together, a non-empty mountpoint, and a listener-leak warning on reads with --cache-dir.
// Real registry, the built cli in child processes, real FUSE mounts.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { childExit, freePort, startRegistry, type RunningRegistry } from '@clip/testkit';
import {
  CLI,
  prepareFixture,
  removeAll,
  run,
  runCli,
  sh,
  startMount,
  tempDir,
  type PreparedImage,
  type RunningMount,
} from './mount-harness.js';

let work: string;
let registry: RunningRegistry | undefined;
let image: PreparedImage;
const mounts: RunningMount[] = [];
const dirs: string[] = [];

async function mountpointDir(): Promise<string> {
  const dir = await tempDir('mnt');
  dirs.push(dir);
  return dir;
}

/** How many mounts /proc/self/mountinfo lists at `path`. */
async function mountCount(path: string): Promise<number> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').filter((line) => line.split(' ')[4] === path).length;
}

async function exitOf(child: ChildProcess, ms: number): Promise<{ code: number | null; signal: string | null; ms: number }> {
  const started = Date.now();
  const { code, signal } = await childExit(child, { killAfterMs: ms });
  return { code, signal, ms: Date.now() - started };
}

beforeAll(async () => {
  work = await tempDir('mount-hardening');
  registry = await startRegistry({ storageDir: join(work, 'registry'), port: await freePort() });
  image = await prepareFixture(registry, work, 'large');
});

afterEach(async () => {
  for (const mount of mounts.splice(0)) await mount.stop();
  for (const dir of dirs.splice(0)) {
    await run('fusermount', ['-uz', dir]).catch(() => {});
    await run('fusermount', ['-uz', dir]).catch(() => {});
    await removeAll(dir);
  }
});

afterAll(async () => {
  await registry?.stop();
  await removeAll(work);
});

describe('clip mount hardening', () => {
  it('unmounts on SIGHUP like on SIGTERM: record written, metrics printed, no stale mount', async () => {
    const mountpoint = await mountpointDir();
    const record = join(work, 'hup-record.txt');
    const mount = await startMount(image.archive, mountpoint, ['--record', record]);
    mounts.push(mount);
    const file = [...image.expected].find(([, node]) => node.type === 'file' && (node.size ?? 0) > 0)![0];
    expect((await sh(`cat '${mountpoint}${file}' > /dev/null`)).code).toBe(0);
    mount.child.kill('SIGHUP');
    const exit = await exitOf(mount.child, 15_000);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(mount.stderr()).toMatch(/msg="unmounting" .*signal=SIGHUP/);
    expect(mount.stderr()).toMatch(/^\{"metrics":/m);
    expect(await readFile(record, 'utf8')).toContain(file);
    expect(await mountCount(mountpoint)).toBe(0);
  });

  it('refuses a busy or foreign --metrics address with a typed error and exit 1', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', () => resolve()));
    const port = (busy.address() as { port: number }).port;
    try {
      for (const address of [`127.0.0.1:${port}`, '192.0.2.1:9100']) {
        const mountpoint = await mountpointDir();
        const result = await runCli(['mount', image.archive, mountpoint, '--metrics', address], { timeoutMs: 30_000 });
        expect(result.stderr).not.toMatch(/internal error|\n\s+at /);
        expect(result.stderr).toMatch(
          new RegExp(`clip: error: cannot serve metrics on ${address.replace(/\./g, '\\.')}: .*\\[CLIP_E_METRICS_LISTEN\\]`),
        );
        expect(result.code).toBe(1);
        expect(await mountCount(mountpoint)).toBe(0);
      }
    } finally {
      busy.close();
    }
  });

  it('refuses a directory as the archive and an unusable --cache-dir with typed errors', async () => {
    const mountpoint = await mountpointDir();
    const notArchive = await runCli(['mount', work, mountpoint], { timeoutMs: 30_000 });
    expect(notArchive.stderr).toMatch(/cannot read archive .*: it is a directory \[CLIP_E_ARCHIVE_FORMAT\]/);
    expect(notArchive.code).toBe(1);
    // Node's recursive mkdir never returns for this path: the command must still end.
    const badCache = await runCli(['mount', image.archive, mountpoint, '--cache-dir', '/proc/nope/cache'], { timeoutMs: 30_000 });
    expect(badCache.stderr).toMatch(/cannot use disk cache directory \/proc\/nope\/cache: ENOENT \[CLIP_E_CACHE_DIR\]/);
    expect(badCache.code).toBe(1);
    expect(await mountCount(mountpoint)).toBe(0);
  });

  it('exits promptly with a warning when --record cannot be written', async () => {
    const mountpoint = await mountpointDir();
    const mount = await startMount(image.archive, mountpoint, ['--record', '/proc/nope/x']);
    mounts.push(mount);
    mount.child.kill('SIGTERM');
    // Before the fix the process unmounted and then spun in mkdir forever.
    const exit = await exitOf(mount.child, 20_000);
    expect(exit, mount.stderr()).toMatchObject({ code: 0, signal: null });
    expect(mount.stderr()).toMatch(/cannot write record file.*\/proc\/nope\/x/);
    expect(await mountCount(mountpoint)).toBe(0);
  });

  it('lets only one of two mounts of one mountpoint started together win', async () => {
    // A shared cache with many entries (scanned when a mount opens it) widens the window
    // between the "already mounted?" check and mount(2), as on a busy worker.
    const cache = await tempDir('race-cache');
    dirs.push(cache);
    await sh(`cd '${cache}' && for s in $(seq 10 99); do mkdir $s && for i in $(seq 1 30); do echo x > $s/$i.blk; done; done`);
    for (let round = 0; round < 6; round++) {
      const mountpoint = await mountpointDir();
      const args = [CLI, 'mount', image.archive, mountpoint, '--cache-dir', cache];
      const children = [0, 1].map(() => spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
      const stderr = children.map(() => '');
      children.forEach((child, i) => {
        child.stderr!.on('data', (chunk: Buffer) => (stderr[i] += chunk.toString()));
      });
      try {
        // Wait until each has either mounted or exited.
        for (let i = 0; i < 300; i++) {
          const settled = children.every((child, j) => child.exitCode !== null || /msg="mounted"/.test(stderr[j]!));
          if (settled) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const winners = children.filter((_, j) => /msg="mounted"/.test(stderr[j]!));
        expect(winners, stderr.join('\n---\n')).toHaveLength(1);
        const loser = children.findIndex((_, j) => !/msg="mounted"/.test(stderr[j]!));
        expect((await exitOf(children[loser]!, 10_000)).code).toBe(1);
        expect(stderr[loser]).toMatch(/mountpoint .* is busy.*\[CLIP_E_MOUNTPOINT\]/);
        expect(await mountCount(mountpoint)).toBe(1);
      } finally {
        for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
        for (const child of children) await exitOf(child, 15_000);
      }
      expect(await mountCount(mountpoint)).toBe(0);
    }
  });

  it('refuses a non-empty mountpoint unless --allow-non-empty', async () => {
    const mountpoint = await mountpointDir();
    await writeFile(join(mountpoint, 'precious.txt'), 'keep me');
    const refused = await runCli(['mount', image.archive, mountpoint], { timeoutMs: 30_000 });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/mountpoint .* is not empty .*precious\.txt.*--allow-non-empty \[CLIP_E_MOUNTPOINT\]/);
    expect(await mountCount(mountpoint)).toBe(0);
    const mount = await startMount(image.archive, mountpoint, ['--allow-non-empty']);
    mounts.push(mount);
    expect(mount.stderr()).toMatch(/mounting over a non-empty directory/);
    await mount.stop();
    expect(await readFile(join(mountpoint, 'precious.txt'), 'utf8')).toBe('keep me');
  });

  it('reads with --cache-dir without a listener-leak warning', async () => {
    const mountpoint = await mountpointDir();
    const cache = await tempDir('cache');
    dirs.push(cache);
    const mount = await startMount(image.archive, mountpoint, ['--cache-dir', cache]);
    mounts.push(mount);
    const files = [...image.expected].filter(([, node]) => node.type === 'file').map(([path]) => path);
    // Many reads at once: each queues a disk cache write.
    const out = await sh(`cd '${mountpoint}' && for f in ${files.map((f) => `'.${f}'`).join(' ')}; do cat "$f" > /dev/null & done; wait`);
    expect(out.code).toBe(0);
    await mount.stop();
    expect(mount.stderr()).not.toMatch(/MaxListenersExceededWarning|memory leak/);
  });
});
