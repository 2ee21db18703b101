// Applies layers' tar entries in order with the OCI image-spec layer rules and produces the
// archive's inode and directory-entry tables.
//
//  - A later entry replaces an earlier one; a directory over a directory only replaces metadata.
//  - `.wh.<name>` deletes <name> and its subtree from lower layers (applied before the layer's
//    own entries, so a same-layer entry of that name survives whatever the tar order).
//  - `.wh..wh..opq` hides everything lower layers put in its directory; entries of the same
//    layer stay, before or after the marker in the tar.
//  - Hardlinks share one inode; a hardlink keeps its inode even if the target name is later
//    replaced. Missing parents become root-owned 0755 directories.
//  - Parent components that are symlinks are resolved inside the root, as container runtimes
//    (containerd, umoci via securejoin) do when they extract.
import { LayerFormatError } from '@clip/shared';
import { compareNames, type DirEntry, type FileType, type Inode } from '@clip/archive-format';
import type { TarEntry } from '../tar/tar-entry.js';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const MAX_SYMLINK_HOPS = 40;

/** Inode content before numbering; hardlinked names share one object. */
type InodeRecord = Omit<Inode, 'ino' | 'nlink'>;

interface NameNode {
  inode: InodeRecord;
  /** Directories only: children by name. */
  children?: Map<string, NameNode>;
  /** Index of the layer that last wrote this name (or created it implicitly). */
  stamp: number;
}

function implicitDirectory(stamp: number): NameNode {
  return {
    inode: { type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtimeSec: 0, mtimeNsec: 0, rdevMajor: 0, rdevMinor: 0 },
    children: new Map(),
    stamp,
  };
}

function recordFor(entry: TarEntry, layer: number): InodeRecord {
  const type: FileType = entry.type === 'hardlink' ? 'file' : entry.type;
  const record: InodeRecord = {
    type,
    mode: type === 'symlink' ? 0o777 : entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    size: type === 'file' ? entry.size : type === 'symlink' ? Buffer.byteLength(entry.linkTarget ?? '') : 0,
    mtimeSec: entry.mtimeSec,
    mtimeNsec: entry.mtimeNsec,
    rdevMajor: entry.devMajor,
    rdevMinor: entry.devMinor,
  };
  if (type === 'symlink') record.linkTarget = entry.linkTarget ?? '';
  if (entry.xattrs && Object.keys(entry.xattrs).length > 0) record.xattrs = entry.xattrs;
  if (type === 'file' && entry.size > 0) record.data = { layer, offset: entry.dataOffset };
  return record;
}

function splitPath(path: string): string[] {
  return path === '' ? [] : path.split('/');
}

export interface ArchiveTables {
  /** Index i holds inode number i + 1; 1 is the root. */
  inodes: Inode[];
  /** Sorted by (parent path, name); the root `/` first. */
  entries: DirEntry[];
}

export class OverlayTree {
  private readonly root: NameNode = implicitDirectory(-1);
  private layerCount = 0;
  /**
   * The directory the last parentFor() resolved, by its path as written: tar members come
   * grouped by directory, so most entries skip the walk from the root. Forgotten whenever a
   * directory or symlink name is replaced or removed (that could change what a path resolves to).
   */
  private parentPath: string | undefined;
  private parentNode: NameNode | undefined;

  private forgetParent(): void {
    this.parentPath = undefined;
    this.parentNode = undefined;
  }

  /** Sets a child, forgetting the cached parent when the name held a directory or symlink. */
  private setChild(dir: NameNode, name: string, node: NameNode): void {
    const children = dir.children!;
    const existing = children.get(name);
    if (existing !== undefined && (existing.children !== undefined || existing.inode.type === 'symlink')) this.forgetParent();
    children.set(name, node);
  }

