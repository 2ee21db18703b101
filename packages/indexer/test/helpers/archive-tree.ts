// Reads a .clip archive into the testkit's comparable Tree, hashing each file's bytes from
// the uncompressed layers at the offsets the archive records (so the offsets are checked too).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import type { ClipArchive, LayerCompression } from '@clip/archive-format';
import type { Tree, TreeNode } from '@clip/testkit';

export async function uncompressedLayer(blobPath: string, compression: LayerCompression): Promise<Uint8Array> {
  const blob = await readFile(blobPath);
  if (compression === 'gzip') return gunzipSync(blob);
  if (compression === 'zstd') return zstdDecompress(blob);
  return blob;
}

export function archiveTree(archive: ClipArchive, layers: Uint8Array[]): Tree {
  const tree: Tree = new Map();
  const byIno = new Map<number, string[]>();
  for (const { path, inode } of archive.walk()) {
    const node: TreeNode = {
      type: inode.type,
      mode: inode.mode,
      uid: inode.uid,
      gid: inode.gid,
      xattrs: Object.fromEntries(Object.entries(inode.xattrs ?? {}).map(([name, value]) => [name, Buffer.from(value).toString('hex')])),
      mtime: inode.mtimeSec,
      nlink: inode.nlink,
    };
    if (inode.type === 'file') {
      node.size = inode.size;
      let data: Uint8Array = new Uint8Array(0);
      if (inode.data) {
        const layer = layers[inode.data.layer];
        if (!layer) throw new Error(`${path}: layer ${inode.data.layer} not loaded`);
        data = layer.subarray(inode.data.offset, inode.data.offset + inode.size);
      }
      node.sha256 = createHash('sha256').update(data).digest('hex');
    }
    if (inode.type === 'symlink') {
      node.size = inode.size;
      node.linkTarget = inode.linkTarget ?? '';
    }
    if (inode.type === 'char' || inode.type === 'block') {
      node.rdevMajor = inode.rdevMajor;
      node.rdevMinor = inode.rdevMinor;
    }
    tree.set(path, node);
    if (inode.type !== 'directory') byIno.set(inode.ino, [...(byIno.get(inode.ino) ?? []), path]);
  }
  for (const paths of byIno.values()) {
    if (paths.length < 2) continue;
    const first = [...paths].sort()[0]!;
    for (const path of paths) tree.get(path)!.hardlinkGroup = first;
  }
  return tree;
}

/** A copy of `tree` without directory mtimes (implicit parents have none in the archive). */
export function withoutDirectoryMtimes(tree: Tree): Tree {
  const copy: Tree = new Map();
  for (const [path, node] of tree) {
    const { mtime, ...rest } = node;
    copy.set(path, node.type === 'directory' ? rest : { ...rest, ...(mtime !== undefined ? { mtime } : {}) });
  }
  return copy;
}
