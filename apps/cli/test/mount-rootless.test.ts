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
import { userAllowOther } from '@clip/mounter';
import { CLI, processGone, removeAll, run, runCli, sh, tempDir } from './mount-harness.js';

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

/** `clip mount` as the ordinary user, with helpers to follow its serving processes. */
function startUserMount(args: string[] = []) {
  const started = spawn('setpriv', [...SETPRIV, process.execPath, CLI, 'mount', archive, mountpoint, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child = started;
  let stderr = '';
  started.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => started.once('exit', resolve));
  const servers = () => [...stderr.matchAll(/msg="serving reads" pid=(\d+)/g)].map((m) => Number(m[1]));
  const until = async (what: () => boolean) => {
    for (let i = 0; i < 600 && !what(); i++) {
      if (started.exitCode !== null) throw new Error(`clip mount exited:\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  return { child: started, exited, servers, until, stderr: () => stderr };
}

it.skipIf(skip !== undefined)(
  'mounts, reads and unmounts on SIGINT as an ordinary user (fusermount3)',
  async () => {
    const mount = startUserMount();
    await mount.until(() => mount.servers().length === 1);

    const line = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === mountpoint);
    expect(line).toMatch(/fuse\.clip .*user_id=65534/);
    // allow_other only where /etc/fuse.conf allows it; without it FUSE lets nobody else in, root included.
    expect(/[ ,]allow_other/.test(line!)).toBe(userAllowOther());
    if (!userAllowOther()) await expect(readFile(join(mountpoint, 'etc/hello'))).rejects.toMatchObject({ code: 'EACCES' });
    expect((await asUser(`cat ${mountpoint}/etc/hello`)).stdout).toBe('hello from a rootless mount\n');
    expect((await asUser(`sha256sum < ${mountpoint}/etc/data.bin`)).stdout).toBe(`${sha256(content)}  -\n`);

    // The serving process is the user's too, and a killed one is replaced.
    process.kill(mount.servers()[0]!, 'SIGKILL');
    await mount.until(() => mount.servers().length === 2);
    expect((await asUser(`tail -c 100000 ${mountpoint}/etc/data.bin | sha256sum`)).stdout).toBe(
      `${sha256(content.subarray(-100_000))}  -\n`,
    );

    mount.child.kill('SIGINT');
    expect(await mount.exited).toBe(0);
    expect(mount.stderr()).toMatch(/^\{"metrics":/m);
    expect(mount.stderr()).toMatch(/msg="unmounted"/);
    expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(` ${mountpoint} `);
  },
  60_000,
);

it.skipIf(skip !== undefined)(
  'cleans its own stale mount with --force-unmount-stale, without root',
  async () => {
    const crashed = startUserMount(['--no-standby']);
    await crashed.until(() => crashed.servers().length === 1);
    // Both processes die at once: the supervisor is stopped first so it starts no other server.
    crashed.child.kill('SIGSTOP');
    const server = crashed.servers()[0]!;
    process.kill(server, 'SIGKILL');
    crashed.child.kill('SIGKILL');
    await crashed.exited;
    await processGone(server);
    // The kernel may release the last descriptor a moment after the processes are gone (delayed
    // fput): a request sent meanwhile fails with ECONNABORTED instead of ENOTCONN.
    const stale = await asUser(`stat -f ${mountpoint}`);
    expect(stale.stderr, stale.stderr).toMatch(/Transport endpoint is not connected|Software caused connection abort/);

    const refused = await asUser(`${process.execPath} ${CLI} mount ${archive} ${mountpoint}`);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/stale FUSE mount.*fusermount3 -u/);

    const forced = startUserMount(['--force-unmount-stale']);
    await forced.until(() => forced.servers().length === 1);
    expect((await asUser(`cat ${mountpoint}/etc/hello`)).stdout).toBe('hello from a rootless mount\n');
    forced.child.kill('SIGINT');
    expect(await forced.exited).toBe(0);
    expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(` ${mountpoint} `);
  },
  60_000,
);
