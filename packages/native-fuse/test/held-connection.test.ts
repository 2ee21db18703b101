// A connection held by this process outlives the process serving it: a server that took a
// read and died (SIGKILL) is replaced, the new one attaches (replayed INIT) and sends
// FUSE_NOTIFY_RESEND, and the blocked reader gets the right bytes. Servers are child processes
// running the built package (test/fixtures/serve-held.mjs) on the inherited descriptor.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { MountHolder } from '../src/index.js';

const SERVER = new URL('./fixtures/serve-held.mjs', import.meta.url).pathname;
const content = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 13 + 7) & 0xff));
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function startServer(holder: MountHolder, mode: 'hang' | 'serve'): { child: ChildProcess; said: (line: string) => Promise<void> } {
  const env = { ...process.env, CLIP_TEST_INIT: Buffer.from(holder.init).toString('base64') };
  const child = spawn(process.execPath, [SERVER, holder.mountpoint, mode], { stdio: ['ignore', 'pipe', 'inherit', holder.fd], env });
  cleanups.push(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const said = (line: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => out.split('\n').includes(line) && (clearInterval(timer), resolve());
      const timer = setInterval(check, 20);
      child.once('exit', () => (clearInterval(timer), reject(new Error(`server exited before saying ${line}`))));
    });
  return { child, said };
}

it('a read taken by a killed server is answered by the next one (FUSE_NOTIFY_RESEND)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'clip-held-'));
  const holder = MountHolder.hold(dir, ['ro', 'fsname=clip-test', 'subtype=clip', 'default_permissions']);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  cleanups.push(() => holder.release());
  expect(holder.init.length).toBeGreaterThan(40);
  expect(holder.alive()).toBe(true);

  const first = startServer(holder, 'hang');
  await first.said('serving resend=0');
  const reader = spawn('sha256sum', [join(dir, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let digest = '';
  reader.stdout!.on('data', (chunk: Buffer) => (digest += chunk.toString()));
  const readerDone = new Promise<number | null>((resolve) => reader.once('exit', resolve));
  cleanups.push(() => void reader.kill('SIGKILL'));
  await first.said('read');
  first.child.kill('SIGKILL');
  await new Promise((resolve) => first.child.once('exit', resolve));
  expect(holder.alive()).toBe(true);
  expect(reader.exitCode).toBeNull(); // still waiting, not ENOTCONN

  const second = startServer(holder, 'serve');
  await second.said('serving resend=0');
  expect(await readerDone).toBe(0);
  expect(digest.split(' ')[0]).toBe(createHash('sha256').update(content).digest('hex'));

  // The server's unmount ends the connection for the holder too.
  second.child.kill('SIGTERM');
  await new Promise((resolve) => second.child.once('exit', resolve));
  expect(holder.alive()).toBe(false);
});

it('releasing the holder with no server aborts the connection and detaches the mount', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'clip-held-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const holder = MountHolder.hold(dir, ['ro', 'fsname=clip-test', 'subtype=clip']);
  const mounted = async () =>
    (await import('node:fs/promises')).readFile('/proc/self/mountinfo', 'utf8').then((t) => t.includes(` ${dir} `));
  expect(await mounted()).toBe(true);
  holder.release();
  expect(holder.alive()).toBe(false);
  expect(await mounted()).toBe(false);
});