  /**
   * Applies one layer's entries (in tar order) on top of the layers applied so far.
   * @param layer index of the layer in the archive (data locations point at it).
   * @param digest names the layer in errors.
   */
  applyLayer(layer: number, digest: string, entries: readonly TarEntry[]): void {
    if (layer !== this.layerCount) throw new Error(`layers must be applied in order: expected ${this.layerCount}, got ${layer}`);
    this.layerCount++;
    const fail = (entry: TarEntry, reason: string) =>
      new LayerFormatError(`layer ${digest}: entry ${JSON.stringify(entry.path)} at byte ${entry.headerOffset}: ${reason}`);

    const opaqueDirs: TarEntry[] = [];
    const regular: TarEntry[] = [];
    // Whiteouts first: they only ever apply to lower layers.
    this.forgetParent();
    for (const entry of entries) {
      const slash = entry.path.lastIndexOf('/');
      if (!entry.path.startsWith(WHITEOUT_PREFIX, slash + 1)) {
        regular.push(entry);
        continue;
      }
      const name = entry.path.slice(slash + 1);
      const dirPath = slash < 0 ? '' : entry.path.slice(0, slash);
      if (name === OPAQUE_MARKER) {
        opaqueDirs.push({ ...entry, path: dirPath });
        continue;
      }
      // Other `.wh..wh.*` names are aufs bookkeeping, not whiteouts.
      if (name.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) continue;
      const target = name.slice(WHITEOUT_PREFIX.length);
      if (target === '' || target === '.' || target === '..') throw fail(entry, 'whiteout of an invalid name');
      const dir = this.findDirectory(dirPath);
      dir?.children?.delete(target);
    }

    const deferredLinks: TarEntry[] = [];
    for (const entry of regular) {
      if (entry.path === '') {
        // The root's own entry (`./`) only sets its metadata.
        this.root.inode = { ...recordFor(entry, layer), type: 'directory' };
        this.root.stamp = layer;
        continue;
      }
      if (entry.type === 'hardlink' && !this.link(entry, layer, fail)) {
        deferredLinks.push(entry);
        continue;
      }
      if (entry.type !== 'hardlink') this.put(entry, layer, fail);
    }
    // A hardlink may name a member that comes later in the same tar (unusual but seen).
    for (const entry of deferredLinks) {
      if (!this.link(entry, layer, fail)) throw fail(entry, `hardlink target ${JSON.stringify(entry.linkTarget)} does not exist`);
    }
    this.forgetParent();
    for (const marker of opaqueDirs) {
      // The marker implies its directory exists in this layer.
      const dir = this.resolve(splitPath(marker.path), false, true, layer, true);
      if (dir?.children) this.hideLower(dir, layer);
    }
  }

  /** The directory a path names, following symlinks inside the root; undefined when absent. */
  private findDirectory(path: string): NameNode | undefined {
    const node = this.resolve(splitPath(path), true, false);
    return node?.children ? node : undefined;
  }

  /**
   * Walks `parts` from the root. Symlinks in non-final components are followed inside the
   * root; the final component is followed only if `followLast`. With `create`, missing
   * directories are created (implicit, 0755 root), the last one too with `createLast`.
   */
  private resolve(
    parts: string[],
    followLast: boolean,
    create: boolean,
    stamp = -1,
    createLast = false,
    hops = { left: MAX_SYMLINK_HOPS },
  ): NameNode | undefined {
    const stack: NameNode[] = [this.root];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const current = stack[stack.length - 1]!;
      if (part === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      if (part === '.' || part === '') continue;
      if (!current.children) return undefined;
      let child = current.children.get(part);
      const last = i === parts.length - 1;
      if (child === undefined) {
        if (!create || (last && !createLast)) return undefined;
        child = implicitDirectory(stamp);
        current.children.set(part, child);
      }
      if (child.inode.type === 'symlink' && (!last || followLast)) {
        if (--hops.left < 0) return undefined;
        const target = child.inode.linkTarget ?? '';
        const base = target.startsWith('/') ? [] : this.pathOf(stack);
        const resolved = this.resolve([...base, ...target.split('/'), ...parts.slice(i + 1)], followLast, create, stamp, createLast, hops);
        return resolved;
      }
      stack.push(child);
    }
    return stack[stack.length - 1];
  }

  /** Names from the root to the top of a resolution stack (tracked alongside nodes). */
  private pathOf(stack: NameNode[]): string[] {
    const names: string[] = [];
    for (let i = 1; i < stack.length; i++) {
      const parent = stack[i - 1]!;
      for (const [name, node] of parent.children ?? []) {
        if (node === stack[i]) {
          names.push(name);
          break;
        }
      }
    }
    return names;
  }

  /** The directory that will hold `path`'s last component, creating missing parents. */
  private parentFor(entry: TarEntry, layer: number, fail: (entry: TarEntry, reason: string) => Error): { dir: NameNode; name: string } {
    const path = entry.path;
    const slash = path.lastIndexOf('/');
    const parentPath = slash < 0 ? '' : path.slice(0, slash);
    const name = path.slice(slash + 1);
    if (parentPath === this.parentPath && this.parentNode !== undefined) return { dir: this.parentNode, name };
    const dir = this.resolve(splitPath(parentPath), true, true, layer, true);
    if (!dir) throw fail(entry, 'its parent directory cannot be resolved (a component is not a directory, or a symlink loop)');
    if (!dir.children) throw fail(entry, `its parent ${JSON.stringify(parentPath)} is a ${dir.inode.type}, not a directory`);
    this.parentPath = parentPath;
    this.parentNode = dir;
    return { dir, name };
  }

