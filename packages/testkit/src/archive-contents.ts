// An opened archive decoded back into the in-memory model, for tests that take an archive apart
// and encode a changed one (production never needs the whole model back: it reads by path and
// inode). archive-format's own tests keep a copy in their test folder (testkit depends on
// archive-format, not the reverse).
import type { ArchiveContents, ClipArchive, DirEntry, Inode } from '@clip/archive-format';

/** Everything `archive` holds, entries in walk order. */
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
