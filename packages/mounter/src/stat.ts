// Inode → the stat FUSE reports: file-type bits added to the permission bits (setuid, setgid
// and sticky kept), the image's inode numbers (hardlinks share one), device numbers encoded
// as Linux's dev_t.
import type { FileType, Inode } from '@clip/shared/archive/model';
import type { FuseStat } from './fuse-binding.js';

const TYPE_BITS: Record<FileType, number> = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
  socket: 0o140000,
};

/** glibc's makedev for numbers that fit the 32 bits fuse-native passes. */
export function makedev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export const BLOCK_SIZE = 4096;

export function inodeStat(inode: Inode): FuseStat {
  const size = inode.type === 'symlink' ? Buffer.byteLength(inode.linkTarget ?? '') : inode.type === 'directory' ? BLOCK_SIZE : inode.size;
  const time = new Date(inode.mtimeSec * 1000 + Math.floor(inode.mtimeNsec / 1e6));
  return {
    mode: TYPE_BITS[inode.type] | (inode.mode & 0o7777),
    uid: inode.uid,
    gid: inode.gid,
    size,
    nlink: Math.max(1, inode.nlink),
    ino: inode.ino,
    rdev: inode.type === 'char' || inode.type === 'block' ? makedev(inode.rdevMajor, inode.rdevMinor) : 0,
    blksize: BLOCK_SIZE,
    blocks: inode.type === 'file' ? Math.ceil(inode.size / 512) : 0,
    atime: time,
    mtime: time,
    ctime: time,
  };
}
