// One lazy FUSE mount per image per worker, shared by every container, bundle or snapshot of
// that image, and durable in the state directory so it survives restarts of its users:
//
//   <stateDir>/mounts/<imageKey>/server.json   pid, mountpoint, digests of the serving process
//   <stateDir>/mounts/<imageKey>/mnt/          the mount
//   <stateDir>/mounts/<imageKey>/holders/<h>   one file per user ("container:<id>", ...)
//   <stateDir>/mounts/<imageKey>/server.log    the server's output
//   <stateDir>/locks/<imageKey>.lock           flock: acquires/releases of one image run one at a time
//
// Each mount is served by a detached `clip mount` process; a server that died (pid gone, or
// statfs ENOTCONN) is detached and replaced, never reused. The last release stops it.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { access, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { forceUnmount, isArchiveUrl, isMounted, openArchiveLocation } from '@clip/mounter';
import { silentLogger, writeFileAtomically, type Logger } from '@clip/shared';
import { MountServerError, StateDirError } from './errors.js';
import {
  defaultClipCommand,
  fetchedBytes,
  freeLoopbackAddress,
  mountServerAlive,
  startMountServer,
  stopMountServer,
} from './mount-server.js';
import type { ImageRuntimeConfig } from './oci-spec.js';
import { withFileLock } from './state-lock.js';

const run = promisify(execFile);

/** Turns an image argument (registry reference) into a local .clip path or an archive URL. */
export type ArchiveResolver = (image: string) => Promise<string>;

export interface ImageMountPoolOptions {
  /** Durable state (mounts, holders, locks); e.g. /run/clip. */
  stateDir: string;
  /** Disk cache of decoded spans, shared by all images (clip mount --cache-dir). */
  cacheDir?: string;
  cacheSize?: string;
  memoryCache?: string;
  readTimeoutMs?: number;
  retries?: number;
  insecure?: boolean;
  /** containerd hosts.toml directory (mirrors) for `clip mount` and `clip pull-archive` (--hosts-dir; '' for none). */
  hostsDir?: string;
  /** Where `clip pull-archive` keeps downloaded archives (default resolver only). */
  archiveCacheDir?: string;
  /** More `clip mount` flags for every mount server (e.g. `--record <file>` for a profile run). */
  extraMountArgs?: string[];
  /** Apply no access profile (clip mount --no-prefetch). */
  noPrefetch?: boolean;
  /** More `clip pull-archive` flags for the default resolver, e.g. trust: ['--verify-key', 'key.pem']. */
  pullArchiveArgs?: string[];
  /** argv running the clip CLI; default the workspace's @clip/cli, else `clip` on PATH. */
  clipCommand?: string[];
  /** Default: local files and URLs as they are, registry references through `clip pull-archive --json`. */
  resolveArchive?: ArchiveResolver;
  logger?: Logger;
}

export interface ImageMountLease {
  imageKey: string;
  mountpoint: string;
  manifestDigest: string;
  archiveDigest: string;
  /** A live mount of this image existed already. */
  reused: boolean;
  /** The archive (local path or URL) being served. */
  archive: string;
  imageConfig: ImageRuntimeConfig;
  /** host:port of the server's Prometheus metrics. */
  metrics?: string;
  release(): Promise<void>;
}

export interface PooledMount {
  imageKey: string;
  image: string;
  mountpoint: string;
  holders: string[];
  pid: number;
  alive: boolean;
}

interface ServerRecord {
  image: string;
  archive: string;
  manifestDigest: string;
  archiveDigest: string;
  imageConfig: ImageRuntimeConfig;
  pid: number;
  mountpoint: string;
  metrics?: string;
  startedAt: string;
}

interface ResolvedImage {
  archive: string;
  manifestDigest: string;
  archiveDigest: string;
  imageConfig: ImageRuntimeConfig;
  imageKey: string;
}

const hex = (text: string) => createHash('sha256').update(text).digest('hex');

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** Holder names become file names: readable when short and safe, hashed otherwise. */
function holderFile(holder: string): string {
  const encoded = encodeURIComponent(holder);
  return encoded.length <= 200 && encoded !== '.' && encoded !== '..' ? encoded : `h-${hex(holder)}`;
}

export class ImageMountPool {
  readonly stateDir: string;
  private readonly options: ImageMountPoolOptions;
  private readonly logger: Logger;

  constructor(options: ImageMountPoolOptions) {
    this.options = options;
    this.stateDir = resolve(options.stateDir);
    this.logger = options.logger ?? silentLogger;
  }

  private mountDir(imageKey: string): string {
    if (!/^[a-z0-9-]+$/.test(imageKey)) throw new StateDirError(`invalid image key ${JSON.stringify(imageKey)}`);
    return join(this.stateDir, 'mounts', imageKey);
  }

