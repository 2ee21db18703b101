// The FUSE operations of a read-only image mount: metadata straight from the archive, file
// data through the LayerReader, every write answered with EROFS.
import type { Inode } from '@clip/shared/archive/model';
import type { Logger } from '@clip/shared/log';
import type { MountableArchive } from './archive-view.js';
import { Errno, type FuseOperations, type FuseStatfs } from './fuse-binding.js';
import type { MountMetrics } from './metrics.js';
import { Readahead, type SpanLocator } from './readahead.js';
import { PathCache } from './path-cache.js';
import { BLOCK_SIZE, inodeStat } from './stat.js';

export interface FileReader extends SpanLocator {
  readFile(inode: Inode, offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
}

export interface FsOptions {
  archive: MountableArchive;
  reader: FileReader;
  metrics: MountMetrics;
  logger: Logger;
  /** Longest a FUSE read waits for data before answering EIO. */
  readTimeoutMs: number;
  /** Called once per inode, on its first read (for `--record`). */
  onFirstRead?: (path: string, inode: Inode) => void;
}

interface OpenFile {
  path: string;
  inode: Inode;
  readahead: Readahead;
}

const O_ACCMODE = 3;
const W_OK = 2;
/**
 * A failed read is remembered this long for its byte range: the kernel retries a failed
 * readahead page synchronously, and without this one read() would wait for the registry
 * twice (2 × the read timeout) before seeing EIO.
 */
const FAILED_RANGE_MS = 1000;

/** Recently failed byte ranges per inode. */
class FailedRanges {
  readonly #ranges = new Map<number, Array<{ start: number; end: number; until: number }>>();

  add(ino: number, start: number, end: number): void {
    const list = this.#live(ino);
    list.push({ start, end, until: Date.now() + FAILED_RANGE_MS });
    this.#ranges.set(ino, list);
  }

  has(ino: number, start: number, end: number): boolean {
    return this.#live(ino).some((range) => range.start < end && start < range.end);
  }

