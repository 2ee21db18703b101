// One lazy clip mount per image, shared by every snapshot (container) that needs it, kept
// by its holders and stopped when the last one releases it. Each mount is a detached
// `clip mount` process, so a restart of the snapshotter does not take running containers'
// root file systems with it; the table of mounts and holders is a JSON file in the state
// directory, and a mount whose process is gone is started again on the next acquire.
// (Same shape as the runtime's ImageMountPool of issue #16, so it can replace this one.)
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeFileAtomically } from '@clip/shared/fs-atomic';
import { silentLogger, type Logger } from '@clip/shared/log';
import { ImageMountError } from './errors.js';
import { isMounted, lazyDetach } from './mount-table.js';

export interface ImageToMount {
  imageRef: string;
  manifestDigest: string;
  /** Verified local archive of the image. */
  archivePath: string;
}

export interface ImageMountLease {
  imageKey: string;
  mountpoint: string;
  manifestDigest: string;
  reused: boolean;
  release(): Promise<void>;
}

export interface ImageMountInfo {
  imageKey: string;
  imageRef: string;
  mountpoint: string;
  pid: number;
  holders: string[];
  /** `host:port` of the mount's Prometheus metrics. */
  metrics?: string;
}

/** What the snapshotter needs from a pool of shared image mounts. */
export interface ImageMountPool {
  acquire(image: ImageToMount, holder: string): Promise<ImageMountLease>;
  release(imageKey: string, holder: string): Promise<void>;
  list(): Promise<ImageMountInfo[]>;
}

export interface ProcessImageMountPoolOptions {
  stateDir: string;
  /** Command that runs clip, e.g. [process.execPath, '/path/to/clip/main.js']. */
  clipCommand: string[];
  /** Extra `clip mount` arguments (--cache-dir, --retries, --insecure, ...). */
  mountArgs?: string[];
  logger?: Logger;
  /** How long a new mount may take to appear. */
  startTimeoutMs?: number;
}

type MountTable = Record<string, ImageMountInfo & { archivePath: string }>;