  private lockPath(imageKey: string): string {
    return join(this.stateDir, 'locks', `${imageKey}.lock`);
  }

  private async resolveImage(image: string): Promise<ResolvedImage> {
    const archive = await (this.options.resolveArchive ?? ((i) => this.defaultResolve(i)))(image);
    const opened = await openArchiveLocation(archive, {
      ...(this.options.insecure ? { insecure: true } : {}),
      ...(this.options.readTimeoutMs ? { timeoutMs: this.options.readTimeoutMs } : {}),
    });
    const metadata = opened.archive.metadata;
    await opened.close();
    // A URL is read by range, never whole: it is named by its address.
    const archiveDigest = isArchiveUrl(archive) ? `sha256:${hex(archive)}` : await fileDigest(archive);
    const manifestDigest = metadata.storage?.manifestDigest ?? archiveDigest;
    const imageKey = `${manifestDigest.replace(/^sha256:/, '').slice(0, 16)}-${archiveDigest.replace(/^sha256:/, '').slice(0, 16)}`;
    return {
      archive: isArchiveUrl(archive) ? archive : resolve(archive),
      manifestDigest,
      archiveDigest,
      imageConfig: metadata.imageConfig,
      imageKey,
    };
  }

  private async defaultResolve(image: string): Promise<string> {
    if (
      isArchiveUrl(image) ||
      (await stat(image).then(
        () => true,
        () => false,
      ))
    )
      return image;
    const [command, ...prefix] = this.options.clipCommand ?? defaultClipCommand();
    const args = [...prefix, 'pull-archive', image, '--json', ...(this.options.insecure ? ['--insecure'] : [])];
    if (this.options.archiveCacheDir) args.push('--cache-dir', this.options.archiveCacheDir);
    if (this.options.hostsDir !== undefined) args.push('--hosts-dir', this.options.hostsDir);
    args.push(...(this.options.pullArchiveArgs ?? []));
    try {
      const { stdout } = await run(command!, args, { maxBuffer: 1 << 20 });
      return (JSON.parse(stdout) as { path: string }).path;
    } catch (error) {
      const stderr = String((error as { stderr?: string }).stderr ?? '').trim();
      const line =
        stderr
          .split('\n')
          .reverse()
          .find((l) => l.startsWith('clip: ')) ?? stderr.split('\n').pop();
      throw new MountServerError(`cannot find the archive of ${image}: ${line || (error as Error).message}`);
    }
  }

  private mountArgs(): string[] {
    const o = this.options;
    return [
      ...(o.cacheDir ? ['--cache-dir', o.cacheDir] : []),
      ...(o.cacheSize ? ['--cache-size', o.cacheSize] : []),
      ...(o.memoryCache ? ['--memory-cache', o.memoryCache] : []),
      ...(o.readTimeoutMs ? ['--read-timeout', String(o.readTimeoutMs / 1000)] : []),
      ...(o.retries !== undefined ? ['--retries', String(o.retries)] : []),
      ...(o.insecure ? ['--insecure'] : []),
      ...(o.hostsDir !== undefined ? ['--hosts-dir', o.hostsDir] : []),
      ...(o.noPrefetch ? ['--no-prefetch'] : []),
      ...(o.extraMountArgs ?? []),
    ];
  }

  private async readRecord(imageKey: string): Promise<ServerRecord | undefined> {
    const text = await readFile(join(this.mountDir(imageKey), 'server.json'), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as ServerRecord;
    } catch {
      return undefined;
    }
  }

