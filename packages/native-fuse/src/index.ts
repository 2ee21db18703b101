// A read-only FUSE session on libfuse 3's low-level API (build/Release/clip_fuse.node).
//
// The caller hands over the whole metadata tree once, as a MetadataTable; the addon answers
// lookup, getattr, readdir(plus), readlink, xattrs and statfs on its own FUSE thread (opens
// need no answer at all), so none of those wait for the JS thread. Reads arrive here and are answered with whatever
// the `read` callback resolves to. Because metadata never enters JS, synchronous fs calls on
// the mount from this process are safe for everything except file reads.
import { execFile } from 'node:child_process';
import { access, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { ClipError } from '@clip/shared';
import type { HeldConnection } from './connection.js';
import type { MetadataTable } from './table.js';

export { MountHolder, type HeldConnection } from './connection.js';
export { buildMetadataTable, parentOf, type MetadataTable, type TableNode } from './table.js';

export interface StatfsValues {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

/** Requests the addon answered itself, since mounting. */
export interface FuseCounters {
  lookups: number;
  getattrs: number;
  readdirs: number;
  opens: number;
  reads: number;
  xattrs: number;
}

/** Rejecting with an error that carries a positive `errno` answers the read with it (else EIO). */
export type ReadHandler = (ino: number, offset: number, size: number) => Promise<Uint8Array>;

export interface FuseSessionOptions {
  mountpoint: string;
  /** libfuse 3 mount options (`ro`, `allow_other`, `fsname=…`, ...). */
  options: readonly string[];
  table: MetadataTable;
  statfs: StatfsValues;
  /** How long the kernel may cache attributes, entries and negative lookups. */
  cacheSeconds: number;
  read: ReadHandler;
  /** Called once when the session ends for any reason (our unmount or someone else's). */
  onExit?: () => void;
  /** Serve a connection a MountHolder mounted (inherited descriptor) instead of mounting. */
  attach?: HeldConnection;
}

type SessionHandle = { readonly __brand: 'clip-fuse-session' };
type EventCallback = (kind: number, request: number, ino: number, offset: number, sizeOrResult: number) => void;

interface NativeFuse {
  mount(
    mountpoint: string,
    options: string,
    table: MetadataTable,
    statfs: Float64Array,
    cacheSeconds: number,
    onEvent: EventCallback,
    attach?: HeldConnection,
  ): SessionHandle;
  reply(session: SessionHandle, request: number, data: Uint8Array | null, errno: number): void;
  detach(session: SessionHandle): number;
  destroy(session: SessionHandle): void;
  counters(session: SessionHandle): Float64Array;
  resendError(session: SessionHandle): number;
  libfuseVersion: number;
}

const EVENT_READ = 0;
const EIO = 5;
/** How long unmount waits for users of a detached mount before aborting the connection. */
const DETACH_GRACE_MS = 2000;

/**
 * A failure of the FUSE addon (not built, mount(2) refused, unmount failed): a ClipError, so
 * the CLI reports it in one line with exit 1. The addon's codes (`CLIP_FUSE_MOUNT`, …) are
 * given the `CLIP_E_` prefix every clip error code has (`CLIP_E_FUSE_MOUNT`).
 */
export class NativeFuseError extends ClipError {
  constructor(message: string, code: string) {
    super(code.startsWith('CLIP_FUSE_') ? `CLIP_E_${code.slice('CLIP_'.length)}` : code, message);
  }
}

let cached: NativeFuse | undefined;

/** The addon, loaded once; throws NativeFuseError (code CLIP_E_FUSE_NOT_BUILT) with how to build it. */
export function loadNativeFuse(): NativeFuse {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  try {
    cached = require('../build/Release/clip_fuse.node') as NativeFuse;
    return cached;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    throw new NativeFuseError(
      `the FUSE addon cannot be loaded (${reason}); build it with \`npm run build:native -w @clip/native-fuse\` (needs Debian libfuse3-dev, g++, make)`,
      'CLIP_FUSE_NOT_BUILT',
    );
  }
}

export class FuseSession {
  readonly mountpoint: string;
  /** Settles when the kernel has ended the session. */
  readonly ended: Promise<void>;
  readonly #native: NativeFuse;
  readonly #handle: SessionHandle;
  readonly #pending = new Set<number>();
  #ended = false;
  #device = -1;

  private constructor(native: NativeFuse, options: FuseSessionOptions) {
    this.mountpoint = options.mountpoint;
    this.#native = native;
    let signalEnd!: () => void;
    this.ended = new Promise((resolve) => (signalEnd = resolve));
    const onEvent: EventCallback = (kind, request, ino, offset, size) => {
      if (kind !== EVENT_READ) {
        this.#finish();
        signalEnd();
        options.onExit?.();
        return;
      }
      this.#serveRead(options.read, request, ino, offset, size);
    };
    const { mountpoint, table, statfs, cacheSeconds, attach } = options;
    this.#handle = native.mount(mountpoint, options.options.join(','), table, statfsArray(statfs), cacheSeconds, onEvent, attach);
  }

  /**
   * For an attached session: the errno of its FUSE_NOTIFY_RESEND (0 when the kernel re-queued
   * what a dead predecessor had taken; EINVAL before Linux 6.9, where those requests stay lost).
   */
  resendError(): number {
    return this.#native.resendError(this.#handle);
  }

  /** Mounts and waits until the kernel answers on the mountpoint. */
  static async mount(options: FuseSessionOptions): Promise<FuseSession> {
    const native = loadNativeFuse();
    let session: FuseSession;
    try {
      session = new FuseSession(native, options);
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'CLIP_FUSE_MOUNT';
      throw new NativeFuseError(`cannot mount ${options.mountpoint}: ${(error as Error).message}`, code);
    }
    // The first stat goes through the new session (answered by the addon, not JS).
    session.#device = Number((await stat(options.mountpoint)).dev);
    return session;
  }

  counters(): FuseCounters {
    const [lookups = 0, getattrs = 0, readdirs = 0, opens = 0, reads = 0, xattrs = 0] = this.#native.counters(this.#handle);
    return { lookups, getattrs, readdirs, opens, reads, xattrs };
  }

  /**
   * Detaches the mount; once nothing uses it the kernel ends the session. Users still holding
   * files after a grace period are cut off (the connection is aborted) so unmount never hangs.
   */
  async unmount(): Promise<void> {
    if (!this.#ended) {
      const errno = this.#native.detach(this.#handle);
      if (errno !== 0) await detachWithFusermount(this.mountpoint, errno);
      if (!(await settlesWithin(this.ended, DETACH_GRACE_MS))) {
        await abortConnection(this.#device);
        await settlesWithin(this.ended, DETACH_GRACE_MS);
      }
    }
    await this.ended;
  }

  #serveRead(read: ReadHandler, request: number, ino: number, offset: number, size: number): void {
    this.#pending.add(request);
    let result: Promise<Uint8Array>;
    try {
      result = read(ino, offset, size);
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (data) => this.#reply(request, data.length > size ? data.subarray(0, size) : data, 0),
      (error: unknown) => {
        const errno = (error as { errno?: unknown }).errno;
        this.#reply(request, null, typeof errno === 'number' && errno > 0 ? errno : EIO);
      },
    );
  }

  #reply(request: number, data: Uint8Array | null, errno: number): void {
    // After the session ended every pending read was already answered (see #finish).
    if (!this.#pending.delete(request)) return;
    this.#native.reply(this.#handle, request, data, errno);
  }

  /** The loop has ended: answer what is still pending, then free the session. */
  #finish(): void {
    this.#ended = true;
    for (const request of this.#pending) this.#native.reply(this.#handle, request, null, EIO);
    this.#pending.clear();
    this.#native.destroy(this.#handle);
  }
}

function statfsArray(values: StatfsValues): Float64Array {
  const { bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax } = values;
  return Float64Array.from([bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax]);
}

async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Without root, umount2 fails: fusermount3 (or libfuse 2's fusermount) can detach our own mount. */
async function detachWithFusermount(mountpoint: string, errno: number): Promise<void> {
  for (const tool of ['fusermount3', 'fusermount']) {
    const ok = await new Promise<boolean>((resolve) => execFile(tool, ['-u', '-z', mountpoint], (error) => resolve(!error)));
    if (ok) return;
  }
  throw new NativeFuseError(
    `cannot unmount ${mountpoint} (umount2: errno ${errno}; fusermount3 and fusermount failed)`,
    'CLIP_FUSE_UNMOUNT',
  );
}

/** Aborts a FUSE connection through fusectl (mounted on demand): readers see ENOTCONN. */
async function abortConnection(device: number): Promise<void> {
  if (device < 0) return;
  const minor = (device & 0xff) | ((device >>> 12) & 0xfff00);
  const control = '/sys/fs/fuse/connections';
  try {
    await access(`${control}/${minor}`);
  } catch {
    await new Promise<void>((resolve) => execFile('mount', ['-t', 'fusectl', 'fusectl', control], () => resolve()));
  }
  await writeFile(`${control}/${minor}/abort`, '1').catch(() => {});
}
