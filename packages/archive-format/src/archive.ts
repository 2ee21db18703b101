// What an opened archive answers (ClipArchive) and how the encoder is asked (EncodeOptions);
// archive-reader.ts implements the first, encode.ts takes the second.
import { FORMAT_MAJOR } from './binary-layout.js';
import type { Digest } from '@clip/shared';
import type { ArchiveLayer, ArchiveMetadata, Inode } from './model.js';

export const ARCHIVE_FORMAT_VERSION = FORMAT_MAJOR;

export interface EncodeOptions {
  /**
   * Store the tables deflate-compressed (v2.2, flag bit 1). Default true; false writes the
   * v2.0 / v2.1 layout, byte for byte as before compressed tables existed.
   */
  compressTables?: boolean;
}

export interface ClipArchive {
  readonly formatVersion: number;
  /** Minor version: 0 = v2.0 (OCI mode), 1 = v2.1 (data-carrying mode), 2 = v2.2 (compressed tables, either mode), 3 = v2.3 (external windows). */
  readonly minorVersion?: number;
  /** Length of the whole archive file (also when only its head was read). */
  readonly byteLength: number;
  /** Data-carrying archives: where the DATA section lies in the file (absolute offsets). */
  readonly dataSection?: { offset: number; length: number };
  /** v2.3 archives with external windows: the windows blob (sha256, size); absent when windows are inline. */
  readonly externalWindows?: { digest: Digest; size: number };
  readonly metadata: ArchiveMetadata;
  readonly layers: readonly ArchiveLayer[];
  readonly inodeCount: number;
  /** Number of directory entries (names), not counting the root. */
  readonly entryCount: number;
  /** Inode by 1-based number. */
  inode(ino: number): Inode;
  /** Absolute path, '/' = root; no symlink following; '.'/'..' components never match. */
  lookup(path: string): Inode | undefined;
  /** undefined if not a directory. */
  readdir(path: string): { name: string; inode: Inode }[] | undefined;
  /** Names and inode numbers of directory `ino`'s children, name-byte order, without decoding their inodes. */
  childNames(ino: number): { name: string; ino: number }[] | undefined;
  /** Every entry, the root first, parents before children. */
  walk(): Iterable<{ path: string; inode: Inode }>;
}
