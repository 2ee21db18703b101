// A synthetic image for scale: several layers of small files plus a few large ones, with
// compressible content (16-symbol alphabet, gzip ≈ 55%). A "hot set" (every 20th small file)
// plays the part of what a workload reads at start.
import { randomBytes } from 'node:crypto';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SyntheticSpec {
  layers: number;
  smallFilesPerLayer: number;
  smallFileBytes: number;
  /** Sizes of large files, all in the last layer. */
  bigFileBytes: number[];
}

export const SYNTHETIC_QUICK: SyntheticSpec = { layers: 2, smallFilesPerLayer: 400, smallFileBytes: 24 * 1024, bigFileBytes: [32 << 20] };
// About 2 GB unpacked in 4 layers: 20k small files (655 MB) and five 256 MiB files.
export const SYNTHETIC_FULL: SyntheticSpec = {
  layers: 4,
  smallFilesPerLayer: 5000,
  smallFileBytes: 32 * 1024,
  bigFileBytes: [256 << 20, 256 << 20, 256 << 20, 256 << 20, 256 << 20],
};

function compressible(size: number): Buffer {
  const bytes = randomBytes(size);
  for (let i = 0; i < bytes.length; i++) bytes[i] = 0x41 + (bytes[i]! & 0x0f);
  return bytes;
}

async function writeBig(path: string, size: number): Promise<void> {
  const file = await open(path, 'w');
  try {
    const block = 1 << 20;
    for (let offset = 0; offset < size; offset += block) await file.write(compressible(Math.min(block, size - offset)));
  } finally {
    await file.close();
  }
}

export interface SyntheticTree {
  /** One directory per layer. */
  layerRoots: string[];
  /** Paths (relative to the image root) of the hot set. */
  hotFiles: string[];
  /** Path of the largest file, for sequential read tests. */
  bigFile: string;
  uncompressedBytes: number;
}

export async function writeSyntheticTree(dir: string, spec: SyntheticSpec): Promise<SyntheticTree> {
  const layerRoots: string[] = [];
  const hotFiles: string[] = [];
  let uncompressedBytes = 0;
  for (let layer = 0; layer < spec.layers; layer++) {
    const root = join(dir, `layer${layer}`);
    layerRoots.push(root);
    for (let i = 0; i < spec.smallFilesPerLayer; i++) {
      const rel = `data/l${layer}/d${Math.floor(i / 100)}/f${i}.txt`;
      await mkdir(join(root, rel, '..'), { recursive: true });
      const size = Math.max(1, Math.round(spec.smallFileBytes * (0.25 + ((i * 7919) % 100) / 66)));
      await writeFile(join(root, rel), compressible(size));
      uncompressedBytes += size;
      if (i % 20 === 0) hotFiles.push(rel);
    }
  }
  const last = layerRoots[layerRoots.length - 1]!;
  await mkdir(join(last, 'big'), { recursive: true });
  const bigFiles = spec.bigFileBytes.map((size, index) => ({ rel: `big/blob${index}.bin`, size }));
  for (const big of bigFiles) {
    await writeBig(join(last, big.rel), big.size);
    uncompressedBytes += big.size;
  }
  const bigFile = bigFiles[0]?.rel ?? hotFiles[0]!;
  return { layerRoots, hotFiles, bigFile, uncompressedBytes };
}
