// The archive's tree as the FUSE addon's metadata table: file-type bits added to the
// permission bits (setuid, setgid and sticky kept), the image's inode numbers (hardlinks share
// one), device numbers encoded as Linux's dev_t, nanosecond times. Built once per mount.
import type { FileType, Inode } from '@clip/archive-format';
import { buildMetadataTable, parentOf, type MetadataTable, type TableNode } from '@clip/native-fuse';
import type { MountableArchive } from './archive-view.js';

const TYPE_BITS: Record<FileType, number> = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
  socket: 0o140000,
};

export const BLOCK_SIZE = 4096;

/** glibc's makedev. */
export function makedev(major: number, minor: number): number {
  return (minor & 0xff) + (major & 0xfff) * 2 ** 8 + Math.floor(minor / 2 ** 8) * 2 ** 20 + Math.floor(major / 2 ** 12) * 2 ** 44;
}

export function archiveTable(archive: MountableArchive): MetadataTable {
  return buildMetadataTable(archive.inodeCount, (ino) => {
    const inode = archive.inode(ino);
    if (!inode) throw new Error(`archive has no inode ${ino}`);
    return tableNode(inode, inode.type === 'directory' ? (archive.childNames(ino) ?? []) : undefined);
  });
}

/** `/`-joined path of `ino` through the directories that list it (for --record). */
export function pathOf(archive: MountableArchive, table: MetadataTable, ino: number): string | undefined {
  const names: string[] = [];
  for (let current = ino, depth = 0; current !== 1; depth++) {
    const parent = parentOf(table, current);
    if (parent === 0 || depth > 4096) return undefined;
    const entry = archive.childNames(parent)?.find((candidate) => candidate.ino === current);
    if (!entry) return undefined;
    names.push(entry.name);
    current = parent;
  }
  return `/${names.reverse().join('/')}`;
}

function tableNode(inode: Inode, children: ReadonlyArray<{ name: string; ino: number }> | undefined): TableNode {
  const size = inode.type === 'symlink' ? Buffer.byteLength(inode.linkTarget ?? '') : inode.type === 'directory' ? BLOCK_SIZE : inode.size;
  return {
    mode: TYPE_BITS[inode.type] | (inode.mode & 0o7777),
    uid: inode.uid,
    gid: inode.gid,
    size,
    nlink: Math.max(1, inode.nlink),
    rdev: inode.type === 'char' || inode.type === 'block' ? makedev(inode.rdevMajor, inode.rdevMinor) : 0,
    mtimeSec: inode.mtimeSec,
    mtimeNsec: inode.mtimeNsec,
    blocks: inode.type === 'file' ? Math.ceil(inode.size / 512) : 0,
    ...(inode.linkTarget !== undefined ? { linkTarget: inode.linkTarget } : {}),
    ...(inode.xattrs ? { xattrs: inode.xattrs } : {}),
    ...(children ? { children } : {}),
  };
}
