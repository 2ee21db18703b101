// The mount outlives the process serving it: a reader walks thousands of files of a real
// `clip mount` (real registry, fresh disk cache, 64 KiB spans so most files need a fetch)
// while the test SIGKILLs the serving process (found by its `serving reads pid=` line) three
// times. The supervisor keeps the FUSE connection and starts a new server each time, which
// re-queues what the dead one had taken (FUSE_NOTIFY_RESEND). Every read must succeed with
// umoci's bytes; the longest single-file stall is logged, not asserted (shared machine).
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildLayout, childExit, type EntrySpec, startRegistry, type RunningRegistry } from '@clip/testkit';
import {
  prepareLayout,
  processGone,
  removeAll,
  runCli,
  servingPid,
  sh,
  startMount,
  tempDir,
  type PreparedImage,
  type RunningMount,
} from './mount-harness.js';

const FILES = 3000;
const KILLS = 3;

let work: string;
let registry: RunningRegistry | undefined;
let image: PreparedImage;
let layoutRef: string;
let mount: RunningMount | undefined;

beforeAll(async () => {
  work = await tempDir('survive');
  registry = await startRegistry({ storageDir: join(work, 'registry') });
  const entries: EntrySpec[] = [{ type: 'dir', path: 'files' }];
  for (let i = 0; i < FILES; i++) {
    const dir = `files/d${i % 30}`;
    if (i < 30) entries.push({ type: 'dir', path: dir });
    entries.push({
      type: 'file',
      path: `${dir}/f${i}`,
      content: { generate: i % 3 ? 'random' : 'text', size: 500 + ((i * 7919) % 12_000), seed: i },
    });
  }
  const layout = await buildLayout(join(work, 'layout'), { tag: 'survive', layers: [{ compression: 'gzip', entries }] });
  image = await prepareLayout(registry, work, 'survive', layout);
  layoutRef = layout.ref;
}, 180_000);

afterAll(async () => {
  await mount?.stop();
  await registry?.stop();
  await removeAll(work);
});

/** A fresh directory under the test's work directory (removed with it). */
async function scratch(name: string): Promise<string> {
  const dir = join(work, `${name}-${Math.random().toString(36).slice(2, 8)}`);
  await mkdir(dir);
  return dir;
}

/** Milliseconds from each `serving process died` line to the next `serving reads` line. */
function takeovers(stderr: string): number[] {
  const time = (line: string) => Date.parse(/time=(\S+)/.exec(line)?.[1] ?? '');
  const out: number[] = [];
  let died: number | undefined;
  for (const line of stderr.split('\n')) {
    if (line.includes('msg="serving process died')) died = time(line);
    else if (died !== undefined && line.includes('msg="serving reads"')) {
      out.push(time(line) - died);
      died = undefined;
    }
  }
  return out;
}

/** A reader in its own process: reads every file once, compares, reports progress and stalls. */
const READER = `
import { readFileSync } from 'node:fs';
const [mountpoint, rootfs, list] = process.argv.slice(2);
const files = JSON.parse(readFileSync(list, 'utf8'));
let done = 0, failed = 0, wrong = 0, maxStallMs = 0, slowest = '';
const errors = [];
for (const file of files) {
  const start = performance.now();
  let bytes;
  try { bytes = readFileSync(mountpoint + file); } catch (error) { failed++; errors.push(file + ': ' + error.code); continue; }
  const ms = performance.now() - start;
  if (ms > maxStallMs) { maxStallMs = ms; slowest = file; }
  if (!bytes.equals(readFileSync(rootfs + file))) wrong++;
  if (++done % 100 === 0) console.log('progress ' + done);
}
console.log(JSON.stringify({ done, failed, wrong, maxStallMs, slowest, errors: errors.slice(0, 5) }));
`;

it('reads every file with the right bytes while the serving process is SIGKILLed three times', async () => {
  mount = await startMount(image.archive, await scratch('mnt'), ['--cache-dir', await scratch('cache')]);
  const files = [...image.expected].filter(([, node]) => node.type === 'file').map(([path]) => path);
  expect(files.length).toBe(FILES);
  const list = join(work, 'files.json');
  const script = join(work, 'reader.mjs');
  await writeFile(list, JSON.stringify(files));
  await writeFile(script, READER);

  const reader = spawn(process.execPath, [script, mount.mountpoint, image.rootfs, list], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let progress = 0;
  const progressed = new Set<() => void>();
  reader.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    progress = Math.max(progress, ...[...out.matchAll(/^progress (\d+)$/gm)].map((m) => Number(m[1])));
    for (const wake of progressed) wake();
  });
  const finished = new Promise<number | null>((resolve) => reader.once('exit', resolve));
  const waitForProgress = (count: number) =>
    new Promise<void>((resolve) => {
      const check = () => (progress >= count || reader.exitCode !== null) && (progressed.delete(check), resolve());
      progressed.add(check);
      check();
    });

  const killed: number[] = [];
  for (let k = 1; k <= KILLS; k++) {
    await waitForProgress((FILES * k) / (KILLS + 1));
    const pid = servingPid(mount);
    process.kill(pid, 'SIGKILL');
    killed.push(pid);
    // The next kill targets the next server.
    while (servingPid(mount) === pid && mount.alive()) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(await finished).toBe(0);
  const result = JSON.parse(out.trim().split('\n').at(-1)!) as {
    done: number;
    failed: number;
    wrong: number;
    maxStallMs: number;
    slowest: string;
    errors: string[];
  };
  console.log(
    `survive: ${result.done} files read, ${result.failed} failed, ${result.wrong} wrong; ${killed.length} kills; ` +
      `longest stall ${result.maxStallMs.toFixed(0)} ms (${result.slowest}); takeover ${takeovers(mount.stderr()).join(', ')} ms`,
  );
  expect(result.errors).toEqual([]);
  expect(result).toMatchObject({ done: FILES, failed: 0, wrong: 0 });
  // Each kill really happened while reading, and each was followed by a new server.
  expect(killed.length).toBe(KILLS);
  expect(mount.alive()).toBe(true);
  expect([...mount.stderr().matchAll(/msg="serving reads"/g)].length).toBe(KILLS + 1);
  expect(mount.stderr()).toMatch(/serving process died; starting another on the same connection.*signal=SIGKILL/);

  // The mount still unmounts on SIGTERM with its metrics (those of the last server).
  const metrics = await mount.stop();
  expect(metrics?.['reads']).toBeGreaterThanOrEqual(0);
}, 180_000);

