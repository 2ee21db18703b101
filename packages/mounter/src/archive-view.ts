// What the mounter needs from an opened archive (archive-format's ClipArchive satisfies it).
import type { ArchiveLayer, ArchiveMetadata, Inode } from '@clip/archive-format';

export interface MountableArchive {
  readonly metadata: ArchiveMetadata;
  readonly layers: readonly ArchiveLayer[];
  readonly inodeCount: number;
  inode(ino: number): Inode | undefined;
  lookup(path: string): Inode | undefined;
  /** Names and inode numbers of directory `ino`'s entries (undefined when it is not a directory). */
  childNames(ino: number): ReadonlyArray<{ name: string; ino: number }> | undefined;
}
