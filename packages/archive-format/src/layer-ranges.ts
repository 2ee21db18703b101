// Which bytes of which layers a list of file reads covers (a published profile, a `--record`
// list): each listed path is looked up in the file table and its ranges (the whole file when none
// are listed) become uncompressed ranges of the layer holding its data, merged per layer. One
// mapping for the indexer's profile checkpoints and the bench's lower bound, which must agree.
import { mergeRanges, type PrefetchEntry } from '@clip/shared';
import type { ClipArchive } from './archive.js';

export interface LayerRanges {
  /** Per archive layer (same index): merged, sorted [start, end) uncompressed ranges. */
  byLayer: Array<Array<[number, number]>>;
  /** Listed paths that are regular files with data in the archive. */
  files: number;
  /** Listed paths that are not (missing, directories, symlinks, empty files). */
  unresolved: number;
}

export function layerRangesOf(archive: Pick<ClipArchive, 'layers' | 'lookup'>, entries: readonly PrefetchEntry[]): LayerRanges {
  const byLayer = archive.layers.map(() => [] as Array<[number, number]>);
  let files = 0;
  let unresolved = 0;
  for (const entry of entries) {
    const inode = archive.lookup(entry.path);
    if (inode?.type !== 'file' || !inode.data) {
      unresolved++;
      continue;
    }
    files++;
    const { layer, offset } = inode.data;
    for (const [start, end] of entry.ranges ?? [[0, inode.size]])
      byLayer[layer]?.push([offset + start, offset + Math.min(end, inode.size)]);
  }
  return { byLayer: byLayer.map((ranges) => mergeRanges(ranges)), files, unresolved };
}