it('an overlay on top keeps working across a kill (no standby) and a SIGUSR2 replacement; a killed supervisor makes its server unmount', async () => {
  // Without a standby the replacement starts from scratch: the slow path works too.
  const second = await startMount(image.archive, await scratch('mnt2'), ['--no-standby']);
  const overlay = await scratch('overlay');
  for (const dir of ['upper', 'work', 'root']) await mkdir(join(overlay, dir));
  const root = join(overlay, 'root');
  try {
    const mounted = await sh(
      `mount -t overlay overlay -o lowerdir=${second.mountpoint},upperdir=${overlay}/upper,workdir=${overlay}/work ${root}`,
    );
    expect(mounted.code, mounted.stderr).toBe(0);
    expect((await sh(`cmp ${root}/files/d7/f7 ${image.rootfs}/files/d7/f7`)).code).toBe(0);

    const first = servingPid(second);
    process.kill(first, 'SIGKILL');
    // Through the overlay, during and after the restart: no ENOTCONN, the same bytes.
    expect((await sh(`cmp ${root}/files/d8/f8 ${image.rootfs}/files/d8/f8`)).code).toBe(0);
    expect((await sh(`ls ${root}/files/d9 | wc -l`)).stdout.trim()).toBe(String(FILES / 30));
    expect(servingPid(second)).not.toBe(first);
    expect(second.stderr()).toMatch(/serving process died; .* standby=false/);

    // SIGUSR2 replaces the serving process on purpose (e.g. after an upgrade): a fresh one
    // prepares, then takes over.
    const before = servingPid(second);
    second.child.kill('SIGUSR2');
    for (let i = 0; i < 600 && servingPid(second) === before; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(servingPid(second)).not.toBe(before);
    expect(second.stderr()).toMatch(/msg="serving process replaced \(SIGUSR2\)"/);
    expect((await sh(`cmp ${root}/files/d10/f10 ${image.rootfs}/files/d10/f10`)).code).toBe(0);
  } finally {
    await sh(`umount ${root}`);
  }

  // The supervisor dies: the serving process unmounts and exits, nothing stale stays.
  const server = servingPid(second);
  second.child.kill('SIGKILL');
  await processGone(server);
  expect(second.stderr()).toMatch(/msg="unmounting" .*reason="supervisor gone"/);
  expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(` ${second.mountpoint} `);
  expect((await sh(`stat -f ${second.mountpoint}`)).code).toBe(0);
  await second.stop();
  await removeAll(overlay);
}, 60_000);

it('a serving process that cannot start ends clip mount with its error and leaves no mount', async () => {
  const truncated = join(work, 'truncated.clip');
  const bytes = await readFile(image.archive);
  await writeFile(truncated, bytes.subarray(0, bytes.length - 100));
  const mountpoint = await scratch('bad');
  const result = await runCli(['mount', truncated, mountpoint], { timeoutMs: 30_000 });
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/clip: error: .*\[CLIP_E_ARCHIVE_FORMAT\]/);
  expect(result.stderr).toMatch(/msg="the serving process failed to start"/);
  expect(result.stderr).not.toMatch(/serving reads/);
  expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(` ${mountpoint} `);
  await removeAll(mountpoint);
}, 60_000);

it('a replacement refuses an archive that changed in the cache since clip mount checked it', async () => {
  const target = `${registry!.host}/images/published:1`;
  const published = await runCli(['publish', layoutRef, target, '-o', join(work, 'published.clip')], { timeoutMs: 120_000 });
  expect(published.code, published.stderr).toBe(0);
  const previous = process.env['CLIP_ARCHIVE_CACHE'];
  process.env['CLIP_ARCHIVE_CACHE'] = await scratch('archives');
  let mount: RunningMount | undefined;
  try {
    mount = await startMount(target, await scratch('mnt3'), ['--no-standby']);
    // The first serving process got the resolved location by message; it is the one archive in the cache.
    const cacheDir = process.env['CLIP_ARCHIVE_CACHE']!;
    const archives = (await readdir(cacheDir, { recursive: true })).filter((name) => name.endsWith('.clip'));
    expect(archives).toHaveLength(1);
    const cached = join(cacheDir, archives[0]!);
    // Another archive planted under the verified name, then the serving process dies.
    await copyFile(image.archive, `${cached}.planted`);
    await rename(`${cached}.planted`, cached);
    process.kill(servingPid(mount), 'SIGKILL');
    const { code } = await childExit(mount.child);
    expect(code).toBe(1);
    expect(mount.stderr()).toMatch(/digest mismatch for archive .*changed since clip mount checked it.*\[CLIP_E_DIGEST_MISMATCH\]/);
    expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(` ${mount.mountpoint} `);
  } finally {
    await mount?.stop();
    if (previous === undefined) delete process.env['CLIP_ARCHIVE_CACHE'];
    else process.env['CLIP_ARCHIVE_CACHE'] = previous;
  }
}, 180_000);