  private put(entry: TarEntry, layer: number, fail: (entry: TarEntry, reason: string) => Error): void {
    const { dir, name } = this.parentFor(entry, layer, fail);
    const existing = dir.children!.get(name);
    const record = recordFor(entry, layer);
    if (existing?.children && record.type === 'directory') {
      existing.inode = record;
      existing.stamp = layer;
      return;
    }
    this.setChild(
      dir,
      name,
      record.type === 'directory' ? { inode: record, stamp: layer, children: new Map() } : { inode: record, stamp: layer },
    );
  }

  /** Links `entry` to its target's inode; false when the target does not exist (yet). */
  private link(entry: TarEntry, layer: number, fail: (entry: TarEntry, reason: string) => Error): boolean {
    const target = this.resolve(splitPath(entry.linkTarget ?? ''), false, false);
    if (!target) return false;
    if (target.children) throw fail(entry, `hardlink to directory ${JSON.stringify(entry.linkTarget)}`);
    const { dir, name } = this.parentFor(entry, layer, fail);
    if (dir.children!.get(name) === target) return true;
    this.setChild(dir, name, { inode: target.inode, stamp: layer });
    return true;
  }

  /** Opaque directory: drops everything below `dir` that this layer did not write. */
  private hideLower(dir: NameNode, layer: number): boolean {
    let kept = false;
    for (const [name, child] of dir.children ?? []) {
      const keepsDescendants = child.children ? this.hideLower(child, layer) : false;
      if (child.stamp === layer || keepsDescendants) kept = true;
      else dir.children!.delete(name);
    }
    return kept;
  }

  /** Numbers inodes deterministically (root 1, then in entry order) and lists all names. */
  toTables(): ArchiveTables {
    // Every directory with its path; sorted by path bytes, each one's children sorted by name
    // bytes, they list the entries in (parent path, name) order: the root first, every
    // directory's entries contiguous, the order depending only on the tree.
    const directories: Array<{ path: string; node: NameNode }> = [{ path: '/', node: this.root }];
    const subdirectoryCount = new Map<InodeRecord, number>();
    for (let d = 0; d < directories.length; d++) {
      const { path, node } = directories[d]!;
      let subdirectories = 0;
      for (const [name, child] of node.children!) {
        if (!child.children) continue;
        subdirectories++;
        directories.push({ path: path === '/' ? `/${name}` : `${path}/${name}`, node: child });
      }
      subdirectoryCount.set(node.inode, subdirectories);
    }
    directories.sort((a, b) => compareNames(a.path, b.path));

    // Inodes are numbered in entry order (first name of each).
    const entries: DirEntry[] = [];
    const numbers = new Map<InodeRecord, number>();
    const records: InodeRecord[] = [];
    const links: number[] = [];
    const number = (record: InodeRecord): number => {
      let ino = numbers.get(record);
      if (ino === undefined) {
        ino = records.length + 1;
        numbers.set(record, ino);
        records.push(record);
        links.push(0);
      }
      links[ino - 1]!++;
      return ino;
    };
    entries.push({ path: '/', ino: number(this.root.inode) });
    for (const { path, node } of directories) {
      const children = node.children!;
      const names = [...children.keys()].sort(compareNames);
      const prefix = path === '/' ? '/' : `${path}/`;
      for (const name of names) entries.push({ path: prefix + name, ino: number(children.get(name)!.inode) });
    }
    const inodes: Inode[] = new Array(records.length);
    for (let index = 0; index < records.length; index++) {
      const record = records[index]!;
      const nlink = record.type === 'directory' ? 2 + (subdirectoryCount.get(record) ?? 0) : links[index]!;
      // Spelled out rather than spread (one object shape, ~4× faster for 100k inodes).
      const inode: Inode = {
        ino: index + 1,
        type: record.type,
        mode: record.mode,
        uid: record.uid,
        gid: record.gid,
        size: record.size,
        mtimeSec: record.mtimeSec,
        mtimeNsec: record.mtimeNsec,
        rdevMajor: record.rdevMajor,
        rdevMinor: record.rdevMinor,
        nlink,
      };
      if (record.linkTarget !== undefined) inode.linkTarget = record.linkTarget;
      if (record.xattrs !== undefined) inode.xattrs = record.xattrs;
      if (record.data !== undefined) inode.data = record.data;
      inodes[index] = inode;
    }
    return { inodes, entries };
  }
}
