// `clip mount` as an ordinary user (nobody, through setpriv): the mount goes through Debian
// fuse3's fusermount3, the user reads the right bytes, a killed serving process is replaced,
// and SIGINT unmounts. Skips, saying why, when this machine cannot switch users or when
// /dev/fuse is not usable by others (scripts/bootstrap.sh makes it 0666 when run as root).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, statSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI, removeAll, run, runCli, sh, tempDir } from './mount-harness.js';

const USER = 65534; // nobody
const SETPRIV = ['--reuid', String(USER), '--regid', String(USER), '--clear-groups'];

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to switch to an ordinary user';
  for (const tool of ['/usr/bin/setpriv', '/usr/bin/fusermount3']) {
    try {
      accessSync(tool, constants.X_OK);
    } catch {
      return `${tool} is missing`;
    }
  }
  if ((statSync('/dev/fuse').mode & 0o006) !== 0o006) return '/dev/fuse is not mode 0666 (run scripts/bootstrap.sh as root)';
  return undefined;
}
const skip = skipReason();
if (skip) console.warn(`skipping rootless mount test: ${skip}`);

let work: string;
let mountpoint: string;
let archive: string;
let content: Buffer;
let child: ChildProcess | undefined;

beforeAll(async () => {
  if (skip) return;
  work = await tempDir('rootless');
  await chmod(work, 0o755);
  const src = join(work, 'tree');
  await mkdir(join(src, 'etc'), { recursive: true });
  content = Buffer.from(Array.from({ length: 3 << 20 }, (_, i) => (i * 31 + (i >> 12)) & 0xff));
  await writeFile(join(src, 'etc', 'data.bin'), content);
  await writeFile(join(src, 'etc', 'hello'), 'hello from a rootless mount\n');
  archive = join(work, 'image.clip');
  const built = await runCli(['archive', src, '-o', archive]);
  expect(built.code, built.stderr).toBe(0);
  mountpoint = join(work, 'mnt');
  await mkdir(mountpoint);
  await chown(mountpoint, USER, USER);
});

afterAll(async () => {
  if (skip) return;
  child?.kill('SIGKILL');
  await run('fusermount3', ['-uz', mountpoint]).catch(() => {});
  await removeAll(work);
});

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Runs a shell command as the ordinary user. */
const asUser = (script: string) => sh(`setpriv ${SETPRIV.join(' ')} sh -c '${script}'`);

it.skipIf(skip !== undefined)('mounts, reads and unmounts on SIGINT as an ordinary user (fusermount3)', async () => {
  child = spawn('setpriv', [...SETPRIV, process.execPath, CLI, 'mount', archive, mountpoint], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child!.once('exit', resolve));
  const servers = () => [...stderr.matchAll(/msg="serving reads" pid=(\d+)/g)].map((m) => Number(m[1]));
  const until = async (what: () => boolean) => {
    for (let i = 0; i < 600 && !what(); i++) {
      if (child!.exitCode !== null) throw new Error(`clip mount exited:\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  await until(() => servers().length === 1);

  const line = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === mountpoint);
  expect(line).toMatch(/fuse\.clip .*user_id=65534/);
  expect((await asUser(`cat ${mountpoint}/etc/hello`)).stdout).toBe('hello from a rootless mount\n');
  expect((await asUser(`sha256sum < ${mountpoint}/etc/data.bin`)).stdout).toBe(`${sha256(content)}  -\n`);

  // The serving process is the user's too, and a killed one is replaced.
  process.kill(servers()[0]!, 'SIGKILL');
  await until(() => servers().length === 2);
  expect((await asUser(`tail -c 100000 ${mountpoint}/etc/data.bin | sha256sum`)).stdout).toBe(`${sha256(content.subarray(-100_000))}  -\n`);

  child.kill('SIGINT');
  expect(await exited).toBe(0);
  expect(stderr).toMatch(/^\{"metrics":/m);
  expect(stderr).toMatch(/msg="unmounted"/);
  expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(` ${mountpoint} `);
}, 60_000);
