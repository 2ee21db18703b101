// What the mounter needs from an opened archive (format.ts's ClipArchive satisfies it).
import type { ArchiveLayer, ArchiveMetadata, Inode } from '@clip/shared/archive/model';

export interface DirectoryEntry {
  name: string;
  inode: Inode;
}

export interface MountableArchive {
  readonly metadata: ArchiveMetadata;
  readonly layers: readonly ArchiveLayer[];
  readonly inodeCount: number;
  inode(ino: number): Inode | undefined;
  lookup(path: string): Inode | undefined;
  /** The entries of directory `ino` (undefined when it is not a directory). */
  readdirIno(ino: number): readonly DirectoryEntry[] | undefined;
}
