// One layer, one pass: the compressed blob streams through the scanner (which records
// decompression checkpoints) and its uncompressed output streams through the tar walk
// (which records each member's data offset). Nothing is written to disk.
import type { LayerCompression } from '@clip/shared/archive/model';
import { scanLayer, type LayerScan } from '../scan/scan-layer.js';
import { TarWalker } from '../tar/tar-walker.js';
import type { TarEntry } from '../tar/tar-entry.js';

export interface IndexedLayer {
  scan: LayerScan;
  entries: TarEntry[];
}

export interface IndexLayerOptions {
  digest: string;
  compression: LayerCompression;
  spanSize: number;
  /** false: the caller hashes the compressed bytes (scan.digest is a placeholder). */
  hashCompressed?: boolean;
}

export async function indexLayer(compressed: AsyncIterable<Uint8Array>, options: IndexLayerOptions): Promise<IndexedLayer> {
  const entries: TarEntry[] = [];
  const walker = new TarWalker(options.digest, (entry) => entries.push(entry));
  const scan = await scanLayer(compressed, options.compression, { spanSize: options.spanSize, ...(options.hashCompressed === false ? { hashCompressed: false } : {}) }, (chunk) => walker.push(chunk));
  walker.end();
  return { scan, entries };
}
