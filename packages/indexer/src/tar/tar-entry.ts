// What the tar walk reports for each member of a layer: metadata plus where the member's
// data starts in the layer's *uncompressed* stream. Data bytes themselves are never kept.

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarEntry {
  /** Normalised path relative to the root: no leading `/` or `./`, no trailing `/`; `''` is the root itself. */
  path: string;
  type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Data size in bytes (regular files; 0 for everything else). */
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  devMajor: number;
  devMinor: number;
  /** symlink: the target as written; hardlink: the normalised path of the linked member. */
  linkTarget?: string;
  /** From PAX `SCHILY.xattr.<name>` records, raw value bytes. */
  xattrs?: Record<string, Uint8Array>;
  /** Offset of the member's first data byte in the uncompressed layer stream. */
  dataOffset: number;
  /** Offset of the member's (first) header block, for error messages. */
  headerOffset: number;
}
