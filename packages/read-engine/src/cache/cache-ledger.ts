// The disk cache's size bound across processes. Each process used to count only its own
// writes, so two mounts sharing an 8 MiB cache left 12 MB behind. Now every write, in every
// process, goes through a lock file in the cache directory and a shared counter of the
// directory's bytes (`.usage`) read and updated under it: a write reserves its bytes (evicting
// first when they would not fit) and lands before the lock is released, so the entries never
// add up to more than the bound. The counter only ever over-counts (deleted or corrupt entries
// are not subtracted; a crash after reserving), and every eviction re-measures the directory
// and writes the truth back, so it cannot drift up for long. A lost or unreadable counter is
// re-measured.
//
// The lock is `open(O_EXCL)` of `.lock`: no flock in Node, and it works on any local file
// system. A lock older than STALE_LOCK_MS is a crashed holder's and is broken. Waiting is
// bounded: a write that cannot get the lock in LOCK_WAIT_MS is skipped (a cache write is
// never worth stalling a read for).
import { readlinkSync } from 'node:fs';
import { open, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirectories } from '@clip/shared';

const LOCK_FILE = '.lock';
const USAGE_FILE = '.usage';
/** A holder keeps the lock for one entry write (or one eviction): far below this. */
const STALE_LOCK_MS = 15_000;
export const LOCK_WAIT_MS = 5_000;

/** `<pid namespace>:<pid>` of this process: a lock holder that can be checked for life. */
const HOLDER = `${pidNamespace()}:${process.pid}`;

function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}

/**
 * Whether the lock's holder is a process of our pid namespace that no longer exists (a
 * SIGKILLed serving process): then nobody will release it and waiting for its age is wasted.
 */
async function holderDied(path: string): Promise<boolean> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const at = text.lastIndexOf(':');
  const pid = Number(text.slice(at + 1));
  if (at <= 0 || text.slice(0, at) !== pidNamespace() || !Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class CacheLedger {
  readonly #dir: string;
  /** Serialises this process's holders, so only other processes are waited for by polling. */
  #local: Promise<unknown> = Promise.resolve();
  #skipUntil = 0;

  constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Runs `fn` holding the directory lock; undefined (fn not run) when the lock could not be
   * had in time.
   */
  withLock<T>(fn: () => Promise<T>): Promise<T | undefined> {
    const run = this.#local.then(async () => {
      // Just failed to get it: do not queue every pending write behind another long wait.
      if (Date.now() < this.#skipUntil) return undefined;
      if (!(await this.#acquire())) {
        this.#skipUntil = Date.now() + LOCK_WAIT_MS;
        return undefined;
      }
      try {
        return await fn();
      } finally {
        await unlink(join(this.#dir, LOCK_FILE)).catch(() => {});
      }
    });
    this.#local = run.catch(() => {});
    return run;
  }

  /** The shared byte count, or undefined when missing or unreadable (re-measure). */
  async readUsage(): Promise<number | undefined> {
    const text = await readFile(join(this.#dir, USAGE_FILE), 'utf8').catch(() => undefined);
    const value = text === undefined || text.trim() === '' ? NaN : Number(text.trim());
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  }

  async writeUsage(bytes: number): Promise<void> {
    const path = join(this.#dir, USAGE_FILE);
    // A failed write (full disk) must not leave a short count behind: drop it, re-measure later.
    await writeFile(path, `${Math.max(0, Math.round(bytes))}\n`).catch(() => unlink(path).catch(() => {}));
  }

  async #acquire(): Promise<boolean> {
    const path = join(this.#dir, LOCK_FILE);
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        // Staleness is judged by age, or sooner by the holder's pid (written when the disk
        // allows: a full disk can still create the empty file).
        const handle = await open(path, 'wx');
        await handle.writeFile(HOLDER).catch(() => {});
        await handle.close();
        return true;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && attempt === 0) {
          // The cache directory was deleted under us: make it again, as the writes would.
          await makeDirectories(this.#dir).catch(() => {});
          continue;
        }
        if (code !== 'EEXIST') return false; // full disk, permissions, …: no cache write
      }
      const info = await stat(path).catch(() => undefined);
      if (info && (Date.now() - info.mtimeMs > STALE_LOCK_MS || (await holderDied(path)))) {
        await unlink(path).catch(() => {});
        continue;
      }
      if (Date.now() > deadline) return false;
      await sleep(Math.min(50, 2 + attempt * 2) * (0.5 + Math.random()));
    }
  }
}
