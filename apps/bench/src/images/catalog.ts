// The images the benchmark runs: Debian + python (minimal, with numpy/pandas, or a fat
// data-science image), a Node.js app with a large node_modules, and synthetic images for
// scale. Each comes as a cached local OCI layout plus its workload.
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sh } from '../util/exec.js';
import { cachedDir } from './cache.js';
import { ensureDebianRootfs, type DebianSpec } from './debian.js';
import { splitByPackages } from './dpkg-layers.js';
import { NODE_APP_DEPENDENCIES, NODE_APP_INDEX, NODE_APP_SPEC, NODE_APP_WORKLOAD_MODULES, nodeAppLayers } from './node-app.js';
import { writeOciLayout, type BuiltImage, type ImageRuntime, type LayerSource } from './oci-layout.js';
import { SYNTHETIC_FULL, SYNTHETIC_QUICK, writeSyntheticTree, type SyntheticSpec } from './synthetic.js';
import { chrootWorkload, readFilesWorkload, type Workload } from './workload.js';

export interface BenchImage {
  name: string;
  description: string;
  image: BuiltImage;
  uncompressedBytes: number;
  workload: Workload;
  /** A large file (path inside the image) for sequential read tests. */
  bigFile: string;
  /** A small regular file (path inside the image) for first-read latency. */
  smallFile: string;
}

interface LayoutMeta {
  image: BuiltImage;
  uncompressedBytes: number;
  bigFile: string;
}

async function treeBytes(dir: string): Promise<number> {
  const result = await sh(`du -sb --apparent-size '${dir}' | cut -f1`);
  return Number(result.stdout.trim());
}

async function largestFile(roots: string[]): Promise<string> {
  const listing = roots.map((root) => `(cd '${root}' && find . -xdev -type f -printf '%s %P\\n')`).join('; ');
  const result = await sh(`{ ${listing}; } | sort -n | tail -1 | cut -d' ' -f2-`);
  return result.stdout.trim();
}

const PYTHON_MINIMAL: DebianSpec = { name: 'python-minimal', suite: 'bookworm', packages: ['python3'] };
const PYTHON_SCI: DebianSpec = { name: 'python-sci', suite: 'bookworm', packages: ['python3', 'python3-numpy', 'python3-pandas'] };
// Layers in Dockerfile order: base system + python3, the compiler toolchain, the science stack.
const FAT_LAYERS = [
  ['python3'],
  ['build-essential', 'gfortran', 'python3-dev'],
  ['python3-numpy', 'python3-pandas', 'python3-scipy', 'python3-matplotlib'],
];
const PYTHON_FAT: DebianSpec = { name: 'python-fat', suite: 'bookworm', packages: FAT_LAYERS.flat() };
// The same workload as python-sci: the extra gigabyte is what a lazy start should not pay for.
const SCI_WORKLOAD = chrootWorkload("python3 -c 'import numpy, pandas'", "python3 -c 'import json, sqlite3, numpy, pandas; print(1)'");

/** Builds (or loads) a Debian image; `cacheKey` must change whenever `layersOf` does. */
async function debianImage(
  spec: DebianSpec,
  workload: Workload,
  description: string,
  cacheKey: Record<string, unknown>,
  layersOf: (rootfs: string) => Promise<LayerSource[]>,
  runtime: ImageRuntime,
): Promise<BenchImage> {
  const rootfs = await ensureDebianRootfs(spec);
  const { meta } = await cachedDir<LayoutMeta>('layouts', spec.name, { spec, ...cacheKey }, async (dir) => {
    const layers = await layersOf(rootfs);
    const image = await writeOciLayout(join(dir, 'layout'), 'latest', layers, runtime);
    // Layers may come from several trees (the app's node_modules is staged beside the rootfs).
    const trees = [...new Set(layers.map((layer) => layer.root))];
    const sizes = await Promise.all(trees.map(treeBytes));
    return { image, uncompressedBytes: sizes.reduce((sum, size) => sum + size, 0), bigFile: await largestFile(trees) };
  });
  return { name: spec.name, description, workload, smallFile: 'etc/debian_version', ...meta };
}