export class ProcessImageMountPool implements ImageMountPool {
  private readonly logger: Logger;
  private readonly file: string;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: ProcessImageMountPoolOptions) {
    this.logger = options.logger ?? silentLogger;
    this.file = join(options.stateDir, 'mounts.json');
  }

  acquire(image: ImageToMount, holder: string): Promise<ImageMountLease> {
    return this.locked(async () => {
      const table = await this.read();
      const imageKey = image.manifestDigest.replace('sha256:', '');
      let entry = table[imageKey];
      let reused = true;
      if (!entry || !(await this.alive(entry))) {
        if (entry) {
          this.logger.info('re-establishing lazy image mount', { image: image.imageRef, mountpoint: entry.mountpoint, old_pid: entry.pid });
          await this.stop(entry);
        }
        entry = { ...(await this.start(image, imageKey)), holders: entry?.holders ?? [] };
        reused = false;
      }
      if (!entry.holders.includes(holder)) entry.holders.push(holder);
      table[imageKey] = entry;
      await this.write(table);
      return { imageKey, mountpoint: entry.mountpoint, manifestDigest: image.manifestDigest, reused, release: () => this.release(imageKey, holder) };
    });
  }

  release(imageKey: string, holder: string): Promise<void> {
    return this.locked(async () => {
      const table = await this.read();
      const entry = table[imageKey];
      if (!entry) return;
      entry.holders = entry.holders.filter((h) => h !== holder);
      if (entry.holders.length === 0) {
        await this.stop(entry);
        delete table[imageKey];
        this.logger.info('stopped lazy image mount (no holders)', { image: entry.imageRef, mountpoint: entry.mountpoint });
      }
      await this.write(table);
    });
  }

  /** Drops holders `keep` does not accept (e.g. snapshots that no longer exist); stops unused mounts. */
  async sweep(keep: (holder: string) => boolean): Promise<number> {
    let stopped = 0;
    for (const entry of await this.list()) {
      for (const holder of entry.holders.filter((h) => !keep(h))) await this.release(entry.imageKey, holder);
      if (entry.holders.length === 0) {
        await this.locked(async () => {
          const table = await this.read();
          const current = table[entry.imageKey];
          if (current && current.holders.length === 0) {
            await this.stop(current);
            delete table[entry.imageKey];
            await this.write(table);
            stopped++;
          }
        });
      }
    }
    return stopped;
  }

  async list(): Promise<ImageMountInfo[]> {
    return Object.values(await this.read());
  }

  private async start(image: ImageToMount, imageKey: string): Promise<ImageMountInfo & { archivePath: string }> {
    const mountpoint = join(this.options.stateDir, 'mnt', imageKey);
    const logFile = join(this.options.stateDir, 'logs', `${imageKey}.log`);
    await mkdir(mountpoint, { recursive: true });
    await mkdir(join(this.options.stateDir, 'logs'), { recursive: true });
    await rm(logFile, { force: true });
    const [command, ...prefix] = this.options.clipCommand;
    if (!command) throw new ImageMountError('no clip command configured for image mounts');
    const args = [...prefix, 'mount', image.archivePath, mountpoint, '--metrics', '127.0.0.1:0', ...(this.options.mountArgs ?? [])];
    const fd = openSync(logFile, 'a');
    let exited: string | undefined;
    try {
      const child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd] });
      child.once('exit', (code, signal) => {
        exited = signal ? `signal ${signal}` : `exit code ${String(code)}`;
      });
      child.once('error', (error) => {
        exited = error.message;
      });
      child.unref();
      const pid = child.pid ?? 0;
      const deadline = Date.now() + (this.options.startTimeoutMs ?? 60_000);
      for (;;) {
        const log = await readFile(logFile, 'utf8').catch(() => '');
        const line = log.split('\n').find((l) => / msg="?mounted"?( |$)/.test(l));
        if (line && (await isMounted(mountpoint))) {
          const metrics = /metrics=([^\s]+)/.exec(line)?.[1]?.replace(/"/g, '');
          this.logger.info('lazy image mount started', { image: image.imageRef, mountpoint, pid, log: logFile });
          return { imageKey, imageRef: image.imageRef, mountpoint, pid, holders: [], archivePath: image.archivePath, ...(metrics ? { metrics } : {}) };
        }
        if (exited !== undefined || Date.now() > deadline) {
          if (exited === undefined && pid) process.kill(pid, 'SIGKILL');
          const tail = log.trim().split('\n').slice(-3).join(' | ');
          throw new ImageMountError(`clip mount of ${image.imageRef} at ${mountpoint} ${exited ? `failed (${exited})` : 'did not come up in time'}: ${tail || '(no output)'}`);
        }
        await sleep(100);
      }
    } finally {
      closeSync(fd);
    }
  }

  /** The mount process is ours and still serving. */
  private async alive(entry: ImageMountInfo): Promise<boolean> {
    const cmdline = await readFile(`/proc/${entry.pid}/cmdline`, 'utf8').catch(() => '');
    return cmdline.includes(entry.mountpoint) && (await isMounted(entry.mountpoint));
  }

  private async stop(entry: ImageMountInfo): Promise<void> {
    const cmdline = await readFile(`/proc/${entry.pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(entry.mountpoint)) {
      try {
        process.kill(entry.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      for (let i = 0; i < 100 && (await readFile(`/proc/${entry.pid}/cmdline`, 'utf8').then(() => true, () => false)); i++) await sleep(100);
    }
    // Still attached (process killed hard, or busy): detach lazily so nothing is left behind.
    if (await isMounted(entry.mountpoint)) await lazyDetach(entry.mountpoint);
    await rmdir(entry.mountpoint).catch(() => undefined);
  }

  private async read(): Promise<MountTable> {
    const text = await readFile(this.file, 'utf8').catch(() => undefined);
    return text ? (JSON.parse(text) as MountTable) : {};
  }

  private async write(table: MountTable): Promise<void> {
    await writeFileAtomically(this.file, Buffer.from(JSON.stringify(table)));
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
