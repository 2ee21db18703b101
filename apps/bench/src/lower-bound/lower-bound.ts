// The lower bound of an image's cold start on a link: the compressed bytes that hold what the
// workload reads (its `clip mount --record` list, mapped through the archive to layer ranges),
// at the finest checkpoints an unmodified gzip layer allows (every deflate block boundary,
// listed by tools/checkpoint-sim/blocks.mjs with clip's native inflater; cached by digest).
import { mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { layerRangesOf, readArchiveFile } from '@clip/archive-format';
import { parsePrefetchList } from '@clip/shared';
import { cacheRoot } from '../images/cache.js';
import type { BuiltImage } from '../images/oci-layout.js';
import { run } from '../util/exec.js';
import { type BlockBoundaries, compressedExtent } from './extent.js';

const BLOCKS_TOOL = fileURLToPath(new URL('../../tools/checkpoint-sim/blocks.mjs', import.meta.url));

export interface LayerLowerBound {
  digest: string;
  compression: string;
  compressedSize: number;
  /** Merged uncompressed bytes the workload read from this layer. */
  readBytes: number;
  /** Compressed bytes that hold them. */
  bytes: number;
  ranges: number;
}

export interface LowerBound {
  /** Sum over layers of the compressed extent of the merged read ranges. */
  bytes: number;
  /** Uncompressed bytes the workload read (merged). */
  readBytes: number;
  files: number;
  /** Recorded paths that are not regular files of the archive (skipped). */
  unresolved: number;
  layers: LayerLowerBound[];
}

/** Block boundaries of a gzip layer blob, from the cache or by running blocks.mjs once. */
async function deflateBlocks(blob: string, digest: string, compressedSize: number, uncompressedSize: number): Promise<BlockBoundaries> {
  const dir = join(cacheRoot(), 'deflate-blocks');
  const file = join(dir, `${digest.replace(':', '-')}.txt`);
  let text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) {
    await mkdir(dir, { recursive: true });
    await run('nice', ['-n', '10', process.execPath, BLOCKS_TOOL, blob, `${file}.tmp`], { timeoutMs: 30 * 60_000 });
    await rename(`${file}.tmp`, file);
    text = await readFile(file, 'utf8');
  }
  const compressed: number[] = [];
  const uncompressed: number[] = [];
  for (const line of text.split('\n')) {
    const [c, u] = line.split(' ');
    if (c === undefined || u === undefined) continue;
    compressed.push(Number(c));
    uncompressed.push(Number(u));
  }
  return { compressed, uncompressed, compressedSize, uncompressedSize };
}

/** The lower bound for the reads in `recordFile`, through `archivePath` (any span size) into `image`'s layers. */
export async function computeLowerBound(image: BuiltImage, archivePath: string, recordFile: string): Promise<LowerBound> {
  const archive = await readArchiveFile(archivePath);
  const { byLayer, files, unresolved } = layerRangesOf(archive, parsePrefetchList(await readFile(recordFile, 'utf8')));
  const layers: LayerLowerBound[] = [];
  for (const [index, layer] of archive.layers.entries()) {
    const merged = byLayer[index]!;
    const readBytes = merged.reduce((sum, [start, end]) => sum + (end - start), 0);
    let bytes: number;
    if (merged.length === 0) bytes = 0;
    else if (layer.compression === 'gzip') {
      const blob = join(image.layoutDir, 'blobs', ...layer.digest.split(':'));
      bytes = compressedExtent(await deflateBlocks(blob, layer.digest, layer.compressedSize, layer.uncompressedSize), merged);
    } else if (layer.compression === 'none') bytes = readBytes;
    // zstd (not in the bench images): the layer's average ratio.
    else bytes = Math.ceil((readBytes * layer.compressedSize) / Math.max(1, layer.uncompressedSize));
    layers.push({
      digest: layer.digest,
      compression: layer.compression,
      compressedSize: layer.compressedSize,
      readBytes,
      bytes,
      ranges: merged.length,
    });
  }
  return {
    bytes: layers.reduce((sum, layer) => sum + layer.bytes, 0),
    readBytes: layers.reduce((sum, layer) => sum + layer.readBytes, 0),
    files,
    unresolved,
    layers,
  };
}