/** Two layers like a small real image: the base system, then the Python site packages. */
function pythonImage(spec: DebianSpec, workload: Workload, description: string): Promise<BenchImage> {
  const layers = async (rootfs: string): Promise<LayerSource[]> => [
    { root: rootfs, exclude: ['usr/lib/python3/dist-packages'] },
    { root: rootfs, include: ['usr/lib/python3/dist-packages'] },
  ];
  return debianImage(spec, workload, description, { layers: 2, version: 1 }, layers, { cmd: ['/usr/bin/python3'] });
}

export function pythonMinimalImage(): Promise<BenchImage> {
  return pythonImage(
    PYTHON_MINIMAL,
    chrootWorkload("python3 -c 'import json, sqlite3'", "python3 -c 'import json, sqlite3; print(1)'"),
    'Debian bookworm minbase + python3 (mmdebstrap)',
  );
}

export function pythonSciImage(): Promise<BenchImage> {
  return pythonImage(PYTHON_SCI, SCI_WORKLOAD, 'Debian bookworm minbase + python3, python3-numpy, python3-pandas (mmdebstrap)');
}

export function pythonFatImage(): Promise<BenchImage> {
  const layers = async (rootfs: string): Promise<LayerSource[]> =>
    (await splitByPackages(rootfs, FAT_LAYERS)).map((list) => ({ root: rootfs, list }));
  return debianImage(
    PYTHON_FAT,
    SCI_WORKLOAD,
    'Debian bookworm minbase + python3; build-essential, gfortran, python3-dev; numpy, pandas, scipy, matplotlib (mmdebstrap, a layer per install step)',
    { layers: FAT_LAYERS, version: 1 },
    layers,
    { cmd: ['/usr/bin/python3'] },
  );
}

export function nodeAppImage(): Promise<BenchImage> {
  return debianImage(
    NODE_APP_SPEC,
    chrootWorkload(`node /app/index.js (${NODE_APP_WORKLOAD_MODULES.join(', ')})`, 'cd /app && node index.js'),
    `Debian bookworm minbase + nodejs 18; /app/node_modules from npm (${Object.keys(NODE_APP_DEPENDENCIES).length} direct dependencies); /app/index.js`,
    { app: NODE_APP_DEPENDENCIES, source: NODE_APP_INDEX, version: 1 },
    nodeAppLayers,
    { cmd: ['/usr/bin/node', '/app/index.js'] },
  );
}

export async function syntheticImage(scale: 'quick' | 'full'): Promise<BenchImage> {
  const spec: SyntheticSpec = scale === 'quick' ? SYNTHETIC_QUICK : SYNTHETIC_FULL;
  const name = `synthetic-${scale}`;
  const { dir, meta } = await cachedDir<LayoutMeta>('layouts', name, { spec, version: 1 }, async (target) => {
    const tree = await writeSyntheticTree(join(target, 'tree'), spec);
    await writeFile(join(target, 'hot.txt'), `${tree.hotFiles.join('\n')}\n`);
    const image = await writeOciLayout(
      join(target, 'layout'),
      'latest',
      tree.layerRoots.map((root) => ({ root })),
      {},
      6,
    );
    await sh(`rm -rf '${join(target, 'tree')}'`);
    return { image, uncompressedBytes: tree.uncompressedBytes, bigFile: tree.bigFile };
  });
  await stat(join(dir, 'hot.txt'));
  return {
    name,
    description: `synthetic: ${spec.layers} layers × ${spec.smallFilesPerLayer} small files + ${spec.bigFileBytes.length} large`,
    workload: readFilesWorkload('read the hot set (every 20th small file)', join(dir, 'hot.txt')),
    // Not in the hot set; written by writeSyntheticTree for every spec.
    smallFile: 'data/l0/d0/f1.txt',
    ...meta,
  };
}
