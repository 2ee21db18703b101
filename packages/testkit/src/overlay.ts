// Computes the tree an OCI runtime sees after applying layer specs in order, following the
// OCI image-spec layer rules: later entries replace earlier ones (a directory over a
// directory only replaces its metadata), `.wh.<name>` deletes a lower path,
// `.wh..wh..opq` hides everything lower layers put in a directory (entries of the same
// layer stay, whether they come before or after the marker in the tar), hardlinks share
// an inode, and missing parents are created as root-owned 0755 directories.
import { createHash } from 'node:crypto';
import { contentBytes } from './content.js';
import { normalizePath, DEFAULT_MTIME, type EntrySpec, type LayerSpec } from './layer-spec.js';
import { linkCounts, parentOf, type Tree, type TreeNode } from './tree.js';

type Node = Omit<TreeNode, 'nlink' | 'hardlinkGroup'>;

function abs(path: string): string {
  const p = normalizePath(path);
  return p === '' ? '/' : `/${p}`;
}

function hex(value: string | Uint8Array): string {
  return Buffer.from(value).toString('hex');
}

function nodeFor(entry: Exclude<EntrySpec, { type: 'whiteout' | 'opaque' | 'hardlink' }>): Node {
  const xattrs = Object.fromEntries(Object.entries(entry.xattrs ?? {}).map(([k, v]) => [k, hex(v)]));
  const common = { uid: entry.uid ?? 0, gid: entry.gid ?? 0, mtime: entry.mtime ?? DEFAULT_MTIME, xattrs };
  switch (entry.type) {
    case 'file': {
      const data = contentBytes(entry.content);
      return {
        ...common,
        type: 'file',
        mode: (entry.mode ?? 0o644) & 0o7777,
        size: data.byteLength,
        sha256: createHash('sha256').update(data).digest('hex'),
      };
    }
    case 'dir':
      return { ...common, type: 'directory', mode: (entry.mode ?? 0o755) & 0o7777 };
    case 'symlink':
      return { ...common, type: 'symlink', mode: 0o777, size: Buffer.byteLength(entry.target), linkTarget: entry.target };
    case 'char':
    case 'block':
      return { ...common, type: entry.type, mode: (entry.mode ?? 0o644) & 0o7777, rdevMajor: entry.major, rdevMinor: entry.minor };
    case 'fifo':
      return { ...common, type: 'fifo', mode: (entry.mode ?? 0o644) & 0o7777 };
  }
}

function implicitDir(): Node {
  return { type: 'directory', mode: 0o755, uid: 0, gid: 0, xattrs: {} };
}

/** The expected unpacked tree of an image made of `layers` (bottom first). */
export function expectedTree(layers: LayerSpec[]): Tree {
  // path → inode object; hardlinked paths share the object.
  const paths = new Map<string, Node>();
  paths.set('/', implicitDir());

  const removeSubtree = (path: string) => {
    if (path === '/') throw new Error('cannot remove the root directory');
    paths.delete(path);
    const prefix = `${path}/`;
    for (const key of [...paths.keys()]) if (key.startsWith(prefix)) paths.delete(key);
  };
  const ensureParents = (path: string) => {
    const parent = parentOf(path);
    if (parent === path) return;
    const existing = paths.get(parent);
    if (existing?.type === 'directory') return;
    if (existing) throw new Error(`fixture puts ${path} under non-directory ${parent}`);
    ensureParents(parent);
    paths.set(parent, implicitDir());
  };

  for (const layer of layers) {
    const addedHere = new Set<string>();
    const opaqueDirs: string[] = [];
    for (const entry of layer.entries) {
      const path = abs(entry.path);
      if (entry.type === 'whiteout') {
        if (!paths.has(path)) continue; // whiting out nothing is allowed
        removeSubtree(path);
        continue;
      }
      if (entry.type === 'opaque') {
        ensureParents(`${path}/x`);
        opaqueDirs.push(path);
        continue;
      }
      ensureParents(path);
      const existing = paths.get(path);
      if (entry.type === 'hardlink') {
        const target = paths.get(abs(entry.target));
        if (!target) throw new Error(`hardlink ${path} → missing ${entry.target}`);
        if (target.type === 'directory') throw new Error(`hardlink ${path} → directory ${entry.target}`);
        if (existing && existing !== target) removeSubtree(path);
        paths.set(path, target);
        addedHere.add(path);
        continue;
      }
      const node = nodeFor(entry);
      if (existing?.type === 'directory' && node.type === 'directory') {
        // Directory over directory: new metadata, children kept.
        Object.assign(existing, node);
      } else {
        if (existing) removeSubtree(path);
        paths.set(path, node);
      }
      addedHere.add(path);
    }
    // Opaque markers hide lower content only, so apply them after the layer, sparing
    // whatever this layer added (before or after the marker in the tar).
    for (const dir of opaqueDirs) {
      const prefix = dir === '/' ? '/' : `${dir}/`;
      for (const key of [...paths.keys()]) {
        if (key.startsWith(prefix) && key !== dir && !addedHere.has(key)) {
          // Keep lower directories that are parents of entries added in this layer (the
          // layer re-creates them implicitly); everything else under the dir goes.
          const keptChild = [...addedHere].some((added) => added.startsWith(`${key}/`));
          if (!keptChild) paths.delete(key);
        }
      }
    }
  }

  const tree: Tree = new Map();
  for (const path of [...paths.keys()].sort()) {
    const node = paths.get(path);
    if (node) tree.set(path, { ...node, xattrs: { ...node.xattrs }, nlink: 1 });
  }
  linkCounts(tree, (path) => paths.get(path));
  return tree;
}
