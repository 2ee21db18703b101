// A typed face for fuse-native (CommonJS, untyped). Only the parts the mounter uses are
// declared; nothing untyped leaks past this file.
//
// fuse-native builds its `-o` option string from a fixed list that lacks `use_ino`, `ro`,
// `suid` and `dev`, so the subclass below hands libfuse our own option list instead.
// FS callbacks run on the JS thread: this process must never do synchronous fs calls on the
// mounted path (they would wait for a callback that can never run).
import { createRequire } from 'node:module';

/** Negative errno values as fuse-native expects them. */
export const Errno = {
  EPERM: -1,
  ENOENT: -2,
  EIO: -5,
  EBADF: -9,
  EACCES: -13,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
  EROFS: -30,
  ERANGE: -34,
  ENOSYS: -38,
  ENODATA: -61,
  ETIMEDOUT: -110,
} as const;

export interface FuseStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksize: number;
  blocks: number;
  /** Times go through fuse-native with millisecond precision. */
  atime: Date;
  mtime: Date;
  ctime: Date;
}

export interface FuseStatfs {
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

type Done = (errno: number) => void;

/** The operations fuse-native calls; every callback takes 0 or a negative errno first. */
export interface FuseOperations {
  init?(cb: Done): void;
  getattr(path: string, cb: (errno: number, stat?: FuseStat) => void): void;
  readdir(path: string, cb: (errno: number, names?: string[]) => void): void;
  open(path: string, flags: number, cb: (errno: number, fd?: number) => void): void;
  read(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: (bytesOrErrno: number) => void): void;
  release(path: string, fd: number, cb: Done): void;
  readlink(path: string, cb: (errno: number, target?: string) => void): void;
  getxattr(path: string, name: string, position: number, cb: (errno: number, value?: Buffer) => void): void;
  listxattr(path: string, cb: (errno: number, names?: string[]) => void): void;
  statfs(path: string, cb: (errno: number, statfs?: FuseStatfs) => void): void;
  access(path: string, mode: number, cb: Done): void;
  // Write operations: all answer EROFS.
  write(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: (bytesOrErrno: number) => void): void;
  create(path: string, mode: number, cb: (errno: number, fd?: number) => void): void;
  unlink(path: string, cb: Done): void;
  mkdir(path: string, mode: number, cb: Done): void;
  rmdir(path: string, cb: Done): void;
  rename(src: string, dest: string, cb: Done): void;
  link(src: string, dest: string, cb: Done): void;
  symlink(src: string, dest: string, cb: Done): void;
  chmod(path: string, mode: number, cb: Done): void;
  chown(path: string, uid: number, gid: number, cb: Done): void;
  truncate(path: string, size: number, cb: Done): void;
  ftruncate(path: string, fd: number, size: number, cb: Done): void;
  utimens(path: string, atime: number, mtime: number, cb: Done): void;
  setxattr(path: string, name: string, value: Buffer, position: number, flags: number, cb: Done): void;
  removexattr(path: string, name: string, cb: Done): void;
  mknod(path: string, mode: number, dev: number, cb: Done): void;
}

export interface FuseMount {
  mount(): Promise<void>;
  unmount(): Promise<void>;
}

interface NativeFuse {
  mount(cb: (error: Error | null) => void): void;
  unmount(cb: (error: Error | null) => void): void;
}

interface NativeFuseClass {
  new (mountpoint: string, ops: FuseOperations, options: { timeout: false }): NativeFuse & { _fuseOptions(): string };
  unmount(mountpoint: string, cb: (error: Error | null) => void): void;
}

const require = createRequire(import.meta.url);
let nativeClass: NativeFuseClass | undefined;

function loadFuse(): NativeFuseClass {
  nativeClass ??= require('fuse-native') as NativeFuseClass;
  return nativeClass;
}

/**
 * A FUSE filesystem at `mountpoint` with libfuse options `options` (e.g. `ro`, `use_ino`).
 * fuse-native's own per-operation timeout is off: the mounter bounds reads itself.
 */
export function createFuseMount(mountpoint: string, ops: FuseOperations, options: string[]): FuseMount {
  const Fuse = loadFuse();
  const optionString = options.length ? `-o${options.join(',')}` : '';
  class ClipFuse extends Fuse {
    override _fuseOptions(): string {
      return optionString;
    }
  }
  const fuse = new ClipFuse(mountpoint, ops, { timeout: false });
  return {
    mount: () => new Promise((resolve, reject) => fuse.mount((error) => (error ? reject(error) : resolve()))),
    unmount: () => new Promise((resolve, reject) => fuse.unmount((error) => (error ? reject(error) : resolve()))),
  };
}
