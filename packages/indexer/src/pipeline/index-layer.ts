// One layer, one pass: the compressed blob streams through the scanner (which records
// decompression checkpoints) and its uncompressed output streams through the tar walk
// (which records each member's data offset). Nothing is written to disk.
import { scanCompressedLayer, type LayerScan } from '../scan/scan-compressed-layer.js';
import { TarWalker } from '../tar/tar-walker.js';
import type { TarEntry } from '../tar/tar-entry.js';
import { scanOptionsFor, type IndexLayerOptions } from './layer-options.js';

export type { IndexLayerOptions } from './layer-options.js';

export interface IndexedLayer {
  scan: LayerScan;
  entries: TarEntry[];
}

export async function indexLayerInThread(compressed: AsyncIterable<Uint8Array>, options: IndexLayerOptions): Promise<IndexedLayer> {
  const entries: TarEntry[] = [];
  const walker = new TarWalker(options.digest, (entry) => entries.push(entry));
  const scan = await scanCompressedLayer(compressed, options.compression, scanOptionsFor(options), (chunk) => walker.push(chunk));
  walker.end();
  return { scan, entries };
}