  #live(ino: number): Array<{ start: number; end: number; until: number }> {
    const now = Date.now();
    const list = (this.#ranges.get(ino) ?? []).filter((range) => range.until > now);
    if (list.length === 0) this.#ranges.delete(ino);
    return list;
  }
}

export function createFsOperations(options: FsOptions): FuseOperations {
  const { archive, reader, metrics, logger } = options;
  const paths = new PathCache(archive);
  const open = new Map<number, OpenFile>();
  const seen = new Set<number>();
  const failed = new FailedRanges();
  let nextHandle = 1;
  const readonly = (cb: (errno: number) => void) => cb(Errno.EROFS);
  const background = (promise: Promise<void>) => {
    metrics.add('readaheadSpans');
    promise.catch((error: unknown) => logger.debug('readahead failed', { error: (error as Error).message }));
  };

  const totalBytes = archive.layers.reduce((sum, layer) => sum + layer.uncompressedSize, 0);
  const statfs: FuseStatfs = {
    bsize: BLOCK_SIZE,
    frsize: BLOCK_SIZE,
    blocks: Math.ceil(totalBytes / BLOCK_SIZE),
    bfree: 0,
    bavail: 0,
    files: archive.inodeCount,
    ffree: 0,
    favail: 0,
    fsid: 0,
    flag: 1, // ST_RDONLY
    namemax: 255,
  };

  return {
    init: (cb) => cb(0),
    getattr(path, cb) {
      metrics.add('getattrs');
      const inode = paths.lookup(path);
      if (!inode) return cb(Errno.ENOENT);
      cb(0, inodeStat(inode));
    },
    readdir(path, cb) {
      metrics.add('readdirs');
      const entries = archive.readdir(path);
      if (!entries) return cb(paths.lookup(path) ? Errno.ENOTDIR : Errno.ENOENT);
      cb(0, ['.', '..', ...entries.map((entry) => entry.name)]);
    },
    open(path, flags, cb) {
      if ((flags & O_ACCMODE) !== 0) return cb(Errno.EROFS);
      const inode = paths.lookup(path);
      if (!inode) return cb(Errno.ENOENT);
      if (inode.type === 'directory') return cb(Errno.EISDIR);
      const handle = nextHandle++;
      open.set(handle, { path, inode, readahead: new Readahead(reader, background) });
      cb(0, handle);
    },
    read(path, fd, buffer, length, position, cb) {
      const file = open.get(fd);
      const inode = file?.inode ?? paths.lookup(path);
      if (!inode) return cb(Errno.EBADF);
      if (inode.type !== 'file') return cb(Errno.EINVAL);
      metrics.add('reads');
      if (!seen.has(inode.ino)) {
        seen.add(inode.ino);
        options.onFirstRead?.(path, inode);
      }
      if (failed.has(inode.ino, position, position + length)) {
        metrics.add('readErrors');
        return cb(Errno.EIO);
      }
      const started = process.hrtime.bigint();
      reader.readFile(inode, position, length, AbortSignal.timeout(options.readTimeoutMs)).then(
        (data) => {
          metrics.observeReadSeconds(Number(process.hrtime.bigint() - started) / 1e9);
          metrics.add('readBytes', data.length);
          data.copy(buffer, 0, 0, Math.min(data.length, length));
          file?.readahead.observe(inode, position, data.length);
          cb(Math.min(data.length, length));
        },
        (error: unknown) => {
          metrics.observeReadSeconds(Number(process.hrtime.bigint() - started) / 1e9);
          metrics.add('readErrors');
          failed.add(inode.ino, position, position + length);
          logger.warn('read failed', { path, offset: position, length, error: describe(error) });
          cb(Errno.EIO);
        },
      );
    },
    release(_path, fd, cb) {
      open.delete(fd);
      cb(0);
    },
    readlink(path, cb) {
      const inode = paths.lookup(path);
      if (!inode) return cb(Errno.ENOENT);
      if (inode.type !== 'symlink') return cb(Errno.EINVAL);
      cb(0, inode.linkTarget ?? '');
    },
    getxattr(path, name, _position, cb) {
      const inode = paths.lookup(path);
      if (!inode) return cb(Errno.ENOENT);
      const value = inode.xattrs?.[name];
      if (value === undefined) return cb(Errno.ENODATA);
      cb(0, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    },
    listxattr(path, cb) {
      const inode = paths.lookup(path);
      if (!inode) return cb(Errno.ENOENT);
      cb(0, Object.keys(inode.xattrs ?? {}));
    },
    statfs: (_path, cb) => cb(0, statfs),
    access(path, mode, cb) {
      if (!paths.lookup(path)) return cb(Errno.ENOENT);
      cb(mode & W_OK ? Errno.EROFS : 0);
    },
    write: (_path, _fd, _buffer, _length, _position, cb) => cb(Errno.EROFS),
    create: (_path, _mode, cb) => cb(Errno.EROFS),
    unlink: (_path, cb) => readonly(cb),
    mkdir: (_path, _mode, cb) => readonly(cb),
    rmdir: (_path, cb) => readonly(cb),
    rename: (_src, _dest, cb) => readonly(cb),
    link: (_src, _dest, cb) => readonly(cb),
    symlink: (_src, _dest, cb) => readonly(cb),
    chmod: (_path, _mode, cb) => readonly(cb),
    chown: (_path, _uid, _gid, cb) => readonly(cb),
    truncate: (_path, _size, cb) => readonly(cb),
    ftruncate: (_path, _fd, _size, cb) => readonly(cb),
    utimens: (_path, _atime, _mtime, cb) => readonly(cb),
    setxattr: (_path, _name, _value, _position, _flags, cb) => readonly(cb),
    removexattr: (_path, _name, cb) => readonly(cb),
    mknod: (_path, _mode, _dev, cb) => readonly(cb),
  };
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.name === 'TimeoutError' ? 'timed out waiting for the registry' : error.message;
  return String(error);
}
