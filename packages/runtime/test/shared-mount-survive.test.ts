// `clip run`'s shared image mount outlives its serving process: a container hashes 1 500
// files of its image (sha256sum through overlayfs on the pool's FUSE mount; fresh disk
// cache, no memory cache to speak of, 64 KiB spans, no prefetch) while the test SIGKILLs the
// mount's serving process twice (found by its `serving reads pid=` line in the pool's
// server.log). The pool's `clip mount` supervisor keeps the connection: every hash must be
// right, the container must exit 0, and the pool must still list the same live server.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildLayout, generateContent, type EntrySpec } from '@clip/testkit';
import { ImageMountPool } from '../src/mount-pool.js';
import { BUSYBOX, CLI, mountsUnder, run, startCli, startRuntimeWorld, type RuntimeTestWorld } from './helpers.js';

const FILES = 1500;
const KILL_AT = [300, 900];

let world: RuntimeTestWorld | undefined;
let image: string;
const expected = new Map<string, string>();

beforeAll(async () => {
  world = await startRuntimeWorld('shared-survive');
  const entries: EntrySpec[] = [
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/busybox', mode: 0o755, content: new Uint8Array(await readFile(BUSYBOX)) },
    ...['sh', 'sha256sum', 'sleep', '['].map((name): EntrySpec => ({ type: 'symlink', path: `bin/${name}`, target: 'busybox' })),
    { type: 'dir', path: 'files' },
  ];
  for (let i = 0; i < FILES; i++) {
    const dir = `files/d${i % 20}`;
    if (i < 20) entries.push({ type: 'dir', path: dir });
    const content = generateContent({ generate: i % 3 ? 'random' : 'text', size: 500 + ((i * 7919) % 12_000), seed: i });
    entries.push({ type: 'file', path: `${dir}/f${i}`, content });
    expected.set(`/${dir}/f${i}`, createHash('sha256').update(content).digest('hex'));
  }
  const layout = await buildLayout(join(world.work, 'survive-layout'), {
    tag: 'v1',
    layers: [{ compression: 'gzip', entries }],
    config: { Cmd: ['sh'] },
  });
  image = `${world.registry.host}/test/survive:v1`;
  await run(process.execPath, [CLI, 'publish', layout.ref, image, '--span-size', '64KiB'], {
    env: { ...process.env, CLIP_LOG_LEVEL: 'warn' },
  });
}, 300_000);

afterAll(async () => {
  await world?.close();
});

/** Pids of the serving processes the pool's mount servers logged, oldest first. */
async function servingPids(stateDir: string): Promise<number[]> {
  const { stdout } = await run('sh', ['-c', `cat ${stateDir}/mounts/*/server.log 2>/dev/null || true`]);
  return [...stdout.matchAll(/msg="serving reads" pid=(\d+)/g)].map((m) => Number(m[1]));
}

it('a clip run container reads every file right while its shared mount loses its serving process twice', async () => {
  const { stateDir, work } = world!;
  const args = ['run', '--state-dir', stateDir, '--cache-dir', join(work, 'survive-cache'), '--memory-cache', '1MiB'];
  // The container waits for /gate/go after the walk: the pool removes server.log on release.
  const gate = join(work, 'gate');
  await mkdir(gate);
  const script = 'sha256sum /files/d*/f*; while [ ! -e /gate/go ]; do sleep 0.1; done';
  const container = startCli([...args, '-v', `${gate}:/gate`, '--no-prefetch', image, '--', 'sh', '-c', script]);
  const lines = () => container.output().stdout.split('\n').filter(Boolean).length;
  const killedAt: number[] = [];
  const killed: number[] = [];
  for (const at of KILL_AT) {
    for (let i = 0; i < 2000 && lines() < at && container.child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 10));
    // The serving process that serves now: the last one logged, once it is not one we killed.
    let pid: number | undefined;
    for (let i = 0; i < 500 && (pid === undefined || killed.includes(pid)); i++) {
      pid = (await servingPids(stateDir)).at(-1);
      if (pid === undefined || killed.includes(pid)) await new Promise((r) => setTimeout(r, 10));
    }
    expect(pid).toBeDefined();
    killedAt.push(lines());
    process.kill(pid!, 'SIGKILL');
    killed.push(pid!);
  }
  for (let i = 0; i < 6000 && lines() < FILES && container.child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 10));
  const log = await run('sh', ['-c', `cat ${stateDir}/mounts/*/server.log`]).then((r) => r.stdout);
  await writeFile(join(gate, 'go'), '');
  const result = await container.done;
  expect(result.stderr).not.toMatch(/sha256sum:|Input\/output error|not connected/);
  expect(result.code).toBe(0);
  const got = new Map(
    result.stdout
      .trim()
      .split('\n')
      .map((line) => {
        const [hash, path] = line.split(/\s+/);
        return [path!, hash!] as const;
      }),
  );
  expect(got.size).toBe(FILES);
  let wrong = 0;
  for (const [path, hash] of expected) if (got.get(path) !== hash) wrong++;
  expect(wrong).toBe(0);
  // Both kills fell inside the walk, and each was followed by a new serving process.
  console.log(`shared mount survive: ${FILES} files hashed, 0 wrong; killed at ${killedAt.join(', ')} of ${FILES}`);
  expect(killedAt.every((n) => n < FILES)).toBe(true);
  expect(log.match(/serving process died; starting another on the same connection/g)?.length).toBe(KILL_AT.length);
  const pids = [...log.matchAll(/msg="serving reads" pid=(\d+)/g)].map((m) => Number(m[1]));
  expect(pids.filter((pid) => !killed.includes(pid)).length).toBeGreaterThan(0);
  // The mount was never replaced (the pool found no dead server); released with the container.
  expect((await mountsUnder(stateDir)).filter((m) => m.type.startsWith('fuse'))).toEqual([]);
  expect(await new ImageMountPool({ stateDir }).list()).toEqual([]);
  expect(result.stderr).not.toMatch(/mount server of the image is gone/);
});
