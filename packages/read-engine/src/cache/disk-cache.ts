// Decoded spans on disk, shared by any number of processes pointing at the same directory.
//
// Crash safety: an entry is written to a unique temporary file and renamed into place, so a
// reader sees a whole entry or none. Each entry starts with a header (magic, payload sha256,
// key) that is checked on load; a corrupt or foreign entry is deleted and reported as a miss.
// The size bound holds across processes: writes reserve their bytes in a counter shared
// through the directory, under a lock file (cache-ledger.ts), evicting least recently used
// entries (access = file mtime, touched on every hit) of every process first when they would
// not fit. A full file system (ENOSPC) evicts and retries, and lowers this process's bound to
// what fitted.
// Writes of one key are coalesced: a write waits `writeDelayMs` first, and values set while
// it waits or runs are replaced by the longest, written next (a span extended piece by piece
// is written a few times, not once per piece: each write hashes and writes the whole span).
import { createHash, randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { mkdir, readFile, readdir, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SpanCache } from '../layer-reader.js';
import { CacheDirError, makeDirectories, silentLogger, type Logger } from '@clip/shared';
import { CacheLedger } from './cache-ledger.js';

const MAGIC = Buffer.from('CLIPBLK1');
const HEADER_FIXED = MAGIC.length + 32 + 4;
/** Evict down to this fraction of the limit, so eviction does not run on every write. */
const LOW_WATER = 0.9;

export interface DiskCacheEvents {
  onCorrupt?: (key: string) => void;
}

export interface DiskCacheOptions extends DiskCacheEvents {
  logger?: Logger;
  /** How long a write waits for a longer value of its key (default 0; `flush` ends the wait). */
  writeDelayMs?: number;
}

/** Every queued write listens on it: no listener limit (Node warns of a leak past 10). */
function wakeController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

export class DiskSpanCache implements SpanCache {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #logger: Logger;
  readonly #events: DiskCacheEvents;
  readonly #ledger: CacheLedger;
  /** Lowered below #maxBytes when the file system filled up first (ENOSPC). */
  #ceiling = Number.POSITIVE_INFINITY;
  #ready: Promise<void> | undefined;
  /** Per key: the write running and the value queued behind it. */
  readonly #writes = new Map<string, { next: Buffer | undefined; done: Promise<void> }>();
  readonly #writeDelayMs: number;
  /** Wakes writes waiting out their delay (flush). */
  #wake = wakeController();

  constructor(dir: string, maxBytes: number, options: DiskCacheOptions = {}) {
    this.#dir = dir;
    this.#maxBytes = maxBytes;
    this.#logger = options.logger ?? silentLogger;
    this.#events = options;
    this.#writeDelayMs = options.writeDelayMs ?? 0;
    this.#ledger = new CacheLedger(dir);
  }

  /** Creates the directory and measures what is already there. */
  open(): Promise<void> {
    this.#ready ??= (async () => {
      await makeDirectories(this.#dir).catch((error: NodeJS.ErrnoException) => {
        throw new CacheDirError(this.#dir, error.code ?? error.message);
      });
      // Measure, so the shared counter starts from the truth (and a smaller bound applies).
      await this.#ledger.withLock(async () => {
        const total = sizeOf(await this.#scan());
        await this.#ledger.writeUsage(total > this.#limit() ? await this.#evictLocked(0) : total);
      });
    })();
    return this.#ready;
  }

  /** `minLength`: an entry known (from its size) to be shorter is a miss, without reading it. */
  async get(key: string, minLength = 0): Promise<Buffer | undefined> {
    await this.open();
    const file = this.#path(key);
    if (minLength > 0) {
      const info = await stat(file).catch(() => undefined);
      if (!info || info.size - HEADER_FIXED - Buffer.byteLength(key) < minLength) return undefined;
    }
    let raw: Buffer;
    try {
      raw = await readFile(file);
    } catch {
      return undefined;
    }
    const payload = this.#decode(key, raw);
    if (!payload) {
      this.#logger.warn('dropping corrupt disk cache entry', { key, file });
      this.#events.onCorrupt?.(key);
      await unlink(file).catch(() => {});
      return undefined;
    }
    const now = new Date();
    utimes(file, now, now).catch(() => {});
    return payload;
  }

  set(key: string, value: Buffer): Promise<void> {
    const queued = this.#writes.get(key);
    if (queued) {
      if (!queued.next || queued.next.length < value.length) queued.next = value;
      return queued.done;
    }
    const entry: { next: Buffer | undefined; done: Promise<void> } = { next: value, done: Promise.resolve() };
    entry.done = (async () => {
      try {
        for (let next = entry.next; next; next = entry.next) {
          await this.#delay();
          next = entry.next ?? next;
          entry.next = undefined;
          await this.#write(key, next);
        }
      } finally {
        this.#writes.delete(key);
      }
    })();
    this.#writes.set(key, entry);
    return entry.done;
  }

  /** Settles when every write started so far has (without waiting out their delays). */
  async flush(): Promise<void> {
    this.#wake.abort();
    this.#wake = wakeController();
    while (this.#writes.size > 0) await Promise.all([...this.#writes.values()].map((entry) => entry.done.catch(() => {})));
  }

  #delay(): Promise<void> {
    if (this.#writeDelayMs <= 0) return Promise.resolve();
    const wake = this.#wake.signal;
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.#writeDelayMs);
      function done() {
        clearTimeout(timer);
        wake.removeEventListener('abort', done);
        resolve();
      }
      wake.addEventListener('abort', done, { once: true });
    });
  }

  async #write(key: string, value: Buffer): Promise<void> {
    await this.open();
    const file = this.#path(key);
    // Keep a longer entry another process (or a wider read) already stored.
    const existing = await stat(file).catch(() => undefined);
    const entrySize = HEADER_FIXED + Buffer.byteLength(key) + value.length;
    if (existing && existing.size >= entrySize) return;
    const keyBytes = Buffer.from(key);
    const header = Buffer.alloc(HEADER_FIXED);
    MAGIC.copy(header, 0);
    createHash('sha256').update(value).digest().copy(header, MAGIC.length);
    header.writeUInt32LE(keyBytes.length, MAGIC.length + 32);
    const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const written = await this.#ledger.withLock(async () => {
      const current = await stat(file).catch(() => undefined);
      if (current && current.size >= entrySize) return true;
      let total = (await this.#ledger.readUsage()) ?? sizeOf(await this.#scan());
      // A growing entry is rewritten beside the old one and renamed over it: for that instant
      // both exist, so make room for the whole new entry, not just the growth.
      if (total + entrySize > this.#limit()) total = await this.#evictLocked(entrySize);
      // Eviction may have removed the old entry itself.
      const replaced = current ? await stat(file).catch(() => undefined) : undefined;
      const delta = entrySize - (replaced?.size ?? 0);
      for (let attempt = 0; ; attempt++) {
        try {
          await mkdir(join(this.#dir, this.#shard(key)), { recursive: true });
          await writeFile(temp, [header, keyBytes, value]);
          await rename(temp, file);
          break;
        } catch (error) {
          await unlink(temp).catch(() => {});
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC' && attempt === 0) {
            // The file system is smaller than the bound: keep below what fitted, evict, retry.
            const measured = sizeOf(await this.#scan());
            this.#ceiling = Math.floor(measured * LOW_WATER);
            this.#logger.warn('disk cache file system full: evicting, and keeping the cache below what fitted', {
              dir: this.#dir,
              bytes: measured,
              bound: this.#ceiling,
            });
            total = await this.#evictLocked(delta);
            continue;
          }
          this.#logger.warn('disk cache write failed', { key, error: (error as Error).message });
          await this.#ledger.writeUsage(total);
          return false;
        }
      }
      await this.#ledger.writeUsage(total + delta);
      return true;
    });
    if (written === undefined) this.#logger.debug('disk cache locked by another process too long: write skipped', { key });
  }

  #limit(): number {
    return Math.min(this.#maxBytes, this.#ceiling);
  }

  async delete(key: string): Promise<void> {
    await this.open();
    await this.#writes.get(key)?.done.catch(() => {});
    const file = this.#path(key);
    const existing = await stat(file).catch(() => undefined);
    if (!existing) return;
    // The shared counter keeps counting it until the next eviction re-measures: over, never under.
    await unlink(file).catch(() => {});
  }

  #name(key: string): string {
    return createHash('sha256').update(key).digest('hex');
  }

  #shard(key: string): string {
    return this.#name(key).slice(0, 2);
  }

  #path(key: string): string {
    return join(this.#dir, this.#shard(key), `${this.#name(key)}.blk`);
  }

  #decode(key: string, raw: Buffer): Buffer | undefined {
    if (raw.length < HEADER_FIXED || !raw.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
    const keyLength = raw.readUInt32LE(MAGIC.length + 32);
    const payloadStart = HEADER_FIXED + keyLength;
    if (payloadStart > raw.length || raw.toString('utf8', HEADER_FIXED, payloadStart) !== key) return undefined;
    const payload = raw.subarray(payloadStart);
    const digest = createHash('sha256').update(payload).digest();
    return digest.equals(raw.subarray(MAGIC.length, MAGIC.length + 32)) ? payload : undefined;
  }

  async #scan(): Promise<Array<{ file: string; size: number; atime: number }>> {
    const entries: Array<{ file: string; size: number; atime: number }> = [];
    const shards = await readdir(this.#dir).catch(() => [] as string[]);
    for (const shard of shards) {
      const names = await readdir(join(this.#dir, shard)).catch(() => [] as string[]);
      for (const name of names) {
        if (!name.endsWith('.blk')) continue;
        const file = join(this.#dir, shard, name);
        const info = await stat(file).catch(() => undefined);
        if (info) entries.push({ file, size: info.size, atime: info.mtimeMs });
      }
    }
    return entries;
  }

  /**
   * Evicts least recently used entries (of every process) until `reserve` more bytes fit
   * under the low-water mark; returns the bytes left. Called holding the ledger's lock.
   */
  async #evictLocked(reserve: number): Promise<number> {
    const entries = await this.#scan();
    let total = sizeOf(entries);
    entries.sort((a, b) => a.atime - b.atime);
    const target = this.#limit() * LOW_WATER;
    let removed = 0;
    for (const entry of entries) {
      if (total + reserve <= target) break;
      // Another process may have deleted it already: that is fine.
      await unlink(entry.file).catch(() => {});
      total -= entry.size;
      removed++;
    }
    await this.#ledger.writeUsage(total);
    if (removed) this.#logger.debug('disk cache eviction', { removed, bytes: total });
    return total;
  }
}

function sizeOf(entries: Array<{ size: number }>): number {
  return entries.reduce((sum, entry) => sum + entry.size, 0);
}
