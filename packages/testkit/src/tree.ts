// The comparable shape of an unpacked filesystem tree. The fixture builder computes the
// expected tree from layer specs, readTree() reads a real directory (umoci rootfs, FUSE
// mount) into the same shape, and diffTrees() says how two trees differ.
import type { FileType } from '@clip/archive-format';

export interface TreeNode {
  type: FileType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). Symlinks: always 0o777. */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files: byte size; symlinks: byte length of the target. Absent for others. */
  size?: number;
  /** Regular files: hex sha256 of the content. */
  sha256?: string;
  /** Symlinks: the target, verbatim. */
  linkTarget?: string;
  /** Char/block devices. */
  rdevMajor?: number;
  rdevMinor?: number;
  /** Extended attributes, name → hex of the raw value. */
  xattrs: Record<string, string>;
  /** Modification time in whole seconds; absent when unknown (directories created implicitly). */
  mtime?: number;
  /** Link count: names of the inode (non-directories) or 2 + subdirectories (directories). */
  nlink: number;
  /** For non-directories with nlink > 1: the smallest path naming the same inode. */
  hardlinkGroup?: string;
}

/** Absolute path (`/` for the root, no trailing slash) → node. */
export type Tree = Map<string, TreeNode>;

export type TreeField = Exclude<keyof TreeNode, 'type'>;

export interface DiffOptions {
  /** Fields never compared. */
  ignore?: TreeField[];
  /** Paths left out on both sides (e.g. `(p) => p.startsWith('/dev/')`). */
  skip?: (path: string) => boolean;
  /** xattr names left out on both sides (e.g. `security.selinux`). */
  ignoreXattrs?: (name: string) => boolean;
}

function show(field: TreeField, value: unknown): string {
  if (value === undefined) return 'none';
  if (field === 'mode' && typeof value === 'number') return `0o${value.toString(8)}`;
  if (field === 'xattrs') return JSON.stringify(value);
  return JSON.stringify(value);
}

function filterXattrs(xattrs: Record<string, string>, ignore: DiffOptions['ignoreXattrs']): Record<string, string> {
  if (!ignore) return xattrs;
  return Object.fromEntries(Object.entries(xattrs).filter(([name]) => !ignore(name)));
}

function sameXattrs(a: Record<string, string>, b: Record<string, string>): boolean {
  const keysA = Object.keys(a).sort();
  const keysB = Object.keys(b).sort();
  return keysA.length === keysB.length && keysA.every((key, i) => key === keysB[i] && a[key] === b[key]);
}

const FIELDS: TreeField[] = [
  'mode',
  'uid',
  'gid',
  'size',
  'sha256',
  'linkTarget',
  'rdevMajor',
  'rdevMinor',
  'xattrs',
  'mtime',
  'nlink',
  'hardlinkGroup',
];

/**
 * Differences between an expected and an actual tree, one readable line each, sorted by path;
 * empty when equal. `mtime` is only compared when the expected side knows it.
 */
export function diffTrees(expected: Tree, actual: Tree, options: DiffOptions = {}): string[] {
  const ignore = new Set<TreeField>(options.ignore ?? []);
  const skip = options.skip ?? (() => false);
  const out: string[] = [];
  const paths = [...new Set([...expected.keys(), ...actual.keys()])].filter((p) => !skip(p)).sort();
  for (const path of paths) {
    const want = expected.get(path);
    const got = actual.get(path);
    if (!want) {
      out.push(`${path}: unexpected ${got?.type}`);
      continue;
    }
    if (!got) {
      out.push(`${path}: missing (expected ${want.type})`);
      continue;
    }
    if (want.type !== got.type) {
      out.push(`${path}: type expected ${want.type}, got ${got.type}`);
      continue;
    }
    for (const field of FIELDS) {
      if (ignore.has(field)) continue;
      if (field === 'mtime' && want.mtime === undefined) continue;
      if (field === 'xattrs') {
        const a = filterXattrs(want.xattrs, options.ignoreXattrs);
        const b = filterXattrs(got.xattrs, options.ignoreXattrs);
        if (!sameXattrs(a, b)) out.push(`${path}: xattrs expected ${show(field, a)}, got ${show(field, b)}`);
        continue;
      }
      if (want[field] !== got[field]) {
        out.push(`${path}: ${field} expected ${show(field, want[field])}, got ${show(field, got[field])}`);
      }
    }
  }
  return out;
}

/** Fills nlink and hardlinkGroup from inode identities (`identity(path)` equal ⇔ same inode). */
export function linkCounts(tree: Tree, identity: (path: string) => unknown): void {
  const groups = new Map<unknown, string[]>();
  const subdirs = new Map<string, number>();
  for (const [path, node] of tree) {
    if (node.type === 'directory') {
      if (path !== '/') {
        const parent = parentOf(path);
        subdirs.set(parent, (subdirs.get(parent) ?? 0) + 1);
      }
      continue;
    }
    const id = identity(path);
    const group = groups.get(id);
    if (group) group.push(path);
    else groups.set(id, [path]);
  }
  for (const [path, node] of tree) {
    if (node.type === 'directory') node.nlink = 2 + (subdirs.get(path) ?? 0);
  }
  for (const members of groups.values()) {
    members.sort();
    for (const path of members) {
      const node = tree.get(path);
      if (!node) continue;
      node.nlink = members.length;
      if (members.length > 1) node.hardlinkGroup = members[0];
      else delete node.hardlinkGroup;
    }
  }
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** A stable, JSON-friendly rendering (sorted paths) for snapshots and debugging. */
export function treeToJson(tree: Tree): Record<string, TreeNode> {
  return Object.fromEntries([...tree.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
