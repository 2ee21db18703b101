// The metadata table the addon serves from (layout documented in native/clip_fuse.c): built
// once per mount from any tree that can describe each inode. One module writes this layout.

/** Field order per row; must match the enums at the top of native/clip_fuse.c. */
const ATTR_STRIDE = 9; // mode uid gid size nlink rdev mtimeSec mtimeNsec blocks
const INDEX_STRIDE = 7; // parent childStart childCount linkOffset linkLength xattrStart xattrCount
const CHILD_STRIDE = 3; // nameOffset nameLength ino
const XATTR_STRIDE = 4; // nameOffset nameLength valueOffset valueLength

/**
 * Inode numbers are 1..n (1 = root); row ino - 1 of each per-inode array. Each directory's
 * children are one run of `children`, sorted by name bytes; names and link targets in `blob`
 * are followed by a NUL byte (not counted in their length).
 */
export interface MetadataTable {
  attrs: Float64Array;
  index: Uint32Array;
  children: Uint32Array;
  xattrs: Uint32Array;
  blob: Uint8Array;
}

export interface TableNode {
  /** Full st_mode: file-type bits and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  /** Linux dev_t for devices, else 0. */
  rdev: number;
  mtimeSec: number;
  mtimeNsec: number;
  /** 512-byte blocks. */
  blocks: number;
  linkTarget?: string;
  xattrs?: Readonly<Record<string, Uint8Array>>;
  /** Directories: every entry except `.` and `..`. */
  children?: ReadonlyArray<{ name: string; ino: number }>;
}

/** Appends byte strings to one growing buffer; returns their offsets. */
class Blob {
  #buffer = Buffer.alloc(1 << 16);
  #length = 0;

  add(bytes: Uint8Array, nulTerminated: boolean): number {
    const offset = this.#length;
    const needed = offset + bytes.length + 1;
    if (needed > this.#buffer.length) {
      const grown = Buffer.alloc(Math.max(needed, this.#buffer.length * 2));
      this.#buffer.copy(grown, 0, 0, this.#length);
      this.#buffer = grown;
    }
    this.#buffer.set(bytes, offset);
    this.#length += bytes.length;
    if (nulTerminated) this.#buffer[this.#length++] = 0;
    return offset;
  }

  bytes(): Uint8Array {
    return this.#buffer.subarray(0, this.#length);
  }
}

/** `count` inodes, described by `nodeAt(ino)` for ino = 1..count. */
export function buildMetadataTable(count: number, nodeAt: (ino: number) => TableNode): MetadataTable {
  const attrs = new Float64Array(count * ATTR_STRIDE);
  const index = new Uint32Array(count * INDEX_STRIDE);
  const children: number[] = [];
  const xattrs: number[] = [];
  const blob = new Blob();
  for (let ino = 1; ino <= count; ino++) {
    const node = nodeAt(ino);
    const at = (ino - 1) * ATTR_STRIDE;
    attrs[at] = node.mode;
    attrs[at + 1] = node.uid;
    attrs[at + 2] = node.gid;
    attrs[at + 3] = node.size;
    attrs[at + 4] = node.nlink;
    attrs[at + 5] = node.rdev;
    attrs[at + 6] = node.mtimeSec;
    attrs[at + 7] = node.mtimeNsec;
    attrs[at + 8] = node.blocks;
    const row = (ino - 1) * INDEX_STRIDE;
    if (node.children?.length) {
      index[row + 1] = children.length / CHILD_STRIDE;
      index[row + 2] = node.children.length;
      for (const child of sortedByBytes(node.children)) {
        children.push(blob.add(child.bytes, true), child.bytes.length, child.ino);
        // A directory has one parent; a file with several names keeps the first directory listing it.
        const childRow = (child.ino - 1) * INDEX_STRIDE;
        if (child.ino > 1 && child.ino <= count && index[childRow] === 0) index[childRow] = ino;
      }
    }
    if (node.linkTarget !== undefined) {
      const target = Buffer.from(node.linkTarget);
      index[row + 3] = blob.add(target, true);
      index[row + 4] = target.length;
    }
    const names = node.xattrs ? Object.keys(node.xattrs) : [];
    if (names.length) {
      index[row + 5] = xattrs.length / XATTR_STRIDE;
      index[row + 6] = names.length;
      for (const name of names) {
        const nameBytes = Buffer.from(name);
        const value = node.xattrs![name]!;
        xattrs.push(blob.add(nameBytes, true), nameBytes.length, blob.add(value, false), value.length);
      }
    }
  }
  return { attrs, index, children: Uint32Array.from(children), xattrs: Uint32Array.from(xattrs), blob: blob.bytes() };
}

/** The directory that lists `ino` (the root and unlisted inodes: 0). */
export function parentOf(table: MetadataTable, ino: number): number {
  return ino > 1 ? (table.index[(ino - 1) * INDEX_STRIDE] ?? 0) : 0;
}

function sortedByBytes(entries: ReadonlyArray<{ name: string; ino: number }>): Array<{ bytes: Buffer; ino: number }> {
  const encoded = entries.map((entry) => ({ bytes: Buffer.from(entry.name), ino: entry.ino }));
  // Archives usually list names in byte order already; sort only when they do not.
  for (let i = 1; i < encoded.length; i++) {
    if (Buffer.compare(encoded[i - 1]!.bytes, encoded[i]!.bytes) > 0) return encoded.sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  }
  return encoded;
}