  private async holders(imageKey: string): Promise<string[]> {
    const dir = join(this.mountDir(imageKey), 'holders');
    const names = await readdir(dir).catch(() => [] as string[]);
    const holders: string[] = [];
    // Dot files are writes in progress (writeFileAtomically's temporary files).
    for (const name of names.filter((n) => !n.startsWith('.'))) {
      const text = await readFile(join(dir, name), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      try {
        holders.push((JSON.parse(text) as { holder: string }).holder);
      } catch {
        holders.push(decodeURIComponent(name));
      }
    }
    return holders.sort();
  }

  /** Stops a server (dead or alive) and detaches its mount. */
  private async teardown(record: ServerRecord): Promise<void> {
    await stopMountServer(record.pid, record.mountpoint);
    const stale = await isMounted(record.mountpoint);
    if (stale) await forceUnmount(record.mountpoint).catch(() => undefined);
    if (await isMounted(record.mountpoint)) throw new MountServerError(`cannot unmount ${record.mountpoint}`);
  }

  /** Creates the state directory's layout; a clear error when it cannot be used. */
  async checkStateDir(): Promise<void> {
    try {
      await mkdir(join(this.stateDir, 'locks'), { recursive: true });
      await access(this.stateDir, constants.W_OK);
    } catch (error) {
      throw new StateDirError(`cannot use the state directory ${this.stateDir}: ${(error as Error).message}`, { cause: error });
    }
  }

  async acquire(image: string, holder: string): Promise<ImageMountLease> {
    await this.checkStateDir();
    const resolved = await this.resolveImage(image);
    const dir = this.mountDir(resolved.imageKey);
    return withFileLock(this.lockPath(resolved.imageKey), async () => {
      let record = await this.readRecord(resolved.imageKey);
      let reused = false;
      if (record && (await mountServerAlive(record.pid, record.mountpoint))) {
        reused = true;
      } else {
        if (record) {
          this.logger.warn('mount server of the image is gone; replacing it', {
            image_key: resolved.imageKey,
            pid: record.pid,
            mountpoint: record.mountpoint,
          });
          await this.teardown(record);
        }
        record = await this.start(image, resolved, dir).catch(async (error: unknown) => {
          // Leave nothing behind for an image that could not be mounted (the error carries the log).
          if ((await this.holders(resolved.imageKey)).length === 0 && !(await isMounted(join(dir, 'mnt'))))
            await rm(dir, { recursive: true, force: true });
          throw error;
        });
      }
      await mkdir(join(dir, 'holders'), { recursive: true });
      // Atomic: list() and other processes read holder files without the lock.
      await writeFileAtomically(
        join(dir, 'holders', holderFile(holder)),
        Buffer.from(`${JSON.stringify({ holder, pid: process.pid, since: new Date().toISOString() })}\n`),
      );
      const key = resolved.imageKey;
      return {
        imageKey: key,
        mountpoint: record.mountpoint,
        manifestDigest: record.manifestDigest,
        archiveDigest: record.archiveDigest,
        reused,
        archive: record.archive,
        imageConfig: record.imageConfig,
        ...(record.metrics ? { metrics: record.metrics } : {}),
        release: () => this.release(key, holder),
      };
    });
  }

  private async start(image: string, resolved: ResolvedImage, dir: string): Promise<ServerRecord> {
    const mountpoint = join(dir, 'mnt');
    if (await isMounted(mountpoint)) await forceUnmount(mountpoint).catch(() => undefined);
    await mkdir(mountpoint, { recursive: true });
    let metrics = await freeLoopbackAddress();
    const server = () =>
      startMountServer({
        clipCommand: this.options.clipCommand ?? defaultClipCommand(),
        archive: resolved.archive,
        mountpoint,
        logFile: join(dir, 'server.log'),
        mountArgs: this.mountArgs(),
        metrics,
      });
    // The metrics port is picked before the server binds it: another process may take it first.
    const pid = await server().catch(async (error: unknown) => {
      if (!/EADDRINUSE|already in use/.test((error as Error).message)) throw error;
      metrics = await freeLoopbackAddress();
      return server();
    });
    const record: ServerRecord = {
      image,
      archive: resolved.archive,
      manifestDigest: resolved.manifestDigest,
      archiveDigest: resolved.archiveDigest,
      imageConfig: resolved.imageConfig,
      pid,
      mountpoint,
      metrics,
      startedAt: new Date().toISOString(),
    };
    await writeFileAtomically(join(dir, 'server.json'), Buffer.from(`${JSON.stringify(record, null, 2)}\n`));
    this.logger.info('mounted image', { image, image_key: resolved.imageKey, pid, mountpoint });
    return record;
  }

  async release(imageKey: string, holder: string): Promise<void> {
    const dir = this.mountDir(imageKey);
    await withFileLock(this.lockPath(imageKey), async () => {
      await rm(join(dir, 'holders', holderFile(holder)), { force: true });
      if ((await this.holders(imageKey)).length > 0) return;
      const record = await this.readRecord(imageKey);
      if (record) await this.teardown(record);
      // Never recurse into a directory that still has a mount below it.
      if (!(await isMounted(join(dir, 'mnt')))) await rm(dir, { recursive: true, force: true });
      this.logger.info('released image mount', { image_key: imageKey });
    });
  }

  async list(): Promise<PooledMount[]> {
    const keys = await readdir(join(this.stateDir, 'mounts')).catch(() => [] as string[]);
    const mounts: PooledMount[] = [];
    for (const imageKey of keys.sort()) {
      const record = await this.readRecord(imageKey);
      if (!record) continue;
      mounts.push({
        imageKey,
        image: record.image,
        mountpoint: record.mountpoint,
        holders: await this.holders(imageKey),
        pid: record.pid,
        alive: await mountServerAlive(record.pid, record.mountpoint),
      });
    }
    return mounts;
  }

  /** Compressed bytes the image's mount server fetched so far. */
  async fetchedBytes(imageKey: string): Promise<number | undefined> {
    return fetchedBytes((await this.readRecord(imageKey))?.metrics);
  }
}
