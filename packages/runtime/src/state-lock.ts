// Cross-process exclusive lock on a file in the state directory, so concurrent acquires of one
// image mount it once. flock(2) through util-linux flock(1): the kernel drops the lock when the
// holder dies, so a crashed process never leaves a stale lock (a pid file would).
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { StateDirError } from './errors.js';

/** Waits up to `timeoutMs` for the lock, runs `fn`, releases. */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  // flock holds the lock while `cat` runs; cat ends when we close its stdin (or when we die).
  const child = spawn('flock', ['-x', '-w', String(Math.ceil(timeoutMs / 1000)), path, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const locked = await new Promise<boolean>((resolve) => {
    child.stdout.once('data', () => resolve(true));
    child.once('error', () => resolve(false));
    void exited.then(() => resolve(false));
  });
  if (!locked) {
    child.stdin.destroy();
    throw new StateDirError(`cannot lock ${path}: ${stderr.trim() || 'flock failed or timed out'}`);
  }
  try {
    return await fn();
  } finally {
    child.stdin.end();
    await exited;
  }
}
