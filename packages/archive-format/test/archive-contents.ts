// A copy of @clip/testkit's archiveContents (testkit depends on this package, not the reverse).
import type { ClipArchive } from '../src/archive.js';
import type { ArchiveContents, DirEntry, Inode } from '../src/model.js';

/** Everything an opened archive holds, decoded back into the in-memory model (entries in walk order). */
export function archiveContents(archive: ClipArchive): ArchiveContents {
  const entries: DirEntry[] = [];
  for (const { path, inode } of archive.walk()) entries.push({ path, ino: inode.ino });
  const inodes: Inode[] = [];
  for (let ino = 1; ino <= archive.inodeCount; ino++) inodes.push(archive.inode(ino));
  return {
    metadata: archive.metadata,
    layers: archive.layers.map((layer) => ({ ...layer, spans: layer.spans.map((span) => ({ ...span })) })),
    inodes,
    entries,
  };
}
